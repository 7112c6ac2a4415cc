/* lm.h - train and run small Transformer language models on a CPU, in one C header.

   Do this:
       #define LM_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the implementation.
   Every other file includes it without the define and sees only the declarations.

   QUICK START
       #define LM_IMPLEMENTATION
       #include "lm.h"

       lm_gpt_config cfg = {0};              zero means default: 4 layers, 4 heads,
       cfg.vocab = 256;                      128 wide, context 64
       lm_gpt *m = lm_gpt_new(&cfg, 1337);   parameters live in the model's arena
       lm_train_opts o = lm_train_defaults();
       for (step = 0; step < 2000; step++) {
           ...fill inputs[B*T] and targets[B*T] with token ids...
           float loss = lm_gpt_train_step(m, &o, inputs, targets, B, T, step, 2000);
       }
       lm_gpt_save(m, "model.safetensors");
       lm_gpt_free(m);

   Functions that can fail return an int (LM_OK = 0, or a negative LM_ERR_* code) or NULL;
   lm_error() then returns a one-line, human-readable reason. The library never exits or
   aborts on bad input.

   CONFIG MACROS (define before including)
       LM_IMPLEMENTATION   emit the implementation in this translation unit.
       LM_STATIC           make every function static (private to this translation unit).
       LM_ASSERT(x)        internal consistency checks (default: assert.h). Never used for
                           input validation: bad input is an error code, not an assert.
       LM_MALLOC(n)        allocator; define LM_MALLOC and LM_FREE together or neither.
       LM_FREE(p)          Only arenas, models and file loaders allocate; a training step
                           never does.
       LM_NO_SIMD          use only the portable scalar kernels (always compiled anyway,
                           so the SIMD paths can be checked against them).
       LM_NO_THREADS       no pthreads; everything runs on the calling thread.
       LM_NO_STDIO         no stdio or files: for bare-metal targets. Loading and saving from
                           memory buffers still works; logging goes to a callback.
       LM_MAX_THREADS      upper bound of the thread pool (default 64).

   SIMD is chosen from the compiler's own macros: __AVX512F__, __AVX2__ with __FMA__, and
   __ARM_NEON (aarch64 and armv7 with NEON-VFPv4). Build with -march=native (x86) or the right
   -mfpu (armv7) to get them; lm_simd_name() tells which path is compiled in.

   MEMORY MODEL
       An lm_arena is a bump allocator over one block, 64-byte aligned. A model keeps its
       parameters, gradients and optimizer state in a long-lived arena; each training step
       builds its graph and activations in a per-step arena that is reset at the start of the
       next step, so after the first step a run allocates nothing. An arena can run over a
       buffer the caller owns (lm_arena_init_buffer), which is how an embedded program runs
       with no malloc at all. lm_arena.peak is the high-water mark: run one step and you know
       what a long run needs.

   THREADING
       lm_set_threads(n) sizes one global pool (default 1, n = 0 means all cores). Work is
       cut into tasks whose boundaries depend only on the problem size, never on the thread
       count, and every task writes its own outputs, so results are bit-identical for any
       number of threads.

   CONTENTS, in the order the file reads
       config and portability; the API (errors, RNG, arenas, threads and GEMM, tensors and
       autograd, parameters and optimizers, tokenizers, GPT, encoder, metrics, data order,
       safetensors and checkpoints); then the implementation: errors and logging, RNG,
       arena, thread pool, GEMM, vector math, the graph and every op (forward and backward
       side by side), parameters, optimizers and schedule, the GPT, data order, the
       encoder and metrics, tokenizers, safetensors and checkpoints, generation.

   TRAINING (the GPT, DESIGN of GPT-2)
       lm_gpt_new() makes a fresh model (weights N(0, 0.02), residual projections
       N(0, 0.02/sqrt(2L)), LayerNorm 1 and 0). lm_gpt_train_step() runs forward,
       cross-entropy, backward, global-norm clipping and one AdamW step (as PyTorch's
       torch.optim.AdamW, decay on 2-D tensors only) at the learning rate of lm_lr_at():
       linear warmup, then cosine down to min_lr at the last step. lm_data_next() gives the
       batches: sequential, or windows at seeded random offsets. lm_gpt_eval() is the mean
       cross-entropy over non-overlapping windows. Every op's gradient is checked against
       finite differences, and the whole model against PyTorch (make test-torch).

   GENERATION
       lm_gpt_generate() feeds the prompt through the batched forward, keeping each
       layer's keys and values (the KV cache), then produces one token per step from the
       cache: greedy at temperature 0, else temperature, top-k and top-p sampling from a
       seeded lm_sampler. When the text outgrows n_ctx the model sees the last n_ctx tokens.

   CHECKPOINTS (safetensors)
       A u64 little-endian header length N, N bytes of JSON (padded with spaces to a
       multiple of 8), then the raw little-endian tensor data; offsets count from the start
       of the data. Names are Hugging Face GPT-2's: wte.weight, wpe.weight,
       h.{i}.ln_1.weight|bias, h.{i}.attn.c_attn.weight|bias (C x 3C: q, k, v columns),
       h.{i}.attn.c_proj.weight|bias, h.{i}.ln_2.weight|bias, h.{i}.mlp.c_fc.weight|bias,
       h.{i}.mlp.c_proj.weight|bias, ln_f.weight|bias. lm_gpt_save() writes F32 with
       __metadata__ {format, n_layer, n_head, n_embd, n_ctx, vocab_size}, to a temporary
       file that is flushed, synced and renamed over the target. lm_gpt_load() reads F32,
       F16 and BF16, accepts a "transformer." prefix, ignores the attn.bias/masked_bias
       buffers and an lm_head.weight equal to wte, takes the shape from the tensors and
       n_head from the argument, the metadata, or C/64. Every name, dtype, shape and
       offset is checked: a malformed or truncated file is an error and creates nothing.
       Resume state (AdamW moments and step, schedule step, data position, RNG, and a
       fingerprint of the weights it goes with) is a second file, MODEL.state.

   TOKENIZERS
       One type, lm_tokenizer, covers three kinds of tokenizer:
         bytes   lm_tok_bytes(): id = byte value, vocabulary 256. The default everywhere.
         BPE     lm_bpe_train() or lm_tok_load(): a byte-level BPE learned from your text.
                 Ids 0..255 are the single bytes; id 256+i is the i-th merge.
         GPT-2   lm_tok_load_gpt2(): GPT-2's own vocabulary (encoder.json + vocab.bpe),
                 encoding exactly as GPT-2's encoder.py does (50257 ids; 50256 is
                 <|endoftext|>, which encoding never produces and decoding spells out).
       Every id stands for one or more bytes, so any byte string - NUL bytes and invalid
       UTF-8 included - encodes, and decoding the ids gives back exactly the same bytes.

       Both BPE kinds encode the same way. First the text is cut into pre-tokens with
       GPT-2's pattern
           's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
       (leftmost alternative wins, quantifiers greedy): contractions, words with their
       leading space, numbers, runs of punctuation, and whitespace, where a run of spaces
       before a word leaves its last space to the word. \p{L} and \p{N} are the Unicode
       letter and number categories and \s the White_Space property, from a table of
       Unicode 15.0 (what Python's `regex` module uses). Bytes that are not well-formed
       UTF-8 (stray continuation bytes, overlong forms, surrogates, truncated sequences)
       each count as one character of the "punctuation" class [^\s\p{L}\p{N}], exactly as
       Python sees them after bytes.decode("utf-8", "surrogateescape"). Merges never cross
       a pre-token boundary. Then each pre-token starts as its bytes and, while some
       adjacent pair has a merge, the pair with the lowest merge rank is merged everywhere
       in the pre-token (left to right, non-overlapping). The cost is O(L log L) for a
       pre-token of L bytes (a heap of candidate pairs), so long runs stay fast.

       Training (lm_bpe_train) counts the distinct pre-tokens of the text, then repeatedly
       merges the most frequent adjacent pair of tokens, ties going to the pair with the
       smaller left id, then the smaller right id: the result depends only on the text and
       the vocabulary size. Each merge rewrites only the places where its pair occurs, so
       training a 4096-token vocabulary on 1 MB of text takes well under a second. It
       stops at vocab_size tokens or when no pair is left (lm_tok_vocab_size() tells),
       and never makes a token longer than 1024 bytes.

       BPE FILE FORMAT (lm_tok_save / lm_tok_load), version 1: ASCII text, '\n' line ends.
           lm-bpe 1            magic and format version
           pretok gpt2         the pre-tokenizer (the only one in version 1)
           merges N            number of merges, 0 <= N <= 1048320
           L R                 N lines: token 256+i is token L followed by token R,
           ...                 decimal ids with L, R < 256+i, no leading zeros
       The file ends after the last merge line; nothing else (no spaces, no comments) is
       allowed. The loader checks every line, number, id and length and rejects a
       duplicate pair, a token longer than 1024 bytes, or a truncated file with
       LM_ERR_FORMAT. lm_tok_bytes() saves as a file with 0 merges. GPT-2 tokenizers are
       not saved in this format: keep encoder.json and vocab.bpe, which are read just as
       strictly (JSON syntax and escapes, ids 0..N-1 each once, distinct strings, and every
       merge's two parts and its result must be tokens).

   LICENCE: MIT or public domain, your choice; see the end of the file.
*/
#ifndef LM_H
#define LM_H

