/* lm - the command line of lm.h: train, sample, evaluate, inspect and benchmark small GPT
   models, and train or apply byte-level BPE tokenizers.

   Build from the repository root:
       cc -O2 -I. tools/lm_cli.c -o lm -lm -lpthread
   (add -march=native for the AVX2 / AVX-512 kernels).

   The contract (also in README.md, "The lm command line"):
     - stdout carries only results: generated text, the eval line, token ids, benchmark
       figures, model info. Everything else (progress, notes, errors) goes to stderr.
     - Exit status 0 on success, 2 on a usage error (bad flag, bad number, missing flag),
       1 on a runtime error (missing file, bad checkpoint, NaN loss), always with exactly
       one line on stderr saying why.
     - Every number on the command line is checked in full (no trailing junk, no overflow,
       in range) before anything big is allocated.

   The file reads top to bottom: messages and exits, number parsing, the option tables,
   files, tokenizers, models, then one section per subcommand, and main() at the end. */
#define _POSIX_C_SOURCE 200809L
#define LM_IMPLEMENTATION
#include "lm.h"
#include "lm_plot.h"     /* loss curves as SVG: lm train --plot, lm plot */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/ioctl.h>      /* TIOCGWINSZ: the terminal's width, for the live line */
#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------
   Messages and exits.
   Every failure ends in one line "lm SUBCOMMAND: reason" on stderr and a fixed status:
   2 when the command line itself is wrong, 1 when the command line was fine but the work
   failed. `g_cmd` names the subcommand running, so the helpers below can say it.
   --------------------------------------------------------------------------------------- */
enum { EXIT_USAGE = 2, EXIT_RUNTIME = 1 };
static const char *g_cmd = "lm";
static int g_live_line = 0;  /* train's live progress line is on screen: clear it first */
/* lm-mpi (make lm-mpi) runs as P processes, ranks 0 .. P-1, that all see the same command
   line and data, so only rank 0 speaks; another rank says only what befell it alone
   (die_here), naming itself. */
static int g_rank = 0;
static int g_speak = 0;      /* this rank's own failure: say it whatever the rank */
static void team_end(void);  /* (see "Training together" below) */
static int team_threads(void);

static void clear_live_line(void) {
    if (g_live_line) { fputs("\r\033[K", stderr); g_live_line = 0; }
}
static void vsay(const char *fmt, va_list ap) {
    char buf[1024];
    size_t i;
    clear_live_line();
    if (g_rank != 0 && !g_speak) return;
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* a message is one line, even when it quotes user text with control characters */
    for (i = 0; buf[i]; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) buf[i] = '?';
    if (g_rank != 0) fprintf(stderr, "%s: rank %d: %s\n", g_cmd, g_rank, buf);
    else fprintf(stderr, "%s: %s\n", g_cmd, buf);
}
/* Exit with status. lm-mpi: a rank other than 0 that said nothing has rank 0 say it (all
   see the same command line and data, so rank 0 stops for the same reason), and gives it
   a few seconds to: mpirun ends the job when the first rank goes. */
static void quiet_exit(int status) {
    if (g_rank != 0 && !g_speak) sleep(5);
    exit(status);
}
/* A usage error: the command line is wrong. Exit 2. */
static void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    quiet_exit(EXIT_USAGE);
}
/* A runtime error: the work failed. Exit 1. */
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    quiet_exit(EXIT_RUNTIME);
}
/* A runtime error of this process alone (lm-mpi: said by whichever rank has it). */
static void die_here(const char *fmt, ...) {
    va_list ap;
    g_speak = 1;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    exit(EXIT_RUNTIME);
}
/* A note on stderr that does not stop anything. */
static void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die_here("out of memory (%lu bytes)", (unsigned long)n);
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Physical memory in bytes, or 0 when the system does not say. The size checks compare
   what a configuration would need against it, so an absurd --embd is refused up front
   instead of being killed by the kernel halfway through an allocation. */
static double phys_mem(void) {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) return (double)pages * (double)size;
#endif
    return 0;
}

/* bytes: what a run allocates, lm_gpt_memory(cfg, B, T) (lm.h): the parameters with their
   gradients and AdamW moments, the KV cache, and the work arena of a training step of
   (B, T), or of generation when B = 0. */
static void check_fits(double bytes, const char *what) {
    double have = phys_mem();
    if (have <= 0) have = 1ull << 40; /* unknown: allow up to 1 TiB */
    if (bytes > have)
        die_usage("%s would need about %.0f MB, more than the %.0f MB of memory here", what,
                  bytes / 1048576.0, have / 1048576.0);
}

/* ---------------------------------------------------------------------------------------
   Strict number parsing.
   A value is accepted only if the whole string is a number of the right kind and in range:
   "12abc", "", " 12", "1e3" for an integer, "nan", "inf" and overflow are all refused, and
   the message says what was expected and what was given.
   --------------------------------------------------------------------------------------- */
/* What an integer option expects, as words: "a positive integer", ... */
static void int_expect(char *buf, size_t cap, long long lo, long long hi) {
    if (lo == 1) snprintf(buf, cap, "a positive integer");
    else if (lo == 0) snprintf(buf, cap, "a non-negative integer");
    else snprintf(buf, cap, "an integer from %lld to %lld", lo, hi);
}

static long long parse_int(const char *flag, const char *s, long long lo, long long hi) {
    char want[96], *end;
    long long v;
    int_expect(want, sizeof want, lo, hi);
    errno = 0;
    if (!s[0] || !(isdigit((unsigned char)s[0]) ||
                   ((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1]))))
        die_usage("%s must be %s, got '%s'", flag, want, s);
    v = strtoll(s, &end, 10);
    if (*end) die_usage("%s must be %s, got '%s'", flag, want, s);
    if (errno == ERANGE || v < lo) {
        if (s[0] == '-' || v < lo) die_usage("%s must be %s, got '%s'", flag, want, s);
        die_usage("%s must be at most %lld, got '%s'", flag, hi, s);
    }
    if (v > hi) die_usage("%s must be at most %lld, got '%s'", flag, hi, s);
    return v;
}

static uint64_t parse_u64(const char *flag, const char *s) {
    const char *p;
    char *end;
    unsigned long long v;
    for (p = s; *p; p++)
        if (!isdigit((unsigned char)*p)) break;
    errno = 0;
    if (!s[0] || *p) die_usage("%s must be a non-negative integer, got '%s'", flag, s);
    v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end)
        die_usage("%s must be at most 18446744073709551615, got '%s'", flag, s);
    return (uint64_t)v;
}

/* Real numbers: [lo, hi], with either end excluded when lo_open / hi_open. */
static double parse_num(const char *flag, const char *s, double lo, double hi, int lo_open,
                        int hi_open) {
    char want[96], *end;
    double v;
    if (lo == 0 && hi == HUGE_VAL) snprintf(want, sizeof want, lo_open ? "a positive number" : "a non-negative number");
    else if (hi == HUGE_VAL) snprintf(want, sizeof want, "a number %s %g", lo_open ? ">" : ">=", lo);
    else snprintf(want, sizeof want, "a number in %c%g, %g%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
    errno = 0;
    if (!s[0] || isspace((unsigned char)s[0])) die_usage("%s must be %s, got '%s'", flag, want, s);
    v = strtod(s, &end);
    if (*end || !isfinite(v) || v != v) die_usage("%s must be %s, got '%s'", flag, want, s);
    if (v < lo || (lo_open && v == lo) || v > hi || (hi_open && v == hi))
        die_usage("%s must be %s, got '%s'", flag, want, s);
    /* the library takes floats: refuse what a float cannot hold */
    if (fabs(v) > FLT_MAX) die_usage("%s is too large for a float, got '%s'", flag, s);
    if (lo_open && lo == 0 && (float)v == 0)
        die_usage("%s is too small for a float, got '%s'", flag, s);
    return v;
}

/* ---------------------------------------------------------------------------------------
   Options.
   Each subcommand lists its options in a small table: name, kind, default, allowed range.
   One parser walks argv against the table, so every subcommand checks its flags the same
   way: unknown options, missing values, options given twice and bad numbers are all usage
   errors. `--name value` and `--name=value` are both accepted.
   --------------------------------------------------------------------------------------- */
enum { O_FLAG, O_INT, O_U64, O_NUM, O_STR };

typedef struct cli_opt {
    const char *name;      /* "--steps"                                                  */
    int kind;              /* O_FLAG, O_INT, O_U64, O_NUM or O_STR                       */
    double lo, hi;         /* allowed range of O_INT / O_NUM                              */
    int lo_open, hi_open;  /* O_NUM: lo / hi themselves excluded                          */
    const char *choices;   /* O_STR: "a|b|c" when only these words are allowed            */
    int free_text;         /* O_STR: any text, even "" or "--x" (a prompt)                */
    int seen;              /* given on the command line                                   */
    long long i;           /* value of O_INT (and 1 for a given O_FLAG)                   */
    uint64_t u;            /* value of O_U64                                              */
    double d;              /* value of O_NUM                                              */
    const char *s;         /* value of O_STR (NULL when absent and no default)            */
} cli_opt;

typedef struct cli {
    cli_opt o[48];
    int n;
    const char *usage;     /* the --help text                                            */
    const char *pos[4];    /* positional arguments                                       */
    int npos, max_pos;
} cli;

static cli_opt *cli_add(cli *c, const char *name, int kind) {
    cli_opt *o = &c->o[c->n++];
    memset(o, 0, sizeof *o);
    o->name = name;
    o->kind = kind;
    return o;
}
static void opt_int(cli *c, const char *name, long long def, long long lo, long long hi) {
    cli_opt *o = cli_add(c, name, O_INT);
    o->i = def; o->lo = (double)lo; o->hi = (double)hi;
}
static void opt_u64(cli *c, const char *name, uint64_t def) { cli_add(c, name, O_U64)->u = def; }
static void opt_num(cli *c, const char *name, double def, double lo, double hi, int lo_open,
                    int hi_open) {
    cli_opt *o = cli_add(c, name, O_NUM);
    o->d = def; o->lo = lo; o->hi = hi; o->lo_open = lo_open; o->hi_open = hi_open;
}
static void opt_str(cli *c, const char *name, const char *def, const char *choices) {
    cli_opt *o = cli_add(c, name, O_STR);
    o->s = def; o->choices = choices;
}
static void opt_text(cli *c, const char *name, const char *def) {
    cli_opt *o = cli_add(c, name, O_STR);
    o->s = def; o->free_text = 1;
}
static void opt_flag(cli *c, const char *name) { cli_add(c, name, O_FLAG); }

static cli_opt *cli_find(cli *c, const char *name, size_t len) {
    int k;
    for (k = 0; k < c->n; k++)
        if (strlen(c->o[k].name) == len && !strncmp(c->o[k].name, name, len)) return &c->o[k];
    return NULL;
}
/* The option called name; asking for one the table lacks is a bug in this file. */
static cli_opt *get(cli *c, const char *name) {
    cli_opt *o = cli_find(c, name, strlen(name));
    if (!o) { fprintf(stderr, "lm: internal error: no option %s\n", name); exit(EXIT_RUNTIME); }
    return o;
}
static long long geti(cli *c, const char *name) { return get(c, name)->i; }
static double getd(cli *c, const char *name) { return get(c, name)->d; }
static const char *getstr(cli *c, const char *name) { return get(c, name)->s; }
static int seen(cli *c, const char *name) { return get(c, name)->seen; }

/* Does arg look like an option (as opposed to a value such as -5 or a file name)? */
static int is_option(const char *a) {
    return a[0] == '-' && a[1] && !isdigit((unsigned char)a[1]) && a[1] != '.';
}

static void opt_set(cli_opt *o, const char *v) {
    if (o->kind == O_INT) o->i = parse_int(o->name, v, (long long)o->lo, (long long)o->hi);
    else if (o->kind == O_U64) o->u = parse_u64(o->name, v);
    else if (o->kind == O_NUM) o->d = parse_num(o->name, v, o->lo, o->hi, o->lo_open, o->hi_open);
    else {
        if (!o->free_text && !v[0]) die_usage("%s needs a value, got ''", o->name);
        if (o->choices) {
            /* the value must be one of the words of "a|b|c" */
            const char *p = o->choices;
            size_t len = strlen(v);
            int ok = 0;
            while (*p) {
                size_t w = strcspn(p, "|");
                if (w == len && !strncmp(p, v, len)) ok = 1;
                p += w + (p[w] == '|');
            }
            if (!ok) die_usage("%s must be one of %s, got '%s'", o->name, o->choices, v);
        }
        o->s = v;
    }
    o->seen = 1;
}

static void cli_parse(cli *c, int argc, char **argv) {
    int k;
    /* --help wins over everything else on the line, so it always works */
    for (k = 0; k < argc; k++) {
        const char *a = argv[k];
        cli_opt *o;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(c->usage, stdout);
            team_end();
            exit(0);
        }
        o = is_option(a) && !strchr(a, '=') ? cli_find(c, a, strlen(a)) : NULL;
        if (o && o->kind != O_FLAG) k++; /* skip its value: --prompt --help is a prompt */
    }
    for (k = 0; k < argc; k++) {
        const char *a = argv[k], *eq, *v;
        cli_opt *o;
        if (!strcmp(a, "--")) { /* everything after -- is positional */
            for (k++; k < argc; k++) {
                if (c->npos >= c->max_pos) die_usage("unexpected argument '%s'", argv[k]);
                c->pos[c->npos++] = argv[k];
            }
            break;
        }
        if (!is_option(a)) {
            if (c->npos >= c->max_pos) die_usage("unexpected argument '%s'", a);
            c->pos[c->npos++] = a;
            continue;
        }
        eq = a[1] == '-' ? strchr(a, '=') : NULL;
        o = cli_find(c, a, eq ? (size_t)(eq - a) : strlen(a));
        if (!o) {
            if (eq) die_usage("unknown option '%.*s' (see %s --help)", (int)(eq - a), a, g_cmd);
            die_usage("unknown option '%s' (see %s --help)", a, g_cmd);
        }
        if (o->seen) die_usage("%s given twice", o->name);
        if (o->kind == O_FLAG) {
            if (eq) die_usage("%s takes no value", o->name);
            o->seen = 1;
            o->i = 1;
            continue;
        }
        if (eq) v = eq + 1;
        else {
            if (k + 1 >= argc) die_usage("%s needs a value", o->name);
            v = argv[++k];
            /* "--data --steps 5": a file name that looks like an option is a missing value */
            if (o->kind == O_STR && !o->free_text && v[0] == '-' && v[1] == '-')
                die_usage("%s needs a value, got '%s'", o->name, v);
        }
        opt_set(o, v);
    }
}

/* The options every subcommand takes. */
static void opt_threads(cli *c) { opt_int(c, "--threads", team_threads(), 1, 1024); }
static void apply_threads(cli *c) { lm_set_threads((int)geti(c, "--threads")); }

/* ---------------------------------------------------------------------------------------
   Files.
   Whole files are read into memory: the corpora this tool is for are megabytes. Errors
   name the file and the system's reason.
   --------------------------------------------------------------------------------------- */
