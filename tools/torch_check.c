/* torch_check.c - the C half of the PyTorch cross-check (tools/torch_check.py).

   The Python side writes a case as safetensors files, runs this program on them, reads
   back what lm.h computed (also safetensors) and compares it with its own PyTorch model.
   This program only computes; it decides nothing. Build (the Makefile's test-torch does):
       cc -std=c99 -O2 -march=native -I. tools/torch_check.c -o tools/torch_check -lm -lpthread

   Usage:
       torch_check gpt MODEL CASE OUT [THREADS]
           MODEL  a GPT checkpoint in the Hugging Face layout, read by lm_gpt_load
           CASE   inputs, targets (B, T), the 10-step batches and the optimizer options
           OUT    logits, loss, every gradient, the schedule, the losses of the training
                  steps and every parameter after them
       torch_check enc CASE OUT [THREADS]
           CASE   the encoder's config and weights, corrupted tokens, lengths, the masked
                  positions with their targets, class labels, optimizer options
           OUT    hidden states, masked-LM and classifier logits, losses and gradients,
                  class probabilities, and the parameters after a few classifier steps
       torch_check s2s MODEL CASE OUT [THREADS]
           MODEL  an encoder-decoder checkpoint (PyTorch's state-dict names), read by
                  lm_seq2seq_load
           CASE   a batch of pairs (sources, targets and their lengths), the training
                  batches and the optimizer options, how many tokens to decode and the beam
           OUT    logits, loss, every gradient, lm_seq2seq_loss, the greedy and the beam
                  decodes of each source, the losses of the training steps and every
                  parameter after them

   Token ids travel as F32 tensors (exact below 2^24); numbers such as the learning rate
   travel as __metadata__ strings. */
#define LM_IMPLEMENTATION
#include "lm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
   Small helpers: fail loudly (this is a test tool), read a case, collect the outputs.
   --------------------------------------------------------------------------------------- */
static void die(const char *what) {
    fprintf(stderr, "torch_check: %s: %s\n", what, lm_error());
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "torch_check: out of memory\n"); exit(1); }
    return p;
}

/* A tensor of the case as floats; *numel receives its element count. */
static float *case_floats(const lm_st_file *f, const char *name, size_t *numel) {
    const lm_st_entry *e = lm_st_find(f, name);
    float *out;
    if (!e) { fprintf(stderr, "torch_check: the case has no tensor '%s'\n", name); exit(1); }
    out = (float *)xmalloc((size_t)e->numel * sizeof(float));
    if (lm_st_read_f32(f, e, out) != LM_OK) die(name);
    if (numel) *numel = (size_t)e->numel;
    return out;
}

/* The same, as token ids (or lengths, labels). */
static int *case_ints(const lm_st_file *f, const char *name, size_t *numel) {
    size_t n, i;
    float *v = case_floats(f, name, &n);
    int *out = (int *)xmalloc(n * sizeof(int));
    for (i = 0; i < n; i++) out[i] = (int)v[i];
    free(v);
    if (numel) *numel = n;
    return out;
}

static const char *case_meta(const lm_st_file *f, const char *key) {
    const char *v = lm_st_meta(f, key);
    if (!v) { fprintf(stderr, "torch_check: the case has no metadata '%s'\n", key); exit(1); }
    return v;
}
static double meta_num(const lm_st_file *f, const char *key) { return atof(case_meta(f, key)); }

/* The optimizer options (lm.h, TRAINING), from the case's metadata. */
static lm_train_opts case_opts(const lm_st_file *f) {
    lm_train_opts o = lm_train_defaults();
    o.lr = (float)meta_num(f, "lr");
    o.min_lr = (float)meta_num(f, "min_lr");
    o.warmup = (int)meta_num(f, "warmup");
    o.steps = (int)meta_num(f, "steps");
    o.schedule = LM_SCHED_COSINE;
    o.wd = (float)meta_num(f, "wd");
    o.beta1 = (float)meta_num(f, "beta1");
    o.beta2 = (float)meta_num(f, "beta2");
    o.eps = (float)meta_num(f, "eps");
    o.clip = (float)meta_num(f, "clip");
    return o;
}

/* The outputs: a growing list of named copies, written at the end in one file. */
#define MAX_OUT 1024
static lm_st_out outs[MAX_OUT];
static int n_out;