/* ---------------------------------------------------------------------------------------
   Config and portability
   --------------------------------------------------------------------------------------- */
#include <stddef.h>
#include <stdint.h>

#ifdef LM_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define LMDEF static __attribute__((unused))  /* a program need not call every function */
#else
#define LMDEF static
#endif
#else
#define LMDEF extern
#endif

#if defined(LM_MALLOC) && !defined(LM_FREE) || !defined(LM_MALLOC) && defined(LM_FREE)
#error "lm.h: define LM_MALLOC and LM_FREE together, or neither"
#endif

#ifndef LM_MAX_THREADS
#define LM_MAX_THREADS 64
#endif

/* SIMD path, from what the compiler was told to target. */
#if !defined(LM_NO_SIMD) && defined(__AVX512F__) && defined(__FMA__)
#define LM_AVX512 1
#define LM_AVX2 1
#elif !defined(LM_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define LM_AVX2 1
#elif !defined(LM_NO_SIMD) && (defined(__ARM_NEON) || defined(__ARM_NEON__)) && \
    (defined(__aarch64__) || defined(__ARM_FEATURE_FMA))
#define LM_NEON 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
   Public API: errors, RNG, arenas
   --------------------------------------------------------------------------------------- */
enum {
    LM_OK = 0,
    LM_ERR_ARG = -1,     /* a bad argument: wrong shape, out-of-range value        */
    LM_ERR_MEM = -2,     /* an allocation or an arena ran out                      */
    LM_ERR_IO = -3,      /* a file could not be opened, read or written            */
    LM_ERR_FORMAT = -4,  /* a file is malformed, truncated or of the wrong kind    */
    LM_ERR_NUMERIC = -5  /* a NaN or an infinity where a number was needed         */
};

LMDEF const char *lm_error(void);            /* the reason for the last failure       */
LMDEF void lm_clear_error(void);
LMDEF const char *lm_simd_name(void);        /* "avx512", "avx2", "neon" or "scalar"  */

/* Log hook: every message the library prints goes through it (default: stderr). */
typedef void (*lm_log_fn)(void *user, const char *msg);
LMDEF void lm_set_log(lm_log_fn fn, void *user);
/* Format a message (%s %d %u %ld %lu %zu %lld %llu %x %g %c) and send it to the hook. */
LMDEF void lm_log(const char *fmt, ...);

/* A small, fast generator (splitmix64) whose stream is the same on every platform. The
   whole state is one integer, so a checkpoint can carry it. */
typedef struct lm_rng { uint64_t state; } lm_rng;
LMDEF lm_rng lm_rng_seed(uint64_t seed);
LMDEF uint64_t lm_rng_u64(lm_rng *r);
LMDEF uint32_t lm_rng_below(lm_rng *r, uint32_t n);  /* uniform in [0, n)                  */
LMDEF float lm_rng_uniform(lm_rng *r);               /* uniform in [0, 1)                  */
LMDEF float lm_rng_normal(lm_rng *r);                /* standard normal (Box-Muller)       */

