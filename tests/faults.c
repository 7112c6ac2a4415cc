/* tests/faults.c - lm.h when the machine fails under it: `make test-faults`.

   What the other suites take for granted is taken away here, one piece at a time, as
   SQLite's tests do: memory, the disk, the process itself. One file, built twice:

     out/faults     the suite below. lm.h's LM_MALLOC/LM_FREE go to a counting allocator
                    that can fail any allocation, and the file calls lm.h makes (fopen,
                    fwrite, fflush, fsync, fclose, rename, and open of a directory) go
                    through wrappers that can fail any one of them. Built with
                    AddressSanitizer and LeakSanitizer.
     out/lm_faults  (-DFAULTS_CLI) the `lm` command line with the same file-call wrappers,
                    armed from the environment: LM_FAULT_IO=K makes the K-th file call fail
                    (as a full disk would: ENOSPC for writes, EIO otherwise), LM_FAULT_KILL=K
                    kills the process with SIGKILL just before the K-th call.

   The suite:
     1. Allocation failure at every site. Each public operation that allocates runs with
        its 1st, 2nd, 3rd ... allocation failing - that one only, and then from that one
        on - until it succeeds. Each failure must return an error (code, NULL or NaN) with
        a message from lm_error() that says memory, hold no memory (the allocator counts
        live blocks), and leave the object it worked on usable: the operation then
        succeeds on the same object, with exactly the result of a run that never failed.
        Prints how many failure points were tried and which of lm.h's allocation sites
        they reached.
     2. I/O failure at every call of a save: lm_gpt_save, lm_gpt_save_state,
        lm_gpt_save_with_state, lm_seq2seq_save_with_state and lm_tok_save, with their 1st,
        2nd ... file call failing.
        Each time: an error; the previous files still load and are byte for byte what they
        were (or, where the failure came after a commit, the new ones are complete and
        load); no temporary file left behind; then the save succeeds.
     3. `lm train` (out/lm_faults) with --save-every 1, --log and --plot, with each of its
        file calls failing in turn, with files limited in size (RLIMIT_FSIZE: a disk that
        fills), and with --log /dev/full: exit status 0 or 1, never a crash; on 1 the last
        line of stderr says what failed; no temporary file left; and --resume from what it
        left ends with exactly the checkpoint of a run that never failed.
     4. Kills: the same run killed (SIGKILL) just before each of its file calls, then at
        random moments; each time --resume either continues to exactly the checkpoint,
        resume state and log of a run never killed, or refuses with exit status 1 and one
        clear line - never a crash, never a silently different run.
   Last line: N passed, M failed. Run from the repository root (it reads lm.h, to count the
   allocation sites, and tests/gpt2/). */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <dirent.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/ioctl.h>

/* ---------------------------------------------------------------------------------------
   The file calls. Calls on stdin, stdout and stderr are left alone; every other call is
   counted from fio_arm, and the armed one fails (or kills). fread is not among them: a
   failed read cannot be told from the end of a file through the wrappers.
   --------------------------------------------------------------------------------------- */
static long fio_calls;         /* file calls since fio_arm                                  */
static long fio_fail_at;       /* the call that fails (1-based); 0 = none                   */
static long fio_kill_at;       /* the call before which the process kills itself; 0 = none  */
static char fio_failed[300];   /* what the failed call was: "rename m.safetensors.tmp", ... */
static int fio_dirfd[64], fio_ndir;   /* descriptors of directories (from open)             */

static const char *fio_report;  /* (lm_faults) a file to append the failed call's name to */
static int fio_nosync;          /* fsync only pretends: kills and failed calls are what is
                                   tested here, not power cuts, and syncs take seconds */
static void fio_arm(long fail_at) { fio_calls = 0; fio_fail_at = fail_at; fio_failed[0] = 0; }
static int fio_std(FILE *f) { return f == stdin || f == stdout || f == stderr; }
/* Count a call; 1 if it is to fail. */
static int fio_hit(const char *what, const char *path) {
    long k = ++fio_calls;
    if (fio_kill_at && k == fio_kill_at) kill(getpid(), SIGKILL);
    if (!fio_fail_at || k != fio_fail_at) return 0;
    if (path && strrchr(path, '/')) path = strrchr(path, '/') + 1;
    snprintf(fio_failed, sizeof fio_failed, "%s%s%s", what, path ? " " : "", path ? path : "");
    if (fio_report) {                            /* the real calls: no macros here yet */
        FILE *f = fopen(fio_report, "a");
        if (f) { fprintf(f, "%s\n", fio_failed); fclose(f); }
    }
    return 1;
}
static FILE *fio_fopen(const char *path, const char *mode) {
    if (fio_hit("fopen", path)) { errno = strchr(mode, 'r') && !strchr(mode, '+') ? EIO : ENOSPC; return NULL; }
    return fopen(path, mode);
}
static size_t fio_fwrite(const void *p, size_t size, size_t n, FILE *f) {
    if (!fio_std(f) && fio_hit("fwrite", NULL)) { errno = ENOSPC; return 0; }
    return fwrite(p, size, n, f);
}
static int fio_fputs(const char *s, FILE *f) {
    if (!fio_std(f) && fio_hit("fputs", NULL)) { errno = ENOSPC; return EOF; }
    return fputs(s, f);
}
static int fio_fflush(FILE *f) {
    if (f && !fio_std(f) && fio_hit("fflush", NULL)) { errno = ENOSPC; return EOF; }
    return fflush(f);
}
static int fio_fclose(FILE *f) {
    if (!fio_std(f) && fio_hit("fclose", NULL)) { fclose(f); errno = EIO; return EOF; }
    return fclose(f);
}
static int fio_rename(const char *from, const char *to) {
    if (fio_hit("rename", from)) { errno = EIO; return -1; }
    return rename(from, to);
}
static int fio_isdir(int fd) {
    int k;
    for (k = 0; k < fio_ndir; k++) if (fio_dirfd[k] == fd) return 1;
    return 0;
}
static int fio_fsync(int fd) {
    if (fio_hit(fio_isdir(fd) ? "fsync-dir" : "fsync", NULL)) { errno = EIO; return -1; }
    return fio_nosync ? 0 : fsync(fd);
}
#if defined(__GNUC__) || defined(__clang__)
__attribute__((unused))                    /* lm_faults calls it; the suite does not */
#endif
static int fio_ftruncate(int fd, off_t len) {
    if (fio_hit("ftruncate", NULL)) { errno = EIO; return -1; }
    return ftruncate(fd, len);
}
static int fio_open(const char *path, int flags, ...) {
    struct stat st;
    int fd;
    if (fio_hit("open", path)) { errno = EIO; return -1; }
    if (flags & O_CREAT) {
        va_list ap;
        int mode;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
        return open(path, flags, (mode_t)mode);
    }
    fd = open(path, flags);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && fio_ndir < 64) fio_dirfd[fio_ndir++] = fd;
    return fd;
}
static int fio_close(int fd) {
    int k;
    for (k = 0; k < fio_ndir; k++) if (fio_dirfd[k] == fd) fio_dirfd[k] = fio_dirfd[--fio_ndir];
    return close(fd);
}
#define fopen fio_fopen
#define fwrite fio_fwrite
#define fputs fio_fputs
#define fflush fio_fflush
#define fclose fio_fclose
#define rename fio_rename
#define fsync fio_fsync
#define ftruncate fio_ftruncate
#define open fio_open
#define close fio_close

#ifdef FAULTS_CLI
/* ---------------------------------------------------------------------------------------
   out/lm_faults: the lm tool with the wrappers, armed from the environment before main.
   --------------------------------------------------------------------------------------- */
__attribute__((constructor)) static void fio_from_env(void) {
    const char *io = getenv("LM_FAULT_IO"), *k = getenv("LM_FAULT_KILL");
    fio_arm(io ? atol(io) : 0);
    fio_kill_at = k ? atol(k) : 0;
    fio_report = getenv("LM_FAULT_REPORT");
    fio_nosync = getenv("LM_FAULT_NOSYNC") != NULL;
}
#include "../tools/lm_cli.c"

#else
/* ---------------------------------------------------------------------------------------
   The allocator: counts allocations from f_arm, fails the armed one (persist: and every
   one after it), remembers which line of lm.h asked, and counts live blocks.
   --------------------------------------------------------------------------------------- */
#define F_MAXLINE 65536
static long f_nalloc, f_fail_at, f_nfailed, f_live;
static int f_persist;
static unsigned char f_site[F_MAXLINE];        /* lm.h lines whose allocation was failed  */
static void *f_malloc(size_t n, int line) {
    void *p;
    f_nalloc++;
    if (f_fail_at && (f_nalloc == f_fail_at || (f_persist && f_nalloc > f_fail_at))) {
        f_nfailed++;
        if (line > 0 && line < F_MAXLINE) f_site[line] = 1;
        return NULL;
    }
    p = malloc(n ? n : 1);
    if (p) f_live++;
    return p;
}
static void f_free(void *p) {
    if (p) { f_live--; free(p); }
}
#define LM_MALLOC(n) f_malloc((n), __LINE__)
#define LM_FREE(p) f_free(p)
#define LM_IMPLEMENTATION
#include "lm.h"

/* The blocks lm.h holds: lm.h keeps a block per thread for the GEMM's packed panels (its
   THREADS docs), allocated by the thread's first product and kept for the next ones. It is
   given back before each count, so every count starts without it and every attempt
   allocates it again: a leak check that holds, and one more allocation site to fail. */
static long f_held(void) {
    lm_thread_release();
    return f_live;
}

