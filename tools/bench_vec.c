/* bench_vec: nanoseconds per element of the vector math kernels against plain libm loops,
   on 1M floats (4 MB per array: beyond L2, as a training step's activations are).

   Build:  cc -O2 -march=native -I. tools/bench_vec.c -o bench_vec -lm -lpthread
   Usage:  bench_vec [n]       (n elements, default 1048576)

   For each function three loops are timed: libm (tanhf, expf, ... one element at a time,
   as the straightforward code would be written), the kernel's scalar path
   (lm__vec_simd = 0) and the kernel itself (the SIMD path compiled in). Each figure is the
   median of 7 measurements of about 20 ms of process CPU time each (one thread, so CPU
   time is its time, and steadier than the wall clock on a busy machine). The speedup
   column is libm / kernel. */
#define _POSIX_C_SOURCE 200809L
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The arrays every case works on. */
static float *X, *Y, *DY, *DX, *W, *M, *V;
static int N;
static volatile double sink;       /* results go here, so no loop is optimised away */

/* ---- the libm loops ---- */
static void ref_exp(void) { int i; for (i = 0; i < N; i++) Y[i] = expf(X[i]); }
static void ref_tanh(void) { int i; for (i = 0; i < N; i++) Y[i] = tanhf(X[i]); }
static void ref_sigmoid(void) { int i; for (i = 0; i < N; i++) Y[i] = 1.0f / (1.0f + expf(-X[i])); }
static void ref_gelu_fwd(void) {
    int i;
    for (i = 0; i < N; i++) {
        float x = X[i];
        Y[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
    }
}
static void ref_gelu_bwd(void) {
    int i;
    for (i = 0; i < N; i++) {
        float x = X[i], t = tanhf(0.7978845608f * (x + 0.044715f * x * x * x));
        float d = 0.5f * (1.0f + t) +
                  0.5f * x * (1.0f - t * t) * 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
        DX[i] += DY[i] * d;
    }
}
static void ref_sum_exp(void) {
    double s = 0;
    int i;
    for (i = 0; i < N; i++) { Y[i] = expf(X[i] - 3.0f); s += Y[i]; }
    sink = s;
}
static void ref_dot(void) {
    float s = 0;
    int i;
    for (i = 0; i < N; i++) s += X[i] * DY[i];
    sink = s;
}
static void ref_max(void) {
    float m = -INFINITY;
    int i;
    for (i = 0; i < N; i++) m = X[i] > m ? X[i] : m;
    sink = m;
}
static void ref_axpy(void) { int i; for (i = 0; i < N; i++) DX[i] += 0.5f * X[i]; }
static void ref_acc(void) { int i; for (i = 0; i < N; i++) DX[i] += X[i]; }
static void ref_layernorm(void) {
    int r, i, C = 768;
    for (r = 0; r + C <= N; r += C) {
        const float *x = X + r;
        float mean = 0, var = 0, rstd;
        for (i = 0; i < C; i++) mean += x[i];
        mean /= C;
        for (i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
        rstd = 1.0f / sqrtf(var / C + 1e-5f);
        for (i = 0; i < C; i++) Y[r + i] = (x[i] - mean) * rstd * W[i] + DY[i];
    }
}
static void ref_adamw(void) {
    int i;
    for (i = 0; i < N; i++) {
        W[i] *= 0.9999f;
        M[i] = 0.9f * M[i] + 0.1f * DY[i];
        V[i] = 0.99f * V[i] + 0.01f * DY[i] * DY[i];
        W[i] -= 1e-3f * M[i] / (sqrtf(V[i]) / 0.3f + 1e-8f);
    }
}

/* ---- the kernels ---- */
static void k_exp(void) { lm__vexp(X, Y, N); }
static void k_tanh(void) { lm__vtanh(X, Y, N); }
static void k_sigmoid(void) { lm__vsigmoid(X, Y, N); }
static void k_gelu_fwd(void) { lm__gelu_fwd(X, Y, N); }
static void k_gelu_bwd(void) { lm__gelu_bwd(X, DY, DX, N); }
static void k_sum_exp(void) { sink = lm__vsum_exp_shift(X, 3.0f, Y, N); }
static void k_dot(void) { sink = lm__vdot(X, DY, N); }
static void k_max(void) { sink = lm__vmax(X, N); }
static void k_axpy(void) { lm__vaxpy(0.5f, X, DX, N); }
static void k_acc(void) { lm__vacc(X, DX, N); }
static void k_layernorm(void) {
    int r, C = 768;
    for (r = 0; r + C <= N; r += C) lm__layernorm_row(X + r, W, DY, Y + r, C, 1e-5f, NULL, NULL);
}
static void k_adamw(void) {
    lm__adamw_update(W, DY, M, V, N, 0.9999f, 0.9f, 0.99f, 1e-3f, 0.3f, 1e-8f);
}

/* Median time of one call, in ns per element. */
static double time_ns(void (*fn)(void)) {
    double times[7], t;
    int r, k, reps = 1;
    fn();                                              /* warm up: page in the arrays */
    t = now_sec();
    fn();
    t = now_sec() - t;
    if (t < 0.02) reps = (int)(0.02 / (t + 1e-9)) + 1;
    for (r = 0; r < 7; r++) {
        t = now_sec();
        for (k = 0; k < reps; k++) fn();
        times[r] = (now_sec() - t) / reps;
    }
    qsort(times, 7, sizeof times[0], cmp_double);
    return times[3] * 1e9 / N;
}

static void row(const char *name, void (*ref)(void), void (*kernel)(void)) {
    double tr = time_ns(ref), ts, tv;
    lm__vec_simd = 0;
    ts = time_ns(kernel);
    lm__vec_simd = 1;
    tv = time_ns(kernel);
    printf("%-14s %10.3f %10.3f %10.3f %9.1fx\n", name, tr, ts, tv, tr / tv);
}

int main(int argc, char **argv) {
    float **arrays[7];
    lm_rng rng = lm_rng_seed(1);
    int i, a;
    N = argc > 1 ? atoi(argv[1]) : 1 << 20;
    if (N < 768) N = 768;
    arrays[0] = &X; arrays[1] = &Y; arrays[2] = &DY; arrays[3] = &DX;
    arrays[4] = &W; arrays[5] = &M; arrays[6] = &V;
    for (a = 0; a < 7; a++) {
        *arrays[a] = (float *)malloc((size_t)N * sizeof(float));
        if (!*arrays[a]) { fprintf(stderr, "bench_vec: out of memory\n"); return 1; }
    }
    /* pre-activations of a trained net: roughly normal, a few large */
    for (i = 0; i < N; i++) {
        X[i] = 2.0f * lm_rng_normal(&rng);
        DY[i] = 0.01f * lm_rng_normal(&rng);
        DX[i] = 0;
        W[i] = 0.02f * lm_rng_normal(&rng);
        M[i] = 0;
        V[i] = 0;
    }
    printf("bench_vec: %d elements, SIMD path %s (%d lanes); ns per element\n", N,
           lm_simd_name(), LM__VW);
    printf("%-14s %10s %10s %10s %10s\n", "function", "libm loop", "scalar", lm_simd_name(),
           "speedup");
    row("exp", ref_exp, k_exp);
    row("tanh", ref_tanh, k_tanh);
    row("sigmoid", ref_sigmoid, k_sigmoid);
    row("gelu fwd", ref_gelu_fwd, k_gelu_fwd);
    row("gelu bwd", ref_gelu_bwd, k_gelu_bwd);
    row("sum exp", ref_sum_exp, k_sum_exp);
    row("max", ref_max, k_max);
    row("dot", ref_dot, k_dot);
    row("axpy", ref_axpy, k_axpy);
    row("acc", ref_acc, k_acc);
    row("layernorm 768", ref_layernorm, k_layernorm);
    row("adamw", ref_adamw, k_adamw);
    for (a = 0; a < 7; a++) free(*arrays[a]);
    return 0;
}
