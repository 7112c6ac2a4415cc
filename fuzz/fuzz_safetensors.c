/* fuzz_safetensors.c - libFuzzer target for the safetensors reader and the model loaders.

   Build (make fuzz does this):
       clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_safetensors.c \
             -o fuzz/safetensors-fuzz -lm -lpthread
   Run:  fuzz/safetensors-fuzz -max_total_time=60 fuzz/corpus/safetensors \
             fuzz/seeds/safetensors

   The input is a whole file image. The sanitizers catch memory errors; on top of that the
   target checks what the API promises, so a wrong answer is caught as well as a crash:
     - lm_st_parse either fails with a message and a zeroed file, or gives entries whose
       byte ranges lie inside the data and match shape x dtype size; every name is found
       again by lm_st_find, and every readable tensor reads (F32 bytes come back exactly);
     - lm_gpt_load_mem either fails with a message, or gives a model whose image
       (lm_gpt_save_mem) loads back to bit-identical weights (Q8_0 values and scales
       included), and which can take one generation step;
     - lm_seq2seq_load_mem likewise (the encoder-decoder's layout), and the model it gives
       decodes a one-token source.
   It also builds with a plain compiler and fuzz/replay.c into a program that runs given
   files once each (the regression inputs under fuzz/regressions/safetensors). */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken promise: say which, then abort so libFuzzer keeps the input as a crash. */
#define FUZZ_ASSERT(cond, what) do { if (!(cond)) { \
    fprintf(stderr, "fuzz_safetensors: %s [%s] (lm_error: %s)\n", what, #cond, lm_error()); \
    abort(); } } while (0)

/* Tensors larger than this are not read (the data is in the input anyway; the cap only
   keeps one execution fast). */
#define FUZZ_MAX_READ (1u << 22)

/* Every entry of a parsed file: checked, found by name, read. */
static void fuzz_entries(const lm_st_file *f, size_t len) {
    int i, k;
    FUZZ_ASSERT(f->n >= 0 && f->nmeta >= 0, "negative counts");
    FUZZ_ASSERT(f->data_len <= len && (f->n == 0 || f->entries), "data section or entries");
    for (i = 0; i < f->nmeta; i++) {
        const char *v = lm_st_meta(f, f->meta[2 * i]);
        FUZZ_ASSERT(v == f->meta[2 * i + 1], "lm_st_meta finds each key's own value");
    }
    for (i = 0; i < f->n; i++) {
        const lm_st_entry *e = &f->entries[i];
        uint64_t numel = 1;
        size_t nlen = strlen(e->name);
        FUZZ_ASSERT(nlen > 0 && nlen < LM_ST_NAME_MAX, "name length");
        FUZZ_ASSERT(e->dtype >= 0 && e->dtype < LM_DT_COUNT, "dtype in range");
        FUZZ_ASSERT(e->ndim >= 0 && e->ndim <= LM_MAX_DIMS, "ndim in range");
        for (k = 0; k < e->ndim; k++) {
            FUZZ_ASSERT(e->shape[k] >= 0, "non-negative dims");
            numel *= (uint64_t)e->shape[k];      /* no overflow: parse checked the product */
        }
        FUZZ_ASSERT(numel == e->numel, "numel is the product of the shape");
        FUZZ_ASSERT(e->begin <= e->end && e->end <= f->data_len, "byte range inside the data");
        FUZZ_ASSERT(e->end - e->begin == e->numel * (uint64_t)lm_st_dtype_size(e->dtype),
                    "byte range matches shape x dtype size");
        FUZZ_ASSERT(lm_st_find(f, e->name) == e, "lm_st_find finds each name's own entry");
        if (e->dtype <= LM_DT_BF16 && e->numel <= FUZZ_MAX_READ) {
            /* exact-size buffer, so a write past numel floats is an ASan error */
            float *out = (float *)malloc(e->numel ? (size_t)e->numel * sizeof(float) : 1);
            FUZZ_ASSERT(out != NULL, "malloc");
            FUZZ_ASSERT(lm_st_read_f32(f, e, out) == LM_OK, "a readable tensor reads");
            if (e->dtype == LM_DT_F32 && e->numel)
                FUZZ_ASSERT(!memcmp(out, f->data + e->begin, (size_t)e->numel * 4) ||
                            !lm__st_host_le(), "F32 values come back bit for bit");
            free(out);
        } else if (e->dtype > LM_DT_BF16) {
            float one;
            FUZZ_ASSERT(lm_st_read_f32(f, e, &one) == LM_ERR_FORMAT, "other dtypes are refused");
        }
    }
}

/* Two models' parameters, bit for bit. */
static void fuzz_same_weights(const lm_params *a, const lm_params *b) {
    size_t i;
    FUZZ_ASSERT(a->total == b->total, "the parameter count survives a round trip");
    for (i = 0; i < a->total; i++) {
        uint32_t x, y;
        memcpy(&x, &a->data[i], 4);
        memcpy(&y, &b->data[i], 4);
        FUZZ_ASSERT(x == y, "weights survive a round trip bit for bit");
    }
    FUZZ_ASSERT(a->n == b->n, "the tensor count survives a round trip");
    for (i = 0; i < (size_t)a->n; i++) {        /* Q8_0 tensors: their values and scales */
        const lm_q8 *p = a->t[i].q8, *q = b->t[i].q8;
        int row, k;
        FUZZ_ASSERT(!p == !q, "the same tensors are Q8_0");
        for (row = 0; p && row < p->out; row++)
            for (k = 0; k < p->in; k++) {
                float x = lm_q8_get(p, row, k), y = lm_q8_get(q, row, k);
                FUZZ_ASSERT(!memcmp(&x, &y, 4), "Q8_0 weights survive a round trip bit for bit");
            }
    }
}

