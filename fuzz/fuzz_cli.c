/* fuzz_cli.c - libFuzzer target for the command line of tools/lm_cli.c.

   Build (make fuzz does this):
       clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_cli.c \
             -o fuzz/cli-fuzz -lm -lpthread

   The input is a command line: arguments separated by NUL bytes (so an argument can be
   empty, or hold spaces, quotes, newlines or invalid UTF-8), up to the first byte 0x01;
   whatever follows the 0x01 is the program's stdin (lm tokenize and lm detokenize read
   it). For example "detokenize\0--threads\0" "2\x01" "72 105" runs
   `lm detokenize --threads 2` with "72 105" on stdin.

   tools/lm_cli.c is included here whole, with four names redirected by the preprocessor, so
   the file itself needs no hook:
     main   -> lm_cli_main, called once per input;
     exit   -> fuzz_exit, which jumps back here (longjmp) with the status;
     fopen  -> fuzz_fopen, which fails for every path with ENOENT: no file is ever
               written, and none is read, so nothing trains or generates for long and
               nothing is left behind - every subcommand stops at its first file, after all
               its option parsing and checking. One exception: the subcommands that only
               read and print (info, plot, tokenize, detokenize, bpe) may open the path
               "@in" for reading, which gives the stdin part of the input: so `lm plot @in`
               parses a fuzzed CSV log, `lm info --model @in` a fuzzed checkpoint and
               `lm tokenize --tokenizer @in` a fuzzed tokenizer file, through the tool;
     fclose -> fuzz_fclose, to know which of those streams are still open at an exit;
     malloc, realloc, free -> versions that keep a table of the live blocks, so the blocks
               a subcommand still holds when it exits (as a real process may) are freed,
               and blocks left after a normal return are reported as leaks.
   `lm bench gemm|train|generate` computes without opening any file, so those inputs run
   only when they ask for --help or -h (anything else returns at once); `lm bench` alone
   and an unknown benchmark still run.

   Then the command line's contract is checked: the status is 0, 1 or 2; a failure prints
   exactly one line on stderr, starting "lm"; a usage error (2) prints nothing on stdout.
   stdout and stderr are captured in memory (open_memstream) for this; with the environment
   variable FUZZ_CLI_ECHO set, both are shown with the status, to look at an input by hand. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <errno.h>
#include <setjmp.h>

/* The redirections, declared before tools/lm_cli.c is read. */
#if defined(__GNUC__) || defined(__clang__)
static void fuzz_exit(int status) __attribute__((noreturn));
#else
static void fuzz_exit(int status);
#endif
static FILE *fuzz_fopen(const char *path, const char *mode);
static int fuzz_fclose(FILE *f);
static void *fuzz_malloc(size_t n);
static void *fuzz_realloc(void *p, size_t n);
static void fuzz_free(void *p);

#define main lm_cli_main
#define exit fuzz_exit
#define fopen fuzz_fopen
#define fclose fuzz_fclose
#define malloc fuzz_malloc
#define realloc fuzz_realloc
#define free fuzz_free
#include "tools/lm_cli.c"
#undef main
#undef exit
#undef fopen
#undef fclose
#undef malloc
#undef realloc
#undef free

