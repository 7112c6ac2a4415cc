/* make_seeds.c - write the seed corpora of the fuzz targets.

   Run from the repository root (make fuzz does):
       cc -O1 -I. fuzz/make_seeds.c -o fuzz/make-seeds -lm -lpthread && fuzz/make-seeds fuzz/seeds
   It writes small, valid inputs made with the library itself, so the fuzzers start from
   files that reach deep into each parser instead of being refused at the first byte:
     DIR/safetensors/  checkpoints of tiny GPTs (F32, F16 and BF16, our names and Hugging
                       Face's with a "transformer." prefix, attention buffers and a tied
                       lm_head; Q8_0 with and without wte, with partial blocks) and a
                       hand-written file with every dtype, a scalar, an empty tensor and
                       escaped metadata;
     DIR/tokenizer/    (first byte 0) lm-bpe files trained on this repository's README and
                       the 0-merge byte tokenizer; (first byte 1) slices of
                       tests/gpt2/encoder.json and vocab.bpe that load on their own: the 256
                       byte tokens and the first K merges; (first byte 2) trainer texts;
     DIR/cli/          typical command lines of every subcommand (NUL-separated arguments,
                       then 0x01 and stdin), valid and invalid.
   Each seed is checked to do what it is meant to (a checkpoint loads, a tokenizer slice
   loads) before it is written; the program fails if one does not. */
#define _POSIX_C_SOURCE 200809L
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

static const char *g_dir;
static int g_count;

static void fail(const char *what) {
    fprintf(stderr, "make_seeds: %s (%s)\n", what, lm_error());
    exit(1);
}

/* DIR/sub/name <- bytes (with an optional first byte, the tokenizer target's mode). */
static void put(const char *sub, const char *name, int first, const void *data, size_t n) {
    char path[512];
    FILE *f;
    sprintf(path, "%s/%s", g_dir, sub);
    mkdir(path, 0777);
    sprintf(path, "%s/%s/%s", g_dir, sub, name);
    f = fopen(path, "wb");
    if (!f) fail(path);
    if (first >= 0) fputc(first, f);
    if (n && fwrite(data, 1, n, f) != n) fail(path);
    if (fclose(f) != 0) fail(path);
    g_count++;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long size;
    if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) fail(path);
    b = (unsigned char *)malloc((size_t)size + 1);
    if (!b || fread(b, 1, (size_t)size, f) != (size_t)size) fail(path);
    fclose(f);
    b[size] = 0;
    *n = (size_t)size;
    return b;
}

/* ---- safetensors -------------------------------------------------------------------- */
static lm_gpt *tiny(int L, int C, int H, int T, int V) {
    lm_gpt_config c;
    lm_gpt *m;
    memset(&c, 0, sizeof c);
    c.n_layer = L; c.n_embd = C; c.n_head = H; c.n_ctx = T; c.vocab = V;
    if (!(m = lm_gpt_new(&c, 7))) fail("lm_gpt_new");
    return m;
}

/* A model's tensors under names with a prefix, in dtype, plus extra entries. */
static void put_model(const char *name, const lm_gpt *m, int dtype, const char *prefix,
                      int hf_extras, int with_meta) {
    int n = m->params.n, i, k, nt = 0;
    lm_st_out *o = (lm_st_out *)malloc((size_t)(2 * n + 4) * sizeof *o);
    char (*names)[LM_NAME_MAX + 16] = (char (*)[LM_NAME_MAX + 16])malloc((size_t)(2 * n + 4) * sizeof *names);
    char num[5][24];
    const char *kv[12];
    static float mask[16] = {1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1};
    size_t size;
    unsigned char *img;
    lm_gpt *back;
    if (!o || !names) fail("malloc");
    for (i = 0; i < n; i++) {
        const lm_tensor *t = &m->params.t[i];
        memset(&o[nt], 0, sizeof o[nt]);
        sprintf(names[nt], "%s%s", prefix, m->params.names[i]);
        o[nt].name = names[nt];
        o[nt].ndim = t->ndim;
        for (k = 0; k < t->ndim; k++) o[nt].shape[k] = t->shape[k];
        o[nt].data = t->data;
        o[nt].dtype = dtype;
        nt++;
    }
    if (hf_extras) {
        /* a tied output head and the attention-mask buffers GPT-2 files carry */
        o[nt] = o[0];
        sprintf(names[nt], "lm_head.weight");
        o[nt].name = names[nt];
        nt++;
        for (i = 0; i < m->cfg.n_layer; i++) {
            memset(&o[nt], 0, sizeof o[nt]);
            sprintf(names[nt], "%sh.%d.attn.bias", prefix, i);
            o[nt].name = names[nt];
            o[nt].ndim = 4;
            o[nt].shape[0] = 1; o[nt].shape[1] = 1; o[nt].shape[2] = 4; o[nt].shape[3] = 4;
            o[nt].data = mask;
            nt++;
        }
    }
    lm__gpt_meta(m, num, kv);
    if (lm_st_write_mem(o, nt, kv, with_meta ? 6 : 0, NULL, 0, &size)) fail("st size");
    img = (unsigned char *)malloc(size);
    if (!img || lm_st_write_mem(o, nt, kv, with_meta ? 6 : 0, img, size, &size)) fail("st write");
    back = lm_gpt_load_mem(img, size, with_meta ? 0 : m->cfg.n_head);
    if (!back) fail(name);
    lm_gpt_free(back);
    put("safetensors", name, -1, img, size);
    free(img);
    free(o);
    free(names);
}

