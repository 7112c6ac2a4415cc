/* gpt_from_memory.h - a GPT over weights that stay where they are (const arrays in flash,
   as tools/lm2c writes them), with every other byte in one buffer the caller gives: no
   malloc at all. Include it after lm.h, in the file that has LM_IMPLEMENTATION.

   This is a local version, built from lm.h's public types only, of the function proposed
   for lm.h:
       #define LM_GPT_MEMORY_BYTES(L, H, C, T, V)   a constant expression
       lm_gpt *lm_gpt_from_memory(const lm_gpt_config *cfg, const float *weights,
                                  void *buf, size_t len);
   Here they are CM_GPT_MEMORY_BYTES (and CM_GPT_MEMORY_BYTES_STEP, the least it takes
   to run lm_gpt_step_token alone) and cm_gpt_from_memory. Used by generate.c (the
   microcontroller program) and check_model.c (which checks it, and lm2c, on the host). */
#ifndef CM_GPT_FROM_MEMORY_H
#define CM_GPT_FROM_MEMORY_H

/* ---------------------------------------------------------------------------------------
   Why and how.

   lm_gpt_new and lm_gpt_load put the parameters in an arena they allocate. Here the
   weights are already in memory, read-only, laid out as tools/lm2c writes them: every
   tensor in checkpoint order, row-major, no padding. So we build the lm_gpt by hand: its
   tensors point into the const array, and everything else - the struct, the tensor
   table, the KV cache and the per-step arena - is carved from one caller's buffer.
   Generation (lm_gpt_step_token, lm_gpt_generate) only reads the parameters, so the
   const can be cast away safely; the tensors get no gradient (grad = NULL), since this
   model cannot be trained. (tests/cortex_m.sh checks the "only reads" on the host: there
   the const array is in a read-only page, and any write would crash the run.)

   How big buf must be depends on what runs: lm_gpt_generate needs CM_GPT_MEMORY_BYTES
   (its prompt goes through the batched forward graph); lm_gpt_step_token alone needs
   only CM_GPT_MEMORY_BYTES_STEP, about the KV cache. Whatever buf has beyond the state
   becomes the per-step arena.
   Errors (a bad config, a NULL pointer, a buffer too small) go to lm_log and give NULL.
   Never lm_gpt_free the model: it lives in buf, and buf is the caller's.
   --------------------------------------------------------------------------------------- */
#define CM_PER_LAYER 12                          /* tensors per block                     */
#define CM_N_TENSORS(L) (2 + CM_PER_LAYER * (L) + 2)
#define CM_ROUND64(x) (((size_t)(x) + 63) / 64 * 64)  /* arena blocks are 64-byte aligned */
/* What buf must hold, as constant expressions so that a static buffer can be sized with
   them. First the state: 64 bytes to align buf, then the struct, the tensor table, the
   names, the blocks, the KV cache and generation's scratch, each rounded to the arena's
   64-byte blocks. */
#define CM_GPT_STATE_BYTES(L, C, T, V)                                                 \
    (64 + CM_ROUND64(sizeof(lm_gpt))                                                   \
     + CM_ROUND64(CM_N_TENSORS(L) * sizeof(lm_tensor))                                 \
     + CM_ROUND64(CM_N_TENSORS(L) * (size_t)LM_NAME_MAX)                               \
     + CM_ROUND64((size_t)(L) * sizeof(lm_gpt_block))                                  \
     + 2 * CM_ROUND64((size_t)(L) * (size_t)(T) * (size_t)(C) * sizeof(float))          \
     + 2 * CM_ROUND64((size_t)(V) * sizeof(float)) + CM_ROUND64((size_t)(T) * sizeof(int)))
/* Then the per-step arena, which depends on how the model is run.
   lm_gpt_step_token needs only a few rows of activations: */
#define CM_GPT_STEP_BYTES(C, T) CM_ROUND64((10 * (size_t)(C) + (size_t)(T)) * sizeof(float))
/* lm_gpt_generate feeds the prompt (and the window, each time it slides) through the
   batched forward graph: per layer about 18 (T, C) activations and the attention
   probabilities (H, T, T), plus the tape's nodes. The library would grow the arena with
   LM_MALLOC when a graph does not fit, so it must be big enough from the start
   (generate.c prints the peak it reached). */