typedef struct lm_arena {
    unsigned char *base;  /* the block                                                   */
    size_t cap;           /* its size in bytes                                           */
    size_t used;          /* bytes handed out so far                                     */
    size_t peak;          /* the most ever in use: the high-water mark                   */
    int owned;            /* 1 if the arena allocated base itself                        */
    void *raw;            /* what LM_MALLOC returned, when owned                         */
    size_t want;          /* the most ever asked for, including requests that failed     */
} lm_arena;
LMDEF int lm_arena_init(lm_arena *a, size_t cap);                 /* LM_MALLOC a block */
LMDEF void lm_arena_init_buffer(lm_arena *a, void *buf, size_t cap); /* caller's buffer */
LMDEF void *lm_arena_alloc(lm_arena *a, size_t bytes);      /* 64-aligned; NULL if full */
LMDEF void *lm_arena_calloc(lm_arena *a, size_t bytes);     /* same, zero-filled         */
LMDEF size_t lm_arena_mark(const lm_arena *a);
LMDEF void lm_arena_reset(lm_arena *a, size_t mark);        /* free all after the mark   */
LMDEF void lm_arena_free(lm_arena *a);

/* ---------------------------------------------------------------------------------------
   Public API: threads and GEMM
   --------------------------------------------------------------------------------------- */
LMDEF int lm_set_threads(int n);   /* 0 = all cores; returns the count now in use        */
LMDEF int lm_get_threads(void);
LMDEF int lm_num_cores(void);
/* Run fn(ctx, i) for i in [0, n) across the pool; returns when all are done. */
typedef void (*lm_task_fn)(void *ctx, int i);
LMDEF void lm_parallel_for(int n, lm_task_fn fn, void *ctx);

/* C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is M x K, op(B) is K x N.
   ta: A is stored K x M (transposed); tb: B is stored N x K. lda/ldb/ldc are row strides.
   When beta == 0, C is not read (it may hold NaN). */
LMDEF void lm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* The portable reference path, always compiled, for tests and benchmarks. */
LMDEF void lm_gemm_scalar(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *B, int ldb, float beta, float *C, int ldc);

#include "parts/gemm_api.inc" /*@@PART@@*/

/* ---------------------------------------------------------------------------------------
   Public API: tensors and autograd
   A tensor is a float32 row-major array of up to 4 dims, with an optional gradient of the
   same shape. Ops record themselves on a graph (a tape in a per-step arena); lm_backward
   walks the tape in reverse. Every op is one forward and one backward function.
   --------------------------------------------------------------------------------------- */
#define LM_MAX_DIMS 4

typedef struct lm_tensor {
    float *data;             /* values, row-major                                        */
    float *grad;             /* d loss / d data, same shape; NULL until something flows  */
    int ndim;
    int shape[LM_MAX_DIMS];
    int size;                /* number of elements                                        */
    int requires_grad;       /* gradients are wanted for this tensor                      */
    struct lm_node *node;    /* the op that produced it; NULL for leaves                  */
} lm_tensor;

typedef struct lm_graph {
    lm_arena *arena;         /* where tensors, grads and tape nodes live                  */
    struct lm_node *last;    /* the tape: most recent node, linked backwards              */
    int training;            /* dropout active; masks drawn from rng                       */
    int no_grad;             /* record nothing: inference                                 */
    lm_rng rng;
    int failed;              /* sticky: an op ran out of memory or got bad shapes         */
    int n_spare;             /* backward recycles dead gradient buffers:                  */
    float *spare[16];        /*   free buffers, and                                       */
    size_t spare_len[16];    /*   their sizes in floats                                   */
} lm_graph;

/* An op is a forward and a backward function over a node. */
typedef struct lm_node lm_node;
typedef void (*lm_op_fn)(lm_node *n);
typedef struct lm_op { const char *name; lm_op_fn forward, backward; } lm_op;
struct lm_node {
    const lm_op *op;
    lm_tensor *out;
    lm_tensor *in[4];        /* inputs (NULL where unused)                                */
    float f[4];              /* float parameters (scale, eps, p, ...)                     */
    int i[6];                /* int parameters (heads, flags, ...)                        */
    const int *ids;          /* integer inputs: token ids, targets, lengths               */
    float *saved;            /* op-owned buffer kept from forward for backward            */
    lm_graph *g;             /* the graph it belongs to                                   */
    lm_node *prev;
};

LMDEF void lm_graph_init(lm_graph *g, lm_arena *arena);
LMDEF void lm_graph_reset(lm_graph *g, size_t mark); /* drop the tape, reset the arena */
/* New tensors on the graph's arena: uninitialised, zeroed, or a leaf over your data. */
LMDEF lm_tensor *lm_tensor_new(lm_graph *g, int ndim, const int *shape);
LMDEF lm_tensor *lm_tensor_zeros(lm_graph *g, int ndim, const int *shape);
LMDEF lm_tensor *lm_tensor_wrap(lm_graph *g, float *data, int ndim, const int *shape,
                                int requires_grad);
LMDEF lm_tensor *lm_tensor_2d(lm_graph *g, int rows, int cols);
/* The building block of every op below; use it to add your own. lm_node_new makes a node
   for op over the inputs with an output of the given shape (data allocated, not yet
   computed); set its parameters (f, i, ids), then lm_node_run computes the forward and,
   unless the graph is in no_grad mode, records the node on the tape. Both pass NULL
   through: an op given a NULL input returns NULL, and so does one that runs out of memory
   (g->failed is then set and lm_error() says why). */
LMDEF lm_node *lm_node_new(lm_graph *g, const lm_op *op, int nin, lm_tensor **in, int ndim,
                           const int *shape);
LMDEF lm_tensor *lm_node_run(lm_node *n);
/* Seed d(out)/d(out) = 1 (out must have one element) and run the tape backwards. */
LMDEF int lm_backward(lm_graph *g, lm_tensor *out);