static int f_pass, f_fail;
#define CHECK(cond, ...) do { if (cond) f_pass++; else { f_fail++; printf("FAIL %s:%d: ", \
    __FILE__, __LINE__); printf(__VA_ARGS__); printf("  [%s]\n", #cond); } } while (0)

/* ---- one failure point: arm, run, then f_end looks at what happened ------------------- */
static long f_points;              /* failure points tried (allocation)                    */
static void f_arm(long n, int persist) {
    f_nalloc = 0; f_nfailed = 0; f_fail_at = n; f_persist = persist;
    lm_clear_error();
}
/* After the operation: ok says whether it reports success. Returns 1 if an allocation was
   made to fail (sweep on), 0 if none was (the operation ran whole: the sweep ends). An
   operation may succeed despite a failed allocation only if optional (a cache). */
static int f_end(const char *what, long n, int persist, int ok, int optional) {
    int hit = f_nfailed > 0;
    f_fail_at = 0;
    if (!hit) {
        CHECK(ok, "%s: fails with no allocation failing: %s", what, lm_error());
        return 0;
    }
    f_points++;
    if (ok) {
        CHECK(optional, "%s: allocation %ld failed%s, yet it reports success", what, n,
              persist ? " (and all after it)" : "");
    } else {
        const char *e = lm_error();
        CHECK(strcmp(e, "no error") && (strstr(e, "memory") || strstr(e, "allocate")),
              "%s: allocation %ld failed%s: the message should say so: '%s'", what, n,
              persist ? " (and all after it)" : "", e);
    }
    return 1;
}

/* ---- fixtures ------------------------------------------------------------------------ */
static const lm_gpt_config f_cfg = {2, 2, 16, 8, 64, LM_QUANT_NONE}; /* layers, heads, embd, ctx, V */
enum { F_B = 2, F_T = 8, F_STEPS = 3 };
static int f_in[F_STEPS][F_B * F_T], f_tg[F_STEPS][F_B * F_T];
static char f_dir[64];
static const char *f_path(const char *name) {
    static char buf[8][320];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, sizeof buf[0], "%s/%s", f_dir, name);
    return p;
}
static void f_batches(void) {
    lm_rng r = lm_rng_seed(3);
    int s, i;
    for (s = 0; s < F_STEPS; s++)
        for (i = 0; i < F_B * F_T; i++) {
            f_in[s][i] = (int)lm_rng_below(&r, 64);
            f_tg[s][i] = (int)lm_rng_below(&r, 64);
        }
}
static lm_train_opts f_opts(void) {
    lm_train_opts o = lm_train_defaults();
    o.steps = 10;
    o.warmup = 2;
    return o;
}
static int f_same_params(const lm_params *a, const lm_params *b, int moments) {
    size_t bytes = a->total * sizeof(float);
    if (a->total != b->total || a->n != b->n || memcmp(a->data, b->data, bytes)) return 0;
    return !moments || (a->step == b->step && !memcmp(a->m, b->m, bytes) && !memcmp(a->v, b->v, bytes));
}
/* A file's bytes (NULL if it cannot be read), with the test's own calls unarmed. */
static unsigned char *f_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    size_t cap = 0, got;
    *n = 0;
    if (!f) return NULL;
    for (;;) {
        if (*n == cap) {
            unsigned char *q = (unsigned char *)realloc(p, cap * 2 + 65536);
            if (!q) break;
            p = q;
            cap = cap * 2 + 65536;
        }
        got = fread(p + *n, 1, cap - *n, f);
        *n += got;
        if (got == 0) break;
    }
    fclose(f);
    return p ? p : (unsigned char *)malloc(1);
}
static int f_write(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    return ok;
}
static int f_same_bytes(const char *path, const unsigned char *want, size_t n) {
    size_t got;
    unsigned char *p = f_read(path, &got);
    int same = p && want && got == n && !memcmp(p, want, n);
    free(p);
    return same;
}
static int f_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
/* Files in dir whose names end in ".tmp" (temporary files left behind). */
static int f_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) n++;
    }
    closedir(d);
    return n;
}
/* Text for the tokenizers: words from a small vocabulary with numbers and punctuation,
   a long run of digits (one pre-token longer than encode's stack buffer), then more. */
static size_t f_text(char *out, size_t cap) {
    static const char *const w[] = {"the", "cat", "sat", "on", "mat", "dog", "ran", "far",
        "a", "an", "and", "then", "slept", "quick", "brown", "fox", "jumps", "over",
        "lazy", "\xc3\xa9t\xc3\xa9", "na\xc3\xafve", "caf\xc3\xa9", "it's", "we'll"};
    lm_rng r = lm_rng_seed(11);
    size_t n = 0;
    int k;
    while (n + 300 < cap) {
        if (n > cap / 3 && n < cap / 3 + 300) {
            for (k = 0; k < 200; k++) out[n++] = (char)('0' + k % 10);
            out[n++] = ' ';
        }
        n += (size_t)sprintf(out + n, "%s%s", w[lm_rng_below(&r, sizeof w / sizeof w[0])],
                             lm_rng_below(&r, 9) == 0 ? ".\n" : lm_rng_below(&r, 7) == 0 ? ", " : " ");
        if (lm_rng_below(&r, 13) == 0) n += (size_t)sprintf(out + n, "%u ", (unsigned)lm_rng_below(&r, 100000));
    }
    return n;
}

/* ---------------------------------------------------------------------------------------
   1. Allocation failure at every site
   --------------------------------------------------------------------------------------- */
/* Operations that make an object: it is NULL on failure, and nothing may stay allocated. */
#define F_SWEEP_NEW(what, type, make, good, destroy) do {                                 \
    int f_p_; long f_n_;                                                                   \
    for (f_p_ = 0; f_p_ < 2; f_p_++)                                                       \
        for (f_n_ = 1;; f_n_++) {                                                          \
            long f_live0_ = f_held();                                                      \
            type f_obj_;                                                                   \
            f_arm(f_n_, f_p_);                                                             \
            f_obj_ = (make);                                                               \
            if (f_end(what, f_n_, f_p_, f_obj_ != NULL, 0)) {                              \
                CHECK(f_held() == f_live0_, "%s: %ld blocks leaked after allocation %ld " \
                      "failed", what, f_live - f_live0_, f_n_);                            \
                continue;                                                                  \
            }                                                                              \
            CHECK(good(f_obj_), "%s: the result differs from a run without failures", what); \
            destroy(f_obj_);                                                               \
            CHECK(f_held() == f_live0_, "%s: %ld blocks leaked", what, f_live - f_live0_); \
            break;                                                                         \
        }                                                                                  \
} while (0)

static lm_gpt *f_ref;              /* the model every GPT operation is compared with       */
static unsigned char *f_img;       /* f_ref as a checkpoint image                          */
static size_t f_img_n;
static int f_good_gpt(lm_gpt *m) { return f_same_params(&m->params, &f_ref->params, 0); }

static void f_alloc_gpt_files(void) {
    size_t size = 0;
    unsigned char *buf;
    lm_st_file sf;
    int p;
    long n;
    F_SWEEP_NEW("lm_gpt_new", lm_gpt *, lm_gpt_new(&f_cfg, 7), f_good_gpt, lm_gpt_free);
    F_SWEEP_NEW("lm_gpt_load_mem", lm_gpt *, lm_gpt_load_mem(f_img, f_img_n, 0), f_good_gpt, lm_gpt_free);
    CHECK(lm_gpt_save(f_ref, f_path("ref.safetensors")) == LM_OK, "save the reference");
    F_SWEEP_NEW("lm_gpt_load", lm_gpt *, lm_gpt_load(f_path("ref.safetensors"), 0), f_good_gpt, lm_gpt_free);
    /* to memory: the size, then the image */
    buf = (unsigned char *)malloc(f_img_n);
    for (p = 0; p < 2; p++)
        for (n = 1;; n++) {
            long live0 = f_held();
            int rc;
            f_arm(n, p);
            rc = lm_gpt_save_mem(f_ref, NULL, 0, &size);
            if (rc == LM_OK) rc = lm_gpt_save_mem(f_ref, buf, f_img_n, &size);
            if (f_end("lm_gpt_save_mem", n, p, rc == LM_OK, 0)) {
                CHECK(f_held() == live0, "lm_gpt_save_mem: leak");
                continue;
            }
            CHECK(size == f_img_n && !memcmp(buf, f_img, f_img_n), "lm_gpt_save_mem: the image differs");
            break;
        }
    free(buf);
    /* safetensors itself: parse, open, write to memory and to a file */
    for (p = 0; p < 2; p++)
        for (n = 1;; n++) {
            long live0 = f_held();
            int rc;
            f_arm(n, p);
            rc = lm_st_parse(&sf, f_img, f_img_n);
            if (f_end("lm_st_parse", n, p, rc == LM_OK, 0)) { CHECK(f_held() == live0, "lm_st_parse: leak"); continue; }
            CHECK(sf.n == f_ref->params.n && lm_st_find(&sf, "h.1.mlp.c_proj.bias") != NULL, "lm_st_parse: the result");
            lm_st_close(&sf);
            CHECK(f_held() == live0, "lm_st_parse: leak after close");
            break;
        }
    for (p = 0; p < 2; p++)
        for (n = 1;; n++) {
            long live0 = f_held();
            int rc;
            f_arm(n, p);
            rc = lm_st_open(&sf, f_path("ref.safetensors"));
            if (f_end("lm_st_open", n, p, rc == LM_OK, 0)) { CHECK(f_held() == live0, "lm_st_open: leak"); continue; }
            CHECK(sf.n == f_ref->params.n, "lm_st_open: the result");
            lm_st_close(&sf);
            CHECK(f_held() == live0, "lm_st_open: leak after close");
            break;
        }
}

/* Saves under allocation failure: an error before any file is touched, so the previous
   files (name, and name + name2 when given) are as they were and no temporary file is
   left; then the files a save without failures writes. */
