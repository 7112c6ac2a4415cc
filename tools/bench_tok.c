/* bench_tok.c - tokenizer speed and compression, and an id dump for cross-checks.
   Build from the repository root:
       cc -std=c99 -O2 -march=native -I. tools/bench_tok.c -o bench_tok -lm -lpthread
   Usage:
       bench_tok bench GPT2_DIR TEXT     GPT-2 encode MB/s, decode MB/s, BPE training time
                                         for 512 and 4096 tokens, bytes per token of each
       bench_tok ids GPT2_DIR FILE       GPT-2 ids of FILE, one line (as tools/gpt2_ref.py)
       bench_tok cases GPT2_DIR FILE     one line of ids per case of a cases file
                                         (u32 little-endian length, then the bytes)
   Cross-check against the Python reference, e.g.:
       /usr/bin/python3 tools/gpt2_ref.py tests/gpt2 ids TEXT > a; ./bench_tok ids tests/gpt2 TEXT > b
       cmp a b
*/
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { return (double)clock() / CLOCKS_PER_SEC; }   /* CPU seconds */

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long len;
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(1); }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) { fprintf(stderr, "read %s\n", path); exit(1); }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static lm_tokenizer *gpt2(const char *dir) {
    lm_tokenizer *t = lm_tok_load_gpt2(dir);
    if (!t) { fprintf(stderr, "gpt2: %s\n", lm_error()); exit(1); }
    return t;
}

static void print_ids(const lm_tokenizer *t, const unsigned char *s, size_t n, int *ids) {
    long k, m = lm_tok_encode(t, s, n, ids, n);
    if (m < 0) { fprintf(stderr, "encode: %s\n", lm_error()); exit(1); }
    for (k = 0; k < m; k++) printf(k ? " %d" : "%d", ids[k]);
    printf("\n");
}

/* Best of `reps` runs of encode over the whole text, in MB/s; *ntok gets the id count. */
static double encode_speed(const lm_tokenizer *t, const unsigned char *s, size_t n, int *ids,
                           int reps, long *ntok) {
    double best = 1e30;
    int r;
    for (r = 0; r < reps; r++) {
        double t0 = now();
        *ntok = lm_tok_encode(t, s, n, ids, n);
        t0 = now() - t0;
        if (t0 < best) best = t0;
    }
    return (double)n / best / 1e6;
}

static void bench(const char *dir, const char *path) {
    size_t n;
    unsigned char *s = slurp(path, &n), *back = (unsigned char *)malloc(n + 1);
    int *ids = (int *)malloc((n + 1) * sizeof *ids), sizes[2] = {512, 4096}, k;
    lm_tokenizer *t = gpt2(dir);
    long ntok, nb;
    double mbs, t0;
    printf("text %s: %lu bytes\n", path, (unsigned long)n);
    mbs = encode_speed(t, s, n, ids, 5, &ntok);
    t0 = now();
    nb = lm_tok_decode(t, ids, (size_t)ntok, back, n);
    t0 = now() - t0;
    printf("gpt2: encode %.1f MB/s, decode %.0f MB/s, %ld tokens, %.3f bytes/token, "
           "round trip %s\n", mbs, (double)n / t0 / 1e6, ntok, (double)n / (double)ntok,
           nb == (long)n && !memcmp(back, s, n) ? "ok" : "FAILED");
    lm_tok_free(t);
    for (k = 0; k < 2; k++) {
        t0 = now();
        t = lm_tok_train(s, n, sizes[k]);
        t0 = now() - t0;
        if (!t) { fprintf(stderr, "train: %s\n", lm_error()); exit(1); }
        mbs = encode_speed(t, s, n, ids, 3, &ntok);
        nb = lm_tok_decode(t, ids, (size_t)ntok, back, n);
        printf("bpe %d: trained in %.3f s (vocab %d), encode %.1f MB/s, %ld tokens, "
               "%.3f bytes/token, round trip %s\n", sizes[k], t0, lm_tok_vocab_size(t), mbs,
               ntok, (double)n / (double)ntok,
               nb == (long)n && !memcmp(back, s, n) ? "ok" : "FAILED");
        lm_tok_free(t);
    }
    free(s); free(back); free(ids);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "bench")) {
        bench(argv[2], argv[3]);
    } else if (argc == 4 && !strcmp(argv[1], "ids")) {
        size_t n;
        unsigned char *s = slurp(argv[3], &n);
        int *ids = (int *)malloc((n + 1) * sizeof *ids);
        lm_tokenizer *t = gpt2(argv[2]);
        print_ids(t, s, n, ids);
        lm_tok_free(t); free(s); free(ids);
    } else if (argc == 4 && !strcmp(argv[1], "cases")) {
        size_t n, i = 0;
        unsigned char *s = slurp(argv[3], &n);
        int *ids = (int *)malloc((n + 1) * sizeof *ids);
        lm_tokenizer *t = gpt2(argv[2]);
        while (i + 4 <= n) {
            size_t len = (size_t)s[i] | (size_t)s[i + 1] << 8 | (size_t)s[i + 2] << 16 |
                         (size_t)s[i + 3] << 24;
            if (len > n - i - 4) { fprintf(stderr, "bad cases file\n"); return 1; }
            print_ids(t, s + i + 4, len, ids);
            i += 4 + len;
        }
        lm_tok_free(t); free(s); free(ids);
    } else {
        fprintf(stderr, "usage: bench_tok bench|ids|cases GPT2_DIR FILE\n");
        return 2;
    }
    return 0;
}