/* Elementwise with broadcast: b's shape must be a suffix of a's (a bias row, a scalar). */
LMDEF lm_tensor *lm_add(lm_graph *g, lm_tensor *a, lm_tensor *b);
LMDEF lm_tensor *lm_sub(lm_graph *g, lm_tensor *a, lm_tensor *b);
LMDEF lm_tensor *lm_mul(lm_graph *g, lm_tensor *a, lm_tensor *b);
LMDEF lm_tensor *lm_scale(lm_graph *g, lm_tensor *a, float s);
/* a (..., K) times b (K, N), or b (N, K) when tb: (..., N). */
LMDEF lm_tensor *lm_matmul(lm_graph *g, lm_tensor *a, lm_tensor *b, int tb);
/* x (..., in) w (in, out) + bias (out) [bias may be NULL]: a Conv1D/linear layer. */
LMDEF lm_tensor *lm_linear(lm_graph *g, lm_tensor *x, lm_tensor *w, lm_tensor *bias);
LMDEF lm_tensor *lm_sum(lm_graph *g, lm_tensor *a);   /* all elements -> scalar */
LMDEF lm_tensor *lm_mean(lm_graph *g, lm_tensor *a);
LMDEF lm_tensor *lm_relu(lm_graph *g, lm_tensor *a);
LMDEF lm_tensor *lm_gelu(lm_graph *g, lm_tensor *a);  /* tanh form, as GPT-2 */
LMDEF lm_tensor *lm_tanh(lm_graph *g, lm_tensor *a);
LMDEF lm_tensor *lm_sigmoid(lm_graph *g, lm_tensor *a);
LMDEF lm_tensor *lm_softmax(lm_graph *g, lm_tensor *a);      /* over the last dim */
LMDEF lm_tensor *lm_log_softmax(lm_graph *g, lm_tensor *a);  /* over the last dim */
LMDEF lm_tensor *lm_layernorm(lm_graph *g, lm_tensor *x, lm_tensor *w, lm_tensor *b, float eps);
/* Rows of table (V, C) picked by ids[n]: (n, C), or (B, T, C) via lm_reshape. */
LMDEF lm_tensor *lm_embedding(lm_graph *g, lm_tensor *table, const int *ids, int n);
/* Multi-head attention over a fused qkv (B, T, 3C) -> (B, T, C), heads of C/n_head.
   causal: position t sees 0..t. lens (may be NULL): batch row b sees keys < lens[b]. */
LMDEF lm_tensor *lm_attention(lm_graph *g, lm_tensor *qkv, int n_head, int causal,
                              const int *lens);
LMDEF lm_tensor *lm_reshape(lm_graph *g, lm_tensor *a, int ndim, const int *shape);
LMDEF lm_tensor *lm_transpose(lm_graph *g, lm_tensor *a);   /* swap the last two dims */
/* Columns [start, start+len) of the last dim. */
LMDEF lm_tensor *lm_slice(lm_graph *g, lm_tensor *a, int start, int len);
/* Rows idx[n] of a 2-D (or (B,T,C) seen as (B*T, C)) tensor: (n, C). */
LMDEF lm_tensor *lm_gather_rows(lm_graph *g, lm_tensor *a, const int *idx, int n);
LMDEF lm_tensor *lm_dropout(lm_graph *g, lm_tensor *a, float p);
/* Losses, all means over the counted items -> scalar.
   cross_entropy: logits (N, V), targets[N]; targets equal to ignore_index are skipped. */
LMDEF lm_tensor *lm_cross_entropy(lm_graph *g, lm_tensor *logits, const int *targets,
                                  int ignore_index);
LMDEF lm_tensor *lm_bce_logits(lm_graph *g, lm_tensor *logits, lm_tensor *targets);
LMDEF lm_tensor *lm_mse(lm_graph *g, lm_tensor *pred, lm_tensor *target);

/* ---------------------------------------------------------------------------------------
   Public API: parameters and optimizers
   A model's parameters live in one block (and their gradients in another) so optimizers,
   clipping and checkpoints are loops over one array. Weight decay applies to tensors of 2
   or more dims (matrices and embeddings), never to biases and LayerNorm.
   --------------------------------------------------------------------------------------- */
#define LM_NAME_MAX 64
typedef struct lm_params {
    int n;                   /* number of tensors                                         */
    lm_tensor *t;            /* (n) the tensors; data and grad point into the blocks      */
    char (*names)[LM_NAME_MAX]; /* (n) checkpoint names                                   */
    size_t total;            /* floats in all tensors                                     */
    float *data, *grad;      /* (total) values and gradients                              */
    float *m, *v;            /* (total) AdamW moments (or SGD velocity in m)              */
    long step;               /* optimizer steps taken                                     */
} lm_params;

/* Reserve n tensors of the given shapes in arena a; data zeroed, grad zeroed. */
LMDEF int lm_params_init(lm_params *p, lm_arena *a, int n, const int *ndims,
                         const int (*shapes)[LM_MAX_DIMS], const char *const *names);
LMDEF int lm_params_find(const lm_params *p, const char *name);
LMDEF void lm_params_zero_grad(lm_params *p);
/* Scale all gradients by min(1, max_norm / (||g|| + 1e-6)); returns ||g|| before. */
LMDEF float lm_clip_grad_norm(lm_params *p, float max_norm);

enum { LM_SCHED_COSINE = 0, LM_SCHED_CONSTANT = 1 };
typedef struct lm_train_opts {
    float lr;                /* peak learning rate                  (1e-3)                */
    float min_lr;            /* cosine floor, reached at the last step (1e-4)             */
    int warmup;              /* linear warmup steps                 (100)                 */
    int steps;               /* total steps S of the schedule       (2000)                */
    int schedule;            /* LM_SCHED_COSINE or LM_SCHED_CONSTANT                      */
    float wd;                /* decoupled weight decay              (0.1)                 */
    float beta1, beta2, eps; /* AdamW                               (0.9, 0.99, 1e-8)     */
    float clip;              /* global grad-norm clip, 0 = none     (1.0)                 */
} lm_train_opts;
LMDEF lm_train_opts lm_train_defaults(void);
LMDEF float lm_lr_at(const lm_train_opts *o, int step);   /* schedule, step 0..S-1 */
/* One AdamW step over all parameters at learning rate lr (DESIGN 3.4). */
LMDEF int lm_adamw_step(lm_params *p, const lm_train_opts *o, float lr);
/* SGD with momentum mu: v = mu v + g; p -= lr (v + wd p on decayed tensors). */
LMDEF int lm_sgd_step(lm_params *p, float lr, float momentum, float wd);

#include "parts/tok_api.inc" /*@@PART@@*/

/* ---------------------------------------------------------------------------------------
   Public API: GPT (decoder-only Transformer, GPT-2 layout)
   --------------------------------------------------------------------------------------- */
typedef struct lm_gpt_config {
    int n_layer;             /* blocks                              (4)                   */
    int n_head;              /* attention heads; must divide n_embd (4)                   */
    int n_embd;              /* width C                             (128)                 */
    int n_ctx;               /* longest sequence T                  (64)                  */
    int vocab;               /* V                                   (256)                 */
} lm_gpt_config;