/* An encoder-decoder's checkpoint in dtype; with the tutorial's positions buffer, and
   with only nhead as metadata, when asked. */
static void put_s2s(const char *name, int norm_first, int act, int dtype, int pos_buffer, int meta_nhead_only) {
    lm_seq2seq_config c;
    lm_seq2seq *m, *back;
    lm_st_out o[128];
    char num[16][24];
    const char *kv[32];
    static float pe[4 * 8];
    size_t size;
    unsigned char *img;
    int i, k, n;
    memset(&c, 0, sizeof c);
    c.d_model = 8; c.nhead = 2; c.num_encoder_layers = 1; c.num_decoder_layers = 2;
    c.dim_feedforward = 12; c.n_ctx = 6; c.src_vocab = 11; c.tgt_vocab = 9;
    c.norm_first = norm_first; c.activation = act;
    if (!(m = lm_seq2seq_new(&c, 7))) fail("lm_seq2seq_new");
    n = m->params.n;
    for (i = 0; i < n; i++) {
        const lm_tensor *t = &m->params.t[i];
        memset(&o[i], 0, sizeof o[i]);
        o[i].name = m->params.names[i];
        o[i].ndim = t->ndim;
        for (k = 0; k < t->ndim; k++) o[i].shape[k] = t->shape[k];
        o[i].data = t->data;
        o[i].dtype = dtype;
    }
    if (pos_buffer) {
        memset(&o[n], 0, sizeof o[n]);
        o[n].name = "positional_encoding.pos_embedding";
        o[n].ndim = 3; o[n].shape[0] = 4; o[n].shape[1] = 1; o[n].shape[2] = 8;
        o[n].data = pe;
        n++;
    }
    lm__s2s_meta(m, num, kv);
    if (meta_nhead_only) { kv[0] = kv[4]; kv[1] = kv[5]; }
    k = meta_nhead_only ? 1 : LM__S2S_META;
    if (lm_st_write_mem(o, n, kv, k, NULL, 0, &size)) fail("st size");
    img = (unsigned char *)malloc(size);
    if (!img || lm_st_write_mem(o, n, kv, k, img, size, &size)) fail("st write");
    back = lm_seq2seq_load_mem(img, size);
    if (!back) fail(name);
    lm_seq2seq_free(back);
    put("safetensors", name, -1, img, size);
    free(img);
    lm_seq2seq_free(m);
}

/* Raw image from a header text and data bytes. */
static void put_raw_st(const char *name, const char *json, const void *data, size_t dlen) {
    size_t n = strlen(json), i;
    unsigned char *b = (unsigned char *)malloc(8 + n + dlen);
    lm_st_file f;
    if (!b) fail("malloc");
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(((uint64_t)n >> (8 * i)) & 0xFF);
    memcpy(b + 8, json, n);
    if (dlen) memcpy(b + 8 + n, data, dlen);
    if (lm_st_parse(&f, b, 8 + n + dlen)) fail(name);
    lm_st_close(&f);
    put("safetensors", name, -1, b, 8 + n + dlen);
    free(b);
}

/* A Q8_0 checkpoint of m (lm_gpt_quantize, then the image lm_gpt_save_mem writes). */
static void put_q8(const char *name, const lm_gpt *m, int quant) {
    lm_gpt *q = lm_gpt_quantize(m, quant), *back;
    unsigned char *img;
    size_t size = 0;
    if (!q || lm_gpt_save_mem(q, NULL, 0, &size)) fail("lm_gpt_quantize");
    img = (unsigned char *)malloc(size);
    if (!img || lm_gpt_save_mem(q, img, size, &size)) fail("lm_gpt_save_mem");
    if (!(back = lm_gpt_load_mem(img, size, 0))) fail(name);
    put("safetensors", name, -1, img, size);
    lm_gpt_free(back);
    lm_gpt_free(q);
    free(img);
}