typedef int (*f_save_fn)(void *ctx, const char *path);
typedef struct f_files {           /* the one or two files of a save: before and after it */
    char path[2][320];
    unsigned char *prev[2], *want[2];
    size_t n_prev[2], n_want[2];
    int n;
} f_files;
static void f_files_make(f_files *f, f_save_fn save, void *ctx, const char *name, const char *name2) {
    char ref[2][320];
    int i;
    f->n = name2 ? 2 : 1;
    snprintf(f->path[0], sizeof f->path[0], "%s", f_path(name));
    snprintf(f->path[1], sizeof f->path[1], "%s%s", f->path[0], name2 ? name2 : "");
    snprintf(ref[0], sizeof ref[0], "%s", f_path("ref.out"));
    snprintf(ref[1], sizeof ref[1], "%s%s", ref[0], name2 ? name2 : "");
    CHECK(save(ctx, ref[0]) == LM_OK, "a save without failures");
    for (i = 0; i < f->n; i++) {
        f->prev[i] = f_read(f->path[i], &f->n_prev[i]);
        f->want[i] = f_read(ref[i], &f->n_want[i]);      /* NULL: the save leaves it be */
        remove(ref[i]);
    }
}
/* Are the files as before the save (which = 0) or as after it (1)? */
static int f_files_are(const f_files *f, int which) {
    int i, ok = 1;
    for (i = 0; i < f->n; i++) {
        int after = which && f->want[i];
        ok &= after ? f_same_bytes(f->path[i], f->want[i], f->n_want[i])
                    : f->prev[i] ? f_same_bytes(f->path[i], f->prev[i], f->n_prev[i]) : !f_exists(f->path[i]);
    }
    return ok;
}
static void f_files_restore(const f_files *f) {
    int i;
    for (i = 0; i < f->n; i++) {
        if (f->prev[i]) f_write(f->path[i], f->prev[i], f->n_prev[i]);
        else remove(f->path[i]);
    }
}
static void f_files_free(f_files *f) {
    int i;
    for (i = 0; i < f->n; i++) { free(f->prev[i]); free(f->want[i]); }
}
static void f_alloc_save(const char *what, f_save_fn save, void *ctx, const char *name,
                         const char *name2) {
    f_files f;
    int p;
    long n;
    f_files_make(&f, save, ctx, name, name2);
    for (p = 0; p < 2; p++)
        for (n = 1;; n++) {
            long live0 = f_held();
            int rc;
            f_arm(n, p);
            rc = save(ctx, f.path[0]);
            if (f_end(what, n, p, rc == LM_OK, 0)) {
                CHECK(f_held() == live0, "%s: leak", what);
                CHECK(f_files_are(&f, 0), "%s: after allocation %ld failed, the previous files "
                      "are not as they were", what, n);
                CHECK(f_tmp_files(f_dir) == 0, "%s: a temporary file is left", what);
                continue;
            }
            CHECK(f_files_are(&f, 1), "%s: the files written differ", what);
            f_files_restore(&f);                              /* for the next mode */
            break;
        }
    f_files_free(&f);
}

static lm_gpt *f_trained;          /* f_ref after F_STEPS steps: new weights and moments   */
static lm_train_state f_state = {3, 4321, 0xFEEDFACECAFEBEEFull};
static int f_save_gpt(void *ctx, const char *path) { return lm_gpt_save((lm_gpt *)ctx, path); }
static int f_save_state(void *ctx, const char *path) { return lm_gpt_save_state((lm_gpt *)ctx, path, &f_state); }
static int f_save_pair(void *ctx, const char *path) { return lm_gpt_save_with_state((lm_gpt *)ctx, path, &f_state); }
static int f_save_tok(void *ctx, const char *path) { return lm_tok_save((lm_tokenizer *)ctx, path); }

/* A work arena of 4 KB, so that a step must grow it many times over: every growth is an
   allocation to fail, and some come after the forward pass, when backward ran out. */
static void f_tiny_arena(lm_arena *a) {
    lm_arena_free(a);
    if (lm_arena_init(a, 4096) != LM_OK) CHECK(0, "a tiny work arena");
}
/* Training steps, each from a tiny work arena, on one model per mode: a failed step
   leaves it usable, and the steps end with exactly the weights and moments of steps that
   never failed. */
static void f_alloc_training(void) {
    lm_train_opts o = f_opts();
    float ref_loss[F_STEPS];
    int s, p;
    long n;
    for (s = 0; s < F_STEPS; s++) ref_loss[s] = lm_gpt_train_step(f_trained, &o, f_in[s], f_tg[s], F_B, F_T, s);
    for (p = 0; p < 2; p++) {
        long live0 = f_held();
        lm_gpt *m = lm_gpt_new(&f_cfg, 7);
        if (!m) { CHECK(0, "training: setup"); return; }
        for (s = 0; s < F_STEPS; s++)
            for (n = 1;; n++) {
                float loss;
                f_tiny_arena(&m->work);
                f_arm(n, p);
                loss = lm_gpt_train_step(m, &o, f_in[s], f_tg[s], F_B, F_T, s);
                if (f_end("lm_gpt_train_step", n, p, loss == loss, 0)) continue;
                CHECK(loss == ref_loss[s], "lm_gpt_train_step %d: loss %.9g, without failures %.9g", s, loss, ref_loss[s]);
                break;
            }
        CHECK(f_same_params(&m->params, &f_trained->params, 1),
              "lm_gpt_train_step: after failed attempts, the weights and moments differ from steps that never failed");
        lm_gpt_free(m);
        CHECK(f_held() == live0, "training: %ld blocks leaked", f_live - live0);
    }
    /* backward (gradients added to those already there) and the loss, evaluation */
    for (p = 0; p < 2; p++) {
        lm_gpt *m = lm_gpt_new(&f_cfg, 7), *r = lm_gpt_new(&f_cfg, 7);
        float want, got, want_eval, got_eval;
        int tokens[200], i;
        for (i = 0; i < 200; i++) tokens[i] = (i * 7 + i / 5) % 64;
        lm_params_zero_grad(&r->params);
        want = lm_gpt_backward(r, f_in[0], f_tg[0], F_B, F_T);
        want = lm_gpt_backward(r, f_in[1], f_tg[1], F_B, F_T);
        want_eval = lm_gpt_eval(r, tokens, 200, F_T);
        lm_params_zero_grad(&m->params);
        got = lm_gpt_backward(m, f_in[0], f_tg[0], F_B, F_T);
        for (n = 1;; n++) {
            f_tiny_arena(&m->work);
            f_arm(n, p);
            got = lm_gpt_backward(m, f_in[1], f_tg[1], F_B, F_T);
            if (f_end("lm_gpt_backward", n, p, got == got, 0)) continue;
            break;
        }
        CHECK(got == want && !memcmp(m->params.grad, r->params.grad, m->params.total * sizeof(float)),
              "lm_gpt_backward: failed attempts changed the gradients");
        lm_arena_free(&m->work);
        for (n = 1;; n++) {
            f_arm(n, p);
            got_eval = lm_gpt_eval(m, tokens, 200, F_T);
            if (f_end("lm_gpt_eval", n, p, got_eval == got_eval, 0)) continue;
            break;
        }
        CHECK(got_eval == want_eval, "lm_gpt_eval: %.9g, without failures %.9g", got_eval, want_eval);
        lm_gpt_free(m);
        lm_gpt_free(r);
    }
}

/* Generation: the prompt's prefill sizes the work arena; the window slides past n_ctx. */
static void f_alloc_generation(void) {
    int prompt[5] = {1, 2, 3, 4, 5}, want[12], got[12], p, k;
    float want_l[64], got_l[64];
    long n;
    lm_sampler s = lm_sampler_defaults(9);
    lm_gpt *r = lm_gpt_new(&f_cfg, 7);
    CHECK(lm_gpt_generate(r, prompt, 5, 12, &s, NULL, NULL, want) == LM_OK, "generate: reference");
    lm_gpt_reset_cache(r);
    CHECK(lm_gpt_step_token(r, 3, want_l) == LM_OK, "step_token: reference");
    for (p = 0; p < 2; p++) {
        lm_gpt *m = lm_gpt_new(&f_cfg, 7);
        for (n = 1;; n++) {
            int rc;
            s = lm_sampler_defaults(9);
            m->cache_len = 3;                 /* as if an earlier call had cached text */
            f_arm(n, p);
            rc = lm_gpt_generate(m, prompt, 5, 12, &s, NULL, NULL, got);
            if (f_end("lm_gpt_generate", n, p, rc == LM_OK, 0)) {
                /* the cache was being refilled: it must not claim the old positions */
                CHECK(m->cache_len == 0, "lm_gpt_generate: a failed prefill left %d cached positions", m->cache_len);
                continue;
            }
            CHECK(!memcmp(got, want, sizeof got), "lm_gpt_generate: other tokens than without failures");
            break;
        }
        lm_arena_free(&m->work);
        lm_gpt_reset_cache(m);
        for (n = 1;; n++) {
            int rc;
            f_arm(n, p);
            rc = lm_gpt_step_token(m, 3, got_l);
            if (f_end("lm_gpt_step_token", n, p, rc == LM_OK, 0)) {
                CHECK(m->cache_len == 0, "lm_gpt_step_token: a failed step moved the cache");
                continue;
            }
            for (k = 0; k < 64 && got_l[k] == want_l[k]; k++) {}
            CHECK(k == 64, "lm_gpt_step_token: other logits than without failures");
            break;
        }
        lm_gpt_free(m);
    }
    lm_gpt_free(r);
}