typedef struct lm_gpt_block {
    lm_tensor *ln_1_w, *ln_1_b;      /* (C) (C)                                           */
    lm_tensor *attn_w, *attn_b;      /* (C, 3C) (3C): q, k, v column blocks               */
    lm_tensor *attn_proj_w, *attn_proj_b; /* (C, C) (C)                                   */
    lm_tensor *ln_2_w, *ln_2_b;      /* (C) (C)                                           */
    lm_tensor *fc_w, *fc_b;          /* (C, 4C) (4C)                                      */
    lm_tensor *proj_w, *proj_b;      /* (4C, C) (C)                                       */
} lm_gpt_block;

typedef struct lm_gpt {
    lm_gpt_config cfg;
    lm_tensor *wte;                  /* (V, C) token embedding, also the output head      */
    lm_tensor *wpe;                  /* (n_ctx, C) position embedding                     */
    lm_gpt_block *h;                 /* (n_layer) blocks                                  */
    lm_tensor *ln_f_w, *ln_f_b;      /* (C) (C) final LayerNorm                           */
    lm_params params;                /* all of the above, in checkpoint order             */
    lm_arena arena;                  /* params, grads, optimizer state, KV cache          */
    lm_arena work;                   /* per-step graph and activations, reset each step   */
    float *k_cache, *v_cache;        /* (n_layer, n_ctx, C) for generation                */
    int cache_len;                   /* positions held in the cache                       */
    float *gen_logits;               /* (V) generation scratch: logits,                   */
    int *gen_sort, *gen_window;      /* (V) sort order, (n_ctx) the tokens in view        */
} lm_gpt;

/* Zero fields of cfg take the defaults above. Fresh init of DESIGN 3.1. NULL on error. */
LMDEF lm_gpt *lm_gpt_new(const lm_gpt_config *cfg, uint64_t seed);
LMDEF void lm_gpt_free(lm_gpt *m);
LMDEF size_t lm_gpt_num_params(const lm_gpt *m);
/* Build the forward graph for inputs (B, T) on g; returns logits (B, T, V). */
LMDEF lm_tensor *lm_gpt_forward(lm_gpt *m, lm_graph *g, const int *inputs, int B, int T);
/* Mean cross-entropy of targets (B, T) given inputs (B, T); NAN on error. */
LMDEF float lm_gpt_loss(lm_gpt *m, const int *inputs, const int *targets, int B, int T);
/* Forward, backward, clip, AdamW at the schedule's lr for step s (0-based). Returns the
   loss before the update; NAN on error (lm_error() says why). Allocates nothing. */
LMDEF float lm_gpt_train_step(lm_gpt *m, const lm_train_opts *o, const int *inputs,
                              const int *targets, int B, int T, int step);
/* DESIGN 3.3 eval: mean cross-entropy over the non-overlapping windows of length T. */
LMDEF float lm_gpt_eval(lm_gpt *m, const int *tokens, size_t n, int T);

/* Generation with a KV cache. */
typedef struct lm_sampler {
    float temperature;       /* 0 = greedy argmax                   (0.8)                 */
    int top_k;               /* keep the k most likely, 0 = all     (0)                   */
    float top_p;             /* nucleus: smallest set with mass >= p (1.0)                */
    lm_rng rng;
} lm_sampler;
LMDEF lm_sampler lm_sampler_defaults(uint64_t seed);
/* Feed one token at the next cached position (cache_len, which must be < n_ctx) and fill
   logits (V) for the token after it. */
LMDEF int lm_gpt_step_token(lm_gpt *m, int token, float *logits);
LMDEF void lm_gpt_reset_cache(lm_gpt *m);
/* Draw a token from logits (V), which it overwrites. scratch holds V ints; it may be NULL
   when top_k == 0 and top_p >= 1. */
LMDEF int lm_sample(lm_sampler *s, float *logits, int *scratch, int V);
/* Continue prompt (n_prompt >= 1 tokens) by n_new tokens; each new token goes to
   emit(user, token) as soon as it is drawn (emit may be NULL), and to out (may be NULL,
   capacity n_new). The window slides once the text outgrows n_ctx. Returns LM_OK. */
LMDEF int lm_gpt_generate(lm_gpt *m, const int *prompt, int n_prompt, int n_new,
                          lm_sampler *s, void (*emit)(void *user, int token), void *user,
                          int *out);

/* ---------------------------------------------------------------------------------------
   Public API: bidirectional encoder (BERT-style pretraining, then fine-tuning)
   The same blocks as the GPT without the causal mask; a padding mask hides positions past
   each text's length. Heads: masked-LM (tied to the token embedding, plus a bias), and a
   classifier on the mean of the valid positions (n_class logits, or one logit for a
   binary task trained with BCE-with-logits).
   --------------------------------------------------------------------------------------- */
typedef struct lm_encoder_config {
    int n_layer, n_head, n_embd, n_ctx;   /* as lm_gpt_config (defaults 4, 4, 128, 64)     */
    int vocab;               /* including the special ids below (default 256 + 2)         */
    int mask_id;             /* the [MASK] token of masked-LM      (default vocab - 2)    */
    int pad_id;              /* filler after a text's end          (default vocab - 1)    */
    int n_class;             /* classifier outputs; 1 = binary (BCE) (default 2)          */
} lm_encoder_config;

typedef struct lm_encoder {
    lm_encoder_config cfg;
    lm_tensor *wte, *wpe;            /* (V, C) (n_ctx, C)                                 */
    lm_gpt_block *h;                 /* (n_layer)                                         */
    lm_tensor *ln_f_w, *ln_f_b;      /* (C) (C)                                           */
    lm_tensor *mlm_b;                /* (V) masked-LM output bias                         */
    lm_tensor *cls_w, *cls_b;        /* (C, n_class) (n_class) classifier                 */
    lm_params params;
    lm_arena arena, work;
} lm_encoder;

LMDEF lm_encoder *lm_encoder_new(const lm_encoder_config *cfg, uint64_t seed);
LMDEF void lm_encoder_free(lm_encoder *e);
/* Hidden states (B, T, C) of tokens (B, T); lens[b] valid positions in row b. */
LMDEF lm_tensor *lm_encoder_forward(lm_encoder *e, lm_graph *g, const int *tokens,
                                    const int *lens, int B, int T);