static void seeds_st(void) {
    lm_gpt *m = tiny(1, 8, 2, 4, 16), *m2 = tiny(2, 4, 1, 3, 5), *m3 = tiny(1, 40, 2, 3, 20);
    static unsigned char data[64];
    int i;
    put_q8("gpt_q8", m, LM_QUANT_Q8_0);
    put_q8("gpt_q8_wte", m3, LM_QUANT_Q8_0_EMB);
    lm_gpt_free(m3);
    put_model("gpt_f32", m, LM_DT_F32, "", 0, 1);
    put_model("gpt_f16", m, LM_DT_F16, "", 0, 1);
    put_model("gpt_bf16", m2, LM_DT_BF16, "", 0, 1);
    put_model("gpt_hf", m, LM_DT_F32, "transformer.", 1, 0);
    put_model("gpt_2layer", m2, LM_DT_F32, "", 1, 1);
    for (i = 0; i < 64; i++) data[i] = (unsigned char)(i * 37 + 11);
    put_raw_st("dtypes",
               "{\"__metadata__\":{\"format\":\"pt\",\"k\\u00e9y\":\"v\\n\\\"\\ud83d\\ude00\"},"
               "\"f32\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
               "\"f16\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[16,24]},"
               "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[2,1,1,2],\"data_offsets\":[24,32]},"
               "\"i64\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]},"
               "\"u8\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[40,43]},"
               "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[43,44]},"
               "\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[44,48]},"
               "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[48,48]},"
               "\"c64\":{\"dtype\":\"C64\",\"shape\":[2],\"data_offsets\":[48,64]}}",
               data, 64);
    put_s2s("s2s_post_relu", 0, LM_ACT_RELU, LM_DT_F32, 0, 0);
    put_s2s("s2s_pre_gelu_f16", 1, LM_ACT_GELU, LM_DT_F16, 1, 0);
    put_s2s("s2s_nhead_only", 0, LM_ACT_RELU, LM_DT_BF16, 0, 1);
    put_raw_st("empty", "{}", NULL, 0);
    put_raw_st("meta_only", "{\"__metadata__\":{\"n_head\":\"2\"}}        ", NULL, 0);
    lm_gpt_free(m);
    lm_gpt_free(m2);
}

/* ---- tokenizers --------------------------------------------------------------------- */
/* encoder.json cut after the entry of id `last`, closed with "}". */
static size_t gpt2_encoder_prefix(const unsigned char *js, size_t n, int last, unsigned char *out) {
    char key[32];
    size_t k, i;
    sprintf(key, "\": %d", last);
    k = strlen(key);
    for (i = 0; i + k < n; i++) {
        if (!memcmp(js + i, key, k) && (js[i + k] == ',' || js[i + k] == '}')) {
            memcpy(out, js, i + k);
            out[i + k] = '}';
            return i + k + 1;
        }
    }
    fail("id not found in encoder.json");
    return 0;
}

/* vocab.bpe's #version line and its first K merges. */
static size_t gpt2_bpe_prefix(const unsigned char *bp, size_t n, int merges) {
    size_t i;
    int lines = 0;
    for (i = 0; i < n; i++)
        if (bp[i] == '\n' && ++lines == merges + 1) return i + 1;
    return n;
}