/* The encoder: new, masked-LM and classifier steps, prediction. */
static const lm_encoder_config f_ecfg = {1, 2, 16, 8, 40, 0, 0, 0, 3, 0.1f};
static lm_encoder *f_eref;
static int f_good_enc(lm_encoder *e) { return f_same_params(&e->params, &f_eref->params, 0); }
static void f_alloc_encoder(void) {
    lm_train_opts o = f_opts();
    int tok[F_B * F_T], lens[F_B] = {8, 5}, labels[F_B] = {2, 0}, i, s, p;
    float want[4], got, probs[F_B * 3], want_probs[F_B * 3];
    long n;
    lm_encoder *r;
    for (i = 0; i < F_B * F_T; i++) tok[i] = (i * 5 + 3) % 38;
    f_eref = lm_encoder_new(&f_ecfg, 5);
    F_SWEEP_NEW("lm_encoder_new", lm_encoder *, lm_encoder_new(&f_ecfg, 5), f_good_enc, lm_encoder_free);
    r = lm_encoder_new(&f_ecfg, 5);
    want[0] = lm_encoder_mlm_train_step(r, &o, tok, lens, F_B, F_T, 0);
    want[1] = lm_encoder_mlm_train_step(r, &o, tok, lens, F_B, F_T, 1);
    want[2] = lm_encoder_cls_train_step(r, &o, tok, lens, labels, F_B, F_T, 2);
    lm_encoder_predict(r, tok, lens, F_B, F_T, want_probs);
    for (p = 0; p < 2; p++) {
        lm_encoder *e = lm_encoder_new(&f_ecfg, 5);
        for (s = 0; s < 3; s++)
            for (n = 1;; n++) {
                f_arm(n, p);
                got = s < 2 ? lm_encoder_mlm_train_step(e, &o, tok, lens, F_B, F_T, s)
                            : lm_encoder_cls_train_step(e, &o, tok, lens, labels, F_B, F_T, s);
                if (f_end(s < 2 ? "lm_encoder_mlm_train_step" : "lm_encoder_cls_train_step", n, p, got == got, 0)) {
                    if (s == 2 && n == 1) lm_arena_free(&e->work);   /* so the classifier sizes anew */
                    continue;
                }
                CHECK(got == want[s], "encoder step %d: loss %.9g, without failures %.9g", s, got, want[s]);
                if (s == 1) lm_arena_free(&e->work);
                break;
            }
        CHECK(f_same_params(&e->params, &r->params, 1) && e->steps == r->steps,
              "encoder steps: after failed attempts, other weights, moments or step count than without failures");
        lm_arena_free(&e->work);
        for (n = 1;; n++) {
            int rc;
            f_arm(n, p);
            rc = lm_encoder_predict(e, tok, lens, F_B, F_T, probs);
            if (f_end("lm_encoder_predict", n, p, rc == LM_OK, 0)) continue;
            CHECK(!memcmp(probs, want_probs, sizeof probs), "lm_encoder_predict: other probabilities");
            break;
        }
        lm_encoder_free(e);
    }
    lm_encoder_free(r);
    lm_encoder_free(f_eref);
}

/* Tokenizers: bytes, BPE training, encoding (a long text: the cache; a long pre-token: the
   heap buffer), the file format in memory and on disk, GPT-2's files. */
static unsigned char *f_tok_img;
static long f_tok_img_n;
static lm_tokenizer *f_tok_ref;
static int f_good_tok(lm_tokenizer *t) {
    unsigned char *b = (unsigned char *)malloc((size_t)f_tok_img_n);
    int ok = b && lm_tok_save_mem(t, b, (size_t)f_tok_img_n) == f_tok_img_n && !memcmp(b, f_tok_img, (size_t)f_tok_img_n);
    free(b);
    return ok;
}
static int f_good_bytes(lm_tokenizer *t) { return lm_tok_vocab_size(t) == 256; }
static const char *f_gpt2_line = "Hello world, it's a caf\xc3\xa9 \xe2\x80\x94 12345 tokens!";
static int f_gpt2_want[64];
static long f_gpt2_nwant;
static int f_good_gpt2(lm_tokenizer *t) {
    int ids[64];
    long k = lm_tok_encode(t, f_gpt2_line, strlen(f_gpt2_line), ids, 64);
    return k == f_gpt2_nwant && !memcmp(ids, f_gpt2_want, sizeof(int) * (size_t)k);
}
static void f_alloc_tokenizers(void) {
    static char text[80000];
    size_t n = f_text(text, sizeof text), n_enc, n1, n2;
    int *want, *got, p;
    long k, nw = 0, m;
    unsigned char *enc, *bpe;
    F_SWEEP_NEW("lm_tok_bytes", lm_tokenizer *, lm_tok_bytes(), f_good_bytes, lm_tok_free);
    f_tok_ref = lm_tok_train(text, 60000, 400);
    f_tok_img_n = lm_tok_save_mem(f_tok_ref, NULL, 0);
    f_tok_img = (unsigned char *)malloc((size_t)f_tok_img_n);
    lm_tok_save_mem(f_tok_ref, f_tok_img, (size_t)f_tok_img_n);
    F_SWEEP_NEW("lm_tok_train", lm_tokenizer *, lm_tok_train(text, 60000, 400), f_good_tok, lm_tok_free);
    F_SWEEP_NEW("lm_tok_load_mem", lm_tokenizer *, lm_tok_load_mem(f_tok_img, (size_t)f_tok_img_n), f_good_tok, lm_tok_free);
    CHECK(lm_tok_save(f_tok_ref, f_path("ref.bpe")) == LM_OK, "save the tokenizer");
    F_SWEEP_NEW("lm_tok_load", lm_tokenizer *, lm_tok_load(f_path("ref.bpe")), f_good_tok, lm_tok_free);
    /* encode: 80 KB, so the cache is used (it is optional: encode goes on without it) */
    n_enc = n;
    want = (int *)malloc(n_enc * sizeof(int));
    got = (int *)malloc(n_enc * sizeof(int));
    nw = lm_tok_encode(f_tok_ref, text, n_enc, want, n_enc);
    CHECK(nw > 0 && n_enc >= 65536, "encode: reference over %lu bytes", (unsigned long)n_enc);
    for (p = 0; p < 2; p++)
        for (k = 1;; k++) {
            f_arm(k, p);
            m = lm_tok_encode(f_tok_ref, text, n_enc, got, n_enc);
            if (m >= 0) CHECK(m == nw && !memcmp(got, want, (size_t)nw * sizeof(int)), "lm_tok_encode: other ids");
            if (!f_end("lm_tok_encode", k, p, m >= 0, 1)) break;
        }
    free(want);
    free(got);
    /* GPT-2's files, in memory and from their directory */
    enc = f_read("tests/gpt2/encoder.json", &n1);
    bpe = f_read("tests/gpt2/vocab.bpe", &n2);
    if (!enc || !bpe) { CHECK(0, "tests/gpt2/ files (run from the repository root)"); free(enc); free(bpe); return; }
    {
        lm_tokenizer *g = lm_tok_load_gpt2_mem(enc, n1, bpe, n2);
        f_gpt2_nwant = g ? lm_tok_encode(g, f_gpt2_line, strlen(f_gpt2_line), f_gpt2_want, 64) : -1;
        CHECK(f_gpt2_nwant > 5, "GPT-2 tokenizer: reference");
        lm_tok_free(g);
    }
    F_SWEEP_NEW("lm_tok_load_gpt2_mem", lm_tokenizer *, lm_tok_load_gpt2_mem(enc, n1, bpe, n2), f_good_gpt2, lm_tok_free);
    F_SWEEP_NEW("lm_tok_load_gpt2", lm_tokenizer *, lm_tok_load_gpt2("tests/gpt2"), f_good_gpt2, lm_tok_free);
    free(enc);
    free(bpe);
}

/* The resume state: loading it leaves the model untouched on failure. */
static void f_alloc_state_load(void) {
    int p;
    long n;
    lm_train_state st;
    CHECK(lm_gpt_save_with_state(f_trained, f_path("run.safetensors"), &f_state) == LM_OK, "save a run");
    for (p = 0; p < 2; p++) {
        lm_gpt *m = lm_gpt_load(f_path("run.safetensors"), 0);
        for (n = 1;; n++) {
            int rc;
            memset(&st, 0, sizeof st);
            f_arm(n, p);
            rc = lm_gpt_load_state(m, f_path("run.safetensors"), &st);
            if (f_end("lm_gpt_load_state", n, p, rc == LM_OK, 0)) {
                CHECK(m->params.step == 0, "lm_gpt_load_state: a failed load changed the model");
                continue;
            }
            CHECK(f_same_params(&m->params, &f_trained->params, 1) && st.step == f_state.step &&
                  st.rng == f_state.rng, "lm_gpt_load_state: other moments or numbers");
            break;
        }
        lm_gpt_free(m);
    }
    /* a save stopped between its renames: PATH.state is the one before (of other weights),
       PATH.state.tmp the one that goes with the weights */
    {
        size_t n_stale, n_new;
        unsigned char *stale, *fresh;
        char state[340], tmp[352];
        snprintf(state, sizeof state, "%s.state", f_path("run.safetensors"));
        snprintf(tmp, sizeof tmp, "%s.tmp", state);
        fresh = f_read(state, &n_new);
        CHECK(lm_gpt_save_state(f_ref, f_path("run.safetensors"), &f_state) == LM_OK, "a stale state");
        stale = f_read(state, &n_stale);
        for (p = 0; p < 2; p++) {
            lm_gpt *m = lm_gpt_load(f_path("run.safetensors"), 0);
            for (n = 1;; n++) {
                int rc;
                f_write(state, stale, n_stale);
                f_write(tmp, fresh, n_new);
                f_arm(n, p);
                rc = lm_gpt_load_state(m, f_path("run.safetensors"), &st);
                if (f_end("lm_gpt_load_state (finishing a save)", n, p, rc == LM_OK, 0)) {
                    CHECK(m->params.step == 0, "lm_gpt_load_state: a failed load changed the model");
                    continue;
                }
                CHECK(f_same_params(&m->params, &f_trained->params, 1) && f_same_bytes(state, fresh, n_new) &&
                      !f_exists(tmp), "lm_gpt_load_state (finishing a save): the state, renamed into place");
                break;
            }
            lm_gpt_free(m);
        }
        free(stale);
        free(fresh);
    }
}

