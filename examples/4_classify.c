/* cc -O2 -march=native -I.. 4_classify.c -o 4_classify -lm -lpthread

   Lesson 4: pretraining, then fine-tuning.

   Labels are expensive and raw text is cheap. So first a bidirectional Transformer
   encoder learns raw texts, with no labels, by masked-language modelling (BERT's
   recipe): hide 15% of the bytes of each text and train the model to fill them in. To
   guess the hidden byte of "gesch?ftlich" the model has to learn which byte sequences go
   together in which language: the very knowledge a classifier needs. The more raw text,
   the more it learns, so give it all you have (--unlabeled FILE, one text a line); by
   default it pretrains on the training texts themselves, labels unused.
   Then we fine-tune: a linear head on the mean of the encoder's outputs predicts the
   label, and the whole network (encoder and head) trains on the labelled lines.
   Last we evaluate on texts the model never saw: per-class precision, recall and F1.

   Data: lines "label<TAB>text". Labels are any strings; they become class ids in the
   order they first appear in the training file. Texts are bytes. Each text keeps its
   line's '\n' as an end marker: position embeddings tell the model how far a byte is
   from the start, the marker shows it the end ("-heid\n", "-ing\n").
   Vocabulary: 256 bytes + [MASK] + [PAD] = 258 tokens.

   The context (how many bytes of a text the model sees) fits the data: the longest
   training or pretraining text, up to MAX_CTX = 256 bytes; --ctx N sets it. The lesson
   says how many texts that cuts. The model and the training lengths follow the data too
   (see plan() below): nothing is tuned to one data set.

   usage: 4_classify [--unlabeled FILE] [--labels F] [--no-pretrain] [--ctx N]
                     [--threads N] [--plot FILE.svg] [TRAIN.tsv TEST.tsv]
       --unlabeled F  pretrain on the texts of F (one a line) as well as the training texts
       --labels F     fine-tune on only the first fraction F of the labelled lines
                      (pretraining still reads every text): where pretraining pays off
       --no-pretrain  skip pretraining, to see what it is worth
       --ctx N        bytes of each text the model sees (1 .. 4096)
       --threads N    threads to train with (default 0: all cores)
       --plot F.svg   also draw the confusion matrix as a heat map (tools/lm_plot.h)
   With no files it runs on langs.tsv / langs_test.tsv: short sentences in English,
   German, French and Spanish, written for this lesson (under a minute). It prints what
   it pretrained on and for how long, per-class precision, recall and F1, the confusion
   matrix, and last `accuracy X` and `macro_f1 X`. tools/nb_baseline.py prints the same
   two lines for a naive Bayes classifier of character n-grams, the baseline to beat.

   This file is the lesson; the plumbing (the command line, reading the files, batches of
   padded texts, printing and drawing the report) is in lesson_data.h. */
#define LM_IMPLEMENTATION
#include "lm.h"
#define LESSON "classify"    /* the name lesson_data.h's messages start with              */
#include "lesson_data.h"
#include <time.h>

#define MAX_CTX 256          /* the longest context chosen by itself                      */
#define MASK_ID 256          /* the two special tokens after the 256 bytes                */
#define PAD_ID 257
#define B_EVAL 64

/* ---- The plan: model and training lengths from the size of the data ---------------- */
typedef struct {
    int n_embd, n_layer;     /* the model                                                 */
    int b_pre, pre_steps;    /* pretraining: texts a step, steps                          */
    int b_ft, ft_steps;      /* fine-tuning                                               */
} plan_t;

/* Steps for `epochs` passes over n items of B a step, within [lo, hi]. */
static int steps_for(double epochs, long n, int B, int lo, int hi) {
    double s = epochs * n / B;
    return s < lo ? lo : s > hi ? hi : (int)s;
}

static plan_t plan(long pre_texts, long pre_bytes, int n_labelled, int ctx) {
    plan_t p;
    /* A step holds about 4096 bytes of text at the longest: 64 short texts, fewer long
       ones. */
    p.b_pre = 4096 / ctx < 8 ? 8 : 4096 / ctx > 64 ? 64 : 4096 / ctx;
    p.b_ft = p.b_pre / 2 < 8 ? 8 : p.b_pre / 2;
    p.n_layer = 4;
    p.n_embd = 64;
    (void)pre_bytes;
    p.pre_steps = steps_for(40, pre_texts, p.b_pre, 600, 12000);
    p.ft_steps = steps_for(25, n_labelled, p.b_ft, 400, 16000);
    return p;
}