static void seeds_tok(void) {
    static const int ks[3] = {0, 40, 300};
    unsigned char *js, *bp, *buf, *text;
    size_t njs, nbp, ntext, n1, n2, len;
    lm_tokenizer *t;
    char name[64];
    long need;
    int i;

    /* GPT-2 slices: ids 0 .. 255 + K with the first K merges (GPT-2's merge i makes
       token 256 + i) */
    js = slurp("tests/gpt2/encoder.json", &njs);
    bp = slurp("tests/gpt2/vocab.bpe", &nbp);
    buf = (unsigned char *)malloc(njs + nbp + 2);
    if (!buf) fail("malloc");
    for (i = 0; i < 3; i++) {
        n1 = gpt2_encoder_prefix(js, njs, 255 + ks[i], buf);
        n2 = gpt2_bpe_prefix(bp, nbp, ks[i]);
        t = lm_tok_load_gpt2_mem(buf, n1, bp, n2);
        if (!t) fail("a GPT-2 slice does not load");
        lm_tok_free(t);
        buf[n1] = 0;
        memcpy(buf + n1 + 1, bp, n2);
        sprintf(name, "gpt2_%d", ks[i]);
        put("tokenizer", name, 1, buf, n1 + 1 + n2);
    }

    /* lm-bpe files: the bytes, and BPEs trained on the README */
    text = slurp("README.md", &ntext);
    for (i = 0; i < 3; i++) {
        static const int vocab[3] = {256, 300, 600};
        t = i == 0 ? lm_tok_bytes() : lm_tok_train(text, ntext, vocab[i]);
        if (!t) fail("lm_tok_train");
        need = lm_tok_save_mem(t, NULL, 0);
        if (need <= 0 || (size_t)need > njs + nbp) fail("lm_tok_save_mem");
        lm_tok_save_mem(t, buf, (size_t)need);
        sprintf(name, "bpe_%d", vocab[i]);
        put("tokenizer", name, 0, buf, (size_t)need);
        lm_tok_free(t);
    }

    /* trainer texts: the second byte sets the vocabulary */
    len = ntext < 2000 ? ntext : 2000;
    buf[0] = 100;
    memcpy(buf + 1, text, len);
    put("tokenizer", "train_readme", 2, buf, len + 1);
    {
        static const char mix[] = "\x20" "aaaa aaaa aaaa bbbb  aaab 1234 1234 it's it's "
                                  "\xe6\x9d\xb1\xe4\xba\xac\xe6\x9d\xb1\xe4\xba\xac \xff\xff\xff\n\n\n";
        put("tokenizer", "train_mix", 2, mix, sizeof mix - 1);
    }
    free(js);
    free(bp);
    free(buf);
    free(text);
}

/* ---- command lines ------------------------------------------------------------------ */
/* A seed from a command line written with '|' between arguments and '#' before stdin. */
static void put_cli(const char *name, const char *line) {
    char buf[1024];
    size_t n = strlen(line), i;
    int in_stdin = 0;
    for (i = 0; i < n; i++) {
        if (in_stdin) buf[i] = line[i];
        else if (line[i] == '|') buf[i] = 0;
        else if (line[i] == '#') { buf[i] = 1; in_stdin = 1; }
        else buf[i] = line[i];
    }
    put("cli", name, -1, buf, n);
}

/* A command line whose stdin (and virtual file "@in") is data[0..n). */
static void put_cli_in(const char *name, const char *line, const void *data, size_t n) {
    size_t k = strlen(line), i;
    char *buf = (char *)malloc(k + 1 + n);
    if (!buf) fail("malloc");
    for (i = 0; i < k; i++) buf[i] = line[i] == '|' ? 0 : line[i];
    buf[k] = 1;
    if (n) memcpy(buf + k + 1, data, n);
    put("cli", name, -1, buf, k + 1 + n);
    free(buf);
}