/* Masked-LM step, BERT's recipe: 15% of the valid positions chosen (at least one per
   row); of those 80% become mask_id, 10% a random token below n_random (e.g. 256 for
   bytes), 10% stay; the loss counts only chosen positions. Draws from rng. Returns the
   loss before the update, NAN on error. train: 0 = loss only. */
LMDEF float lm_encoder_mlm_step(lm_encoder *e, const lm_train_opts *o, const int *tokens,
                                const int *lens, int B, int T, int n_random, lm_rng *rng,
                                int step, int train);
/* Classification step: cross-entropy over n_class (or BCE for n_class 1, labels 0/1).
   train: 0 = loss only. */
LMDEF float lm_encoder_cls_step(lm_encoder *e, const lm_train_opts *o, const int *tokens,
                                const int *lens, const int *labels, int B, int T, int step,
                                int train);
/* Class scores (B, n_class): probabilities (sigmoid for n_class 1). */
LMDEF int lm_encoder_predict(lm_encoder *e, const int *tokens, const int *lens, int B, int T,
                             float *probs);
/* Mean over the first lens[b] positions of each row of x (B, T, C) -> (B, C). */
LMDEF lm_tensor *lm_mean_pool(lm_graph *g, lm_tensor *x, const int *lens);

/* ---------------------------------------------------------------------------------------
   Public API: evaluation metrics
   --------------------------------------------------------------------------------------- */
typedef struct lm_metrics {
    int n_class;
    long n;                  /* items counted                                             */
    double accuracy, macro_f1;
    double *precision, *recall, *f1;  /* (n_class) each; caller-provided storage          */
    long *support;           /* (n_class) true items per class                            */
} lm_metrics;
/* confusion (n_class x n_class, row = true class, column = predicted), counted from
   truth[n] and pred[n]; then per-class precision, recall, F1 (0 where undefined), macro
   F1 and accuracy into m (whose arrays the caller provides). */
LMDEF int lm_confusion(const int *truth, const int *pred, long n, int n_class, long *confusion);
LMDEF int lm_metrics_from_confusion(const long *confusion, int n_class, lm_metrics *m);
LMDEF double lm_perplexity(double mean_loss);

/* ---------------------------------------------------------------------------------------
   Public API: data order (DESIGN 3.3)
   --------------------------------------------------------------------------------------- */
enum { LM_ORDER_RANDOM = 0, LM_ORDER_SEQUENTIAL = 1 };
typedef struct lm_data {
    const int *tokens;       /* the training tokens                                       */
    size_t n;                /* how many                                                  */
    int order;               /* LM_ORDER_RANDOM or LM_ORDER_SEQUENTIAL                    */
    size_t pos;              /* sequential: next position                                 */
    lm_rng rng;              /* random: window offsets                                    */
} lm_data;
LMDEF lm_data lm_data_init(const int *tokens, size_t n, int order, uint64_t seed);
/* Fill inputs and targets (B*T each). Fails if n < B*T + 1 (sequential) or T + 1. */
LMDEF int lm_data_next(lm_data *d, int B, int T, int *inputs, int *targets);

#include "parts/st_api.inc" /*@@PART@@*/

/* ---------------------------------------------------------------------------------------
   Public API: GPT checkpoints (DESIGN 3.2)
   --------------------------------------------------------------------------------------- */
#ifndef LM_NO_STDIO
/* Write the weights as F32 safetensors, atomically (temporary file, fsync, rename). */
LMDEF int lm_gpt_save(const lm_gpt *m, const char *path);
/* Load a checkpoint (ours or Hugging Face GPT-2); n_head = 0: from metadata, else C/64. */
LMDEF lm_gpt *lm_gpt_load(const char *path, int n_head);
/* Training state for exact resume, saved beside the model as PATH.state: AdamW moments
   and step count, and the caller's numbers (schedule step, data position, RNG). */
typedef struct lm_train_state {
    long step;               /* schedule steps completed                                  */
    uint64_t data_pos;       /* lm_data.pos                                               */
    uint64_t rng;            /* lm_data.rng.state                                         */
} lm_train_state;
LMDEF int lm_gpt_save_state(const lm_gpt *m, const char *model_path, const lm_train_state *s);
LMDEF int lm_gpt_load_state(lm_gpt *m, const char *model_path, lm_train_state *s);
#endif
/* From a safetensors image in memory; the model is untouched on error. */
LMDEF lm_gpt *lm_gpt_load_mem(const void *buf, size_t len, int n_head);

#ifdef __cplusplus
}
#endif
#endif /* LM_H */

/* =======================================================================================
   IMPLEMENTATION
   ======================================================================================= */
#ifdef LM_IMPLEMENTATION
#ifndef LM_IMPLEMENTATION_DONE
#define LM_IMPLEMENTATION_DONE

#include <string.h>
#include <math.h>
#include <stdarg.h>
#include <limits.h>
#include <float.h>
#ifndef LM_NO_STDIO
#include <stdio.h>
#endif
#ifndef LM_MALLOC
#include <stdlib.h>
#define LM_MALLOC(n) malloc(n)
#define LM_FREE(p) free(p)
#endif
#ifndef LM_ASSERT
#include <assert.h>
#define LM_ASSERT(x) assert(x)
#endif
#if !defined(LM_NO_THREADS)
#include <pthread.h>
#include <unistd.h>
#endif
#if defined(LM_AVX2)
#include <immintrin.h>
#endif
#if defined(LM_NEON)
#include <arm_neon.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
   Errors and logging.
   A failing function records one line here and returns an error code; the caller decides
   what to do. The message is formatted by a tiny vsnprintf-free formatter so that it also
   works under LM_NO_STDIO.
   --------------------------------------------------------------------------------------- */
static char lm__errbuf[512];

LMDEF const char *lm_error(void) { return lm__errbuf[0] ? lm__errbuf : "no error"; }
LMDEF void lm_clear_error(void) { lm__errbuf[0] = 0; }

