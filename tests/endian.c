/* tests/endian.c - checkpoints, resume state and tokenizer files across byte orders
   (make test-be). The files are little-endian by contract, whatever the host. This program
   is built twice, for the host and for a big-endian target (s390x, run under qemu-s390x):

     endian write DIR        writes, from fixed seeds and a fixed text:
                               fresh.safetensors  a new GPT (lm_gpt_new), saved as it is
                               fresh.bpe          a BPE tokenizer trained on the text
                               run.safetensors    that GPT after 3 training steps, with
                               run.safetensors.state  its resume state (AdamW moments, ...)
                               run.logits         its logits for a fixed input ("%a" lines)
                               s2s*.safetensors, s2s_run.safetensors.state, s2s_run.logits
                                                  the same for an encoder-decoder
                               q8.safetensors     that GPT in Q8_0 (with wte)
     endian check FROM OUT   run on the other machine: loads FROM's run checkpoint, its state
                             and FROM's tokenizer; the logits must match FROM's to 1e-5 of
                             their scale (it prints the largest difference); saves all three
                             again into OUT as resaved.*, which must be byte for byte FROM's
                             files; and OUT's own fresh.* (from `write OUT`) must be byte for
                             byte FROM's fresh.*; FROM's run checkpoint quantized here and
                             FROM's q8 checkpoint loaded and saved again must both be byte
                             for byte FROM's q8.safetensors.
   Exit status 0 when every check holds. */
#define _POSIX_C_SOURCE 200809L
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static const lm_gpt_config e_cfg = {2, 2, 16, 8, 256, LM_QUANT_NONE};   /* layers, heads, embd, ctx, vocab */
enum { E_B = 2, E_T = 8 };
static int e_fail;

static void e_check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) e_fail = 1;
}
static const char *e_path(const char *dir, const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}
/* The fixed text: a few sentences repeated with a counter, so the BPE has pairs to merge. */
static size_t e_text(char *out, size_t cap) {
    size_t n = 0;
    int i;
    for (i = 0; i < 60 && n + 80 < cap; i++)
        n += (size_t)sprintf(out + n, "the cat %d sat on the mat; the dog's bone is %d. ", i % 7, i * 13);
    return n;
}
static unsigned char *e_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long len;
    *n = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = (unsigned char *)malloc((size_t)len + 1)) != NULL) {
        *n = fread(p, 1, (size_t)len, f);
        if (*n != (size_t)len) { free(p); p = NULL; }
    }
    fclose(f);
    return p;
}
static int e_same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *pa = e_read(a, &na), *pb = e_read(b, &nb);
    int same = pa && pb && na == nb && !memcmp(pa, pb, na);
    free(pa);
    free(pb);
    return same;
}
/* Logits (1, T, V) of the fixed input through the graph. */
static float *e_logits(lm_gpt *m) {
    lm_arena a;
    lm_graph g;
    lm_tensor *y;
    float *out = NULL;
    int in[E_T], t;
    for (t = 0; t < E_T; t++) in[t] = (t * 37 + 11) % 256;
    if (lm_arena_init(&a, (size_t)16 << 20) != LM_OK) return NULL;
    lm_graph_init(&g, &a);
    g.no_grad = 1;
    y = lm_gpt_forward(m, &g, in, 1, E_T);
    if (y && (out = (float *)malloc((size_t)y->size * sizeof(float))) != NULL)
        memcpy(out, y->data, (size_t)y->size * sizeof(float));
    lm_arena_free(&a);
    return out;
}

