/* check_model.c - on the host: is a model.h from tools/lm2c exactly the checkpoint it was
   made from, and does lm_gpt_from_memory make the same model of it as lm_gpt_load does?

       cc -std=c99 -O2 -I. -IBUILD examples/cortex_m/check_model.c -o check_model -lm -lpthread
       ./check_model MODEL.safetensors       (BUILD holds model.h, written from it by lm2c)

   Compared bit for bit: the shape; every tensor's name, shape and values (a Q8_0 one's
   scales and values); the whole image against lm_gpt_image of the checkpoint; the logits
   of lm_gpt_step_token over a whole context; and the tokens of a greedy lm_gpt_generate
   long enough to make the window slide. Both models run the same code in the same build,
   so any difference is a bug in lm2c or in lm_gpt_from_memory, never rounding. A model.h
   that lm2c quantized itself (--quantize) is compared with the checkpoint quantized the
   same way (lm_gpt_quantize).
   Exit status 0 when all match, 1 otherwise (each mismatch is named on stderr). */
#define LM_IMPLEMENTATION
#include "lm.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char mem[LM_GPT_MEMORY_BYTES(MODEL_N_LAYER, MODEL_N_HEAD, MODEL_N_EMBD,
                                             MODEL_N_CTX, MODEL_VOCAB)];

int main(int argc, char **argv) {
    static float la[MODEL_VOCAB], lb[MODEL_VOCAB];
    static int ta[2 * MODEL_N_CTX], tb[2 * MODEL_N_CTX];
    static const char text[] = "static int lm__check(const lm_gpt *m) { return m->cfg.n_ctx; }";
    const lm_gpt_config *c = &model_config;
    int k, d, i, bad = 0, prompt[4];
    size_t floats = 0, image;
    unsigned char *img;
    lm_sampler sa, sb;
    lm_gpt *ref, *m;

    if (argc != 2) { fprintf(stderr, "usage: check_model MODEL.safetensors\n"); return 2; }
    ref = lm_gpt_load(argv[1], c->n_head);
    if (!ref) { fprintf(stderr, "check_model: %s\n", lm_error()); return 1; }
    if (ref->cfg.quant == LM_QUANT_NONE && c->quant != LM_QUANT_NONE) {   /* lm2c --quantize */
        lm_gpt *q = lm_gpt_quantize(ref, c->quant);
        if (!q) { fprintf(stderr, "check_model: %s\n", lm_error()); return 1; }
        lm_gpt_free(ref);
        ref = q;
    }
    if (ref->cfg.n_layer != c->n_layer || ref->cfg.n_head != c->n_head || ref->cfg.n_embd != c->n_embd ||
        ref->cfg.n_ctx != c->n_ctx || ref->cfg.vocab != c->vocab || ref->cfg.quant != c->quant) {
        fprintf(stderr, "check_model: model.h has another shape than %s\n", argv[1]);
        return 1;
    }
    m = lm_gpt_from_memory(c, model_weights, mem, sizeof mem);
    if (!m) { fprintf(stderr, "check_model: %s\n", lm_error()); return 1; }

    /* the tensors: same names, shapes and bits, in the same order */
    if (m->params.n != ref->params.n) { fprintf(stderr, "check_model: tensor count differs\n"); return 1; }
    for (k = 0; k < ref->params.n; k++) {
        const lm_tensor *a = &ref->params.t[k], *b = &m->params.t[k];
        int same = strcmp(ref->params.names[k], m->params.names[k]) == 0 && a->ndim == b->ndim &&
                   a->size == b->size;
        for (d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
        if (same && !a->q8 != !b->q8) same = 0;
        if (same && a->q8)
            same = a->q8->out == b->q8->out && a->q8->in == b->q8->in &&
                   !memcmp(a->q8->d, b->q8->d, LM_Q8_SCALES(a->q8->out, a->q8->in) * sizeof(uint16_t)) &&
                   !memcmp(a->q8->q, b->q8->q, LM_Q8_VALUES(a->q8->out, a->q8->in));
        else if (same) same = memcmp(a->data, b->data, (size_t)a->size * sizeof(float)) == 0;
        if (!same) { fprintf(stderr, "check_model: tensor %d (%s) differs\n", k, ref->params.names[k]); bad++; }
        floats += (size_t)a->size;
    }
    image = lm_gpt_image(ref, NULL, 0);
    img = (unsigned char *)malloc(image);
    if (!img || lm_gpt_image(ref, img, image) != (size_t)MODEL_IMAGE_BYTES ||
        memcmp(img, model_weights, image)) {
        fprintf(stderr, "check_model: model.h is not the image lm_gpt_image makes of the checkpoint\n");
        bad++;
    }
    free(img);

    /* one token at a time over a whole context: the logits, bit for bit */
    lm_gpt_reset_cache(ref);
    lm_gpt_reset_cache(m);
    for (i = 0; i < c->n_ctx; i++) {
        int tok = (unsigned char)text[i % (int)(sizeof text - 1)] % c->vocab;
        if (lm_gpt_step_token(ref, tok, la) != LM_OK || lm_gpt_step_token(m, tok, lb) != LM_OK) {
            fprintf(stderr, "check_model: step_token: %s\n", lm_error());
            return 1;
        }
        if (memcmp(la, lb, sizeof la) != 0) { fprintf(stderr, "check_model: logits differ at position %d\n", i); bad++; break; }
    }

    /* greedy generation past the context, so the window slides: the same tokens */
    for (i = 0; i < 4; i++) prompt[i] = (unsigned char)text[i] % c->vocab;
    sa = lm_sampler_defaults(0); sa.temperature = 0;
    sb = sa;
    if (lm_gpt_generate(ref, prompt, 4, 2 * c->n_ctx, &sa, NULL, NULL, ta) != LM_OK ||
        lm_gpt_generate(m, prompt, 4, 2 * c->n_ctx, &sb, NULL, NULL, tb) != LM_OK) {
        fprintf(stderr, "check_model: generate: %s\n", lm_error());
        return 1;
    }
    if (memcmp(ta, tb, sizeof ta) != 0) { fprintf(stderr, "check_model: generated tokens differ\n"); bad++; }

    if (bad) { fprintf(stderr, "check_model: %d mismatches\n", bad); return 1; }
    printf("check_model: %d tensors, %lu parameters (%s) in %lu bytes bit-identical to %s; logits "
           "identical over %d positions; %d generated tokens identical\n", ref->params.n,
           (unsigned long)floats, c->quant == LM_QUANT_NONE ? "float32" : c->quant == LM_QUANT_Q8_0 ?
           "Q8_0 block matrices" : "Q8_0 block matrices and wte", (unsigned long)MODEL_IMAGE_BYTES,
           argv[1], c->n_ctx, 2 * c->n_ctx);
    lm_gpt_free(ref);
    return 0;
}