/* Minimal formatter: %s %d %u %ld %lu %zu %lld %llu %x %g %c %%; enough for messages. */
static void lm__vfmt(char *out, size_t cap, const char *fmt, va_list ap) {
    size_t n = 0;
    char num[64];
    if (cap == 0) return;
#define LM__PUT(c) do { if (n + 1 < cap) out[n++] = (char)(c); } while (0)
    for (; *fmt; fmt++) {
        const char *s = num;
        int len = 0;
        if (*fmt != '%') { LM__PUT(*fmt); continue; }
        fmt++;
        if (*fmt == 's') { s = va_arg(ap, const char *); if (!s) s = "(null)"; }
        else if (*fmt == 'c') { num[0] = (char)va_arg(ap, int); num[1] = 0; }
        else if (*fmt == '%') { num[0] = '%'; num[1] = 0; }
        else if (*fmt == 'g') {
            /* %g: sign, integer part, 6 significant digits; plenty for messages */
            double v = va_arg(ap, double);
            if (v != v) strcpy(num, "nan");
            else if (v > DBL_MAX || v < -DBL_MAX) strcpy(num, v < 0 ? "-inf" : "inf");
            else {
                int e = 0, k, p = 0;
                double a = v < 0 ? -v : v;
                if (v < 0) num[p++] = '-';
                if (a != 0) { while (a >= 10) { a /= 10; e++; } while (a < 1) { a *= 10; e--; } }
                if (e >= -4 && e < 6) {
                    /* fixed notation */
                    double x = v < 0 ? -v : v;
                    unsigned long long ip = (unsigned long long)x;
                    double fp = x - (double)ip;
                    char tmp[32]; int t = 0, digits = 0, fd = 6 - (e >= 0 ? e + 1 : 0), last;
                    do { tmp[t++] = (char)('0' + ip % 10); ip /= 10; } while (ip);
                    while (t) num[p++] = tmp[--t];
                    if (e < 0) fd = 6 - e - 1;
                    num[p++] = '.';
                    last = p;
                    for (k = 0; k < fd && k < 12; k++) {
                        int d; fp *= 10; d = (int)fp; fp -= d; num[p++] = (char)('0' + d);
                        if (d) last = p;
                        digits++;
                    }
                    p = last; if (num[p - 1] == '.') p--;
                } else {
                    int d;
                    d = (int)a; num[p++] = (char)('0' + d); a -= d; num[p++] = '.';
                    for (k = 0; k < 5; k++) { a *= 10; d = (int)a; a -= d; num[p++] = (char)('0' + d); }
                    num[p++] = 'e'; if (e < 0) { num[p++] = '-'; e = -e; } else num[p++] = '+';
                    if (e >= 100) num[p++] = (char)('0' + e / 100);
                    num[p++] = (char)('0' + (e / 10) % 10); num[p++] = (char)('0' + e % 10);
                }
                num[p] = 0;
            }
        } else {
            /* integers: optional l, ll, z, then d/u/x */
            int lng = 0, isz = 0, base = 10, sgn = 0;
            unsigned long long u = 0;
            char tmp[32]; int t = 0, p = 0;
            while (*fmt == 'l') { lng++; fmt++; }
            if (*fmt == 'z') { isz = 1; fmt++; }
            if (*fmt == 'x') base = 16;
            if (*fmt == 'd' || *fmt == 'i') {
                long long v = isz ? (long long)va_arg(ap, size_t)
                            : lng >= 2 ? va_arg(ap, long long)
                            : lng == 1 ? (long long)va_arg(ap, long) : (long long)va_arg(ap, int);
                if (v < 0) { sgn = 1; u = (unsigned long long)(-(v + 1)) + 1; } else u = (unsigned long long)v;
            } else {
                u = isz ? (unsigned long long)va_arg(ap, size_t)
                  : lng >= 2 ? va_arg(ap, unsigned long long)
                  : lng == 1 ? (unsigned long long)va_arg(ap, unsigned long)
                  : (unsigned long long)va_arg(ap, unsigned int);
            }
            do { tmp[t++] = "0123456789abcdef"[u % (unsigned)base]; u /= (unsigned)base; } while (u);
            if (sgn) num[p++] = '-';
            while (t) num[p++] = tmp[--t];
            num[p] = 0;
        }
        for (len = 0; s[len]; len++) LM__PUT(s[len]);
    }
#undef LM__PUT
    out[n] = 0;
}

static void lm__fmt(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lm__vfmt(out, cap, fmt, ap);
    va_end(ap);
}

/* Record a failure; returns code so that callers can write `return lm__fail(...)`. */
static int lm__fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lm__vfmt(lm__errbuf, sizeof lm__errbuf, fmt, ap);
    va_end(ap);
    return code;
}

static void lm__default_log(void *user, const char *msg) {
    (void)user;
#ifndef LM_NO_STDIO
    fputs(msg, stderr);
    fputc('\n', stderr);
#else
    (void)msg;
#endif
}
static lm_log_fn lm__log_fn = lm__default_log;
static void *lm__log_user = NULL;
LMDEF void lm_set_log(lm_log_fn fn, void *user) {
    lm__log_fn = fn ? fn : lm__default_log;
    lm__log_user = user;
}
LMDEF void lm_log(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    lm__vfmt(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lm__log_fn(lm__log_user, buf);
}

LMDEF const char *lm_simd_name(void) {
#if defined(LM_AVX512)
    return "avx512";
#elif defined(LM_AVX2)
    return "avx2";
#elif defined(LM_NEON)
    return "neon";
#else
    return "scalar";
#endif
}

/* Overflow-checked size arithmetic for everything computed from untrusted numbers. */
static int lm__mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}

/* ---------------------------------------------------------------------------------------
   RNG: splitmix64. Integer-only state and output, so the stream is identical everywhere;
   floats are made from the top 24 bits, normals by Box-Muller in double precision.
   --------------------------------------------------------------------------------------- */