/* The encoder-decoder: a fixed batch of two pairs, its logits (1, T + 1, V) for pair 0. */
static const lm_seq2seq_config e_scfg = {16, 2, 1, 2, 24, 1, 1, 10, 259, 259, 0, 0, 0, 0};
static const int e_ssrc[2 * 5] = {104, 101, 108, 108, 111, 97, 98, 0, 0, 0};
static const int e_ssl[2] = {5, 2}, e_stl[2] = {3, 1};
static const int e_stgt[2 * 3] = {111, 108, 108, 98, 0, 0};
static lm_seq2seq_batch e_sbatch(int B) {
    lm_seq2seq_batch b;
    b.B = B; b.S = 5; b.T = 3; b.src = e_ssrc; b.src_len = e_ssl; b.tgt = e_stgt; b.tgt_len = e_stl;
    return b;
}
static float *e_s2s_logits(lm_seq2seq *m, int *size) {
    lm_arena a;
    lm_graph g;
    lm_seq2seq_batch b = e_sbatch(1);
    lm_tensor *y;
    float *out = NULL;
    if (lm_arena_init(&a, (size_t)16 << 20) != LM_OK) return NULL;
    lm_graph_init(&g, &a);
    g.no_grad = 1;
    y = lm_seq2seq_forward(m, &g, &b);
    if (y && (out = (float *)malloc((size_t)y->size * sizeof(float))) != NULL) {
        memcpy(out, y->data, (size_t)y->size * sizeof(float));
        *size = y->size;
    }
    lm_arena_free(&a);
    return out;
}
static void e_s2s_write(const char *dir) {
    lm_seq2seq *m = lm_seq2seq_new(&e_scfg, 9);
    lm_seq2seq_batch b = e_sbatch(2);
    lm_train_opts o = lm_train_defaults();
    lm_train_state st;
    float *y;
    int n = 0, i, s;
    FILE *f;
    if (!m) { e_check(0, "a new encoder-decoder"); return; }
    e_check(lm_seq2seq_save(m, e_path(dir, "s2s_fresh.safetensors")) == LM_OK, "write s2s_fresh.safetensors");
    o.steps = 2;
    o.warmup = 1;
    for (s = 0; s < 2; s++) e_check(lm_seq2seq_train_step(m, &o, &b, s) > 0, "an encoder-decoder training step");
    memset(&st, 0, sizeof st);
    st.step = 2;
    st.rng = 77;
    e_check(lm_seq2seq_save_with_state(m, e_path(dir, "s2s_run.safetensors"), &st) == LM_OK,
            "write s2s_run.safetensors and its state");
    y = e_s2s_logits(m, &n);
    f = fopen(e_path(dir, "s2s_run.logits"), "w");
    if (y && f) for (i = 0; i < n; i++) fprintf(f, "%a\n", (double)y[i]);
    e_check(y && f && fclose(f) == 0, "write s2s_run.logits");
    free(y);
    lm_seq2seq_free(m);
}
static void e_s2s_check(const char *from, const char *out) {
    lm_seq2seq *m = lm_seq2seq_load(e_path(from, "s2s_run.safetensors"));
    lm_train_state st;
    int n = 0, i, got = 0;
    float *y = m ? e_s2s_logits(m, &n) : NULL;
    FILE *f = fopen(e_path(from, "s2s_run.logits"), "r");
    double worst = 0, scale = 0;
    char line[64];
    e_check(m && y && f, "load FROM's encoder-decoder");
    if (!m || !y || !f) { printf("     %s\n", lm_error()); if (f) fclose(f); free(y); lm_seq2seq_free(m); return; }
    for (i = 0; i < n && fgets(line, sizeof line, f); i++) {
        double want = strtod(line, NULL);
        if (fabs(want) > scale) scale = fabs(want);
        if (fabs(y[i] - want) > worst) worst = fabs(y[i] - want);
        got++;
    }
    fclose(f);
    printf("     encoder-decoder logits: largest difference %.3g, largest logit %.3g\n", worst, scale);
    e_check(got == n && worst <= 1e-5 * (scale > 1 ? scale : 1), "the encoder-decoder's logits are FROM's to 1e-5 of their scale");
    memset(&st, 0, sizeof st);
    e_check(lm_seq2seq_load_state(m, e_path(from, "s2s_run.safetensors"), &st) == LM_OK && st.step == 2 &&
            st.rng == 77, "load FROM's encoder-decoder resume state");
    e_check(lm_seq2seq_save_with_state(m, e_path(out, "s2s_resaved.safetensors"), &st) == LM_OK &&
            e_same_file(e_path(out, "s2s_resaved.safetensors"), e_path(from, "s2s_run.safetensors")) &&
            e_same_file(e_path(out, "s2s_resaved.safetensors.state"), e_path(from, "s2s_run.safetensors.state")),
            "encoder-decoder checkpoint and state saved again: byte for byte FROM's");
    e_check(e_same_file(e_path(out, "s2s_fresh.safetensors"), e_path(from, "s2s_fresh.safetensors")),
            "a new encoder-decoder of the same seed: byte for byte FROM's checkpoint");
    free(y);
    lm_seq2seq_free(m);
}

static int e_write(const char *dir) {
    static char text[8192];
    size_t n = e_text(text, sizeof text);
    lm_gpt *m = lm_gpt_new(&e_cfg, 7);
    lm_tokenizer *tok = lm_tok_train(text, n, 300);
    lm_train_opts o = lm_train_defaults();
    lm_train_state st;
    int in[E_B * E_T], tg[E_B * E_T], s, i;
    float *y;
    FILE *f;
    if (!m || !tok) { printf("FAIL write: %s\n", lm_error()); return 1; }
    e_check(lm_gpt_save(m, e_path(dir, "fresh.safetensors")) == LM_OK, "write fresh.safetensors");
    e_check(lm_tok_save(tok, e_path(dir, "fresh.bpe")) == LM_OK, "write fresh.bpe");
    o.steps = 3;
    o.warmup = 1;
    for (s = 0; s < 3; s++) {
        for (i = 0; i < E_B * E_T; i++) { in[i] = (unsigned char)text[i + s]; tg[i] = (unsigned char)text[i + s + 1]; }
        e_check(lm_gpt_train_step(m, &o, in, tg, E_B, E_T, s) > 0, "a training step");
    }
    memset(&st, 0, sizeof st);
    st.step = 3;
    st.data_pos = 12345;
    st.rng = 0x0123456789ABCDEFull;
    e_check(lm_gpt_save_state(m, e_path(dir, "run.safetensors"), &st) == LM_OK &&
            lm_gpt_save(m, e_path(dir, "run.safetensors")) == LM_OK, "write run.safetensors and its state");
    y = e_logits(m);
    f = fopen(e_path(dir, "run.logits"), "w");
    if (y && f) for (i = 0; i < E_T * e_cfg.vocab; i++) fprintf(f, "%a\n", (double)y[i]);
    e_check(y && f && fclose(f) == 0, "write run.logits");
    free(y);
    {
        lm_gpt *q = lm_gpt_quantize(m, LM_QUANT_Q8_0_EMB);
        e_check(q && lm_gpt_save(q, e_path(dir, "q8.safetensors")) == LM_OK, "write q8.safetensors");
        lm_gpt_free(q);
    }
    lm_tok_free(tok);
    lm_gpt_free(m);
    e_s2s_write(dir);
    return e_fail;
}