/* The encoder-decoder: new, load (memory and file), save, training steps from a tiny
   work arena (with dropout: a failed step must not count as taken), decoding (greedy and
   beam: the decoding memory and the encoder's arena), the resume state. */
static const lm_seq2seq_config f_scfg = {16, 2, 2, 1, 24, 0, 1, 12, 30, 20, 0, 0, 0, 0.1f};
static lm_seq2seq *f_sref;
static int f_good_s2s(lm_seq2seq *m) { return f_same_params(&m->params, &f_sref->params, 0); }
static const int f_ssrc[F_B * 6] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0};
static const int f_ssl[F_B] = {6, 3}, f_stl[F_B] = {4, 0};
static const int f_stgt[F_B * 4] = {3, 1, 4, 1, 0, 0, 0, 0};
static lm_seq2seq_batch f_sbatch(void) {
    lm_seq2seq_batch b;
    b.B = F_B; b.S = 6; b.T = 4; b.src = f_ssrc; b.src_len = f_ssl; b.tgt = f_stgt; b.tgt_len = f_stl;
    return b;
}
static int f_save_s2s_pair(void *ctx, const char *path) {
    return lm_seq2seq_save_with_state((lm_seq2seq *)ctx, path, &f_state);
}
static void f_alloc_seq2seq(void) {
    lm_train_opts o = f_opts();
    lm_seq2seq_batch b = f_sbatch();
    lm_seq2seq *r, *t;
    unsigned char *img;
    size_t img_n = 0, size = 0;
    float want[F_STEPS], got;
    int out_want[2][12], out_got[12], n_want[2], s, p, k;
    long n;
    lm_train_state st;
    f_sref = lm_seq2seq_new(&f_scfg, 5);
    F_SWEEP_NEW("lm_seq2seq_new", lm_seq2seq *, lm_seq2seq_new(&f_scfg, 5), f_good_s2s, lm_seq2seq_free);
    lm_seq2seq_save_mem(f_sref, NULL, 0, &img_n);
    img = (unsigned char *)malloc(img_n);
    lm_seq2seq_save_mem(f_sref, img, img_n, &img_n);
    F_SWEEP_NEW("lm_seq2seq_load_mem", lm_seq2seq *, lm_seq2seq_load_mem(img, img_n), f_good_s2s, lm_seq2seq_free);
    CHECK(lm_seq2seq_save(f_sref, f_path("s2s.safetensors")) == LM_OK, "save the encoder-decoder");
    F_SWEEP_NEW("lm_seq2seq_load", lm_seq2seq *, lm_seq2seq_load(f_path("s2s.safetensors")), f_good_s2s, lm_seq2seq_free);
    {
        unsigned char *buf = (unsigned char *)malloc(img_n);
        for (p = 0; p < 2; p++)
            for (n = 1;; n++) {
                long live0 = f_live;
                int rc;
                f_arm(n, p);
                rc = lm_seq2seq_save_mem(f_sref, buf, img_n, &size);
                if (f_end("lm_seq2seq_save_mem", n, p, rc == LM_OK, 0)) { CHECK(f_live == live0, "lm_seq2seq_save_mem: leak"); continue; }
                CHECK(size == img_n && !memcmp(buf, img, img_n), "lm_seq2seq_save_mem: the image differs");
                break;
            }
        free(buf);
    }
    /* training steps and decoding, against a model that never failed */
    r = lm_seq2seq_new(&f_scfg, 5);
    for (s = 0; s < F_STEPS; s++) want[s] = lm_seq2seq_train_step(r, &o, &b, s);
    for (k = 0; k < 2; k++) n_want[k] = lm_seq2seq_translate(r, f_ssrc, 6, k ? 3 : 1, out_want[k], 12);
    CHECK(n_want[0] >= 0 && n_want[1] >= 0, "seq2seq decoding: reference");
    for (p = 0; p < 2; p++) {
        long live0 = f_live;
        lm_seq2seq *m = lm_seq2seq_new(&f_scfg, 5);
        if (!m) { CHECK(0, "seq2seq: setup"); break; }
        for (s = 0; s < F_STEPS; s++)
            for (n = 1;; n++) {
                f_tiny_arena(&m->work);
                f_arm(n, p);
                got = lm_seq2seq_train_step(m, &o, &b, s);
                if (f_end("lm_seq2seq_train_step", n, p, got == got, 0)) continue;
                CHECK(got == want[s], "lm_seq2seq_train_step %d: loss %.9g, without failures %.9g", s, got, want[s]);
                break;
            }
        CHECK(f_same_params(&m->params, &r->params, 1) && m->steps == r->steps,
              "lm_seq2seq_train_step: after failed attempts, other weights, moments or step count");
        for (k = 0; k < 2; k++) {
            lm_arena_free(&m->work);
            lm_arena_free(&m->dec_arena);
            m->beams = 0;
            for (n = 1;; n++) {
                int rc;
                f_arm(n, p);
                rc = lm_seq2seq_translate(m, f_ssrc, 6, k ? 3 : 1, out_got, 12);
                if (f_end(k ? "lm_seq2seq_translate (beam 3)" : "lm_seq2seq_translate", n, p, rc >= 0, 0)) continue;
                CHECK(rc == n_want[k] && !memcmp(out_got, out_want[k], (size_t)rc * sizeof(int)),
                      "lm_seq2seq_translate: other tokens than without failures");
                break;
            }
        }
        lm_seq2seq_free(m);
        CHECK(f_live == live0, "seq2seq: %ld blocks leaked", f_live - live0);
    }
    /* saving the pair, and loading the state */
    t = lm_seq2seq_new(&f_scfg, 5);
    CHECK(t && lm_seq2seq_save_with_state(t, f_path("p.safetensors"), &f_state) == LM_OK, "previous pair");
    f_alloc_save("lm_seq2seq_save_with_state", f_save_s2s_pair, r, "p.safetensors", ".state");
    CHECK(lm_seq2seq_save_with_state(r, f_path("p.safetensors"), &f_state) == LM_OK, "save a run");
    for (p = 0; p < 2; p++) {
        lm_seq2seq *m = lm_seq2seq_load(f_path("p.safetensors"));
        for (n = 1; m; n++) {
            int rc;
            memset(&st, 0, sizeof st);
            f_arm(n, p);
            rc = lm_seq2seq_load_state(m, f_path("p.safetensors"), &st);
            if (f_end("lm_seq2seq_load_state", n, p, rc == LM_OK, 0)) {
                CHECK(m->params.step == 0, "lm_seq2seq_load_state: a failed load changed the model");
                continue;
            }
            CHECK(f_same_params(&m->params, &r->params, 1) && st.step == f_state.step,
                  "lm_seq2seq_load_state: other moments or numbers");
            break;
        }
        lm_seq2seq_free(m);
    }
    lm_seq2seq_free(t);
    lm_seq2seq_free(r);
    lm_seq2seq_free(f_sref);
    free(img);
}

/* Compression (lm.h section 10): quantizing, saving and loading a Q8_0 model, pruning. A
   failed prune must leave the model as it was. */
static lm_gpt *f_q8_ref;           /* f_trained in Q8_0 (with wte), made without failures  */
static int f_good_q8(lm_gpt *m) {
    int k;
    if (m->cfg.quant != f_q8_ref->cfg.quant || m->params.n != f_q8_ref->params.n) return 0;
    for (k = 0; k < m->params.n; k++) {
        const lm_tensor *a = &m->params.t[k], *b = &f_q8_ref->params.t[k];
        if (!a->q8 != !b->q8) return 0;
        if (!a->q8 && memcmp(a->data, b->data, (size_t)a->size * sizeof(float))) return 0;
        if (a->q8 && (memcmp(a->q8->d, b->q8->d, LM_Q8_SCALES(a->q8->out, a->q8->in) * 2) ||
                      memcmp(a->q8->q, b->q8->q, LM_Q8_VALUES(a->q8->out, a->q8->in))))
            return 0;
    }
    return 1;
}
static void f_alloc_compression(void) {
    lm_gpt *pruned = lm_gpt_load_mem(f_img, f_img_n, 0), *m;
    int p;
    long n;
    f_q8_ref = lm_gpt_quantize(f_trained, LM_QUANT_Q8_0_EMB);
    CHECK(f_q8_ref && pruned && lm_gpt_prune(pruned, 0.5f) == LM_OK, "the Q8_0 and pruned references");
    if (!f_q8_ref || !pruned) return;
    F_SWEEP_NEW("lm_gpt_quantize", lm_gpt *, lm_gpt_quantize(f_trained, LM_QUANT_Q8_0_EMB), f_good_q8, lm_gpt_free);
    CHECK(lm_gpt_save(f_ref, f_path("q.safetensors")) == LM_OK, "previous file");
    f_alloc_save("lm_gpt_save (Q8_0)", f_save_gpt, f_q8_ref, "q.safetensors", NULL);
    CHECK(lm_gpt_save(f_q8_ref, f_path("q.safetensors")) == LM_OK, "a Q8_0 file");
    F_SWEEP_NEW("lm_gpt_load (Q8_0)", lm_gpt *, lm_gpt_load(f_path("q.safetensors"), 0), f_good_q8, lm_gpt_free);
    for (p = 0; p < 2; p++)
        for (n = 1;; n++) {
            long live0;
            int rc;
            m = lm_gpt_load_mem(f_img, f_img_n, 0);
            live0 = f_live;
            f_arm(n, p);
            rc = lm_gpt_prune(m, 0.5f);
            if (f_end("lm_gpt_prune", n, p, rc == LM_OK, 0)) {
                CHECK(f_live == live0 && f_good_gpt(m), "lm_gpt_prune: after allocation %ld failed, "
                      "a leak, or the model changed", n);
                lm_gpt_free(m);
                continue;
            }
            CHECK(f_same_params(&m->params, &pruned->params, 0), "lm_gpt_prune: the result differs");
            lm_gpt_free(m);
            break;
        }
    remove(f_path("q.safetensors"));
    lm_gpt_free(pruned);
    lm_gpt_free(f_q8_ref);
}

