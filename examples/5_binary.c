/* cc -O2 -march=native -I.. 5_binary.c -o 5_binary -lm -lpthread

   Lesson 5: a yes/no question, answered by a Transformer with a single output.

   The question: is this string a palindrome? ("abccba" yes, "abcbba" no.) The model is
   the bidirectional encoder of lesson 4 with n_class = 1: the head gives one number z, a
   logit, and p = sigmoid(z) is the model's belief that the answer is yes. Training
   minimises binary cross-entropy, -[y log p + (1 - y) log(1 - p)], computed from z
   directly ("with logits") so it stays exact when p is near 0 or 1.

   Why a Transformer can do this: the answer depends on comparing position i with
   position n-1-i, far apart in the string. Attention lets each position look at any
   other; with position embeddings the model learns to look at its mirror and check
   that the bytes agree.

   The data is made here, and made to be hard: half the strings are palindromes and the
   other half are palindromes with exactly one byte changed, so a model that only glances
   at the string cannot tell them apart; it has to check every pair. We train on fresh
   random strings each step and test on 2000 strings it has never seen, reporting
   accuracy, precision, recall and F1 of the "yes" class. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>

#define LEN 8               /* string length                                             */
#define ALPHA 4             /* letters a, b, c, d                                        */
#define B 64                /* strings per training step                                 */
#define STEPS 5000
#define N_TEST 2000

/* One example into tokens[LEN]: a palindrome if yes, else a palindrome with one byte
   replaced by a different letter (which always breaks the symmetry, since LEN is even). */
static void make_string(lm_rng *r, int yes, int *tokens) {
    int i;
    for (i = 0; i < LEN / 2; i++) {
        tokens[i] = 'a' + (int)lm_rng_below(r, ALPHA);
        tokens[LEN - 1 - i] = tokens[i];
    }
    if (!yes) {
        int k = (int)lm_rng_below(r, LEN);
        tokens[k] = 'a' + (tokens[k] - 'a' + 1 + (int)lm_rng_below(r, ALPHA - 1)) % ALPHA;
    }
}

int main(void) {
    static int tokens[N_TEST * LEN], lens[N_TEST], labels[N_TEST], pred[N_TEST];
    static float probs[N_TEST];
    lm_encoder_config cfg;
    lm_train_opts opt = lm_train_defaults();
    lm_rng train_rng = lm_rng_seed(1), test_rng = lm_rng_seed(999);
    lm_encoder *e;
    long confusion[4];
    double precision[2], recall[2], f1[2];
    long support[2];
    lm_metrics mt;
    int i, step, ok;
    double avg = 0;

    /* The model: 2 blocks, 64 wide, 4 heads, one output. Vocabulary: bytes + [MASK] +
       [PAD]; we use neither special token here, every string is exactly LEN long. */
    lm_set_threads(0);
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layer = 2; cfg.n_head = 4; cfg.n_embd = 64; cfg.n_ctx = LEN;
    cfg.vocab = 258; cfg.n_class = 1;
    if (!(e = lm_encoder_new(&cfg, 5))) { fprintf(stderr, "binary: %s\n", lm_error()); return 1; }

    /* Training: every step a fresh batch, half yes and half no, in random order. */
    opt.lr = 2e-3f; opt.min_lr = 1e-4f; opt.warmup = 50; opt.steps = STEPS; opt.wd = 0.01f;
    for (i = 0; i < B; i++) lens[i] = LEN;
    for (step = 0; step < STEPS; step++) {
        float loss;
        for (i = 0; i < B; i++) {
            labels[i] = (int)lm_rng_below(&train_rng, 2);
            make_string(&train_rng, labels[i], tokens + i * LEN);
        }
        loss = lm_encoder_cls_train_step(e, &opt, tokens, lens, labels, B, LEN, step);
        if (loss != loss) { fprintf(stderr, "binary: %s\n", lm_error()); return 1; }
        avg = step ? 0.95 * avg + 0.05 * loss : loss;
        if (step % 250 == 0 || step == STEPS - 1) printf("step %4d  BCE loss %.4f\n", step, avg);
    }

    /* Test: new strings from another seed. Answer yes when p = sigmoid(z) > 0.5. */
    for (i = 0; i < N_TEST; i++) {
        labels[i] = i % 2;
        make_string(&test_rng, labels[i], tokens + i * LEN);
        lens[i] = LEN;
    }
    if (lm_encoder_predict(e, tokens, lens, N_TEST, LEN, probs) != LM_OK) {
        fprintf(stderr, "binary: %s\n", lm_error());
        return 1;
    }
    for (i = 0; i < N_TEST; i++) pred[i] = probs[i] > 0.5f;
    for (i = 0; i < 4; i++) {                 /* a few examples with the model's belief */
        int t;
        printf("  ");
        for (t = 0; t < LEN; t++) putchar(tokens[i * LEN + t]);
        printf("  palindrome: %-3s  p(yes) = %.3f\n", labels[i] ? "yes" : "no", probs[i]);
    }

    /* Metrics of the "yes" class: precision = of the strings called palindromes, how many
       are; recall = of the palindromes, how many were found; F1 their harmonic mean. */
    memset(&mt, 0, sizeof mt);
    mt.precision = precision; mt.recall = recall; mt.f1 = f1; mt.support = support;
    lm_confusion(labels, pred, N_TEST, 2, confusion);
    lm_metrics_from_confusion(confusion, 2, &mt);
    printf("test on %d new strings: true yes %ld, false yes %ld, false no %ld, true no %ld\n",
           N_TEST, confusion[3], confusion[1], confusion[2], confusion[0]);
    printf("accuracy %.4f  precision %.4f  recall %.4f  f1 %.4f\n", mt.accuracy, precision[1], recall[1], f1[1]);
    ok = mt.accuracy >= 0.95;
    printf("%s\n", ok ? "OK: the model checks every mirrored pair" : "FAILED: accuracy below 0.95");
    lm_encoder_free(e);
    return ok ? 0 : 1;
}