/* A model that loaded: save it, load the image again, compare; then one generation step. */
static void fuzz_model(lm_gpt *m) {
    size_t need = 0;
    unsigned char *img;
    lm_gpt *r;
    FUZZ_ASSERT(m->cfg.n_layer >= 1 && m->cfg.n_head >= 1 && m->cfg.n_embd % m->cfg.n_head == 0,
                "a loaded config is valid");
    FUZZ_ASSERT(lm_gpt_save_mem(m, NULL, 0, &need) == LM_OK && need > 8, "size of the image");
    img = (unsigned char *)malloc(need);
    FUZZ_ASSERT(img != NULL, "malloc");
    FUZZ_ASSERT(lm_gpt_save_mem(m, img, need, &need) == LM_OK, "save_mem");
    r = lm_gpt_load_mem(img, need, 0);
    FUZZ_ASSERT(r != NULL, "what we save we can load");
    FUZZ_ASSERT(r->cfg.n_layer == m->cfg.n_layer && r->cfg.n_head == m->cfg.n_head &&
                r->cfg.n_embd == m->cfg.n_embd && r->cfg.n_ctx == m->cfg.n_ctx &&
                r->cfg.vocab == m->cfg.vocab && r->params.total == m->params.total,
                "the config survives a round trip");
    fuzz_same_weights(&m->params, &r->params);
    FUZZ_ASSERT(r->cfg.quant == m->cfg.quant, "the quantization survives a round trip");
    lm_gpt_free(r);
    free(img);
    /* one step of generation on whatever numbers the file held (NaN included): it must
       not crash; the logits may be anything */
    if (lm_gpt_num_params(m) <= 200000) {
        float *logits = (float *)malloc((size_t)m->cfg.vocab * sizeof(float));
        FUZZ_ASSERT(logits != NULL, "malloc");
        lm_gpt_reset_cache(m);
        FUZZ_ASSERT(lm_gpt_step_token(m, m->cfg.vocab - 1, logits) == LM_OK, "a generation step");
        free(logits);
    }
}

/* An encoder-decoder that loaded: its image loads back to the same config and weights;
   then a short decoding on whatever numbers it holds (it must not crash). */
static void fuzz_s2s(lm_seq2seq *m) {
    size_t need = 0;
    unsigned char *img;
    lm_seq2seq *r;
    FUZZ_ASSERT(m->cfg.nhead >= 1 && m->cfg.d_model % m->cfg.nhead == 0 &&
                m->cfg.num_encoder_layers >= 1 && m->cfg.num_decoder_layers >= 1,
                "a loaded encoder-decoder's config is valid");
    FUZZ_ASSERT(lm_seq2seq_save_mem(m, NULL, 0, &need) == LM_OK && need > 8, "size of the image");
    img = (unsigned char *)malloc(need);
    FUZZ_ASSERT(img != NULL, "malloc");
    FUZZ_ASSERT(lm_seq2seq_save_mem(m, img, need, &need) == LM_OK, "save_mem");
    r = lm_seq2seq_load_mem(img, need);
    FUZZ_ASSERT(r != NULL, "what we save we can load");
    FUZZ_ASSERT(!memcmp(&r->cfg, &m->cfg, sizeof m->cfg), "the config survives a round trip");
    fuzz_same_weights(&m->params, &r->params);
    lm_seq2seq_free(r);
    free(img);
    if (lm_seq2seq_num_params(m) <= 200000 && m->cfg.n_ctx <= 4096) {
        int src = 0, out[3];
        FUZZ_ASSERT(lm_seq2seq_translate(m, &src, 1, 2, out, 3) >= 0, "a short decoding");
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    lm_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_st_file f;
    lm_gpt *m;
    int rc;
    lm_clear_error();
    rc = lm_st_parse(&f, data, size);
    if (rc == LM_OK) {
        fuzz_entries(&f, size);
        lm_st_close(&f);
    } else {
        FUZZ_ASSERT(rc < 0 && strcmp(lm_error(), "no error"), "a failure has a message");
        FUZZ_ASSERT(f.entries == NULL && f.n == 0 && f.strings == NULL, "a failed parse is zeroed");
    }

    /* the GPT loader, with n_head from the file (0) and forced to 1 */
    lm_clear_error();
    m = lm_gpt_load_mem(data, size, 0);
    if (m) {
        FUZZ_ASSERT(rc == LM_OK, "a model loads only from a file that parses");
        fuzz_model(m);
        lm_gpt_free(m);
    } else {
        FUZZ_ASSERT(strcmp(lm_error(), "no error"), "a failed load has a message");
    }
    if (rc == LM_OK && size > 0 && (data[size - 1] & 1)) {
        m = lm_gpt_load_mem(data, size, 1);
        if (m) {
            FUZZ_ASSERT(m->cfg.n_head == 1, "n_head 1 as asked");
            lm_gpt_free(m);
        }
    }

    /* the encoder-decoder's loader */
    {
        lm_seq2seq *s;
        lm_clear_error();
        s = lm_seq2seq_load_mem(data, size);
        if (s) {
            FUZZ_ASSERT(rc == LM_OK, "an encoder-decoder loads only from a file that parses");
            fuzz_s2s(s);
            lm_seq2seq_free(s);
        } else {
            FUZZ_ASSERT(strcmp(lm_error(), "no error"), "a failed load has a message");
        }
    }
    return 0;
}