static void put(const char *prefix, const char *name, const float *data, int ndim, const int *shape) {
    lm_st_out *o;
    size_t numel = 1, len = strlen(prefix) + strlen(name) + 1;
    char *nm;
    float *copy;
    int d;
    if (n_out == MAX_OUT) { fprintf(stderr, "torch_check: too many outputs\n"); exit(1); }
    o = &outs[n_out++];
    memset(o, 0, sizeof *o);
    nm = (char *)xmalloc(len);
    strcpy(nm, prefix);
    strcat(nm, name);
    o->name = nm;
    o->ndim = ndim;
    for (d = 0; d < ndim; d++) { o->shape[d] = shape[d]; numel *= (size_t)shape[d]; }
    copy = (float *)xmalloc(numel * sizeof(float));
    memcpy(copy, data, numel * sizeof(float));
    o->data = copy;
    o->dtype = LM_DT_F32;
}
static void put_tensor(const char *prefix, const char *name, const lm_tensor *t, int grad) {
    put(prefix, name, grad ? t->grad : t->data, t->ndim, t->shape);
}
static void put_vec(const char *name, const float *v, int n) { put("", name, v, 1, &n); }
static void put_scalar(const char *name, float v) { put_vec(name, &v, 1); }

/* Every parameter (prefix "after.") or its gradient (prefix "grad.", ...). */
static void put_params(const char *prefix, const lm_params *p, int grad) {
    int k;
    for (k = 0; k < p->n; k++) put_tensor(prefix, p->names[k], &p->t[k], grad);
}

static void write_outputs(const char *path) {
    int k;
    if (lm_st_write(path, outs, n_out, NULL, 0) != LM_OK) die(path);
    for (k = 0; k < n_out; k++) { free((void *)outs[k].name); free((void *)outs[k].data); }
    n_out = 0;
}

/* One graph arena for all the graphs built here; reset between them. */
static lm_arena work;

/* ---------------------------------------------------------------------------------------
   GPT: the forward and backward of one batch through the public ops, the model's own
   loss, the schedule, then the 10 training steps of lm_gpt_train_step.
   --------------------------------------------------------------------------------------- */
static void run_gpt(const char *model_path, const char *case_path, const char *out_path) {
    lm_st_file f;
    lm_gpt *m;
    lm_graph g;
    lm_tensor *logits, *loss;
    lm_train_opts o;
    int *inputs, *targets, *step_in, *step_tg, B, T, n_steps, s;
    float *lr, *step_loss;
    size_t n;

    if (lm_st_open(&f, case_path) != LM_OK) die(case_path);
    /* n_head: 0 reads it from the checkpoint's metadata, else the case says */
    m = lm_gpt_load(model_path, (int)meta_num(&f, "load_heads"));
    if (!m) die(model_path);
    if (m->cfg.n_layer != (int)meta_num(&f, "n_layer") || m->cfg.n_head != (int)meta_num(&f, "n_head") ||
        m->cfg.n_embd != (int)meta_num(&f, "n_embd") || m->cfg.n_ctx != (int)meta_num(&f, "n_ctx") ||
        m->cfg.vocab != (int)meta_num(&f, "vocab")) {
        fprintf(stderr, "torch_check: '%s' loaded as %d layers, %d heads, %d wide, context %d, "
                "vocab %d: not the case's config\n", model_path, m->cfg.n_layer, m->cfg.n_head,
                m->cfg.n_embd, m->cfg.n_ctx, m->cfg.vocab);
        exit(1);
    }
    B = (int)meta_num(&f, "B");
    T = (int)meta_num(&f, "T");
    inputs = case_ints(&f, "inputs", &n);
    targets = case_ints(&f, "targets", NULL);
    if (n != (size_t)B * T) { fprintf(stderr, "torch_check: inputs are not B x T\n"); exit(1); }

    /* Forward and backward of one batch: logits (B, T, V), loss, every gradient. */
    lm_graph_init(&g, &work);
    lm_params_zero_grad(&m->params);
    logits = lm_gpt_forward(m, &g, inputs, B, T);
    loss = lm_cross_entropy(&g, logits, targets, -1);
    if (!loss || g.failed) die("gpt forward");
    if (lm_backward(&g, loss) != LM_OK || g.failed) die("gpt backward");
    put_tensor("", "logits", logits, 0);
    put_scalar("loss", loss->data[0]);
    put_params("grad.", &m->params, 1);
    lm_graph_reset(&g, 0);

    /* The model's own no-grad loss (the path lm eval takes). */
    put_scalar("loss_api", lm_gpt_loss(m, inputs, targets, B, T));

    /* The schedule, then the training steps over the case's fixed list of batches. */
    o = case_opts(&f);
    n_steps = o.steps;
    lr = (float *)xmalloc((size_t)n_steps * sizeof(float));
    step_loss = (float *)xmalloc((size_t)n_steps * sizeof(float));
    for (s = 0; s < n_steps; s++) lr[s] = lm_lr_at(&o, s);
    put_vec("lr", lr, n_steps);
    step_in = case_ints(&f, "step_inputs", &n);
    step_tg = case_ints(&f, "step_targets", NULL);
    if (n != (size_t)n_steps * B * T) { fprintf(stderr, "torch_check: step batches are not S x B x T\n"); exit(1); }
    for (s = 0; s < n_steps; s++) {
        size_t off = (size_t)s * B * T;
        step_loss[s] = lm_gpt_train_step(m, &o, step_in + off, step_tg + off, B, T, s);
        if (step_loss[s] != step_loss[s]) die("gpt train step");
    }
    put_vec("step_loss", step_loss, n_steps);
    put_params("after.", &m->params, 0);

    write_outputs(out_path);
    free(inputs); free(targets); free(step_in); free(step_tg); free(lr); free(step_loss);
    lm_gpt_free(m);
    lm_st_close(&f);
}