/* Which allocation sites of lm.h (lines with LM_MALLOC in the implementation) were made to
   fail; prints the count and the lines not reached. */
static void f_alloc_sites(void) {
    size_t n;
    unsigned char *h = f_read("lm.h", &n);
    char *line, *impl, missed[600] = "";
    int ln = 1, total = 0, hit = 0;
    if (!h) { CHECK(0, "read lm.h (run from the repository root)"); return; }
    h = (unsigned char *)realloc(h, n + 1);
    h[n] = 0;
    impl = strstr((char *)h, "#ifdef LM_IMPLEMENTATION");
    for (line = (char *)h; line && *line; ln++) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        if (impl && line > impl && strstr(line, "LM_MALLOC(") && !strstr(line, "#define")) {
            total++;
            if (ln < F_MAXLINE && f_site[ln]) hit++;
            else if (strlen(missed) < sizeof missed - 16) sprintf(missed + strlen(missed), " %d", ln);
        }
        line = end ? end + 1 : NULL;
    }
    free(h);
    printf("allocation failure: %ld failure points; %d of lm.h's %d allocation sites made to fail%s%s\n",
           f_points, hit, total, hit < total ? "; not reached: lines" : "", missed);
    CHECK(hit == total, "every allocation site of lm.h was made to fail (not reached:%s)", missed);
}

static void f_allocations(void) {
    printf("1. allocation failure at every site\n");
    f_ref = lm_gpt_new(&f_cfg, 7);
    f_trained = lm_gpt_new(&f_cfg, 7);
    lm_gpt_save_mem(f_ref, NULL, 0, &f_img_n);
    f_img = (unsigned char *)malloc(f_img_n);
    lm_gpt_save_mem(f_ref, f_img, f_img_n, &f_img_n);
    f_alloc_gpt_files();
    f_alloc_training();                                /* f_trained: F_STEPS steps on      */
    CHECK(lm_gpt_save(f_ref, f_path("m.safetensors")) == LM_OK &&
          lm_gpt_save_state(f_ref, f_path("m.safetensors"), &f_state) == LM_OK, "previous files");
    f_alloc_save("lm_gpt_save", f_save_gpt, f_trained, "m.safetensors", NULL);
    f_alloc_save("lm_gpt_save_state", f_save_state, f_trained, "m.safetensors", ".state");
    f_alloc_save("lm_gpt_save_with_state", f_save_pair, f_trained, "m.safetensors", ".state");
    f_alloc_state_load();
    f_alloc_generation();
    f_alloc_encoder();
    f_alloc_seq2seq();
    f_alloc_tokenizers();
    {
        lm_tokenizer *b = lm_tok_bytes();
        CHECK(b && lm_tok_save(b, f_path("t.bpe")) == LM_OK, "previous tokenizer file");
        f_alloc_save("lm_tok_save", f_save_tok, f_tok_ref, "t.bpe", NULL);
        lm_tok_free(b);
    }
    f_alloc_compression();
    f_alloc_sites();
}

/* ---------------------------------------------------------------------------------------
   2. I/O failure at every call of a save
   --------------------------------------------------------------------------------------- */
static long f_io_points;                  /* file calls made to fail, all parts            */
static char f_io_kinds[400];              /* which kinds of call, for the summary          */
static void f_io_kind(void) {
    char kind[32];
    sscanf(fio_failed, "%31s", kind);
    strcat(kind, " ");
    if (!strstr(f_io_kinds, kind) && strlen(f_io_kinds) + strlen(kind) < sizeof f_io_kinds)
        strcat(f_io_kinds, kind);
}
/* pair: the save commits two files, the weights, then the state: 1 lm_gpt_save_with_state,
   2 lm_seq2seq_save_with_state. f_pair_load loads such a pair and its state (finishing the
   save): are the weights and moments those of want? */
static int f_pair_load(int pair, const char *path, void *want, lm_train_state *st) {
    int ok;
    if (pair == 2) {
        lm_seq2seq *m = lm_seq2seq_load(path);
        ok = m && lm_seq2seq_load_state(m, path, st) == LM_OK &&
             f_same_params(&m->params, &((lm_seq2seq *)want)->params, 1);
        lm_seq2seq_free(m);
    } else {
        lm_gpt *m = lm_gpt_load(path, 0);
        ok = m && lm_gpt_load_state(m, path, st) == LM_OK &&
             f_same_params(&m->params, &((lm_gpt *)want)->params, 1);
        lm_gpt_free(m);
    }
    return ok;
}
static void f_io_save(const char *what, f_save_fn save, void *ctx, const char *name,
                      const char *name2, int pair) {
    f_files f;
    long k, points = 0;
    f_files_make(&f, save, ctx, name, name2);
    CHECK(!f_files_are(&f, 1), "%s: the test needs previous files that differ from the new ones", what);
    for (k = 1;; k++) {
        int rc, hit;
        lm_clear_error();
        fio_arm(k);
        rc = save(ctx, f.path[0]);
        hit = fio_failed[0] != 0;
        fio_fail_at = 0;
        if (!hit) {
            CHECK(rc == LM_OK, "%s: fails with no file call failing: %s", what, lm_error());
            CHECK(f_files_are(&f, 1) && f_tmp_files(f_dir) == 0, "%s: the files written differ", what);
            f_files_restore(&f);                      /* the previous files, for the next */
            break;
        }
        points++;
        f_io_kind();
        CHECK(rc == LM_ERR_IO && (strstr(lm_error(), "cannot") || strstr(lm_error(), "syncing")),
              "%s: with '%s' failing, it returns %d: %s", what, fio_failed, rc, lm_error());
        if (!strcmp(fio_failed, "fsync-dir")) {
            /* after the renames: the new files are in place (not known to be durable) */
            CHECK(f_files_are(&f, 1) && f_tmp_files(f_dir) == 0,
                  "%s: with the directory's fsync failing, the new files are not whole", what);
        } else if (pair && !strncmp(fio_failed, "rename", 6) && strstr(fio_failed, ".state.tmp")) {
            /* the weights are committed; the state that goes with them waits, complete, in
               PATH.state.tmp, where loading the state finds it and finishes the save */
            lm_train_state st;
            char tmp[340];
            snprintf(tmp, sizeof tmp, "%s.tmp", f.path[1]);
            CHECK(f_same_bytes(f.path[0], f.want[0], f.n_want[0]) &&
                  f_same_bytes(f.path[1], f.prev[1], f.n_prev[1]) &&
                  f_same_bytes(tmp, f.want[1], f.n_want[1]) && f_tmp_files(f_dir) == 1,
                  "%s: the state's rename failing: weights new, state old, new state in %s", what, tmp);
            memset(&st, 0, sizeof st);
            CHECK(f_pair_load(pair, f.path[0], ctx, &st) && st.step == f_state.step,
                  "%s: the state's rename failing: loading the state finishes the save", what);
            CHECK(f_files_are(&f, 1) && f_tmp_files(f_dir) == 0,
                  "%s: the state's rename failing: after the load, both files are the new ones", what);
        } else {
            CHECK(f_files_are(&f, 0) && f_tmp_files(f_dir) == 0,
                  "%s: with '%s' (call %ld) failing, the previous files are not as they were, "
                  "or a temporary file is left", what, fio_failed, k);
        }
        f_files_restore(&f);
    }
    printf("  %s: %ld file calls failed in turn\n", what, points);
    f_io_points += points;
    f_files_free(&f);
}

static void f_io_saves(void) {
    lm_tokenizer *b = lm_tok_bytes();
    printf("2. I/O failure at every call of a save\n");
    /* the previous files: the fresh model and its state, the bytes tokenizer */
    CHECK(lm_gpt_save_with_state(f_ref, f_path("m.safetensors"), &f_state) == LM_OK &&
          lm_tok_save(b, f_path("t.bpe")) == LM_OK, "previous files");
    f_io_save("lm_gpt_save", f_save_gpt, f_trained, "m.safetensors", NULL, 0);
    f_io_save("lm_gpt_save_state", f_save_state, f_trained, "m.safetensors", ".state", 0);
    f_io_save("lm_gpt_save_with_state", f_save_pair, f_trained, "m.safetensors", ".state", 1);
    f_io_save("lm_tok_save", f_save_tok, f_tok_ref, "t.bpe", NULL, 0);
    {
        /* the encoder-decoder's pair: a fresh model's files before, a trained one's after */
        lm_seq2seq *fresh = lm_seq2seq_new(&f_scfg, 5), *trained = lm_seq2seq_new(&f_scfg, 5);
        lm_seq2seq_batch bt = f_sbatch();
        lm_train_opts o = f_opts();
        int s;
        for (s = 0; trained && s < F_STEPS; s++) lm_seq2seq_train_step(trained, &o, &bt, s);
        CHECK(fresh && trained && lm_seq2seq_save_with_state(fresh, f_path("s.safetensors"), &f_state) == LM_OK,
              "previous encoder-decoder files");
        f_io_save("lm_seq2seq_save_with_state", f_save_s2s_pair, trained, "s.safetensors", ".state", 2);
        lm_seq2seq_free(fresh);
        lm_seq2seq_free(trained);
    }
    lm_tok_free(b);
}

