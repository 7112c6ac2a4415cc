/* cc -O2 -march=native -I.. 7_compress.c -o 7_compress -lm -lpthread

   Lesson 7: compression - what a smaller model costs.

   Almost all of a GPT's bytes are the four weight matrices of each block, and a trained
   network does not need their float32 precision, nor every one of them. Two ways to use
   that:

   Quantization (Q8_0). Each run of 32 weights along a matrix's input becomes 32 small
   integers q in [-127, 127] and one scale d (a 16-bit float): w ~ d q, with d = max|w|/127,
   so no weight moves by more than d / 2. That is 34 bytes instead of 128 for 32 weights,
   and the products run on integer dot products, exactly. The token embedding, which also
   serves as the output layer, can be quantized too.

   Pruning. Set the weights of smallest magnitude to zero, a share of each matrix. The
   zeros cost nothing to multiply and, stored as a bitmap plus the remaining values, little
   to keep. Pruning hurts more than quantization, but a short fine-tune with the zeros held
   at zero (lm_train_opts.keep_zeros) wins much of it back: the other weights learn to make
   up for the missing ones.

   We train the GPT of lesson 3 on a file, then measure the loss on held-out text of each
   compressed copy against its size: float32, Q8_0, Q8_0 with the embedding, and pruned to
   30, 50 and 70% with and without a fine-tune. A fine-tune is more training, which a model
   trained for a few minutes still profits from, pruned or not; so a fine-tuned copy is
   compared with the float32 model given the same fine-tune, not with the one before.

   usage: 7_compress [--plot FILE.svg] [FILE]    (default ../lm.h, which every checkout has)
   A few minutes on 2 cores. --plot draws validation loss against size (tools/lm_plot.h).
   Exits non-zero if the lesson did not work: Q8_0 must cost at most 0.5% of the
   validation loss (with the embedding quantized or not), and each fine-tune must win back
   some of what its pruning cost. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include "tools/lm_plot.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 16                /* windows per step                                          */
#define T 64                /* bytes per window: the model's context                     */
#define STEPS 600           /* training steps                                            */
#define TUNE 150            /* fine-tuning steps after pruning                           */

static int *g_tokens;       /* the file, one byte a token                                */
static size_t g_n, g_train; /* tokens, and how many of the first ones train              */

/* Validation loss: the mean cross-entropy over the held-out tenth. */
static float val_loss(lm_gpt *m) { return lm_gpt_eval(m, g_tokens + g_train, g_n - g_train, T); }

/* Train m for steps at lr (a warmup of a tenth, then cosine down to lr / 10). */
static int train(lm_gpt *m, int steps, float lr, int keep_zeros, uint64_t seed, int verbose) {
    static int in[B * T], tg[B * T];
    lm_train_opts o = lm_train_defaults();
    lm_data d = lm_data_init(g_tokens, g_train, LM_ORDER_RANDOM, seed);
    int s;
    o.lr = lr;
    o.min_lr = lr / 10;
    o.warmup = steps / 10;
    o.steps = steps;
    o.keep_zeros = keep_zeros;
    for (s = 0; s < steps; s++) {
        float loss;
        if (lm_data_next(&d, B, T, in, tg) != LM_OK) return 0;
        loss = lm_gpt_train_step(m, &o, in, tg, B, T, s);
        if (loss != loss) { fprintf(stderr, "compress: %s\n", lm_error()); return 0; }
        if (verbose && (s % 100 == 0 || s == steps - 1)) printf("  step %4d  loss %.3f\n", s, loss);
    }
    return 1;
}

/* The bytes of m's checkpoint (what lm_gpt_save writes). */
static double file_bytes(const lm_gpt *m) {
    size_t n = 0;
    lm_gpt_save_mem(m, NULL, 0, &n);
    return (double)n;
}