/* ---------------------------------------------------------------------------------------
   Encoder: the masked-LM loss built from the public ops (encoder forward with the padding
   mask, rows of the masked positions, the tied output layer plus its bias, cross-entropy),
   the classifier (mean over the valid positions, linear, cross-entropy or BCE for one
   class), the library's own classifier loss and probabilities, and a few training steps.
   --------------------------------------------------------------------------------------- */
static void run_enc(const char *case_path, const char *out_path) {
    lm_st_file f;
    lm_encoder *e;
    lm_encoder_config cfg;
    lm_graph g;
    lm_tensor *h, *rows, *logits, *loss, *pooled;
    lm_train_opts o;
    int *tokens, *lens, *pos, *tgt, *labels, B, T, n_pos, K, k, s, shape[2];
    float *probs, *step_loss;
    size_t n;

    if (lm_st_open(&f, case_path) != LM_OK) die(case_path);
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layer = (int)meta_num(&f, "n_layer");
    cfg.n_head = (int)meta_num(&f, "n_head");
    cfg.n_embd = (int)meta_num(&f, "n_embd");
    cfg.n_ctx = (int)meta_num(&f, "n_ctx");
    cfg.vocab = (int)meta_num(&f, "vocab");
    cfg.mask_id = (int)meta_num(&f, "mask_id");
    cfg.pad_id = (int)meta_num(&f, "pad_id");
    cfg.n_class = K = (int)meta_num(&f, "n_class");
    e = lm_encoder_new(&cfg, 1);
    if (!e) die("lm_encoder_new");
    /* the case's weights over the fresh ones, tensor by tensor, by name */
    for (k = 0; k < e->params.n; k++) {
        lm_tensor *t = &e->params.t[k];
        float *v = case_floats(&f, e->params.names[k], &n);
        if (n != (size_t)t->size) { fprintf(stderr, "torch_check: '%s' has the wrong size\n", e->params.names[k]); exit(1); }
        memcpy(t->data, v, n * sizeof(float));
        free(v);
    }
    B = (int)meta_num(&f, "B");
    T = (int)meta_num(&f, "T");
    tokens = case_ints(&f, "tokens", NULL);
    lens = case_ints(&f, "lens", NULL);
    pos = case_ints(&f, "mlm_pos", &n);
    n_pos = (int)n;
    tgt = case_ints(&f, "mlm_targets", NULL);
    labels = case_ints(&f, "labels", NULL);

    /* Masked-LM: hidden (B, T, C) -> rows of the chosen positions (n, C) -> (n, V). */
    lm_graph_init(&g, &work);
    lm_params_zero_grad(&e->params);
    h = lm_encoder_forward(e, &g, tokens, lens, B, T);
    rows = lm_gather_rows(&g, h, pos, n_pos);
    logits = lm_add(&g, lm_matmul(&g, rows, e->wte, 1), e->mlm_b);
    loss = lm_cross_entropy(&g, logits, tgt, -1);
    if (!loss || g.failed) die("masked-LM forward");
    if (lm_backward(&g, loss) != LM_OK || g.failed) die("masked-LM backward");
    put_tensor("", "hidden", h, 0);
    put_tensor("", "mlm_logits", logits, 0);
    put_scalar("mlm_loss", loss->data[0]);
    put_params("grad_mlm.", &e->params, 1);
    lm_graph_reset(&g, 0);

    /* Classifier: mean over the first lens[b] positions (B, C) -> (B, K). */
    lm_params_zero_grad(&e->params);
    h = lm_encoder_forward(e, &g, tokens, lens, B, T);
    pooled = lm_mean_pool(&g, h, lens);
    logits = lm_linear(&g, pooled, e->cls_w, e->cls_b);
    if (K == 1) {
        lm_tensor *y;
        int b;
        shape[0] = B; shape[1] = 1;
        y = lm_tensor_new(&g, 2, shape);
        if (!y) die("labels");
        for (b = 0; b < B; b++) y->data[b] = (float)labels[b];
        loss = lm_bce_logits(&g, logits, y);
    } else {
        loss = lm_cross_entropy(&g, logits, labels, -1);
    }
    if (!loss || g.failed) die("classifier forward");
    if (lm_backward(&g, loss) != LM_OK || g.failed) die("classifier backward");
    put_tensor("", "pooled", pooled, 0);
    put_tensor("", "cls_logits", logits, 0);
    put_scalar("cls_loss", loss->data[0]);
    put_params("grad_cls.", &e->params, 1);
    lm_graph_reset(&g, 0);

    /* The library's own classifier loss and probabilities. */
    o = case_opts(&f);
    put_scalar("cls_loss_api", lm_encoder_cls_loss(e, tokens, lens, labels, B, T));
    probs = (float *)xmalloc((size_t)B * K * sizeof(float));
    if (lm_encoder_predict(e, tokens, lens, B, T, probs) != LM_OK) die("lm_encoder_predict");
    shape[0] = B; shape[1] = K;
    put("", "probs", probs, 2, shape);

    /* Classifier training steps with clipping, weight decay and the schedule. */
    step_loss = (float *)xmalloc((size_t)o.steps * sizeof(float));
    for (s = 0; s < o.steps; s++) {
        step_loss[s] = lm_encoder_cls_train_step(e, &o, tokens, lens, labels, B, T, s);
        if (step_loss[s] != step_loss[s]) die("classifier train step");
    }
    put_vec("step_loss", step_loss, o.steps);
    put_params("after.", &e->params, 0);

    write_outputs(out_path);
    free(tokens); free(lens); free(pos); free(tgt); free(labels); free(probs); free(step_loss);
    lm_encoder_free(e);
    lm_st_close(&f);
}