/* ---------------------------------------------------------------------------------------
   3-4. lm train (out/lm_faults) when a file cannot be written, and when killed
   A small run: 1 layer, 16 wide, context 16, batch 2, a checkpoint every step, an eval
   every 2, --log and --plot. Each run is compared with a reference run that nothing
   disturbed: the checkpoint and resume state byte for byte, the log's step, loss, lr and
   val_loss columns as text.
   --------------------------------------------------------------------------------------- */
typedef struct f_ref_run {
    unsigned char *model, *state;
    size_t n_model, n_state;
    char *log;                                /* the log's columns 1-3 and 5, one row a line */
    double seconds;                           /* how long it took                          */
} f_ref_run;
static f_ref_run f_ref3, f_ref20;
static const char *f_lm = "out/lm_faults";
static long f_cli_points, f_kills, f_refusals, f_crashes, f_rolled;

static double f_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static const char *f_in_dir(const char *dir, const char *name) {
    static char buf[8][400];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}
/* The columns of a log that do not depend on time: step, loss, lr, val_loss. */
static char *f_log_cols(const char *path) {
    size_t n, i, o = 0;
    unsigned char *p = f_read(path, &n);
    char *out;
    int col = 0;
    if (!p) return NULL;
    out = (char *)malloc(n + 1);
    for (i = 0; i < n; i++) {
        if (p[i] == '\n') { col = 0; out[o++] = '\n'; continue; }
        if (p[i] == ',') col++;
        if (col <= 2 || col == 4) out[o++] = (char)p[i];
    }
    out[o] = 0;
    free(p);
    return out;
}
static void f_setenv(const char *kv) {             /* "NAME=VALUE" */
    char name[64];
    const char *eq = strchr(kv, '=');
    snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - kv) : 0, kv);
    if (eq) setenv(name, eq + 1, 1);
}
/* Copy the files of one directory into another (which has no others). */
static void f_copy_dir(const char *from, const char *to) {
    DIR *d = opendir(from);
    struct dirent *e;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        size_t n;
        unsigned char *p;
        if (e->d_name[0] == '.' || !(p = f_read(f_in_dir(from, e->d_name), &n))) continue;
        f_write(f_in_dir(to, e->d_name), p, n);
        free(p);
    }
    closedir(d);
}
/* Empty dir of everything but data.txt. */
static void f_clean(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) return;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strcmp(e->d_name, "data.txt")) remove(f_in_dir(dir, e->d_name));
    closedir(d);
}
/* Run lm train in dir (resume: --resume its checkpoint), with env (NAME=VALUE or NULL),
   a file size limit (fsize >= 0), and SIGKILL after kill_after seconds (> 0). Returns the
   wait status; the last line of stderr goes to last. */
