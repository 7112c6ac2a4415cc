/* The machine's memory read bandwidth, as generation sees it: N threads (default 2) each
   sum its share of a buffer, as a matrix-vector product streams its weights. A buffer far
   larger than the caches (the default, 2048 MB) measures the memory; one the size of a
   model's weights measures where those weights live (a large L3 may hold them). Prints the
   best and the median GB/s of --reps passes. -O3 so that the sums are vector loads (at -O2
   gcc keeps them scalar and measures the core, not the memory). Built by `make bench`
   (tools/bench.py runs it beside `lm bench generate`):
     cc -O3 -march=native tools/bench_membw.c -o out/bench_membw -lpthread
   usage: bench_membw [--threads N] [--mb M] [--reps R]          prints: gb_per_s X median Y */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint64_t *p; size_t n; uint64_t sum; } bw_part;

static void *bw_read(void *arg) {
    bw_part *w = (bw_part *)arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i;
    for (i = 0; i + 4 <= w->n; i += 4) {
        s0 += w->p[i];
        s1 += w->p[i + 1];
        s2 += w->p[i + 2];
        s3 += w->p[i + 3];
    }
    w->sum = s0 + s1 + s2 + s3;
    return NULL;
}

static double bw_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int bw_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 7, r, k, i;
    size_t mb = 2048, n, words;
    uint64_t *buf, total = 0;
    double gbs[64];
    pthread_t tid[64];
    bw_part part[64];
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mb")) mb = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else break;
    }
    if (i < argc || threads < 1 || threads > 64 || reps < 1 || reps > 64 || mb < 1) {
        fprintf(stderr, "usage: bench_membw [--threads N<=64] [--mb M] [--reps R<=64]\n");
        return 2;
    }
    n = mb << 20;
    words = n / sizeof(uint64_t);
    if (!(buf = (uint64_t *)malloc(n))) { fprintf(stderr, "bench_membw: out of memory\n"); return 1; }
    for (i = 0; (size_t)i < words; i++) buf[i] = (uint64_t)i;   /* touch every page */
    for (r = 0; r < reps; r++) {
        double t0 = bw_now();
        for (k = 0; k < threads; k++) {
            size_t a = words * (size_t)k / (size_t)threads, b = words * (size_t)(k + 1) / (size_t)threads;
            part[k].p = buf + a;
            part[k].n = b - a;
            pthread_create(&tid[k], NULL, bw_read, &part[k]);
        }
        for (k = 0; k < threads; k++) { pthread_join(tid[k], NULL); total += part[k].sum; }
        gbs[r] = (double)n / (bw_now() - t0) / 1e9;
    }
    qsort(gbs, (size_t)reps, sizeof gbs[0], bw_cmp);
    printf("gb_per_s %.2f median %.2f threads %d mb %lu check %lu\n", gbs[reps - 1], gbs[reps / 2],
           threads, (unsigned long)mb, (unsigned long)(total & 0xff));
    free(buf);
    return 0;
}