/* ---- Phase 1: masked-LM pretraining, labels unused ---------------------------------- */
static int pretrain(lm_encoder *e, const text_set *d, int B, int steps, int ctx) {
    lm_train_opts o = lm_train_defaults();
    batcher bt;
    batch x;
    int step;
    double avg = 0;
    if (!batch_init(&x, B, ctx)) return 0;
    if (!batcher_init(&bt, d, d->n, B, 1)) { batch_free(&x); return 0; }
    o.lr = 1e-3f; o.min_lr = 1e-4f; o.warmup = steps / 20; o.steps = steps; o.wd = 0.01f;
    for (step = 0; step < steps; step++) {
        float loss;
        batcher_next(&bt, x.idx);
        batch_fill(&x, d, PAD_ID);
        /* The library picks 15% of the real positions and corrupts them (80% [MASK],
           10% a random byte below 256, 10% unchanged); the loss is on those only. */
        loss = lm_encoder_mlm_train_step(e, &o, x.tokens, x.lens, B, x.T, step);
        if (loss != loss) { batcher_free(&bt); batch_free(&x); return say("%s", lm_error()); }
        avg = step ? 0.98 * avg + 0.02 * loss : loss;
        if (step % 500 == 0 || step == steps - 1) { printf("  step %5d  masked-LM loss %.3f\n", step, avg); fflush(stdout); }
    }
    batcher_free(&bt);
    batch_free(&x);
    return 1;
}

/* ---- Phase 2: fine-tuning encoder + head on the first n_use labelled items --------- */
static int finetune(lm_encoder *e, const text_set *d, int n_use, int B, int steps, int ctx) {
    lm_train_opts o = lm_train_defaults();
    lm_rng noise = lm_rng_seed(3);
    batcher bt;
    batch x;
    int step, i;
    double avg = 0;
    if (!batch_init(&x, B, ctx)) return 0;
    if (!batcher_init(&bt, d, n_use, B, 2)) { batch_free(&x); return 0; }
    o.lr = 1e-3f; o.min_lr = 5e-5f; o.warmup = steps / 20; o.steps = steps; o.wd = 0.1f;
    lm_params_reset_optimizer(&e->params);   /* a new phase, a new optimizer: forget
                                                pretraining's AdamW moments */
    for (step = 0; step < steps; step++) {
        float loss;
        batcher_next(&bt, x.idx);
        batch_fill(&x, d, PAD_ID);
        /* Input noise: 10% of the bytes become [MASK]. The model cannot lean on any one
           byte, so it learns the many clues of a language instead of memorising the
           training texts (dropout, applied to the input). Pretraining taught it [MASK]. */
        for (i = 0; i < B * x.T; i++)
            if (x.tokens[i] != PAD_ID && lm_rng_uniform(&noise) < 0.1f) x.tokens[i] = MASK_ID;
        loss = lm_encoder_cls_train_step(e, &o, x.tokens, x.lens, x.labels, B, x.T, step);
        if (loss != loss) { batcher_free(&bt); batch_free(&x); return say("%s", lm_error()); }
        avg = step ? 0.98 * avg + 0.02 * loss : loss;
        if (step % 500 == 0 || step == steps - 1) { printf("  step %5d  loss %.3f\n", step, avg); fflush(stdout); }
    }
    batcher_free(&bt);
    batch_free(&x);
    return 1;
}

/* ---- Phase 3: predict each test item: the class of highest probability ------------- */
static int predict(lm_encoder *e, const text_set *d, int n_class, int ctx, int *pred) {
    float *probs = (float *)malloc(sizeof(float) * B_EVAL * n_class);
    batch x;
    int i, b, k;
    if (!probs || !batch_init(&x, B_EVAL, ctx)) { free(probs); return say("out of memory"); }
    for (i = 0; i < d->n; i += B_EVAL) {
        x.B = d->n - i < B_EVAL ? d->n - i : B_EVAL;
        for (b = 0; b < x.B; b++) x.idx[b] = i + b;
        batch_fill(&x, d, PAD_ID);
        if (lm_encoder_predict(e, x.tokens, x.lens, x.B, x.T, probs) != LM_OK) {
            free(probs); batch_free(&x);
            return say("%s", lm_error());
        }
        for (b = 0; b < x.B; b++) {
            int best = 0;
            for (k = 1; k < n_class; k++) if (probs[b * n_class + k] > probs[b * n_class + best]) best = k;
            pred[i + b] = best;
        }
    }
    free(probs);
    batch_free(&x);
    return 1;
}