static int f_train(const char *dir, int steps, int resume, const char *env, long fsize,
                   double kill_after, char *last, size_t cap) {
    char nsteps[16], data[400], model[400], logp[400], plot[400], err[4096];
    const char *argv[48];
    int a = 0, st = 0, pfd[2];
    size_t n = 0;
    ssize_t got;
    pid_t pid;
    snprintf(nsteps, sizeof nsteps, "%d", steps);
    snprintf(data, sizeof data, "%s", f_in_dir(dir, "data.txt"));
    snprintf(model, sizeof model, "%s", f_in_dir(dir, "m.safetensors"));
    snprintf(logp, sizeof logp, "%s", f_in_dir(dir, "log.csv"));
    snprintf(plot, sizeof plot, "%s", f_in_dir(dir, "plot.svg"));
    argv[a++] = f_lm; argv[a++] = "train"; argv[a++] = "--data"; argv[a++] = data;
    argv[a++] = "--model"; argv[a++] = model; argv[a++] = "--steps"; argv[a++] = nsteps;
    argv[a++] = "--save-every"; argv[a++] = "1"; argv[a++] = "--eval-every"; argv[a++] = "2";
    argv[a++] = "--val-frac"; argv[a++] = "0.2"; argv[a++] = "--log";
    argv[a++] = env && !strcmp(env, "LOG=/dev/full") ? "/dev/full" : logp;
    argv[a++] = "--plot"; argv[a++] = plot; argv[a++] = "--layers"; argv[a++] = "1";
    argv[a++] = "--heads"; argv[a++] = "2"; argv[a++] = "--embd"; argv[a++] = "16";
    argv[a++] = "--ctx"; argv[a++] = "16"; argv[a++] = "--batch"; argv[a++] = "2";
    argv[a++] = "--seed"; argv[a++] = "5"; argv[a++] = "--threads"; argv[a++] = "1";
    argv[a++] = "--quiet";
    if (resume) { argv[a++] = "--resume"; argv[a++] = model; }
    argv[a] = NULL;
    fflush(stdout);
    if (pipe(pfd) != 0) return -1;              /* stderr: a pipe, as a terminal is no file */
    pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        if (nul >= 0) dup2(nul, 1);
        if (env && strncmp(env, "LOG=", 4)) f_setenv(env);
        if (fsize >= 0) {
            struct rlimit rl;
            rl.rlim_cur = rl.rlim_max = (rlim_t)fsize;
            signal(SIGXFSZ, SIG_IGN);            /* a write past the limit fails: EFBIG */
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        execv(f_lm, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    if (pid < 0) { close(pfd[0]); return -1; }
    if (kill_after > 0) {
        struct timespec ts;
        ts.tv_sec = (time_t)kill_after;
        ts.tv_nsec = (long)((kill_after - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    while ((got = read(pfd[0], err + n, sizeof err - 1 - n)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0) n += (size_t)got;
    close(pfd[0]);
    waitpid(pid, &st, 0);
    err[n] = 0;
    if (strstr(err, "finished a save")) f_rolled++;     /* a resume found PATH.state.tmp */
    if (last) {
        size_t e;
        while (n && (err[n - 1] == '\n' || err[n - 1] == '\r')) n--;
        for (e = n; e && err[e - 1] != '\n'; e--) {}
        snprintf(last, cap, "%.*s", (int)(n - e), err + e);
    }
    return st;
}
static int f_exit_is(int st, int code) { return WIFEXITED(st) && WEXITSTATUS(st) == code; }
static int f_killed(int st) { return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL; }
/* Does dir hold the reference run's results? */
static int f_is_ref(const char *dir, const f_ref_run *r) {
    char *cols = f_log_cols(f_in_dir(dir, "log.csv"));
    size_t n;
    unsigned char *svg = f_read(f_in_dir(dir, "plot.svg"), &n);
    int ok = f_same_bytes(f_in_dir(dir, "m.safetensors"), r->model, r->n_model) &&
             f_same_bytes(f_in_dir(dir, "m.safetensors.state"), r->state, r->n_state) &&
             cols && !strcmp(cols, r->log) && svg && n > 7 && !memcmp(svg + n - 7, "</svg>\n", 7);
    free(cols);
    free(svg);
    return ok;
}
static void f_ref_make(f_ref_run *r, const char *dir, int steps) {
    char last[512];
    double t = f_now();
    int st = f_train(dir, steps, 0, NULL, -1, 0, last, sizeof last);
    r->seconds = f_now() - t;
    CHECK(f_exit_is(st, 0), "reference run of %d steps: %s", steps, last);
    r->model = f_read(f_in_dir(dir, "m.safetensors"), &r->n_model);
    r->state = f_read(f_in_dir(dir, "m.safetensors.state"), &r->n_state);
    r->log = f_log_cols(f_in_dir(dir, "log.csv"));
    CHECK(r->model && r->state && r->log, "reference run: its files");
}
static void f_ref_free(f_ref_run *r) { free(r->model); free(r->state); free(r->log); }
/* After a run that failed or was killed in dir: --resume (or, with no checkpoint yet, a
   fresh run) must end with the reference's results, or refuse with one clear line. */
static void f_finish(const char *dir, const f_ref_run *r, int steps, const char *after) {
    char last[512];
    int resume = f_exists(f_in_dir(dir, "m.safetensors")), st;
    st = f_train(dir, steps, resume, NULL, -1, 0, last, sizeof last);
    if (f_exit_is(st, 1) && !strncmp(last, "lm train: ", 10)) {
        f_refusals++;                          /* refused, clearly: start again */
        printf("  refused after %s: %s\n", after, last);
        f_clean(dir);
        st = f_train(dir, steps, 0, NULL, -1, 0, last, sizeof last);
    }
    if (!WIFEXITED(st)) f_crashes++;
    CHECK(f_exit_is(st, 0) && f_is_ref(dir, r), "after %s, %s ends with other results than "
          "a run never disturbed (status %d: %s)", after, resume ? "--resume" : "a fresh run", st, last);
    CHECK(f_tmp_files(dir) == 0, "after %s and the run that finished, a temporary file is left", after);
}

/* 3. Each file call of a run failing in turn - a fresh run, and a run resumed from base
   (a run stopped after its first steps) - then files limited in size, and --log /dev/full. */
static long f_cli_sweep(const char *dir, const char *base) {
    char env[64], rep[64], last[512], what[512];
    long k, points = 0;
    snprintf(rep, sizeof rep, "LM_FAULT_REPORT=%s", f_in_dir(dir, "fault.txt"));
    for (k = 1;; k++) {
        size_t n;
        unsigned char *failed;
        int st, tmps;
        f_clean(dir);
        if (base) f_copy_dir(base, dir);
        tmps = f_tmp_files(dir);                 /* left by the kill that stopped base */
        snprintf(env, sizeof env, "LM_FAULT_IO=%ld", k);
        f_setenv(rep);
        st = f_train(dir, 3, base != NULL, env, -1, 0, last, sizeof last);
        unsetenv("LM_FAULT_REPORT");
        failed = f_read(f_in_dir(dir, "fault.txt"), &n);
        snprintf(what, sizeof what, "'%.*s' (call %ld%s) failing", failed ? (int)n - 1 : 4,
                 failed ? (const char *)failed : "none", k, base ? " of a resumed run" : "");
        free(failed);
        if (!failed) {                           /* a run with no call failing: the end */
            CHECK(f_exit_is(st, 0) && f_is_ref(dir, &f_ref3), "lm train with no call failing: %s", last);
            break;
        }
        remove(f_in_dir(dir, "fault.txt"));
        points++;
        if (!WIFEXITED(st)) f_crashes++;
        CHECK(f_exit_is(st, 0) || (f_exit_is(st, 1) && !strncmp(last, "lm train: ", 10) && strstr(last, "cannot")),
              "lm train with %s: status %d, last line '%s'", what, st, last);
        if (f_exit_is(st, 0))                    /* the failure did not matter (the plot) */
            CHECK(f_is_ref(dir, &f_ref3) || strstr(what, "plot"), "lm train with %s: succeeded, "
                  "but with other results", what);
        CHECK(f_tmp_files(dir) <= tmps || (strstr(what, "rename") && strstr(what, ".state.tmp")),
              "lm train with %s: a temporary file is left", what);
        f_finish(dir, &f_ref3, 3, what);
    }
    printf("  %ld file calls of %s failed in turn\n", points, base ? "a resumed lm train" : "lm train");
    f_cli_points += points;
    return points;
}
static void f_cli_io(const char *dir, const char *base) {
    long limits[6];
    char last[512], what[512];
    int i;
    printf("3. lm train when a file cannot be written\n");
    f_cli_sweep(dir, NULL);
    f_cli_sweep(dir, base);
    /* a disk that fills: no file may grow past a limit (RLIMIT_FSIZE), which the log, the
       picture, the checkpoint or its state reaches first */
    limits[0] = 0; limits[1] = 200; limits[2] = (long)f_ref3.n_model - 1;
    limits[3] = (long)f_ref3.n_model + 1; limits[4] = (long)f_ref3.n_state - 1;
    limits[5] = (long)f_ref3.n_state + 1;
    for (i = 0; i < 6; i++) {
        int st;
        f_clean(dir);
        st = f_train(dir, 3, 0, NULL, limits[i], 0, last, sizeof last);
        snprintf(what, sizeof what, "files limited to %ld bytes", limits[i]);
        if (limits[i] > (long)f_ref3.n_state)
            CHECK(f_exit_is(st, 0) && f_is_ref(dir, &f_ref3), "lm train with %s (all fit): %s", what, last);
        else
            CHECK(f_exit_is(st, 1) && !strncmp(last, "lm train: cannot", 16) && strstr(last, "too large"),
                  "lm train with %s: status %d, last line '%s'", what, st, last);
        CHECK(f_tmp_files(dir) == 0, "lm train with %s: a temporary file is left", what);
        printf("  %s: %s\n", what, last);
        f_finish(dir, &f_ref3, 3, what);
    }
    f_clean(dir);
    {
        int st = f_train(dir, 3, 0, "LOG=/dev/full", -1, 0, last, sizeof last);
        CHECK(f_exit_is(st, 1) && strstr(last, "No space left"), "lm train --log /dev/full: status %d, '%s'", st, last);
        printf("  --log /dev/full: %s\n", last);
    }
}

/* 4. Killed before each file call in turn, then at random moments. */
static void f_cli_kills(const char *dir, const char *dir20) {
    char env[64], last[512], what[64];
    uint64_t seed = (uint64_t)time(NULL);
    lm_rng r = lm_rng_seed(seed);
    long k, det = 0;
    int chain;
    printf("4. lm train killed at any moment (random moments from seed %llu)\n", (unsigned long long)seed);
    for (k = 1;; k++) {
        int st;
        f_clean(dir);
        snprintf(env, sizeof env, "LM_FAULT_KILL=%ld", k);
        st = f_train(dir, 3, 0, env, -1, 0, last, sizeof last);
        if (f_exit_is(st, 0)) { CHECK(f_is_ref(dir, &f_ref3), "lm train not killed: other results"); break; }
        CHECK(f_killed(st), "lm train to be killed before file call %ld: status %d", k, st);
        det++;
        snprintf(what, sizeof what, "a kill before file call %ld", k);
        f_finish(dir, &f_ref3, 3, what);
    }
    printf("  killed before each of its %ld file calls: each time --resume went on\n", det);
    /* random moments: a run of 20 steps killed again and again until it ends, and again,
       until 100 kills */
    for (chain = 0; f_kills < 100 && chain < 200; chain++) {
        int st, resume = 0, kills = 0;
        f_clean(dir20);
        for (;;) {
            double at = f_ref20.seconds * (double)lm_rng_uniform(&r);
            st = f_train(dir20, 20, resume, NULL, -1, at > 1e-4 ? at : 1e-4, last, sizeof last);
            if (!f_killed(st)) break;
            kills++;
            resume = f_exists(f_in_dir(dir20, "m.safetensors"));
        }
        f_kills += kills;
        if (f_exit_is(st, 1) && !strncmp(last, "lm train: ", 10)) {
            f_refusals++;
            printf("  refused after a kill: %s\n", last);
            continue;
        }
        if (!WIFEXITED(st)) f_crashes++;
        CHECK(f_exit_is(st, 0) && f_is_ref(dir20, &f_ref20), "a run killed %d times at random "
              "moments ends with other results than a run never killed (status %d: %s)", kills, st, last);
        CHECK(f_tmp_files(dir20) == 0, "a run killed at random moments: a temporary file is left");
    }
    printf("  %ld kills at random moments (in %d runs of 20 steps, %.2f s each undisturbed)\n",
           f_kills, chain, f_ref20.seconds);
    f_kills += det;
}

static void f_cli(const char *parts) {
    char dir[320], dir3[320], dir20[320], text[30000];
    size_t n;
    int i;
    const char *names[5] = {"ref3", "ref20", "run", "run20", "base"};
    char base[320], last[512];
    if (!f_exists(f_lm)) { CHECK(0, "%s is missing (make test-faults builds it)", f_lm); return; }
    f_setenv("LM_FAULT_NOSYNC=1");
    n = f_text(text, sizeof text);
    for (i = 0; i < 5; i++) {
        snprintf(dir, sizeof dir, "%s", f_path(names[i]));
        mkdir(dir, 0755);
        f_write(f_in_dir(dir, "data.txt"), text, n);
    }
    snprintf(dir3, sizeof dir3, "%s", f_path("run"));
    snprintf(dir20, sizeof dir20, "%s", f_path("run20"));
    f_ref_make(&f_ref3, f_path("ref3"), 3);
    f_ref_make(&f_ref20, f_path("ref20"), 20);
    /* the base of the resumed runs: a run of 3 steps killed in its third step */
    snprintf(base, sizeof base, "%s", f_path("base"));
    {
        int st = f_train(base, 3, 0, "LM_FAULT_KILL=150", -1, 0, last, sizeof last);
        lm_gpt *m = lm_gpt_load(f_in_dir(base, "m.safetensors"), 0);
        lm_train_state ts;
        CHECK(f_killed(st) && m && lm_gpt_load_state(m, f_in_dir(base, "m.safetensors"), &ts) == LM_OK &&
              ts.step == 2, "a run to resume: killed with 2 steps saved (status %d)", st);
        lm_gpt_free(m);
    }
    if (strchr(parts, '3')) f_cli_io(dir3, base);
    if (strchr(parts, '4')) f_cli_kills(dir3, dir20);
    printf("lm train: %ld file calls failed, %ld kills; %ld crashes, %ld refusals to resume; "
           "%ld resumes finished a save stopped between its renames\n", f_cli_points, f_kills,
           f_crashes, f_refusals, f_rolled);
    CHECK(f_crashes == 0, "lm train crashed %ld times", f_crashes);
    /* lm_gpt_save_with_state leaves a pair that resumes whenever it is stopped, so --resume
       never has to refuse (a run killed before its first save is started afresh) */
    CHECK(f_refusals == 0, "--resume refused %ld times", f_refusals);
    f_ref_free(&f_ref3);
    f_ref_free(&f_ref20);
}

static void f_cleanup(void) {
    char cmd[128];
    lm_gpt_free(f_ref);
    lm_gpt_free(f_trained);
    lm_tok_free(f_tok_ref);
    free(f_img);
    free(f_tok_img);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f_dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", f_dir);
}

/* lm.h's log (a save finished by lm_gpt_load_state says so): counted, not printed. */
static long f_logged;
static void f_log(void *user, const char *msg) { (void)user; (void)msg; f_logged++; }

/* out/faults [PARTS]: all four parts, or those whose digits PARTS lists ("34"). */
int main(int argc, char **argv) {
    const char *parts = argc > 1 ? argv[1] : "1234";
    setvbuf(stdout, NULL, _IOLBF, 0);
    fio_nosync = 1;
    lm_set_log(f_log, NULL);
    strcpy(f_dir, "/tmp/lm_faults_XXXXXX");
    if (!mkdtemp(f_dir)) { printf("cannot make a scratch directory\n"); return 1; }
    f_batches();
    f_allocations();                         /* (its objects serve the parts after it) */
    if (strchr(parts, '2')) f_io_saves();
    if (strchr(parts, '3') || strchr(parts, '4')) f_cli(parts);
    f_cleanup();
    CHECK(f_held() == 0, "%ld blocks of lm.h's are still allocated at the end", f_live);
    printf("in all: %ld allocation failure points; %ld file calls failed (%ld in lm.h's saves, "
           "%ld in lm train); %ld kills; %ld crashes\n", f_points, f_io_points + f_cli_points,
           f_io_points, f_cli_points, f_kills, f_crashes);
    printf("%d passed, %d failed\n", f_pass, f_fail);
    return f_fail ? 1 : 0;
}
#endif /* FAULTS_CLI */
