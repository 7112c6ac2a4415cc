/* cc -O2 -march=native -I.. 4_classify.c -o 4_classify -lm -lpthread

   Lesson 4: pretraining, then fine-tuning.

   Labels are expensive and raw text is cheap. So first a bidirectional Transformer
   encoder learns the texts themselves, with no labels, by masked-language modelling
   (BERT's recipe): hide 15% of the bytes of each text and train the model to fill them
   in. To guess the hidden byte of "gesch?ftlich" the model has to learn which byte
   sequences go together in which language: the very knowledge a classifier needs.
   Then we fine-tune: a linear head on the mean of the encoder's outputs predicts the
   label, and the whole network (encoder and head) trains on the labelled lines.
   Last we evaluate on texts the model never saw: per-class precision, recall and F1.

   Data: lines "label<TAB>text". Labels are any strings; they become class ids in the
   order they first appear in the training file. Texts are bytes, cut at the context.
   Each text keeps its line's '\n' as an end marker: position embeddings tell the model
   how far a byte is from the start, the marker shows it the end ("-heid\n", "-ing\n").
   Vocabulary: 256 bytes + [MASK] + [PAD] = 258 tokens.

   usage: 4_classify [--labels F] [--no-pretrain] [--plot FILE.svg] [TRAIN.tsv TEST.tsv]
       --labels F     fine-tune on only the first fraction F of the labelled lines
                      (pretraining still reads every text): where pretraining pays off
       --no-pretrain  skip pretraining, to see what it is worth
       --plot F.svg   also draw the confusion matrix as a heat map (tools/lm_plot.h)
   With no files it runs on langs.tsv / langs_test.tsv: short sentences in English,
   German, French and Spanish, written for this lesson. It prints per-class precision,
   recall and F1, the confusion matrix, and last `accuracy X` and `macro_f1 X`.
   Give it your own label<TAB>text files, the more texts the better: pretraining pays
   off most when only a few of them have labels (try --labels 0.1, with and without
   --no-pretrain).

   This file is the lesson; the plumbing (the command line, reading the files, batches of
   padded texts, printing and drawing the report) is in lesson_data.h. */
#define LM_IMPLEMENTATION
#include "lm.h"
#define LESSON "classify"    /* the name lesson_data.h's messages start with              */
#include "lesson_data.h"

#define CTX 32               /* bytes of each text the model sees; the rest is cut        */
#define MASK_ID 256          /* the two special tokens after the 256 bytes                */
#define PAD_ID 257
#define B_PRE 64             /* texts per pretraining step                                */
#define B_FT 32              /* texts per fine-tuning step                                */
#define B_EVAL 256

/* Steps for a phase: `epochs` passes over n items, within [lo, hi]. */
static int steps_for(double epochs, int n, int B, int lo, int hi) {
    double s = epochs * n / B;
    return s < lo ? lo : s > hi ? hi : (int)s;
}

/* ---- Phase 1: masked-LM pretraining on every text, labels unused ------------------- */
static int pretrain(lm_encoder *e, const text_set *d, int steps) {
    static int idx[B_PRE], tokens[B_PRE * CTX], lens[B_PRE];
    lm_train_opts o = lm_train_defaults();
    batcher bt;
    int step, T;
    double avg = 0;
    if (!batcher_init(&bt, d, d->n, B_PRE, 1)) return 0;
    o.lr = 1e-3f; o.min_lr = 1e-4f; o.warmup = steps / 20; o.steps = steps; o.wd = 0.01f;
    for (step = 0; step < steps; step++) {
        float loss;
        batcher_next(&bt, idx);
        T = text_batch(d, idx, B_PRE, PAD_ID, tokens, lens);
        /* The library picks 15% of the real positions and corrupts them (80% [MASK],
           10% a random byte below 256, 10% unchanged); the loss is on those only. */
        loss = lm_encoder_mlm_train_step(e, &o, tokens, lens, B_PRE, T, step);
        if (loss != loss) { batcher_free(&bt); return say("%s", lm_error()); }
        avg = step ? 0.98 * avg + 0.02 * loss : loss;
        if (step % 500 == 0 || step == steps - 1) { printf("  step %5d  masked-LM loss %.3f\n", step, avg); fflush(stdout); }
    }
    batcher_free(&bt);
    return 1;
}

/* ---- Phase 2: fine-tuning encoder + head on the first n_use labelled items --------- */
static int finetune(lm_encoder *e, const text_set *d, int n_use, int steps) {
    static int idx[B_FT], tokens[B_FT * CTX], lens[B_FT], labels[B_FT];
    lm_train_opts o = lm_train_defaults();
    lm_rng noise = lm_rng_seed(3);
    batcher bt;
    int step, b, T, i;
    double avg = 0;
    if (!batcher_init(&bt, d, n_use, B_FT, 2)) return 0;
    o.lr = 1e-3f; o.min_lr = 5e-5f; o.warmup = steps / 20; o.steps = steps; o.wd = 0.1f;
    lm_params_reset_optimizer(&e->params);   /* a new phase, a new optimizer: forget
                                                pretraining's AdamW moments */
    for (step = 0; step < steps; step++) {
        float loss;
        batcher_next(&bt, idx);
        for (b = 0; b < B_FT; b++) labels[b] = d->it[idx[b]].label;
        T = text_batch(d, idx, B_FT, PAD_ID, tokens, lens);
        /* Input noise: 10% of the bytes become [MASK]. The model cannot lean on any one
           byte, so it learns the many clues of a language instead of memorising the
           training texts (dropout, applied to the input). Pretraining taught it [MASK]. */
        for (i = 0; i < B_FT * T; i++)
            if (tokens[i] != PAD_ID && lm_rng_uniform(&noise) < 0.1f) tokens[i] = MASK_ID;
        loss = lm_encoder_cls_train_step(e, &o, tokens, lens, labels, B_FT, T, step);
        if (loss != loss) { batcher_free(&bt); return say("%s", lm_error()); }
        avg = step ? 0.98 * avg + 0.02 * loss : loss;
        if (step % 500 == 0 || step == steps - 1) { printf("  step %5d  loss %.3f\n", step, avg); fflush(stdout); }
    }
    batcher_free(&bt);
    return 1;
}