#define CM_GPT_GRAPH_BYTES(L, H, C, T)                                                   \
    CM_ROUND64(sizeof(float) * ((size_t)(L) * (20 * (size_t)(T) * (C)                  \
                                               + (size_t)(H) * (T) * (T) + 4 * (size_t)(T)) \
                                + 3 * (size_t)(T) * (C) + 16 * (size_t)(C))            \
               + ((size_t)(L) * 16 + 16) * 512)
/* For lm_gpt_generate, and for lm_gpt_step_token only (the least cm_gpt_from_memory
   accepts). */
#define CM_GPT_MEMORY_BYTES(L, H, C, T, V) \
    (CM_GPT_STATE_BYTES(L, C, T, V) + CM_GPT_GRAPH_BYTES(L, H, C, T))
#define CM_GPT_MEMORY_BYTES_STEP(L, C, T, V) \
    (CM_GPT_STATE_BYTES(L, C, T, V) + CM_GPT_STEP_BYTES(C, T))

/* "h.<layer>.<what>" without snprintf. */
static void cm_block_name(char *out, int layer, const char *what) {
    char digits[12];
    int n = 0, k = 0;
    do { digits[n++] = (char)('0' + layer % 10); layer /= 10; } while (layer);
    out[k++] = 'h'; out[k++] = '.';
    while (n) out[k++] = digits[--n];
    out[k++] = '.';
    while (*what && k < LM_NAME_MAX - 1) out[k++] = *what++;
    out[k] = 0;
}

/* Name and shape of tensor k, in checkpoint order (DESIGN 3.2). */
static void cm_layout(const lm_gpt_config *c, int k, char *name, int *ndim, int *shape) {
    static const char *const what[CM_PER_LAYER] = {
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
        "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias" };
    /* weights are (rows*C, cols*C), biases and LayerNorm (cols*C) */
    static const int rows[CM_PER_LAYER] = { 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 0 };
    static const int cols[CM_PER_LAYER] = { 1, 1, 3, 3, 1, 1, 1, 1, 4, 4, 1, 1 };
    int C = c->n_embd, j;
    const char *s = NULL;
    if (k == 0) { s = "wte.weight"; *ndim = 2; shape[0] = c->vocab; shape[1] = C; }
    else if (k == 1) { s = "wpe.weight"; *ndim = 2; shape[0] = c->n_ctx; shape[1] = C; }
    else if (k - 2 < CM_PER_LAYER * c->n_layer) {
        j = (k - 2) % CM_PER_LAYER;
        cm_block_name(name, (k - 2) / CM_PER_LAYER, what[j]);
        if (rows[j]) { *ndim = 2; shape[0] = rows[j] * C; shape[1] = cols[j] * C; }
        else { *ndim = 1; shape[0] = cols[j] * C; }
        return;
    } else { s = k == 2 + CM_PER_LAYER * c->n_layer ? "ln_f.weight" : "ln_f.bias"; *ndim = 1; shape[0] = C; }
    for (j = 0; s[j]; j++) name[j] = s[j];
    name[j] = 0;
}

