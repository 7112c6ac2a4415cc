/* lm_test.c - the lm.h test suite: `make test`.

   Unit tests, a gradient check of every op against central differences, GEMM against a
   naive loop, optimizers against their formulas, tokenizers, checkpoints (including
   malformed files), and end-to-end checks of the GPT and the `lm` command line.
   The last line of the output is `N passed, M failed`; the exit status is non-zero if
   anything failed. Build with -DLM_TEST_NO_CLI to leave out the tests that run ./lm
   (cross builds under an emulator). */
#define _POSIX_C_SOURCE 200809L
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

/* ---- the harness ---------------------------------------------------------------------- */
static int lm_t_pass, lm_t_fail;
/* One check: counts a pass or prints the failure with its location. */
#define CHECK(cond, what) do { if (cond) lm_t_pass++; else { lm_t_fail++; \
    printf("FAIL %s:%d: %s  [%s]\n", __FILE__, __LINE__, what, #cond); } } while (0)
/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol, what) do { double lm_t_a = (a), lm_t_b = (b); \
    double lm_t_s = fabs(lm_t_b) > 1 ? fabs(lm_t_b) : 1; \
    if (fabs(lm_t_a - lm_t_b) <= (tol) * lm_t_s) lm_t_pass++; else { lm_t_fail++; \
    printf("FAIL %s:%d: %s: got %.9g want %.9g (tol %g)\n", __FILE__, __LINE__, what, \
           lm_t_a, lm_t_b, (double)(tol)); } } while (0)
#define SUMMARY() (printf("%d passed, %d failed\n", lm_t_pass, lm_t_fail), lm_t_fail ? 1 : 0)
/* Float arithmetic may be evaluated in a wider type (C99's FLT_EVAL_METHOD: 1 on s390x
   with -std=c99, where a + b of two floats is a double, and so is a constant like 1e-40f):
   a float that a check expects exactly is rounded to float first, by a cast or by
   assignment to a float variable, as the library's own results are. */
/* Core tests: arena, RNG, every op's gradient against central differences, optimizers
   against their formulas, the GPT end to end. */

/* ---- gradient checker ------------------------------------------------------------------
   Leaves are float arrays with gradients; build() makes an output tensor from them. The
   analytic gradient of L = sum(out * R), R fixed random weights, comes from lm_backward;
   the numeric one from central differences of L computed in double from the forward
   output: (L(x+h) - L(x-h)) / 2h with h = 1e-3. Forward values are float32, so a
   difference of h = 1e-3 carries ~1e-4 of rounding noise: the tolerance is
   |analytic - numeric| <= 3e-3 + 2e-2 |numeric|. */
typedef lm_tensor *(*t_build_fn)(lm_graph *g, lm_tensor **leaf, void *ctx);
typedef struct { int ndim; int shape[4]; float *data, *grad; int size; } t_leaf;

static unsigned char t_arena_buf[64 << 20];

/* ---- scratch files ---------------------------------------------------------------------
   Tests that write files make a private directory under /tmp (mkdtemp; "." where there is
   no POSIX) and name files inside it through rotating path buffers. */
#if defined(__unix__) || defined(__APPLE__)
#define T_POSIX 1
#ifndef __cplusplus
extern char *mkdtemp(char *tmpl);   /* POSIX; hidden by -std=c99 headers */
#endif
#endif
typedef struct { char dir[64]; char buf[4][320]; int which; } t_scratch;
static int t_scratch_make(t_scratch *s, const char *tmpl) {
#ifdef T_POSIX
    strcpy(s->dir, tmpl);
    return mkdtemp(s->dir) != NULL;
#else
    (void)tmpl;
    strcpy(s->dir, ".");
    return 1;
#endif
}
static const char *t_scratch_path(t_scratch *s, const char *name) {
    char *p = s->buf[s->which++ & 3];
    strcpy(p, s->dir);
    strcat(p, "/");
    strcat(p, name);
    return p;
}
/* Remove the (by then empty) directory; never "." */
static void t_scratch_done(t_scratch *s) {
#ifdef T_POSIX
    remove(s->dir);
#else
    (void)s;
#endif
}
static int t_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static lm_tensor *t_run(lm_graph *g, lm_arena *a, t_build_fn f, t_leaf *lv, int nl, void *ctx, int grads) {
    lm_tensor *leaf[4];
    int k;
    lm_arena_reset(a, 0);
    lm_graph_init(g, a);
    g->rng = lm_rng_seed(99);
    g->training = 1;
    g->no_grad = !grads;
    for (k = 0; k < nl; k++) {
        leaf[k] = lm_tensor_wrap(g, lv[k].data, lv[k].ndim, lv[k].shape, lv[k].grad != NULL);
        if (grads && lv[k].grad) {
            memset(lv[k].grad, 0, sizeof(float) * (size_t)lv[k].size);
            leaf[k]->grad = lv[k].grad;
        }
    }
    return f(g, leaf, ctx);
}

/* Returns the worst relative error seen; prints the first failure. */
static double t_gradcheck(const char *name, t_build_fn f, t_leaf *lv, int nl, void *ctx) {
    lm_arena a;
    lm_graph g;
    lm_tensor *out, *R, *loss;
    lm_rng rng = lm_rng_seed(7);
    float *Rw;
    int k, i, bad = 0, checked = 0;
    double worst = 0;
    lm_arena_init_buffer(&a, t_arena_buf, sizeof t_arena_buf);
    out = t_run(&g, &a, f, lv, nl, ctx, 1);
    if (!out) { printf("FAIL %s: forward failed: %s\n", name, lm_error()); lm_t_fail++; return 1; }
    Rw = (float *)malloc(sizeof(float) * (size_t)out->size);
    for (i = 0; i < out->size; i++) Rw[i] = lm_rng_uniform(&rng) * 2 - 1;
    R = lm_tensor_wrap(&g, Rw, out->ndim, out->shape, 0);
    loss = lm_sum(&g, lm_mul(&g, out, R));
    if (lm_backward(&g, loss) != LM_OK) { printf("FAIL %s: backward: %s\n", name, lm_error()); lm_t_fail++; free(Rw); return 1; }
    for (k = 0; k < nl; k++) {
        float *ga;
        int step;
        if (!lv[k].grad) continue;
        ga = (float *)malloc(sizeof(float) * (size_t)lv[k].size);
        memcpy(ga, lv[k].grad, sizeof(float) * (size_t)lv[k].size);
        step = lv[k].size > 60 ? lv[k].size / 53 + 1 : 1;  /* at most ~60 entries per leaf */
        for (i = 0; i < lv[k].size; i += step) {
            float keep = lv[k].data[i];
            double lp = 0, lmi = 0, num, err;
            int j;
            lv[k].data[i] = keep + 1e-3f;
            out = t_run(&g, &a, f, lv, nl, ctx, 0);
            for (j = 0; j < out->size; j++) lp += (double)out->data[j] * Rw[j];
            lv[k].data[i] = keep - 1e-3f;
            out = t_run(&g, &a, f, lv, nl, ctx, 0);
            for (j = 0; j < out->size; j++) lmi += (double)out->data[j] * Rw[j];
            lv[k].data[i] = keep;
            num = (lp - lmi) / ((double)(keep + 1e-3f) - (double)(keep - 1e-3f));
            err = fabs(ga[i] - num) / (3e-3 / 2e-2 + fabs(num));
            if (err > worst) worst = err;
            if (fabs(ga[i] - num) > 3e-3 + 2e-2 * fabs(num)) {
                if (!bad) printf("  %s: leaf %d [%d]: analytic %.6g numeric %.6g\n", name, k, i, ga[i], num);
                bad++;
            }
            checked++;
        }
        free(ga);
    }
    free(Rw);
    {
        char what[128];
        snprintf(what, sizeof what, "gradient check: %s (%d entries)", name, checked);
        CHECK(bad == 0 && checked > 0, what);
    }
    return worst;
}

static void t_leaf_init(t_leaf *l, int ndim, const int *shape, lm_rng *r, float lo, float hi, int grad) {
    int d;
    l->ndim = ndim;
    l->size = 1;
    for (d = 0; d < ndim; d++) { l->shape[d] = shape[d]; l->size *= shape[d]; }
    l->data = (float *)malloc(sizeof(float) * (size_t)l->size);
    l->grad = grad ? (float *)malloc(sizeof(float) * (size_t)l->size) : NULL;
    for (d = 0; d < l->size; d++) l->data[d] = lo + (hi - lo) * lm_rng_uniform(r);
}
static void t_leaf_free(t_leaf *l, int n) {
    int k;
    for (k = 0; k < n; k++) { free(l[k].data); free(l[k].grad); }
}

/* builders: ctx points at an int selecting the variant */
static lm_tensor *tb_add(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_add(g, x[0], x[1]); }
static lm_tensor *tb_sub(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_sub(g, x[0], x[1]); }
static lm_tensor *tb_mul(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_mul(g, x[0], x[1]); }
static lm_tensor *tb_scale(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_scale(g, x[0], -1.7f); }
static lm_tensor *tb_matmul(lm_graph *g, lm_tensor **x, void *c) { return lm_matmul(g, x[0], x[1], *(int *)c); }
static lm_tensor *tb_linear(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_linear(g, x[0], x[1], x[2]); }
static lm_tensor *tb_sum(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_sum(g, x[0]); }
static lm_tensor *tb_mean(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_mean(g, x[0]); }
static lm_tensor *tb_relu(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_relu(g, x[0]); }
static lm_tensor *tb_gelu(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_gelu(g, x[0]); }
static lm_tensor *tb_gelu_erf(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_gelu_erf(g, x[0]); }
static lm_tensor *tb_tanh(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_tanh(g, x[0]); }
static lm_tensor *tb_sigmoid(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_sigmoid(g, x[0]); }
static lm_tensor *tb_softmax(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_softmax(g, x[0]); }
static lm_tensor *tb_logsoftmax(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_log_softmax(g, x[0]); }
static lm_tensor *tb_layernorm(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_layernorm(g, x[0], x[1], x[2], 1e-5f); }
static const int t_ids[12] = { 3, 0, 5, 3, 3, 1, 6, 2, 0, 5, 4, 3 };
static lm_tensor *tb_embedding(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_embedding(g, x[0], t_ids, 12); }
typedef struct { int heads, causal; const int *lens; } t_att;
static lm_tensor *tb_attention(lm_graph *g, lm_tensor **x, void *c) {
    t_att *a = (t_att *)c;
    return lm_attention(g, x[0], a->heads, a->causal, a->lens);
}
static lm_tensor *tb_cross_attention(lm_graph *g, lm_tensor **x, void *c) {
    t_att *a = (t_att *)c;
    return lm_cross_attention(g, x[0], x[1], a->heads, a->lens);
}
static lm_tensor *tb_reshape(lm_graph *g, lm_tensor **x, void *c) {
    int s[2] = { 6, 10 };
    (void)c;
    return lm_reshape(g, lm_tanh(g, x[0]), 2, s);
}
static lm_tensor *tb_transpose(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_transpose(g, x[0]); }
static lm_tensor *tb_slice(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_slice(g, x[0], 1, 3); }
static lm_tensor *tb_gather(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_gather_rows(g, x[0], t_ids, 5); }
static lm_tensor *tb_dropout(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_dropout(g, x[0], 0.3f); }
static const int t_targets[6] = { 2, -100, 0, 4, 4, 1 };
static lm_tensor *tb_ce(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_cross_entropy(g, x[0], t_targets, -100); }
static lm_tensor *tb_bce(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_bce_logits(g, x[0], x[1]); }
static lm_tensor *tb_mse(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_mse(g, x[0], x[1]); }

static void test_core_gradients(void) {
    lm_rng r = lm_rng_seed(1);
    t_leaf l[4];
    int s345[3] = { 3, 4, 5 }, s5[1] = { 5 }, s45[2] = { 4, 5 }, s1[1] = { 1 };
    int s2_3_7[3] = { 2, 3, 7 }, s7_4[2] = { 7, 4 }, s4_7[2] = { 4, 7 }, s4[1] = { 4 };
    int s6_10[2] = { 6, 10 }, s3_20[2] = { 3, 20 }, s7_6[2] = { 7, 6 }, s6[1] = { 6 };
    int s6_5[2] = { 6, 5 }, sqkv[3] = { 2, 5, 12 }, s10[1] = { 10 };
    int zero = 0, one = 1;
    /* broadcast variants of add/sub/mul */
    t_leaf_init(&l[0], 3, s345, &r, -1, 1, 1); t_leaf_init(&l[1], 1, s5, &r, -1, 1, 1);
    t_gradcheck("add (3,4,5)+(5)", tb_add, l, 2, NULL);
    t_gradcheck("sub (3,4,5)-(5)", tb_sub, l, 2, NULL);
    t_gradcheck("mul (3,4,5)*(5)", tb_mul, l, 2, NULL);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s345, &r, -1, 1, 1); t_leaf_init(&l[1], 2, s45, &r, -1, 1, 1);
    t_gradcheck("mul (3,4,5)*(4,5)", tb_mul, l, 2, NULL);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s345, &r, -1, 1, 1); t_leaf_init(&l[1], 1, s1, &r, -1, 1, 1);
    t_gradcheck("add (3,4,5)+scalar", tb_add, l, 2, NULL);
    t_gradcheck("scale", tb_scale, l, 1, NULL);
    t_leaf_free(l, 2);
    /* matmul both ways, linear with bias */
    t_leaf_init(&l[0], 3, s2_3_7, &r, -1, 1, 1); t_leaf_init(&l[1], 2, s7_4, &r, -1, 1, 1);
    t_gradcheck("matmul (2,3,7)x(7,4)", tb_matmul, l, 2, &zero);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s2_3_7, &r, -1, 1, 1); t_leaf_init(&l[1], 2, s4_7, &r, -1, 1, 1);
    t_gradcheck("matmul (2,3,7)x(4,7)^T", tb_matmul, l, 2, &one);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s2_3_7, &r, -1, 1, 1); t_leaf_init(&l[1], 2, s7_4, &r, -1, 1, 1);
    t_leaf_init(&l[2], 1, s4, &r, -1, 1, 1);
    t_gradcheck("linear (2,3,7)x(7,4)+(4)", tb_linear, l, 3, NULL);
    t_leaf_free(l, 3);
    /* reductions and activations */
    t_leaf_init(&l[0], 2, s6_10, &r, -2, 2, 1);
    t_gradcheck("sum", tb_sum, l, 1, NULL);
    t_gradcheck("mean", tb_mean, l, 1, NULL);
    t_gradcheck("gelu", tb_gelu, l, 1, NULL);
    t_gradcheck("gelu_erf (exact)", tb_gelu_erf, l, 1, NULL);
    t_gradcheck("tanh", tb_tanh, l, 1, NULL);
    t_gradcheck("sigmoid", tb_sigmoid, l, 1, NULL);
    t_gradcheck("softmax", tb_softmax, l, 1, NULL);
    t_gradcheck("log_softmax", tb_logsoftmax, l, 1, NULL);
    t_gradcheck("reshape", tb_reshape, l, 1, NULL);
    t_gradcheck("transpose", tb_transpose, l, 1, NULL);
    t_gradcheck("slice", tb_slice, l, 1, NULL);
    t_gradcheck("gather_rows", tb_gather, l, 1, NULL);
    t_gradcheck("dropout (training, p 0.3)", tb_dropout, l, 1, NULL);
    { int i; for (i = 0; i < l[0].size; i++) if (fabsf(l[0].data[i]) < 0.05f) l[0].data[i] = 0.5f; }
    t_gradcheck("relu (inputs away from the kink)", tb_relu, l, 1, NULL);
    t_leaf_free(l, 1);
    /* layernorm over rows of 20, 3 rows (and 40 rows, to cross the row blocks) */
    t_leaf_init(&l[0], 2, s3_20, &r, -2, 2, 1);
    { int s20[1] = { 20 }; t_leaf_init(&l[1], 1, s20, &r, 0.5f, 1.5f, 1); t_leaf_init(&l[2], 1, s20, &r, -1, 1, 1); }
    t_gradcheck("layernorm (3,20)", tb_layernorm, l, 3, NULL);
    t_leaf_free(l, 3);
    { int s40_8[2] = { 40, 8 }, s8[1] = { 8 };
      t_leaf_init(&l[0], 2, s40_8, &r, -2, 2, 1); t_leaf_init(&l[1], 1, s8, &r, 0.5f, 1.5f, 1); t_leaf_init(&l[2], 1, s8, &r, -1, 1, 1);
      t_gradcheck("layernorm (40,8)", tb_layernorm, l, 3, NULL);
      t_leaf_free(l, 3); }
    /* embedding: ids repeat, so rows accumulate */
    t_leaf_init(&l[0], 2, s7_6, &r, -1, 1, 1);
    t_gradcheck("embedding", tb_embedding, l, 1, NULL);
    t_leaf_free(l, 1);
    /* attention: causal, bidirectional, padded; 1, 2 and 4 heads over C = 4 */
    {
        static const int lens[2] = { 3, 5 };
        t_att a;
        t_leaf_init(&l[0], 3, sqkv, &r, -1.5f, 1.5f, 1);
        a.heads = 2; a.causal = 1; a.lens = NULL;
        t_gradcheck("attention causal, 2 heads", tb_attention, l, 1, &a);
        a.heads = 1; a.causal = 0;
        t_gradcheck("attention bidirectional, 1 head", tb_attention, l, 1, &a);
        a.heads = 4; a.causal = 0; a.lens = lens;
        t_gradcheck("attention padding mask, 4 heads", tb_attention, l, 1, &a);
        a.heads = 2; a.causal = 1; a.lens = lens;
        t_gradcheck("attention causal + padding", tb_attention, l, 1, &a);
        t_leaf_free(l, 1);
    }
    /* cross-attention: 3 queries over 5 keys (C = 8), both inputs; the source's padding */
    {
        static const int lens[2] = { 2, 5 };
        int sq[3] = { 2, 3, 8 }, skv[3] = { 2, 5, 16 };
        t_att a;
        t_leaf_init(&l[0], 3, sq, &r, -1.5f, 1.5f, 1);
        t_leaf_init(&l[1], 3, skv, &r, -1.5f, 1.5f, 1);
        a.heads = 2; a.causal = 0; a.lens = lens;
        t_gradcheck("cross_attention, padded source, 2 heads", tb_cross_attention, l, 2, &a);
        a.heads = 1; a.lens = NULL;
        t_gradcheck("cross_attention, 1 head", tb_cross_attention, l, 2, &a);
        t_leaf_free(l, 2);
    }
    /* losses */
    t_leaf_init(&l[0], 2, s6_5, &r, -2, 2, 1);
    t_gradcheck("cross_entropy with ignore_index", tb_ce, l, 1, NULL);
    t_leaf_free(l, 1);
    t_leaf_init(&l[0], 1, s10, &r, -3, 3, 1); t_leaf_init(&l[1], 1, s10, &r, 0, 1, 1);
    t_gradcheck("bce_logits (both inputs)", tb_bce, l, 2, NULL);
    t_gradcheck("mse (both inputs)", tb_mse, l, 2, NULL);
    t_leaf_free(l, 2);
    (void)s6;
}

/* The same gradients when the op's inputs come out of another op (x * 1 here) and so have
   no gradient buffer yet: backward functions then store into a fresh buffer instead of
   adding to a zeroed one (lm__grad_w), and a same-shape add hands its output's gradient
   to its first input. Each op is checked against central differences again that way. */
typedef struct { t_build_fn f; void *ctx; int n; } t_fresh;
static lm_tensor *tb_fresh(lm_graph *g, lm_tensor **x, void *c) {
    t_fresh *w = (t_fresh *)c;
    lm_tensor *y[4];
    int k;
    for (k = 0; k < 4; k++) y[k] = k < w->n ? lm_scale(g, x[k], 1.0f) : x[k];
    return w->f(g, y, w->ctx);
}
static lm_tensor *tb_add_twice(lm_graph *g, lm_tensor **x, void *c) {   /* a + b, then + a */
    (void)c;
    return lm_add(g, lm_add(g, x[0], x[1]), x[0]);
}
static void t_gradcheck_fresh(const char *name, t_build_fn f, t_leaf *lv, int nl, void *ctx, int nfresh) {
    char what[96];
    t_fresh w;
    w.f = f; w.ctx = ctx; w.n = nfresh;
    sprintf(what, "%s, inputs without gradients yet", name);
    t_gradcheck(what, tb_fresh, lv, nl, &w);
}
static void test_core_gradients_fresh(void) {
    lm_rng r = lm_rng_seed(11);
    t_leaf l[4];
    int s345[3] = { 3, 4, 5 }, s5[1] = { 5 }, s2_3_7[3] = { 2, 3, 7 }, s7_4[2] = { 7, 4 };
    int s4_7[2] = { 4, 7 }, s4[1] = { 4 }, s6_10[2] = { 6, 10 }, s40_8[2] = { 40, 8 }, s8[1] = { 8 };
    int sqkv[3] = { 2, 5, 12 }, s6_5[2] = { 6, 5 }, zero = 0, one = 1;
    static const int lens[2] = { 3, 5 };
    t_att a;
    t_leaf_init(&l[0], 3, s345, &r, -1, 1, 1); t_leaf_init(&l[1], 3, s345, &r, -1, 1, 1);
    t_gradcheck_fresh("add (3,4,5)+(3,4,5)", tb_add, l, 2, NULL, 2);
    t_gradcheck_fresh("add (3,4,5)+(3,4,5), then + a again", tb_add_twice, l, 2, NULL, 2);
    t_gradcheck_fresh("sub (3,4,5)-(3,4,5)", tb_sub, l, 2, NULL, 2);
    t_gradcheck_fresh("mul (3,4,5)*(3,4,5)", tb_mul, l, 2, NULL, 2);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s345, &r, -1, 1, 1); t_leaf_init(&l[1], 1, s5, &r, -1, 1, 1);
    t_gradcheck_fresh("add (3,4,5)+(5)", tb_add, l, 2, NULL, 2);
    t_gradcheck_fresh("mul (3,4,5)*(5)", tb_mul, l, 2, NULL, 2);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s2_3_7, &r, -1, 1, 1); t_leaf_init(&l[1], 2, s7_4, &r, -1, 1, 1);
    t_gradcheck_fresh("matmul (2,3,7)x(7,4)", tb_matmul, l, 2, &zero, 2);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s2_3_7, &r, -1, 1, 1); t_leaf_init(&l[1], 2, s4_7, &r, -1, 1, 1);
    t_gradcheck_fresh("matmul (2,3,7)x(4,7)^T", tb_matmul, l, 2, &one, 2);
    t_leaf_free(l, 2);
    t_leaf_init(&l[0], 3, s2_3_7, &r, -1, 1, 1); t_leaf_init(&l[1], 2, s7_4, &r, -1, 1, 1);
    t_leaf_init(&l[2], 1, s4, &r, -1, 1, 1);
    t_gradcheck_fresh("linear (2,3,7)x(7,4)+(4)", tb_linear, l, 3, NULL, 3);
    t_leaf_free(l, 3);
    t_leaf_init(&l[0], 2, s6_10, &r, -2, 2, 1);
    t_gradcheck_fresh("gelu", tb_gelu, l, 1, NULL, 1);
    t_gradcheck_fresh("tanh", tb_tanh, l, 1, NULL, 1);
    t_gradcheck_fresh("sigmoid", tb_sigmoid, l, 1, NULL, 1);
    t_leaf_free(l, 1);
    t_leaf_init(&l[0], 2, s40_8, &r, -2, 2, 1); t_leaf_init(&l[1], 1, s8, &r, 0.5f, 1.5f, 1);
    t_leaf_init(&l[2], 1, s8, &r, -1, 1, 1);
    t_gradcheck_fresh("layernorm (40,8)", tb_layernorm, l, 3, NULL, 1);
    t_leaf_free(l, 3);
    t_leaf_init(&l[0], 3, sqkv, &r, -1.5f, 1.5f, 1);
    a.heads = 2; a.causal = 1; a.lens = NULL;
    t_gradcheck_fresh("attention causal, 2 heads", tb_attention, l, 1, &a, 1);
    a.heads = 4; a.causal = 0; a.lens = lens;
    t_gradcheck_fresh("attention padding mask, 4 heads", tb_attention, l, 1, &a, 1);
    t_leaf_free(l, 1);
    t_leaf_init(&l[0], 2, s6_5, &r, -2, 2, 1);
    t_gradcheck_fresh("cross_entropy with ignore_index", tb_ce, l, 1, NULL, 1);
    t_leaf_free(l, 1);
}

/* The linear layer with GELU or a residual add run inside it (lm__matmul with
   LM__THEN_GELU, LM__THEN_RESIDUAL): gradients, and the bits of the separate ops. */
static lm_tensor *tb_linear_gelu(lm_graph *g, lm_tensor **x, void *c) {
    (void)c;
    return lm__matmul(g, x[0], x[1], x[2], 0, "linear", LM__THEN_GELU, NULL);
}
static lm_tensor *tb_linear_residual(lm_graph *g, lm_tensor **x, void *c) {
    (void)c;
    return lm__matmul(g, x[0], x[1], x[2], 0, "linear", LM__THEN_RESIDUAL, x[3]);
}
static lm_tensor *tb_linear_gelu_ops(lm_graph *g, lm_tensor **x, void *c) {
    (void)c;
    return lm_gelu(g, lm_linear(g, x[0], x[1], x[2]));
}
static lm_tensor *tb_linear_residual_ops(lm_graph *g, lm_tensor **x, void *c) {
    (void)c;
    return lm_add(g, x[3], lm_linear(g, x[0], x[1], x[2]));
}
static void test_linear_then(void) {
    lm_rng r = lm_rng_seed(12);
    t_leaf l[4];
    int sx[3] = { 3, 19, 24 }, sw[2] = { 24, 48 }, sb[1] = { 48 }, sr[3] = { 3, 19, 48 }, k, which, bad = 0;
    static unsigned char buf[1 << 20];
    t_leaf_init(&l[0], 3, sx, &r, -1, 1, 1); t_leaf_init(&l[1], 2, sw, &r, -1, 1, 1);
    t_leaf_init(&l[2], 1, sb, &r, -1, 1, 1); t_leaf_init(&l[3], 3, sr, &r, -1, 1, 1);
    t_gradcheck("linear then GELU (in the tiles)", tb_linear_gelu, l, 3, NULL);
    t_gradcheck("linear then residual add (in the tiles)", tb_linear_residual, l, 4, NULL);
    t_gradcheck_fresh("linear then GELU (in the tiles)", tb_linear_gelu, l, 3, NULL, 3);
    t_gradcheck_fresh("linear then residual add (in the tiles)", tb_linear_residual, l, 4, NULL, 4);
    for (which = 0; which < 2; which++) {      /* forward and every gradient: the same bits */
        float *out[2], *grad[2][4];
        int v, nl = which ? 4 : 3;
        for (v = 0; v < 2; v++) {
            lm_arena a;
            lm_graph g;
            lm_tensor *o, *loss;
            t_build_fn f = which ? (v ? tb_linear_residual : tb_linear_residual_ops)
                                 : (v ? tb_linear_gelu : tb_linear_gelu_ops);
            lm_arena_init_buffer(&a, buf, sizeof buf);
            o = t_run(&g, &a, f, l, nl, NULL, 1);
            loss = lm_sum(&g, lm_mul(&g, o, o));
            if (!o || lm_backward(&g, loss) != LM_OK) { bad++; continue; }
            out[v] = (float *)malloc((size_t)o->size * sizeof(float));
            memcpy(out[v], o->data, (size_t)o->size * sizeof(float));
            for (k = 0; k < nl; k++) {
                grad[v][k] = (float *)malloc((size_t)l[k].size * sizeof(float));
                memcpy(grad[v][k], l[k].grad, (size_t)l[k].size * sizeof(float));
            }
        }
        if (bad) break;
        bad += memcmp(out[0], out[1], sizeof(float) * 3 * 19 * 48) != 0;
        for (k = 0; k < nl; k++) bad += memcmp(grad[0][k], grad[1][k], sizeof(float) * (size_t)l[k].size) != 0;
        for (v = 0; v < 2; v++) { free(out[v]); for (k = 0; k < nl; k++) free(grad[v][k]); }
    }
    CHECK(bad == 0, "linear then GELU / residual: output and gradients bit-identical to the separate ops");
    t_leaf_free(l, 4);
}

/* Forward values against direct formulas. */
static void test_core_forward_values(void) {
    static unsigned char buf[1 << 16];
    lm_arena a;
    lm_graph g;
    float x[6] = { -1, 0.5f, 2, 3, -4, 0 }, t[6] = { 0, 1, 1, 0, 1, 0 };
    int s6[1] = { 6 }, s23[2] = { 2, 3 }, tg[2] = { 2, 0 };
    lm_tensor *X, *T, *y;
    double want, s;
    int i;
    lm_arena_init_buffer(&a, buf, sizeof buf);
    lm_graph_init(&g, &a);
    X = lm_tensor_wrap(&g, x, 1, s6, 0);
    T = lm_tensor_wrap(&g, t, 1, s6, 0);
    y = lm_gelu(&g, X);
    CHECK_NEAR(y->data[2], 0.5 * 2 * (1 + tanh(sqrt(2 / 3.141592653589793) * (2 + 0.044715 * 8))), 1e-6, "gelu(2), tanh form");
    y = lm_bce_logits(&g, X, T);
    for (want = 0, i = 0; i < 6; i++) {
        double p = 1 / (1 + exp(-(double)x[i]));
        want -= t[i] * log(p) + (1 - t[i]) * log(1 - p);
    }
    CHECK_NEAR(y->data[0], want / 6, 1e-6, "bce_logits value");
    y = lm_mse(&g, X, T);
    for (want = 0, i = 0; i < 6; i++) want += (x[i] - t[i]) * (x[i] - t[i]);
    CHECK_NEAR(y->data[0], want / 6, 1e-6, "mse value");
    X = lm_tensor_wrap(&g, x, 2, s23, 0);
    y = lm_cross_entropy(&g, X, tg, -1);
    s = log(exp(-1.0) + exp(0.5) + exp(2.0));
    want = (s - 2) + (log(exp(3.0) + exp(-4.0) + 1) - 3);
    CHECK_NEAR(y->data[0], want / 2, 1e-6, "cross_entropy value");
    y = lm_cross_entropy(&g, X, tg, 0);  /* second row ignored */
    CHECK_NEAR(y->data[0], s - 2, 1e-6, "cross_entropy ignores ignore_index rows");
    /* bad shapes and ids are errors, not crashes */
    y = lm_embedding(&g, X, tg, 2);
    CHECK(y == NULL && strstr(lm_error(), "outside") != NULL, "embedding rejects ids outside the table");
    lm_graph_init(&g, &a);
    X = lm_tensor_wrap(&g, x, 2, s23, 1);
    y = lm_matmul(&g, X, X, 0);
    CHECK(y == NULL && g.failed, "matmul rejects mismatched inner dims");
    CHECK(lm_add(&g, NULL, X) == NULL, "ops pass NULL through");
}

static void test_core_arena(void) {
    static unsigned char buf[1000];
    lm_arena a;
    void *p, *q;
    size_t mark;
    lm_arena_init_buffer(&a, buf + 3, sizeof buf - 3);  /* a misaligned buffer */
    p = lm_arena_alloc(&a, 10);
    q = lm_arena_alloc(&a, 100);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "arena: blocks are 64-byte aligned on a caller's buffer");
    CHECK((char *)q >= (char *)p + 10 && (char *)q + 100 <= (char *)buf + sizeof buf, "arena: blocks do not overlap and stay inside");
    mark = lm_arena_mark(&a);
    CHECK(lm_arena_alloc(&a, 5000) == NULL && strstr(lm_error(), "exhausted") != NULL, "arena: exhaustion is an error with a message");
    CHECK(lm_arena_alloc(&a, (size_t)-1) == NULL, "arena: an absurd size fails cleanly");
    lm_arena_reset(&a, mark);
    p = lm_arena_alloc(&a, 64);
    CHECK(p != NULL && a.used == mark + 64, "arena: reset to a mark frees what came after");
    CHECK(a.peak >= 192 && a.peak <= a.cap, "arena: high-water mark");
    lm_arena_reset(&a, 0);
    CHECK(a.used == 0 && a.peak >= 192, "arena: the peak survives a reset");
    CHECK(lm_arena_init(&a, 1 << 20) == LM_OK && a.owned && ((uintptr_t)a.base % 64) == 0, "arena: malloc'd arena");
    p = lm_arena_calloc(&a, 4096);
    CHECK(p && ((unsigned char *)p)[4095] == 0, "arena: calloc zeroes");
    lm_arena_free(&a);
    CHECK(a.base == NULL && a.cap == 0, "arena: free clears");
}

static void test_core_rng(void) {
    lm_rng r = lm_rng_seed(42), r2 = lm_rng_seed(42);
    double s = 0, ss = 0, u = 0;
    int i, same = 1, inrange = 1;
    /* splitmix64 from seed 0 has a published first output */
    lm_rng z = lm_rng_seed(0);
    CHECK(lm_rng_u64(&z) == 0xE220A8397B1DCDAFull, "rng: splitmix64 reference value");
    for (i = 0; i < 20000; i++) {
        float n = lm_rng_normal(&r), f;
        if (n != lm_rng_normal(&r2)) same = 0;
        s += n; ss += (double)n * n;
        f = lm_rng_uniform(&r); lm_rng_uniform(&r2);
        if (!(f >= 0 && f < 1)) inrange = 0;
        u += f;
    }
    CHECK(same, "rng: same seed, same stream");
    CHECK(inrange, "rng: uniform in [0, 1)");
    CHECK(fabs(s / 20000) < 0.03 && fabs(ss / 20000 - 1) < 0.05, "rng: normal has mean 0 and variance 1");
    CHECK(fabs(u / 20000 - 0.5) < 0.01, "rng: uniform mean 1/2");
}

/* AdamW and SGD against the formulas by hand, the schedule at its corners, clipping. */
static void test_core_optim(void) {
    static unsigned char buf[1 << 16];
    lm_arena a;
    lm_params p;
    int nd[2] = { 2, 1 }, shapes[2][LM_MAX_DIMS] = { { 2, 2 }, { 2 } };
    const char *names[2] = { "w", "b" };
    lm_train_opts o = lm_train_defaults();
    double w = 0.5, m = 0, v = 0, b = -0.25, mb = 0, vb = 0;
    int t;
    lm_arena_init_buffer(&a, buf, sizeof buf);
    CHECK(lm_params_init(&p, &a, 2, nd, (const int (*)[LM_MAX_DIMS])shapes, names) == LM_OK, "params: init");
    CHECK(lm_params_find(&p, "b") == 1 && lm_params_find(&p, "x") == -1, "params: find by name");
    p.t[0].data[0] = 0.5f; p.t[1].data[0] = -0.25f;
    o.lr = 0.01f; o.wd = 0.1f; o.beta1 = 0.9f; o.beta2 = 0.99f; o.eps = 1e-8f;
    for (t = 1; t <= 3; t++) {
        double g = 0.3 * t - 0.5, gb = 0.2 * t;
        double bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.99, t);
        p.t[0].grad[0] = (float)g; p.t[1].grad[0] = (float)gb;
        lm_adamw_step(&p, &o, 0.01f);
        w *= 1 - 0.01 * 0.1;
        m = 0.9 * m + 0.1 * g; v = 0.99 * v + 0.01 * g * g;
        w -= 0.01 / bc1 * m / (sqrt(v) / sqrt(bc2) + 1e-8);
        mb = 0.9 * mb + 0.1 * gb; vb = 0.99 * vb + 0.01 * gb * gb;
        b -= 0.01 / bc1 * mb / (sqrt(vb) / sqrt(bc2) + 1e-8);  /* no decay on 1-D */
    }
    CHECK_NEAR(p.t[0].data[0], w, 1e-6, "adamw: matrix entry after 3 steps (with decay)");
    CHECK_NEAR(p.t[1].data[0], b, 1e-6, "adamw: bias after 3 steps (no decay)");
    CHECK(p.step == 3, "adamw: step count");
    /* SGD with momentum: v = mu v + g + wd w, w -= lr v */
    memset(p.m, 0, p.total * sizeof(float));
    p.t[0].data[0] = 1.0f; p.t[0].grad[0] = 0.5f;
    lm_sgd_step(&p, 0.1f, 0.9f, 0.01f);
    lm_sgd_step(&p, 0.1f, 0.9f, 0.01f);
    {
        double ww = 1, vv = 0;
        vv = 0.9 * vv + 0.5 + 0.01 * ww; ww -= 0.1 * vv;
        vv = 0.9 * vv + 0.5 + 0.01 * ww; ww -= 0.1 * vv;
        CHECK_NEAR(p.t[0].data[0], ww, 1e-6, "sgd: momentum and decay");
    }
    /* clipping: ||g|| = 5 scaled to 1 */
    lm_params_zero_grad(&p);
    p.t[0].grad[0] = 3; p.t[1].grad[1] = 4;
    CHECK_NEAR(lm_clip_grad_norm(&p, 1.0f), 5.0, 1e-6, "clip: returns the norm before");
    CHECK_NEAR(p.t[0].grad[0], 3.0 / (5 + 1e-6), 1e-6, "clip: scales by max/(norm+1e-6)");
    lm_clip_grad_norm(&p, 10.0f);
    CHECK_NEAR(p.t[1].grad[1], 4.0 / (5 + 1e-6), 1e-6, "clip: leaves small gradients alone");
    /* schedule (lm_lr_at) */
    o = lm_train_defaults();
    o.lr = 1e-3f; o.min_lr = 1e-4f; o.warmup = 100; o.steps = 2000;
    CHECK_NEAR(lm_lr_at(&o, 0), 1e-5, 1e-9, "cosine: first warmup step lr (s+1)/W");
    CHECK_NEAR(lm_lr_at(&o, 99), 1e-3, 1e-9, "cosine: last warmup step at peak");
    CHECK_NEAR(lm_lr_at(&o, 100), 1e-3, 1e-9, "cosine: r = 0 at s = W");
    CHECK_NEAR(lm_lr_at(&o, 1999), 1e-4, 1e-9, "cosine: last step at min_lr");
    CHECK_NEAR(lm_lr_at(&o, 1049) , 1e-4 + 0.5 * (1 + cos(3.141592653589793 * 949.0 / 1899.0)) * 9e-4, 1e-7, "cosine: midpoint");
    o.schedule = LM_SCHED_CONSTANT;
    CHECK_NEAR(lm_lr_at(&o, 5), 1e-3, 1e-9, "constant schedule");
}

/* ---- GPT ------------------------------------------------------------------------------ */
static lm_gpt *t_tiny_gpt(int layers, int heads, int embd, int ctx, int vocab, uint64_t seed) {
    lm_gpt_config c;
    memset(&c, 0, sizeof c);
    c.n_layer = layers; c.n_head = heads; c.n_embd = embd; c.n_ctx = ctx; c.vocab = vocab;
    return lm_gpt_new(&c, seed);
}

static void test_gpt_init(void) {
    lm_gpt *m = t_tiny_gpt(2, 2, 32, 16, 300, 5);
    double s = 0, ss = 0;
    int i, ok = 1;
    CHECK(m != NULL, "gpt: new");
    if (!m) return;
    CHECK(m->params.n == 2 + 12 * 2 + 2, "gpt: tensor count");
    CHECK(strcmp(m->params.names[2 + 12 + 2], "h.1.attn.c_attn.weight") == 0, "gpt: checkpoint names");
    CHECK(m->h[1].attn_w->shape[0] == 32 && m->h[1].attn_w->shape[1] == 96, "gpt: c_attn is (C, 3C)");
    CHECK(lm_gpt_num_params(m) == (size_t)(300 * 32 + 16 * 32 + 2 * (12 * 32 * 32 + 13 * 32) + 2 * 32), "gpt: parameter count");
    for (i = 0; i < m->wte->size; i++) { s += m->wte->data[i]; ss += (double)m->wte->data[i] * m->wte->data[i]; }
    CHECK(fabs(s / m->wte->size) < 2e-3 && fabs(sqrt(ss / m->wte->size) - 0.02) < 1e-3, "gpt: wte ~ N(0, 0.02)");
    for (ss = 0, i = 0; i < m->h[0].proj_w->size; i++) ss += (double)m->h[0].proj_w->data[i] * m->h[0].proj_w->data[i];
    CHECK(fabs(sqrt(ss / m->h[0].proj_w->size) - 0.02 / 2) < 1e-3, "gpt: c_proj ~ N(0, 0.02/sqrt(2L))");
    for (i = 0; i < 32; i++) if (m->h[0].ln_1_w->data[i] != 1 || m->h[0].ln_1_b->data[i] != 0 || m->h[1].fc_b->data[i] != 0) ok = 0;
    CHECK(ok, "gpt: LayerNorm 1/0, biases 0");
    lm_gpt_free(m);
    {
        lm_gpt_config c;
        memset(&c, 0, sizeof c);
        c.n_embd = 30; c.n_head = 4;
        CHECK(lm_gpt_new(&c, 1) == NULL && strstr(lm_error(), "divide"), "gpt: n_head must divide n_embd");
    }
}

/* Whole-model gradient check: the parameters of a tiny GPT against central differences
   of the loss (computed in float, so a looser bound: 2e-2 relative + 2e-4). */
static void test_gpt_gradcheck(void) {
    lm_gpt *m = t_tiny_gpt(2, 2, 8, 6, 11, 3);
    int in[12], tg[12], i, k, bad = 0, checked = 0;
    lm_rng r = lm_rng_seed(4);
    float *g0;
    if (!m) { CHECK(0, "gpt gradcheck: model"); return; }
    /* make LayerNorm and biases non-trivial */
    for (k = 0; k < m->params.n; k++)
        for (i = 0; i < m->params.t[k].size; i++) m->params.t[k].data[i] += 0.1f * lm_rng_normal(&r);
    for (i = 0; i < 12; i++) { in[i] = (int)lm_rng_below(&r, 11); tg[i] = (int)lm_rng_below(&r, 11); }
    {
        lm_graph g;
        lm_tensor *lo;
        lm_arena_init(&m->work, 1 << 22);
        lm_arena_reset(&m->work, 0);
        lm_graph_init(&g, &m->work);
        lm_params_zero_grad(&m->params);
        lo = lm_cross_entropy(&g, lm_gpt_forward(m, &g, in, 2, 6), tg, -1);
        CHECK(lo && lm_backward(&g, lo) == LM_OK, "gpt: forward+backward");
    }
    g0 = (float *)malloc(m->params.total * sizeof(float));
    memcpy(g0, m->params.grad, m->params.total * sizeof(float));
    for (k = 0; k < m->params.n; k++) {
        lm_tensor *t = &m->params.t[k];
        int step = t->size > 8 ? t->size / 7 : 1;
        for (i = 0; i < t->size; i += step) {
            float keep = t->data[i];
            double lp, lmi, num, an = g0[(t->data - m->params.data) + i];
            t->data[i] = keep + 1e-2f; lp = lm_gpt_loss(m, in, tg, 2, 6);
            t->data[i] = keep - 1e-2f; lmi = lm_gpt_loss(m, in, tg, 2, 6);
            t->data[i] = keep;
            num = (lp - lmi) / 2e-2;
            if (fabs(an - num) > 2e-4 + 2e-2 * fabs(num)) {
                if (!bad) printf("  gpt gradcheck: %s[%d] analytic %.6g numeric %.6g\n", m->params.names[k], i, an, num);
                bad++;
            }
            checked++;
        }
    }
    free(g0);
    CHECK(bad == 0 && checked > 100, "gradient check: whole GPT, every parameter tensor");
    lm_gpt_free(m);
}

/* A tiny GPT overfits one sentence to near-zero loss. */
static void test_gpt_overfit(void) {
    const char *text = "the quick brown fox jumps over the lazy dog. ";
    int n = (int)strlen(text), in[32], tg[32], i, step;
    lm_gpt *m = t_tiny_gpt(2, 2, 32, 32, 256, 11);
    lm_train_opts o = lm_train_defaults();
    float first = 0, loss = 0;
    o.lr = 1e-2f; o.warmup = 10; o.steps = 150; o.min_lr = 1e-3f; o.wd = 0.0f;
    for (i = 0; i < 32; i++) { in[i] = (unsigned char)text[i % n]; tg[i] = (unsigned char)text[(i + 1) % n]; }
    for (step = 0; step < 150; step++) {
        loss = lm_gpt_train_step(m, &o, in, tg, 1, 32, step);
        if (step == 0) first = loss;
    }
    CHECK(first > 5.0f && loss < 0.05f, "gpt: a tiny model overfits a sentence (loss 5.5 -> < 0.05)");
    if (!(first > 5.0f && loss < 0.05f)) printf("  first %g last %g\n", first, loss);
    /* the work arena has stopped growing: one more step leaves cap unchanged */
    {
        size_t cap = m->work.cap;
        lm_gpt_train_step(m, &o, in, tg, 1, 32, 149);
        CHECK(m->work.cap == cap && m->work.peak <= cap, "gpt: later steps allocate nothing");
    }
    /* greedy generation reproduces the memorised text */
    {
        int out[20], ok = 1;
        lm_sampler s = lm_sampler_defaults(1);
        s.temperature = 0;
        CHECK(lm_gpt_generate(m, in, 4, 20, &s, NULL, NULL, out) == LM_OK, "gpt: generate");
        for (i = 0; i < 20; i++) if (out[i] != (unsigned char)text[(4 + i) % n]) ok = 0;
        CHECK(ok, "gpt: greedy generation recites the memorised sentence");
    }
    lm_gpt_free(m);
}

/* KV-cache logits equal full recomputation at every position. */
static void test_gpt_kv_cache(void) {
    lm_gpt *m = t_tiny_gpt(2, 4, 16, 12, 40, 21);
    int ids[12], i, j;
    float logits[40];
    double worst = 0;
    lm_rng r = lm_rng_seed(8);
    lm_graph g;
    lm_tensor *full;
    for (i = 0; i < (int)m->params.total; i++) m->params.data[i] += 0.05f * lm_rng_normal(&r);
    for (i = 0; i < 12; i++) ids[i] = (int)lm_rng_below(&r, 40);
    lm_arena_init(&m->work, 1 << 22);
    lm_arena_reset(&m->work, 0);
    lm_graph_init(&g, &m->work);
    g.no_grad = 1;
    full = lm_gpt_forward(m, &g, ids, 1, 12);
    {
        /* copy the full logits out before the cache path reuses the arena */
        float *fl = (float *)malloc(sizeof(float) * 12 * 40);
        memcpy(fl, full->data, sizeof(float) * 12 * 40);
        lm_arena_reset(&m->work, 0);
        lm_gpt_reset_cache(m);
        for (i = 0; i < 12; i++) {
            lm_gpt_step_token(m, ids[i], logits);
            for (j = 0; j < 40; j++) {
                double d = fabs(logits[j] - fl[i * 40 + j]) / (1 + fabs(fl[i * 40 + j]));
                if (d > worst) worst = d;
            }
        }
        free(fl);
    }
    CHECK(worst < 1e-5, "gpt: KV-cache logits equal full recomputation (rel 1e-5)");
    CHECK(lm_gpt_step_token(m, 0, logits) != LM_OK, "gpt: a full cache is an error");
    /* Greedy generation past n_ctx (the window slides) equals recomputing the full
       forward over the last n_ctx tokens for every new token. */
    {
        int text[40], out[30], n = 10, k, ok = 1;
        lm_sampler s = lm_sampler_defaults(1);
        s.temperature = 0;
        for (i = 0; i < n; i++) text[i] = ids[i];
        CHECK(lm_gpt_generate(m, text, n, 30, &s, NULL, NULL, out) == LM_OK, "gpt: generate past n_ctx");
        for (k = 0; k < 30; k++) {
            int w = n < 12 ? n : 12, best = 0;
            const float *row;
            lm_arena_reset(&m->work, 0);
            lm_graph_init(&g, &m->work);
            g.no_grad = 1;
            full = lm_gpt_forward(m, &g, text + n - w, 1, w);
            row = full->data + (size_t)(w - 1) * 40;
            for (j = 1; j < 40; j++) if (row[j] > row[best]) best = j;
            if (best != out[k]) ok = 0;
            text[n++] = best;
        }
        CHECK(ok, "gpt: sliding-window generation equals full recomputation (greedy)");
    }
    lm_gpt_free(m);
}

static void test_gpt_eval_data(void) {
    int tok[100], in[160], tg[160], i, ok = 1;
    lm_data d;
    lm_gpt *m = t_tiny_gpt(1, 1, 8, 8, 50, 2);
    double want = 0;
    for (i = 0; i < 100; i++) tok[i] = (i * 7) % 50;
    /* sequential order: B*T = 40 per step, wrap when p + 41 > 100 */
    d = lm_data_init(tok, 100, LM_ORDER_SEQUENTIAL, 0);
    lm_data_next(&d, 5, 8, in, tg);
    for (i = 0; i < 40; i++) if (in[i] != tok[i] || tg[i] != tok[i + 1]) ok = 0;
    CHECK(ok && d.pos == 40, "data: sequential step 1");
    lm_data_next(&d, 5, 8, in, tg);
    CHECK(in[0] == tok[40] && tg[39] == tok[80] && d.pos == 0, "data: sequential wraps when p + B*T + 1 > n");
    d = lm_data_init(tok, 100, LM_ORDER_RANDOM, 3);
    lm_data_next(&d, 5, 8, in, tg);
    ok = 1;
    for (i = 0; i < 5; i++) {
        int j, off = -1, k;
        for (k = 0; k + 8 < 100; k++) {
            for (j = 0; j < 8; j++) if (tok[k + j] != in[i * 8 + j] || tok[k + j + 1] != tg[i * 8 + j]) break;
            if (j == 8) { off = k; break; }
        }
        if (off < 0) ok = 0;
    }
    CHECK(ok, "data: random windows are contiguous runs with shifted targets");
    CHECK(lm_data_next(&d, 20, 8, in, tg) == LM_OK, "data: random order only needs T+1 tokens");
    d = lm_data_init(tok, 30, LM_ORDER_SEQUENTIAL, 0);
    CHECK(lm_data_next(&d, 5, 8, in, tg) != LM_OK, "data: too few tokens is an error");
    /* eval windows: floor(99/8) = 12 windows, equal to the mean of per-window losses */
    for (i = 0; i < 12; i++) want += lm_gpt_loss(m, tok + 8 * i, tok + 8 * i + 1, 1, 8);
    CHECK_NEAR(lm_gpt_eval(m, tok, 100, 8), want / 12, 1e-5, "eval: mean over non-overlapping windows");
    CHECK(lm_gpt_eval(m, tok, 8, 8) != lm_gpt_eval(m, tok, 8, 8), "eval: fewer than T+1 tokens is an error (NaN)");
    CHECK(lm_gpt_eval(m, tok, 100, 9) != lm_gpt_eval(m, tok, 100, 9), "eval: T > n_ctx is an error");
    tok[3] = 77;
    CHECK(lm_gpt_eval(m, tok, 100, 8) != lm_gpt_eval(m, tok, 100, 8) && strstr(lm_error(), "outside"), "eval: out-of-vocabulary ids are an error");
    lm_gpt_free(m);
}

/* The work arena: when a step does not fit (here after lm_gpt_loss sized it for the
   forward alone), it grows and the step is built again - before backward has added
   anything to the gradients, so the weights come out as if it had fitted at once. */
static void test_gpt_arena_retry(void) {
    float *w[2];
    size_t total = 0;
    int v, s, i, in[14], tg[14], grew = 0;
    for (v = 0; v < 2; v++) {
        lm_gpt *m = t_tiny_gpt(1, 1, 24, 8, 256, 3);
        lm_train_opts o = lm_train_defaults();
        lm_rng r = lm_rng_seed(4);
        for (i = 0; i < 14; i++) { in[i] = (int)lm_rng_below(&r, 256); tg[i] = (int)lm_rng_below(&r, 256); }
        if (v) lm_gpt_loss(m, in, tg, 2, 7);                    /* a small arena first */
        for (s = 0; s < 4; s++) {
            size_t cap = m->work.cap;
            lm_gpt_train_step(m, &o, in, tg, 2, 7, s);
            if (v && s == 0 && m->work.cap > cap) grew = 1;
        }
        total = m->params.total;
        w[v] = (float *)malloc(total * sizeof(float));
        memcpy(w[v], m->params.data, total * sizeof(float));
        lm_gpt_free(m);
    }
    CHECK(grew && memcmp(w[0], w[1], total * sizeof(float)) == 0,
          "work arena: a step that had to grow it gives the weights of one that fitted at once");
    free(w[0]); free(w[1]);
}

/* The sampler against its plain rule (lm__ref_sample: the whole vocabulary sorted): the
   same tokens kept and the same token drawn, over GPT-2's vocabulary and small ones, for
   temperature alone, top-k, top-p, both, p = 0 (the single best) and ties. */
static void test_sample_rule(void) {
    enum { VMAX = 50257 };
    static float logits[VMAX], a[VMAX], b[VMAX];
    static int scratch[VMAX], idx[VMAX];
    static const int vs[3] = { 50257, 256, 7 }, ks[4] = { 0, 1, 40, 300 };
    static const float ps[4] = { 1.0f, 0.9f, 0.3f, 0.0f };
    int v, k, q, rep, i, same_kept = 0, same_tok = 0, cases = 0;
    lm_rng r = lm_rng_seed(77);
    char msg[160];
    for (v = 0; v < 3; v++)
        for (k = 0; k < 4; k++)
            for (q = 0; q < 4; q++)
                for (rep = 0; rep < 3; rep++) {
                    int V = vs[v], t1, t2, ok = 1;
                    lm_sampler s = lm_sampler_defaults(100 + (uint64_t)rep);
                    s.temperature = rep == 2 ? 0.7f : 1.0f;
                    s.top_k = ks[k]; s.top_p = ps[q];
                    for (i = 0; i < V; i++)      /* rep 1: ties (few distinct values) */
                        logits[i] = rep == 1 ? (float)(int)(4.0f * lm_rng_uniform(&r)) : 3.0f * lm_rng_normal(&r);
                    memcpy(a, logits, (size_t)V * sizeof(float));
                    memcpy(b, logits, (size_t)V * sizeof(float));
                    t2 = lm__ref_sample(&s, s.rng, b, idx, V);
                    t1 = lm_sample(&s, a, scratch, V);
                    for (i = 0; i < V; i++) if ((a[i] > 0) != (b[i] > 0)) ok = 0;
                    same_kept += ok;
                    same_tok += t1 == t2;
                    cases++;
                }
    snprintf(msg, sizeof msg, "sample: as the plain rule (whole vocabulary sorted): same tokens kept in "
             "%d of %d cases, same token drawn in %d", same_kept, cases, same_tok);
    CHECK(same_kept == cases && same_tok == cases, msg);
}

/* Threads: training is bit-identical for 1, 2 and 3 threads. */
static void test_gpt_threads(void) {
    float *w[3];
    size_t total = 0;
    int t, i, in[2 * 16], tg[2 * 16];
    lm_rng r = lm_rng_seed(5);
    for (i = 0; i < 32; i++) { in[i] = (int)lm_rng_below(&r, 64); tg[i] = (int)lm_rng_below(&r, 64); }
    for (t = 0; t < 3; t++) {
        lm_gpt *m = t_tiny_gpt(2, 2, 64, 16, 64, 9);
        lm_train_opts o = lm_train_defaults();
        int s;
        lm_set_threads(t + 1);
        for (s = 0; s < 3; s++) lm_gpt_train_step(m, &o, in, tg, 2, 16, s);
        total = m->params.total;
        w[t] = (float *)malloc(total * sizeof(float));
        memcpy(w[t], m->params.data, m->params.total * sizeof(float));
        lm_gpt_free(m);
    }
    lm_set_threads(1);
    CHECK(memcmp(w[0], w[1], sizeof(float) * total) == 0 && memcmp(w[0], w[2], sizeof(float) * total) == 0, "threads: 1/2/3 threads give bit-identical weights");
    for (t = 0; t < 3; t++) free(w[t]);
}

/* ---- encoder, pooling, metrics ------------------------------------------------------- */
static const int t_lens[3] = { 2, 4, 1 };
static lm_tensor *tb_pool(lm_graph *g, lm_tensor **x, void *c) { (void)c; return lm_mean_pool(g, x[0], t_lens); }

/* Parameter gradients of a loss closure against central differences (float loss). */
typedef float (*t_loss_fn)(void *ctx, int train);
static int t_param_gradcheck(const char *what, lm_params *p, t_loss_fn f, void *ctx) {
    float *g0 = (float *)malloc(p->total * sizeof(float));
    int k, i, bad = 0, checked = 0;
    f(ctx, 1);
    memcpy(g0, p->grad, p->total * sizeof(float));
    for (k = 0; k < p->n; k++) {
        lm_tensor *t = &p->t[k];
        int step = t->size > 8 ? t->size / 5 : 1;
        for (i = 0; i < t->size; i += step) {
            float keep = t->data[i];
            double lp, lmi, num, an = g0[(t->data - p->data) + i];
            t->data[i] = keep + 1e-2f; lp = f(ctx, 0);
            t->data[i] = keep - 1e-2f; lmi = f(ctx, 0);
            t->data[i] = keep;
            num = (lp - lmi) / 2e-2;
            if (fabs(an - num) > 2e-4 + 2e-2 * fabs(num)) {
                if (!bad) printf("  %s: %s[%d] analytic %.6g numeric %.6g\n", what, p->names[k], i, an, num);
                bad++;
            }
            checked++;
        }
    }
    free(g0);
    CHECK(bad == 0 && checked > 50, what);
    return bad;
}

typedef struct { lm_encoder *e; int tok[8], lens[2], labels[2]; int mode; } t_enc_ctx;
static float t_enc_loss(void *vctx, int train) {
    t_enc_ctx *c = (t_enc_ctx *)vctx;
    if (train) lm_params_zero_grad(&c->e->params);
    if (c->mode == 0)
        return train ? lm_encoder_mlm_backward(c->e, c->tok, c->lens, 2, 4)
                     : lm_encoder_mlm_loss(c->e, c->tok, c->lens, 2, 4);
    return train ? lm_encoder_cls_backward(c->e, c->tok, c->lens, c->labels, 2, 4)
                 : lm_encoder_cls_loss(c->e, c->tok, c->lens, c->labels, 2, 4);
}

static void test_encoder(void) {
    lm_encoder_config ec;
    t_enc_ctx c;
    lm_rng r = lm_rng_seed(12);
    int i, k;
    t_leaf l[1];
    int s345[3] = { 3, 4, 5 };
    t_leaf_init(&l[0], 3, s345, &r, -1, 1, 1);
    t_gradcheck("mean_pool with lengths", tb_pool, l, 1, NULL);
    t_leaf_free(l, 1);
    memset(&ec, 0, sizeof ec);
    ec.n_layer = 2; ec.n_head = 2; ec.n_embd = 8; ec.n_ctx = 4; ec.vocab = 8; ec.n_class = 3;
    for (k = 0; k < 3; k++) {
        memset(&c, 0, sizeof c);
        ec.n_class = k == 2 ? 1 : 3;
        c.e = lm_encoder_new(&ec, 5);
        CHECK(c.e && c.e->cfg.mask_id == 6 && c.e->cfg.pad_id == 7, "encoder: new, default special ids");
        if (!c.e) return;
        for (i = 0; i < c.e->params.n; i++) {
            int j;
            for (j = 0; j < c.e->params.t[i].size; j++) c.e->params.t[i].data[j] += 0.1f * lm_rng_normal(&r);
        }
        for (i = 0; i < 8; i++) c.tok[i] = (int)lm_rng_below(&r, 6);
        c.lens[0] = 4; c.lens[1] = 2; c.tok[6] = c.tok[7] = 7;   /* row 1 padded */
        c.labels[0] = 2; c.labels[1] = k == 2 ? 0 : 1;
        if (k == 2) c.labels[0] = 1;
        c.mode = k == 0 ? 0 : 1;
        t_param_gradcheck(k == 0 ? "gradient check: encoder masked-LM loss, every parameter"
                        : k == 1 ? "gradient check: encoder classifier (cross-entropy)"
                                 : "gradient check: encoder binary head (BCE-with-logits)", &c.e->params, t_enc_loss, &c);
        lm_encoder_free(c.e);
    }
}

/* A tiny encoder learns a rule that needs the whole sequence: is token 3 present? */
static void test_encoder_learns(void) {
    lm_encoder_config ec;
    lm_encoder *e;
    lm_train_opts o = lm_train_defaults();
    lm_rng r = lm_rng_seed(3);
    int tok[32 * 8], lens[32], lab[32], pred[64], truth[64], step, i, b;
    float probs[32 * 2];
    long cm[4];
    lm_metrics m;
    double prec[2], rec[2], f1[2];
    long sup[2];
    memset(&ec, 0, sizeof ec);
    ec.n_layer = 1; ec.n_head = 2; ec.n_embd = 16; ec.n_ctx = 8; ec.vocab = 10; ec.n_class = 2;
    e = lm_encoder_new(&ec, 1);
    o.lr = 3e-3f; o.warmup = 10; o.steps = 300; o.wd = 0;
    for (step = 0; step < 300; step++) {
        for (b = 0; b < 32; b++) {
            lens[b] = 2 + (int)lm_rng_below(&r, 7);
            lab[b] = 0;
            for (i = 0; i < 8; i++) {
                tok[b * 8 + i] = i < lens[b] ? (int)lm_rng_below(&r, 8) : 9;
                if (i < lens[b] && tok[b * 8 + i] == 3) lab[b] = 1;
            }
        }
        lm_encoder_cls_train_step(e, &o, tok, lens, lab, 32, 8, step);
    }
    for (i = 0; i < 2; i++) {
        lm_encoder_predict(e, tok, lens, 32, 8, probs);
        for (b = 0; b < 32; b++) { pred[i * 32 + b] = probs[b * 2 + 1] > 0.5f; truth[i * 32 + b] = lab[b]; }
    }
    lm_confusion(truth, pred, 64, 2, cm);
    m.precision = prec; m.recall = rec; m.f1 = f1; m.support = sup;
    lm_metrics_from_confusion(cm, 2, &m);
    CHECK(m.accuracy > 0.9, "encoder: a tiny classifier learns 'contains 3' (accuracy > 0.9)");
    if (m.accuracy <= 0.9) printf("  accuracy %g\n", m.accuracy);
    lm_encoder_free(e);
}

/* ---- the encoder-decoder -------------------------------------------------------------- */
/* A small model: V_src 20, V_tgt 16 (ids 13, 14, 15 special), C 8, 2 heads. */
static lm_seq2seq *t_tiny_s2s(int norm_first, int act, int le, int ld, uint64_t seed) {
    lm_seq2seq_config c;
    memset(&c, 0, sizeof c);
    c.d_model = 8; c.nhead = 2; c.num_encoder_layers = le; c.num_decoder_layers = ld;
    c.dim_feedforward = 12; c.n_ctx = 8; c.src_vocab = 20; c.tgt_vocab = 16;
    c.norm_first = norm_first; c.activation = act;
    return lm_seq2seq_new(&c, seed);
}

/* A batch of 3 pairs: sources of 5, 2 and 4 tokens (S 5) with junk past them, targets of
   3, 0 and 2 (T 3). */
static const int t_s2s_src[15] = { 1, 5, 9, 19, 2,   7, 3, 99, -1, 4,   0, 18, 6, 11, 7 };
static const int t_s2s_sl[3] = { 5, 2, 4 };
static const int t_s2s_tgt[9] = { 3, 12, 0,   -5, 77, 1,   9, 2, 42 };
static const int t_s2s_tl[3] = { 3, 0, 2 };
static lm_seq2seq_batch t_s2s_batch(void) {
    lm_seq2seq_batch b;
    b.B = 3; b.S = 5; b.T = 3;
    b.src = t_s2s_src; b.src_len = t_s2s_sl; b.tgt = t_s2s_tgt; b.tgt_len = t_s2s_tl;
    return b;
}

typedef struct { lm_seq2seq *m; lm_seq2seq_batch b; } t_s2s_ctx;
static float t_s2s_loss(void *vctx, int train) {
    t_s2s_ctx *c = (t_s2s_ctx *)vctx;
    if (train) lm_params_zero_grad(&c->m->params);
    return train ? lm_seq2seq_backward(c->m, &c->b) : lm_seq2seq_loss(c->m, &c->b);
}

/* Config defaults and refusals; every parameter's gradient against central differences,
   post-LN and pre-LN, both activations; the loss's padding: a batch's loss is the
   token-weighted mean of its pairs' losses alone, and the junk past each row's length does
   not matter; bad batches are errors. */
static void test_s2s_model(void) {
    lm_seq2seq_config c;
    lm_seq2seq *m;
    t_s2s_ctx x;
    int k, i;
    memset(&c, 0, sizeof c);
    m = lm_seq2seq_new(&c, 1);
    (void)i;
    CHECK(m && m->cfg.d_model == 128 && m->cfg.nhead == 4 && m->cfg.num_encoder_layers == 3 &&
          m->cfg.num_decoder_layers == 3 && m->cfg.dim_feedforward == 512 && m->cfg.n_ctx == 128 &&
          m->cfg.src_vocab == 259 && m->cfg.tgt_vocab == 259 && m->cfg.bos_id == 256 &&
          m->cfg.eos_id == 257 && m->cfg.pad_id == 258 && !m->cfg.norm_first &&
          m->cfg.activation == LM_ACT_RELU, "seq2seq: zero config takes the documented defaults");
    CHECK(m && m->params.n == 8 + 12 * 3 + 18 * 3 &&
          !strcmp(m->params.names[2], "transformer.encoder.layers.0.self_attn.in_proj_weight") &&
          m->enc[0].attn_w->shape[0] == 384 && m->enc[0].attn_w->shape[1] == 128 &&
          m->dec[2].ln_x_w && m->dec[2].xattn_w && !m->enc[1].xattn_w &&
          !strcmp(m->params.names[m->params.n - 2], "generator.weight"),
          "seq2seq: PyTorch's names and (out, in) shapes, cross-attention in the decoder only");
    CHECK(m && lm__s2s_params(&m->cfg) == (double)lm_seq2seq_num_params(m),
          "seq2seq: the memory estimate counts the parameters exactly");
    CHECK(m && fabs(m->pe.data[1 * 128 + 0] - sin(1.0)) < 1e-7 && fabs(m->pe.data[3 * 128 + 1] - cos(3.0)) < 1e-7 &&
          fabs(m->pe.data[5 * 128 + 10] - sin(5 * exp(-10 * log(10000.0) / 128))) < 1e-7,
          "seq2seq: sinusoidal positions");
    lm_seq2seq_free(m);
    c.d_model = 10; c.nhead = 4;
    CHECK(!lm_seq2seq_new(&c, 1) && strstr(lm_error(), "divide"), "seq2seq: nhead must divide d_model");
    c.nhead = 2; c.activation = 7;
    CHECK(!lm_seq2seq_new(&c, 1) && strstr(lm_error(), "activation"), "seq2seq: an unknown activation is refused");
    c.activation = 0; c.bos_id = 5; c.eos_id = 5;
    CHECK(!lm_seq2seq_new(&c, 1) && strstr(lm_error(), "distinct"), "seq2seq: special ids must be distinct");
    c.bos_id = c.eos_id = 0; c.dropout = 1;
    CHECK(!lm_seq2seq_new(&c, 1) && strstr(lm_error(), "dropout"), "seq2seq: dropout 1 is refused");

    for (k = 0; k < 4; k++) {
        /* GELU: finite differences across ReLU's kink are not a fair test (ReLU's op has
           its gradient check; the ReLU models are held to PyTorch by make test-torch) */
        static const char *const what[4] = {
            "gradient check: seq2seq post-LN, every parameter",
            "gradient check: seq2seq pre-LN, every parameter",
            "gradient check: seq2seq post-LN (2+2 layers), every parameter",
            "gradient check: seq2seq pre-LN (2+1 layers), every parameter" };
        x.m = t_tiny_s2s(k & 1, LM_ACT_GELU, 1 + (k >= 2), 1 + (k == 2), 3 + k);
        x.b = t_s2s_batch();
        if (!x.m) { CHECK(0, "seq2seq: new"); continue; }
        t_param_gradcheck(what[k], &x.m->params, t_s2s_loss, &x);
        lm_seq2seq_free(x.m);
    }

    /* padding: the batch's loss is the token-weighted mean of the pairs' own losses */
    m = t_tiny_s2s(0, LM_ACT_RELU, 2, 1, 11);
    if (!m) { CHECK(0, "seq2seq: new"); return; }
    {
        lm_seq2seq_batch b = t_s2s_batch(), one;
        double want = 0, cnt = 0;
        float all = lm_seq2seq_loss(m, &b);
        for (i = 0; i < 3; i++) {
            float l;
            one.B = 1; one.S = t_s2s_sl[i]; one.T = t_s2s_tl[i];
            one.src = t_s2s_src + 5 * i; one.src_len = NULL;
            one.tgt = t_s2s_tgt + 3 * i; one.tgt_len = NULL;
            l = lm_seq2seq_loss(m, &one);
            want += (double)l * (t_s2s_tl[i] + 1);
            cnt += t_s2s_tl[i] + 1;
        }
        CHECK_NEAR(all, want / cnt, 2e-6, "seq2seq: a padded batch's loss is the mean of its pairs' losses alone");
        b.T = 0; b.tgt = NULL; b.tgt_len = NULL;
        CHECK(lm_seq2seq_loss(m, &b) > 0, "seq2seq: empty targets (EOS only) have a loss");
        b = t_s2s_batch();
        b.S = 9;
        CHECK(lm_seq2seq_loss(m, &b) != lm_seq2seq_loss(m, &b) && strstr(lm_error(), "n_ctx"),
              "seq2seq: a source longer than n_ctx is refused");
        b = t_s2s_batch();
        {
            int bad[9];
            memcpy(bad, t_s2s_tgt, sizeof bad);
            bad[1] = 14;                                  /* EOS */
            b.tgt = bad;
            CHECK(lm_seq2seq_loss(m, &b) != lm_seq2seq_loss(m, &b) && strstr(lm_error(), "special"),
                  "seq2seq: a special id in a target is refused");
        }
        b = t_s2s_batch();
        {
            int bad[15];
            memcpy(bad, t_s2s_src, sizeof bad);
            bad[12] = 20;
            b.src = bad;
            CHECK(lm_seq2seq_loss(m, &b) != lm_seq2seq_loss(m, &b) && strstr(lm_error(), "outside"),
                  "seq2seq: a source id outside the vocabulary is refused");
        }
    }
    lm_seq2seq_free(m);
}

/* Decoding with the KV cache against the full forward: greedy's token at every position
   is the argmax (BOS and PAD excluded) of the forward over its own output so far, and EOS
   follows when it stopped before max_out; beam 1 is greedy; limits and errors. */
static int t_s2s_argmax_ok(lm_seq2seq *m, const int *src, int n, const int *out, int k, int ended) {
    static unsigned char buf[4 << 20];
    lm_arena a;
    lm_graph g;
    lm_seq2seq_batch b;
    lm_tensor *logits;
    int t, j, V = m->cfg.tgt_vocab, ok = 1;
    lm_arena_init_buffer(&a, buf, sizeof buf);
    lm_graph_init(&g, &a);
    g.no_grad = 1;
    b.B = 1; b.S = n; b.T = k; b.src = src; b.src_len = NULL; b.tgt = out; b.tgt_len = NULL;
    logits = lm_seq2seq_forward(m, &g, &b);
    if (!logits) return 0;
    for (t = 0; t < k + ended; t++) {
        const float *z = logits->data + (size_t)t * V;
        int best = -1;
        for (j = 0; j < V; j++)
            if (j != m->cfg.bos_id && j != m->cfg.pad_id && (best < 0 || z[j] > z[best])) best = j;
        ok &= best == (t < k ? out[t] : m->cfg.eos_id);
    }
    return ok;
}

static void test_s2s_decode(void) {
    int src[6] = { 3, 1, 4, 1, 5, 9 }, out[16], out1[16], n, n1, k, runs = 0, ok = 1, lens = 0;
    for (k = 0; k < 6; k++) {
        lm_seq2seq *m = t_tiny_s2s(k & 1, k & 2 ? LM_ACT_GELU : LM_ACT_RELU, 1 + k / 4, 1 + (k & 1), 60 + k);
        if (!m) { CHECK(0, "seq2seq: new"); return; }
        n = lm_seq2seq_translate(m, src, 1 + k, 1, out, 7);
        ok &= n >= 0 && t_s2s_argmax_ok(m, src, 1 + k, out, n, n < 7);
        n1 = lm_seq2seq_translate(m, src, 1 + k, 0, out1, 7);
        ok &= n1 == n && !memcmp(out, out1, (size_t)(n > 0 ? n : 0) * sizeof(int));
        lens += n;
        runs++;
        if (k == 5) {
            CHECK(lm_seq2seq_translate(m, src, 1 + k, 1, out1, 2) == (n < 2 ? n : 2) &&
                  !memcmp(out, out1, (size_t)(n < 2 ? n : 2) * sizeof(int)), "seq2seq: max_out cuts the output");
            CHECK(lm_seq2seq_translate(m, src, 5, 1, out, 0) == 0, "seq2seq: max_out 0 decodes nothing");
            CHECK(lm_seq2seq_translate(m, src, 9, 1, out, 16) == LM_ERR_ARG && strstr(lm_error(), "n_ctx"),
                  "seq2seq: a source longer than n_ctx is refused");
            CHECK(lm_seq2seq_translate(m, src, 5, 17, out, 16) == LM_ERR_ARG, "seq2seq: beam above 16 is refused");
            src[2] = 20;
            CHECK(lm_seq2seq_translate(m, src, 5, 1, out, 16) == LM_ERR_ARG && strstr(lm_error(), "outside"),
                  "seq2seq: a source id outside the vocabulary is refused");
        }
        lm_seq2seq_free(m);
    }
    CHECK(ok && runs == 6 && lens > 6, "seq2seq: greedy decoding with the KV cache is the argmax of the full "
          "forward at every position (6 models: post-/pre-LN, relu/gelu, 1-2 layers), EOS where it stops");
}

/* An encoder-decoder learns: reverse strings of 1 to 6 letters of 8, exactly, on strings
   it has not seen (greedy). */
static void test_s2s_learns(void) {
    lm_seq2seq_config c;
    lm_seq2seq *m;
    lm_train_opts o = lm_train_defaults();
    lm_rng r = lm_rng_seed(7);
    int s, k, i, good = 0, src[16 * 6], tgt[16 * 6], len[16], out[8];
    memset(&c, 0, sizeof c);
    c.d_model = 32; c.nhead = 4; c.num_encoder_layers = 1; c.num_decoder_layers = 1; c.n_ctx = 8;
    c.dim_feedforward = 64;
    m = lm_seq2seq_new(&c, 5);
    if (!m) { CHECK(0, "seq2seq: new"); return; }
    o.lr = 3e-3f; o.warmup = 20; o.steps = 600;
    for (s = 0; s < o.steps; s++) {
        lm_seq2seq_batch b;
        for (k = 0; k < 16; k++) {
            len[k] = 1 + (int)lm_rng_below(&r, 6);
            for (i = 0; i < len[k]; i++) src[k * 6 + i] = 'a' + (int)lm_rng_below(&r, 8);
            for (i = 0; i < len[k]; i++) tgt[k * 6 + i] = src[k * 6 + len[k] - 1 - i];
        }
        b.B = 16; b.S = 6; b.T = 6; b.src = src; b.src_len = len; b.tgt = tgt; b.tgt_len = len;
        lm_seq2seq_train_step(m, &o, &b, s);
    }
    for (k = 0; k < 100; k++) {
        int n = 1 + (int)lm_rng_below(&r, 6), got, same;
        for (i = 0; i < n; i++) src[i] = 'a' + (int)lm_rng_below(&r, 8);
        got = lm_seq2seq_translate(m, src, n, 1, out, 8);
        for (same = got == n, i = 0; same && i < n; i++) same = out[i] == src[n - 1 - i];
        good += same;
    }
    printf("  seq2seq learns to reverse strings: %d of 100 unseen exactly right (greedy)\n", good);
    CHECK(good >= 95, "seq2seq: learns to reverse strings (>= 95 of 100 unseen exactly right)");
    for (good = 0, k = 0; k < 100; k++) {
        int n = 1 + (int)lm_rng_below(&r, 6), got, same;
        for (i = 0; i < n; i++) src[i] = 'a' + (int)lm_rng_below(&r, 8);
        got = lm_seq2seq_translate(m, src, n, 3, out, 8);
        for (same = got == n, i = 0; same && i < n; i++) same = out[i] == src[n - 1 - i];
        good += same;
    }
    CHECK(good >= 95, "seq2seq: beam-3 decoding of 100 more unseen strings: >= 95 exactly right");
    lm_seq2seq_free(m);
}

/* Checkpoints: save and load give the same weights, config and outputs; strict loading of
   damaged files; resume state: 2 + 2 steps with a save between == 4 steps; 1 and 2 threads
   give bit-identical weights. */
static void test_s2s_checkpoint(void) {
    lm_seq2seq *m = t_tiny_s2s(1, LM_ACT_GELU, 2, 1, 31), *l;
    lm_seq2seq_batch b = t_s2s_batch();
    lm_train_opts o = lm_train_defaults();
    unsigned char *img, *bad;
    size_t size = 0;
    int s;
    if (!m) { CHECK(0, "seq2seq: new"); return; }
    CHECK(lm_seq2seq_save_mem(m, NULL, 0, &size) == LM_OK && size > 0, "seq2seq: save_mem sizes the image");
    img = (unsigned char *)malloc(size);
    bad = (unsigned char *)malloc(size);
    lm_seq2seq_save_mem(m, img, size, &size);
    l = lm_seq2seq_load_mem(img, size);
    CHECK(l && l->params.total == m->params.total &&
          !memcmp(l->params.data, m->params.data, m->params.total * sizeof(float)) &&
          !memcmp(&l->cfg, &m->cfg, sizeof m->cfg) && lm_seq2seq_loss(l, &b) == lm_seq2seq_loss(m, &b),
          "seq2seq: a checkpoint loads back with the same weights, config and loss");
    lm_seq2seq_free(l);
    /* damage: a truncated image, and one byte of the header changed at a time */
    l = lm_seq2seq_load_mem(img, size - 5);
    CHECK(!l, "seq2seq: a truncated checkpoint is refused");
    {
        uint64_t hn = 0;
        size_t i, refused = 0, tried = 0;
        char what[160];
        for (i = 8; i-- > 0;) hn = hn << 8 | img[i];   /* little-endian, whatever the host */
        for (i = 8; i < 8 + hn && i < size; i += 7) {
            memcpy(bad, img, size);
            bad[i] = (unsigned char)(bad[i] ^ 0x5a);
            l = lm_seq2seq_load_mem(bad, size);
            refused += l == NULL;
            lm_seq2seq_free(l);
            tried++;
        }
        snprintf(what, sizeof what, "seq2seq: header bytes changed one at a time: %lu of %lu refused, none crash",
                 (unsigned long)refused, (unsigned long)tried);
        CHECK(tried > 10 && refused > tried / 2, what);
    }
    {
        /* by name: a missing tensor, an unexpected one, a wrong shape, no nhead, a GPT */
        lm_st_out outs[128];
        const char *kv[2 * 16];
        char num[16][24];
        int n = m->params.n, k;
        size_t sz;
        unsigned char *buf;
        static const char *const why[5] = { "missing tensor", "unexpected tensor", "shape", "nhead", "not a name" };
        for (k = 0; k < 5; k++) {
            int i, nn = 0;
            lm__s2s_meta(m, num, kv);
            for (i = 0; i < n; i++) {
                const lm_tensor *t = &m->params.t[i];
                lm_st_out *o = &outs[nn];
                if (k == 0 && i == 5) continue;
                memset(o, 0, sizeof *o);
                o->name = m->params.names[i];
                if (k == 1 && i == 3) {           /* one more tensor, of another name */
                    outs[nn + 1] = *o;
                    outs[nn + 1].name = "transformer.encoder.layers.0.extra.weight";
                    outs[nn + 1].ndim = t->ndim;
                    outs[nn + 1].shape[0] = t->shape[0];
                    outs[nn + 1].shape[1] = t->ndim > 1 ? t->shape[1] : 0;
                    outs[nn + 1].data = t->data;
                    outs[nn + 1].dtype = LM_DT_F32;
                    nn++;
                }
                o->ndim = t->ndim;
                o->shape[0] = t->shape[0]; o->shape[1] = t->ndim > 1 ? t->shape[1] : 0;
                if (k == 2 && i == 7) o->shape[0] = 1, o->ndim = 1;
                o->data = t->data;
                nn++;
            }
            if (k == 3) kv[4] = "n_head";   /* no "nhead" key */
            if (k == 4) {                    /* a GPT checkpoint */
                lm_gpt *g = t_tiny_gpt(1, 2, 8, 8, 16, 1);
                lm_gpt_save_mem(g, NULL, 0, &sz);
                buf = (unsigned char *)malloc(sz);
                lm_gpt_save_mem(g, buf, sz, &sz);
                lm_gpt_free(g);
            } else {
                lm_st_write_mem(outs, nn, kv, LM__S2S_META, NULL, 0, &sz);
                buf = (unsigned char *)malloc(sz);
                lm_st_write_mem(outs, nn, kv, LM__S2S_META, buf, sz, &sz);
            }
            l = lm_seq2seq_load_mem(buf, sz);
            {
                char what[800];
                snprintf(what, sizeof what, "seq2seq: a checkpoint with a %s is refused with a message ('%s')",
                         k == 0 ? "tensor missing" : k == 1 ? "tensor of another name" : k == 2 ?
                         "tensor of the wrong shape" : k == 3 ? "metadata without nhead" : "GPT's layout",
                         lm_error());
                CHECK(!l && (strstr(lm_error(), why[k]) || (k == 4 && strstr(lm_error(), "encoder-decoder"))), what);
            }
            if (k == 4) {
                lm_gpt *g = lm_gpt_load_mem(img, size, 0);
                CHECK(!g && strstr(lm_error(), "not a GPT-2 name"), "seq2seq: the GPT loader refuses an encoder-decoder checkpoint");
                lm_gpt_free(g);
            }
            lm_seq2seq_free(l);
            free(buf);
        }
    }
    free(img);
    free(bad);
    /* F16: a checkpoint written as F16 loads (rounded weights) */
    {
        lm_st_out outs[128];
        const char *kv[2 * 16];
        char num[16][24];
        size_t sz;
        unsigned char *buf;
        int i;
        lm__s2s_meta(m, num, kv);
        for (i = 0; i < m->params.n; i++) {
            const lm_tensor *t = &m->params.t[i];
            memset(&outs[i], 0, sizeof outs[i]);
            outs[i].name = m->params.names[i];
            outs[i].ndim = t->ndim;
            outs[i].shape[0] = t->shape[0]; outs[i].shape[1] = t->ndim > 1 ? t->shape[1] : 0;
            outs[i].data = t->data;
            outs[i].dtype = LM_DT_F16;
        }
        lm_st_write_mem(outs, m->params.n, kv, LM__S2S_META, NULL, 0, &sz);
        buf = (unsigned char *)malloc(sz);
        lm_st_write_mem(outs, m->params.n, kv, LM__S2S_META, buf, sz, &sz);
        l = lm_seq2seq_load_mem(buf, sz);
        CHECK(l && fabs(lm_seq2seq_loss(l, &b) - lm_seq2seq_loss(m, &b)) < 1e-2,
              "seq2seq: an F16 checkpoint loads");
        lm_seq2seq_free(l);
        free(buf);
    }
    {
        t_scratch d;
        lm_train_state st;
        lm_seq2seq *a = t_tiny_s2s(0, LM_ACT_RELU, 1, 1, 41), *c2;
        const char *path;
        int ok = a != NULL;
        o.steps = 4; o.warmup = 1;
        if (ok && t_scratch_make(&d, "/tmp/lm_s2s_XXXXXX")) {
            a->cfg.dropout = 0.2f;
            path = t_scratch_path(&d, "m.safetensors");
            for (s = 0; s < 2; s++) lm_seq2seq_train_step(a, &o, &b, s);
            st.step = 2; st.data_pos = 7; st.rng = 99;
            ok = lm_seq2seq_save(a, path) == LM_OK && lm_seq2seq_save_state(a, path, &st) == LM_OK;
            for (s = 2; s < 4; s++) lm_seq2seq_train_step(a, &o, &b, s);
            c2 = ok ? lm_seq2seq_load(path) : NULL;
            memset(&st, 0, sizeof st);
            ok = ok && c2 && lm_seq2seq_load_state(c2, path, &st) == LM_OK && st.step == 2 &&
                 st.data_pos == 7 && st.rng == 99;
            if (c2) {
                c2->seed = 41;
                c2->cfg.dropout = 0.2f;
                for (s = 2; s < 4; s++) lm_seq2seq_train_step(c2, &o, &b, s);
                ok = ok && !memcmp(a->params.data, c2->params.data, a->params.total * sizeof(float));
            }
            CHECK(ok, "seq2seq: 2 steps, save with the state, load, 2 more == 4 steps (with dropout)");
            lm_seq2seq_free(c2);
            remove(path);
            remove(t_scratch_path(&d, "m.safetensors.state"));
            t_scratch_done(&d);
        }
        lm_seq2seq_free(a);
    }
    {
        float *w[2];
        int t;
        for (t = 0; t < 2; t++) {
            lm_seq2seq *a = t_tiny_s2s(1, LM_ACT_GELU, 2, 2, 51);
            lm_set_threads(t + 1);
            o.steps = 3;
            for (s = 0; s < 3 && a; s++) lm_seq2seq_train_step(a, &o, &b, s);
            w[t] = (float *)malloc(m->params.total * sizeof(float) * 2);
            if (a) memcpy(w[t], a->params.data, a->params.total * sizeof(float));
            if (a && t == 1) CHECK(!memcmp(w[0], w[1], a->params.total * sizeof(float)),
                                   "seq2seq: 1 and 2 threads give bit-identical weights");
            lm_seq2seq_free(a);
        }
        lm_set_threads(1);
        free(w[0]); free(w[1]);
    }
    lm_seq2seq_free(m);
}

static void test_metrics(void) {
    /* truth/pred with a hand-computed confusion matrix */
    int truth[8] = { 0, 0, 0, 1, 1, 2, 2, 2 }, pred[8] = { 0, 0, 1, 1, 2, 2, 2, 0 };
    long cm[9];
    double p[3], r[3], f[3];
    long s[3];
    lm_metrics m;
    CHECK(lm_confusion(truth, pred, 8, 3, cm) == LM_OK && cm[0] == 2 && cm[1] == 1 && cm[4] == 1 && cm[5] == 1 && cm[6] == 1 && cm[8] == 2, "metrics: confusion matrix");
    m.precision = p; m.recall = r; m.f1 = f; m.support = s;
    lm_metrics_from_confusion(cm, 3, &m);
    CHECK_NEAR(m.accuracy, 5.0 / 8, 1e-12, "metrics: accuracy");
    CHECK_NEAR(p[0], 2.0 / 3, 1e-12, "metrics: precision of class 0");
    CHECK_NEAR(r[2], 2.0 / 3, 1e-12, "metrics: recall of class 2");
    CHECK_NEAR(f[1], 2 * 0.5 * 0.5 / 1.0, 1e-12, "metrics: F1 of class 1");
    CHECK_NEAR(m.macro_f1, (2.0 / 3 + 0.5 + 2.0 / 3) / 3, 1e-12, "metrics: macro F1");
    CHECK(s[0] == 3 && s[1] == 2 && s[2] == 3, "metrics: support");
    truth[0] = 5;
    CHECK(lm_confusion(truth, pred, 8, 3, cm) != LM_OK, "metrics: a class out of range is an error");
    CHECK_NEAR(lm_perplexity(log(7.5)), 7.5, 1e-12, "metrics: perplexity = exp(loss)");
}

/* A graph reset to a mark and built again gets the same gradients as a fresh one: the
   spare gradient buffers of the first graph must not survive the reset (they lived in the
   memory the reset gave back). */
static lm_tensor *t_reuse_graph(lm_graph *g, float *xd, float *xg, float *wd, float *wg, int kind) {
    int sx[2] = { 6, 8 }, sw[2] = { 8, 8 };
    lm_tensor *x = lm_tensor_wrap(g, xd, 2, sx, 1), *w = lm_tensor_wrap(g, wd, 2, sw, 1), *h;
    x->grad = xg; w->grad = wg;
    h = lm_matmul(g, x, w, 0);
    h = kind ? lm_tanh(g, lm_gelu(g, h)) : lm_sigmoid(g, lm_relu(g, h));
    return lm_sum(g, lm_mul(g, h, h));
}
static void test_core_graph_reuse(void) {
    static unsigned char buf[1 << 16], buf2[1 << 16];
    lm_arena a, a2;
    lm_graph g, g2;
    float xd[48], wd[64], xg[48], wg[64], xg2[48], wg2[64];
    lm_rng r = lm_rng_seed(3);
    int i;
    for (i = 0; i < 48; i++) xd[i] = lm_rng_normal(&r);
    for (i = 0; i < 64; i++) wd[i] = 0.3f * lm_rng_normal(&r);
    lm_arena_init_buffer(&a, buf, sizeof buf);
    lm_graph_init(&g, &a);
    memset(xg, 0, sizeof xg); memset(wg, 0, sizeof wg);
    lm_backward(&g, t_reuse_graph(&g, xd, xg, wd, wg, 0));
    CHECK(g.n_spare > 0, "graph: backward recycles dead gradient buffers");
    lm_graph_reset(&g, 0);
    CHECK(g.n_spare == 0, "graph: a reset forgets the spare buffers (their memory is given back)");
    memset(xg, 0, sizeof xg); memset(wg, 0, sizeof wg);
    lm_backward(&g, t_reuse_graph(&g, xd, xg, wd, wg, 1));
    lm_arena_init_buffer(&a2, buf2, sizeof buf2);
    lm_graph_init(&g2, &a2);
    memset(xg2, 0, sizeof xg2); memset(wg2, 0, sizeof wg2);
    lm_backward(&g2, t_reuse_graph(&g2, xd, xg2, wd, wg2, 1));
    CHECK(!memcmp(xg, xg2, sizeof xg) && !memcmp(wg, wg2, sizeof wg),
          "graph: after lm_graph_reset a new graph's gradients equal a fresh graph's");
}

/* Attention over a long context, against a plain double-precision implementation: T = 75
   spans three of the row blocks attention works in (32 + 32 + 11), so the causal block
   skipping, the padding mask and a fully padded row (len 0) are all exercised, forward and
   backward, on 1 and 2 threads. */
static void test_attention_long(void) {
    enum { B = 3, T = 75, C = 24, H = 3 };
    static const int lens[B] = { 75, 40, 0 };
    static float qkv[B * T * 3 * C], dy[B * T * C];
    static double y[B * T * C], gr[B * T * 3 * C], pr[T], dpr[T];
    int mode, th, i, shape[3] = { B, T, 3 * C };
    lm_rng r = lm_rng_seed(11);
    for (i = 0; i < B * T * 3 * C; i++) qkv[i] = 2.0f * lm_rng_uniform(&r) - 1.0f;
    for (i = 0; i < B * T * C; i++) dy[i] = 2.0f * lm_rng_uniform(&r) - 1.0f;
    for (mode = 0; mode < 3; mode++) {
        int causal = mode != 1;
        const int *ln = mode == 0 ? NULL : lens;
        memset(gr, 0, sizeof gr);
        lm__ref_attention(qkv, qkv + C, qkv + 2 * C, 3 * C, 3 * C, dy, B, T, T, C, H, causal, ln,
                          y, gr, gr + C, gr + 2 * C, pr, dpr);
        for (th = 1; th <= 2; th++) {
            lm_arena a;
            lm_graph g;
            lm_tensor *x, *out, *R;
            double ey = 0, eg = 0;
            char what[160];
            lm_set_threads(th);
            lm_arena_init_buffer(&a, t_arena_buf, sizeof t_arena_buf);
            lm_graph_init(&g, &a);
            x = lm_tensor_wrap(&g, qkv, 3, shape, 1);
            out = lm_attention(&g, x, H, causal, ln);
            R = out ? lm_tensor_wrap(&g, dy, 3, out->shape, 0) : NULL;
            if (!out || !R || lm_backward(&g, lm_sum(&g, lm_mul(&g, out, R))) != LM_OK || !x->grad) {
                CHECK(0, "attention, long context: forward and backward run");
                continue;
            }
            for (i = 0; i < B * T * C; i++) if (fabs(out->data[i] - y[i]) > ey) ey = fabs(out->data[i] - y[i]);
            for (i = 0; i < B * T * 3 * C; i++) if (fabs(x->grad[i] - gr[i]) > eg) eg = fabs(x->grad[i] - gr[i]);
            snprintf(what, sizeof what, "attention T=75 %s, %d thread(s): y and d qkv as the double reference (max err %.1e, %.1e)",
                     mode == 0 ? "causal" : mode == 1 ? "bidirectional padded (len 75, 40, 0)" : "causal padded",
                     th, ey, eg);
            CHECK(ey < 2e-5 && eg < 1e-4, what);
        }
    }
    lm_set_threads(1);
}

/* Cross-attention against the same double reference: 40 queries (two row blocks) over 75
   keys of another tensor, the source padded (len 75, 33 and a fully padded 0), forward and
   both inputs' gradients, on 1 and 2 threads. */
static void test_cross_attention_long(void) {
    enum { B = 3, TQ = 40, TK = 75, C = 24, H = 3 };
    static const int lens[B] = { 75, 33, 0 };
    static float q[B * TQ * C], kv[B * TK * 2 * C], dy[B * TQ * C];
    static double y[B * TQ * C], gq[B * TQ * C], gkv[B * TK * 2 * C], pr[TK], dpr[TK];
    int th, i, sq[3] = { B, TQ, C }, skv[3] = { B, TK, 2 * C };
    lm_rng r = lm_rng_seed(12);
    for (i = 0; i < B * TQ * C; i++) q[i] = 2.0f * lm_rng_uniform(&r) - 1.0f;
    for (i = 0; i < B * TK * 2 * C; i++) kv[i] = 2.0f * lm_rng_uniform(&r) - 1.0f;
    for (i = 0; i < B * TQ * C; i++) dy[i] = 2.0f * lm_rng_uniform(&r) - 1.0f;
    memset(gq, 0, sizeof gq);
    memset(gkv, 0, sizeof gkv);
    lm__ref_attention(q, kv, kv + C, C, 2 * C, dy, B, TQ, TK, C, H, 0, lens, y, gq, gkv, gkv + C, pr, dpr);
    for (th = 1; th <= 2; th++) {
        lm_arena a;
        lm_graph g;
        lm_tensor *xq, *xkv, *out, *R;
        double ey = 0, eg = 0;
        char what[160];
        lm_set_threads(th);
        lm_arena_init_buffer(&a, t_arena_buf, sizeof t_arena_buf);
        lm_graph_init(&g, &a);
        xq = lm_tensor_wrap(&g, q, 3, sq, 1);
        xkv = lm_tensor_wrap(&g, kv, 3, skv, 1);
        out = lm_cross_attention(&g, xq, xkv, H, lens);
        R = out ? lm_tensor_wrap(&g, dy, 3, out->shape, 0) : NULL;
        if (!out || !R || lm_backward(&g, lm_sum(&g, lm_mul(&g, out, R))) != LM_OK || !xq->grad || !xkv->grad) {
            CHECK(0, "cross-attention, long source: forward and backward run");
            continue;
        }
        for (i = 0; i < B * TQ * C; i++) if (fabs(out->data[i] - y[i]) > ey) ey = fabs(out->data[i] - y[i]);
        for (i = 0; i < B * TQ * C; i++) if (fabs(xq->grad[i] - gq[i]) > eg) eg = fabs(xq->grad[i] - gq[i]);
        for (i = 0; i < B * TK * 2 * C; i++) if (fabs(xkv->grad[i] - gkv[i]) > eg) eg = fabs(xkv->grad[i] - gkv[i]);
        snprintf(what, sizeof what, "cross-attention 40 x 75, padded source (75, 33, 0), %d thread(s): "
                 "y, dq and dkv as the double reference (max err %.1e, %.1e)", th, ey, eg);
        CHECK(ey < 2e-5 && eg < 1e-4, what);
    }
    lm_set_threads(1);
    {   /* shapes that do not fit are errors */
        static unsigned char buf[1 << 16];
        lm_arena a;
        lm_graph g;
        int s1[3] = { B, TQ, C }, s2[3] = { B, TK, C }, bad[B] = { 1, 76, 3 };
        lm_arena_init_buffer(&a, buf, sizeof buf);
        lm_graph_init(&g, &a);
        CHECK(!lm_cross_attention(&g, lm_tensor_wrap(&g, q, 3, s1, 0), lm_tensor_wrap(&g, kv, 3, s2, 0), H, NULL) &&
              strstr(lm_error(), "kv (B, Tk, 2C)"), "cross-attention: kv must be (B, Tk, 2C)");
        lm_graph_init(&g, &a);
        CHECK(!lm_cross_attention(&g, lm_tensor_wrap(&g, q, 3, s1, 0), lm_tensor_wrap(&g, kv, 3, skv, 0), H, bad) &&
              strstr(lm_error(), "lengths"), "cross-attention: a length past Tk is refused");
    }
}

/* Encoder dropout: only in training steps, the same masks for the same seed and step,
   and a bad rate refused. */
static void test_encoder_dropout(void) {
    lm_encoder_config ec;
    lm_encoder *a, *b, *z;
    lm_train_opts o = lm_train_defaults();
    int tok[8] = { 1, 2, 3, 4, 5, 1, 2, 7 }, lens[2] = { 4, 3 }, labels[2] = { 0, 2 }, s, same;
    float la, lz;
    memset(&ec, 0, sizeof ec);
    ec.n_layer = 2; ec.n_head = 2; ec.n_embd = 8; ec.n_ctx = 4; ec.vocab = 8; ec.n_class = 3;
    z = lm_encoder_new(&ec, 9);
    ec.dropout = 0.5f;
    a = lm_encoder_new(&ec, 9);
    b = lm_encoder_new(&ec, 9);
    CHECK(a && b && z, "encoder dropout: new");
    if (!a || !b || !z) { lm_encoder_free(a); lm_encoder_free(b); lm_encoder_free(z); return; }
    la = lm_encoder_cls_loss(a, tok, lens, labels, 2, 4);
    lz = lm_encoder_cls_loss(z, tok, lens, labels, 2, 4);
    CHECK(la == lz, "encoder dropout: the loss alone does not drop");
    la = lm_encoder_cls_train_step(a, &o, tok, lens, labels, 2, 4, 0);
    lz = lm_encoder_cls_train_step(z, &o, tok, lens, labels, 2, 4, 0);
    CHECK(la == la && lz == lz && la != lz, "encoder dropout: a training step drops (its loss differs)");
    for (s = 0; s < 3; s++) {
        lm_encoder_cls_train_step(b, &o, tok, lens, labels, 2, 4, s);
        if (s < 2) lm_encoder_cls_train_step(a, &o, tok, lens, labels, 2, 4, s + 1);
    }
    same = !memcmp(a->params.data, b->params.data, a->params.total * sizeof(float));
    CHECK(same, "encoder dropout: same seed and steps, bit-identical weights");
    lm_encoder_free(a); lm_encoder_free(b); lm_encoder_free(z);
    ec.dropout = 1.0f;
    a = lm_encoder_new(&ec, 9);
    CHECK(!a && strstr(lm_error(), "dropout"), "encoder dropout: a rate of 1 is refused with a message");
    lm_encoder_free(a);
}

/* Each op's forward (and for layernorm and attention, backward) against the plain scalar
   reference that sits beside it in lm.h (lm__ref_*), through the graph, on the SIMD
   kernels. */
static void test_core_references(void) {
    enum { M = 5, K = 37, N = 19, R = 6, V = 300, C = 40 };
    static float a[M * K], b[K * N], bt[N * K], x[R * V], w[C], bias[C], dy[R * C];
    static double want[R * V], dx[C], dw[C], db[C];
    static const int tg[R] = { 3, 299, -1, 0, 150, 7 };
    lm_arena ar;
    lm_graph g;
    lm_tensor *A, *B, *X, *Y, *W, *Bs, *D;
    int sa[2] = { M, K }, sb[2] = { K, N }, sbt[2] = { N, K }, sx[2] = { R, V }, sc[1] = { C };
    int sl[2] = { R, C }, i, j, tb;
    double e, worst;
    lm_rng r = lm_rng_seed(31);
    char what[160];
    for (i = 0; i < M * K; i++) a[i] = 2 * lm_rng_uniform(&r) - 1;
    for (i = 0; i < K * N; i++) b[i] = 2 * lm_rng_uniform(&r) - 1;
    for (i = 0; i < N; i++) for (j = 0; j < K; j++) bt[i * K + j] = b[j * N + i];
    for (i = 0; i < R * V; i++) x[i] = 8 * lm_rng_uniform(&r) - 4;
    for (i = 0; i < C; i++) { w[i] = 0.5f + lm_rng_uniform(&r); bias[i] = lm_rng_uniform(&r) - 0.5f; }
    for (i = 0; i < R * C; i++) dy[i] = 2 * lm_rng_uniform(&r) - 1;
    lm_arena_init_buffer(&ar, t_arena_buf, sizeof t_arena_buf);
    for (tb = 0; tb < 2; tb++) {
        lm_graph_init(&g, &ar);
        A = lm_tensor_wrap(&g, a, 2, sa, 0);
        B = tb ? lm_tensor_wrap(&g, bt, 2, sbt, 0) : lm_tensor_wrap(&g, b, 2, sb, 0);
        Y = lm_matmul(&g, A, B, tb);
        lm__ref_matmul(a, tb ? bt : b, want, M, K, N, tb);
        for (worst = 0, i = 0; Y && i < M * N; i++) if ((e = fabs(Y->data[i] - want[i])) > worst) worst = e;
        snprintf(what, sizeof what, "reference: matmul%s (5x37 by 37x19) as lm__ref_matmul, worst %.2g", tb ? " (b^T)" : "", worst);
        CHECK(Y && worst < 1e-5, what);
    }
    for (j = 0; j < 2; j++) {
        lm_graph_init(&g, &ar);
        X = lm_tensor_wrap(&g, x, 2, sx, 0);
        Y = j ? lm_log_softmax(&g, X) : lm_softmax(&g, X);
        for (worst = 0, i = 0; i < R; i++) {
            int k;
            lm__ref_softmax(x + i * V, want, V, j);
            for (k = 0; Y && k < V; k++) if ((e = fabs(Y->data[i * V + k] - want[k])) > worst) worst = e;
        }
        snprintf(what, sizeof what, "reference: %s over 300 as lm__ref_softmax, worst %.2g", j ? "log_softmax" : "softmax", worst);
        CHECK(Y && worst < 2e-6, what);
    }
    lm_graph_init(&g, &ar);
    Y = lm_cross_entropy(&g, lm_tensor_wrap(&g, x, 2, sx, 0), tg, -1);
    e = Y ? fabs(Y->data[0] - lm__ref_cross_entropy(x, tg, R, V, -1)) : 1;
    snprintf(what, sizeof what, "reference: cross_entropy (one row ignored) as lm__ref_cross_entropy, error %.2g", e);
    CHECK(e < 2e-6, what);
    for (j = 0; j < 4; j++) {
        double (*ref)(double) = j == 0 ? lm__ref_gelu : j == 1 ? lm__ref_sigmoid : j == 2 ? tanh : lm__ref_gelu_erf;
        lm_graph_init(&g, &ar);
        X = lm_tensor_wrap(&g, x, 2, sx, 0);
        Y = j == 0 ? lm_gelu(&g, X) : j == 1 ? lm_sigmoid(&g, X) : j == 2 ? lm_tanh(&g, X) : lm_gelu_erf(&g, X);
        for (worst = 0, i = 0; Y && i < R * V; i++)
            if ((e = fabs(Y->data[i] - ref(x[i])) / (1e-3 + fabs(ref(x[i])))) > worst) worst = e;
        snprintf(what, sizeof what, "reference: %s as its plain formula, worst relative %.2g",
                 j == 0 ? "gelu" : j == 1 ? "sigmoid" : j == 2 ? "tanh" : "gelu_erf", worst);
        CHECK(Y && worst < 2e-6, what);
    }
    /* layernorm: forward, and every gradient, against lm__ref_layernorm row by row */
    lm_graph_init(&g, &ar);
    X = lm_tensor_wrap(&g, x, 2, sl, 1);       /* the first R*C values of x, as (R, C) */
    W = lm_tensor_wrap(&g, w, 1, sc, 1);
    Bs = lm_tensor_wrap(&g, bias, 1, sc, 1);
    Y = lm_layernorm(&g, X, W, Bs, 1e-5f);
    D = Y ? lm_tensor_wrap(&g, dy, 2, sl, 0) : NULL;
    if (!Y || !D || lm_backward(&g, lm_sum(&g, lm_mul(&g, Y, D))) != LM_OK) { CHECK(0, "reference: layernorm runs"); return; }
    {
        double gw[C] = { 0 }, gb[C] = { 0 }, ey = 0, ex = 0, ewb = 0;
        for (i = 0; i < R; i++) {
            lm__ref_layernorm(x + i * C, w, bias, dy + i * C, C, 1e-5, want, dx, dw, db);
            for (j = 0; j < C; j++) {
                if ((e = fabs(Y->data[i * C + j] - want[j])) > ey) ey = e;
                if ((e = fabs(X->grad[i * C + j] - dx[j])) > ex) ex = e;
                gw[j] += dw[j]; gb[j] += db[j];
            }
        }
        for (j = 0; j < C; j++) {
            if ((e = fabs(W->grad[j] - gw[j])) > ewb) ewb = e;
            if ((e = fabs(Bs->grad[j] - gb[j])) > ewb) ewb = e;
        }
        snprintf(what, sizeof what, "reference: layernorm y, dx, dw, db as lm__ref_layernorm (worst %.2g %.2g %.2g)", ey, ex, ewb);
        CHECK(ey < 2e-6 && ex < 1e-5 && ewb < 1e-5, what);
    }
}

/* The plain AdamW formula in double, against lm_adamw_step over five steps. */
static void test_core_adamw_reference(void) {
    lm_gpt *m = t_tiny_gpt(1, 2, 8, 4, 11, 3);
    lm_train_opts o = lm_train_defaults();
    lm_rng r = lm_rng_seed(5);
    double *w, *mm, *vv, worst = 0;
    size_t i, n;
    int t, k;
    char what[160];
    if (!m) { CHECK(0, "adamw reference: model"); return; }
    n = m->params.total;
    w = (double *)calloc(n, sizeof *w); mm = (double *)calloc(n, sizeof *mm); vv = (double *)calloc(n, sizeof *vv);
    for (i = 0; i < n; i++) w[i] = m->params.data[i];
    o.lr = 0.01f;
    for (t = 1; t <= 5; t++) {
        for (i = 0; i < n; i++) m->params.grad[i] = 0.1f * lm_rng_normal(&r);
        lm_adamw_step(&m->params, &o, o.lr);
        for (k = 0; k < m->params.n; k++) {
            lm_tensor *te = &m->params.t[k];
            size_t off = (size_t)(te->data - m->params.data);
            for (i = 0; i < (size_t)te->size; i++)
                lm__ref_adamw(&w[off + i], &mm[off + i], &vv[off + i], te->grad[i], o.lr,
                              te->ndim >= 2 ? o.wd : 0, o.beta1, o.beta2, o.eps, t);
        }
    }
    for (k = 0; k < m->params.n; k++) {
        lm_tensor *te = &m->params.t[k];
        size_t off = (size_t)(te->data - m->params.data);
        for (i = 0; i < (size_t)te->size; i++)
            if (fabs(te->data[i] - w[off + i]) > worst) worst = fabs(te->data[i] - w[off + i]);
    }
    snprintf(what, sizeof what, "reference: 5 AdamW steps as lm__ref_adamw (decay on matrices only), worst %.2g", worst);
    CHECK(worst < 1e-6, what);
    free(w); free(mm); free(vv);
    lm_gpt_free(m);
}

/* A training step in parts (zero_grad, backward, update) is the training step; the
   training options are checked; the version is the header's. */
static void test_gpt_step_parts(void) {
    lm_gpt *a = t_tiny_gpt(2, 2, 16, 8, 30, 4), *b = t_tiny_gpt(2, 2, 16, 8, 30, 4);
    lm_train_opts o = lm_train_defaults(), zero;
    int in[16], tg[16], i, s, same = 1;
    float la = 0, lb = 0;
    lm_rng r = lm_rng_seed(9);
    if (!a || !b) { CHECK(0, "step parts: models"); return; }
    o.lr = 3e-3f; o.warmup = 2; o.steps = 10;
    for (s = 0; s < 4; s++) {
        for (i = 0; i < 16; i++) { in[i] = (int)lm_rng_below(&r, 30); tg[i] = (int)lm_rng_below(&r, 30); }
        la = lm_gpt_train_step(a, &o, in, tg, 2, 8, s);
        lm_params_zero_grad(&b->params);
        lb = lm_gpt_backward(b, in, tg, 2, 8);
        if (lm_params_update(&b->params, &o, s) != LM_OK) same = 0;
        if (la != lb) same = 0;
    }
    same = same && !memcmp(a->params.data, b->params.data, a->params.total * sizeof(float));
    CHECK(same, "gpt: zero_grad + backward + lm_params_update is lm_gpt_train_step, bit for bit");
    memset(&zero, 0, sizeof zero);
    memcpy(b->params.data, a->params.data, a->params.total * sizeof(float));
    lb = lm_gpt_train_step(b, &zero, in, tg, 2, 8, 0);
    CHECK(lb != lb && strstr(lm_error(), "lm_train_defaults") && !memcmp(a->params.data, b->params.data, a->params.total * sizeof(float)),
          "gpt: a zeroed lm_train_opts is refused, naming lm_train_defaults, weights untouched");
    la = lm_gpt_train_step(a, NULL, in, tg, 2, 8, 0);
    CHECK(la == la, "gpt: NULL training options mean the defaults");
    o.beta2 = 1.5f;
    CHECK(lm_params_update(&a->params, &o, 0) == LM_ERR_ARG && strstr(lm_error(), "betas"),
          "gpt: training options out of range are refused");
    {
        size_t k, nz = 0;
        lm_params_reset_optimizer(&a->params);
        for (k = 0; k < a->params.total; k++) nz += a->params.m[k] != 0 || a->params.v[k] != 0;
        CHECK(nz == 0 && a->params.step == 0, "lm_params_reset_optimizer: moments and step count back to 0");
    }
    CHECK(!strcmp(lm_version(), LM_VERSION_STRING) && LM_VERSION_MAJOR == 0 && LM_VERSION_MINOR >= 1,
          "lm_version() is LM_VERSION_STRING");
    lm_gpt_free(a);
    lm_gpt_free(b);
}

/* Gradient accumulation: A micro-batches added in order. The order is the contract that
   lets processes share the work (lm-mpi), so the test plays that: the micro-batches'
   gradients computed apart, then summed in pieces of odd sizes by "ranks" that each add
   their own into the running sum - with the arguments swapped for one - on 2 threads;
   the weights must equal those of backward adding into the gradients on 1 thread (the
   loop of the docs), bit for bit. */
static void test_gpt_accum(void) {
    enum { A = 3, B = 2, T = 8, V = 30, S = 3 };
    lm_gpt *a = t_tiny_gpt(2, 2, 16, T, V, 4), *b = t_tiny_gpt(2, 2, 16, T, V, 4);
    lm_gpt *c = t_tiny_gpt(2, 2, 16, T, V, 4);
    lm_train_opts o = lm_train_defaults();
    int in[A * B * T], tg[A * B * T], i, j, s, same = 1;
    lm_rng r = lm_rng_seed(21);
    size_t n = a->params.total, off, piece;
    float *sum = (float *)malloc(n * sizeof(float)), *g[A], la = 0, lb;
    double worst = 0, scale = 0;
    for (j = 0; j < A; j++) g[j] = (float *)malloc(n * sizeof(float));
    o.lr = 3e-3f; o.warmup = 1; o.steps = 10;
    for (s = 0; s < S; s++) {
        for (i = 0; i < A * B * T; i++) { in[i] = (int)lm_rng_below(&r, V); tg[i] = (int)lm_rng_below(&r, V); }
        lm_set_threads(1);                           /* a: the loop of the docs */
        lm_params_zero_grad(&a->params);
        for (j = 0; j < A; j++) lm_gpt_backward(a, in + j * B * T, tg + j * B * T, B, T);
        if (lm_params_update_mean(&a->params, A, &o, s) != LM_OK) same = 0;
        lm_set_threads(2);                           /* b: three "ranks" and a chain */
        for (j = 0; j < A; j++) {
            lm_params_zero_grad(&b->params);
            lm_gpt_backward(b, in + j * B * T, tg + j * B * T, B, T);
            memcpy(g[j], b->params.grad, n * sizeof(float));
        }
        piece = 1000 + 77 * (size_t)s;
        for (off = 0; off < n; off += piece) {
            size_t len = n - off < piece ? n - off : piece;
            memset(sum + off, 0, len * sizeof(float));
            lm_grad_accumulate(sum + off, g[0] + off, len);                    /* rank 0 */
            lm_grad_accumulate(g[1] + off, sum + off, len);                    /* rank 1: g1 + x */
            memcpy(b->params.grad + off, g[1] + off, len * sizeof(float));     /* rank 2: */
            lm_grad_accumulate(b->params.grad + off, g[2] + off, len);         /*   x + g2 */
        }
        if (lm_params_update_mean(&b->params, A, &o, s) != LM_OK) same = 0;
    }
    lm_set_threads(1);
    CHECK(same && !memcmp(a->params.data, b->params.data, n * sizeof(float)) &&
          !memcmp(a->params.m, b->params.m, n * sizeof(float)) && a->params.step == S,
          "accumulation: the sum's order fixes the bits (apart, in pieces, swapped adds, 2 threads)");
    /* the step's gradient is the mean over all A*B rows: as one batch of A*B rows, to
       rounding (no clipping, so the update leaves the mean in grad) */
    o.clip = 0;
    memcpy(c->params.data, a->params.data, n * sizeof(float));
    lm_params_zero_grad(&c->params);
    lb = lm_gpt_backward(c, in, tg, A * B, T);
    lm_params_zero_grad(&a->params);
    for (j = 0; j < A; j++) la += lm_gpt_backward(a, in + j * B * T, tg + j * B * T, B, T);
    lm_params_update_mean(&a->params, A, &o, S);
    for (off = 0; off < n; off++) {
        double d = fabs((double)a->params.grad[off] - c->params.grad[off]);
        if (d > worst) worst = d;
        if (fabs(c->params.grad[off]) > scale) scale = fabs(c->params.grad[off]);
    }
    CHECK(worst <= 1e-5 * scale && scale > 0, "accumulation: the gradient is the mean over all A*B rows");
    CHECK_NEAR(la / A, lb, 1e-5, "accumulation: the mean of the micro-batch losses is the big batch's loss");
    /* A = 1: the same bits as lm_gpt_train_step */
    memcpy(b->params.data, c->params.data, n * sizeof(float));
    lm_params_reset_optimizer(&b->params);
    lm_params_reset_optimizer(&c->params);
    o.clip = 1;
    for (s = 0; s < S; s++) {
        lm_gpt_train_step(c, &o, in, tg, B, T, s);
        lm_params_zero_grad(&b->params);
        lm_gpt_backward(b, in, tg, B, T);
        lm_params_update_mean(&b->params, 1, &o, s);
    }
    CHECK(!memcmp(b->params.data, c->params.data, n * sizeof(float)),
          "accumulation: A = 1 is lm_gpt_train_step, bit for bit");
    memcpy(sum, b->params.data, n * sizeof(float));
    CHECK(lm_params_update_mean(&b->params, 0, &o, 0) == LM_ERR_ARG && strstr(lm_error(), "from 1") &&
          !memcmp(sum, b->params.data, n * sizeof(float)),
          "accumulation: A < 1 is refused, the weights untouched");
    for (j = 0; j < A; j++) free(g[j]);
    free(sum);
    lm_gpt_free(a);
    lm_gpt_free(b);
    lm_gpt_free(c);
}

/* lm_gpt_eval in parts (groups of 8 windows, shared out as processes would) gives
   lm_gpt_eval's result bit for bit. */
static void test_gpt_eval_parts(void) {
    lm_gpt *m = t_tiny_gpt(1, 2, 16, 8, 40, 6);
    int tok[300], i, k, ok = 1;
    float loss[8];
    long ng;
    for (i = 0; i < 300; i++) tok[i] = (i * 13 + i / 7) % 40;
    ng = lm_gpt_eval_groups(m, tok, 300, 8, 0, 0, NULL);  /* 37 windows: groups of 8, 8, 8, 8, 5 */
    CHECK(ng == 5, "eval parts: the number of groups");
    for (k = 1; k <= 3; k++) {        /* k "processes", each a contiguous run of groups */
        int p;
        float got, want = lm_gpt_eval(m, tok, 300, 8);
        for (p = 0; p < k; p++) {
            long g0 = ng * p / k, g1 = ng * (p + 1) / k;
            if (lm_gpt_eval_groups(m, tok, 300, 8, g0, g1, loss + g0) != ng) ok = 0;
        }
        got = lm_gpt_eval_mean(loss, 300, 8);
        if (memcmp(&got, &want, sizeof got) || got != got) ok = 0;
    }
    CHECK(ok, "eval parts: split over 1, 2, 3 processes equals lm_gpt_eval, bit for bit");
    CHECK(lm_gpt_eval_groups(m, tok, 300, 8, 2, 6, loss) == LM_ERR_ARG &&
          lm_gpt_eval_groups(m, tok, 300, 9, 0, 0, NULL) == LM_ERR_ARG &&
          lm_gpt_eval_mean(loss, 5, 8) != lm_gpt_eval_mean(loss, 5, 8),
          "eval parts: groups out of range, T > n_ctx and too few tokens are errors");
    lm_gpt_free(m);
}

/* lm_gpt_from_memory: a model over weights in place (as lm2c writes them) and one
   buffer, which generates exactly as the model it came from and cannot train. */
#define T_FM_L 2
#define T_FM_H 2
#define T_FM_C 16
#define T_FM_T 12
#define T_FM_V 40
static unsigned char t_fm_buf[LM_GPT_MEMORY_BYTES(T_FM_L, T_FM_H, T_FM_C, T_FM_T, T_FM_V)];
/* m (over memory) against the model it was made from: step_token logits over a whole
   context bit for bit, and a sampled generation that slides the window. */
static int t_fm_same(lm_gpt *ref, lm_gpt *m) {
    float la[T_FM_V], lb[T_FM_V];
    int i, same = 1, prompt[3] = { 1, 2, 3 }, oa[20], ob[20];
    lm_sampler sa = lm_sampler_defaults(1), sb = lm_sampler_defaults(1);
    lm_gpt_reset_cache(ref);
    lm_gpt_reset_cache(m);
    for (i = 0; i < T_FM_T; i++) {
        lm_gpt_step_token(ref, i % T_FM_V, la);
        lm_gpt_step_token(m, i % T_FM_V, lb);
        if (memcmp(la, lb, sizeof la)) same = 0;
    }
    sa.temperature = sb.temperature = 0.9f;
    lm_gpt_generate(ref, prompt, 3, 20, &sa, NULL, NULL, oa);
    if (lm_gpt_generate(m, prompt, 3, 20, &sb, NULL, NULL, ob) != LM_OK || memcmp(oa, ob, sizeof oa)) same = 0;
    return same;
}

static void test_gpt_from_memory(void) {
    lm_gpt *ref = t_tiny_gpt(T_FM_L, T_FM_H, T_FM_C, T_FM_T, T_FM_V, 17), *m;
    float *flat;
    size_t off = 0;
    int k, i, prompt[3] = { 1, 2, 3 }, tg[4] = { 1, 2, 3, 4 };
    lm_rng r = lm_rng_seed(2);
    if (!ref) { CHECK(0, "from_memory: model"); return; }
    for (i = 0; i < (int)ref->params.total; i++) ref->params.data[i] += 0.1f * lm_rng_normal(&r);
    flat = (float *)malloc(ref->params.total * sizeof(float));
    for (k = 0; k < ref->params.n; k++) {       /* checkpoint order, no padding: as lm2c */
        memcpy(flat + off, ref->params.t[k].data, (size_t)ref->params.t[k].size * sizeof(float));
        off += (size_t)ref->params.t[k].size;
    }
    m = lm_gpt_from_memory(&ref->cfg, flat, t_fm_buf, sizeof t_fm_buf);
    CHECK(m && m->params.n == ref->params.n && !strcmp(m->params.names[5], ref->params.names[5]),
          "from_memory: the model is laid out as lm_gpt_new's");
    if (!m) { free(flat); lm_gpt_free(ref); return; }
    CHECK(t_fm_same(ref, m), "from_memory: step_token logits equal the original model's, bit for "
          "bit, and lm_gpt_generate (window sliding) gives the same tokens");
    CHECK(lm_gpt_train_step(m, NULL, prompt, tg, 1, 3, 0) != lm_gpt_train_step(m, NULL, prompt, tg, 1, 3, 0) &&
          strstr(lm_error(), "cannot train"), "from_memory: training is refused with a message");
    CHECK(lm_gpt_from_memory(&ref->cfg, flat, t_fm_buf,
                             LM_GPT_MEMORY_BYTES_STEP(T_FM_L, T_FM_C, T_FM_T, T_FM_V) - 1) == NULL &&
          strstr(lm_error(), "buffer"), "from_memory: a buffer too small is refused");
    {
        lm_gpt_config c = ref->cfg;
        c.n_head = 0;
        CHECK(lm_gpt_from_memory(&c, flat, t_fm_buf, sizeof t_fm_buf) == NULL,
              "from_memory: an incomplete config is refused (no defaults for a model in flash)");
    }
    CHECK(lm_gpt_memory(&ref->cfg, 4, 12) > 16.0 * ref->params.total &&
          lm_gpt_memory(&ref->cfg, 0, 0) > 16.0 * ref->params.total &&
          lm_gpt_memory(&ref->cfg, 4, 12) > lm_gpt_memory(&ref->cfg, 0, 0),
          "lm_gpt_memory: counts the parameters four times over, plus a step");
    free(flat);
    lm_gpt_free(ref);
}

/* A step that does not fit the work arena is retried in a bigger one (lm__fit). A retry
   must not count the gradients of the failed attempt: a model whose small arena (sized
   by a loss-only call) forces retries trains exactly as one that never retried. */
static void test_gpt_retry_clean(void) {
    lm_gpt *a = t_tiny_gpt(2, 2, 24, 16, 256, 6), *b = t_tiny_gpt(2, 2, 24, 16, 256, 6);
    lm_train_opts o = lm_train_defaults();
    int in[4 * 16], tg[4 * 16], i, s;
    size_t cap0;
    lm_rng r = lm_rng_seed(10);
    if (!a || !b) { CHECK(0, "retry: models"); return; }
    for (i = 0; i < 64; i++) { in[i] = (int)lm_rng_below(&r, 256); tg[i] = (int)lm_rng_below(&r, 256); }
    lm_arena_init(&a->work, 64 << 20);                /* a: room enough from the start  */
    lm_gpt_loss(b, in, tg, 1, 2);                     /* b: an arena sized for a tiny loss */
    cap0 = b->work.cap;
    for (s = 0; s < 3; s++) {
        lm_gpt_train_step(a, &o, in, tg, 4, 16, s);
        lm_gpt_train_step(b, &o, in, tg, 4, 16, s);
    }
    CHECK(b->work.cap > cap0 && !memcmp(a->params.data, b->params.data, a->params.total * sizeof(float)),
          "gpt: a step retried in a bigger work arena trains exactly as one that fit at once");
    lm_gpt_free(a);
    lm_gpt_free(b);
}

static void run_core_tests(void) {
    test_core_arena();
    test_core_rng();
    test_core_forward_values();
    test_core_references();
    test_core_graph_reuse();
    test_core_gradients();
    test_core_gradients_fresh();
    test_linear_then();
    test_attention_long();
    test_cross_attention_long();
    test_core_optim();
    test_core_adamw_reference();
    test_gpt_init();
    test_gpt_step_parts();
    test_gpt_accum();
    test_gpt_eval_parts();
    test_gpt_retry_clean();
    test_gpt_from_memory();
    test_gpt_gradcheck();
    test_gpt_overfit();
    test_gpt_kv_cache();
    test_gpt_eval_data();
    test_gpt_threads();
    test_gpt_arena_retry();
    test_sample_rule();
    test_encoder();
    test_encoder_dropout();
    test_encoder_learns();
    test_s2s_model();
    test_s2s_decode();
    test_s2s_learns();
    test_s2s_checkpoint();
    test_metrics();
}
/* GEMM tests: lm_gemm and lm_gemm_scalar against a naive triple loop in double precision,
   over every size 1..67 in each dimension, all four transpose combinations, odd strides,
   offset base pointers, the alpha/beta cases, and bit-identical results across thread
   counts.

   Tolerance: an element passes when |got - want| <= 1e-6 * (K + 8) * scale, where scale is
   |alpha| * sum_k |a_ik * b_kj| + |beta * c_ij|, the magnitude the rounding errors of a
   float sum are proportional to. Worst-case float summation error is about K * 6e-8 of
   that scale, so this is ~16x slack; a wrong index or a lost block is off by O(scale). */

typedef int (*lm_t_gemm_fn)(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                            int lda, const float *B, int ldb, float beta, float *C, int ldc);

static void lm_t_gemm_fill(float *x, size_t n, lm_rng *r) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = 2.0f * lm_rng_uniform(r) - 1.0f;
}

/* One case. lda/ldb/ldc = the minimum + pad; the arrays start off + 1 float into their
   allocation when off is set (so not 16-byte aligned). C is pre-filled with NaN when
   beta == 0 (it must not be read), and the padding of C's rows holds a sentinel that
   must survive. Returns the worst error as a multiple of the tolerance (> 1 fails), or
   1e30 when the padding was written. */
static double lm_t_gemm_case(lm_t_gemm_fn fn, int ta, int tb, int M, int N, int K,
                             float alpha, float beta, int pad, int off, uint64_t seed) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    int arows = ta ? K : M, brows = tb ? N : K;
    size_t na = (size_t)arows * lda + 1, nb = (size_t)brows * ldb + 1, nc = (size_t)M * ldc + 1;
    float *Ab = (float *)malloc(na * sizeof(float)), *Bb = (float *)malloc(nb * sizeof(float));
    float *Cb = (float *)malloc(nc * sizeof(float)), *C0 = (float *)malloc(nc * sizeof(float));
    float *A = Ab + off, *B = Bb + off, *C = Cb + off;
    lm_rng r = lm_rng_seed(seed);
    double worst = 0;
    int i, j, k;
    if (!Ab || !Bb || !Cb || !C0) { free(Ab); free(Bb); free(Cb); free(C0); return 1e30; }
    lm_t_gemm_fill(Ab, na, &r);
    lm_t_gemm_fill(Bb, nb, &r);
    lm_t_gemm_fill(Cb, nc, &r);
    for (i = 0; i < M; i++)
        for (j = N; j < ldc; j++) C[(size_t)i * ldc + j] = 12345.0f;       /* sentinel */
    if (beta == 0.0f)
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) C[(size_t)i * ldc + j] = (float)NAN;
    memcpy(C0, Cb, nc * sizeof(float));
    fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    for (i = 0; i < M; i++) {
        for (j = 0; j < N; j++) {
            double s = 0, mag = 0, want, got = C[(size_t)i * ldc + j], c0;
            for (k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            c0 = beta == 0.0f ? 0.0 : C0[off + (size_t)i * ldc + j];
            want = alpha * s + beta * c0;
            mag = fabs(alpha) * mag + fabs(beta * c0) + 1e-30;
            s = fabs(got - want) / (1e-6 * (K + 8) * mag);
            if (!(s <= worst)) worst = s;          /* NaN counts as the worst */
            if (worst != worst) worst = 1e30;
        }
        for (j = N; j < ldc; j++)
            if (C[(size_t)i * ldc + j] != 12345.0f) worst = 1e30;
    }
    free(Ab); free(Bb); free(Cb); free(C0);
    return worst;
}

/* Run one case for both entry points and all four transposes; track the worst. */
static void lm_t_gemm_all(int M, int N, int K, float alpha, float beta, int pad, int off,
                          double *worst, int *wm, int *wn, int *wk) {
    int f, t;
    for (f = 0; f < 2; f++)
        for (t = 0; t < 4; t++) {
            uint64_t seed = (uint64_t)(M * 10007 + N * 101 + K + t);
            double e = lm_t_gemm_case(f ? lm_gemm_scalar : lm_gemm, t & 1, t >> 1, M, N, K,
                                      alpha, beta, pad, off, seed);
            if (e > *worst) { *worst = e; *wm = M; *wn = N; *wk = K; }
        }
}

static void lm_t_gemm_report(const char *what, double worst, int m, int n, int k) {
    if (worst > 1) printf("  gemm %s: worst error %g x tolerance at M=%d N=%d K=%d\n",
                          what, worst, m, n, k);
}

/* All (M, N, K) in 1..9: every edge shape of every micro-kernel. */
static void test_gemm_small_exhaustive(void) {
    double worst = 0; int wm = 0, wn = 0, wk = 0, M, N, K;
    for (M = 1; M <= 9; M++)
        for (N = 1; N <= 9; N++)
            for (K = 1; K <= 9; K++)
                lm_t_gemm_all(M, N, K, 1.0f, 0.0f, 0, 0, &worst, &wm, &wn, &wk);
    lm_t_gemm_report("1..9 exhaustive", worst, wm, wn, wk);
    CHECK(worst <= 1, "gemm: all M, N, K in 1..9, 4 transposes, simd and scalar");
}

/* Every value 1..67 for each of M, N, K: i -> (i, 7i mod 67 + 1, 13i mod 67 + 1) hits
   every value once per dimension since 7 and 13 are prime to 67. */
static void test_gemm_sizes_1_67(void) {
    double worst = 0; int wm = 0, wn = 0, wk = 0, i;
    for (i = 1; i <= 67; i++)
        lm_t_gemm_all(i, (7 * i) % 67 + 1, (13 * i) % 67 + 1, 1.0f, 0.0f, 0, 0,
                      &worst, &wm, &wn, &wk);
    lm_t_gemm_report("sizes 1..67", worst, wm, wn, wk);
    CHECK(worst <= 1, "gemm: every size 1..67 in M, N and K, 4 transposes, simd and scalar");
}

/* Shapes that cross tile widths and K blocks (of every ISA), with odd edges. */
static void test_gemm_large(void) {
    static const int shapes[][3] = {
        {257, 131, 299}, {300, 300, 300}, {1, 300, 257}, {300, 1, 200}, {64, 777, 50},
        {129, 65, 385}, {33, 520, 130}, {200, 97, 800}
    };
    double worst = 0; int wm = 0, wn = 0, wk = 0;
    size_t s;
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        lm_t_gemm_all(shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 0, 0,
                      &worst, &wm, &wn, &wk);
    lm_t_gemm_report("large shapes", worst, wm, wn, wk);
    CHECK(worst <= 1, "gemm: shapes up to 300 (257x131x299 ...), 4 transposes, simd and scalar");
}

/* alpha / beta, odd strides and offset pointers. K = 300 takes several K blocks on the
   portable path, so beta must be applied once, by the first block only. */
static void test_gemm_alpha_beta_strides(void) {
    static const float ab[][2] = { {1.0f, 0.0f}, {0.5f, 1.0f}, {-1.5f, 0.25f}, {2.0f, -1.0f} };
    static const int shapes[][3] = { {37, 45, 29}, {70, 53, 300}, {5, 3, 2}, {3, 70, 300},
                                     {1, 600, 40} };
    double worst = 0; int wm = 0, wn = 0, wk = 0;
    size_t a, s;
    int pad;
    for (a = 0; a < sizeof ab / sizeof ab[0]; a++)
        for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (pad = 0; pad <= 3; pad += 3)
                lm_t_gemm_all(shapes[s][0], shapes[s][1], shapes[s][2], ab[a][0], ab[a][1],
                              pad, pad ? 1 : 0, &worst, &wm, &wn, &wk);
    lm_t_gemm_report("alpha/beta/strides", worst, wm, wn, wk);
    CHECK(worst <= 1, "gemm: alpha/beta (beta 0 over NaN C), odd ld, offset pointers");
}

/* alpha == 0 or K == 0: C = beta * C, and neither A nor B is read (NaN in them is harmless). */
static void test_gemm_degenerate(void) {
    float A[6], B[6], C[6], C2[6];
    int i, bad = 0;
    for (i = 0; i < 6; i++) {
        A[i] = B[i] = C2[i] = (float)NAN;
        C[i] = (float)i;
    }
    lm_gemm(0, 0, 2, 3, 2, 0.0f, A, 2, B, 3, 0.5f, C, 3);
    for (i = 0; i < 6; i++) bad += C[i] != 0.5f * (float)i;
    lm_gemm(0, 0, 2, 3, 2, 0.0f, A, 2, B, 3, 0.0f, C2, 3);
    for (i = 0; i < 6; i++) bad += C2[i] != 0.0f;
    for (i = 0; i < 6; i++) C[i] = (float)i;
    lm_gemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 2.0f, C, 3);
    for (i = 0; i < 6; i++) bad += C[i] != 2.0f * (float)i;
    lm_gemm(0, 0, 0, 3, 2, 1.0f, A, 2, B, 3, 0.0f, NULL, 3);   /* M == 0: nothing to do */
    lm_gemm_scalar(1, 1, 2, 3, 2, 0.0f, A, 2, B, 2, 0.0f, C2, 3);
    for (i = 0; i < 6; i++) bad += C2[i] != 0.0f;
    CHECK(bad == 0, "gemm: alpha 0 / K 0 give beta*C without reading A or B");
}

/* Bad arguments record an error and leave C alone. */
static void test_gemm_bad_args(void) {
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 2, 3, 4}, C[4] = {7, 7, 7, 7};
    int i, bad = 0;
    lm_clear_error();
    lm_gemm(0, 0, -1, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    CHECK(strstr(lm_error(), "gemm") != NULL, "gemm: negative M is an error");
    lm_clear_error();
    lm_gemm(0, 0, 2, 2, 2, 1.0f, A, 1, B, 2, 0.0f, C, 2);
    CHECK(strstr(lm_error(), "gemm") != NULL, "gemm: lda < K is an error");
    lm_clear_error();
    lm_gemm(0, 1, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 1);
    CHECK(strstr(lm_error(), "gemm") != NULL, "gemm: ldc < N is an error");
    for (i = 0; i < 4; i++) bad += C[i] != 7.0f;
    CHECK(bad == 0, "gemm: C untouched after bad arguments");
    lm_clear_error();
}

/* lm_gemm against lm_gemm_scalar directly, and 1, 2, 3 threads bit-identical on products
   big enough to be split across the pool (the tiled path, and the few-rows path). */
static void test_gemm_threads_shape(int M, int N, int K) {
    float *A = (float *)malloc((size_t)M * K * sizeof(float));
    float *B = (float *)malloc((size_t)N * K * sizeof(float));
    float *C1 = (float *)malloc((size_t)M * N * sizeof(float));
    float *C2 = (float *)malloc((size_t)M * N * sizeof(float));
    float *C3 = (float *)malloc((size_t)M * N * sizeof(float));
    float *Cs = (float *)malloc((size_t)M * N * sizeof(float));
    lm_rng r = lm_rng_seed(99);
    double worst = 0;
    size_t i;
    int t, same = 1;
    if (!A || !B || !C1 || !C2 || !C3 || !Cs) {
        CHECK(0, "gemm: test allocation");
        free(A); free(B); free(C1); free(C2); free(C3); free(Cs);
        return;
    }
    lm_t_gemm_fill(A, (size_t)M * K, &r);
    lm_t_gemm_fill(B, (size_t)N * K, &r);
    for (t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        int lda = ta ? M : K, ldb = tb ? K : N;
        lm_set_threads(1);
        lm_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C1, N);
        lm_set_threads(2);
        lm_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C2, N);
        lm_set_threads(3);
        lm_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C3, N);
        lm_gemm_scalar(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, Cs, N);
        lm_set_threads(1);
        if (memcmp(C1, C2, (size_t)M * N * sizeof(float)) ||
            memcmp(C1, C3, (size_t)M * N * sizeof(float))) same = 0;
        for (i = 0; i < (size_t)M * N; i++) {
            /* |C| ~ sqrt(K)/3; a relative 1e-6 * (K + 8) of a unit-size scale is plenty */
            double e = fabs((double)C1[i] - Cs[i]) / (1e-6 * (K + 8) * (fabs(Cs[i]) + 1.0));
            if (!(e <= worst)) worst = e != e ? 1e30 : e;
        }
    }
    if (worst > 1) printf("  gemm %dx%dx%d simd vs scalar: worst error %g x tolerance\n",
                          M, N, K, worst);
    if (!same) printf("  gemm %dx%dx%d: results differ between thread counts\n", M, N, K);
    CHECK(same, "gemm: 1, 2 and 3 threads give bit-identical C");
    CHECK(worst <= 1, "gemm: lm_gemm agrees with lm_gemm_scalar");
    free(A); free(B); free(C1); free(C2); free(C3); free(Cs);
}

static void test_gemm_threads(void) {
    test_gemm_threads_shape(300, 333, 290);
    test_gemm_threads_shape(3, 4000, 400);
}

/* lm_gemm called from inside pool tasks (as attention does, one product per head) with
   products big enough to want the pool themselves: every task's result must equal the
   same product computed alone. */
typedef struct { const float *A, *B; float *C; int M, N, K; } lm_t_gemm_nest;
static void lm_t_gemm_nest_task(void *ctx, int i) {
    const lm_t_gemm_nest *j = (const lm_t_gemm_nest *)ctx;
    lm_gemm(0, 0, j->M, j->N, j->K, 1.0f, j->A + (size_t)i * j->M * j->K, j->K, j->B, j->N,
            0.0f, j->C + (size_t)i * j->M * j->N, j->N);
}
static void test_gemm_nested(void) {
    const int T = 8, M = 100, N = 600, K = 80;    /* 4.8M multiply-adds, 3 tiles each */
    float *A = (float *)malloc((size_t)T * M * K * sizeof(float));
    float *B = (float *)malloc((size_t)K * N * sizeof(float));
    float *C = (float *)malloc((size_t)T * M * N * sizeof(float));
    float *R = (float *)malloc((size_t)M * N * sizeof(float));
    lm_t_gemm_nest j;
    lm_rng r = lm_rng_seed(5);
    int i, bad = 0;
    if (!A || !B || !C || !R) {
        CHECK(0, "gemm: test allocation");
        free(A); free(B); free(C); free(R);
        return;
    }
    lm_t_gemm_fill(A, (size_t)T * M * K, &r);
    lm_t_gemm_fill(B, (size_t)K * N, &r);
    j.A = A; j.B = B; j.C = C; j.M = M; j.N = N; j.K = K;
    lm_set_threads(2);
    lm_parallel_for(T, lm_t_gemm_nest_task, &j);
    for (i = 0; i < T; i++) {
        lm_gemm(0, 0, M, N, K, 1.0f, A + (size_t)i * M * K, K, B, N, 0.0f, R, N);
        bad += memcmp(R, C + (size_t)i * M * N, (size_t)M * N * sizeof(float)) != 0;
    }
    lm_set_threads(1);
    CHECK(bad == 0, "gemm: called from inside pool tasks, results as when called alone");
    free(A); free(B); free(C); free(R);
}

/* What the ops ask of the GEMM besides the product (lm__gemm_extra): a bias row, which
   must give the very bits of copying the bias into C and adding the product with beta = 1
   (what the linear op did before), and an epilogue called exactly once on every element
   of C, after its sum is complete. Sizes cross tiles, K blocks and the few-rows path. */
typedef struct { float *seen; const float *C; int bad, N; } t_gemm_post;
static void t_gemm_post_fn(void *ctx, float *c, size_t ldc, int i0, int j0, int m, int n) {
    t_gemm_post *p = (t_gemm_post *)ctx;
    int i, j;
    for (i = 0; i < m; i++)
        for (j = 0; j < n; j++) {
            if (c + i * ldc + j != p->C + (size_t)(i0 + i) * p->N + j0 + j) p->bad++;
            p->seen[(size_t)(i0 + i) * p->N + j0 + j] += 1.0f;
            c[i * ldc + j] *= 2.0f;
        }
}
static void test_gemm_extra(void) {
    static const int shapes[4][3] = { { 300, 333, 700 }, { 37, 45, 19 }, { 3, 500, 300 }, { 1, 65, 7 } };
    int s, th, bad = 0;
    for (th = 1; th <= 2; th++) {
        lm_set_threads(th);
        for (s = 0; s < 4; s++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], i;
            float *A = (float *)malloc((size_t)M * K * sizeof(float));
            float *B = (float *)malloc((size_t)K * N * sizeof(float));
            float *bias = (float *)malloc((size_t)N * sizeof(float));
            float *C1 = (float *)malloc((size_t)M * N * sizeof(float));
            float *C2 = (float *)malloc((size_t)M * N * sizeof(float));
            float *seen = (float *)calloc((size_t)M * N, sizeof(float));
            lm__gemm_extra ex;
            t_gemm_post pc;
            lm_rng r = lm_rng_seed(31 + (uint64_t)s);
            if (!A || !B || !bias || !C1 || !C2 || !seen) { bad++; goto next; }
            lm_t_gemm_fill(A, (size_t)M * K, &r);
            lm_t_gemm_fill(B, (size_t)K * N, &r);
            lm_t_gemm_fill(bias, (size_t)N, &r);
            for (i = 0; i < M; i++) memcpy(C1 + (size_t)i * N, bias, (size_t)N * sizeof(float));
            lm_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 1.0f, C1, N);
            for (i = 0; i < M * N; i++) C2[i] = (float)NAN;
            memset(&ex, 0, sizeof ex);
            ex.bias = bias;
            ex.post = t_gemm_post_fn;
            pc.seen = seen; pc.C = C2; pc.bad = 0; pc.N = N;
            ex.post_ctx = &pc;
            lm__gemm_ex(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N, &ex);
            for (i = 0; i < M * N; i++) if (C2[i] != 2.0f * C1[i] || seen[i] != 1.0f) bad++;
            bad += pc.bad;
        next:
            free(A); free(B); free(bias); free(C1); free(C2); free(seen);
        }
    }
    lm_set_threads(1);
    CHECK(bad == 0, "gemm: a bias row and an epilogue give the bits of the separate passes, every element once");
}

static void run_gemm_tests(void) {
    test_gemm_small_exhaustive();
    test_gemm_sizes_1_67();
    test_gemm_large();
    test_gemm_alpha_beta_strides();
    test_gemm_degenerate();
    test_gemm_bad_args();
    test_gemm_threads();
    test_gemm_nested();
    test_gemm_extra();
}
/* Tests: threads (lm.h, THREADS) - the library on small stacks, and concurrent callers.
   Both need POSIX threads; `make test-tsan` runs this group (LM_TEST_ONLY=threads) under
   ThreadSanitizer, and `make test-asan` runs it with the rest under AddressSanitizer. */
#if !defined(LM_NO_THREADS) && defined(T_POSIX)
#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

/* FNV-1a over the bits of n floats or ints: a fingerprint of what a caller computed. */
static uint64_t t_fp(uint64_t h, const void *p, size_t bytes) {
    const unsigned char *s = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < bytes; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* ---- small stacks ----------------------------------------------------------------------
   A thread of the program calls lm.h on a 64 KB stack of the test's own (or the smallest
   the C library allows, PTHREAD_STACK_MIN, where that is more: 128 KB on aarch64), with a guard page
   below it (PROT_NONE: running into it is a crash, not silent corruption; the suite is
   built with -fstack-clash-protection where the compiler has it, so no frame can jump the
   guard). The stack is painted first; afterwards the lowest byte that changed tells how
   deep the calls went. Each job's results must equal the same job run on the main thread. */
enum { T_STACK_TRAIN, T_STACK_GENERATE, T_STACK_GEMM, T_STACK_TOK, T_STACK_JOBS };
static const char *const t_stack_names[T_STACK_JOBS] = { "a training step", "generation",
                                                         "a GEMM", "BPE training and encoding" };
typedef struct { int job; uint64_t fp; const unsigned char *top; } t_stack_job;

static uint64_t t_stack_work(int job) {
    uint64_t h = 0xcbf29ce484222325ull;
    lm_rng r = lm_rng_seed(3);
    int i;
    if (job == T_STACK_TRAIN) {     /* the issue's case: 2 layers, 128 wide, batch 8 x 64 */
        static int in[8 * 64], tg[8 * 64];
        lm_gpt *m = t_tiny_gpt(2, 2, 128, 64, 256, 4);
        lm_train_opts o = lm_train_defaults();
        float loss;
        if (!m) return 0;
        for (i = 0; i < 8 * 64; i++) { in[i] = (int)lm_rng_below(&r, 256); tg[i] = (int)lm_rng_below(&r, 256); }
        loss = lm_gpt_train_step(m, &o, in, tg, 8, 64, 0);
        h = t_fp(h, &loss, sizeof loss);
        h = t_fp(h, m->params.data, m->params.total * sizeof(float));
        lm_gpt_free(m);
    } else if (job == T_STACK_GENERATE) {    /* prefill, KV-cache steps, a sliding window */
        int prompt[5] = { 1, 2, 3, 4, 5 }, out[40];
        lm_gpt *m = t_tiny_gpt(2, 2, 64, 32, 96, 6);
        lm_sampler s = lm_sampler_defaults(7);
        if (!m || lm_gpt_generate(m, prompt, 5, 40, &s, NULL, NULL, out) != LM_OK) { lm_gpt_free(m); return 0; }
        h = t_fp(h, out, sizeof out);
        lm_gpt_free(m);
    } else if (job == T_STACK_TOK) {   /* the tokenizer's biggest frames: train, encode */
        static char text[6000];
        static int ids[6000];
        lm_tokenizer *t;
        long n;
        for (i = 0; i < (int)sizeof text - 1; i++)
            text[i] = "the cat sat on the mat, 'twas 1999 \xc3\xa9t\xc3\xa9!\n"[lm_rng_below(&r, 38)];
        t = lm_tok_train(text, sizeof text - 1, 320);
        n = t ? lm_tok_encode(t, text, sizeof text - 1, ids, 6000) : -1;
        if (n > 0) h = t_fp(h, ids, (size_t)n * sizeof(int));
        lm_tok_free(t);
    } else {                        /* packed path, split into tiles; and the few-rows path */
        int M = 300, N = 333, K = 290;
        float *A = (float *)malloc((size_t)M * K * sizeof(float));
        float *B = (float *)malloc((size_t)K * N * sizeof(float));
        float *C = (float *)malloc((size_t)M * N * sizeof(float));
        if (A && B && C) {
            lm_t_gemm_fill(A, (size_t)M * K, &r);
            lm_t_gemm_fill(B, (size_t)K * N, &r);
            if (lm_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N) == LM_OK)
                h = t_fp(h, C, (size_t)M * N * sizeof(float));
            if (lm_gemm(0, 0, 3, N, K, 1.0f, A, K, B, N, 0.0f, C, N) == LM_OK)
                h = t_fp(h, C, (size_t)3 * N * sizeof(float));
        }
        free(A); free(B); free(C);
    }
    return h;
}
static void *t_stack_thread(void *arg) {
    t_stack_job *j = (t_stack_job *)arg;
    unsigned char here = 0;
    j->top = &here;                 /* about where this thread's stack starts             */
    j->fp = t_stack_work(j->job);
    return NULL;
}
/* The lowest changed byte of the painted stack (read past ASan's view of stack memory) */
#if defined(__SANITIZE_ADDRESS__)
__attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
__attribute__((no_sanitize_address))
#endif
#endif
static const unsigned char *t_stack_low(const unsigned char *lo, size_t n) {
    size_t i = 0;
    while (i < n && lo[i] == 0xA5) i++;
    return lo + i;
}
static int t_valgrind(void) {
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}
/* Run job on a thread with a stack of kb KB; returns the bytes of stack it used, or 0. */
static size_t t_on_stack(int job, size_t kb, uint64_t *fp) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = kb << 10, used = 0;
    unsigned char *mem = NULL;
    pthread_attr_t at;
    pthread_t th;
    t_stack_job j;
    int ok;
    if (posix_memalign((void **)&mem, page, size + page) != 0) return 0;
    memset(mem + page, 0xA5, size);
    if (mprotect(mem, page, PROT_NONE) != 0) { free(mem); return 0; }
    j.job = job; j.fp = 0; j.top = NULL;
    ok = pthread_attr_init(&at) == 0 && pthread_attr_setstack(&at, mem + page, size) == 0 &&
         pthread_create(&th, &at, t_stack_thread, &j) == 0 && pthread_join(th, NULL) == 0;
    pthread_attr_destroy(&at);
    /* valgrind makes a finished thread's stack unreadable: then the work is checked, but
       not measured (1 byte stands for "ran") */
    if (ok && j.top) used = t_valgrind() ? 1 : (size_t)(j.top - t_stack_low(mem + page, size));
    mprotect(mem, page, PROT_READ | PROT_WRITE);
    free(mem);
    *fp = j.fp;
    return used;
}
/* ThreadSanitizer cannot start a thread on a stack smaller than ~900 KB of its own. */
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
static void test_small_stacks(void) {
    int job, th;
#ifdef T_TSAN
    printf("  small stacks: not tested under ThreadSanitizer (its threads need ~900 KB stacks)\n");
    return;
#endif
    size_t kb = 64;
#ifdef PTHREAD_STACK_MIN
    if ((size_t)PTHREAD_STACK_MIN > kb << 10) kb = ((size_t)PTHREAD_STACK_MIN + 1023) >> 10;
#endif
    for (th = 1; th <= 2; th++) {
        lm_set_threads(th);                 /* with 2, the calling thread runs tasks too */
        for (job = 0; job < T_STACK_JOBS; job++) {
            uint64_t want = t_stack_work(job), got = 0;
            size_t used = t_on_stack(job, kb, &got);
            char what[160];
            sprintf(what, "small stacks: %s on a %d KB thread stack, %d thread(s), as on the "
                    "main thread", t_stack_names[job], (int)kb, th);
            CHECK(used > 0 && want != 0 && got == want, what);
            sprintf(what, "small stacks: %s, %d thread(s), within 16 KB of stack (lm.h's THREADS "
                    "docs say a few KB)", t_stack_names[job], th);
            CHECK(used <= 16384, what);
            if (used > 1)
                printf("  stack: %s, %d thread(s): %zu bytes of a %d KB stack used\n",
                       t_stack_names[job], th, used, (int)kb);
        }
    }
    lm_set_threads(1);
}

/* ---- concurrent callers ----------------------------------------------------------------
   Each caller trains its own GPT a few steps, generates from it (prefill, KV cache and a
   sliding window), runs a GEMM big enough to want the pool, and fails on purpose now and
   then, checking that lm_error() keeps its own message. Run one after the other on one
   thread, then 2 and 4 at once after lm_set_threads(2) (one of them gets the pool, the
   others run their tasks themselves), also while another thread keeps changing the
   thread count: every caller's results must be the same bits each time. And several
   threads generating at once from models built by lm_gpt_from_memory over one shared,
   read-only copy of the weights. */
typedef struct { int id; uint64_t fp; int own_errors; } t_caller;

/* Errors of a caller's own, each still there after a little work (a product the size of
   a head's attention) while the other callers fail with theirs. */
static void t_own_errors(lm_gpt *m, int id, int *own) {
    float x[32 * 32], logits[96];
    int i, s;
    for (s = 0; s < 1000; s++) {
        char want[32];
        for (i = 0; i < 32 * 32; i++) x[i] = (float)(i % 7);
        if (lm_gpt_step_token(m, -1000000 - 1000 * id - s, logits) == LM_OK) *own = 0;
        lm_gemm(0, 0, 16, 32, 32, 1.0f, x, 32, x, 32, 0.0f, x + 16 * 32, 32);
        sprintf(want, "token %d ", -1000000 - 1000 * id - s);
        if (LM__HAVE_TLS && !strstr(lm_error(), want)) *own = 0;
    }
}
static uint64_t t_caller_work(int id, int *own_errors) {
    uint64_t h = 0xcbf29ce484222325ull;
    lm_rng r = lm_rng_seed(50 + (uint64_t)id);
    int in[4 * 32], tg[4 * 32], prompt[3], out[40], i, s;
    lm_gpt *m = t_tiny_gpt(2, 2, 64, 32, 96, 60 + (uint64_t)id);
    lm_train_opts o = lm_train_defaults();
    lm_sampler smp = lm_sampler_defaults(70 + (uint64_t)id);
    float *A, *B, *C;
    *own_errors = 1;
    if (!m) return 0;
    t_own_errors(m, id, own_errors);
    for (s = 0; s < 3; s++) {
        float loss;
        for (i = 0; i < 4 * 32; i++) { in[i] = (int)lm_rng_below(&r, 96); tg[i] = (int)lm_rng_below(&r, 96); }
        loss = lm_gpt_train_step(m, &o, in, tg, 4, 32, s);
        h = t_fp(h, &loss, sizeof loss);
    }
    t_own_errors(m, id, own_errors);
    h = t_fp(h, m->params.data, m->params.total * sizeof(float));
    t_own_errors(m, id, own_errors);
    for (i = 0; i < 3; i++) prompt[i] = (int)lm_rng_below(&r, 96);
    if (lm_gpt_generate(m, prompt, 3, 40, &smp, NULL, NULL, out) != LM_OK) h = 0;
    h = t_fp(h, out, sizeof out);
    A = (float *)malloc(256 * 128 * sizeof(float));
    B = (float *)malloc(128 * 256 * sizeof(float));
    C = (float *)malloc(256 * 256 * sizeof(float));
    if (A && B && C) {
        lm_t_gemm_fill(A, 256 * 128, &r);
        lm_t_gemm_fill(B, 128 * 256, &r);
        if (lm_gemm(0, 0, 256, 256, 128, 1.0f, A, 128, B, 256, 0.0f, C, 256) != LM_OK) h = 0;
        h = t_fp(h, C, 256 * 256 * sizeof(float));
    }
    free(A); free(B); free(C);
    lm_gpt_free(m);
    return h;
}
static void *t_caller_thread(void *arg) {
    t_caller *c = (t_caller *)arg;
    c->fp = t_caller_work(c->id, &c->own_errors);
    return NULL;
}

/* A thread that keeps changing the thread count until told to stop. */
static pthread_mutex_t t_toggle_mu = PTHREAD_MUTEX_INITIALIZER;
static int t_toggle_stop, t_toggle_changes;
static void *t_toggle_thread(void *arg) {
    int k = 0, stop = 0;
    (void)arg;
    while (!stop) {
        lm_set_threads(1 + k++ % 3);
        pthread_mutex_lock(&t_toggle_mu);
        stop = t_toggle_stop;
        t_toggle_changes = k;
        pthread_mutex_unlock(&t_toggle_mu);
    }
    return NULL;
}

/* Generation from a model over shared weights (lm_gpt_from_memory), each thread its own. */
typedef struct { const float *weights; const lm_gpt_config *cfg; int id; uint64_t fp; } t_reader;
static uint64_t t_reader_work(const float *weights, const lm_gpt_config *cfg, int id) {
    size_t len = lm_gpt_memory(cfg, 0, 0);
    void *buf = malloc(len);
    lm_gpt *m = buf ? lm_gpt_from_memory(cfg, weights, buf, len) : NULL;
    int prompt[2] = { id, 2 * id + 1 }, out[48];
    lm_sampler smp = lm_sampler_defaults(90 + (uint64_t)id);
    uint64_t h = 0;
    if (m && lm_gpt_generate(m, prompt, 2, 48, &smp, NULL, NULL, out) == LM_OK)
        h = t_fp(0xcbf29ce484222325ull, out, sizeof out);
    free(buf);
    return h;
}
static void *t_reader_thread(void *arg) {
    t_reader *r = (t_reader *)arg;
    r->fp = t_reader_work(r->weights, r->cfg, r->id);
    return NULL;
}

static void test_concurrent_callers(void) {
    enum { NMAX = 4 };
    uint64_t want[NMAX];
    int id, k, round;
    lm_set_threads(1);
    for (id = 0; id < NMAX; id++) {
        int own;
        want[id] = t_caller_work(id, &own);
        CHECK(want[id] != 0 && own, "concurrent callers: the single-threaded reference runs");
    }
    for (round = 0; round < 3; round++) {
        int n = round == 0 ? 2 : 4, same = 1, own = 1, made = 1;
        pthread_t th[NMAX], tog;
        t_caller c[NMAX];
        char what[200];
        lm_set_threads(2);
        if (round == 2) {
            t_toggle_stop = 0;
            made = pthread_create(&tog, NULL, t_toggle_thread, NULL) == 0;
        }
        for (k = 0; k < n; k++) {
            c[k].id = k; c[k].fp = 0; c[k].own_errors = 0;
            if (pthread_create(&th[k], NULL, t_caller_thread, &c[k]) != 0) { made = 0; c[k].id = -1; }
        }
        for (k = 0; k < n; k++) if (c[k].id >= 0) pthread_join(th[k], NULL);
        if (round == 2 && made) {
            pthread_mutex_lock(&t_toggle_mu);
            t_toggle_stop = 1;
            pthread_mutex_unlock(&t_toggle_mu);
            pthread_join(tog, NULL);
        }
        for (k = 0; k < n; k++) {
            same &= c[k].fp == want[k];
            own &= c[k].own_errors;
        }
        sprintf(what, "concurrent callers: %d threads at once%s, each caller's losses, weights, "
                "generated tokens and GEMM bit-identical to its single-threaded run", n,
                round == 2 ? " while another thread changes lm_set_threads" : "");
        CHECK(made && same, what);
        sprintf(what, "concurrent callers: %d threads, lm_error() is per thread (each keeps its own message)", n);
        if (LM__HAVE_TLS) CHECK(made && own, what);
        if (round == 2) printf("  concurrent callers: lm_set_threads changed %d times meanwhile\n", t_toggle_changes);
    }
    {   /* many generating threads, one read-only copy of the weights */
        lm_gpt *ref = t_tiny_gpt(2, 2, 32, 24, 50, 81);
        float *flat = ref ? (float *)malloc(ref->params.total * sizeof(float)) : NULL;
        uint64_t single[NMAX];
        t_reader rd[NMAX];
        pthread_t th[NMAX];
        size_t off = 0;
        int same = 1;
        if (!flat) { CHECK(0, "concurrent readers: model"); lm_gpt_free(ref); return; }
        for (k = 0; k < ref->params.n; k++) {
            memcpy(flat + off, ref->params.t[k].data, (size_t)ref->params.t[k].size * sizeof(float));
            off += (size_t)ref->params.t[k].size;
        }
        lm_set_threads(1);
        for (k = 0; k < NMAX; k++) single[k] = t_reader_work(flat, &ref->cfg, k);
        lm_set_threads(2);
        for (k = 0; k < NMAX; k++) {
            rd[k].weights = flat; rd[k].cfg = &ref->cfg; rd[k].id = k; rd[k].fp = 0;
            if (pthread_create(&th[k], NULL, t_reader_thread, &rd[k]) != 0) rd[k].id = -1;
        }
        for (k = 0; k < NMAX; k++) {
            if (rd[k].id >= 0) pthread_join(th[k], NULL);
            same &= rd[k].id >= 0 && single[k] != 0 && rd[k].fp == single[k];
        }
        CHECK(same, "concurrent readers: 4 threads generating at once from one shared copy of "
              "the weights (lm_gpt_from_memory each), tokens as generated one at a time");
        lm_set_threads(1);
        free(flat);
        lm_gpt_free(ref);
    }
}

static void run_thread_tests(void) {
    test_small_stacks();
    test_concurrent_callers();
}
#else
static void run_thread_tests(void) {}
#endif

/* Tests: safetensors I/O and GPT checkpoints (lm.h, CHECKPOINTS). */

/* ---- helpers ------------------------------------------------------------------------ */
static t_scratch st_t_scratch;
static const char *st_t_path(const char *name) { return t_scratch_path(&st_t_scratch, name); }

/* Did the last failure's message contain want? */
static int st_t_msg(const char *want) { return strstr(lm_error(), want) != NULL; }

/* A safetensors image from a header text and data bytes (header length not padded). */
static unsigned char *st_t_image(const char *json, const void *data, size_t dlen, size_t *len) {
    size_t n = strlen(json), i;
    unsigned char *b = (unsigned char *)malloc(8 + n + dlen + 1);
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(((uint64_t)n >> (8 * i)) & 0xFF);
    memcpy(b + 8, json, n);
    if (dlen) memcpy(b + 8 + n, data, dlen);
    *len = 8 + n + dlen;
    return b;
}

/* Parse must fail with a message containing want; a parse that succeeds is closed. */
static int st_t_parse_fails(const unsigned char *b, size_t len, const char *want) {
    lm_st_file f;
    lm_clear_error();
    if (lm_st_parse(&f, b, len) == LM_OK) { lm_st_close(&f); return 0; }
    if (!want || st_t_msg(want)) return 1;
    printf("  (message was: %s; wanted '%s')\n", lm_error(), want);
    return 0;
}

static lm_gpt *st_t_model(int L, int C, int H, int T, int V, uint64_t seed) {
    lm_gpt_config c;
    lm_gpt *m;
    lm_rng r = lm_rng_seed(seed + 99);
    size_t i;
    memset(&c, 0, sizeof c);
    c.n_layer = L; c.n_embd = C; c.n_head = H; c.n_ctx = T; c.vocab = V;
    m = lm_gpt_new(&c, seed);
    /* biases and LayerNorms are 0 and 1 after init: make every value distinct */
    if (m) for (i = 0; i < m->params.total; i++) m->params.data[i] += 0.01f * lm_rng_normal(&r);
    return m;
}

/* The model's parameters as writer entries (names as in the model). */
static lm_st_out *st_t_outs(const lm_gpt *m, int dtype) {
    lm_st_out *o = (lm_st_out *)malloc((size_t)m->params.n * sizeof *o);
    int i, k;
    for (i = 0; i < m->params.n; i++) {
        const lm_tensor *t = &m->params.t[i];
        memset(&o[i], 0, sizeof o[i]);
        o[i].name = m->params.names[i];
        o[i].ndim = t->ndim;
        for (k = 0; k < t->ndim; k++) o[i].shape[k] = t->shape[k];
        o[i].data = t->data;
        o[i].dtype = dtype;
    }
    return o;
}

/* Are all the weights of a and b bit-identical (same config assumed)? Counts mismatches. */
static int st_t_weights_differ(const lm_gpt *a, const lm_gpt *b) {
    int k, bad = 0;
    if (a->params.n != b->params.n) return 1;
    for (k = 0; k < a->params.n; k++)
        if (a->params.t[k].size != b->params.t[k].size ||
            memcmp(a->params.t[k].data, b->params.t[k].data,
                   (size_t)a->params.t[k].size * sizeof(float)))
            bad++;
    return bad;
}
static int st_t_same_cfg(const lm_gpt *a, const lm_gpt *b) {
    return a->cfg.n_layer == b->cfg.n_layer && a->cfg.n_head == b->cfg.n_head &&
           a->cfg.n_embd == b->cfg.n_embd && a->cfg.n_ctx == b->cfg.n_ctx &&
           a->cfg.vocab == b->cfg.vocab;
}

/* Write entries to a fresh malloc'd image. */
static unsigned char *st_t_write(const lm_st_out *o, int n, const char *const *kv, int nmeta,
                                 size_t *len) {
    unsigned char *b;
    if (lm_st_write_mem(o, n, kv, nmeta, NULL, 0, len) != LM_OK) return NULL;
    b = (unsigned char *)malloc(*len);
    if (lm_st_write_mem(o, n, kv, nmeta, b, *len, len) != LM_OK) { free(b); return NULL; }
    return b;
}

/* Replace the first occurrence of from (in the header) by to, of the same length. */
static int st_t_patch(unsigned char *b, size_t len, const char *from, const char *to) {
    size_t n = strlen(from), i;
    for (i = 8; i + n <= len; i++)
        if (!memcmp(b + i, from, n)) { memcpy(b + i, to, n); return 1; }
    return 0;
}

/* ---- half and bfloat16 conversions -------------------------------------------------- */
static void test_st_halves(void) {
    static const struct { uint16_t h; float f; } known[] = {
        {0x3C00, 1.0f}, {0xC000, -2.0f}, {0x7BFF, 65504.0f}, {0x0400, 6.103515625e-05f},
        {0x0001, 5.9604644775390625e-08f}, {0x03FF, 6.097555160522461e-05f},
        {0x8000, -0.0f}, {0x3555, 0.333251953125f}};
    int i, bad = 0, nan_bad = 0;
    for (i = 0; i < (int)(sizeof known / sizeof known[0]); i++) {
        float f = lm__f16_to_f32(known[i].h);
        if (lm__st_f32_bits(f) != lm__st_f32_bits(known[i].f)) bad++;
        if (lm__f32_to_f16(known[i].f) != known[i].h) bad++;
    }
    CHECK(bad == 0, "f16: known values both ways (normal, max, min normal, subnormals, -0)");
    CHECK(lm__f16_to_f32(0x7C00) == HUGE_VALF && lm__f16_to_f32(0xFC00) == -HUGE_VALF,
          "f16: infinities");
    CHECK(lm__f16_to_f32(0x7E00) != lm__f16_to_f32(0x7E00) &&
          lm__f16_to_f32(0xFD01) != lm__f16_to_f32(0xFD01), "f16: NaNs decode as NaN");
    /* every half survives half -> float -> half; NaNs stay NaN */
    for (bad = 0, i = 0; i < 65536; i++) {
        float f = lm__f16_to_f32((uint16_t)i);
        uint16_t back = lm__f32_to_f16(f);
        if (f != f) { if ((back & 0x7C00) != 0x7C00 || !(back & 0x3FF)) nan_bad++; }
        else if (back != (uint16_t)i) bad++;
    }
    CHECK(bad == 0 && nan_bad == 0, "f16: all 65536 values round-trip");
    /* rounding to nearest even, overflow, underflow */
    bad = 0;
    bad += lm__f32_to_f16(1.0f + 1.0f / 2048) != 0x3C00;          /* tie, to even (down) */
    bad += lm__f32_to_f16(1.0f + 3.0f / 2048) != 0x3C02;          /* tie, to even (up)   */
    bad += lm__f32_to_f16(1.0f + 1.0f / 2048 + 1.0f / 65536) != 0x3C01;  /* above tie  */
    bad += lm__f32_to_f16(65519.0f) != 0x7BFF;
    bad += lm__f32_to_f16(65520.0f) != 0x7C00;                    /* rounds to inf       */
    bad += lm__f32_to_f16(1e10f) != 0x7C00 || lm__f32_to_f16(-1e10f) != 0xFC00;
    bad += lm__f32_to_f16(2.9802322387695312e-08f) != 0x0000;     /* 2^-25: tie to 0     */
    bad += lm__f32_to_f16(2.99e-08f) != 0x0001;                   /* just above the tie  */
    bad += lm__f32_to_f16(8.940696716308594e-08f) != 0x0002;      /* 1.5 * 2^-24: to 2   */
    bad += lm__f32_to_f16(1e-30f) != 0x0000 || lm__f32_to_f16(-1e-30f) != 0x8000;
    bad += lm__f32_to_f16(6.1030e-05f) != 0x0400;                 /* rounds up to normal */
    bad += lm__f32_to_f16(6.1000e-05f) != 0x03FF;                 /* largest subnormal   */
    CHECK(bad == 0, "f16: rounding to nearest even, overflow to inf, underflow to 0");
    bad = 0;
    bad += lm__f32_to_bf16(1.0f) != 0x3F80 || lm__bf16_to_f32(0x3F80) != 1.0f;
    bad += lm__f32_to_bf16(1.0f + 1.0f / 256) != 0x3F80;          /* tie, to even        */
    bad += lm__f32_to_bf16(1.0f + 3.0f / 256) != 0x3F82;
    bad += lm__bf16_to_f32(0xC040) != -3.0f;
    bad += lm__bf16_to_f32(lm__f32_to_bf16(lm__st_bits_f32(0x7FC00001u))) ==
           lm__bf16_to_f32(lm__f32_to_bf16(lm__st_bits_f32(0x7FC00001u)));  /* NaN */
    bad += lm__bf16_to_f32(lm__f32_to_bf16(lm__st_bits_f32(0x7F800001u))) ==
           lm__bf16_to_f32(lm__f32_to_bf16(lm__st_bits_f32(0x7F800001u))); /* sNaN: not inf */
    bad += lm__f32_to_bf16(3.4e38f) != 0x7F80;                    /* rounds to inf       */
    CHECK(bad == 0, "bf16: values, ties to even, NaN kept, overflow");
}

/* ---- the generic reader and writer --------------------------------------------------- */
static void test_st_read_handmade(void) {
    /* little-endian bytes written by hand, not by our writer */
    static const unsigned char data[] = {
        0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0,               /* F32 1, -2          */
        0x01, 0x00, 0x00, 0x7C, 0x00, 0xFC, 0x00, 0x7E, 0x00, 0x80, 0x55, 0x35, /* F16    */
        0x80, 0x3F, 0x40, 0xC0,                                       /* BF16 1, -3         */
        0x2A, 0, 0, 0, 0, 0, 0, 0};                                   /* I64 42             */
    const char *json =
        "{\"__metadata__\":{\"format\":\"pt\",\"k\\u00e9y\":\"tab\\tq\\\"\\\\\\/\\ud83d\\ude00\"},"
        " \"f32\" : {\"shape\":[2],\"dtype\":\"F32\",\"data_offsets\":[0,8]},\n"
        "\"f16\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[8,20]},"
        "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[20,24]},"
        "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[24,32]},"
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[32,32]}}";
    size_t len;
    unsigned char *img = st_t_image(json, data, sizeof data, &len), *odd;
    lm_st_file f;
    const lm_st_entry *e;
    float out[8];
    int ok, bad = 0;
    ok = lm_st_parse(&f, img, len) == LM_OK;
    CHECK(ok, "st: hand-made file parses");
    if (!ok) { printf("  %s\n", lm_error()); free(img); return; }
    CHECK(f.n == 5 && f.nmeta == 2, "st: 5 tensors, 2 metadata pairs");
    CHECK(lm_st_meta(&f, "format") && !strcmp(lm_st_meta(&f, "format"), "pt"), "st: metadata value");
    CHECK(lm_st_meta(&f, "k\xc3\xa9y") &&
          !strcmp(lm_st_meta(&f, "k\xc3\xa9y"), "tab\tq\"\\/\xf0\x9f\x98\x80"),
          "st: escapes, \\u00e9 and a surrogate pair unescaped to UTF-8");
    CHECK(lm_st_meta(&f, "nope") == NULL && lm_st_find(&f, "nope") == NULL, "st: absent names");
    e = lm_st_find(&f, "f32");
    CHECK(e && e->dtype == LM_DT_F32 && e->ndim == 1 && e->shape[0] == 2 && e->numel == 2 &&
          lm_st_read_f32(&f, e, out) == LM_OK && out[0] == 1.0f && out[1] == -2.0f,
          "st: F32 little-endian bytes read as 1, -2");
    e = lm_st_find(&f, "f16");
    CHECK(e && e->ndim == 2 && e->numel == 6 && lm_st_read_f32(&f, e, out) == LM_OK,
          "st: F16 tensor read");
    if (e) {
        bad += out[0] != 5.9604644775390625e-08f;          /* subnormal */
        bad += out[1] != HUGE_VALF || out[2] != -HUGE_VALF;
        bad += out[3] == out[3];                            /* NaN */
        bad += out[4] != 0.0f || !(lm__st_f32_bits(out[4]) & 0x80000000u);  /* -0 */
        bad += out[5] != 0.333251953125f;
    }
    CHECK(bad == 0, "st: F16 subnormal, infinities, NaN, -0, 1/3");
    e = lm_st_find(&f, "bf");
    CHECK(e && lm_st_read_f32(&f, e, out) == LM_OK && out[0] == 1.0f && out[1] == -3.0f,
          "st: BF16 read");
    e = lm_st_find(&f, "i");
    lm_clear_error();
    CHECK(e && e->dtype == LM_DT_I64 && e->ndim == 0 && e->numel == 1 &&
          lm_st_read_f32(&f, e, out) != LM_OK && st_t_msg("'i'") && st_t_msg("I64"),
          "st: an I64 scalar parses but reading it as float fails, naming it");
    e = lm_st_find(&f, "empty");
    CHECK(e && e->numel == 0 && lm_st_read_f32(&f, e, NULL) == LM_OK, "st: a [0, 5] tensor");
    lm_st_close(&f);
    CHECK(f.entries == NULL && f.n == 0, "st: close clears the file");
    CHECK(lm_st_dtype_size(LM_DT_BF16) == 2 && lm_st_dtype_size(LM_DT_I64) == 8 &&
          lm_st_dtype_size(-1) == 0 && !strcmp(lm_st_dtype_name(LM_DT_F8_E4M3), "F8_E4M3") &&
          !strcmp(lm_st_dtype_name(LM_DT_COUNT), "?"), "st: dtype names and sizes");

    /* the same image at an odd address (and the data at an odd offset: unpadded header) */
    odd = (unsigned char *)malloc(len + 1);
    memcpy(odd + 1, img, len);
    ok = (8 + strlen(json)) % 4 != 0 && lm_st_parse(&f, odd + 1, len) == LM_OK;
    CHECK(ok && lm_st_read_f32(&f, lm_st_find(&f, "f32"), out) == LM_OK && out[0] == 1.0f &&
          out[1] == -2.0f, "st: unaligned data reads correctly");
    if (ok) lm_st_close(&f);
    free(odd);
    free(img);
}

static void test_st_write_roundtrip(void) {
    float a[15], s = 3.25f;
    lm_st_out o[4];
    const char *kv[6];
    unsigned char *b;
    size_t len, hlen, i;
    lm_st_file f;
    float out[15];
    int bad = 0, ok;
    for (i = 0; i < 15; i++) a[i] = (float)i * 0.37f - 2.0f;
    memset(o, 0, sizeof o);
    o[0].name = "scalar"; o[0].ndim = 0; o[0].data = &s;
    o[1].name = "w\"eird\\ name\n\xc3\xa9"; o[1].ndim = 2; o[1].shape[0] = 3; o[1].shape[1] = 5;
    o[1].data = a;
    o[2].name = "half"; o[2].ndim = 1; o[2].shape[0] = 15; o[2].data = a; o[2].dtype = LM_DT_F16;
    o[3].name = "brain"; o[3].ndim = 4; o[3].shape[0] = 1; o[3].shape[1] = 3; o[3].shape[2] = 1;
    o[3].shape[3] = 5; o[3].data = a; o[3].dtype = LM_DT_BF16;
    kv[0] = "format"; kv[1] = "pt"; kv[2] = "note"; kv[3] = "a \"quoted\"\tvalue \xe2\x82\xac";
    kv[4] = "empty"; kv[5] = "";
    b = st_t_write(o, 4, kv, 3, &len);
    CHECK(b != NULL, "st write: to memory");
    if (!b) return;
    hlen = (size_t)lm__st_le64(b);
    CHECK(hlen % 8 == 0 && b[8] == '{' && len == 8 + hlen + 4 + 60 + 30 + 30,
          "st write: header padded to 8, data sizes 4 + 60 + 30 + 30");
    ok = lm_st_parse(&f, b, len) == LM_OK;
    CHECK(ok, "st write: output parses");
    if (ok) {
        const lm_st_entry *e = lm_st_find(&f, o[1].name);
        CHECK(e && e->ndim == 2 && e->shape[0] == 3 && e->shape[1] == 5 &&
              lm_st_read_f32(&f, e, out) == LM_OK && !memcmp(out, a, sizeof a),
              "st write: escaped name found, F32 values bit-exact");
        e = lm_st_find(&f, "scalar");
        CHECK(e && e->ndim == 0 && lm_st_read_f32(&f, e, out) == LM_OK && out[0] == 3.25f,
              "st write: scalar");
        e = lm_st_find(&f, "half");
        CHECK(e && e->dtype == LM_DT_F16 && lm_st_read_f32(&f, e, out) == LM_OK, "st write: F16");
        for (i = 0; e && i < 15; i++) bad += fabsf(out[i] - a[i]) > 1e-3f * (1 + fabsf(a[i]));
        e = lm_st_find(&f, "brain");
        CHECK(e && e->dtype == LM_DT_BF16 && e->ndim == 4 && lm_st_read_f32(&f, e, out) == LM_OK,
              "st write: BF16, 4 dims");
        for (i = 0; e && i < 15; i++) bad += fabsf(out[i] - a[i]) > 8e-3f * (1 + fabsf(a[i]));
        CHECK(bad == 0, "st write: F16 and BF16 values within their precision");
        CHECK(lm_st_meta(&f, "note") && !strcmp(lm_st_meta(&f, "note"), kv[3]) &&
              lm_st_meta(&f, "empty") && !*lm_st_meta(&f, "empty"), "st write: metadata strings");
        lm_st_close(&f);
    }
    free(b);

    /* the writer refuses what the reader would refuse */
    {
        size_t need;
        unsigned char small[16];
        lm_st_out w = o[1];
        lm_st_out two[2];
        const char *dupkv[4];
        int fails = 0;
        w.name = "ok"; w.shape[0] = -1;
        fails += lm_st_write_mem(&w, 1, NULL, 0, NULL, 0, &need) == LM_ERR_ARG && st_t_msg("negative");
        w.shape[0] = 3; w.ndim = 5;
        fails += lm_st_write_mem(&w, 1, NULL, 0, NULL, 0, &need) == LM_ERR_ARG;
        w.ndim = 2; w.dtype = LM_DT_I64;
        fails += lm_st_write_mem(&w, 1, NULL, 0, NULL, 0, &need) == LM_ERR_ARG && st_t_msg("dtype");
        w.dtype = 0; w.name = "bad\xff";
        fails += lm_st_write_mem(&w, 1, NULL, 0, NULL, 0, &need) == LM_ERR_ARG;
        w.name = "__metadata__";
        fails += lm_st_write_mem(&w, 1, NULL, 0, NULL, 0, &need) == LM_ERR_ARG;
        w.name = "ok"; w.data = NULL;
        fails += lm_st_write_mem(&w, 1, NULL, 0, NULL, 0, &need) == LM_ERR_ARG;
        w.data = a; two[0] = w; two[1] = w;
        fails += lm_st_write_mem(two, 2, NULL, 0, NULL, 0, &need) == LM_ERR_ARG && st_t_msg("duplicate");
        dupkv[0] = "k"; dupkv[1] = "1"; dupkv[2] = "k"; dupkv[3] = "2";
        fails += lm_st_write_mem(&w, 1, dupkv, 2, NULL, 0, &need) == LM_ERR_ARG && st_t_msg("duplicate");
        fails += lm_st_write_mem(&w, 1, NULL, 0, NULL, 0, &need) == LM_OK && need > sizeof small &&
                 lm_st_write_mem(&w, 1, NULL, 0, small, sizeof small, &need) == LM_ERR_ARG;
        CHECK(fails == 9, "st write: bad shapes, dtype, names, duplicates, small buffer refused");
    }
}

/* ---- malformed files: each must fail with the right message, none may crash ----------- */
static void test_st_malformed(void) {
    /* every header below is tried over the same 8 data bytes */
    static const struct { const char *json, *want; } bad[] = {
        {"", "ends early"},
        {"   ", "ends early"},
        {"[]", "JSON object"},
        {"\"a\"", "JSON object"},
        {"1", "JSON object"},
        {"null", "JSON object"},
        {"{", "ends early"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "ends early"},
        {"{\"a", "unterminated string"},
        {"{\"a\\", "unterminated string"},
        {"{\"a\\q\":{}}", "bad escape"},
        {"{\"a\\u12\"}", "bad hex"},
        {"{\"a\\u12", "unterminated \\u"},
        {"{\"a\\ud800\":{}}", "surrogate"},
        {"{\"a\\udc00\":{}}", "surrogate"},
        {"{\"a\\ud800\\u0041\":{}}", "surrogate"},
        {"{\"a\\u0000\":{}}", "NUL"},
        {"{\"a\tb\":{}}", "control character"},
        {"{\"\xff\":{}}", "invalid UTF-8 (tensor name)"},
        {"{\"\xc0\x80\":{}}", "invalid UTF-8"},                  /* overlong NUL     */
        {"{\"\xed\xa0\x80\":{}}", "invalid UTF-8"},              /* UTF-8 surrogate  */
        {"{\"\xf4\x90\x80\x80\":{}}", "invalid UTF-8"},          /* above U+10FFFF   */
        {"{\"\xe2\x82\":{}}", "invalid UTF-8"},                  /* cut sequence     */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", "expected a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", "non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],}}", "expected a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", "after the header"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}{}", "after the header"},
        {"{\"a\":{\"dtype\":\"F32\" \"shape\":[2],\"data_offsets\":[0,8]}}", "expected ',' or '}'"},
        {"{\"a\" {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "expected ':'"},
        {"{\"a\":[]}", "expected '{'"},
        {"{\"a\":\"F32\"}", "expected '{'"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype 'F33'"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype"},
        {"{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", "expected a string (dtype)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "duplicate tensor name 'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "repeated"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", "unknown key 'extra'"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "no \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "no \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "no \"data_offsets\""},
        {"{\"a\":{}}", "no \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", "leading zero"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", "not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", "not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", "non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", "more than 4 dims"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,4],\"data_offsets\":[0,8]}}", "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,8]}}", "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}}", "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551615,7]}}", "begin > end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "begin > end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", "past the"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]}}", "past the"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "need 12"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", "need 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", "expected ','"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", "exactly 2"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-0,8]}}", "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":0}}", "expected '['"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", "expected '['"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "empty tensor name"},
        {"{\"__metadata__\":{\"k\":1}}", "metadata value of 'k' is not a string"},
        {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", "not a string"},
        {"{\"__metadata__\":{\"k\":null}}", "not a string"},
        {"{\"__metadata__\":[]}", "expected '{'"},
        {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", "duplicate metadata key 'k'"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", "second __metadata__"},
        {"{\"__metadata__\":{\"k\":\"v\",}}", "expected a string (metadata key)"},
        {"{\"__metadata__\":{\"k\":\"\xff\"}}", "invalid UTF-8 (metadata value)"},
    };
    static const unsigned char eight[8] = {0, 0, 128, 63, 0, 0, 128, 63};
    int i, nbad = 0, n = (int)(sizeof bad / sizeof bad[0]);
    size_t len;
    unsigned char *b;
    char *deep;
    /* control: the base header is fine */
    b = st_t_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight, 8, &len);
    CHECK(!st_t_parse_fails(b, len, NULL), "st malformed: the control file parses");
    free(b);
    for (i = 0; i < n; i++) {
        b = st_t_image(bad[i].json, eight, 8, &len);
        if (!st_t_parse_fails(b, len, bad[i].want)) {
            nbad++;
            printf("  malformed case %d not rejected as expected: %s\n", i, bad[i].json);
        }
        free(b);
    }
    CHECK(nbad == 0, "st malformed: a table of bad headers, each rejected with its reason");

    /* a name of 300 bytes */
    deep = (char *)malloc(400);
    strcpy(deep, "{\"");
    for (i = 0; i < 300; i++) strcat(deep, "n");
    strcat(deep, "\":{}}");
    b = st_t_image(deep, eight, 8, &len);
    CHECK(st_t_parse_fails(b, len, "too long"), "st malformed: a 300-byte name");
    free(b);
    free(deep);

    /* nesting attacks: 100000 '[' or '{' where a header, a shape or a value is expected */
    deep = (char *)malloc(100100);
    for (i = 0; i < 3; i++) {
        static const char *const pre[3] = {"", "{\"a\":{\"dtype\":\"F32\",\"shape\":",
                                           "{\"__metadata__\":{\"k\":"};
        size_t k = strlen(pre[i]), j;
        memcpy(deep, pre[i], k);
        for (j = 0; j < 100000; j++) deep[k + j] = i == 2 ? '{' : '[';
        deep[k + 100000] = 0;
        b = st_t_image(deep, eight, 8, &len);
        nbad = !st_t_parse_fails(b, len, i == 0 ? "JSON object" : i == 1 ? "integer" : "not a string");
        CHECK(nbad == 0, "st malformed: 100000 nested brackets are refused without recursion");
        free(b);
    }
    free(deep);

    /* header lengths: too short for one, absurd, beyond the file, zero */
    {
        unsigned char h[24];
        memset(h, 0, sizeof h);
        nbad = 0;
        nbad += !st_t_parse_fails(h, 0, "too short");
        nbad += !st_t_parse_fails(h, 7, "too short");
        h[7] = 0x80;                                         /* 2^63 */
        nbad += !st_t_parse_fails(h, sizeof h, "absurd");
        h[7] = 0xFF; h[0] = 0xFF;
        nbad += !st_t_parse_fails(h, sizeof h, "absurd");
        h[7] = 0; h[0] = 17;                                 /* 17 > 24 - 8 */
        nbad += !st_t_parse_fails(h, sizeof h, "exceeds");
        h[0] = 0;
        nbad += !st_t_parse_fails(h, sizeof h, "ends early");
        h[0] = 2; h[8] = '{'; h[9] = '}';                    /* "{}" and no data: ok        */
        nbad += st_t_parse_fails(h, 10, NULL);
        nbad += !st_t_parse_fails(h, sizeof h, "no tensor");  /* "{}" and 14 stray bytes   */
        CHECK(nbad == 0, "st malformed: header length checks (short, 2^63, past the end, 0)");
    }
}

/* Hostile files beyond the table above: header lengths that lie by any amount, sizes whose
   64-bit product wraps (to exactly 0, so a missing check would pass the offsets), names
   equal only after unescaping, a file of every kind of entry cut at each byte, and a
   header with many tensors (the name index). */
static void st_t_put_len(unsigned char *b, uint64_t n) {
    int i;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)((n >> (8 * i)) & 0xFF);
}
static void test_st_hostile(void) {
    static const unsigned char eight[8] = {0, 0, 128, 63, 0, 0, 128, 63};
    static const struct { const char *json, *want; } bad[] = {
        /* 2^62 F32 elements: 2^64 bytes, which wraps to 0 */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
         "size of tensor 'a' overflows"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2,4611686018427387904],\"data_offsets\":[0,0]}}",
         "size of tensor 'a' overflows"},
        /* 2^32 x 2^32 elements: the product itself wraps to 0 */
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
         "shape of tensor 'a' overflows"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[65536,65536,65536,65536],\"data_offsets\":[0,0]}}",
         "shape of tensor 'a' overflows"},
        /* fits in 64 bits but not in the data */
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[3074457345618258603,3],\"data_offsets\":[0,8]}}",
         "need 9223372036854775809"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", "past the"},
        /* the same name, spelt two ways */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "duplicate tensor name 'a'"},
        {"{\"\xc3\xa9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"\\u00E9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "duplicate tensor name"},
        {"{\"__metadata__\":{\"k\\/\":\"1\",\"k/\":\"2\"}}", "duplicate metadata key 'k/'"},
        {"{\"\\u005f_metadata__\":{\"k\":\"v\"},\"__metadata__\":{}}", "second __metadata__"},
        /* the header is padded with spaces; a NUL is not white space */
        {"{}\0", NULL}};
    static const unsigned char data[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
    const char *base = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                       "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"I8\",\"shape\":[2,2,2],"
                       "\"data_offsets\":[8,16]},\"c\":{\"dtype\":\"BF16\",\"shape\":[],"
                       "\"data_offsets\":[16,18]},\"d\":{\"dtype\":\"F16\",\"shape\":[0,7],"
                       "\"data_offsets\":[18,18]}}";
    size_t len, n = strlen(base), cut, i;
    unsigned char *b, *copy;
    uint64_t hl;
    lm_st_file f;
    char *big;
    int nbad = 0, ok;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t jl = bad[i].want ? strlen(bad[i].json) : 3;     /* the last one holds a NUL */
        b = (unsigned char *)malloc(8 + jl + 8);
        st_t_put_len(b, jl);
        memcpy(b + 8, bad[i].json, jl);
        memcpy(b + 8 + jl, eight, 8);
        if (!st_t_parse_fails(b, 8 + jl + 8, bad[i].want)) {
            nbad++;
            printf("  hostile case %d not rejected as expected: %s\n", (int)i, bad[i].json);
        }
        free(b);
    }
    CHECK(nbad == 0, "st hostile: wrapping sizes, unescaped duplicates, a NUL after the header");

    b = st_t_image("{\"z\":{\"dtype\":\"F16\",\"shape\":[0,9223372036854775807,9223372036854775807],"
                   "\"data_offsets\":[8,8]},\"y\":{\"dtype\":\"U8\",\"shape\":[8],"
                   "\"data_offsets\":[0,8]}} \t\r\n ", eight, 8, &len);
    ok = lm_st_parse(&f, b, len) == LM_OK;
    CHECK(ok && f.n == 2 && f.entries[0].numel == 0 && f.entries[0].begin == 8,
          "st hostile: a zero dim makes huge dims harmless; white space pads the header");
    if (ok) lm_st_close(&f);
    free(b);

    /* the tensors must tile the data exactly (the format's rule against polyglot files) */
    {
        static const struct { const char *json; size_t dlen; const char *want; } tile[] = {
            {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, "[0, 4) belong to no tensor"},
            {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
             "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}", 8, "[4, 6) belong to no tensor"},
            {"{\"a\":{\"dtype\":\"U8\",\"shape\":[6],\"data_offsets\":[0,6]},"
             "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, "'a' and 'b' overlap"},
            {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, "overlap"},
            {"{\"a\":{\"dtype\":\"U8\",\"shape\":[6],\"data_offsets\":[0,6]}}", 8, "2 bytes after the last tensor"},
            {"{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
             "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 8, NULL}};
        for (i = 0, nbad = 0; i < sizeof tile / sizeof tile[0]; i++) {
            b = st_t_image(tile[i].json, eight, tile[i].dlen, &len);
            if (tile[i].want) nbad += !st_t_parse_fails(b, len, tile[i].want);
            else if (lm_st_parse(&f, b, len) == LM_OK) lm_st_close(&f);
            else { nbad++; printf("  tiling case %d: %s\n", (int)i, lm_error()); }
            free(b);
        }
        CHECK(nbad == 0, "st hostile: a gap, an overlap or stray bytes after the tensors are refused; out of order is fine");
    }

    /* every header length but the true one: a cut header, or data bytes taken for JSON */
    b = st_t_image(base, data, sizeof data, &len);
    ok = lm_st_parse(&f, b, len) == LM_OK;
    CHECK(ok && f.n == 4 && f.nmeta == 1, "st hostile: the base file parses");
    if (ok) lm_st_close(&f);
    for (hl = 0, nbad = 0; hl <= len; hl++) {
        if (hl == n) continue;
        st_t_put_len(b, hl);
        nbad += !st_t_parse_fails(b, len, NULL);
    }
    {
        static const uint64_t far[5] = {0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull,
                                        0x100000000ull, 100000001ull, 0xFFFFFFFFull};
        for (i = 0; i < 5; i++) {
            st_t_put_len(b, far[i] + (i == 2 ? n : 0));
            nbad += !st_t_parse_fails(b, len, NULL);
        }
    }
    CHECK(nbad == 0, "st hostile: every header length but the true one is refused");
    st_t_put_len(b, n);

    /* cut at every byte: nothing but errors with messages (over-reads show under ASan:
       each cut is a buffer of exactly its size) */
    for (cut = 0, nbad = 0; cut < len; cut++) {
        copy = (unsigned char *)malloc(cut ? cut : 1);
        memcpy(copy, b, cut);
        lm_clear_error();
        if (lm_st_parse(&f, copy, cut) == LM_OK) { nbad++; lm_st_close(&f); }
        else if (!strcmp(lm_error(), "no error")) nbad++;
        free(copy);
    }
    CHECK(nbad == 0, "st hostile: a file of every kind of entry, cut at each byte, is refused");
    free(b);

    /* 20000 tensors: all found through the index, absent names not */
    big = (char *)malloc(20000 * 64 + 16);
    strcpy(big, "{");
    for (i = 0, n = 1; i < 20000; i++)
        n += (size_t)sprintf(big + n, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],"
                             "\"data_offsets\":[0,0]}", i ? "," : "", (int)i);
    strcpy(big + n, "}");
    b = st_t_image(big, NULL, 0, &len);
    ok = lm_st_parse(&f, b, len) == LM_OK;
    for (i = 0, nbad = 0; ok && i < 20000; i++) {
        const lm_st_entry *e;
        sprintf(big, "t%d", (int)i);
        e = lm_st_find(&f, big);
        nbad += !e || e != &f.entries[i];
        sprintf(big, "u%d", (int)i);
        nbad += lm_st_find(&f, big) != NULL;
    }
    CHECK(ok && f.n == 20000 && nbad == 0, "st hostile: 20000 tensors, each found by name");
    if (ok) lm_st_close(&f);
    free(b);
    free(big);
}

/* ---- GPT checkpoints ----------------------------------------------------------------- */
static void test_st_gpt_roundtrip(void) {
    lm_gpt *m = st_t_model(2, 8, 2, 8, 16, 7), *r;
    const char *path = st_t_path("model.safetensors");
    lm_st_file f;
    unsigned char *mem, *file;
    size_t len, need;
    FILE *fp;
    int ok;
    if (!m) { CHECK(0, "gpt ckpt: model"); return; }
    CHECK(lm_gpt_save(m, path) == LM_OK, "gpt ckpt: save");
    CHECK(!t_exists(st_t_path("model.safetensors.tmp")), "gpt ckpt: no temporary left behind");
    r = lm_gpt_load(path, 0);
    CHECK(r != NULL, "gpt ckpt: load (n_head from the metadata, C/64 would fail)");
    if (r) {
        CHECK(st_t_same_cfg(m, r), "gpt ckpt: config equal");
        CHECK(st_t_weights_differ(m, r) == 0, "gpt ckpt: weights bit-identical");
        lm_gpt_free(r);
    }
    /* the file: every tensor F32, the metadata as decimal strings, and identical to the
       in-memory image */
    ok = lm_st_open(&f, path) == LM_OK;
    CHECK(ok && f.n == 2 + 12 * 2 + 2 && lm_st_find(&f, "h.1.mlp.c_proj.weight") &&
          lm_st_find(&f, "h.1.mlp.c_proj.weight")->dtype == LM_DT_F32 &&
          !strcmp(lm_st_meta(&f, "format"), "pt") && !strcmp(lm_st_meta(&f, "n_layer"), "2") &&
          !strcmp(lm_st_meta(&f, "n_head"), "2") && !strcmp(lm_st_meta(&f, "n_embd"), "8") &&
          !strcmp(lm_st_meta(&f, "n_ctx"), "8") && !strcmp(lm_st_meta(&f, "vocab_size"), "16"),
          "gpt ckpt: names, dtype and metadata in the file");
    if (ok) lm_st_close(&f);
    CHECK(lm_gpt_save_mem(m, NULL, 0, &need) == LM_OK, "gpt ckpt: size of the image");
    mem = (unsigned char *)malloc(need);
    file = (unsigned char *)malloc(need + 1);
    fp = fopen(path, "rb");
    len = fp ? fread(file, 1, need + 1, fp) : 0;
    if (fp) fclose(fp);
    CHECK(lm_gpt_save_mem(m, mem, need, &need) == LM_OK && len == need && !memcmp(file, mem, need),
          "gpt ckpt: save_mem gives the bytes of the file");
    r = lm_gpt_load_mem(mem, need, 0);
    CHECK(r && st_t_weights_differ(m, r) == 0, "gpt ckpt: load_mem");
    if (r) lm_gpt_free(r);
    r = lm_gpt_load_mem(mem, need, 4);
    CHECK(r && r->cfg.n_head == 4, "gpt ckpt: the n_head argument overrides the metadata");
    if (r) lm_gpt_free(r);
    lm_clear_error();
    r = lm_gpt_load_mem(mem, need, 3);
    CHECK(!r && st_t_msg("does not divide"), "gpt ckpt: n_head 3 does not divide 8");
    if (r) lm_gpt_free(r);
    free(mem);
    free(file);
    lm_clear_error();
    CHECK(lm_gpt_load(st_t_path("absent.safetensors"), 0) == NULL && st_t_msg("cannot open"),
          "gpt ckpt: a missing file is an error");
    remove(path);
    lm_gpt_free(m);
}

/* F16 and BF16 checkpoints, with values they represent exactly, and mixed dtypes. */
static void test_st_gpt_dtypes(void) {
    lm_gpt *m = st_t_model(1, 8, 2, 4, 16, 3), *r;
    lm_st_out *o;
    const char *kv[2];
    unsigned char *b;
    size_t len, i;
    int dt, k;
    if (!m) { CHECK(0, "gpt dtypes: model"); return; }
    for (i = 0; i < m->params.total; i++) m->params.data[i] = (float)((int)(i % 61) - 30) / 16.0f;
    kv[0] = "n_head"; kv[1] = "2";
    for (dt = 0; dt < 3; dt++) {
        o = st_t_outs(m, dt == 0 ? LM_DT_F16 : LM_DT_BF16);
        if (dt == 2) for (k = 0; k < m->params.n; k++) o[k].dtype = k % 3;  /* mixed */
        b = st_t_write(o, m->params.n, kv, 1, &len);
        r = b ? lm_gpt_load_mem(b, len, 0) : NULL;
        CHECK(r && st_t_same_cfg(m, r) && st_t_weights_differ(m, r) == 0,
              dt == 0 ? "gpt dtypes: an F16 file loads with the right values"
              : dt == 1 ? "gpt dtypes: a BF16 file loads with the right values"
              : "gpt dtypes: a file mixing F32, F16 and BF16 loads");
        if (r) lm_gpt_free(r);
        free(b);
        free(o);
    }
    /* a value F16 cannot hold exactly comes back rounded to nearest */
    m->params.t[0].data[0] = 1.0f + 1.0f / 4096;
    o = st_t_outs(m, LM_DT_F16);
    b = st_t_write(o, m->params.n, kv, 1, &len);
    r = b ? lm_gpt_load_mem(b, len, 0) : NULL;
    CHECK(r && r->params.t[0].data[0] == 1.0f, "gpt dtypes: F16 rounding of 1 + 2^-12");
    if (r) lm_gpt_free(r);
    free(b);
    free(o);
    lm_gpt_free(m);
}

static int st_t_cmp_out(const void *a, const void *b) {
    return strcmp(((const lm_st_out *)a)->name, ((const lm_st_out *)b)->name);
}

/* A file laid out exactly as Hugging Face's gpt2 model.safetensors: 12 blocks, each with
   its attn.bias mask buffer [1, 1, n_ctx, n_ctx], names in sorted order, no prefix,
   metadata {"format": "pt"} only. Tiny widths keep it small. */
static void test_st_gpt_hf_layout(void) {
    enum { L = 12, C = 8, T = 4, V = 16 };
    lm_gpt *m = st_t_model(L, C, 2, T, V, 11), *r;
    lm_st_out o[160];
    char bias_names[L][32];
    float mask[T * T];
    const char *kv[2];
    unsigned char *b;
    size_t len;
    lm_st_out *mo;
    int i, k, n = 0;
    if (!m) { CHECK(0, "gpt hf: model"); return; }
    for (i = 0; i < T * T; i++) mask[i] = (i % T) <= (i / T) ? 1.0f : 0.0f;
    mo = st_t_outs(m, LM_DT_F32);
    for (k = 0; k < m->params.n; k++) o[n++] = mo[k];
    for (i = 0; i < L; i++) {
        lm__fmt(bias_names[i], sizeof bias_names[i], "h.%d.attn.bias", i);
        memset(&o[n], 0, sizeof o[n]);
        o[n].name = bias_names[i];
        o[n].ndim = 4; o[n].shape[0] = 1; o[n].shape[1] = 1; o[n].shape[2] = T; o[n].shape[3] = T;
        o[n].data = mask;
        n++;
    }
    CHECK(n == 160, "gpt hf: 160 tensors for 12 layers");
    qsort(o, (size_t)n, sizeof o[0], st_t_cmp_out);
    kv[0] = "format"; kv[1] = "pt";
    b = st_t_write(o, n, kv, 1, &len);
    r = b ? lm_gpt_load_mem(b, len, 2) : NULL;
    CHECK(r && st_t_same_cfg(m, r) && st_t_weights_differ(m, r) == 0,
          "gpt hf: a Hugging Face GPT-2 layout loads as it is (n_head given)");
    if (r) lm_gpt_free(r);
    lm_clear_error();
    r = b ? lm_gpt_load_mem(b, len, 0) : NULL;
    CHECK(!r && st_t_msg("not a multiple of 64"), "gpt hf: without n_head, C = 8 cannot default");
    if (r) lm_gpt_free(r);
    free(b);
    free(mo);
    lm_gpt_free(m);
}

/* The "transformer." prefix, ignored buffers (of any dtype), a tied lm_head. */
static void test_st_gpt_hf_variants(void) {
    enum { C = 8, T = 4 };
    lm_gpt *m = st_t_model(2, C, 2, T, 16, 5), *r;
    lm_st_out *mo = st_t_outs(m, LM_DT_F32), o[40];
    char names[40][80];
    float mask[T * T], minus = -1e4f, *head;
    unsigned char *b;
    size_t len;
    int i, k, n = 0, np = m->params.n;
    for (i = 0; i < T * T; i++) mask[i] = 1.0f;
    for (k = 0; k < np; k++) {
        o[n] = mo[k];
        strcpy(names[n], "transformer.");
        strcat(names[n], mo[k].name);
        o[n].name = names[n];
        n++;
    }
    for (i = 0; i < 2; i++) {
        memset(&o[n], 0, sizeof o[n]);
        lm__fmt(names[n], 80, "transformer.h.%d.attn.bias", i);
        o[n].name = names[n]; o[n].ndim = 4; o[n].shape[0] = 1; o[n].shape[1] = 1;
        o[n].shape[2] = T; o[n].shape[3] = T; o[n].data = mask;
        n++;
        memset(&o[n], 0, sizeof o[n]);
        lm__fmt(names[n], 80, "transformer.h.%d.attn.masked_bias", i);
        o[n].name = names[n]; o[n].ndim = 0; o[n].data = &minus;
        n++;
    }
    o[n] = mo[0];
    o[n].name = "lm_head.weight";
    n++;
    b = st_t_write(o, n, NULL, 0, &len);
    /* an unreadable dtype on an ignored buffer is fine: patch F32 -> I32 (same size) */
    CHECK(b && st_t_patch(b, len, "h.1.attn.bias\":{\"dtype\":\"F32\"", "h.1.attn.bias\":{\"dtype\":\"I32\""),
          "gpt variants: patch a buffer's dtype");
    r = b ? lm_gpt_load_mem(b, len, 2) : NULL;
    CHECK(r && st_t_weights_differ(m, r) == 0,
          "gpt variants: prefix, attn.bias (even I32), masked_bias, tied lm_head all accepted");
    if (r) lm_gpt_free(r);
    free(b);

    /* an lm_head stored as F16 with the same values (C=8 weights rounded first) is tied */
    head = (float *)malloc((size_t)m->params.t[0].size * sizeof(float));
    for (i = 0; i < m->params.t[0].size; i++)
        m->params.t[0].data[i] = head[i] = lm__f16_to_f32(lm__f32_to_f16(m->params.t[0].data[i]));
    o[n - 1].dtype = LM_DT_F16;
    o[n - 1].data = head;
    b = st_t_write(o, n, NULL, 0, &len);
    r = b ? lm_gpt_load_mem(b, len, 2) : NULL;
    CHECK(r != NULL, "gpt variants: lm_head in F16 equal to wte is accepted");
    if (r) lm_gpt_free(r);
    free(b);
    /* an lm_head that differs in one value: untied, refused */
    head[5] += 1.0f;
    b = st_t_write(o, n, NULL, 0, &len);
    lm_clear_error();
    r = b ? lm_gpt_load_mem(b, len, 2) : NULL;
    CHECK(!r && st_t_msg("lm_head.weight differs"), "gpt variants: an untied lm_head is refused");
    if (r) lm_gpt_free(r);
    free(b);
    free(head);

    /* the same tensor with and without the prefix */
    o[n - 1] = mo[0];                       /* "wte.weight" beside "transformer.wte.weight" */
    b = st_t_write(o, n, NULL, 0, &len);
    lm_clear_error();
    r = b ? lm_gpt_load_mem(b, len, 2) : NULL;
    CHECK(!r && st_t_msg("appears twice"), "gpt variants: wte.weight with and without prefix");
    if (r) lm_gpt_free(r);
    free(b);
    free(mo);
    lm_gpt_free(m);
}

/* A GPT image that must be refused with a message containing want; frees b. */
static void st_t_expect_refused(unsigned char *b, size_t len, const char *what, const char *want) {
    lm_gpt *r;
    int ok;
    lm_clear_error();
    r = b ? lm_gpt_load_mem(b, len, 0) : NULL;
    ok = b && !r && st_t_msg(want);
    CHECK(ok, what);
    if (!ok) printf("  (message: %s)\n", lm_error());
    if (r) lm_gpt_free(r);
    free(b);
}

/* Bad checkpoints: each is refused with a message naming the problem. */
static void test_st_gpt_malformed(void) {
    lm_gpt *m = st_t_model(2, 8, 2, 4, 16, 9), *r;
    lm_st_out *mo = st_t_outs(m, LM_DT_F32), o[40], extra;
    char num[5][24];
    const char *kv[12];
    float more[9] = {0};
    unsigned char *b, *copy;
    size_t len, cut;
    int n = m->params.n, bad = 0;
    lm__gpt_meta(m, num, kv);

    /* 1. truncated at every byte: never a model, always a message */
    b = st_t_write(mo, n, kv, 6, &len);
    r = b ? lm_gpt_load_mem(b, len, 0) : NULL;
    CHECK(r != NULL, "gpt malformed: the whole file loads (control)");
    if (r) lm_gpt_free(r);
    for (cut = 0; b && cut < len; cut++) {
        copy = (unsigned char *)malloc(cut ? cut : 1);   /* exact size: over-reads show */
        memcpy(copy, b, cut);
        lm_clear_error();
        r = lm_gpt_load_mem(copy, cut, 0);
        if (r || !strcmp(lm_error(), "no error")) { bad++; if (r) lm_gpt_free(r); }
        free(copy);
    }
    CHECK(b && bad == 0, "gpt malformed: every truncation of a valid file is refused");
    free(b);

#define ST_T_EXPECT(what, want) st_t_expect_refused(b, len, what, want)
    /* 2. in-place patches of the valid image (same lengths, so offsets stay right) */
    b = st_t_write(mo, n, kv, 6, &len);
    st_t_patch(b, len, "\"ln_f.bias\":{\"dtype\":\"F32\"", "\"ln_f.bias\":{\"dtype\":\"I32\"");
    ST_T_EXPECT("gpt malformed: a weight of dtype I32, named", "'ln_f.bias' has dtype I32");
    b = st_t_write(mo, n, kv, 6, &len);
    st_t_patch(b, len, "\"wpe.weight\"", "\"\xffpe.weight\"");
    ST_T_EXPECT("gpt malformed: a non-UTF-8 name", "invalid UTF-8 (tensor name)");
    b = st_t_write(mo, n, kv, 6, &len);
    st_t_patch(b, len, "\"n_ctx\":\"4\"", "\"n_ctx\": 4 ");
    ST_T_EXPECT("gpt malformed: a metadata value that is a number", "not a string");
    b = st_t_write(mo, n, kv, 6, &len);
    st_t_patch(b, len, "\"n_layer\":\"2\"", "\"n_layer\":\"3\"");
    ST_T_EXPECT("gpt malformed: metadata n_layer disagrees with the tensors", "n_layer = 3");
    b = st_t_write(mo, n, kv, 6, &len);
    st_t_patch(b, len, "\"n_head\":\"2\"", "\"n_head\":\"x\"");
    ST_T_EXPECT("gpt malformed: metadata n_head not a number", "n_head = 'x'");
    b = st_t_write(mo, n, kv, 6, &len);
    st_t_patch(b, len, "\"n_head\":\"2\"", "\"n_head\":\"0\"");
    ST_T_EXPECT("gpt malformed: metadata n_head 0", "n_head 0 does not divide");
    b = st_t_write(mo, n, kv, 6, &len);
    st_t_patch(b, len, "h.1.ln_2.bias", "h.1.ln_3.bias");
    ST_T_EXPECT("gpt malformed: an unknown tensor name", "unexpected tensor 'h.1.ln_3.bias'");

    /* 3. tensor lists edited before writing */
    memcpy(o, mo, (size_t)n * sizeof *o);
    o[2 + 12 + 9] = o[n - 1];                 /* h.1.mlp.c_fc.bias dropped (overwritten) */
    b = st_t_write(o, n - 1, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: a missing tensor, named", "missing tensor 'h.1.mlp.c_fc.bias'");
    memcpy(o, mo, (size_t)n * sizeof *o);
    o[n - 1].shape[0] = 9; o[n - 1].data = more;    /* ln_f.bias [9] */
    b = st_t_write(o, n, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: a wrong shape", "'ln_f.bias' has shape [9], expected [8]");
    memcpy(o, mo, (size_t)n * sizeof *o);
    o[2].ndim = 2; o[2].shape[0] = 1; o[2].shape[1] = 8;   /* h.0.ln_1.weight [1, 8] */
    b = st_t_write(o, n, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: a wrong number of dims", "expected [8]");
    memcpy(o, mo, (size_t)n * sizeof *o);
    extra = mo[n - 1]; extra.name = "classifier.bias"; o[n] = extra;
    b = st_t_write(o, n + 1, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: an extra tensor", "unexpected tensor 'classifier.bias'");
    memcpy(o, mo, (size_t)n * sizeof *o);
    extra = mo[n - 1]; extra.name = "h.2.attn.bias"; o[n] = extra;
    b = st_t_write(o, n + 1, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: a mask buffer of a block that does not exist", "only 2 blocks");
    memcpy(o, mo, (size_t)n * sizeof *o);
    extra = mo[n - 1]; extra.name = "h.01.ln_1.bias"; o[n] = extra;
    b = st_t_write(o, n + 1, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: a block number with a leading zero", "unexpected tensor 'h.01.");
    b = st_t_write(mo + 1, n - 1, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: no wte", "no tensor 'wte.weight'");
    memcpy(o, mo, (size_t)n * sizeof *o);
    o[1].shape[1] = 4; o[1].shape[0] = 8;           /* wpe (8, 4): width disagrees */
    b = st_t_write(o, n, kv, 6, &len);
    ST_T_EXPECT("gpt malformed: wpe width differs from wte", "(n_ctx, C)");
    b = st_t_write(mo, 2, NULL, 0, &len);           /* only wte and wpe */
    ST_T_EXPECT("gpt malformed: no blocks", "no transformer blocks");
    kv[1] = "pt";                                   /* metadata {"format": "pt"} only */
    b = st_t_write(mo, n, kv, 1, &len);
    ST_T_EXPECT("gpt malformed: no n_head and C not a multiple of 64", "give n_head");
#undef ST_T_EXPECT
    free(mo);
    lm_gpt_free(m);
}

/* A failed save leaves the previous checkpoint as it was. */
static void test_st_gpt_atomic(void) {
    lm_gpt *m = st_t_model(1, 8, 2, 4, 16, 21), *r;
    const char *path = st_t_path("keep.safetensors");
    char tmpdir[64], tmpname[320];
    int rc, ok = 0;
    float before, after;
    CHECK(m && lm_gpt_save(m, path) == LM_OK, "gpt atomic: first save");
    if (!m) return;
    before = m->params.t[0].data[0];
    after = before + 1.0f;                  /* a float (see FLT_EVAL_METHOD at the top) */
    m->params.t[0].data[0] = after;
    /* make path.tmp impossible to create: put a directory there */
    strcpy(tmpname, path);
    strcat(tmpname, ".tmp");
#ifdef T_POSIX
    strcpy(tmpdir, "/tmp/lm_st_XXXXXX");
    ok = mkdtemp(tmpdir) != NULL && rename(tmpdir, tmpname) == 0;
#else
    (void)tmpdir;
#endif
    if (ok) {
        lm_clear_error();
        rc = lm_gpt_save(m, path);
        CHECK(rc == LM_ERR_IO && st_t_msg("cannot create"), "gpt atomic: the second save fails");
        r = lm_gpt_load(path, 0);
        CHECK(r && r->params.t[0].data[0] == before && r->params.t[1].data[3] == m->params.t[1].data[3],
              "gpt atomic: the old checkpoint still loads, unchanged");
        if (r) lm_gpt_free(r);
        remove(tmpname);
    }
    lm_clear_error();
    CHECK(lm_gpt_save(m, st_t_path("no/such/dir/x.safetensors")) == LM_ERR_IO &&
          st_t_msg("no/such/dir"), "gpt atomic: saving into a missing directory fails cleanly");
    CHECK(lm_gpt_save(m, path) == LM_OK, "gpt atomic: a save over an existing file");
    r = lm_gpt_load(path, 0);
    CHECK(r && r->params.t[0].data[0] == after, "gpt atomic: the new file replaced it");
    if (r) lm_gpt_free(r);
    remove(path);
    lm_gpt_free(m);
}

/* Resume state round trip, and refusals that leave the model untouched. */
static void test_st_gpt_state(void) {
    lm_gpt *m = st_t_model(2, 8, 2, 4, 16, 31), *m2 = st_t_model(2, 8, 2, 4, 16, 32), *m3;
    const char *path = st_t_path("run.safetensors");
    char state[320];
    lm_train_state s, s2;
    lm_rng r = lm_rng_seed(5);
    lm_st_file f;
    size_t i;
    int k, bad = 0, ok;
    float *mcopy;
    if (!m || !m2) { CHECK(0, "gpt state: models"); return; }
    for (i = 0; i < m->params.total; i++) {
        m->params.m[i] = lm_rng_normal(&r);
        m->params.v[i] = lm_rng_uniform(&r);
    }
    m->params.step = 777;
    s.step = 1234; s.data_pos = 987654321ull; s.rng = 0xFEDCBA9876543210ull;
    CHECK(lm_gpt_save_state(m, path, &s) == LM_OK, "gpt state: save");
    strcpy(state, path);
    strcat(state, ".state");
    ok = lm_st_open(&f, state) == LM_OK;
    CHECK(ok && f.n == 2 * m->params.n && lm_st_find(&f, "m.wte.weight") &&
          lm_st_find(&f, "v.h.1.mlp.c_fc.weight") && !strcmp(lm_st_meta(&f, "adam_step"), "777") &&
          !strcmp(lm_st_meta(&f, "rng"), "18364758544493064720") &&
          !strcmp(lm_st_meta(&f, "n_head"), "2"), "gpt state: file layout and metadata");
    if (ok) lm_st_close(&f);
    memset(&s2, 0, sizeof s2);
    lm_clear_error();
    CHECK(lm_gpt_load_state(m2, path, &s2) != LM_OK && st_t_msg("other weights"),
          "gpt state: a state saved with other weights is refused (interrupted save)");
    memcpy(m2->params.data, m->params.data, m->params.total * sizeof(float));
    CHECK(lm_gpt_load_state(m2, path, &s2) == LM_OK, "gpt state: load");
    for (k = 0; k < m->params.n; k++) {
        size_t off = (size_t)(m->params.t[k].data - m->params.data), sz = (size_t)m->params.t[k].size;
        bad += memcmp(m->params.m + off, m2->params.m + off, sz * sizeof(float)) != 0;
        bad += memcmp(m->params.v + off, m2->params.v + off, sz * sizeof(float)) != 0;
    }
    CHECK(bad == 0 && m2->params.step == 777, "gpt state: moments bit-identical, adam step");
    CHECK(s2.step == 1234 && s2.data_pos == 987654321ull && s2.rng == 0xFEDCBA9876543210ull,
          "gpt state: step, data position, RNG state");

    /* a model of another shape: refused, its moments untouched */
    m3 = st_t_model(2, 16, 2, 4, 16, 33);
    if (m3) {
        mcopy = (float *)malloc(m3->params.total * sizeof(float));
        memcpy(mcopy, m3->params.m, m3->params.total * sizeof(float));
        lm_clear_error();
        CHECK(lm_gpt_load_state(m3, path, &s2) != LM_OK && st_t_msg("n_embd"),
              "gpt state: a different config is refused");
        CHECK(!memcmp(mcopy, m3->params.m, m3->params.total * sizeof(float)),
              "gpt state: the refused model is untouched");
        free(mcopy);
        lm_gpt_free(m3);
    }
    /* a truncated state file: refused, untouched */
    {
        FILE *fp = fopen(state, "rb");
        unsigned char *img = (unsigned char *)malloc(1 << 16);
        size_t n = fp ? fread(img, 1, 1 << 16, fp) : 0;
        if (fp) fclose(fp);
        fp = fopen(state, "wb");
        if (fp) { fwrite(img, 1, n - 5, fp); fclose(fp); }
        mcopy = (float *)malloc(m2->params.total * sizeof(float));
        memcpy(mcopy, m2->params.v, m2->params.total * sizeof(float));
        m2->params.step = 5;
        lm_clear_error();
        CHECK(n > 100 && lm_gpt_load_state(m2, path, &s2) == LM_ERR_FORMAT && st_t_msg("truncated"),
              "gpt state: a truncated state file is refused");
        CHECK(!memcmp(mcopy, m2->params.v, m2->params.total * sizeof(float)) && m2->params.step == 5,
              "gpt state: ... and the model is untouched");
        free(mcopy);
        free(img);
    }
    remove(state);
    lm_clear_error();
    CHECK(lm_gpt_load_state(m2, path, &s2) == LM_ERR_IO, "gpt state: a missing state file");
    lm_gpt_free(m);
    lm_gpt_free(m2);
}

/* lm_gpt_save_with_state: the weights and their state as one commit. A save stopped
   between its two renames (simulated: the new weights in place, their state only in
   PATH.state.tmp) is finished by lm_gpt_load_state; a PATH.state.tmp that is not the
   model's is not taken. (make test-faults fails and kills every step of it.) */
static char t_logged[512];
static void t_log_capture(void *user, const char *msg) {
    (void)user;
    snprintf(t_logged, sizeof t_logged, "%s", msg);
}
static void test_st_gpt_save_pair(void) {
    lm_gpt *a = st_t_model(1, 8, 2, 4, 16, 41), *b = st_t_model(1, 8, 2, 4, 16, 42), *m;
    const char *path = st_t_path("pair.safetensors"), *other = st_t_path("other.safetensors");
    char state[320], tmp[330], other_state[330];
    lm_train_state s1, s2, got;
    size_t i;
    int k, same = 1;
    if (!a || !b) { CHECK(0, "gpt pair: models"); return; }
    for (i = 0; i < b->params.total; i++) { b->params.m[i] = 0.5f * (float)i; b->params.v[i] = 1.0f; }
    b->params.step = 9;
    s1.step = 1; s1.data_pos = 10; s1.rng = 100;
    s2.step = 2; s2.data_pos = 20; s2.rng = 200;
    snprintf(state, sizeof state, "%s.state", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", state);
    snprintf(other_state, sizeof other_state, "%s.state", other);
    CHECK(lm_gpt_save_with_state(a, path, &s1) == LM_OK && t_exists(state) && !t_exists(tmp),
          "gpt pair: saved, no temporary file");
    m = lm_gpt_load(path, 0);
    CHECK(m && lm_gpt_load_state(m, path, &got) == LM_OK && got.step == 1 && got.rng == 100,
          "gpt pair: loads back");
    lm_gpt_free(m);
    /* stopped between the renames: b's weights renamed into place, b's state not yet */
    CHECK(lm_gpt_save_with_state(b, other, &s2) == LM_OK && rename(other, path) == 0 &&
          rename(other_state, tmp) == 0, "gpt pair: a save stopped between its renames");
    m = lm_gpt_load(path, 0);
    memset(&got, 0, sizeof got);
    lm_set_log(t_log_capture, NULL);
    CHECK(m && lm_gpt_load_state(m, path, &got) == LM_OK && got.step == 2 && got.rng == 200 &&
          m->params.step == 9, "gpt pair: loading the state finishes the save from PATH.state.tmp");
    for (k = 0; m && k < m->params.n; k++) {      /* (the gaps between tensors are no part) */
        size_t off = (size_t)(m->params.t[k].data - m->params.data);
        same &= !memcmp(m->params.m + off, b->params.m + off, (size_t)m->params.t[k].size * sizeof(float));
    }
    CHECK(m && same, "gpt pair: ... with the moments of that save");
    lm_set_log(NULL, NULL);
    CHECK(strstr(t_logged, "finished a save") != NULL, "gpt pair: ... and says so through the log hook");
    CHECK(t_exists(state) && !t_exists(tmp), "gpt pair: ... and renames it into place");
    lm_gpt_free(m);
    /* a stray PATH.state.tmp of other weights is never taken */
    CHECK(lm_gpt_save_state(a, path, &s1) == LM_OK && rename(state, tmp) == 0, "gpt pair: a stray state");
    m = lm_gpt_load(path, 0);
    lm_clear_error();
    CHECK(m && lm_gpt_load_state(m, path, &got) == LM_ERR_IO && st_t_msg("cannot open") &&
          m->params.step == 0 && t_exists(tmp), "gpt pair: a state.tmp of other weights is refused");
    lm_gpt_free(m);
    remove(tmp);
    remove(path);
    lm_gpt_free(a);
    lm_gpt_free(b);
}

static void run_st_tests(void) {
    if (!t_scratch_make(&st_t_scratch, "/tmp/lm_st_XXXXXX")) { CHECK(0, "st: cannot make a temporary directory"); return; }
    test_st_halves();
    test_st_read_handmade();
    test_st_write_roundtrip();
    test_st_malformed();
    test_st_hostile();
    test_st_gpt_roundtrip();
    test_st_gpt_dtypes();
    test_st_gpt_hf_layout();
    test_st_gpt_hf_variants();
    test_st_gpt_malformed();
    test_st_gpt_atomic();
    test_st_gpt_state();
    test_st_gpt_save_pair();
    t_scratch_done(&st_t_scratch);   /* empty by now: every test removes its files */
}
/* Tokenizer tests: bytes, the Unicode classes and the pre-tokenizer, BPE training, our
   file format (round trips and hostile images), and GPT-2 exactness against ids produced
   by tools/gpt2_ref.py (GPT-2's algorithm in Python with the `regex` module). The GPT-2
   files are read from tests/gpt2/ relative to the directory the tests run in. */

/* Fill buf with n pseudo-random bytes; mode 0: anything, 1: text-like with some NULs,
   invalid UTF-8 and multi-byte characters. */
static void lm_t_tok_bytes(unsigned char *buf, size_t n, uint64_t seed, int mode) {
    static const char *const bits[] = {"the", " ", "  ", "\n", "'s", "'ll", "\t", "Ab",
        "9", "12", ",", "!?", "\xc3\xa9", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", "\xff",
        "\x80", "\xc3", "\xed\xa0\x80", "\0", " x", "ing"};
    lm_rng r = lm_rng_seed(seed);
    size_t i = 0;
    while (i < n) {
        if (mode == 0) { buf[i++] = (unsigned char)lm_rng_below(&r, 256); continue; }
        {
            const char *b = bits[lm_rng_below(&r, sizeof bits / sizeof bits[0])];
            size_t len = b[0] ? strlen(b) : 1, k;
            for (k = 0; k < len && i < n; k++) buf[i++] = (unsigned char)b[k];
        }
    }
}

/* decode(encode(x)) == x for text[0..n); returns 1 when it holds. */
static int lm_t_tok_roundtrip(const lm_tokenizer *t, const unsigned char *text, size_t n) {
    int *ids = (int *)malloc((n + 1) * sizeof *ids);
    unsigned char *back = (unsigned char *)malloc(n + 1);
    long m = lm_tok_encode(t, text, n, ids, n), b = -1;
    int ok;
    if (m >= 0 && (size_t)m <= n) b = lm_tok_decode(t, ids, (size_t)m, back, n);
    ok = b == (long)n && (n == 0 || !memcmp(back, text, n));
    free(ids);
    free(back);
    return ok;
}

static void test_tok_bytes(void) {
    lm_tokenizer *t = lm_tok_bytes();
    unsigned char text[4096], back[4096];
    int ids[4096], bad = 0, bad_id = 256, neg = -1;
    long m;
    size_t i;
    CHECK(t != NULL && lm_tok_vocab_size(t) == 256, "bytes: vocabulary of 256");
    if (!t) return;
    for (i = 0; i < 256; i++) text[i] = (unsigned char)i;
    lm_t_tok_bytes(text + 256, sizeof text - 256, 1, 0);
    m = lm_tok_encode(t, text, sizeof text, ids, sizeof text);
    for (i = 0; i < sizeof text; i++) bad += ids[i] != text[i];
    CHECK(m == (long)sizeof text && bad == 0, "bytes: id = byte, NUL and 0x80..0xff too");
    m = lm_tok_decode(t, ids, sizeof text, back, sizeof back);
    CHECK(m == (long)sizeof text && !memcmp(back, text, sizeof text), "bytes: round trip");
    ids[0] = ids[1] = ids[2] = -7;
    m = lm_tok_encode(t, text, 100, ids, 2);
    CHECK(m == 100 && ids[0] == 0 && ids[1] == 1 && ids[2] == -7,
          "bytes: encode reports the full count but writes only cap ids");
    CHECK(lm_tok_decode(t, &bad_id, 1, back, 4) == LM_ERR_ARG &&
          lm_tok_decode(t, &neg, 1, back, 4) == LM_ERR_ARG, "bytes: ids 256 and -1 refused");
    CHECK(lm_tok_encode(NULL, text, 1, ids, 1) == LM_ERR_ARG &&
          lm_tok_encode(t, NULL, 1, ids, 1) == LM_ERR_ARG &&
          lm_tok_encode(t, NULL, 0, NULL, 0) == 0, "bytes: NULL arguments");
    lm_tok_free(t);
    lm_tok_free(NULL);
}

static void test_tok_unicode(void) {
    static const struct { uint32_t cp; int cls; } known[] = {
        {'a', LM__CL_LETTER}, {'Z', LM__CL_LETTER}, {'7', LM__CL_NUMBER}, {' ', LM__CL_SPACE},
        {0x0B, LM__CL_SPACE}, {0x1C, LM__CL_OTHER}, {0x1F, LM__CL_OTHER},
        {0x85, LM__CL_SPACE}, {0xA0, LM__CL_SPACE}, {0xAA, LM__CL_LETTER},
        {0xB2, LM__CL_NUMBER}, {0xBD, LM__CL_NUMBER}, {0xD7, LM__CL_OTHER},
        {0xE9, LM__CL_LETTER}, {0x2003, LM__CL_SPACE}, {0x200B, LM__CL_OTHER},
        {0x2028, LM__CL_SPACE}, {0x2167, LM__CL_NUMBER}, {0x3000, LM__CL_SPACE},
        {0x3007, LM__CL_NUMBER}, {0x4F60, LM__CL_LETTER}, {0x0663, LM__CL_NUMBER},
        {0xAC00, LM__CL_LETTER}, {0xD7A3, LM__CL_LETTER}, {0x1F600, LM__CL_OTHER},
        {0x1D7CE, LM__CL_NUMBER}, {0x20000, LM__CL_LETTER}, {0x11F02, LM__CL_LETTER},
        {0x10FFFF, LM__CL_OTHER}};
    static const struct { const char *s; int len; } utf8[] = {
        {"\x7f", 1}, {"\xc2\x80", 2}, {"\xdf\xbf", 2}, {"\xe0\xa0\x80", 3},
        {"\xed\x9f\xbf", 3}, {"\xee\x80\x80", 3}, {"\xf0\x90\x80\x80", 4},
        {"\xf4\x8f\xbf\xbf", 4}, {"\xc0\xaf", 0}, {"\xc1\xbf", 0}, {"\xe0\x9f\xbf", 0},
        {"\xed\xa0\x80", 0}, {"\xf0\x8f\xbf\xbf", 0}, {"\xf4\x90\x80\x80", 0},
        {"\xf5\x80\x80\x80", 0}, {"\xff", 0}, {"\x80", 0}, {"\xe2\x82", 0}, {"\xe2\x28\xa1", 0}};
    int bad = 0, c;
    size_t i;
    for (c = 0; c < 128; c++) bad += lm__tok_ascii[c] - '0' != lm__tok_uni_class((uint32_t)c);
    CHECK(bad == 0, "unicode: the ASCII table agrees with the runs");
    for (i = 0, bad = 0; i < sizeof known / sizeof known[0]; i++)
        bad += lm__tok_uni_class(known[i].cp) != known[i].cls;
    CHECK(bad == 0, "unicode: classes of known code points (L, N, White_Space, other)");
    for (i = 0, bad = 0; i < sizeof utf8 / sizeof utf8[0]; i++) {
        uint32_t cp;
        const unsigned char *s = (const unsigned char *)utf8[i].s;
        bad += lm__utf8_decode(s, strlen(utf8[i].s), &cp) != utf8[i].len;
    }
    CHECK(bad == 0, "unicode: strict UTF-8 (overlong, surrogate, > U+10FFFF, truncated)");
}

static void test_tok_pretok(void) {
    /* expected piece lengths, from Python's regex.findall with GPT-2's pattern */
    static const struct { const char *s; int lens[12]; } cases[] = {
        {"Hello world's  end\n", {5, 6, 2, 1, 4, 1}},
        {"a  \tb\n\n c  ", {1, 2, 1, 1, 2, 2, 2}},
        {"don't 'S x''s 12ab3", {3, 2, 2, 1, 2, 2, 1, 3, 2, 1}},
        {" !!  ?x\xff\xfey\xc3\xa9z", {3, 1, 2, 1, 2, 4}},
        {"\xe2\x80\x83" "a\xe3\x80\x80 b", {3, 1, 3, 2}}};
    size_t c;
    int bad = 0;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const unsigned char *s = (const unsigned char *)cases[c].s;
        size_t n = strlen(cases[c].s), i = 0;
        int k = 0;
        while (i < n && k < 12) {
            size_t j = lm__tok_pretok_end(s, n, i);
            if ((int)(j - i) != cases[c].lens[k]) bad++;
            i = j;
            k++;
        }
        if (i != n || (k < 12 && cases[c].lens[k] != 0)) bad++;
    }
    CHECK(bad == 0, "pretok: GPT-2 pattern splits (contractions, spaces, invalid UTF-8)");
}

static void test_tok_train(void) {
    static const int want_l[4] = {'a', ' ', ' ', 258}, want_r[4] = {'b', 256, 'c', 'd'};
    static const int want_ids[3] = {256, 257, 259};
    const char *small = "ab ab ab cd";
    size_t n = 60000;
    unsigned char *text = (unsigned char *)malloc(n), *img1, *img2;
    lm_tokenizer *t = lm_tok_train(small, strlen(small), 300), *u;
    int ids[8], bad = 0, k;
    long m, s1, s2;
    /* pairs: (a,b) 3, (' ',a) 2, (' ',c) 1, (c,d) 1: then ties go to the smaller ids */
    CHECK(t && lm_tok_vocab_size(t) == 260, "train: stops when no pair is left");
    if (t) {
        for (k = 0; k < 4; k++) bad += t->merge_l[k] != want_l[k] || t->merge_r[k] != want_r[k];
        CHECK(bad == 0, "train: merges by count, ties to the smaller ids");
        m = lm_tok_encode(t, "ab ab cd", 8, ids, 8);
        CHECK(m == 3 && !memcmp(ids, want_ids, sizeof want_ids), "train: encode with merges");
        lm_tok_free(t);
    }
    /* runs of one byte merge from their left end: "aaaaaaa" -> aa aa aa a, then the tie
       between (aa, aa) and (aa, a), both twice, goes to the smaller right id */
    {
        static const int rl[5] = {'a', 256, ' ', 256, 259}, rr[5] = {'a', 'a', 257, 256, 257};
        t = lm_tok_train("aaaaaaa aaa", 11, 300);
        for (k = 0, bad = 0; t && k < 5; k++)
            bad += t->merge_l[k] != rl[k] || t->merge_r[k] != rr[k];
        CHECK(t && lm_tok_vocab_size(t) == 261 && bad == 0, "train: runs of one token");
        lm_tok_free(t);
    }
    lm_t_tok_bytes(text, n, 7, 1);
    t = lm_tok_train(text, n, 700);
    u = lm_tok_train(text, n, 700);
    CHECK(t && u && lm_tok_vocab_size(t) == 700, "train: reaches the vocabulary size");
    if (!t || !u) { lm_tok_free(t); lm_tok_free(u); free(text); return; }
    s1 = lm_tok_save_mem(t, NULL, 0);
    s2 = lm_tok_save_mem(u, NULL, 0);
    img1 = (unsigned char *)malloc((size_t)s1);
    img2 = (unsigned char *)malloc((size_t)s2);
    CHECK(s1 > 0 && s1 == s2 && lm_tok_save_mem(t, img1, (size_t)s1) == s1 &&
          lm_tok_save_mem(u, img2, (size_t)s2) == s2 && !memcmp(img1, img2, (size_t)s1),
          "train: deterministic (two runs give the same merges)");
    CHECK(lm_t_tok_roundtrip(t, text, n), "train: round trip on the training text");
    m = lm_tok_encode(t, text, n, NULL, 0);
    CHECK(m > 0 && (double)n / (double)m > 2.0, "train: compresses its training text");
    lm_t_tok_bytes(text, 5000, 8, 0);
    CHECK(lm_t_tok_roundtrip(t, text, 5000), "train: round trip on random bytes");
    free(img1);
    free(img2);
    lm_tok_free(t);
    lm_tok_free(u);
    t = lm_tok_train(text, 100, 256);
    CHECK(t && lm_tok_vocab_size(t) == 256 && lm_t_tok_roundtrip(t, text, 100),
          "train: vocab 256 is the byte tokenizer");
    lm_tok_free(t);
    CHECK(lm_tok_train(text, 100, 255) == NULL && lm_tok_train(NULL, 5, 300) == NULL,
          "train: bad arguments refused");
    t = lm_tok_train("", 0, 300);
    CHECK(t && lm_tok_vocab_size(t) == 256, "train: empty text");
    lm_tok_free(t);
    free(text);
}

static void test_tok_format(void) {
    static const char *const bad_images[] = {
        "", "lm-bpe", "lm-bpe 1\n", "lm-bpe 2\npretok gpt2\nmerges 0\n",
        "lm-bpe 01\npretok gpt2\nmerges 0\n", "LM-BPE 1\npretok gpt2\nmerges 0\n",
        "lm-bpe 1\npretok none\nmerges 0\n", "lm-bpe 1\npretok gpt2\nmerges 00\n",
        "lm-bpe 1\npretok gpt2\nmerges -1\n", "lm-bpe 1\npretok gpt2\nmerges 1\n",
        "lm-bpe 1\npretok gpt2\nmerges 999999999\n1 2\n",
        "lm-bpe 1\npretok gpt2\nmerges 1\n97 98\nx",
        "lm-bpe 1\npretok gpt2\nmerges 0\n\n",
        "lm-bpe 1\npretok gpt2\nmerges 1\n97 256\n",
        "lm-bpe 1\npretok gpt2\nmerges 1\n97  98\n",
        "lm-bpe 1\npretok gpt2\nmerges 1\n97 98 \n",
        "lm-bpe 1\npretok gpt2\nmerges 1\n097 98\n",
        "lm-bpe 1\npretok gpt2\nmerges 1\n97 98",
        "lm-bpe 1\npretok gpt2\nmerges 2\n97 98\n97 98\n",
        "lm-bpe 1\r\npretok gpt2\nmerges 0\n",
        /* each token doubles: the 11th would be 2048 bytes */
        ("lm-bpe 1\npretok gpt2\nmerges 11\n0 0\n256 256\n257 257\n258 258\n259 259\n"
         "260 260\n261 261\n262 262\n263 263\n264 264\n265 265\n")};
    const char *good = "lm-bpe 1\npretok gpt2\nmerges 3\n104 101\n256 108\n32 257\n";
    unsigned char text[3000], *img, *img2, probe[64];
    lm_tokenizer *t, *u;
    int bad = 0, crashes_ok = 1, ids[8];
    size_t i, n;
    long s, m;
    lm_rng r = lm_rng_seed(99);
    for (i = 0; i < sizeof bad_images / sizeof bad_images[0]; i++) {
        lm_clear_error();
        t = lm_tok_load_mem(bad_images[i], strlen(bad_images[i]));
        if (t || !strcmp(lm_error(), "no error")) bad++;
        lm_tok_free(t);
    }
    CHECK(bad == 0, "format: malformed images are refused with a message");
    t = lm_tok_load_mem(good, strlen(good));
    /* " hel" is one token; " hello" merges h e, then he l, then ' ' hel: " hel" l o */
    m = t ? lm_tok_encode(t, " hel hello", 10, ids, 8) : -1;
    CHECK(t && lm_tok_vocab_size(t) == 259 && m == 4 && ids[0] == 258 && ids[1] == 258 &&
          ids[2] == 'l' && ids[3] == 'o', "format: a hand-written file loads and encodes");
    lm_tok_free(t);
    lm_t_tok_bytes(text, sizeof text, 3, 1);
    t = lm_tok_train(text, sizeof text, 400);
    if (!t) { CHECK(0, "format: training"); return; }
    s = lm_tok_save_mem(t, NULL, 0);
    img = (unsigned char *)malloc((size_t)s);
    img2 = (unsigned char *)malloc((size_t)s);
    memset(probe, 0x5a, sizeof probe);
    CHECK(lm_tok_save_mem(t, probe, 10) == s && probe[0] == 0x5a,
          "format: save_mem reports the size and writes nothing when short");
    lm_tok_save_mem(t, img, (size_t)s);
    u = lm_tok_load_mem(img, (size_t)s);
    CHECK(u && lm_tok_save_mem(u, img2, (size_t)s) == s && !memcmp(img, img2, (size_t)s) &&
          lm_t_tok_roundtrip(u, text, sizeof text), "format: save, load, save is stable");
    lm_tok_free(u);
    /* every proper prefix of a valid image is refused */
    for (n = 0, bad = 0; n < (size_t)s; n++) {
        u = lm_tok_load_mem(img, n);
        bad += u != NULL;
        lm_tok_free(u);
    }
    CHECK(bad == 0, "format: every truncation is refused");
    /* random corruption: refused, or loads into a tokenizer that still round-trips */
    for (i = 0, bad = 0; i < 400; i++) {
        memcpy(img2, img, (size_t)s);
        img2[lm_rng_below(&r, (uint32_t)s)] =
            (unsigned char)"0123456789 \nx\0"[lm_rng_below(&r, 14)];
        u = lm_tok_load_mem(img2, (size_t)s);
        if (u && !lm_t_tok_roundtrip(u, text, 500)) bad++;
        lm_tok_free(u);
    }
    CHECK(bad == 0 && crashes_ok, "format: corrupted images fail cleanly or still work");
#ifndef LM_NO_STDIO
    {
        const char *path = "lm_test_tok.tmp";
        CHECK(lm_tok_save(t, path) == LM_OK, "format: save to a file");
        u = lm_tok_load(path);
        CHECK(u && lm_tok_save_mem(u, img2, (size_t)s) == s && !memcmp(img, img2, (size_t)s),
              "format: file round trip");
        lm_tok_free(u);
        remove(path);
        CHECK(lm_tok_load("no/such/lm_tok_file") == NULL, "format: missing file");
    }
#endif
    free(img);
    free(img2);
    lm_tok_free(t);
}

/* Generated by tools/gpt2_ref.py DIR emit-c: GPT-2 ids of fixed texts. */
static const struct { const char *text; int n, nids, first; } lm_t_gpt2_cases[] = {
    {"Hello world", 11, 2, 0},
    {"Hello, world! How are you doing today\077", 38, 10, 2},
    {"The quick brown fox jumps over the lazy dog.", 44, 10, 12},
    {"I'm here, you're there, we've been, he'll go, she'd say, it's, don't", 68, 25, 22},
    {"IT'S JOHN'S DOG'S 'S 'T 'RE", 27, 16, 47},
    {"'s's'''s 'sx 'll'lll ''re", 25, 14, 63},
    {"x  y   z    w\011\011v\012\012u \012 v \011\012", 26, 22, 77},
    {"trailing spaces   ", 18, 6, 99},
    {"   leading", 10, 3, 105},
    {"\012\012\012", 3, 2, 108},
    {" ", 1, 1, 110},
    {"a", 1, 1, 111},
    {"", 0, 0, 112},
    {"tabs\011and\015\012CRLF\015\012  indented\012\011code();\012", 36, 19, 112},
    {"12345 678 9.5 3,141 1e10 0x1F 007", 33, 19, 131},
    {"x=1;y=2;if(x<y){return x*y;}", 28, 19, 150},
    {"def f(a, b):\012    return a + b  # sum\012", 37, 19, 169},
    {"caf\303\251 na\303\257ve r\303\251sum\303\251 \303\274ber Stra\303\237e \303\205ngstr\303\266m", 46, 19, 188},
    {"\344\275\240\345\245\275\357\274\214\344\270\226\347\225\214\343\200\202\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210", 42, 22, 207},
    {"\355\225\234\352\265\255\354\226\264 \321\200\321\203\321\201\321\201\320\272\320\270\320\271 \316\225\316\273\316\273\316\267\316\275\316\271\316\272\316\254 \327\242\327\221\327\250\327\231\327\252 \330\247\331\204\330\271\330\261\330\250\331\212\330\251", 67, 40, 229},
    {"emoji \360\237\230\200\360\237\221\215\360\237\217\275 \360\237\207\253\360\237\207\267 \342\235\244\357\270\217!", 35, 19, 269},
    {"\302\275 \342\205\225 \331\243\331\244 \342\205\247 \302\262\302\263 \343\200\207", 24, 18, 288},
    {"nbsp\302\240here\342\200\203em\343\200\200ideo\342\200\250line\302\205nel", 34, 16, 306},
    {"\034\035\036\037 are not spaces", 19, 7, 322},
    {"NUL\000byte\000\000end", 13, 7, 329},
    {"bad \377\376 utf8 \303 \342\202 \355\240\200 \364\220\200\200 \300\257 \200x", 31, 25, 336},
    {"\342\202\254\342\202", 5, 3, 361},
    {"<|endoftext|>", 13, 7, 364},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 80, 20, 371},
    {"---------------------------------------------------------------------- =================================", 104, 3, 391},
    {"supercalifragilisticexpialidocious antidisestablishmentarianism", 63, 16, 394},
    {"First Citizen:\012Before we proceed any further, hear me speak.\012\012All:\012Speak, speak.\012", 81, 25, 410},
};
static const int lm_t_gpt2_ids[435] = {
    15496, 995, 15496, 11, 995, 0, 1374, 389, 345, 1804, 1909, 30,
    464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 40, 1101,
    994, 11, 345, 821, 612, 11, 356, 1053, 587, 11, 339, 1183,
    467, 11, 673, 1549, 910, 11, 340, 338, 11, 836, 470, 2043,
    6, 50, 39263, 6, 50, 360, 7730, 6, 50, 705, 50, 705,
    51, 705, 2200, 338, 338, 7061, 6, 82, 705, 82, 87, 705,
    297, 1183, 75, 10148, 260, 87, 220, 331, 220, 220, 1976, 220,
    220, 220, 266, 197, 197, 85, 198, 198, 84, 220, 198, 410,
    220, 197, 198, 9535, 4386, 9029, 220, 220, 220, 220, 220, 3756,
    628, 198, 220, 64, 8658, 82, 197, 392, 201, 198, 34, 7836,
    37, 201, 198, 220, 773, 4714, 198, 197, 8189, 9783, 198, 10163,
    2231, 718, 3695, 860, 13, 20, 513, 11, 23756, 352, 68, 940,
    657, 87, 16, 37, 3571, 22, 87, 28, 16, 26, 88, 28,
    17, 26, 361, 7, 87, 27, 88, 19953, 7783, 2124, 9, 88,
    46956, 4299, 277, 7, 64, 11, 275, 2599, 198, 220, 220, 220,
    1441, 257, 1343, 275, 220, 1303, 2160, 198, 66, 1878, 2634, 41492,
    40560, 16345, 2634, 6184, 120, 527, 15195, 39683, 68, 6184, 227, 782,
    2536, 9101, 76, 19526, 254, 25001, 121, 171, 120, 234, 10310, 244,
    45911, 234, 16764, 33768, 98, 17312, 105, 45739, 252, 5641, 24336, 25084,
    43302, 47991, 250, 166, 113, 255, 168, 244, 112, 220, 21169, 35072,
    21727, 21727, 31583, 18849, 140, 117, 7377, 243, 39377, 39377, 138, 115,
    26180, 29945, 43000, 138, 105, 14360, 95, 49603, 37778, 33951, 103, 28981,
    44690, 26897, 39848, 22654, 45632, 368, 31370, 30325, 222, 41840, 235, 8582,
    237, 121, 12520, 229, 104, 8582, 229, 115, 43074, 97, 37929, 0,
    23141, 2343, 227, 243, 18923, 96, 149, 97, 2343, 227, 100, 1587,
    110, 126, 111, 220, 5099, 229, 77, 24145, 1849, 1456, 447, 225,
    368, 5099, 222, 1651, 447, 101, 1370, 126, 227, 4954, 216, 217,
    218, 219, 389, 407, 9029, 45, 6239, 188, 26327, 188, 188, 437,
    14774, 220, 187, 186, 3384, 69, 23, 6184, 2343, 224, 220, 169,
    254, 222, 220, 176, 238, 222, 222, 220, 124, 107, 220, 222,
    87, 26391, 158, 224, 27, 91, 437, 1659, 5239, 91, 29, 24794,
    24794, 24794, 24794, 24794, 24794, 24794, 24794, 24794, 24794, 24794, 24794, 24794,
    24794, 24794, 24794, 24794, 24794, 24794, 24794, 10097, 23031, 46111, 16668, 9948,
    361, 22562, 346, 396, 501, 42372, 498, 312, 32346, 1885, 29207, 44390,
    3699, 1042, 5962, 22307, 25, 198, 8421, 356, 5120, 597, 2252, 11,
    3285, 502, 2740, 13, 198, 198, 3237, 25, 198, 5248, 461, 11,
    2740, 13, 198,
};

static void test_tok_gpt2(void) {
    lm_tokenizer *t = lm_tok_load_gpt2("tests/gpt2");
    unsigned char text[20000], back[32];
    int ids[400], eot = 50256, bad = 0, nbad = 0;
    size_t c, k;
    long m;
    CHECK(t != NULL, "gpt2: tests/gpt2 loads (run the tests from the repository root)");
    if (!t) { printf("  (%s)\n", lm_error()); return; }
    CHECK(lm_tok_vocab_size(t) == 50257, "gpt2: 50257 ids");
    for (c = 0; c < sizeof lm_t_gpt2_cases / sizeof lm_t_gpt2_cases[0]; c++) {
        const int *want = lm_t_gpt2_ids + lm_t_gpt2_cases[c].first;
        m = lm_tok_encode(t, lm_t_gpt2_cases[c].text, (size_t)lm_t_gpt2_cases[c].n, ids, 400);
        if (m != lm_t_gpt2_cases[c].nids) { bad++; continue; }
        for (k = 0; k < (size_t)m; k++) nbad += ids[k] != want[k];
        if (!lm_t_tok_roundtrip(t, (const unsigned char *)lm_t_gpt2_cases[c].text,
                                (size_t)lm_t_gpt2_cases[c].n)) bad++;
    }
    CHECK(bad == 0 && nbad == 0, "gpt2: ids equal the reference encoder's on fixed texts");
    lm_t_tok_bytes(text, sizeof text, 11, 1);
    CHECK(lm_t_tok_roundtrip(t, text, sizeof text), "gpt2: round trip on odd text");
    lm_t_tok_bytes(text, sizeof text, 12, 0);
    CHECK(lm_t_tok_roundtrip(t, text, sizeof text), "gpt2: round trip on random bytes");
    {   /* a long text (encode then caches pre-tokens) gives the ids of its pre-tokens
           encoded one by one (no cache): a pre-token alone splits into itself */
        size_t n = 100000, i = 0, j, got = 0;
        unsigned char *big = (unsigned char *)malloc(n);
        int *all = (int *)malloc(n * sizeof *all), *one = (int *)malloc(n * sizeof *one);
        lm_t_tok_bytes(big, n, 13, 1);
        m = lm_tok_encode(t, big, n, all, n);
        for (bad = 0; i < n && m > 0; i = j) {
            long q, e;
            j = lm__tok_pretok_end(big, n, i);
            e = lm_tok_encode(t, big + i, j - i, one, n);
            for (q = 0; q < e; q++, got++) bad += got >= (size_t)m || all[got] != one[q];
        }
        CHECK(m > 0 && got == (size_t)m && bad == 0,
              "gpt2: the cache for long texts changes nothing");
        free(big);
        free(all);
        free(one);
    }
    m = lm_tok_decode(t, &eot, 1, back, sizeof back);
    CHECK(m == 13 && !memcmp(back, "<|endoftext|>", 13), "gpt2: 50256 decodes to <|endoftext|>");
    m = lm_tok_encode(t, "<|endoftext|>", 13, ids, 400);   /* "<" "|" "end" "of" "text" "|" ">" */
    CHECK(m == 7 && ids[0] == 27 && ids[1] == 91 && ids[2] == 437 && ids[3] == 1659 &&
          ids[4] == 5239 && ids[5] == 91 && ids[6] == 29,
          "gpt2: the text <|endoftext|> is plain text, not id 50256");
    CHECK(lm_tok_save_mem(t, NULL, 0) == LM_ERR_ARG, "gpt2: not saved in the BPE format");
    lm_tok_free(t);
}

/* A small GPT-2 style vocabulary written here: the 256 byte tokens (most through \u
   escapes), "ab" and "abc", with the merges "a b" and "ab c". */
static size_t lm_t_gpt2_json(char *out, const char *extra) {
    int u2b[LM__GPT2_NCHAR], b2u[256], b;
    size_t n = 0;
    lm__gpt2_unmap(u2b);
    for (b = 0; b < LM__GPT2_NCHAR; b++) if (u2b[b] >= 0) b2u[u2b[b]] = b;
    out[n++] = '{';
    for (b = 0; b < 256; b++) {
        int cp = b2u[b];
        if (cp == '"' || cp == '\\') n += (size_t)sprintf(out + n, "\"\\%c\": %d, ", cp, b);
        else if (cp >= 'a' && cp <= 'z') n += (size_t)sprintf(out + n, "\"%c\":%d,", cp, b);
        else n += (size_t)sprintf(out + n, "\"\\u%04X\" : %d ,\n", cp, b);
    }
    n += (size_t)sprintf(out + n, "\"ab\": 256, \"abc\": 257%s}", extra);
    return n;
}

static void test_tok_gpt2_files(void) {
    static const char *const bad_json[] = {
        "\"\\x\": 258", "\"\\ud800\": 258", "\"\\udc00\": 258", "\"\\u0200\": 258",
        "\"\\u00e9\\u00e9\": 258, \"\xc3\xa9\xc3\xa9\": 259", "\"a\": 258", "\"zz\": 259",
        "\"zz\": 0258", "\"zz\": -258", "\"zz\": 258.0", "\"zz\": 258e0",
        "\"\\ud83d\\ude00\": 258", "\"zz\": 258,", "\"z\tz\": 258", "\"zz\" 258",
        "\"\xc3\": 258", "\"\xed\xa0\x80\": 258", "\"zz\": 258 \"yy\": 259", "\"zz\": 258}"};
    static const char *const bad_bpe[] = {
        "", "a b\n", "#version: 0.2\nab\n", "#version: 0.2\na  b\n", "#version: 0.2\n a b\n",
        "#version: 0.2\na b \n", "#version: 0.2\na b\n\nab c\n", "#version: 0.2\na b\na b\n",
        "#version: 0.2\nab x\n", "#version: 0.2\na b\r\n", "#version: 0.2\na q\n",
        "#version: 0.2\na \xc3\n"};
    const char *bpe = "#version: 0.2\na b\nab c\n";
    char *json = (char *)malloc(16384), *json2 = (char *)malloc(16384);
    size_t n = lm_t_gpt2_json(json, ""), i, k;
    lm_tokenizer *t = lm_tok_load_gpt2_mem(json, n, bpe, strlen(bpe));
    int ids[8], bad = 0;
    long m = t ? lm_tok_encode(t, "abcab\"\\", 7, ids, 8) : -1;
    /* the byte tokens have id = byte; "abcab" -> abc ab, then the punctuation run */
    CHECK(t && lm_tok_vocab_size(t) == 258 && m == 4 && ids[0] == 257 && ids[1] == 256 &&
          ids[2] == '"' && ids[3] == '\\',
          "gpt2 files: a small vocabulary loads and merges (escapes, raw and \\u)");
    lm_tok_free(t);
    /* a merge list whose later rank makes a pair of an earlier rank: GPT-2 merges every
       "a b" first, so "abab" is ab ab, not aba b */
    k = lm_t_gpt2_json(json2, ", \"aba\": 258");
    t = lm_tok_load_gpt2_mem(json2, k, "#version: 0.2\nab a\na b\n", 22);
    m = t ? lm_tok_encode(t, "abab", 4, ids, 8) : -1;
    CHECK(m == 2 && ids[0] == 256 && ids[1] == 256, "gpt2 files: a rank is finished first");
    lm_tok_free(t);
    for (i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        k = lm_t_gpt2_json(json2, "");
        k = (size_t)sprintf(json2 + k - 1, ", %s}", bad_json[i]) + k - 1;
        t = lm_tok_load_gpt2_mem(json2, k, bpe, strlen(bpe));
        if (t) { bad++; printf("  accepted bad json %d\n", (int)i); }
        lm_tok_free(t);
    }
    CHECK(bad == 0, "gpt2 files: malformed encoder.json refused");
    for (i = 0, bad = 0; i < sizeof bad_bpe / sizeof bad_bpe[0]; i++) {
        t = lm_tok_load_gpt2_mem(json, n, bad_bpe[i], strlen(bad_bpe[i]));
        if (t) { bad++; printf("  accepted bad vocab.bpe %d\n", (int)i); }
        lm_tok_free(t);
    }
    CHECK(bad == 0, "gpt2 files: malformed vocab.bpe refused");
    for (k = 0, bad = 0; k < n; k++) {
        t = lm_tok_load_gpt2_mem(json, k, bpe, strlen(bpe));
        bad += t != NULL;
        lm_tok_free(t);
    }
    CHECK(bad == 0, "gpt2 files: every truncation of encoder.json refused");
    free(json);
    free(json2);
}

static void run_tok_tests(void) {
    test_tok_bytes();
    test_tok_unicode();
    test_tok_pretok();
    test_tok_train();
    test_tok_format();
    test_tok_gpt2();
    test_tok_gpt2_files();
}
/* Vector math tests: every kernel of vec_impl.inc against a double-precision reference,
   on both of its paths (lm__vec_simd = 1: the SIMD loop; 0: the scalar loop alone), over
   sweeps, random values and the special values (0, -0, denormals, huge, +-inf, NaN);
   then odd lengths and unaligned pointers, where the SIMD path's result must agree with
   the scalar path's and nothing past the end may be written.

   Errors are in ulps of the correctly rounded result (a denormal's ulp is 2^-149), so
   "worst 1.3 ulp" means the farthest result was 1.3 float steps from the true value.
   One line per function prints the measured figures. */

#define TEST_VEC_N 131072              /* values per sweep: a multiple of every LM__VW     */

/* the vector path is lm_simd_name(), or the 1-lane abstraction in a scalar build */
static const char *test_vec__vname(void) { return LM__VW > 1 ? lm_simd_name() : "1-lane"; }
static const char *test_vec__path(void) { return lm__vec_simd ? test_vec__vname() : "scalar"; }

/* armv7 NEON always flushes denormals to zero, inputs and results (its scalar VFP does
   not). On that path a result that is or passes through a denormal may come out as 0. */
#if defined(LM_NEON) && !defined(__aarch64__)
#define TEST_VEC_FTZ 1
#else
#define TEST_VEC_FTZ 0
#endif
static int test_vec__flushed(float got, double want) {
    return TEST_VEC_FTZ && lm__vec_simd && got == 0 && fabs(want) < 16 * FLT_MIN;
}

/* |got - want| in ulps of want rounded to float; 0 for matching NaNs and infinities, 1e30
   for a NaN, infinity or finite value where the other was expected. */
static double test_vec__ulps(float got, double want) {
    double a = fabs(want), ulp;
    int e;
    if (test_vec__flushed(got, want)) return 0;
    if (want != want) return got != got ? 0 : 1e30;
    if (got != got) return 1e30;
    if (a >= ldexp(1.0, 128) - ldexp(1.0, 103))            /* rounds to infinity */
        return isinf(got) && (got > 0) == (want > 0) ? 0 : 1e30;
    if (isinf(got)) return 1e30;
    if (a < ldexp(1.0, -126)) ulp = ldexp(1.0, -149);
    else { frexp(a, &e); ulp = ldexp(1.0, e - 24); }
    return fabs((double)got - want) / ulp;
}

/* Floats between a and b (0 when both are NaN or equal). */
static double test_vec__steps(float a, float b) {
    int32_t ia, ib;
    if (a != a || b != b) return (a != a) == (b != b) ? 0 : 1e30;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;                         /* order the negatives */
    if (ib < 0) ib = INT32_MIN - ib;
    return fabs((double)ia - (double)ib);
}

/* Inputs: n values swept evenly over [lo, hi], then random ones whose magnitudes are
   spread evenly in log scale from 1e-30 to hi, then the specials; n a multiple of 16. */
static const float test_vec__specials[] = {
    0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, -1e-38f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 0.5f, -0.5f,
    1.0f, -1.0f, 0.625f, -0.625f, 0.62499994f, -0.62499994f, 9.0f, -9.0f, 9.02f, -9.02f,
    10.0f, -10.0f, 20.0f, -20.0f, 88.7228317f, 88.72284f, 89.0f, -87.33f, -87.34f,
    -100.0f, -103.9f, -103.98f, -104.0f, -110.0f, 1e10f, -1e10f, FLT_MAX, -FLT_MAX};
/* ... and +-inf and NaN, which some compilers (tcc) cannot put in a static initializer */
#define TEST_VEC_NSPECIAL ((int)(sizeof test_vec__specials / sizeof test_vec__specials[0]) + 3)

static void test_vec__inputs(float *x, int n, float lo, float hi, uint64_t seed) {
    lm_rng r = lm_rng_seed(seed);
    int i, nsweep = n / 2, nspec = TEST_VEC_NSPECIAL;
    for (i = 0; i < nsweep; i++) x[i] = lo + (hi - lo) * (float)i / (float)(nsweep - 1);
    for (; i < n - nspec; i++) {
        double mag = exp(log(1e-30) + (log((double)hi) - log(1e-30)) * lm_rng_uniform(&r));
        x[i] = (float)(lm_rng_uniform(&r) < 0.5f ? -mag : mag);
    }
    for (; i < n - 3; i++) x[i] = test_vec__specials[i - (n - nspec)];
    x[n - 3] = (float)INFINITY;
    x[n - 2] = -(float)INFINITY;
    x[n - 1] = (float)NAN;
}

/* ---------------------------------------------------------------------------------------
   exp, tanh, sigmoid: ulps against libm in double
   --------------------------------------------------------------------------------------- */
typedef void (*test_vec__unary_fn)(const float *x, float *y, int n);

/* Run fn over the inputs on both paths; check the worst ulp error of each against tol,
   and that the two paths agree to within agree ulps. */
static void test_vec__unary(const char *name, test_vec__unary_fn fn, double (*ref)(double),
                            float lo, float hi, double tol, double agree) {
    float *x = (float *)malloc(TEST_VEC_N * sizeof(float));
    float *y[2];
    double worst[2] = {0, 0}, apart = 0;
    float at[2] = {0, 0};
    char msg[200];
    int i, p;
    y[0] = (float *)malloc(TEST_VEC_N * sizeof(float));
    y[1] = (float *)malloc(TEST_VEC_N * sizeof(float));
    if (!x || !y[0] || !y[1]) {
        CHECK(0, "vec: out of memory");
        free(x); free(y[0]); free(y[1]);
        return;
    }
    test_vec__inputs(x, TEST_VEC_N, lo, hi, 7);
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        fn(x, y[p], TEST_VEC_N);
        for (i = 0; i < TEST_VEC_N; i++) {
            double u = test_vec__ulps(y[p][i], ref((double)x[i]));
            if (u > worst[p]) { worst[p] = u; at[p] = x[i]; }
        }
        snprintf(msg, sizeof msg, "vec: %s (%s path) worst %.2f ulp at x = %.9g (limit %g)",
                 name, test_vec__path(), worst[p], (double)at[p], tol);
        CHECK(worst[p] <= tol, msg);
    }
    lm__vec_simd = 1;
    for (i = 0; i < TEST_VEC_N; i++) {
        double s = test_vec__flushed(y[0][i], y[1][i]) ? 0 : test_vec__steps(y[0][i], y[1][i]);
        if (s > apart) apart = s;
    }
    snprintf(msg, sizeof msg, "vec: %s %s and scalar paths differ by up to %.0f ulp (limit %g)",
             name, test_vec__vname(), apart, agree);
    CHECK(apart <= agree, msg);
    printf("  vec: %-8s worst %.2f ulp (%s), %.2f ulp (scalar); paths differ by <= %.0f ulp\n",
           name, worst[0], test_vec__vname(), worst[1], apart);
    free(x); free(y[0]); free(y[1]);
}

/* The special values once more, exactly, on both paths. Arrays of 16 (the rest zeros),
   so that the vector loop of every ISA sees them. */
static void test_vec_exp(void) {
    float x[16] = {0.0f, -0.0f, 88.7228317f, 88.72284f, -103.98f, 0, 0, 0}, y[16];
    char msg[160];
    int p;
    x[5] = (float)INFINITY; x[6] = -(float)INFINITY; x[7] = (float)NAN;
    test_vec__unary("exp", lm__vexp, exp, -105.0f, 90.0f, 2.0, 2.0);
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        lm__vexp(x, y, 16);
        snprintf(msg, sizeof msg, "vec: exp (%s path) of 0, -0, 88.72283 (finite), 88.72284 "
                 "(inf), -103.98 (0), inf, -inf, NaN", test_vec__path());
        CHECK(y[0] == 1.0f && y[1] == 1.0f && y[2] < FLT_MAX && y[2] > 3.4e38f && isinf(y[3]) &&
              y[4] == 0.0f && isinf(y[5]) && y[5] > 0 && y[6] == 0.0f && y[7] != y[7], msg);
    }
    lm__vec_simd = 1;
}

static void test_vec_tanh(void) {
    float x[16] = {-0.0f, 1e-40f, 9.5f, -11.0f, 1e30f, 0, 0, 0}, y[16];
    char msg[160];
    int p;
    x[5] = (float)INFINITY; x[6] = -(float)INFINITY; x[7] = (float)NAN;
    test_vec__unary("tanh", lm__vtanh, tanh, -20.0f, 20.0f, 3.0, 3.0);
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        lm__vtanh(x, y, 16);
        snprintf(msg, sizeof msg, "vec: tanh (%s path) of -0, 1e-40, 9.5, -11, 1e30, inf, -inf, "
                 "NaN", test_vec__path());
        CHECK(y[0] == 0.0f && signbit(y[0]) && (y[1] == x[1] || test_vec__flushed(y[1], 1e-40)) &&
              y[2] == 1.0f && y[3] == -1.0f && y[4] == 1.0f && y[5] == 1.0f && y[6] == -1.0f &&
              y[7] != y[7], msg);
    }
    lm__vec_simd = 1;
}

static void test_vec_sigmoid(void) {
    float x[16] = {0.0f, 0, 0, 0}, y[16];
    char msg[160];
    int p;
    x[1] = (float)INFINITY; x[2] = -(float)INFINITY; x[3] = (float)NAN;
    test_vec__unary("sigmoid", lm__vsigmoid, lm__ref_sigmoid, -110.0f, 110.0f, 3.0, 3.0);
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        lm__vsigmoid(x, y, 16);
        snprintf(msg, sizeof msg, "vec: sigmoid (%s path) of 0, inf, -inf, NaN", test_vec__path());
        CHECK(y[0] == 0.5f && y[1] == 1.0f && y[2] == 0.0f && y[3] != y[3], msg);
    }
    lm__vec_simd = 1;
}

/* ---------------------------------------------------------------------------------------
   GELU: against the formula in double, evaluated as x / (1 + exp(-2u)) (the same function
   as 0.5 x (1 + tanh u), but without the cancellation that ruins even double below
   x = -6). The forward value is checked in ulps; its error grows with |2u| for negative x
   (2u = x (A + B x^2) is rounded, by up to 1.5 ulp, before exp magnifies it), so the
   limit is 4 + 3 |2u| ulp: 1.4e-6 relative at x = -3, 1.4e-5 at x = -9, where the values
   themselves are under 4e-3 and 1e-27 (absolute errors < 1e-8). A denormal result
   may be off by that relative error plus 2 + |x| of its (absolute) ulps: exp(2u) is
   itself denormal there, with few bits, and the product with x multiplies its error.
   The derivative crosses zero (x = -0.75), so it is checked as 1e-6 |want| + 1e-8.
   --------------------------------------------------------------------------------------- */
/* the forward limit in ulps: 4, plus 3 |2u| for negative x */
static double test_vec__gelu_lim(double x) {
    return x < 0 ? 4 + 3.0 * fabs(x * (1.5957691216057308 + 0.0713548162726 * x * x)) : 4;
}

static void test_vec_gelu(void) {
    float *x = (float *)malloc(TEST_VEC_N * sizeof(float));
    float *y[2], *dy = (float *)malloc(TEST_VEC_N * sizeof(float));
    float *dx[2];
    double wf[2] = {0, 0}, wrel[2] = {0, 0}, wb[2] = {0, 0}, wabs[2] = {0, 0};
    double apart_f = 0, apart_b = 0;
    char msg[240];
    lm_rng r = lm_rng_seed(11);
    int i, p, bad_f, bad_b;
    y[0] = (float *)malloc(TEST_VEC_N * sizeof(float));
    y[1] = (float *)malloc(TEST_VEC_N * sizeof(float));
    dx[0] = (float *)malloc(TEST_VEC_N * sizeof(float));
    dx[1] = (float *)malloc(TEST_VEC_N * sizeof(float));
    if (!x || !dy || !y[0] || !y[1] || !dx[0] || !dx[1]) {
        CHECK(0, "vec: out of memory");
        free(x); free(dy); free(y[0]); free(y[1]); free(dx[0]); free(dx[1]);
        return;
    }
    test_vec__inputs(x, TEST_VEC_N, -20.0f, 20.0f, 3);
    for (i = 0; i < TEST_VEC_N; i++) dy[i] = 2.0f * lm_rng_uniform(&r) - 1.0f;
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        lm__gelu_fwd(x, y[p], TEST_VEC_N);
        /* backward accumulates: start from dx = 1 and subtract it again (exact) */
        for (i = 0; i < TEST_VEC_N; i++) dx[p][i] = 1.0f;
        lm__gelu_bwd(x, dy, dx[p], TEST_VEC_N);
        bad_f = bad_b = 0;
        for (i = 0; i < TEST_VEC_N; i++) {
            double xi = x[i], want, got, err, lim;
            int e2;
            if (isinf(xi) || xi != xi) continue;                /* checked below */
            want = lm__ref_gelu(xi);
            lim = test_vec__gelu_lim(xi);
            if (test_vec__flushed(y[p][i], want)) err = 0;
            else if (fabs(want) >= FLT_MIN) err = test_vec__ulps(y[p][i], want) / lim;
            else err = fabs(y[p][i] - want) /
                       (lim * ldexp(fabs(want), -23) + (2 - xi) * ldexp(1.0, -149));
            if (err > wf[p]) wf[p] = err;
            if (err > 1) bad_f++;
            if (fabs(want) > 1e-30 && fabs((y[p][i] - want) / want) > wrel[p] && xi > -3)
                wrel[p] = fabs((y[p][i] - want) / want);
            /* dx = 1 + dy gelu'(x): 1e-6 relative on the product, plus the ulp that adding
               it to dx can round away */
            want = 1.0 + (double)dy[i] * lm__ref_gelu_grad(xi);
            got = dx[p][i];
            frexp(want, &e2);
            err = fabs(got - want) - ldexp(1.0, e2 - 24);
            if (err < 0) err = 0;
            err /= 1e-6 * fabs(want - 1.0) + 1e-8;
            if (err > wb[p]) wb[p] = err;
            if (err > 1) bad_b++;
            if (fabs(got - want) > wabs[p]) wabs[p] = fabs(got - want);
        }
        snprintf(msg, sizeof msg, "vec: gelu_fwd (%s path): %d values out of tolerance, worst "
                 "%.2f of it; worst relative error %.3g for x > -3", test_vec__path(), bad_f,
                 wf[p], wrel[p]);
        CHECK(bad_f == 0, msg);
        snprintf(msg, sizeof msg, "vec: gelu_bwd (%s path): %d values out of tolerance, worst "
                 "%.2f of it; worst absolute error %.3g", test_vec__path(), bad_b, wb[p], wabs[p]);
        CHECK(bad_b == 0, msg);
    }
    lm__vec_simd = 1;
    for (i = 0; i < TEST_VEC_N; i++) {
        if (x[i] > -3) {
            double s = test_vec__steps(y[0][i], y[1][i]) / test_vec__gelu_lim(x[i]);
            if (test_vec__flushed(y[0][i], y[1][i])) s = 0;
            if (s > apart_f) apart_f = s;
        }
        if (fabs(dx[0][i] - dx[1][i]) > apart_b) apart_b = fabs(dx[0][i] - dx[1][i]);
    }
    snprintf(msg, sizeof msg, "vec: gelu_fwd %s and scalar paths differ by %.2f times the "
             "tolerance for x > -3", test_vec__vname(), apart_f);
    CHECK(apart_f <= 2, msg);
    snprintf(msg, sizeof msg, "vec: gelu_bwd %s and scalar paths differ by %.3g", test_vec__vname(),
             apart_b);
    CHECK(apart_b <= 2.5e-7, msg);
    printf("  vec: gelu     fwd rel err <= %.2g (%s), %.2g (scalar) for x > -3; bwd worst "
           "%.2f, %.2f of its limit\n", wrel[0], test_vec__vname(), wrel[1], wb[0], wb[1]);
    /* the specials: 0 and -0 keep their sign, +inf passes, NaN stays NaN; gelu'(0) = 0.5,
       gelu'(+-inf) = 1 and 0. Arrays of 16 so that every vector loop sees them. */
    {
        float xs[16] = {0.0f, -0.0f, 0, 0, 0, 30.0f}, ys[16], gs[16], ones[16];
        xs[2] = (float)INFINITY; xs[3] = (float)NAN; xs[4] = -(float)INFINITY;
        for (p = 0; p < 2; p++) {
            lm__vec_simd = !p;
            for (i = 0; i < 16; i++) { gs[i] = 0; ones[i] = 1; }
            lm__gelu_fwd(xs, ys, 16);
            lm__gelu_bwd(xs, ones, gs, 16);
            snprintf(msg, sizeof msg, "vec: gelu specials (%s path)", test_vec__path());
            CHECK(ys[0] == 0 && !signbit(ys[0]) && ys[1] == 0 && signbit(ys[1]) &&
                  isinf(ys[2]) && ys[2] > 0 && ys[3] != ys[3] && ys[5] == 30.0f &&
                  gs[0] == 0.5f && gs[2] == 1.0f && gs[3] != gs[3] && gs[4] == 0.0f &&
                  gs[5] == 1.0f, msg);
        }
        lm__vec_simd = 1;
    }
    free(x); free(dy); free(y[0]); free(y[1]); free(dx[0]); free(dx[1]);
}

/* The exact GELU (lm__gelu_erf_fwd and _bwd) against lm__ref_gelu_erf in double: forward
   within 2 (4 + x^2 / 2) ulps (the tail's error grows with x^2, see lm.h), results below
   FLT_MIN within 2 - x denormal steps more; backward within 1e-6 of the scale of its two terms,
   Phi(x) + |x| phi(x), plus 1e-8. Then the specials. */
static void test_vec_gelu_erf(void) {
    float *x = (float *)malloc(TEST_VEC_N * sizeof(float)), *y = (float *)malloc(TEST_VEC_N * sizeof(float));
    float *dx = (float *)malloc(TEST_VEC_N * sizeof(float)), *ones = (float *)malloc(TEST_VEC_N * sizeof(float));
    double wf, wb, wrel;
    char msg[240];
    int i, p, bad_f, bad_b;
    if (!x || !y || !dx || !ones) { CHECK(0, "vec: out of memory"); free(x); free(y); free(dx); free(ones); return; }
    test_vec__inputs(x, TEST_VEC_N, -20.0f, 20.0f, 13);
    for (i = 0; i < TEST_VEC_N; i++) ones[i] = 1.0f;
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        lm__gelu_erf_fwd(x, y, TEST_VEC_N);
        memset(dx, 0, TEST_VEC_N * sizeof(float));
        lm__gelu_erf_bwd(x, ones, dx, TEST_VEC_N);
        bad_f = bad_b = 0;
        wf = wb = wrel = 0;
        for (i = 0; i < TEST_VEC_N; i++) {
            double xi = x[i], want, err, lim = 2 * (4 + 0.5 * xi * xi), scale;
            if (isinf(xi) || xi != xi) continue;                /* checked below */
            want = lm__ref_gelu_erf(xi);
            if (test_vec__flushed(y[i], want)) err = 0;
            else if (fabs(want) >= FLT_MIN) err = test_vec__ulps(y[i], want) / lim;
            else err = fabs(y[i] - want) / (lim * ldexp(fabs(want), -23) + (2 - xi) * ldexp(1.0, -149));
            if (err > wf) wf = err;
            if (err > 1) bad_f++;
            if (xi > -3 && fabs(want) > 1e-30 && fabs((y[i] - want) / want) > wrel) wrel = fabs((y[i] - want) / want);
            want = lm__ref_gelu_erf_grad(xi);
            scale = 0.5 * erfc(-xi * 0.7071067811865476) + fabs(xi) * exp(-0.5 * xi * xi) * 0.3989422804014327;
            err = fabs(dx[i] - want) / (1e-6 * scale + 1e-8);
            if (err > wb) wb = err;
            if (err > 1) bad_b++;
        }
        snprintf(msg, sizeof msg, "vec: gelu_erf_fwd (%s path): %d values out of tolerance, worst "
                 "%.2f of it; worst relative error %.3g for x > -3", test_vec__path(), bad_f, wf, wrel);
        CHECK(bad_f == 0, msg);
        snprintf(msg, sizeof msg, "vec: gelu_erf_bwd (%s path): %d values out of tolerance, worst "
                 "%.2f of it", test_vec__path(), bad_b, wb);
        CHECK(bad_b == 0, msg);
        printf("  vec: gelu_erf (%s) fwd rel err <= %.2g for x > -3, %.2f of its limit; bwd %.2f of its limit\n",
               test_vec__path(), wrel, wf, wb);
    }
    /* 0 and -0 keep their sign, +inf passes, NaN stays NaN, gelu(-inf) is NaN (-inf * 0);
       gelu'(0) = 0.5, gelu'(+-inf) = 1 and 0, gelu(-20) = -0. Arrays of 16 so that every
       vector loop sees them. */
    {
        float xs[16] = {0.0f, -0.0f, 0, 0, 0, 30.0f, -20.0f}, ys[16], gs[16];
        xs[2] = (float)INFINITY; xs[3] = (float)NAN; xs[4] = -(float)INFINITY;
        for (p = 0; p < 2; p++) {
            lm__vec_simd = !p;
            for (i = 0; i < 16; i++) gs[i] = 0;
            lm__gelu_erf_fwd(xs, ys, 16);
            lm__gelu_erf_bwd(xs, ones, gs, 16);
            snprintf(msg, sizeof msg, "vec: gelu_erf specials (%s path)", test_vec__path());
            CHECK(ys[0] == 0 && !signbit(ys[0]) && ys[1] == 0 && signbit(ys[1]) &&
                  isinf(ys[2]) && ys[2] > 0 && ys[3] != ys[3] && ys[4] != ys[4] && ys[5] == 30.0f &&
                  ys[6] == 0 && gs[0] == 0.5f && gs[2] == 1.0f && gs[3] != gs[3] && gs[4] == 0.0f &&
                  gs[5] == 1.0f && gs[6] == 0.0f, msg);
        }
    }
    lm__vec_simd = 1;
    free(x); free(y); free(dx); free(ones);
}

/* ReLU's kernels (lm__relu_fwd, lm__relu_bwd) are its formula exactly, on both paths:
   x > 0 ? x : 0 (so NaN and -0 give +0), and dx += x > 0 ? dy : 0. */
static void test_vec_relu(void) {
    float *x = (float *)malloc(TEST_VEC_N * sizeof(float)), *y = (float *)malloc(TEST_VEC_N * sizeof(float));
    float *dy = (float *)malloc(TEST_VEC_N * sizeof(float)), *dx = (float *)malloc(TEST_VEC_N * sizeof(float));
    lm_rng r = lm_rng_seed(17);
    int i, p, bad;
    char msg[160];
    if (!x || !y || !dy || !dx) { CHECK(0, "vec: out of memory"); free(x); free(y); free(dy); free(dx); return; }
    test_vec__inputs(x, TEST_VEC_N, -5.0f, 5.0f, 19);
    for (i = 0; i < TEST_VEC_N; i++) dy[i] = 2.0f * lm_rng_uniform(&r) - 1.0f;
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        for (i = 0; i < TEST_VEC_N; i++) dx[i] = 0.25f;
        lm__relu_fwd(x, y, TEST_VEC_N);
        lm__relu_bwd(x, dy, dx, TEST_VEC_N);
        for (bad = 0, i = 0; i < TEST_VEC_N; i++) {
            float fy = x[i] > 0 ? x[i] : 0, fd = 0.25f + (x[i] > 0 ? dy[i] : 0);
            bad += memcmp(&y[i], &fy, sizeof fy) != 0 || memcmp(&dx[i], &fd, sizeof fd) != 0;
        }
        snprintf(msg, sizeof msg, "vec: relu_fwd and relu_bwd (%s path) are x > 0 ? x : 0 bit for bit (%d differ)",
                 test_vec__path(), bad);
        CHECK(bad == 0, msg);
    }
    lm__vec_simd = 1;
    free(x); free(y); free(dy); free(dx);
}

/* ---------------------------------------------------------------------------------------
   Reductions: max, the softmax sum, dot.
   --------------------------------------------------------------------------------------- */
static void test_vec_reductions(void) {
    int V = 50257, i, p;
    float *x = (float *)malloc((size_t)V * sizeof(float));
    float *y = (float *)malloc((size_t)V * sizeof(float));
    float *b = (float *)malloc((size_t)V * sizeof(float));
    lm_rng r = lm_rng_seed(5);
    char msg[200];
    if (!x || !y || !b) { CHECK(0, "vec: out of memory"); free(x); free(y); free(b); return; }
    /* logits of a vocabulary: normal, spread 4, one clear winner */
    for (i = 0; i < V; i++) { x[i] = 4.0f * lm_rng_normal(&r); b[i] = lm_rng_normal(&r); }
    x[1234] = 30.0f;
    for (p = 0; p < 2; p++) {
        double want = 0, got, got2, dw = 0, mag = 0, worst_y = 0;
        float mx, dot;
        lm__vec_simd = !p;
        mx = lm__vmax(x, V);
        got = lm__vsum_exp_shift(x, mx, y, V);
        got2 = lm__vsum_exp_shift(x, mx, NULL, V);
        for (i = 0; i < V; i++) {
            float d = x[i] - mx;                /* the kernel's argument, rounded to float */
            double e = exp((double)d), u = test_vec__ulps(y[i], e);
            want += e;
            if (u > worst_y) worst_y = u;
        }
        snprintf(msg, sizeof msg, "vec: vmax (%s path) = %g, want 30", test_vec__path(),
                 (double)mx);
        CHECK(mx == 30.0f, msg);
        snprintf(msg, sizeof msg, "vec: vsum_exp_shift over %d (%s path): relative error %.3g, "
                 "y worst %.2f ulp, y=NULL gives %.9g vs %.9g", V, test_vec__path(),
                 fabs(got - want) / want, worst_y, got2, got);
        CHECK(fabs(got - want) <= 2e-7 * want && worst_y <= 2.0 && got2 == got, msg);
        printf("  vec: sum_exp  relative error %.2g over %d logits (%s path)\n",
               fabs(got - want) / want, V, test_vec__path());
        dot = lm__vdot(x, b, V);
        for (i = 0; i < V; i++) { dw += (double)x[i] * b[i]; mag += fabs((double)x[i] * b[i]); }
        snprintf(msg, sizeof msg, "vec: vdot over %d (%s path): error %.3g of sum |a b| = %.6g",
                 V, test_vec__path(), fabs(dot - dw) / mag, mag);
        CHECK(fabs(dot - dw) <= 1e-5 * mag, msg);
    }
    lm__vec_simd = 1;
    CHECK(lm__vmax(x, 0) == -(float)INFINITY && lm__vsum_exp_shift(x, 0, y, 0) == 0 &&
          lm__vdot(x, b, 0) == 0, "vec: empty max, sum and dot");
    free(x); free(y); free(b);
}

/* ---------------------------------------------------------------------------------------
   Odd lengths and unaligned pointers: for each n, inputs start 1 float into their buffer
   and outputs 3 floats in; the SIMD path must agree with the scalar path (its tail *is*
   the scalar path) and the guards on both sides of the output must survive.
   --------------------------------------------------------------------------------------- */
#define TEST_VEC_GUARD 777.0f
static void test_vec_lengths(void) {
    static const int ns[] = {0, 1, 7, 15, 17, 33, 1000};
    float xb[1010], bb[1010], ob[2][1010], mb[2][1010], vb[2][1010];
    lm_rng r = lm_rng_seed(9);
    int k, i, p, bad[12];
    char msg[160];
    static const char *names[12] = {"vexp", "vtanh", "vsigmoid", "gelu_fwd", "gelu_bwd",
                                    "vmax", "vsum_exp_shift", "vdot", "vaxpy", "vadd",
                                    "vacc", "adamw_update"};
    memset(bad, 0, sizeof bad);
    for (i = 0; i < 1010; i++) {
        xb[i] = 6.0f * lm_rng_normal(&r);
        bb[i] = lm_rng_normal(&r);
    }
    for (k = 0; k < (int)(sizeof ns / sizeof ns[0]); k++) {
        int n = ns[k], f;
        const float *x = xb + 1, *b = bb + 1;
        for (f = 0; f < 12; f++) {
            double red[2] = {0, 0};
            for (p = 0; p < 2; p++) {
                float *o = ob[p] + 3, *m = mb[p] + 3, *v = vb[p] + 3;
                lm__vec_simd = !p;
                for (i = 0; i < 1010; i++) {
                    ob[p][i] = TEST_VEC_GUARD;
                    mb[p][i] = 0.1f * bb[(i + 5) % 1010];
                    vb[p][i] = 0.01f * bb[(i + 9) % 1010] * bb[(i + 9) % 1010];
                }
                for (i = 0; i < n; i++) o[i] = bb[i + 2];
                switch (f) {
                case 0: lm__vexp(x, o, n); break;
                case 1: lm__vtanh(x, o, n); break;
                case 2: lm__vsigmoid(x, o, n); break;
                case 3: lm__gelu_fwd(x, o, n); break;
                case 4: lm__gelu_bwd(x, b, o, n); break;
                case 5: red[p] = n ? lm__vmax(x, n) : 0; break;
                case 6: red[p] = lm__vsum_exp_shift(x, 3.0f, o, n); break;
                case 7: red[p] = lm__vdot(x, b, n); break;
                case 8: lm__vaxpy(-0.37f, x, o, n); break;
                case 9: lm__vadd(x, b, o, n); break;
                case 10: lm__vacc(x, o, n); break;
                default:
                    lm__adamw_update(o, x, m, v, n, 0.9999f, 0.9f, 0.99f, 1e-3f, 0.3f, 1e-8f);
                    break;
                }
                if (ob[p][2] != TEST_VEC_GUARD || ob[p][n + 3] != TEST_VEC_GUARD) bad[f]++;
            }
            lm__vec_simd = 1;
            /* reductions: the same value to float rounding. Elementwise: within 4e-7 of
               the magnitudes involved (a few ulps, where an fma and a separate multiply
               and add may round differently after cancellation), plus 1e-9 for GELU's
               tiny negative tail. */
            if (f >= 5 && f <= 7) {
                if (fabs(red[0] - red[1]) > 1e-5 * (fabs(red[1]) + 1)) bad[f]++;
            } else {
                for (i = 0; i < n; i++) {
                    double scale = fabs(ob[1][i + 3]) + fabs(bb[i + 2]) + fabs(x[i]);
                    if (!(fabs(ob[0][i + 3] - ob[1][i + 3]) <= 4e-7 * scale + 1e-9)) bad[f]++;
                    double mscale = fabs(0.09 * bb[(i + 8) % 1010]) + fabs(0.1 * x[i]);
                    if (f == 11 && (fabs(mb[0][i + 3] - mb[1][i + 3]) > 2.4e-7 * mscale ||
                                    test_vec__steps(vb[0][i + 3], vb[1][i + 3]) > 2))
                        bad[f]++;
                }
            }
        }
    }
    for (k = 0; k < 12; k++) {
        snprintf(msg, sizeof msg, "vec: %s on n = 0, 1, 7, 15, 17, 33, 1000, unaligned: %s path "
                 "vs scalar: %d mismatches or overruns", names[k], test_vec__vname(), bad[k]);
        CHECK(bad[k] == 0, msg);
    }
}

/* ---------------------------------------------------------------------------------------
   Elementwise arithmetic: vaxpy, vadd (in place too), vacc.
   --------------------------------------------------------------------------------------- */
static void test_vec_arith(void) {
    enum { N = 1003 };
    float a[N], b[N], y[N], y0[N];
    lm_rng r = lm_rng_seed(21);
    int i, p, bad = 0;
    char msg[120];
    for (i = 0; i < N; i++) { a[i] = lm_rng_normal(&r); b[i] = lm_rng_normal(&r); }
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        memcpy(y, b, sizeof y);
        lm__vaxpy(2.5f, a, y, N);
        for (i = 0; i < N; i++) {
            double want = 2.5 * a[i] + b[i];
            if (fabs(y[i] - want) > 6e-8 * (fabs(2.5 * a[i]) + fabs(want)) * 1.01) bad++;
        }
        memcpy(y0, a, sizeof y0);
        lm__vadd(y0, b, y0, N);                         /* y aliases a */
        for (i = 0; i < N; i++) if (y0[i] != (float)(a[i] + b[i])) bad++;
        memcpy(y, b, sizeof y);
        lm__vacc(a, y, N);
        for (i = 0; i < N; i++) if (y[i] != (float)(b[i] + a[i])) bad++;
    }
    lm__vec_simd = 1;
    snprintf(msg, sizeof msg, "vec: vaxpy, vadd (in place), vacc: %d wrong elements", bad);
    CHECK(bad == 0, msg);
    /* vacc_ieee: exactly the plain float adds, subnormals included, cut anywhere */
    bad = 0;
    for (i = 0; i < N; i++) {
        if (i % 3 == 0) a[i] = (i % 2 ? 1e-39f : -3e-40f) * (float)(i % 7 + 1);
        if (i % 5 == 0) b[i] = (i % 4 ? 2e-39f : -1e-45f) * (float)(i % 3 + 1);
    }
    for (p = 0; p < 2; p++) {
        int cut;
        lm__vec_simd = !p;
        for (cut = 0; cut < 40; cut += 13) {
            volatile float want;
            memcpy(y, b, sizeof y);
            lm__vacc_ieee(a, y, cut);
            lm__vacc_ieee(a + cut, y + cut, N - cut);
            for (i = 0; i < N; i++) {
                want = b[i];
                want += a[i];
                if (memcmp(&y[i], (const void *)&want, sizeof(float))) bad++;
            }
        }
    }
    lm__vec_simd = 1;
    snprintf(msg, sizeof msg, "vec: vacc_ieee is the plain float add, subnormals too: %d wrong elements", bad);
    CHECK(bad == 0, msg);
}

/* ---------------------------------------------------------------------------------------
   The sum of squares of clipping (lm__vsumsq), both paths, against double: each float
   lane adds at most LM__VSUM_BLOCK / lanes squares before its block goes to double, and
   each addition of these nonnegative terms rounds by at most 2^-24 of the running sum,
   so the relative error is at most (LM__VSUM_BLOCK / lanes) 2^-24 (about 1e-6 for 16
   lanes; the tail and the blocks' totals are summed in double).
   --------------------------------------------------------------------------------------- */
static void test_vec_sumsq(void) {
    enum { N = 5003 };
    static float x[N];
    lm_rng r = lm_rng_seed(29);
    double want, worst = 0, bound = (double)LM__VSUM_BLOCK / lm__vec_lanes() * ldexp(1.0, -24);
    int i, p, n;
    char msg[120];
    for (i = 0; i < N; i++) x[i] = lm_rng_normal(&r) * (i % 3 ? 1e-3f : 1.0f);
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        for (n = 0; n <= N; n += n < 40 ? 1 : 997) {
            double e;
            for (want = 0, i = 0; i < n; i++) want += (double)x[i] * x[i];
            e = n ? fabs(lm__vsumsq(x, n) - want) / want : fabs(lm__vsumsq(x, n));
            if (!(e <= worst)) worst = e;
        }
    }
    lm__vec_simd = 1;
    snprintf(msg, sizeof msg, "vec: vsumsq within %.2g of the double sum, both paths (worst %.2g)",
             bound, worst);
    CHECK(worst <= bound, msg);
}

/* ---------------------------------------------------------------------------------------
   Generation's matrix-vector kernel, lm__gemv_cols: both paths against lm__ref_gemv (the
   same sum in double) for widths that use the four-vector block, single vectors and the
   one-column tail, with and without a bias, W read with a stride wider than the block.
   --------------------------------------------------------------------------------------- */
static void test_vec_gemv(void) {
    enum { IN = 77, LD = 203 };
    static float W[IN * LD], x[IN], b[LD], y[LD];
    double want[LD], worst = 0;
    lm_rng r = lm_rng_seed(23);
    int i, j, p, w, bad = 0, widths[6] = { 1, 7, 16, 64, 75, 203 };
    char msg[160];
    for (i = 0; i < IN * LD; i++) W[i] = lm_rng_normal(&r);
    for (i = 0; i < IN; i++) x[i] = lm_rng_normal(&r);
    for (i = 0; i < LD; i++) b[i] = lm_rng_normal(&r);
    lm__ref_gemv(x, W, b, want, IN, LD);
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        for (w = 0; w < 6; w++) {
            int n = widths[w], off = LD - n;               /* the last n columns          */
            lm__gemv_cols(x, W + off, LD, IN, w & 1 ? b + off : NULL, y, n);
            for (j = 0; j < n; j++) {
                double mag = w & 1 ? fabs(b[off + j]) : 0, e, want_j = want[off + j] - (w & 1 ? 0 : b[off + j]);
                for (i = 0; i < IN; i++) mag += fabs((double)x[i] * W[(size_t)i * LD + off + j]);
                e = fabs(y[j] - want_j) / (mag * 1e-7 * IN);
                if (e > worst) worst = e;
                if (!(e <= 1)) bad++;
            }
        }
    }
    lm__vec_simd = 1;
    snprintf(msg, sizeof msg, "vec: gemv_cols against the plain sum, both paths, 6 widths: %d wrong "
             "(worst %.3g of the tolerance)", bad, worst);
    CHECK(bad == 0, msg);
}

/* ---------------------------------------------------------------------------------------
   AdamW: both paths against the formula evaluated in double from the same inputs (each
   float operation rounds, so a few ulps of the terms), and against each other.
   --------------------------------------------------------------------------------------- */
static void test_vec_adamw(void) {
    enum { N = 777 };
    float w[2][N], m[2][N], v[2][N], g[N], w0[N], m0[N], v0[N];
    float lr = 3e-3f, wd = 0.1f, b1 = 0.9f, b2 = 0.99f, eps = 1e-8f;
    int t = 7, i, p, bad = 0, differ = 0, exact = 1;
    float decay = 1.0f - lr * wd, step = lr / (1.0f - powf(b1, (float)t));
    float bc2 = sqrtf(1.0f - powf(b2, (float)t));
    double worst = 0;
    lm_rng r = lm_rng_seed(4);
    char msg[200];
    for (i = 0; i < N; i++) {
        w0[i] = 0.1f * lm_rng_normal(&r);
        g[i] = (i % 50 == 0) ? 0.0f : 0.01f * lm_rng_normal(&r);
        m0[i] = 0.01f * lm_rng_normal(&r);
        v0[i] = 1e-4f * lm_rng_uniform(&r) * lm_rng_uniform(&r);
    }
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        memcpy(w[p], w0, sizeof w0); memcpy(m[p], m0, sizeof m0); memcpy(v[p], v0, sizeof v0);
        lm__adamw_update(w[p], g, m[p], v[p], N, decay, b1, b2, step, bc2, eps);
        for (i = 0; i < N; i++) {
            double mw = b1 * (double)m0[i] + (1.0 - b1) * g[i];
            double vw = b2 * (double)v0[i] + (1.0 - b2) * (double)g[i] * g[i];
            double upd = step * mw / (sqrt(vw) / bc2 + eps), ww = w0[i] * (double)decay - upd;
            double e = fabs(w[p][i] - ww) / (6e-8 * (fabs(w0[i]) + fabs(upd)));
            if (e > worst) worst = e;
            if (e > 4 || fabs(m[p][i] - mw) > 1.2e-7 * (fabs(b1 * m0[i]) + fabs(0.1 * g[i])) ||
                fabs(v[p][i] - vw) > 2.4e-7 * vw)
                bad++;
        }
    }
    lm__vec_simd = 1;
    /* The two paths do the same float operations in the same order, so they agree to the
       bit, except where a compiler fused multiply-adds in one of them (see
       lm__adamw_update): allow for those roundings. */
    for (i = 0; i < N; i++) {
        double upd = fabs(step * m[1][i] / (sqrt(v[1][i]) / bc2 + eps));
        if (w[0][i] != w[1][i]) exact = 0;
        if (fabs(w[0][i] - w[1][i]) > 2.4e-7 * (fabs(w0[i]) + upd) ||
            fabs(m[0][i] - m[1][i]) > 2.4e-7 * (fabs(b1 * m0[i]) + fabs(0.1 * g[i])) ||
            test_vec__steps(v[0][i], v[1][i]) > 2)
            differ++;
    }
    snprintf(msg, sizeof msg, "vec: adamw_update vs the formula in double: %d bad, worst %.2f "
             "ulp of |w| + |update|", bad, worst);
    CHECK(bad == 0, msg);
    snprintf(msg, sizeof msg, "vec: adamw_update %s vs scalar path: %d elements differ by more "
             "than a rounding", test_vec__vname(), differ);
    CHECK(differ == 0, msg);
    printf("  vec: adamw    worst %.2f ulp of |w| + |update|; %s and scalar paths %s\n", worst,
           test_vec__vname(),
           exact ? "bit-identical" : "differ in last bits (fused multiply-adds)");
}

/* ---------------------------------------------------------------------------------------
   LayerNorm rows against double precision: lengths 1 to 4096, centred rows and rows whose
   mean is 1e3 and 1e5 times their spread (a one-pass variance would lose 6 and 10 digits;
   at 1e5 even the float rounding of the mean shifts the variance by 1e-5). The
   mean must be right to 2e-7 of |mean| + std, rstd to 2e-7, y to 1e-6 of its terms plus
   2e-8 |w| (the mean, known to ~1e-8 of the spread, shifts every normalised value).
   --------------------------------------------------------------------------------------- */
static void test_vec_layernorm(void) {
    static const int ns[] = {1, 7, 33, 768, 4096};
    static const float offs[] = {0.0f, 3.0f, 100.0f, 1000.0f};
    static const float sds[] = {1.0f, 1.0f, 0.1f, 0.01f};
    static float xb[4100], wb[4100], bb[4100], yb[4100];
    double wmean = 0, wrstd = 0, wy = 0;
    lm_rng r = lm_rng_seed(8);
    int k, o, i, p, bad = 0;
    char msg[200];
    for (p = 0; p < 2; p++) {
        lm__vec_simd = !p;
        for (k = 0; k < 5; k++) {
            for (o = 0; o < 4; o++) {
                int n = ns[k];
                float *x = xb + 1, *w = wb + 2, *b = bb + 3, *y = yb + 1, mean, rstd;
                double s = 0, ss = 0, mu, var, rs, e;
                float sd = sds[o];
                for (i = 0; i < n; i++) {
                    x[i] = offs[o] + sd * lm_rng_normal(&r);
                    w[i] = 1.0f + 0.5f * lm_rng_normal(&r);
                    b[i] = 0.1f * lm_rng_normal(&r);
                }
                lm__layernorm_row(x, w, b, y, n, 1e-5f, &mean, &rstd);
                for (i = 0; i < n; i++) s += x[i];
                mu = s / n;
                for (i = 0; i < n; i++) ss += (x[i] - mu) * (x[i] - mu);
                var = ss / n;
                rs = 1.0 / sqrt(var + 1e-5);
                e = fabs(mean - mu) / (fabs(mu) + sqrt(var) + 1e-30);   /* of the row's scale */
                if (e > wmean) wmean = e;
                if (e > 2e-7) bad++;
                e = fabs(rstd - rs) / rs;
                if (e > wrstd) wrstd = e;
                if (e > 2e-7) bad++;
                for (i = 0; i < n; i++) {
                    double xh = (x[i] - mu) * rs, want = xh * w[i] + b[i];
                    e = fabs(y[i] - want) / (fabs(xh * w[i]) + fabs(b[i]) + 0.02 * fabs(w[i]));
                    if (e > wy) wy = e;
                    if (e > 1e-6) bad++;
                }
            }
        }
    }
    lm__vec_simd = 1;
    {
        float x1 = 5.0f, w1 = 2.0f, b1 = 0.5f, y1 = 0, mean = 1, rstd = 1;
        lm__layernorm_row(&x1, &w1, &b1, &y1, 1, 1e-5f, NULL, NULL);  /* NULL outputs are fine */
        lm__layernorm_row(&x1, &w1, &b1, &y1, 0, 1e-5f, &mean, &rstd);
        CHECK(y1 == 0.5f && mean == 0 && rstd == 0, "vec: layernorm of one value and of none");
    }
    snprintf(msg, sizeof msg, "vec: layernorm rows: %d bad; worst mean %.3g (of |mean| + std), "
             "rstd %.3g, y %.3g relative", bad, wmean, wrstd, wy);
    CHECK(bad == 0, msg);
    printf("  vec: layernorm worst relative error: mean %.2g, rstd %.2g, y %.2g\n", wmean, wrstd,
           wy);
}

static void run_vec_tests(void) {
    printf("vec: kernels compiled for %s, %d lanes\n", lm_simd_name(), LM__VW);
    test_vec_exp();
    test_vec_tanh();
    test_vec_sigmoid();
    test_vec_gelu();
    test_vec_gelu_erf();
    test_vec_relu();
    test_vec_reductions();
    test_vec_lengths();
    test_vec_arith();
    test_vec_gemv();
    test_vec_sumsq();
    test_vec_adamw();
    test_vec_layernorm();
}
/* Tests: tools/lm_plot.h - the CSV log reader, the loss-curve SVG and the confusion-matrix
   SVG. Every SVG written is checked by a small XML well-formedness checker of our own
   (below), then searched for its series: one <path> per series with one point per row. */
#include "tools/lm_plot.h"

/* ---- helpers: a private directory, files in and out --------------------------------- */
static t_scratch plot_t_scratch;
static const char *plot_t_path(const char *name) { return t_scratch_path(&plot_t_scratch, name); }
static void plot_t_write(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}
/* The whole file as a string (caller frees), or NULL. */
static char *plot_t_read(const char *path) {
    FILE *f = fopen(path, "rb");
    char *p;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = (char *)malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    if (p) p[n] = 0;
    fclose(f);
    return p;
}
static int plot_t_count(const char *s, const char *what) {
    int k = 0;
    size_t n = strlen(what);
    while ((s = strstr(s, what)) != NULL) { k++; s += n; }
    return k;
}

/* ---- an XML well-formedness checker -----------------------------------------------------
   Enough of XML 1.0 for what we write, checked strictly: valid UTF-8 without control
   characters; one root element; start and end tags balanced and properly nested; names
   well formed; attributes quoted, unique within a tag, with no '<' and only valid
   references; the same for character data ('&' only as &amp; &lt; &gt; &quot; &apos; or a
   character reference); comments, processing instructions and CDATA; no DTD at all.
   Returns NULL when well-formed, else what is wrong. */
static int plot_t_namestart(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':'; }
static int plot_t_namechar(int c) { return plot_t_namestart(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }
static int plot_t_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A reference at s ("&..."): its length, or 0 if it is not a valid one. */
static int plot_t_ref(const char *s) {
    static const char *const ent[5] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
    int k;
    for (k = 0; k < 5; k++)
        if (!strncmp(s, ent[k], strlen(ent[k]))) return (int)strlen(ent[k]);
    if (s[1] == '#') {
        int hex = s[2] == 'x', i = hex ? 3 : 2, d = 0;
        for (;; i++, d++) {
            char c = s[i];
            int dec = c >= '0' && c <= '9', hx = (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            if (!(dec || (hex && hx))) break;
        }
        return d > 0 && s[i] == ';' ? i + 1 : 0;
    }
    return 0;
}

static const char *plot_t_xml_check(const char *doc) {
    const unsigned char *u = (const unsigned char *)doc;
    const char *s = doc, *stack[64];
    size_t stack_len[64];
    int depth = 0, roots = 0;
    /* the bytes: UTF-8, and no control characters */
    while (*u) {
        int len = *u < 0x80 ? 1 : (*u & 0xE0) == 0xC0 ? 2 : (*u & 0xF0) == 0xE0 ? 3 : (*u & 0xF8) == 0xF0 ? 4 : 0, k;
        if (!len || (*u < 0x20 && *u != '\t' && *u != '\n' && *u != '\r')) return "bad byte";
        if (len == 2 && *u < 0xC2) return "overlong UTF-8";
        for (k = 1; k < len; k++)
            if ((u[k] & 0xC0) != 0x80) return "bad UTF-8 sequence";
        u += len;
    }
    while (*s) {
        if (*s != '<') { /* character data */
            if (*s == '&') {
                int r = plot_t_ref(s);
                if (!r) return "bad reference in text";
                s += r;
                continue;
            }
            if (!strncmp(s, "]]>", 3)) return "]]> in text";
            if (depth == 0 && !plot_t_space((unsigned char)*s)) return "text outside the root";
            s++;
            continue;
        }
        if (!strncmp(s, "<!--", 4)) {
            const char *e = strstr(s + 4, "--");
            if (!e || e[2] != '>') return "bad comment";
            s = e + 3;
        } else if (!strncmp(s, "<?", 2)) {
            const char *e = strstr(s + 2, "?>");
            if (!e || !plot_t_namestart((unsigned char)s[2])) return "bad processing instruction";
            s = e + 2;
        } else if (!strncmp(s, "<![CDATA[", 9)) {
            const char *e = strstr(s + 9, "]]>");
            if (!e || depth == 0) return "bad CDATA";
            s = e + 3;
        } else if (s[1] == '!') {
            return "DTD or unknown declaration";
        } else if (s[1] == '/') { /* end tag: must close the innermost open element */
            const char *n = s + 2;
            size_t len = 0;
            while (plot_t_namechar((unsigned char)n[len])) len++;
            if (depth == 0 || len != stack_len[depth - 1] || strncmp(n, stack[depth - 1], len))
                return "end tag does not match";
            depth--;
            s = n + len;
            while (plot_t_space((unsigned char)*s)) s++;
            if (*s != '>') return "bad end tag";
            s++;
        } else { /* start tag with attributes */
            const char *n = s + 1, *attr[32];
            size_t len = 0, alen[32];
            int na = 0, k;
            if (!plot_t_namestart((unsigned char)*n)) return "bad element name";
            while (plot_t_namechar((unsigned char)n[len])) len++;
            s = n + len;
            for (;;) {
                int sp = 0;
                char q;
                while (plot_t_space((unsigned char)*s)) { s++; sp = 1; }
                if (*s == '>' || !strncmp(s, "/>", 2)) break;
                if (!sp || !plot_t_namestart((unsigned char)*s)) return "bad attribute";
                attr[na] = s;
                alen[na] = 0;
                while (plot_t_namechar((unsigned char)s[alen[na]])) alen[na]++;
                for (k = 0; k < na; k++)
                    if (alen[k] == alen[na] && !strncmp(attr[k], s, alen[k])) return "duplicate attribute";
                if (++na == 32) return "too many attributes";
                s += alen[na - 1];
                while (plot_t_space((unsigned char)*s)) s++;
                if (*s++ != '=') return "attribute without =";
                while (plot_t_space((unsigned char)*s)) s++;
                q = *s++;
                if (q != '"' && q != '\'') return "unquoted attribute";
                while (*s && *s != q) {
                    if (*s == '<') return "< in attribute";
                    if (*s == '&') {
                        int r = plot_t_ref(s);
                        if (!r) return "bad reference in attribute";
                        s += r;
                    } else s++;
                }
                if (!*s) return "unterminated attribute";
                s++;
            }
            if (depth == 0 && roots++) return "more than one root";
            if (*s == '/') s += 2;
            else {
                if (depth == 64) return "too deep";
                stack[depth] = n;
                stack_len[depth++] = len;
                s++;
            }
        }
    }
    if (depth) return "unclosed element";
    if (!roots) return "no root element";
    return NULL;
}

/* The d attribute of the path of class "series NAME" in doc: its number of points (M and L
   commands) and of subpaths (M); -1 when there is no such path, -2 when there are two. */
static int plot_t_path_points(const char *doc, const char *name, int *subpaths) {
    char key[96];
    const char *p, *d;
    int pts = 0;
    snprintf(key, sizeof key, "<path class=\"series %s\"", name);
    p = strstr(doc, key);
    if (!p) return -1;
    if (strstr(p + 1, key)) return -2;
    d = strstr(p, " d=\"");
    if (!d || d > strchr(p, '>')) return -1;
    if (subpaths) *subpaths = 0;
    for (d += 4; *d && *d != '"'; d++) {
        if (*d == 'M' || *d == 'L') pts++;
        if (*d == 'M' && subpaths) (*subpaths)++;
    }
    return pts;
}

/* A log like lm train --log writes: n rows, an eval every `every` rows. */
static void plot_t_log(const char *path, int n, int every) {
    FILE *f = fopen(path, "wb");
    int i;
    if (!f) return;
    fputs("step,loss,lr,tok_per_s,val_loss,elapsed_s\n", f);
    for (i = 1; i <= n; i++) {
        double loss = 1.5 + 4.0 * exp(-i / 40.0) + 0.2 * sin(i * 1.7);
        double lr = i <= 20 ? 1e-3 * i / 20 : 1e-4 + 0.5 * (1 + cos(3.14159265358979 * (i - 20) / (n - 20))) * 9e-4;
        fprintf(f, "%d,%.9g,%.9g,1234.5,", i, loss, lr);
        if (i % every == 0 || i == n) fprintf(f, "%.9g", loss + 0.1);
        fprintf(f, ",%.3f\n", i * 0.5);
    }
    fclose(f);
}

/* ---- the tests -------------------------------------------------------------------------- */

/* The checker itself: it must accept what is well formed and refuse each kind of fault. */
static void test_plot_xml_checker(void) {
    static const char *const good[] = {
        "<a/>",
        "<?xml version=\"1.0\"?>\n<a x=\"1\" y='2'><b>t &amp; &lt;&#65;&#x42;</b><!-- c --><c/></a>\n",
        "<a><![CDATA[<not a tag>]]><b q=\"&quot;\"></b ></a>",
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><title>\xE2\x80\x94</title></svg>"
    };
    static const char *const bad[] = {
        "<a><b></a></b>", "<a>", "<a></a><b/>", "<a x=1/>", "<a x=\"1\" x=\"2\"/>",
        "<a>&nbsp;</a>", "<a>&amp</a>", "<a x=\"<\"/>", "<!DOCTYPE a><a/>", "<a>x</a>y",
        "<a>\x01</a>", "<a>\xC3</a>", "<1a/>", "<a><!-- x -- y --></a>", "", "<a x=\"1\"y=\"2\"/>"
    };
    int k, fails = 0;
    for (k = 0; k < (int)(sizeof good / sizeof good[0]); k++)
        if (plot_t_xml_check(good[k])) { fails++; printf("  good #%d refused: %s\n", k, plot_t_xml_check(good[k])); }
    CHECK(fails == 0, "xml checker: accepts well-formed documents");
    fails = 0;
    for (k = 0; k < (int)(sizeof bad / sizeof bad[0]); k++)
        if (!plot_t_xml_check(bad[k])) { fails++; printf("  bad #%d accepted: %s\n", k, bad[k]); }
    CHECK(fails == 0, "xml checker: refuses each malformed document");
}

/* Nice ticks: a 1-2-5 step, a range of whole steps covering the data, a sensible count. */
static void test_plot_ticks(void) {
    lmplot__axis a;
    unsigned long r = 12345;
    int k, bad = 0, shown = 0;
    char lab[64];
    for (k = 0; k < 2000; k++) {
        double lo, hi, m, p, q;
        r = r * 6364136223846793005UL + 1442695040888963407UL;
        lo = ((r >> 11) % 100000) / 1000.0 * pow(10.0, (double)((int)((r >> 40) % 12) - 6));
        hi = lo + ((r >> 20) % 100000 + 1) / 1000.0 * pow(10.0, (double)((int)((r >> 50) % 12) - 6));
        lmplot__axis_fit(&a, lo, hi, 7);
        p = pow(10.0, floor(log10(a.step) + 1e-9));
        m = a.step / p;
        q = (a.hi - a.lo) / a.step;
        if (!(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9)) bad++;
        else if (a.lo > lo + 1e-6 * a.step || a.hi < hi - 1e-6 * a.step) bad++;
        else if (q < 3 - 1e-6 || q > 15 + 1e-6 || fabs(q - floor(q + 0.5)) > 1e-6) bad++;
        else if (fabs(a.lo / a.step - floor(a.lo / a.step + 0.5)) > 1e-6) bad++;
        if (bad == 1 && !shown++) printf("  ticks for [%g, %g]: [%g, %g] by %g\n", lo, hi, a.lo, a.hi, a.step);
    }
    CHECK(bad == 0, "ticks: 1-2-5 steps, whole-step range covering the data, 3-15 intervals");
    lmplot__axis_fit(&a, 1, 300, 8);
    CHECK(a.lo == 0 && a.hi == 300 && a.step == 50 && a.exp10 == 0, "ticks: steps 1..300 -> 0..300 by 50");
    lmplot__axis_fit(&a, 1.53, 5.47, 7);
    lmplot__tick_label(&a, a.lo + a.step, lab, sizeof lab);
    CHECK(a.step == 0.5 && a.lo == 1.5 && a.hi == 5.5 && !strcmp(lab, "2.0"), "ticks: loss 1.53..5.47 -> 1.5..5.5 by 0.5, label 2.0");
    lmplot__axis_fit(&a, 0, 1e-3, 5);
    lmplot__tick_label(&a, 6e-4, lab, sizeof lab);
    CHECK(a.exp10 == -3 && !strcmp(lab, "0.6"), "ticks: learning rate 0..1e-3 shown as 0.6 x10^-3");
    lmplot__axis_fit(&a, 2.5, 2.5, 5);
    CHECK(a.hi > a.lo && a.lo <= 2.5 && a.hi >= 2.5, "ticks: a single value gets a range around it");
}

/* The moving average: exact on constants and straight lines, NaN where the data is. */
static void test_plot_smooth(void) {
    double y[50], out[50];
    int i, bad = 0;
    for (i = 0; i < 50; i++) y[i] = 3 + 0.25 * i;
    lmplot__smooth(y, 50, 4, out);
    for (i = 0; i < 50; i++) bad += fabs(out[i] - y[i]) > 1e-12;
    CHECK(bad == 0, "smooth: a straight line is left as it is (centred window, edges too)");
    for (i = 0; i < 50; i++) y[i] = i % 2 ? 1 : 3;
    y[10] = NAN;
    lmplot__smooth(y, 50, 5, out);
    CHECK(out[10] != out[10] && fabs(out[25] - 2) < 0.1 + 1e-12 && fabs(out[24] - 2) < 0.1 + 1e-12,
          "smooth: averages out a zigzag, keeps the NaN gap");
}

/* Reading logs: by column name, whatever the order; missing and NaN cells are NAN. */
static void test_plot_read_csv(void) {
    lmplot_series s;
    char err[256];
    int rc;
    const char *p = plot_t_path("a.csv");
    plot_t_write(p, "step,loss,lr,tok_per_s,val_loss,elapsed_s\n"
                    "1,5.5,1e-4,100.0,,0.5\n"
                    "2,nan,2e-4,100.0,,1.0\n"
                    "3,5.0,,100.0,4.9,1.5\n"
                    "\n"
                    "4,4.5,4e-4,100.0,NaN,2.0\n"
                    "5,4.25\n");
    rc = lmplot_read_csv(p, &s, err, sizeof err);
    CHECK(rc == 0 && s.n == 5, "csv: five rows (blank line skipped, short row kept)");
    if (rc == 0 && s.n == 5) {
        CHECK(s.step[0] == 1 && s.step[4] == 5 && s.loss[0] == 5.5 && s.loss[4] == 4.25 &&
              s.lr[3] == 4e-4 && s.val[2] == 4.9, "csv: values where they belong");
        CHECK(s.loss[1] != s.loss[1] && s.lr[2] != s.lr[2] && s.val[0] != s.val[0] &&
              s.val[3] != s.val[3] && s.lr[4] != s.lr[4] && s.val[4] != s.val[4],
              "csv: nan, empty and missing cells read as NaN");
    }
    lmplot_free(&s);

    /* other column order, extra columns, quotes, CRLF, a byte order mark, no step */
    p = plot_t_path("b.csv");
    plot_t_write(p, "\xEF\xBB\xBF" "elapsed_s, \"Val_Loss\" ,extra,LR,train_loss\r\n"
                    "0.5,,x,0.001,3.0\r\n"
                    "1.0,2.5,y,0.002,2.75\r\n"
                    "1.5,,z,0.003,bogus\r\n");
    rc = lmplot_read_csv(p, &s, err, sizeof err);
    CHECK(rc == 0 && s.n == 3, "csv: reordered, quoted and extra columns, CRLF, BOM");
    if (rc == 0 && s.n == 3)
        CHECK(s.step[0] == 1 && s.step[2] == 3 && s.loss[1] == 2.75 && s.lr[2] == 0.003 &&
              s.val[1] == 2.5 && s.loss[2] != s.loss[2], "csv: found by name; rows numbered when no step");
    lmplot_free(&s);
}

/* Logs that cannot be plotted say why. */
static void test_plot_read_csv_errors(void) {
    lmplot_series s;
    char err[256];
    int rc;
    const char *p = plot_t_path("h.csv");
    plot_t_write(p, "step,loss,lr,tok_per_s,val_loss,elapsed_s\n");
    rc = lmplot_read_csv(p, &s, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "no data rows") && s.n == 0, "csv: only a header is an error");
    p = plot_t_path("n.csv");
    plot_t_write(p, "step,accuracy\n1,0.5\n");
    rc = lmplot_read_csv(p, &s, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "no 'loss' column"), "csv: no loss column is an error");
    p = plot_t_path("e.csv");
    plot_t_write(p, "\n\n");
    rc = lmplot_read_csv(p, &s, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "empty"), "csv: an empty file is an error");
    rc = lmplot_read_csv(plot_t_path("missing.csv"), &s, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "cannot read"), "csv: a missing file is an error");
    lmplot_free(&s);
}

/* The loss plot of a whole log: well formed, one path per series, one point per row. */
static void test_plot_loss_svg(void) {
    lmplot_series s;
    char err[256], *svg;
    const char *csv = plot_t_path("run.csv"), *out = plot_t_path("run.svg"), *why;
    int rc, sub = 0;
    plot_t_log(csv, 300, 50);
    rc = lmplot_read_csv(csv, &s, err, sizeof err);
    CHECK(rc == 0 && s.n == 300, "loss svg: log read");
    rc = lmplot_loss_svg(&s, "GPT 4x128, ctx 64 \xE2\x80\x94 <tiny> & \"shakespeare's\"", out, err, sizeof err);
    CHECK(rc == 0, "loss svg: written");
    svg = plot_t_read(out);
    CHECK(svg != NULL, "loss svg: file exists");
    if (svg) {
        why = plot_t_xml_check(svg);
        if (why) printf("  not well formed: %s\n", why);
        CHECK(why == NULL, "loss svg: well-formed XML");
        CHECK(plot_t_path_points(svg, "train-raw", NULL) == 300 &&
              plot_t_path_points(svg, "train-smooth", NULL) == 300 &&
              plot_t_path_points(svg, "lr", NULL) == 300, "loss svg: train raw, smoothed, lr: 300 points each");
        CHECK(plot_t_path_points(svg, "val", &sub) == 6 && sub == 1 &&
              plot_t_count(svg, "<circle class=\"pt val\"") == 6, "loss svg: 6 validation points joined, 6 dots");
        CHECK(plot_t_count(svg, "<path") == 4, "loss svg: exactly four paths");
        CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"), "loss svg: no NaN or Inf coordinates");
        CHECK(strstr(svg, "&lt;tiny&gt; &amp; &quot;shakespeare&apos;s&quot;") != NULL,
              "loss svg: title escaped");
        CHECK(!strstr(svg, "<script") && !strstr(svg, "<image") && !strstr(svg, "href") &&
              !strstr(svg, "@font-face"), "loss svg: self-contained");
        CHECK(strstr(svg, "learning rate (\xC3\x97" "10\xE2\x81\xBB\xC2\xB3)") != NULL,
              "loss svg: learning-rate axis scaled as x10^-3");
        free(svg);
    }
    CHECK(!t_exists(plot_t_path("run.svg.tmp")), "loss svg: no temporary file left");

    /* a gap in the train loss splits its path; the row still counts for the others */
    s.loss[100] = NAN;
    s.loss[101] = HUGE_VAL;
    rc = lmplot_loss_svg(&s, "gap", out, err, sizeof err);
    svg = plot_t_read(out);
    CHECK(rc == 0 && svg && !plot_t_xml_check(svg) &&
          plot_t_path_points(svg, "train-raw", &sub) == 298 && sub == 2 &&
          plot_t_path_points(svg, "lr", NULL) == 300, "loss svg: NaN and Inf skipped, path split in two");
    free(svg);
    lmplot_free(&s);
}

/* Missing series are left out with a note; nothing to plot is an error that writes nothing. */
static void test_plot_loss_svg_missing(void) {
    lmplot_series s;
    char err[256], *svg;
    const char *out = plot_t_path("m.svg");
    int i, rc;
    lmplot_init(&s);
    for (i = 1; i <= 40; i++) lmplot_push(&s, i, 3.0 - i * 0.01, NAN, NAN);
    rc = lmplot_loss_svg(&s, NULL, out, err, sizeof err);
    svg = plot_t_read(out);
    CHECK(rc == 0 && svg && !plot_t_xml_check(svg) && plot_t_path_points(svg, "val", NULL) == -1 &&
          plot_t_path_points(svg, "lr", NULL) == -1 && plot_t_path_points(svg, "train-raw", NULL) == 40 &&
          strstr(svg, "no validation loss or learning rate logged"),
          "loss svg: all-NaN validation and lr omitted with a note");
    free(svg);

    /* no finite loss at all: an error, and the picture already there is untouched */
    for (i = 0; i < s.n; i++) s.loss[i] = NAN;
    rc = lmplot_loss_svg(&s, "t", out, err, sizeof err);
    svg = plot_t_read(out);
    CHECK(rc != 0 && strstr(err, "nothing to plot") && svg && strstr(svg, "no validation loss"),
          "loss svg: all-NaN log is an error, old file kept");
    free(svg);
    lmplot_free(&s);
    rc = lmplot_loss_svg(&s, "t", plot_t_path("empty.svg"), err, sizeof err);
    CHECK(rc != 0 && strstr(err, "empty") && !t_exists(plot_t_path("empty.svg")),
          "loss svg: empty log is an error, no file");
    lmplot_push(&s, 1, 2.0, 1e-3, NAN);
    rc = lmplot_loss_svg(&s, "t", plot_t_path("no/such/dir.svg"), err, sizeof err);
    CHECK(rc != 0 && strstr(err, "cannot write"), "loss svg: unwritable path is an error");
    rc = lmplot_loss_svg(&s, "one row", out, err, sizeof err);
    svg = plot_t_read(out);
    CHECK(rc == 0 && svg && !plot_t_xml_check(svg) && plot_t_path_points(svg, "train-raw", NULL) == 1 &&
          plot_t_path_points(svg, "train-smooth", NULL) == -1, "loss svg: a single row still plots (no smoothing)");
    free(svg);
    /* absurd values (a diverged run) are skipped rather than breaking the scales */
    for (i = 2; i <= 30; i++) lmplot_push(&s, i, i == 7 ? 1e300 : 3.0 / i, i == 9 ? -HUGE_VAL : 1e-3, NAN);
    rc = lmplot_loss_svg(&s, "diverged", out, err, sizeof err);
    svg = plot_t_read(out);
    CHECK(rc == 0 && svg && !plot_t_xml_check(svg) && plot_t_path_points(svg, "train-raw", NULL) == 29 &&
          plot_t_path_points(svg, "lr", NULL) == 29 && !strstr(svg, "nan") && !strstr(svg, "inf"),
          "loss svg: 1e300 and -Inf rows skipped, scales intact");
    free(svg);
    lmplot_free(&s);
}

/* The confusion matrix: n^2 cells with their counts, labels escaped, bad input refused. */
static void test_plot_confusion(void) {
    static const long cm[9] = { 40, 3, 1, 5, 30, 5, 0, 0, 0 };
    static const char *const labels[3] = { "english", "<b>fran\303\247ais</b>", "a & \xFF b" };
    long big[144], neg[4] = { 1, 2, -3, 4 };
    char err[256], *svg;
    const char *out = plot_t_path("cm.svg"), *why;
    int i, rc;
    rc = lmplot_confusion_svg(cm, 3, labels, "langid \xE2\x80\x94 3 classes", out, err, sizeof err);
    svg = plot_t_read(out);
    CHECK(rc == 0 && svg != NULL, "confusion svg: written");
    if (svg) {
        why = plot_t_xml_check(svg);
        if (why) printf("  not well formed: %s\n", why);
        CHECK(why == NULL, "confusion svg: well-formed XML (bad UTF-8 label repaired)");
        CHECK(plot_t_count(svg, "<rect class=\"cell\"") == 9 && plot_t_count(svg, "<text class=\"count\"") == 9,
              "confusion svg: 9 cells, 9 counts");
        CHECK(strstr(svg, ">40</text>") && strstr(svg, ">30</text>") && strstr(svg, "&lt;b&gt;fran"),
              "confusion svg: counts in cells, labels escaped");
        CHECK(strstr(svg, "accuracy 83.3% (70 of 84)") != NULL, "confusion svg: accuracy line");
        free(svg);
    }
    for (i = 0; i < 144; i++) big[i] = i % 13 == 0 ? 1000 + i : i % 7;
    rc = lmplot_confusion_svg(big, 12, NULL, NULL, out, err, sizeof err);
    svg = plot_t_read(out);
    CHECK(rc == 0 && svg && !plot_t_xml_check(svg) && plot_t_count(svg, "<rect class=\"cell\"") == 144,
          "confusion svg: 12 unlabelled classes, 144 cells");
    free(svg);
    rc = lmplot_confusion_svg(neg, 2, NULL, "x", plot_t_path("neg.svg"), err, sizeof err);
    CHECK(rc != 0 && strstr(err, "negative") && !t_exists(plot_t_path("neg.svg")),
          "confusion svg: a negative count is an error, no file");
    rc = lmplot_confusion_svg(neg, 0, NULL, "x", plot_t_path("neg.svg"), err, sizeof err);
    CHECK(rc != 0 && strstr(err, "classes"), "confusion svg: zero classes is an error");
}

static void run_plot_tests(void) {
    if (!t_scratch_make(&plot_t_scratch, "/tmp/lm_plot_XXXXXX")) {
        CHECK(0, "plot: cannot make a temporary directory");
        return;
    }
    test_plot_xml_checker();
    test_plot_ticks();
    test_plot_smooth();
    test_plot_read_csv();
    test_plot_read_csv_errors();
    test_plot_loss_svg();
    test_plot_loss_svg_missing();
    test_plot_confusion();
    {   /* leave nothing behind */
        static const char *const files[] = { "a.csv", "b.csv", "h.csv", "n.csv", "e.csv", "run.csv",
                                             "run.svg", "m.svg", "cm.svg" };
        int k;
        for (k = 0; k < (int)(sizeof files / sizeof files[0]); k++) remove(plot_t_path(files[k]));
        t_scratch_done(&plot_t_scratch);
    }
}
/* ---- compression: Q8_0 weights and kernels, quantized checkpoints, pruning ---------------
   The format against its definition (|w - d q| <= d / 2, F16 scales), the activations and
   the integer kernels of every compiled path bit for bit against the plain scalar math
   (lm__ref_q8_matvec), on odd sizes and any thread count; a quantized GPT against the
   float32 one; checkpoints, hostile files and the image for lm_gpt_from_memory; pruning
   and keep_zeros. */
static float q8_t_value(lm_rng *r, int kind) {
    float u = lm_rng_normal(r);
    switch (kind) {
    case 0: return u;                                  /* plain                          */
    case 1: return u * 1e-6f;                          /* subnormal F16 scales           */
    case 2: return u * 3e-7f;                          /* scales rounded to 0 or nudged  */
    case 3: return lm_rng_below(r, 4) ? 0.0f : u;      /* mostly zeros                   */
    case 4: return (float)((int)lm_rng_below(r, 255) - 127) * 0.0625f;  /* exact ties     */
    default: return u * 1000.0f;
    }
}

static void test_q8_weights(void) {
    lm_rng r = lm_rng_seed(31);
    float w[200], worst = 0;
    signed char q[200], q2[200];
    uint16_t d[8], d2[8];
    int kind, n, i, bad = 0, badd = 0, badr = 0, nudged = 0;
    for (kind = 0; kind < 6; kind++)
        for (n = 1; n <= 200; n += (n < 70 ? 1 : 43)) {
            for (i = 0; i < n; i++) w[i] = q8_t_value(&r, kind);
            if (lm__q8_quantize_row(w, 1, n, q, d, "w") != LM_OK) { bad++; continue; }
            for (i = 0; i < n; i++) {
                float dd = lm__f16_to_f32(d[i / 32]);
                double err = fabs((double)w[i] - (double)dd * q[i]);
                if (!(err <= dd / 2) || q[i] == -128) bad++;
                if (dd > 0 && err / dd > worst) worst = (float)(err / dd);
            }
            for (i = 0; i * 32 < n; i++) {
                /* d is max|w| / 127 in F16 (ggml's), or the next F16 up when that would
                   push a value past 127 */
                float amax = 0;
                int j;
                uint16_t h;
                for (j = i * 32; j < n && j < i * 32 + 32; j++) amax = fabsf(w[j]) > amax ? fabsf(w[j]) : amax;
                h = lm__f32_to_f16(amax / 127.0f);
                if (d[i] != h) {
                    nudged++;
                    if (!(d[i] > h && amax / lm__f16_to_f32((uint16_t)(d[i] - 1)) >= 127.5)) badd++;
                }
            }
            {   /* the packed layout and back, and lm_q8_get, on a matrix of 3 such rows */
                lm_arena a;
                lm_q8 *W;
                int rr;
                lm_arena_init(&a, lm__q8_arena_bytes(19, n) + 4096);
                W = lm__q8_new(&a, 19, n);
                for (rr = 0; rr < 19; rr += 9) lm__q8_pack_row(W, rr, q, d);
                for (rr = 0; rr < 19; rr += 9) {
                    lm__q8_unpack_row(W, rr, q2, d2);
                    if (memcmp(q, q2, (size_t)n) || memcmp(d, d2, (size_t)((n + 31) / 32) * 2)) badr++;
                    for (i = 0; i < n; i++)
                        if (lm_q8_get(W, rr, i) != lm__f16_to_f32(d[i / 32]) * q[i]) badr++;
                }
                for (i = 0; i < n; i++) if (lm_q8_get(W, 4, i) != 0.0f) badr++;   /* untouched rows */
                lm_arena_free(&a);
            }
        }
    printf("  q8: weights: worst |w - d q| = %.4f d (bound 0.5); %d scales nudged up\n", worst, nudged);
    CHECK(bad == 0, "q8: every weight within d/2 of d q, q in [-127, 127] (normal, subnormal and zero scales, ties, partial blocks)");
    CHECK(badd == 0 && nudged > 0, "q8: d is max|w|/127 as F16, or the next F16 up exactly when needed");
    CHECK(badr == 0, "q8: the packed layout gives back every value and scale; lm_q8_get is d q");
    w[0] = NAN;
    CHECK(lm__q8_quantize_row(w, 1, 4, q, d, "w") == LM_ERR_ARG && strstr(lm_error(), "not finite"),
          "q8: a NaN weight is refused");
    w[0] = 1e7f;
    CHECK(lm__q8_quantize_row(w, 1, 4, q, d, "w") == LM_ERR_ARG && strstr(lm_error(), "too large"),
          "q8: a weight beyond 127 x 65504 is refused (its scale would overflow F16)");
}

/* Activations: every path's quantizer (lm__q8_quant_x) against the plain one, bit for bit. */
static void test_q8_activations(void) {
    lm_rng r = lm_rng_seed(5);
    float x[32 * 12], dv[12], dr[12], worst = 0;
    signed char qv[32 * 12], qr[32 * 12];
    int sv[12], sr[12], kind, b, i, n, bad = 0, badq = 0, trial;
    for (trial = 0; trial < 60; trial++) {
        kind = trial % 10;
        n = trial < 30 ? 32 * 12 : 32 * 11 + 1 + trial % 31;
        for (i = 0; i < n; i++) {
            float u = lm_rng_normal(&r);
            x[i] = kind == 1 ? u * 1e-31f : kind == 2 ? u * 1e-38f : kind == 3 ? 0.0f
                 : kind == 4 ? (float)((int)lm_rng_below(&r, 255) - 127) * 0.5f
                 : kind == 5 ? u * 3e37f : u;
        }
        if (kind == 6) x[7] = NAN;
        if (kind == 7) x[40] = -INFINITY;
        if (kind == 8) x[64] = 1e-30f;                  /* exactly at the threshold     */
        if (kind == 9) x[3] = 2e-45f;                   /* a denormal among normals     */
        lm__vec_simd = 1;
        lm__q8_quant_x(x, n, 0, (n + 31) / 32, qv, dv, sv);
        lm__vec_simd = 0;
        lm__q8_quant_x(x, n, 0, (n + 31) / 32, qr, dr, sr);
        lm__vec_simd = 1;
        for (b = 0; b < (n + 31) / 32; b++) {
            int s = 0;
            signed char q1[32];
            float d1 = lm__q8_quant_block(x + 32 * b, n - 32 * b < 32 ? n - 32 * b : 32, q1, &s);
            if (memcmp(&dv[b], &dr[b], 4) || memcmp(&d1, &dr[b], 4) || sv[b] != sr[b] || s != sr[b] ||
                memcmp(qv + 32 * b, qr + 32 * b, 32) || memcmp(q1, qr + 32 * b, 32))
                bad++;
            for (i = 0, s = 0; i < 32; i++) s += qr[32 * b + i];
            if (s != sr[b]) bad++;
            for (i = 32 * b; i < n && i < 32 * b + 32; i++) {
                double e = fabs((double)x[i] - (double)dr[b] * qr[i]);
                if (dr[b] == dr[b] && dr[b] > 0 && e / dr[b] > worst) worst = (float)(e / dr[b]);
                if (dr[b] == dr[b] && e > dr[b] * 0.50001 + 1e-30) badq++;
            }
        }
    }
    printf("  q8: activations (%s): worst |x - d q| = %.5f d\n", LM__Q8_ISA, worst);
    CHECK(bad == 0, "q8: activations quantize to the same bits on the SIMD and scalar paths (zeros, tiny, denormal, NaN, infinity, ties, partial blocks)");
    CHECK(badq == 0, "q8: activations within d/2 (and a rounding) of d q");
    {
        float z[32] = { 0 };
        int s;
        z[5] = NAN;
        CHECK(lm__q8_quant_block(z, 32, qr, &s) != lm__q8_quant_block(z, 32, qr, &s) && s == 0,
              "q8: a NaN makes the block's scale NaN (so the product is NaN)");
    }
}

/* A random Q8_0 matrix: the file's form (q, d) and the packed one. */
typedef struct { int out, in; signed char *q; uint16_t *d; lm_arena a; lm_q8 *W; } q8_t_mat;
static void q8_t_mat_make(q8_t_mat *m, int out, int in, lm_rng *r) {
    float *w = (float *)malloc((size_t)in * sizeof(float));
    int j, i, nb = (in + 31) / 32;
    m->out = out; m->in = in;
    m->q = (signed char *)malloc((size_t)out * in);
    m->d = (uint16_t *)malloc((size_t)out * nb * sizeof(uint16_t));
    lm_arena_init(&m->a, lm__q8_arena_bytes(out, in) + 4096);
    m->W = lm__q8_new(&m->a, out, in);
    for (j = 0; j < out; j++) {
        float scale = j % 5 == 0 ? 0.01f : j % 7 == 1 ? 1e-5f : 1.0f;   /* subnormal F16 scales too */
        for (i = 0; i < in; i++) w[i] = scale * lm_rng_normal(r);
        lm__q8_quantize_row(w, 1, in, m->q + (size_t)j * in, m->d + (size_t)j * nb, "t");
        lm__q8_pack_row(m->W, j, m->q + (size_t)j * in, m->d + (size_t)j * nb);
    }
    free(w);
}
static void q8_t_mat_free(q8_t_mat *m) { free(m->q); free(m->d); lm_arena_free(&m->a); }

static void test_q8_kernels(void) {
    static const int outs[] = { 1, 15, 16, 17, 33, 100, 257 }, ins[] = { 1, 31, 32, 33, 100, 384 };
    static const int Ms[] = { 1, 2, 5, 40 };
    lm_rng r = lm_rng_seed(77);
    int oi, ii, mi, bad_ref = 0, bad_path = 0, bad_thr = 0, bad_float = 0, checked = 0;
    double worst = 0;
    for (oi = 0; oi < 7; oi++)
        for (ii = 0; ii < 6; ii++) {
            q8_t_mat m;
            int out = outs[oi], in = ins[ii];
            q8_t_mat_make(&m, out, in, &r);
            for (mi = 0; mi < 4; mi++) {
                int M = Ms[mi], i, j, k, th;
                float *X = (float *)malloc((size_t)M * in * sizeof(float));
                float *bias = (float *)malloc((size_t)out * sizeof(float));
                float *Y1 = (float *)malloc((size_t)M * out * sizeof(float));
                float *Y2 = (float *)malloc((size_t)M * out * sizeof(float));
                float *Yr = (float *)malloc((size_t)M * out * sizeof(float));
                for (i = 0; i < M * in; i++) X[i] = (i % 7 == 3 ? 10.0f : 1.0f) * lm_rng_normal(&r);
                for (j = 0; j < out; j++) bias[j] = lm_rng_normal(&r);
                for (i = 0; i < M; i++)
                    lm__ref_q8_matvec(m.q, m.d, out, in, X + (size_t)i * in, mi & 1 ? bias : NULL,
                                      Yr + (size_t)i * out);
                lm__vec_simd = 1;
                lm__q8_matmul(m.W, X, M, mi & 1 ? bias : NULL, Y1);
                lm__vec_simd = 0;
                lm__q8_matmul(m.W, X, M, mi & 1 ? bias : NULL, Y2);
                lm__vec_simd = 1;
                if (memcmp(Y1, Yr, (size_t)M * out * sizeof(float))) bad_ref++;
                if (memcmp(Y2, Yr, (size_t)M * out * sizeof(float))) bad_path++;
                for (th = 2; th <= 3; th++) {
                    lm_set_threads(th);
                    lm__q8_matmul(m.W, X, M, mi & 1 ? bias : NULL, Y2);
                    if (memcmp(Y1, Y2, (size_t)M * out * sizeof(float))) bad_thr++;
                }
                lm_set_threads(1);
                /* against the float product with the dequantized weights: only the
                   activations' rounding separates them, each activation off by at most
                   d_x / 2 = max|x| / 254 of its block */
                for (i = 0; i < M; i++)
                    for (j = 0; j < out; j++) {
                        double s = mi & 1 ? bias[j] : 0, sa = fabs(s), bound = 0;
                        for (k = 0; k < in; k++) {
                            double w = lm_q8_get(m.W, j, k), ax = 0;
                            int e;
                            s += w * X[(size_t)i * in + k];
                            sa += fabs(w * X[(size_t)i * in + k]);
                            for (e = k / 32 * 32; e < in && e < k / 32 * 32 + 32; e++)
                                if (fabs(X[(size_t)i * in + e]) > ax) ax = fabs(X[(size_t)i * in + e]);
                            bound += fabs(w) * ax / 254;
                        }
                        if (bound > 0 && fabs(Y1[(size_t)i * out + j] - s) / (bound + 1e-6 * sa) > worst)
                            worst = fabs(Y1[(size_t)i * out + j] - s) / (bound + 1e-6 * sa);
                        if (fabs(Y1[(size_t)i * out + j] - s) > bound * 1.0001 + 1e-6 * sa) bad_float++;
                        checked++;
                    }
                free(X); free(bias); free(Y1); free(Y2); free(Yr);
            }
            q8_t_mat_free(&m);
        }
    printf("  q8: kernels (%s): %d outputs; |y - float product| at most %.3f of its bound\n",
           LM__Q8_ISA, checked, worst);
    CHECK(bad_ref == 0, "q8: the Q8_0 product equals the plain scalar math bit for bit (1-257 outputs, 1-384 inputs, 1-40 rows, bias or none)");
    CHECK(bad_path == 0, "q8: the scalar path equals the plain math too");
    CHECK(bad_thr == 0, "q8: the same bits on 1, 2 and 3 threads");
    CHECK(bad_float == 0, "q8: and within sum |w| max|x| / 254 (per block) of the float product of the dequantized weights");
}

/* A small GPT that has learnt something (logits that mean something), for the model tests:
   width 40 and 3C = 120 outputs, so blocks and row groups come partial. */
static lm_gpt *q8_t_trained(void) {
    static const char text[] = "the cat sat on the mat. the dog sat on the log. a cat and a dog. ";
    lm_gpt *m = t_tiny_gpt(2, 2, 40, 24, 64, 3);
    lm_train_opts o = lm_train_defaults();
    int in[4 * 24], tg[4 * 24], s, b, t, n = (int)sizeof text - 1;
    if (!m) return NULL;
    o.steps = 120; o.warmup = 10; o.lr = 3e-3f;
    for (s = 0; s < o.steps; s++) {
        for (b = 0; b < 4; b++)
            for (t = 0; t < 24; t++) {
                in[b * 24 + t] = (unsigned char)text[(s * 7 + b * 13 + t) % n] % 64;
                tg[b * 24 + t] = (unsigned char)text[(s * 7 + b * 13 + t + 1) % n] % 64;
            }
        lm_gpt_train_step(m, &o, in, tg, 4, 24, s);
    }
    return m;
}

static void test_q8_gpt(void) {
    lm_gpt *m = q8_t_trained(), *q, *qe;
    int toks[60], i, k, quant, same = 1, tg[4] = { 1, 2, 3, 4 };
    float lf[64], lq[64], lg[64], *all;
    double worst[2] = { 0, 0 }, lossd[2];
    lm_graph g;
    lm_arena a;
    if (!m) { CHECK(0, "q8 gpt: model"); return; }
    for (i = 0; i < 60; i++) toks[i] = (int)("the cat sat on the log. a dog and a cat sat on the mat. the"[i]) % 64;
    q = lm_gpt_quantize(m, LM_QUANT_Q8_0);
    qe = lm_gpt_quantize(m, LM_QUANT_Q8_0_EMB);
    CHECK(q && qe && q->cfg.quant == LM_QUANT_Q8_0 && qe->cfg.quant == LM_QUANT_Q8_0_EMB &&
          q->params.t[4].q8 && !q->params.t[0].q8 && qe->params.t[0].q8 && !qe->params.t[1].q8 &&
          !q->params.t[2].q8 && !q->params.grad && lm_gpt_num_params(q) == lm_gpt_num_params(m),
          "q8 gpt: quantize makes the block matrices (and wte with _EMB) Q8_0, nothing else, no gradients");
    if (!q || !qe) { lm_gpt_free(m); return; }
    for (quant = 0; quant < 2; quant++) {
        lm_gpt *x = quant ? qe : q;
        lm_gpt_reset_cache(m);
        lm_gpt_reset_cache(x);
        for (i = 0; i < 24; i++) {
            float mx = 0;
            lm_gpt_step_token(m, toks[i], lf);
            lm_gpt_step_token(x, toks[i], lq);
            for (k = 0; k < 64; k++) mx = fabsf(lf[k]) > mx ? fabsf(lf[k]) : mx;
            for (k = 0; k < 64; k++)
                if (fabsf(lq[k] - lf[k]) / mx > worst[quant]) worst[quant] = fabsf(lq[k] - lf[k]) / mx;
        }
        lossd[quant] = lm_gpt_eval(x, toks, 60, 24) / lm_gpt_eval(m, toks, 60, 24) - 1;
    }
    printf("  q8 gpt: logits off by at most %.4f (Q8_0) and %.4f (and wte) of the largest; "
           "eval loss %+.4f%%, %+.4f%%\n", worst[0], worst[1], 100 * lossd[0], 100 * lossd[1]);
    CHECK(worst[0] < 0.03 && worst[1] < 0.03,
          "q8 gpt: every logit within 3% of the largest logit of the float32 model (stated bound)");
    CHECK(fabs(lossd[0]) < 0.02 && fabs(lossd[1]) < 0.02, "q8 gpt: eval loss within 2% of float32's");
    /* the batched forward (prefill) and the one-token path agree on the last position */
    lm_arena_init(&a, 1 << 22);
    lm_graph_init(&g, &a);
    g.no_grad = 1;
    all = lm_gpt_forward(qe, &g, toks, 1, 24)->data;
    lm_gpt_reset_cache(qe);
    for (i = 0; i < 24; i++) lm_gpt_step_token(qe, toks[i], lg);
    for (k = 0; k < 64; k++) if (fabsf(lg[k] - all[23 * 64 + k]) > 1e-4f * (1 + fabsf(lg[k]))) same = 0;
    CHECK(same, "q8 gpt: the batched forward and lm_gpt_step_token agree");
    lm_arena_free(&a);
    {   /* any thread count: the same bits */
        float e1, e2, l1[64], l2[64];
        lm_set_threads(1);
        e1 = lm_gpt_eval(qe, toks, 60, 24);
        lm_gpt_reset_cache(qe);
        for (i = 0; i < 10; i++) lm_gpt_step_token(qe, toks[i], l1);
        lm_set_threads(2);
        e2 = lm_gpt_eval(qe, toks, 60, 24);
        lm_gpt_reset_cache(qe);
        for (i = 0; i < 10; i++) lm_gpt_step_token(qe, toks[i], l2);
        lm_set_threads(1);
        CHECK(e1 == e2 && !memcmp(l1, l2, sizeof l1), "q8 gpt: eval and step_token the same on 1 and 2 threads");
    }
    CHECK(lm_gpt_train_step(q, NULL, toks, toks + 1, 1, 4, 0) != lm_gpt_train_step(q, NULL, toks, toks + 1, 1, 4, 0) &&
          strstr(lm_error(), "cannot train"), "q8 gpt: a training step is refused with a message");
    CHECK(lm_gpt_backward(qe, tg, tg, 1, 4) != lm_gpt_backward(qe, tg, tg, 1, 4), "q8 gpt: so is a backward");
    {
        lm_train_state st;
        memset(&st, 0, sizeof st);
        CHECK(lm_gpt_save_state(q, "/nonexistent/q8", &st) == LM_ERR_ARG &&
              lm_gpt_load_state(q, "/nonexistent/q8", &st) == LM_ERR_ARG && strstr(lm_error(), "optimizer state"),
              "q8 gpt: no resume state to save or load");
    }
    CHECK(lm_gpt_quantize(q, LM_QUANT_Q8_0) == NULL && strstr(lm_error(), "already"),
          "q8 gpt: quantizing a quantized model is refused");
    CHECK(lm_gpt_quantize(m, 7) == NULL, "q8 gpt: an unknown quant level is refused");
    {
        lm_gpt_config c = m->cfg;
        c.quant = LM_QUANT_Q8_0;
        CHECK(lm_gpt_new(&c, 1) == NULL && strstr(lm_error(), "float32"), "q8 gpt: lm_gpt_new makes float32 models only");
    }
    lm_gpt_free(q);
    lm_gpt_free(qe);
    lm_gpt_free(m);
}

/* Do two models hold the same weights, bit for bit (float32 tensors and Q8_0 values)? */
static int q8_t_same(const lm_gpt *a, const lm_gpt *b) {
    int k, r, i;
    if (a->params.n != b->params.n || a->cfg.quant != b->cfg.quant) return 0;
    for (k = 0; k < a->params.n; k++) {
        const lm_tensor *x = &a->params.t[k], *y = &b->params.t[k];
        if (!x->q8 != !y->q8 || x->size != y->size) return 0;
        if (!x->q8) { if (memcmp(x->data, y->data, (size_t)x->size * 4)) return 0; continue; }
        for (r = 0; r < x->q8->out; r++)
            for (i = 0; i < x->q8->in; i++)
                if (lm_q8_get(x->q8, r, i) != lm_q8_get(y->q8, r, i)) return 0;
    }
    return 1;
}

/* A checkpoint image's tensors as writer entries over its bytes (raw), to rewrite with
   one thing changed; the parsed file stays open for them. */
static lm_st_out *q8_t_entries(lm_st_file *f, const unsigned char *img, size_t len) {
    lm_st_out *o;
    int i, k;
    if (lm_st_parse(f, img, len) != LM_OK) return NULL;
    o = (lm_st_out *)calloc((size_t)f->n + 2, sizeof *o);
    for (i = 0; i < f->n; i++) {
        const lm_st_entry *e = &f->entries[i];
        o[i].name = e->name;
        o[i].ndim = e->ndim;
        for (k = 0; k < e->ndim; k++) o[i].shape[k] = e->shape[k];
        o[i].dtype = e->dtype;
        o[i].raw = f->data + e->begin;
    }
    return o;
}
static int q8_t_find(const lm_st_out *o, int n, const char *name) {
    int i;
    for (i = 0; i < n; i++) if (!strcmp(o[i].name, name)) return i;
    return -1;
}
/* Write entries and metadata (kv NULL: the checkpoint's own) and load the result: NULL
   expected, with want in the message. */
static int q8_t_rejects(const lm_st_out *o, int n, const lm_st_file *f, const char *const *kv,
                        int nkv, const char *want) {
    unsigned char *b;
    size_t len;
    lm_gpt *m;
    int ok;
    b = st_t_write(o, n, kv ? kv : f->meta, kv ? nkv : f->nmeta, &len);
    if (!b) { printf("  (could not write the test file: %s)\n", lm_error()); return 0; }
    m = lm_gpt_load_mem(b, len, 0);
    ok = !m && strstr(lm_error(), want) != NULL;
    if (!ok) printf("  (wanted a failure with '%s'; got %s)\n", want, m ? "a model" : lm_error());
    lm_gpt_free(m);
    free(b);
    return ok;
}

static void test_q8_checkpoint(void) {
    lm_gpt *m = st_t_model(2, 40, 2, 12, 50, 4), *q = m ? lm_gpt_quantize(m, LM_QUANT_Q8_0_EMB) : NULL;
    lm_gpt *q1 = m ? lm_gpt_quantize(m, LM_QUANT_Q8_0) : NULL, *back = NULL;
    unsigned char *img = NULL, *img2;
    size_t len = 0, len2 = 0;
    lm_st_file f;
    lm_st_out *o;
    int n, k, bad = 0, i;
    const char *path;
    if (!t_scratch_make(&st_t_scratch, "/tmp/lm_q8_XXXXXX")) { CHECK(0, "q8: a temporary directory"); return; }
    path = st_t_path("q8.safetensors");
    if (!q || !q1) { CHECK(0, "q8 checkpoint: models"); lm_gpt_free(m); return; }
    /* round trips, file and memory, both levels */
    CHECK(lm_gpt_save(q, path) == LM_OK && (back = lm_gpt_load(path, 0)) != NULL && q8_t_same(q, back) &&
          back->cfg.n_head == 2, "q8 checkpoint: save and load give back every value, bit for bit");
    lm_gpt_free(back);
    lm_gpt_save_mem(q, NULL, 0, &len);
    img = (unsigned char *)malloc(len);
    CHECK(lm_gpt_save_mem(q, img, len, &len) == LM_OK, "q8 checkpoint: save_mem");
    img2 = NULL;
    CHECK(lm__read_file(path, &img2, &len2) == LM_OK && len2 == len && !memcmp(img, img2, len),
          "q8 checkpoint: save_mem writes the bytes save writes");
    free(img2);
    remove(path);
    back = lm_gpt_load_mem(img, len, 0);
    CHECK(back && q8_t_same(q, back), "q8 checkpoint: load_mem round trip");
    lm_gpt_free(back);
    lm_gpt_save_mem(q1, NULL, 0, &len2);
    img2 = (unsigned char *)malloc(len2);
    lm_gpt_save_mem(q1, img2, len2, &len2);
    back = lm_gpt_load_mem(img2, len2, 0);
    CHECK(back && back->cfg.quant == LM_QUANT_Q8_0 && q8_t_same(q1, back),
          "q8 checkpoint: the level without wte round-trips too");
    lm_gpt_free(back);
    free(img2);
    /* the file: names, dtypes, shapes (output-major, transposed from Conv1D), metadata */
    o = q8_t_entries(&f, img, len);
    if (!o) { CHECK(0, "q8 checkpoint: parse"); goto done; }
    n = f.n;
    {
        int a = q8_t_find(o, n, "h.1.mlp.c_fc.weight.q8"), d = q8_t_find(o, n, "h.1.mlp.c_fc.weight.d");
        int w = q8_t_find(o, n, "wte.weight.q8"), p = q8_t_find(o, n, "wpe.weight");
        const lm_q8 *W = q->h[1].fc_w->q8;
        CHECK(a >= 0 && d >= 0 && w >= 0 && p >= 0 && o[a].dtype == LM_DT_I8 && o[a].shape[0] == 160 &&
              o[a].shape[1] == 40 && o[d].dtype == LM_DT_F16 && o[d].shape[0] == 160 &&
              o[d].shape[1] == 2 && o[w].shape[0] == 50 && o[w].shape[1] == 40 &&
              o[p].dtype == LM_DT_F32 && q8_t_find(o, n, "wte.weight") < 0 &&
              lm_st_meta(&f, "quant") && !strcmp(lm_st_meta(&f, "quant"), "q8_0"),
              "q8 checkpoint: NAME.q8 I8 [out, in] and NAME.d F16 [out, ceil(in/32)], the rest F32, quant = q8_0");
        if (a >= 0 && d >= 0)   /* value (row j, input i) is that of the product */
            for (k = 0; k < 160; k += 7)
                for (i = 0; i < 40; i += 3)
                    if (((const signed char *)o[a].raw)[k * 40 + i] *
                        lm__f16_to_f32((uint16_t)(((const unsigned char *)o[d].raw)[2 * (k * 2 + i / 32)] |
                                                  ((const unsigned char *)o[d].raw)[2 * (k * 2 + i / 32) + 1] << 8))
                        != lm_q8_get(W, k, i)) bad++;
        CHECK(bad == 0, "q8 checkpoint: row j of NAME.q8 is output j's values along the input");
    }
    /* hostile and malformed files: each is an error with a message, never a model */
    {
        int a = q8_t_find(o, n, "h.0.attn.c_attn.weight.q8"), d = q8_t_find(o, n, "h.0.attn.c_attn.weight.d");
        int w = q8_t_find(o, n, "wte.weight.q8"), wd = q8_t_find(o, n, "wte.weight.d");
        int ln = q8_t_find(o, n, "h.0.ln_1.weight");
        lm_st_out *o2 = (lm_st_out *)calloc((size_t)n + 2, sizeof *o2);
        unsigned char *vals = (unsigned char *)malloc((size_t)o[a].shape[0] * o[a].shape[1]);
        unsigned char *sc = (unsigned char *)malloc((size_t)o[d].shape[0] * o[d].shape[1] * 2);
        float *f32 = (float *)calloc((size_t)o[a].shape[0] * o[a].shape[1], sizeof(float));
        const char *kv_none[2] = { "n_head", "2" }, *kv_q4[4] = { "n_head", "2", "quant", "q4_0" };
        const char *kv_q8[4] = { "n_head", "2", "quant", "q8_0" };
        int fails = 0, tried = 0;
#define Q8_T_REJECT(cond, what) do { tried++; if (!(cond)) { fails++; printf("  q8 malformed: %s\n", what); } } while (0)
        memcpy(o2, o, (size_t)n * sizeof *o2);
        /* a part missing */
        o2[d] = o2[n - 1];
        Q8_T_REJECT(q8_t_rejects(o2, n - 1, &f, NULL, 0, "missing tensor 'h.0.attn.c_attn.weight.d'"), "no NAME.d");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[a] = o2[n - 1];
        Q8_T_REJECT(q8_t_rejects(o2, n - 1, &f, NULL, 0, "block matrices are Q8_0"), "no NAME.q8");
        /* dtypes */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[a].dtype = LM_DT_U8;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "must be I8"), "values as U8");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[d].dtype = LM_DT_BF16;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "must be F16"), "scales as BF16");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[a].dtype = LM_DT_F32; o2[a].raw = f32;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "must be I8"), "values as F32");
        /* shapes: transposed, short, one dim */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[a].shape[0] = o[a].shape[1]; o2[a].shape[1] = o[a].shape[0];
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "expected [120, 40]"), "values transposed (input-major)");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[d].shape[1] = 1;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "expected [120, 2]"), "too few scales");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[d].ndim = 1; o2[d].shape[0] *= o2[d].shape[1];
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "has shape"), "scales flattened");
        /* values: -128, infinite and NaN scales */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        memcpy(vals, o[a].raw, (size_t)o[a].shape[0] * o[a].shape[1]);
        vals[77] = 0x80;
        o2[a].raw = vals;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "-128"), "a value -128");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        memcpy(sc, o[d].raw, (size_t)o[d].shape[0] * o[d].shape[1] * 2);
        sc[9] = 0x7C; sc[8] = 0x00;
        o2[d].raw = sc;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "not finite"), "an infinite scale");
        sc[9] = 0xFE; sc[8] = 0x01;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "not finite"), "a NaN scale");
        /* metadata */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, kv_none, 1, "without metadata quant"), "no quant metadata");
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, kv_q4, 2, "only q8_0"), "quant = q4_0");
        /* some blocks quantized, not all: c_attn of block 0 as F32 */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[a].name = "h.0.attn.c_attn.weight"; o2[a].dtype = LM_DT_F32; o2[a].raw = f32;
        o2[a].shape[0] = 40; o2[a].shape[1] = 120;
        o2[d] = o2[n - 1];
        Q8_T_REJECT(q8_t_rejects(o2, n - 1, &f, NULL, 0, "7 of the 8 block matrices"), "one block matrix float32");
        /* both forms of one weight */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[n] = o2[a];
        o2[n].name = "h.0.attn.c_attn.weight"; o2[n].dtype = LM_DT_F32; o2[n].raw = f32;
        o2[n].shape[0] = 40; o2[n].shape[1] = 120;
        Q8_T_REJECT(q8_t_rejects(o2, n + 1, &f, NULL, 0, "appears twice"), "NAME and NAME.q8");
        /* what cannot be Q8_0: a LayerNorm, wpe */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[ln].name = "h.0.ln_1.weight.q8";
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "only the block matrices"), "a LayerNorm as .q8");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[q8_t_find(o, n, "wpe.weight")].name = "wpe.weight.q8";
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, NULL, 0, "only the block matrices"), "wpe as .q8");
        /* an untied head beside a Q8_0 wte */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[n] = o[q8_t_find(o, n, "wpe.weight")];
        o2[n].name = "lm_head.weight"; o2[n].shape[0] = 50; o2[n].raw = f32;
        Q8_T_REJECT(q8_t_rejects(o2, n + 1, &f, NULL, 0, "lm_head.weight beside"), "lm_head with a Q8_0 wte");
        /* wte's scales missing; wte's values with the wrong vocabulary */
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[wd] = o2[n - 1];
        Q8_T_REJECT(q8_t_rejects(o2, n - 1, &f, NULL, 0, "missing tensor 'wte.weight.d'"), "no wte.weight.d");
        memcpy(o2, o, (size_t)n * sizeof *o2);
        o2[w].shape[0] = 49;
        Q8_T_REJECT(q8_t_rejects(o2, n, &f, kv_q8, 2, "wte.weight.d"), "wte values and scales disagree");
        /* a float32 checkpoint that says quant = q8_0 */
        {
            lm_st_out *fo = st_t_outs(m, LM_DT_F32);
            const char *kv[4] = { "n_head", "2", "quant", "q8_0" };
            Q8_T_REJECT(q8_t_rejects(fo, m->params.n, &f, kv, 2, "no tensor is quantized"), "quant without Q8_0 tensors");
            free(fo);
        }
        /* every truncation of the file */
        {
            size_t cut;
            for (cut = 0; cut < len; cut += len / 97 + 1) {
                lm_gpt *x = lm_gpt_load_mem(img, cut, 0);
                tried++;
                if (x) { fails++; lm_gpt_free(x); }
            }
        }
#undef Q8_T_REJECT
        CHECK(fails == 0 && tried > 100, "q8 checkpoint: malformed Q8_0 files are refused with a message (parts, dtypes, shapes, -128, inf/NaN scales, metadata, mixed levels, wpe/LayerNorm as Q8_0, untied head, truncations)");
        free(o2); free(vals); free(sc); free(f32);
    }
    lm_st_close(&f);
    free(o);
done:
    free(img);
    lm_gpt_free(q);
    lm_gpt_free(q1);
    lm_gpt_free(m);
    t_scratch_done(&st_t_scratch);
}

/* lm_gpt_from_memory over a quantized image (lm_gpt_image): the same logits as the loaded
   model, and LM_GPT_MEMORY_BYTES still enough. */
static void test_q8_from_memory(void) {
    lm_gpt *ref = t_tiny_gpt(T_FM_L, T_FM_H, T_FM_C, T_FM_T, T_FM_V, 17), *q, *m;
    size_t n;
    void *img;
    if (!ref || !(q = lm_gpt_quantize(ref, LM_QUANT_Q8_0_EMB))) { CHECK(0, "q8 from_memory: model"); lm_gpt_free(ref); return; }
    n = lm_gpt_image(q, NULL, 0);
    img = malloc(n);
    CHECK(lm_gpt_image(q, img, n) == n && lm_gpt_image(q, img, n - 1) == n, "q8 from_memory: lm_gpt_image");
    m = lm_gpt_from_memory(&q->cfg, img, t_fm_buf, LM_GPT_MEMORY_BYTES(T_FM_L, T_FM_H, T_FM_C, T_FM_T, T_FM_V));
    CHECK(m && m->cfg.quant == LM_QUANT_Q8_0_EMB && q8_t_same(q, m), "q8 from_memory: the model over the image holds the same weights");
    if (!m) { free(img); lm_gpt_free(q); lm_gpt_free(ref); return; }
    CHECK(t_fm_same(q, m), "q8 from_memory: step_token logits equal the quantized model's, bit "
          "for bit, and lm_gpt_generate in LM_GPT_MEMORY_BYTES gives the same tokens");
    CHECK(lm_gpt_from_memory(&q->cfg, (const char *)img + 2, t_fm_buf, sizeof t_fm_buf) == NULL,
          "q8 from_memory: a misaligned image is refused");
    free(img);
    lm_gpt_free(q);
    lm_gpt_free(ref);
}

static void test_prune(void) {
    lm_gpt *m = st_t_model(2, 32, 2, 8, 40, 6), *before;
    lm_train_opts o = lm_train_defaults();
    int k, i, bad = 0, badorder = 0, others = 0, stayed = 0, moved = 0, in[16], tg[16];
    if (!m) { CHECK(0, "prune: model"); return; }
    before = st_t_model(2, 32, 2, 8, 40, 6);
    m->params.t[4].data[5] = m->params.t[4].data[6];             /* a tie */
    before->params.t[4].data[5] = before->params.t[4].data[6];
    CHECK(lm_gpt_prune(m, 0.37f) == LM_OK, "prune: 37%");
    for (k = 0; k < m->params.n; k++) {
        const lm_tensor *t = &m->params.t[k], *b = &before->params.t[k];
        int zeros = 0, want = (int)(0.37 * t->size + 0.5);
        float kept_min = INFINITY, cut_max = 0;
        if (!lm__q8_kind(LM_QUANT_Q8_0, m->params.names[k])) {
            if (memcmp(t->data, b->data, (size_t)t->size * 4)) others++;
            continue;
        }
        for (i = 0; i < t->size; i++) {
            if (t->data[i] == 0) { zeros++; if (fabsf(b->data[i]) > cut_max) cut_max = fabsf(b->data[i]); }
            else { if (t->data[i] != b->data[i]) bad++; if (fabsf(b->data[i]) < kept_min) kept_min = fabsf(b->data[i]); }
        }
        if (zeros != want) bad++;
        if (cut_max > kept_min) badorder++;
    }
    CHECK(bad == 0 && others == 0, "prune: each block matrix loses round(s n) weights, the rest are untouched");
    CHECK(badorder == 0, "prune: the weights set to zero are the smallest of their matrix");
    CHECK(fabs(lm_gpt_sparsity(m) - 0.37) < 0.001, "prune: lm_gpt_sparsity reports the share of zeros");
    /* the tie goes to the lower index: with 6 of a matrix to cut, the one at 5 goes, 6 stays */
    {
        lm_gpt *t = st_t_model(1, 8, 1, 4, 10, 1);
        float *w = t->params.t[6].data;     /* h.0.attn.c_proj.weight, 8 x 8 */
        for (i = 0; i < 64; i++) w[i] = 1.0f + i;
        w[9] = w[12] = 0.5f;
        CHECK(lm_gpt_prune(t, 1.0f / 64) == LM_OK && w[9] == 0 && w[12] == 0.5f,
              "prune: ties go to the lower index");
        CHECK(lm_gpt_prune(t, 1.5f) == LM_ERR_ARG && lm_gpt_prune(t, -0.1f) == LM_ERR_ARG,
              "prune: a sparsity outside [0, 1] is refused");
        w[3] = NAN;
        CHECK(lm_gpt_prune(t, 0.5f) == LM_ERR_ARG && strstr(lm_error(), "not finite"), "prune: NaN weights are refused");
        lm_gpt_free(t);
    }
    /* fine-tuning with keep_zeros: the zeros stay exactly zero, the rest train */
    for (i = 0; i < 16; i++) { in[i] = (i * 7) % 40; tg[i] = (i * 11 + 3) % 40; }
    o.keep_zeros = 1;
    o.steps = 5;
    for (k = 0; k < 5; k++) CHECK_NEAR(lm_gpt_train_step(m, &o, in, tg, 2, 8, k), lm_gpt_train_step(m, &o, in, tg, 2, 8, k), 10, "prune: steps run");
    for (k = 0; k < m->params.n; k++) {
        const lm_tensor *t = &m->params.t[k], *b = &before->params.t[k];
        if (!lm__q8_kind(LM_QUANT_Q8_0, m->params.names[k])) continue;
        for (i = 0; i < t->size; i++) {
            if (fabsf(b->data[i]) <= 0) continue;
            if (t->data[i] == 0) stayed++;
            else if (t->data[i] != b->data[i]) moved++;
        }
    }
    CHECK(fabs(lm_gpt_sparsity(m) - 0.37) < 0.001 && stayed > 0 && moved > 0,
          "prune: training with keep_zeros keeps every zero at zero and trains the rest");
    o.keep_zeros = 0;
    lm_gpt_train_step(m, &o, in, tg, 2, 8, 0);
    CHECK(lm_gpt_sparsity(m) < 0.01, "prune: without keep_zeros the zeros train again");
    o.keep_zeros = 1;
    o.eps = 0;
    CHECK(lm_gpt_train_step(m, &o, in, tg, 2, 8, 0) != lm_gpt_train_step(m, &o, in, tg, 2, 8, 0) &&
          strstr(lm_error(), "keep_zeros needs eps"), "prune: keep_zeros with eps 0 is refused");
    {
        lm_gpt *q = lm_gpt_quantize(m, LM_QUANT_Q8_0);
        CHECK(q && lm_gpt_prune(q, 0.5f) == LM_ERR_ARG && strstr(lm_error(), "quantized"),
              "prune: a quantized model is refused");
        lm_gpt_free(q);
    }
    lm_gpt_free(before);
    lm_gpt_free(m);
}

static void run_q8_tests(void) {
    test_q8_weights();
    test_q8_activations();
    test_q8_kernels();
    test_q8_gpt();
    test_q8_checkpoint();
    test_q8_from_memory();
    test_prune();
}
#ifndef LM_TEST_NO_CLI
/* ---------------------------------------------------------------------------------------
   Tests of the `lm` command line (tools/lm_cli.c).
   They run the built lm binary (./lm, which make test builds first at the repository
   root; or the one the environment variable LM_BIN names, e.g. LM_BIN=./lm_asan for a
   sanitizer build) with system(), each command as
       LM ARGS >DIR/out 2>DIR/err; echo $? >DIR/rc
   in a fresh directory made by mkdtemp under /tmp, then read the three files back. So the
   tests see exactly what a user sees: exit status, stdout bytes, stderr lines. Models are
   tiny (1-2 layers, 16-32 wide) so the whole part runs in a few seconds.
   LM_TEST_SKIP_CLI=1 skips them (a cross-compiled test binary under qemu).
   --------------------------------------------------------------------------------------- */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>   /* getcwd */
/* The SVG checks (lm train --plot, lm plot) use the XML checker and path counter of the
   plot tests above. */

static const char *test_cli__bin;   /* the lm binary: $LM_BIN, else ./lm                  */
static char test_cli__dir[64];      /* the scratch directory                              */
static char *test_cli__out;         /* stdout of the last command (NUL-terminated)        */
static size_t test_cli__out_len;
static char *test_cli__err;         /* stderr of the last command                          */

/* The whole of a file, NUL-terminated; NULL if it cannot be read. */
static char *test_cli__slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t cap = 4096, n = 0;
    if (!f) return NULL;
    buf = (char *)malloc(cap + 1);
    for (;;) {
        size_t got;
        if (n == cap) {
            char *nb = (char *)malloc(2 * cap + 1);
            memcpy(nb, buf, n);
            free(buf);
            buf = nb;
            cap *= 2;
        }
        got = fread(buf + n, 1, cap - n, f);
        if (!got) break;
        n += got;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static void test_cli__write(const char *name, const char *text) {
    char path[256];
    FILE *f;
    sprintf(path, "%s/%s", test_cli__dir, name);
    f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

/* Shell text with "@" replaced by the scratch directory and "{lm}" by the binary. */
static void test_cli__expand(const char *in, char *out, size_t cap) {
    size_t n = 0;
    for (; *in && n + 300 < cap; in++) {
        const char *sub = NULL;
        if (*in == '@') sub = test_cli__dir;
        else if (!strncmp(in, "{lm}", 4)) { sub = test_cli__bin; in += 3; }
        if (sub) { strcpy(out + n, sub); n += strlen(sub); }
        else out[n++] = *in;
    }
    out[n] = 0;
}

/* The exit status a command left in DIR/rc (-1 if none). */
static int test_cli__rc(void) {
    char path[256], *rc_text;
    int rc;
    sprintf(path, "%s/rc", test_cli__dir);
    rc_text = test_cli__slurp(path, NULL);
    rc = rc_text ? atoi(rc_text) : -1;
    free(rc_text);
    return rc;
}

/* Run `lm ARGS` (printf-style, then expanded as above). Returns the exit status; stdout
   and stderr land in test_cli__out/err. */
static int test_cli__run(const char *fmt, ...) {
    char args[4096], cmd[8192], path[256];
    int rc;
    va_list ap;
    va_start(ap, fmt);
    vsprintf(args, fmt, ap);
    va_end(ap);
    test_cli__expand(args, cmd, sizeof cmd - 1024);
    strcpy(args, cmd);
    sprintf(cmd, "%s %s >%s/out 2>%s/err; echo $? >%s/rc", test_cli__bin, args, test_cli__dir,
            test_cli__dir, test_cli__dir);
    if (system(cmd) == -1) return -1;
    free(test_cli__out);
    free(test_cli__err);
    sprintf(path, "%s/out", test_cli__dir);
    test_cli__out = test_cli__slurp(path, &test_cli__out_len);
    sprintf(path, "%s/err", test_cli__dir);
    test_cli__err = test_cli__slurp(path, NULL);
    rc = test_cli__rc();
    if (!test_cli__out) { test_cli__out = (char *)malloc(1); test_cli__out[0] = 0; test_cli__out_len = 0; }
    if (!test_cli__err) { test_cli__err = (char *)malloc(1); test_cli__err[0] = 0; }
    return rc;
}

static int test_cli__lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* A usage or runtime error: the wanted status and exactly one line on stderr, "lm ...". */
static int test_cli__one_error(int rc, int want) {
    return rc == want && test_cli__lines(test_cli__err) == 1 && !strncmp(test_cli__err, "lm", 2);
}

/* Are two files byte for byte the same (and readable)? */
static int test_cli__same(const char *a, const char *b) {
    char pa[256], pb[256], *x, *y;
    size_t nx = 0, ny = 0;
    int same;
    sprintf(pa, "%s/%s", test_cli__dir, a);
    sprintf(pb, "%s/%s", test_cli__dir, b);
    x = test_cli__slurp(pa, &nx);
    y = test_cli__slurp(pb, &ny);
    same = x && y && nx == ny && nx > 0 && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* The training text: a few sentences repeated, so a tiny model learns it quickly. */
static void test_cli__corpus(void) {
    static const char *const lines[4] = {
        "the quick brown fox jumps over the lazy dog.\n",
        "a stitch in time saves nine, said the old tailor.\n",
        "to be or not to be, that is the question.\n",
        "all that glitters is not gold; all who wander are not lost.\n" };
    char path[256];
    FILE *f;
    int k;
    sprintf(path, "%s/text.txt", test_cli__dir);
    f = fopen(path, "wb");
    if (!f) return;
    for (k = 0; k < 120; k++) fputs(lines[(k * 7 + k / 4) % 4], f);
    fclose(f);
}

/* The tiny model every test trains: 1 layer, 2 heads, 16 wide, context 16. */
#define TEST_CLI_TINY "--layers 1 --heads 2 --embd 16 --ctx 16 --batch 4"

static void test_cli_help(void) {
    static const char *const cmds[] = { "train", "generate", "eval", "info", "bench",
                                        "bench gemm", "bench train", "bench generate",
                                        "bench bandwidth", "bpe", "tokenize", "detokenize",
                                        "plot", "quantize", "prune" };
    int k, bad = 0;
    for (k = 0; k < (int)(sizeof cmds / sizeof cmds[0]); k++)
        if (test_cli__run("%s --help", cmds[k]) != 0 || strncmp(test_cli__out, "usage:", 6)) bad++;
    CHECK(bad == 0, "every subcommand answers --help with usage on stdout, exit 0");
    CHECK(test_cli__run("--help") == 0 && strstr(test_cli__out, "train") &&
          strstr(test_cli__out, "  plot "), "lm --help: exit 0, lists plot");
    CHECK(strstr(test_cli__out, "0 success") && strstr(test_cli__out, "1 runtime error") &&
          strstr(test_cli__out, "2\nusage error") && strstr(test_cli__out, "130 or 143"),
          "lm --help documents the exit statuses (0, 1, 2, 130/143)");
    CHECK(test_cli__run("train --help") == 0 && strstr(test_cli__out, "130/143") &&
          strstr(test_cli__out, "--plot FILE.svg"), "lm train --help: --plot and the exit statuses");
    CHECK(test_cli__run("") == 2 && !test_cli__out_len && strstr(test_cli__err, "usage"),
          "lm with no arguments: usage on stderr, exit 2");
    CHECK(test_cli__run("--version") == 0 &&
          !strncmp(test_cli__out, "lm " LM_VERSION_STRING " (lm.h " LM_VERSION_STRING ", ",
                   sizeof("lm " LM_VERSION_STRING " (lm.h " LM_VERSION_STRING ", ") - 1) &&
          strstr(test_cli__out, lm_simd_name()) && test_cli__out_len == strcspn(test_cli__out, "\n") + 1,
          "lm --version: one line, the versions of lm and lm.h and the kernels");
}

static void test_cli_usage_errors(void) {
    /* each must exit 2 with one line on stderr, before touching any file */
    static const char *const cases[] = {
        "train --data @/text.txt --batch abc", "train --data @/text.txt --batch -1",
        "train --data @/text.txt --batch 0", "train --data @/text.txt --steps 1.5",
        "train --data @/text.txt --batch 99999999999999999999999",
        "train --data @/text.txt --lr nan", "train --data @/text.txt --lr -1e-3",
        "train --data @/text.txt --lr 1e-3x", "train --data @/text.txt --lr ''",
        "train --data @/text.txt --beta2 1", "train --data @/text.txt --val-frac 1",
        "train --data @/text.txt --bogus", "train --steps 10", "train --data",
        "train --data @/text.txt --init @/a --resume @/b",
        "train --data @/text.txt --steps 5 --steps 6", "train --data @/text.txt --heads 3",
        "train --data @/text.txt --order shuffled", "train --data @/text.txt --threads 0",
        "train --data @/text.txt --layers 1024 --embd 65536 --ctx 1048576",
        "train --data @/text.txt --seed -1", "train --data @/text.txt --schedule linear",
        "generate", "generate --model @/m --top-p 0", "generate --model @/m --temperature -1",
        "generate --model @/m --tokens x", "eval --model @/m", "eval --data @/text.txt",
        "info", "bench", "bench gemm 4 4", "bench gemm 0 4 4", "bench gemm 4 4 4x",
        "bench fft", "bpe --data @/text.txt --out @/t", "bpe --data @/text.txt --vocab 100 --out @/t",
        "tokenize --tokenizer @/t --gpt2 @", "frobnicate",
        /* absurd values (issue 8): negative, zero, non-numeric, overflowing, too big for
           memory, out of range, not finite; outputs that would overwrite an input. Cases
           that a regression could let through get a tiny model and one step, and the
           overwriting ones a scratch input, so a failure is quick and harms no other test */
        "train --data @/text.txt --steps -5", "train --data @/text.txt --steps 0",
        "train --data @/text.txt --steps 1e3", "train --data @/text.txt --layers 99999999999999999999",
        "train --data @/text.txt --layers 1024 --embd 4096 --steps 1",
        "train --data @/text.txt --batch 100000 --steps 1",
        "train --data @/text.txt --lr inf", "train --data @/text.txt --lr 1e39",
        "train --data @/text.txt --lr 1e-50",
        "train --data @/text.txt --min-lr 1 --lr 1e-3 --steps 1 " TEST_CLI_TINY " --model @/u.safetensors",
        "train --data @/text.txt --val-frac -0.1", "train --data @/text.txt --val-frac nan",
        "train --data @/text.txt --val-frac 1.5", "train --data @/text.txt --warmup -1",
        "train --data @/text.txt --clip -1", "train --data @/text.txt --eps 0",
        "train --data @/text.txt --threads 100000", "train --data @/text.txt --seed 18446744073709551616",
        "train --data @/text.txt --plot ''",
        "train --data @/dup.txt --log @/dup.txt --steps 1 " TEST_CLI_TINY " --model @/u.safetensors",
        "train --data @/dup.txt --plot @/./dup.txt --steps 1 " TEST_CLI_TINY " --model @/u.safetensors",
        "train --data @/dup.txt --model @/dup.txt --steps 1 " TEST_CLI_TINY,
        "train --data @/text.txt --log @/a.csv --plot @/a.csv --steps 1 " TEST_CLI_TINY " --model @/u.safetensors",
        "generate --model @/m --tokens 99999999999", "generate --model @/m --tokens -1",
        "generate --model @/m --top-p 1.5", "generate --model @/m --top-p nan",
        "generate --model @/m --top-k -1", "generate --model @/m --temperature nan",
        "generate --model @/m --temperature inf", "generate --model @/m --temperature 1e400",
        "generate --model @/m --heads 0", "eval --model @/m --data @/text.txt --ctx 0",
        "eval --model @/m --data @/text.txt --ctx 99999999", "bench generate --tokens 0",
        "bench generate --tokens 1000000000", "bench generate --model @/m --ctx 99",
        "bench generate --vocab 16777216 --embd 65536", "bench train --embd 65536 --layers 1024",
        "bench gemm 1048576 1048576 1048576", "bench gemm -1 4 4",
        "bpe --data @/text.txt --vocab 99999999999 --out @/t",
        "plot", "plot @/a.csv @/b.csv", "plot @/a.csv --out @/a.csv", "plot @/a.csv --bogus",
        "plot @/a.csv --title" };
    int k, bad = 0;
    test_cli__write("dup.txt", "a scratch input for the cases that would overwrite it\n");
    for (k = 0; k < (int)(sizeof cases / sizeof cases[0]); k++) {
        int rc = test_cli__run("%s", cases[k]);
        if (!test_cli__one_error(rc, 2)) {
            bad++;
            printf("  usage error case '%s': exit %d, stderr: %s\n", cases[k], rc, test_cli__err);
        }
    }
    CHECK(bad == 0, "bad command lines exit 2 with one line on stderr");
    test_cli__run("train --data @/text.txt --batch abc");
    CHECK(strstr(test_cli__err, "--batch") && strstr(test_cli__err, "'abc'"),
          "the message names the flag and the bad value");
}

static void test_cli_runtime_errors(void) {
    int bad = 0;
    test_cli__write("junk.safetensors", "this is not a checkpoint at all, just text\n");
    if (!test_cli__one_error(test_cli__run("train --data @/missing.txt"), 1)) bad++;
    if (!test_cli__one_error(test_cli__run("generate --model @/missing.safetensors"), 1)) bad++;
    if (!test_cli__one_error(test_cli__run("info --model @/junk.safetensors"), 1)) bad++;
    if (!test_cli__one_error(test_cli__run("eval --model @/junk.safetensors --data @/text.txt"), 1)) bad++;
    /* too little data for one window: --ctx + 1 = 65 tokens are needed by default */
    test_cli__write("short.txt", "too short");
    if (!test_cli__one_error(test_cli__run("train --data @/short.txt --model @/s.safetensors"), 1)) bad++;
    CHECK(bad == 0, "missing or malformed files exit 1 with one line on stderr");
    /* 200 bytes: enough for random windows of 64 (a batch may repeat bytes), not for one
       sequential step of 12 x 64 + 1 */
    {
        char text[201];
        int i;
        for (i = 0; i < 200; i++) text[i] = (char)('a' + (i * 7) % 26);
        text[200] = 0;
        test_cli__write("small.txt", text);
        CHECK(test_cli__run("train --data @/small.txt --val-frac 0 --steps 3 --layers 1 --embd 16 "
                            "--heads 2 --model @/small.safetensors --quiet") == 0,
              "train: a text shorter than one batch trains with random windows");
        CHECK(test_cli__one_error(test_cli__run("train --data @/small.txt --val-frac 0 --steps 3 "
                                                "--order sequential --model @/small.safetensors"), 1),
              "train: --order sequential refuses a text shorter than one step, with one line");
    }
}

/* Train a tiny model, then eval, info and generate with it. */
static void test_cli_train_and_use(void) {
    char path[256], *csv, *p;
    double first = 0, last = 0, loss0 = 0, loss = 0, ppl = 0;
    int rc, rows = 0, k, nval = 0;
    rc = test_cli__run("train --data @/text.txt --model @/m.safetensors " TEST_CLI_TINY
                       " --steps 60 --lr 1e-2 --warmup 0 --eval-every 30 --order sequential"
                       " --seed 7 --log @/log.csv --threads 1");
    CHECK(rc == 0, "tiny training run exits 0");
    sprintf(path, "%s/log.csv", test_cli__dir);
    csv = test_cli__slurp(path, NULL);
    CHECK(csv && !strncmp(csv, "step,loss,lr,tok_per_s,val_loss", 31), "CSV log header");
    /* rows "step,loss,lr,tok_per_s,val_loss,elapsed": mean loss of the first and last 5 */
    for (p = csv ? strchr(csv, '\n') : NULL; p && p[1]; p = strchr(p + 1, '\n')) {
        int step = 0;
        double l = 0;
        const char *f4;
        if (sscanf(p + 1, "%d,%lf", &step, &l) != 2) break;
        rows++;
        if (step == 1) loss0 = l;
        if (step <= 5) first += l / 5;
        if (step > 55) last += l / 5;
        for (f4 = p + 1, k = 0; k < 4 && f4; k++) f4 = strchr(f4 + 1, ',');
        if (f4 && f4[1] != ',') nval++;   /* a val_loss value at this row */
    }
    CHECK(rows == 60, "one CSV row per step");
    CHECK(nval == 2, "val_loss at the two evals (steps 30 and 60)");
    CHECK_NEAR(loss0, log(256.0), 0.02, "the first loss is about ln 256");
    CHECK(last < first - 1.0, "the training loss falls");
    free(csv);

    rc = test_cli__run("eval --model @/m.safetensors --data @/text.txt");
    p = strstr(test_cli__out, "loss ");
    CHECK(rc == 0 && p && sscanf(p, "loss %lf ppl %lf", &loss, &ppl) == 2, "eval prints loss and ppl");
    CHECK(p && test_cli__lines(p) == 1 && p[strlen(p) - 1] == '\n', "the loss line is the last line");
    CHECK_NEAR(ppl, exp(loss), 1e-5, "ppl = exp(loss)");
    CHECK(loss < 4.0, "the trained model fits its text");
    rc = test_cli__run("eval --model @/m.safetensors --data @/text.txt --ctx 8");
    CHECK(rc == 0 && strstr(test_cli__out, "loss "), "eval with a shorter --ctx");
    CHECK(test_cli__one_error(test_cli__run("eval --model @/m.safetensors --data @/text.txt --ctx 17"), 2),
          "eval --ctx beyond the model's context is a usage error");

    rc = test_cli__run("info --model @/m.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "wte.weight [256, 16]") &&
          strstr(test_cli__out, "h.0.attn.c_attn.weight [16, 48]") &&
          strstr(test_cli__out, "h.0.mlp.c_proj.weight [64, 16]") &&
          strstr(test_cli__out, "ln_f.bias [16]"), "info lists the tensors and shapes");
    /* 256*16 + 16*16 + (12*16*16 + 13*16) + 2*16 */
    CHECK(strstr(test_cli__out, "params 7664\n") != NULL, "info gives the parameter count");

    rc = test_cli__run("generate --model @/m.safetensors --prompt 'the q' --tokens 40 --seed 3");
    CHECK(rc == 0 && test_cli__out_len == 5 + 40 && !strncmp(test_cli__out, "the q", 5),
          "generate: stdout is the prompt, then one byte per token");
    {
        char *a;
        size_t na;
        rc = test_cli__run("generate --model @/m.safetensors --prompt 'to be' --tokens 30 --temperature 0");
        a = (char *)malloc(test_cli__out_len + 1);
        memcpy(a, test_cli__out, test_cli__out_len + 1);
        na = test_cli__out_len;
        rc |= test_cli__run("generate --model @/m.safetensors --prompt 'to be' --tokens 30 --temperature 0 --seed 99");
        CHECK(rc == 0 && na == 35 && na == test_cli__out_len && !memcmp(a, test_cli__out, na),
              "greedy generation is deterministic (and ignores the seed)");
        free(a);
    }
    {
        char *a;
        size_t na;
        rc = test_cli__run("generate --model @/m.safetensors --prompt 'to be' --tokens 30");
        a = (char *)malloc(test_cli__out_len + 1);
        memcpy(a, test_cli__out, test_cli__out_len + 1);
        na = test_cli__out_len;
        rc |= test_cli__run("generate --model @/m.safetensors --prompt 'to be' --tokens 30 --seed 1337");
        CHECK(rc == 0 && na == 35 && na == test_cli__out_len && !memcmp(a, test_cli__out, na),
              "sampling: the default seed is 1337, so a run repeats");
        free(a);
    }
    rc = test_cli__run("generate --model @/m.safetensors --tokens 25 --seed 1");
    CHECK(rc == 0 && test_cli__out_len == 25, "empty prompt: only the generated bytes");
    /* 40 tokens through a 16-token context: the window slides */
    rc = test_cli__run("generate --model @/m.safetensors --prompt 'all that glitters is not' --tokens 40 --seed 5");
    CHECK(rc == 0 && test_cli__out_len == 24 + 40, "generation beyond the context");
    /* --init: the shape comes from the checkpoint; a shorter --ctx is fine */
    rc = test_cli__run("train --data @/text.txt --init @/m.safetensors --model @/i.safetensors"
                       " --ctx 8 --batch 2 --steps 5 --val-frac 0 --quiet");
    rc |= test_cli__run("info --model @/i.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "wpe.weight [16, 16]"), "train --init keeps the checkpoint's shape");
    CHECK(test_cli__one_error(test_cli__run("train --data @/text.txt --init @/m.safetensors --ctx 32"
                                            " --quiet --model @/i.safetensors"), 2),
          "train --init with a --ctx beyond the checkpoint's is a usage error");
    CHECK(test_cli__one_error(test_cli__run("generate --model @/m.safetensors --tokenizer @/text.txt"), 1),
          "a file that is not a tokenizer is a runtime error");
}

/* A run stopped and resumed ends with exactly the weights of an uninterrupted run. */
static void test_cli_resume(void) {
    int rc;
    /* constant schedule: the lr does not depend on --steps, so 20 steps then a resume to
       40 must equal 40 steps straight */
#define TEST_CLI_RUN "train --data @/text.txt " TEST_CLI_TINY " --lr 3e-3 --warmup 5 --quiet"
    rc = test_cli__run(TEST_CLI_RUN " --schedule constant --steps 40 --model @/a.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --schedule constant --steps 20 --model @/b.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --schedule constant --steps 40 --model @/b.safetensors --resume @/b.safetensors");
    CHECK(rc == 0 && test_cli__same("a.safetensors", "b.safetensors"),
          "20 steps + resume to 40 == 40 steps (bit-identical checkpoint)");
    /* SIGTERM mid-run (once the CSV log shows progress), then --resume; --plot draws the
       curve when the signal stops the run, and the resumed run's picture starts with the
       rows logged before (read back from the CSV log) */
    rc = test_cli__run(TEST_CLI_RUN " --steps 1200 --eval-every 0 --model @/full.safetensors");
    CHECK(rc == 0, "uninterrupted reference run");
    {
        char cmd[2048], full[4096], *rc_text, *csv, *svg, path[256];
        int rows = -1;
        sprintf(cmd, "{lm} " TEST_CLI_RUN " --steps 1200 --eval-every 0 --model @/cut.safetensors "
                "--log @/cut.csv --plot @/cut.svg 2>@/cut.err & pid=$!; n=0; "
                "while [ $n -lt 400 ] && [ \"$(cat @/cut.csv 2>/dev/null | wc -l)\" -lt 10 ]; "
                "do sleep 0.01; n=$((n+1)); done; kill -TERM $pid; wait $pid; echo $? >@/cut.rc");
        test_cli__expand(cmd, full, sizeof full);
        CHECK(system(full) != -1, "run the shell");
        sprintf(path, "%s/cut.rc", test_cli__dir);
        rc_text = test_cli__slurp(path, NULL);
        CHECK(rc_text && atoi(rc_text) == 143, "SIGTERM: the run saves and exits with 143");
        free(rc_text);
        sprintf(path, "%s/cut.csv", test_cli__dir);
        csv = test_cli__slurp(path, NULL);
        if (csv) rows = test_cli__lines(csv) - 1;
        sprintf(path, "%s/cut.svg", test_cli__dir);
        svg = test_cli__slurp(path, NULL);
        CHECK(svg && rows >= 9 && rows < 1200 && !plot_t_xml_check(svg) &&
              plot_t_path_points(svg, "train-raw", NULL) == rows,
              "SIGTERM with --plot: the picture has one point per step done");
        free(csv);
        free(svg);
    }
    rc = test_cli__run(TEST_CLI_RUN " --steps 1200 --eval-every 0 --model @/cut.safetensors --resume @/cut.safetensors"
                       " --log @/cut.csv --plot @/cut.svg");
    CHECK(rc == 0 && test_cli__same("full.safetensors", "cut.safetensors"),
          "interrupted + resumed == uninterrupted (bit-identical checkpoint)");
    {
        char path[256], *svg;
        sprintf(path, "%s/cut.svg", test_cli__dir);
        svg = test_cli__slurp(path, NULL);
        CHECK(svg && !plot_t_xml_check(svg) && plot_t_path_points(svg, "train-raw", NULL) == 1200,
              "resumed with --log and --plot: the picture has all 1200 steps");
        free(svg);
    }
#undef TEST_CLI_RUN
}

static void test_cli_threads(void) {
    int rc;
#define TEST_CLI_RUN "train --data @/text.txt --layers 2 --heads 2 --embd 32 --ctx 32 --batch 4 --steps 12 --quiet"
    rc = test_cli__run(TEST_CLI_RUN " --threads 1 --model @/t1.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --threads 2 --model @/t2.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --threads 3 --model @/t3.safetensors");
    CHECK(rc == 0 && test_cli__same("t1.safetensors", "t2.safetensors") &&
          test_cli__same("t1.safetensors", "t3.safetensors"),
          "--threads 1, 2, 3 give bit-identical checkpoints");
#undef TEST_CLI_RUN
}

/* The losses of a --log file, rows 1..n (0 when unreadable). */
static int test_cli__log_losses(const char *name, double *loss, int cap) {
    char path[256], *csv, *p;
    int n = 0, step;
    sprintf(path, "%s/%s", test_cli__dir, name);
    if (!(csv = test_cli__slurp(path, NULL))) return 0;
    for (p = strchr(csv, '\n'); p && n < cap && sscanf(p + 1, "%d,%lf", &step, &loss[n]) == 2 &&
         step == n + 1; p = strchr(p + 1, '\n'))
        n++;
    free(csv);
    return n;
}

/* lm train --accum A: A micro-batches of --batch B rows a step. */
static void test_cli_accum(void) {
    static const char *const bad[3] = { "0", "-2", "2x" };
    double la[12], lb[12], worst = 0;
    int rc, k, na, nb;
#define TEST_CLI_RUN "train --data @/text.txt --layers 1 --heads 2 --embd 16 --ctx 16 --warmup 0 --lr 1e-2 --quiet"
    rc = test_cli__run(TEST_CLI_RUN " --steps 12 --batch 4 --model @/p1.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --steps 12 --batch 4 --accum 1 --model @/p2.safetensors");
    CHECK(rc == 0 && test_cli__same("p1.safetensors", "p2.safetensors"),
          "--accum 1 is the plain training step (bit-identical checkpoint)");
    /* sequential order: 2 micro-batches of 2 rows read the rows one batch of 4 reads, so
       each step's loss is the same mean over 4 rows, to rounding */
    rc = test_cli__run(TEST_CLI_RUN " --steps 12 --order sequential --batch 4 --log @/b4.csv --model @/b4.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --steps 12 --order sequential --batch 2 --accum 2 --log @/a2.csv --model @/a2.safetensors");
    na = test_cli__log_losses("b4.csv", la, 12);
    nb = test_cli__log_losses("a2.csv", lb, 12);
    for (k = 0; k < na && k < nb; k++)
        if (fabs(la[k] - lb[k]) > worst) worst = fabs(la[k] - lb[k]);
    CHECK(rc == 0 && na == 12 && nb == 12 && worst < 1e-4 && la[11] < la[0] - 0.1,
          "--batch 2 --accum 2 learns as --batch 4: each step's loss the mean over 4 rows");
    rc = test_cli__run(TEST_CLI_RUN " --steps 12 --order sequential --batch 2 --log @/b2.csv --model @/b2.safetensors");
    nb = test_cli__log_losses("b2.csv", lb, 12);
    CHECK(rc == 0 && nb == 12 && fabs(la[0] - lb[0]) > 1e-4, "(and not as --batch 2 alone)");
    rc = test_cli__run(TEST_CLI_RUN " --steps 12 --batch 2 --accum 3 --threads 1 --model @/t1.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --steps 12 --batch 2 --accum 3 --threads 2 --model @/t2.safetensors");
    CHECK(rc == 0 && test_cli__same("t1.safetensors", "t2.safetensors"),
          "--accum 3 with --threads 1 and 2: bit-identical checkpoints");
    rc = test_cli__run(TEST_CLI_RUN " --steps 12 --batch 2 --accum 3 --schedule constant --model @/r1.safetensors");
    rc |= test_cli__run(TEST_CLI_RUN " --batch 2 --accum 3 --schedule constant --model @/r2.safetensors --steps 5");
    rc |= test_cli__run(TEST_CLI_RUN " --steps 12 --batch 2 --accum 3 --schedule constant --model @/r2.safetensors --resume @/r2.safetensors");
    CHECK(rc == 0 && test_cli__same("r1.safetensors", "r2.safetensors"),
          "--accum 3: 5 steps + resume to 12 == 12 steps (bit-identical checkpoint)");
#undef TEST_CLI_RUN
    for (k = 0; k < 3; k++) {
        rc = test_cli__run("train --data @/text.txt --accum %s", bad[k]);
        CHECK(test_cli__one_error(rc, 2) && strstr(test_cli__err, "--accum"), "a bad --accum is a usage error naming it");
    }
    rc = test_cli__run("train --help");
    CHECK(rc == 0 && strstr(test_cli__out, "--accum A"), "lm train --help tells of --accum");
    rc = test_cli__run("bench train " TEST_CLI_TINY " --steps 2 --accum 2");
    CHECK(rc == 0 && strstr(test_cli__out, "1 process x 2 micro-batches") &&
          strstr(test_cli__out, "ms_per_step ") && strstr(test_cli__out, " compute_ms ") &&
          strstr(test_cli__out, " exchange_ms 0.000 "), "bench train --accum 2: the step in its parts");
}

/* A diverging run stops with a message naming the step and keeps the last good file. */
static void test_cli_nan(void) {
    int rc;
    rc = test_cli__run("train --data @/text.txt " TEST_CLI_TINY " --steps 3 --quiet --model @/good.safetensors");
    rc |= test_cli__run("train --data @/text.txt " TEST_CLI_TINY " --steps 3 --quiet --model @/good2.safetensors");
    CHECK(rc == 0 && test_cli__same("good.safetensors", "good2.safetensors"), "two equal checkpoints");
    rc = test_cli__run("train --data @/text.txt " TEST_CLI_TINY " --steps 50 --lr 1e30 --warmup 0"
                       " --clip 0 --quiet --model @/good.safetensors");
    CHECK(test_cli__one_error(rc, 1) && strstr(test_cli__err, "step"),
          "a NaN loss exits 1 with one line naming the step");
    CHECK(test_cli__same("good.safetensors", "good2.safetensors"),
          "the diverged run did not overwrite the checkpoint");
}

static void test_cli_tokens(void) {
    int rc;
    rc = test_cli__run("tokenize --text 'AB c'");
    CHECK(rc == 0 && !strcmp(test_cli__out, "65 66 32 99\n"), "tokenize: byte ids, one line");
    test_cli__write("ids.txt", " 104\n105  33\t\n");
    rc = test_cli__run("detokenize < @/ids.txt");
    CHECK(rc == 0 && !strcmp(test_cli__out, "hi!"), "detokenize: bytes of whitespace-separated ids");
    test_cli__write("bad.txt", "104 256\n");
    CHECK(test_cli__one_error(test_cli__run("detokenize < @/bad.txt"), 1), "detokenize: id out of range");
    test_cli__write("bad.txt", "104 x1\n");
    CHECK(test_cli__one_error(test_cli__run("detokenize < @/bad.txt"), 1), "detokenize: not a number");
    rc = test_cli__run("tokenize < @/text.txt");
    CHECK(rc == 0 && test_cli__lines(test_cli__out) == 1 && !strncmp(test_cli__out, "116 104 101 32", 14),
          "tokenize reads stdin");
    /* BPE: learn, round-trip, and train with it */
    rc = test_cli__run("bpe --data @/text.txt --vocab 300 --out @/tok.bpe");
    CHECK(rc == 0, "bpe learns a tokenizer");
    rc = test_cli__run("tokenize --tokenizer @/tok.bpe < @/text.txt > @/ids2.txt; {lm} detokenize "
                       "--tokenizer @/tok.bpe < @/ids2.txt > @/back.txt; cat @/ids2.txt");
    CHECK(rc == 0 && test_cli__same("text.txt", "back.txt"), "BPE tokenize then detokenize gives the text back");
    {
        /* fewer ids than bytes: the merges are used */
        int ids = 0;
        const char *p;
        for (p = test_cli__out; *p; p++) ids += *p == ' ';
        CHECK(ids + 1 < 120 * 40, "BPE ids are fewer than the bytes");
    }
    rc = test_cli__run("train --data @/text.txt --tokenizer @/tok.bpe " TEST_CLI_TINY
                       " --steps 5 --quiet --model @/bpe.safetensors");
    rc |= test_cli__run("info --model @/bpe.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "wte.weight [300, 16]"), "train with --tokenizer: vocab 300");
    rc = test_cli__run("generate --model @/bpe.safetensors --tokenizer @/tok.bpe --prompt 'the' --tokens 10 --seed 1");
    CHECK(rc == 0 && !strncmp(test_cli__out, "the", 3), "generate with --tokenizer");
    CHECK(test_cli__one_error(test_cli__run("generate --model @/bpe.safetensors --prompt x"), 1),
          "a model and tokenizer of different vocabularies is an error");
}

/* lm train --plot and lm plot: well-formed SVG with one point per step and per eval. */
static void test_cli_plot(void) {
    char path[256], *svg;
    int rc;
    rc = test_cli__run("train --data @/text.txt " TEST_CLI_TINY " --steps 60 --eval-every 20"
                       " --log @/p.csv --plot @/p.svg --model @/p.safetensors --quiet");
    CHECK(rc == 0, "train --plot: exit 0");
    sprintf(path, "%s/p.svg", test_cli__dir);
    svg = test_cli__slurp(path, NULL);
    CHECK(svg && !plot_t_xml_check(svg), "train --plot: a well-formed SVG");
    CHECK(svg && plot_t_path_points(svg, "train-raw", NULL) == 60 &&
          plot_t_path_points(svg, "train-smooth", NULL) == 60 &&
          plot_t_path_points(svg, "lr", NULL) == 60, "train --plot: 60 points of loss, smoothed loss, lr");
    CHECK(svg && plot_t_path_points(svg, "val", NULL) == 3 &&
          plot_t_count(svg, "<circle class=\"pt val\"") == 3, "train --plot: 3 validation points");
    CHECK(svg && strstr(svg, "GPT 1 layer \xC3\x97 16 wide (7664 params), ctx 16, 60 steps") &&
          strstr(svg, "text.txt</text>"), "train --plot: the title gives the model size and the data file");
    free(svg);

    /* lm plot: the log back into a picture, by default beside it as p.svg */
    remove(path);
    rc = test_cli__run("plot @/p.csv");
    svg = test_cli__slurp(path, NULL);
    CHECK(rc == 0 && test_cli__out_len == 0 && test_cli__lines(test_cli__err) == 1,
          "lm plot: exit 0, nothing on stdout, one note on stderr");
    CHECK(svg && !plot_t_xml_check(svg) && plot_t_path_points(svg, "train-raw", NULL) == 60 &&
          plot_t_path_points(svg, "val", NULL) == 3, "lm plot: the same 60 steps and 3 evals");
    free(svg);
    rc = test_cli__run("plot @/p.csv --out @/q.svg --title 'run <7> & co'");
    sprintf(path, "%s/q.svg", test_cli__dir);
    svg = test_cli__slurp(path, NULL);
    CHECK(rc == 0 && svg && !plot_t_xml_check(svg) && strstr(svg, ">run &lt;7&gt; &amp; co</text>"),
          "lm plot --out --title: written there, title escaped");
    free(svg);

    /* errors: one line, exit 1, no picture left behind */
    CHECK(test_cli__one_error(test_cli__run("plot @/none.csv"), 1) && strstr(test_cli__err, "none.csv"),
          "lm plot: a missing log exits 1 with one line");
    test_cli__write("h.csv", "step,loss,lr,tok_per_s,val_loss,elapsed_s\n");
    rc = test_cli__run("plot @/h.csv");
    sprintf(path, "%s/h.svg", test_cli__dir);
    svg = test_cli__slurp(path, NULL);
    CHECK(test_cli__one_error(rc, 1) && strstr(test_cli__err, "no data rows") && !svg,
          "lm plot: a header-only log exits 1 with one line, writes nothing");
    free(svg);
    test_cli__write("x.csv", "a,b\n1,2\n");
    CHECK(test_cli__one_error(test_cli__run("plot @/x.csv"), 1) && strstr(test_cli__err, "loss"),
          "lm plot: a CSV without a loss column exits 1");
    CHECK(test_cli__one_error(test_cli__run("plot @/p.csv --out @/no/such/dir/p.svg"), 1),
          "lm plot: an unwritable --out exits 1");
    CHECK(test_cli__one_error(test_cli__run("train --data @/text.txt --plot @/no/such/dir/p.svg"), 1),
          "train --plot into a missing directory fails before training");
}

/* Progress (issue 10): plain lines when stderr is not a terminal, a line updated in place
   when it is (checked through a pseudo-terminal made by util-linux `script`), and only the
   summary with --quiet. */
static void test_cli_progress(void) {
    const char *p;
    int rc, plain = 0, bad = 0;
    rc = test_cli__run("train --data @/text.txt " TEST_CLI_TINY " --steps 100 --eval-every 0"
                       " --model @/g.safetensors");
    /* 100 steps: a line every 2 steps, "step N/100 loss X lr Y Z tok/s elapsed A left B" */
    for (p = test_cli__err; (p = strstr(p, "\nstep ")) != NULL; p++) {
        int step = 0;
        double loss = 0;
        if (sscanf(p, "\nstep %d/100 loss %lf lr", &step, &loss) == 2 && step == 2 * (plain + 1)) plain++;
        else bad++;
    }
    CHECK(rc == 0 && plain == 50 && bad == 0, "not a terminal: a plain line every 2 of 100 steps");
    CHECK(!strchr(test_cli__err, '\r') && !strchr(test_cli__err, '\033') &&
          strstr(test_cli__err, "elapsed ") && strstr(test_cli__err, " left ") &&
          strstr(test_cli__err, " tok/s"), "not a terminal: no escape codes; rate, elapsed, time left");
    rc = test_cli__run("train --data @/text.txt " TEST_CLI_TINY " --steps 100 --model @/g.safetensors --quiet");
    CHECK(rc == 0 && test_cli__lines(test_cli__err) == 1 && !strncmp(test_cli__err, "lm train: 100 steps in ", 23),
          "--quiet: only the summary");

    /* a terminal of 80 columns (COLUMNS: a pty made by `script` reports no size) */
    if (test_cli__run("--help >/dev/null; script -qec true /dev/null </dev/null >/dev/null 2>&1; echo $? >&2") != 0 ||
        atoi(test_cli__err) != 0) {
        printf("note: util-linux script is not available: the terminal progress line is not tested\n");
        return;
    }
    rc = test_cli__run("--help >/dev/null; COLUMNS=80 TERM=xterm script -qec \"{lm} train --data @/text.txt "
                       TEST_CLI_TINY " --steps 300 --eval-every 0 --model @/g.safetensors\" /dev/null"
                       " </dev/null >@/tty.txt; cat @/tty.txt");
    {
        /* the live line: "\r[bar] ... \033[K" drawn at least at the first and last step,
           never a newline between two draws, never wider than 79 columns */
        const char *first = strstr(test_cli__out, "\r["), *q, *last = NULL;
        int draws = 0, wide = 0, newline = 0;
        for (q = first; q && (q = strchr(q, '\r')) != NULL; q++) {
            const char *e = strstr(q, "\033[K");
            if (!e || q[1] == '\n' || q[1] == '\033') continue; /* "\r\n" of the pty, a clear */
            draws++;
            if (e - q - 1 > 79) wide++;
            last = e;
        }
        for (q = first; q && last && q < last; q++) newline += *q == '\n';
        CHECK(rc == 0 && first && draws >= 2 && wide == 0 && newline == 0,
              "terminal: one line redrawn in place with \\r, within 79 columns");
        CHECK(strstr(test_cli__out, "] 100% 300/300 loss ") && strstr(test_cli__out, " tok/s ") &&
              strstr(test_cli__out, " left"), "terminal: bar, percent, step/total, loss, rate, times");
    }
}

/* lm s2s: help, usage and runtime errors (one line, exit 2 or 1), a tiny model that learns
   to reverse words (train with --log and --plot, eval's last line, translate from --text
   and stdin, empty lines kept), resume and threads bit-identical, and checkpoints of the
   wrong kind. */
#define TEST_CLI_S2S "s2s train --data @/rev.tsv --layers 1 --heads 2 --embd 16 --ff 32 --ctx 12 --batch 16 --quiet"
static void test_cli_s2s(void) {
    static const char *const usage[] = {
        "s2s", "s2s frobnicate", "s2s train", "s2s train --data @/rev.tsv --activation tanh",
        "s2s train --data @/rev.tsv --heads 3", "s2s train --data @/rev.tsv --dropout 1",
        "s2s train --data @/rev.tsv --ctx 1", "s2s train --data @/rev.tsv --init @/a --resume @/b",
        "s2s train --data @/rev.tsv --model @/rev.tsv", "s2s eval --model @/m",
        "s2s eval --data @/rev.tsv", "s2s translate", "s2s translate --model @/m --beam 17",
        "s2s translate --model @/m --beam 0" };
    static const char *const helps[] = { "s2s --help", "s2s train --help", "s2s eval --help",
                                         "s2s translate --help" };
    char path[256], *text, line[64];
    FILE *f;
    int k, bad = 0, rc;
    lm_rng r = lm_rng_seed(3);
    /* 400 words of 1 to 5 letters a-f, then their reversal */
    sprintf(path, "%s/rev.tsv", test_cli__dir);
    f = fopen(path, "wb");
    if (!f) { CHECK(0, "s2s: write the pairs"); return; }
    for (k = 0; k < 400; k++) {
        int n = 1 + (int)lm_rng_below(&r, 5), i;
        for (i = 0; i < n; i++) line[i] = (char)('a' + lm_rng_below(&r, 6));
        for (i = 0; i < n; i++) line[n + 1 + i] = line[n - 1 - i];
        line[n] = '\t';
        line[2 * n + 1] = 0;
        fprintf(f, k == 7 ? "%s\r\n\n" : "%s\n", line);     /* a CRLF line and an empty one */
    }
    fclose(f);
    for (k = 0; k < (int)(sizeof helps / sizeof helps[0]); k++)
        if (test_cli__run("%s", helps[k]) != 0 || strncmp(test_cli__out, "usage:", 6)) bad++;
    CHECK(bad == 0 && test_cli__run("--help") == 0 && strstr(test_cli__out, "  s2s "),
          "s2s: every command answers --help; lm --help lists s2s");
    for (bad = 0, k = 0; k < (int)(sizeof usage / sizeof usage[0]); k++) {
        rc = test_cli__run("%s", usage[k]);
        if (!test_cli__one_error(rc, 2)) { bad++; printf("  s2s usage error not reported: lm %s (exit %d): %s", usage[k], rc, test_cli__err); }
    }
    CHECK(bad == 0, "s2s: usage errors exit 2 with one line on stderr");
    test_cli__write("notab.tsv", "a\tb\nno tab here\n");
    rc = test_cli__run("s2s train --data @/notab.tsv --steps 2");
    CHECK(test_cli__one_error(rc, 1) && strstr(test_cli__err, "notab.tsv:2: no tab"),
          "s2s: a line without a tab is an error naming the line");
    test_cli__write("long.tsv", "abcdefghijklmnopq\tx\n");
    rc = test_cli__run("s2s train --data @/long.tsv --ctx 8 --steps 2");
    CHECK(test_cli__one_error(rc, 1) && strstr(test_cli__err, "long.tsv:1: the source has 17 tokens"),
          "s2s: a source longer than --ctx is an error naming the line");
    rc = test_cli__run("s2s eval --model @/missing.safetensors --data @/rev.tsv");
    CHECK(test_cli__one_error(rc, 1), "s2s: a missing checkpoint: exit 1, one line");

    /* train, then eval and translate */
    rc = test_cli__run(TEST_CLI_S2S " --steps 500 --lr 1e-2 --warmup 20 --eval-every 250 --model @/rev.safetensors "
                       "--log @/rev.csv --plot @/rev.svg");
    sprintf(path, "%s/rev.csv", test_cli__dir);
    text = test_cli__slurp(path, NULL);
    CHECK(rc == 0 && text && test_cli__lines(text) == 501 && !strncmp(text, "step,loss,lr,tok_per_s,val_loss,elapsed_s\n", 42),
          "s2s train: a CSV row per step, as lm train's");
    free(text);
    CHECK(rc == 0 && strstr(test_cli__err, "validation exact match"), "s2s train: the last note gives the validation exact match");
    sprintf(path, "%s/rev.svg", test_cli__dir);
    text = test_cli__slurp(path, NULL);
    CHECK(text && !plot_t_xml_check(text), "s2s train --plot: a well-formed picture");
    free(text);
    rc = test_cli__run("s2s eval --model @/rev.safetensors --data @/rev.tsv");
    {
        double loss = -1, em = -1;
        const char *last = test_cli__out, *nl;
        while ((nl = strchr(last, '\n')) && nl[1]) last = nl + 1;
        CHECK(rc == 0 && sscanf(last, "loss %lf exact_match %lf", &loss, &em) == 2 && loss >= 0 && loss < 0.5 &&
              em > 0.9, "s2s eval: last line 'loss X exact_match Y'; the model learned (loss < 0.5, exact match > 0.9)");
        printf("  s2s eval: loss %.4f exact_match %.4f\n", loss, em);
    }
    rc = test_cli__run("s2s translate --model @/rev.safetensors --text abcde");
    CHECK(rc == 0 && !strcmp(test_cli__out, "edcba\n"), "s2s translate --text: the output on one line");
    {
        /* stdin line by line (CR dropped, an empty line kept) gives what --text gives */
        char want[256] = "";
        static const char *const words[3] = { "fab", "ecafd", "cafe" };
        for (k = 0; k < 3; k++) {
            rc = test_cli__run("s2s translate --model @/rev.safetensors --beam 3 --text %s", words[k]);
            if (rc == 0 && strlen(want) + strlen(test_cli__out) < sizeof want - 2) strcat(want, test_cli__out);
            if (k == 0) strcat(want, "\n");
        }
        test_cli__write("src.txt", "fab\r\n\necafd\ncafe");
        rc = test_cli__run("s2s translate --model @/rev.safetensors --beam 3 < @/src.txt");
        CHECK(rc == 0 && !strcmp(test_cli__out, want) && test_cli__lines(want) == 4,
              "s2s translate: stdin line by line (CR dropped, an empty line kept, no last newline) as --text, beam 3");
    }
    rc = test_cli__run("s2s translate --model @/rev.safetensors --text abcde --max-tokens 2");
    CHECK(rc == 0 && !strcmp(test_cli__out, "ed\n"), "s2s translate --max-tokens cuts the output");
    rc = test_cli__run("s2s translate --model @/rev.safetensors --text abcdefghijklm");
    CHECK(test_cli__one_error(rc, 1) && strstr(test_cli__err, "context"), "s2s translate: a source past the context: exit 1");
    rc = test_cli__run("s2s translate --model @/rev.safetensors --text abc --tokenizer @/rev.tsv");
    CHECK(test_cli__one_error(rc, 1), "s2s translate: a file that is not a tokenizer: exit 1");
    /* the wrong kind of checkpoint, both ways */
    rc = test_cli__run("train --data @/text.txt " TEST_CLI_TINY " --steps 2 --quiet --model @/gpt.safetensors");
    rc |= test_cli__run("s2s translate --model @/gpt.safetensors --text abc");
    CHECK(test_cli__one_error(rc, 1) && strstr(test_cli__err, "not an encoder-decoder"),
          "s2s translate on a GPT checkpoint: exit 1 with the reason");
    rc = test_cli__run("generate --model @/rev.safetensors --tokens 3");
    CHECK(test_cli__one_error(rc, 1) && strstr(test_cli__err, "encoder-decoder checkpoint: lm s2s"),
          "generate on an encoder-decoder checkpoint: exit 1, one line saying to use lm s2s");
    rc = test_cli__run("info --model @/rev.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "\nkind encoder-decoder\nd_model 16\nnhead 2\n") &&
          strstr(test_cli__out, "\ntransformer.decoder.layers.0.multihead_attn.in_proj_weight [48, 16]\n"),
          "lm info on an encoder-decoder checkpoint: its config under nn.Transformer's names, its tensors");

    /* resume and threads: bit-identical checkpoints (constant schedule: the lr does not
       depend on --steps; dropout on, so its masks must resume too) */
#define TEST_CLI_S2S_RUN TEST_CLI_S2S " --schedule constant --lr 3e-3 --dropout 0.1 --eval-every 0"
    rc = test_cli__run(TEST_CLI_S2S_RUN " --steps 30 --model @/s30.safetensors --threads 1");
    rc |= test_cli__run(TEST_CLI_S2S_RUN " --steps 15 --model @/s15.safetensors --threads 2");
    rc |= test_cli__run(TEST_CLI_S2S_RUN " --steps 30 --model @/s15.safetensors --resume @/s15.safetensors --threads 2");
    CHECK(rc == 0 && test_cli__same("s30.safetensors", "s15.safetensors"),
          "s2s: 15 steps + resume to 30 (2 threads) == 30 steps (1 thread), bit-identical checkpoint");
    rc = test_cli__run(TEST_CLI_S2S_RUN " --steps 30 --order sequential --model @/q1.safetensors --threads 1");
    rc |= test_cli__run(TEST_CLI_S2S_RUN " --steps 10 --order sequential --model @/q2.safetensors --threads 2");
    rc |= test_cli__run(TEST_CLI_S2S_RUN " --steps 30 --order sequential --model @/q2.safetensors --resume @/q2.safetensors");
    CHECK(rc == 0 && test_cli__same("q1.safetensors", "q2.safetensors"),
          "s2s: the same with --order sequential");
#undef TEST_CLI_S2S_RUN
}
#undef TEST_CLI_S2S

static void test_cli_bench(void) {
    double v = 0;
    const char *p;
    int rc = test_cli__run("bench gemm 33 17 65 --bt");
    p = strstr(test_cli__out, "gflops ");
    CHECK(rc == 0 && p && sscanf(p, "gflops %lf", &v) == 1 && v > 0, "bench gemm: gflops line");
    rc = test_cli__run("bench train " TEST_CLI_TINY " --steps 2");
    p = strstr(test_cli__out, "ms_per_step ");
    CHECK(rc == 0 && p && sscanf(p, "ms_per_step %lf tok_per_s %*f peak_rss_mb %*f", &v) == 1 && v > 0,
          "bench train: ms_per_step tok_per_s peak_rss_mb line");
    rc = test_cli__run("bench generate --layers 1 --heads 2 --embd 16 --ctx 16 --tokens 40");
    p = strstr(test_cli__out, "tok_per_s ");
    CHECK(rc == 0 && p && sscanf(p, "tok_per_s %lf", &v) == 1 && v > 0 && test_cli__lines(p) == 1,
          "bench generate: tok_per_s is the last line");
    CHECK(strstr(test_cli__out, "generate 40 tokens"), "bench generate --tokens 40: 40 tokens");
    /* by default, no more than the context holds after the one-token prompt */
    rc = test_cli__run("bench generate --layers 1 --heads 2 --embd 16 --ctx 16");
    p = strstr(test_cli__out, "tok_per_s ");
    CHECK(rc == 0 && strstr(test_cli__out, "generate 15 tokens") && p && test_cli__lines(p) == 1,
          "bench generate: n_ctx - 1 tokens by default");
    rc = test_cli__run("bench bandwidth --mb 2 --threads 2");
    p = strstr(test_cli__out, "gb_per_s ");
    CHECK(rc == 0 && p && sscanf(p, "gb_per_s %lf", &v) == 1 && v > 0 && test_cli__lines(p) == 1,
          "bench bandwidth: gb_per_s is the last line");
    CHECK(test_cli__run("bench bandwidth --mb 0") == 2, "bench bandwidth --mb 0: a usage error");
}

/* lm quantize, lm prune, train --keep-zeros, and every command that reads a model taking a
   quantized one. */
static void test_cli_compress(void) {
    double before = 0, after = 0, ratio = 0, lf = 0, lq = 0, s0 = -1, s1 = -1;
    const char *p;
    int rc, bad = 0;
    rc = test_cli__run("train --data @/text.txt --layers 1 --heads 2 --embd 32 --ctx 16 --batch 4 --steps 40 --quiet "
                       "--model @/c.safetensors");
    CHECK(rc == 0, "compress: train a model to compress");
    rc = test_cli__run("quantize --model @/c.safetensors --out @/cq.safetensors");
    CHECK(rc == 0 && sscanf(test_cli__out, "before %lf bytes\nafter %lf bytes (%lf of before)",
                            &before, &after, &ratio) == 3 && after < before && ratio > 0.2 && ratio < 0.9 &&
          test_cli__lines(test_cli__out) == 2, "quantize: the sizes before and after on stdout");
    rc = test_cli__run("info --model @/cq.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "quant q8_0\n") && strstr(test_cli__out, "h.0.mlp.c_fc.weight [32, 128] q8_0\n") &&
          strstr(test_cli__out, "wte.weight [256, 32]\n") && strstr(test_cli__out, "h.0.mlp.c_fc.bias [128]\n"),
          "quantize: info says q8_0 and which tensors are quantized");
    rc = test_cli__run("quantize --model @/c.safetensors --out @/cqe.safetensors --quantize-embeddings");
    rc |= test_cli__run("info --model @/cqe.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "quant q8_0+wte\n") && strstr(test_cli__out, "wte.weight [256, 32] q8_0\n"),
          "quantize --quantize-embeddings: wte too");
    rc = test_cli__run("eval --model @/c.safetensors --data @/text.txt");
    p = strstr(test_cli__out, "loss ");
    if (rc || !p || sscanf(p, "loss %lf", &lf) != 1) bad++;
    rc = test_cli__run("eval --model @/cqe.safetensors --data @/text.txt");
    p = strstr(test_cli__out, "loss ");
    if (rc || !p || sscanf(p, "loss %lf", &lq) != 1) bad++;
    CHECK(!bad && fabs(lq / lf - 1) < 0.02, "eval: a quantized model's loss, close to float32's");
    rc = test_cli__run("generate --model @/cqe.safetensors --prompt \"the \" --tokens 20 --temperature 0");
    CHECK(rc == 0 && !strncmp(test_cli__out, "the ", 4) && test_cli__out_len >= 20, "generate: from a quantized model");
    rc = test_cli__run("bench generate --model @/cq.safetensors --tokens 8");
    CHECK(rc == 0 && strstr(test_cli__out, "Q8_0 weights") && strstr(test_cli__out, "tok_per_s "),
          "bench generate: a quantized --model");
    rc = test_cli__run("bench generate --layers 1 --heads 2 --embd 32 --ctx 16 --quantize");
    p = strstr(test_cli__out, "tok_per_s ");
    CHECK(rc == 0 && strstr(test_cli__out, "Q8_0 weights") && p && test_cli__lines(p) == 1 &&
          strstr(p, " weight_mb_per_token ") && strstr(p, " gb_per_s "), "bench generate --quantize");
    /* errors */
    CHECK(test_cli__one_error(test_cli__run("quantize --model @/c.safetensors"), 2), "quantize: --out is required");
    CHECK(test_cli__one_error(test_cli__run("quantize --model @/c.safetensors --out @/c.safetensors"), 2),
          "quantize: --out must not be --model");
    CHECK(test_cli__one_error(test_cli__run("quantize --model @/cq.safetensors --out @/x.safetensors"), 1),
          "quantize: a quantized model is an error");
    CHECK(test_cli__one_error(test_cli__run("train --data @/text.txt --init @/cq.safetensors --steps 2"), 1) &&
          strstr(test_cli__err, "quantized"), "train --init a quantized model: a clear error");
    CHECK(test_cli__one_error(test_cli__run("prune --model @/c.safetensors --out @/p.safetensors"), 2),
          "prune: --sparsity is required");
    CHECK(test_cli__one_error(test_cli__run("prune --model @/c.safetensors --out @/p.safetensors --sparsity 1.5"), 2),
          "prune: --sparsity outside [0, 1]");
    /* prune, then fine-tune with and without the zeros kept */
    rc = test_cli__run("prune --model @/c.safetensors --sparsity 0.5 --out @/p.safetensors");
    CHECK(rc == 0 && sscanf(test_cli__out, "sparsity %lf -> %lf", &s0, &s1) == 2 && s0 < 0.01 &&
          fabs(s1 - 0.5) < 1e-4, "prune: half the weights of each block matrix to zero");
    rc = test_cli__run("train --data @/text.txt --init @/p.safetensors --model @/pk.safetensors --steps 10 "
                       "--keep-zeros --quiet");
    rc |= test_cli__run("info --model @/pk.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "sparsity 0.5000\n"), "train --keep-zeros: the zeros stay zero");
    rc = test_cli__run("train --data @/text.txt --init @/p.safetensors --model @/pn.safetensors --steps 10 --quiet");
    rc |= test_cli__run("info --model @/pn.safetensors");
    CHECK(rc == 0 && strstr(test_cli__out, "sparsity 0.0"), "train without --keep-zeros: they do not");
}

/* The documentation stays true. (1) The C examples of lm.h's QUICK START and of README.md,
   which `make test` extracts, fills in and compiles (tests/docs.sh, into out/docs/), run
   here: each must exit 0, and one that saves model.safetensors must leave a loadable
   model. (2) Each section of CONTENTS in lm.h's docs block has its banner "N. Title", in
   order. */
static void test_docs(void) {
    char *list = test_cli__slurp("out/docs/list", NULL), *name, *save = NULL, cwd[1024];
    char *h = test_cli__slurp("lm.h", NULL);
    int ran = 0;
    if (!list) {
        printf("note: out/docs/list is missing: the documentation's examples were not built "
               "(make test builds them with tests/docs.sh)\n");
    } else if (!getcwd(cwd, sizeof cwd - 300)) {
        CHECK(0, "docs: the working directory");
    } else {
        for (name = strtok_r(list, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
            char cmd[2048], what[200], path[300];
            int rc;
            lm_gpt *m;
            test_cli__write("input.txt", "A small text for the documentation's examples to "
                            "train on. It repeats, so a few steps already learn from it.\n");
            sprintf(path, "%s/model.safetensors", test_cli__dir);
            remove(path);
            snprintf(cmd, sizeof cmd, "cd %s && %s/out/docs/%s input.txt >out 2>err; echo $? >rc",
                     test_cli__dir, cwd, name);
            rc = system(cmd) == -1 ? -1 : test_cli__rc();
            snprintf(what, sizeof what, "docs: the example '%s' compiled from the docs runs and exits 0", name);
            CHECK(rc == 0, what);
            if ((m = lm_gpt_load(path, 0)) != NULL || rc != 0) {
                snprintf(what, sizeof what, "docs: the model '%s' saves loads again", name);
                CHECK(m != NULL, what);
            }
            lm_gpt_free(m);
            ran++;
        }
        CHECK(ran >= 2, "docs: the QUICK START and the README's example were built and run");
    }
    free(list);
    if (!h) { CHECK(0, "docs: read lm.h"); return; }
    {
        /* CONTENTS lines: "       N.  Title   words..." ; banners: "   N. Title" */
        char *c = strstr(h, "   CONTENTS"), *end = c ? strstr(c, "\n\n") : NULL, *at = h;
        int n = 0, bad = 0;
        while (c && end && (c = strchr(c + 1, '\n')) != NULL && c < end) {
            int num, k = 0;
            char title[80], banner[100], *hit;
            if (sscanf(c + 1, " %d. %n", &num, &k) != 1 || k == 0) continue;
            sscanf(c + 1 + k, "%79[^\n]", title);
            { char *sp = strstr(title, "  "); if (sp) *sp = 0; }  /* the title ends at two spaces */
            snprintf(banner, sizeof banner, "\n   %d. %s", num, title);
            hit = strstr(at, banner);
            if (!hit || num != n + 1) { bad++; printf("  CONTENTS entry %d '%s' has no banner in order\n", num, title); }
            else at = hit + 1;
            n = num;
        }
        CHECK(n >= 15 && bad == 0, "docs: every CONTENTS entry of lm.h has its section banner, in order");
    }
    free(h);
}

static void run_cli_tests(void) {
    FILE *f;
    char cmd[128];
    /* for runs where the lm binary cannot be executed as is (a cross-compiled test binary
       under qemu) */
    if (getenv("LM_TEST_SKIP_CLI")) {
        printf("note: LM_TEST_SKIP_CLI is set: the command-line tests are skipped\n");
        return;
    }
    test_cli__bin = getenv("LM_BIN") && getenv("LM_BIN")[0] ? getenv("LM_BIN") : "./lm";
    if (strlen(test_cli__bin) > 200) test_cli__bin = "./lm";
    f = fopen(test_cli__bin, "rb");
    if (!f) printf("  cannot open the lm binary '%s' (make test builds ./lm first; LM_BIN names another)\n", test_cli__bin);
    CHECK(f != NULL, "the lm binary exists");
    if (!f) return;
    fclose(f);
    strcpy(test_cli__dir, "/tmp/lm_cli_XXXXXX");
    CHECK(mkdtemp(test_cli__dir) != NULL, "make a scratch directory");
    test_cli__corpus();
    test_cli_help();
    test_cli_usage_errors();
    test_cli_runtime_errors();
    test_cli_train_and_use();
    test_cli_resume();
    test_cli_threads();
    test_cli_accum();
    test_cli_nan();
    test_cli_tokens();
    test_cli_plot();
    test_cli_progress();
    test_cli_bench();
    test_cli_s2s();
    test_cli_compress();
    test_docs();
    free(test_cli__out);
    free(test_cli__err);
    test_cli__out = test_cli__err = NULL;
    sprintf(cmd, "rm -rf %s", test_cli__dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", test_cli__dir);
}
#endif

int main(void) {
    printf("lm.h test suite: SIMD path %s, %d cores\n", lm_simd_name(), lm_num_cores());
    if (getenv("LM_TEST_ONLY") && !strcmp(getenv("LM_TEST_ONLY"), "threads")) {
        run_thread_tests();                   /* make test-tsan: this group alone */
        return SUMMARY();
    }
    run_core_tests();
    run_gemm_tests();
    run_thread_tests();
    run_st_tests();
    run_tok_tests();
    run_vec_tests();
    run_plot_tests();
    run_q8_tests();
#ifndef LM_TEST_NO_CLI
    run_cli_tests();
#endif
    return SUMMARY();
}
