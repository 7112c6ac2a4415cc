/* bench_gemm: time C = A * op(B) for one shape and print GFLOP/s.

   Build:  cc -O2 -march=native -I. tools/bench_gemm.c -o bench_gemm -lm -lpthread
   Usage:  bench_gemm M N K [--bt] [--ta] [--threads N] [--scalar] [--cputime]
     --bt        B is stored N x K (transposed), as for x * W^T
     --ta        A is stored K x M (transposed)
     --threads   size of the thread pool (default 1)
     --scalar    time lm_gemm_scalar, the portable path, instead of lm_gemm
     --cputime   time by process CPU time instead of the wall clock: steadier on a busy
                 machine for one thread (with more threads it sums the threads' times)

   Reference build against OpenBLAS (same flags, plus -DLM_BENCH_OPENBLAS ... -lopenblas):
   then cblas_sgemm is timed instead, with the same shapes and the same thread count.

   Each measurement runs enough calls to take about 50 ms; the median of 7 measurements is
   reported. The last line is always "gflops X". */
#define _POSIX_C_SOURCE 200809L
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LM_BENCH_OPENBLAS
/* the few declarations of cblas.h that we need, so no include path is required */
enum { LM_B_ROW_MAJOR = 101, LM_B_NO_TRANS = 111, LM_B_TRANS = 112 };
void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
void openblas_set_num_threads(int n);
#endif

static int use_cpu_time = 0;
static double now_sec(void) {
    struct timespec ts;
    clock_gettime(use_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int M, N, K, ta = 0, tb = 0, threads = 1, scalar = 0, i, r, reps;
    float *A, *B, *C;
    double t, times[7], flops;
    lm_rng rng = lm_rng_seed(1);
    const char *what;
    if (argc < 4) {
        fprintf(stderr, "usage: %s M N K [--bt] [--ta] [--threads N] [--scalar] [--cputime]\n",
                argv[0]);
        return 2;
    }
    M = atoi(argv[1]); N = atoi(argv[2]); K = atoi(argv[3]);
    for (i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--bt")) tb = 1;
        else if (!strcmp(argv[i], "--ta")) ta = 1;
        else if (!strcmp(argv[i], "--scalar")) scalar = 1;
        else if (!strcmp(argv[i], "--cputime")) use_cpu_time = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    if (M <= 0 || N <= 0 || K <= 0) { fprintf(stderr, "sizes must be positive\n"); return 2; }
    A = (float *)malloc((size_t)M * K * sizeof(float));
    B = (float *)malloc((size_t)K * N * sizeof(float));
    C = (float *)malloc((size_t)M * N * sizeof(float));
    if (!A || !B || !C) { fprintf(stderr, "out of memory\n"); return 1; }
    for (i = 0; i < M * K; i++) A[i] = lm_rng_uniform(&rng) - 0.5f;
    for (i = 0; i < K * N; i++) B[i] = lm_rng_uniform(&rng) - 0.5f;
    memset(C, 0, (size_t)M * N * sizeof(float));

#ifdef LM_BENCH_OPENBLAS
    openblas_set_num_threads(threads);
    what = "openblas";
#define RUN() cblas_sgemm(LM_B_ROW_MAJOR, ta ? LM_B_TRANS : LM_B_NO_TRANS, \
                          tb ? LM_B_TRANS : LM_B_NO_TRANS, M, N, K, 1.0f, A, ta ? M : K, \
                          B, tb ? K : N, 0.0f, C, N)
#else
    lm_set_threads(threads);
    what = scalar ? "lm_gemm_scalar" : lm_simd_name();
#define RUN() (scalar ? lm_gemm_scalar : lm_gemm)(ta, tb, M, N, K, 1.0f, A, ta ? M : K, \
                                                  B, tb ? K : N, 0.0f, C, N)
#endif
    flops = 2.0 * M * N * K;
    /* warm up, then size the batch to ~50 ms */
    t = now_sec();
    RUN();
    t = now_sec() - t;
    reps = t > 0.05 ? 1 : (int)(0.05 / (t > 1e-7 ? t : 1e-7)) + 1;
    for (r = 0; r < 7; r++) {
        t = now_sec();
        for (i = 0; i < reps; i++) RUN();
        times[r] = (now_sec() - t) / reps;
    }
    qsort(times, 7, sizeof times[0], cmp_double);
    printf("%s M=%d N=%d K=%d ta=%d tb=%d threads=%d: %.3f ms (min %.3f)\n", what, M, N, K,
           ta, tb, threads, times[3] * 1e3, times[0] * 1e3);
    printf("best %.1f\n", flops / times[0] * 1e-9);
    printf("gflops %.1f\n", flops / times[3] * 1e-9);
    free(A); free(B); free(C);
    return 0;
}