static void seeds_cli(void) {
    static const char csv[] = "step,loss,lr,tok_per_s,val_loss,elapsed_s\n"
                              "1,5.5,0.001,100,,0.1\n2,5.25,0.002,120,5.4,0.2\n"
                              "3,nan,0.002,120,,0.3\n4,4.75,0.0015,130,4.9,0.4\n";
    lm_gpt *m = tiny(1, 4, 2, 4, 8);
    lm_tokenizer *t;
    unsigned char *img;
    size_t size;
    long need;
    static const char *const lines[][2] = {
        {"help", "--help"},
        {"help_train", "help|train"},
        {"train_help", "train|--help"},
        {"train", "train|--data|text.txt|--model|m.safetensors|--layers|1|--heads|2|--embd|16|"
                  "--ctx|16|--batch|4|--steps|5|--warmup|1|--eval-every|2|--seed|3"},
        {"train_eq", "train|--data=text.txt|--lr=3e-4|--min-lr=0|--schedule=constant|"
                     "--order=sequential|--val-frac=0.25|--wd|0|--beta1|0.8|--beta2|0.95|"
                     "--eps|1e-6|--clip|0|--save-every|10|--log|run.csv|--quiet"},
        {"train_init", "train|--data|t|--init|m.safetensors|--ctx|8|--tokenizer|t.bpe"},
        {"train_resume", "train|--data|t|--resume|m.safetensors|--steps|10|--threads|2"},
        {"train_big", "train|--data|t|--layers|1024|--embd|65536|--ctx|1048576"},
        {"train_badnum", "train|--data|t|--steps|12abc|--lr|nan"},
        {"generate", "generate|--model|m.safetensors|--prompt|hello there|--tokens|20|"
                     "--temperature|0|--top-k|5|--top-p|0.9|--seed|7|--heads|2"},
        {"generate_gpt2", "generate|--model|m|--gpt2|tests/gpt2|--prompt|--help"},
        {"eval", "eval|--model|m.safetensors|--data|text.txt|--ctx|8|--threads|1"},
        {"info", "info|--model|m.safetensors"},
        {"quantize", "quantize|--model|m.safetensors|--out|q.safetensors|--quantize-embeddings"},
        {"quantize_same", "quantize|--model|m.safetensors|--out|m.safetensors"},
        {"prune", "prune|--model|m.safetensors|--sparsity|0.5|--out|p.safetensors"},
        {"prune_bad", "prune|--model|m.safetensors|--sparsity|-1|--out|p.safetensors"},
        {"train_keep", "train|--data|text.txt|--init|p.safetensors|--keep-zeros|--steps|3"},
        {"bpe", "bpe|--data|text.txt|--vocab|300|--out|t.bpe"},
        {"tokenize", "tokenize|--text|Hello, world! it's 123"},
        {"tokenize_stdin", "tokenize#some text on stdin\n"},
        {"tokenize_tok", "tokenize|--tokenizer|t.bpe|--text|"},
        {"detokenize", "detokenize#72 105 10 255 0"},
        {"detokenize_bad", "detokenize|--threads|1#72 1000 x"},
        {"bench", "bench"},
        {"bench_help", "bench|gemm|--help"},
        {"bench_unknown", "bench|fft"},
        {"dashdash", "tokenize|--|--text"},
        {"s2s", "s2s"},
        {"s2s_help", "s2s|--help"},
        {"s2s_train", "s2s|train|--data|pairs.tsv|--model|m.safetensors|--layers|1|--enc-layers|2|"
                      "--heads|2|--embd|16|--ff|32|--ctx|12|--norm-first|--activation|gelu|"
                      "--dropout|0.1|--batch|4|--steps|5|--val-frac|0.2|--log|l.csv"},
        {"s2s_train_resume", "s2s|train|--data|p|--resume|m.safetensors|--order|sequential"},
        {"s2s_eval", "s2s|eval|--model|m.safetensors|--data|p.tsv|--beam|3|--batch|8"},
        {"s2s_translate", "s2s|translate|--model|m.safetensors|--text|5 March 2021|--beam|2|"
                          "--max-tokens|10|--stats"},
        {"s2s_translate_stdin", "s2s|translate|--model|m#one\r\n\ntwo"},
        {"s2s_bad", "s2s|translate|--model|m|--beam|99"},
        {"unknown", "frobnicate|--x"},
    };
    size_t i;
    for (i = 0; i < sizeof lines / sizeof lines[0]; i++) put_cli(lines[i][0], lines[i][1]);
    /* the virtual file "@in": a CSV log, a checkpoint, a tokenizer */
    put_cli_in("plot", "plot|@in|--title|loss of a run|--threads|1", csv, sizeof csv - 1);
    if (lm_gpt_save_mem(m, NULL, 0, &size)) fail("lm_gpt_save_mem");
    img = (unsigned char *)malloc(size);
    if (!img || lm_gpt_save_mem(m, img, size, &size)) fail("lm_gpt_save_mem");
    put_cli_in("info", "info|--model|@in", img, size);
    free(img);
    {
        lm_gpt *q = lm_gpt_quantize(m, LM_QUANT_Q8_0_EMB);
        if (!q || lm_gpt_save_mem(q, NULL, 0, &size)) fail("lm_gpt_quantize");
        img = (unsigned char *)malloc(size);
        if (!img || lm_gpt_save_mem(q, img, size, &size)) fail("lm_gpt_save_mem");
        put_cli_in("info_q8", "info|--model|@in", img, size);
        free(img);
        lm_gpt_free(q);
    }
    t = lm_tok_train(csv, sizeof csv - 1, 270);
    if (!t || (need = lm_tok_save_mem(t, NULL, 0)) <= 0) fail("lm_tok_train");
    img = (unsigned char *)malloc((size_t)need);
    if (!img) fail("malloc");
    lm_tok_save_mem(t, img, (size_t)need);
    put_cli_in("tokenize_bpe", "tokenize|--tokenizer|@in|--text|step,loss 5.5", img, (size_t)need);
    put_cli_in("bpe_in", "bpe|--data|@in|--vocab|300|--out|t.bpe", csv, sizeof csv - 1);
    free(img);
    lm_tok_free(t);
    lm_gpt_free(m);
}

int main(int argc, char **argv) {
    g_dir = argc > 1 ? argv[1] : "fuzz/seeds";
    mkdir(g_dir, 0777);
    seeds_st();
    seeds_tok();
    seeds_cli();
    printf("make_seeds: %d seeds in %s\n", g_count, g_dir);
    return 0;
}