LMDEF lm_rng lm_rng_seed(uint64_t seed) {
    lm_rng r;
    r.state = seed;
    return r;
}
LMDEF uint64_t lm_rng_u64(lm_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
LMDEF uint32_t lm_rng_below(lm_rng *r, uint32_t n) {
    /* multiply-shift: unbiased enough for n far below 2^32, and exact across platforms */
    return n ? (uint32_t)(((lm_rng_u64(r) >> 32) * (uint64_t)n) >> 32) : 0;
}
LMDEF float lm_rng_uniform(lm_rng *r) {
    return (float)(lm_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}
LMDEF float lm_rng_normal(lm_rng *r) {
    /* u1 in (0, 1], u2 in [0, 1) from 53-bit integers */
    double u1 = ((double)(lm_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(lm_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---------------------------------------------------------------------------------------
   Arena: a bump allocator. Every block is 64-byte aligned (a cache line, and enough for
   AVX-512 loads). Running out is an error with a message, never a crash.
   --------------------------------------------------------------------------------------- */
LMDEF void lm_arena_init_buffer(lm_arena *a, void *buf, size_t cap) {
    /* align the start of the caller's buffer ourselves */
    uintptr_t p = (uintptr_t)buf, q = (p + 63) & ~(uintptr_t)63;
    a->base = (unsigned char *)q;
    a->cap = cap > (size_t)(q - p) ? cap - (size_t)(q - p) : 0;
    a->used = a->peak = a->want = 0;
    a->owned = 0;
    a->raw = NULL;
}
LMDEF int lm_arena_init(lm_arena *a, size_t cap) {
    void *p;
    memset(a, 0, sizeof *a);
    if (cap > (size_t)-1 - 64) return lm__fail(LM_ERR_MEM, "arena: size %zu too large", cap);
    p = LM_MALLOC(cap + 64);
    if (!p) return lm__fail(LM_ERR_MEM, "arena: cannot allocate %zu bytes", cap);
    lm_arena_init_buffer(a, p, cap + 64);
    a->cap = cap;
    a->raw = p;
    a->owned = 1;
    return LM_OK;
}
LMDEF void *lm_arena_alloc(lm_arena *a, size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    void *p;
    if (n >= bytes && a->used + n > a->want) a->want = a->used + n;
    if (n < bytes || n > a->cap - a->used)
        return lm__fail(LM_ERR_MEM, "arena exhausted: need %zu more bytes, %zu of %zu in use",
                        bytes, a->used, a->cap), (void *)NULL;
    p = a->base + a->used;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}
LMDEF void *lm_arena_calloc(lm_arena *a, size_t bytes) {
    void *p = lm_arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}
LMDEF size_t lm_arena_mark(const lm_arena *a) { return a->used; }
LMDEF void lm_arena_reset(lm_arena *a, size_t mark) { if (mark <= a->used) a->used = mark; }
LMDEF void lm_arena_free(lm_arena *a) {
    if (a->owned && a->raw) LM_FREE(a->raw);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------------------------------
   Thread pool. One global pool of worker threads that sleep on a condition variable. A job
   is n tasks; workers and the caller take task numbers from a shared counter until none are
   left. Which thread runs a task never matters: each task owns its outputs.
   --------------------------------------------------------------------------------------- */
static int lm__nthreads = 1;
static volatile int lm__in_job = 0;  /* a job is running: nested calls run serially      */

#if !defined(LM_NO_THREADS)
typedef struct lm__pool {
    pthread_t th[LM_MAX_THREADS];
    int nworkers;                    /* threads besides the caller                        */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned long generation;        /* bumped for each job                               */
    lm_task_fn fn;
    void *ctx;
    int n, next, busy;               /* tasks in the job, next to take, workers still in  */
    int quit;
} lm__pool;
static lm__pool lm__the_pool;
static int lm__pool_started = 0;

/* Take and run tasks until none are left. Called with the mutex NOT held. */
static void lm__pool_drain(lm__pool *p) {
    for (;;) {
        int i;
        pthread_mutex_lock(&p->mu);
        i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (i < 0) return;
        p->fn(p->ctx, i);
    }
}

static void *lm__pool_worker(void *arg) {
    lm__pool *p = (lm__pool *)arg;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->generation == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) { pthread_mutex_unlock(&p->mu); return NULL; }
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        lm__pool_drain(p);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void lm__pool_stop(void) {
    lm__pool *p = &lm__the_pool;
    int i;
    if (!lm__pool_started) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->nworkers; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    lm__pool_started = 0;
}

static int lm__pool_start(int nworkers) {
    lm__pool *p = &lm__the_pool;
    int i;
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    lm__pool_started = 1;
    for (i = 0; i < nworkers; i++) {
        if (pthread_create(&p->th[i], NULL, lm__pool_worker, p) != 0) break;
        p->nworkers = i + 1;
    }
    return p->nworkers + 1;
}
#endif

LMDEF int lm_num_cores(void) {
#if !defined(LM_NO_THREADS) && defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > LM_MAX_THREADS ? LM_MAX_THREADS : (int)n;
#else
    return 1;
#endif
}

LMDEF int lm_set_threads(int n) {
    if (n <= 0) n = lm_num_cores();
    if (n > LM_MAX_THREADS) n = LM_MAX_THREADS;
#if !defined(LM_NO_THREADS)
    if (n == lm__nthreads && (n == 1 || lm__pool_started)) return n;
    lm__pool_stop();
    lm__nthreads = n > 1 ? lm__pool_start(n - 1) : 1;
#else
    lm__nthreads = 1;
#endif
    return lm__nthreads;
}
LMDEF int lm_get_threads(void) { return lm__nthreads; }

LMDEF void lm_parallel_for(int n, lm_task_fn fn, void *ctx) {
    int i;
#if !defined(LM_NO_THREADS)
    if (lm__nthreads > 1 && n > 1 && !lm__in_job) {
        lm__pool *p = &lm__the_pool;
        pthread_mutex_lock(&p->mu);
        lm__in_job = 1;
        p->fn = fn; p->ctx = ctx; p->n = n; p->next = 0; p->busy = p->nworkers;
        p->generation++;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        lm__pool_drain(p);
        pthread_mutex_lock(&p->mu);
        while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
        lm__in_job = 0;
        pthread_mutex_unlock(&p->mu);
        return;
    }
#endif
    for (i = 0; i < n; i++) fn(ctx, i);
}

#include "parts/gemm_impl.inc" /*@@PART@@*/

#include "parts/vec_impl.inc" /*@@PART@@*/

#include "parts/core_impl.inc" /*@@PART@@*/

#include "parts/tok_impl.inc" /*@@PART@@*/

#include "parts/st_impl.inc" /*@@PART@@*/

#include "parts/gen_impl.inc" /*@@PART@@*/

#ifdef __cplusplus
}
#endif
#endif /* LM_IMPLEMENTATION_DONE */
#endif /* LM_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licences -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the lm.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication in perpetuity for the benefit of the public at
large and to the detriment of our heirs and successors in perpetuity of all
present and future rights to this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