#define FUZZ_ASSERT(cond, what) do { if (!(cond)) { \
    fprintf(fuzz_real_stderr, "fuzz_cli: %s [%s]\n", what, #cond); abort(); } } while (0)

static jmp_buf fuzz_jump;
static int fuzz_in_cli;                  /* lm_cli_main is running: exit may jump       */
static FILE *fuzz_real_stderr;

static void fuzz_exit(int status) {
    if (!fuzz_in_cli) exit(status);
    longjmp(fuzz_jump, status + 1);      /* + 1: setjmp's 0 means "first time through"  */
}

/* The stdin part of the input, which "@in" also reads; whether "@in" may be opened; the
   "@in" streams still open. */
static const char *fuzz_in_data;
static size_t fuzz_in_len;
static int fuzz_in_allowed;
#define FUZZ_OPEN_MAX 16
static FILE *fuzz_open[FUZZ_OPEN_MAX];
static int fuzz_nopen;

static FILE *fuzz_fopen(const char *path, const char *mode) {
    FILE *f;
    if (!fuzz_in_allowed || strcmp(path, "@in") || mode[0] != 'r' || strchr(mode, '+') ||
        fuzz_nopen == FUZZ_OPEN_MAX) {
        errno = ENOENT;
        return NULL;
    }
    f = fuzz_in_len ? fmemopen((void *)fuzz_in_data, fuzz_in_len, "r") : fopen("/dev/null", "r");
    if (f) fuzz_open[fuzz_nopen++] = f;
    return f;
}
static int fuzz_fclose(FILE *f) {
    int i;
    for (i = 0; i < fuzz_nopen; i++)
        if (fuzz_open[i] == f) { fuzz_open[i] = fuzz_open[--fuzz_nopen]; break; }
    return fclose(f);
}

/* The live blocks of the current input. A full table stops tracking (no leak check then);
   the CLI holds a handful of blocks at a time. */
#define FUZZ_LIVE_MAX 4096
static void *fuzz_live[FUZZ_LIVE_MAX];
static int fuzz_nlive, fuzz_overflow;

static void fuzz_track(void *p) {
    if (!p) return;
    if (fuzz_nlive < FUZZ_LIVE_MAX) fuzz_live[fuzz_nlive++] = p;
    else fuzz_overflow = 1;
}
static void fuzz_untrack(void *p) {
    int i;
    for (i = fuzz_nlive - 1; i >= 0; i--)
        if (fuzz_live[i] == p) { fuzz_live[i] = fuzz_live[--fuzz_nlive]; return; }
}
static void *fuzz_malloc(size_t n) {
    void *p = malloc(n);
    fuzz_track(p);
    return p;
}
static void *fuzz_realloc(void *p, size_t n) {
    void *q;
    if (p) fuzz_untrack(p);
    q = realloc(p, n);
    fuzz_track(q ? q : p);               /* on failure the old block is still live      */
    return q;
}
static void fuzz_free(void *p) {
    if (p) fuzz_untrack(p);
    free(p);
}

static int fuzz_lines(const char *s, size_t n) {
    size_t i;
    int k = 0;
    for (i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

/* Run lm_cli_main; an exit comes back here through longjmp. Returns the status, and sets
   *exited when it came through exit. (Apart, so no caller's variable lives across the
   setjmp.) */
static int fuzz_run(int argc, char **argv, int *exited) {
    int code;
    fuzz_in_cli = 1;
    code = setjmp(fuzz_jump);
    if (code == 0) {
        code = lm_cli_main(argc, argv);
        *exited = 0;
    } else {
        code -= 1;
        *exited = 1;
    }
    fuzz_in_cli = 0;
    return code;
}

/* Does argv[1..argc) contain --help or -h? */
static int fuzz_asks_help(int argc, char **argv) {
    int k;
    for (k = 1; k < argc; k++)
        if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) return 1;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_real_stderr = stderr;
    return 0;
}

#define FUZZ_MAX_ARGS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf, *argv[FUZZ_MAX_ARGS + 2], *out_text = NULL, *err_text = NULL;
    size_t cmd_len, in_len, out_len = 0, err_len = 0, i;
    const uint8_t *soh = size ? (const uint8_t *)memchr(data, 1, size) : NULL;
    FILE *saved_in = stdin, *saved_out = stdout, *saved_err = stderr, *in;
    int argc = 1, status, lenient;
    int jumped;

    /* argv: "lm", then the NUL-separated arguments before the 0x01 */
    cmd_len = soh ? (size_t)(soh - data) : size;
    in_len = soh ? size - cmd_len - 1 : 0;
    buf = (char *)malloc(size + 2);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[cmd_len] = 0;
    argv[0] = (char *)"lm";
    if (cmd_len > 0) {
        argv[argc++] = buf;
        for (i = 0; i < cmd_len && argc <= FUZZ_MAX_ARGS; i++)
            if (buf[i] == 0) argv[argc++] = buf + i + 1;
    }
    argv[argc] = NULL;
    if (argc > FUZZ_MAX_ARGS) { free(buf); return 0; }
    /* the benchmarks run without any file: only their --help is safe to run here */
    if (argc >= 3 && !strcmp(argv[1], "bench") && !fuzz_asks_help(argc, argv) &&
        (!strcmp(argv[2], "gemm") || !strcmp(argv[2], "train") || !strcmp(argv[2], "generate"))) {
        free(buf);
        return 0;
    }

    /* stdin (and "@in") from the input; stdout and stderr into memory */
    fuzz_in_data = buf + cmd_len + 1;
    fuzz_in_len = in_len;
    fuzz_in_allowed = argc >= 2 && (!strcmp(argv[1], "info") || !strcmp(argv[1], "plot") ||
                                    !strcmp(argv[1], "tokenize") || !strcmp(argv[1], "detokenize") ||
                                    !strcmp(argv[1], "bpe"));
    in = in_len ? fmemopen(buf + cmd_len + 1, in_len, "r") : fopen("/dev/null", "r");
    if (!in) { free(buf); return 0; }
    stdin = in;
    stdout = open_memstream(&out_text, &out_len);
    stderr = open_memstream(&err_text, &err_len);
    FUZZ_ASSERT(stdout && stderr, "open_memstream");

    /* run it: a return gives the status directly, an exit comes back through longjmp */
    g_cmd = "lm";
    g_live_line = 0;
    fuzz_nlive = 0;
    fuzz_overflow = 0;
    status = fuzz_run(argc, argv, &jumped);

    if (!jumped) FUZZ_ASSERT(fuzz_nopen == 0, "a subcommand that returned left a file open");
    while (fuzz_nopen > 0) fclose(fuzz_open[--fuzz_nopen]);  /* left open by an exit */
    fclose(stdout);
    fclose(stderr);
    fclose(stdin);
    stdin = saved_in;
    stdout = saved_out;
    stderr = saved_err;

    /* the pool's workers and this thread give back the GEMM panel blocks lm.h keeps for
       them (a worker frees its own as it ends: freed here as well, it would be freed twice) */
    lm_set_threads(1);
    lm_thread_release();
    /* blocks still held: freed after an exit (the process would have ended), a leak
       after a normal return */
    if (!jumped && !fuzz_overflow && fuzz_nlive > 0)
        FUZZ_ASSERT(0, "blocks leaked by a subcommand that returned normally");
    while (fuzz_nlive > 0) free(fuzz_live[--fuzz_nlive]);

    if (getenv("FUZZ_CLI_ECHO")) {       /* for looking at one input by hand */
        fprintf(fuzz_real_stderr, "status %d\n--- stdout\n", status);
        fwrite(out_text, 1, out_len, fuzz_real_stderr);
        fprintf(fuzz_real_stderr, "--- stderr\n");
        fwrite(err_text, 1, err_len, fuzz_real_stderr);
    }
    FUZZ_ASSERT(status == 0 || status == 1 || status == 2, "exit status 0, 1 or 2");
    lenient = 0;
#ifdef FUZZ_CLI_LENIENT
    /* -DFUZZ_CLI_LENIENT: a message that may quote an argument holding a line break is
       not held to one line (to look past that known finding while exploring) */
    for (i = 1; i < (size_t)argc; i++)
        if (strpbrk(argv[i], "\n\r")) lenient = 1;
#endif
    if (status != 0 && !lenient) {
        FUZZ_ASSERT((fuzz_lines(err_text, err_len) == 1 && !strncmp(err_text, "lm", 2) &&
                     err_text[err_len - 1] == '\n') || (argc == 1 && status == 2),
                    "a failure prints exactly one line on stderr, starting \"lm\"");
    }
    if (status == 2) FUZZ_ASSERT(out_len == 0, "a usage error prints nothing on stdout");
    free(out_text);
    free(err_text);
    free(buf);
    return 0;
}