static lm_gpt *cm_gpt_from_memory(const lm_gpt_config *cfg, const float *weights,
                                  void *buf, size_t len) {
    lm_arena a;
    lm_gpt *m;
    lm_tensor *t;
    size_t need, off = 0, cache;
    int k, d, n, C, L;
    /* the shape must be complete and consistent (no defaults for a model in flash), and
       small enough that the sizes below cannot overflow even with a 32-bit size_t */
    if (!cfg || cfg->n_layer < 1 || cfg->n_head < 1 || cfg->n_embd < 1 || cfg->n_ctx < 1 ||
        cfg->vocab < 1 || cfg->n_embd % cfg->n_head || !weights || !buf ||
        cfg->n_layer > 1024 || cfg->n_embd > 65536 || cfg->n_ctx > 65536 || cfg->vocab > 16777216 ||
        ((double)cfg->n_layer * cfg->n_ctx * (24.0 * cfg->n_embd + (double)cfg->n_head * cfg->n_ctx) +
         (double)cfg->vocab) * 8.0 > (double)((size_t)-1 / 2)) {
        lm_log("gpt_from_memory: bad config or NULL pointer");
        return NULL;
    }
    L = cfg->n_layer; C = cfg->n_embd; n = CM_N_TENSORS(L);
    need = CM_GPT_MEMORY_BYTES_STEP(L, C, cfg->n_ctx, cfg->vocab);
    if (len < need) {
        lm_log("gpt_from_memory: buffer of %zu bytes, need %zu", len, need);
        return NULL;
    }

    /* carve the pieces from buf, in the order CM_GPT_STATE_BYTES counts them */
    lm_arena_init_buffer(&a, buf, len);
    a.want = 0; a.raw = NULL;
    m = (lm_gpt *)lm_arena_calloc(&a, sizeof *m);
    m->cfg = *cfg;
    m->params.n = n;
    m->params.t = (lm_tensor *)lm_arena_calloc(&a, (size_t)n * sizeof(lm_tensor));
    m->params.names = (char (*)[LM_NAME_MAX])lm_arena_calloc(&a, (size_t)n * LM_NAME_MAX);
    m->h = (lm_gpt_block *)lm_arena_calloc(&a, (size_t)L * sizeof(lm_gpt_block));
    cache = (size_t)L * (size_t)cfg->n_ctx * (size_t)C * sizeof(float);
    m->k_cache = (float *)lm_arena_alloc(&a, cache);
    m->v_cache = (float *)lm_arena_alloc(&a, cache);
    m->gen_logits = (float *)lm_arena_alloc(&a, (size_t)cfg->vocab * sizeof(float));
    m->gen_sort = (int *)lm_arena_alloc(&a, (size_t)cfg->vocab * sizeof(int));
    m->gen_window = (int *)lm_arena_alloc(&a, (size_t)cfg->n_ctx * sizeof(int));
    /* the per-step arena gets all the rest: at least CM_GPT_STEP_BYTES */
    lm_arena_init_buffer(&m->work, a.base + a.used, a.cap - a.used);
    m->work.want = 0; m->work.raw = NULL;
    a.used = a.cap;
    m->arena = a;             /* owned = 0: nothing to free, the buffer is the caller's   */

    /* the tensors: views of the const weights, one after the other */
    for (k = 0; k < n; k++) {
        t = &m->params.t[k];
        cm_layout(cfg, k, m->params.names[k], &t->ndim, t->shape);
        for (t->size = 1, d = 0; d < t->ndim; d++) t->size *= t->shape[d];
        t->data = (float *)(weights + off);  /* only ever read (see above)                */
        t->grad = NULL;
        t->requires_grad = 0;
        off += (size_t)t->size;
    }
    m->params.total = off;
    m->params.data = m->params.t[0].data;
    m->params.grad = m->params.m = m->params.v = NULL;

    /* the named fields, as lm_gpt_new binds them */
    t = m->params.t;
    m->wte = &t[0];
    m->wpe = &t[1];
    for (k = 0; k < L; k++) {
        lm_gpt_block *b = &m->h[k];
        lm_tensor *bt = &t[2 + CM_PER_LAYER * k];
        b->ln_1_w = bt; b->ln_1_b = bt + 1; b->attn_w = bt + 2; b->attn_b = bt + 3;
        b->attn_proj_w = bt + 4; b->attn_proj_b = bt + 5; b->ln_2_w = bt + 6; b->ln_2_b = bt + 7;
        b->fc_w = bt + 8; b->fc_b = bt + 9; b->proj_w = bt + 10; b->proj_b = bt + 11;
    }
    m->ln_f_w = &t[n - 2];
    m->ln_f_b = &t[n - 1];
    m->cache_len = 0;
    return m;
}

#endif /* CM_GPT_FROM_MEMORY_H */