static int e_read_back(const char *from, const char *out) {
    static char text[8192];
    size_t n = e_text(text, sizeof text);
    lm_gpt *m = lm_gpt_load(e_path(from, "run.safetensors"), 0);
    lm_tokenizer *tok = lm_tok_load(e_path(from, "fresh.bpe"));
    lm_train_state st;
    float *y = m ? e_logits(m) : NULL;
    FILE *f = fopen(e_path(from, "run.logits"), "r");
    double worst = 0, scale = 0;
    int i, got = 0, *ids = (int *)malloc((n + 1) * sizeof(int));
    long k = tok && ids ? lm_tok_encode(tok, text, n, ids, n) : -1;
    char line[64];
    e_check(m && tok && y && f, "load FROM's checkpoint and tokenizer");
    if (!m || !tok || !y || !f) { printf("     %s\n", lm_error()); return 1; }
    for (i = 0; i < E_T * e_cfg.vocab && fgets(line, sizeof line, f); i++) {
        double want = strtod(line, NULL);
        if (fabs(want) > scale) scale = fabs(want);
        if (fabs(y[i] - want) > worst) worst = fabs(y[i] - want);
        got++;
    }
    fclose(f);
    printf("     logits: largest difference %.3g, largest logit %.3g\n", worst, scale);
    e_check(got == E_T * e_cfg.vocab && worst <= 1e-5 * (scale > 1 ? scale : 1),
            "the logits are FROM's to 1e-5 of their scale");
    memset(&st, 0, sizeof st);
    e_check(lm_gpt_load_state(m, e_path(from, "run.safetensors"), &st) == LM_OK &&
            st.step == 3 && st.data_pos == 12345 && st.rng == 0x0123456789ABCDEFull,
            "load FROM's resume state (the weights' fingerprint agrees)");
    e_check(k > 0 && k < (long)n, "the tokenizer encodes the text");
    e_check(lm_gpt_save_state(m, e_path(out, "resaved.safetensors"), &st) == LM_OK &&
            lm_gpt_save(m, e_path(out, "resaved.safetensors")) == LM_OK &&
            lm_tok_save(tok, e_path(out, "resaved.bpe")) == LM_OK, "save them again");
    e_check(e_same_file(e_path(out, "resaved.safetensors"), e_path(from, "run.safetensors")),
            "checkpoint saved again: byte for byte FROM's");
    e_check(e_same_file(e_path(out, "resaved.safetensors.state"), e_path(from, "run.safetensors.state")),
            "resume state saved again: byte for byte FROM's");
    e_check(e_same_file(e_path(out, "resaved.bpe"), e_path(from, "fresh.bpe")),
            "tokenizer saved again: byte for byte FROM's");
    e_check(e_same_file(e_path(out, "fresh.safetensors"), e_path(from, "fresh.safetensors")),
            "a new GPT of the same seed: byte for byte FROM's checkpoint");
    e_check(e_same_file(e_path(out, "fresh.bpe"), e_path(from, "fresh.bpe")),
            "a BPE trained on the same text: byte for byte FROM's file");
    {
        lm_gpt *q = lm_gpt_quantize(m, LM_QUANT_Q8_0_EMB), *r = lm_gpt_load(e_path(from, "q8.safetensors"), 0);
        e_check(q && r && lm_gpt_save(q, e_path(out, "requant.safetensors")) == LM_OK &&
                lm_gpt_save(r, e_path(out, "resaved_q8.safetensors")) == LM_OK &&
                e_same_file(e_path(out, "requant.safetensors"), e_path(from, "q8.safetensors")) &&
                e_same_file(e_path(out, "resaved_q8.safetensors"), e_path(from, "q8.safetensors")),
                "Q8_0: FROM's weights quantized here, and FROM's Q8_0 file saved again: byte for byte FROM's");
        lm_gpt_free(q);
        lm_gpt_free(r);
    }
    free(ids);
    free(y);
    lm_tok_free(tok);
    lm_gpt_free(m);
    e_s2s_check(from, out);
    return e_fail;
}

int main(int argc, char **argv) {
    const uint32_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    printf("endian: this host is %s-endian\n", c ? "little" : "big");
    if (argc == 3 && !strcmp(argv[1], "write")) return e_write(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "check")) return e_read_back(argv[2], argv[3]);
    fprintf(stderr, "usage: endian write DIR | endian check FROM OUT\n");
    return 2;
}
