/* cc -O2 -march=native -I.. 3_gpt.c -o 3_gpt -lm -lpthread

   Lesson 3: a language model, start to finish.

   A GPT reads a window of text and, at every position, predicts the next byte. Training
   shows it windows cut at random from a text file and nudges its weights to make the byte
   that really came next more likely; the loss is the mean of -log p(next byte). A model
   that knows nothing gives every one of the 256 bytes p = 1/256: loss ln 256 = 5.55.
   As it learns spelling, words and syntax, the loss falls.

   We hold out the last tenth of the file and never train on it: the validation loss on
   that part says whether the model learned the language of the file or just memorised
   the training part. Then we let the model write: feed it a prompt, draw the next byte
   from its predicted distribution, append it, repeat.

   usage: 3_gpt [FILE]    (default ../lm.h, which every checkout has)
   About a minute on 2 cores. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>

#define B 16                /* windows per step                                          */
#define T 64                /* bytes per window: the model's context                     */
#define STEPS 500

static void put_byte(void *user, int token) { (void)user; putchar(token); fflush(stdout); }

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../lm.h";
    static int inputs[B * T], targets[B * T];
    const char *prompt = "/* ";
    int prompt_ids[8], n_prompt = 0, step, ok;
    int *tokens;
    size_t n = 0, n_train, cap = 1 << 20;
    float loss = 0, first_loss = 0, val0, val;
    /* layers, heads, width, context, vocabulary, and the weights in float32 */
    lm_gpt_config cfg = { 4, 4, 128, T, 256, LM_QUANT_NONE };
    lm_train_opts opt = lm_train_defaults();
    lm_gpt *m;
    lm_data data;
    lm_sampler sampler;
    FILE *f;
    int c;

    /* 1. Tokens. Byte-level: every byte of the file is one token, 0..255. */
    if (!(f = fopen(path, "rb"))) { fprintf(stderr, "gpt: cannot open %s\n", path); return 1; }
    tokens = (int *)malloc(cap * sizeof(int));
    while (tokens && (c = fgetc(f)) != EOF) {
        if (n == cap) tokens = (int *)realloc(tokens, (cap *= 2) * sizeof(int));
        if (tokens) tokens[n++] = c;
    }
    fclose(f);
    n_train = n - n / 10;                    /* the last 10% is for validation only       */
    if (!tokens || n / 10 < T + 1) { fprintf(stderr, "gpt: %s is too short\n", path); return 1; }
    printf("%s: %zu bytes, %zu to train on, %zu held out\n", path, n, n_train, n - n_train);

    /* 2. The model: 4 blocks of attention + MLP, 128 wide, seeing 64 bytes at a time. */
    lm_set_threads(0);                       /* use every core                            */
    if (!(m = lm_gpt_new(&cfg, 1337))) { fprintf(stderr, "gpt: %s\n", lm_error()); return 1; }
    printf("model: %zu parameters, %s kernels, %d threads\n", lm_gpt_num_params(m), lm_simd_name(), lm_get_threads());
    val0 = lm_gpt_eval(m, tokens + n_train, n - n_train, T);
    printf("validation loss before training %.3f (ln 256 = 5.545)\n", val0);

    /* 3. Training. AdamW with a short warmup, then a cosine decay of the learning rate. */
    opt.lr = 2e-3f;
    opt.min_lr = 2e-4f;
    opt.warmup = 30;
    opt.steps = STEPS;
    data = lm_data_init(tokens, n_train, LM_ORDER_RANDOM, 42);
    for (step = 0; step < STEPS; step++) {
        if (lm_data_next(&data, B, T, inputs, targets) != LM_OK) break;
        loss = lm_gpt_train_step(m, &opt, inputs, targets, B, T, step);
        if (loss != loss) { fprintf(stderr, "gpt: %s\n", lm_error()); return 1; }
        if (step == 0) first_loss = loss;
        if (step % 50 == 0 || step == STEPS - 1)
            printf("step %4d  loss %.3f  lr %.2e\n", step, loss, lm_lr_at(&opt, step));
    }

    /* 4. Validation: mean loss over the held-out text, and its perplexity (e^loss: the
       model is as unsure as if it were choosing among that many bytes uniformly). */
    val = lm_gpt_eval(m, tokens + n_train, n - n_train, T);
    printf("validation loss %.3f  perplexity %.2f\n", val, lm_perplexity(val));

    /* 5. Sampling: temperature 0.8 sharpens the distribution a little. */
    while (prompt[n_prompt]) { prompt_ids[n_prompt] = (unsigned char)prompt[n_prompt]; n_prompt++; }
    sampler = lm_sampler_defaults(7);
    printf("--- sample ---\n%s", prompt);
    if (lm_gpt_generate(m, prompt_ids, n_prompt, 300, &sampler, put_byte, NULL, NULL) != LM_OK) {
        fprintf(stderr, "gpt: %s\n", lm_error());
        return 1;
    }
    printf("\n--------------\n");

    /* The lesson worked if training loss fell well below where it started and the model
       does much better than chance on text it never saw. */
    ok = loss < first_loss - 2.0f && val < 3.0f;
    printf("%s: training loss %.3f -> %.3f, validation %.3f -> %.3f\n", ok ? "OK" : "FAILED",
           first_loss, loss, val0, val);
    lm_gpt_free(m);
    free(tokens);
    return ok ? 0 : 1;
}
