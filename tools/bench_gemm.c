/* bench_gemm: time C = A * op(B) for one shape and print GFLOP/s.

   Build:  cc -O2 -march=native -I. tools/bench_gemm.c -o bench_gemm -lm -lpthread
   Usage:  bench_gemm M N K [--bt] [--ta] [--threads N] [--scalar] [--cputime]
           bench_gemm --peak [--threads N]
     --bt        B is stored N x K (transposed), as for x * W^T
     --ta        A is stored K x M (transposed)
     --threads   size of the thread pool (default 1)
     --scalar    time lm_gemm_scalar, the portable path, instead of lm_gemm
     --cputime   time by process CPU time instead of the wall clock: steadier on a busy
                 machine for one thread (with more threads it sums the threads' times)

     --peak      the machine's peak instead: GFLOP/s of fused multiply-adds in the widest
                 vectors of the build (12 independent chains a thread, enough to fill both
                 FMA units), on N threads at once - what no GEMM can beat

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

/* ---- the peak: independent FMA chains, no memory traffic ---------------------------------- */
#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 peak_v;
#define PEAK_LANES 16
#define PEAK_SET(x) _mm512_set1_ps(x)
#define PEAK_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define PEAK_SUM(v) _mm512_reduce_add_ps(v)
#elif defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
typedef __m256 peak_v;
#define PEAK_LANES 8
#define PEAK_SET(x) _mm256_set1_ps(x)
#define PEAK_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float PEAK_SUM(__m256 v) {
    float t[8]; int i; float s = 0; _mm256_storeu_ps(t, v);
    for (i = 0; i < 8; i++) s += t[i];
    return s;
}
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
typedef float32x4_t peak_v;
#define PEAK_LANES 4
#define PEAK_SET(x) vdupq_n_f32(x)
#define PEAK_FMA(a, b, c) vfmaq_f32(c, a, b)
#define PEAK_SUM(v) vaddvq_f32(v)
#else
typedef float peak_v;
#define PEAK_LANES 1
#define PEAK_SET(x) (x)
#define PEAK_FMA(a, b, c) ((a) * (b) + (c))
#define PEAK_SUM(v) (v)
#endif
#define PEAK_CHAINS 12
#define PEAK_ITERS 240000000L

static volatile float peak_sink;
static void peak_task(void *ctx, int i) {
    /* 12 named accumulators (not an array: they must live in registers; AVX2 has 16) */
    peak_v m = PEAK_SET(0.999999f), x = PEAK_SET(1e-7f);
    peak_v a0 = PEAK_SET(0), a1 = PEAK_SET(1), a2 = PEAK_SET(2), a3 = PEAK_SET(3);
    peak_v a4 = PEAK_SET(4), a5 = PEAK_SET(5), a6 = PEAK_SET(6), a7 = PEAK_SET(7);
    peak_v a8 = PEAK_SET(8), a9 = PEAK_SET(9), a10 = PEAK_SET(10), a11 = PEAK_SET(11);
    long it;
    (void)ctx; (void)i;
    for (it = 0; it < PEAK_ITERS / PEAK_LANES; it++) {
        a0 = PEAK_FMA(a0, m, x); a1 = PEAK_FMA(a1, m, x); a2 = PEAK_FMA(a2, m, x);
        a3 = PEAK_FMA(a3, m, x); a4 = PEAK_FMA(a4, m, x); a5 = PEAK_FMA(a5, m, x);
        a6 = PEAK_FMA(a6, m, x); a7 = PEAK_FMA(a7, m, x); a8 = PEAK_FMA(a8, m, x);
        a9 = PEAK_FMA(a9, m, x); a10 = PEAK_FMA(a10, m, x); a11 = PEAK_FMA(a11, m, x);
    }
    peak_sink = PEAK_SUM(a0) + PEAK_SUM(a1) + PEAK_SUM(a2) + PEAK_SUM(a3) + PEAK_SUM(a4) +
                PEAK_SUM(a5) + PEAK_SUM(a6) + PEAK_SUM(a7) + PEAK_SUM(a8) + PEAK_SUM(a9) +
                PEAK_SUM(a10) + PEAK_SUM(a11);
}

static double now_sec(void);
static int cmp_double(const void *a, const void *b);
/* GFLOP/s of `threads` threads each running peak_task once (through lm.h's pool, so the
   threads are the ones the GEMM runs on): median of 5. */
static int run_peak(int threads) {
    double t, times[5], flops = 2.0 * PEAK_LANES * PEAK_CHAINS * (double)(PEAK_ITERS / PEAK_LANES);
    int r;
    lm_set_threads(threads);
    peak_task(NULL, 0); /* warm up: the clock settles */
    for (r = 0; r < 5; r++) {
        t = now_sec();
        lm_parallel_for(threads, peak_task, NULL);
        times[r] = now_sec() - t;
    }
    qsort(times, 5, sizeof times[0], cmp_double);
    printf("peak: %d thread(s), %d-lane FMA, %d chains: %.3f s\n", threads, PEAK_LANES,
           PEAK_CHAINS, times[2]);
    printf("gflops %.1f\n", flops * threads / times[2] * 1e-9);
    return 0;
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
    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--peak")) {
            for (i = 1; i < argc; i++)
                if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
            return run_peak(threads > 0 ? threads : 1);
        }
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