/* ---- Phase 3: predict each test item: the class of highest probability ------------- */
static int predict(lm_encoder *e, const text_set *d, int n_class, int *pred) {
    static int idx[B_EVAL], tokens[B_EVAL * CTX], lens[B_EVAL];
    static float probs[B_EVAL * MAX_LABELS];
    int i, b, k, T;
    for (i = 0; i < d->n; i += B_EVAL) {
        int nb = d->n - i < B_EVAL ? d->n - i : B_EVAL;
        for (b = 0; b < nb; b++) idx[b] = i + b;
        T = text_batch(d, idx, nb, PAD_ID, tokens, lens);
        if (lm_encoder_predict(e, tokens, lens, nb, T, probs) != LM_OK) return say("%s", lm_error());
        for (b = 0; b < nb; b++) {
            int best = 0;
            for (k = 1; k < n_class; k++) if (probs[b * n_class + k] > probs[b * n_class + best]) best = k;
            pred[i + b] = best;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    static label_set classes;
    double precision[MAX_LABELS], recall[MAX_LABELS], f1[MAX_LABELS];
    long support[MAX_LABELS], *confusion, most = 0;
    int i, n_use, n_class, ok, *truth, *pred;
    lesson_args a;
    text_set train, test;
    lm_encoder_config cfg;
    lm_encoder *e;
    lm_metrics mt;

    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    if (!lesson_parse(argc, argv, &a)) return 2;
    if (!text_load(a.train, &classes, 1, CTX, &train) || !text_load(a.test, &classes, 0, CTX, &test))
        return 1;
    n_class = classes.n;
    if (n_class < 2) { say("need at least two labels"); return 1; }
    n_use = (int)(a.labels * train.n + 0.5);
    if (n_use < 1) n_use = 1;
    printf("%s: %d texts in %d classes, the first %d labelled; %s: %d texts\n",
           a.train, train.n, n_class, n_use, a.test, test.n);

    /* The model: 4 blocks, 64 wide, 4 heads, context 32; n_class outputs. Dropout 0.1
       (BERT's rate) in every training step: each step zeroes a random tenth of the
       embeddings and of each block's outputs, so no single unit can carry a memorised
       word. Prediction uses the whole network. */
    lm_set_threads(0);
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layer = 4; cfg.n_head = 4; cfg.n_embd = 64; cfg.n_ctx = CTX;
    cfg.vocab = 258; cfg.mask_id = MASK_ID; cfg.pad_id = PAD_ID; cfg.n_class = n_class;
    cfg.dropout = 0.1f;
    if (!(e = lm_encoder_new(&cfg, 1234))) { say("%s", lm_error()); return 1; }

    /* Training lengths in epochs, with floors for tiny data sets and caps for time. */
    if (a.pretrain) {
        int steps = steps_for(40, train.n, B_PRE, 600, 12000);
        printf("pretraining: masked-LM on all %d texts, labels unused, %d steps\n", train.n, steps);
        if (!pretrain(e, &train, steps)) return 1;
    }
    {
        int steps = steps_for(25, n_use, B_FT, 400, 16000);
        printf("fine-tuning: %d labelled texts, %d steps\n", n_use, steps);
        if (!finetune(e, &train, n_use, steps)) return 1;
    }

    /* Evaluate on the held-out file: the confusion matrix counts (true, predicted), and
       the metrics come from it. */
    truth = (int *)malloc((size_t)test.n * sizeof(int));
    pred = (int *)malloc((size_t)test.n * sizeof(int));
    confusion = (long *)malloc((size_t)n_class * n_class * sizeof(long));
    if (!truth || !pred || !confusion) { say("out of memory"); return 1; }
    for (i = 0; i < test.n; i++) truth[i] = test.it[i].label;
    if (!predict(e, &test, n_class, pred)) return 1;
    memset(&mt, 0, sizeof mt);
    mt.precision = precision; mt.recall = recall; mt.f1 = f1; mt.support = support;
    lm_confusion(truth, pred, test.n, n_class, confusion);
    lm_metrics_from_confusion(confusion, n_class, &mt);
    if (!report(&classes, confusion, &mt, a.plot, a.test)) return 1;
    printf("accuracy %.4f\nmacro_f1 %.4f\n", mt.accuracy, mt.macro_f1);

    /* The lesson failed if the model learned little: demand at least halfway from
       always answering the commonest class to perfect. */
    for (i = 0; i < n_class; i++) if (support[i] > most) most = support[i];
    ok = mt.accuracy >= 0.5 + 0.5 * (double)most / test.n;
    lm_encoder_free(e);
    text_free(&train); text_free(&test);
    free(truth); free(pred); free(confusion);
    return ok ? 0 : 1;
}