/* A copy of a float32 model, through its checkpoint image. */
static lm_gpt *copy(const lm_gpt *m) {
    size_t n = 0;
    unsigned char *img;
    lm_gpt *c = NULL;
    lm_gpt_save_mem(m, NULL, 0, &n);
    if ((img = (unsigned char *)malloc(n)) && lm_gpt_save_mem(m, img, n, &n) == LM_OK)
        c = lm_gpt_load_mem(img, n, 0);
    free(img);
    return c;
}

/* One row of the table (and a point of the picture): loss and bytes, and the loss of the
   float32 model it is to be compared with. */
#define MAX_ROWS 12
static const char *row_name[MAX_ROWS];
static double row_loss[MAX_ROWS], row_bytes[MAX_ROWS], row_ref[MAX_ROWS];
static int row_series[MAX_ROWS], n_rows;
static void row(const char *name, float loss, double bytes, int series, float ref) {
    row_name[n_rows] = name;
    row_loss[n_rows] = loss;
    row_bytes[n_rows] = bytes;
    row_ref[n_rows] = ref;
    row_series[n_rows++] = series;
}

int main(int argc, char **argv) {
    static const float sparsity[3] = { 0.3f, 0.5f, 0.7f };
    static const char *const pruned[3] = { "pruned 30%", "pruned 50%", "pruned 70%" };
    static const char *const tuned[3] = { "pruned 30% + tune", "pruned 50% + tune", "pruned 70% + tune" };
    static const char *const series[4] = { "float32", "Q8_0", "pruned", "pruned, then fine-tuned" };
    const char *path = "../lm.h", *plot = NULL;
    lm_gpt_config cfg = { 4, 4, 128, T, 256, LM_QUANT_NONE };
    lm_gpt *m, *q;
    float base, base_tuned, loss[3][2];
    double dense, matrices = 0;
    int i, k, ok = 1;
    FILE *f;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--plot") && i + 1 < argc) plot = argv[++i];
        else if (argv[i][0] == '-') { fprintf(stderr, "usage: 7_compress [--plot FILE.svg] [FILE]\n"); return 2; }
        else path = argv[i];
    }
    /* 1. The text, byte by byte; the last tenth is held out. */
    if (!(f = fopen(path, "rb"))) { fprintf(stderr, "compress: cannot open %s\n", path); return 1; }
    fseek(f, 0, SEEK_END);
    g_n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    g_tokens = (int *)malloc((g_n + 1) * sizeof(int));
    for (i = 0; g_tokens && (size_t)i < g_n; i++) g_tokens[i] = fgetc(f);
    fclose(f);
    g_train = g_n - g_n / 10;
    if (!g_tokens || g_n / 10 < T + 1) { fprintf(stderr, "compress: %s is too short\n", path); return 1; }

    /* 2. The model of lesson 3, trained a little longer. */
    lm_set_threads(0);
    if (!(m = lm_gpt_new(&cfg, 1337))) { fprintf(stderr, "compress: %s\n", lm_error()); return 1; }
    printf("%s: %zu bytes, %zu held out; a GPT of %zu parameters, %s kernels, %d threads\n",
           path, g_n, g_n - g_train, lm_gpt_num_params(m), lm_simd_name(), lm_get_threads());
    printf("training %d steps:\n", STEPS);
    if (!train(m, STEPS, 2e-3f, 0, 42, 1)) return 1;
    for (k = 0; k < m->params.n; k++)          /* the block matrices: 2-D, after wte and wpe */
        if (k >= 2 && m->params.t[k].ndim == 2) matrices += m->params.t[k].size;

    /* 3. float32, then Q8_0 without and with the embedding */
    base = val_loss(m);
    dense = file_bytes(m);
    row("float32", base, dense, 0, base);
    for (k = 0; k < 2; k++) {
        if (!(q = lm_gpt_quantize(m, k ? LM_QUANT_Q8_0_EMB : LM_QUANT_Q8_0))) {
            fprintf(stderr, "compress: %s\n", lm_error());
            return 1;
        }
        row(k ? "Q8_0 + embedding" : "Q8_0", val_loss(q), file_bytes(q), 1, base);
        lm_gpt_free(q);
    }
    /* the yardstick of the fine-tunes: the float32 model fine-tuned the same way */
    if (!(q = copy(m)) || !train(q, TUNE, 3e-4f, 0, 99, 0)) return 1;
    base_tuned = val_loss(q);
    row("float32 + tune", base_tuned, dense, 0, base_tuned);
    lm_gpt_free(q);

    /* 4. Pruning: each sparsity on a fresh copy, before and after a fine-tune that keeps
       the zeros. A pruned model is stored dense by lm.h; its size here is what a sparse
       format would take: the surviving float32 values plus a bitmap of the matrices. */
    for (k = 0; k < 3; k++) {
        lm_gpt *p = copy(m);
        double bytes;
        if (!p || lm_gpt_prune(p, sparsity[k]) != LM_OK) { fprintf(stderr, "compress: %s\n", lm_error()); return 1; }
        bytes = dense - 4 * lm_gpt_sparsity(p) * matrices + matrices / 8;
        loss[k][0] = val_loss(p);
        if (!train(p, TUNE, 3e-4f, 1, 100 + k, 0)) return 1;
        loss[k][1] = val_loss(p);
        printf("pruned %2.0f%%: validation loss %.4f, after %d fine-tuning steps %.4f (zeros kept: %.1f%%)\n",
               100 * sparsity[k], loss[k][0], TUNE, loss[k][1], 100 * lm_gpt_sparsity(p));
        row(pruned[k], loss[k][0], bytes, 2, base);
        row(tuned[k], loss[k][1], bytes, 3, base_tuned);
        lm_gpt_free(p);
    }

    /* 5. The table: loss and its change against the bytes it takes; a fine-tuned copy's
       change is against "float32 + tune". */
    printf("\n%-20s %10s %9s %12s %8s\n", "model", "val loss", "change", "bytes", "size");
    for (i = 0; i < n_rows; i++)
        printf("%-20s %10.4f %+8.2f%% %12.0f %7.1f%%%s\n", row_name[i], row_loss[i],
               100 * (row_loss[i] / row_ref[i] - 1), row_bytes[i], 100 * row_bytes[i] / dense,
               row_series[i] >= 2 ? " *" : "");
    printf("change: against float32, or for a fine-tuned model against float32 + tune (the same\n"
           "%d more steps). * as a sparse file would store it: the nonzero float32 values and a\n"
           "bitmap of the block matrices (lm.h keeps a pruned model dense: %.0f bytes).\n", TUNE, dense);

    if (plot) {
        char err[256];
        if (lmplot_points_svg(n_rows, row_bytes, row_loss, row_series, row_name, 4, series,
                              "Validation loss against size: quantization and pruning",
                              "model size (bytes)", "validation loss (nats per byte)", plot, err,
                              sizeof err) != 0) {
            fprintf(stderr, "compress: %s\n", err);
            ok = 0;
        } else {
            printf("drew %s\n", plot);
        }
    }

    /* The lesson worked if Q8_0 costs at most 0.5% of the loss, both ways, and every
       fine-tune wins back part of what its pruning cost. */
    for (i = 1; i <= 2; i++)
        if (!(row_loss[i] <= base * 1.005f)) ok = 0;
    for (k = 0; k < 3; k++)
        if (!(loss[k][1] < loss[k][0])) ok = 0;
    printf("%s: Q8_0 %+.2f%%, with the embedding %+.2f%% (at most +0.5%%); fine-tuning after "
           "pruning %s\n", ok ? "OK" : "FAILED", 100 * (row_loss[1] / base - 1),
           100 * (row_loss[2] / base - 1),
           loss[0][1] < loss[0][0] && loss[1][1] < loss[1][0] && loss[2][1] < loss[2][0]
               ? "wins back loss every time" : "did NOT always help");
    lm_gpt_free(m);
    free(g_tokens);
    return ok ? 0 : 1;
}