int main(int argc, char **argv) {
    static label_set classes;
    double precision[MAX_LABELS], recall[MAX_LABELS], f1[MAX_LABELS];
    long support[MAX_LABELS], *confusion, most = 0, lost = 0;
    int i, n_use, n_class, ok, ctx, cut, *truth, *pred;
    lesson_args a;
    text_set train, test, pre;
    lm_encoder_config cfg;
    lm_encoder *e;
    lm_metrics mt;
    plan_t p;

    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    memset(&pre, 0, sizeof pre);
    if (!lesson_parse(argc, argv, &a)) return 2;
    if (!text_load(a.train, &classes, 1, &train) || !text_load(a.test, &classes, 0, &test))
        return 1;
    n_class = classes.n;
    if (n_class < 2) { say("need at least two labels"); return 1; }
    n_use = (int)(a.labels * train.n + 0.5);
    if (n_use < 1) n_use = 1;
    printf("%s: %d texts in %d classes, the first %d labelled; %s: %d texts\n",
           a.train, train.n, n_class, n_use, a.test, test.n);

    /* What to pretrain on: the unlabeled texts, if any, and every training text. */
    if (a.pretrain) {
        if (a.unlabeled && !text_load(a.unlabeled, NULL, 0, &pre)) return 1;
        if (!text_append(&pre, &train)) return 1;
    }

    /* The context: the longest text the model trains on, in whole words of 8 bytes, at
       most MAX_CTX; then cut every text to it and say what that cost. */
    ctx = a.ctx;
    if (!ctx) {
        int longest = text_longest(a.pretrain ? &pre : &train);
        ctx = longest > MAX_CTX ? MAX_CTX : (longest + 7) / 8 * 8;
    }
    cut = text_cut(&train, ctx, &lost);
    printf("context %d bytes%s: %d of %d training texts cut (%ld bytes)",
           ctx, a.ctx ? " (--ctx)" : "", cut, train.n, lost);
    lost = 0;
    cut = text_cut(&test, ctx, &lost);
    printf(", %d of %d test texts (%ld bytes)", cut, test.n, lost);
    if (a.pretrain) {
        lost = 0;
        cut = text_cut(&pre, ctx, &lost);
        printf(", %d of %d pretraining texts (%ld bytes)", cut, pre.n, lost);
    }
    printf("\n");

    p = plan(pre.n, (long)pre.used, n_use, ctx);

    /* The model: n_layer blocks, n_embd wide, 4 heads; n_class outputs. Dropout 0.1
       (BERT's rate) in every training step: each step zeroes a random tenth of the
       embeddings and of each block's outputs, so no single unit can carry a memorised
       word. Prediction uses the whole network. */
    lm_set_threads(a.threads);
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layer = p.n_layer; cfg.n_head = 4; cfg.n_embd = p.n_embd; cfg.n_ctx = ctx;
    cfg.vocab = 258; cfg.mask_id = MASK_ID; cfg.pad_id = PAD_ID; cfg.n_class = n_class;
    cfg.dropout = 0.1f;
    if (!(e = lm_encoder_new(&cfg, 1234))) { say("%s", lm_error()); return 1; }
    printf("model: %d layers, %d wide, %zu parameters\n", p.n_layer, p.n_embd, e->params.total);

    if (a.pretrain) {
        time_t t0 = time(NULL);
        printf("pretraining: masked-LM on %d texts (%s%s%d unlabeled + %d training texts, "
               "labels unused; %.1f MB), %d steps of %d texts = %.1f epochs\n",
               pre.n, a.unlabeled ? a.unlabeled : "", a.unlabeled ? ": " : "", pre.n - train.n, train.n,
               pre.used / 1e6, p.pre_steps, p.b_pre, (double)p.pre_steps * p.b_pre / pre.n);
        if (!pretrain(e, &pre, p.b_pre, p.pre_steps, ctx)) return 1;
        printf("pretrained in %.0f s\n", difftime(time(NULL), t0));
        text_free(&pre);
    }
    printf("fine-tuning: %d labelled texts, %d steps of %d = %.1f epochs\n",
           n_use, p.ft_steps, p.b_ft, (double)p.ft_steps * p.b_ft / n_use);
    if (!finetune(e, &train, n_use, p.b_ft, p.ft_steps, ctx)) return 1;

    /* Evaluate on the held-out file: the confusion matrix counts (true, predicted), and
       the metrics come from it. */
    truth = (int *)malloc((size_t)test.n * sizeof(int));
    pred = (int *)malloc((size_t)test.n * sizeof(int));
    confusion = (long *)malloc((size_t)n_class * n_class * sizeof(long));
    if (!truth || !pred || !confusion) { say("out of memory"); return 1; }
    for (i = 0; i < test.n; i++) truth[i] = test.it[i].label;
    if (!predict(e, &test, n_class, ctx, pred)) return 1;
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