/* ---------------------------------------------------------------------------------------
   Encoder-decoder: the logits and loss of one batch of pairs through lm_seq2seq_forward and
   the public cross-entropy (targets: each target then EOS, the rest PAD, which it
   ignores), every gradient, the library's own loss, greedy and beam decoding of every
   source, then a few training steps.
   --------------------------------------------------------------------------------------- */
static void run_s2s(const char *model_path, const char *case_path, const char *out_path) {
    lm_st_file f;
    lm_seq2seq *m;
    lm_seq2seq_batch b;
    lm_graph g;
    lm_tensor *logits, *loss;
    lm_train_opts o;
    int *src, *src_len, *tgt, *tgt_len, *targets, *step_src, *step_sl, *step_tg, *step_tl, *dec;
    int B, S, T, i, t, s, max_out, beam, k, shape[2];
    float *step_loss;
    size_t n;

    if (lm_st_open(&f, case_path) != LM_OK) die(case_path);
    m = lm_seq2seq_load(model_path);
    if (!m) die(model_path);
    B = (int)meta_num(&f, "B");
    S = (int)meta_num(&f, "S");
    T = (int)meta_num(&f, "T");
    src = case_ints(&f, "src", NULL);
    src_len = case_ints(&f, "src_len", NULL);
    tgt = case_ints(&f, "tgt", NULL);
    tgt_len = case_ints(&f, "tgt_len", NULL);
    b.B = B; b.S = S; b.T = T; b.src = src; b.src_len = src_len; b.tgt = tgt; b.tgt_len = tgt_len;
    targets = (int *)xmalloc((size_t)B * (T + 1) * sizeof(int));
    for (i = 0; i < B; i++)
        for (t = 0; t <= T; t++)
            targets[i * (T + 1) + t] = t < tgt_len[i] ? tgt[i * T + t] : t == tgt_len[i] ? m->cfg.eos_id : m->cfg.pad_id;

    lm_graph_init(&g, &work);
    lm_params_zero_grad(&m->params);
    logits = lm_seq2seq_forward(m, &g, &b);
    loss = lm_cross_entropy(&g, logits, targets, m->cfg.pad_id);
    if (!loss || g.failed) die("seq2seq forward");
    if (lm_backward(&g, loss) != LM_OK || g.failed) die("seq2seq backward");
    put_tensor("", "logits", logits, 0);
    put_scalar("loss", loss->data[0]);
    put_params("grad.", &m->params, 1);
    lm_graph_reset(&g, 0);
    put_scalar("loss_api", lm_seq2seq_loss(m, &b));

    /* decoding: each source alone, greedy and with the case's beam; -1 fills the rows */
    max_out = (int)meta_num(&f, "max_out");
    beam = (int)meta_num(&f, "beam");
    dec = (int *)xmalloc((size_t)B * max_out * sizeof(int));
    for (k = 0; k < 2; k++) {
        float *rows = (float *)xmalloc((size_t)B * (max_out + 1) * sizeof(float));
        for (i = 0; i < B; i++) {
            int got = lm_seq2seq_translate(m, src + (size_t)i * S, src_len[i], k ? beam : 1,
                                           dec + (size_t)i * max_out, max_out);
            if (got < 0) die("lm_seq2seq_translate");
            rows[i * (max_out + 1)] = (float)got;
            for (t = 0; t < max_out; t++) rows[i * (max_out + 1) + 1 + t] = t < got ? (float)dec[i * max_out + t] : -1.0f;
        }
        shape[0] = B; shape[1] = max_out + 1;
        put("", k ? "beam" : "greedy", rows, 2, shape);
        free(rows);
    }

    /* training steps over the case's batches, of the same shape */
    o = case_opts(&f);
    step_src = case_ints(&f, "step_src", &n);
    if (n != (size_t)o.steps * B * S) { fprintf(stderr, "torch_check: step sources are not steps x B x S\n"); exit(1); }
    step_sl = case_ints(&f, "step_src_len", NULL);
    step_tg = case_ints(&f, "step_tgt", NULL);
    step_tl = case_ints(&f, "step_tgt_len", NULL);
    step_loss = (float *)xmalloc((size_t)o.steps * sizeof(float));
    for (s = 0; s < o.steps; s++) {
        b.src = step_src + (size_t)s * B * S; b.src_len = step_sl + (size_t)s * B;
        b.tgt = step_tg + (size_t)s * B * T; b.tgt_len = step_tl + (size_t)s * B;
        step_loss[s] = lm_seq2seq_train_step(m, &o, &b, s);
        if (step_loss[s] != step_loss[s]) die("seq2seq train step");
    }
    put_vec("step_loss", step_loss, o.steps);
    put_params("after.", &m->params, 0);

    write_outputs(out_path);
    free(src); free(src_len); free(tgt); free(tgt_len); free(targets); free(dec);
    free(step_src); free(step_sl); free(step_tg); free(step_tl); free(step_loss);
    lm_seq2seq_free(m);
    lm_st_close(&f);
}

int main(int argc, char **argv) {
    int threads = 1;
    if (argc >= 5 && (!strcmp(argv[1], "gpt") || !strcmp(argv[1], "s2s"))) {
        if (argc > 5) threads = atoi(argv[5]);
    } else if (argc >= 4 && !strcmp(argv[1], "enc")) {
        if (argc > 4) threads = atoi(argv[4]);
    } else {
        fprintf(stderr, "usage: torch_check gpt MODEL CASE OUT [THREADS]\n"
                        "       torch_check enc CASE OUT [THREADS]\n"
                        "       torch_check s2s MODEL CASE OUT [THREADS]\n");
        return 2;
    }
    lm_set_threads(threads);
    if (lm_arena_init(&work, (size_t)256 << 20) != LM_OK) die("arena");
    if (!strcmp(argv[1], "gpt")) run_gpt(argv[2], argv[3], argv[4]);
    else if (!strcmp(argv[1], "s2s")) run_s2s(argv[2], argv[3], argv[4]);
    else run_enc(argv[2], argv[3]);
    lm_arena_free(&work);
    fprintf(stderr, "torch_check: %s done (%s)\n", argv[1], lm_simd_name());
    return 0;
}