static unsigned char *read_stream(FILE *f, const char *name, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = (unsigned char *)xmalloc(cap);
    for (;;) {
        size_t got;
        if (n == cap) {
            unsigned char *nb;
            if (cap > ((size_t)-1) / 2) die("%s: too large", name);
            nb = (unsigned char *)realloc(buf, cap * 2);
            if (!nb) die("%s: out of memory reading it", name);
            buf = nb;
            cap *= 2;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) die("cannot read '%s': %s", name, strerror(errno));
    *len = n;
    return buf;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    if (!f) die("cannot open '%s': %s", path, strerror(errno));
    buf = read_stream(f, path, len);
    fclose(f);
    return buf;
}

/* Fail early when an output file could not be created, rather than after hours of work:
   its directory must exist and be writable. */
static void check_writable(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (!slash) strcpy(dir, ".");
    else if (n == 0) strcpy(dir, "/");
    else {
        if (n >= sizeof dir) die("path too long: '%s'", path);
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    if (access(dir, W_OK | X_OK) != 0)
        die("cannot write '%s': directory '%s': %s", path, dir, strerror(errno));
}

/* Do two paths name the same file? The same text, or an existing file reached twice
   ("./a.csv" and "a.csv", a link). Used to refuse a command line whose outputs would
   overwrite one another or the input. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!a || !b) return 0;
    if (!strcmp(a, b)) return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* ---------------------------------------------------------------------------------------
   Tokenizers.
   Three kinds: raw bytes (the default: token = byte, vocab 256), a byte-level BPE file
   trained by `lm bpe` (--tokenizer TOK), and GPT-2's own (--gpt2 DIR with encoder.json and
   vocab.bpe). The subcommands see one small interface over the three.
   --------------------------------------------------------------------------------------- */
typedef struct cli_tok {
    lm_tokenizer *t;    /* the tokenizer                                                 */
    int vocab;          /* its number of tokens                                          */
    int start;          /* the token an empty prompt starts from                         */
    const char *what;   /* for messages: "bytes", the file or the directory              */
} cli_tok;

static void opt_tok(cli *c) {
    opt_str(c, "--tokenizer", NULL, NULL);
    opt_str(c, "--gpt2", NULL, NULL);
}

static void tok_check_opts(cli *c) {
    if (seen(c, "--tokenizer") && seen(c, "--gpt2"))
        die_usage("--tokenizer and --gpt2 cannot be used together");
}

/* Open the tokenizer the options ask for: --tokenizer TOK, --gpt2 DIR, or raw bytes. */
static void tok_open(cli *c, cli_tok *k) {
    const char *path = getstr(c, "--tokenizer"), *dir = getstr(c, "--gpt2");
    memset(k, 0, sizeof *k);
    if (path) {
        FILE *f = fopen(path, "rb");
        if (!f) die("cannot open '%s': %s", path, strerror(errno));
        fclose(f);
        k->t = lm_tok_load(path);
        k->what = path;
    } else if (dir) {
        k->t = lm_tok_load_gpt2(dir);
        k->what = dir;
    } else {
        k->t = lm_tok_bytes();
        k->what = "bytes";
    }
    if (!k->t) die("cannot load the tokenizer '%s': %s", k->what, lm_error());
    k->vocab = lm_tok_vocab_size(k->t);
    /* An empty prompt starts from <|endoftext|> with GPT-2's tokenizer, else from "\n"
       (a single byte, so id 10 in both the byte and our BPE vocabularies). */
    k->start = dir && k->vocab > 50256 ? 50256 : '\n';
}

static void tok_close(cli_tok *k) { lm_tok_free(k->t); }

/* The ids of text[0..n); *count receives how many. */
static int *tok_encode(cli_tok *k, const unsigned char *text, size_t n, size_t *count) {
    int *ids;
    long got;
    if (n > ((size_t)-1) / sizeof(int) - 1) die("input too large");
    ids = (int *)xmalloc((n + 1) * sizeof(int));
    got = lm_tok_encode(k->t, text, n, ids, n + 1);
    if (got < 0 || (size_t)got > n + 1) die("cannot tokenize: %s", lm_error());
    *count = (size_t)got;
    return ids;
}

/* Write the bytes of ids[0..n) to f. Returns 0, or -1 for an id outside the vocabulary. */
static int tok_write(cli_tok *k, const int *ids, size_t n, FILE *f) {
    unsigned char small[4096], *buf = small;
    long len = lm_tok_decode(k->t, ids, n, small, sizeof small);
    if (len < 0) return -1;
    if ((size_t)len > sizeof small) {
        buf = (unsigned char *)xmalloc((size_t)len);
        if (lm_tok_decode(k->t, ids, n, buf, (size_t)len) != len) die("cannot decode: %s", lm_error());
    }
    fwrite(buf, 1, (size_t)len, f);
    if (buf != small) free(buf);
    return 0;
}

/* ---------------------------------------------------------------------------------------
   Models: shape options, size estimates, loading.
   The estimates are deliberately rough (within a small factor): they exist to refuse a
   configuration that cannot possibly fit before anything is allocated.
   --------------------------------------------------------------------------------------- */
static void opt_shape(cli *c) {
    opt_int(c, "--layers", 4, 1, 1024);
    opt_int(c, "--heads", 4, 1, 65536);
    opt_int(c, "--embd", 128, 1, 65536);
    opt_int(c, "--ctx", 64, 1, 1048576);
}

/* The shape options (--layers, --heads, --embd, --ctx) as a model configuration. */
static lm_gpt_config shape_config(cli *c, int vocab) {
    lm_gpt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layer = (int)geti(c, "--layers");
    cfg.n_head = (int)geti(c, "--heads");
    cfg.n_embd = (int)geti(c, "--embd");
    cfg.n_ctx = (int)geti(c, "--ctx");
    cfg.vocab = vocab;
    return cfg;
}

/* The library indexes tensors with int: no weight matrix may reach 2^31 elements. */
static void check_shape(cli *c, double V) {
    long long C = geti(c, "--embd"), H = geti(c, "--heads"), N = geti(c, "--ctx");
    if (C % H) die_usage("--heads %lld must divide --embd %lld", H, C);
    if (4.0 * C * C > INT_MAX || V * C > INT_MAX || (double)N * C > INT_MAX)
        die_usage("--embd %lld is too wide: a weight matrix would reach 2^31 elements", C);
}
/* Nor may a step's activations: (B, T, V) logits, (B, T, 4C) MLP, (B, H, T, T) attention. */
static void check_step(double B, double T, double C, double H, double V) {
    double big = V > 4 * C ? V : 4 * C;
    if (B * T * big > INT_MAX || B * H * T * T > INT_MAX)
        die_usage("--batch %.0f with --ctx %.0f is too large for this model: a step's "
                  "activations would reach 2^31 elements", B, T);
}

/* Load a checkpoint. heads > 0 overrides the file's n_head (for files without metadata). */
/* Is path a safetensors file with the encoder-decoder's layout (lm s2s)? */
static int is_s2s_file(const char *path) {
    lm_st_file f;
    int yes;
    if (lm_st_open(&f, path) != LM_OK) return 0;
    yes = lm_st_find(&f, "src_tok_emb.embedding.weight") != NULL;
    lm_st_close(&f);
    return yes;
}

static lm_gpt *load_model(const char *path, int heads) {
    lm_gpt *m;
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open '%s': %s", path, strerror(errno));
    fclose(f);
    m = lm_gpt_load(path, heads);
    if (!m && is_s2s_file(path))
        die("'%s' is an encoder-decoder checkpoint: lm s2s eval and lm s2s translate use it", path);
    if (!m) die("cannot load '%s': %s", path, lm_error());
    return m;
}

/* --heads is for checkpoints whose metadata does not give n_head (a Hugging Face GPT-2
   file, say): the value to pass to lm_gpt_load, 0 meaning "the file's". */
static int heads_for(cli *c, const char *path) {
    lm_st_file f;
    const char *v;
    int h;
    if (!seen(c, "--heads")) return 0;
    h = (int)geti(c, "--heads");
    if (lm_st_open(&f, path) != LM_OK) return h; /* load_model reports what is wrong */
    v = lm_st_meta(&f, "n_head");
    if (v) {
        if (atoi(v) != h) note("--heads %d ignored: '%s' has n_head %s", h, path, v);
        h = 0;
    }
    lm_st_close(&f);
    return h;
}

static void check_vocab(const lm_gpt *m, const cli_tok *k, const char *path) {
    if (m->cfg.vocab != k->vocab)
        die("'%s' has a vocabulary of %d tokens but the tokenizer (%s) has %d", path,
            m->cfg.vocab, k->what, k->vocab);
}

/* "1:02:03" or "2:03" */
static const char *fmt_time(double s, char *buf) {
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600) sprintf(buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else sprintf(buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

/* ---------------------------------------------------------------------------------------
   Training together: gradient accumulation, and the processes of lm-mpi.
   A step has P*A micro-batches of B rows (lm train --accum A; P = 1 for lm, the number of
   processes for lm-mpi), drawn from the data order one after another. Rank r computes
   micro-batches rA .. rA+A-1, each one's gradient on its own. The gradients are summed in
   micro-batch order (lm.h, TRAINING): within a rank as they come, then from rank to rank
   along a chain (team_chain); every rank then takes the same update, with the mean. So
   lm-mpi with P processes and --accum A does exactly the float operations of lm with
   --accum P*A, and ends with the same bits.
   The team_ functions are how the processes talk: tools/lm_mpi.h under MPI, and below
   for one process, where each does nothing or the obvious thing.
   --------------------------------------------------------------------------------------- */
#ifdef LM_MPI
#include "lm_mpi.h"
#else
#define LM_TOOL "lm"
static void team_start(int *argc, char ***argv) { (void)argc; (void)argv; }
static void team_end(void) {}
static int team_rank(void) { return 0; }
static int team_size(void) { return 1; }
static int team_threads(void) { return lm_num_cores(); }
static void team_bcast(void *buf, size_t bytes) { (void)buf; (void)bytes; }
static void team_barrier(void) {}
static void team_allgather(const float *mine, int n, float *all) {
    memcpy(all, mine, (size_t)n * sizeof(float));
}
static void team_gather_runs(float *buf, long n) { (void)buf; (void)n; }
/* The sum of one process is the sum it made. */
static void team_chain(float *grad, float *const *keep, int nkeep, size_t n) {
    (void)grad; (void)keep; (void)nkeep; (void)n;
}
static int team_signals(void (*stop)(int sig)) { (void)stop; return 0; }
static void team_lock(void) {}
static void team_unlock(void) {}
static double team_sent(void) { return 0; }
static double team_max(double x) { return x; }
#endif

/* Rank 0 read the text: the others get its tokens and the vocabulary size, so only rank
   0 needs the files. */
static int *team_share_tokens(int *tokens, size_t *n, int *vocab) {
    uint64_t h[2];
    if (team_size() == 1) return tokens;
    h[0] = (uint64_t)*n;
    h[1] = (uint64_t)*vocab;
    team_bcast(h, sizeof h);
    if (team_rank() != 0) {
        *n = (size_t)h[0];
        *vocab = (int)h[1];
        tokens = (int *)xmalloc(*n * sizeof(int));
    }
    team_bcast(tokens, *n * sizeof(int));
    return tokens;
}

/* Rank 0 made or loaded the model: the others get its shape and weights, so they need no
   checkpoint file and all start from the same bits. */
static lm_gpt *team_share_model(lm_gpt *m) {
    int32_t h[5];
    if (team_size() == 1) return m;
    if (team_rank() == 0) {
        h[0] = m->cfg.n_layer; h[1] = m->cfg.n_head; h[2] = m->cfg.n_embd;
        h[3] = m->cfg.n_ctx; h[4] = m->cfg.vocab;
    }
    team_bcast(h, sizeof h);
    if (team_rank() != 0) {
        lm_gpt_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.n_layer = h[0]; cfg.n_head = h[1]; cfg.n_embd = h[2]; cfg.n_ctx = h[3]; cfg.vocab = h[4];
        if (!(m = lm_gpt_new(&cfg, 0))) die_here("cannot create the model: %s", lm_error());
    }
    team_bcast(m->params.data, m->params.total * sizeof(float));
    return m;
}

/* --resume: the AdamW moments and step count, and where the data order stands. */
static void team_share_state(lm_gpt *m, lm_train_state *st) {
    int64_t h[4];
    if (team_size() == 1) return;
    h[0] = m->params.step; h[1] = st->step; h[2] = (int64_t)st->data_pos; h[3] = (int64_t)st->rng;
    team_bcast(h, sizeof h);
    m->params.step = (long)h[0]; st->step = (long)h[1];
    st->data_pos = (uint64_t)h[2]; st->rng = (uint64_t)h[3];
    team_bcast(m->params.m, m->params.total * sizeof(float));
    team_bcast(m->params.v, m->params.total * sizeof(float));
}

/* lm_gpt_eval shared out: rank r takes the r-th of P runs of the window groups, rank 0
   gathers their losses and puts them together as lm_gpt_eval does, so the number is the
   one process's. The result is rank 0's (the others get NaN). */
static float team_eval(lm_gpt *m, const int *tokens, size_t n, int T) {
    long ng, g0, g1, P = team_size(), r = team_rank(), g;
    float *loss, result;
    if (P == 1) return lm_gpt_eval(m, tokens, n, T);
    ng = lm_gpt_eval_groups(m, tokens, n, T, 0, 0, NULL);
    if (ng < 0) return NAN;
    loss = (float *)xmalloc((size_t)ng * sizeof(float));
    g0 = ng * r / P;
    g1 = ng * (r + 1) / P;
    if (lm_gpt_eval_groups(m, tokens, n, T, g0, g1, loss + g0) < 0)
        for (g = g0; g < g1; g++) loss[g] = NAN;
    team_gather_runs(loss, ng);
    result = r == 0 ? lm_gpt_eval_mean(loss, n, T) : NAN;
    free(loss);
    return result;
}

/* One step's micro-batches and gradients on this rank. */
enum { ACCUM_OK = 0, ACCUM_NAN = 1, ACCUM_INF = 2, ACCUM_ERROR = 3 };
typedef struct accum {
    lm_gpt *m;
    int A, B, T;             /* this rank's micro-batches, rows each, tokens per row      */
    int P, rank;             /* the team                                                  */
    int *in, *tg;            /* (A, B, T) this rank's micro-batches                       */
    int *skip_in, *skip_tg;  /* (B, T) where the other ranks' micro-batches are drawn to  */
    float **keep;            /* (A - 1) another rank's first A - 1 gradients, when A > 1  */
    float *mine, *all;       /* (A + 1), (P, A + 1): losses and a status, of this rank and
                                of every rank                                             */
    int failed;              /* after a failed step: ACCUM_NAN, ACCUM_INF or ACCUM_ERROR  */
    int failed_rank;         /* the first rank that failed (with ACCUM_ERROR if any did)  */
    char why[512];           /* this rank's lm_error() when it failed                     */
    double t_compute;        /* seconds of the last step: this rank's gradients,          */
    double t_wait;           /*   agreeing on the losses (waiting for the slowest rank),  */
    double t_exchange;       /*   summing the gradients across the ranks                  */
} accum;

/* Bytes accumulation needs beyond lm_gpt_memory: nothing on rank 0, whose backwards add
   into the gradients as they come; another rank keeps its first A - 1 gradients apart
   (the running sum reaches it only once the ranks before it are done). */
static double accum_bytes(const lm_gpt_config *c, int A) {
    double n = (double)LM_GPT_PARAMS(c->n_layer, c->n_embd, c->n_ctx, c->vocab) + 16.0 * (2 + 12 * c->n_layer + 2);
    return team_rank() == 0 ? 0 : 4.0 * n * (A - 1);
}

static void accum_init(accum *a, lm_gpt *m, int A, int B, int T) {
    size_t bt = (size_t)B * T, total = m->params.total;
    int i;
    memset(a, 0, sizeof *a);
    a->m = m; a->A = A; a->B = B; a->T = T;
    a->P = team_size();
    a->rank = team_rank();
    a->in = (int *)xmalloc((size_t)A * bt * sizeof(int));
    a->tg = (int *)xmalloc((size_t)A * bt * sizeof(int));
    a->skip_in = (int *)xmalloc(bt * sizeof(int));
    a->skip_tg = (int *)xmalloc(bt * sizeof(int));
    a->mine = (float *)xmalloc((size_t)(A + 1) * sizeof(float));
    a->all = (float *)xmalloc((size_t)a->P * (A + 1) * sizeof(float));
    a->keep = (float **)xmalloc((size_t)A * sizeof(float *));
    for (i = 0; a->rank > 0 && i < A - 1; i++) a->keep[i] = (float *)xmalloc(total * sizeof(float));
}

static void accum_free(accum *a) {
    int i;
    for (i = 0; a->rank > 0 && i < a->A - 1; i++) free(a->keep[i]);
    free(a->keep); free(a->all); free(a->mine);
    free(a->skip_tg); free(a->skip_in); free(a->tg); free(a->in);
}

/* The step's P*A micro-batches, in the data order's order; this rank keeps its own. */
static int accum_draw(accum *a, lm_data *d) {
    size_t bt = (size_t)a->B * a->T;
    int j;
    for (j = 0; j < a->P * a->A; j++) {
        int own = j / a->A == a->rank, rc;
        rc = lm_data_next(d, a->B, a->T, own ? a->in + (size_t)(j % a->A) * bt : a->skip_in,
                          own ? a->tg + (size_t)(j % a->A) * bt : a->skip_tg);
        if (rc != LM_OK) return rc;
    }
    return LM_OK;
}

/* This rank's gradients, then everyone's summed in order, in the gradients of every
   rank. Rank 0 lets its backwards add into the gradients (lm.h: each adds its own
   micro-batch's, whole); another rank keeps its first A - 1 apart for the chain. Returns
   the step's loss, the mean of all P*A micro-batches' losses (summed in double, in
   order), or NaN when some micro-batch failed (a->failed says how, on every rank). */
static float accum_grads(accum *a) {
    lm_params *p = &a->m->params;
    size_t bt = (size_t)a->B * a->T;
    int A = a->A, i, r;
    float status = ACCUM_OK;
    double t = now_s(), tot = 0;
    for (i = 0; i < A; i++) {
        float l;
        if (i == 0 || a->rank > 0) lm_params_zero_grad(p);
        lm_clear_error();
        l = a->mine[i] = lm_gpt_backward(a->m, a->in + i * bt, a->tg + i * bt, a->B, a->T);
        if (l != l) {
            status = strstr(lm_error(), "infinite") ? ACCUM_INF
                   : strstr(lm_error(), "the loss is NaN") ? ACCUM_NAN : ACCUM_ERROR;
            snprintf(a->why, sizeof a->why, "%s", lm_error());
            for (; i < A; i++) a->mine[i] = NAN;
            break;
        }
        if (a->rank > 0 && i < A - 1) memcpy(a->keep[i], p->grad, p->total * sizeof(float));
    }
    a->mine[A] = status;
    a->t_compute = now_s() - t;
    t = now_s();
    team_allgather(a->mine, A + 1, a->all);
    a->t_wait = now_s() - t;
    t = now_s();
    a->failed = ACCUM_OK;
    for (r = 0; r < a->P; r++) {
        int s = (int)a->all[(size_t)r * (A + 1) + A];
        if (s != ACCUM_OK && (a->failed == ACCUM_OK || (s == ACCUM_ERROR && a->failed != ACCUM_ERROR))) {
            a->failed = s;
            a->failed_rank = r;
        }
    }
    if (a->failed != ACCUM_OK) { a->t_exchange = 0; return NAN; }
    team_chain(p->grad, a->keep, a->rank > 0 ? A - 1 : 0, p->total);
    a->t_exchange = now_s() - t;
    for (i = 0; i < a->P * A; i++) tot += a->all[(size_t)(i / A) * (A + 1) + i % A];
    return (float)(tot / (a->P * A));
}

/* ---------------------------------------------------------------------------------------
   lm train.
   The loop is: draw the step's micro-batches (lm_data), their gradients (accum_grads, and
   under lm-mpi the exchange), the update (lm_params_update_mean), then the bookkeeping:
   progress, an eval on the validation split when due, a CSV row, a checkpoint when due.
   Exact resume: everything a step depends on is the weights, the AdamW moments and step
   count, the data position and RNG, and the step number. A save writes all of them as one
   commit (lm_gpt_save_with_state: a kill at any moment leaves the old pair or the new
   one), and --resume restores all of them, so the resumed run replays the uninterrupted
   one bit for bit. A file that cannot be written (a full disk) stops the run with one
   line and exit status 1, and the last checkpoint stays as it was.
   Signals only set a flag; the loop notices it after the step in flight, saves and exits
   with 128 + the signal number (130 for SIGINT, 143 for SIGTERM). (lm-mpi: rank 0 saves
   at once instead, from a thread of its own: see train_stop and tools/lm_mpi.h.)
   --------------------------------------------------------------------------------------- */
static const char usage_train[] =
"usage: lm train --data FILE [options]\n"
"\n"
"Train a GPT language model on FILE (its bytes, or its tokens with --tokenizer/--gpt2).\n"
"The first (1 - val-frac) of the tokens train, the rest validate.\n"
"\n"
"  --data FILE            training text (required)\n"
"  --model OUT            checkpoint to write (default model.safetensors); the resume\n"
"                         state goes beside it as OUT.state\n"
"  --init CKPT            start a fresh run from CKPT's weights (shape from CKPT)\n"
"  --resume CKPT          continue the run that wrote CKPT, with the same flags, up to\n"
"                         --steps; ends with exactly the weights of an uninterrupted run\n"
"  --layers N             blocks (4)\n"
"  --heads N              attention heads, must divide --embd (4)\n"
"  --embd N               width (128)\n"
"  --ctx N                context length T (64); with --init/--resume at most CKPT's\n"
"  --batch N              sequences per micro-batch B (12)\n"
"  --accum A              micro-batches per step (1): each step's loss and gradient are\n"
"                         the mean over A x B sequences, from A micro-batches drawn one\n"
"                         after another, each one's gradient added in order; then one\n"
"                         clip and AdamW step. Memory as for B; a step takes A times as\n"
"                         long. Under MPI, `mpirun -np P lm-mpi train ... --accum A` is\n"
"                         bit for bit `lm train ... --accum P*A` (README.md)\n"
"  --steps N              total optimizer steps S (2000)\n"
"  --lr X                 peak learning rate (1e-3)\n"
"  --min-lr X             cosine floor, reached at the last step (1e-4)\n"
"  --warmup N             linear warmup steps (100)\n"
"  --schedule S           cosine or constant (cosine)\n"
"  --wd X                 AdamW weight decay on matrices and embeddings (0.1)\n"
"  --beta1 X --beta2 X    AdamW betas (0.9, 0.99)\n"
"  --eps X                AdamW epsilon (1e-8)\n"
"  --clip X               clip the global gradient norm to X, 0 = off (1.0)\n"
"  --keep-zeros           weights of matrices that are exactly 0 stay 0 (after lm prune)\n"
"  --order O              random (B windows at seeded random offsets) or sequential\n"
"                         (consecutive B*T tokens, wrapping) (random)\n"
"  --val-frac F           validation fraction in [0, 1), 0 = no validation (0.1)\n"
"  --eval-every N         validation loss and checkpoint every N steps, 0 = never (250)\n"
"  --save-every N         checkpoint every N steps, 0 = never (0)\n"
"  --seed N               seed of the initial weights and the data order (1337)\n"
"  --log FILE.csv         one CSV row per step: step,loss,lr,tok_per_s,val_loss,elapsed_s\n"
"                         (step counts steps done, 1..S; loss and lr are that step's;\n"
"                         val_loss is empty except at evals); --resume keeps the rows\n"
"                         up to the checkpoint's step and appends\n"
"  --plot FILE.svg        draw the loss curves (train loss raw and smoothed, validation\n"
"                         loss, learning rate) as an SVG picture, redrawn at each eval\n"
"                         and checkpoint, at the end and on SIGINT/SIGTERM; with\n"
"                         --resume and --log it starts from the rows logged before\n"
"  --tokenizer TOK        a tokenizer written by `lm bpe` (default: raw bytes, vocab 256)\n"
"  --gpt2 DIR             GPT-2's tokenizer (DIR/encoder.json, DIR/vocab.bpe)\n"
"  --threads N            threads (default: all cores); results do not depend on it\n"
"  --quiet                print only the final summary\n"
"\n"
"Progress goes to stderr: one line updated in place when stderr is a terminal (bar,\n"
"percent, step/total, smoothed loss, lr, tokens/s, elapsed and time left), else a plain\n"
"line about 50 times a run (its loss is the mean since the line before).\n"
"\n"
"The checkpoint is written at each eval, every --save-every steps, at the end, and on\n"
"SIGINT/SIGTERM. Exit status: 0 done; 2 a bad command line; 1 a runtime error (a file\n"
"missing or malformed, or a NaN or infinite loss, which stops the run and leaves the\n"
"last good checkpoint as it was); 130/143 stopped by SIGINT/SIGTERM after saving.\n";

static volatile sig_atomic_t g_signal = 0;
static void on_signal(int sig) { g_signal = sig; }
static int g_team_signals = 0;   /* lm-mpi: rank 0's saver thread handles the signals */
/* The signal the training loop should stop for, between steps (0: none). */
static int train_signal(void) { return g_team_signals ? 0 : g_signal; }

/* Progress: a live line redrawn in place (at most 10 times a second) when stderr is a
   terminal; otherwise a plain line every `every` steps, which reads well in CI logs and
   files. --quiet prints neither (only the final summary). */
typedef struct progress {
    int tty, quiet;
    int total, first;        /* S, and the step this run started from                    */
    int every;               /* plain lines: one per this many steps                     */
    double t0;               /* when the run started                                     */
    double win_t;            /* training seconds since the last plain line               */
    double win_loss;         /* sum of the losses since the last plain line              */
    int win_n;               /* steps since the last plain line                          */
    double ema, ema_w;       /* smoothed loss (bias-corrected EMA)                       */
    double dt_ema;           /* smoothed seconds per step                                */
    double last_draw;
    double tokens;           /* tokens per step, B*T                                     */
    int cols, layout;        /* terminal width, and the live_text layout chosen for it   */
} progress;

/* Is stderr a terminal that understands "\r" and "erase to the end of the line"? */
static int stderr_is_tty(void) {
    const char *term = getenv("TERM");
    return isatty(2) && !(term && !strcmp(term, "dumb"));
}

/* The terminal's width in columns: the live line must never wrap, or each redraw would
   start a new line instead of replacing the old one. */
static int term_cols(void) {
    const char *env = getenv("COLUMNS");
#ifdef TIOCGWINSZ
    struct winsize ws;
    if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
#endif
    if (env && atoi(env) > 0) return atoi(env);
    return 80;
}

/* A round interval giving about 50 plain lines a run: 1, 2, 5, 10, 20, 50, ... */
static int nice_interval(int steps) {
    int e = 1;
    for (;;) {
        if (e * 50 >= steps) return e;
        if (e * 2 * 50 >= steps) return e * 2;
        if (e * 5 * 50 >= steps) return e * 5;
        if (e > INT_MAX / 100) return e * 10;
        e *= 10;
    }
}

/* "850 tok/s", "12.3k tok/s" */
static const char *fmt_rate(double r, char *buf) {
    if (r < 1000) sprintf(buf, "%.0f tok/s", r);
    else sprintf(buf, "%.1fk tok/s", r / 1000);
    return buf;
}

/* The live line in one of four layouts, from the widest (95 columns with a 4-digit step
   count) to the narrowest (66), so a bar fits in an 80-column terminal:
     0  [###-------------]  20.5%  410/2000 loss  1.2345 lr 9.5e-04  12.3k tok/s elapsed 0:30 left 1:56
     1  [##--------]  20.5%  410/2000 loss  1.2345 lr 9.5e-04  12.3k tok/s elapsed 0:30 left 1:56
     2  [#-------]  20%  410/2000 loss  1.235 lr 9.5e-04  12.3k tok/s 0:30, 1:56 left
     3   20%  410/2000 loss  1.235 lr 9.5e-04  12.3k tok/s 0:30, 1:56 left
   Fields have fixed widths, so the line keeps its length and nothing shifts sideways as
   it updates. The loss is the smoothed one; "left" extrapolates the pace of the run. */
static void live_text(char *out, size_t cap, int layout, int done, int total, double loss,
                      double lr, double rate, double elapsed, double left) {
    char bar[32], st[48], num[16], r[32], a[32], b[32];
    int width = layout == 0 ? 16 : layout == 1 ? 10 : layout == 2 ? 8 : 0, pad, k;
    int fill = (int)((double)done / total * width);
    /* "  410/2000": the step padded to the width of the total */
    sprintf(num, "%d", total);
    pad = (int)strlen(num);
    sprintf(num, "%d", done);
    pad -= (int)strlen(num);
    sprintf(st, "%.*s%s/%d", pad > 0 ? pad : 0, "          ", num, total);
    bar[0] = 0;
    if (width > 0) {
        bar[0] = '[';
        for (k = 0; k < width; k++) bar[1 + k] = k < fill ? '#' : '-';
        bar[1 + width] = ']';
        bar[2 + width] = ' ';
        bar[3 + width] = 0;
    }
    /* the rate in 12 columns: "   850 tok/s", " 12.3k tok/s", "  1.2M tok/s" */
    if (rate < 1e3) sprintf(r, "%6.0f tok/s", rate);
    else if (rate < 1e6) sprintf(r, "%5.1fk tok/s", rate / 1e3);
    else sprintf(r, "%5.1fM tok/s", rate / 1e6);
    fmt_time(elapsed, a);
    fmt_time(left, b);
    if (layout < 2)
        snprintf(out, cap, "%s%5.1f%% %s loss %7.4f lr %.1e %s elapsed %s left %s", bar,
                 100.0 * done / total, st, loss, lr, r, a, b);
    else /* whole percents, rounded down: 100% only when done */
        snprintf(out, cap, "%s%3d%% %s loss %6.3f lr %.1e %s %s, %s left", bar,
                 (int)(100.0 * done / total), st, loss, lr, r, a, b);
}

static void progress_step(progress *p, int done, float loss, float lr, double dt) {
    double now = now_s(), left;
    char a[32], b[32], r[32];
    p->win_t += dt;
    p->win_loss += loss;
    p->win_n++;
    p->ema = 0.9 * p->ema + 0.1 * loss;
    p->ema_w = 0.9 * p->ema_w + 0.1;
    p->dt_ema = p->dt_ema > 0 ? 0.9 * p->dt_ema + 0.1 * dt : dt;
    /* time left: the wall-clock pace of this run so far (evals and saves included) */
    left = (now - p->t0) / (double)(done - p->first) * (double)(p->total - done);
    if (p->quiet) return;
    if (p->tty) {
        /* the line never reaches the last column (some terminals wrap there); the first
           layout that fits, with room for the times to grow, is kept until it no longer
           fits or the width changes, so the line does not jump about */
        char line[256];
        int cols = term_cols() - 1, slack = 2;
        if (done != p->total && now - p->last_draw < 0.1) return;
        p->last_draw = now;
        if (cols > (int)sizeof line - 1) cols = (int)sizeof line - 1;
        if (cols != p->cols) { p->cols = cols; p->layout = 0; }
        for (;;) {
            live_text(line, sizeof line, p->layout, done, p->total, p->ema / p->ema_w, lr,
                      p->tokens / (p->dt_ema > 0 ? p->dt_ema : 1e-9), now - p->t0, left);
            if (p->layout == 3 || (int)strlen(line) + slack <= cols) break;
            p->layout++;
            slack = 0;  /* a smaller layout is taken once it fits at all */
        }
        if (cols > 0 && (int)strlen(line) > cols) line[cols] = 0;
        fprintf(stderr, "\r%s\033[K", line);
        g_live_line = 1;
        if (done == p->total) { fputc('\n', stderr); g_live_line = 0; }
        fflush(stderr);
    } else if (done % p->every == 0 || done == p->total) {
        /* the loss here is the mean over the steps since the last line */
        fprintf(stderr, "step %d/%d loss %.4f lr %.3e %s elapsed %s left %s\n", done,
                p->total, p->win_loss / p->win_n, lr,
                fmt_rate(p->tokens * p->win_n / (p->win_t > 0 ? p->win_t : 1e-9), r),
                fmt_time(now - p->t0, a), fmt_time(left, b));
        p->win_t = 0;
        p->win_loss = 0;
        p->win_n = 0;
    }
}

typedef struct train_run {
    lm_gpt *m;
    lm_data data;
    const char *out;         /* --model                                                  */
    int saved_at;            /* steps done at the last save, -1 if none                  */
    int done;                /* steps done at the last step's end                        */
    lm_data at;              /* the data order as it stood then: what a save records     */
    int row_due;             /* that step's CSV row and plot point are still to come:    */
    float row_loss, row_lr;  /*   its loss and lr                                        */
    double row_rate;         /*   and tokens per second                                  */
} train_run;

/* The end of a step: its loss, lr and speed are kept for its log row, which is written
   once the validation loss (if due) is known. */
static void train_mark(train_run *r, int done, float loss, float lr, double rate) {
    r->done = done;
    r->at = r->data;
    r->row_due = 1;
    r->row_loss = loss;
    r->row_lr = lr;
    r->row_rate = rate;
}

/* Weights that overflowed are not worth keeping: the next loss would be NaN. */
static void check_finite(const lm_params *p, int done) {
    size_t i;
    for (i = 0; i < p->total; i++) {
        float w = p->data[i];
        if (!(w == w && w <= FLT_MAX && w >= -FLT_MAX))
            die("the weights are not finite after step %d; stopped (the last good checkpoint "
                "is kept)", done);
    }
}

/* Save the weights and the resume state together (one commit, by the library). */
static void train_save(train_run *r, int done) {
    lm_train_state st;
    if (r->saved_at == done) return;
    check_finite(&r->m->params, done);
    if (team_rank() != 0) { r->saved_at = done; return; }    /* rank 0 writes the files */
    memset(&st, 0, sizeof st);
    st.step = done;
    st.data_pos = (uint64_t)r->at.pos;
    st.rng = r->at.rng.state;
    if (lm_gpt_save_with_state(r->m, r->out, &st) != LM_OK)
        die("cannot save '%s' and its training state: %s", r->out, lm_error());
    r->saved_at = done;
}

/* --log: one row (or the header), flushed at once; a failure (a full disk) stops the run
   with the last checkpoint as it was. */
static void log_write(FILE *f, const char *path, const char *row) {
    if (fputs(row, f) == EOF || fflush(f) != 0) die("cannot write '%s': %s", path, strerror(errno));
}

/* --plot: the run's log kept in memory, redrawn as an SVG picture (tools/lm_plot.h) at
   each eval and checkpoint, at the end, and when a signal stops the run. Drawing is text
   formatting only (well under a millisecond for thousands of rows). A failed drawing is a
   note, never the end of a run: the checkpoint matters more than the picture. */
typedef struct train_plotter {
    const char *path;        /* --plot, or NULL when not plotting (or given up)          */
    lmplot_series log;       /* step, loss, lr, val_loss of every step so far            */
    char title[512];
    int drawn_at;            /* steps done at the last drawing, -1 if none               */
    int failed;              /* a drawing failed: said once, then tried again quietly    */
} train_plotter;

static void train_plot(train_plotter *p, int done, int silent) {
    char err[512];
    if (!p->path || p->log.n == 0 || p->drawn_at == done) return;
    if (lmplot_loss_svg(&p->log, p->title, p->path, err, sizeof err) != 0) {
        if (!silent && !p->failed++) note("cannot draw the plot (training goes on): %s", err);
        return;
    }
    p->drawn_at = done;
}

/* The last step's CSV row (--log) and plot point (--plot), with its validation loss when
   evaluated. */
static void train_log_row(train_run *r, FILE *logf, const char *log_path,
                          train_plotter *plot, int evaluated, float val_loss, double t_begin) {
    if (!r->row_due) return;
    r->row_due = 0;
    if (!evaluated) val_loss = NAN;
    if (logf) {
        char row[160], val[32] = "";
        if (evaluated) snprintf(val, sizeof val, "%.9g", val_loss);
        snprintf(row, sizeof row, "%d,%.9g,%.9g,%.1f,%s,%.3f\n", r->done, r->row_loss,
                 r->row_lr, r->row_rate, val, now_s() - t_begin);
        log_write(logf, log_path, row);
    }
    if (plot->path && lmplot_push(&plot->log, r->done, r->row_loss, r->row_lr, val_loss) != 0) {
        note("out of memory keeping the log for --plot: no more plotting");
        plot->path = NULL;
    }
}

/* Stopped by SIGINT or SIGTERM: keep the work done - the last step's row, the weights
   and state of the last whole step, the plot - and leave with 128 + the signal number.
   Called by the training loop between steps (lm), or by rank 0's saver thread while the
   loop waits at its lock (lm-mpi, tools/lm_mpi.h); then the process ends with _exit, as
   the main thread is busy elsewhere. */
static struct train_ctx {
    train_run *run;
    train_plotter *plot;
    FILE *logf;
    const char *log_path;
    int S;
    double t_begin;
} g_train;
static void train_stop(int sig, int from_thread) {
    train_run *r = g_train.run;
    clear_live_line();
    train_log_row(r, g_train.logf, g_train.log_path, g_train.plot, 0, NAN, g_train.t_begin);
    train_save(r, r->done);
    train_plot(g_train.plot, r->done, 0);
    if (g_train.logf && fclose(g_train.logf) != 0)
        die("cannot write '%s': %s", g_train.log_path, strerror(errno));
    note("stopped by %s after step %d/%d; saved '%s' (continue with --resume %s)",
         sig == SIGINT ? "SIGINT" : "SIGTERM", r->done, g_train.S, r->out, r->out);
    if (from_thread) { fflush(NULL); _exit(128 + sig); }
    exit(128 + sig);
}
static void train_stop_thread(int sig) { train_stop(sig, 1); }

/* A count for people: "7664", "12.3k", "0.84M". */
static const char *fmt_count(double n, char *buf) {
    if (n < 1e4) sprintf(buf, "%.0f", n);
    else if (n < 1e6) sprintf(buf, "%.1fk", n / 1e3);
    else sprintf(buf, "%.2fM", n / 1e6);
    return buf;
}

/* ---------------------------------------------------------------------------------------
   The training loop of lm s2s train (lm train has a loop of its own, for gradient
   accumulation and lm-mpi's processes: cmd_train). A model gives a step, an eval and a
   save; the loop does the rest: progress, evals and saves when due, the CSV log, the
   plot, a loss that is not finite, SIGINT and SIGTERM, the last note.
   --------------------------------------------------------------------------------------- */
typedef struct train_loop {
    void *ctx;
    /* training step s: its loss (not finite on failure, lm_error() then says why, or
       "not finite" when it diverged); *tokens: the tokens it read */
    float (*step)(void *ctx, const lm_train_opts *o, int s, double *tokens);
    double (*eval)(void *ctx);         /* the validation loss; NULL: no validation      */
    void (*save)(void *ctx, int done); /* checkpoint and resume state                   */
    int ppl;                           /* evals also print exp(loss)                    */
    const lm_train_opts *o;
    int start, S, eval_every, save_every;
    progress *pr;                      /* quiet and tokens set by the caller            */
    train_plotter *plot;
    FILE *logf;
    const char *log_path, *out, *init;
} train_loop;

static void train_loop_run(train_loop *L) {
    struct sigaction sa;
    progress *pr = L->pr;
    double t_begin, val_loss = NAN;
    float loss = NAN;
    int s, S = L->S;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pr->tty = stderr_is_tty();
    pr->total = S;
    pr->first = L->start;
    pr->every = nice_interval(S);
    pr->t0 = t_begin = now_s();
    for (s = L->start; s < S; s++) {
        int done = s + 1, due_eval, due_save, evaluated;
        float lr = lm_lr_at(L->o, s);
        double t, tokens = 0;
        if (g_signal) break;
        lm_clear_error();
        t = now_s();
        loss = L->step(L->ctx, L->o, s, &tokens);
        t = now_s() - t;
        if (!(loss == loss && loss <= FLT_MAX && loss >= -FLT_MAX)) {
            clear_live_line();
            if (strcmp(lm_error(), "no error") && !strstr(lm_error(), "not finite"))
                die("step %d/%d failed: %s", done, S, lm_error());
            train_plot(L->plot, s, 1); /* the curve up to the divergence, silently */
            die("the loss is %s at step %d/%d; stopped (the last good checkpoint is kept)",
                loss == loss ? "infinite" : "NaN", done, S);
        }
        progress_step(pr, done, loss, lr, t);
        due_eval = L->eval_every > 0 && (done % L->eval_every == 0 || done == S);
        due_save = due_eval || (L->save_every > 0 && done % L->save_every == 0) || done == S;
        evaluated = due_eval && L->eval && !g_signal; /* when stopping, skip to the save */
        if (evaluated) {
            val_loss = L->eval(L->ctx);
            if (!pr->quiet) {
                clear_live_line();
                if (L->ppl)
                    fprintf(stderr, "step %d/%d val loss %.4f ppl %.2f\n", done, S, val_loss,
                            exp(val_loss));
                else
                    fprintf(stderr, "step %d/%d val loss %.4f\n", done, S, val_loss);
            }
        }
        if (L->logf) {
            char row[160], val[32] = "";
            if (evaluated) snprintf(val, sizeof val, "%.9g", val_loss);
            snprintf(row, sizeof row, "%d,%.9g,%.9g,%.1f,%s,%.3f\n", done, loss, lr,
                     tokens / (t > 0 ? t : 1e-9), val, now_s() - t_begin);
            log_write(L->logf, L->log_path, row);
        }
        if (L->plot->path && lmplot_push(&L->plot->log, done, loss, lr, evaluated ? val_loss : NAN) != 0) {
            note("out of memory keeping the log for --plot: no more plotting");
            L->plot->path = NULL;
        }
        if (due_eval || due_save) train_plot(L->plot, done, 0);
        if (due_save) L->save(L->ctx, done);
    }
    if (g_signal) {
        /* stopped by a signal: keep the work done so far and leave */
        int sig = g_signal;
        clear_live_line();
        L->save(L->ctx, s);
        train_plot(L->plot, s, 0);
        if (L->logf && fclose(L->logf) != 0) die("cannot write '%s': %s", L->log_path, strerror(errno));
        note("stopped by %s after step %d/%d; saved '%s' (continue with --resume %s)",
             sig == SIGINT ? "SIGINT" : "SIGTERM", s, S, L->out, L->out);
        exit(128 + sig);
    }
    L->save(L->ctx, S);
    train_plot(L->plot, S, 0);
    lmplot_free(&L->plot->log);
    if (L->logf && fclose(L->logf) != 0) die("cannot write '%s': %s", L->log_path, strerror(errno));
    clear_live_line();
    {
        char tb[32];
        if (L->start == S)
            note("'%s' has done all %d steps already; saved '%s'", L->init, S, L->out);
        else if (val_loss == val_loss)
            note("%d steps in %s, loss %.4f, val loss %.4f; saved '%s'", S - L->start,
                 fmt_time(now_s() - t_begin, tb), pr->ema / pr->ema_w,
                 val_loss, L->out);
        else
            note("%d steps in %s, loss %.4f; saved '%s'", S - L->start, fmt_time(now_s() - t_begin, tb),
                 pr->ema / pr->ema_w, L->out);
    }
}

/* The files a run writes: --model must be writable, and so must --plot (when given), whose
   plotter starts empty. */
static void train_outputs(cli *c, train_plotter *plot) {
    check_writable(getstr(c, "--model"));
    memset(plot, 0, sizeof *plot);
    plot->path = getstr(c, "--plot");
    plot->drawn_at = -1;
    lmplot_init(&plot->log);
    if (plot->path) check_writable(plot->path);
}
/* A resumed run with a log: its picture starts with the rows logged before (log_open has
   flushed the rows it kept, so the file is complete). */
static void plot_resumed(train_plotter *plot, cli *c, int resume, FILE *logf) {
    if (resume && logf && lmplot_read_csv(getstr(c, "--log"), &plot->log, NULL, 0) != 0)
        lmplot_init(&plot->log);
}

/* The options every training command takes (lm train, lm s2s train) after its shape and
   --batch: the run (--model, --init, --resume), the optimizer and schedule, the data
   order and split, evals and saves, the seed, threads, the log, the plot, the tokenizer. */
static void opt_train_run(cli *c) {
    opt_int(c, "--steps", 2000, 1, 1000000000);
    opt_num(c, "--lr", 1e-3, 0, HUGE_VAL, 1, 0);
    opt_num(c, "--min-lr", 1e-4, 0, HUGE_VAL, 0, 0);
    opt_int(c, "--warmup", 100, 0, 1000000000);
    opt_str(c, "--schedule", "cosine", "cosine|constant");
    opt_num(c, "--wd", 0.1, 0, HUGE_VAL, 0, 0);
    opt_num(c, "--beta1", 0.9, 0, 1, 0, 1);
    opt_num(c, "--beta2", 0.99, 0, 1, 0, 1);
    opt_num(c, "--eps", 1e-8, 0, HUGE_VAL, 1, 0);
    opt_num(c, "--clip", 1.0, 0, HUGE_VAL, 0, 0);
    opt_str(c, "--order", "random", "random|sequential");
    opt_num(c, "--val-frac", 0.1, 0, 1, 0, 1);
    opt_int(c, "--eval-every", 250, 0, 1000000000);
    opt_int(c, "--save-every", 0, 0, 1000000000);
    opt_u64(c, "--seed", 1337);
    opt_threads(c);
    opt_str(c, "--log", NULL, NULL);
    opt_str(c, "--plot", NULL, NULL);
    opt_tok(c);
    opt_flag(c, "--quiet");
}

/* The command line of a run as a whole: --init or --resume, one tokenizer, and the files
   the run writes differ from each other and from its inputs (but --model may be the
   --init checkpoint: fine-tuning it in place). */
static void check_train_run(cli *c) {
    static const char *const outs[3] = { "--model", "--log", "--plot" };
    static const char *const all[6] = { "--model", "--log", "--plot", "--data",
                                        "--tokenizer", "--init" };
    int i, j;
    if (seen(c, "--init") && seen(c, "--resume"))
        die_usage("--init and --resume cannot be used together");
    tok_check_opts(c);
    for (i = 0; i < 3; i++)
        for (j = i + 1; j < 6; j++)
            if (!(i == 0 && j == 5) && same_file(getstr(c, outs[i]), getstr(c, all[j])))
                die_usage("%s and %s name the same file '%s'", outs[i], all[j], getstr(c, outs[i]));
}

/* The optimizer and schedule options as lm_train_opts. */
static lm_train_opts train_opts(cli *c) {
    lm_train_opts o = lm_train_defaults();
    if (getd(c, "--min-lr") > getd(c, "--lr"))
        die_usage("--min-lr %g is above --lr %g", getd(c, "--min-lr"), getd(c, "--lr"));
    o.lr = (float)getd(c, "--lr");
    o.min_lr = (float)getd(c, "--min-lr");
    o.warmup = (int)geti(c, "--warmup");
    o.steps = (int)geti(c, "--steps");
    o.schedule = !strcmp(getstr(c, "--schedule"), "cosine") ? LM_SCHED_COSINE : LM_SCHED_CONSTANT;
    o.wd = (float)getd(c, "--wd");
    o.beta1 = (float)getd(c, "--beta1");
    o.beta2 = (float)getd(c, "--beta2");
    o.eps = (float)getd(c, "--eps");
    o.clip = (float)getd(c, "--clip");
    return o;
}

/* The CSV log (NULL when lp is): a header, then a row per step. A resumed run keeps the
   rows up to the checkpoint's step (a killed run may have logged past it) and carries on:
   the file is cut there in place, so a kill at any moment keeps every row before the cut. */
static FILE *log_open(const char *lp, int resume, int start) {
    unsigned char *old = NULL;
    size_t old_len = 0, keep = 0;
    FILE *logf;
    if (!lp) return NULL;
    logf = resume ? fopen(lp, "r+b") : NULL;
    if (logf) {
        old = read_stream(logf, lp, &old_len);
        /* the header line, then rows while their step is <= start */
        while (keep < old_len) {
            size_t e = keep;
            while (e < old_len && old[e] != '\n') e++;
            if (e == old_len) break; /* a partial last line */
            if (keep > 0 && atol((const char *)old + keep) > start) break;
            keep = e + 1;
        }
        free(old);
        if (ftruncate(fileno(logf), (off_t)keep) != 0 ||
            fseek(logf, (long)keep, SEEK_SET) != 0)
            die("cannot write '%s': %s", lp, strerror(errno));
    } else if (resume && errno != ENOENT) {      /* there, but not to be opened: keep it */
        die("cannot write '%s': %s", lp, strerror(errno));
    } else if (!(logf = fopen(lp, "wb"))) {
        die("cannot write '%s': %s", lp, strerror(errno));
    }
    if (keep == 0) log_write(logf, lp, "step,loss,lr,tok_per_s,val_loss,elapsed_s\n");
    return logf;
}

static void cmd_train(int argc, char **argv) {
    cli c;
    cli_tok tok;
    train_run run;
    progress pr;
    lm_train_opts o;
    lm_train_state st;
    struct sigaction sa;
    unsigned char *bytes;
    int *tokens = NULL, B, T, S, s, start = 0, eval_every, save_every, resume, A, P, me;
    size_t nbytes, n = 0, n_train, n_val;
    const char *data_path, *init;
    FILE *logf = NULL;
    train_plotter plot;
    accum acc;
    double t_begin, val_loss = NAN;
    float loss = NAN;

    memset(&c, 0, sizeof c);
    c.usage = usage_train;
    opt_str(&c, "--data", NULL, NULL);
    opt_str(&c, "--model", "model.safetensors", NULL);
    opt_str(&c, "--init", NULL, NULL);
    opt_str(&c, "--resume", NULL, NULL);
    opt_shape(&c);
    opt_int(&c, "--batch", 12, 1, 1048576);
    opt_int(&c, "--accum", 1, 1, 1048576);
    opt_train_run(&c);
    opt_flag(&c, "--keep-zeros");
    cli_parse(&c, argc, argv);

    /* the command line as a whole */
    if (!seen(&c, "--data")) die_usage("--data FILE is required (see lm train --help)");
    check_train_run(&c);
    resume = seen(&c, "--resume");
    init = resume ? getstr(&c, "--resume") : getstr(&c, "--init");
    B = (int)geti(&c, "--batch");
    S = (int)geti(&c, "--steps");
    eval_every = (int)geti(&c, "--eval-every");
    save_every = (int)geti(&c, "--save-every");
    A = (int)geti(&c, "--accum");
    P = team_size();
    me = team_rank();
    if ((double)P * A > 1048576)
        die_usage("%d processes x --accum %d is more than 1048576 micro-batches a step", P, A);
    if (!init) {
        lm_gpt_config cfg = shape_config(&c, 256);
        check_shape(&c, 256);
        check_step(B, cfg.n_ctx, cfg.n_embd, cfg.n_head, 256);
        check_fits(lm_gpt_memory(&cfg, B, cfg.n_ctx) + accum_bytes(&cfg, A), "this model and batch");
    }
    o = train_opts(&c);
    o.keep_zeros = (int)geti(&c, "--keep-zeros");
    apply_threads(&c);

    /* the inputs: tokenizer, data, model (lm-mpi: rank 0 reads them and the others get
       them from it, so only rank 0 needs the files) */
    data_path = getstr(&c, "--data");
    memset(&tok, 0, sizeof tok);
    tok.what = "the tokenizer of rank 0";
    if (me == 0) {
        tok_open(&c, &tok);
        bytes = read_file(data_path, &nbytes);
        tokens = tok_encode(&tok, bytes, nbytes, &n);
        free(bytes);
    }
    tokens = team_share_tokens(tokens, &n, &tok.vocab);
    if (me == 0) check_writable(getstr(&c, "--model"));
    memset(&plot, 0, sizeof plot);
    plot.path = me == 0 ? getstr(&c, "--plot") : NULL;
    plot.drawn_at = -1;
    lmplot_init(&plot.log);
    if (plot.path) check_writable(plot.path);
    memset(&run, 0, sizeof run);
    run.out = getstr(&c, "--model");
    run.saved_at = -1;
    if (init) {
        static const char *const shape_flags[2] = { "--layers", "--embd" };
        int k;
        lm_gpt *m0 = NULL;
        if (me == 0) {   /* (the other ranks wait for rank 0's model, or for its error) */
            m0 = load_model(init, heads_for(&c, init));
            if (m0->cfg.quant != LM_QUANT_NONE)
                die("'%s' is quantized (Q8_0): training needs float32 weights (train the "
                    "float32 model, then lm quantize it)", init);
        }
        run.m = team_share_model(m0);
        for (k = 0; k < 2; k++) { /* (--heads: see heads_for) */
            int have = k == 0 ? run.m->cfg.n_layer : run.m->cfg.n_embd;
            if (seen(&c, shape_flags[k]) && geti(&c, shape_flags[k]) != have)
                note("%s %lld ignored: '%s' has %d", shape_flags[k], geti(&c, shape_flags[k]), init, have);
        }
        T = seen(&c, "--ctx") ? (int)geti(&c, "--ctx") : run.m->cfg.n_ctx;
        if (T > run.m->cfg.n_ctx)
            die_usage("--ctx %d is longer than the context of '%s' (%d)", T, init, run.m->cfg.n_ctx);
        check_step(B, T, run.m->cfg.n_embd, run.m->cfg.n_head, run.m->cfg.vocab);
        check_fits(lm_gpt_memory(&run.m->cfg, B, T) + accum_bytes(&run.m->cfg, A), "this model and batch");
        check_vocab(run.m, &tok, init);
    } else {
        lm_gpt_config cfg = shape_config(&c, tok.vocab);
        T = cfg.n_ctx;
        check_shape(&c, cfg.vocab);
        check_step(B, T, cfg.n_embd, cfg.n_head, cfg.vocab);
        check_fits(lm_gpt_memory(&cfg, B, T) + accum_bytes(&cfg, A), "this model and batch");
        if (me == 0 && !(run.m = lm_gpt_new(&cfg, get(&c, "--seed")->u)))
            die("cannot create the model: %s", lm_error());
        run.m = team_share_model(run.m);
    }

    /* the split: the first (1 - f) of the tokens train, the rest validate */
    n_train = getd(&c, "--val-frac") > 0 ? (size_t)((1.0 - getd(&c, "--val-frac")) * (double)n) : n;
    if (n_train > n) n_train = n;
    n_val = n - n_train;
    /* sequential order reads B*T+1 tokens a step; random windows need T+1 (lm.h, TRAINING) */
    if (!strcmp(getstr(&c, "--order"), "sequential") && n_train < (size_t)B * (size_t)T + 1)
        die("'%s' gives %lu training tokens, fewer than --batch x --ctx + 1 = %lu that "
            "--order sequential reads per step", data_path,
            (unsigned long)n_train, (unsigned long)((size_t)B * (size_t)T + 1));
    if (n_train < (size_t)T + 1)
        die("'%s' gives %lu training tokens, fewer than --ctx + 1 = %d", data_path,
            (unsigned long)n_train, T + 1);
    if (n_val > 0 && n_val < (size_t)T + 1) {
        if (eval_every > 0 && !geti(&c, "--quiet"))
            note("the validation split has %lu tokens, fewer than --ctx + 1 = %d: no validation",
                 (unsigned long)n_val, T + 1);
        n_val = 0;
    }
    run.data = lm_data_init(tokens, n_train,
                            !strcmp(getstr(&c, "--order"), "sequential") ? LM_ORDER_SEQUENTIAL : LM_ORDER_RANDOM,
                            get(&c, "--seed")->u);
    if (resume) {
        memset(&st, 0, sizeof st);
        if (me == 0 && lm_gpt_load_state(run.m, init, &st) != LM_OK)
            die("cannot load the training state of '%s': %s", init, lm_error());
        team_share_state(run.m, &st);
        if (st.step < 0 || st.step > S)
            die("'%s' has done %ld steps, more than --steps %d", init, st.step, S);
        if (st.data_pos > (uint64_t)n_train)
            die("the state of '%s' does not fit '%s' (data position %lu of %lu tokens)", init,
                data_path, (unsigned long)st.data_pos, (unsigned long)n_train);
        start = (int)st.step;
        run.data.pos = (size_t)st.data_pos;
        run.data.rng.state = st.rng;
    }
    train_mark(&run, start, NAN, NAN, 0);
    run.row_due = 0;

    /* the CSV log (lm-mpi: rank 0's) */
    logf = me == 0 ? log_open(getstr(&c, "--log"), resume, start) : NULL;

    if (plot.path) {
        /* the title: the model's size and the data's file name, e.g.
           "GPT 4 layers x 128 wide (0.83M params), ctx 64, 2000 steps - input.txt" */
        const char *base = strrchr(data_path, '/');
        char np[32];
        snprintf(plot.title, sizeof plot.title,
                 "GPT %d layer%s \xC3\x97 %d wide (%s params), ctx %d, %d steps \xE2\x80\x94 %s",
                 run.m->cfg.n_layer, run.m->cfg.n_layer == 1 ? "" : "s", run.m->cfg.n_embd,
                 fmt_count((double)lm_gpt_num_params(run.m), np), T, S,
                 base ? base + 1 : data_path);
        plot_resumed(&plot, &c, resume, logf);
    }
    accum_init(&acc, run.m, A, B, T);
    memset(&pr, 0, sizeof pr);
    pr.tty = stderr_is_tty();
    pr.quiet = (int)geti(&c, "--quiet") || me != 0;
    pr.total = S;
    pr.first = start;
    pr.every = nice_interval(S);
    pr.tokens = (double)B * T * A * P;
    pr.t0 = t_begin = now_s();
    g_train.run = &run;
    g_train.plot = &plot;
    g_train.logf = logf;
    g_train.log_path = getstr(&c, "--log");
    g_train.S = S;
    g_train.t_begin = t_begin;
    g_team_signals = team_signals(train_stop_thread);
    if (!g_team_signals) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    if (!pr.quiet) {
        char how[96] = "";
        if (P > 1 || A > 1)
            snprintf(how, sizeof how, "; steps of %d micro-batches of %d (%d process%s x %d)",
                     P * A, B, P, P > 1 ? "es" : "", A);
        note("%d layers, %d heads, %d wide, context %d, vocab %d: %lu parameters; %lu train "
             "and %lu validation tokens; %d threads (%s)%s%s",
             run.m->cfg.n_layer, run.m->cfg.n_head, run.m->cfg.n_embd, run.m->cfg.n_ctx,
             run.m->cfg.vocab, (unsigned long)lm_gpt_num_params(run.m), (unsigned long)n_train,
             (unsigned long)n_val, lm_get_threads(), lm_simd_name(), how,
             resume ? "; resuming" : "");
    }

    /* Each step: draw its micro-batches, this rank's gradients and the sum of all (lm-mpi:
       the talking), then - holding the lock that keeps lm-mpi's saver thread out - the
       update and the bookkeeping: progress, eval when due (without the lock: it does not
       change the weights, and a signal's save must not wait for it), the log row, the
       plot, the checkpoint. */
    for (s = start; s < S; s++) {
        int done = s + 1, due_eval, due_save, evaluated;
        float lr = lm_lr_at(&o, s);
        double t;
        if (train_signal()) break;
        if (accum_draw(&acc, &run.data) != LM_OK) die("%s", lm_error());
        t = now_s();
        loss = accum_grads(&acc);
        if (loss != loss) {
            team_lock();
            clear_live_line();
            if (acc.failed == ACCUM_ERROR) {     /* the rank it befell says what */
                if (acc.failed_rank == me) { g_speak = 1; note("step %d/%d failed: %s", done, S, acc.why); }
                team_barrier();
                exit(EXIT_RUNTIME);
            }
            train_plot(&plot, s, 1); /* the curve up to the divergence, silently */
            die("the loss is %s at step %d/%d; stopped (the last good checkpoint is kept)",
                acc.failed == ACCUM_INF ? "infinite" : "NaN", done, S);
        }
        team_lock();
        if (lm_params_update_mean(&run.m->params, P * A, &o, s) != LM_OK)
            die("step %d/%d failed: %s", done, S, lm_error());
        t = now_s() - t;
        train_mark(&run, done, loss, lr, pr.tokens / (t > 0 ? t : 1e-9));
        progress_step(&pr, done, loss, lr, t);
        due_eval = eval_every > 0 && (done % eval_every == 0 || done == S);
        due_save = due_eval || (save_every > 0 && done % save_every == 0) || done == S;
        evaluated = due_eval && n_val > 0 && !train_signal(); /* stopping: on to the save */
        team_unlock();
        if (evaluated) val_loss = team_eval(run.m, tokens + n_train, n_val, T);
        team_lock();
        if (evaluated && !pr.quiet) {
            clear_live_line();
            fprintf(stderr, "step %d/%d val loss %.4f ppl %.2f\n", done, S, val_loss,
                    exp(val_loss));
        }
        train_log_row(&run, logf, getstr(&c, "--log"), &plot, evaluated, (float)val_loss, t_begin);
        if (due_eval || due_save) train_plot(&plot, done, 0);
        if (due_save) train_save(&run, done);
        team_unlock();
    }
    if (train_signal()) train_stop(train_signal(), 0);   /* keep the work done, and leave */
    team_lock();                                          /* the end: no more saver */
    train_save(&run, S);
    train_plot(&plot, S, 0);
    lmplot_free(&plot.log);
    if (logf && fclose(logf) != 0) die("cannot write '%s': %s", getstr(&c, "--log"), strerror(errno));
    clear_live_line();
    {
        char tb[32];
        if (start == S)
            note("'%s' has done all %d steps already; saved '%s'", init, S, run.out);
        else if (val_loss == val_loss)
            note("%d steps in %s, loss %.4f, val loss %.4f; saved '%s'", S - start,
                 fmt_time(now_s() - t_begin, tb), pr.ema / pr.ema_w,
                 val_loss, run.out);
        else
            note("%d steps in %s, loss %.4f; saved '%s'", S - start, fmt_time(now_s() - t_begin, tb),
                 pr.ema / pr.ema_w, run.out);
    }
    accum_free(&acc);
    free(tokens);
    lm_gpt_free(run.m);
    tok_close(&tok);
}

/* ---------------------------------------------------------------------------------------
   lm generate.
   stdout gets exactly the prompt's bytes and then each new token's bytes as soon as it is
   drawn; notes go to stderr. The KV-cache generator of the library slides the window once
   the text outgrows the model's context.
   --------------------------------------------------------------------------------------- */
static const char usage_generate[] =
"usage: lm generate --model CKPT [options]\n"
"\n"
"Continue a prompt with a trained model. stdout receives exactly the prompt's bytes, then\n"
"the generated bytes as they come; everything else goes to stderr.\n"
"\n"
"  --model CKPT           checkpoint (required)\n"
"  --prompt TEXT          text to continue (default empty). An empty prompt starts from a\n"
"                         newline token (bytes, --tokenizer) or <|endoftext|> (50256,\n"
"                         --gpt2); that start token is not printed\n"
"  --tokens N             tokens to generate (256)\n"
"  --temperature X        sampling temperature; 0 = greedy argmax (0.8)\n"
"  --top-k N              sample among the k most likely tokens, 0 = all (0)\n"
"  --top-p X              nucleus sampling: smallest set with mass >= p, in (0, 1] (1.0)\n"
"  --seed N               sampling seed (1337): the same seed gives the same text\n"
"  --heads N              heads, for a checkpoint without n_head metadata\n"
"                         (default: the metadata, else n_embd/64)\n"
"  --tokenizer TOK        a tokenizer written by `lm bpe` (default: raw bytes)\n"
"  --gpt2 DIR             GPT-2's tokenizer (DIR/encoder.json, DIR/vocab.bpe)\n"
"  --threads N            threads (default: all cores)\n"
"\n"
"When the text outgrows the model's context, the model sees the last n_ctx tokens.\n";

typedef struct gen_out { cli_tok *tok; int failed; } gen_out;

static void gen_emit(void *user, int token) {
    gen_out *g = (gen_out *)user;
    if (tok_write(g->tok, &token, 1, stdout) != 0) g->failed = 1;
    fflush(stdout);
}

static void opt_heads_only(cli *c) { opt_int(c, "--heads", 0, 1, 65536); }

static void cmd_generate(int argc, char **argv) {
    cli c;
    cli_tok tok;
    lm_gpt *m;
    lm_sampler smp;
    gen_out go;
    const char *prompt, *path;
    int *ids, ntok;
    size_t n, plen;
    uint64_t seed;

    memset(&c, 0, sizeof c);
    c.usage = usage_generate;
    opt_str(&c, "--model", NULL, NULL);
    opt_text(&c, "--prompt", "");
    opt_int(&c, "--tokens", 256, 0, 1000000000);
    opt_num(&c, "--temperature", 0.8, 0, HUGE_VAL, 0, 0);
    opt_int(&c, "--top-k", 0, 0, INT_MAX);
    opt_num(&c, "--top-p", 1.0, 0, 1, 1, 0);
    opt_u64(&c, "--seed", 1337);
    opt_heads_only(&c);
    opt_tok(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--model")) die_usage("--model CKPT is required (see lm generate --help)");
    tok_check_opts(&c);
    apply_threads(&c);

    path = getstr(&c, "--model");
    m = load_model(path, heads_for(&c, path));
    tok_open(&c, &tok);
    check_vocab(m, &tok, path);
    prompt = getstr(&c, "--prompt");
    plen = strlen(prompt);
    ids = tok_encode(&tok, (const unsigned char *)prompt, plen, &n);
    if (n == 0) { ids[0] = tok.start; n = 1; }
    if (n > INT_MAX) die("the prompt is too long");
    ntok = (int)geti(&c, "--tokens");

    seed = get(&c, "--seed")->u;   /* fixed by default, so a run can be repeated */
    smp = lm_sampler_defaults(seed);
    smp.temperature = (float)getd(&c, "--temperature");
    smp.top_k = (int)geti(&c, "--top-k");
    smp.top_p = (float)getd(&c, "--top-p");

    fwrite(prompt, 1, plen, stdout);
    fflush(stdout);
    go.tok = &tok;
    go.failed = 0;
    if (ntok > 0 && lm_gpt_generate(m, ids, (int)n, ntok, &smp, gen_emit, &go, NULL) != LM_OK)
        die("generation failed: %s", lm_error());
    if (go.failed) die("the model produced a token outside the tokenizer's vocabulary");
    if (fflush(stdout) != 0 || ferror(stdout)) die("cannot write the output: %s", strerror(errno));
    free(ids);
    tok_close(&tok);
    lm_gpt_free(m);
}

/* ---------------------------------------------------------------------------------------
   lm eval: lm_gpt_eval's windows over all the tokens of a file; the mean cross-entropy and
   its exponential, the perplexity.
   --------------------------------------------------------------------------------------- */
static const char usage_eval[] =
"usage: lm eval --model CKPT --data FILE [options]\n"
"\n"
"Mean cross-entropy of the model over ALL tokens of FILE, in non-overlapping windows\n"
"i = 0 .. floor((n-1)/T)-1: inputs [iT, iT+T), targets [iT+1, iT+T+1).\n"
"The last line on stdout is: loss <float> ppl <float>   (ppl = exp(loss)).\n"
"\n"
"  --model CKPT           checkpoint (required)\n"
"  --data FILE            text to evaluate (required)\n"
"  --ctx T                window length (default: the model's n_ctx; at most that)\n"
"  --heads N              heads, for a checkpoint without n_head metadata\n"
"  --tokenizer TOK        a tokenizer written by `lm bpe` (default: raw bytes)\n"
"  --gpt2 DIR             GPT-2's tokenizer (DIR/encoder.json, DIR/vocab.bpe)\n"
"  --threads N            threads (default: all cores)\n";

static void cmd_eval(int argc, char **argv) {
    cli c;
    cli_tok tok;
    lm_gpt *m;
    unsigned char *bytes;
    int *tokens, T;
    size_t nbytes, n;
    float loss;
    const char *path, *data;

    memset(&c, 0, sizeof c);
    c.usage = usage_eval;
    opt_str(&c, "--model", NULL, NULL);
    opt_str(&c, "--data", NULL, NULL);
    opt_int(&c, "--ctx", 0, 1, 1048576);
    opt_heads_only(&c);
    opt_tok(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--model")) die_usage("--model CKPT is required (see lm eval --help)");
    if (!seen(&c, "--data")) die_usage("--data FILE is required (see lm eval --help)");
    tok_check_opts(&c);
    apply_threads(&c);

    path = getstr(&c, "--model");
    data = getstr(&c, "--data");
    /* lm-mpi: rank 0 reads, the ranks share the windows (team_eval) */
    m = team_share_model(team_rank() == 0 ? load_model(path, heads_for(&c, path)) : NULL);
    T = seen(&c, "--ctx") ? (int)geti(&c, "--ctx") : m->cfg.n_ctx;
    if (T > m->cfg.n_ctx) die_usage("--ctx %d is longer than the context of '%s' (%d)", T, path, m->cfg.n_ctx);
    memset(&tok, 0, sizeof tok);
    tokens = NULL;
    n = 0;
    if (team_rank() == 0) {
        tok_open(&c, &tok);
        check_vocab(m, &tok, path);
        bytes = read_file(data, &nbytes);
        tokens = tok_encode(&tok, bytes, nbytes, &n);
        free(bytes);
    }
    tokens = team_share_tokens(tokens, &n, &tok.vocab);
    if (n < (size_t)T + 1)
        die("'%s' has %lu tokens, fewer than one window of --ctx + 1 = %d", data,
            (unsigned long)n, T + 1);
    lm_clear_error();
    loss = team_eval(m, tokens, n, T);
    if (loss != loss && team_rank() == 0)   /* (the other ranks' result is NaN) */
        die("evaluation failed: %s", strcmp(lm_error(), "no error") ? lm_error() : "on another process");
    printf("loss %.6f ppl %.6f\n", loss, exp((double)loss));
    if (fflush(stdout) != 0) die("cannot write the output: %s", strerror(errno));
    free(tokens);
    tok_close(&tok);
    lm_gpt_free(m);
}

/* ---------------------------------------------------------------------------------------
   lm info: what a checkpoint holds.
   --------------------------------------------------------------------------------------- */
static const char usage_info[] =
"usage: lm info --model CKPT [--heads N] [--threads N]\n"
"\n"
"Print a checkpoint's configuration, parameter count, and each tensor's name and shape:\n"
"a GPT's, or an encoder-decoder's (lm s2s; the first line after the path then says\n"
"\"kind encoder-decoder\"). For a GPT, quant says how the weights are stored (none, q8_0:\n"
"the block matrices in Q8_0, q8_0+wte: the token embedding too), and each Q8_0 tensor's\n"
"line ends in q8_0; sparsity is the share of zeros in the block matrices (after lm prune).\n";

/* lm info's tensor list: the count, then each name and shape; stdout flushed. */
static void info_tensors(const lm_params *p) {
    int k, d;
    printf("tensors %d\n", p->n);
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        printf("%s [", p->names[k]);
        for (d = 0; d < t->ndim; d++) printf(d ? ", %d" : "%d", t->shape[d]);
        printf(t->q8 ? "] q8_0\n" : "]\n");
    }
    if (fflush(stdout) != 0) die("cannot write the output: %s", strerror(errno));
}

/* lm info of an encoder-decoder: its config under nn.Transformer's names. */
static void info_s2s(const char *path) {
    lm_seq2seq *m = lm_seq2seq_load(path);
    const lm_seq2seq_config *c;
    if (!m) die("cannot load '%s': %s", path, lm_error());
    c = &m->cfg;
    printf("model %s\nkind encoder-decoder\n", path);
    printf("d_model %d\nnhead %d\nnum_encoder_layers %d\nnum_decoder_layers %d\n"
           "dim_feedforward %d\nnorm_first %s\nactivation %s\nn_ctx %d\nsrc_vocab %d\n"
           "tgt_vocab %d\nbos_id %d\neos_id %d\npad_id %d\n", c->d_model, c->nhead,
           c->num_encoder_layers, c->num_decoder_layers, c->dim_feedforward,
           c->norm_first ? "true" : "false", c->activation == LM_ACT_GELU ? "gelu" : "relu",
           c->n_ctx, c->src_vocab, c->tgt_vocab, c->bos_id, c->eos_id, c->pad_id);
    printf("params %lu\n", (unsigned long)lm_seq2seq_num_params(m));
    info_tensors(&m->params);
    lm_seq2seq_free(m);
}

static void cmd_info(int argc, char **argv) {
    cli c;
    lm_gpt *m;
    const char *path;
    memset(&c, 0, sizeof c);
    c.usage = usage_info;
    opt_str(&c, "--model", NULL, NULL);
    opt_heads_only(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--model")) die_usage("--model CKPT is required (see lm info --help)");
    apply_threads(&c);
    path = getstr(&c, "--model");
    if (is_s2s_file(path)) { info_s2s(path); return; }
    m = load_model(path, heads_for(&c, path));
    printf("model %s\n", path);
    printf("n_layer %d\nn_head %d\nn_embd %d\nn_ctx %d\nvocab %d\n", m->cfg.n_layer,
           m->cfg.n_head, m->cfg.n_embd, m->cfg.n_ctx, m->cfg.vocab);
    printf("params %lu\n", (unsigned long)lm_gpt_num_params(m));
    printf("quant %s\n", m->cfg.quant == LM_QUANT_Q8_0 ? "q8_0" :
           m->cfg.quant == LM_QUANT_Q8_0_EMB ? "q8_0+wte" : "none");
    printf("sparsity %.4f\n", lm_gpt_sparsity(m));
    info_tensors(&m->params);
    lm_gpt_free(m);
}

/* ---------------------------------------------------------------------------------------
   lm s2s: the encoder-decoder (lm.h, ENCODER-DECODER) on pairs of texts, one pair a line
   of a TSV file: source TAB target. train, eval and translate.
   --------------------------------------------------------------------------------------- */
static const char usage_s2s[] =
"usage: lm s2s train     --data PAIRS.tsv [options]    train an encoder-decoder\n"
"       lm s2s eval      --model M --data PAIRS.tsv    loss and exact match\n"
"       lm s2s translate --model M [--text T]          one output a line\n"
"\n"
"The encoder-decoder Transformer of PyTorch's nn.Transformer: source text in, other text\n"
"out. PAIRS.tsv holds one pair a line, source TAB target (the target is everything after\n"
"the first tab; a trailing CR is dropped, empty lines are skipped). Tokens are bytes, or\n"
"those of --tokenizer/--gpt2; the model's vocabulary is the tokenizer's plus BOS, EOS and\n"
"PAD. lm s2s COMMAND --help gives each one's options.\n";

static const char usage_s2s_train[] =
"usage: lm s2s train --data PAIRS.tsv [options]\n"
"\n"
"Train an encoder-decoder on the pairs of PAIRS.tsv (source TAB target a line): the\n"
"first (1 - val-frac) of the pairs train, the rest validate. Each step takes --batch\n"
"pairs and minimises the mean cross-entropy of target + EOS given BOS + target (teacher\n"
"forcing), with AdamW as lm train.\n"
"\n"
"  --data PAIRS.tsv       training pairs (required)\n"
"  --model OUT            checkpoint to write (default model.safetensors), in PyTorch's\n"
"                         nn.Transformer names; the resume state goes beside it as\n"
"                         OUT.state\n"
"  --init CKPT            start a fresh run from CKPT's weights (shape from CKPT)\n"
"  --resume CKPT          continue the run that wrote CKPT, with the same flags, up to\n"
"                         --steps; ends with exactly the weights of an uninterrupted run\n"
"  --layers N             encoder and decoder layers (3)\n"
"  --enc-layers N         encoder layers (--layers)\n"
"  --dec-layers N         decoder layers (--layers)\n"
"  --heads N              attention heads, must divide --embd (4)\n"
"  --embd N               width d_model (128)\n"
"  --ff N                 the MLP's width dim_feedforward (4 x --embd)\n"
"  --ctx N                longest source in tokens, and longest target + 1 (128)\n"
"  --norm-first           pre-LN blocks (default: post-LN, as PyTorch's default)\n"
"  --activation A         relu or gelu (the exact erf form) (relu)\n"
"  --dropout X            dropout in [0, 1) on the embeddings, sub-layer outputs and the\n"
"                         MLP's hidden layer (not on attention weights) (0)\n"
"  --batch N              pairs per step (32)\n"
"  --steps N              total optimizer steps (2000)\n"
"  --lr X --min-lr X      peak learning rate and cosine floor (1e-3, 1e-4)\n"
"  --warmup N             linear warmup steps (100)\n"
"  --schedule S           cosine or constant (cosine)\n"
"  --wd X                 AdamW weight decay on matrices and embeddings (0.1)\n"
"  --beta1 X --beta2 X    AdamW betas (0.9, 0.99)\n"
"  --eps X                AdamW epsilon (1e-8)\n"
"  --clip X               clip the global gradient norm to X, 0 = off (1.0)\n"
"  --order O              random (--batch pairs drawn from the seeded RNG) or sequential\n"
"                         (the pairs in file order, wrapping) (random)\n"
"  --val-frac F           validation fraction of the pairs in [0, 1), 0 = none (0.1)\n"
"  --eval-every N         validation loss and checkpoint every N steps, 0 = never (250)\n"
"  --save-every N         checkpoint every N steps, 0 = never (0)\n"
"  --seed N               seed of the initial weights, the data order and dropout (1337)\n"
"  --log FILE.csv         one CSV row per step, as lm train's (tok_per_s counts source and\n"
"                         target tokens)\n"
"  --plot FILE.svg        the loss curves as an SVG picture, as lm train's\n"
"  --tokenizer TOK        a tokenizer written by `lm bpe` (default: raw bytes)\n"
"  --gpt2 DIR             GPT-2's tokenizer (DIR/encoder.json, DIR/vocab.bpe)\n"
"  --threads N            threads (default: all cores); results do not depend on it\n"
"  --quiet                print only the final summary\n"
"\n"
"Progress, checkpoints, signals and exit status as lm train's. The last note gives the\n"
"validation split's exact match (greedy decoding) when there is one.\n";

static const char usage_s2s_eval[] =
"usage: lm s2s eval --model M --data PAIRS.tsv [options]\n"
"\n"
"The model's mean cross-entropy per target token (each target's tokens and its EOS,\n"
"teacher-forced) over all pairs of PAIRS.tsv, and the fraction of the pairs whose decoded\n"
"output is exactly the target. The last line on stdout is:\n"
"    loss <float> exact_match <float>\n"
"\n"
"  --model M              encoder-decoder checkpoint (required)\n"
"  --data PAIRS.tsv       pairs, source TAB target a line (required)\n"
"  --batch N              pairs per loss batch (32)\n"
"  --beam K               decode with beam search of width K (1: greedy) (1)\n"
"  --tokenizer TOK        the tokenizer the model was trained with (default: raw bytes)\n"
"  --gpt2 DIR             GPT-2's tokenizer (DIR/encoder.json, DIR/vocab.bpe)\n"
"  --threads N            threads (default: all cores)\n";

static const char usage_s2s_translate[] =
"usage: lm s2s translate --model M [--text T] [options]\n"
"\n"
"Decode the output of each source: --text T, or each line of stdin (a trailing CR is\n"
"dropped). stdout gets one output a line, in order; an empty source gives an empty line.\n"
"An output ends at EOS, at --max-tokens, at the model's context, or at a newline (a line\n"
"cannot hold one).\n"
"\n"
"  --model M              encoder-decoder checkpoint (required)\n"
"  --text T               one source (default: the lines of stdin)\n"
"  --beam K               beam search of width K, at most 16 (1: greedy) (1)\n"
"  --max-tokens N         tokens per output at most (default: the model's context)\n"
"  --stats                on stderr at the end: sources, tokens, time, tokens/s\n"
"  --tokenizer TOK        the tokenizer the model was trained with (default: raw bytes)\n"
"  --gpt2 DIR             GPT-2's tokenizer (DIR/encoder.json, DIR/vocab.bpe)\n"
"  --threads N            threads (default: all cores)\n";

/* The pairs of a TSV file as token ids: pair i's source is ids[src[i] .. src[i]+src_n[i]),
   its target likewise; tgt_at/tgt_bytes locate the target's text, for exact match. */
typedef struct pairs {
    int n;
    size_t *src, *tgt, *tgt_at;
    int *src_n, *tgt_n, *tgt_bytes, *line;
    int *ids;
    size_t n_ids, cap_ids;
    unsigned char *text;
    int max_src, max_tgt;
    double tokens;           /* source and target tokens of all pairs                    */
} pairs;

static void pairs_add_ids(pairs *p, const int *ids, size_t n) {
    if (p->n_ids + n > p->cap_ids) {
        size_t cap = (p->cap_ids + n) * 2;
        int *nid = (int *)realloc(p->ids, cap * sizeof(int));
        if (!nid) die("out of memory reading the pairs");
        p->ids = nid;
        p->cap_ids = cap;
    }
    memcpy(p->ids + p->n_ids, ids, n * sizeof(int));
    p->n_ids += n;
}

/* Read and tokenize PAIRS.tsv. A line without a tab or with an empty source is an error
   naming the line. */
static void pairs_read(const char *path, cli_tok *k, pairs *p) {
    size_t len, at = 0, cap = 0;
    int line = 0;
    memset(p, 0, sizeof *p);
    p->text = read_file(path, &len);
    while (at < len) {
        size_t e = at, tab, end;
        int *ids;
        size_t n1, n2;
        line++;
        while (e < len && p->text[e] != '\n') e++;
        end = e;
        if (end > at && p->text[end - 1] == '\r') end--;
        if (end == at) { at = e + 1; continue; }         /* an empty line */
        for (tab = at; tab < end && p->text[tab] != '\t'; tab++) {}
        if (tab == end) die("%s:%d: no tab between the source and the target", path, line);
        if (tab == at) die("%s:%d: the source is empty", path, line);
        if ((size_t)p->n == cap) {
            cap = cap ? 2 * cap : 1024;
            p->src = (size_t *)realloc(p->src, cap * sizeof(size_t));
            p->tgt = (size_t *)realloc(p->tgt, cap * sizeof(size_t));
            p->tgt_at = (size_t *)realloc(p->tgt_at, cap * sizeof(size_t));
            p->src_n = (int *)realloc(p->src_n, cap * sizeof(int));
            p->tgt_n = (int *)realloc(p->tgt_n, cap * sizeof(int));
            p->tgt_bytes = (int *)realloc(p->tgt_bytes, cap * sizeof(int));
            p->line = (int *)realloc(p->line, cap * sizeof(int));
            if (!p->src || !p->tgt || !p->tgt_at || !p->src_n || !p->tgt_n || !p->tgt_bytes || !p->line)
                die("out of memory reading '%s'", path);
        }
        ids = tok_encode(k, p->text + at, tab - at, &n1);
        p->src[p->n] = p->n_ids;
        pairs_add_ids(p, ids, n1);
        free(ids);
        ids = tok_encode(k, p->text + tab + 1, end - tab - 1, &n2);
        p->tgt[p->n] = p->n_ids;
        pairs_add_ids(p, ids, n2);
        free(ids);
        if (n1 > INT_MAX / 2 || n2 > INT_MAX / 2) die("%s:%d: the line is too long", path, line);
        p->src_n[p->n] = (int)n1;
        p->tgt_n[p->n] = (int)n2;
        p->tgt_at[p->n] = tab + 1;
        p->tgt_bytes[p->n] = (int)(end - tab - 1);
        p->line[p->n] = line;
        if ((int)n1 > p->max_src) p->max_src = (int)n1;
        if ((int)n2 > p->max_tgt) p->max_tgt = (int)n2;
        p->tokens += (double)n1 + (double)n2;
        p->n++;
        at = e + 1;
    }
    if (p->n == 0) die("'%s' has no pairs (source TAB target a line)", path);
}

static void pairs_free(pairs *p) {
    free(p->src); free(p->tgt); free(p->tgt_at); free(p->src_n); free(p->tgt_n);
    free(p->tgt_bytes); free(p->line); free(p->ids); free(p->text);
}

/* Every pair must fit a model of context n_ctx: sources of n_ctx tokens, targets of one
   fewer (the decoder reads BOS first). */
static void pairs_check(const pairs *p, const char *path, int n_ctx) {
    int i;
    for (i = 0; i < p->n; i++) {
        if (p->src_n[i] > n_ctx)
            die("%s:%d: the source has %d tokens, more than the context of %d (--ctx)", path,
                p->line[i], p->src_n[i], n_ctx);
        if (p->tgt_n[i] > n_ctx - 1)
            die("%s:%d: the target has %d tokens, more than the context of %d allows (%d; --ctx)",
                path, p->line[i], p->tgt_n[i], n_ctx, n_ctx - 1);
    }
}

/* The model's vocabulary must be the tokenizer's plus BOS, EOS and PAD, in that order. */
static void s2s_check_vocab(const lm_seq2seq *m, const cli_tok *k, const char *path) {
    const lm_seq2seq_config *c = &m->cfg;
    int V = k->vocab + 3;
    if (c->src_vocab != V || c->tgt_vocab != V || c->bos_id != V - 3 || c->eos_id != V - 2 ||
        c->pad_id != V - 1)
        die("'%s' has vocabularies of %d and %d tokens (BOS %d, EOS %d, PAD %d), not the "
            "tokenizer's %d plus BOS, EOS and PAD (%s)", path, c->src_vocab, c->tgt_vocab,
            c->bos_id, c->eos_id, c->pad_id, k->vocab, k->what);
}

static lm_seq2seq *s2s_load(const char *path) {
    lm_seq2seq *m;
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open '%s': %s", path, strerror(errno));
    fclose(f);
    m = lm_seq2seq_load(path);
    if (!m) die("cannot load '%s': %s", path, lm_error());
    return m;
}

/* A batch of the pairs idx[0..B) into the buffers (B x n_ctx each). */
typedef struct s2s_bufs { int *src, *sl, *tgt, *tl; } s2s_bufs;
static void s2s_bufs_new(s2s_bufs *b, int B, int n_ctx) {
    b->src = (int *)xmalloc((size_t)B * n_ctx * sizeof(int));
    b->tgt = (int *)xmalloc((size_t)B * n_ctx * sizeof(int));
    b->sl = (int *)xmalloc((size_t)B * sizeof(int));
    b->tl = (int *)xmalloc((size_t)B * sizeof(int));
}
static void s2s_bufs_free(s2s_bufs *b) { free(b->src); free(b->tgt); free(b->sl); free(b->tl); }
static double s2s_fill(const pairs *p, const int *idx, int B, s2s_bufs *buf, lm_seq2seq_batch *b) {
    int i, S = 1, T = 0;
    double tokens = 0;
    for (i = 0; i < B; i++) {
        if (p->src_n[idx[i]] > S) S = p->src_n[idx[i]];
        if (p->tgt_n[idx[i]] > T) T = p->tgt_n[idx[i]];
    }
    for (i = 0; i < B; i++) {
        int j = idx[i];
        memcpy(buf->src + (size_t)i * S, p->ids + p->src[j], (size_t)p->src_n[j] * sizeof(int));
        memcpy(buf->tgt + (size_t)i * T, p->ids + p->tgt[j], (size_t)p->tgt_n[j] * sizeof(int));
        buf->sl[i] = p->src_n[j];
        buf->tl[i] = p->tgt_n[j];
        tokens += (double)p->src_n[j] + p->tgt_n[j];
    }
    b->B = B; b->S = S; b->T = T; b->src = buf->src; b->src_len = buf->sl;
    b->tgt = buf->tgt; b->tgt_len = buf->tl;
    return tokens;
}

/* The mean cross-entropy per target token (and EOS) over pairs [from, to), B at a time. */
static double s2s_loss(lm_seq2seq *m, const pairs *p, int from, int to, int B, s2s_bufs *buf) {
    double tot = 0, count = 0;
    int i, k, idx[256];
    if (B > 256) B = 256;
    for (i = from; i < to; i += B) {
        lm_seq2seq_batch b;
        int nb = to - i < B ? to - i : B;
        double cnt = 0;
        float l;
        for (k = 0; k < nb; k++) { idx[k] = i + k; cnt += p->tgt_n[i + k] + 1; }
        s2s_fill(p, idx, nb, buf, &b);
        l = lm_seq2seq_loss(m, &b);
        if (l != l) die("evaluation failed: %s", lm_error());
        tot += (double)l * cnt;
        count += cnt;
    }
    return count > 0 ? tot / count : NAN;
}

/* The fraction of pairs [from, to) whose decoded output, as bytes, is exactly the target. */
static double s2s_exact(lm_seq2seq *m, const pairs *p, int from, int to, int beam, cli_tok *k) {
    int i, good = 0, cap = m->cfg.n_ctx, *out = (int *)xmalloc((size_t)cap * sizeof(int));
    unsigned char *bytes = NULL;
    size_t bcap = 0;
    for (i = from; i < to; i++) {
        int n = lm_seq2seq_translate(m, p->ids + p->src[i], p->src_n[i], beam, out, cap);
        long len;
        if (n < 0) die("decoding failed: %s", lm_error());
        len = lm_tok_decode(k->t, out, (size_t)n, bytes, bcap);
        if (len < 0) die("cannot decode: %s", lm_error());
        if ((size_t)len > bcap) {
            free(bytes);
            bcap = (size_t)len * 2;
            bytes = (unsigned char *)xmalloc(bcap);
            len = lm_tok_decode(k->t, out, (size_t)n, bytes, bcap);
        }
        good += len == p->tgt_bytes[i] && !memcmp(bytes, p->text + p->tgt_at[i], (size_t)len);
    }
    free(out);
    free(bytes);
    return to > from ? (double)good / (to - from) : NAN;
}

/* lm s2s train: the run the training loop drives. */
typedef struct s2s_run {
    lm_seq2seq *m;
    const pairs *p;
    int n_train, n_val, B, sequential;
    size_t pos;              /* sequential: the next pair                                */
    lm_rng rng;              /* random: the pairs drawn                                  */
    s2s_bufs buf;
    int *idx;
    const char *out;
    int saved_at;
} s2s_run;

static float s2s_step(void *ctx, const lm_train_opts *o, int s, double *tokens) {
    s2s_run *r = (s2s_run *)ctx;
    lm_seq2seq_batch b;
    int i;
    for (i = 0; i < r->B; i++) {
        if (r->sequential) {
            r->idx[i] = (int)r->pos;
            r->pos = (r->pos + 1) % (size_t)r->n_train;
        } else {
            r->idx[i] = (int)lm_rng_below(&r->rng, (uint32_t)r->n_train);
        }
    }
    *tokens = s2s_fill(r->p, r->idx, r->B, &r->buf, &b);
    return lm_seq2seq_train_step(r->m, o, &b, s);
}
static double s2s_eval(void *ctx) {
    s2s_run *r = (s2s_run *)ctx;
    return s2s_loss(r->m, r->p, r->n_train, r->n_train + r->n_val, r->B, &r->buf);
}
static void s2s_save(void *ctx, int done) {
    s2s_run *r = (s2s_run *)ctx;
    lm_train_state st;
    if (r->saved_at == done) return;
    check_finite(&r->m->params, done);
    memset(&st, 0, sizeof st);
    st.step = done;
    st.data_pos = (uint64_t)r->pos;
    st.rng = r->rng.state;
    if (lm_seq2seq_save_with_state(r->m, r->out, &st) != LM_OK)
        die("cannot save '%s' and its training state: %s", r->out, lm_error());
    r->saved_at = done;
}

static void s2s_train(int argc, char **argv) {
    cli c;
    cli_tok tok;
    pairs P;
    s2s_run run;
    train_loop L;
    progress pr;
    train_plotter plot;
    lm_train_opts o;
    lm_seq2seq_config cfg;
    const char *data_path, *init;
    int B, S, start = 0, resume;
    FILE *logf;

    memset(&c, 0, sizeof c);
    c.usage = usage_s2s_train;
    opt_str(&c, "--data", NULL, NULL);
    opt_str(&c, "--model", "model.safetensors", NULL);
    opt_str(&c, "--init", NULL, NULL);
    opt_str(&c, "--resume", NULL, NULL);
    opt_int(&c, "--layers", 3, 1, 999);
    opt_int(&c, "--enc-layers", 3, 1, 999);
    opt_int(&c, "--dec-layers", 3, 1, 999);
    opt_int(&c, "--heads", 4, 1, 65536);
    opt_int(&c, "--embd", 128, 1, 65536);
    opt_int(&c, "--ff", 0, 1, 1 << 30);
    opt_int(&c, "--ctx", 128, 2, 65536);
    opt_flag(&c, "--norm-first");
    opt_str(&c, "--activation", "relu", "relu|gelu");
    opt_num(&c, "--dropout", 0, 0, 1, 0, 1);
    opt_int(&c, "--batch", 32, 1, 65536);
    opt_train_run(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--data")) die_usage("--data PAIRS.tsv is required (see lm s2s train --help)");
    check_train_run(&c);
    resume = seen(&c, "--resume");
    init = resume ? getstr(&c, "--resume") : getstr(&c, "--init");
    B = (int)geti(&c, "--batch");
    S = (int)geti(&c, "--steps");
    memset(&cfg, 0, sizeof cfg);
    cfg.d_model = (int)geti(&c, "--embd");
    cfg.nhead = (int)geti(&c, "--heads");
    cfg.num_encoder_layers = (int)geti(&c, seen(&c, "--enc-layers") ? "--enc-layers" : "--layers");
    cfg.num_decoder_layers = (int)geti(&c, seen(&c, "--dec-layers") ? "--dec-layers" : "--layers");
    cfg.dim_feedforward = seen(&c, "--ff") ? (int)geti(&c, "--ff") : 0;
    cfg.n_ctx = (int)geti(&c, "--ctx");
    cfg.norm_first = (int)geti(&c, "--norm-first");
    cfg.activation = !strcmp(getstr(&c, "--activation"), "gelu") ? LM_ACT_GELU : LM_ACT_RELU;
    cfg.dropout = (float)getd(&c, "--dropout");
    if (cfg.d_model % cfg.nhead) die_usage("--heads %d must divide --embd %d", cfg.nhead, cfg.d_model);
    o = train_opts(&c);
    apply_threads(&c);

    tok_open(&c, &tok);
    data_path = getstr(&c, "--data");
    pairs_read(data_path, &tok, &P);
    train_outputs(&c, &plot);
    memset(&run, 0, sizeof run);
    run.out = getstr(&c, "--model");
    run.saved_at = -1;
    if (init) {
        static const char *const shape_flags[] = { "--layers", "--enc-layers", "--dec-layers",
            "--heads", "--embd", "--ff", "--ctx", "--norm-first", "--activation" };
        size_t k;
        run.m = s2s_load(init);
        for (k = 0; k < sizeof shape_flags / sizeof shape_flags[0]; k++)
            if (seen(&c, shape_flags[k])) note("%s ignored: the shape is that of '%s'", shape_flags[k], init);
        s2s_check_vocab(run.m, &tok, init);
        run.m->seed = get(&c, "--seed")->u;
        run.m->cfg.dropout = cfg.dropout;
        cfg = run.m->cfg;
    } else {
        cfg.src_vocab = cfg.tgt_vocab = tok.vocab + 3;
        if ((double)cfg.d_model * cfg.tgt_vocab > INT_MAX || (double)cfg.d_model * cfg.d_model * 4 > INT_MAX)
            die_usage("--embd %d is too wide: a weight matrix would reach 2^31 elements", cfg.d_model);
        if ((double)cfg.n_ctx * cfg.d_model > 16777216.0)
            die_usage("--ctx %d with --embd %d is too long: at most 2^24 positions x width", cfg.n_ctx,
                      cfg.d_model);
        pairs_check(&P, data_path, cfg.n_ctx);
        check_fits(lm_seq2seq_memory(&cfg, B, P.max_src, P.max_tgt), "this model and batch");
        run.m = lm_seq2seq_new(&cfg, get(&c, "--seed")->u);
        if (!run.m) die("cannot create the model: %s", lm_error());
        cfg = run.m->cfg;
    }
    pairs_check(&P, data_path, cfg.n_ctx);
    check_fits(lm_seq2seq_memory(&cfg, B, P.max_src, P.max_tgt), "this model and batch");

    /* the split: the first (1 - f) of the pairs train, the rest validate */
    run.p = &P;
    run.n_train = getd(&c, "--val-frac") > 0 ? (int)((1.0 - getd(&c, "--val-frac")) * P.n) : P.n;
    if (run.n_train < 1) run.n_train = 1;
    if (run.n_train > P.n) run.n_train = P.n;
    run.n_val = P.n - run.n_train;
    run.B = B;
    run.sequential = !strcmp(getstr(&c, "--order"), "sequential");
    run.rng = lm_rng_seed(get(&c, "--seed")->u);
    s2s_bufs_new(&run.buf, B, cfg.n_ctx);
    run.idx = (int *)xmalloc((size_t)B * sizeof(int));
    if (resume) {
        lm_train_state st;
        memset(&st, 0, sizeof st);
        if (lm_seq2seq_load_state(run.m, init, &st) != LM_OK)
            die("cannot load the training state of '%s': %s", init, lm_error());
        if (st.step < 0 || st.step > S)
            die("'%s' has done %ld steps, more than --steps %d", init, st.step, S);
        if (st.data_pos >= (uint64_t)run.n_train)
            die("the state of '%s' does not fit '%s' (pair %lu of %d)", init, data_path,
                (unsigned long)st.data_pos, run.n_train);
        start = (int)st.step;
        run.pos = (size_t)st.data_pos;
        run.rng.state = st.rng;
    }
    logf = log_open(getstr(&c, "--log"), resume, start);
    if (plot.path) {
        const char *base = strrchr(data_path, '/');
        char np[32];
        snprintf(plot.title, sizeof plot.title,
                 "encoder-decoder %d+%d layers \xC3\x97 %d wide (%s params), %d steps \xE2\x80\x94 %s",
                 cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.d_model,
                 fmt_count((double)lm_seq2seq_num_params(run.m), np), S, base ? base + 1 : data_path);
        plot_resumed(&plot, &c, resume, logf);
    }
    memset(&pr, 0, sizeof pr);
    pr.quiet = (int)geti(&c, "--quiet");
    pr.tokens = (double)B * P.tokens / P.n;
    if (!pr.quiet)
        note("%d+%d layers (%s, %s), %d heads, %d wide, MLP %d, context %d, vocab %d: %lu "
             "parameters; %d train and %d validation pairs; %d threads (%s)%s",
             cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.norm_first ? "pre-LN" : "post-LN",
             cfg.activation == LM_ACT_GELU ? "gelu" : "relu", cfg.nhead, cfg.d_model,
             cfg.dim_feedforward, cfg.n_ctx, cfg.tgt_vocab,
             (unsigned long)lm_seq2seq_num_params(run.m), run.n_train, run.n_val,
             lm_get_threads(), lm_simd_name(), resume ? "; resuming" : "");
    memset(&L, 0, sizeof L);
    L.ctx = &run; L.step = s2s_step; L.eval = run.n_val > 0 ? s2s_eval : NULL; L.save = s2s_save;
    L.o = &o; L.start = start; L.S = S; L.eval_every = (int)geti(&c, "--eval-every");
    L.save_every = (int)geti(&c, "--save-every"); L.pr = &pr; L.plot = &plot; L.logf = logf;
    L.log_path = getstr(&c, "--log"); L.out = run.out; L.init = init;
    train_loop_run(&L);
    if (run.n_val > 0) {
        double em = s2s_exact(run.m, &P, run.n_train, P.n, 1, &tok);
        note("validation exact match %.4f (%d pairs, greedy)", em, run.n_val);
    }
    s2s_bufs_free(&run.buf);
    free(run.idx);
    pairs_free(&P);
    tok_close(&tok);
    lm_seq2seq_free(run.m);
}

static void s2s_eval_cmd(int argc, char **argv) {
    cli c;
    cli_tok tok;
    pairs P;
    s2s_bufs buf;
    lm_seq2seq *m;
    const char *path, *data;
    double loss, em;
    memset(&c, 0, sizeof c);
    c.usage = usage_s2s_eval;
    opt_str(&c, "--model", NULL, NULL);
    opt_str(&c, "--data", NULL, NULL);
    opt_int(&c, "--batch", 32, 1, 256);
    opt_int(&c, "--beam", 1, 1, 16);
    opt_tok(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--model")) die_usage("--model M is required (see lm s2s eval --help)");
    if (!seen(&c, "--data")) die_usage("--data PAIRS.tsv is required (see lm s2s eval --help)");
    tok_check_opts(&c);
    apply_threads(&c);
    path = getstr(&c, "--model");
    data = getstr(&c, "--data");
    m = s2s_load(path);
    tok_open(&c, &tok);
    s2s_check_vocab(m, &tok, path);
    pairs_read(data, &tok, &P);
    pairs_check(&P, data, m->cfg.n_ctx);
    s2s_bufs_new(&buf, (int)geti(&c, "--batch"), m->cfg.n_ctx);
    loss = s2s_loss(m, &P, 0, P.n, (int)geti(&c, "--batch"), &buf);
    em = s2s_exact(m, &P, 0, P.n, (int)geti(&c, "--beam"), &tok);
    printf("loss %.6f exact_match %.6f\n", loss, em);
    if (fflush(stdout) != 0) die("cannot write the output: %s", strerror(errno));
    s2s_bufs_free(&buf);
    pairs_free(&P);
    tok_close(&tok);
    lm_seq2seq_free(m);
}

/* Decode one source and print its output line (up to a newline, which a line cannot
   hold). Returns the tokens decoded. */
static int s2s_translate_one(lm_seq2seq *m, cli_tok *k, const unsigned char *text, size_t len,
                             int beam, int max_out, int *out, int line) {
    size_t n, i;
    int *ids, got = 0;
    unsigned char small[4096], *bytes = small;
    long blen;
    if (len > 0) {
        ids = tok_encode(k, text, len, &n);
        if (n > (size_t)m->cfg.n_ctx) {
            if (line > 0) die("line %d: the source has %lu tokens, more than the model's context of %d",
                              line, (unsigned long)n, m->cfg.n_ctx);
            die("the source has %lu tokens, more than the model's context of %d", (unsigned long)n,
                m->cfg.n_ctx);
        }
        got = lm_seq2seq_translate(m, ids, (int)n, beam, out, max_out);
        free(ids);
        if (got < 0) die("decoding failed: %s", lm_error());
    }
    blen = lm_tok_decode(k->t, out, (size_t)got, small, sizeof small);
    if (blen < 0) die("cannot decode: %s", lm_error());
    if ((size_t)blen > sizeof small) {
        bytes = (unsigned char *)xmalloc((size_t)blen);
        blen = lm_tok_decode(k->t, out, (size_t)got, bytes, (size_t)blen);
    }
    for (i = 0; i < (size_t)blen && bytes[i] != '\n'; i++) {}
    fwrite(bytes, 1, i, stdout);
    putchar('\n');
    fflush(stdout);
    if (bytes != small) free(bytes);
    return got;
}

static void s2s_translate_cmd(int argc, char **argv) {
    cli c;
    cli_tok tok;
    lm_seq2seq *m;
    int beam, max_out, *out, line = 0;
    long sources = 0;
    double tokens = 0, t0;
    memset(&c, 0, sizeof c);
    c.usage = usage_s2s_translate;
    opt_str(&c, "--model", NULL, NULL);
    opt_text(&c, "--text", NULL);
    opt_int(&c, "--beam", 1, 1, 16);
    opt_int(&c, "--max-tokens", 0, 1, 1000000000);
    opt_flag(&c, "--stats");
    opt_tok(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--model")) die_usage("--model M is required (see lm s2s translate --help)");
    tok_check_opts(&c);
    apply_threads(&c);
    m = s2s_load(getstr(&c, "--model"));
    tok_open(&c, &tok);
    s2s_check_vocab(m, &tok, getstr(&c, "--model"));
    beam = (int)geti(&c, "--beam");
    max_out = seen(&c, "--max-tokens") && geti(&c, "--max-tokens") < m->cfg.n_ctx
              ? (int)geti(&c, "--max-tokens") : m->cfg.n_ctx;
    out = (int *)xmalloc((size_t)max_out * sizeof(int));
    t0 = now_s();
    if (seen(&c, "--text")) {
        const char *t = getstr(&c, "--text");
        tokens += s2s_translate_one(m, &tok, (const unsigned char *)t, strlen(t), beam, max_out, out, 0);
        sources++;
    } else {
        /* line by line, each output printed as soon as its line is in */
        size_t cap = 256, len;
        char *buf = (char *)xmalloc(cap);
        int ch = 0;
        while (ch != EOF) {
            len = 0;
            while ((ch = getc(stdin)) != EOF && ch != '\n') {
                if (len + 1 >= cap) {
                    char *nb = (char *)realloc(buf, cap * 2);
                    if (!nb) die("out of memory reading stdin");
                    buf = nb;
                    cap *= 2;
                }
                buf[len++] = (char)ch;
            }
            if (ch == EOF && len == 0) break;            /* no last line after a newline */
            line++;
            if (len > 0 && buf[len - 1] == '\r') len--;
            tokens += s2s_translate_one(m, &tok, (const unsigned char *)buf, len, beam, max_out,
                                        out, line);
            sources++;
        }
        if (ferror(stdin)) die("cannot read stdin: %s", strerror(errno));
        free(buf);
    }
    if (ferror(stdout)) die("cannot write the output: %s", strerror(errno));
    if (geti(&c, "--stats")) {
        double t = now_s() - t0;
        note("%ld sources, %.0f tokens out in %.3f s: %.1f tokens/s (beam %d)", sources, tokens, t,
             t > 0 ? tokens / t : 0.0, beam);
    }
    free(out);
    tok_close(&tok);
    lm_seq2seq_free(m);
}

static void sub_dispatch(int argc, char **argv, const char *cmd, const char *what,
                         const char *list, const char *usage, const char *const *names,
                         void (*const *runs)(int, char **), int n);
static void cmd_s2s(int argc, char **argv) {
    static const char *const names[3] = { "train", "eval", "translate" };
    static void (*const runs[3])(int, char **) = { s2s_train, s2s_eval_cmd, s2s_translate_cmd };
    sub_dispatch(argc, argv, "lm s2s", "s2s command", "train, eval or translate", usage_s2s,
                 names, runs, 3);
}

/* ---------------------------------------------------------------------------------------
   Compression: lm quantize (Q8_0 weights) and lm prune (magnitude pruning). Both read a
   float32 checkpoint and write a new one beside it (never over it: the float32 weights
   are worth keeping).
   --------------------------------------------------------------------------------------- */
static const char usage_quantize[] =
"usage: lm quantize --model IN --out OUT [--quantize-embeddings] [--heads N] [--threads N]\n"
"\n"
"Store a float32 checkpoint's weights in Q8_0: each run of 32 weights along a matrix's\n"
"input as 32 int8 values and one F16 scale (lm.h, COMPRESSION). The four matrices of every\n"
"block are quantized, and with --quantize-embeddings the token embedding (also the output\n"
"head) too; positions, LayerNorms and biases stay float32. lm eval, lm generate, lm info and\n"
"lm bench generate take the result as they take any checkpoint; lm train does not (train\n"
"the float32 model, then quantize it).\n"
"stdout: the two files' sizes, e.g.\n"
"    before 3357192 bytes\n"
"    after 1162248 bytes (0.346 of before)\n"
"\n"
"  --model IN               a float32 checkpoint (required)\n"
"  --out OUT                the quantized checkpoint to write (required; not IN)\n"
"  --quantize-embeddings    wte.weight in Q8_0 too\n"
"  --heads N                heads, for a checkpoint without n_head metadata\n"
"  --threads N              threads (default: all cores)\n";

static const char usage_prune[] =
"usage: lm prune --model IN --sparsity S --out OUT [--heads N] [--threads N]\n"
"\n"
"Magnitude pruning: in each of the four matrices of every block, the fraction S of the\n"
"weights with the smallest magnitude become zero (per matrix; ties go to the lower index).\n"
"Embeddings, LayerNorms and biases are untouched. A short fine-tune that keeps the zeros\n"
"wins back much of what pruning costs:\n"
"    lm train --data FILE --init OUT --model TUNED --keep-zeros --steps 300 --lr 3e-4\n"
"stdout: one line, the share of zeros in the block matrices before and after, e.g.\n"
"    sparsity 0.0000 -> 0.5000 (393216 of 786432 weights are zero)\n"
"\n"
"  --model IN             a float32 checkpoint (required)\n"
"  --sparsity S           the share of each matrix to set to zero, 0 <= S <= 1 (required)\n"
"  --out OUT              the pruned checkpoint to write (required; not IN)\n"
"  --heads N              heads, for a checkpoint without n_head metadata\n"
"  --threads N            threads (default: all cores)\n";

/* The size of a file in bytes (for lm quantize's report). */
static double file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : 0;
}

/* --model IN and --out OUT of quantize and prune: both given, OUT writable and not IN;
   returns IN loaded, which must be float32. */
static lm_gpt *compress_open(cli *c, const char *help) {
    const char *in = getstr(c, "--model"), *out = getstr(c, "--out");
    lm_gpt *m;
    if (!in) die_usage("--model IN is required (see %s)", help);
    if (!out) die_usage("--out OUT is required (see %s)", help);
    if (same_file(in, out)) die_usage("--out '%s' is the --model file: write the result beside it", out);
    apply_threads(c);
    m = load_model(in, heads_for(c, in));
    if (m->cfg.quant != LM_QUANT_NONE) die("'%s' is quantized already (Q8_0)", in);
    check_writable(out);
    return m;
}

static void cmd_quantize(int argc, char **argv) {
    cli c;
    lm_gpt *m, *q;
    double before, after;
    memset(&c, 0, sizeof c);
    c.usage = usage_quantize;
    opt_str(&c, "--model", NULL, NULL);
    opt_str(&c, "--out", NULL, NULL);
    opt_flag(&c, "--quantize-embeddings");
    opt_heads_only(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    m = compress_open(&c, "lm quantize --help");
    q = lm_gpt_quantize(m, geti(&c, "--quantize-embeddings") ? LM_QUANT_Q8_0_EMB : LM_QUANT_Q8_0);
    if (!q) die("cannot quantize '%s': %s", getstr(&c, "--model"), lm_error());
    if (lm_gpt_save(q, getstr(&c, "--out")) != LM_OK)
        die("cannot save '%s': %s", getstr(&c, "--out"), lm_error());
    before = file_bytes(getstr(&c, "--model"));
    after = file_bytes(getstr(&c, "--out"));
    printf("before %.0f bytes\nafter %.0f bytes (%.3f of before)\n", before, after,
           before > 0 ? after / before : 0.0);
    if (fflush(stdout) != 0) die("cannot write the output: %s", strerror(errno));
    lm_gpt_free(q);
    lm_gpt_free(m);
}

static void cmd_prune(int argc, char **argv) {
    cli c;
    lm_gpt *m;
    double before, after, n = 0;
    int k;
    memset(&c, 0, sizeof c);
    c.usage = usage_prune;
    opt_str(&c, "--model", NULL, NULL);
    opt_num(&c, "--sparsity", 0, 0, 1, 0, 0);
    opt_str(&c, "--out", NULL, NULL);
    opt_heads_only(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--sparsity")) die_usage("--sparsity S is required (see lm prune --help)");
    m = compress_open(&c, "lm prune --help");
    before = lm_gpt_sparsity(m);
    if (lm_gpt_prune(m, (float)getd(&c, "--sparsity")) != LM_OK)
        die("cannot prune '%s': %s", getstr(&c, "--model"), lm_error());
    after = lm_gpt_sparsity(m);
    for (k = 0; k < m->params.n; k++)        /* the block matrices: the 2-D tensors after wpe */
        if (k >= 2 && m->params.t[k].ndim == 2) n += m->params.t[k].size;
    if (lm_gpt_save(m, getstr(&c, "--out")) != LM_OK)
        die("cannot save '%s': %s", getstr(&c, "--out"), lm_error());
    printf("sparsity %.4f -> %.4f (%.0f of %.0f weights are zero)\n", before, after, after * n, n);
    if (fflush(stdout) != 0) die("cannot write the output: %s", strerror(errno));
    lm_gpt_free(m);
}

/* ---------------------------------------------------------------------------------------
   lm bench: speed figures. Each benchmark ends with one line of numbers on stdout.
   --------------------------------------------------------------------------------------- */
static const char usage_bench[] =
"usage: lm bench gemm M N K [--bt] [--threads N]\n"
"       lm bench train [--layers 4] [--heads 4] [--embd 128] [--ctx 64] [--batch 12]\n"
"                      [--accum 1] [--vocab 256] [--steps 10] [--threads N]\n"
"       lm bench generate [--model CKPT [--heads N] | --layers 4 --heads 4 --embd 128\n"
"                      --ctx 64 --vocab 256] [--tokens N] [--quantize]\n"
"                      [--quantize-embeddings] [--threads N]\n"
"       lm bench bandwidth [--mb 64] [--threads N]\n"
"\n"
"gemm      C = A B with A M x K and B K x N, row-major (--bt: B given as N x K); the\n"
"          median of repeated runs. Last line: gflops X\n"
"train     training steps of a GPT on random tokens, after 2 warm-up steps; the median\n"
"          step. Last line: ms_per_step X tok_per_s Y peak_rss_mb Z; with --accum A > 1\n"
"          or under lm-mpi (mpirun -np P lm-mpi bench train: P processes of A\n"
"          micro-batches) followed by the medians compute_ms (the gradients),\n"
"          wait_ms (for the slowest process), exchange_ms (summing the gradients\n"
"          across the processes), update_ms (clip and AdamW) and sent_mb, the\n"
"          megabytes the busiest process sends a step (and receives)\n"
"generate  KV-cache generation from a one-token prompt (temperature 0.8, seed 1). By\n"
"          default min(256, n_ctx - 1) tokens, so every token comes from the KV cache;\n"
"          a larger --tokens also measures the sliding window. --quantize first stores\n"
"          the block matrices in Q8_0 (as lm quantize; --quantize-embeddings: wte too); a\n"
"          quantized --model runs as it is. Last line: tok_per_s X weight_mb_per_token Y\n"
"          gb_per_s Z (Y: the weights one token reads, Z = X Y / 1000)\n"
"bandwidth how fast the pool's threads read memory: a buffer of --mb MB summed over and\n"
"          over in chunks, as generation reads its weights; the best of repeated passes.\n"
"          Last line: gb_per_s X\n"
"\n"
"Exit status: 0 success, 1 runtime error, 2 usage error.\n";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#ifdef __APPLE__
    return (double)ru.ru_maxrss / 1048576.0; /* bytes on macOS */
#else
    return (double)ru.ru_maxrss / 1024.0;    /* kilobytes on Linux and the BSDs */
#endif
}

static void bench_gemm(int argc, char **argv) {
    cli c;
    int M, N, K, bt, runs = 0, i;
    double times[1000], t_total = 0;
    float *A, *B, *C;
    size_t na, nb, nc;
    lm_rng rng = lm_rng_seed(1);
    memset(&c, 0, sizeof c);
    c.usage = usage_bench;
    c.max_pos = 3;
    opt_flag(&c, "--bt");
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (c.npos != 3) die_usage("needs three sizes: lm bench gemm M N K");
    M = (int)parse_int("M", c.pos[0], 1, 1048576);
    N = (int)parse_int("N", c.pos[1], 1, 1048576);
    K = (int)parse_int("K", c.pos[2], 1, 1048576);
    bt = (int)geti(&c, "--bt");
    check_fits(4.0 * ((double)M * K + (double)K * N + (double)M * N), "these matrices");
    if ((double)M * K > INT_MAX || (double)K * N > INT_MAX || (double)M * N > INT_MAX)
        die_usage("each matrix must have fewer than 2^31 elements");
    apply_threads(&c);
    na = (size_t)M * K; nb = (size_t)K * N; nc = (size_t)M * N;
    A = (float *)xmalloc(na * sizeof(float));
    B = (float *)xmalloc(nb * sizeof(float));
    C = (float *)xmalloc(nc * sizeof(float));
    for (i = 0; i < (int)na; i++) A[i] = lm_rng_uniform(&rng) - 0.5f;
    for (i = 0; i < (int)nb; i++) B[i] = lm_rng_uniform(&rng) - 0.5f;
    /* one warm-up run, then runs until about half a second has passed (at least 3) */
    lm_gemm(0, bt, M, N, K, 1.0f, A, K, B, bt ? K : N, 0.0f, C, N);
    while (runs < 1000 && (runs < 3 || t_total < 0.5)) {
        double t = now_s();
        lm_gemm(0, bt, M, N, K, 1.0f, A, K, B, bt ? K : N, 0.0f, C, N);
        t = now_s() - t;
        times[runs++] = t;
        t_total += t;
    }
    qsort(times, (size_t)runs, sizeof(double), cmp_double);
    printf("gemm %d x %d x %d%s, %d threads, %s: median %.4f ms over %d runs\n", M, N, K,
           bt ? " (B as N x K)" : "", lm_get_threads(), lm_simd_name(), times[runs / 2] * 1e3,
           runs);
    printf("gflops %.2f\n", 2.0 * M * N * K / times[runs / 2] / 1e9);
    free(A); free(B); free(C);
}

/* A fresh model from the shape options (plus --vocab), after checking it fits. */
static lm_gpt *bench_model(cli *c, double B, double T) {
    lm_gpt_config cfg = shape_config(c, (int)geti(c, "--vocab"));
    lm_gpt *m;
    check_shape(c, cfg.vocab);
    if (B > 0) check_step(B, T, cfg.n_embd, cfg.n_head, cfg.vocab);
    check_fits(lm_gpt_memory(&cfg, (int)B, (int)T), "this model");
    m = lm_gpt_new(&cfg, 1);
    if (!m) die("cannot create the model: %s", lm_error());
    return m;
}

/* The median of x[0..n) (sorts x). */
static double median_of(double *x, int n) {
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Training steps as lm train takes them (accum_grads, then the update): with --accum, A
   micro-batches a step; under lm-mpi, P processes of A micro-batches each, and the last
   line adds how the step divides between computing the gradients, waiting for the
   slowest process, exchanging the gradients and the update, and how many megabytes the
   busiest rank sends a step (it receives as many). Each rank reports its own times;
   rank 0's are printed. */
static void bench_train(int argc, char **argv) {
    cli c;
    lm_gpt *m;
    lm_train_opts o;
    lm_rng rng;
    accum acc;
    int A, B, T, S, s, i, P = team_size();
    double *times, *tc, *tw, *tx, *tu, med, sent = 0;
    memset(&c, 0, sizeof c);
    c.usage = usage_bench;
    opt_shape(&c);
    opt_int(&c, "--batch", 12, 1, 1048576);
    opt_int(&c, "--accum", 1, 1, 1048576);
    opt_int(&c, "--vocab", 256, 1, 16777216);
    opt_int(&c, "--steps", 10, 1, 1000000);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    B = (int)geti(&c, "--batch");
    T = (int)geti(&c, "--ctx");
    S = (int)geti(&c, "--steps");
    A = (int)geti(&c, "--accum");
    m = bench_model(&c, B, T);
    check_fits(lm_gpt_memory(&m->cfg, B, T) + accum_bytes(&m->cfg, A), "this model and batch");
    apply_threads(&c);
    accum_init(&acc, m, A, B, T);
    times = (double *)xmalloc((size_t)S * 5 * sizeof(double));
    tc = times + S; tw = tc + S; tx = tw + S; tu = tx + S;
    o = lm_train_defaults();
    o.steps = S + 2;
    o.warmup = 0;
    rng = lm_rng_seed(2 + (uint64_t)team_rank());
    for (s = 0; s < S + 2; s++) {
        if (s == 2) sent = team_sent();
        double t, t1;
        float loss;
        for (i = 0; i < A * B * T; i++) {
            acc.in[i] = (int)lm_rng_below(&rng, (uint32_t)m->cfg.vocab);
            acc.tg[i] = (int)lm_rng_below(&rng, (uint32_t)m->cfg.vocab);
        }
        t = now_s();
        loss = accum_grads(&acc);
        if (loss != loss) die("training step failed: %s", lm_error());
        t1 = now_s();
        if (lm_params_update_mean(&m->params, P * A, &o, s) != LM_OK)
            die("training step failed: %s", lm_error());
        if (s >= 2) {          /* the first two steps warm up caches and arenas */
            times[s - 2] = now_s() - t;
            tc[s - 2] = acc.t_compute;
            tw[s - 2] = acc.t_wait;
            tx[s - 2] = acc.t_exchange;
            tu[s - 2] = now_s() - t1;
        }
    }
    sent = team_max((team_sent() - sent) / S);   /* bytes a step, the busiest rank's */
    med = median_of(times, S);  /* the median step: steadier than the mean on a shared machine */
    printf("train %d layers, %d heads, %d wide, context %d, vocab %d, batch %d: %lu "
           "parameters, %d threads, %s, %d steps", m->cfg.n_layer, m->cfg.n_head,
           m->cfg.n_embd, T, m->cfg.vocab, B, (unsigned long)lm_gpt_num_params(m),
           lm_get_threads(), lm_simd_name(), S);
    if (P > 1 || A > 1) printf(", %d process%s x %d micro-batches", P, P > 1 ? "es" : "", A);
    printf("\nms_per_step %.3f tok_per_s %.1f peak_rss_mb %.1f", med * 1e3,
           (double)B * T * A * P / med, peak_rss_mb());
    if (P > 1 || A > 1)
        printf(" compute_ms %.3f wait_ms %.3f exchange_ms %.3f update_ms %.3f sent_mb %.3f",
               median_of(tc, S) * 1e3, median_of(tw, S) * 1e3, median_of(tx, S) * 1e3,
               median_of(tu, S) * 1e3,
               sent / 1e6);
    printf("\n");
    free(times);
    accum_free(&acc);
    lm_gpt_free(m);
}

static void bench_generate(int argc, char **argv) {
    cli c;
    lm_gpt *m;
    lm_sampler smp;
    int n, start = '\n';
    double t;
    memset(&c, 0, sizeof c);
    c.usage = usage_bench;
    opt_str(&c, "--model", NULL, NULL);
    opt_shape(&c);
    opt_int(&c, "--vocab", 256, 1, 16777216);
    opt_int(&c, "--tokens", 256, 1, 100000000);
    opt_flag(&c, "--quantize");
    opt_flag(&c, "--quantize-embeddings");
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (seen(&c, "--model")) {
        static const char *const shape[4] = { "--layers", "--embd", "--ctx", "--vocab" };
        int k;
        for (k = 0; k < 4; k++)
            if (seen(&c, shape[k]))
                die_usage("%s cannot be used with --model: the shape is the checkpoint's", shape[k]);
        m = load_model(getstr(&c, "--model"), heads_for(&c, getstr(&c, "--model")));
    } else {
        m = bench_model(&c, 0, 0);
    }
    if (geti(&c, "--quantize") || geti(&c, "--quantize-embeddings")) {
        lm_gpt *q;
        if (m->cfg.quant != LM_QUANT_NONE) die_usage("--quantize: the model is quantized already");
        q = lm_gpt_quantize(m, geti(&c, "--quantize-embeddings") ? LM_QUANT_Q8_0_EMB : LM_QUANT_Q8_0);
        if (!q) die("cannot quantize the model: %s", lm_error());
        lm_gpt_free(m);
        m = q;
    }
    /* by default stay within the context: one prompt token, then n_ctx - 1 new ones at
       most, each a single step through the KV cache (no window sliding) */
    n = (int)geti(&c, "--tokens");
    if (!seen(&c, "--tokens") && n > m->cfg.n_ctx - 1) n = m->cfg.n_ctx > 1 ? m->cfg.n_ctx - 1 : 1;
    if (start >= m->cfg.vocab) start = 0;
    apply_threads(&c);
    smp = lm_sampler_defaults(1);
    t = now_s();
    if (lm_gpt_generate(m, &start, 1, n, &smp, NULL, NULL, NULL) != LM_OK)
        die("generation failed: %s", lm_error());
    t = now_s() - t;
    printf("generate %d tokens: %d layers, %d heads, %d wide, context %d, vocab %d, %s "
           "weights, %d threads, %s\n", n, m->cfg.n_layer, m->cfg.n_head, m->cfg.n_embd,
           m->cfg.n_ctx, m->cfg.vocab, m->cfg.quant == LM_QUANT_Q8_0 ? "Q8_0" :
           m->cfg.quant == LM_QUANT_Q8_0_EMB ? "Q8_0 (and wte)" : "float32", lm_get_threads(),
           lm_simd_name());
    {
        /* the weights a token reads: every matrix once, the head (wte), and one row of wte
           and wpe; a Q8_0 matrix is 1 byte a weight plus an F16 scale per 32 */
        double bytes = 0;
        int k;
        for (k = 0; k < m->params.n; k++) {
            const lm_tensor *w = &m->params.t[k];
            double sz = w->q8 ? (double)LM_Q8_VALUES(w->q8->out, w->q8->in) +
                                2.0 * (double)LM_Q8_SCALES(w->q8->out, w->q8->in)
                              : 4.0 * w->size;
            if (k == 1) sz = 4.0 * m->cfg.n_embd;  /* wpe: one row */
            bytes += sz;
        }
        printf("tok_per_s %.1f weight_mb_per_token %.3f gb_per_s %.2f\n", n / t, bytes / 1e6,
               n / t * bytes / 1e9);
    }
    lm_gpt_free(m);
}

/* lm bench bandwidth: read a buffer as fast as the pool can, chunk by chunk. */
typedef struct { const float *p; size_t n; double *part; } bench_bw_job;
#define BENCH_BW_CHUNK (64 * 1024)                 /* floats a task: 256 KB            */
static void bench_bw_task(void *ctx, int c) {
    bench_bw_job *J = (bench_bw_job *)ctx;
    size_t i, i0 = (size_t)c * BENCH_BW_CHUNK, i1 = i0 + BENCH_BW_CHUNK;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    if (i1 > J->n) i1 = J->n;
    for (i = i0; i + 8 <= i1; i += 8) {            /* eight sums: the compiler vectorizes */
        s0 += J->p[i]; s1 += J->p[i + 1]; s2 += J->p[i + 2]; s3 += J->p[i + 3];
        s4 += J->p[i + 4]; s5 += J->p[i + 5]; s6 += J->p[i + 6]; s7 += J->p[i + 7];
    }
    J->part[c] = (double)s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}
static void bench_bandwidth(int argc, char **argv) {
    cli c;
    bench_bw_job J;
    size_t i;
    int tasks, pass;
    double best = 1e30, sum = 0;
    float *buf;
    memset(&c, 0, sizeof c);
    c.usage = usage_bench;
    opt_int(&c, "--mb", 64, 1, 65536);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    J.n = (size_t)geti(&c, "--mb") << 18;          /* MB in floats */
    check_fits(4.0 * (double)J.n, "this buffer");
    apply_threads(&c);
    buf = (float *)xmalloc(J.n * sizeof(float));
    for (i = 0; i < J.n; i++) buf[i] = (float)(i & 7);
    tasks = (int)((J.n + BENCH_BW_CHUNK - 1) / BENCH_BW_CHUNK);
    J.p = buf;
    J.part = (double *)xmalloc((size_t)tasks * sizeof(double));
    for (pass = 0; pass < 40; pass++) {            /* the first passes warm up */
        double t = now_s();
        int k;
        lm_parallel_for(tasks, bench_bw_task, &J);
        t = now_s() - t;
        for (k = 0; k < tasks; k++) sum += J.part[k];
        if (pass >= 2 && t < best) best = t;
    }
    printf("bandwidth: %d MB read by %d threads, best of 38 passes: %.3f ms (checksum %g)\n",
           (int)geti(&c, "--mb"), lm_get_threads(), best * 1e3, sum);
    printf("gb_per_s %.2f\n", 4.0 * (double)J.n / best / 1e9);
    free(buf); free(J.part);
}

/* A subcommand with subcommands of its own (lm bench WHICH, lm s2s WHICH): --help, or run
   the one named, under the name "CMD WHICH" for messages. */
static void sub_dispatch(int argc, char **argv, const char *cmd, const char *what,
                         const char *list, const char *usage, const char *const *names,
                         void (*const *runs)(int, char **), int n) {
    static char name[64];
    int k;
    if (argc < 1) die_usage("which %s? %s (see %s --help)", what, list, cmd);
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(usage, stdout);
        team_end();
        exit(0);
    }
    for (k = 0; k < n && strcmp(argv[0], names[k]); k++) {}
    if (k == n) die_usage("unknown %s '%s': %s", what, argv[0], list);
    snprintf(name, sizeof name, "%s %s", g_cmd, names[k]);   /* g_cmd: LM_TOOL " CMD" */
    g_cmd = name;
    runs[k](argc - 1, argv + 1);
}

static void cmd_bench(int argc, char **argv) {
    static const char *const names[4] = { "gemm", "train", "generate", "bandwidth" };
    static void (*const runs[4])(int, char **) = { bench_gemm, bench_train, bench_generate,
                                                   bench_bandwidth };
    /* lm-mpi: bench train shares its work among the processes; the others are for one */
    if (team_size() > 1 && argc > 0 && strcmp(argv[0], "train"))
        die_usage("runs on one process only (bench train runs on several)");
    sub_dispatch(argc, argv, "lm bench", "benchmark", "gemm, train, generate or bandwidth",
                 usage_bench, names, runs, 4);
}

/* ---------------------------------------------------------------------------------------
   Tokenizer commands: lm bpe, lm tokenize, lm detokenize.
   --------------------------------------------------------------------------------------- */
static const char usage_bpe[] =
"usage: lm bpe --data FILE --vocab N --out TOK [--threads N]\n"
"\n"
"Learn a byte-level BPE tokenizer of at most N tokens (256 <= N <= 1048576: the 256 bytes\n"
"plus N-256 merges) from FILE, and write it to TOK (the lm-bpe text format).\n";

static void cmd_bpe(int argc, char **argv) {
    cli c;
    lm_tokenizer *t;
    unsigned char *bytes;
    size_t n;
    const char *out;
    memset(&c, 0, sizeof c);
    c.usage = usage_bpe;
    opt_str(&c, "--data", NULL, NULL);
    opt_int(&c, "--vocab", 0, 256, 1048576);
    opt_str(&c, "--out", NULL, NULL);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (!seen(&c, "--data")) die_usage("--data FILE is required (see lm bpe --help)");
    if (!seen(&c, "--vocab")) die_usage("--vocab N is required (see lm bpe --help)");
    if (!seen(&c, "--out")) die_usage("--out TOK is required (see lm bpe --help)");
    apply_threads(&c);
    out = getstr(&c, "--out");
    bytes = read_file(getstr(&c, "--data"), &n);
    check_writable(out);
    t = lm_tok_train(bytes, n, (int)geti(&c, "--vocab"));
    if (!t) die("BPE training failed: %s", lm_error());
    if (lm_tok_save(t, out) != LM_OK) die("cannot write '%s': %s", out, lm_error());
    note("%d tokens (%d merges) learned from %lu bytes; wrote '%s'", lm_tok_vocab_size(t),
         lm_tok_vocab_size(t) - 256, (unsigned long)n, out);
    lm_tok_free(t);
    free(bytes);
}

static const char usage_tokenize[] =
"usage: lm tokenize [--tokenizer TOK | --gpt2 DIR] [--text T] [--threads N]\n"
"\n"
"Print the token ids of T (or of stdin when --text is absent) on one line, separated by\n"
"single spaces. Default tokenizer: raw bytes (id = byte value).\n";

static void cmd_tokenize(int argc, char **argv) {
    cli c;
    cli_tok tok;
    unsigned char *text;
    int *ids;
    size_t n, len, i;
    memset(&c, 0, sizeof c);
    c.usage = usage_tokenize;
    opt_tok(&c);
    opt_text(&c, "--text", NULL);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    tok_check_opts(&c);
    apply_threads(&c);
    tok_open(&c, &tok);
    if (seen(&c, "--text")) {
        len = strlen(getstr(&c, "--text"));
        text = (unsigned char *)xmalloc(len);
        memcpy(text, getstr(&c, "--text"), len);
    } else {
        text = read_stream(stdin, "stdin", &len);
    }
    ids = tok_encode(&tok, text, len, &n);
    for (i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    if (fflush(stdout) != 0 || ferror(stdout)) die("cannot write the output: %s", strerror(errno));
    free(ids);
    free(text);
    tok_close(&tok);
}

static const char usage_detokenize[] =
"usage: lm detokenize [--tokenizer TOK | --gpt2 DIR] [--threads N]\n"
"\n"
"Read token ids from stdin (decimal, separated by any whitespace) and write the bytes they\n"
"stand for to stdout. Default tokenizer: raw bytes (id = byte value).\n";

static void cmd_detokenize(int argc, char **argv) {
    cli c;
    cli_tok tok;
    unsigned char *text;
    int *ids;
    size_t len, n = 0, i = 0;
    memset(&c, 0, sizeof c);
    c.usage = usage_detokenize;
    opt_tok(&c);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    tok_check_opts(&c);
    apply_threads(&c);
    tok_open(&c, &tok);
    text = read_stream(stdin, "stdin", &len);
    ids = (int *)xmalloc((len / 2 + 1) * sizeof(int)); /* each id takes >= 2 bytes but the last */
    while (i < len) {
        size_t j;
        long v = 0;
        if (isspace(text[i])) { i++; continue; }
        for (j = i; j < len && !isspace(text[j]); j++) {
            if (!isdigit(text[j]) || v > 100000000) v = -1;
            if (v >= 0) v = v * 10 + (text[j] - '0');
            if (v < 0) break;
        }
        if (v < 0 || v >= tok.vocab) {
            size_t e = i;
            while (e < len && !isspace(text[e]) && e - i < 40) e++;
            die("'%.*s' is not a token id in [0, %d)", (int)(e - i), (const char *)text + i, tok.vocab);
        }
        ids[n++] = (int)v;
        i = j;
    }
    if (tok_write(&tok, ids, n, stdout) != 0) die("cannot decode: %s", lm_error());
    if (fflush(stdout) != 0 || ferror(stdout)) die("cannot write the output: %s", strerror(errno));
    free(ids);
    free(text);
    tok_close(&tok);
}

/* ---------------------------------------------------------------------------------------
   lm plot: the CSV log of lm train --log as an SVG picture (tools/lm_plot.h draws it).
   --------------------------------------------------------------------------------------- */
static const char usage_plot[] =
"usage: lm plot LOG.csv [--out FILE.svg] [--title TEXT] [--threads N]\n"
"\n"
"Draw the CSV log that lm train --log writes as an SVG picture: the train loss (faint)\n"
"and its moving average (bold), the validation loss at each eval, and the learning rate\n"
"on a second axis. Columns are found by name (step, loss, lr, val_loss); others are\n"
"ignored, and empty or NaN cells are skipped.\n"
"\n"
"  --out FILE.svg         where to write it (default: LOG with .csv replaced by .svg)\n"
"  --title TEXT           the title (default: the log's file name)\n"
"  --threads N            accepted as by every subcommand (drawing uses one)\n"
"\n"
"Exit status: 0 drawn; 2 a bad command line; 1 the log is missing, unreadable or has\n"
"no data rows, or the picture cannot be written (an old FILE.svg is then untouched).\n";

static void cmd_plot(int argc, char **argv) {
    cli c;
    lmplot_series s;
    char err[512], *out;
    const char *log, *title, *base;
    size_t n;
    memset(&c, 0, sizeof c);
    c.usage = usage_plot;
    c.max_pos = 1;
    opt_str(&c, "--out", NULL, NULL);
    opt_text(&c, "--title", NULL);
    opt_threads(&c);
    cli_parse(&c, argc, argv);
    if (c.npos != 1) die_usage("give the CSV log to draw (see lm plot --help)");
    log = c.pos[0];
    n = strlen(log);
    out = (char *)xmalloc((getstr(&c, "--out") ? strlen(getstr(&c, "--out")) : n) + 5);
    if (getstr(&c, "--out")) strcpy(out, getstr(&c, "--out"));
    else {
        strcpy(out, log);
        if (n >= 4 && !strcmp(out + n - 4, ".csv")) out[n - 4] = 0;
        strcat(out, ".svg");
    }
    if (!strcmp(out, log)) die_usage("--out '%s' is the log itself", out);
    check_writable(out);
    base = strrchr(log, '/');
    title = getstr(&c, "--title") ? getstr(&c, "--title") : base ? base + 1 : log;
    if (lmplot_read_csv(log, &s, err, sizeof err) != 0) die("%s", err);
    if (lmplot_loss_svg(&s, title, out, err, sizeof err) != 0) die("%s", err);
    note("%d rows of '%s' drawn to '%s'", s.n, log, out);
    lmplot_free(&s);
    free(out);
}

/* ---------------------------------------------------------------------------------------
   lm version (also lm --version): one line on stdout, the tool's version, then the lm.h it
   was built with and which kernels that build runs.
   --------------------------------------------------------------------------------------- */
static const char usage_version[] =
"usage: lm version        (or lm --version)\n"
"\n"
"Print one line: the version of lm, then that of the lm.h it was built with and the\n"
"kernels it runs (avx512, avx2, neon or scalar), e.g.\n"
"    lm 0.1.0 (lm.h 0.1.0, avx2 kernels)\n";

static void cmd_version(int argc, char **argv) {
    cli c;
    memset(&c, 0, sizeof c);
    c.usage = usage_version;
    cli_parse(&c, argc, argv);
    printf(LM_TOOL " %s (lm.h %s, %s kernels)\n", LM_VERSION_STRING, lm_version(), lm_simd_name());
}

/* ---------------------------------------------------------------------------------------
   main: pick the subcommand.
   --------------------------------------------------------------------------------------- */
static const char usage_main[] =
"usage: lm COMMAND [options]        (lm COMMAND --help for each one's options)\n"
"\n"
"  train       train a GPT on a text file\n"
"  generate    continue a prompt with a trained model\n"
"  eval        loss and perplexity of a model on a text file\n"
"  info        configuration and tensors of a checkpoint\n"
"  bench       speed figures: gemm, train, generate, bandwidth\n"
"  bpe         learn a byte-level BPE tokenizer\n"
"  tokenize    text to token ids\n"
"  detokenize  token ids to text\n"
"  plot        draw a training log (lm train --log) as an SVG picture\n"
"  s2s         encoder-decoder on pairs of texts: s2s train, s2s eval, s2s translate\n"
"  version     the version of lm and of lm.h (also lm --version)\n"
"  quantize    store a checkpoint's weights in Q8_0 (int8 blocks: about 3x smaller)\n"
"  prune       set the smallest weights of each block matrix to zero\n"
"\n"
"Results go to stdout; progress, notes and errors to stderr.\n"
"Exit status: 0 success, 1 runtime error (a file missing or malformed, a NaN loss), 2\n"
"usage error (a bad flag or value); each error is one line on stderr. lm train stopped\n"
"by SIGINT or SIGTERM saves its checkpoint and exits with 130 or 143.\n";

typedef struct command { const char *name; void (*run)(int argc, char **argv); } command;
static const command g_commands[] = {
    { "train", cmd_train }, { "generate", cmd_generate }, { "eval", cmd_eval },
    { "info", cmd_info }, { "bench", cmd_bench }, { "bpe", cmd_bpe },
    { "plot", cmd_plot }, { "tokenize", cmd_tokenize }, { "detokenize", cmd_detokenize },
    { "version", cmd_version }, { "s2s", cmd_s2s }, { "quantize", cmd_quantize },
    { "prune", cmd_prune }
};

int main(int argc, char **argv) {
    static char name[64];
    size_t k;
    const char *cmd;
    team_start(&argc, &argv);
    if (argc < 2) {
        if (team_rank() == 0) fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "--version")) cmd = "version";
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        /* lm help CMD is lm CMD --help */
        if (!strcmp(cmd, "help") && argc > 2) {
            char *help[1];
            help[0] = (char *)"--help";
            for (k = 0; k < sizeof g_commands / sizeof g_commands[0]; k++)
                if (!strcmp(argv[2], g_commands[k].name)) g_commands[k].run(1, help);
        }
        fputs(usage_main, stdout);
        team_end();
        return 0;
    }
    for (k = 0; k < sizeof g_commands / sizeof g_commands[0]; k++) {
        if (strcmp(cmd, g_commands[k].name)) continue;
        sprintf(name, LM_TOOL " %s", g_commands[k].name);
        g_cmd = name;
        /* lm-mpi: train, eval and bench train share the work among the processes; the
           rest are for one process */
        if (team_size() > 1 && strcmp(cmd, "train") && strcmp(cmd, "eval") && strcmp(cmd, "bench"))
            die_usage("runs on one process only (train, eval and bench train run on several); "
                      "use lm %s, or mpirun -np 1", cmd);
        g_commands[k].run(argc - 2, argv + 2);
        team_end();
        return 0;
    }
    die_usage("unknown command '%s' (see lm --help)", cmd);
    return EXIT_USAGE;
}
