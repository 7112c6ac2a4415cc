/* lm.h - train and run small Transformer language models on a CPU, in one C header.
   Version 0.1.0 (LM_VERSION_STRING); see CHANGELOG.md for what changed.

   Do this:
       #define LM_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the implementation.
   Every other file includes it without the define and sees only the declarations.

   QUICK START (a whole program; `make test` compiles and runs it)
       #define LM_IMPLEMENTATION
       #include "lm.h"
       #include <stdio.h>

       int main(void) {
           lm_gpt_config cfg = {0};                 // zero fields take the defaults:
           cfg.vocab = 256;                         //   4 layers, 4 heads, 128 wide, context 64
           lm_gpt *m = lm_gpt_new(&cfg, 1337);      // fresh weights from seed 1337
           if (!m) { printf("%s\n", lm_error()); return 1; }
           lm_train_opts o = lm_train_defaults();   // AdamW, lr 1e-3 cosine to 1e-4, 2000 steps
           ...change any option you like: o.steps, o.lr, o.warmup...
           static int tokens[1 << 20];              // the training text, one byte a token
           size_t n = 0;
           ...read your text into tokens[0..n)...
           lm_data d = lm_data_init(tokens, n, LM_ORDER_RANDOM, 1337);
           static int in[12 * 64], tg[12 * 64];     // a batch: 12 rows of 64 tokens
           for (int step = 0; step < o.steps; step++) {
               if (lm_data_next(&d, 12, 64, in, tg) != LM_OK) break;   // targets: one later
               float loss = lm_gpt_train_step(m, &o, in, tg, 12, 64, step);
               if (loss != loss) { printf("%s\n", lm_error()); return 1; }
               if (step % 100 == 0) printf("step %d loss %.3f\n", step, loss);
           }
           if (lm_gpt_save(m, "model.safetensors") != LM_OK) printf("%s\n", lm_error());
           lm_gpt_free(m);
           return 0;
       }
   A line written ...like this... stands for code of your own. `make test` compiles this
   program, and the C examples of README.md, as they are printed here, with each such line
   filled in from tests/docs/, and runs them. `lm generate` (tools/lm_cli.c) shows loading
   and sampling; examples/ has a lesson for each step of the course.

   Functions that can fail return an int (LM_OK = 0, or a negative LM_ERR_* code), NULL or
   NaN; lm_error() then returns a one-line, human-readable reason. The library never exits
   or aborts on bad input.

   CONFIG MACROS (define before including)
       LM_IMPLEMENTATION   emit the implementation in this translation unit.
       LM_STATIC           make every function static (private to this translation unit).
       LM_ASSERT(x)        internal consistency checks (default: assert.h). Never used for
                           input validation: bad input is an error code, not an assert.
       LM_MALLOC(n)        allocator; define LM_MALLOC and LM_FREE together or neither.
       LM_FREE(p)          Arenas, models, tokenizers and file readers allocate (see MEMORY,
                           also for what running out leaves). LM_FREE(NULL) must be a no-op.
       LM_NO_SIMD          use only the portable scalar kernels (always compiled anyway,
                           so the SIMD paths can be checked against them).
       LM_NO_THREADS       no pthreads; everything runs on the calling thread.
       LM_NO_STDIO         no stdio or files: for bare-metal targets. Loading and saving from
                           memory buffers still works; logging goes to a callback.
       LM_MAX_THREADS      upper bound of the thread pool (default 64).
       LM_GEMM_KC, LM_GEMM_TN  shrink the GEMM's blocks, and with them its panel memory
                           (THREADS).

   SIMD is chosen from the compiler's own macros: __AVX512F__, __AVX2__ with __FMA__, and
   __ARM_NEON (aarch64 and armv7 with NEON-VFPv4). Build with -march=native (x86) or the right
   -mfpu (armv7) to get them; lm_simd_name() tells which path is compiled in.

   MEMORY
       An lm_arena is a bump allocator over one block, 64-byte aligned. A model keeps its
       parameters, gradients and optimizer state in a long-lived arena; each training step
       builds its graph and activations in a per-step ("work") arena that is reset at the
       start of the next step. The first steps size the work arena (it starts from an
       estimate and doubles until the step fits); after that a training step, an evaluation
       and a generated token allocate nothing. An arena can run over a buffer the caller
       owns (lm_arena_init_buffer), and lm_gpt_from_memory builds a model over weights in
       flash and one caller's buffer: that is how an embedded program runs with no malloc.
       lm_arena.peak is the high-water mark: run one step and you know what a run needs.
       When memory runs out (LM_MALLOC returns NULL, or a caller's buffer is too small), the
       function returns LM_ERR_MEM, NULL or NaN and lm_error() says so; it has freed what it
       had allocated, and left the object it was given usable: a failed training step leaves
       the weights, AdamW moments and step counts as they were, a failed lm_gpt_backward
       the gradients, a failed load or save the model and the files, a failed generation a
       KV cache that holds what it claims (nothing, if the prompt did not go in). Called
       again once memory is back, it gives exactly what a run that never failed would have. LM_FREE(NULL) must do nothing, as free(NULL) does.
       `make test-faults` fails every allocation of each operation in turn to hold lm.h to
       this.

   THREADS
       lm_set_threads(n) sizes one global pool (default 1, n = 0 means all cores). Work is
       cut into tasks whose boundaries depend only on the problem size, never on the thread
       count, and every task writes its own outputs, so results are bit-identical for any
       number of threads.
       What may run concurrently (with pthreads; `make test-tsan` checks it):
         - Calls on different objects from different threads at the same time: safe. Each
           lm_gpt, encoder, tokenizer, graph or arena is one object; two threads may each
           train, evaluate or generate with their own model at once, and get the very bits
           they would get alone.
         - One object from two threads at once: not safe, reading included. A model's
           KV cache, work arena and sampling buffers change on every call, generation and
           evaluation too. To serve several users from one model, give each thread its own
           lm_gpt: lm_gpt_from_memory over one copy of the weights (a buffer each) shares
           the weights, which it only reads.
         - The pool runs one caller's job at a time; a caller that finds it busy runs its
           tasks itself, so jobs are never mixed and results stay the same bits.
         - lm_set_threads and lm_get_threads may be called at any time from any thread
           (lm_set_threads waits for a running job), except from inside a task of
           lm_parallel_for. lm_set_log is for start-up, before other threads call lm.h.
         - lm_error() is per thread where the compiler has thread-local storage (GCC and
           Clang); with tcc, and with LM_NO_THREADS, it is one message for the program.
           LM_NO_THREADS builds keep their GEMM panels in one static array: call them from
           one thread at a time.
       Stack: every call uses a small, bounded stack - at most 3.7 KB measured (gcc -O2,
       x86-64) for a training step, generation, a GEMM, or training and using a BPE
       tokenizer: lm_test's small-stack tests run them on a 64 KB thread stack. The
       largest single frame is 3.6 KB, in lm_tok_load_gpt2_mem (-fstack-usage). So lm.h
       runs on a musl thread (128 KB) or a small RTOS task.
       Big buffers live in memory the library owns: each thread that runs GEMM tasks has
       one block for the packed panels (610 KB with AVX-512, 403 KB AVX2, 132 KB NEON,
       35 KB scalar; smaller with LM_GEMM_KC / LM_GEMM_TN). The pool's workers get theirs
       when they start and free it when they stop; any other thread gets its block on its
       first GEMM (out of memory there is an LM_ERR_MEM error, never a crash) and keeps it
       until the thread ends (or calls lm_thread_release: the main thread, whose block
       would otherwise stay until exit). LM_NO_THREADS uses one static block and never
       mallocs it.

   CONTENTS: the implementation reads in the order of the course; each section opens with
   a banner "N. Title", so a search for "5. The Transformer" finds it.
       1.  Errors, numbers and memory      errors, logging, hashes, RNG, arenas
       2.  Tensors and the graph           the tape, backward, gradient buffers
       3.  Ops                             each: the math, a plain scalar reference, forward
                                           and backward side by side (elementwise, matmul,
                                           reductions, activations, softmax, layernorm,
                                           embedding, attention, shape ops, dropout, mean
                                           pooling, losses)
       4.  Optimizers and the schedule     parameters, clipping, AdamW, SGD, warmup + cosine
       5.  The Transformer                 the block, the trunk and the training step that
                                           every model shares
       6.  The GPT                         GPT-2: layout, init, forward, training, eval, data
       7.  Generation                      the KV cache, sampling, a model over flash
       8.  The encoder                     masked-LM pretraining, fine-tuning, metrics
       9.  The encoder-decoder             nn.Transformer: training, greedy and beam decoding
       10. Compression                     Q8_0 weights, the quantized GPT, pruning
       11. Thread pool
       12. GEMM                            packed, cache-blocked, one micro-kernel per ISA;
                                           the Q8_0 integer kernels
       13. Vector kernels                  exp, tanh, GELU, softmax sums, LayerNorm, AdamW
       14. Text and numbers in files       UTF-8, a strict JSON lexer, decimals, whole files
       15. Tokenizers                      bytes, byte-level BPE, GPT-2's BPE
       16. Safetensors                     the strict reader and the writer
       17. Checkpoints                     GPT and encoder-decoder checkpoints, resume state

   TRAINING (the GPT: GPT-2's architecture, as PyTorch computes it)
       The model: token embedding wte (V, C) plus position embedding wpe (n_ctx, C); L blocks
       of x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)); then ln_f, and logits = x wte^T (the
       head is tied to the embedding). LayerNorm eps 1e-5. Attention: qkv = x c_attn.weight
       + c_attn.bias with c_attn.weight (C, 3C) (input-major, as Hugging Face's Conv1D); q,
       k, v are its column blocks; n_head heads of C/n_head; causal softmax(q k^T / sqrt(hs)).
       MLP: c_fc (C, 4C), GELU in its tanh form 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))),
       c_proj (4C, C). lm_gpt_new() draws weights N(0, 0.02), each block's two c_proj
       weights N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weight 1 and bias 0.
       lm_gpt_train_step() runs forward, cross-entropy, backward, global-norm clipping (all
       gradients scaled by min(1, clip / (||g|| + 1e-6))) and one AdamW step as PyTorch's
       torch.optim.AdamW: p *= 1 - lr wd (tensors of 2+ dims only); m = b1 m + (1 - b1) g;
       v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
       The learning rate of step s (0 .. S-1, lm_lr_at) warms up linearly, lr (s+1)/W for
       s < W, then follows a cosine from lr down to min_lr at the last step.
       Data order (lm_data): sequential reads B*T+1 consecutive tokens from the position p,
       inputs the first B*T as B rows of T, targets the same shifted by one, then p += B*T,
       back to 0 whenever the next read would run past the end; random takes B windows at
       offsets drawn from the seeded RNG. lm_gpt_eval() is the mean cross-entropy over the
       non-overlapping windows i = 0 .. (n-1)/T - 1: inputs [iT, iT+T), targets one later.
       Gradient accumulation (lm_params_update_mean, lm_grad_accumulate) makes one step of
       A micro-batches of B rows: the step's loss and gradient are the mean over all A*B
       rows, and clipping and AdamW run once. Micro-batch j of a step is what the data
       order gives as the j-th batch of B (A calls of lm_data_next: sequential reads them
       one after another, random draws the next B windows of the seeded stream). Each
       micro-batch's gradient g_j is computed on its own and added in order, ((g_0 + g_1)
       + g_2) + ..., then divided by A; the loss is the mean of the A losses (summed in
       double, in order). A fixed order of float additions makes the result independent of
       who computes what: P processes that each take A of P*A micro-batches (process r
       the micro-batches rA .. rA+A-1) and pass the running sum along in that order get
       exactly the bits of one process with P*A micro-batches (lm-mpi, README.md).
       Every op's gradient is checked against finite differences, and the whole model against
       PyTorch (make test-torch).

   GENERATION
       lm_gpt_generate() feeds the prompt through the batched forward, keeping each
       layer's keys and values (the KV cache), then produces one token per step from the
       cache: greedy at temperature 0, else temperature, top-k and top-p sampling from a
       seeded lm_sampler. When the text outgrows n_ctx the model sees the last n_ctx tokens.

   ENCODER-DECODER (lm_seq2seq: PyTorch's nn.Transformer, "Attention Is All You Need")
       Source text in, other text out. The encoder is num_encoder_layers blocks over the
       source with its padding masked; the decoder is num_decoder_layers blocks over BOS +
       the target so far, causal, each block with a cross-attention sub-layer between its
       self-attention and its MLP: queries from the decoder, keys and values from the
       encoder's output (its padding masked too). Each stack ends with a LayerNorm (as
       nn.Transformer's encoder.norm and decoder.norm); a Linear layer (the "generator")
       makes the logits over the target vocabulary. The blocks are nn.Transformer's:
       post-LN, x = LN(x + f(x)), by default, or pre-LN, x = x + f(LN(x)), with norm_first;
       attention with fused in_proj (3C, C) and out_proj (C, C); an MLP linear1 (F, C),
       relu (default) or the exact GELU x Phi(x), linear2 (C, F); LayerNorm eps 1e-5; every
       weight output-major, (out, in), as PyTorch's Linear. Tokens enter as
       embedding * sqrt(d_model) plus the fixed sinusoidal positions
       pe[t][2i] = sin(t / 10000^(2i/C)), pe[t][2i+1] = cos(...) (computed in double). With
       the byte vocabulary (the default) ids 0..255 are bytes and BOS = 256, EOS = 257,
       PAD = 258 (in general tgt_vocab - 3, - 2, - 1); a source is its tokens alone.
       Training is teacher-forced: the decoder reads BOS + target and is taught target +
       EOS, the loss the mean cross-entropy over those positions (PAD ignored), AdamW as
       for the GPT. Dropout (config dropout, training steps only) acts where PyTorch's
       does but on the attention weights: embeddings, each sub-layer's output, and the
       MLP's hidden layer. Fresh weights: every matrix Xavier-uniform (as nn.Transformer
       and PyTorch's translation tutorial), biases 0, LayerNorm 1 and 0.
       lm_seq2seq_translate() runs the encoder once per source and computes every decoder
       layer's cross-attention keys and values once; the decoder then takes one token at a
       time through a KV cache, so an output token costs the same whatever came before but
       for the attention over it. Greedy decoding takes the likeliest token (BOS and PAD
       never); beam search of width k keeps the k likeliest hypotheses by total
       log-probability (no length penalty) and returns the likeliest finished one. make
       test-torch holds logits, loss, every gradient, both decodings and AdamW steps to
       torch.nn.Transformer (tools/seq2seq_torch.py), for post-LN/relu and pre-LN/gelu.
   COMPRESSION (Q8_0 weights, magnitude pruning)
       Q8_0 is the block format of ggml: along the input of a weight matrix, each run of 32
       weights is 32 int8 values q and one scale d, w = d q, with d = max|w| / 127 over the
       block rounded to F16 and q = round(w / d) in [-127, 127] (to nearest, ties to even,
       divided by the F16 d itself, so |w - d q| <= d / 2 for every weight). Where
       rounding max|w| / 127 to F16 loses so much that max|w| / d would round past 127
       (possible only for F16 subnormal scales, below 6.1e-5), d is the next F16 up. An
       input size that is not a multiple of 32 ends in a partial block (no padding in
       files; kernels pad with zeros). lm_gpt_quantize() makes a Q8_0 copy of a GPT: the
       four matrices of every block (c_attn, attn.c_proj, c_fc, mlp.c_proj), and with
       LM_QUANT_Q8_0_EMB the token embedding wte too, which is also the output head. wpe,
       LayerNorms and biases stay float32. The matrices take 3.76x fewer bytes, in a file
       and in memory alike (1 byte a weight, 2 per 32 for the scale).
       Products: y = W x takes x one block of 32 at a time to int8 as well (d_x = max|x| /
       127, q_x = round(x / d_x), blocks with max|x| < 1e-30 count as zero, a NaN or an
       infinity makes the block's product NaN), then for each output
           y = sum over the blocks, in order, of (float)(sum of q_w q_x) * (d_w d_x)
       in float, plus the bias. The integer sums are exact, so the AVX-512 VNNI, AVX2,
       NEON (sdot where the target has the dot-product extension) and plain C paths give
       the same bits, for any thread count, wherever the float operations are not fused
       (C99 modes of gcc; lm.h tells clang so itself). armv7's NEON flushes denormals, so
       it agrees unless a product d_w d_x is below FLT_MIN. Generation (lm_gpt_step_token)
       and the batched forward (prompts, lm_gpt_eval) take Q8_0 weights; the embedding
       rows are dequantized, w = d q. Training does not: it is an error on a Q8_0 model.
       Pruning: lm_gpt_prune() sets the smallest weights of each block matrix to zero, per
       matrix (each keeps 1 - sparsity of its weights); lm_train_opts.keep_zeros = 1 then
       fine-tunes with every exact zero of a tensor of 2+ dims kept at zero (its gradient,
       AdamW moments and value stay 0; needs eps > 0). Pruned models are stored dense.

   CHECKPOINTS (safetensors)
       A u64 little-endian header length N, N bytes of JSON (padded with spaces to a
       multiple of 8), then the raw little-endian tensor data; offsets count from the start
       of the data, and the tensors must tile it exactly. Names are Hugging Face GPT-2's:
       wte.weight, wpe.weight, h.{i}.ln_1.weight|bias, h.{i}.attn.c_attn.weight|bias (C x 3C:
       q, k, v columns), h.{i}.attn.c_proj.weight|bias, h.{i}.ln_2.weight|bias,
       h.{i}.mlp.c_fc.weight|bias, h.{i}.mlp.c_proj.weight|bias, ln_f.weight|bias.
       lm_gpt_save() writes F32 with __metadata__ {format, n_layer, n_head, n_embd, n_ctx,
       vocab_size}, to a temporary file that is flushed, synced and renamed over the target.
       lm_gpt_load() reads F32, F16 and BF16, accepts a "transformer." prefix, ignores the
       attn.bias/masked_bias buffers and an lm_head.weight equal to wte, takes the shape from
       the tensors and n_head from the argument, the metadata, or C/64, so a Hugging Face
       GPT-2 model.safetensors loads as it is. Every name, dtype, shape and offset is
       checked: a malformed or truncated file is an error and creates nothing.
       A Q8_0 model (COMPRESSION) saves each quantized weight NAME as NAME.q8 (I8, shape
       [out, in]: output-major, so each row's blocks run along the input; a Conv1D
       weight (in, out) is transposed, wte (V, C) is not) and NAME.d (F16, [out,
       ceil(in / 32)]), the rest as F32, with __metadata__ "quant": "q8_0". The loader
       reads such files as strictly: both parts of each quantized weight, their dtypes
       and shapes, q in [-127, 127], finite scales, the four matrices of every block
       quantized together (wte optionally), and "quant" present exactly when they are.
       Resume state (AdamW moments and step, schedule step, data position, RNG, and a
       fingerprint of the weights it goes with) is a second file, MODEL.state.
       Every save (lm_gpt_save, lm_gpt_save_state, lm_tok_save, lm_st_write) writes
       PATH.tmp, flushes and fsyncs it, renames it over PATH, then fsyncs the directory
       (POSIX), so a crash, a kill, a full disk or a power cut at any moment leaves the old
       file or the new one, whole, and once a save has returned LM_OK the new file is on
       the disk. A failed save returns LM_ERR_IO (or LM_ERR_MEM), lm_error() names the file
       and the reason, the temporary file is removed and the old file is as it was; only if
       the directory's fsync fails, after the rename, is the new file in place (whole, but
       perhaps not through a power cut). lm_gpt_save_with_state writes the weights and the
       resume state as one commit: both temporary files whole and synced, then the weights
       renamed (the commit), then the state. Stopped before the commit, the old pair
       stands; after it (a kill, or a failed second rename, whose error says so), the new
       weights stand and their state waits, whole, in MODEL.state.tmp, where
       lm_gpt_load_state finds it and renames it into place. So a training run killed at
       any moment resumes exactly (`make test-faults` kills `lm train` before each of its
       file calls and at random moments to check). All files are little-endian whatever the
       host (`make test-be` reads and writes them on big-endian s390x).
       Encoder-decoder checkpoints (lm_seq2seq_save) hold PyTorch's state-dict names, in
       its (out, in) layout, so weights move between PyTorch and lm.h unchanged
       (tools/seq2seq_torch.py is the PyTorch module); i counts each stack's layers:
           src_tok_emb.embedding.weight (V_src, C)   tgt_tok_emb.embedding.weight (V_tgt, C)
           transformer.encoder.layers.{i}.self_attn.in_proj_weight (3C, C), .in_proj_bias
               (3C), .self_attn.out_proj.weight (C, C), .out_proj.bias (C),
               .linear1.weight (F, C), .linear1.bias (F), .linear2.weight (C, F),
               .linear2.bias (C), .norm1.weight|bias, .norm2.weight|bias (C)
           transformer.encoder.norm.weight|bias (C)
           transformer.decoder.layers.{i}: the encoder layer's tensors, and
               .multihead_attn.in_proj_weight (3C, C) (rows q, k, v), .in_proj_bias (3C),
               .multihead_attn.out_proj.weight|bias, and .norm3.weight|bias (norm1 is the
               self-attention's, norm2 the cross-attention's, norm3 the MLP's)
           transformer.decoder.norm.weight|bias (C)
           generator.weight (V_tgt, C), generator.bias (V_tgt)
       (the embeddings and output layer as in PyTorch's translation tutorial). The config
       is __metadata__, under nn.Transformer's argument names: d_model, nhead,
       num_encoder_layers, num_decoder_layers, dim_feedforward, norm_first (true/false),
       activation (relu/gelu), and n_ctx, src_vocab_size, tgt_vocab_size, bos_id, eos_id,
       pad_id. Loading takes the shape from the tensors and nhead from the metadata (which
       must say it); the rest, when absent, defaults as PyTorch's (post-LN, relu) and lm.h's
       (n_ctx 128, the last three ids special). Every name, shape and dtype is checked as
       for the GPT; the tutorial's positional_encoding.pos_embedding buffer is ignored.

   TOKENIZERS
       One type, lm_tokenizer, covers three kinds of tokenizer:
         bytes   lm_tok_bytes(): id = byte value, vocabulary 256. The default everywhere.
         BPE     lm_tok_train() or lm_tok_load(): a byte-level BPE learned from your text.
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

       Training (lm_tok_train) counts the distinct pre-tokens of the text, then repeatedly
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

#define LM_VERSION_MAJOR 0
#define LM_VERSION_MINOR 1
#define LM_VERSION_PATCH 0
#define LM_VERSION_STRING "0.1.0"

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
   Public API, grouped as the implementation is. 1: errors, RNG, arenas
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
LMDEF const char *lm_version(void);          /* LM_VERSION_STRING of the implementation */

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
   Public API 2-3: tensors, autograd and the ops
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
    const struct lm_q8 *q8;  /* a weight stored as Q8_0 (COMPRESSION): then data is NULL */
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
LMDEF lm_tensor *lm_gelu_erf(lm_graph *g, lm_tensor *a);  /* exact: x Phi(x), as PyTorch's */
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
/* Cross-attention: queries q (B, Tq, C) over the keys and values kv (B, Tk, 2C) (column
   blocks k, v) of another sequence -> (B, Tq, C). lens (may be NULL): batch row b sees
   keys < lens[b] (the source's padding). */
LMDEF lm_tensor *lm_cross_attention(lm_graph *g, lm_tensor *q, lm_tensor *kv, int n_head,
                                    const int *lens);
LMDEF lm_tensor *lm_reshape(lm_graph *g, lm_tensor *a, int ndim, const int *shape);
LMDEF lm_tensor *lm_transpose(lm_graph *g, lm_tensor *a);   /* swap the last two dims */
/* Columns [start, start+len) of the last dim. */
LMDEF lm_tensor *lm_slice(lm_graph *g, lm_tensor *a, int start, int len);
/* Rows idx[n] of a 2-D (or (B,T,C) seen as (B*T, C)) tensor: (n, C). */
LMDEF lm_tensor *lm_gather_rows(lm_graph *g, lm_tensor *a, const int *idx, int n);
LMDEF lm_tensor *lm_dropout(lm_graph *g, lm_tensor *a, float p);
/* Mean over the first lens[b] positions of each row of x (B, T, C) -> (B, C). */
LMDEF lm_tensor *lm_mean_pool(lm_graph *g, lm_tensor *x, const int *lens);
/* Losses, all means over the counted items -> scalar.
   cross_entropy: logits (N, V), targets[N]; targets equal to ignore_index are skipped. */
LMDEF lm_tensor *lm_cross_entropy(lm_graph *g, lm_tensor *logits, const int *targets,
                                  int ignore_index);
LMDEF lm_tensor *lm_bce_logits(lm_graph *g, lm_tensor *logits, lm_tensor *targets);
LMDEF lm_tensor *lm_mse(lm_graph *g, lm_tensor *pred, lm_tensor *target);

/* ---------------------------------------------------------------------------------------
   Public API 4: parameters and optimizers
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
/* Forget the optimizer's state (moments and step count): a new phase of training, say
   fine-tuning after pretraining, starts its AdamW afresh. */
LMDEF void lm_params_reset_optimizer(lm_params *p);
/* Scale all gradients by min(1, max_norm / (||g|| + 1e-6)); returns ||g|| before. */
LMDEF float lm_clip_grad_norm(lm_params *p, float max_norm);

/* Training options. Start from lm_train_defaults() and change what you need: unlike the
   config structs, zero does NOT mean "default" here, because zero is a real choice for
   min_lr, warmup, wd, beta1 and clip (clip 0 = no clipping). A zero-filled struct would
   train at lr 0, so the training steps refuse it (lr and steps must be positive) with an
   error that says to start from lm_train_defaults(). A NULL lm_train_opts pointer means
   the defaults. */
enum { LM_SCHED_COSINE = 0, LM_SCHED_CONSTANT = 1 };
typedef struct lm_train_opts {
    float lr;                /* peak learning rate, > 0             (1e-3)                */
    float min_lr;            /* cosine floor, reached at the last step (1e-4)             */
    int warmup;              /* linear warmup steps                 (100)                 */
    int steps;               /* total steps S of the schedule, > 0  (2000)                */
    int schedule;            /* LM_SCHED_COSINE or LM_SCHED_CONSTANT                      */
    float wd;                /* decoupled weight decay              (0.1)                 */
    float beta1, beta2, eps; /* AdamW                               (0.9, 0.99, 1e-8)     */
    float clip;              /* global grad-norm clip, 0 = none     (1.0)                 */
    int keep_zeros;          /* 1: a weight of a tensor of 2+ dims that is exactly 0 stays
                                0 (fine-tuning a pruned model, see COMPRESSION)   (0)     */
} lm_train_opts;
LMDEF lm_train_opts lm_train_defaults(void);
LMDEF float lm_lr_at(const lm_train_opts *o, int step);   /* schedule, step 0..S-1 */
/* One AdamW step over all parameters at learning rate lr (see TRAINING above). */
LMDEF int lm_adamw_step(lm_params *p, const lm_train_opts *o, float lr);
/* SGD with momentum mu: v = mu v + g; p -= lr (v + wd p on decayed tensors). */
LMDEF int lm_sgd_step(lm_params *p, float lr, float momentum, float wd);
/* The update of a training step: clip the gradients (o->clip), then one AdamW step at
   lm_lr_at(o, step). o = NULL: the defaults. An error if o is out of range. */
LMDEF int lm_params_update(lm_params *p, const lm_train_opts *o, int step);
/* Gradient accumulation (see TRAINING): one update from A micro-batches of B rows. A
   backward (lm_gpt_backward, ...) computes its batch's gradient on its own and adds it
   into the gradients with one float addition per element, so after
       lm_params_zero_grad(&m->params);
       for (j = 0; j < A; j++) loss += lm_gpt_backward(m, in[j], tg[j], B, T);
   the gradients hold ((0 + g_0) + g_1) + ... + g_(A-1), the sum in micro-batch order
   (each g_j a mean over B rows), and
       lm_params_update_mean(&m->params, A, o, step);
   divides them by A - the mean over all A*B rows - then takes the update as
   lm_params_update does (clip, AdamW); an error if A < 1. A program that computes some
   of the micro-batches' gradients elsewhere (another process, as lm-mpi does) adds them
   in the same order with lm_grad_accumulate, sum[i] += g[i] for i in [0, n), to get the
   same bits. */
LMDEF void lm_grad_accumulate(float *sum, const float *g, size_t n);
LMDEF int lm_params_update_mean(lm_params *p, int A, const lm_train_opts *o, int step);

/* ---------------------------------------------------------------------------------------
   Public API 5-6: the Transformer block every model shares, and the GPT (decoder-only,
   GPT-2 layout)
   --------------------------------------------------------------------------------------- */
/* One Transformer block. The GPT's and the encoder's: pre-LayerNorm, x + attn(ln_1(x)),
   then + mlp(ln_2(x)), weights input-major as below. The encoder-decoder's (as PyTorch's
   nn.Transformer) use the same struct with every weight stored output-major, (out, in)
   (the transpose of the shapes below; the MLP's width F is free, not 4C), post- or
   pre-LayerNorm, and in its decoder a cross-attention sub-layer between the two, whose
   fields are NULL everywhere else. */
typedef struct lm_block {
    lm_tensor *ln_1_w, *ln_1_b;      /* (C) (C)                                           */
    lm_tensor *attn_w, *attn_b;      /* (C, 3C) (3C): q, k, v column blocks               */
    lm_tensor *attn_proj_w, *attn_proj_b; /* (C, C) (C)                                   */
    lm_tensor *ln_2_w, *ln_2_b;      /* (C) (C)                                           */
    lm_tensor *fc_w, *fc_b;          /* (C, 4C) (4C)                                      */
    lm_tensor *proj_w, *proj_b;      /* (4C, C) (C)                                       */
    lm_tensor *ln_x_w, *ln_x_b;      /* (C) (C) cross-attention's LayerNorm               */
    lm_tensor *xattn_w, *xattn_b;    /* (3C, C) (3C): q from the block, k and v from the
                                        encoder's output                                 */
    lm_tensor *xattn_proj_w, *xattn_proj_b; /* (C, C) (C)                                 */
} lm_block;

/* How a GPT's weights are stored (see COMPRESSION): all float32; the four matrices of every
   block in Q8_0; or those and the token embedding wte (which is also the output head). */
enum { LM_QUANT_NONE = 0, LM_QUANT_Q8_0 = 1, LM_QUANT_Q8_0_EMB = 2 };

typedef struct lm_gpt_config {
    int n_layer;             /* blocks                              (4)                   */
    int n_head;              /* attention heads; must divide n_embd (4)                   */
    int n_embd;              /* width C                             (128)                 */
    int n_ctx;               /* longest sequence T                  (64)                  */
    int vocab;               /* V                                   (256)                 */
    int quant;               /* LM_QUANT_*: set by lm_gpt_quantize and the loader; a new
                                model is float32                     (LM_QUANT_NONE)      */
} lm_gpt_config;

typedef struct lm_gpt {
    lm_gpt_config cfg;
    lm_tensor *wte;                  /* (V, C) token embedding, also the output head      */
    lm_tensor *wpe;                  /* (n_ctx, C) position embedding                     */
    lm_block *h;                     /* (n_layer) blocks                                  */
    lm_tensor *ln_f_w, *ln_f_b;      /* (C) (C) final LayerNorm                           */
    lm_params params;                /* all of the above, in checkpoint order             */
    lm_arena arena;                  /* params, grads, optimizer state, KV cache          */
    lm_arena work;                   /* per-step graph and activations, reset each step   */
    float *k_cache, *v_cache;        /* (n_layer, n_ctx, C) for generation                */
    int cache_len;                   /* positions held in the cache                       */
    float *gen_logits;               /* (V) generation scratch: logits,                   */
    int *gen_sort, *gen_window;      /* (V) sort order, (n_ctx) the tokens in view        */
} lm_gpt;

/* Zero fields of cfg take the defaults above; fresh weights as TRAINING says. NULL on
   error. */
LMDEF lm_gpt *lm_gpt_new(const lm_gpt_config *cfg, uint64_t seed);
LMDEF void lm_gpt_free(lm_gpt *m);
LMDEF size_t lm_gpt_num_params(const lm_gpt *m);
/* Build the forward graph for inputs (B, T) on g; returns logits (B, T, V). */
LMDEF lm_tensor *lm_gpt_forward(lm_gpt *m, lm_graph *g, const int *inputs, int B, int T);
/* Mean cross-entropy of targets (B, T) given inputs (B, T); NAN on error. */
LMDEF float lm_gpt_loss(lm_gpt *m, const int *inputs, const int *targets, int B, int T);
/* Forward, backward, clip, AdamW at the schedule's lr for step s (0-based). Returns the
   loss before the update; NAN on error (lm_error() says why; the weights are untouched).
   After the first steps (which size the work arena) it allocates nothing. It is these
   parts, which a program may also call itself (to accumulate the gradients of several
   batches, say, or to look at them):
       lm_params_zero_grad(&m->params);
       loss = lm_gpt_backward(m, inputs, targets, B, T);   adds d loss / d params
       lm_params_update(&m->params, o, step);              clip, then AdamW */
LMDEF float lm_gpt_train_step(lm_gpt *m, const lm_train_opts *o, const int *inputs,
                              const int *targets, int B, int T, int step);
LMDEF float lm_gpt_backward(lm_gpt *m, const int *inputs, const int *targets, int B, int T);
/* Mean cross-entropy over the non-overlapping windows of length T (see TRAINING). */
LMDEF float lm_gpt_eval(lm_gpt *m, const int *tokens, size_t n, int T);
/* lm_gpt_eval in parts, so that several processes can share one evaluation and still get
   exactly its result. The windows go through the model in groups of LM_EVAL_GROUP, group
   g holding windows g*LM_EVAL_GROUP onwards. lm_gpt_eval_groups puts the mean loss of
   groups [g0, g1) into loss[0 .. g1-g0) and returns how many groups the whole evaluation
   has (g0 = g1 = 0 just asks), or a negative LM_ERR_* code. lm_gpt_eval_mean combines the
   losses of all the groups (for the same n and T) exactly as lm_gpt_eval does. */
#define LM_EVAL_GROUP 8
LMDEF long lm_gpt_eval_groups(lm_gpt *m, const int *tokens, size_t n, int T, long g0, long g1,
                              float *loss);
LMDEF float lm_gpt_eval_mean(const float *loss, size_t n, int T);

/* Memory a GPT needs, in bytes, as constant expressions so that a static buffer can be
   sized with them. LM_GPT_PARAMS counts the parameters; LM_GPT_GRAPH_BYTES bounds the
   per-step arena of a forward pass over B rows of T tokens without gradients (a prompt
   going in); a training step needs about LM_GPT_TRAIN_GRAPH_BYTES. */
#define LM_GPT_PARAMS(L, C, T, V) LM__GPT_PARAMS(size_t, L, C, T, V)
#define LM_GPT_GRAPH_BYTES(L, H, C, T, B) LM__ROUND64(LM__GPT_GRAPH(size_t, L, H, C, T, B))
#define LM_GPT_TRAIN_GRAPH_BYTES(L, H, C, T, V, B) LM__GPT_TRAIN_GRAPH(size_t, L, H, C, T, V, B)
/* The formulas, in a type t (size_t for the macros, double in lm_gpt_memory): */
#define LM__ROUND64(x) (((size_t)(x) + 63) / 64 * 64)
#define LM__GPT_PARAMS(t, L, C, T, V)                                                    \
    ((t)(V) * (C) + (t)(T) * (C) + (t)(L) * (12 * (t)(C) * (C) + 13 * (t)(C)) + 2 * (t)(C))
#define LM__GPT_GRAPH(t, L, H, C, T, B)   /* activations, attention rows, tape nodes */ \
    ((t)(B) * 4 * ((t)(L) * (20 * (t)(T) * (C) + (t)(H) * (T) * (T) + 4 * (t)(T))          \
                   + 3 * (t)(T) * (C) + 16 * (t)(C)) + ((t)(L) * 16 + 16) * 512)
#define LM__GPT_TRAIN_GRAPH(t, L, H, C, T, V, B) /* and their gradients, the logits' */  \
    (2 * LM__GPT_GRAPH(t, L, H, C, T, B) + 12 * (t)(B) * (T) * (V) + (t)1048576 +          \
     4 * LM__GPT_PARAMS(t, L, C, T, V))
/* Everything a run allocates, for refusing a configuration before allocating anything:
   the parameters with their gradients and AdamW moments, the KV cache, and the work
   arena of a training step of (B, T) (B = 0: generation only). As a double, so that a
   configuration too large for size_t still gives a number. */
LMDEF double lm_gpt_memory(const lm_gpt_config *cfg, int B, int T);

/* ---------------------------------------------------------------------------------------
   Public API 6: data order
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

/* ---------------------------------------------------------------------------------------
   Public API 7: generation with a KV cache
   --------------------------------------------------------------------------------------- */
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

/* A GPT over weights that stay where they are (const arrays in flash, as tools/lm2c
   writes them: every tensor in checkpoint order, row-major, no padding), with everything
   else - the struct, the tensor table, the KV cache, the per-step arena - carved from the
   caller's buffer: no malloc at all. The model can generate (lm_gpt_step_token,
   lm_gpt_generate), which only read the weights, but not train. The config must be
   complete (no defaults). buf must hold at least LM_GPT_MEMORY_BYTES_STEP to run
   lm_gpt_step_token, and LM_GPT_MEMORY_BYTES to run lm_gpt_generate (its prompt goes
   through the batched forward); whatever buf has beyond the model's state becomes the
   per-step arena. NULL with lm_error() on a bad config or a buffer too small. Never
   lm_gpt_free such a model: it lives in buf.
   With cfg->quant set, weights (4-byte aligned) holds the tensors in the same order, and
   each Q8_0 one is its scales (LM_Q8_SCALES F16s) then its values (LM_Q8_VALUES bytes),
   in the packed layout of COMPRESSION; tools/lm2c writes such an image. */
LMDEF lm_gpt *lm_gpt_from_memory(const lm_gpt_config *cfg, const void *weights, void *buf,
                                 size_t len);
#define LM_GPT_STATE_BYTES(L, C, T, V)                                                   \
    (64 + LM__ROUND64(sizeof(lm_gpt)) + LM__ROUND64((4 + 12 * (size_t)(L)) * sizeof(lm_tensor)) \
     + LM__ROUND64((1 + 4 * (size_t)(L)) * sizeof(lm_q8))                                 \
     + LM__ROUND64((4 + 12 * (size_t)(L)) * (size_t)LM_NAME_MAX)                         \
     + LM__ROUND64((size_t)(L) * sizeof(lm_block))                                       \
     + 2 * LM__ROUND64((size_t)(L) * (size_t)(T) * (size_t)(C) * sizeof(float))           \
     + 2 * LM__ROUND64((size_t)(V) * sizeof(float)) + LM__ROUND64((size_t)(T) * sizeof(int)))
#define LM_GPT_STEP_BYTES(C, T) LM__ROUND64((10 * (size_t)(C) + (size_t)(T)) * sizeof(float))
#define LM_GPT_MEMORY_BYTES(L, H, C, T, V)                                               \
    (LM_GPT_STATE_BYTES(L, C, T, V) + LM_GPT_GRAPH_BYTES(L, H, C, T, 1))
#define LM_GPT_MEMORY_BYTES_STEP(L, C, T, V)                                             \
    (LM_GPT_STATE_BYTES(L, C, T, V) + LM_GPT_STEP_BYTES(C, T))

/* ---------------------------------------------------------------------------------------
   Public API 8: the bidirectional encoder (BERT-style pretraining, then fine-tuning)
   The same blocks as the GPT without the causal mask; a padding mask hides positions past
   each text's length. Heads: masked-LM (tied to the token embedding, plus a bias), and a
   classifier on the mean of the valid positions (n_class logits, or one logit for a
   binary task trained with BCE-with-logits). Its functions have the GPT's shape: a loss,
   and a training step that returns the loss before its update.
   --------------------------------------------------------------------------------------- */
typedef struct lm_encoder_config {
    int n_layer, n_head, n_embd, n_ctx;   /* as lm_gpt_config (defaults 4, 4, 128, 64)     */
    int vocab;               /* including the special ids below (default 256 + 2)         */
    int mask_id;             /* the [MASK] token of masked-LM      (default vocab - 2)    */
    int pad_id;              /* filler after a text's end          (default vocab - 1)    */
    int n_random;            /* masked-LM's random replacements are ids below this
                                (default: the smaller of mask_id and pad_id, so bytes)   */
    int n_class;             /* classifier outputs; 1 = binary (BCE) (default 2)          */
    float dropout;           /* training steps only: dropout on the embeddings and on each
                                block's attention and MLP outputs, as BERT (default 0)   */
} lm_encoder_config;

typedef struct lm_encoder {
    lm_encoder_config cfg;
    lm_tensor *wte, *wpe;            /* (V, C) (n_ctx, C)                                 */
    lm_block *h;                     /* (n_layer)                                         */
    lm_tensor *ln_f_w, *ln_f_b;      /* (C) (C)                                           */
    lm_tensor *mlm_b;                /* (V) masked-LM output bias                         */
    lm_tensor *cls_w, *cls_b;        /* (C, n_class) (n_class) classifier                 */
    lm_params params;
    lm_arena arena, work;
    uint64_t seed, steps;            /* masks and dropout: drawn from (seed, steps taken) */
} lm_encoder;

LMDEF lm_encoder *lm_encoder_new(const lm_encoder_config *cfg, uint64_t seed);
LMDEF void lm_encoder_free(lm_encoder *e);
/* Hidden states (B, T, C) of tokens (B, T); lens[b] valid positions in row b (lens may
   be NULL: every row is T long). */
LMDEF lm_tensor *lm_encoder_forward(lm_encoder *e, lm_graph *g, const int *tokens,
                                    const int *lens, int B, int T);
/* Each head has a loss, a backward (adds the loss's gradients into e->params.grad, with
   dropout on) and a training step (zero_grad, backward, lm_params_update), as the GPT.
   Masks and dropout are drawn from (seed, training steps taken), so a run repeats
   exactly, and a loss or backward between two training steps draws what the next
   training step will.
   Masked-LM, BERT's recipe: 15% of the valid positions are chosen (at least one per row);
   of those 80% become mask_id, 10% a random id below n_random, 10% stay; the loss counts
   the chosen positions only. */
LMDEF float lm_encoder_mlm_loss(lm_encoder *e, const int *tokens, const int *lens, int B,
                                int T);
LMDEF float lm_encoder_mlm_backward(lm_encoder *e, const int *tokens, const int *lens, int B,
                                    int T);
LMDEF float lm_encoder_mlm_train_step(lm_encoder *e, const lm_train_opts *o,
                                      const int *tokens, const int *lens, int B, int T,
                                      int step);
/* Classification: cross-entropy over n_class (or BCE for n_class 1, labels 0/1). */
LMDEF float lm_encoder_cls_loss(lm_encoder *e, const int *tokens, const int *lens,
                                const int *labels, int B, int T);
LMDEF float lm_encoder_cls_backward(lm_encoder *e, const int *tokens, const int *lens,
                                    const int *labels, int B, int T);
LMDEF float lm_encoder_cls_train_step(lm_encoder *e, const lm_train_opts *o,
                                      const int *tokens, const int *lens, const int *labels,
                                      int B, int T, int step);
/* Class scores (B, n_class): probabilities (sigmoid for n_class 1). */
LMDEF int lm_encoder_predict(lm_encoder *e, const int *tokens, const int *lens, int B, int T,
                             float *probs);

/* Evaluation metrics. */
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
   Public API 9: the encoder-decoder (PyTorch's nn.Transformer; see ENCODER-DECODER above)
   Source text in, other text out: an encoder over the source, a decoder over the target
   so far that also attends to the encoder's output (cross-attention), then a linear layer
   to the target vocabulary. Its functions have the GPT's shape: a loss, a backward and a
   training step on a batch of pairs, and decoding with a KV cache.
   --------------------------------------------------------------------------------------- */
enum { LM_ACT_RELU = 0, LM_ACT_GELU = 1 };
typedef struct lm_seq2seq_config {   /* zero fields take the defaults in brackets          */
    int d_model;             /* width C                                 (128)             */
    int nhead;               /* heads; must divide d_model              (4)               */
    int num_encoder_layers;  /*                                         (3)               */
    int num_decoder_layers;  /*                                         (3)               */
    int dim_feedforward;     /* the MLP's width F                       (4 d_model)       */
    int norm_first;          /* 0: post-LN, x = LN(x + f(x)), PyTorch's default;
                                1: pre-LN, x = x + f(LN(x))                               */
    int activation;          /* LM_ACT_RELU (PyTorch's default) or LM_ACT_GELU (erf form) */
    int n_ctx;               /* longest source; the decoder sees BOS + target, so targets
                                are at most n_ctx - 1 tokens           (128)             */
    int src_vocab, tgt_vocab; /* including the special ids below        (256 + 3 each)    */
    int bos_id, eos_id, pad_id; /* target ids        (tgt_vocab - 3, tgt_vocab - 2, - 1)  */
    float dropout;           /* training steps only                     (0)               */
} lm_seq2seq_config;

typedef struct lm_seq2seq {
    lm_seq2seq_config cfg;
    lm_tensor *src_emb, *tgt_emb;    /* (V_src, C) (V_tgt, C) token embeddings            */
    lm_block *enc, *dec;             /* (num_encoder_layers) (num_decoder_layers)         */
    lm_tensor *enc_norm_w, *enc_norm_b, *dec_norm_w, *dec_norm_b;  /* (C) each            */
    lm_tensor *out_w, *out_b;        /* (V_tgt, C) (V_tgt) the output layer               */
    lm_tensor pe;                    /* (n_ctx, C) sinusoidal positions, not a parameter  */
    lm_params params;                /* the parameters, in checkpoint order               */
    lm_arena arena;                  /* params, grads, optimizer state, positions         */
    lm_arena work;                   /* per-step graph and activations                    */
    lm_arena dec_arena;              /* decoding: caches and scratch, made on first use   */
    float *kv_self, *kv_cross;       /* (beams, L_dec, n_ctx, 2C) the decoder's own k, v;
                                        (L_dec, n_ctx, 2C) the source's, once per source  */
    int beams;                       /* beams the decoding memory holds                   */
    uint64_t seed, steps;            /* dropout: drawn from (seed, steps taken)           */
} lm_seq2seq;

/* A batch of B pairs. Row b of src holds src_len[b] tokens, then anything (padding is the
   library's business); row b of tgt holds the tgt_len[b] tokens of the target, without
   BOS or EOS, then anything. The decoder reads BOS + target and is taught target + EOS:
   T + 1 positions, so T <= n_ctx - 1. */
typedef struct lm_seq2seq_batch {
    int B;                   /* pairs                                                     */
    int S, T;                /* row lengths of src and tgt (S >= 1, T >= 0)               */
    const int *src;          /* (B, S) source tokens                                      */
    const int *src_len;      /* (B) in [1, S]; NULL: every row is S long                  */
    const int *tgt;          /* (B, T) target tokens (none may be a special id)           */
    const int *tgt_len;      /* (B) in [0, T]; NULL: every row is T long                  */
} lm_seq2seq_batch;

/* Zero fields of cfg take the defaults above; fresh weights as ENCODER-DECODER says. */
LMDEF lm_seq2seq *lm_seq2seq_new(const lm_seq2seq_config *cfg, uint64_t seed);
LMDEF void lm_seq2seq_free(lm_seq2seq *m);
LMDEF size_t lm_seq2seq_num_params(const lm_seq2seq *m);
/* Build the forward graph of a batch on g: logits (B, T + 1, V_tgt), position t of row b
   predicting target token t (t < tgt_len[b]) or EOS (t = tgt_len[b]). */
LMDEF lm_tensor *lm_seq2seq_forward(lm_seq2seq *m, lm_graph *g, const lm_seq2seq_batch *b);
/* Mean cross-entropy over the counted positions, sum(tgt_len[b] + 1), teacher-forced;
   backward adds its gradients into m->params.grad (dropout on); a training step is
   zero_grad, backward, lm_params_update, and returns the loss before the update. NAN on
   error, with lm_error(). No malloc after the first steps, as the GPT's. */
LMDEF float lm_seq2seq_loss(lm_seq2seq *m, const lm_seq2seq_batch *b);
LMDEF float lm_seq2seq_backward(lm_seq2seq *m, const lm_seq2seq_batch *b);
LMDEF float lm_seq2seq_train_step(lm_seq2seq *m, const lm_train_opts *o,
                                  const lm_seq2seq_batch *b, int step);
/* Decode the target of one source src[0..n_src), 1 <= n_src <= n_ctx: greedy when
   beam <= 1, else beam search over `beam` hypotheses (at most 16). out receives the tokens
   without BOS and EOS, at most max_out; returns how many, or a negative LM_ERR_* code.
   Decoding stops at EOS, at max_out tokens, or when the decoder's n_ctx positions are
   used up (so at most n_ctx tokens). */
LMDEF int lm_seq2seq_translate(lm_seq2seq *m, const int *src, int n_src, int beam, int *out,
                               int max_out);
/* Everything a run allocates, as lm_gpt_memory: parameters with gradients and moments,
   and the work arena of a training step of B pairs of S and T tokens (B = 0: decoding,
   with its caches for one beam). */
LMDEF double lm_seq2seq_memory(const lm_seq2seq_config *cfg, int B, int S, int T);

/* ---------------------------------------------------------------------------------------
   Public API 10: compression - Q8_0 weights and magnitude pruning (see COMPRESSION above)
   --------------------------------------------------------------------------------------- */
/* A matrix in Q8_0, packed for the integer kernels: the product y (out) = W (out, in) x (in),
   one row of W per output. Rows go in groups of 16 (the last group padded with zero rows),
   and within a group block by block: the 16 rows' scales, then their 32 values of the
   block interleaved four at a time (values 4g .. 4g+3 of rows 0, 1, ..., 15 for g = 0..7),
   each stored as q + 128 in a byte. A partial last block is padded with zeros. */
typedef struct lm_q8 {
    int out, in;             /* outputs (rows of W) and inputs (its columns)              */
    int nb;                  /* blocks of 32 per row: ceil(in / 32)                       */
    const uint16_t *d;       /* (groups, nb, 16) scales, F16 (the bits of a half float)   */
    const unsigned char *q;  /* (groups, nb, 8, 16, 4) values q + 128                     */
} lm_q8;
#define LM_Q8_GROUPS(out) (((size_t)(out) + 15) / 16)
#define LM_Q8_BLOCKS(in) (((size_t)(in) + 31) / 32)
#define LM_Q8_SCALES(out, in) (LM_Q8_GROUPS(out) * LM_Q8_BLOCKS(in) * 16)  /* F16s   */
#define LM_Q8_VALUES(out, in) (LM_Q8_GROUPS(out) * LM_Q8_BLOCKS(in) * 512) /* bytes  */

/* A copy of m with its weights in Q8_0: the four matrices of every block (quant
   LM_QUANT_Q8_0), and the token embedding too (LM_QUANT_Q8_0_EMB); everything else stays
   float32. The copy evaluates and generates (every forward path takes it) but cannot train.
   NULL with lm_error() if m is already quantized, or a weight is not finite or too large
   for an F16 scale (|w| > 127 x 65504). m is untouched. */
LMDEF lm_gpt *lm_gpt_quantize(const lm_gpt *m, int quant);
/* The weight at row r, input i of a Q8_0 matrix, d q (exactly: a float). */
LMDEF float lm_q8_get(const lm_q8 *w, int r, int i);
/* The weights as lm_gpt_from_memory reads them, for a program with no files: the tensors
   in checkpoint order, a float32 one as its values, a Q8_0 one as its scales then its
   values (the packed layout above). Written to buf when cap is enough; returns the size
   in bytes (buf NULL: just the size). */
LMDEF size_t lm_gpt_image(const lm_gpt *m, void *buf, size_t cap);
/* Magnitude pruning of a float32 GPT, matrix by matrix: in each of the four matrices of
   every block, the round(sparsity x size) weights of smallest magnitude become 0 (ties to
   the lower index). Embeddings, LayerNorms and biases are untouched. sparsity in [0, 1].
   To fine-tune afterwards with the zeros kept, train with lm_train_opts.keep_zeros = 1. */
LMDEF int lm_gpt_prune(lm_gpt *m, float sparsity);
/* Fraction of the weights of the four matrices of every block that are exactly zero. */
LMDEF double lm_gpt_sparsity(const lm_gpt *m);

/* ---------------------------------------------------------------------------------------
   Public API 11-12: threads and GEMM
   --------------------------------------------------------------------------------------- */
LMDEF int lm_set_threads(int n);   /* 0 = all cores; returns the count now in use        */
LMDEF int lm_get_threads(void);
LMDEF int lm_num_cores(void);
/* Give back the memory lm.h keeps for the calling thread: its block for the GEMM's packed
   panels (THREADS), allocated on the thread's first product. Its next product allocates
   it again. A thread that ends gives its block back by itself; the main thread's stays
   until the process exits unless it calls this (before counting allocations, say). Not
   from inside a task of lm_parallel_for. */
LMDEF void lm_thread_release(void);
/* Run fn(ctx, i) for i in [0, n) across the pool; returns when all are done. */
typedef void (*lm_task_fn)(void *ctx, int i);
LMDEF void lm_parallel_for(int n, lm_task_fn fn, void *ctx);

/* C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is M x K, op(B) is K x N.
   ta: A is stored K x M (transposed); tb: B is stored N x K. lda/ldb/ldc are row strides.
   When beta == 0, C is not read (it may hold NaN). Returns LM_OK, or LM_ERR_ARG for bad
   sizes or strides, or LM_ERR_MEM when a thread's first product cannot get the memory
   for its packed panels (THREADS); C is then untouched. */
LMDEF int lm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* The portable reference path, always compiled, for tests and benchmarks. */
LMDEF int lm_gemm_scalar(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);



/* ---------------------------------------------------------------------------------------
   Public API 15: tokenizers
   Raw bytes, a byte-level BPE trained on your text, or GPT-2's own; see TOKENIZERS in
   the docs block at the top of this file for the rules and the file format.
   --------------------------------------------------------------------------------------- */
typedef struct lm_tokenizer lm_tokenizer;   /* opaque: raw bytes, our BPE, or GPT-2's BPE */

LMDEF lm_tokenizer *lm_tok_bytes(void);     /* vocabulary 256, id = byte; NULL if no memory */
/* Learn a byte-level BPE of at most vocab_size tokens (256 <= vocab_size <= 1048576)
   from text[0..n). NULL on failure, with lm_error() saying why. */
LMDEF lm_tokenizer *lm_tok_train(const void *text, size_t n, int vocab_size);
LMDEF int lm_tok_vocab_size(const lm_tokenizer *t);
/* Encode text[0..n): the first cap ids go to ids[0..cap). Returns how many ids the whole
   text encodes to (more than cap means: call again with more room; cap = n always
   suffices), or a negative LM_ERR_* code. */
LMDEF long lm_tok_encode(const lm_tokenizer *t, const void *text, size_t n, int *ids,
                         size_t cap);
/* Decode ids[0..n): the first cap bytes go to out[0..cap). Returns how many bytes the ids
   decode to (may exceed cap, as for encode), or LM_ERR_ARG for an id out of range. */
LMDEF long lm_tok_decode(const lm_tokenizer *t, const int *ids, size_t n, void *out,
                         size_t cap);
/* The BPE file format above, in memory: returns the size of the image and writes it to
   buf only if it fits in cap (so buf = NULL, cap = 0 asks for the size). */
LMDEF long lm_tok_save_mem(const lm_tokenizer *t, void *buf, size_t cap);
LMDEF lm_tokenizer *lm_tok_load_mem(const void *buf, size_t n);
/* GPT-2's files in memory: encoder.json (n1 bytes) and vocab.bpe (n2 bytes). */
LMDEF lm_tokenizer *lm_tok_load_gpt2_mem(const void *encoder_json, size_t n1,
                                         const void *vocab_bpe, size_t n2);
#ifndef LM_NO_STDIO
LMDEF int lm_tok_save(const lm_tokenizer *t, const char *path);   /* temp file + rename */
LMDEF lm_tokenizer *lm_tok_load(const char *path);
LMDEF lm_tokenizer *lm_tok_load_gpt2(const char *dir);   /* DIR/encoder.json, DIR/vocab.bpe */
#endif
LMDEF void lm_tok_free(lm_tokenizer *t);                  /* NULL is fine */

/* ---------------------------------------------------------------------------------------
   Public API 16: safetensors files
   A safetensors file is: 8 bytes, a little-endian u64 N; N bytes of JSON naming every
   tensor with its dtype, shape and byte range; then the raw little-endian data. The reader
   below is strict: it checks every byte of the header and every offset against the data,
   so a malformed or truncated file is an error with a message, never a crash. It reads
   F32, F16 and BF16 into float32; other dtypes of the format (I64, F64, BOOL, ...) are
   parsed and checked but can only be skipped, not read.
   --------------------------------------------------------------------------------------- */
enum {
    LM_DT_F32 = 0, LM_DT_F16 = 1, LM_DT_BF16 = 2,    /* readable as float32               */
    LM_DT_F64, LM_DT_I64, LM_DT_I32, LM_DT_I16, LM_DT_I8, LM_DT_U8, LM_DT_BOOL,
    LM_DT_U16, LM_DT_U32, LM_DT_U64, LM_DT_F8_E4M3, LM_DT_F8_E5M2, LM_DT_F8_E8M0,
    LM_DT_C64, LM_DT_COUNT                            /* known but only skippable          */
};
#define LM_ST_NAME_MAX 256          /* a tensor name or metadata key: at most 255 bytes   */
#define LM_ST_HEADER_MAX 100000000  /* largest JSON header accepted (as the reference)    */

typedef struct lm_st_entry {
    const char *name;        /* NUL-terminated, valid UTF-8, 1..LM_ST_NAME_MAX-1 bytes    */
    int dtype;               /* LM_DT_*                                                   */
    int ndim;                /* 0..LM_MAX_DIMS                                            */
    int64_t shape[LM_MAX_DIMS];
    uint64_t numel;          /* product of the shape (1 for a scalar)                     */
    uint64_t begin, end;     /* byte range within the data section: end-begin = numel*size */
} lm_st_entry;

typedef struct lm_st_file {
    const unsigned char *data;  /* the data section (after the header)                    */
    size_t data_len;            /* its length in bytes                                    */
    int n;                      /* tensors                                                */
    lm_st_entry *entries;       /* (n) in header order                                    */
    int nmeta;                  /* __metadata__ pairs                                     */
    const char **meta;          /* (2*nmeta) key0, value0, key1, value1, ...             */
    /* private */
    char *strings;              /* names, keys and values, unescaped                      */
    int *index;                 /* hash index of the names, for lm_st_find                */
    int index_cap;
    void *owned;                /* the file image, when lm_st_open read it               */
} lm_st_file;

/* Parse a file image of len bytes. Checks everything; f borrows buf (keep it alive until
   lm_st_close). On error f is zeroed and lm_error() says what is wrong. */
LMDEF int lm_st_parse(lm_st_file *f, const void *buf, size_t len);
#ifndef LM_NO_STDIO
LMDEF int lm_st_open(lm_st_file *f, const char *path);  /* read the file, then parse     */
#endif
LMDEF void lm_st_close(lm_st_file *f);                  /* free what parse/open made     */
LMDEF const lm_st_entry *lm_st_find(const lm_st_file *f, const char *name); /* or NULL    */
LMDEF const char *lm_st_meta(const lm_st_file *f, const char *key);         /* or NULL    */
LMDEF const char *lm_st_dtype_name(int dtype);          /* "F32", "BF16", ...            */
LMDEF int lm_st_dtype_size(int dtype);                  /* bytes per element, 0 if bad   */
/* Convert a tensor to float32 (numel floats into out): F32, F16 (subnormals, infinities
   and NaNs included) and BF16. Any other dtype is an error naming the tensor. */
LMDEF int lm_st_read_f32(const lm_st_file *f, const lm_st_entry *e, float *out);

/* One tensor to write: float32 data stored as dtype (F32 by default, F16 or BF16 rounded
   to nearest even), or, with raw set, bytes written as they are (any dtype). */
typedef struct lm_st_out {
    const char *name;
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    const float *data;       /* (numel)                                                   */
    int dtype;               /* LM_DT_F32 (0), LM_DT_F16 or LM_DT_BF16; any with raw      */
    const void *raw;         /* NULL, or the numel x size bytes as stored, little-endian  */
} lm_st_out;
/* Serialise n tensors and nmeta metadata pairs (meta_kv = key0, value0, key1, ...).
   *size receives the bytes needed; the image is written only when buf is not NULL, and
   then cap must be at least *size. The header is padded with spaces to a multiple of 8. */
LMDEF int lm_st_write_mem(const lm_st_out *t, int n, const char *const *meta_kv, int nmeta,
                          void *buf, size_t cap, size_t *size);
#ifndef LM_NO_STDIO
/* Write to path atomically: path.tmp is written, flushed, synced, then renamed over path.
   On failure the temporary file is removed and an existing file at path is untouched. */
LMDEF int lm_st_write(const char *path, const lm_st_out *t, int n,
                      const char *const *meta_kv, int nmeta);
#endif

/* ---------------------------------------------------------------------------------------
   Public API 17: checkpoints of the GPT and the encoder-decoder (see CHECKPOINTS above)
   --------------------------------------------------------------------------------------- */
/* A GPT checkpoint as a safetensors image in memory (the same bytes lm_gpt_save writes):
   *size receives the bytes needed; written when buf is not NULL and cap >= *size. */
LMDEF int lm_gpt_save_mem(const lm_gpt *m, void *buf, size_t cap, size_t *size);
/* Training state for exact resume, saved beside the model as PATH.state: AdamW moments
   and step count, and the caller's numbers (schedule step, data position, RNG). */
typedef struct lm_train_state {
    long step;               /* schedule steps completed                                  */
    uint64_t data_pos;       /* lm_data.pos                                               */
    uint64_t rng;            /* lm_data.rng.state                                         */
} lm_train_state;
#ifndef LM_NO_STDIO
/* Write the weights as F32 safetensors, atomically (temporary file, fsync, rename, then
   the directory synced). On failure the file at path is as it was. */
LMDEF int lm_gpt_save(const lm_gpt *m, const char *path);
/* Load a checkpoint (ours or Hugging Face GPT-2); n_head = 0: from metadata, else C/64. */
LMDEF lm_gpt *lm_gpt_load(const char *path, int n_head);
LMDEF int lm_gpt_save_state(const lm_gpt *m, const char *model_path, const lm_train_state *s);
/* The weights to PATH and the training state to PATH.state as one commit, so that a kill
   or a power cut at any moment leaves a pair that resumes exactly: the old one, or the new
   one (see CHECKPOINTS). What a training loop should call. */
LMDEF int lm_gpt_save_with_state(const lm_gpt *m, const char *path, const lm_train_state *s);
/* Load PATH.state into m (moments, step count) and s. Refused, with m untouched, unless
   the state was saved with m's very weights. A save of lm_gpt_save_with_state stopped
   between its two renames left the state that goes with the new weights complete in
   PATH.state.tmp: then that one is loaded, and renamed into place (the save finished). */
LMDEF int lm_gpt_load_state(lm_gpt *m, const char *model_path, lm_train_state *s);
#endif
/* From a safetensors image in memory; the model is untouched on error. */
LMDEF lm_gpt *lm_gpt_load_mem(const void *buf, size_t len, int n_head);

/* The encoder-decoder's checkpoints: PyTorch's state-dict names (CHECKPOINTS), as the GPT's
   (F32 written, F32, F16 and BF16 read, every name, shape and dtype checked, saved
   atomically; the resume state in MODEL.state). */
LMDEF int lm_seq2seq_save_mem(const lm_seq2seq *m, void *buf, size_t cap, size_t *size);
LMDEF lm_seq2seq *lm_seq2seq_load_mem(const void *buf, size_t len);
#ifndef LM_NO_STDIO
LMDEF int lm_seq2seq_save(const lm_seq2seq *m, const char *path);
LMDEF lm_seq2seq *lm_seq2seq_load(const char *path);
LMDEF int lm_seq2seq_save_state(const lm_seq2seq *m, const char *model_path,
                                const lm_train_state *s);
/* The checkpoint and its resume state as one commit, as lm_gpt_save_with_state. */
LMDEF int lm_seq2seq_save_with_state(const lm_seq2seq *m, const char *path,
                                     const lm_train_state *s);
LMDEF int lm_seq2seq_load_state(lm_seq2seq *m, const char *model_path, lm_train_state *s);
#endif

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
#include <stdlib.h>             /* qsort, and malloc/free unless LM_MALLOC replaces them */
#ifndef LM_MALLOC
#define LM_MALLOC(n) malloc(n)
#define LM_FREE(p) free(p)
#endif
#ifndef LM_ASSERT
#include <assert.h>
#define LM_ASSERT(x) assert(x)
#endif
#if !defined(LM_NO_THREADS)
#include <pthread.h>
#include <sched.h>
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

/* =======================================================================================
   1. Errors, numbers and memory
   The ground floor: how failures are reported (an error code and one line for lm_error),
   logging, overflow-checked sizes, the one hash and the one growing array, a portable
   RNG, and the arena every tensor lives in.
   ======================================================================================= */
/* ---------------------------------------------------------------------------------------
   Errors and logging.
   A failing function records one line here and returns an error code; the caller decides
   what to do. The message is formatted by a tiny vsnprintf-free formatter so that it also
   works under LM_NO_STDIO. Each thread has its own message where the compiler has thread-
   local storage (GCC, Clang: __thread), so concurrent callers never see each other's
   errors; elsewhere (tcc, or LM_NO_THREADS) there is one message for the whole program.
   --------------------------------------------------------------------------------------- */
#if !defined(LM_NO_THREADS) && (defined(__GNUC__) || defined(__clang__)) && !defined(__TINYC__)
#define LM__TLS __thread
#define LM__HAVE_TLS 1
#else
#define LM__TLS
#define LM__HAVE_TLS 0
#endif
static LM__TLS char lm__errbuf[512];

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

LMDEF const char *lm_version(void) { return LM_VERSION_STRING; }

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

/* FNV-1a, 64 bits, over n bytes, continuing from h (start from LM__FNV_SEED): the one hash
   of the library, for its hash tables and the weights' fingerprint. */
#define LM__FNV_SEED 0xcbf29ce484222325ull
static uint64_t lm__fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* A growing array (LM_MALLOC has no realloc): returns an array of at least `need` elements
   of `size` bytes holding the first *cap elements of p - p itself if it is big enough,
   otherwise a copy twice as large (p is then freed and *cap updated). NULL when out of
   memory, and p is then left alone. */
static void *lm__grow(void *p, size_t *cap, size_t need, size_t size) {
    size_t nc = *cap ? *cap : 16, bytes;
    void *q;
    if (need <= *cap && p) return p;
    while (nc < need) {
        if (nc > (size_t)-1 / 2) return NULL;
        nc *= 2;
    }
    if (!lm__mul_ok(nc, size, &bytes)) return NULL;
    q = LM_MALLOC(bytes);
    if (!q) return NULL;
    if (p) { memcpy(q, p, *cap * size); LM_FREE(p); }
    *cap = nc;
    return q;
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
   Forward declarations. The ops and models below are written first, for the reader; the
   machinery they stand on comes at the end of the file: the vector kernels (section 13),
   which each have a plain scalar loop beside their SIMD loop.
   --------------------------------------------------------------------------------------- */
#if defined(__GNUC__) || defined(__clang__)
#define LM__VEC_FN static __attribute__((unused))   /* not every build calls every kernel */
#else
#define LM__VEC_FN static
#endif
#define LM__REF LM__VEC_FN     /* the plain references of section 3, for reading and tests */
/* 1 = kernels use their vector loop; 0 = the scalar loop only (tests and benchmarks). */
static int lm__vec_simd = 1;
LM__VEC_FN int lm__vec_lanes(void);   /* floats per vector of the kernels in use (1: scalar) */
LM__VEC_FN void lm__vexp(const float *x, float *y, int n);
LM__VEC_FN void lm__vtanh(const float *x, float *y, int n);
LM__VEC_FN void lm__vsigmoid(const float *x, float *y, int n);
LM__VEC_FN void lm__gelu_fwd(const float *x, float *y, int n);
LM__VEC_FN void lm__gelu_bwd(const float *x, const float *dy, float *dx, int n);
LM__VEC_FN void lm__gelu_erf_fwd(const float *x, float *y, int n);
LM__VEC_FN void lm__relu_fwd(const float *x, float *y, int n);
LM__VEC_FN void lm__relu_bwd(const float *x, const float *dy, float *dx, int n);
LM__VEC_FN void lm__gelu_erf_bwd(const float *x, const float *dy, float *dx, int n);
LM__VEC_FN float lm__vmax(const float *x, int n);
LM__VEC_FN double lm__vsum_exp_shift(const float *x, float shift, float *y, int n);
LM__VEC_FN float lm__vdot(const float *a, const float *b, int n);
LM__VEC_FN double lm__vsumsq(const float *x, int n);
LM__VEC_FN void lm__vaxpy(float a, const float *x, float *y, int n);
LM__VEC_FN void lm__gemv_cols(const float *x, const float *W, size_t ld, int in, const float *b,
                              float *y, int n);
LM__VEC_FN void lm__vadd(const float *a, const float *b, float *y, int n);
LM__VEC_FN void lm__vacc(const float *x, float *y, int n);
LM__VEC_FN void lm__vacc_ieee(const float *x, float *y, int n);
LM__VEC_FN void lm__adamw_update(float *w, const float *g, float *m, float *v, int n,
                                 float decay, float b1, float b2, float step_size,
                                 float bc2_sqrt, float eps);
LM__VEC_FN void lm__layernorm_row(const float *x, const float *w, const float *b, float *y,
                                  int n, float eps, float *mean_out, float *rstd_out);
LM__VEC_FN void lm__ln_bwd_row(const float *x, const float *dy, const float *w, float mean,
                               float rstd, float *pw, float *pb, float *dx, int n);
/* The calling thread's GEMM panel memory (section 10); NULL, with lm_error(), if it
   cannot be had. Ops whose tasks call lm_gemm reserve it before posting them. */
static float *lm__panels_reserve(void);
/* What the ops may add to a product (section 3), each done by the task on its own part of
   C while that part is in cache, instead of in a pass of its own over all of C:
     bias  a row added to every row of C: C = alpha op(A) op(B) + bias (beta must be 0).
           Each micro-tile's rows of C are set to the bias just before its first K block
           adds the product onto them, so C = bias + (the product), rounded as a copy of
           the bias followed by the product with beta = 1 would be.
     post  called on each finished micro-tile: rows [i0, i0 + m), columns [j0, j0 + n)
           of C, after its last K block (an activation, a residual add). */
typedef void (*lm__gemm_post_fn)(void *ctx, float *c, size_t ldc, int i0, int j0, int m, int n);
typedef struct lm__gemm_extra {
    const float *bias;
    lm__gemm_post_fn post;
    void *post_ctx;
} lm__gemm_extra;

/* lm_gemm with a bias or an epilogue (section 10). */
static int lm__gemm_ex(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc,
                       const lm__gemm_extra *ex);
/* Likewise Q8_0 weights (section 10) and their integer kernels (section 12), which the ops,
   the models and generation use, and the F16 conversions of the safetensors (section 16). */
static lm_tensor *lm__q8_linear(lm_graph *g, lm_tensor *a, lm_tensor *b, lm_tensor *bias,
                                int tb, const char *name);
static void lm__q8_row(const lm_q8 *W, int r, float *out);
static void lm__q8_matmul(const lm_q8 *W, const float *X, int M, const float *bias, float *Y);
static int lm__q8_kind(int quant, const char *name);
static void lm__q8_dims(int kind, const int *shape, int *out, int *in);
static size_t lm__q8_arena_bytes(int out, int in);
static lm_q8 *lm__q8_new(lm_arena *a, int out, int in);
static float lm__f16_to_f32(uint16_t h);
static uint16_t lm__f32_to_f16(float f);

/* =======================================================================================
   2. Tensors and the graph
   Tensors and the graph.
   Every tensor of a step lives in the graph's arena. A tensor's gradient is allocated (and
   zeroed) the first time a backward function adds to it, so tensors that no gradient
   reaches cost nothing extra. Parameters are leaves whose data and grad point into the
   model's parameter blocks.
   ======================================================================================= */
LMDEF void lm_graph_init(lm_graph *g, lm_arena *arena) {
    memset(g, 0, sizeof *g);
    g->arena = arena;
    g->rng = lm_rng_seed(0);
}

LMDEF void lm_graph_reset(lm_graph *g, size_t mark) {
    lm_arena_reset(g->arena, mark);
    g->last = NULL;
    g->failed = 0;
    g->n_spare = 0;       /* spare buffers lived in the memory just given back */
}

static int lm__shape_size(int ndim, const int *shape, int *size) {
    int d;
    long long n = 1;
    if (ndim < 1 || ndim > LM_MAX_DIMS) return lm__fail(LM_ERR_ARG, "tensor: %d dims (1 to 4 allowed)", ndim);
    for (d = 0; d < ndim; d++) {
        if (shape[d] < 1) return lm__fail(LM_ERR_ARG, "tensor: dim %d is %d", d, shape[d]);
        n *= shape[d];
        if (n > INT_MAX) return lm__fail(LM_ERR_ARG, "tensor: more than 2^31 elements");
    }
    *size = (int)n;
    return LM_OK;
}

/* A tensor header (and, if with_data, its values) on the graph's arena. */
static lm_tensor *lm__tensor(lm_graph *g, int ndim, const int *shape, int with_data) {
    lm_tensor *t;
    int size = 0, d;
    if (g->failed) return NULL;
    if (lm__shape_size(ndim, shape, &size) != LM_OK) { g->failed = 1; return NULL; }
    t = (lm_tensor *)lm_arena_alloc(g->arena, sizeof *t);
    if (!t) { g->failed = 1; return NULL; }
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->size = size;
    if (with_data) {
        t->data = (float *)lm_arena_alloc(g->arena, (size_t)size * sizeof(float));
        if (!t->data) { g->failed = 1; return NULL; }
    }
    return t;
}

LMDEF lm_tensor *lm_tensor_new(lm_graph *g, int ndim, const int *shape) {
    return lm__tensor(g, ndim, shape, 1);
}
LMDEF lm_tensor *lm_tensor_zeros(lm_graph *g, int ndim, const int *shape) {
    lm_tensor *t = lm__tensor(g, ndim, shape, 1);
    if (t) memset(t->data, 0, (size_t)t->size * sizeof(float));
    return t;
}
LMDEF lm_tensor *lm_tensor_wrap(lm_graph *g, float *data, int ndim, const int *shape,
                                int requires_grad) {
    lm_tensor *t = lm__tensor(g, ndim, shape, 0);
    if (t) { t->data = data; t->requires_grad = requires_grad; }
    return t;
}
LMDEF lm_tensor *lm_tensor_2d(lm_graph *g, int rows, int cols) {
    int s[2];
    s[0] = rows; s[1] = cols;
    return lm_tensor_new(g, 2, s);
}

/* Scratch buffers during backward. Once a node's backward has run, the gradient of its
   output is dead (every consumer came later on the tape and has already run), so it goes
   on a short spare list and the next buffer of at most that size is taken from there
   instead of from the arena. Activation gradients then cost a few buffers, not one per
   tensor. The smallest spare that fits is used, so the choice is deterministic. */
static float *lm__scratch(lm_graph *g, size_t n) {
    int k, best = -1;
    float *p;
    for (k = 0; k < g->n_spare; k++)
        if (g->spare_len[k] >= n && (best < 0 || g->spare_len[k] < g->spare_len[best])) best = k;
    if (best >= 0) {
        p = g->spare[best];
        g->spare[best] = g->spare[g->n_spare - 1];
        g->spare_len[best] = g->spare_len[g->n_spare - 1];
        g->n_spare--;
        return p;
    }
    p = (float *)lm_arena_alloc(g->arena, n * sizeof(float));
    if (!p) g->failed = 1;
    return p;
}
static void lm__release(lm_graph *g, float *p, size_t n) {
    int k, smallest = 0;
    if (!p) return;
    if (g->n_spare < 16) { k = g->n_spare++; }
    else {   /* full: keep the larger buffers */
        for (k = 1; k < 16; k++) if (g->spare_len[k] < g->spare_len[smallest]) smallest = k;
        if (g->spare_len[smallest] >= n) return;
        k = smallest;
    }
    g->spare[k] = p;
    g->spare_len[k] = n;
}

/* The gradient buffer of t, zeroed on first use (NULL if out of memory). */
/* Elementwise work is cut into fixed chunks of LM__CHUNK floats, one task each: the cut
   depends on the size only, so sums over chunks come out the same for any thread count.
   Work of fewer than two chunks runs on the calling thread (waking the pool costs more). */
#define LM__CHUNK 16384
static int lm__nchunks(size_t n) { return (int)((n + LM__CHUNK - 1) / LM__CHUNK); }
static void lm__run_tasks(int n, lm_task_fn fn, void *ctx) {
    int c;
    if (n >= 2) lm_parallel_for(n, fn, ctx);
    else for (c = 0; c < n; c++) fn(ctx, c);
}
static void lm__chunk_for(size_t n, lm_task_fn fn, void *ctx) { lm__run_tasks(lm__nchunks(n), fn, ctx); }
typedef struct { float *p; size_t n; } lm__zero_job;
static void lm__zero_task(void *ctx, int c) {
    lm__zero_job *J = (lm__zero_job *)ctx;
    size_t i0 = (size_t)c * LM__CHUNK;
    memset(J->p + i0, 0, (J->n - i0 < LM__CHUNK ? J->n - i0 : LM__CHUNK) * sizeof(float));
}
static void lm__zero(float *p, size_t n) {
    lm__zero_job J;
    J.p = p; J.n = n;
    lm__chunk_for(n, lm__zero_task, &J);
}

static float *lm__grad(lm_graph *g, lm_tensor *t) {
    if (!t->grad) {
        t->grad = lm__scratch(g, (size_t)t->size);
        if (t->grad) lm__zero(t->grad, (size_t)t->size);
    }
    return t->grad;
}
/* The same for a backward function that can store instead of add: when t has no gradient
   yet, its buffer is taken unzeroed and *fresh is set, and the function must then write
   every element of it (=, not +=), in the same task that computes them. That saves a pass
   of its own over the buffer (and a job of the pool) for most gradients of a step. */
static float *lm__grad_w(lm_graph *g, lm_tensor *t, int *fresh) {
    *fresh = 0;
    if (!t->grad) {
        t->grad = lm__scratch(g, (size_t)t->size);
        *fresh = t->grad != NULL;
    }
    return t->grad;
}

LMDEF lm_node *lm_node_new(lm_graph *g, const lm_op *op, int nin, lm_tensor **in, int ndim,
                           const int *shape) {
    lm_node *n;
    int k;
    if (g->failed || nin > 4) return NULL;
    for (k = 0; k < nin; k++) if (!in[k]) { g->failed = 1; return NULL; }
    n = (lm_node *)lm_arena_alloc(g->arena, sizeof *n);
    if (!n) { g->failed = 1; return NULL; }
    memset(n, 0, sizeof *n);
    n->op = op;
    n->g = g;
    for (k = 0; k < nin; k++) n->in[k] = in[k];
    n->out = lm__tensor(g, ndim, shape, 1);
    return n->out ? n : NULL;
}

LMDEF lm_tensor *lm_node_run(lm_node *n) {
    int k, needs = 0;
    if (!n || n->g->failed) return NULL;
    n->op->forward(n);
    if (n->g->failed) return NULL;
    for (k = 0; k < 4; k++) if (n->in[k] && n->in[k]->requires_grad) needs = 1;
    if (needs && !n->g->no_grad) {
        n->out->requires_grad = 1;
        n->out->node = n;
        n->prev = n->g->last;
        n->g->last = n;
    }
    return n->out;
}

LMDEF int lm_backward(lm_graph *g, lm_tensor *out) {
    lm_node *n;
    if (!out || g->failed) return lm__fail(LM_ERR_ARG, "backward: the forward pass failed: %s", lm_error());
    if (out->size != 1) return lm__fail(LM_ERR_ARG, "backward: output has %d elements, need 1", out->size);
    if (!out->requires_grad) return lm__fail(LM_ERR_ARG, "backward: nothing requires a gradient");
    if (!lm__grad(g, out)) return LM_ERR_MEM;
    out->grad[0] += 1.0f;
    for (n = g->last; n; n = n->prev) {
        if (!n->out->grad) continue;      /* no gradient reached this node */
        n->op->backward(n);
        if (g->failed) return lm__fail(LM_ERR_MEM, "backward: %s", lm_error());
        if (n->out != out) {              /* dead from here on: recycle it */
            lm__release(g, n->out->grad, (size_t)n->out->size);
            n->out->grad = NULL;
        }
    }
    return LM_OK;
}

/* Shapes of a new op's output: same as a, or a with the last dim replaced. */
static int *lm__shape_last(const lm_tensor *a, int last, int *buf) {
    int d;
    for (d = 0; d < a->ndim; d++) buf[d] = a->shape[d];
    buf[a->ndim - 1] = last;
    return buf;
}
/* The gradient of an input, or NULL if that input wants none; lm__in_grad_w for a backward
   that writes it all when *fresh (see lm__grad_w). */
static float *lm__in_grad(lm_node *n, int k) {
    lm_tensor *t = n->in[k];
    return t && t->requires_grad ? lm__grad(n->g, t) : NULL;
}
static float *lm__in_grad_w(lm_node *n, int k, int *fresh) {
    lm_tensor *t = n->in[k];
    *fresh = 0;
    return t && t->requires_grad ? lm__grad_w(n->g, t, fresh) : NULL;
}
static lm_tensor *lm__op_fail(lm_graph *g, const char *op, const char *why) {
    lm__fail(LM_ERR_ARG, "%s: %s", op, why);
    g->failed = 1;
    return NULL;
}

/* ---------------------------------------------------------------------------------------
   Row-parallel helpers. Row-wise ops (layernorm, softmax, losses) split their rows into
   blocks of a fixed size; each block is one task. Rows are independent, so the split only
   matters for reductions across rows, which are summed per block and then in block order.
   --------------------------------------------------------------------------------------- */
#define LM__ROWBLOCK 16
static int lm__nblocks(int rows) { return (rows + LM__ROWBLOCK - 1) / LM__ROWBLOCK; }

/* =======================================================================================
   3. Ops
   Each op is a forward function and a backward function over a node of the tape, side by
   side, after the math they compute; where the work runs in a vector kernel (section 13),
   a plain scalar version of the math sits beside the op (lm__ref_*), short enough to check
   by hand, and the tests hold the kernel to it. Backward functions add into the inputs'
   gradients (+=), since one tensor may feed several ops.
   ======================================================================================= */

/* ---------------------------------------------------------------------------------------
   3.1 Elementwise ops with broadcast. b's shape is a suffix of a's (or b has one element), so
   b repeats every nb elements of a: a bias over rows, a scalar over everything.
   --------------------------------------------------------------------------------------- */
static int lm__bcast_ok(const lm_tensor *a, const lm_tensor *b) {
    int d, off;
    if (b->size == 1) return 1;
    if (b->ndim > a->ndim) return 0;
    off = a->ndim - b->ndim;
    for (d = 0; d < b->ndim; d++) if (a->shape[off + d] != b->shape[d]) return 0;
    return 1;
}

enum { LM__ADD, LM__SUB, LM__MUL };
/* o = a (op) b over [i0, i1), a range of whole repeats of b (or any range when b is a
   scalar or as large as a); ga += go * b' likewise (b' = b for MUL, 1 otherwise). */
static void lm__binary_span(int kind, const float *a, const float *b, int nb, int na,
                            float *o, int i0, int i1) {
    int i, j;
    if (nb == 1 || nb == na) {
        int step = nb == 1 ? 0 : 1;
        const float *bb = nb == 1 ? b : b + i0;
        for (i = i0, j = 0; i < i1; i++, j += step)
            o[i] = kind == LM__ADD ? a[i] + bb[j] : kind == LM__SUB ? a[i] - bb[j] : a[i] * bb[j];
        return;
    }
    for (i = i0; i < i1; i += nb)
        for (j = 0; j < nb; j++)
            o[i + j] = kind == LM__ADD ? a[i + j] + b[j] : kind == LM__SUB ? a[i + j] - b[j] : a[i + j] * b[j];
}
static void lm__binary_gspan(int mul, const float *go, const float *b, int nb, int na,
                             float *ga, int i0, int i1, int set) {
    int i, j;
    if (set) memset(ga + i0, 0, (size_t)(i1 - i0) * sizeof(float));   /* a fresh gradient */
    if (!mul) { for (i = i0; i < i1; i++) ga[i] += go[i]; return; }
    if (nb == 1 || nb == na) {
        for (i = i0; i < i1; i++) ga[i] += go[i] * b[nb == 1 ? 0 : i];
        return;
    }
    for (i = i0; i < i1; i += nb)
        for (j = 0; j < nb; j++) ga[i + j] += go[i + j] * b[j];
}
/* Tasks: whole repeats of b, about a chunk's worth each; plain chunks when b is a scalar or
   as large as a (a residual add). */
typedef struct { lm_node *n; float *dst; int step, fresh; } lm__binary_job;
static int lm__binary_tasks(lm__binary_job *J) {
    int na = J->n->in[0]->size, nb = J->n->in[1]->size;
    J->step = nb == 1 || nb == na ? LM__CHUNK : (LM__CHUNK / nb > 0 ? LM__CHUNK / nb : 1) * nb;
    return (na + J->step - 1) / J->step;
}
static void lm__binary_fwd_task(void *ctx, int c) {
    const lm__binary_job *J = (const lm__binary_job *)ctx;
    lm_node *n = J->n;
    int na = n->in[0]->size, i0 = c * J->step, i1 = na - i0 < J->step ? na : i0 + J->step;
    lm__binary_span(n->i[0], n->in[0]->data, n->in[1]->data, n->in[1]->size, na, n->out->data, i0, i1);
}
static void lm__binary_bwd_task(void *ctx, int c) {
    const lm__binary_job *J = (const lm__binary_job *)ctx;
    lm_node *n = J->n;
    int na = n->in[0]->size, i0 = c * J->step, i1 = na - i0 < J->step ? na : i0 + J->step;
    lm__binary_gspan(n->i[0] == LM__MUL, n->out->grad, n->in[1]->data, n->in[1]->size, na, J->dst,
                     i0, i1, J->fresh);
}
static void lm__binary_fwd(lm_node *n) {
    lm__binary_job J;
    J.n = n;
    lm__run_tasks(lm__binary_tasks(&J), lm__binary_fwd_task, &J);
}
static void lm__binary_bwd(lm_node *n) {
    const float *a = n->in[0]->data, *go = n->out->grad;
    float *gb;
    int i, j, na = n->in[0]->size, nb = n->in[1]->size, kind = n->i[0];
    lm__binary_job J;
    J.n = n;
    if (kind == LM__ADD && nb == na) {               /* same shapes (a residual add)        */
        if ((J.dst = lm__in_grad_w(n, 1, &J.fresh)) != NULL)       /* gb += go, in chunks */
            lm__run_tasks(lm__binary_tasks(&J), lm__binary_bwd_task, &J);
        if (n->in[0]->requires_grad && !n->in[0]->grad && na > 1) {
            /* a has no gradient yet: it is go, so a takes go's buffer, which is dead
               after this node anyway (not the root of backward: that has one element) */
            n->in[0]->grad = n->out->grad;
            n->out->grad = NULL;
        } else if ((J.dst = lm__in_grad_w(n, 0, &J.fresh)) != NULL) {
            lm__run_tasks(lm__binary_tasks(&J), lm__binary_bwd_task, &J);
        }
        return;
    }
    gb = lm__in_grad(n, 1);
    if ((J.dst = lm__in_grad_w(n, 0, &J.fresh)) != NULL)
        lm__run_tasks(lm__binary_tasks(&J), lm__binary_bwd_task, &J);
    if (gb) for (i = 0; i < na; i += nb) {           /* b repeats: sum over the repeats   */
        if (kind == LM__MUL) for (j = 0; j < nb; j++) gb[j] += go[i + j] * a[i + j];
        else if (kind == LM__SUB) for (j = 0; j < nb; j++) gb[j] -= go[i + j];
        else for (j = 0; j < nb; j++) gb[j] += go[i + j];
    }
}
static const lm_op lm__op_binary = { "binary", lm__binary_fwd, lm__binary_bwd };

static lm_tensor *lm__binary(lm_graph *g, lm_tensor *a, lm_tensor *b, int kind, const char *name) {
    lm_tensor *in[2];
    lm_node *n;
    if (!a || !b) { g->failed = 1; return NULL; }
    if (!lm__bcast_ok(a, b)) return lm__op_fail(g, name, "b's shape must be a suffix of a's");
    in[0] = a; in[1] = b;
    n = lm_node_new(g, &lm__op_binary, 2, in, a->ndim, a->shape);
    if (n) n->i[0] = kind;
    return lm_node_run(n);
}
LMDEF lm_tensor *lm_add(lm_graph *g, lm_tensor *a, lm_tensor *b) { return lm__binary(g, a, b, LM__ADD, "add"); }
LMDEF lm_tensor *lm_sub(lm_graph *g, lm_tensor *a, lm_tensor *b) { return lm__binary(g, a, b, LM__SUB, "sub"); }
LMDEF lm_tensor *lm_mul(lm_graph *g, lm_tensor *a, lm_tensor *b) { return lm__binary(g, a, b, LM__MUL, "mul"); }

static void lm__scale_fwd(lm_node *n) {
    int i;
    for (i = 0; i < n->out->size; i++) n->out->data[i] = n->in[0]->data[i] * n->f[0];
}
static void lm__scale_bwd(lm_node *n) {
    float *ga = lm__in_grad(n, 0);
    int i;
    if (ga) for (i = 0; i < n->out->size; i++) ga[i] += n->out->grad[i] * n->f[0];
}
static const lm_op lm__op_scale = { "scale", lm__scale_fwd, lm__scale_bwd };
LMDEF lm_tensor *lm_scale(lm_graph *g, lm_tensor *a, float s) {
    lm_node *n;
    if (!a) { g->failed = 1; return NULL; }
    n = lm_node_new(g, &lm__op_scale, 1, &a, a->ndim, a->shape);
    if (n) n->f[0] = s;
    return lm_node_run(n);
}

/* ---------------------------------------------------------------------------------------
   3.2 Matrix products. a (..., K) is seen as a matrix (M, K) with M the product of its leading
   dims. Forward and both gradients are GEMMs:
       out = a b          da += dout b^T        db += a^T dout
   and for b stored transposed (tb, b is (N, K)):
       out = a b^T        da += dout b          db += dout^T a
   linear() adds a bias row, whose gradient is the column sum of dout.
   --------------------------------------------------------------------------------------- */
/* The plain math: c (M, N) = a (M, K) b (K, N), or b^T for b stored (N, K). The op calls
   lm_gemm (section 12), which computes the same sums in another order, blocked for speed. */
LM__REF void lm__ref_matmul(const float *a, const float *b, double *c, int M, int K, int N, int tb) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = 0;
            for (k = 0; k < K; k++) s += (double)a[(size_t)i * K + k] * (tb ? b[(size_t)j * K + k] : b[(size_t)k * N + j]);
            c[(size_t)i * N + j] = s;
        }
}

/* Two steps that usually follow a linear layer run inside it, on each GEMM tile as it is
   finished (lm__gemm_extra), instead of as ops of their own with a pass over memory each:
     LM__THEN_GELU      out = gelu(x w + b); the product before GELU is kept (n->saved)
                        for backward, which first makes d(product) = dout gelu'(product);
                        with no_grad, GELU runs in place and nothing is kept
     LM__THEN_RESIDUAL  out = res + (x w + b): the residual stream of a block; backward
                        passes dout on to res unchanged.
   Both give the bits of lm_gelu(lm_linear(...)) and lm_add(res, lm_linear(...)) (GELU:
   when the width is a whole number of vectors, as in every model here; otherwise the
   last few columns of a row take GELU's scalar path, which may differ in the last bit). */
enum { LM__THEN_NONE, LM__THEN_GELU, LM__THEN_RESIDUAL };
static void lm__matmul_then(void *ctx, float *c, size_t ldc, int i0, int j0, int m, int n) {
    lm_node *nd = (lm_node *)ctx;
    int N = nd->out->shape[nd->out->ndim - 1], r;
    for (r = 0; r < m; r++) {
        size_t at = (size_t)(i0 + r) * N + j0;
        if (nd->i[1] == LM__THEN_GELU) lm__gelu_fwd(c + r * ldc, nd->out->data + at, n);
        else lm__vacc(nd->in[3]->data + at, c + r * ldc, n);
    }
}
static void lm__matmul_fwd(lm_node *n) {
    lm_tensor *a = n->in[0], *b = n->in[1], *bias = n->in[2];
    int tb = n->i[0], K = a->shape[a->ndim - 1], N = n->out->shape[n->out->ndim - 1];
    int M = a->size / K;
    lm__gemm_extra ex;
    memset(&ex, 0, sizeof ex);
    ex.bias = bias ? bias->data : NULL;            /* added by each tile as it goes */
    if (n->i[1] != LM__THEN_NONE) { ex.post = lm__matmul_then; ex.post_ctx = n; }
    if (lm__gemm_ex(0, tb, M, N, K, 1.0f, a->data, K, b->data, tb ? K : N, 0.0f,
                    n->saved ? n->saved : n->out->data, N, &ex) != LM_OK)
        n->g->failed = 1;
}

/* Column sums of dout into the bias gradient, in row blocks of fixed size summed in order. */
/* gbias += the column sums of go (M, N): tasks take 64 columns each, every column summed
   over the rows in order. */
typedef struct { float *gbias; const float *go; int M, N; } lm__colsum_job;
static void lm__colsum_task(void *ctx, int c) {
    lm__colsum_job *J = (lm__colsum_job *)ctx;
    int i, j, j0 = c * 64, w = J->N - j0 < 64 ? J->N - j0 : 64;
    float acc[64] = { 0 };                   /* a local row, and a fixed trip count for */
    for (i = 0; i < J->M; i++) {             /* whole blocks: the compiler vectorizes   */
        const float *r = J->go + (size_t)i * J->N + j0;
        if (w == 64) for (j = 0; j < 64; j++) acc[j] += r[j];
        else for (j = 0; j < w; j++) acc[j] += r[j];
    }
    for (j = 0; j < w; j++) J->gbias[j0 + j] += acc[j];
}
static void lm__colsum_acc(float *gbias, const float *go, int M, int N) {
    lm__colsum_job J;
    int c, nc = (N + 63) / 64;
    J.gbias = gbias; J.go = go; J.M = M; J.N = N;
    if (nc >= 2 && (size_t)M * N >= 2 * LM__CHUNK) lm_parallel_for(nc, lm__colsum_task, &J);
    else for (c = 0; c < nc; c++) lm__colsum_task(&J, c);
}

/* LM__THEN_GELU's backward: d(product) = dout gelu'(product), a chunk a task. */
typedef struct { const float *x, *go; float *dx; size_t n; } lm__gelu_bwd_job;
static void lm__gelu_bwd_task(void *ctx, int c) {
    const lm__gelu_bwd_job *J = (const lm__gelu_bwd_job *)ctx;
    size_t i0 = (size_t)c * LM__CHUNK, len = J->n - i0 < LM__CHUNK ? J->n - i0 : LM__CHUNK;
    memset(J->dx + i0, 0, len * sizeof(float));
    lm__gelu_bwd(J->x + i0, J->go + i0, J->dx + i0, (int)len);
}
static void lm__matmul_bwd(lm_node *n) {
    lm_tensor *a = n->in[0], *b = n->in[1];
    int tb = n->i[0], K = a->shape[a->ndim - 1], N = n->out->shape[n->out->ndim - 1];
    int M = a->size / K;
    const float *go = n->out->grad;
    int fa, fb, rc = LM_OK;                  /* fresh gradients are stored (beta 0)   */
    float *ga, *gb, *gbias, *dh = NULL;
    if (n->i[1] == LM__THEN_GELU) {
        lm__gelu_bwd_job J;
        J.x = n->saved; J.go = go; J.n = (size_t)n->out->size;
        if (!(J.dx = dh = lm__scratch(n->g, J.n))) return;
        lm__chunk_for(J.n, lm__gelu_bwd_task, &J);
        go = dh;
    }
    ga = lm__in_grad_w(n, 0, &fa); gb = lm__in_grad_w(n, 1, &fb); gbias = lm__in_grad(n, 2);
    if (ga) {
        if (tb) rc |= lm_gemm(0, 0, M, K, N, 1.0f, go, N, b->data, K, fa ? 0.0f : 1.0f, ga, K);
        else rc |= lm_gemm(0, 1, M, K, N, 1.0f, go, N, b->data, N, fa ? 0.0f : 1.0f, ga, K);
    }
    if (gb) {
        if (tb) rc |= lm_gemm(1, 0, N, K, M, 1.0f, go, N, a->data, K, fb ? 0.0f : 1.0f, gb, K);
        else rc |= lm_gemm(1, 0, K, N, M, 1.0f, a->data, K, go, N, fb ? 0.0f : 1.0f, gb, N);
    }
    if (rc != LM_OK) n->g->failed = 1;
    if (gbias) lm__colsum_acc(gbias, go, M, N);
    if (dh) lm__release(n->g, dh, (size_t)n->out->size);
    if (n->i[1] == LM__THEN_RESIDUAL && n->in[3]->requires_grad) {
        lm_tensor *res = n->in[3];
        if (!res->grad && res->size > 1) {       /* res's gradient is dout: hand it over  */
            res->grad = n->out->grad;
            n->out->grad = NULL;
        } else if (lm__grad(n->g, res)) {
            lm__vacc(n->out->grad, res->grad, res->size);
        }
    }
}
static const lm_op lm__op_matmul = { "matmul", lm__matmul_fwd, lm__matmul_bwd };

static lm_tensor *lm__matmul(lm_graph *g, lm_tensor *a, lm_tensor *b, lm_tensor *bias, int tb,
                             const char *name, int then, lm_tensor *res) {
    lm_tensor *in[4];
    lm_node *n;
    int shape[LM_MAX_DIMS], K, N;
    if (!a || !b || (then == LM__THEN_RESIDUAL && !res)) { g->failed = 1; return NULL; }
    if (b->q8) {       /* Q8_0 weights (section 10); the step after the product runs as an op */
        lm_tensor *y = lm__q8_linear(g, a, b, bias, tb, name);
        if (then == LM__THEN_GELU) return lm_gelu(g, y);
        return then == LM__THEN_RESIDUAL ? lm_add(g, res, y) : y;
    }
    if (b->ndim != 2) return lm__op_fail(g, name, "the weight must be 2-D");
    K = tb ? b->shape[1] : b->shape[0];
    N = tb ? b->shape[0] : b->shape[1];
    if (a->shape[a->ndim - 1] != K) return lm__op_fail(g, name, "inner dimensions differ");
    if (bias && bias->size != N) return lm__op_fail(g, name, "bias size differs from the output width");
    if (res && res->size != a->size / K * N) return lm__op_fail(g, name, "the residual has another size");
    in[0] = a; in[1] = b; in[2] = bias; in[3] = res;
    n = lm_node_new(g, &lm__op_matmul, res ? 4 : bias ? 3 : 2, in, a->ndim, lm__shape_last(a, N, shape));
    if (!n) return NULL;
    n->i[0] = tb;
    n->i[1] = then;
    if (then == LM__THEN_GELU && !g->no_grad &&           /* inference: GELU in place */
        !(n->saved = (float *)lm_arena_alloc(g->arena, (size_t)n->out->size * sizeof(float)))) {
        g->failed = 1;
        return NULL;
    }
    return lm_node_run(n);
}
LMDEF lm_tensor *lm_matmul(lm_graph *g, lm_tensor *a, lm_tensor *b, int tb) {
    return lm__matmul(g, a, b, NULL, tb, "matmul", LM__THEN_NONE, NULL);
}
LMDEF lm_tensor *lm_linear(lm_graph *g, lm_tensor *x, lm_tensor *w, lm_tensor *bias) {
    return lm__matmul(g, x, w, bias, 0, "linear", LM__THEN_NONE, NULL);
}

/* ---------------------------------------------------------------------------------------
   3.3 Reductions to a scalar: sum and mean (accumulated in double).
   --------------------------------------------------------------------------------------- */
static void lm__sum_fwd(lm_node *n) {
    double s = 0;
    int i;
    for (i = 0; i < n->in[0]->size; i++) s += n->in[0]->data[i];
    n->out->data[0] = (float)(n->i[0] ? s / n->in[0]->size : s);
}
static void lm__sum_bwd(lm_node *n) {
    float *ga = lm__in_grad(n, 0);
    float d = n->out->grad[0] / (n->i[0] ? (float)n->in[0]->size : 1.0f);
    int i;
    if (ga) for (i = 0; i < n->in[0]->size; i++) ga[i] += d;
}
static const lm_op lm__op_sum = { "sum", lm__sum_fwd, lm__sum_bwd };
static lm_tensor *lm__reduce(lm_graph *g, lm_tensor *a, int mean) {
    int one = 1;
    lm_node *n;
    if (!a) { g->failed = 1; return NULL; }
    n = lm_node_new(g, &lm__op_sum, 1, &a, 1, &one);
    if (n) n->i[0] = mean;
    return lm_node_run(n);
}
LMDEF lm_tensor *lm_sum(lm_graph *g, lm_tensor *a) { return lm__reduce(g, a, 0); }
LMDEF lm_tensor *lm_mean(lm_graph *g, lm_tensor *a) { return lm__reduce(g, a, 1); }

/* ---------------------------------------------------------------------------------------
   3.4 Activations. GELU is GPT-2's tanh form:
       gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
       gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2)
   and, for the encoder-decoder (PyTorch's nn.Transformer, activation "gelu"), the exact
   form it approximates, with Phi the normal distribution function and phi its density:
       gelu_erf(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
       gelu_erf'(x) = Phi(x) + x phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
   --------------------------------------------------------------------------------------- */
#define LM__GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define LM__GELU_C 0.044715f

/* The plain math of the kernels (lm__gelu_fwd, lm__gelu_bwd, lm__vsigmoid, lm__vtanh; their
   polynomials are in section 13). GELU is written x / (1 + exp(-2u)), the same function as
   0.5 x (1 + tanh u) without its cancellation for negative x. */
LM__REF double lm__ref_gelu(double x) {
    double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * u));
}
LM__REF double lm__ref_gelu_grad(double x) {
    double u = 0.7978845608028654 * (x + 0.044715 * x * x * x), e = exp(-2.0 * u);
    double s = 1.0 / (1.0 + e);                /* 0.5 (1 + tanh u); 1 - tanh^2 u = 4 s e s */
    if (e > DBL_MAX) return 0;                 /* the limit, far below float's range       */
    return s + 2.0 * x * (e * s) * s * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}
LM__REF double lm__ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
/* Phi(x) = 0.5 erfc(-x / sqrt 2): erfc keeps full relative accuracy for negative x. */
LM__REF double lm__ref_gelu_erf(double x) { return 0.5 * x * erfc(-x * 0.7071067811865476); }
LM__REF double lm__ref_gelu_erf_grad(double x) {
    return 0.5 * erfc(-x * 0.7071067811865476) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}

enum { LM__RELU, LM__GELU, LM__TANH, LM__SIGMOID, LM__GELU_ERF };
/* y = act(x) over n values (y may be x) */
static void lm__act_span(int kind, const float *x, float *y, int n) {
    switch (kind) {
    case LM__RELU: lm__relu_fwd(x, y, n); break;
    case LM__GELU: lm__gelu_fwd(x, y, n); break;
    case LM__TANH: lm__vtanh(x, y, n); break;
    case LM__GELU_ERF: lm__gelu_erf_fwd(x, y, n); break;
    default: lm__vsigmoid(x, y, n); break;
    }
}
typedef struct { lm_node *n; float *gx; int fresh; } lm__act_job;
static void lm__act_fwd_task(void *ctx, int c) {
    lm_node *n = ((lm__act_job *)ctx)->n;
    int i0 = c * LM__CHUNK, len = n->out->size - i0 < LM__CHUNK ? n->out->size - i0 : LM__CHUNK;
    lm__act_span(n->i[0], n->in[0]->data + i0, n->out->data + i0, len);
}
static void lm__act_bwd_task(void *ctx, int c) {
    lm__act_job *J = (lm__act_job *)ctx;
    lm_node *n = J->n;
    int i0 = c * LM__CHUNK, len = n->out->size - i0 < LM__CHUNK ? n->out->size - i0 : LM__CHUNK, i;
    const float *x = n->in[0]->data + i0, *y = n->out->data + i0, *go = n->out->grad + i0;
    float *gx = J->gx + i0;
    if (J->fresh) memset(gx, 0, (size_t)len * sizeof(float));   /* fresh: this chunk's own */
    switch (n->i[0]) {
    case LM__RELU: lm__relu_bwd(x, go, gx, len); break;
    case LM__GELU: lm__gelu_bwd(x, go, gx, len); break;
    case LM__TANH: for (i = 0; i < len; i++) gx[i] += go[i] * (1.0f - y[i] * y[i]); break;
    case LM__GELU_ERF: lm__gelu_erf_bwd(x, go, gx, len); break;
    default: for (i = 0; i < len; i++) gx[i] += go[i] * y[i] * (1.0f - y[i]); break;
    }
}
static void lm__act_fwd(lm_node *n) {
    lm__act_job J;
    J.n = n; J.gx = NULL;
    lm__chunk_for((size_t)n->out->size, lm__act_fwd_task, &J);
}
static void lm__act_bwd(lm_node *n) {
    lm__act_job J;
    J.n = n; J.gx = lm__in_grad_w(n, 0, &J.fresh);
    if (J.gx) lm__chunk_for((size_t)n->out->size, lm__act_bwd_task, &J);
}
static const lm_op lm__op_act = { "activation", lm__act_fwd, lm__act_bwd };
static lm_tensor *lm__act(lm_graph *g, lm_tensor *a, int kind) {
    lm_node *n;
    if (!a) { g->failed = 1; return NULL; }
    n = lm_node_new(g, &lm__op_act, 1, &a, a->ndim, a->shape);
    if (n) n->i[0] = kind;
    return lm_node_run(n);
}
LMDEF lm_tensor *lm_relu(lm_graph *g, lm_tensor *a) { return lm__act(g, a, LM__RELU); }
LMDEF lm_tensor *lm_gelu(lm_graph *g, lm_tensor *a) { return lm__act(g, a, LM__GELU); }
LMDEF lm_tensor *lm_gelu_erf(lm_graph *g, lm_tensor *a) { return lm__act(g, a, LM__GELU_ERF); }
LMDEF lm_tensor *lm_tanh(lm_graph *g, lm_tensor *a) { return lm__act(g, a, LM__TANH); }
LMDEF lm_tensor *lm_sigmoid(lm_graph *g, lm_tensor *a) { return lm__act(g, a, LM__SIGMOID); }

/* ---------------------------------------------------------------------------------------
   3.5 Softmax and log-softmax over the last dim, max-subtracted for stability.
       softmax:     dx = y (dy - sum(dy y))
       log_softmax: dx = dy - softmax(x) sum(dy)
   --------------------------------------------------------------------------------------- */
/* The plain math of one row: y = exp(x - max) / sum exp(x - max), or its log. */
LM__REF void lm__ref_softmax(const float *x, double *y, int n, int logspace) {
    double mx = -HUGE_VAL, z = 0;
    int j;
    for (j = 0; j < n; j++) if (x[j] > mx) mx = x[j];
    for (j = 0; j < n; j++) z += exp(x[j] - mx);
    for (j = 0; j < n; j++) y[j] = logspace ? x[j] - mx - log(z) : exp(x[j] - mx) / z;
}

static void lm__softmax_row(const float *x, float *y, int n, int logspace) {
    float mx = lm__vmax(x, n);
    int j;
    if (logspace) {
        float lse = mx + (float)log(lm__vsum_exp_shift(x, mx, NULL, n));
        for (j = 0; j < n; j++) y[j] = x[j] - lse;
    } else {
        float inv = (float)(1.0 / lm__vsum_exp_shift(x, mx, y, n));
        for (j = 0; j < n; j++) y[j] *= inv;
    }
}
static void lm__softmax_fwd(lm_node *n) {
    int V = n->out->shape[n->out->ndim - 1], rows = n->out->size / V, r;
    for (r = 0; r < rows; r++)
        lm__softmax_row(n->in[0]->data + (size_t)r * V, n->out->data + (size_t)r * V, V, n->i[0]);
}
static void lm__softmax_bwd(lm_node *n) {
    int V = n->out->shape[n->out->ndim - 1], rows = n->out->size / V, r, j;
    float *gx = lm__in_grad(n, 0);
    if (!gx) return;
    for (r = 0; r < rows; r++) {
        const float *y = n->out->data + (size_t)r * V, *dy = n->out->grad + (size_t)r * V;
        float *dx = gx + (size_t)r * V;
        double s = 0;
        if (n->i[0]) {
            for (j = 0; j < V; j++) s += dy[j];
            for (j = 0; j < V; j++) dx[j] += dy[j] - expf(y[j]) * (float)s;
        } else {
            for (j = 0; j < V; j++) s += (double)dy[j] * y[j];
            for (j = 0; j < V; j++) dx[j] += y[j] * (dy[j] - (float)s);
        }
    }
}
static const lm_op lm__op_softmax = { "softmax", lm__softmax_fwd, lm__softmax_bwd };
static lm_tensor *lm__softmax(lm_graph *g, lm_tensor *a, int logspace) {
    lm_node *n;
    if (!a) { g->failed = 1; return NULL; }
    n = lm_node_new(g, &lm__op_softmax, 1, &a, a->ndim, a->shape);
    if (n) n->i[0] = logspace;
    return lm_node_run(n);
}
LMDEF lm_tensor *lm_softmax(lm_graph *g, lm_tensor *a) { return lm__softmax(g, a, 0); }
LMDEF lm_tensor *lm_log_softmax(lm_graph *g, lm_tensor *a) { return lm__softmax(g, a, 1); }

/* ---------------------------------------------------------------------------------------
   3.6 LayerNorm over the last dim C: xhat = (x - mean) * rstd, y = xhat w + b, with
   rstd = 1/sqrt(var + eps) and the biased variance, as PyTorch. Forward keeps mean and
   rstd per row. Backward, with dxhat = dy w:
       dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
       dw += sum_rows dy xhat     db += sum_rows dy
   Rows run in parallel blocks; dw and db are summed per block, then over blocks in order.
   --------------------------------------------------------------------------------------- */
/* The plain math of one row (the kernels lm__layernorm_row and lm__ln_bwd_row, section
   11, sum more carefully in float lanes): forward, then backward given dy. */
LM__REF void lm__ref_layernorm(const float *x, const float *w, const float *b, const float *dy,
                               int n, double eps, double *y, double *dx, double *dw, double *db) {
    double mean = 0, var = 0, rstd, m1 = 0, m2 = 0;
    int j;
    for (j = 0; j < n; j++) mean += x[j];
    mean /= n;
    for (j = 0; j < n; j++) var += (x[j] - mean) * (x[j] - mean);
    rstd = 1.0 / sqrt(var / n + eps);
    for (j = 0; j < n; j++) {
        double xh = (x[j] - mean) * rstd;
        y[j] = xh * w[j] + b[j];
        if (dy) { m1 += (double)dy[j] * w[j] / n; m2 += (double)dy[j] * w[j] * xh / n; }
    }
    for (j = 0; dy && j < n; j++) {
        double xh = (x[j] - mean) * rstd;
        dx[j] = rstd * ((double)dy[j] * w[j] - m1 - xh * m2);
        dw[j] = (double)dy[j] * xh;
        db[j] = dy[j];
    }
}

typedef struct { lm_node *n; int C, rows, fresh; float *partial; } lm__ln_job;

static void lm__ln_fwd_task(void *ctx, int blk) {
    lm__ln_job *J = (lm__ln_job *)ctx;
    lm_node *n = J->n;
    int C = J->C, r, r1 = (blk + 1) * LM__ROWBLOCK;
    const float *w = n->in[1]->data, *b = n->in[2]->data;
    if (r1 > J->rows) r1 = J->rows;
    for (r = blk * LM__ROWBLOCK; r < r1; r++) {
        lm__layernorm_row(n->in[0]->data + (size_t)r * C, w, b, n->out->data + (size_t)r * C, C,
                          n->f[0], &n->saved[2 * r], &n->saved[2 * r + 1]);
    }
}
static void lm__ln_fwd(lm_node *n) {
    lm__ln_job J;
    J.n = n; J.C = n->out->shape[n->out->ndim - 1]; J.rows = n->out->size / J.C;
    lm_parallel_for(lm__nblocks(J.rows), lm__ln_fwd_task, &J);
}
static void lm__ln_bwd_task(void *ctx, int blk) {
    lm__ln_job *J = (lm__ln_job *)ctx;
    lm_node *n = J->n;
    int C = J->C, r, r1 = (blk + 1) * LM__ROWBLOCK;
    const float *w = n->in[1]->data;
    float *gx = n->in[0]->requires_grad ? n->in[0]->grad : NULL;
    float *pw = J->partial + (size_t)blk * 2 * C, *pb = pw + C;
    if (r1 > J->rows) r1 = J->rows;
    memset(pw, 0, 2 * (size_t)C * sizeof(float));
    if (gx && J->fresh)                           /* a fresh gradient: this block's rows */
        memset(gx + (size_t)blk * LM__ROWBLOCK * C, 0,
               (size_t)(r1 - blk * LM__ROWBLOCK) * C * sizeof(float));
    for (r = blk * LM__ROWBLOCK; r < r1; r++)
        lm__ln_bwd_row(n->in[0]->data + (size_t)r * C, n->out->grad + (size_t)r * C, w,
                       n->saved[2 * r], n->saved[2 * r + 1], pw, pb, gx ? gx + (size_t)r * C : NULL, C);
}
static void lm__ln_bwd(lm_node *n) {
    lm__ln_job J;
    int blk, j, nb;
    float *gw, *gb;
    J.n = n; J.C = n->out->shape[n->out->ndim - 1]; J.rows = n->out->size / J.C; J.fresh = 0;
    nb = lm__nblocks(J.rows);
    if (n->in[0]->requires_grad && !lm__grad_w(n->g, n->in[0], &J.fresh)) return;
    gw = lm__in_grad(n, 1);
    gb = lm__in_grad(n, 2);
    J.partial = (float *)lm_arena_alloc(n->g->arena, (size_t)nb * 2 * J.C * sizeof(float));
    if (!J.partial) { n->g->failed = 1; return; }
    lm_parallel_for(nb, lm__ln_bwd_task, &J);
    for (blk = 0; blk < nb; blk++) {
        const float *pw = J.partial + (size_t)blk * 2 * J.C, *pb = pw + J.C;
        if (gw) for (j = 0; j < J.C; j++) gw[j] += pw[j];
        if (gb) for (j = 0; j < J.C; j++) gb[j] += pb[j];
    }
}
static const lm_op lm__op_layernorm = { "layernorm", lm__ln_fwd, lm__ln_bwd };
LMDEF lm_tensor *lm_layernorm(lm_graph *g, lm_tensor *x, lm_tensor *w, lm_tensor *b, float eps) {
    lm_tensor *in[3];
    lm_node *n;
    int C;
    if (!x || !w || !b) { g->failed = 1; return NULL; }
    C = x->shape[x->ndim - 1];
    if (w->size != C || b->size != C) return lm__op_fail(g, "layernorm", "weight and bias must have the size of the last dim");
    in[0] = x; in[1] = w; in[2] = b;
    n = lm_node_new(g, &lm__op_layernorm, 3, in, x->ndim, x->shape);
    if (!n) return NULL;
    n->f[0] = eps;
    n->saved = (float *)lm_arena_alloc(g->arena, (size_t)(x->size / C) * 2 * sizeof(float));
    if (!n->saved) { g->failed = 1; return NULL; }
    return lm_node_run(n);
}

/* ---------------------------------------------------------------------------------------
   3.7 Embedding: rows of a table picked by ids. The gradient scatters back into the picked
   rows; rows picked twice add up, in order.
   --------------------------------------------------------------------------------------- */
static void lm__embed_fwd(lm_node *n) {
    int C = n->in[0]->shape[1], i, rows = n->out->size / C;
    for (i = 0; i < rows; i++) {
        if (n->in[0]->q8) lm__q8_row(n->in[0]->q8, n->ids[i], n->out->data + (size_t)i * C);
        else memcpy(n->out->data + (size_t)i * C, n->in[0]->data + (size_t)n->ids[i] * C, (size_t)C * sizeof(float));
    }
}
static void lm__embed_bwd(lm_node *n) {
    int C = n->in[0]->shape[1], i, j, rows = n->out->size / C;
    float *gt = lm__in_grad(n, 0);
    if (!gt) return;
    for (i = 0; i < rows; i++) {
        float *d = gt + (size_t)n->ids[i] * C;
        const float *s = n->out->grad + (size_t)i * C;
        for (j = 0; j < C; j++) d[j] += s[j];
    }
}
static const lm_op lm__op_embed = { "embedding", lm__embed_fwd, lm__embed_bwd };
LMDEF lm_tensor *lm_embedding(lm_graph *g, lm_tensor *table, const int *ids, int n) {
    lm_node *nd;
    int shape[2], i;
    if (!table) { g->failed = 1; return NULL; }
    if (table->ndim != 2 || n < 1) return lm__op_fail(g, "embedding", "needs a 2-D table and at least one id");
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->shape[0]) {
            lm__fail(LM_ERR_ARG, "embedding: id %d at position %d is outside [0, %d)", ids[i], i, table->shape[0]);
            g->failed = 1;
            return NULL;
        }
    shape[0] = n; shape[1] = table->shape[1];
    nd = lm_node_new(g, &lm__op_embed, 1, &table, 2, shape);
    if (nd) nd->ids = ids;
    return lm_node_run(nd);
}

/* ---------------------------------------------------------------------------------------
   3.8 Multi-head attention. Queries q (B, Tq, C) look at keys k and values v (B, Tk, C);
   head h uses columns [h hs, (h+1) hs) of each, hs = C/H. Two ways in, one op:
     self-attention   a fused qkv (B, T, 3C) whose column blocks [0, C), [C, 2C), [2C, 3C)
                      are q, k and v (one linear layer makes all three);
     cross-attention  q (B, Tq, C) from the decoder, and kv (B, Tk, 2C) from the encoder's
                      output, whose column blocks are k and v: each decoder position looks
                      at the whole source.
   The op reads q, k and v in place, each as rows of a given stride, so neither case copies.
   Per (batch, head), with S = q k^T / sqrt(hs) masked (causal: key j <= query i; padding:
   key j < len, the source's length in cross-attention) and P = softmax(S):
       y = P v
       dP = dy v^T     dv += P^T dy     dS = P (dP - rowsum(dP P)) / sqrt(hs)
       dq += dS k      dk += dS^T q
   P is (Tq, Tk) per head, the largest thing attention makes, so it is not kept: forward
   keeps each row's max m and 1/sum exp(S - m), and backward recomputes P = exp(S - m) / sum
   exactly as forward did. Each (batch, head) pair is one task writing its own columns.
   --------------------------------------------------------------------------------------- */
/* The plain math, one query row at a time, forward and backward. q, k, v point at batch 0,
   row 0 of their tensors, whose rows are ldq (q) and ldkv (k and v) floats apart; y is
   (B, Tq, C); given dy (B, Tq, C), gq, gk and gv (laid out as q, k and v, zeroed by the
   caller) receive the gradients. p and dp are scratch rows of Tk doubles. The op below
   computes the same in blocks of rows through lm_gemm, skipping what the mask hides. */
LM__REF void lm__ref_attention(const float *q, const float *k, const float *v, int ldq, int ldkv,
                               const float *dy, int B, int Tq, int Tk, int C, int H, int causal,
                               const int *lens, double *y, double *gq, double *gk, double *gv,
                               double *p, double *dp) {
    int hs = C / H, b, h, i, j, d;
    double sc = 1.0 / sqrt((double)hs);
    memset(y, 0, sizeof(double) * (size_t)B * Tq * C);
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (i = 0; i < Tq; i++) {
                int len = lens ? lens[b] : Tk, lim = causal && i + 1 < len ? i + 1 : len;
                const float *qi = q + ((size_t)b * Tq + i) * ldq + h * hs;
                const float *dyi = dy ? dy + ((size_t)b * Tq + i) * C + h * hs : NULL;
                size_t kv0 = (size_t)b * Tk * ldkv + h * hs;
                double mx = -HUGE_VAL, z = 0, dot = 0;
                for (j = 0; j < lim; j++) {                 /* S = q k^T / sqrt(hs)          */
                    double s = 0;
                    for (d = 0; d < hs; d++) s += (double)qi[d] * k[kv0 + (size_t)j * ldkv + d];
                    p[j] = s * sc;
                    if (p[j] > mx) mx = p[j];
                }
                for (j = 0; j < lim; j++) z += (p[j] = exp(p[j] - mx));   /* P = softmax(S) */
                for (j = 0; j < lim; j++) {                 /* y = P v; dv += P^T dy; dP     */
                    const float *vj = v + kv0 + (size_t)j * ldkv;
                    p[j] /= z;
                    dp[j] = 0;
                    for (d = 0; d < hs; d++) {
                        y[((size_t)b * Tq + i) * C + h * hs + d] += p[j] * vj[d];
                        if (!dyi) continue;
                        gv[kv0 + (size_t)j * ldkv + d] += p[j] * dyi[d];
                        dp[j] += (double)dyi[d] * vj[d];
                    }
                    dot += p[j] * dp[j];
                }
                for (j = 0; dyi && j < lim; j++) {          /* dS; dq += dS k; dk += dS^T q  */
                    double ds = p[j] * (dp[j] - dot) * sc;
                    for (d = 0; d < hs; d++) {
                        gq[((size_t)b * Tq + i) * ldq + h * hs + d] += ds * k[kv0 + (size_t)j * ldkv + d];
                        gk[kv0 + (size_t)j * ldkv + d] += ds * qi[d];
                    }
                }
            }
}

/* Where a task's q, k and v are: pointers at batch 0, head 0 (data and, in backward,
   gradients; a gradient pointer is NULL when that input wants none) and row strides.
   fresh_q, fresh_kv: that gradient had not been written yet (lm__grad_w), so each task
   first zeroes its own columns of it. */
typedef struct {
    lm_node *n;
    int B, Tq, Tk, C, H, hs, ldq, ldkv;
    const float *q, *k, *v;
    float *dq, *dk, *dv;
    float *scratch;
    int fresh_q, fresh_kv;
} lm__att_job;

/* Rows are done in blocks of LM__ATT_RB queries. A block needs only the keys some row of it
   may see: with the causal mask, rows [i0, i1) see keys [0, i1), so the blocks skip the
   upper triangle of S and P and nearly halve the work of long contexts. The columns a
   block computes are its "cols"; no product reads past them. */
#define LM__ATT_RB 32
static int lm__att_cols(const lm__att_job *J, int b, int i1) {
    int len = J->n->ids ? J->n->ids[b] : J->Tk;
    return J->n->i[1] && i1 < len ? i1 : len;
}

/* Rows [i0, i1) of P for task (b, h), columns [0, cols), from S = q k^T; forward also
   writes the rows' log-sum-exps. Masked entries are 0. P's rows are Tk apart. */
static void lm__att_probs(const lm__att_job *J, int task, int i0, int i1, int cols, float *P, int forward) {
    lm_node *n = J->n;
    int b = task / J->H, h = task % J->H, Tk = J->Tk, i, j;
    int causal = n->i[1], len = n->ids ? n->ids[b] : Tk, lanes = lm__vec_lanes();
    const float *q = J->q + (size_t)b * J->Tq * J->ldq + h * J->hs;
    const float *k = J->k + (size_t)b * Tk * J->ldkv + h * J->hs;
    float *st = n->saved + (size_t)task * J->Tq * 2;    /* per row: max, 1 / sum          */
    if (cols <= 0) return;
    lm_gemm(0, 1, i1 - i0, cols, J->hs, 1.0f / sqrtf((float)J->hs), q + (size_t)i0 * J->ldq, J->ldq,
            k, J->ldkv, 0.0f, P + (size_t)i0 * Tk, Tk);
    for (i = i0; i < i1; i++) {
        float *row = P + (size_t)i * Tk, inv;
        int lim = causal ? (i + 1 < len ? i + 1 : len) : len;
        int nv = lim;
        if (lim <= 0) { memset(row, 0, (size_t)cols * sizeof(float)); continue; }
        /* Round the row up to whole vectors where the block has the room, with the extra
           entries masked by a huge negative score: their exp is ~1e-38, nothing next to
           the row's sum (>= 1), and they are zeroed below. So no scalar tail. */
        if (lanes > 1 && (nv = (lim + lanes - 1) / lanes * lanes) <= cols)
            for (j = lim; j < nv; j++) row[j] = -1e30f;
        else
            nv = lim;
        /* row = exp(S - max), then P = row / sum: forward finds max and sum, backward
           computes the same bits from them again */
        if (forward) {
            st[2 * i] = lm__vmax(row, lim);
            st[2 * i + 1] = (float)(1.0 / lm__vsum_exp_shift(row, st[2 * i], row, nv));
        } else {
            lm__vsum_exp_shift(row, st[2 * i], row, nv);
        }
        inv = st[2 * i + 1];
        for (j = 0; j < lim; j++) row[j] *= inv;
        for (j = lim; j < cols; j++) row[j] = 0.0f;
    }
}
static void lm__att_fwd_task(void *ctx, int task) {
    lm__att_job *J = (lm__att_job *)ctx;
    int b = task / J->H, h = task % J->H, Tq = J->Tq, Tk = J->Tk, i0, i1, cols;
    const float *v = J->v + (size_t)b * Tk * J->ldkv + h * J->hs;
    float *P = J->scratch + (size_t)task * Tq * Tk;
    float *y = J->n->out->data + (size_t)b * Tq * J->C + h * J->hs;
    for (i0 = 0; i0 < Tq; i0 = i1) {
        i1 = i0 + LM__ATT_RB < Tq ? i0 + LM__ATT_RB : Tq;
        cols = lm__att_cols(J, b, i1);
        lm__att_probs(J, task, i0, i1, cols, P, 1);
        if (cols > 0)                                  /* y = P v                         */
            lm_gemm(0, 0, i1 - i0, J->hs, cols, 1.0f, P + (size_t)i0 * Tk, Tk, v, J->ldkv, 0.0f,
                    y + (size_t)i0 * J->C, J->C);
        else
            for (; i0 < i1; i0++) memset(y + (size_t)i0 * J->C, 0, (size_t)J->hs * sizeof(float));
    }
}
static void lm__att_bwd_task(void *ctx, int task) {
    lm__att_job *J = (lm__att_job *)ctx;
    lm_node *n = J->n;
    int b = task / J->H, h = task % J->H, Tq = J->Tq, Tk = J->Tk, i, j, hs = J->hs, i0, i1, m, cols;
    size_t qo = (size_t)b * Tq * J->ldq + h * hs, ko = (size_t)b * Tk * J->ldkv + h * hs;
    const float *q = J->q + qo, *k = J->k + ko, *v = J->v + ko;
    const float *dy = n->out->grad + (size_t)b * Tq * J->C + h * hs;
    float *dq = J->dq ? J->dq + qo : NULL, *dk = J->dk ? J->dk + ko : NULL, *dv = J->dv ? J->dv + ko : NULL;
    float *P = J->scratch + (size_t)task * 2 * Tq * Tk, *dS = P + (size_t)Tq * Tk;
    float sc = 1.0f / sqrtf((float)hs);
    if (dq && J->fresh_q)           /* a fresh gradient: this task's columns of it       */
        for (i = 0; i < Tq; i++) memset(dq + (size_t)i * J->ldq, 0, (size_t)hs * sizeof(float));
    if (dk && J->fresh_kv)
        for (i = 0; i < Tk; i++) {
            memset(dk + (size_t)i * J->ldkv, 0, (size_t)hs * sizeof(float));
            memset(dv + (size_t)i * J->ldkv, 0, (size_t)hs * sizeof(float));
        }
    for (i0 = 0; i0 < Tq; i0 = i1) {
        i1 = i0 + LM__ATT_RB < Tq ? i0 + LM__ATT_RB : Tq;
        m = i1 - i0;
        if ((cols = lm__att_cols(J, b, i1)) <= 0) continue;   /* no keys: no gradient     */
        lm__att_probs(J, task, i0, i1, cols, P, 0);
        /* dP = dy v^T */
        lm_gemm(0, 1, m, cols, hs, 1.0f, dy + (size_t)i0 * J->C, J->C, v, J->ldkv, 0.0f,
                dS + (size_t)i0 * Tk, Tk);
        /* dv += P^T dy */
        if (dv)
            lm_gemm(1, 0, cols, hs, m, 1.0f, P + (size_t)i0 * Tk, Tk, dy + (size_t)i0 * J->C, J->C,
                    1.0f, dv, J->ldkv);
        for (i = i0; i < i1; i++) {                    /* dS = P (dP - rowsum(dP P)) / sqrt(hs) */
            const float *p = P + (size_t)i * Tk;
            float *d = dS + (size_t)i * Tk;
            double s = 0;
            for (j = 0; j < cols; j++) s += (double)d[j] * p[j];
            for (j = 0; j < cols; j++) d[j] = p[j] * (d[j] - (float)s) * sc;
        }
        /* dq += dS k ; dk += dS^T q */
        if (dq)
            lm_gemm(0, 0, m, hs, cols, 1.0f, dS + (size_t)i0 * Tk, Tk, k, J->ldkv, 1.0f,
                    dq + (size_t)i0 * J->ldq, J->ldq);
        if (dk)
            lm_gemm(1, 0, cols, hs, m, 1.0f, dS + (size_t)i0 * Tk, Tk, q + (size_t)i0 * J->ldq, J->ldq,
                    1.0f, dk, J->ldkv);
    }
}
/* The layout of the node's inputs: in[0] a fused qkv (in[1] NULL), or in[0] q and in[1] kv.
   grads: also point at the inputs' gradients (allocated here; NULL where none is wanted). */
static int lm__att_setup(lm__att_job *J, lm_node *n, int grads) {
    lm_tensor *a = n->in[0], *kv = n->in[1] ? n->in[1] : a;
    int fused = n->in[1] == NULL;
    J->n = n;
    J->B = a->shape[0]; J->Tq = a->shape[1]; J->Tk = kv->shape[1];
    J->C = n->out->shape[2]; J->H = n->i[0]; J->hs = J->C / J->H;
    J->ldq = a->shape[2]; J->ldkv = kv->shape[2];
    J->q = a->data;
    J->k = kv->data + (fused ? J->C : 0);
    J->v = J->k + J->C;
    J->dq = J->dk = J->dv = NULL;
    J->fresh_q = J->fresh_kv = 0;
    if (!grads) return 1;
    if (a->requires_grad && !(J->dq = lm__grad_w(n->g, a, &J->fresh_q))) return 0;
    if (kv->requires_grad) {
        float *g = fused ? J->dq : lm__grad_w(n->g, kv, &J->fresh_kv);
        if (fused) J->fresh_kv = J->fresh_q;
        if (!g) return 0;
        J->dk = g + (fused ? J->C : 0);
        J->dv = J->dk + J->C;
    }
    return J->dq || J->dk;
}
/* P scratch for every task at once (tasks run in parallel), recycled after the op. */
static void lm__att_run(lm_node *n, int copies, lm_task_fn fn) {
    lm__att_job J;
    size_t len;
    if (!lm__att_setup(&J, n, copies == 2)) return;
    len = (size_t)copies * J.B * J.H * J.Tq * J.Tk;
    if (!lm__panels_reserve()) { n->g->failed = 1; return; }  /* for the tasks' lm_gemm */
    J.scratch = lm__scratch(n->g, len);
    if (!J.scratch) return;
    lm_parallel_for(J.B * J.H, fn, &J);
    lm__release(n->g, J.scratch, len);
}
static void lm__att_fwd(lm_node *n) { lm__att_run(n, 1, lm__att_fwd_task); }
static void lm__att_bwd(lm_node *n) { lm__att_run(n, 2, lm__att_bwd_task); }
static const lm_op lm__op_attention = { "attention", lm__att_fwd, lm__att_bwd };

/* q: a fused qkv (B, T, 3C) when kv is NULL, else queries (B, Tq, C) over kv (B, Tk, 2C). */
static lm_tensor *lm__attention(lm_graph *g, lm_tensor *q, lm_tensor *kv, int n_head, int causal,
                                const int *lens, const char *name) {
    lm_tensor *in[2];
    lm_node *n;
    int shape[3], C, Tk, b;
    if (!q) { g->failed = 1; return NULL; }
    if (!kv) {
        if (q->ndim != 3 || q->shape[2] % 3) return lm__op_fail(g, name, "qkv must be (B, T, 3C)");
        C = q->shape[2] / 3;
        Tk = q->shape[1];
    } else {
        C = q->shape[q->ndim - 1];
        if (q->ndim != 3 || kv->ndim != 3 || kv->shape[0] != q->shape[0] || kv->shape[2] != 2 * C)
            return lm__op_fail(g, name, "q must be (B, Tq, C) and kv (B, Tk, 2C)");
        Tk = kv->shape[1];
    }
    if (n_head < 1 || C % n_head) return lm__op_fail(g, name, "n_head must divide C");
    if (causal && Tk != q->shape[1]) return lm__op_fail(g, name, "the causal mask needs Tq = Tk");
    for (b = 0; lens && b < q->shape[0]; b++)
        if (lens[b] < 0 || lens[b] > Tk) return lm__op_fail(g, name, "lengths must be in [0, Tk]");
    shape[0] = q->shape[0]; shape[1] = q->shape[1]; shape[2] = C;
    in[0] = q; in[1] = kv;
    n = lm_node_new(g, &lm__op_attention, kv ? 2 : 1, in, 3, shape);
    if (!n) return NULL;
    n->i[0] = n_head;
    n->i[1] = causal;
    n->ids = lens;
    n->saved = (float *)lm_arena_alloc(g->arena, (size_t)shape[0] * n_head * shape[1] * 2 * sizeof(float));
    if (!n->saved) { g->failed = 1; return NULL; }
    return lm_node_run(n);
}
LMDEF lm_tensor *lm_attention(lm_graph *g, lm_tensor *qkv, int n_head, int causal, const int *lens) {
    return lm__attention(g, qkv, NULL, n_head, causal, lens, "attention");
}
LMDEF lm_tensor *lm_cross_attention(lm_graph *g, lm_tensor *q, lm_tensor *kv, int n_head,
                                    const int *lens) {
    if (!kv) { g->failed = 1; return NULL; }
    return lm__attention(g, q, kv, n_head, 0, lens, "cross_attention");
}

/* ---------------------------------------------------------------------------------------
   3.9 Shape ops: reshape (same elements, new shape), transpose of the last two dims, a slice
   of the last dim, and a gather of rows. Each copies; gradients flow back the same way.
   --------------------------------------------------------------------------------------- */
enum { LM__RESHAPE, LM__TRANSPOSE, LM__SLICE, LM__GATHER };
/* Map output element i to the input element it copies. */
static size_t lm__shape_src(lm_node *n, size_t i) {
    lm_tensor *a = n->in[0];
    int W = a->shape[a->ndim - 1];
    switch (n->i[0]) {
    case LM__TRANSPOSE: {
        int R = a->shape[a->ndim - 2];
        size_t mat = i / ((size_t)R * W), rem = i % ((size_t)R * W);
        size_t oc = rem % R, orow = rem / R;  /* out is (W, R) */
        return mat * R * W + oc * W + orow;
    }
    case LM__SLICE: {
        int L = n->i[2];
        return (i / L) * W + n->i[1] + i % L;
    }
    case LM__GATHER: {
        int Cc = n->out->shape[n->out->ndim - 1];
        return (size_t)n->ids[i / Cc] * Cc + i % Cc;
    }
    default: return i;
    }
}
static void lm__shape_fwd(lm_node *n) {
    size_t i;
    for (i = 0; i < (size_t)n->out->size; i++) n->out->data[i] = n->in[0]->data[lm__shape_src(n, i)];
}
static void lm__shape_bwd(lm_node *n) {
    float *ga = lm__in_grad(n, 0);
    size_t i;
    if (ga) for (i = 0; i < (size_t)n->out->size; i++) ga[lm__shape_src(n, i)] += n->out->grad[i];
}
static const lm_op lm__op_shape = { "shape", lm__shape_fwd, lm__shape_bwd };
static lm_tensor *lm__shape_op(lm_graph *g, lm_tensor *a, int kind, int ndim, const int *shape,
                               int p1, int p2, const int *ids) {
    lm_node *n = lm_node_new(g, &lm__op_shape, 1, &a, ndim, shape);
    if (!n) return NULL;
    n->i[0] = kind; n->i[1] = p1; n->i[2] = p2; n->ids = ids;
    return lm_node_run(n);
}
LMDEF lm_tensor *lm_reshape(lm_graph *g, lm_tensor *a, int ndim, const int *shape) {
    int size;
    if (!a) { g->failed = 1; return NULL; }
    if (lm__shape_size(ndim, shape, &size) != LM_OK || size != a->size)
        return lm__op_fail(g, "reshape", "the new shape must have as many elements");
    return lm__shape_op(g, a, LM__RESHAPE, ndim, shape, 0, 0, NULL);
}
LMDEF lm_tensor *lm_transpose(lm_graph *g, lm_tensor *a) {
    int shape[LM_MAX_DIMS], d;
    if (!a) { g->failed = 1; return NULL; }
    if (a->ndim < 2) return lm__op_fail(g, "transpose", "needs at least 2 dims");
    for (d = 0; d < a->ndim; d++) shape[d] = a->shape[d];
    shape[a->ndim - 1] = a->shape[a->ndim - 2];
    shape[a->ndim - 2] = a->shape[a->ndim - 1];
    return lm__shape_op(g, a, LM__TRANSPOSE, a->ndim, shape, 0, 0, NULL);
}
LMDEF lm_tensor *lm_slice(lm_graph *g, lm_tensor *a, int start, int len) {
    int shape[LM_MAX_DIMS];
    if (!a) { g->failed = 1; return NULL; }
    if (start < 0 || len < 1 || start > a->shape[a->ndim - 1] - len)
        return lm__op_fail(g, "slice", "range outside the last dim");
    return lm__shape_op(g, a, LM__SLICE, a->ndim, lm__shape_last(a, len, shape), start, len, NULL);
}
LMDEF lm_tensor *lm_gather_rows(lm_graph *g, lm_tensor *a, const int *idx, int n) {
    int shape[2], i, C, rows;
    if (!a) { g->failed = 1; return NULL; }
    C = a->shape[a->ndim - 1];
    rows = a->size / C;
    if (n < 1) return lm__op_fail(g, "gather_rows", "needs at least one row");
    for (i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= rows) return lm__op_fail(g, "gather_rows", "row index out of range");
    shape[0] = n; shape[1] = C;
    return lm__shape_op(g, a, LM__GATHER, 2, shape, 0, 0, idx);
}

/* ---------------------------------------------------------------------------------------
   3.10 Dropout: in training, zero each element with probability p and scale the rest by
   1/(1-p) (the mask is drawn from the graph's RNG and kept for backward); at eval, or with
   p = 0, it is the identity and records nothing.
   --------------------------------------------------------------------------------------- */
static void lm__dropout_fwd(lm_node *n) {
    int i;
    for (i = 0; i < n->out->size; i++) n->out->data[i] = n->in[0]->data[i] * n->saved[i];
}
static void lm__dropout_bwd(lm_node *n) {
    float *ga = lm__in_grad(n, 0);
    int i;
    if (ga) for (i = 0; i < n->out->size; i++) ga[i] += n->out->grad[i] * n->saved[i];
}
static const lm_op lm__op_dropout = { "dropout", lm__dropout_fwd, lm__dropout_bwd };
LMDEF lm_tensor *lm_dropout(lm_graph *g, lm_tensor *a, float p) {
    lm_node *n;
    int i;
    float keep;
    if (!a) { g->failed = 1; return NULL; }
    if (!(p >= 0.0f && p < 1.0f)) return lm__op_fail(g, "dropout", "p must be in [0, 1)");
    if (!g->training || p == 0.0f) return a;
    n = lm_node_new(g, &lm__op_dropout, 1, &a, a->ndim, a->shape);
    if (!n) return NULL;
    n->saved = (float *)lm_arena_alloc(g->arena, (size_t)a->size * sizeof(float));
    if (!n->saved) { g->failed = 1; return NULL; }
    keep = 1.0f / (1.0f - p);
    for (i = 0; i < a->size; i++) n->saved[i] = lm_rng_uniform(&g->rng) < p ? 0.0f : keep;
    return lm_node_run(n);
}

/* ---------------------------------------------------------------------------------------
   3.11 Mean pooling: the average of each row's first lens[b] positions, (B, T, C) -> (B, C).
   Its gradient spreads dy / len evenly over those positions.
   --------------------------------------------------------------------------------------- */
static void lm__pool_fwd(lm_node *n) {
    int B = n->in[0]->shape[0], T = n->in[0]->shape[1], C = n->in[0]->shape[2], b, t, j;
    for (b = 0; b < B; b++) {
        int len = n->ids ? n->ids[b] : T;
        float *y = n->out->data + (size_t)b * C;
        for (j = 0; j < C; j++) {
            double s = 0;
            for (t = 0; t < len; t++) s += n->in[0]->data[((size_t)b * T + t) * C + j];
            y[j] = (float)(s / len);
        }
    }
}
static void lm__pool_bwd(lm_node *n) {
    int B = n->in[0]->shape[0], T = n->in[0]->shape[1], C = n->in[0]->shape[2], b, t, j;
    float *gx = lm__in_grad(n, 0);
    if (!gx) return;
    for (b = 0; b < B; b++) {
        int len = n->ids ? n->ids[b] : T;
        const float *dy = n->out->grad + (size_t)b * C;
        for (t = 0; t < len; t++)
            for (j = 0; j < C; j++) gx[((size_t)b * T + t) * C + j] += dy[j] / (float)len;
    }
}
static const lm_op lm__op_pool = { "mean_pool", lm__pool_fwd, lm__pool_bwd };
LMDEF lm_tensor *lm_mean_pool(lm_graph *g, lm_tensor *x, const int *lens) {
    lm_node *n;
    int shape[2], b;
    if (!x) { g->failed = 1; return NULL; }
    if (x->ndim != 3) return lm__op_fail(g, "mean_pool", "needs (B, T, C)");
    for (b = 0; lens && b < x->shape[0]; b++)
        if (lens[b] < 1 || lens[b] > x->shape[1]) return lm__op_fail(g, "mean_pool", "lengths must be in [1, T]");
    shape[0] = x->shape[0]; shape[1] = x->shape[2];
    n = lm_node_new(g, &lm__op_pool, 1, &x, 2, shape);
    if (n) n->ids = lens;
    return lm_node_run(n);
}

/* ---------------------------------------------------------------------------------------
   3.12 Losses. Each returns a scalar mean.
   Cross-entropy over logits (N, V): loss = mean over counted rows of lse(x) - x[target],
   rows whose target is ignore_index skipped. Backward: (softmax(x) - onehot) / count;
   forward keeps only lse per row, and backward recomputes softmax from the logits.
   --------------------------------------------------------------------------------------- */
/* The plain math: the mean over counted rows of log(sum exp x) - x[target]. */
LM__REF double lm__ref_cross_entropy(const float *x, const int *targets, int rows, int V, int ignore) {
    double tot = 0, mx, z;
    int r, j, cnt = 0;
    for (r = 0; r < rows; r++, x += V) {
        if (targets[r] == ignore) continue;
        for (mx = -HUGE_VAL, j = 0; j < V; j++) if (x[j] > mx) mx = x[j];
        for (z = 0, j = 0; j < V; j++) z += exp(x[j] - mx);
        tot += mx + log(z) - x[targets[r]];
        cnt++;
    }
    return cnt ? tot / cnt : 0;
}

typedef struct { lm_node *n; int V, rows, fresh; double *part; int *cnt; } lm__ce_job;

static void lm__ce_fwd_task(void *ctx, int blk) {
    lm__ce_job *J = (lm__ce_job *)ctx;
    lm_node *n = J->n;
    int V = J->V, r, r1 = (blk + 1) * LM__ROWBLOCK, ign = n->i[0];
    double tot = 0;
    int cnt = 0;
    if (r1 > J->rows) r1 = J->rows;
    for (r = blk * LM__ROWBLOCK; r < r1; r++) {
        const float *x = n->in[0]->data + (size_t)r * V;
        float mx;
        double s;
        if (n->ids[r] == ign) { n->saved[r] = 0; continue; }
        mx = lm__vmax(x, V);
        s = lm__vsum_exp_shift(x, mx, NULL, V);
        n->saved[r] = mx + (float)log(s);
        tot += (double)mx + log(s) - x[n->ids[r]];
        cnt++;
    }
    J->part[blk] = tot;
    J->cnt[blk] = cnt;
}
static void lm__ce_fwd(lm_node *n) {
    lm__ce_job J;
    int nb, blk, cnt = 0;
    double tot = 0;
    J.n = n; J.V = n->in[0]->shape[n->in[0]->ndim - 1]; J.rows = n->in[0]->size / J.V;
    nb = lm__nblocks(J.rows);
    J.part = (double *)lm_arena_alloc(n->g->arena, (size_t)nb * (sizeof(double) + sizeof(int)));
    if (!J.part) { n->g->failed = 1; return; }
    J.cnt = (int *)(J.part + nb);
    lm_parallel_for(nb, lm__ce_fwd_task, &J);
    for (blk = 0; blk < nb; blk++) { tot += J.part[blk]; cnt += J.cnt[blk]; }
    n->i[1] = cnt;
    n->out->data[0] = cnt ? (float)(tot / cnt) : 0.0f;
}
static void lm__ce_bwd_task(void *ctx, int blk) {
    lm__ce_job *J = (lm__ce_job *)ctx;
    lm_node *n = J->n;
    int V = J->V, r, j, r1 = (blk + 1) * LM__ROWBLOCK;
    float d = n->out->grad[0] / (float)n->i[1];
    if (r1 > J->rows) r1 = J->rows;
    for (r = blk * LM__ROWBLOCK; r < r1; r++) {
        const float *x = n->in[0]->data + (size_t)r * V;
        float *gx = n->in[0]->grad + (size_t)r * V, lse = n->saved[r], p[256];
        if (J->fresh) memset(gx, 0, (size_t)V * sizeof(float));    /* a fresh gradient */
        if (n->ids[r] == n->i[0]) continue;
        for (j = 0; j < V; j += 256) {       /* gx += softmax(x) d, 256 at a time */
            int len = V - j < 256 ? V - j : 256;
            lm__vsum_exp_shift(x + j, lse, p, len);
            lm__vaxpy(d, p, gx + j, len);
        }
        gx[n->ids[r]] -= d;
    }
}
static void lm__ce_bwd(lm_node *n) {
    lm__ce_job J;
    if (!n->i[1] || !n->in[0]->requires_grad || !lm__grad_w(n->g, n->in[0], &J.fresh)) return;
    J.n = n; J.V = n->in[0]->shape[n->in[0]->ndim - 1]; J.rows = n->in[0]->size / J.V;
    lm_parallel_for(lm__nblocks(J.rows), lm__ce_bwd_task, &J);
}
static const lm_op lm__op_ce = { "cross_entropy", lm__ce_fwd, lm__ce_bwd };
LMDEF lm_tensor *lm_cross_entropy(lm_graph *g, lm_tensor *logits, const int *targets, int ignore_index) {
    lm_node *n;
    int one = 1, V, rows, r;
    if (!logits) { g->failed = 1; return NULL; }
    V = logits->shape[logits->ndim - 1];
    rows = logits->size / V;
    for (r = 0; r < rows; r++)
        if (targets[r] != ignore_index && (targets[r] < 0 || targets[r] >= V)) {
            lm__fail(LM_ERR_ARG, "cross_entropy: target %d at row %d is outside [0, %d)", targets[r], r, V);
            g->failed = 1;
            return NULL;
        }
    n = lm_node_new(g, &lm__op_ce, 1, &logits, 1, &one);
    if (!n) return NULL;
    n->ids = targets;
    n->i[0] = ignore_index;
    n->saved = (float *)lm_arena_alloc(g->arena, (size_t)rows * sizeof(float));
    if (!n->saved) { g->failed = 1; return NULL; }
    return lm_node_run(n);
}

/* Binary cross-entropy on logits x with targets y in [0, 1], the stable form
   max(x, 0) - x y + log(1 + exp(-|x|)); gradient (sigmoid(x) - y) / n. */
static void lm__bce_fwd(lm_node *n) {
    const float *x = n->in[0]->data, *y = n->in[1]->data;
    double s = 0;
    int i;
    for (i = 0; i < n->in[0]->size; i++)
        s += (x[i] > 0 ? x[i] : 0) - (double)x[i] * y[i] + log1p(exp(-fabs((double)x[i])));
    n->out->data[0] = (float)(s / n->in[0]->size);
}
static void lm__bce_bwd(lm_node *n) {
    const float *x = n->in[0]->data, *y = n->in[1]->data;
    float *gx = lm__in_grad(n, 0), *gy = lm__in_grad(n, 1);
    float d = n->out->grad[0] / (float)n->in[0]->size;
    int i;
    for (i = 0; i < n->in[0]->size; i++) {
        if (gx) gx[i] += (1.0f / (1.0f + expf(-x[i])) - y[i]) * d;
        if (gy) gy[i] += -x[i] * d;
    }
}
static const lm_op lm__op_bce = { "bce_logits", lm__bce_fwd, lm__bce_bwd };

/* Mean squared error: mean (p - t)^2; gradient 2 (p - t) / n to p, the negative to t. */
static void lm__mse_fwd(lm_node *n) {
    double s = 0;
    int i;
    for (i = 0; i < n->in[0]->size; i++) {
        double d = (double)n->in[0]->data[i] - n->in[1]->data[i];
        s += d * d;
    }
    n->out->data[0] = (float)(s / n->in[0]->size);
}
static void lm__mse_bwd(lm_node *n) {
    float *gp = lm__in_grad(n, 0), *gt = lm__in_grad(n, 1);
    float d = 2.0f * n->out->grad[0] / (float)n->in[0]->size;
    int i;
    for (i = 0; i < n->in[0]->size; i++) {
        float e = (n->in[0]->data[i] - n->in[1]->data[i]) * d;
        if (gp) gp[i] += e;
        if (gt) gt[i] -= e;
    }
}
static const lm_op lm__op_mse = { "mse", lm__mse_fwd, lm__mse_bwd };

static lm_tensor *lm__pair_loss(lm_graph *g, const lm_op *op, lm_tensor *a, lm_tensor *b, const char *name) {
    lm_tensor *in[2];
    int one = 1;
    if (!a || !b) { g->failed = 1; return NULL; }
    if (a->size != b->size) return lm__op_fail(g, name, "inputs must have the same number of elements");
    in[0] = a; in[1] = b;
    return lm_node_run(lm_node_new(g, op, 2, in, 1, &one));
}
LMDEF lm_tensor *lm_bce_logits(lm_graph *g, lm_tensor *logits, lm_tensor *targets) {
    return lm__pair_loss(g, &lm__op_bce, logits, targets, "bce_logits");
}
LMDEF lm_tensor *lm_mse(lm_graph *g, lm_tensor *pred, lm_tensor *target) {
    return lm__pair_loss(g, &lm__op_mse, pred, target, "mse");
}

/* =======================================================================================
   4. Optimizers and the schedule
   A model's parameters live in one block, their gradients and the AdamW moments in three
   more of the same layout, so clipping, the optimizers and checkpoints are loops over
   arrays, cut into chunks for the thread pool.
   ======================================================================================= */

/* ---------------------------------------------------------------------------------------
   Parameters: one block of values, one of gradients, two of optimizer moments. Each
   tensor starts on a 16-float boundary so SIMD loops over one tensor stay aligned.
   --------------------------------------------------------------------------------------- */
/* quant (section 10): 0 for a model that trains; else the tensors lm__q8_kind names get a
   packed Q8_0 matrix instead of float storage, and no tensor gets gradients or moments. */
static int lm__params_init(lm_params *p, lm_arena *a, int n, const int *ndims,
                           const int (*shapes)[LM_MAX_DIMS], const char *const *names, int quant) {
    size_t total = 0, off, bytes;
    int k, size;
    memset(p, 0, sizeof *p);
    if (n < 1) return lm__fail(LM_ERR_ARG, "params: need at least one tensor");
    for (k = 0; k < n; k++) {
        if (lm__shape_size(ndims[k], shapes[k], &size) != LM_OK) return LM_ERR_ARG;
        if (!lm__q8_kind(quant, names ? names[k] : NULL)) total += ((size_t)size + 15) & ~(size_t)15;
    }
    p->t = (lm_tensor *)lm_arena_calloc(a, (size_t)n * sizeof(lm_tensor));
    p->names = (char (*)[LM_NAME_MAX])lm_arena_calloc(a, (size_t)n * LM_NAME_MAX);
    if (!p->t || !p->names || !lm__mul_ok(total, (quant ? 1 : 4) * sizeof(float), &bytes)) return LM_ERR_MEM;
    p->data = (float *)lm_arena_calloc(a, bytes);
    if (!p->data) return LM_ERR_MEM;
    if (!quant) {
        p->grad = p->data + total;
        p->m = p->grad + total;
        p->v = p->m + total;
    }
    p->n = n;
    p->total = total;
    for (k = 0, off = 0; k < n; k++) {
        lm_tensor *t = &p->t[k];
        int d, kind = lm__q8_kind(quant, names ? names[k] : NULL), out, in;
        t->ndim = ndims[k];
        for (d = 0; d < t->ndim; d++) t->shape[d] = shapes[k][d];
        lm__shape_size(t->ndim, t->shape, &t->size);
        if (kind) {
            lm__q8_dims(kind, t->shape, &out, &in);
            if (!(t->q8 = lm__q8_new(a, out, in))) return LM_ERR_MEM;
        } else {
            t->data = p->data + off;
            t->grad = quant ? NULL : p->grad + off;
            t->requires_grad = !quant;
            off += ((size_t)t->size + 15) & ~(size_t)15;
        }
        if (names && names[k]) {
            strncpy(p->names[k], names[k], LM_NAME_MAX - 1);
        }
    }
    return LM_OK;
}
LMDEF int lm_params_init(lm_params *p, lm_arena *a, int n, const int *ndims,
                         const int (*shapes)[LM_MAX_DIMS], const char *const *names) {
    return lm__params_init(p, a, n, ndims, shapes, names, LM_QUANT_NONE);
}

LMDEF int lm_params_find(const lm_params *p, const char *name) {
    int k;
    for (k = 0; k < p->n; k++) if (strcmp(p->names[k], name) == 0) return k;
    return -1;
}

LMDEF void lm_params_zero_grad(lm_params *p) { lm__zero(p->grad, p->total); }
LMDEF void lm_params_reset_optimizer(lm_params *p) {
    if (p->m) lm__zero(p->m, p->total);
    if (p->v) lm__zero(p->v, p->total);
    p->step = 0;
}

/* Gradient accumulation's addition, the one a backward makes too (lm__fit, section 5).
   Each element is a single IEEE float add, sum + g, so the result is fixed by the order
   in which the micro-batches are added and by nothing else: not the thread count, not how
   a program cuts the arrays into pieces (and x + y equals y + x exactly). That is what
   lets processes that each hold some of the micro-batches pass the running sum along and
   end with the bits of one process (the kernel, lm__vacc_ieee, makes only IEEE adds).
   (A gradient computed on its own is 0 + g, so -0 becomes +0. That changes no sum: a
   running sum from +0 is never -0, and s + 0 is s for either zero.) */
typedef struct { float *sum; const float *g; size_t n; } lm__accum_job;
static void lm__accum_task(void *ctx, int c) {
    const lm__accum_job *J = (const lm__accum_job *)ctx;
    size_t i0 = (size_t)c * LM__CHUNK;
    lm__vacc_ieee(J->g + i0, J->sum + i0, (int)(J->n - i0 < LM__CHUNK ? J->n - i0 : LM__CHUNK));
}
LMDEF void lm_grad_accumulate(float *sum, const float *g, size_t n) {
    lm__accum_job J;
    if (!sum || !g) return;
    J.sum = sum; J.g = g; J.n = n;
    lm__chunk_for(n, lm__accum_task, &J);
}

/* The squared norm is summed in double per part, then over the parts in order. The parts
   are at most 128 chunks of equal size, from the parameter count only, so the norm is
   the same for any thread count. */
#define LM__CLIP_PARTS 128
typedef struct { lm_params *p; size_t part; double ss[LM__CLIP_PARTS]; float coef; } lm__clip_job;
static void lm__clip_task(void *ctx, int c) {
    lm__clip_job *J = (lm__clip_job *)ctx;
    size_t i0 = (size_t)c * J->part, i1 = J->p->total - i0 < J->part ? J->p->total : i0 + J->part;
    J->ss[c] = lm__vsumsq(J->p->grad + i0, (int)(i1 - i0));
}
static void lm__scale_task(void *ctx, int c) {
    lm__clip_job *J = (lm__clip_job *)ctx;
    size_t i, i0 = (size_t)c * J->part, i1 = J->p->total - i0 < J->part ? J->p->total : i0 + J->part;
    float *g = J->p->grad, coef = J->coef;
    for (i = i0; i < i1; i++) g[i] *= coef;
}
LMDEF float lm_clip_grad_norm(lm_params *p, float max_norm) {
    lm__clip_job J0, *J = &J0;               /* 1 KB of partial sums, on the stack      */
    double ss = 0;
    int c, parts;
    float norm;
    J->p = p;
    J->part = p->total / LM__CLIP_PARTS + 1 > LM__CHUNK ? p->total / LM__CLIP_PARTS + 1 : LM__CHUNK;
    parts = (int)((p->total + J->part - 1) / J->part);
    lm__run_tasks(parts, lm__clip_task, J);
    for (c = 0; c < parts; c++) ss += J->ss[c];
    norm = (float)sqrt(ss);
    if (max_norm > 0) {
        J->coef = max_norm / (norm + 1e-6f);
        if (J->coef < 1.0f) lm__run_tasks(parts, lm__scale_task, J);
    }
    return norm;
}

/* ---------------------------------------------------------------------------------------
   AdamW, SGD and the learning-rate schedule (as torch.optim.AdamW, see TRAINING):
       p *= 1 - lr wd                      (tensors of 2+ dims only)
       m = b1 m + (1 - b1) g     v = b2 v + (1 - b2) g^2
       p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
   --------------------------------------------------------------------------------------- */
/* The plain math of one element at step t, in double (the kernel lm__adamw_update, section
   11, does PyTorch's float operations in PyTorch's order). */
LM__REF void lm__ref_adamw(double *w, double *m, double *v, double g, double lr, double wd,
                           double b1, double b2, double eps, long t) {
    *w *= 1 - lr * wd;
    *m = b1 * *m + (1 - b1) * g;
    *v = b2 * *v + (1 - b2) * g * g;
    *w -= lr / (1 - pow(b1, (double)t)) * *m / (sqrt(*v) / sqrt(1 - pow(b2, (double)t)) + eps);
}

LMDEF lm_train_opts lm_train_defaults(void) {
    lm_train_opts o;
    o.lr = 1e-3f; o.min_lr = 1e-4f; o.warmup = 100; o.steps = 2000;
    o.schedule = LM_SCHED_COSINE; o.wd = 0.1f;
    o.beta1 = 0.9f; o.beta2 = 0.99f; o.eps = 1e-8f; o.clip = 1.0f;
    o.keep_zeros = 0;
    return o;
}

LMDEF float lm_lr_at(const lm_train_opts *o, int s) {
    double r, W = o->warmup, S = o->steps;
    if (o->schedule == LM_SCHED_CONSTANT) return o->lr;
    if (s < o->warmup) return (float)((double)o->lr * (s + 1) / W);
    r = (s - W) / (S - 1 - W > 1 ? S - 1 - W : 1);
    if (r > 1) r = 1;
    return (float)(o->min_lr + 0.5 * (1.0 + cos(3.14159265358979323846 * r)) * ((double)o->lr - o->min_lr));
}

/* The update is elementwise, so the whole parameter block is cut into chunks (one task
   each) without regard to where tensors begin and end. */
typedef struct {
    lm_params *p;
    float lr, wd, b1, b2, step_size, bc2_sqrt, eps;
} lm__adamw_job;
static void lm__adamw_task(void *ctx, int c) {
    const lm__adamw_job *J = (const lm__adamw_job *)ctx;
    lm_params *p = J->p;
    size_t i0 = (size_t)c * LM__CHUNK, i1 = p->total - i0 < LM__CHUNK ? p->total : i0 + LM__CHUNK;
    int k;
    for (k = 0; k < p->n; k++) {
        lm_tensor *t = &p->t[k];
        size_t a = (size_t)(t->data - p->data), b = a + (size_t)t->size;
        float decay = t->ndim >= 2 ? 1.0f - J->lr * J->wd : 1.0f;
        if (b <= i0 || a >= i1) continue;
        if (a < i0) a = i0;
        if (b > i1) b = i1;
        lm__adamw_update(p->data + a, p->grad + a, p->m + a, p->v + a, (int)(b - a), decay,
                         J->b1, J->b2, J->step_size, J->bc2_sqrt, J->eps);
    }
}
LMDEF int lm_adamw_step(lm_params *p, const lm_train_opts *o, float lr) {
    lm__adamw_job J;
    double bc1, bc2;
    p->step++;
    bc1 = 1.0 - pow((double)o->beta1, (double)p->step);
    bc2 = 1.0 - pow((double)o->beta2, (double)p->step);
    J.p = p; J.lr = lr; J.wd = o->wd; J.b1 = o->beta1; J.b2 = o->beta2; J.eps = o->eps;
    J.step_size = (float)(lr / bc1);
    J.bc2_sqrt = (float)sqrt(bc2);
    lm__chunk_for(p->total, lm__adamw_task, &J);
    return LM_OK;
}

LMDEF int lm_sgd_step(lm_params *p, float lr, float momentum, float wd) {
    int k, i;
    p->step++;
    for (k = 0; k < p->n; k++) {
        lm_tensor *t = &p->t[k];
        float *w = t->data, *g = t->grad, *v = p->m + (t->data - p->data);
        float d = t->ndim >= 2 ? wd : 0.0f;
        for (i = 0; i < t->size; i++) {
            float gi = g[i] + d * w[i];
            v[i] = momentum * v[i] + gi;
            w[i] -= lr * v[i];
        }
    }
    return LM_OK;
}

/* =======================================================================================
   5. The Transformer: what every model shares
   A model here is token and position embeddings, a stack of identical blocks, and a head.
   The GPT (section 6) and the encoder (section 8) differ only in the attention mask, the
   head and the loss, so everything else exists once, in this section:
     - the shapes: defaults, limits, and the names and shapes of the parameters in
       checkpoint order (the GPT's layout; the encoder appends its heads);
     - the fresh init;
     - the block, and the trunk (embeddings, then the blocks);
     - the step runner: build the loss graph on the per-step arena, backward, then clip
       and take one AdamW step.
   ======================================================================================= */

/* Defaults and limits of the shape every model has. The limits keep every tensor below
   2^31 elements (lm_tensor sizes are int). */
static void lm__shape_defaults(int *L, int *H, int *C, int *T) {
    if (*L <= 0) *L = 4;
    if (*H <= 0) *H = 4;
    if (*C <= 0) *C = 128;
    if (*T <= 0) *T = 64;
}
static int lm__shape_check(int L, int H, int C, int T, int V, const char *who) {
    if (L > 1024 || C > 65536 || T > 1048576 || V < 1 || V > 16777216)
        return lm__fail(LM_ERR_ARG, "%s: config out of range (layers %d, embd %d, ctx %d, vocab %d)",
                        who, L, C, T, V);
    if (C % H)
        return lm__fail(LM_ERR_ARG, "%s: n_head %d does not divide n_embd %d", who, H, C);
    if ((double)V * C > 2e9 || (double)T * C > 2e9 || (double)C * C * 4 > 2e9)
        return lm__fail(LM_ERR_ARG, "%s: a weight matrix would exceed 2^31 elements", who);
    return LM_OK;
}

/* The parameters, in checkpoint order: wte, wpe, then for each block i the 12 tensors
   "h.{i}." + lm__block_keys[j], then ln_f. Weights are (rows C, cols C) below, biases and
   LayerNorms (cols C). Checkpoints (section 17) and lm_gpt_from_memory use the same table. */
#define LM__BLOCK_N 12
static const char *const lm__block_keys[LM__BLOCK_N] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias" };
static const int lm__block_rows[LM__BLOCK_N] = { 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 0 };
static const int lm__block_cols[LM__BLOCK_N] = { 1, 1, 3, 3, 1, 1, 1, 1, 4, 4, 1, 1 };
#define LM__TRUNK_N(L) (2 + LM__BLOCK_N * (L) + 2)       /* tensors of the GPT layout */

/* Name and shape of tensor k of a model with L blocks, width C, context T, vocabulary V.
   name has room for LM_NAME_MAX bytes. */
static void lm__trunk_layout(int L, int C, int T, int V, int k, char *name, int *ndim, int *shape) {
    if (k == 0) { strcpy(name, "wte.weight"); *ndim = 2; shape[0] = V; shape[1] = C; return; }
    if (k == 1) { strcpy(name, "wpe.weight"); *ndim = 2; shape[0] = T; shape[1] = C; return; }
    k -= 2;
    if (k < L * LM__BLOCK_N) {
        int j = k % LM__BLOCK_N;
        lm__fmt(name, LM_NAME_MAX, "h.%d.%s", k / LM__BLOCK_N, lm__block_keys[j]);
        if (lm__block_rows[j]) { *ndim = 2; shape[0] = lm__block_rows[j] * C; shape[1] = lm__block_cols[j] * C; }
        else { *ndim = 1; shape[0] = lm__block_cols[j] * C; }
        return;
    }
    strcpy(name, k == L * LM__BLOCK_N ? "ln_f.weight" : "ln_f.bias");
    *ndim = 1; shape[0] = C;
}

/* Lay out a model's parameters in a fresh arena: n tensors named and shaped by layout(),
   plus `extra` bytes for whatever else the model keeps there. quant: as lm__params_init. */
typedef void (*lm__layout_fn)(const void *cfg, int k, char *name, int *ndim, int *shape);
static int lm__params_build(lm_params *p, lm_arena *a, int n, lm__layout_fn layout,
                            const void *cfg, size_t extra, int quant) {
    int k, l, *ndims, (*shapes)[LM_MAX_DIMS];
    char (*names)[LM_NAME_MAX];
    const char **np;
    size_t bytes = extra + 4096;
    /* one block: the pointers first, so every part is aligned for its type */
    np = (const char **)LM_MALLOC((size_t)n * (sizeof(char *) + sizeof(*shapes) + sizeof(int) + LM_NAME_MAX));
    if (!np) return lm__fail(LM_ERR_MEM, "model: out of memory");
    shapes = (int (*)[LM_MAX_DIMS])(np + n);
    ndims = (int *)(shapes + n);
    names = (char (*)[LM_NAME_MAX])(ndims + n);
    for (k = 0; k < n; k++) {
        size_t s = 1;
        int kind, out, in;
        layout(cfg, k, names[k], &ndims[k], shapes[k]);
        np[k] = names[k];
        for (l = 0; l < ndims[k]; l++) s *= (size_t)shapes[k][l];
        if ((kind = lm__q8_kind(quant, names[k])) != 0) {
            lm__q8_dims(kind, shapes[k], &out, &in);
            bytes += lm__q8_arena_bytes(out, in);
        } else {
            bytes += (s + 16) * (quant ? 1 : 4) * sizeof(float);
        }
        bytes += sizeof(lm_tensor) + LM_NAME_MAX + 128;
    }
    k = lm_arena_init(a, bytes);
    if (k == LM_OK) k = lm__params_init(p, a, n, ndims, (const int (*)[LM_MAX_DIMS])shapes, np, quant);
    LM_FREE(np);
    return k;
}

static int lm__ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Fresh init, GPT-2's: matrices N(0, 0.02), except each block's two residual projections
   (c_proj) N(0, 0.02/sqrt(2L)); biases 0; LayerNorm weights 1. Drawn in parameter order
   from one seeded stream, so a seed fixes the model everywhere. */
static void lm__init_weights(lm_params *p, int n_layer, uint64_t seed) {
    lm_rng rng = lm_rng_seed(seed);
    int k, i;
    for (k = 0; k < p->n; k++) {
        lm_tensor *t = &p->t[k];
        const char *nm = p->names[k];
        if (t->ndim >= 2) {
            float sd = lm__ends_with(nm, ".c_proj.weight") ? 0.02f / sqrtf(2.0f * n_layer) : 0.02f;
            for (i = 0; i < t->size; i++) t->data[i] = sd * lm_rng_normal(&rng);
        } else if (lm__ends_with(nm, "ln_1.weight") || lm__ends_with(nm, "ln_2.weight") ||
                   lm__ends_with(nm, "ln_f.weight")) {
            for (i = 0; i < t->size; i++) t->data[i] = 1.0f;
        }
    }
}

/* Point the block structs at their tensors: LM__BLOCK_N per layer, starting at t. */
static void lm__bind_blocks(lm_block *h, lm_tensor *t, int n_layer) {
    int l;
    for (l = 0; l < n_layer; l++, t += LM__BLOCK_N) {
        lm_block *b = &h[l];
        b->ln_1_w = t; b->ln_1_b = t + 1; b->attn_w = t + 2; b->attn_b = t + 3;
        b->attn_proj_w = t + 4; b->attn_proj_b = t + 5; b->ln_2_w = t + 6; b->ln_2_b = t + 7;
        b->fc_w = t + 8; b->fc_b = t + 9; b->proj_w = t + 10; b->proj_b = t + 11;
    }
}

/* A leaf tensor on g that shares rows [r0, r0 + rows) of a parameter, data and gradient:
   rows of a 2-D weight, or entries of a 1-D bias. A tensor without a gradient (the
   encoder-decoder's fixed positions) gives a leaf without one. */
static lm_tensor *lm__rows_view(lm_graph *g, lm_tensor *p, int r0, int rows) {
    int shape[2], cols = p->ndim == 2 ? p->shape[1] : 1;
    lm_tensor *t;
    shape[0] = rows; shape[1] = cols;
    t = lm_tensor_wrap(g, p->data + (size_t)r0 * cols, p->ndim == 2 ? 2 : 1, shape,
                       !g->no_grad && p->grad != NULL);
    if (t) t->grad = t->requires_grad ? p->grad + (size_t)r0 * cols : NULL;
    return t;
}

/* A stack of blocks and what they share: the trunk is x = dropout(wte[tokens] + wpe[0..T)),
   then the blocks; (B, T, C), before the final LayerNorm. causal: the GPT's mask; lens (may
   be NULL): the encoder's padding. With k_cache set (B = 1), every layer's k and v go into
   the KV cache, (n_layer, n_ctx, C). The fields after k_cache/v_cache are the
   encoder-decoder's (section 9); zero for the GPT and the encoder. */
typedef struct lm__trunk {
    const char *who;                 /* "gpt", "encoder": for messages                    */
    lm_tensor *wte, *wpe;            /* wpe: learned positions, or fixed ones (no grad)   */
    lm_block *h;
    int n_layer, n_head, n_embd, n_ctx;
    int causal;
    const int *lens;
    float dropout;
    float *k_cache, *v_cache;
    int act;                         /* the MLP's LM__GELU, LM__GELU_ERF or LM__RELU      */
    float emb_scale;                 /* 0: none; else wte[tokens] * emb_scale             */
    int post_ln;                     /* x = LN(x + f(x)), not x + f(LN(x))                */
    int out_major;                   /* weights stored (out, in), as PyTorch's Linear     */
    int mlp_dropout;                 /* dropout on the MLP's hidden layer too             */
    lm_tensor *mem;                  /* (B, S, C) the encoder's output: cross-attention   */
    const int *mem_lens;             /* (B) its lengths (may be NULL)                     */
} lm__trunk;

/* A linear layer either way round: w (in, out), or (out, in) when out_major. */
static lm_tensor *lm__lin(lm_graph *g, lm_tensor *x, lm_tensor *w, lm_tensor *b, int out_major) {
    return lm__matmul(g, x, w, b, out_major, "linear", LM__THEN_NONE, NULL);
}
/* A sub-layer f of a block is wrapped one of two ways: pre-LN, x + dropout(f(LN(x))); or
   post-LN, LN(x + dropout(f(x))). Its input, then its output: */
static lm_tensor *lm__sub_in(lm_graph *g, lm_tensor *x, lm_tensor *w, lm_tensor *b, int post) {
    return post ? x : lm_layernorm(g, x, w, b, 1e-5f);
}
static lm_tensor *lm__sub_out(lm_graph *g, lm_tensor *x, lm_tensor *h, lm_tensor *w, lm_tensor *b,
                              int post, float drop) {
    x = lm_add(g, x, lm_dropout(g, h, drop));                 /* no-op unless training */
    return post ? lm_layernorm(g, x, w, b, 1e-5f) : x;
}
/* The same for a sub-layer that ends in a linear layer, out = h pw + pb: with no dropout
   to apply, the residual add runs inside the linear layer, on each tile of its product
   (LM__THEN_RESIDUAL: the same bits as the add on its own). */
static lm_tensor *lm__sub_out_lin(lm_graph *g, lm_tensor *x, lm_tensor *h, lm_tensor *pw,
                                  lm_tensor *pb, int om, lm_tensor *w, lm_tensor *b, int post,
                                  float drop) {
    if (g->training && drop > 0) return lm__sub_out(g, x, lm__lin(g, h, pw, pb, om), w, b, post, drop);
    x = lm__matmul(g, h, pw, pb, om, "linear", LM__THEN_RESIDUAL, x);
    return post ? lm_layernorm(g, x, w, b, 1e-5f) : x;
}

/* One Transformer block with the trunk's options (the GPT's: pre-LN, GELU, input-major):
   self-attention, then cross-attention over m->mem when the block has it, then the MLP,
   each a sub-layer as above. Dropout (training only) on each sub-layer's output, as BERT.
   kc, vc (may be NULL): copy each position's k and v rows there, (T, C) each, for the KV
   cache of generation (batch 1). */
static lm_tensor *lm__block(lm_graph *g, lm_block *b, lm_tensor *x, const lm__trunk *m,
                            float *kc, float *vc) {
    int post = m->post_ln, om = m->out_major, C = m->n_embd;
    lm_tensor *h, *kv;
    h = lm__sub_in(g, x, b->ln_1_w, b->ln_1_b, post);
    h = lm__lin(g, h, b->attn_w, b->attn_b, om);                  /* (B, T, 3C) */
    if (h && kc) {
        int t, T = h->shape[1];
        for (t = 0; t < T; t++) {
            memcpy(kc + (size_t)t * C, h->data + (size_t)t * 3 * C + C, (size_t)C * sizeof(float));
            memcpy(vc + (size_t)t * C, h->data + (size_t)t * 3 * C + 2 * C, (size_t)C * sizeof(float));
        }
    }
    h = lm_attention(g, h, m->n_head, m->causal, m->lens);        /* (B, T, C)  */
    x = lm__sub_out_lin(g, x, h, b->attn_proj_w, b->attn_proj_b, om, b->ln_1_w, b->ln_1_b, post,
                        m->dropout);
    if (b->xattn_w) {
        /* q from the rows [0, C) of the (out, in) weight, k and v from the rows [C, 3C)
           applied to the encoder's output: one product for both */
        if (!om) return lm__op_fail(g, m->who, "cross-attention needs (out, in) weights");
        h = lm__sub_in(g, x, b->ln_x_w, b->ln_x_b, post);
        h = lm__lin(g, h, lm__rows_view(g, b->xattn_w, 0, C), lm__rows_view(g, b->xattn_b, 0, C), 1);
        kv = lm__lin(g, m->mem, lm__rows_view(g, b->xattn_w, C, 2 * C),
                     lm__rows_view(g, b->xattn_b, C, 2 * C), 1);   /* (B, S, 2C) */
        h = lm_cross_attention(g, h, kv, m->n_head, m->mem_lens);  /* (B, T, C)  */
        x = lm__sub_out_lin(g, x, h, b->xattn_proj_w, b->xattn_proj_b, 1, b->ln_x_w, b->ln_x_b,
                            post, m->dropout);
    }
    h = lm__sub_in(g, x, b->ln_2_w, b->ln_2_b, post);
    if (m->act == LM__GELU)                  /* GELU on each tile of the product (LM__THEN_GELU) */
        h = lm__matmul(g, h, b->fc_w, b->fc_b, om, "linear", LM__THEN_GELU, NULL);  /* (B, T, F) */
    else
        h = lm__act(g, lm__lin(g, h, b->fc_w, b->fc_b, om), m->act);
    if (m->mlp_dropout) h = lm_dropout(g, h, m->dropout);
    return lm__sub_out_lin(g, x, h, b->proj_w, b->proj_b, om, b->ln_2_w, b->ln_2_b, post,
                           m->dropout);                            /* (B, T, C)  */
}

static lm_tensor *lm__trunk_forward(lm_graph *g, const lm__trunk *m, const int *tokens, int B, int T) {
    lm_tensor *x;
    int l, b;
    if (B < 1 || T < 1 || T > m->n_ctx) {
        lm__fail(LM_ERR_ARG, "%s: sequence length %d outside [1, %d] (or batch %d < 1)", m->who, T, m->n_ctx, B);
        g->failed = 1;
        return NULL;
    }
    for (b = 0; m->lens && b < B; b++)
        if (m->lens[b] < 1 || m->lens[b] > T) {
            lm__fail(LM_ERR_ARG, "%s: length %d of row %d outside [1, %d]", m->who, m->lens[b], b, T);
            g->failed = 1;
            return NULL;
        }
    x = lm_embedding(g, m->wte, tokens, B * T);                /* (B*T, C)   */
    if (!x) return NULL;
    x->ndim = 3; x->shape[0] = B; x->shape[1] = T; x->shape[2] = m->n_embd;  /* (B, T, C) */
    if (m->emb_scale != 0) x = lm_scale(g, x, m->emb_scale);
    x = lm_dropout(g, lm_add(g, x, lm__rows_view(g, m->wpe, 0, T)), m->dropout);
    for (l = 0; l < m->n_layer; l++) {
        size_t off = (size_t)l * m->n_ctx * m->n_embd;
        x = lm__block(g, &m->h[l], x, m, m->k_cache ? m->k_cache + off : NULL,
                      m->v_cache ? m->v_cache + off : NULL);
    }
    return x;
}

/* Running a graph on a model's per-step arena. The arena starts at an estimate of what one
   step needs; if the graph does not fit, the arena is made bigger (at least double) and
   the step is built again from scratch. That happens only on the first steps, so a run
   settles at the size it really needs and then allocates nothing. Each attempt starts the
   graph's RNG from the same state, so a retried step draws the same masks.
   Training: backward starts only when twice the memory the forward took is free (what
   backward can need at most), so it does not run out of room halfway. A backward that
   adds to gradients the caller keeps (params given: lm_gpt_backward) runs into a zeroed
   block of gradients in the arena (the parameters' tensors point there while the graph
   runs), added into the parameters' own gradients only when the whole step has
   succeeded: a failed attempt leaves them as they were, and a backward adds exactly one
   batch's gradient, computed on its own. A whole training step (params NULL) has just
   zeroed the gradients, so its backward writes them directly, with no block and no pass
   to add it; it is never retried once backward has begun. */
typedef lm_tensor *(*lm__graph_fn)(lm_graph *g, void *ctx);
enum { LM__INFER = 0, LM__TRAIN = 1 };
static void lm__params_point_grads(lm_params *p, float *grad) {
    int k;
    for (k = 0; k < p->n; k++) p->t[k].grad = grad + (p->t[k].data - p->data);
}
/* est: first size of an empty arena. Returns fn's output (in the arena; on the tape of g
   when training), or NULL with lm_error() set. Training: dropout on, backward from the
   output into the parameters' gradients (params not NULL: through a block of its own). */
static lm_tensor *lm__fit(lm_arena *work, double est, lm_graph *g, lm__graph_fn fn, void *ctx,
                          int mode, lm_rng rng, lm_params *params) {
    int attempt;
    if (work->cap == 0) {
        if (est > 1e15 || lm_arena_init(work, (size_t)est) != LM_OK)
            return lm__fail(LM_ERR_MEM, "the step needs more memory than can be had"), (lm_tensor *)NULL;
    }
    for (attempt = 0; attempt < 24; attempt++) {
        lm_tensor *out = NULL;
        float *grads = NULL;
        size_t want;
        lm_arena_reset(work, 0);
        work->want = 0;
        lm_graph_init(g, work);
        g->no_grad = mode == LM__INFER;
        g->training = mode == LM__TRAIN;
        g->rng = rng;
        /* backward-only steps (accumulating): into a zeroed block of their own */
        if (mode == LM__TRAIN && params) {
            grads = (float *)lm_arena_alloc(work, params->total * sizeof(float));
            if (grads) { lm__zero(grads, params->total); lm__params_point_grads(params, grads); }
            else g->failed = 1;
        }
        if (!g->failed) out = fn(g, ctx);
        if (out && mode == LM__TRAIN && !g->failed) {
            /* Backward adds into the gradients as it goes and must not run out of memory
               halfway: what it takes - a gradient for each tensor, scratch no bigger than
               the forward's - is at most twice what the forward took, so that much must
               be free first (else the arena grows, before anything was added). */
            size_t fwd = work->used;
            if (work->cap - work->used < 2 * fwd) {
                if (work->want < 3 * fwd) work->want = 3 * fwd;
                g->failed = 1;
            } else if (lm_backward(g, out) != LM_OK) {
                g->failed = 1;
                if (!grads) return NULL;        /* straight into the gradients: no retry */
            }
        }
        if (grads) {
            lm__params_point_grads(params, params->grad);
            if (out && !g->failed)                      /* the step is whole: keep it */
                lm_grad_accumulate(params->grad, grads, params->total);
        }
        if (out && !g->failed) return out;
        if (work->want <= work->cap) return NULL;       /* a real error, not lack of room */
        if (!work->owned)                               /* the caller's buffer: keep it */
            return lm__fail(LM_ERR_MEM, "the step needs %zu bytes of work memory, the buffer has %zu",
                            work->want, work->cap), (lm_tensor *)NULL;
        want = work->want > 2 * work->cap ? work->want : 2 * work->cap;
        lm_arena_free(work);
        if (lm_arena_init(work, want + (want >> 3)) != LM_OK) return NULL;
    }
    return lm__fail(LM_ERR_MEM, "the step does not fit in memory"), (lm_tensor *)NULL;
}

/* What the work arena of one step over (B, T) needs, roughly (see LM_GPT_GRAPH_BYTES). */
static double lm__work_estimate(int L, int H, int C, int T, int V, int B, int mode) {
    return mode == LM__TRAIN ? LM__GPT_TRAIN_GRAPH(double, L, H, C, T, V, B)
                             : LM__GPT_GRAPH(double, L, H, C, T, B) + 4.0 * B * T * V;
}

/* The step runner every model uses. A model gives its parameters, its work arena, an
   estimate of the step's memory, the function that builds its loss, and the RNG state its
   masks come from. Three modes: the loss alone (no gradients, no dropout); backward (the
   loss's gradients added into the parameters' gradients, dropout on); and a whole
   training step (gradients zeroed, backward, then lm_params_update). */
typedef struct lm__step {
    const char *who;
    lm_params *params;
    lm_arena *work;
    double est;
    lm__graph_fn build;
    void *ctx;
    lm_rng rng;
} lm__step;
enum { LM__LOSS = 0, LM__BACKWARD = 1, LM__STEP = 2 };
static int lm__opts_check(const lm_train_opts *o) {
    if (!(o->lr > 0) || o->steps < 1)
        return lm__fail(LM_ERR_ARG, "training options: lr %g and steps %d must be positive (start "
                        "from lm_train_defaults(): a zeroed lm_train_opts trains nothing)",
                        (double)o->lr, o->steps);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps >= 0) ||
        !(o->wd >= 0) || !(o->clip >= 0) || !(o->min_lr >= 0) || o->warmup < 0)
        return lm__fail(LM_ERR_ARG, "training options out of range (betas in [0, 1); eps, wd, "
                        "clip, min_lr and warmup >= 0)");
    if (o->keep_zeros && !(o->eps > 0))
        return lm__fail(LM_ERR_ARG, "training options: keep_zeros needs eps > 0 (a zero moment "
                        "over eps 0 is NaN)");
    return LM_OK;
}
/* keep_zeros (a pruned model's fine-tune, section 10): in tensors of 2+ dims, every weight
   that is exactly 0 has its gradient and AdamW moments zeroed before the update (so they
   count for nothing in the clipping norm either), and the update leaves it at 0. */
static void lm__keep_zeros_task(void *ctx, int c) {
    lm_params *p = (lm_params *)ctx;
    size_t i0 = (size_t)c * LM__CHUNK, i1 = p->total - i0 < LM__CHUNK ? p->total : i0 + LM__CHUNK, i;
    int k;
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        size_t a, b;
        if (t->ndim < 2 || !t->data) continue;
        a = (size_t)(t->data - p->data);
        b = a + (size_t)t->size;
        if (b <= i0 || a >= i1) continue;
        for (i = a < i0 ? i0 : a; i < (b > i1 ? i1 : b); i++)
            if (p->data[i] == 0.0f) {
                p->grad[i] = 0.0f;
                if (p->m) p->m[i] = 0.0f;
                if (p->v) p->v[i] = 0.0f;
            }
    }
}
LMDEF int lm_params_update(lm_params *p, const lm_train_opts *o, int step) {
    lm_train_opts def;
    int rc;
    if (!o) { def = lm_train_defaults(); o = &def; }
    if ((rc = lm__opts_check(o)) != LM_OK) return rc;
    if (o->keep_zeros) lm__chunk_for(p->total, lm__keep_zeros_task, p);
    if (o->clip > 0) lm_clip_grad_norm(p, o->clip);
    return lm_adamw_step(p, o, lm_lr_at(o, step));
}
/* The update of an accumulated step: the mean gradient, the sum / A (a division, so that
   A = 1 is exactly lm_params_update), then lm_params_update. */
typedef struct { float *grad; float A; size_t n; } lm__mean_job;
static void lm__mean_task(void *ctx, int c) {
    const lm__mean_job *J = (const lm__mean_job *)ctx;
    size_t i, i0 = (size_t)c * LM__CHUNK, i1 = J->n - i0 < LM__CHUNK ? J->n : i0 + LM__CHUNK;
    for (i = i0; i < i1; i++) J->grad[i] /= J->A;
}
LMDEF int lm_params_update_mean(lm_params *p, int A, const lm_train_opts *o, int step) {
    lm_train_opts def;
    lm__mean_job J;
    int rc;
    if (!o) { def = lm_train_defaults(); o = &def; }
    if ((rc = lm__opts_check(o)) != LM_OK) return rc;
    if (A < 1 || A > (1 << 24) || !p->grad)
        return lm__fail(LM_ERR_ARG, "lm_params_update_mean: %s", p->grad ? "A must be from 1 to 2^24"
                        : "the parameters have no gradients");
    J.grad = p->grad; J.A = (float)A; J.n = p->total;
    if (A > 1) lm__chunk_for(p->total, lm__mean_task, &J);
    return lm_params_update(p, o, step);
}
static float lm__run_step(lm__step *s, const lm_train_opts *o, int step, int mode) {
    lm_train_opts def;
    lm_graph g;
    lm_tensor *loss;
    float l;
    if (mode != LM__LOSS && !s->params->grad)
        return lm__fail(LM_ERR_ARG, "%s: this model has no gradients (a model over weights in "
                        "memory cannot train)", s->who), NAN;
    if (mode == LM__STEP) {
        if (!o) { def = lm_train_defaults(); o = &def; }
        if (lm__opts_check(o) != LM_OK) return NAN;
        lm_params_zero_grad(s->params);
    }
    lm_clear_error();
    /* a whole step zeroed the gradients just now: its backward writes them directly */
    loss = lm__fit(s->work, s->est, &g, s->build, s->ctx, mode == LM__LOSS ? LM__INFER : LM__TRAIN,
                   s->rng, mode == LM__BACKWARD ? s->params : NULL);
    l = loss ? loss->data[0] : NAN;
    if (loss && !(l - l == 0)) {                     /* NaN or infinity */
        lm__fail(LM_ERR_NUMERIC, "%s: the loss is %s", s->who, l != l ? "NaN" : "infinite");
        l = NAN;
    }
    if (l != l) {
        if (mode == LM__STEP) {
            char why[400];
            lm__fmt(why, sizeof why, "%s", lm_error());
            lm__fail(LM_ERR_NUMERIC, "step %d: %s", step, why);
        }
        return NAN;                                   /* the parameters are untouched */
    }
    if (mode == LM__STEP) lm_params_update(s->params, o, step);
    return l;
}

/* =======================================================================================
   6. The GPT
   GPT-2 as TRAINING describes it: the trunk with the causal mask, then ln_f and logits
   x wte^T (the head is tied to the token embedding). The whole forward is a chain of the
   ops of section 3, so its backward comes for free.
   ======================================================================================= */
static void lm__gpt_layout(const void *cfg, int k, char *name, int *ndim, int *shape) {
    const lm_gpt_config *c = (const lm_gpt_config *)cfg;
    lm__trunk_layout(c->n_layer, c->n_embd, c->n_ctx, c->vocab, k, name, ndim, shape);
}

/* A model with its memory laid out but no values yet (a loader fills them). */
static lm_gpt *lm__gpt_alloc(const lm_gpt_config *cfg) {
    lm_gpt *m;
    lm_gpt_config c;
    int n;
    size_t cache;
    memset(&c, 0, sizeof c);
    if (cfg) c = *cfg;
    lm__shape_defaults(&c.n_layer, &c.n_head, &c.n_embd, &c.n_ctx);
    if (c.vocab <= 0) c.vocab = 256;
    if (lm__shape_check(c.n_layer, c.n_head, c.n_embd, c.n_ctx, c.vocab, "gpt") != LM_OK) return NULL;
    if (c.quant < LM_QUANT_NONE || c.quant > LM_QUANT_Q8_0_EMB)
        return lm__fail(LM_ERR_ARG, "gpt: quant %d is not an LM_QUANT_* value", c.quant), (lm_gpt *)NULL;
    n = LM__TRUNK_N(c.n_layer);
    m = (lm_gpt *)LM_MALLOC(sizeof *m);
    if (!m) { lm__fail(LM_ERR_MEM, "gpt: out of memory"); return NULL; }
    memset(m, 0, sizeof *m);
    m->cfg = c;
    /* the long-lived arena: parameters, gradients, moments, the blocks table, KV cache
       (a quantized model: its weights only, section 10) */
    cache = (size_t)c.n_layer * c.n_ctx * c.n_embd * sizeof(float);
    if (lm__params_build(&m->params, &m->arena, n, lm__gpt_layout, &c,
                         (size_t)c.n_layer * sizeof(lm_block) + 2 * cache +
                         (2 * (size_t)c.vocab + c.n_ctx) * sizeof(float) + 1024, c.quant) != LM_OK) goto fail;
    m->h = (lm_block *)lm_arena_calloc(&m->arena, (size_t)c.n_layer * sizeof(lm_block));
    m->k_cache = (float *)lm_arena_alloc(&m->arena, cache);
    m->v_cache = (float *)lm_arena_alloc(&m->arena, cache);
    m->gen_logits = (float *)lm_arena_alloc(&m->arena, (size_t)c.vocab * sizeof(float));
    m->gen_sort = (int *)lm_arena_alloc(&m->arena, (size_t)c.vocab * sizeof(int));
    m->gen_window = (int *)lm_arena_alloc(&m->arena, (size_t)c.n_ctx * sizeof(int));
    if (!m->h || !m->k_cache || !m->v_cache || !m->gen_logits || !m->gen_sort || !m->gen_window) goto fail;
    m->wte = &m->params.t[0];
    m->wpe = &m->params.t[1];
    lm__bind_blocks(m->h, &m->params.t[2], c.n_layer);
    m->ln_f_w = &m->params.t[n - 2];
    m->ln_f_b = &m->params.t[n - 1];
    return m;
fail:
    lm_arena_free(&m->arena);
    LM_FREE(m);
    return NULL;
}

LMDEF lm_gpt *lm_gpt_new(const lm_gpt_config *cfg, uint64_t seed) {
    lm_gpt *m;
    if (cfg && cfg->quant != LM_QUANT_NONE)
        return lm__fail(LM_ERR_ARG, "gpt: a new model is float32 (cfg.quant must be 0); quantize "
                        "a trained one with lm_gpt_quantize"), (lm_gpt *)NULL;
    m = lm__gpt_alloc(cfg);
    if (m) lm__init_weights(&m->params, m->cfg.n_layer, seed);
    return m;
}

LMDEF void lm_gpt_free(lm_gpt *m) {
    if (!m) return;
    lm_arena_free(&m->arena);
    lm_arena_free(&m->work);
    LM_FREE(m);
}

LMDEF size_t lm_gpt_num_params(const lm_gpt *m) {
    size_t s = 0;
    int k;
    for (k = 0; k < m->params.n; k++) s += (size_t)m->params.t[k].size;
    return s;
}

/* The GPT as a trunk: causal, no padding, no dropout; cache: fill the KV cache too. */
static lm__trunk lm__gpt_trunk(lm_gpt *m, int cache) {
    lm__trunk t;
    memset(&t, 0, sizeof t);
    t.who = "gpt";
    t.wte = m->wte; t.wpe = m->wpe; t.h = m->h;
    t.n_layer = m->cfg.n_layer; t.n_head = m->cfg.n_head; t.n_embd = m->cfg.n_embd;
    t.n_ctx = m->cfg.n_ctx;
    t.causal = 1;
    t.act = LM__GELU;
    if (cache) { t.k_cache = m->k_cache; t.v_cache = m->v_cache; }
    return t;
}

LMDEF lm_tensor *lm_gpt_forward(lm_gpt *m, lm_graph *g, const int *inputs, int B, int T) {
    lm__trunk t = lm__gpt_trunk(m, 0);
    lm_tensor *x = lm__trunk_forward(g, &t, inputs, B, T);
    x = lm_layernorm(g, x, m->ln_f_w, m->ln_f_b, 1e-5f);
    return lm_matmul(g, x, m->wte, 1);                         /* (B, T, V)  */
}

static int lm__check_ids(const int *ids, int n, int V, const char *what) {
    int i;
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lm__fail(LM_ERR_ARG, "gpt: %s id %d at position %d is outside the vocabulary [0, %d)", what, ids[i], i, V);
    return LM_OK;
}

typedef struct { lm_gpt *m; const int *inputs, *targets; int B, T; } lm__gpt_batch;
static lm_tensor *lm__gpt_loss_graph(lm_graph *g, void *ctx) {
    lm__gpt_batch *b = (lm__gpt_batch *)ctx;
    return lm_cross_entropy(g, lm_gpt_forward(b->m, g, b->inputs, b->B, b->T), b->targets, -1);
}

/* The loss of one batch, its backward, or a whole training step (lm__run_step's mode). */
static float lm__gpt_step(lm_gpt *m, const lm_train_opts *o, const int *inputs,
                          const int *targets, int B, int T, int step, int mode) {
    const lm_gpt_config *c = &m->cfg;
    lm__gpt_batch b;
    lm__step s;
    if (B < 1 || T < 1 || T > c->n_ctx) {
        lm__fail(LM_ERR_ARG, "gpt: sequence length %d outside [1, %d] (or batch %d < 1)", T, c->n_ctx, B);
        return NAN;
    }
    if (lm__check_ids(inputs, B * T, c->vocab, "input") != LM_OK ||
        lm__check_ids(targets, B * T, c->vocab, "target") != LM_OK) return NAN;
    if (c->quant != LM_QUANT_NONE && mode != LM__LOSS) {
        lm__fail(LM_ERR_ARG, "gpt: a Q8_0 model evaluates and generates but cannot train: train "
                 "the float32 model, then quantize it");
        return NAN;
    }
    b.m = m; b.inputs = inputs; b.targets = targets; b.B = B; b.T = T;
    s.who = "gpt"; s.params = &m->params; s.work = &m->work; s.build = lm__gpt_loss_graph; s.ctx = &b;
    s.est = lm__work_estimate(c->n_layer, c->n_head, c->n_embd, T, c->vocab, B,
                              mode == LM__LOSS ? LM__INFER : LM__TRAIN);
    s.rng = lm_rng_seed(0);                           /* the GPT draws nothing */
    return lm__run_step(&s, o, step, mode);
}

LMDEF float lm_gpt_loss(lm_gpt *m, const int *inputs, const int *targets, int B, int T) {
    return lm__gpt_step(m, NULL, inputs, targets, B, T, 0, LM__LOSS);
}
LMDEF float lm_gpt_backward(lm_gpt *m, const int *inputs, const int *targets, int B, int T) {
    return lm__gpt_step(m, NULL, inputs, targets, B, T, 0, LM__BACKWARD);
}
LMDEF float lm_gpt_train_step(lm_gpt *m, const lm_train_opts *o, const int *inputs,
                              const int *targets, int B, int T, int step) {
    return lm__gpt_step(m, o, inputs, targets, B, T, step, LM__STEP);
}

/* The evaluation's windows, nw = (n - 1) / T of them, go through the model in groups of
   G = LM_EVAL_GROUP: group g is windows [gG, gG + b) with b = min(G, nw - gG). Consecutive
   windows are one run of memory (inputs [iT, iT+T) for i = w, w+1, ...) and their targets
   the same run shifted by one, so a group goes in as the b rows of one batch. The result
   is the groups' mean losses weighted by their sizes, summed in double in group order. */
static size_t lm__eval_windows(size_t n, int T, const char *who) {
    if (T < 1) return lm__fail(LM_ERR_ARG, "%s: context %d must be positive", who, T), 0;
    if (n < (size_t)T + 1)
        return lm__fail(LM_ERR_ARG, "%s: %zu tokens is fewer than one window of %d + 1", who, n, T), 0;
    return (n - 1) / (size_t)T;
}
static int lm__eval_group_rows(size_t nw, size_t g) {
    size_t w = g * LM_EVAL_GROUP;
    return nw - w < LM_EVAL_GROUP ? (int)(nw - w) : LM_EVAL_GROUP;
}
static float lm__eval_group(lm_gpt *m, const int *tokens, size_t nw, int T, size_t g) {
    size_t w = g * LM_EVAL_GROUP;
    return lm_gpt_loss(m, tokens + w * T, tokens + w * T + 1, lm__eval_group_rows(nw, g), T);
}
static int lm__eval_check(lm_gpt *m, int T) {
    if (T > m->cfg.n_ctx) return lm__fail(LM_ERR_ARG, "eval: context %d outside [1, %d]", T, m->cfg.n_ctx);
    return LM_OK;
}

LMDEF float lm_gpt_eval(lm_gpt *m, const int *tokens, size_t n, int T) {
    size_t nw, g;
    double tot = 0;
    if (lm__eval_check(m, T) != LM_OK || !(nw = lm__eval_windows(n, T, "eval"))) return NAN;
    for (g = 0; g * LM_EVAL_GROUP < nw; g++) {
        float l = lm__eval_group(m, tokens, nw, T, g);
        if (l != l) return NAN;
        tot += (double)l * lm__eval_group_rows(nw, g);
    }
    return (float)(tot / (double)nw);
}

LMDEF long lm_gpt_eval_groups(lm_gpt *m, const int *tokens, size_t n, int T, long g0, long g1,
                              float *loss) {
    size_t nw;
    long ng, g;
    if (lm__eval_check(m, T) != LM_OK || !(nw = lm__eval_windows(n, T, "eval"))) return LM_ERR_ARG;
    ng = (long)((nw + LM_EVAL_GROUP - 1) / LM_EVAL_GROUP);
    if (g0 < 0 || g0 > g1 || g1 > ng || (g1 > g0 && (!tokens || !loss)))
        return lm__fail(LM_ERR_ARG, "eval: groups [%ld, %ld) outside [0, %ld], or no buffers", g0, g1, ng);
    for (g = g0; g < g1; g++) {
        loss[g - g0] = lm__eval_group(m, tokens, nw, T, (size_t)g);
        if (loss[g - g0] != loss[g - g0]) return LM_ERR_NUMERIC;
    }
    return ng;
}

LMDEF float lm_gpt_eval_mean(const float *loss, size_t n, int T) {
    size_t nw, g;
    double tot = 0;
    if (!(nw = lm__eval_windows(n, T, "eval"))) return NAN;
    if (!loss) return lm__fail(LM_ERR_ARG, "eval: no losses"), NAN;
    for (g = 0; g * LM_EVAL_GROUP < nw; g++) tot += (double)loss[g] * lm__eval_group_rows(nw, g);
    return (float)(tot / (double)nw);
}

LMDEF double lm_gpt_memory(const lm_gpt_config *cfg, int B, int T) {
    lm_gpt_config c;
    double L, C, N, V, params;
    memset(&c, 0, sizeof c);
    if (cfg) c = *cfg;
    lm__shape_defaults(&c.n_layer, &c.n_head, &c.n_embd, &c.n_ctx);
    if (c.vocab <= 0) c.vocab = 256;
    L = c.n_layer; C = c.n_embd; N = c.n_ctx; V = c.vocab;
    params = LM__GPT_PARAMS(double, L, C, N, V);
    /* weights, gradients, two moments; the KV cache; generation's scratch; one step */
    return 16 * params + 8 * L * N * C + 8 * V + 4 * N +
           (B > 0 ? lm__work_estimate(c.n_layer, c.n_head, c.n_embd, T, c.vocab, B, LM__TRAIN)
                  : lm__work_estimate(c.n_layer, c.n_head, c.n_embd, c.n_ctx, c.vocab, 1, LM__INFER));
}

/* ---------------------------------------------------------------------------------------
   Data order. Sequential: each step reads B*T+1 consecutive tokens from pos,
   inputs are the first B*T as B rows of T, targets the same shifted by one; then
   pos += B*T, back to 0 when the next read would run past the end. Random: B windows at
   offsets drawn uniformly from [0, n - T).
   --------------------------------------------------------------------------------------- */
LMDEF lm_data lm_data_init(const int *tokens, size_t n, int order, uint64_t seed) {
    lm_data d;
    d.tokens = tokens; d.n = n; d.order = order; d.pos = 0; d.rng = lm_rng_seed(seed);
    return d;
}

LMDEF int lm_data_next(lm_data *d, int B, int T, int *inputs, int *targets) {
    size_t bt = (size_t)B * (size_t)T;
    int b;
    if (B < 1 || T < 1) return lm__fail(LM_ERR_ARG, "data: batch %d and context %d must be positive", B, T);
    if (d->order == LM_ORDER_SEQUENTIAL) {
        if (d->n < bt + 1) return lm__fail(LM_ERR_ARG, "data: %zu tokens, need at least B*T+1 = %zu", d->n, bt + 1);
        if (d->pos + bt + 1 > d->n) d->pos = 0;
        memcpy(inputs, d->tokens + d->pos, bt * sizeof(int));
        memcpy(targets, d->tokens + d->pos + 1, bt * sizeof(int));
        d->pos += bt;
        if (d->pos + bt + 1 > d->n) d->pos = 0;
        return LM_OK;
    }
    if (d->n < (size_t)T + 1 || d->n - T > 0xFFFFFFFFu)
        return lm__fail(LM_ERR_ARG, "data: %zu tokens, need between T+1 = %d and 2^32", d->n, T + 1);
    for (b = 0; b < B; b++) {
        size_t off = lm_rng_below(&d->rng, (uint32_t)(d->n - T));
        memcpy(inputs + (size_t)b * T, d->tokens + off, (size_t)T * sizeof(int));
        memcpy(targets + (size_t)b * T, d->tokens + off + 1, (size_t)T * sizeof(int));
    }
    return LM_OK;
}

/* =======================================================================================
   7. Generation
   Generation with a KV cache. Training runs the whole sequence through the graph; to
   generate, each new token needs only its own row: its q against the cached k and v of
   all earlier positions. So we run one position at a time with plain loops (no graph),
   appending its k and v to the cache. Same math as lm_gpt_forward, row by row.
   ======================================================================================= */
LMDEF lm_sampler lm_sampler_defaults(uint64_t seed) {
    lm_sampler s;
    s.temperature = 0.8f; s.top_k = 0; s.top_p = 1.0f; s.rng = lm_rng_seed(seed);
    return s;
}

LMDEF void lm_gpt_reset_cache(lm_gpt *m) { m->cache_len = 0; }

/* y = LayerNorm(x) over n values (the same kernel as the layernorm op). */
static void lm__ln_row(const float *x, const float *w, const float *b, float *y, int n) {
    float mean, rstd;
    lm__layernorm_row(x, w, b, y, n, 1e-5f, &mean, &rstd);
}

/* The plain math of one row through a layer: y (out) = b + x (in) W (in, out), b may be
   NULL. lm__gemv_cols (section 11) computes the same sums in the same order, a block of
   columns at a time. */
LM__REF void lm__ref_gemv(const float *x, const float *W, const float *b, double *y, int in, int out) {
    int i, j;
    for (j = 0; j < out; j++) {
        double s = b ? b[j] : 0;
        for (i = 0; i < in; i++) s += (double)x[i] * W[(size_t)i * out + j];
        y[j] = s;
    }
}

/* One row through a layer, split over the pool in tasks of LM__GEMV_W outputs:
       trans 0:  y (out) = b + x (in) W (in, out)      a Conv1D layer
       trans 1:  y (out) = W (out, in) x (in) + b      a PyTorch Linear; the tied output
                                                       head, wte x (b NULL)
   then on the task's own outputs, if asked: y = act(y) (act >= 0, an activation kind of
   lm__act_span), and res += y (res: the residual stream x). A token's whole time goes
   into reading the weights, so every weight is read once, as part of a stream: a task of
   trans 0 keeps its LM__GEMV_W sums in registers while it walks down the rows of W
   (lm__gemv_cols). Each output is summed over the input in order, so the result does not
   depend on the threads; 64 outputs a task let two threads (or more) share even a
   384-wide layer evenly. */
typedef struct { const float *x, *W, *b; float *y, *res; int in, out, trans, act; } lm__gemv_job;
#define LM__GEMV_W 64
static void lm__gemv_task(void *ctx, int blk) {
    const lm__gemv_job *J = (const lm__gemv_job *)ctx;
    int j0 = blk * LM__GEMV_W, j1 = j0 + LM__GEMV_W, j;
    if (j1 > J->out) j1 = J->out;
    if (J->trans) {
        for (j = j0; j < j1; j++) J->y[j] = lm__vdot(J->W + (size_t)j * J->in, J->x, J->in);
        if (J->b) for (j = j0; j < j1; j++) J->y[j] += J->b[j];
    } else {
        lm__gemv_cols(J->x, J->W + j0, (size_t)J->out, J->in, J->b ? J->b + j0 : NULL, J->y + j0, j1 - j0);
    }
    if (J->act >= 0) lm__act_span(J->act, J->y + j0, J->y + j0, j1 - j0);
    if (J->res) lm__vacc(J->y + j0, J->res + j0, j1 - j0);
}
/* A product of fewer than LM__GEMV_POOL multiply-adds runs on the calling thread: waking
   the pool would cost more than it saves (and far more on a busy machine). The tasks
   are the same either way, so the result is too. */
#define LM__GEMV_POOL (1 << 17)
static void lm__gemv(const float *x, const float *W, const float *b, float *y, int in, int out,
                     int trans, int act, float *res) {
    lm__gemv_job J;
    int k, n = (out + LM__GEMV_W - 1) / LM__GEMV_W;
    J.x = x; J.W = W; J.b = b; J.y = y; J.in = in; J.out = out; J.trans = trans;
    J.act = act; J.res = res;
    if ((double)in * out >= LM__GEMV_POOL) lm_parallel_for(n, lm__gemv_task, &J);
    else for (k = 0; k < n; k++) lm__gemv_task(&J, k);
}
/* A linear layer on one row, its weight (in, out), or (out, in) when out_major; then
   act (>= 0) and res += y, as lm__gemv. */
static void lm__lin_row(const float *x, const lm_tensor *w, const lm_tensor *b, float *y, int out_major,
                        int act, float *res) {
    if (w->q8) {                                                 /* Q8_0: section 10 */
        int n = w->q8->out;
        lm__q8_matmul(w->q8, x, 1, b->data, y);
        if (act >= 0) lm__act_span(act, y, y, n);
        if (res) lm__vacc(y, res, n);
    } else if (out_major) {
        lm__gemv(x, w->data, b->data, y, w->shape[1], w->shape[0], 1, act, res);
    } else {
        lm__gemv(x, w->data, b->data, y, w->shape[0], w->shape[1], 0, act, res);
    }
}

/* Attention of one query row q (C) over the n rows of k and v (rows ld floats apart),
   head h one task: y (C) = softmax(q k^T / sqrt(hs)) v per head. sc: a row of scores per
   head, sc_stride floats apart, so the heads run at once on the pool; sc_stride 0: one
   row of n, the heads one after the other. */
typedef struct { const float *q, *k, *v; float *y, *sc; int ld, n, hs, sc_stride; } lm__att_row_job;
static void lm__att_row_task(void *ctx, int h) {
    const lm__att_row_job *J = (const lm__att_row_job *)ctx;
    const float *q = J->q + h * J->hs;
    float mx = -FLT_MAX, *y = J->y + h * J->hs, *sc = J->sc + (size_t)h * J->sc_stride;
    float scale = 1.0f / sqrtf((float)J->hs);
    double s;
    int t, j;
    for (t = 0; t < J->n; t++) {
        sc[t] = lm__vdot(q, J->k + (size_t)t * J->ld + h * J->hs, J->hs) * scale;
        if (sc[t] > mx) mx = sc[t];
    }
    s = lm__vsum_exp_shift(sc, mx, sc, J->n);
    for (j = 0; j < J->hs; j++) y[j] = 0;
    for (t = 0; t < J->n; t++) lm__vaxpy((float)(sc[t] / s), J->v + (size_t)t * J->ld + h * J->hs, y, J->hs);
}
static void lm__att_row(const float *q, const float *k, const float *v, int ld, int n, int H,
                        int hs, float *y, float *sc, int sc_stride) {
    lm__att_row_job J;
    int h;
    J.q = q; J.k = k; J.v = v; J.y = y; J.sc = sc; J.ld = ld; J.n = n; J.hs = hs; J.sc_stride = sc_stride;
    if (sc_stride && H > 1) lm_parallel_for(H, lm__att_row_task, &J);
    else for (h = 0; h < H; h++) lm__att_row_task(&J, h);
}

/* A sub-layer on one row (see lm__sub_in/lm__sub_out): its input, LN(x) into buf or x
   itself (post-LN); after the layer has added its output into x, x = LN(x) for post-LN. */
static const float *lm__row_in(const float *x, const lm_tensor *w, const lm_tensor *b, float *buf,
                               int C, int post) {
    if (post) return x;
    lm__ln_row(x, w->data, b->data, buf, C);
    return buf;
}
static void lm__row_out(float *x, const lm_tensor *w, const lm_tensor *b, int C, int post) {
    if (post) lm__ln_row(x, w->data, b->data, x, C);
}

/* One position through a block with the trunk's options, the same math as lm__block does
   for a whole sequence, on x (C) in place and without a graph. The position's k and v go
   to row pos of kc and vc (rows ldc floats apart), and its query sees rows 0..pos there;
   with cross-attention, it sees the S rows of the encoder's keys and values xkv (each row
   k then v, 2C). w: scratch of 5C + F + max(pos + 1, S) floats, whose last part is the
   attention's row of scores; or, with sc given, a row for each head there, sc_stride
   (>= max(pos + 1, S)) floats apart, and the heads run at once. */
static void lm__block_row(const lm_block *b, const lm__trunk *m, float *x, int pos, float *kc,
                          float *vc, int ldc, const float *xkv, int S, float *w, float *sc,
                          int sc_stride) {
    int C = m->n_embd, H = m->n_head, hs = C / H, post = m->post_ln, om = m->out_major;
    int F = b->fc_w->q8 ? b->fc_w->q8->out : b->fc_w->shape[om ? 0 : 1];
    float *buf = w, *qkv = buf + C, *att = qkv + 3 * C, *hid = att + C;
    const float *in;
    if (!sc) { sc = hid + F; sc_stride = 0; }
    in = lm__row_in(x, b->ln_1_w, b->ln_1_b, buf, C, post);
    lm__lin_row(in, b->attn_w, b->attn_b, qkv, om, -1, NULL);
    memcpy(kc + (size_t)pos * ldc, qkv + C, (size_t)C * sizeof(float));
    memcpy(vc + (size_t)pos * ldc, qkv + 2 * C, (size_t)C * sizeof(float));
    lm__att_row(qkv, kc, vc, ldc, pos + 1, H, hs, att, sc, sc_stride);
    lm__lin_row(att, b->attn_proj_w, b->attn_proj_b, buf, om, -1, x);          /* x += ... */
    lm__row_out(x, b->ln_1_w, b->ln_1_b, C, post);
    if (b->xattn_w) {                              /* q from rows [0, C) of the weight */
        in = lm__row_in(x, b->ln_x_w, b->ln_x_b, buf, C, post);
        lm__gemv(in, b->xattn_w->data, b->xattn_b->data, qkv, C, C, 1, -1, NULL);
        lm__att_row(qkv, xkv, xkv + C, 2 * C, S, H, hs, att, sc, sc_stride);
        lm__lin_row(att, b->xattn_proj_w, b->xattn_proj_b, buf, 1, -1, x);     /* x += ... */
        lm__row_out(x, b->ln_x_w, b->ln_x_b, C, post);
    }
    in = lm__row_in(x, b->ln_2_w, b->ln_2_b, buf, C, post);
    lm__lin_row(in, b->fc_w, b->fc_b, hid, om, m->act, NULL);                  /* act(...) */
    lm__lin_row(hid, b->proj_w, b->proj_b, buf, om, -1, x);                    /* x += ... */
    lm__row_out(x, b->ln_2_w, b->ln_2_b, C, post);
}
/* The tied head for one row: logits (V) = wte x (C). */
static void lm__head_row(const lm_gpt *m, const float *x, float *logits) {
    if (m->wte->q8) { lm__q8_matmul(m->wte->q8, x, 1, NULL, logits); return; }
    lm__gemv(x, m->wte->data, NULL, logits, m->cfg.n_embd, m->cfg.vocab, 1, -1, NULL);
}

/* Feed one token at position cache_len; logits (V) for the token after it. */
LMDEF int lm_gpt_step_token(lm_gpt *m, int token, float *logits) {
    const lm_gpt_config *c = &m->cfg;
    lm__trunk t = lm__gpt_trunk(m, 0);
    int C = c->n_embd, H = c->n_head, pos = m->cache_len, l, j, sc_stride = 0;
    size_t mark, per_head;
    float *x, *sc = NULL;
    if (token < 0 || token >= c->vocab) return lm__fail(LM_ERR_ARG, "generate: token %d outside [0, %d)", token, c->vocab);
    if (pos >= c->n_ctx) return lm__fail(LM_ERR_ARG, "generate: the KV cache is full (%d positions)", c->n_ctx);
    if (m->work.cap == 0 &&
        lm_arena_init(&m->work, ((size_t)16 * C + (size_t)(H + 1) * c->n_ctx + 64) * sizeof(float) * 2) != LM_OK)
        return LM_ERR_MEM;
    mark = lm_arena_mark(&m->work);
    x = (float *)lm_arena_alloc(&m->work, (size_t)(C * 10 + c->n_ctx) * sizeof(float));
    if (!x) return LM_ERR_MEM;
    /* a row of scores for each head, so the heads can run at once; a buffer sized for
       one (LM_GPT_STEP_BYTES) runs them one after the other instead */
    per_head = (size_t)H * c->n_ctx * sizeof(float) + 64;
    if (H > 1 && m->work.cap - m->work.used >= per_head) {
        sc = (float *)lm_arena_alloc(&m->work, per_head);
        sc_stride = c->n_ctx;
    }
    if (m->wte->q8) lm__q8_row(m->wte->q8, token, x);          /* a Q8_0 embedding: d q */
    else memcpy(x, m->wte->data + (size_t)token * C, (size_t)C * sizeof(float));
    for (j = 0; j < C; j++) x[j] += m->wpe->data[(size_t)pos * C + j];
    for (l = 0; l < c->n_layer; l++) {
        size_t off = (size_t)l * c->n_ctx * C;
        lm__block_row(&m->h[l], &t, x, pos, m->k_cache + off, m->v_cache + off, C, NULL, 0, x + C,
                      sc, sc_stride);
    }
    lm__ln_row(x, m->ln_f_w->data, m->ln_f_b->data, x + C, C);
    lm__head_row(m, x + C, logits);                              /* logits = wte ln_f(x) */
    m->cache_len = pos + 1;
    lm_arena_reset(&m->work, mark);
    return LM_OK;
}

/* Fill the cache from n tokens at once (positions 0..n-1) with the batched forward, and
   the logits after the last one: how a prompt, or a window that slid, gets in. */
typedef struct { lm_gpt *m; const int *tokens; int n; } lm__prefill_ctx;
static lm_tensor *lm__prefill_graph(lm_graph *g, void *ctx) {
    lm__prefill_ctx *p = (lm__prefill_ctx *)ctx;
    lm__trunk t = lm__gpt_trunk(p->m, 1);
    return lm__trunk_forward(g, &t, p->tokens, 1, p->n);         /* (1, n, C) */
}
static int lm__gpt_prefill(lm_gpt *m, const int *tokens, int n, float *logits) {
    const lm_gpt_config *c = &m->cfg;
    lm__prefill_ctx p;
    lm_graph g;
    lm_tensor *x;
    float *last;
    p.m = m; p.tokens = tokens; p.n = n;
    m->cache_len = 0;           /* the rows are rewritten from here: if this fails, none holds */
    x = lm__fit(&m->work, lm__work_estimate(c->n_layer, c->n_head, c->n_embd, n, c->vocab, 1, LM__INFER),
                &g, lm__prefill_graph, &p, LM__INFER, lm_rng_seed(0), NULL);
    if (!x && m->work.cap && !m->work.owned) {
        /* a small caller-owned arena (a microcontroller): one position at a time */
        int k, rc = LM_OK;
        lm_clear_error();
        lm_arena_reset(&m->work, 0);
        lm_gpt_reset_cache(m);
        for (k = 0; k < n && rc == LM_OK; k++) rc = lm_gpt_step_token(m, tokens[k], logits);
        return rc;
    }
    if (!x) return LM_ERR_MEM;
    /* ln_f and the head for the last position only */
    last = (float *)lm_arena_alloc(&m->work, (size_t)c->n_embd * sizeof(float));
    if (!last) return LM_ERR_MEM;
    lm__ln_row(x->data + (size_t)(n - 1) * c->n_embd, m->ln_f_w->data, m->ln_f_b->data, last, c->n_embd);
    lm__head_row(m, last, logits);
    m->cache_len = n;
    lm_arena_reset(&m->work, 0);
    return LM_OK;
}

/* ---------------------------------------------------------------------------------------
   Sampling: temperature, then top-k (keep the k largest), then top-p (keep the smallest
   set of most likely tokens whose probability reaches p), then one uniform draw.
   Temperature 0 is greedy: the first index of the largest logit.
   The order is by probability, ties to the lower id (lm__before). Nothing sorts the whole
   vocabulary (50257 tokens for GPT-2): top-k keeps a heap of the k best; top-p sums the
   probabilities by binary exponent (a bucket holds [2^e, 2^(e+1))), finds the bucket where
   the running sum from the top reaches p, and sorts that bucket alone. Either way the cut
   is one token c: a token stays if it is c or comes before c.
   --------------------------------------------------------------------------------------- */
/* Sort idx[0..n) by logits descending (ties: lower index first); heap sort, no recursion. */
static int lm__before(const float *x, int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); }
static void lm__sift(const float *x, int *idx, int i, int n) {
    for (;;) {
        int c = 2 * i + 1, t;
        if (c >= n) return;
        /* a min-heap under "before", so popping puts the last-ranked element at the end */
        if (c + 1 < n && lm__before(x, idx[c], idx[c + 1])) c++;
        if (!lm__before(x, idx[i], idx[c])) return;
        t = idx[i]; idx[i] = idx[c]; idx[c] = t;
        i = c;
    }
}
static void lm__heapsort(const float *x, int *idx, int n) {
    int i, t;
    for (i = n / 2 - 1; i >= 0; i--) lm__sift(x, idx, i, n);
    for (i = n - 1; i > 0; i--) {
        t = idx[0]; idx[0] = idx[i]; idx[i] = t;
        lm__sift(x, idx, 0, i);
    }
}
/* The plain rule, for reading and for the tests: probabilities as lm_sample makes them,
   the whole vocabulary sorted, the top-k and top-p cuts taken in that order, then the draw.
   It returns the token drawn from r (a copy of the sampler's stream) and leaves p with
   the kept probabilities (0 elsewhere). */
static void lm__sort_desc(const float *x, int *idx, int n);
LM__REF int lm__ref_sample(const lm_sampler *s, lm_rng r, float *p, int *idx, int V) {
    int i, best = 0, keep = V;
    double tot = 0, run = 0, u;
    float mx;
    for (i = 1; i < V; i++) if (p[i] > p[best]) best = i;
    if (!(s->temperature > 0)) return best;
    mx = p[best];
    for (i = 0; i < V; i++) p[i] = (float)exp((double)((p[i] - mx) / s->temperature));
    lm__sort_desc(p, idx, V);
    if (s->top_k > 0 && s->top_k < V) keep = s->top_k;
    for (i = 0; i < keep; i++) tot += p[idx[i]];
    if (s->top_p < 1.0f)
        for (i = 0; i < keep; i++)
            if ((run += p[idx[i]]) >= s->top_p * tot) { keep = i + 1; break; }
    for (i = keep; i < V; i++) p[idx[i]] = 0.0f;
    for (tot = 0, i = 0; i < V; i++) tot += p[i];
    u = (double)lm_rng_uniform(&r) * tot;
    for (run = 0, i = 0; i < V; i++)
        if (p[i] > 0 && u < (run += p[i])) return i;
    return best;
}
static void lm__sort_desc(const float *x, int *idx, int n) {
    int i;
    for (i = 0; i < n; i++) idx[i] = i;
    lm__heapsort(x, idx, n);
}

/* Keep token cut and the tokens that come before it; zero the rest. */
static void lm__keep_through(float *p, int V, int cut) {
    int i;
    for (i = 0; i < V; i++)
        if (i != cut && !lm__before(p, i, cut)) p[i] = 0.0f;
}
/* The binary exponent of a probability in (0, 1]: its bucket, 0 to 127. */
static int lm__p_bucket(float p) {
    uint32_t b;
    memcpy(&b, &p, sizeof b);
    return (int)(b >> 23) & 127;
}
/* The sum of p[0..n) in double (four running sums, added at the end): the same bits for
   the same p and n, whichever pass asks. */
static double lm__psum(const float *p, int n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
    for (; i < n; i++) s0 += p[i];
    return (s0 + s1) + (s2 + s3);
}
#define LM__DRAW_BLOCK 256

LMDEF int lm_sample(lm_sampler *s, float *logits, int *scratch, int V) {
    float *p = logits;
    int i, best = 0;
    float mx;
    double tot, u, run;
    for (i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    if (!(s->temperature > 0)) return best;
    mx = logits[best];
    for (i = 0; i < V; i++) p[i] = (logits[i] - mx) / s->temperature;
    lm__vexp(p, p, V);                              /* p = exp((logit - max) / T), in (0, 1] */
    if (((s->top_k > 0 && s->top_k < V) || s->top_p < 1.0f) && !scratch)
        return lm__fail(LM_ERR_ARG, "sample: top-k/top-p need scratch"), best;
    if (s->top_k > 0 && s->top_k < V) {
        /* a heap of the k best seen so far, its root the worst of them: in the end the cut */
        int k = s->top_k;
        for (i = 0; i < k; i++) scratch[i] = i;
        for (i = k / 2 - 1; i >= 0; i--) lm__sift(p, scratch, i, k);
        for (i = k; i < V; i++)
            if (lm__before(p, i, scratch[0])) { scratch[0] = i; lm__sift(p, scratch, 0, k); }
        lm__keep_through(p, V, scratch[0]);
    }
    if (s->top_p < 1.0f) {
        double bsum[128], target;
        int bcount[128], b, n = 0, cut;
        memset(bsum, 0, sizeof bsum);
        memset(bcount, 0, sizeof bcount);
        for (i = 0; i < V; i++)
            if (p[i] > 0) { b = lm__p_bucket(p[i]); bsum[b] += p[i]; bcount[b]++; }
        for (tot = 0, b = 127; b >= 0; b--) tot += bsum[b];
        target = s->top_p * tot;
        /* from the top bucket down: the first whose sum brings the total to the target */
        for (run = 0, b = 127; b > 0 && (!bcount[b] || run + bsum[b] < target); b--) run += bsum[b];
        for (i = 0; i < V; i++)
            if (p[i] > 0 && lm__p_bucket(p[i]) == b) scratch[n++] = i;
        lm__heapsort(p, scratch, n);
        for (cut = 0; cut + 1 < n && (run += p[scratch[cut]]) < target; cut++) {}
        if (n > 0) lm__keep_through(p, V, scratch[cut]);
    }
    /* the draw: the first token whose running sum passes u, found block by block */
    for (tot = 0, i = 0; i < V; i += LM__DRAW_BLOCK)
        tot += lm__psum(p + i, V - i < LM__DRAW_BLOCK ? V - i : LM__DRAW_BLOCK);
    if (!(tot > 0)) return best;
    u = (double)lm_rng_uniform(&s->rng) * tot;
    for (run = 0, i = 0; i < V; i += LM__DRAW_BLOCK) {
        int n = V - i < LM__DRAW_BLOCK ? V - i : LM__DRAW_BLOCK, j, last = -1;
        double bs = lm__psum(p + i, n), acc = run;
        if (u >= run + bs && i + n < V) { run += bs; continue; }
        for (j = i; j < i + n; j++) {
            if (!(p[j] > 0)) continue;
            acc += p[j];
            last = j;
            if (u < acc) return j;
        }
        if (last >= 0) return last;                /* rounding: u fell at the block's end */
        run += bs;
    }
    return best;
}

LMDEF int lm_gpt_generate(lm_gpt *m, const int *prompt, int n_prompt, int n_new,
                          lm_sampler *s, void (*emit)(void *user, int token), void *user,
                          int *out) {
    const lm_gpt_config *c = &m->cfg;
    int *win = m->gen_window, i, wlen, rc;
    float *logits = m->gen_logits;
    if (n_prompt < 1 || n_new < 0) return lm__fail(LM_ERR_ARG, "generate: need a prompt of at least one token");
    for (i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab)
            return lm__fail(LM_ERR_ARG, "generate: prompt token %d outside [0, %d)", prompt[i], c->vocab);
    /* the window: the last n_ctx tokens of the text so far */
    wlen = n_prompt < c->n_ctx ? n_prompt : c->n_ctx;
    memcpy(win, prompt + (n_prompt - wlen), (size_t)wlen * sizeof(int));
    rc = lm__gpt_prefill(m, win, wlen, logits);
    for (i = 0; i < n_new && rc == LM_OK; i++) {
        int tok = lm_sample(s, logits, m->gen_sort, c->vocab);
        if (out) out[i] = tok;
        if (emit) emit(user, tok);
        if (i + 1 == n_new) break;
        if (wlen < c->n_ctx) {
            win[wlen++] = tok;
            rc = lm_gpt_step_token(m, tok, logits);
        } else {
            /* The text outgrew n_ctx: every position shifts, so the cache is rebuilt over
               the last n_ctx tokens (learned absolute positions leave no cheaper way). */
            memmove(win, win + 1, (size_t)(c->n_ctx - 1) * sizeof(int));
            win[c->n_ctx - 1] = tok;
            rc = lm__gpt_prefill(m, win, c->n_ctx, logits);
        }
    }
    return rc;
}

#ifdef __cplusplus
}
#endif

/* A GPT over weights in place (see the API). Everything but the weights is carved from
   buf, in the order LM_GPT_STATE_BYTES counts it; the rest of buf is the work arena. The
   const is cast away for the tensors' data, which generation only reads (the Cortex-M
   test runs it with the weights in a read-only page, so a write would crash). */
LMDEF lm_gpt *lm_gpt_from_memory(const lm_gpt_config *cfg, const void *weights, void *buf,
                                 size_t len) {
    const unsigned char *image = (const unsigned char *)weights;
    lm_arena a;
    lm_gpt *m;
    lm_tensor *t;
    lm_q8 *q8s;
    size_t need, off = 0, cache, floats = 0;
    int k, d, n, C, L, nq = 0;
    /* the shape must be complete (no defaults for a model in flash), and small enough that
       the sizes below cannot overflow even with a 32-bit size_t */
    if (!cfg || !weights || !buf) return lm__fail(LM_ERR_ARG, "gpt_from_memory: NULL argument"), (lm_gpt *)NULL;
    if (cfg->n_layer < 1 || cfg->n_head < 1 || cfg->n_embd < 1 || cfg->n_ctx < 1 || cfg->vocab < 1 ||
        lm__shape_check(cfg->n_layer, cfg->n_head, cfg->n_embd, cfg->n_ctx, cfg->vocab, "gpt_from_memory") != LM_OK ||
        cfg->n_ctx > 65536 ||
        ((double)cfg->n_layer * cfg->n_ctx * (24.0 * cfg->n_embd + (double)cfg->n_head * cfg->n_ctx) +
         (double)cfg->vocab) * 8.0 > (double)((size_t)-1 / 2))
        return lm__fail(LM_ERR_ARG, "gpt_from_memory: the config must give every field, within "
                        "range (layers %d, heads %d, embd %d, ctx %d, vocab %d)", cfg->n_layer,
                        cfg->n_head, cfg->n_embd, cfg->n_ctx, cfg->vocab), (lm_gpt *)NULL;
    if (cfg->quant < LM_QUANT_NONE || cfg->quant > LM_QUANT_Q8_0_EMB || ((uintptr_t)weights & 3))
        return lm__fail(LM_ERR_ARG, "gpt_from_memory: quant %d is not an LM_QUANT_* value, or the "
                        "weights are not 4-byte aligned", cfg->quant), (lm_gpt *)NULL;
    L = cfg->n_layer; C = cfg->n_embd; n = LM__TRUNK_N(L);
    need = LM_GPT_MEMORY_BYTES_STEP(L, C, cfg->n_ctx, cfg->vocab);
    if (len < need)
        return lm__fail(LM_ERR_MEM, "gpt_from_memory: a buffer of %zu bytes, need at least %zu",
                        len, need), (lm_gpt *)NULL;
    lm_arena_init_buffer(&a, buf, len);
    m = (lm_gpt *)lm_arena_calloc(&a, sizeof *m);
    m->cfg = *cfg;
    m->params.n = n;
    m->params.t = (lm_tensor *)lm_arena_calloc(&a, (size_t)n * sizeof(lm_tensor));
    m->params.names = (char (*)[LM_NAME_MAX])lm_arena_calloc(&a, (size_t)n * LM_NAME_MAX);
    m->h = (lm_block *)lm_arena_calloc(&a, (size_t)L * sizeof(lm_block));
    q8s = (lm_q8 *)lm_arena_calloc(&a, (1 + 4 * (size_t)L) * sizeof(lm_q8));
    cache = (size_t)L * (size_t)cfg->n_ctx * (size_t)C * sizeof(float);
    m->k_cache = (float *)lm_arena_alloc(&a, cache);
    m->v_cache = (float *)lm_arena_alloc(&a, cache);
    m->gen_logits = (float *)lm_arena_alloc(&a, (size_t)cfg->vocab * sizeof(float));
    m->gen_sort = (int *)lm_arena_alloc(&a, (size_t)cfg->vocab * sizeof(int));
    m->gen_window = (int *)lm_arena_alloc(&a, (size_t)cfg->n_ctx * sizeof(int));
    /* the per-step arena gets all the rest: at least LM_GPT_STEP_BYTES */
    lm_arena_init_buffer(&m->work, a.base + a.used, a.cap - a.used);
    a.used = a.cap;
    m->arena = a;             /* owned = 0: nothing to free, the buffer is the caller's   */
    for (k = 0; k < n; k++) {  /* the tensors: views of the weights, one after the other  */
        int kind, out, in;
        t = &m->params.t[k];
        lm__trunk_layout(L, C, cfg->n_ctx, cfg->vocab, k, m->params.names[k], &t->ndim, t->shape);
        for (t->size = 1, d = 0; d < t->ndim; d++) t->size *= t->shape[d];
        if ((kind = lm__q8_kind(cfg->quant, m->params.names[k])) != 0) {
            lm_q8 *w = &q8s[nq++];               /* Q8_0 (section 10): scales, then values */
            lm__q8_dims(kind, t->shape, &out, &in);
            w->out = out; w->in = in; w->nb = (in + 31) / 32;
            w->d = (const uint16_t *)(image + off);
            off += LM_Q8_SCALES(out, in) * sizeof(uint16_t);
            w->q = image + off;
            off += LM_Q8_VALUES(out, in);
            t->q8 = w;
            continue;
        }
        t->data = (float *)(image + off);     /* only ever read (see above)               */
        off += (size_t)t->size * sizeof(float);
        floats += (size_t)t->size;
    }
    m->params.total = floats;
    m->params.data = m->params.t[cfg->quant == LM_QUANT_Q8_0_EMB].data;  /* the first float32 one */
    m->wte = &m->params.t[0];
    m->wpe = &m->params.t[1];
    lm__bind_blocks(m->h, &m->params.t[2], L);
    m->ln_f_w = &m->params.t[n - 2];
    m->ln_f_b = &m->params.t[n - 1];
    return m;
}

/* =======================================================================================
   8. The encoder: pretraining and fine-tuning
   The trunk of section 5 without the causal mask, a padding mask from the lengths, and two
   heads. Pretraining is masked-LM (BERT's recipe): hide some tokens and predict them from
   both sides; the logits reuse the token embedding (tied) plus a bias. Fine-tuning trains
   a classifier on the mean of the valid positions after ln_f. Then the metrics that say
   how well it classifies.
   ======================================================================================= */
static void lm__enc_layout(const void *cfgp, int k, char *name, int *ndim, int *shape) {
    const lm_encoder_config *e = (const lm_encoder_config *)cfgp;
    int base = LM__TRUNK_N(e->n_layer);
    if (k < base) { lm__trunk_layout(e->n_layer, e->n_embd, e->n_ctx, e->vocab, k, name, ndim, shape); return; }
    *ndim = 1;
    if (k == base) { strcpy(name, "mlm.bias"); shape[0] = e->vocab; }
    else if (k == base + 1) { strcpy(name, "cls.weight"); *ndim = 2; shape[0] = e->n_embd; shape[1] = e->n_class; }
    else { strcpy(name, "cls.bias"); shape[0] = e->n_class; }
}

LMDEF lm_encoder *lm_encoder_new(const lm_encoder_config *cfg, uint64_t seed) {
    lm_encoder *e;
    lm_encoder_config c;
    int n;
    memset(&c, 0, sizeof c);
    if (cfg) c = *cfg;
    lm__shape_defaults(&c.n_layer, &c.n_head, &c.n_embd, &c.n_ctx);
    if (c.vocab <= 0) c.vocab = 256 + 2;
    if (c.mask_id == 0) c.mask_id = c.vocab - 2;    /* zero means default */
    if (c.pad_id == 0) c.pad_id = c.vocab - 1;
    if (c.n_random <= 0) c.n_random = c.mask_id < c.pad_id ? c.mask_id : c.pad_id;
    if (c.n_class <= 0) c.n_class = 2;
    if (lm__shape_check(c.n_layer, c.n_head, c.n_embd, c.n_ctx, c.vocab, "encoder") != LM_OK) return NULL;
    if (!(c.dropout >= 0.0f && c.dropout < 1.0f)) {
        lm__fail(LM_ERR_ARG, "encoder: dropout %g outside [0, 1)", (double)c.dropout);
        return NULL;
    }
    if (c.mask_id < 0 || c.mask_id >= c.vocab || c.pad_id < 0 || c.pad_id >= c.vocab ||
        c.n_random < 1 || c.n_random > c.vocab || c.n_class > 65536) {
        lm__fail(LM_ERR_ARG, "encoder: mask_id %d, pad_id %d or n_random %d outside the vocabulary "
                 "of %d, or n_class %d too large", c.mask_id, c.pad_id, c.n_random, c.vocab, c.n_class);
        return NULL;
    }
    n = LM__TRUNK_N(c.n_layer) + 3;
    e = (lm_encoder *)LM_MALLOC(sizeof *e);
    if (!e) { lm__fail(LM_ERR_MEM, "encoder: out of memory"); return NULL; }
    memset(e, 0, sizeof *e);
    e->cfg = c;
    e->seed = seed;
    if (lm__params_build(&e->params, &e->arena, n, lm__enc_layout, &c,
                         (size_t)c.n_layer * sizeof(lm_block) + 1024, LM_QUANT_NONE) != LM_OK) goto fail;
    e->h = (lm_block *)lm_arena_calloc(&e->arena, (size_t)c.n_layer * sizeof(lm_block));
    if (!e->h) goto fail;
    e->wte = &e->params.t[0];
    e->wpe = &e->params.t[1];
    lm__bind_blocks(e->h, &e->params.t[2], c.n_layer);
    e->ln_f_w = &e->params.t[n - 5];
    e->ln_f_b = &e->params.t[n - 4];
    e->mlm_b = &e->params.t[n - 3];
    e->cls_w = &e->params.t[n - 2];
    e->cls_b = &e->params.t[n - 1];
    lm__init_weights(&e->params, c.n_layer, seed);
    return e;
fail:
    lm_arena_free(&e->arena);
    LM_FREE(e);
    return NULL;
}

LMDEF void lm_encoder_free(lm_encoder *e) {
    if (!e) return;
    lm_arena_free(&e->arena);
    lm_arena_free(&e->work);
    LM_FREE(e);
}

LMDEF lm_tensor *lm_encoder_forward(lm_encoder *e, lm_graph *g, const int *tokens,
                                    const int *lens, int B, int T) {
    const lm_encoder_config *c = &e->cfg;
    lm__trunk t;
    memset(&t, 0, sizeof t);
    t.who = "encoder";
    t.wte = e->wte; t.wpe = e->wpe; t.h = e->h;
    t.n_layer = c->n_layer; t.n_head = c->n_head; t.n_embd = c->n_embd; t.n_ctx = c->n_ctx;
    t.causal = 0; t.lens = lens; t.dropout = c->dropout; t.act = LM__GELU;
    return lm_layernorm(g, lm__trunk_forward(g, &t, tokens, B, T), e->ln_f_w, e->ln_f_b, 1e-5f);
}

/* A batch of the encoder's: tokens (B, T), lens (B), labels (B) or probabilities out. */
typedef struct { lm_encoder *e; const int *tokens, *lens, *labels; int B, T; float *probs; } lm__enc_batch;

/* Masked-LM: choose positions and corrupt a copy of the tokens, drawing from the graph's
   RNG (each attempt of lm__fit starts it from the same state, so a retry draws the same);
   then predict the originals at the chosen positions only: gather their rows, then the
   tied output layer. */
static lm_tensor *lm__mlm_graph(lm_graph *g, void *ctx) {
    lm__enc_batch *x = (lm__enc_batch *)ctx;
    const lm_encoder_config *c = &x->e->cfg;
    int B = x->B, T = x->T, b, t, n = 0;
    int *inp = (int *)lm_arena_alloc(g->arena, sizeof(int) * (size_t)B * T * 3);
    int *rows, *tgt;
    lm_tensor *h, *logits;
    if (!inp) { g->failed = 1; return NULL; }
    rows = inp + B * T;
    tgt = rows + B * T;
    memcpy(inp, x->tokens, sizeof(int) * (size_t)B * T);
    for (b = 0; b < B; b++) {
        int len = x->lens ? x->lens[b] : T, first = n;
        for (t = 0; t < len; t++)                       /* 15% chosen ...               */
            if (lm_rng_uniform(&g->rng) < 0.15f) { rows[n] = b * T + t; tgt[n++] = x->tokens[b * T + t]; }
        if (n == first) {                               /* ... at least one per row     */
            t = (int)lm_rng_below(&g->rng, (uint32_t)len);
            rows[n] = b * T + t; tgt[n++] = x->tokens[b * T + t];
        }
        for (; first < n; first++) {                    /* 80% [MASK], 10% random, 10% kept */
            float u = lm_rng_uniform(&g->rng);
            if (u < 0.8f) inp[rows[first]] = c->mask_id;
            else if (u < 0.9f) inp[rows[first]] = (int)lm_rng_below(&g->rng, (uint32_t)c->n_random);
        }
    }
    h = lm_encoder_forward(x->e, g, inp, x->lens, B, T);
    h = lm_gather_rows(g, h, rows, n);                           /* (n, C) */
    logits = lm_add(g, lm_matmul(g, h, x->e->wte, 1), x->e->mlm_b);   /* (n, V) */
    return lm_cross_entropy(g, logits, tgt, -1);
}

/* Classifier: mean of the valid positions, then a linear layer to n_class logits. */
static lm_tensor *lm__cls_logits(lm_graph *g, lm__enc_batch *x) {
    lm_tensor *h = lm_encoder_forward(x->e, g, x->tokens, x->lens, x->B, x->T);
    return lm_linear(g, lm_mean_pool(g, h, x->lens), x->e->cls_w, x->e->cls_b);   /* (B, K) */
}
static lm_tensor *lm__cls_graph(lm_graph *g, void *ctx) {
    lm__enc_batch *x = (lm__enc_batch *)ctx;
    lm_tensor *logits = lm__cls_logits(g, x);
    if (x->e->cfg.n_class == 1) {
        int b, one[1];
        lm_tensor *y;
        one[0] = x->B;
        y = lm_tensor_new(g, 1, one);
        if (!y) return NULL;
        for (b = 0; b < x->B; b++) y->data[b] = x->labels[b] ? 1.0f : 0.0f;
        return lm_bce_logits(g, logits, y);
    }
    return lm_cross_entropy(g, logits, x->labels, -1);
}
static lm_tensor *lm__pred_graph(lm_graph *g, void *ctx) {
    lm__enc_batch *x = (lm__enc_batch *)ctx;
    lm_tensor *logits = lm__cls_logits(g, x);
    int b, K = x->e->cfg.n_class, one = 1;
    if (!logits) return NULL;
    for (b = 0; b < x->B; b++) {
        const float *z = logits->data + (size_t)b * K;
        float *p = x->probs + (size_t)b * K;
        if (K == 1) p[0] = 1.0f / (1.0f + expf(-z[0]));
        else lm__softmax_row(z, p, K, 0);
    }
    return lm_tensor_zeros(g, 1, &one);               /* a stand-in "loss" of 0 */
}

/* Check a batch, then run build through lm__run_step. Masks and dropout are drawn from
   (seed, training steps taken), and a training step that succeeds counts one more (one
   that failed, out of memory say, was not taken: tried again, it draws the same). */
static float lm__enc_step(lm_encoder *e, lm__graph_fn build, const int *tokens, const int *lens,
                          const int *labels, float *probs, int B, int T,
                          const lm_train_opts *o, int step, int mode) {
    const lm_encoder_config *c = &e->cfg;
    lm__enc_batch x;
    lm__step s;
    size_t i;
    float loss;
    if (B < 1 || T < 1 || T > c->n_ctx) {
        lm__fail(LM_ERR_ARG, "encoder: sequence length %d outside [1, %d] (or batch %d < 1)", T, c->n_ctx, B);
        return NAN;
    }
    for (i = 0; i < (size_t)B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab) {
            lm__fail(LM_ERR_ARG, "encoder: token %d at position %zu outside [0, %d)", tokens[i], i, c->vocab);
            return NAN;
        }
    for (i = 0; lens && i < (size_t)B; i++)
        if (lens[i] < 1 || lens[i] > T) {
            lm__fail(LM_ERR_ARG, "encoder: length %d of row %zu outside [1, %d]", lens[i], i, T);
            return NAN;
        }
    for (i = 0; labels && i < (size_t)B; i++)
        if (labels[i] < 0 || labels[i] >= (c->n_class == 1 ? 2 : c->n_class)) {
            lm__fail(LM_ERR_ARG, "encoder: label %d of row %zu outside the classes", labels[i], i);
            return NAN;
        }
    x.e = e; x.tokens = tokens; x.lens = lens; x.labels = labels; x.B = B; x.T = T; x.probs = probs;
    s.who = "encoder"; s.params = &e->params; s.work = &e->work; s.build = build; s.ctx = &x;
    s.est = lm__work_estimate(c->n_layer, c->n_head, c->n_embd, T, c->vocab, B,
                              mode == LM__LOSS ? LM__INFER : LM__TRAIN);
    s.rng = lm_rng_seed(e->seed ^ (0x9E3779B97F4A7C15ull * (e->steps + 1)));
    loss = lm__run_step(&s, o, step, mode);
    if (mode == LM__STEP && loss == loss) e->steps++;   /* a failed step was not taken */
    return loss;
}

LMDEF float lm_encoder_mlm_loss(lm_encoder *e, const int *tokens, const int *lens, int B, int T) {
    return lm__enc_step(e, lm__mlm_graph, tokens, lens, NULL, NULL, B, T, NULL, 0, LM__LOSS);
}
LMDEF float lm_encoder_mlm_backward(lm_encoder *e, const int *tokens, const int *lens, int B, int T) {
    return lm__enc_step(e, lm__mlm_graph, tokens, lens, NULL, NULL, B, T, NULL, 0, LM__BACKWARD);
}
LMDEF float lm_encoder_mlm_train_step(lm_encoder *e, const lm_train_opts *o, const int *tokens,
                                      const int *lens, int B, int T, int step) {
    return lm__enc_step(e, lm__mlm_graph, tokens, lens, NULL, NULL, B, T, o, step, LM__STEP);
}
static float lm__cls_step(lm_encoder *e, const lm_train_opts *o, const int *tokens,
                          const int *lens, const int *labels, int B, int T, int step, int mode) {
    if (!labels) return lm__fail(LM_ERR_ARG, "encoder: NULL labels"), NAN;
    return lm__enc_step(e, lm__cls_graph, tokens, lens, labels, NULL, B, T, o, step, mode);
}
LMDEF float lm_encoder_cls_loss(lm_encoder *e, const int *tokens, const int *lens,
                                const int *labels, int B, int T) {
    return lm__cls_step(e, NULL, tokens, lens, labels, B, T, 0, LM__LOSS);
}
LMDEF float lm_encoder_cls_backward(lm_encoder *e, const int *tokens, const int *lens,
                                    const int *labels, int B, int T) {
    return lm__cls_step(e, NULL, tokens, lens, labels, B, T, 0, LM__BACKWARD);
}
LMDEF float lm_encoder_cls_train_step(lm_encoder *e, const lm_train_opts *o, const int *tokens,
                                      const int *lens, const int *labels, int B, int T, int step) {
    return lm__cls_step(e, o, tokens, lens, labels, B, T, step, LM__STEP);
}
LMDEF int lm_encoder_predict(lm_encoder *e, const int *tokens, const int *lens, int B, int T,
                             float *probs) {
    float r;
    if (!probs) return lm__fail(LM_ERR_ARG, "encoder: NULL probs");
    r = lm__enc_step(e, lm__pred_graph, tokens, lens, NULL, probs, B, T, NULL, 0, LM__LOSS);
    return r == r ? LM_OK : LM_ERR_ARG;
}

/* ---------------------------------------------------------------------------------------
   Metrics. From a confusion matrix C (row = true class, column = predicted):
       precision_k = C[k][k] / sum_i C[i][k]    recall_k = C[k][k] / sum_j C[k][j]
       F1_k = 2 P R / (P + R)                    macro F1 = mean over classes of F1_k
   Undefined ratios (0/0) count as 0, as scikit-learn does by default.
   --------------------------------------------------------------------------------------- */
LMDEF int lm_confusion(const int *truth, const int *pred, long n, int n_class, long *confusion) {
    long i;
    if (n_class < 1) return lm__fail(LM_ERR_ARG, "confusion: n_class %d", n_class);
    memset(confusion, 0, sizeof(long) * (size_t)n_class * n_class);
    for (i = 0; i < n; i++) {
        if (truth[i] < 0 || truth[i] >= n_class || pred[i] < 0 || pred[i] >= n_class)
            return lm__fail(LM_ERR_ARG, "confusion: item %ld has class %d/%d outside [0, %d)", i, truth[i], pred[i], n_class);
        confusion[(size_t)truth[i] * n_class + pred[i]]++;
    }
    return LM_OK;
}

LMDEF int lm_metrics_from_confusion(const long *cm, int K, lm_metrics *m) {
    int k, j;
    long correct = 0, total = 0;
    double f1sum = 0;
    m->n_class = K;
    for (k = 0; k < K; k++) {
        long tp = cm[(size_t)k * K + k], col = 0, row = 0;
        double p, r;
        for (j = 0; j < K; j++) { col += cm[(size_t)j * K + k]; row += cm[(size_t)k * K + j]; }
        p = col ? (double)tp / col : 0.0;
        r = row ? (double)tp / row : 0.0;
        if (m->precision) m->precision[k] = p;
        if (m->recall) m->recall[k] = r;
        if (m->f1) m->f1[k] = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
        if (m->support) m->support[k] = row;
        f1sum += p + r > 0 ? 2 * p * r / (p + r) : 0.0;
        correct += tp;
        total += row;
    }
    m->n = total;
    m->accuracy = total ? (double)correct / total : 0.0;
    m->macro_f1 = K ? f1sum / K : 0.0;
    return LM_OK;
}

LMDEF double lm_perplexity(double mean_loss) { return exp(mean_loss); }

/* =======================================================================================
   9. The encoder-decoder
   PyTorch's nn.Transformer, the architecture of "Attention Is All You Need", as
   ENCODER-DECODER in the docs describes it: an encoder over the source and a decoder over
   the target so far, both stacks of the blocks of section 5 (post- or pre-LN, relu or the
   exact GELU, weights output-major as PyTorch keeps them); the decoder's blocks add the
   cross-attention sub-layer, queries from the decoder, keys and values from the encoder's
   output. Tokens enter as embedding * sqrt(C) plus the fixed sinusoidal positions; a
   linear layer makes the logits. Training is teacher-forced cross-entropy through the step
   runner of section 5; decoding runs the encoder once per source, computes every decoder
   layer's cross-attention keys and values once, and then feeds the decoder one position
   at a time through a KV cache, greedy or by beam search.
   ======================================================================================= */

/* A block's tensors under PyTorch's state-dict names, each with the lm_block field it
   binds to and its shape: rows and cols as 'C' (d_model), '3' (3 d_model) or 'F'
   (dim_feedforward); cols 0 for a 1-D tensor. The decoder's norm2 belongs to the
   cross-attention, its norm3 to the MLP (the encoder's norm2). */
typedef struct { const char *key; size_t field; char rows, cols; } lm__s2s_key;
#define LM__S2S_KEY(k, f, r, c) { k, offsetof(lm_block, f), r, c }
#define LM__S2S_ENC_N 12
#define LM__S2S_DEC_N 18
static const lm__s2s_key lm__s2s_keys[2][LM__S2S_DEC_N] = { {
    LM__S2S_KEY("self_attn.in_proj_weight", attn_w, '3', 'C'),
    LM__S2S_KEY("self_attn.in_proj_bias", attn_b, '3', 0),
    LM__S2S_KEY("self_attn.out_proj.weight", attn_proj_w, 'C', 'C'),
    LM__S2S_KEY("self_attn.out_proj.bias", attn_proj_b, 'C', 0),
    LM__S2S_KEY("linear1.weight", fc_w, 'F', 'C'),
    LM__S2S_KEY("linear1.bias", fc_b, 'F', 0),
    LM__S2S_KEY("linear2.weight", proj_w, 'C', 'F'),
    LM__S2S_KEY("linear2.bias", proj_b, 'C', 0),
    LM__S2S_KEY("norm1.weight", ln_1_w, 'C', 0),
    LM__S2S_KEY("norm1.bias", ln_1_b, 'C', 0),
    LM__S2S_KEY("norm2.weight", ln_2_w, 'C', 0),
    LM__S2S_KEY("norm2.bias", ln_2_b, 'C', 0) }, {
    LM__S2S_KEY("self_attn.in_proj_weight", attn_w, '3', 'C'),
    LM__S2S_KEY("self_attn.in_proj_bias", attn_b, '3', 0),
    LM__S2S_KEY("self_attn.out_proj.weight", attn_proj_w, 'C', 'C'),
    LM__S2S_KEY("self_attn.out_proj.bias", attn_proj_b, 'C', 0),
    LM__S2S_KEY("multihead_attn.in_proj_weight", xattn_w, '3', 'C'),
    LM__S2S_KEY("multihead_attn.in_proj_bias", xattn_b, '3', 0),
    LM__S2S_KEY("multihead_attn.out_proj.weight", xattn_proj_w, 'C', 'C'),
    LM__S2S_KEY("multihead_attn.out_proj.bias", xattn_proj_b, 'C', 0),
    LM__S2S_KEY("linear1.weight", fc_w, 'F', 'C'),
    LM__S2S_KEY("linear1.bias", fc_b, 'F', 0),
    LM__S2S_KEY("linear2.weight", proj_w, 'C', 'F'),
    LM__S2S_KEY("linear2.bias", proj_b, 'C', 0),
    LM__S2S_KEY("norm1.weight", ln_1_w, 'C', 0),
    LM__S2S_KEY("norm1.bias", ln_1_b, 'C', 0),
    LM__S2S_KEY("norm2.weight", ln_x_w, 'C', 0),
    LM__S2S_KEY("norm2.bias", ln_x_b, 'C', 0),
    LM__S2S_KEY("norm3.weight", ln_2_w, 'C', 0),
    LM__S2S_KEY("norm3.bias", ln_2_b, 'C', 0) } };

/* The parameters in checkpoint order: the two embeddings; the encoder's layers and final
   norm; the decoder's layers and final norm; the output layer. */
#define LM__S2S_N(le, ld) (8 + LM__S2S_ENC_N * (le) + LM__S2S_DEC_N * (ld))
static int lm__s2s_dim(const lm_seq2seq_config *c, char code) {
    return code == 'C' ? c->d_model : code == '3' ? 3 * c->d_model : c->dim_feedforward;
}
static void lm__s2s_layout(const void *cfgp, int k, char *name, int *ndim, int *shape) {
    const lm_seq2seq_config *c = (const lm_seq2seq_config *)cfgp;
    int C = c->d_model, ne = LM__S2S_ENC_N * c->num_encoder_layers;
    int nd = LM__S2S_DEC_N * c->num_decoder_layers, dec = 0, n;
    *ndim = 2;
    shape[1] = C;
    if (k < 2) {
        strcpy(name, k ? "tgt_tok_emb.embedding.weight" : "src_tok_emb.embedding.weight");
        shape[0] = k ? c->tgt_vocab : c->src_vocab;
        return;
    }
    k -= 2;
    if (k >= ne + 2) { k -= ne + 2; dec = 1; }
    n = dec ? nd : ne;
    if (k < n) {
        const lm__s2s_key *key = &lm__s2s_keys[dec][k % (dec ? LM__S2S_DEC_N : LM__S2S_ENC_N)];
        lm__fmt(name, LM_NAME_MAX, "transformer.%s.layers.%d.%s", dec ? "decoder" : "encoder",
                k / (dec ? LM__S2S_DEC_N : LM__S2S_ENC_N), key->key);
        shape[0] = lm__s2s_dim(c, key->rows);
        if (key->cols) shape[1] = lm__s2s_dim(c, key->cols);
        else *ndim = 1;
        return;
    }
    k -= n;
    if (k < 2) {
        lm__fmt(name, LM_NAME_MAX, "transformer.%s.norm.%s", dec ? "decoder" : "encoder",
                k ? "bias" : "weight");
        *ndim = 1;
        shape[0] = C;
        return;
    }
    strcpy(name, k == 2 ? "generator.weight" : "generator.bias");
    shape[0] = c->tgt_vocab;
    if (k == 3) *ndim = 1;
}

/* The configuration with its defaults, checked. */
static int lm__s2s_config(lm_seq2seq_config *c, const lm_seq2seq_config *in) {
    lm_seq2seq_config given;
    int H, L;
    memset(&given, 0, sizeof given);
    if (in) given = *in;
    *c = given;
    if (c->d_model <= 0) c->d_model = 128;
    if (c->nhead <= 0) c->nhead = 4;
    if (c->num_encoder_layers <= 0) c->num_encoder_layers = 3;
    if (c->num_decoder_layers <= 0) c->num_decoder_layers = 3;
    if (c->dim_feedforward <= 0) c->dim_feedforward = c->d_model <= 65536 ? 4 * c->d_model : 1;
    if (c->n_ctx <= 0) c->n_ctx = 128;
    if (c->src_vocab <= 0) c->src_vocab = 256 + 3;
    if (c->tgt_vocab <= 0) c->tgt_vocab = 256 + 3;
    if (c->bos_id == 0) c->bos_id = c->tgt_vocab - 3;
    if (c->eos_id == 0) c->eos_id = c->tgt_vocab - 2;
    if (c->pad_id == 0) c->pad_id = c->tgt_vocab - 1;
    H = c->nhead;
    L = c->num_encoder_layers > c->num_decoder_layers ? c->num_encoder_layers : c->num_decoder_layers;
    if (lm__shape_check(L, H, c->d_model, c->n_ctx, c->src_vocab > c->tgt_vocab ? c->src_vocab : c->tgt_vocab,
                        "seq2seq") != LM_OK) return LM_ERR_ARG;
    if (L > 999 || c->n_ctx > 65536 || (double)c->n_ctx * c->d_model > 16777216.0 ||
        (double)c->dim_feedforward * c->d_model > 2e9)
        return lm__fail(LM_ERR_ARG, "seq2seq: config out of range (layers %d and %d of at most 999, "
                        "n_ctx %d, dim_feedforward %d)", c->num_encoder_layers,
                        c->num_decoder_layers, c->n_ctx, c->dim_feedforward);
    if (c->norm_first != 0 && c->norm_first != 1)
        return lm__fail(LM_ERR_ARG, "seq2seq: norm_first %d is not 0 or 1", c->norm_first);
    if (c->activation != LM_ACT_RELU && c->activation != LM_ACT_GELU)
        return lm__fail(LM_ERR_ARG, "seq2seq: activation %d is not LM_ACT_RELU or LM_ACT_GELU", c->activation);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return lm__fail(LM_ERR_ARG, "seq2seq: dropout %g outside [0, 1)", (double)c->dropout);
    if (c->bos_id < 0 || c->bos_id >= c->tgt_vocab || c->eos_id < 0 || c->eos_id >= c->tgt_vocab ||
        c->pad_id < 0 || c->pad_id >= c->tgt_vocab || c->bos_id == c->eos_id ||
        c->bos_id == c->pad_id || c->eos_id == c->pad_id)
        return lm__fail(LM_ERR_ARG, "seq2seq: bos_id %d, eos_id %d and pad_id %d must be distinct "
                        "ids of the target vocabulary of %d", c->bos_id, c->eos_id, c->pad_id,
                        c->tgt_vocab);
    return LM_OK;
}

/* pe[t][j] = sin(t / 10000^(2i / C)) for j = 2i and cos(...) for j = 2i + 1, as the paper;
   computed in double, rounded to float. */
static void lm__s2s_positions(float *pe, int T, int C) {
    int t, j;
    for (j = 0; j < C; j++) {
        double f = exp(-(double)(j & ~1) * log(10000.0) / C);
        for (t = 0; t < T; t++)
            pe[(size_t)t * C + j] = (float)(j & 1 ? cos(t * f) : sin(t * f));
    }
}

/* A model with its memory laid out and its positions made, but no weights yet. */
static lm_seq2seq *lm__s2s_alloc(const lm_seq2seq_config *cfg) {
    lm_seq2seq *m;
    lm_seq2seq_config c;
    int n, l, j, Le, Ld, C;
    if (lm__s2s_config(&c, cfg) != LM_OK) return NULL;
    Le = c.num_encoder_layers; Ld = c.num_decoder_layers; C = c.d_model;
    n = LM__S2S_N(Le, Ld);
    m = (lm_seq2seq *)LM_MALLOC(sizeof *m);
    if (!m) { lm__fail(LM_ERR_MEM, "seq2seq: out of memory"); return NULL; }
    memset(m, 0, sizeof *m);
    m->cfg = c;
    if (lm__params_build(&m->params, &m->arena, n, lm__s2s_layout, &c,
                         (size_t)(Le + Ld) * sizeof(lm_block) + (size_t)c.n_ctx * C * sizeof(float) + 1024,
                         LM_QUANT_NONE) != LM_OK)
        goto fail;
    m->enc = (lm_block *)lm_arena_calloc(&m->arena, (size_t)(Le + Ld) * sizeof(lm_block));
    m->pe.data = (float *)lm_arena_alloc(&m->arena, (size_t)c.n_ctx * C * sizeof(float));
    if (!m->enc || !m->pe.data) goto fail;
    m->dec = m->enc + Le;
    for (l = 0; l < Le + Ld; l++) {
        int dec = l >= Le, nk = dec ? LM__S2S_DEC_N : LM__S2S_ENC_N;
        lm_tensor *t = &m->params.t[dec ? 4 + LM__S2S_ENC_N * Le + LM__S2S_DEC_N * (l - Le)
                                        : 2 + LM__S2S_ENC_N * l];
        for (j = 0; j < nk; j++)
            *(lm_tensor **)((char *)&m->enc[l] + lm__s2s_keys[dec][j].field) = t + j;
    }
    m->src_emb = &m->params.t[0];
    m->tgt_emb = &m->params.t[1];
    m->enc_norm_w = &m->params.t[2 + LM__S2S_ENC_N * Le];
    m->enc_norm_b = m->enc_norm_w + 1;
    m->dec_norm_w = &m->params.t[n - 4];
    m->dec_norm_b = &m->params.t[n - 3];
    m->out_w = &m->params.t[n - 2];
    m->out_b = &m->params.t[n - 1];
    m->pe.ndim = 2; m->pe.shape[0] = c.n_ctx; m->pe.shape[1] = C; m->pe.size = c.n_ctx * C;
    lm__s2s_positions(m->pe.data, c.n_ctx, C);
    return m;
fail:
    lm_arena_free(&m->arena);
    LM_FREE(m);
    return NULL;
}

/* Fresh init, as nn.Transformer's and PyTorch's translation tutorial: every matrix (the
   embeddings and the output layer too) Xavier-uniform, U(-a, a) with
   a = sqrt(6 / (rows + cols)); biases 0; LayerNorm weights 1. Drawn in parameter order from
   one seeded stream. */
static void lm__s2s_init(lm_params *p, uint64_t seed) {
    lm_rng rng = lm_rng_seed(seed);
    int k, i;
    for (k = 0; k < p->n; k++) {
        lm_tensor *t = &p->t[k];
        if (t->ndim == 2) {
            float a = sqrtf(6.0f / (float)(t->shape[0] + t->shape[1]));
            for (i = 0; i < t->size; i++) t->data[i] = a * (2.0f * lm_rng_uniform(&rng) - 1.0f);
        } else if (strstr(p->names[k], "norm") && lm__ends_with(p->names[k], ".weight")) {
            for (i = 0; i < t->size; i++) t->data[i] = 1.0f;
        }
    }
}

LMDEF lm_seq2seq *lm_seq2seq_new(const lm_seq2seq_config *cfg, uint64_t seed) {
    lm_seq2seq *m = lm__s2s_alloc(cfg);
    if (!m) return NULL;
    m->seed = seed;
    lm__s2s_init(&m->params, seed);
    return m;
}

LMDEF void lm_seq2seq_free(lm_seq2seq *m) {
    if (!m) return;
    lm_arena_free(&m->arena);
    lm_arena_free(&m->work);
    lm_arena_free(&m->dec_arena);
    LM_FREE(m);
}

LMDEF size_t lm_seq2seq_num_params(const lm_seq2seq *m) {
    size_t s = 0;
    int k;
    for (k = 0; k < m->params.n; k++) s += (size_t)m->params.t[k].size;
    return s;
}

/* The encoder or the decoder as a trunk of section 5. */
static lm__trunk lm__s2s_trunk(lm_seq2seq *m, int decoder) {
    const lm_seq2seq_config *c = &m->cfg;
    lm__trunk t;
    memset(&t, 0, sizeof t);
    t.who = decoder ? "seq2seq decoder" : "seq2seq encoder";
    t.wte = decoder ? m->tgt_emb : m->src_emb;
    t.wpe = &m->pe;
    t.h = decoder ? m->dec : m->enc;
    t.n_layer = decoder ? c->num_decoder_layers : c->num_encoder_layers;
    t.n_head = c->nhead; t.n_embd = c->d_model; t.n_ctx = c->n_ctx;
    t.causal = decoder;
    t.dropout = c->dropout;
    t.act = c->activation == LM_ACT_GELU ? LM__GELU_ERF : LM__RELU;
    t.emb_scale = sqrtf((float)c->d_model);
    t.post_ln = !c->norm_first;
    t.out_major = 1;
    t.mlp_dropout = 1;
    return t;
}

/* A batch's shape and tokens, checked before anything is built. */
static int lm__s2s_check(const lm_seq2seq *m, const lm_seq2seq_batch *b) {
    const lm_seq2seq_config *c = &m->cfg;
    int i, t, big;
    if (!b || b->B < 1 || b->S < 1 || b->S > c->n_ctx || b->T < 0 || b->T > c->n_ctx - 1 || !b->src ||
        (b->T > 0 && !b->tgt))
        return lm__fail(LM_ERR_ARG, "seq2seq: a batch needs B >= 1 rows, sources of 1 to n_ctx = %d "
                        "tokens and targets of at most %d", c->n_ctx, c->n_ctx - 1);
    big = c->tgt_vocab > c->dim_feedforward ? c->tgt_vocab : c->dim_feedforward;
    if (big < 3 * c->d_model) big = 3 * c->d_model;
    if ((double)b->B * (b->S > b->T + 1 ? b->S : b->T + 1) * big > INT_MAX ||
        (double)b->B * c->nhead * (b->S > b->T + 1 ? b->S : b->T + 1) * (b->S > b->T + 1 ? b->S : b->T + 1) > INT_MAX)
        return lm__fail(LM_ERR_ARG, "seq2seq: a batch of %d rows is too large for this model", b->B);
    for (i = 0; i < b->B; i++) {
        int ns = b->src_len ? b->src_len[i] : b->S, nt = b->tgt_len ? b->tgt_len[i] : b->T;
        if (ns < 1 || ns > b->S)
            return lm__fail(LM_ERR_ARG, "seq2seq: source length %d of row %d outside [1, %d]", ns, i, b->S);
        if (nt < 0 || nt > b->T)
            return lm__fail(LM_ERR_ARG, "seq2seq: target length %d of row %d outside [0, %d]", nt, i, b->T);
        for (t = 0; t < ns; t++)
            if (b->src[(size_t)i * b->S + t] < 0 || b->src[(size_t)i * b->S + t] >= c->src_vocab)
                return lm__fail(LM_ERR_ARG, "seq2seq: source token %d (row %d, position %d) outside "
                                "[0, %d)", b->src[(size_t)i * b->S + t], i, t, c->src_vocab);
        for (t = 0; t < nt; t++) {
            int y = b->tgt[(size_t)i * b->T + t];
            if (y < 0 || y >= c->tgt_vocab || y == c->bos_id || y == c->eos_id || y == c->pad_id)
                return lm__fail(LM_ERR_ARG, "seq2seq: target token %d (row %d, position %d) outside "
                                "[0, %d) or a special id (BOS %d, EOS %d, PAD %d)", y, i, t,
                                c->tgt_vocab, c->bos_id, c->eos_id, c->pad_id);
        }
    }
    return LM_OK;
}

/* The logits (B, T, V_tgt) of decoder inputs dec (B, T) after sources src (B, S) of lengths
   src_len: the encoder and its final norm, then the decoder attending to that, its final
   norm, and the output layer. */
static lm_tensor *lm__s2s_logits(lm_graph *g, lm_seq2seq *m, const int *src, const int *src_len,
                                 int S, const int *dec, int T, int B) {
    lm__trunk e = lm__s2s_trunk(m, 0), d = lm__s2s_trunk(m, 1);
    e.lens = src_len;
    d.mem = lm_layernorm(g, lm__trunk_forward(g, &e, src, B, S), m->enc_norm_w, m->enc_norm_b, 1e-5f);
    d.mem_lens = src_len;
    return lm__lin(g, lm_layernorm(g, lm__trunk_forward(g, &d, dec, B, T), m->dec_norm_w, m->dec_norm_b, 1e-5f),
                   m->out_w, m->out_b, 1);
}

/* Teacher forcing, on g's arena: the sources with their padding made a valid id (0; the
   mask hides it), the decoder's input BOS + target and its targets target + EOS, both of
   T + 1 and padded with pad_id, which the loss ignores. Then the logits, and the loss if
   tgt_out is wanted. */
static lm_tensor *lm__s2s_graph(lm_graph *g, lm_seq2seq *m, const lm_seq2seq_batch *b, int loss) {
    const lm_seq2seq_config *c = &m->cfg;
    int B = b->B, S = b->S, T1 = b->T + 1, i, t;
    int *src = (int *)lm_arena_alloc(g->arena, sizeof(int) * (size_t)B * (S + 2 * T1));
    int *dec, *tgt;
    lm_tensor *logits;
    if (!src) { g->failed = 1; return NULL; }
    dec = src + (size_t)B * S;
    tgt = dec + (size_t)B * T1;
    for (i = 0; i < B; i++) {
        int ns = b->src_len ? b->src_len[i] : S, nt = b->tgt_len ? b->tgt_len[i] : b->T;
        for (t = 0; t < S; t++) src[(size_t)i * S + t] = t < ns ? b->src[(size_t)i * S + t] : 0;
        for (t = 0; t < T1; t++) {
            int y = t < nt ? b->tgt[(size_t)i * b->T + t] : t == nt ? c->eos_id : c->pad_id;
            dec[(size_t)i * T1 + t] = t == 0 ? c->bos_id : t <= nt ? b->tgt[(size_t)i * b->T + t - 1] : c->pad_id;
            tgt[(size_t)i * T1 + t] = y;
        }
    }
    logits = lm__s2s_logits(g, m, src, b->src_len, S, dec, T1, B);
    return loss ? lm_cross_entropy(g, logits, tgt, c->pad_id) : logits;
}

LMDEF lm_tensor *lm_seq2seq_forward(lm_seq2seq *m, lm_graph *g, const lm_seq2seq_batch *b) {
    if (g->failed) return NULL;
    if (lm__s2s_check(m, b) != LM_OK) { g->failed = 1; return NULL; }
    return lm__s2s_graph(g, m, b, 0);
}

/* The parameters of a config (as the layout counts them), and what the work arena of one
   step needs, roughly (lm__fit grows it when short): activations, attention rows and tape
   nodes; for training their gradients, the logits' and the parameters' gradient block. */
static double lm__s2s_params(const lm_seq2seq_config *c) {
    double C = c->d_model, F = c->dim_feedforward;
    return ((double)c->src_vocab + 2.0 * c->tgt_vocab) * C + c->tgt_vocab + 4 * C +
           c->num_encoder_layers * (4 * C * C + 2 * C * F + 9 * C + F) +
           c->num_decoder_layers * (8 * C * C + 2 * C * F + 15 * C + F);
}
static double lm__s2s_work_estimate(const lm_seq2seq_config *c, int B, int S, int T1, int mode) {
    double C = c->d_model, F = c->dim_feedforward, H = c->nhead, V = c->tgt_vocab;
    double enc = c->num_encoder_layers * (S * (20 * C + 3 * F) + H * S * S) + 4 * S * C;
    double dec = c->num_decoder_layers * (T1 * (28 * C + 3 * F) + H * T1 * ((double)T1 + S) + 2 * S * C) + 4 * T1 * C;
    double graph = 4.0 * B * (enc + dec) + (c->num_encoder_layers + c->num_decoder_layers) * 24.0 * 512 + 16384;
    return mode == LM__TRAIN ? 2 * graph + 12.0 * B * T1 * V + (1 << 20) + 4 * lm__s2s_params(c)
                             : graph + 4.0 * B * T1 * V;
}

typedef struct { lm_seq2seq *m; const lm_seq2seq_batch *b; } lm__s2s_ctx;
static lm_tensor *lm__s2s_loss_graph(lm_graph *g, void *ctx) {
    lm__s2s_ctx *x = (lm__s2s_ctx *)ctx;
    return lm__s2s_graph(g, x->m, x->b, 1);
}

/* Check the batch, then lm__run_step. Dropout masks are drawn from (seed, training steps
   taken), as the encoder's, and a training step counts one more. */
static float lm__s2s_step(lm_seq2seq *m, const lm_train_opts *o, const lm_seq2seq_batch *b,
                          int step, int mode) {
    lm__s2s_ctx x;
    lm__step s;
    float loss;
    if (lm__s2s_check(m, b) != LM_OK) return NAN;
    x.m = m; x.b = b;
    s.who = "seq2seq"; s.params = &m->params; s.work = &m->work; s.build = lm__s2s_loss_graph; s.ctx = &x;
    s.est = lm__s2s_work_estimate(&m->cfg, b->B, b->S, b->T + 1, mode == LM__LOSS ? LM__INFER : LM__TRAIN);
    s.rng = lm_rng_seed(m->seed ^ (0x9E3779B97F4A7C15ull * (m->steps + 1)));
    loss = lm__run_step(&s, o, step, mode);
    if (mode == LM__STEP && loss == loss) m->steps++;   /* a failed step was not taken */
    return loss;
}
LMDEF float lm_seq2seq_loss(lm_seq2seq *m, const lm_seq2seq_batch *b) {
    return lm__s2s_step(m, NULL, b, 0, LM__LOSS);
}
LMDEF float lm_seq2seq_backward(lm_seq2seq *m, const lm_seq2seq_batch *b) {
    return lm__s2s_step(m, NULL, b, 0, LM__BACKWARD);
}
LMDEF float lm_seq2seq_train_step(lm_seq2seq *m, const lm_train_opts *o, const lm_seq2seq_batch *b,
                                  int step) {
    return lm__s2s_step(m, o, b, step, LM__STEP);
}

LMDEF double lm_seq2seq_memory(const lm_seq2seq_config *cfg, int B, int S, int T) {
    lm_seq2seq_config c;
    double C, F, Ld, N, params;
    if (lm__s2s_config(&c, cfg) != LM_OK) return HUGE_VAL;
    C = c.d_model; F = c.dim_feedforward; Ld = c.num_decoder_layers; N = c.n_ctx;
    params = lm__s2s_params(&c);
    /* weights, gradients, two moments; the positions; decoding (one beam) or one step */
    return 16 * params + 4 * N * C +
           (B > 0 ? lm__s2s_work_estimate(&c, B, S, T + 1, LM__TRAIN)
                  : 16 * Ld * N * C + 4 * (10 * C + F + N + 2.0 * c.tgt_vocab) +
                    lm__s2s_work_estimate(&c, 1, c.n_ctx, 1, LM__INFER));
}

/* ---------------------------------------------------------------------------------------
   Decoding. The encoder runs once per source, through the graph (no gradients); every
   decoder layer's cross-attention keys and values of it, (S, 2C), are computed there once
   and kept in kv_cross. Then the decoder takes one position at a time, row by row with
   lm__block_row as the GPT's generation does, its own keys and values going into a KV
   cache: a token costs the same whatever came before, apart from the attention over it.
   Beam search keeps `beam` hypotheses, each with a cache slot; a step feeds every
   hypothesis its last token, takes the best `beam` continuations of all of them by total
   log-probability, and gives each a slot: a parent's own slot to its first child, a copy
   of it to any other. A hypothesis that ends with EOS is finished; the search stops when
   the best finished one scores at least the best open one (scores only fall), when
   max_out tokens are out, or when n_ctx positions are used up; the result is the
   finished hypothesis with the highest total log-probability (no length penalty). Greedy
   decoding is the search with one hypothesis.
   --------------------------------------------------------------------------------------- */
#define LM__BEAM_MAX 16

/* The decoding memory of m for `beams` hypotheses: cache slots (beams, L_dec, n_ctx, 2C),
   the source's keys and values (L_dec, n_ctx, 2C), then per hypothesis its row x (C),
   its tokens (n_ctx) and its scores, and the scratch of a step. Made on first use, and
   again only for more beams. */
typedef struct {
    float *x;                /* (beams, C) each hypothesis's row                          */
    float *logp;             /* (beams, V) their next-token log-probabilities             */
    float *scratch;          /* 5C + F + n_ctx floats for lm__block_row                   */
    int *tok;                /* (2, beams, n_ctx) tokens, double-buffered                 */
    int *slot;               /* (2, beams) cache slot of each hypothesis                  */
    double *score;           /* (2, beams) total log-probabilities                        */
} lm__s2s_dec;
static int lm__s2s_dec_mem(lm_seq2seq *m, int beams, lm__s2s_dec *d) {
    const lm_seq2seq_config *c = &m->cfg;
    size_t C = (size_t)c->d_model, N = (size_t)c->n_ctx, Ld = (size_t)c->num_decoder_layers, V = (size_t)c->tgt_vocab;
    size_t floats = (beams + 1) * Ld * N * 2 * C + beams * (C + V) + 5 * C + (size_t)c->dim_feedforward + N;
    size_t bytes = floats * sizeof(float) + (size_t)beams * (2 * N + 2) * sizeof(int) +
                   2 * (size_t)beams * sizeof(double) + 16 * 64;
    lm_arena *a = &m->dec_arena;
    if (m->beams < beams) {
        lm_arena_free(a);
        m->beams = 0;
        if (lm_arena_init(a, bytes) != LM_OK) return LM_ERR_MEM;
        m->beams = beams;
    }
    lm_arena_reset(a, 0);
    m->kv_self = (float *)lm_arena_alloc(a, (size_t)beams * Ld * N * 2 * C * sizeof(float));
    m->kv_cross = (float *)lm_arena_alloc(a, Ld * N * 2 * C * sizeof(float));
    d->x = (float *)lm_arena_alloc(a, (size_t)beams * C * sizeof(float));
    d->logp = (float *)lm_arena_alloc(a, (size_t)beams * V * sizeof(float));
    d->scratch = (float *)lm_arena_alloc(a, (5 * C + (size_t)c->dim_feedforward + N) * sizeof(float));
    d->tok = (int *)lm_arena_alloc(a, (size_t)beams * 2 * N * sizeof(int));
    d->slot = (int *)lm_arena_alloc(a, (size_t)beams * 2 * sizeof(int));
    d->score = (double *)lm_arena_alloc(a, 2 * (size_t)beams * sizeof(double));
    if (!m->kv_self || !m->kv_cross || !d->x || !d->logp || !d->scratch || !d->tok || !d->slot || !d->score)
        return lm__fail(LM_ERR_MEM, "seq2seq: decoding memory: %s", lm_error());
    return LM_OK;
}

/* The encoder over one source, and each decoder layer's keys and values of its output. */
typedef struct { lm_seq2seq *m; const int *src; int n; } lm__s2s_src;
static lm_tensor *lm__s2s_encode_graph(lm_graph *g, void *ctx) {
    lm__s2s_src *x = (lm__s2s_src *)ctx;
    lm_seq2seq *m = x->m;
    lm__trunk e = lm__s2s_trunk(m, 0);
    int C = m->cfg.d_model, l;
    lm_tensor *mem, *kv = NULL;
    mem = lm_layernorm(g, lm__trunk_forward(g, &e, x->src, 1, x->n), m->enc_norm_w, m->enc_norm_b, 1e-5f);
    for (l = 0; l < m->cfg.num_decoder_layers; l++) {
        lm_block *b = &m->dec[l];
        kv = lm__lin(g, mem, lm__rows_view(g, b->xattn_w, C, 2 * C), lm__rows_view(g, b->xattn_b, C, 2 * C), 1);
        if (!kv) return NULL;
        memcpy(m->kv_cross + (size_t)l * m->cfg.n_ctx * 2 * C, kv->data, (size_t)x->n * 2 * C * sizeof(float));
    }
    return kv;
}

/* Hypothesis i (cache slot `slot`) feeds token at position pos: its log-probabilities of
   the next token into logp (V). */
static void lm__s2s_dec_step(lm_seq2seq *m, const lm__trunk *t, lm__s2s_dec *d, int i, int slot,
                             int token, int pos, int S) {
    const lm_seq2seq_config *c = &m->cfg;
    int C = c->d_model, V = c->tgt_vocab, l, j;
    size_t per = (size_t)c->n_ctx * 2 * C;
    float *x = d->x + (size_t)i * C, *logp = d->logp + (size_t)i * V, *buf = d->scratch;
    const float *e = m->tgt_emb->data + (size_t)token * C, *p = m->pe.data + (size_t)pos * C;
    for (j = 0; j < C; j++) {
        float v = e[j] * t->emb_scale;
        x[j] = v + p[j];
    }
    for (l = 0; l < c->num_decoder_layers; l++) {
        float *kv = m->kv_self + ((size_t)slot * c->num_decoder_layers + l) * per;
        lm__block_row(&m->dec[l], t, x, pos, kv, kv + C, 2 * C, m->kv_cross + (size_t)l * per, S, d->scratch,
                      NULL, 0);
    }
    lm__ln_row(x, m->dec_norm_w->data, m->dec_norm_b->data, buf, C);
    lm__gemv(buf, m->out_w->data, m->out_b->data, logp, C, V, 1, -1, NULL);
    lm__softmax_row(logp, logp, V, 1);
}

LMDEF int lm_seq2seq_translate(lm_seq2seq *m, const int *src, int n_src, int beam, int *out,
                               int max_out) {
    const lm_seq2seq_config *c = &m->cfg;
    lm__trunk t;
    lm__s2s_dec d;
    lm__s2s_src x;
    lm_graph g;
    int i, j, k, pos, K = beam < 1 ? 1 : beam, live = 1, cur = 0, V = c->tgt_vocab, N = c->n_ctx;
    int best_len = 0, have_best = 0, limit, rc;
    double best = -HUGE_VAL;
    if (!m || !src || (max_out > 0 && !out) || max_out < 0)
        return lm__fail(LM_ERR_ARG, "seq2seq translate: NULL argument or negative max_out");
    if (n_src < 1 || n_src > N)
        return lm__fail(LM_ERR_ARG, "seq2seq translate: a source of %d tokens, need 1 to n_ctx = %d", n_src, N);
    if (beam > LM__BEAM_MAX)
        return lm__fail(LM_ERR_ARG, "seq2seq translate: beam %d, at most %d", beam, LM__BEAM_MAX);
    for (i = 0; i < n_src; i++)
        if (src[i] < 0 || src[i] >= c->src_vocab)
            return lm__fail(LM_ERR_ARG, "seq2seq translate: source token %d at position %d outside "
                            "[0, %d)", src[i], i, c->src_vocab);
    if (max_out == 0) return 0;
    if ((rc = lm__s2s_dec_mem(m, K, &d)) != LM_OK) return rc;
    x.m = m; x.src = src; x.n = n_src;
    lm_clear_error();
    if (!lm__fit(&m->work, lm__s2s_work_estimate(c, 1, n_src, 1, LM__INFER) +
                 4.0 * c->num_decoder_layers * n_src * 2 * c->d_model, &g, lm__s2s_encode_graph, &x,
                 LM__INFER, lm_rng_seed(0), NULL))
        return LM_ERR_MEM;
    t = lm__s2s_trunk(m, 1);
    limit = max_out < N ? max_out : N;           /* tokens out at most */
    d.slot[0] = 0;
    d.score[0] = 0;
    for (pos = 0; pos < limit && live > 0; pos++) {
        /* every open hypothesis feeds its last token (BOS first) */
        int *tok = d.tok + (size_t)cur * K * N, *ntok = d.tok + (size_t)(1 - cur) * K * N;
        int *slot = d.slot + cur * K, *nslot = d.slot + (1 - cur) * K, nlive = 0, used = 0;
        double *score = d.score + cur * K, *nscore = d.score + (1 - cur) * K;
        int cand_i[LM__BEAM_MAX], cand_t[LM__BEAM_MAX], nc = 0;
        double cand_s[LM__BEAM_MAX];
        for (i = 0; i < live; i++)
            lm__s2s_dec_step(m, &t, &d, i, slot[i], pos ? tok[(size_t)i * N + pos - 1] : c->bos_id, pos, n_src);
        /* the best K continuations of all, by total log-probability: ties to the earlier
           hypothesis, then the smaller token */
        for (i = 0; i < live; i++) {
            const float *lp = d.logp + (size_t)i * V;
            for (j = 0; j < V; j++) {
                double s = score[i] + lp[j];
                if (j == c->bos_id || j == c->pad_id) continue;
                if (nc == K && !(s > cand_s[K - 1])) continue;
                k = nc < K ? nc++ : K - 1;
                for (; k > 0 && s > cand_s[k - 1]; k--) {
                    cand_s[k] = cand_s[k - 1]; cand_i[k] = cand_i[k - 1]; cand_t[k] = cand_t[k - 1];
                }
                cand_s[k] = s; cand_i[k] = i; cand_t[k] = j;
            }
        }
        /* EOS finishes a hypothesis; the rest continue, in a cache slot each */
        for (k = 0; k < nc; k++) {
            int p = cand_i[k], full = pos + 1 == limit;
            if (cand_t[k] == c->eos_id || full) {
                int len = cand_t[k] == c->eos_id ? pos : pos + 1;
                if (!have_best || cand_s[k] > best) {
                    best = cand_s[k];
                    best_len = len;
                    have_best = 1;
                    for (j = 0; j < pos && j < max_out; j++) out[j] = tok[(size_t)p * N + j];
                    if (len > pos) out[pos] = cand_t[k];
                }
                continue;
            }
            memcpy(ntok + (size_t)nlive * N, tok + (size_t)p * N, (size_t)pos * sizeof(int));
            ntok[(size_t)nlive * N + pos] = cand_t[k];
            nscore[nlive] = cand_s[k];
            nslot[nlive] = -1 - p;                  /* to be given a slot below */
            nlive++;
        }
        /* slots: the first child of a parent takes the parent's slot, any other a copy */
        for (k = 0; k < nlive; k++) {
            int p = -1 - nslot[k];
            if (!(used & (1 << p))) { used |= 1 << p; nslot[k] = slot[p]; }
        }
        for (k = 0; k < nlive; k++) {
            int p, free_slot, taken = 0;
            size_t per = (size_t)c->num_decoder_layers * N * 2 * c->d_model, l;
            if (nslot[k] >= 0) continue;
            p = -1 - nslot[k];
            for (free_slot = 0; free_slot < K; free_slot++) {
                for (taken = 0, j = 0; j < nlive && !taken; j++) taken = nslot[j] == free_slot;
                if (!taken) break;
            }
            for (l = 0; l < (size_t)c->num_decoder_layers; l++)
                memcpy(m->kv_self + (size_t)free_slot * per + l * N * 2 * c->d_model,
                       m->kv_self + (size_t)slot[p] * per + l * N * 2 * c->d_model,
                       (size_t)(pos + 1) * 2 * c->d_model * sizeof(float));
            nslot[k] = free_slot;
        }
        live = nlive;
        cur = 1 - cur;
        if (have_best && (live == 0 || best >= d.score[cur * K])) break;
    }
    return best_len < max_out ? best_len : max_out;
}

/* =======================================================================================
   10. Compression: Q8_0 weights and magnitude pruning
   A trained model is mostly its weight matrices, and they tolerate coarse numbers. Q8_0
   stores each run of 32 weights along a matrix's input as 32 int8 values and one scale:
   about 3.8 times fewer bytes than float32, and its products run on exact integer dot
   products (the kernels are in section 12). Pruning sets the smallest weights to zero; a
   short fine-tune that holds the zeros wins back most of what that costs. Here are the
   format (a block's scale and values, the packed layout the kernels read, dequantizing),
   the plain math of a Q8_0 product, the op that puts one in a graph, the quantized GPT,
   and pruning. COMPRESSION in the docs at the top says what each promises.
   ======================================================================================= */
#define LM__Q8_MAGIC 12582912.0f         /* 1.5 x 2^23                                    */
#define LM__Q8_MAGIC_BITS 0x4B400000     /* its bits                                      */
#define LM__Q8_TINY 1e-30f               /* blocks of activations below this count as 0   */

/* v rounded to the nearest integer, ties to even, for |v| < 2^22. v + 1.5 x 2^23 lies in
   [2^23, 2^24), where the floats are exactly the integers, so the addition itself does
   the rounding (IEEE's default: to nearest, ties to even), and the integer sits in the low
   bits of the sum. The same two steps, an add and a look at the bits, run in every SIMD
   path, which is how they all round alike. */
static int lm__q8_round(float v) {
    float r = v + LM__Q8_MAGIC;
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return (int)u - LM__Q8_MAGIC_BITS;
}

/* ---------------------------------------------------------------------------------------
   Weights. A block of 32 along the input: d = max|w| / 127 as F16, q = round(w / d),
   computed in double with the F16 d itself, so |w - d q| <= d / 2 for every weight.
   --------------------------------------------------------------------------------------- */
/* The F16 scale (its bits) of a block whose largest magnitude is amax: amax / 127 rounded
   to F16, then the next F16 up while amax / d would round past 127 (which happens only
   for subnormal F16 scales, or 0). 0x7C00 or more (infinity) when no F16 is large enough. */
static uint16_t lm__q8_scale(float amax) {
    uint16_t h = lm__f32_to_f16(amax / 127.0f);
    while (h < 0x7C00 && amax > 0 && (double)amax / lm__f16_to_f32(h) >= 127.5) h++;
    return h;
}

/* One row of a product: n weights w[0], w[stride], ... along its input, into the values
   q[n] and the scales d[ceil(n / 32)] (F16 bits). An error, naming the tensor, if a
   weight is not finite or too large for any F16 scale. */
static int lm__q8_quantize_row(const float *w, size_t stride, int n, signed char *q,
                               uint16_t *d, const char *name) {
    int b, i;
    for (b = 0; b * 32 < n; b++) {
        int i0 = b * 32, i1 = n - i0 < 32 ? n : i0 + 32;
        float amax = 0;
        double dd;
        for (i = i0; i < i1; i++) {
            float a = fabsf(w[(size_t)i * stride]);
            if (!(a <= FLT_MAX))
                return lm__fail(LM_ERR_ARG, "quantize: %s has a weight that is not finite", name);
            if (a > amax) amax = a;
        }
        d[b] = lm__q8_scale(amax);
        if (d[b] >= 0x7C00)
            return lm__fail(LM_ERR_ARG, "quantize: %s has a weight of magnitude %g, too large for "
                            "Q8_0 (its F16 scale would overflow)", name, (double)amax);
        dd = lm__f16_to_f32(d[b]);
        for (i = i0; i < i1; i++) {
            double v = dd > 0 ? (double)w[(size_t)i * stride] / dd : 0.0;
            v = (v + 6755399441055744.0) - 6755399441055744.0;    /* nearest, ties to even */
            q[i] = (signed char)(v > 127 ? 127 : v < -127 ? -127 : (int)v);
        }
    }
    return LM_OK;
}

/* The packed layout (lm_q8 in the API): where value i of row r sits in W->q, and where
   the scale of row r's block b sits in W->d. */
static size_t lm__q8_at(const lm_q8 *W, int r, int i) {
    size_t tile = (size_t)(r / 16) * (size_t)W->nb + (size_t)(i / 32);
    return tile * 512 + (size_t)(i % 32 / 4) * 64 + (size_t)(r % 16) * 4 + (size_t)(i % 4);
}
static size_t lm__q8_dat(const lm_q8 *W, int r, int b) {
    return ((size_t)(r / 16) * (size_t)W->nb + (size_t)b) * 16 + (size_t)(r % 16);
}

/* Row r from the file's form (values q[in], F16 scales d[nb]) into the packed layout, and
   back. Packing writes a model's own storage (its const is for weights in flash). */
static void lm__q8_pack_row(const lm_q8 *W, int r, const signed char *q, const uint16_t *d) {
    unsigned char *wq = (unsigned char *)W->q;
    uint16_t *wd = (uint16_t *)W->d;
    int i;
    for (i = 0; i < W->in; i++) wq[lm__q8_at(W, r, i)] = (unsigned char)(q[i] + 128);
    for (i = 0; i < W->nb; i++) wd[lm__q8_dat(W, r, i)] = d[i];
}
static void lm__q8_unpack_row(const lm_q8 *W, int r, signed char *q, uint16_t *d) {
    int i;
    for (i = 0; i < W->in; i++) q[i] = (signed char)((int)W->q[lm__q8_at(W, r, i)] - 128);
    for (i = 0; i < W->nb; i++) d[i] = W->d[lm__q8_dat(W, r, i)];
}

LMDEF float lm_q8_get(const lm_q8 *W, int r, int i) {
    return lm__f16_to_f32(W->d[lm__q8_dat(W, r, i / 32)]) * (float)((int)W->q[lm__q8_at(W, r, i)] - 128);
}
/* Row r dequantized: out[i] = d q for i < in (exact: an F16 times an int8 is a float). */
static void lm__q8_row(const lm_q8 *W, int r, float *out) {
    int i;
    for (i = 0; i < W->in; i++) out[i] = lm_q8_get(W, r, i);
}

/* ---------------------------------------------------------------------------------------
   Activations and the product. The input of a Q8_0 product is quantized block by block
   as it comes: d = max|x| / 127, q = round(x 127 / max|x|). Then each output is
       y = sum over the blocks b, in order, of (float)(sum_i q_w q_x) * (d_w d_x)
   in float (each product, then each addition, rounded), plus the bias. The integer sum of
   a block is exact whatever order it is added in, which is what lets every SIMD path of
   section 12 give these very bits.
   --------------------------------------------------------------------------------------- */
/* The scale of a block of activations from the bits of its largest magnitude (sign
   cleared), and in *id the factor that takes it to [-127, 127]. A NaN or an infinity in
   the block makes its scale NaN (so the product is NaN, as in float32); a block below
   LM__Q8_TINY is all zeros (no denormal then reaches a multiplication that matters, so
   armv7's flush-to-zero NEON agrees with the rest). *id = 0 means: every value is 0. */
static float lm__q8_x_scale(uint32_t top, float *id) {
    float amax;
    memcpy(&amax, &top, sizeof amax);
    *id = 0.0f;
    if (top >= 0x7F800000u) return NAN;
    if (amax < LM__Q8_TINY) return 0.0f;
    *id = 127.0f / amax;
    return amax / 127.0f;
}

/* One block of n <= 32 activations: q[0..32) (zeros past n), their sum in *sum (the VNNI
   path needs it), and the scale as the return value. The largest magnitude is taken on the
   bits: |x| orders as its bits with the sign cleared, so every path finds the same, NaN
   included. This is the scalar path of lm__q8_quant_x (section 12). */
static float lm__q8_quant_block(const float *x, int n, signed char *q, int *sum) {
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    uint32_t top = 0, u;
    float id, d, v;
    int i;
    for (i = 0; i < n; i++) {
        memcpy(&u, &x[i], sizeof u);
        u &= 0x7FFFFFFFu;
        if (u > top) top = u;
    }
    d = lm__q8_x_scale(top, &id);
    *sum = 0;
    for (i = 0; i < 32; i++) q[i] = 0;
    if (id == 0.0f) return d;
    for (i = 0; i < n; i++) {
        v = x[i] * id;
        q[i] = (signed char)lm__q8_round(v);
        *sum += q[i];
    }
    return d;
}

/* The plain math of a Q8_0 product, on the file's layout: values q (out, in) and F16
   scales d (out, ceil(in / 32)); y (out) = W x + bias (bias may be NULL). The kernels of
   section 12 compute the same on the packed layout, and the tests hold them to its bits. */
LM__REF void lm__ref_q8_matvec(const signed char *q, const uint16_t *d, int out, int in,
                               const float *x, const float *bias, float *y) {
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    int nb = (in + 31) / 32, j, b, i, sx;
    signed char qx[32];
    for (j = 0; j < out; j++) {
        float acc = 0.0f, s, t;
        for (b = 0; b < nb; b++) {
            int n = in - 32 * b < 32 ? in - 32 * b : 32, isum = 0;
            float dx = lm__q8_quant_block(x + 32 * b, n, qx, &sx);
            for (i = 0; i < n; i++) isum += q[(size_t)j * in + 32 * b + i] * qx[i];
            s = lm__f16_to_f32(d[(size_t)j * nb + b]) * dx;
            t = (float)isum * s;
            acc = acc + t;
        }
        y[j] = bias ? acc + bias[j] : acc;
    }
}

/* The op: y (..., out) = x (..., in) W^T + bias for a weight tensor stored as Q8_0, whether
   it stands as a Conv1D weight (in, out) in lm_linear or as the tied head (out, in) in
   lm_matmul with tb. Forward only: quantized models evaluate and generate, they do not
   train, so a graph that wants gradients through one is an error. lm__matmul (section 3)
   sends Q8_0 weights here. */
static void lm__q8_linear_fwd(lm_node *n) {
    const lm_q8 *W = n->in[1]->q8;
    lm__q8_matmul(W, n->in[0]->data, n->in[0]->size / W->in, n->in[2] ? n->in[2]->data : NULL,
                  n->out->data);
}
static void lm__q8_linear_bwd(lm_node *n) { (void)n; }  /* never on a tape (see below) */
static const lm_op lm__op_q8_linear = { "q8_linear", lm__q8_linear_fwd, lm__q8_linear_bwd };
static lm_tensor *lm__q8_linear(lm_graph *g, lm_tensor *a, lm_tensor *b, lm_tensor *bias,
                                int tb, const char *name) {
    const lm_q8 *W = b->q8;
    lm_tensor *in[3];
    int shape[LM_MAX_DIMS], K, N;
    if (b->ndim != 2) return lm__op_fail(g, name, "the weight must be 2-D");
    K = tb ? b->shape[1] : b->shape[0];
    N = tb ? b->shape[0] : b->shape[1];
    if (W->in != K || W->out != N)
        return lm__op_fail(g, name, "the Q8_0 weight does not match the tensor's shape");
    if (a->shape[a->ndim - 1] != K) return lm__op_fail(g, name, "inner dimensions differ");
    if (bias && bias->size != N) return lm__op_fail(g, name, "bias size differs from the output width");
    if (a->requires_grad && !g->no_grad)
        return lm__op_fail(g, name, "Q8_0 weights run forward only (a quantized model cannot "
                           "train: train the float32 model, then quantize it)");
    in[0] = a; in[1] = b; in[2] = bias;
    return lm_node_run(lm_node_new(g, &lm__op_q8_linear, bias ? 3 : 2, in, a->ndim,
                                   lm__shape_last(a, N, shape)));
}

/* ---------------------------------------------------------------------------------------
   The quantized GPT. Which tensors a quant level stores as Q8_0 goes by name, so the one
   rule serves every layout of section 5: the block matrices (the tensors with rows in
   lm__block_rows), held as Conv1D weights (in, out), and with LM_QUANT_Q8_0_EMB the token
   embedding, held (V, C) and read as the head's (out, in). lm__params_build gives such a
   model no gradients or moments, float storage only for what stays float32, and a packed
   lm_q8 for the rest.
   --------------------------------------------------------------------------------------- */
enum { LM__Q8_IN_OUT = 1, LM__Q8_OUT_IN = 2 };
static int lm__q8_kind(int quant, const char *name) {
    const char *dot = name ? strchr(name, '.') : NULL;
    int j;
    if (quant <= LM_QUANT_NONE || !name) return 0;
    if (!strcmp(name, "wte.weight")) return quant == LM_QUANT_Q8_0_EMB ? LM__Q8_OUT_IN : 0;
    if (name[0] != 'h' || !dot || !(dot = strchr(dot + 1, '.'))) return 0;
    for (j = 0; j < LM__BLOCK_N; j++)
        if (lm__block_rows[j] && !strcmp(dot + 1, lm__block_keys[j])) return LM__Q8_IN_OUT;
    return 0;
}
/* A tensor's product shape when it is stored as kind: y (out) = W (out, in) x. */
static void lm__q8_dims(int kind, const int *shape, int *out, int *in) {
    *out = kind == LM__Q8_IN_OUT ? shape[1] : shape[0];
    *in = kind == LM__Q8_IN_OUT ? shape[0] : shape[1];
}
/* Bytes an lm_q8 of that shape takes in an arena: the struct, scales and values, each
   64-aligned. */
static size_t lm__q8_arena_bytes(int out, int in) {
    return LM__ROUND64(sizeof(lm_q8)) + LM__ROUND64(LM_Q8_SCALES(out, in) * sizeof(uint16_t)) +
           LM__ROUND64(LM_Q8_VALUES(out, in));
}
/* A zero Q8_0 matrix in arena a (values 128: q = 0, so padding adds nothing). */
static lm_q8 *lm__q8_new(lm_arena *a, int out, int in) {
    lm_q8 *W = (lm_q8 *)lm_arena_calloc(a, sizeof(lm_q8));
    uint16_t *d = (uint16_t *)lm_arena_calloc(a, LM_Q8_SCALES(out, in) * sizeof(uint16_t));
    unsigned char *q = (unsigned char *)lm_arena_alloc(a, LM_Q8_VALUES(out, in));
    if (!W || !d || !q) return NULL;
    memset(q, 128, LM_Q8_VALUES(out, in));
    W->out = out; W->in = in; W->nb = (in + 31) / 32; W->d = d; W->q = q;
    return W;
}

LMDEF lm_gpt *lm_gpt_quantize(const lm_gpt *m, int quant) {
    lm_gpt_config c;
    lm_gpt *qm;
    signed char *qrow = NULL;
    uint16_t *drow = NULL;
    int k, r, rc = LM_OK, widest = 1;
    if (!m) return lm__fail(LM_ERR_ARG, "quantize: NULL model"), (lm_gpt *)NULL;
    if (m->cfg.quant != LM_QUANT_NONE)
        return lm__fail(LM_ERR_ARG, "quantize: the model is quantized already"), (lm_gpt *)NULL;
    if (quant != LM_QUANT_Q8_0 && quant != LM_QUANT_Q8_0_EMB)
        return lm__fail(LM_ERR_ARG, "quantize: quant %d is not LM_QUANT_Q8_0 or LM_QUANT_Q8_0_EMB",
                        quant), (lm_gpt *)NULL;
    for (k = 0; k < m->params.n; k++) {
        if (!m->params.t[k].data)
            return lm__fail(LM_ERR_ARG, "quantize: tensor '%s' has no float32 values",
                            m->params.names[k]), (lm_gpt *)NULL;
        if (m->params.t[k].ndim == 2 && m->params.t[k].shape[1] > widest) widest = m->params.t[k].shape[1];
        if (m->params.t[k].ndim == 2 && m->params.t[k].shape[0] > widest) widest = m->params.t[k].shape[0];
    }
    c = m->cfg;
    c.quant = quant;
    if (!(qm = lm__gpt_alloc(&c))) return NULL;
    qrow = (signed char *)LM_MALLOC((size_t)widest);
    drow = (uint16_t *)LM_MALLOC(((size_t)widest / 32 + 1) * sizeof(uint16_t));
    if (!qrow || !drow) rc = lm__fail(LM_ERR_MEM, "quantize: out of memory");
    for (k = 0; rc == LM_OK && k < qm->params.n; k++) {
        const lm_tensor *src = &m->params.t[k];
        lm_tensor *dst = &qm->params.t[k];
        int kind = lm__q8_kind(quant, qm->params.names[k]);
        if (!kind) {
            memcpy(dst->data, src->data, (size_t)src->size * sizeof(float));
            continue;
        }
        for (r = 0; rc == LM_OK && r < dst->q8->out; r++) {
            /* row r of the product: column r of a Conv1D weight, row r of wte */
            if (kind == LM__Q8_IN_OUT)
                rc = lm__q8_quantize_row(src->data + r, (size_t)dst->q8->out, dst->q8->in, qrow,
                                         drow, qm->params.names[k]);
            else
                rc = lm__q8_quantize_row(src->data + (size_t)r * dst->q8->in, 1, dst->q8->in,
                                         qrow, drow, qm->params.names[k]);
            if (rc == LM_OK) lm__q8_pack_row(dst->q8, r, qrow, drow);
        }
    }
    if (qrow) LM_FREE(qrow);
    if (drow) LM_FREE(drow);
    if (rc != LM_OK) { lm_gpt_free(qm); return NULL; }
    return qm;
}

LMDEF size_t lm_gpt_image(const lm_gpt *m, void *buf, size_t cap) {
    unsigned char *p = (unsigned char *)buf;
    size_t size = 0;
    int k, pass;
    for (pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (k = 0; m && k < m->params.n; k++) {
            const lm_tensor *t = &m->params.t[k];
            size_t a = t->q8 ? LM_Q8_SCALES(t->q8->out, t->q8->in) * sizeof(uint16_t)
                             : (size_t)t->size * sizeof(float);
            size_t b = t->q8 ? LM_Q8_VALUES(t->q8->out, t->q8->in) : 0;
            if (pass == 1) {
                memcpy(p + at, t->q8 ? (const void *)t->q8->d : (const void *)t->data, a);
                if (b) memcpy(p + at + a, t->q8->q, b);
            }
            at += a + b;
        }
        size = at;
        if (!buf || cap < size) break;
    }
    return size;
}

/* ---------------------------------------------------------------------------------------
   Magnitude pruning, matrix by matrix: each block matrix loses the same share of its
   weights, the smallest ones (a global threshold would take more from the matrices whose
   weights are small by design, such as the residual projections, and could empty one).
   The order is |w|, then the index, so the result is exact and the same everywhere.
   --------------------------------------------------------------------------------------- */
typedef struct { float a; int i; } lm__mag;
static int lm__mag_cmp(const void *x, const void *y) {
    const lm__mag *p = (const lm__mag *)x, *q = (const lm__mag *)y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}
/* The round(sparsity n) smallest of w[0..n) to zero, sorted in v (n of them). */
static void lm__prune_tensor(float *w, int n, double sparsity, lm__mag *v) {
    size_t k = (size_t)(sparsity * n + 0.5), i;
    for (i = 0; i < (size_t)n; i++) { v[i].a = fabsf(w[i]); v[i].i = (int)i; }
    qsort(v, (size_t)n, sizeof *v, lm__mag_cmp);
    for (i = 0; i < k; i++) w[v[i].i] = 0.0f;
}

/* Everything that can fail - a weight not finite, the memory to sort in - is settled
   before the first weight changes, so a failed prune leaves the model as it was. */
LMDEF int lm_gpt_prune(lm_gpt *m, float sparsity) {
    lm__mag *v;
    int k, i, most = 0;
    if (!m) return lm__fail(LM_ERR_ARG, "prune: NULL model");
    if (m->cfg.quant != LM_QUANT_NONE)
        return lm__fail(LM_ERR_ARG, "prune: the model is quantized; prune the float32 model");
    if (!m->arena.owned)
        return lm__fail(LM_ERR_ARG, "prune: a model over weights in memory cannot be changed");
    if (!(sparsity >= 0 && sparsity <= 1))
        return lm__fail(LM_ERR_ARG, "prune: sparsity %g is outside [0, 1]", (double)sparsity);
    for (k = 0; k < m->params.n; k++) {
        const lm_tensor *t = &m->params.t[k];
        if (!lm__q8_kind(LM_QUANT_Q8_0, m->params.names[k])) continue;
        for (i = 0; i < t->size; i++)
            if (!(fabsf(t->data[i]) <= FLT_MAX))
                return lm__fail(LM_ERR_ARG, "prune: %s has a weight that is not finite", m->params.names[k]);
        if (t->size > most) most = t->size;
    }
    if (!(v = (lm__mag *)LM_MALLOC((size_t)most * sizeof *v + 1)))
        return lm__fail(LM_ERR_MEM, "prune: out of memory");
    for (k = 0; k < m->params.n; k++)
        if (lm__q8_kind(LM_QUANT_Q8_0, m->params.names[k]))
            lm__prune_tensor(m->params.t[k].data, m->params.t[k].size, sparsity, v);
    LM_FREE(v);
    return LM_OK;
}

LMDEF double lm_gpt_sparsity(const lm_gpt *m) {
    double zeros = 0, all = 0;
    int k, i, r;
    if (!m) return 0;
    for (k = 0; k < m->params.n; k++) {
        const lm_tensor *t = &m->params.t[k];
        if (!lm__q8_kind(LM_QUANT_Q8_0, m->params.names[k])) continue;
        all += t->size;
        if (t->q8) {
            for (r = 0; r < t->q8->out; r++)
                for (i = 0; i < t->q8->in; i++) zeros += lm_q8_get(t->q8, r, i) == 0.0f;
        } else {
            for (i = 0; i < t->size; i++) zeros += t->data[i] == 0.0f;
        }
    }
    return all > 0 ? zeros / all : 0;
}

/* =======================================================================================
   11. Thread pool
   Thread pool. One global pool of worker threads. A job is n tasks; workers and the caller
   take task numbers from a shared counter until none are left. Which thread runs a task
   never matters: each task owns its outputs.

   A training step posts a few hundred jobs, many of them short (a layernorm, a residual
   add), so waking a sleeping thread for each (a system call, tens of microseconds on a
   virtual machine) would cost more than the work. Workers therefore spin a little while
   on the job word after finishing a job (yielding the core now and then, so a busy
   machine's other programs still run), and only then sleep on a condition variable; the
   caller likewise spins before it sleeps waiting for the last task to finish.

   The caller never waits for a worker that has nothing to do: it waits for the job's
   tasks, counted as they finish, not for the workers to check in. A worker that comes late
   (asleep, or not given the core by a busy machine) finds no task left and goes back to
   waiting. For that, the job word holds the job's number and the next task together
   (job << 32 | next), and a task is claimed by a compare-and-swap that succeeds only for
   the job the worker read the description of: a late worker can never run a task of a
   job it has not read. Spinning and the job word need atomic operations: GCC/Clang's
   __atomic builtins. Elsewhere (e.g. tcc) the pool does the same under its mutex and
   never spins.

   Concurrent callers. Threads of a program may call lm.h at the same time, each on its own
   objects (THREADS, in the docs block). The pool runs one job at a time: a caller takes it
   with a trylock of lm__pool_owner and holds it for the job. A caller that finds it taken -
   by another thread's job, or by its own when a task calls lm_parallel_for (nesting) - runs
   its tasks itself, one after the other. So jobs are never mixed, and since the tasks and
   what each computes do not depend on who runs them, the results are the same either way.
   lm_set_threads takes the same lock (waiting for a running job) to stop and restart the
   workers, so it may be called at any time, except from inside a task.

   Every worker starts with a block of scratch memory for the GEMM's packed panels (section
   10), too big for a small stack, allocated here and freed when the worker ends.
   ======================================================================================= */
static int lm__nthreads = 1;         /* threads in use, the caller included (atomic)     */

#if !defined(LM_NO_THREADS)
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__TINYC__)
#define LM__ATOMICS 1
#define LM__LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define LM__STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define LM__FETCH_ADD(x, v) __atomic_fetch_add(&(x), (v), __ATOMIC_ACQ_REL)
#define LM__CAS(x, old, new) __atomic_compare_exchange_n(&(x), &(old), (new), 0, \
                                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#if defined(__x86_64__) || defined(__i386__)
#define LM__PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
#define LM__PAUSE() __asm__ __volatile__("yield")
#else
#define LM__PAUSE() ((void)0)
#endif
#define LM__SPINS 10000              /* polls before sleeping: 0.1 to 1 ms, by the CPU    */
#define LM__SPIN_YIELD 1024          /* polls between two sched_yield()                  */
#else
#define LM__ATOMICS 0
#define LM__LOAD(x) (x)
#define LM__STORE(x, v) ((x) = (v))
#endif

/* The GEMM's per-thread panel memory (section 10): a new block, and this thread's. */
static void *lm__panels_new(void);
static int lm__panels_set(void *block);

typedef struct lm__pool {
    pthread_t th[LM_MAX_THREADS];
    void *panels[LM_MAX_THREADS];    /* each worker's panel block, until it has taken it  */
    int nworkers;                    /* threads besides the caller                        */
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    unsigned long long word;         /* the job word: job number << 32 | next task        */
    lm_task_fn fn;                   /* the job: its tasks fn(ctx, i), i < n              */
    void *ctx;
    int n;
    int done;                        /* tasks of the job finished                         */
    int sleepers, caller_waits;      /* workers asleep on wake; the caller asleep on done */
    int quit;
} lm__pool;
static lm__pool lm__the_pool;
static int lm__pool_started = 0;     /* read and written only under lm__pool_owner        */
static pthread_mutex_t lm__pool_owner = PTHREAD_MUTEX_INITIALIZER;  /* held for a job     */

#define LM__JOB(w) ((unsigned)((w) >> 32))
/* Claim the next task of job `job` (which has n tasks): its number, or -1 when the job has
   none left or is no longer the pool's. */
static int lm__pool_claim(lm__pool *p, unsigned job, int n) {
#if LM__ATOMICS
    unsigned long long w = LM__LOAD(p->word);
    while (LM__JOB(w) == job && (int)(w & 0xffffffffu) < n)
        if (LM__CAS(p->word, w, w + 1)) return (int)(w & 0xffffffffu);
    return -1;
#else
    int i = -1;
    pthread_mutex_lock(&p->mu);
    if (LM__JOB(p->word) == job && (int)(p->word & 0xffffffffu) < n) i = (int)(p->word++ & 0xffffffffu);
    pthread_mutex_unlock(&p->mu);
    return i;
#endif
}
/* Task i of the job is done; the last one wakes the caller if it sleeps. */
static void lm__pool_finished(lm__pool *p, int n) {
#if LM__ATOMICS
    if (LM__FETCH_ADD(p->done, 1) + 1 == n) {
        pthread_mutex_lock(&p->mu);
        if (p->caller_waits) pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
    }
#else
    pthread_mutex_lock(&p->mu);
    if (++p->done == n && p->caller_waits) pthread_cond_signal(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
#endif
}
/* Run tasks of job `job` until none is left. */
static void lm__pool_drain(lm__pool *p, unsigned job, lm_task_fn fn, void *ctx, int n) {
    int i;
    while ((i = lm__pool_claim(p, job, n)) >= 0) {
        fn(ctx, i);
        lm__pool_finished(p, n);
    }
}

static void *lm__pool_worker(void *arg) {
    lm__pool *p = &lm__the_pool;
    unsigned seen = 0;
    lm__panels_set(*(void **)arg);   /* this thread's from now on; freed when it ends    */
    for (;;) {
        unsigned job;
        lm_task_fn fn;
        void *ctx;
        int n;
#if LM__ATOMICS
        int spin;
        for (spin = 1; spin <= LM__SPINS && LM__JOB(LM__LOAD(p->word)) == seen && !LM__LOAD(p->quit); spin++) {
            LM__PAUSE();
            if (spin % LM__SPIN_YIELD == 0) sched_yield();
        }
#endif
        if (LM__JOB(LM__LOAD(p->word)) == seen && !LM__LOAD(p->quit)) {   /* then sleep */
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (LM__JOB(LM__LOAD(p->word)) == seen && !LM__LOAD(p->quit))
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (LM__LOAD(p->quit)) return NULL;
        /* the job's description, then its number: a claim below succeeds only if the
           job is still that one, and then the description was its own */
        job = LM__JOB(LM__LOAD(p->word));
        fn = LM__LOAD(p->fn); ctx = LM__LOAD(p->ctx); n = LM__LOAD(p->n);
        seen = job;
        lm__pool_drain(p, job, fn, ctx, n);
    }
}

/* Stop and start the workers: with lm__pool_owner held. */
static void lm__pool_stop(void) {
    lm__pool *p = &lm__the_pool;
    int i;
    if (!lm__pool_started) return;
    pthread_mutex_lock(&p->mu);
    LM__STORE(p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->nworkers; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    lm__pool_started = 0;
}

static int lm__pool_start(int nworkers) {
    lm__pool *p = &lm__the_pool;
    int i;
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    lm__pool_started = 1;
    /* Workers keep their GEMM panels in their own block, so their stack needs are the
       library's few KB: the system's default stack size is plenty. A worker that cannot
       get its block, or be started, is not started: the pool is then smaller. */
    for (i = 0; i < nworkers; i++) {
        if (!(p->panels[i] = lm__panels_new())) break;
        if (pthread_create(&p->th[i], NULL, lm__pool_worker, &p->panels[i]) != 0) {
            LM_FREE(p->panels[i]);
            break;
        }
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
    pthread_mutex_lock(&lm__pool_owner);             /* no job runs while we change it   */
    if (!(n == lm__nthreads && (n == 1 || lm__pool_started))) {
        lm__pool_stop();
        LM__STORE(lm__nthreads, n > 1 ? lm__pool_start(n - 1) : 1);
    }
    n = lm__nthreads;
    pthread_mutex_unlock(&lm__pool_owner);
#else
    n = 1;
#endif
    return n;
}
LMDEF int lm_get_threads(void) {
#if !defined(LM_NO_THREADS)
    return LM__LOAD(lm__nthreads);
#else
    return lm__nthreads;
#endif
}

LMDEF void lm_parallel_for(int n, lm_task_fn fn, void *ctx) {
    int i;
#if !defined(LM_NO_THREADS)
    if (n > 1 && LM__LOAD(lm__nthreads) > 1 && pthread_mutex_trylock(&lm__pool_owner) == 0) {
        lm__pool *p = &lm__the_pool;
        unsigned job;
        if (!lm__pool_started || p->nworkers == 0) {
            for (i = 0; i < n; i++) fn(ctx, i);
            pthread_mutex_unlock(&lm__pool_owner);
            return;
        }
        /* describe the job, then publish its number with the task counter at 0 */
        job = LM__JOB(LM__LOAD(p->word)) + 1;
        LM__STORE(p->fn, fn); LM__STORE(p->ctx, ctx); LM__STORE(p->n, n);
        LM__STORE(p->done, 0);
        pthread_mutex_lock(&p->mu);
        LM__STORE(p->word, (unsigned long long)job << 32);  /* spinning workers start now */
        if (p->sleepers > 0) pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        lm__pool_drain(p, job, fn, ctx, n);
        /* the tasks the workers took: wait for them to finish */
#if LM__ATOMICS
        for (i = 1; i <= LM__SPINS && LM__LOAD(p->done) < n; i++) {
            LM__PAUSE();
            if (i % LM__SPIN_YIELD == 0) sched_yield();
        }
#endif
        pthread_mutex_lock(&p->mu);
        p->caller_waits = 1;
        while (LM__LOAD(p->done) < n) pthread_cond_wait(&p->done_cv, &p->mu);
        p->caller_waits = 0;
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_unlock(&lm__pool_owner);
        return;
    }
#endif
    for (i = 0; i < n; i++) fn(ctx, i);
}

/* =======================================================================================
   12. GEMM
   GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, in the GotoBLAS / BLIS way.

   Almost every FLOP of training and inference goes through here, so this is the one place
   where the library is built for speed. The scheme:

     * C is cut into tiles of at most TM x TN; one tile is one task of the thread pool.
       Tile sizes come from M, N and K, and whether there are threads to share them. Each
       task packs its own panels, so tasks share nothing but the read-only A and B.
     * K is cut into blocks of at most KC (evenly: K = 384 with KC = 256 gives 192 + 192).
       For each K block a task packs its KC x TN slice of op(B) into NR-column micro-panels
       (kept in L2), then walks its rows MR at a time: it packs an MR x KC micro-panel of
       op(A) (kept in L1) and runs the micro-kernel against every B micro-panel of the tile.
     * Packing absorbs both transposes: the micro-kernel always sees A as [k][MR] and B as
       [k][NR], contiguous, so there is one micro-kernel per ISA, not four. Panels are
       zero-padded to full MR and NR, so the micro-kernel always runs a full tile; an edge
       tile is computed into a small temporary and only its valid part is copied out.
     * The micro-kernel keeps an MR x NR block of C in registers and does a rank-1 update
       per k: NR/W vector loads of B, MR broadcasts of A, MR*NR/W fused multiply-adds
       (W = floats per vector).

   Determinism: every element of C is the sum over the K blocks in order, each block summed
   over k in order by the micro-kernel, and nothing about that depends on which thread ran
   the tile, or on the tiling of M and N at all. So results are bit-identical for any
   thread count.

   Few rows (M <= 4, as in generation) take a separate, unpacked path: see below.

   Memory: the packed panels live in a scratch block of the thread that runs the task, not
   on its stack: (KC * TN + MR * KC + MR * NR) floats plus alignment slack, 610 KB with
   AVX-512, 403 KB with AVX2, 132 KB with NEON, 35 KB for the portable path. Each thread
   gets its block once and keeps it (see "Panel memory" below), so a call allocates
   nothing after a thread's first, and the stack a call needs is small (THREADS, in the
   docs block). LM_GEMM_KC and LM_GEMM_TN, defined before including, shrink the block,
   e.g. for a microcontroller.
   ======================================================================================= */

/* A micro-kernel: acc = sum over k < kc of a[k*MR + i] * b[k*NR + j] for an MR x NR block,
   then C[i*ldc + j] = alpha * acc + beta * C (C is not read when beta == 0). */
typedef void (*lm__gemm_kernel_fn)(int kc, const float *a, const float *b, float *c,
                                   size_t ldc, float alpha, float beta);
/* The same, reading A where it lies: row i of the MR x kc block is a + i * lda, k along
   the row (row-major A, not transposed), so no A panel is packed. The FMAs are the same,
   in the same order: the same bits as packing A first. */
typedef void (*lm__gemm_rows_fn)(int kc, const float *a, size_t lda, const float *b, float *c,
                                 size_t ldc, float alpha, float beta);

/* One GEMM "architecture": a micro-kernel and the block sizes that suit it. */
typedef struct lm__gemm_arch {
    int mr, nr;              /* micro-tile: rows of A, columns of B per micro-kernel call */
    int kc;                  /* K block: the depth of a packed panel                      */
    int tn;                  /* widest tile: the packed B slice is kc x tn                */
    int tm_floats;           /* tallest tile, times kc: the tile's rows of A fit in L2    */
    lm__gemm_kernel_fn kernel;
    int simd;                /* the few-rows path may use vector code (0: the reference)  */
    lm__gemm_rows_fn rows;   /* the kernel on A in place (NULL: A is always packed)       */
} lm__gemm_arch;

/* ---------------------------------------------------------------------------------------
   Block sizes per ISA. The rules that chose them (Sapphire Rapids: 48 KB L1d, 2 MB L2):
     - MR x NR: as many accumulators as the register file holds, leaving room for one
       k-step of B and a broadcast of A;
     - KC: the A micro-panel, MR x KC, stays in L1 while the tile's B panels stream past
       it, and is deep enough that loading and storing the C micro-tile once per K block
       is noise (384 also keeps the common K = 384 in one block);
     - TN: the packed B slice, KC x TN, stays in L2 while the tile's rows of A stream
       past it; wider tiles re-pack A less often, but the slice lives on the stack;
     - TMF: a tile is at most TMF / KC rows, so that its rows of A (TM x KC) stay in L2
       while the tiles of one row run one after the other (tasks go row by row).
   LM_GEMM_KC and LM_GEMM_TN, defined before including, override KC and TN (all paths),
   e.g. to shrink the stack for a small embedded target.
   --------------------------------------------------------------------------------------- */
#if defined(LM_AVX512)
#define LM__GEMM_MR 12
#define LM__GEMM_NR 32
#define LM__GEMM_KC 384
#define LM__GEMM_TN 384
#define LM__GEMM_TMF (192 * 1024)
#elif defined(LM_AVX2)
#define LM__GEMM_MR 6
#define LM__GEMM_NR 16
#define LM__GEMM_KC 384
#define LM__GEMM_TN 256
#define LM__GEMM_TMF (192 * 1024)
#elif defined(LM_NEON) && defined(__aarch64__)
#define LM__GEMM_MR 8
#define LM__GEMM_NR 12
#define LM__GEMM_KC 256
#define LM__GEMM_TN 120
#define LM__GEMM_TMF (64 * 1024)
#elif defined(LM_NEON)
#define LM__GEMM_MR 4
#define LM__GEMM_NR 8
#define LM__GEMM_KC 256
#define LM__GEMM_TN 128
#define LM__GEMM_TMF (64 * 1024)
#endif

/* The portable micro-kernel is 4 x 4: 16 accumulators fit the registers of x86-64 SSE and
   of a Cortex-M4F's single-precision FPU alike. Small blocks: ~34 KB of stack. */
#define LM__GEMM_SMR 4
#define LM__GEMM_SNR 4
#define LM__GEMM_SKC 128
#define LM__GEMM_STN 64
#define LM__GEMM_STMF (32 * 1024)

#ifdef LM_GEMM_KC
#undef LM__GEMM_KC
#undef LM__GEMM_SKC
#define LM__GEMM_KC LM_GEMM_KC
#define LM__GEMM_SKC LM_GEMM_KC
#endif
#ifdef LM_GEMM_TN
#undef LM__GEMM_TN
#undef LM__GEMM_STN
#define LM__GEMM_TN LM_GEMM_TN
#define LM__GEMM_STN LM_GEMM_TN
#endif

/* Stack buffers of a task (floats), sized for the biggest compiled-in path: the B slice
   (with TN rounded up to whole panels), the A micro-panel, and one edge micro-tile. */
#define LM__GEMM_RUP(x, q) (((x) + (q) - 1) / (q) * (q))
#define LM__GEMM_MAX(x, y) ((x) > (y) ? (x) : (y))
#ifdef LM__GEMM_MR
#define LM__GEMM_BUF_B LM__GEMM_MAX(LM__GEMM_KC * LM__GEMM_RUP(LM__GEMM_TN, LM__GEMM_NR), \
                                    LM__GEMM_SKC * LM__GEMM_RUP(LM__GEMM_STN, LM__GEMM_SNR))
#define LM__GEMM_BUF_A LM__GEMM_MAX(LM__GEMM_MR * LM__GEMM_KC, LM__GEMM_SMR * LM__GEMM_SKC)
#define LM__GEMM_BUF_C LM__GEMM_MAX(LM__GEMM_MR * LM__GEMM_NR, LM__GEMM_SMR * LM__GEMM_SNR)
#else
#define LM__GEMM_BUF_B (LM__GEMM_SKC * LM__GEMM_RUP(LM__GEMM_STN, LM__GEMM_SNR))
#define LM__GEMM_BUF_A (LM__GEMM_SMR * LM__GEMM_SKC)
#define LM__GEMM_BUF_C (LM__GEMM_SMR * LM__GEMM_SNR)
#endif

/* Threads: a product big enough to share is cut into at least LM__GEMM_MIN_TILES tiles,
   as long as each keeps LM__GEMM_TILE_MIN multiply-adds (smaller tiles re-pack too much
   for what they compute); below LM__GEMM_PAR_MIN multiply-adds (~25 us of work) waking
   the pool costs more than it saves. 4 tiles is a trade: every extra cut re-packs A or B
   once more (512^3 on one thread: 172 GFLOP/s with 4 tiles, 157 with 8), while more
   tiles let more than 4 threads share mid-sized products; big products get more tiles
   from the cache limits anyway. */
#define LM__GEMM_MIN_TILES 4
#define LM__GEMM_TILE_MIN (4 << 20)
#define LM__GEMM_PAR_MIN (4 << 20)

/* The few-rows path (M <= LM__GEMM_SMALL_M, see below): tasks of LM__GEMM_SW columns,
   K in chunks of LM__GEMM_SK. */
#define LM__GEMM_SMALL_M 4
#define LM__GEMM_SW 256
#define LM__GEMM_SK 256

/* ---------------------------------------------------------------------------------------
   Portable micro-kernel, 4 x 4. Plain C with the accumulators in named locals, so that
   any compiler (tcc included) keeps them in registers if it can.
   --------------------------------------------------------------------------------------- */
static void lm__gemm_store_row4(float *c, float alpha, float beta,
                                float x0, float x1, float x2, float x3) {
    if (beta == 0.0f) {
        c[0] = alpha * x0; c[1] = alpha * x1; c[2] = alpha * x2; c[3] = alpha * x3;
    } else {
        c[0] = alpha * x0 + beta * c[0]; c[1] = alpha * x1 + beta * c[1];
        c[2] = alpha * x2 + beta * c[2]; c[3] = alpha * x3 + beta * c[3];
    }
}

static void lm__gemm_kernel_scalar(int kc, const float *a, const float *b, float *c,
                                   size_t ldc, float alpha, float beta) {
    float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
    float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
    int k;
    for (k = 0; k < kc; k++, a += 4, b += 4) {
        float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    }
    lm__gemm_store_row4(c, alpha, beta, c00, c01, c02, c03);
    lm__gemm_store_row4(c + ldc, alpha, beta, c10, c11, c12, c13);
    lm__gemm_store_row4(c + 2 * ldc, alpha, beta, c20, c21, c22, c23);
    lm__gemm_store_row4(c + 3 * ldc, alpha, beta, c30, c31, c32, c33);
}

/* ---------------------------------------------------------------------------------------
   AVX-512 micro-kernel, 12 x 32: 24 zmm accumulators, 2 zmm of B per k, and the 12 values
   of A broadcast straight from memory into the FMAs ({1to16} operands). 24 FMAs per k keep
   both FMA ports busy for 12 cycles against 14 loads, well within the load ports.
   --------------------------------------------------------------------------------------- */
#if defined(LM_AVX512)
#define LM__Z_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LM__Z_DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps();
#define LM__Z_PREF(i) _mm_prefetch((const char *)(c + (size_t)(i) * ldc), _MM_HINT_T0); \
    _mm_prefetch((const char *)(c + (size_t)(i) * ldc + 16), _MM_HINT_T0); \
    _mm_prefetch((const char *)(c + (size_t)(i) * ldc + 31), _MM_HINT_T0);
#define LM__Z_FMA(i) { __m512 ai = _mm512_set1_ps(a[i]); \
    c##i##a = _mm512_fmadd_ps(ai, b0, c##i##a); c##i##b = _mm512_fmadd_ps(ai, b1, c##i##b); }
#define LM__Z_STORE0(i) { float *p = c + (size_t)(i) * ldc; \
    _mm512_storeu_ps(p, _mm512_mul_ps(va, c##i##a)); \
    _mm512_storeu_ps(p + 16, _mm512_mul_ps(va, c##i##b)); }
#define LM__Z_STORE(i) { float *p = c + (size_t)(i) * ldc; \
    _mm512_storeu_ps(p, _mm512_fmadd_ps(va, c##i##a, _mm512_mul_ps(vb, _mm512_loadu_ps(p)))); \
    _mm512_storeu_ps(p + 16, \
                     _mm512_fmadd_ps(va, c##i##b, _mm512_mul_ps(vb, _mm512_loadu_ps(p + 16)))); }

static void lm__gemm_kernel_avx512(int kc, const float *a, const float *b, float *c,
                                   size_t ldc, float alpha, float beta) {
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int k;
    LM__Z_ROWS(LM__Z_DECL)
    LM__Z_ROWS(LM__Z_PREF)    /* C's lines arrive while the k loop runs */
    for (k = 0; k < kc; k++, a += 12, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        LM__Z_ROWS(LM__Z_FMA)
    }
    if (beta == 0.0f) { LM__Z_ROWS(LM__Z_STORE0) }
    else { LM__Z_ROWS(LM__Z_STORE) }
}
/* A in place: rows 4q + r at a_q + r lda (q < 3, r < 4), so three pointers and three
   strides address all twelve, each pointer one float further per k. */
#define LM__ZR_FMA(i, p, o) { __m512 ai = _mm512_set1_ps(p[o]); \
    c##i##a = _mm512_fmadd_ps(ai, b0, c##i##a); c##i##b = _mm512_fmadd_ps(ai, b1, c##i##b); }
static void lm__gemm_rows_avx512(int kc, const float *a, size_t lda, const float *b, float *c,
                                 size_t ldc, float alpha, float beta) {
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const float *a0 = a, *a4 = a + 4 * lda, *a8 = a + 8 * lda;
    size_t l2 = 2 * lda, l3 = 3 * lda;
    int k;
    LM__Z_ROWS(LM__Z_DECL)
    LM__Z_ROWS(LM__Z_PREF)
    for (k = 0; k < kc; k++, a0++, a4++, a8++, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        LM__ZR_FMA(0, a0, 0) LM__ZR_FMA(1, a0, lda) LM__ZR_FMA(2, a0, l2) LM__ZR_FMA(3, a0, l3)
        LM__ZR_FMA(4, a4, 0) LM__ZR_FMA(5, a4, lda) LM__ZR_FMA(6, a4, l2) LM__ZR_FMA(7, a4, l3)
        LM__ZR_FMA(8, a8, 0) LM__ZR_FMA(9, a8, lda) LM__ZR_FMA(10, a8, l2) LM__ZR_FMA(11, a8, l3)
    }
    if (beta == 0.0f) { LM__Z_ROWS(LM__Z_STORE0) }
    else { LM__Z_ROWS(LM__Z_STORE) }
}
#define LM__GEMM_KERNEL lm__gemm_kernel_avx512
#define LM__GEMM_ROWS lm__gemm_rows_avx512

/* ---------------------------------------------------------------------------------------
   AVX2 + FMA micro-kernel, 6 x 16: 12 ymm accumulators, 2 ymm of B, 1 broadcast of A;
   15 of the 16 registers.
   --------------------------------------------------------------------------------------- */
#elif defined(LM_AVX2)
#define LM__Y_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LM__Y_DECL(i) __m256 c##i##a = _mm256_setzero_ps(), c##i##b = _mm256_setzero_ps();
#define LM__Y_PREF(i) _mm_prefetch((const char *)(c + (size_t)(i) * ldc), _MM_HINT_T0); \
    _mm_prefetch((const char *)(c + (size_t)(i) * ldc + 15), _MM_HINT_T0);
#define LM__Y_FMA(i) { __m256 ai = _mm256_broadcast_ss(a + i); \
    c##i##a = _mm256_fmadd_ps(ai, b0, c##i##a); c##i##b = _mm256_fmadd_ps(ai, b1, c##i##b); }
#define LM__Y_STORE0(i) { float *p = c + (size_t)(i) * ldc; \
    _mm256_storeu_ps(p, _mm256_mul_ps(va, c##i##a)); \
    _mm256_storeu_ps(p + 8, _mm256_mul_ps(va, c##i##b)); }
#define LM__Y_STORE(i) { float *p = c + (size_t)(i) * ldc; \
    _mm256_storeu_ps(p, _mm256_fmadd_ps(va, c##i##a, _mm256_mul_ps(vb, _mm256_loadu_ps(p)))); \
    _mm256_storeu_ps(p + 8, \
                     _mm256_fmadd_ps(va, c##i##b, _mm256_mul_ps(vb, _mm256_loadu_ps(p + 8)))); }

static void lm__gemm_kernel_avx2(int kc, const float *a, const float *b, float *c,
                                 size_t ldc, float alpha, float beta) {
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    int k;
    LM__Y_ROWS(LM__Y_DECL)
    LM__Y_ROWS(LM__Y_PREF)    /* C's lines arrive while the k loop runs */
    for (k = 0; k < kc; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        LM__Y_ROWS(LM__Y_FMA)
    }
    if (beta == 0.0f) { LM__Y_ROWS(LM__Y_STORE0) }
    else { LM__Y_ROWS(LM__Y_STORE) }
}
/* A in place: rows 3q + r at a_q + r lda (q < 2, r < 3). */
#define LM__YR_FMA(i, p, o) { __m256 ai = _mm256_broadcast_ss(p + (o)); \
    c##i##a = _mm256_fmadd_ps(ai, b0, c##i##a); c##i##b = _mm256_fmadd_ps(ai, b1, c##i##b); }
static void lm__gemm_rows_avx2(int kc, const float *a, size_t lda, const float *b, float *c,
                               size_t ldc, float alpha, float beta) {
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const float *a0 = a, *a3 = a + 3 * lda;
    size_t l2 = 2 * lda;
    int k;
    LM__Y_ROWS(LM__Y_DECL)
    LM__Y_ROWS(LM__Y_PREF)
    for (k = 0; k < kc; k++, a0++, a3++, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        LM__YR_FMA(0, a0, 0) LM__YR_FMA(1, a0, lda) LM__YR_FMA(2, a0, l2)
        LM__YR_FMA(3, a3, 0) LM__YR_FMA(4, a3, lda) LM__YR_FMA(5, a3, l2)
    }
    if (beta == 0.0f) { LM__Y_ROWS(LM__Y_STORE0) }
    else { LM__Y_ROWS(LM__Y_STORE) }
}
#define LM__GEMM_KERNEL lm__gemm_kernel_avx2
#define LM__GEMM_ROWS lm__gemm_rows_avx2

/* ---------------------------------------------------------------------------------------
   NEON micro-kernel for aarch64, 8 x 12: 24 q accumulators; per k two q of A (8 rows) and
   three q of B, each A value used in place as a lane (vfmaq_laneq_f32): 29 of 32 registers.
   --------------------------------------------------------------------------------------- */
#elif defined(LM_NEON) && defined(__aarch64__)
#define LM__N_ROWS(X) X(0, a0, 0) X(1, a0, 1) X(2, a0, 2) X(3, a0, 3) \
                      X(4, a1, 0) X(5, a1, 1) X(6, a1, 2) X(7, a1, 3)
#define LM__N_DECL(i, av, l) float32x4_t c##i##a = vdupq_n_f32(0.0f), \
    c##i##b = vdupq_n_f32(0.0f), c##i##c = vdupq_n_f32(0.0f);
#define LM__N_FMA(i, av, l) c##i##a = vfmaq_laneq_f32(c##i##a, b0, av, l); \
    c##i##b = vfmaq_laneq_f32(c##i##b, b1, av, l); c##i##c = vfmaq_laneq_f32(c##i##c, b2, av, l);
#define LM__N_STORE0(i, av, l) { float *p = c + (size_t)(i) * ldc; \
    vst1q_f32(p, vmulq_f32(c##i##a, va)); vst1q_f32(p + 4, vmulq_f32(c##i##b, va)); \
    vst1q_f32(p + 8, vmulq_f32(c##i##c, va)); }
#define LM__N_STORE(i, av, l) { float *p = c + (size_t)(i) * ldc; \
    vst1q_f32(p, vfmaq_f32(vmulq_f32(vld1q_f32(p), vb), c##i##a, va)); \
    vst1q_f32(p + 4, vfmaq_f32(vmulq_f32(vld1q_f32(p + 4), vb), c##i##b, va)); \
    vst1q_f32(p + 8, vfmaq_f32(vmulq_f32(vld1q_f32(p + 8), vb), c##i##c, va)); }

static void lm__gemm_kernel_neon(int kc, const float *a, const float *b, float *c,
                                 size_t ldc, float alpha, float beta) {
    float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    int k;
    LM__N_ROWS(LM__N_DECL)
    for (k = 0; k < kc; k++, a += 8, b += 12) {
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        LM__N_ROWS(LM__N_FMA)
    }
    if (beta == 0.0f) { LM__N_ROWS(LM__N_STORE0) }
    else { LM__N_ROWS(LM__N_STORE) }
}
#define LM__GEMM_KERNEL lm__gemm_kernel_neon

/* ---------------------------------------------------------------------------------------
   NEON micro-kernel for armv7 (NEON-VFPv4), 4 x 8: 8 q accumulators out of 16 registers.
   armv7 has no by-lane fused multiply-add, so each A value is duplicated (register to
   register, vdup.32 q, d[x]) into a q first.
   --------------------------------------------------------------------------------------- */
#elif defined(LM_NEON)
#define LM__V_ROWS(X) X(0, alo, 0) X(1, alo, 1) X(2, ahi, 0) X(3, ahi, 1)
#define LM__V_DECL(i, h, l) float32x4_t c##i##a = vdupq_n_f32(0.0f), c##i##b = vdupq_n_f32(0.0f);
#define LM__V_FMA(i, h, l) { float32x4_t ai = vdupq_lane_f32(h, l); \
    c##i##a = vfmaq_f32(c##i##a, b0, ai); c##i##b = vfmaq_f32(c##i##b, b1, ai); }
#define LM__V_STORE0(i, h, l) { float *p = c + (size_t)(i) * ldc; \
    vst1q_f32(p, vmulq_f32(c##i##a, va)); vst1q_f32(p + 4, vmulq_f32(c##i##b, va)); }
#define LM__V_STORE(i, h, l) { float *p = c + (size_t)(i) * ldc; \
    vst1q_f32(p, vfmaq_f32(vmulq_f32(vld1q_f32(p), vb), c##i##a, va)); \
    vst1q_f32(p + 4, vfmaq_f32(vmulq_f32(vld1q_f32(p + 4), vb), c##i##b, va)); }

static void lm__gemm_kernel_neon(int kc, const float *a, const float *b, float *c,
                                 size_t ldc, float alpha, float beta) {
    float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    int k;
    LM__V_ROWS(LM__V_DECL)
    for (k = 0; k < kc; k++, a += 4, b += 8) {
        float32x4_t av = vld1q_f32(a), b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        float32x2_t alo = vget_low_f32(av), ahi = vget_high_f32(av);
        LM__V_ROWS(LM__V_FMA)
    }
    if (beta == 0.0f) { LM__V_ROWS(LM__V_STORE0) }
    else { LM__V_ROWS(LM__V_STORE) }
}
#define LM__GEMM_KERNEL lm__gemm_kernel_neon
#endif

/* ---------------------------------------------------------------------------------------
   Packing. A micro-panel of op(A) is [k][MR]: for each k, the MR values of column k of the
   panel's rows. A micro-panel of op(B) is [k][NR]: for each k, NR values of row k. Rows or
   columns past the matrix edge are zero, so they add nothing to the sums.

   Both panels are built by one of two moves, dst[k * w + r] for k < kc and r < n:
     copy:      from src[k * ld + r]  - the stored matrix already runs along the panel
                                        (A transposed, B not);
     transpose: from src[r * ld + k]  - it runs along k (A not transposed, B transposed).
   The transpose is the expensive one; it goes 4 source rows at a time through 4 x 4
   register transposes, 16 (AVX-512), 8 (AVX2) or 4 (NEON) values of k per step.
   Packing reads A and B from L2, L3 or memory, and the rows it reads are far apart, so
   software prefetches run a few rows (copy) or lines (transpose) ahead of it.
   --------------------------------------------------------------------------------------- */
/* A software prefetch, where the compiler has one; nothing elsewhere. */
#if defined(LM_AVX2)
#define LM__PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#elif defined(__GNUC__)
#define LM__PREFETCH(p) __builtin_prefetch(p)
#else
#define LM__PREFETCH(p) ((void)(p))
#endif
#define LM__GEMM_PFROWS 8        /* copy: rows ahead                                */
#define LM__GEMM_PFK 64          /* transpose: floats ahead along each row          */

static void lm__gemm_pack_copy(float *dst, int w, const float *src, size_t ld, int n, int kc) {
    int k, r;
    for (k = 0; k < kc; k++) {
        const float *s = src + (size_t)k * ld;
        float *d = dst + (size_t)k * w;
        /* the rows are far apart, which the hardware prefetchers do not follow: ask for
           the row LM__GEMM_PFROWS ahead (its first, middle and last line) */
        if (k + LM__GEMM_PFROWS < kc) {
            const float *f = s + LM__GEMM_PFROWS * ld;
            LM__PREFETCH(f);
            LM__PREFETCH(f + n / 2);
            LM__PREFETCH(f + n - 1);
        }
        r = 0;
        /* rows of a panel are short (6 to 32 floats): inline vector moves beat memcpy */
#if defined(LM_AVX2)
        for (; r + 8 <= n; r += 8) _mm256_storeu_ps(d + r, _mm256_loadu_ps(s + r));
        for (; r + 4 <= n; r += 4) _mm_storeu_ps(d + r, _mm_loadu_ps(s + r));
#elif defined(LM_NEON)
        for (; r + 4 <= n; r += 4) vst1q_f32(d + r, vld1q_f32(s + r));
#endif
        for (; r < n; r++) d[r] = s[r];
    }
}

/* The transpose move for rows [0, n) and k < kc (kc at most a chunk, see below):
   dst[k * w + r] = src[r * ld + k]. Rows go four at a time; 1 to 3 rows left over (of
   n >= 4) are done as one more group of 4 ending at the last row, which rewrites a few
   values with themselves. pf: prefetch the rows LM__GEMM_PFK floats ahead. */
static void lm__gemm_pack_tchunk(float *dst, int w, const float *src, size_t ld, int n,
                                 int kc, int pf) {
    int r = 0, k;
#if defined(LM_AVX2)
    if (n % 4 == 2) {
        /* two rows left after the groups of 4 (AVX2's 6-row panels): interleave them, 8
           values of k a step, and store the pairs */
        const float *s0 = src + (size_t)(n - 2) * ld, *s1 = s0 + ld;
        float *dg = dst + (n - 2);
        for (k = 0; k + 8 <= kc; k += 8) {
            __m256 a = _mm256_loadu_ps(s0 + k), b = _mm256_loadu_ps(s1 + k);
            __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
            __m128 l0 = _mm256_castps256_ps128(lo), l1 = _mm256_extractf128_ps(lo, 1);
            __m128 h0 = _mm256_castps256_ps128(hi), h1 = _mm256_extractf128_ps(hi, 1);
            float *d = dg + (size_t)k * w;
            _mm_storel_pi((__m64 *)d, l0); _mm_storeh_pi((__m64 *)(d + w), l0);
            _mm_storel_pi((__m64 *)(d + 2 * w), h0); _mm_storeh_pi((__m64 *)(d + 3 * w), h0);
            _mm_storel_pi((__m64 *)(d + 4 * w), l1); _mm_storeh_pi((__m64 *)(d + 5 * w), l1);
            _mm_storel_pi((__m64 *)(d + 6 * w), h1); _mm_storeh_pi((__m64 *)(d + 7 * w), h1);
        }
        for (; k < kc; k++) { dg[(size_t)k * w] = s0[k]; dg[(size_t)k * w + 1] = s1[k]; }
        n -= 2;                                      /* the groups of 4 below do the rest */
    }
#endif
    while (r + 4 <= n || (r < n && n >= 4)) {
        int g = r + 4 <= n ? r : n - 4;                 /* first row of this group */
        const float *s0 = src + (size_t)g * ld, *s1 = s0 + ld, *s2 = s1 + ld, *s3 = s2 + ld;
        float *dg = dst + g;
        if (pf) {
            /* four rows read side by side: help the prefetchers along each of them */
            LM__PREFETCH(s0 + LM__GEMM_PFK); LM__PREFETCH(s1 + LM__GEMM_PFK);
            LM__PREFETCH(s2 + LM__GEMM_PFK); LM__PREFETCH(s3 + LM__GEMM_PFK);
        }
        k = 0;
#if defined(LM_AVX512)
        /* The unmasked forms of these intrinsics read an "undefined" register that
           g++ warns about; masked forms with an all-ones mask are the same code. */
#define LM__ZM 0xFFFF
        for (; k + 16 <= kc; k += 16) {
            /* in each 128-bit lane l: t = pairs of rows, u_j = the 4 rows at k = 4l + j */
            __m512 r0 = _mm512_loadu_ps(s0 + k), r1 = _mm512_loadu_ps(s1 + k);
            __m512 r2 = _mm512_loadu_ps(s2 + k), r3 = _mm512_loadu_ps(s3 + k);
            __m512 t0 = _mm512_mask_unpacklo_ps(r0, LM__ZM, r0, r1);
            __m512 t1 = _mm512_mask_unpackhi_ps(r0, LM__ZM, r0, r1);
            __m512 t2 = _mm512_mask_unpacklo_ps(r2, LM__ZM, r2, r3);
            __m512 t3 = _mm512_mask_unpackhi_ps(r2, LM__ZM, r2, r3);
            __m512 u0 = _mm512_mask_shuffle_ps(t0, LM__ZM, t0, t2, 0x44);
            __m512 u1 = _mm512_mask_shuffle_ps(t0, LM__ZM, t0, t2, 0xEE);
            __m512 u2 = _mm512_mask_shuffle_ps(t1, LM__ZM, t1, t3, 0x44);
            __m512 u3 = _mm512_mask_shuffle_ps(t1, LM__ZM, t1, t3, 0xEE);
            float *d = dg + (size_t)k * w;
            __m128 z = _mm_setzero_ps();
#define LM__ZLANE(l) \
            _mm_storeu_ps(d + (4 * l) * w, _mm512_mask_extractf32x4_ps(z, 0xF, u0, l)); \
            _mm_storeu_ps(d + (4 * l + 1) * w, _mm512_mask_extractf32x4_ps(z, 0xF, u1, l)); \
            _mm_storeu_ps(d + (4 * l + 2) * w, _mm512_mask_extractf32x4_ps(z, 0xF, u2, l)); \
            _mm_storeu_ps(d + (4 * l + 3) * w, _mm512_mask_extractf32x4_ps(z, 0xF, u3, l));
            LM__ZLANE(0) LM__ZLANE(1) LM__ZLANE(2) LM__ZLANE(3)
#undef LM__ZLANE
        }
#undef LM__ZM
#endif
#if defined(LM_AVX2)
        for (; k + 8 <= kc; k += 8) {
            __m256 r0 = _mm256_loadu_ps(s0 + k), r1 = _mm256_loadu_ps(s1 + k);
            __m256 r2 = _mm256_loadu_ps(s2 + k), r3 = _mm256_loadu_ps(s3 + k);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            float *d = dg + (size_t)k * w;
            _mm_storeu_ps(d, _mm256_castps256_ps128(u0));
            _mm_storeu_ps(d + w, _mm256_castps256_ps128(u1));
            _mm_storeu_ps(d + 2 * w, _mm256_castps256_ps128(u2));
            _mm_storeu_ps(d + 3 * w, _mm256_castps256_ps128(u3));
            _mm_storeu_ps(d + 4 * w, _mm256_extractf128_ps(u0, 1));
            _mm_storeu_ps(d + 5 * w, _mm256_extractf128_ps(u1, 1));
            _mm_storeu_ps(d + 6 * w, _mm256_extractf128_ps(u2, 1));
            _mm_storeu_ps(d + 7 * w, _mm256_extractf128_ps(u3, 1));
        }
#endif
#if defined(LM_NEON)
        for (; k + 4 <= kc; k += 4) {
            /* zip rows 0 with 2 and 1 with 3, then zip those: column j of the block */
            float32x4x2_t p = vzipq_f32(vld1q_f32(s0 + k), vld1q_f32(s2 + k));
            float32x4x2_t q = vzipq_f32(vld1q_f32(s1 + k), vld1q_f32(s3 + k));
            float32x4x2_t lo = vzipq_f32(p.val[0], q.val[0]);
            float32x4x2_t hi = vzipq_f32(p.val[1], q.val[1]);
            float *d = dg + (size_t)k * w;
            vst1q_f32(d, lo.val[0]);
            vst1q_f32(d + w, lo.val[1]);
            vst1q_f32(d + 2 * w, hi.val[0]);
            vst1q_f32(d + 3 * w, hi.val[1]);
        }
#endif
        for (; k < kc; k++) {
            float *d = dg + (size_t)k * w;
            d[0] = s0[k]; d[1] = s1[k]; d[2] = s2[k]; d[3] = s3[k];
        }
        r = g + 4;
    }
    for (; r < n; r++)                                   /* n < 4: one row at a time */
        for (k = 0; k < kc; k++) dst[(size_t)k * w + r] = src[(size_t)r * ld + k];
}

#define LM__GEMM_TCHUNK 16
static void lm__gemm_pack_transpose(float *dst, int w, const float *src, size_t ld, int n,
                                    int kc) {
    /* k in chunks of 16, so each chunk completes 16 panel rows (whole cache lines when
       w = 32) before moving on: a panel too big for L1 is then written to it only once */
    int k0;
    for (k0 = 0; k0 < kc; k0 += LM__GEMM_TCHUNK)
        lm__gemm_pack_tchunk(dst + (size_t)k0 * w, w, src + k0, ld, n,
                             kc - k0 < LM__GEMM_TCHUNK ? kc - k0 : LM__GEMM_TCHUNK,
                             k0 + LM__GEMM_PFK < kc);
}

/* Zero columns [n, w) of a kc x w panel. */
static void lm__gemm_pack_pad(float *dst, int w, int n, int kc) {
    int k, r;
    if (n < w)
        for (k = 0; k < kc; k++)
            for (r = n; r < w; r++) dst[(size_t)k * w + r] = 0.0f;
}

/* The A micro-panel: op(A)[i0 .. i0+m)[p0 .. p0+kc) as [k][mr], m <= mr. */
static void lm__gemm_pack_a(float *dst, const float *A, size_t lda, int ta, int i0, int m,
                            int p0, int kc, int mr) {
    if (!ta) lm__gemm_pack_transpose(dst, mr, A + (size_t)i0 * lda + p0, lda, m, kc);
    else lm__gemm_pack_copy(dst, mr, A + (size_t)p0 * lda + i0, lda, m, kc);
    lm__gemm_pack_pad(dst, mr, m, kc);
}

/* The B slice: op(B)[p0 .. p0+kc)[j0 .. j0+n) as ceil(n / nr) micro-panels of [k][nr],
   one after the other (panel q, columns j0 + q*nr ..., at dst + q * kc * nr). */
static void lm__gemm_pack_b(float *dst, const float *B, size_t ldb, int tb, int p0, int kc,
                            int j0, int n, int nr) {
    int q, k;
    if (!tb) {
        /* B runs along the panels: walk it a row at a time, the whole slice's width of
           it (one run of memory, which the prefetchers follow), handing each panel its
           nr values; the row LM__GEMM_PFROWS ahead is asked for line by line */
        int np = (n + nr - 1) / nr;
        for (k = 0; k < kc; k++) {
            const float *s = B + (size_t)(p0 + k) * ldb + j0;
            if (k + LM__GEMM_PFROWS < kc) {
                int x;
                for (x = 0; x < n; x += 16) LM__PREFETCH(s + LM__GEMM_PFROWS * ldb + x);
            }
            for (q = 0; q < np; q++) {
                int w = n - q * nr < nr ? n - q * nr : nr, r = 0;
                float *d = dst + (size_t)q * kc * nr + (size_t)k * nr;
                const float *sq = s + q * nr;
#if defined(LM_AVX2)
                for (; r + 8 <= w; r += 8) _mm256_storeu_ps(d + r, _mm256_loadu_ps(sq + r));
#elif defined(LM_NEON)
                for (; r + 4 <= w; r += 4) vst1q_f32(d + r, vld1q_f32(sq + r));
#endif
                for (; r < w; r++) d[r] = sq[r];
                for (; r < nr; r++) d[r] = 0.0f;
            }
        }
        return;
    }
    for (q = 0; q * nr < n; q++) {
        int w = n - q * nr < nr ? n - q * nr : nr;      /* valid columns in this panel */
        int jq = j0 + q * nr;
        float *d = dst + (size_t)q * kc * nr;
        if (!tb) lm__gemm_pack_copy(d, nr, B + (size_t)p0 * ldb + jq, ldb, w, kc);
        else lm__gemm_pack_transpose(d, nr, B + (size_t)jq * ldb + p0, ldb, w, kc);
        lm__gemm_pack_pad(d, nr, w, kc);
    }
}

/* ---------------------------------------------------------------------------------------
   Panel memory. A task packs its panels into the scratch block of the thread that runs it,
   LM__GEMM_SCRATCH floats: room for the B slice, the A micro-panel and an edge tile, each
   aligned to 64 bytes (or for the few-rows path's sums). With threads, each thread's block
   hangs on a pthread key whose destructor frees it when the thread ends: a pool worker is
   given its block when it starts (section 9); any other thread gets one on its first
   product (lm__panels_reserve, where running out of memory is reported) and keeps it.
   The main thread's block lives until the process exits. Without threads the block is
   one static array, so a bare-metal build needs no malloc for it.
   --------------------------------------------------------------------------------------- */
#define LM__GEMM_SCRATCH LM__GEMM_MAX(LM__GEMM_BUF_B + LM__GEMM_BUF_A + LM__GEMM_BUF_C + 48, \
                                      2 * LM__GEMM_SMALL_M * LM__GEMM_SW + 16)
#if !defined(LM_NO_THREADS)
static pthread_key_t lm__panel_key;
static pthread_once_t lm__panel_once = PTHREAD_ONCE_INIT;
static int lm__panel_key_ok = 0;
static void lm__panels_free(void *block) { LM_FREE(block); }
static void lm__panel_key_init(void) {
    lm__panel_key_ok = pthread_key_create(&lm__panel_key, lm__panels_free) == 0;
}
static void *lm__panels_new(void) {
    pthread_once(&lm__panel_once, lm__panel_key_init);
    return lm__panel_key_ok ? LM_MALLOC(LM__GEMM_SCRATCH * sizeof(float)) : NULL;
}
static int lm__panels_set(void *block) { return pthread_setspecific(lm__panel_key, block) == 0; }
/* This thread's block; NULL if it has none (lm__panels_reserve first). */
static float *lm__panels(void) {
    pthread_once(&lm__panel_once, lm__panel_key_init);
    return lm__panel_key_ok ? (float *)pthread_getspecific(lm__panel_key) : NULL;
}
/* This thread's block, allocated on its first call; NULL (with lm_error()) when out of
   memory. */
static float *lm__panels_reserve(void) {
    float *b = lm__panels();
    if (b || !lm__panel_key_ok) {
        if (!b) lm__fail(LM_ERR_MEM, "gemm: no thread-specific key for the panel memory");
        return b;
    }
    b = (float *)lm__panels_new();
    if (b && !lm__panels_set(b)) { LM_FREE(b); b = NULL; }
    if (!b) lm__fail(LM_ERR_MEM, "gemm: cannot allocate %zu bytes of panel memory",
                     (size_t)LM__GEMM_SCRATCH * sizeof(float));
    return b;
}
LMDEF void lm_thread_release(void) {
    float *b = lm__panels();
    if (b && lm__panels_set(NULL)) LM_FREE(b);
}
#else
static float lm__panel_block[LM__GEMM_SCRATCH];
static float *lm__panels(void) { return lm__panel_block; }
static float *lm__panels_reserve(void) { return lm__panel_block; }
LMDEF void lm_thread_release(void) {}
#endif

/* ---------------------------------------------------------------------------------------
   The tile task. A job describes the whole product; task t computes tile t of C:
   rows [ti*tm, ...) and columns [tj*tn, ...), through all of K.
   --------------------------------------------------------------------------------------- */
/* lm__gemm_extra (a bias, an epilogue) is declared with the forward declarations of
   section 1. */
typedef struct lm__gemm_job {
    const lm__gemm_arch *arch;
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    size_t lda, ldb, ldc;
    int tm, tn, ntn;         /* tile height and width, tiles per row of tiles            */
    int kc;                  /* K block, chosen from K alone                             */
    const lm__gemm_extra *ex;                /* bias and epilogue; NULL: none            */
} lm__gemm_job;

/* Round p up to 64 bytes: the packed panels start on a cache line. */
static float *lm__gemm_align(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

static void lm__gemm_task(void *ctx, int t) {
    const lm__gemm_job *jb = (const lm__gemm_job *)ctx;
    const lm__gemm_arch *ar = jb->arch;
    const int mr = ar->mr, nr = ar->nr;
    /* the thread's panel memory: the B slice, one A micro-panel and one edge tile */
    float *bp = lm__gemm_align(lm__panels()), *ap = lm__gemm_align(bp + LM__GEMM_BUF_B);
    float *cbuf = ap + LM__GEMM_BUF_A;
    int i0 = (t / jb->ntn) * jb->tm, j0 = (t % jb->ntn) * jb->tn;
    int m = jb->M - i0 < jb->tm ? jb->M - i0 : jb->tm;
    int n = jb->N - j0 < jb->tn ? jb->N - j0 : jb->tn;
    int p0;
    const float *bias = jb->ex ? jb->ex->bias : NULL;
    lm__gemm_post_fn post = jb->ex ? jb->ex->post : NULL;
    for (p0 = 0; p0 < jb->K; p0 += jb->kc) {
        int kc = jb->K - p0 < jb->kc ? jb->K - p0 : jb->kc;
        /* the first K block applies beta (or starts from the bias); later ones add onto
           what is there */
        float beta = p0 == 0 && !bias ? jb->beta : 1.0f;
        int i, j, last = p0 + kc >= jb->K;
        lm__gemm_pack_b(bp, jb->B, jb->ldb, jb->tb, p0, kc, j0, n, nr);
        for (i = 0; i < m; i += mr) {
            int mi = m - i < mr ? m - i : mr;
            /* a whole micro-row of row-major A is read in place where the ISA has a kernel
               for that; otherwise (and at the edge) it is packed first */
            const float *ain = ar->rows && !jb->ta && mi == mr ? jb->A + (size_t)(i0 + i) * jb->lda + p0 : NULL;
            if (!ain) lm__gemm_pack_a(ap, jb->A, jb->lda, jb->ta, i0 + i, mi, p0, kc, mr);
            for (j = 0; j < n; j += nr) {
                int nj = n - j < nr ? n - j : nr;
                const float *bj = bp + (size_t)(j / nr) * kc * nr;
                float *c = jb->C + (size_t)(i0 + i) * jb->ldc + (j0 + j);
                if (bias && p0 == 0) {
                    int r;
                    for (r = 0; r < mi; r++)
                        memcpy(c + (size_t)r * jb->ldc, bias + j0 + j, (size_t)nj * sizeof(float));
                }
                if (mi == mr && nj == nr) {
                    if (ain) ar->rows(kc, ain, jb->lda, bj, c, jb->ldc, jb->alpha, beta);
                    else ar->kernel(kc, ap, bj, c, jb->ldc, jb->alpha, beta);
                } else {
                    /* edge: full tile into cbuf, then the valid mi x nj part into C */
                    int r, s;
                    if (ain) ar->rows(kc, ain, jb->lda, bj, cbuf, (size_t)nr, jb->alpha, 0.0f);
                    else ar->kernel(kc, ap, bj, cbuf, (size_t)nr, jb->alpha, 0.0f);
                    for (r = 0; r < mi; r++) {
                        float *cr = c + (size_t)r * jb->ldc;
                        const float *tr = cbuf + r * nr;
                        if (beta == 0.0f) for (s = 0; s < nj; s++) cr[s] = tr[s];
                        else for (s = 0; s < nj; s++) cr[s] = tr[s] + beta * cr[s];
                    }
                }
                if (post && last) post(jb->ex->post_ctx, c, jb->ldc, i0 + i, j0 + j, mi, nj);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
   Few rows (M <= 4): generation feeds one token at a time, so its products are M = 1.
   There the packed path would compute whole MR-row micro-tiles that are mostly zero rows,
   and copy all of B to use each value once. Instead, B is read once where it lies and
   each value read serves all M rows: for B stored K x N, C's rows gather scaled rows of B
   (axpy); for B stored N x K, each element of C is a dot product of two contiguous runs.
   A task is a block of LM__GEMM_SW columns; K goes in chunks of LM__GEMM_SK (the M rows
   of op(A) for a chunk are gathered first). Each element's sum runs over k in the same
   order whatever the thread count.
   --------------------------------------------------------------------------------------- */
/* y[r * ldy + j] += a[r] * x[j] for r < m, j < n; vector code only when simd. */
static void lm__gemm_axpy_rows(float *y, int ldy, const float *a, int m, const float *x,
                               int n, int simd) {
    int j = 0, r;
#if defined(LM_AVX2)
    for (; simd && j + 8 <= n; j += 8) {
        __m256 xv = _mm256_loadu_ps(x + j);
        for (r = 0; r < m; r++) {
            float *yr = y + r * ldy + j;
            _mm256_storeu_ps(yr, _mm256_fmadd_ps(_mm256_set1_ps(a[r]), xv, _mm256_loadu_ps(yr)));
        }
    }
#elif defined(LM_NEON)
    for (; simd && j + 4 <= n; j += 4) {
        float32x4_t xv = vld1q_f32(x + j);
        for (r = 0; r < m; r++) {
            float *yr = y + r * ldy + j;
            vst1q_f32(yr, vfmaq_f32(vld1q_f32(yr), xv, vdupq_n_f32(a[r])));
        }
    }
#else
    (void)simd;
#endif
    for (; j < n; j++)
        for (r = 0; r < m; r++) y[r * ldy + j] += a[r] * x[j];
}

/* sum x[k] * y[k] over k < n, in a fixed order: lanes of a vector, then lanes in turn
   (vector code only when simd) */
static float lm__gemm_dot(const float *x, const float *y, int n, int simd) {
    int k = 0;
    float s = 0.0f;
#if defined(LM_AVX2)
    if (simd && n >= 16) {
        float lane[8];
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (; k + 16 <= n; k += 16) {
            v0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k), v0);
            v1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), _mm256_loadu_ps(y + k + 8), v1);
        }
        _mm256_storeu_ps(lane, _mm256_add_ps(v0, v1));
        s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
            ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    }
#elif defined(LM_NEON)
    if (simd && n >= 8) {
        float lane[4];
        float32x4_t v0 = vdupq_n_f32(0.0f), v1 = vdupq_n_f32(0.0f);
        for (; k + 8 <= n; k += 8) {
            v0 = vfmaq_f32(v0, vld1q_f32(x + k), vld1q_f32(y + k));
            v1 = vfmaq_f32(v1, vld1q_f32(x + k + 4), vld1q_f32(y + k + 4));
        }
        vst1q_f32(lane, vaddq_f32(v0, v1));
        s = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    }
#else
    (void)simd;
#endif
    for (; k < n; k++) s += x[k] * y[k];
    return s;
}

static void lm__gemm_small_task(void *ctx, int t) {
    const lm__gemm_job *jb = (const lm__gemm_job *)ctx;
    const int M = jb->M, K = jb->K, j0 = t * LM__GEMM_SW;
    const int n = jb->N - j0 < LM__GEMM_SW ? jb->N - j0 : LM__GEMM_SW;
    const int simd = jb->arch->simd;
    float *acc = lm__gemm_align(lm__panels());    /* (M, n) sums, rows LM__GEMM_SW apart */
    float *a = acc + LM__GEMM_SMALL_M * LM__GEMM_SW;  /* (M, kc) of op(A), rows SK apart */
    float ak[LM__GEMM_SMALL_M];
    int i, j, k, p0;
    for (i = 0; i < M * LM__GEMM_SW; i++) acc[i] = 0.0f;
    for (p0 = 0; p0 < K; p0 += LM__GEMM_SK) {
        int kc = K - p0 < LM__GEMM_SK ? K - p0 : LM__GEMM_SK;
        for (i = 0; i < M; i++)
            for (k = 0; k < kc; k++)
                a[i * LM__GEMM_SK + k] = jb->ta ? jb->A[(size_t)(p0 + k) * jb->lda + i]
                                                : jb->A[(size_t)i * jb->lda + p0 + k];
        if (!jb->tb) {
            for (k = 0; k < kc; k++) {
                for (i = 0; i < M; i++) ak[i] = a[i * LM__GEMM_SK + k];
                lm__gemm_axpy_rows(acc, LM__GEMM_SW, ak, M,
                                   jb->B + (size_t)(p0 + k) * jb->ldb + j0, n, simd);
            }
        } else {
            for (j = 0; j < n; j++) {
                const float *bj = jb->B + (size_t)(j0 + j) * jb->ldb + p0;
                for (i = 0; i < M; i++)
                    acc[i * LM__GEMM_SW + j] +=
                        lm__gemm_dot(a + i * LM__GEMM_SK, bj, kc, simd);
            }
        }
    }
    for (i = 0; i < M; i++) {
        float *c = jb->C + (size_t)i * jb->ldc + j0;
        const float *s = acc + i * LM__GEMM_SW, *bias = jb->ex ? jb->ex->bias : NULL;
        if (bias) for (j = 0; j < n; j++) c[j] = jb->alpha * s[j] + bias[j0 + j];
        else if (jb->beta == 0.0f) for (j = 0; j < n; j++) c[j] = jb->alpha * s[j];
        else for (j = 0; j < n; j++) c[j] = jb->alpha * s[j] + jb->beta * c[j];
    }
    if (jb->ex && jb->ex->post) jb->ex->post(jb->ex->post_ctx, jb->C + j0, jb->ldc, 0, j0, M, n);
}

/* ---------------------------------------------------------------------------------------
   The entry points: check the arguments, dispose of the degenerate cases, choose the
   tiling from M, N and K, and run the tiles.
   --------------------------------------------------------------------------------------- */

/* C = beta * C over M x N, without reading C when beta == 0 (alpha == 0 or K == 0). */
static void lm__gemm_scale_c(int M, int N, float beta, float *C, size_t ldc) {
    int i, j;
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
    }
}

/* x rounded up to a multiple of q */
static int lm__gemm_roundup(int x, int q) { return (x + q - 1) / q * q; }

static int lm__gemm_run(const lm__gemm_arch *ar, int ta, int tb, int M, int N, int K,
                        float alpha, const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc, const lm__gemm_extra *ex) {
    lm__gemm_job jb;
    int nkc, ntm, ntn, tmt, tasks, t;
    if (M < 0 || N < 0 || K < 0)
        return lm__fail(LM_ERR_ARG, "gemm: negative size M=%d N=%d K=%d", M, N, K);
    if (M == 0 || N == 0) return LM_OK;
    if (!C || ldc < N)
        return lm__fail(LM_ERR_ARG, "gemm: C is NULL or ldc=%d < N=%d", C ? ldc : 0, N);
    if (ex && (ex->bias || ex->post) && (alpha == 0.0f || K == 0))
        return lm__fail(LM_ERR_ARG, "gemm: a bias or an epilogue needs alpha != 0 and K > 0");
    if (alpha == 0.0f || K == 0) { lm__gemm_scale_c(M, N, beta, C, (size_t)ldc); return LM_OK; }
    if (!A || !B || lda < (ta ? M : K) || ldb < (tb ? K : N))
        return lm__fail(LM_ERR_ARG, "gemm: A or B is NULL or a stride is too small (lda=%d ldb=%d)",
                        lda, ldb);
    if (!lm__panels_reserve()) return LM_ERR_MEM;     /* this thread's, for its tasks   */
    jb.arch = ar;
    jb.ta = ta; jb.tb = tb; jb.M = M; jb.N = N; jb.K = K;
    jb.alpha = alpha; jb.beta = beta;
    jb.A = A; jb.B = B; jb.C = C;
    jb.lda = (size_t)lda; jb.ldb = (size_t)ldb; jb.ldc = (size_t)ldc;
    jb.ex = ex;
    if (M <= LM__GEMM_SMALL_M) {
        tasks = (N + LM__GEMM_SW - 1) / LM__GEMM_SW;
        if (tasks > 1 && (double)M * N * K >= LM__GEMM_PAR_MIN)
            lm_parallel_for(tasks, lm__gemm_small_task, &jb);
        else
            for (t = 0; t < tasks; t++) lm__gemm_small_task(&jb, t);
        return LM_OK;
    }
    /* K blocks: as few as KC allows, of equal depth */
    nkc = (K + ar->kc - 1) / ar->kc;
    jb.kc = (K + nkc - 1) / nkc;
    /* tiles: as few as the limits allow, of equal sizes (whole micro-tiles). At most TN
       wide; at most as high as lets a tile's rows of A (tm x kc) stay in L2 while the
       tiles of a row of tiles run one after the other. When that leaves fewer than
       LM__GEMM_MIN_TILES tiles to share between threads, halve the longer side of the
       tile, while tiles keep LM__GEMM_TILE_MIN work and sides of a few micro-tiles
       (halving keeps the count even, so two threads get equal shares). With one thread
       there is nothing to share, and every cut packs A or B once more, so the tiles stay
       as large as the caches allow. The tiling never changes a sum (see the top of the
       section), so that choice leaves the bits alone. */
    tmt = ar->tm_floats / jb.kc < 4 * ar->mr ? 4 * ar->mr : ar->tm_floats / jb.kc;
    ntm = (M + tmt - 1) / tmt;
    ntn = (N + ar->tn - 1) / ar->tn;
    while (lm_get_threads() > 1 && ntm * ntn < LM__GEMM_MIN_TILES &&
           (double)M * N * K / (2.0 * ntm * ntn) >= LM__GEMM_TILE_MIN) {
        int th = (M + ntm - 1) / ntm, tw = (N + ntn - 1) / ntn;
        if (th >= tw && th >= 8 * ar->mr) ntm *= 2;
        else if (tw >= 4 * ar->nr) ntn *= 2;
        else if (th >= 8 * ar->mr) ntm *= 2;
        else break;
    }
    jb.tm = lm__gemm_roundup((M + ntm - 1) / ntm, ar->mr);
    ntm = (M + jb.tm - 1) / jb.tm;
    jb.tn = lm__gemm_roundup((N + ntn - 1) / ntn, ar->nr);
    ntn = (N + jb.tn - 1) / jb.tn;
    tasks = ntm * ntn;

    jb.ntn = ntn;
    if (tasks > 1 && (double)M * N * K >= LM__GEMM_PAR_MIN)
        lm_parallel_for(tasks, lm__gemm_task, &jb);
    else
        for (t = 0; t < tasks; t++) lm__gemm_task(&jb, t);
    return LM_OK;
}

static const lm__gemm_arch lm__gemm_arch_scalar = {
    LM__GEMM_SMR, LM__GEMM_SNR, LM__GEMM_SKC, LM__GEMM_RUP(LM__GEMM_STN, LM__GEMM_SNR),
    LM__GEMM_STMF, lm__gemm_kernel_scalar, 0, NULL
};
#ifdef LM__GEMM_KERNEL
#ifndef LM__GEMM_ROWS
#define LM__GEMM_ROWS NULL
#endif
static const lm__gemm_arch lm__gemm_arch_simd = {
    LM__GEMM_MR, LM__GEMM_NR, LM__GEMM_KC, LM__GEMM_RUP(LM__GEMM_TN, LM__GEMM_NR),
    LM__GEMM_TMF, LM__GEMM_KERNEL, 1, LM__GEMM_ROWS
};
#endif

/* lm_gemm with a bias or an epilogue (lm__gemm_extra): what the ops call. */
static int lm__gemm_ex(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc,
                       const lm__gemm_extra *ex) {
#ifdef LM__GEMM_KERNEL
    return lm__gemm_run(&lm__gemm_arch_simd, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ex);
#else
    return lm__gemm_run(&lm__gemm_arch_scalar, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ex);
#endif
}

LMDEF int lm_gemm_scalar(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    return lm__gemm_run(&lm__gemm_arch_scalar, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

LMDEF int lm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    return lm__gemm_ex(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

/* ---------------------------------------------------------------------------------------
   Q8_0 products: Y (M, out) = X (M, in) W^T + bias for a Q8_0 matrix W (section 10 has the
   format and the plain math, lm__ref_q8_matvec). One row of X is the generation step's
   matrix-vector product; many rows are the batched forward's matrix-matrix product. Both
   are the same loop, and every output element is computed the same way whatever the
   split, so a row comes out the same in either, on any number of threads.

   The kernels work on a 16-row group of W (lm_q8's packed layout) against one row of X:
   per block of 32 they take 16 integer dot products at once, one per lane, from the 8
   four-byte groups of the block (the interleaving puts the same 4 inputs of the 16 rows
   side by side), then scale and add the 16 sums in float lanes, which is exactly the
   scalar order. On each ISA:
     AVX-512 VNNI   vpdpbusd: 16 lanes of (4 unsigned bytes x 4 signed bytes) per
                    instruction. The stored values are q + 128, unsigned, so the sum is
                    sum (q_w + 128) q_x = sum q_w q_x + 128 sum q_x: the block's sum of q_x
                    (kept when X is quantized) takes the 128 back off.
     AVX2           no byte dot product: |q_w| times q_x with q_w's sign (vpsignb) in
                    vpmaddubsw (pairs of products into 16 bits, at most 2 x 127 x 127, no
                    saturation), then vpmaddwd by 1 into 32-bit lanes.
     NEON           sdot (vdotq_s32, the dot-product extension of ARMv8.2) where the target
                    has it; elsewhere widening multiplies (vmull_s8) and pairwise adds.
     plain C        the same sums, one lane at a time.
   X is quantized by the task that uses it, LM__Q8_KB blocks at a time into a buffer on
   its stack (a few hundred bytes), and the partial sums live in Y itself between those
   chunks, so the product needs no memory of its own. (A task that covers only part of W's
   rows quantizes its rows of X again; the tasks are cut wide enough that this is cheap.)
   --------------------------------------------------------------------------------------- */
#define LM__Q8_KB 8              /* blocks of X quantized at a time                        */
#if defined(LM_AVX512) && defined(__AVX512VNNI__)
#define LM__Q8_ISA "avx512-vnni"
#elif defined(LM_AVX2)
#define LM__Q8_ISA "avx2"
#elif defined(LM_NEON) && defined(__ARM_FEATURE_DOTPROD)
#define LM__Q8_ISA "neon-sdot"
#elif defined(LM_NEON)
#define LM__Q8_ISA "neon"
#else
#define LM__Q8_ISA "scalar"
#endif

#if defined(LM_AVX2)
/* The largest (unsigned) and the sum of the 8 int lanes of v. */
static inline uint32_t lm__q8_max8(__m256i v) {
    __m128i h = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0x4E));
    return (uint32_t)_mm_cvtsi128_si32(_mm_max_epu32(h, _mm_shuffle_epi32(h, 0xB1)));
}
static inline int lm__q8_sum8(__m256i v) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    return _mm_cvtsi128_si32(_mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1)));
}
#endif

/* X's blocks b0 .. b0+nblk-1 of a row of n values into q (32 a block), d and s, as
   lm__q8_quant_block does (section 10): on a whole block of 32 in vector code, else that
   function itself. The largest magnitude is an integer max over the bits (exact, so the
   same in any order); the values are x id + 1.5 x 2^23 read back as bits (lm__q8_round),
   which is the same float multiply and add in every lane. */
static void lm__q8_quant_x(const float *x, int n, int b0, int nblk, signed char *q, float *d,
                           int *s) {
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    int b;
    for (b = 0; b < nblk; b++) {
        const float *xb = x + (size_t)(b0 + b) * 32;
        signed char *qb = q + 32 * b;
        int len = n - (b0 + b) * 32 < 32 ? n - (b0 + b) * 32 : 32;
        float id;
        if (!lm__vec_simd || len < 32) { d[b] = lm__q8_quant_block(xb, len, qb, &s[b]); continue; }
#if defined(LM_AVX512)
        /* (the zero-masking forms with an all-ones mask, as in section 13: g++ warns about
           the undefined pass-through of the plain ones; the 8-lane halves are reduced as
           the AVX2 path does) */
        {
            const __m512i abs = _mm512_set1_epi32(0x7FFFFFFF), mb = _mm512_set1_epi32(LM__Q8_MAGIC_BITS);
            __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16), vid, mg;
            __m512i k0, k1, t;
            t = _mm512_maskz_max_epu32(0xFFFF, _mm512_maskz_and_epi32(0xFFFF, _mm512_castps_si512(v0), abs),
                                       _mm512_maskz_and_epi32(0xFFFF, _mm512_castps_si512(v1), abs));
            d[b] = lm__q8_x_scale(lm__q8_max8(_mm256_max_epu32(_mm512_maskz_extracti64x4_epi64(0xF, t, 0),
                                                               _mm512_maskz_extracti64x4_epi64(0xF, t, 1))), &id);
            if (id == 0.0f) { memset(qb, 0, 32); s[b] = 0; continue; }
            vid = _mm512_set1_ps(id);
            mg = _mm512_set1_ps(LM__Q8_MAGIC);
            k0 = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_mul_ps(v0, vid), mg)), mb);
            k1 = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_mul_ps(v1, vid), mg)), mb);
            _mm_storeu_si128((__m128i *)qb, _mm512_maskz_cvtepi32_epi8(0xFFFF, k0));
            _mm_storeu_si128((__m128i *)(qb + 16), _mm512_maskz_cvtepi32_epi8(0xFFFF, k1));
            t = _mm512_add_epi32(k0, k1);
            s[b] = lm__q8_sum8(_mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xF, t, 0),
                                                _mm512_maskz_extracti64x4_epi64(0xF, t, 1)));
        }
#elif defined(LM_AVX2)
        {
            const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF), mb = _mm256_set1_epi32(LM__Q8_MAGIC_BITS);
            __m256 v[4], vid, mg;
            __m256i k[4], t;
            int j;
            for (j = 0; j < 4; j++) v[j] = _mm256_loadu_ps(xb + 8 * j);
            t = _mm256_max_epu32(_mm256_max_epu32(_mm256_and_si256(_mm256_castps_si256(v[0]), abs),
                                                  _mm256_and_si256(_mm256_castps_si256(v[1]), abs)),
                                 _mm256_max_epu32(_mm256_and_si256(_mm256_castps_si256(v[2]), abs),
                                                  _mm256_and_si256(_mm256_castps_si256(v[3]), abs)));
            d[b] = lm__q8_x_scale(lm__q8_max8(t), &id);
            if (id == 0.0f) { memset(qb, 0, 32); s[b] = 0; continue; }
            vid = _mm256_set1_ps(id);
            mg = _mm256_set1_ps(LM__Q8_MAGIC);
            for (j = 0; j < 4; j++)
                k[j] = _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(_mm256_mul_ps(v[j], vid), mg)), mb);
            /* 32 ints to 32 bytes: the two packs work within 128-bit halves, so the 4-byte
               groups come out as k0 0-3, k1 0-3, k2 0-3, k3 0-3, k0 4-7, ...: put them back */
            t = _mm256_packs_epi16(_mm256_packs_epi32(k[0], k[1]), _mm256_packs_epi32(k[2], k[3]));
            t = _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)qb, t);
            s[b] = lm__q8_sum8(_mm256_add_epi32(_mm256_add_epi32(k[0], k[1]), _mm256_add_epi32(k[2], k[3])));
        }
#elif defined(LM_NEON)
        {
            const uint32x4_t abs = vdupq_n_u32(0x7FFFFFFFu);
            const int32x4_t mb = vdupq_n_s32(LM__Q8_MAGIC_BITS);
            float32x4_t v[8], vid, mg;
            int32x4_t k[8], sum;
            uint32x4_t t;
            uint32x2_t t2;
            int32x2_t s2;
            int j;
            for (j = 0; j < 8; j++) v[j] = vld1q_f32(xb + 4 * j);
            t = vandq_u32(vreinterpretq_u32_f32(v[0]), abs);
            for (j = 1; j < 8; j++) t = vmaxq_u32(t, vandq_u32(vreinterpretq_u32_f32(v[j]), abs));
            t2 = vpmax_u32(vget_low_u32(t), vget_high_u32(t));
            t2 = vpmax_u32(t2, t2);
            d[b] = lm__q8_x_scale(vget_lane_u32(t2, 0), &id);
            if (id == 0.0f) { memset(qb, 0, 32); s[b] = 0; continue; }
            vid = vdupq_n_f32(id);
            mg = vdupq_n_f32(LM__Q8_MAGIC);
            sum = vdupq_n_s32(0);
            for (j = 0; j < 8; j++) {
                k[j] = vsubq_s32(vreinterpretq_s32_f32(vaddq_f32(vmulq_f32(v[j], vid), mg)), mb);
                sum = vaddq_s32(sum, k[j]);
            }
            for (j = 0; j < 4; j++)
                vst1_s8(qb + 8 * j, vmovn_s16(vcombine_s16(vmovn_s32(k[2 * j]), vmovn_s32(k[2 * j + 1]))));
            s2 = vadd_s32(vget_low_s32(sum), vget_high_s32(sum));
            s[b] = vget_lane_s32(vpadd_s32(s2, s2), 0);
        }
#else
        d[b] = lm__q8_quant_block(xb, len, qb, &s[b]);
        (void)id;
#endif
    }
}

/* The kernel: y[r] += sum over blocks b < nblk, in order, of (float)isum(r, b) x (wd[r]
   xd[b]) for the 16 rows r of a group; wq and wd point at the group's first block of the
   chunk (512 bytes and 16 F16 scales a block), xq, xd, xs at the chunk of X. F16 to float
   is exact, in hardware (vcvtph2ps, fcvtl) or in lm__f16_to_f32 alike. */
static void lm__q8_tile_scalar(const unsigned char *wq, const uint16_t *wd, int nblk,
                               const signed char *xq, const float *xd, const int *xs, float *y) {
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    int r, b, k;
    (void)xs;
    for (r = 0; r < 16; r++) {
        float acc = y[r], sc, t;
        for (b = 0; b < nblk; b++) {
            const unsigned char *w = wq + (size_t)b * 512 + r * 4;
            const signed char *x = xq + 32 * b;
            int isum = 0;
            for (k = 0; k < 32; k++) isum += ((int)w[(k / 4) * 64 + k % 4] - 128) * x[k];
            sc = lm__f16_to_f32(wd[16 * b + r]) * xd[b];
            t = (float)isum * sc;
            acc = acc + t;
        }
        y[r] = acc;
    }
}

#if defined(LM_AVX512) && defined(__AVX512VNNI__)
static void lm__q8_tile_simd(const unsigned char *wq, const uint16_t *wd, int nblk,
                             const signed char *xq, const float *xd, const int *xs, float *y) {
    __m512 acc = _mm512_loadu_ps(y);
    int b, g;
    for (b = 0; b < nblk; b++, wq += 512) {
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (g = 0; g < 8; g += 2) {          /* two chains, to overlap their latency */
            int32_t x0, x1;
            memcpy(&x0, xq + 32 * b + 4 * g, 4);
            memcpy(&x1, xq + 32 * b + 4 * g + 4, 4);
            s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512((const void *)(wq + 64 * g)), _mm512_set1_epi32(x0));
            s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512((const void *)(wq + 64 * g + 64)), _mm512_set1_epi32(x1));
        }
        s0 = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32(128 * xs[b]));
        acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, s0),
                                               _mm512_mul_ps(_mm512_maskz_cvtph_ps(0xFFFF,
                                                                 _mm256_loadu_si256((const __m256i *)(wd + 16 * b))),
                                                             _mm512_set1_ps(xd[b]))));
    }
    _mm512_storeu_ps(y, acc);
}
#define LM__Q8_TILE lm__q8_tile_simd

#elif defined(LM_AVX2)
static void lm__q8_tile_simd(const unsigned char *wq, const uint16_t *wd, int nblk,
                             const signed char *xq, const float *xd, const int *xs, float *y) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), one = _mm256_set1_epi16(1);
    __m256 a0 = _mm256_loadu_ps(y), a1 = _mm256_loadu_ps(y + 8), d0, d1;
    int b, g;
    (void)xs;
    for (b = 0; b < nblk; b++, wq += 512) {
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        __m256 sc = _mm256_set1_ps(xd[b]);
#if defined(__F16C__)
        d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wd + 16 * b)));
        d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wd + 16 * b + 8)));
#else
        float dw[16];
        for (g = 0; g < 16; g++) dw[g] = lm__f16_to_f32(wd[16 * b + g]);
        d0 = _mm256_loadu_ps(dw);
        d1 = _mm256_loadu_ps(dw + 8);
#endif
        for (g = 0; g < 8; g++) {
            int32_t x4;
            __m256i xv, w0, w1;
            memcpy(&x4, xq + 32 * b + 4 * g, 4);
            xv = _mm256_set1_epi32(x4);
            w0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(wq + 64 * g)), flip);
            w1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(wq + 64 * g + 32)), flip);
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w0),
                                                        _mm256_sign_epi8(xv, w0)), one));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w1),
                                                        _mm256_sign_epi8(xv, w1)), one));
        }
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(d0, sc)));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(d1, sc)));
    }
    _mm256_storeu_ps(y, a0);
    _mm256_storeu_ps(y + 8, a1);
}
#define LM__Q8_TILE lm__q8_tile_simd

#elif defined(LM_NEON)
static void lm__q8_tile_simd(const unsigned char *wq, const uint16_t *wd, int nblk,
                             const signed char *xq, const float *xd, const int *xs, float *y) {
    const uint8x16_t flip = vdupq_n_u8(0x80);
    float32x4_t acc[4];
    int b, g, j;
    (void)xs;
    for (j = 0; j < 4; j++) acc[j] = vld1q_f32(y + 4 * j);
    for (b = 0; b < nblk; b++, wq += 512) {
        float32x4_t sc = vdupq_n_f32(xd[b]);
        for (j = 0; j < 4; j++) {             /* rows 4j .. 4j+3 */
            int32x4_t is;
#if defined(__ARM_FEATURE_DOTPROD)
            is = vdupq_n_s32(0);
            for (g = 0; g < 8; g++) {
                int32_t x4;
                memcpy(&x4, xq + 32 * b + 4 * g, 4);
                is = vdotq_s32(is, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(wq + 64 * g + 16 * j), flip)),
                               vreinterpretq_s8_s32(vdupq_n_s32(x4)));
            }
#else
            /* 16 bytes are rows 4j, 4j+1 (low half) and 4j+2, 4j+3 (high half), 4 inputs
               each; products into 16 bits, adjacent pairs added into 32-bit lanes, and at
               the end the two lanes of each row */
            int32x4_t lo = vdupq_n_s32(0), hi = vdupq_n_s32(0);
            for (g = 0; g < 8; g++) {
                int32_t x4;
                int8x16_t w, xv;
                memcpy(&x4, xq + 32 * b + 4 * g, 4);
                xv = vreinterpretq_s8_s32(vdupq_n_s32(x4));
                w = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(wq + 64 * g + 16 * j), flip));
                lo = vpadalq_s16(lo, vmull_s8(vget_low_s8(w), vget_low_s8(xv)));
                hi = vpadalq_s16(hi, vmull_s8(vget_high_s8(w), vget_high_s8(xv)));
            }
            is = vcombine_s32(vpadd_s32(vget_low_s32(lo), vget_high_s32(lo)),
                              vpadd_s32(vget_low_s32(hi), vget_high_s32(hi)));
#endif
            {
                float32x4_t dw;
#if defined(__aarch64__)
                dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(wd + 16 * b + 4 * j)));
#else                                           /* armv7: F16 in C (see lm__f16_to_f32) */
                float t[4];
                for (g = 0; g < 4; g++) t[g] = lm__f16_to_f32(wd[16 * b + 4 * j + g]);
                dw = vld1q_f32(t);
#endif
                acc[j] = vaddq_f32(acc[j], vmulq_f32(vcvtq_f32_s32(is), vmulq_f32(dw, sc)));
            }
        }
    }
    for (j = 0; j < 4; j++) vst1q_f32(y + 4 * j, acc[j]);
}
#define LM__Q8_TILE lm__q8_tile_simd
#endif

/* The product, cut into tasks of (rows of X) x (groups of W). Each task zeroes its part of
   Y, adds the blocks in order, a chunk of LM__Q8_KB at a time (Y holds the partial sums),
   then the bias. One row of X (generation): 4 groups (64 outputs) a task, for the threads
   to share. More rows: 32 rows by 16 groups, so a task's slice of W stays in cache while
   its rows go past, and each row of X is quantized only once per 256 outputs. */
typedef struct {
    const lm_q8 *W;
    const float *X, *bias;
    float *Y;
    int M, mrows, ngrp, ngt;   /* rows of X; per task: rows, groups; group tasks per row   */
} lm__q8_job;
static void lm__q8_task(void *ctx, int t) {
    const lm__q8_job *J = (const lm__q8_job *)ctx;
    const lm_q8 *W = J->W;
    const int out = W->out, in = W->in, nb = W->nb, groups = (out + 15) / 16;
    const int i0 = t / J->ngt * J->mrows, i1 = J->M - i0 < J->mrows ? J->M : i0 + J->mrows;
    const int G0 = t % J->ngt * J->ngrp, G1 = groups - G0 < J->ngrp ? groups : G0 + J->ngrp;
    const int r0 = 16 * G0, r1 = out < 16 * G1 ? out : 16 * G1;
    signed char xq[LM__Q8_KB * 32];
    float xd[LM__Q8_KB], tmp[16];
    int xs[LM__Q8_KB], i, kb, G, r;
    for (i = i0; i < i1; i++) memset(J->Y + (size_t)i * out + r0, 0, (size_t)(r1 - r0) * sizeof(float));
    for (kb = 0; kb < nb; kb += LM__Q8_KB) {
        int nblk = nb - kb < LM__Q8_KB ? nb - kb : LM__Q8_KB;
        for (i = i0; i < i1; i++) {
            float *y = J->Y + (size_t)i * out;
            lm__q8_quant_x(J->X + (size_t)i * in, in, kb, nblk, xq, xd, xs);
            for (G = G0; G < G1; G++) {
                const unsigned char *wq = W->q + ((size_t)G * nb + kb) * 512;
                const uint16_t *wd = W->d + ((size_t)G * nb + kb) * 16;
                float *yg = y + 16 * G;
                int rows = out - 16 * G < 16 ? out - 16 * G : 16;
                if (rows < 16) {           /* the last group's padding rows go to tmp */
                    for (r = 0; r < 16; r++) tmp[r] = r < rows ? yg[r] : 0.0f;
                    yg = tmp;
                }
#ifdef LM__Q8_TILE
                if (lm__vec_simd) LM__Q8_TILE(wq, wd, nblk, xq, xd, xs, yg);
                else
#endif
                lm__q8_tile_scalar(wq, wd, nblk, xq, xd, xs, yg);
                if (rows < 16) for (r = 0; r < rows; r++) y[16 * G + r] = tmp[r];
            }
        }
    }
    if (J->bias)
        for (i = i0; i < i1; i++)
            for (r = r0; r < r1; r++) J->Y[(size_t)i * out + r] += J->bias[r];
}
static void lm__q8_matmul(const lm_q8 *W, const float *X, int M, const float *bias, float *Y) {
    lm__q8_job J;
    int groups = (W->out + 15) / 16, tasks, t;
    J.W = W; J.X = X; J.bias = bias; J.Y = Y; J.M = M;
    J.mrows = M == 1 ? 1 : 32;
    J.ngrp = M == 1 ? 4 : 16;
    J.ngt = (groups + J.ngrp - 1) / J.ngrp;
    tasks = (M + J.mrows - 1) / J.mrows * J.ngt;
    if (tasks > 1 && (double)M * W->out * W->in >= (1 << 18)) lm_parallel_for(tasks, lm__q8_task, &J);
    else for (t = 0; t < tasks; t++) lm__q8_task(&J, t);
}

/* =======================================================================================
   13. Vector kernels
   Vector math: exp, tanh, sigmoid, GELU (both forms), softmax sums, dot products, AdamW
   and LayerNorm over float arrays, with SIMD.

   Why: libm's tanhf/expf are accurate but scalar and slow, and a training step calls them
   for every GELU activation and every softmax and cross-entropy entry. These kernels
   compute the same functions to within 1-3 ulp, 4 to 16 lanes at a time.

   How it is organised:
     1. A tiny SIMD abstraction: a float vector type lm__vf of LM__VW lanes, an int vector
        lm__vi and a lane mask lm__vm, and a handful of operations on them (load, store,
        set1, add, mul, fma, min, max, compare, select, reductions, and the integer tricks
        that build 2^k for exp). It is defined once per ISA: AVX-512 (16 lanes), AVX2+FMA
        (8), NEON (4, aarch64 and armv7) and plain C (1 lane, for tcc and LM_NO_SIMD).
     2. The math, twice: as plain C on one float (lm__s_exp, ...), which is the readable
        reference, the scalar path and the tail of every loop; and over the abstraction
        (lm__vf_exp, ...), the same algorithm with selects instead of branches.
     3. The array kernels (lm__vexp, lm__gelu_fwd, lm__adamw_update, ...): a vector loop
        over whole vectors, then a scalar loop for the last n % LM__VW elements. They take
        any n >= 0 and unaligned pointers.

   lm__vec_simd = 0 sends every kernel down its scalar loop for the whole array, so tests
   and benchmarks can compare the two paths in one binary.

   Accuracy, worst case measured by the tests against double precision (lm_test.c, the vec tests), the
   same on every path:
     exp      0.96 ulp over the whole float range: +inf above 88.7228, gradual underflow
              into the denormals below -87.34, 0 below -103.97, NaN stays NaN.
     tanh     1.3 ulp: odd polynomial for |x| < 0.625, 1 - 2 / (exp(2|x|) + 1) above,
              exactly +-1 beyond |x| = 10 (tanh rounds to 1 in float from 9.01 on).
     sigmoid  2.4 ulp, down to the denormals on both sides.
     GELU     forward 7e-7 relative for x > -3 (2 ulp for x >= 0), and for x < -3, where
              gelu is below 0.004 in size, an error that grows to 1e-5 relative at x = -9;
              backward (gelu') 1e-6 relative plus 1e-8 absolute.
     GELU, exact (erf) form: forward 7e-7 relative for x > -3, and within 2 (4 + x^2/2)
              ulp everywhere (the far negative tail again); backward within 1e-6 of the
              size of its two terms, Phi(x) + |x| phi(x), plus 1e-8.
   armv7 NEON flushes denormal inputs and results to zero in hardware, so on that path the
   tails above end at FLT_MIN instead.
   ======================================================================================= */
#define LM__VEC_IMPL 1

/* ---------------------------------------------------------------------------------------
   1. The SIMD abstraction.
   Semantics every ISA keeps:
     lm__vf_min(a, b) = a < b ? a : b,  lm__vf_max(a, b) = a > b ? a : b  when neither is
       NaN; a NaN in b always comes out (x86 returns b, NEON returns the NaN), so code that
       must propagate NaN clamps with the value second: lm__vf_min(hi, x).
     lm__vf_fma(a, b, c) = a * b + c (fused where the ISA has it, which is everywhere but
       the plain C path).
     lm__vf_div is a true division except on armv7, which has no vector divide: there it
       is a reciprocal estimate refined by Newton steps (about 0.5 ulp, for finite b != 0).
       LM__V_EXACT is 1 where lm__vf_div and lm__vf_sqrt (absent on armv7) are the
       correctly rounded IEEE operations.
     lm__vf_copysign(a, b) is |a| with the sign bit of b.
     lm__vi_round(v) rounds to the nearest integer (|v| < 2^30); lm__vf_pow2(k) is 2^k as a
       float, for k in [-126, 127], built directly from the exponent bits.
   --------------------------------------------------------------------------------------- */
#if defined(LM_AVX2) && !defined(LM_NO_SIMD)
/* x86 reductions of 8 lanes (AVX-512 first folds its 16 down to 8): add the two 128-bit
   halves, then the two pairs, then the last two lanes. */
static inline float lm__m256_reduce_add(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline float lm__m256_reduce_max(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#endif

#if defined(LM_AVX512) && !defined(LM_NO_SIMD)
/* AVX-512: 16 lanes; masks live in k registers. Several operations are written as their
   zero-masking form with an all-ones mask (LM__K16): the same instruction, but g++ 12
   warns about the undefined pass-through operand that the plain forms use. */
#define LM__VW 16
#define LM__V_EXACT 1
#define LM__K16 ((__mmask16)0xffff)
typedef __m512 lm__vf;
typedef __m512i lm__vi;
typedef __mmask16 lm__vm;
static inline lm__vf lm__vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void lm__vf_store(float *p, lm__vf v) { _mm512_storeu_ps(p, v); }
static inline lm__vf lm__vf_set1(float a) { return _mm512_set1_ps(a); }
static inline lm__vf lm__vf_add(lm__vf a, lm__vf b) { return _mm512_add_ps(a, b); }
static inline lm__vf lm__vf_sub(lm__vf a, lm__vf b) { return _mm512_sub_ps(a, b); }
static inline lm__vf lm__vf_mul(lm__vf a, lm__vf b) { return _mm512_mul_ps(a, b); }
static inline lm__vf lm__vf_div(lm__vf a, lm__vf b) { return _mm512_div_ps(a, b); }
static inline lm__vf lm__vf_sqrt(lm__vf a) { return _mm512_maskz_sqrt_ps(LM__K16, a); }
static inline lm__vf lm__vf_fma(lm__vf a, lm__vf b, lm__vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline lm__vf lm__vf_min(lm__vf a, lm__vf b) { return _mm512_maskz_min_ps(LM__K16, a, b); }
static inline lm__vf lm__vf_max(lm__vf a, lm__vf b) { return _mm512_maskz_max_ps(LM__K16, a, b); }
/* sign-bit tricks on the integer view */
static inline lm__vf lm__vf_abs(lm__vf a) {
    __m512i bits = _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT_MAX));
    return _mm512_castsi512_ps(bits);
}
static inline lm__vf lm__vf_neg(lm__vf a) {
    __m512i bits = _mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT_MIN));
    return _mm512_castsi512_ps(bits);
}
static inline lm__vf lm__vf_copysign(lm__vf a, lm__vf b) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(lm__vf_abs(a)),
        _mm512_and_si512(_mm512_castps_si512(b), _mm512_set1_epi32(INT_MIN))));
}
static inline lm__vm lm__vf_lt(lm__vf a, lm__vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline lm__vm lm__vf_gt(lm__vf a, lm__vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
/* m ? a : b, lane by lane */
static inline lm__vf lm__vf_select(lm__vm m, lm__vf a, lm__vf b) {
    return _mm512_mask_blend_ps(m, b, a);
}
static inline __m256 lm__vf_half(lm__vf v, int hi) {
    __m512d d = _mm512_castps_pd(v);
    return _mm256_castpd_ps(hi ? _mm512_maskz_extractf64x4_pd((__mmask8)0xf, d, 1)
                               : _mm512_maskz_extractf64x4_pd((__mmask8)0xf, d, 0));
}
static inline float lm__vf_reduce_add(lm__vf v) {
    return lm__m256_reduce_add(_mm256_add_ps(lm__vf_half(v, 0), lm__vf_half(v, 1)));
}
static inline float lm__vf_reduce_max(lm__vf v) {
    return lm__m256_reduce_max(_mm256_max_ps(lm__vf_half(v, 0), lm__vf_half(v, 1)));
}
static inline lm__vi lm__vi_round(lm__vf v) {
    return _mm512_maskz_cvt_roundps_epi32(LM__K16, v,
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline lm__vf lm__vi_to_vf(lm__vi k) { return _mm512_maskz_cvtepi32_ps(LM__K16, k); }
static inline lm__vi lm__vi_half(lm__vi k) { return _mm512_maskz_srai_epi32(LM__K16, k, 1); }
static inline lm__vi lm__vi_sub(lm__vi a, lm__vi b) { return _mm512_sub_epi32(a, b); }
static inline lm__vf lm__vf_pow2(lm__vi k) {
    lm__vi e = _mm512_add_epi32(k, _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(LM__K16, e, 23));
}

#elif defined(LM_AVX2) && !defined(LM_NO_SIMD)
/* AVX2 + FMA: 8 lanes; a mask is a vector of all-ones / all-zeros lanes. */
#define LM__VW 8
#define LM__V_EXACT 1
typedef __m256 lm__vf;
typedef __m256i lm__vi;
typedef __m256 lm__vm;
static inline lm__vf lm__vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void lm__vf_store(float *p, lm__vf v) { _mm256_storeu_ps(p, v); }
static inline lm__vf lm__vf_set1(float a) { return _mm256_set1_ps(a); }
static inline lm__vf lm__vf_add(lm__vf a, lm__vf b) { return _mm256_add_ps(a, b); }
static inline lm__vf lm__vf_sub(lm__vf a, lm__vf b) { return _mm256_sub_ps(a, b); }
static inline lm__vf lm__vf_mul(lm__vf a, lm__vf b) { return _mm256_mul_ps(a, b); }
static inline lm__vf lm__vf_div(lm__vf a, lm__vf b) { return _mm256_div_ps(a, b); }
static inline lm__vf lm__vf_sqrt(lm__vf a) { return _mm256_sqrt_ps(a); }
static inline lm__vf lm__vf_fma(lm__vf a, lm__vf b, lm__vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline lm__vf lm__vf_min(lm__vf a, lm__vf b) { return _mm256_min_ps(a, b); }
static inline lm__vf lm__vf_max(lm__vf a, lm__vf b) { return _mm256_max_ps(a, b); }
/* -0.0f is the sign bit alone */
static inline lm__vf lm__vf_abs(lm__vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline lm__vf lm__vf_neg(lm__vf a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
static inline lm__vf lm__vf_copysign(lm__vf a, lm__vf b) {
    return _mm256_or_ps(lm__vf_abs(a), _mm256_and_ps(_mm256_set1_ps(-0.0f), b));
}
static inline lm__vm lm__vf_lt(lm__vf a, lm__vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline lm__vm lm__vf_gt(lm__vf a, lm__vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline lm__vf lm__vf_select(lm__vm m, lm__vf a, lm__vf b) {
    return _mm256_blendv_ps(b, a, m);
}
static inline float lm__vf_reduce_add(lm__vf v) { return lm__m256_reduce_add(v); }
static inline float lm__vf_reduce_max(lm__vf v) { return lm__m256_reduce_max(v); }
static inline lm__vi lm__vi_round(lm__vf v) { return _mm256_cvtps_epi32(v); } /* MXCSR: nearest */
static inline lm__vf lm__vi_to_vf(lm__vi k) { return _mm256_cvtepi32_ps(k); }
static inline lm__vi lm__vi_half(lm__vi k) { return _mm256_srai_epi32(k, 1); }
static inline lm__vi lm__vi_sub(lm__vi a, lm__vi b) { return _mm256_sub_epi32(a, b); }
static inline lm__vf lm__vf_pow2(lm__vi k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

#elif defined(LM_NEON) && !defined(LM_NO_SIMD)
/* NEON: 4 lanes. armv7 lacks vector divide, sqrt, round-to-nearest conversion and
   across-vector reductions; it gets Newton steps and pairwise folds instead. */
#define LM__VW 4
typedef float32x4_t lm__vf;
typedef int32x4_t lm__vi;
typedef uint32x4_t lm__vm;
static inline lm__vf lm__vf_load(const float *p) { return vld1q_f32(p); }
static inline void lm__vf_store(float *p, lm__vf v) { vst1q_f32(p, v); }
static inline lm__vf lm__vf_set1(float a) { return vdupq_n_f32(a); }
static inline lm__vf lm__vf_add(lm__vf a, lm__vf b) { return vaddq_f32(a, b); }
static inline lm__vf lm__vf_sub(lm__vf a, lm__vf b) { return vsubq_f32(a, b); }
static inline lm__vf lm__vf_mul(lm__vf a, lm__vf b) { return vmulq_f32(a, b); }
static inline lm__vf lm__vf_fma(lm__vf a, lm__vf b, lm__vf c) { return vfmaq_f32(c, a, b); }
static inline lm__vf lm__vf_min(lm__vf a, lm__vf b) { return vminq_f32(a, b); }
static inline lm__vf lm__vf_max(lm__vf a, lm__vf b) { return vmaxq_f32(a, b); }
static inline lm__vf lm__vf_abs(lm__vf a) { return vabsq_f32(a); }
static inline lm__vf lm__vf_neg(lm__vf a) { return vnegq_f32(a); }
static inline lm__vf lm__vf_copysign(lm__vf a, lm__vf b) {
    return vbslq_f32(vdupq_n_u32(0x80000000u), b, a);
}
static inline lm__vm lm__vf_lt(lm__vf a, lm__vf b) { return vcltq_f32(a, b); }
static inline lm__vm lm__vf_gt(lm__vf a, lm__vf b) { return vcgtq_f32(a, b); }
static inline lm__vf lm__vf_select(lm__vm m, lm__vf a, lm__vf b) { return vbslq_f32(m, a, b); }
static inline lm__vf lm__vi_to_vf(lm__vi k) { return vcvtq_f32_s32(k); }
static inline lm__vi lm__vi_half(lm__vi k) { return vshrq_n_s32(k, 1); }
static inline lm__vi lm__vi_sub(lm__vi a, lm__vi b) { return vsubq_s32(a, b); }
static inline lm__vf lm__vf_pow2(lm__vi k) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k, vdupq_n_s32(127)), 23));
}
#if defined(__aarch64__)
#define LM__V_EXACT 1
static inline lm__vf lm__vf_div(lm__vf a, lm__vf b) { return vdivq_f32(a, b); }
static inline lm__vf lm__vf_sqrt(lm__vf a) { return vsqrtq_f32(a); }
static inline float lm__vf_reduce_add(lm__vf v) { return vaddvq_f32(v); }
static inline float lm__vf_reduce_max(lm__vf v) { return vmaxvq_f32(v); }
static inline lm__vi lm__vi_round(lm__vf v) { return vcvtnq_s32_f32(v); }
#else
#define LM__V_EXACT 0
/* a / b for finite, nonzero b (every use here divides by 1 + something). The reciprocal
   estimate has 8 bits and each Newton step r = r (2 - b r) doubles them; then q = a r is
   corrected once with its exact residual a - b q (fused), which leaves about 0.5 ulp. */
static inline lm__vf lm__vf_div(lm__vf a, lm__vf b) {
    lm__vf r = vrecpeq_f32(b), q;
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    r = vmulq_f32(r, vrecpsq_f32(b, r));
    q = vmulq_f32(a, r);
    return vfmaq_f32(q, vfmsq_f32(a, b, q), r);
}
static inline float lm__vf_reduce_add(lm__vf v) {
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
}
static inline float lm__vf_reduce_max(lm__vf v) {
    float32x2_t s = vmax_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpmax_f32(s, s), 0);
}
/* vcvtq_s32_f32 truncates, so add +-0.5 (the sign of v) first: rounds half away from 0 */
static inline lm__vi lm__vi_round(lm__vf v) {
    uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(0x80000000u));
    lm__vf half = vreinterpretq_f32_u32(vorrq_u32(sign, vreinterpretq_u32_f32(vdupq_n_f32(0.5f))));
    return vcvtq_s32_f32(vaddq_f32(v, half));
}
#endif

#else
/* Plain C, one lane: what tcc and LM_NO_SIMD compile. */
#define LM__VW 1
#define LM__V_EXACT 1
typedef float lm__vf;
typedef int32_t lm__vi;
typedef int lm__vm;
static inline lm__vf lm__vf_load(const float *p) { return *p; }
static inline void lm__vf_store(float *p, lm__vf v) { *p = v; }
static inline lm__vf lm__vf_set1(float a) { return a; }
static inline lm__vf lm__vf_add(lm__vf a, lm__vf b) { return a + b; }
static inline lm__vf lm__vf_sub(lm__vf a, lm__vf b) { return a - b; }
static inline lm__vf lm__vf_mul(lm__vf a, lm__vf b) { return a * b; }
static inline lm__vf lm__vf_div(lm__vf a, lm__vf b) { return a / b; }
static inline lm__vf lm__vf_sqrt(lm__vf a) { return sqrtf(a); }
static inline lm__vf lm__vf_fma(lm__vf a, lm__vf b, lm__vf c) { return a * b + c; }
static inline lm__vf lm__vf_min(lm__vf a, lm__vf b) { return a < b ? a : b; }
static inline lm__vf lm__vf_max(lm__vf a, lm__vf b) { return a > b ? a : b; }
static inline lm__vf lm__vf_abs(lm__vf a) { return fabsf(a); }
static inline lm__vf lm__vf_neg(lm__vf a) { return -a; }
static inline lm__vf lm__vf_copysign(lm__vf a, lm__vf b) { return copysignf(a, b); }
static inline lm__vm lm__vf_lt(lm__vf a, lm__vf b) { return a < b; }
static inline lm__vm lm__vf_gt(lm__vf a, lm__vf b) { return a > b; }
static inline lm__vf lm__vf_select(lm__vm m, lm__vf a, lm__vf b) { return m ? a : b; }
static inline float lm__vf_reduce_add(lm__vf v) { return v; }
static inline float lm__vf_reduce_max(lm__vf v) { return v; }
/* round half away from zero (without a branch on the sign); NaN, which C may not
   convert, gives 0 as on NEON */
static inline lm__vi lm__vi_round(lm__vf v) {
    return v == v ? (lm__vi)(v + copysignf(0.5f, v)) : 0;
}
static inline lm__vf lm__vi_to_vf(lm__vi k) { return (float)k; }
/* floor(k / 2) by a shift of a non-negative number (k >= -256 here) */
static inline lm__vi lm__vi_half(lm__vi k) { return ((k + 256) >> 1) - 128; }
static inline lm__vi lm__vi_sub(lm__vi a, lm__vi b) { return a - b; }
static inline lm__vf lm__vf_pow2(lm__vi k) {
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
#endif

/* The lanes of v added in double: how float partial sums are folded into a double total. */
static inline double lm__vf_sum_double(lm__vf v) {
    float t[LM__VW];
    double s = 0;
    int i;
    lm__vf_store(t, v);
    for (i = 0; i < LM__VW; i++) s += t[i];
    return s;
}

/* ---------------------------------------------------------------------------------------
   2. The math functions.

   exp(x): write x = n ln2 + r with n = round(x / ln2), so |r| <= ln2/2 and
   exp(x) = 2^n exp(r). ln2 is split into a short head (0.693359375, 9 bits, so n * head is
   exact) and a tail (Cody and Waite), which keeps r accurate for |n| up to 150. exp(r) is
   1 + r + r^2 P(r) with Cephes' degree-5 minimax P. 2^n is built from exponent bits; to
   reach the denormals (n down to -150) and the top (n = 128), where 2^n itself is not a
   normal float, it is applied as two halves 2^(n/2) 2^(n - n/2). Clamping x to
   [-104, 89] first keeps n in that range; the result still overflows to +inf above
   88.7228 and rounds to 0 below -103.97, as it should.
   --------------------------------------------------------------------------------------- */
#define LM__EXP_HI 89.0f
#define LM__EXP_LO (-104.0f)
#define LM__LOG2E 1.44269504088896341f
#define LM__LN2_HI 0.693359375f
#define LM__LN2_LO (-2.12194440e-4f)
#define LM__EXP_P0 1.9875691500e-4f
#define LM__EXP_P1 1.3981999507e-3f
#define LM__EXP_P2 8.3334519073e-3f
#define LM__EXP_P3 4.1665795894e-2f
#define LM__EXP_P4 1.6666665459e-1f
#define LM__EXP_P5 5.0000001201e-1f

/* 2^k for k in [-126, 127], from its bits */
static float lm__s_pow2(int k) {
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float lm__s_exp(float x) {
    float t, n, r, p;
    int k, k1;
    if (x != x) return x + x;                       /* NaN */
    if (x > LM__EXP_HI) x = LM__EXP_HI;
    if (x < LM__EXP_LO) x = LM__EXP_LO;
    t = x * LM__LOG2E;
    k = (int)(t + copysignf(0.5f, t));              /* round to nearest */
    n = (float)k;
    r = x - n * LM__LN2_HI;                         /* exact */
    r = r - n * LM__LN2_LO;
    p = LM__EXP_P0;
    p = p * r + LM__EXP_P1;
    p = p * r + LM__EXP_P2;
    p = p * r + LM__EXP_P3;
    p = p * r + LM__EXP_P4;
    p = p * r + LM__EXP_P5;
    p = p * (r * r) + r + 1.0f;                     /* exp(r) */
    k1 = ((k + 256) >> 1) - 128;                    /* floor(k / 2), k >= -150 */
    return p * lm__s_pow2(k1) * lm__s_pow2(k - k1);
}

static inline lm__vf lm__vf_exp(lm__vf x) {
    lm__vf n, r, p;
    lm__vi k, k1;
    x = lm__vf_max(lm__vf_set1(LM__EXP_LO), lm__vf_min(lm__vf_set1(LM__EXP_HI), x));
    k = lm__vi_round(lm__vf_mul(x, lm__vf_set1(LM__LOG2E)));
    n = lm__vi_to_vf(k);
    r = lm__vf_fma(n, lm__vf_set1(-LM__LN2_HI), x);
    r = lm__vf_fma(n, lm__vf_set1(-LM__LN2_LO), r);
    p = lm__vf_set1(LM__EXP_P0);
    p = lm__vf_fma(p, r, lm__vf_set1(LM__EXP_P1));
    p = lm__vf_fma(p, r, lm__vf_set1(LM__EXP_P2));
    p = lm__vf_fma(p, r, lm__vf_set1(LM__EXP_P3));
    p = lm__vf_fma(p, r, lm__vf_set1(LM__EXP_P4));
    p = lm__vf_fma(p, r, lm__vf_set1(LM__EXP_P5));
    p = lm__vf_add(lm__vf_fma(p, lm__vf_mul(r, r), r), lm__vf_set1(1.0f));
    k1 = lm__vi_half(k);
    return lm__vf_mul(lm__vf_mul(p, lm__vf_pow2(k1)), lm__vf_pow2(lm__vi_sub(k, k1)));
}

/* tanh(x), computed for a = |x| with the sign put back at the end (so tanh(-0) = -0).
   For a < 0.625, Cephes' odd polynomial a + a^3 P(a^2), accurate in relative terms right
   down to 0. Above, tanh a = 1 - 2 / (exp(2a) + 1), which has no cancellation there.
   Beyond a = 10 float tanh is 1, and capping a there keeps exp(2a) finite. */
#define LM__TANH_SMALL 0.625f
#define LM__TANH_CAP 10.0f
#define LM__TANH_P0 (-5.70498872745e-3f)
#define LM__TANH_P1 2.06390887954e-2f
#define LM__TANH_P2 (-5.37397155531e-2f)
#define LM__TANH_P3 1.33314422036e-1f
#define LM__TANH_P4 (-3.33332819422e-1f)

static float lm__s_tanh(float x) {
    float a = fabsf(x), z, p, t;
    if (x != x) return x + x;
    if (a < LM__TANH_SMALL) {
        z = a * a;
        p = LM__TANH_P0;
        p = p * z + LM__TANH_P1;
        p = p * z + LM__TANH_P2;
        p = p * z + LM__TANH_P3;
        p = p * z + LM__TANH_P4;
        t = (p * z) * a + a;
    } else {
        if (a > LM__TANH_CAP) a = LM__TANH_CAP;
        t = 1.0f - 2.0f / (lm__s_exp(a + a) + 1.0f);
    }
    return copysignf(t, x);
}

static inline lm__vf lm__vf_tanh(lm__vf x) {
    lm__vf a = lm__vf_abs(x), z = lm__vf_mul(a, a), p, small, e, big;
    lm__vf one = lm__vf_set1(1.0f);
    p = lm__vf_set1(LM__TANH_P0);
    p = lm__vf_fma(p, z, lm__vf_set1(LM__TANH_P1));
    p = lm__vf_fma(p, z, lm__vf_set1(LM__TANH_P2));
    p = lm__vf_fma(p, z, lm__vf_set1(LM__TANH_P3));
    p = lm__vf_fma(p, z, lm__vf_set1(LM__TANH_P4));
    small = lm__vf_fma(lm__vf_mul(p, z), a, a);
    e = lm__vf_min(lm__vf_set1(LM__TANH_CAP), a);      /* NaN passes through */
    e = lm__vf_exp(lm__vf_add(e, e));
    big = lm__vf_sub(one, lm__vf_div(lm__vf_set1(2.0f), lm__vf_add(e, one)));
    return lm__vf_copysign(lm__vf_select(lm__vf_lt(a, lm__vf_set1(LM__TANH_SMALL)), small, big), x);
}

/* sigmoid(x) = 1 / (1 + exp(-x)). With e = exp(-|x|) in (0, 1] and r = 1 / (1 + e):
   sigmoid(x) = r and 1 - sigmoid(x) = e r for x >= 0, the other way round for x < 0. So
   neither side overflows, and a result near 0 (on either side) keeps full relative
   accuracy instead of coming out of a subtraction from 1. */
static float lm__s_sigmoid(float x) {
    float e = lm__s_exp(-fabsf(x)), r = 1.0f / (1.0f + e);
    return x < 0 ? e * r : r;
}

static inline lm__vf lm__vf_sigmoid(lm__vf x) {
    lm__vf e = lm__vf_exp(lm__vf_neg(lm__vf_abs(x)));
    lm__vf r = lm__vf_div(lm__vf_set1(1.0f), lm__vf_add(lm__vf_set1(1.0f), e));
    return lm__vf_select(lm__vf_lt(x, lm__vf_set1(0.0f)), lm__vf_mul(e, r), r);
}

/* GELU, tanh form: gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
   Since 0.5 (1 + tanh u) = sigmoid(2u) = s, with 2u = x (A + B x^2):
       gelu(x)  = x s
       gelu'(x) = s + x s (1 - s) (A + 3 B x^2) = s (1 + q (1 - s)),   q = x (A + 3 B x^2)
   where A = 2 sqrt(2/pi), B = 0.044715 A, and s and 1 - s come from sigmoid's e and r.
   Unlike 1 + tanh(u), which cancels for negative x (even double loses everything below
   x = -6), nothing here subtracts nearly equal numbers, so both stay accurate in relative
   terms down to the denormals. What remains is the rounding of 2u, which exp magnifies:
   the relative error grows like 3 |2u| ulp for negative x (1e-6 at x = -3, where gelu is
   -0.004). For gelu' x is clamped to [-13, 12]: there gelu' is already 0 and 1 in float,
   and the clamp keeps q finite for x = +-inf. (At x = -inf the forward value is NaN, as
   the formula's -inf * 0 is.) */
#define LM__GELU_A 1.59576912160573071f   /* 2 sqrt(2/pi)        */
#define LM__GELU_B 0.0713548162726002527f /* 2 sqrt(2/pi) 0.044715 */
#define LM__GELU_LO (-13.0f)
#define LM__GELU_HI 12.0f

static float lm__s_gelu(float x) {
    return x * lm__s_sigmoid(x * (LM__GELU_A + LM__GELU_B * (x * x)));
}

static float lm__s_gelu_grad(float x) {
    float x2, z, e, r, s, sm, q;
    if (x < LM__GELU_LO) x = LM__GELU_LO;
    if (x > LM__GELU_HI) x = LM__GELU_HI;
    x2 = x * x;
    z = x * (LM__GELU_A + LM__GELU_B * x2);                 /* 2u */
    e = lm__s_exp(-fabsf(z));
    r = 1.0f / (1.0f + e);
    s = z < 0 ? e * r : r;                                  /* sigmoid(2u)     */
    sm = z < 0 ? r : e * r;                                 /* 1 - sigmoid(2u) */
    q = x * (LM__GELU_A + 3.0f * LM__GELU_B * x2);
    return s * (1.0f + q * sm);
}

static inline lm__vf lm__vf_gelu(lm__vf x) {
    lm__vf z = lm__vf_mul(x, lm__vf_fma(lm__vf_mul(x, x), lm__vf_set1(LM__GELU_B),
                                        lm__vf_set1(LM__GELU_A)));
    return lm__vf_mul(x, lm__vf_sigmoid(z));
}

static inline lm__vf lm__vf_gelu_grad(lm__vf x) {
    lm__vf one = lm__vf_set1(1.0f), x2, z, e, r, er, s, sm, q;
    lm__vm neg;
    x = lm__vf_min(lm__vf_set1(LM__GELU_HI), lm__vf_max(lm__vf_set1(LM__GELU_LO), x));
    x2 = lm__vf_mul(x, x);
    z = lm__vf_mul(x, lm__vf_fma(x2, lm__vf_set1(LM__GELU_B), lm__vf_set1(LM__GELU_A)));
    e = lm__vf_exp(lm__vf_neg(lm__vf_abs(z)));
    r = lm__vf_div(one, lm__vf_add(one, e));
    er = lm__vf_mul(e, r);
    neg = lm__vf_lt(z, lm__vf_set1(0.0f));
    s = lm__vf_select(neg, er, r);
    sm = lm__vf_select(neg, r, er);
    q = lm__vf_mul(x, lm__vf_fma(x2, lm__vf_set1(3.0f * LM__GELU_B), lm__vf_set1(LM__GELU_A)));
    return lm__vf_mul(s, lm__vf_fma(q, sm, one));
}

/* GELU, exact form: gelu(x) = x Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2). With a = |x| / sqrt 2
   and E = erfc(a) in (0, 1], Phi(x) = 0.5 E for x < 0 and 1 - 0.5 E for x >= 0: E is
   never subtracted from a nearby number, so both sides keep their relative accuracy.
   erfc(a) for a >= 0 is Numerical Recipes' Chebyshev fit (fractional error below 1.2e-7):
       t = 1 / (1 + a / 2),  erfc(a) = t exp(P(t) - a^2),  P of degree 9
   which costs one exp and one division and has no branch, so it vectorises as it is; a^2
   is taken as x^2 / 2 (one rounding, not two). The derivative Phi(x) + x phi(x) takes
   phi(x) = exp(-x^2 / 2) / sqrt(2 pi) from a second exp. As for the tanh form, the
   rounding of x^2 is magnified by exp: the relative error grows like x^2 ulp in the far
   negative tail, where gelu is below 1e-6 in size. |x| is capped at 15, where Phi and
   phi are 0 in float (exp's argument is below its underflow): so gelu'(+-inf) is 1 and
   0, and gelu(-inf) is NaN, as the formula's -inf * 0 is. */
#define LM__ERF_CAP 15.0f
#define LM__SQRT1_2 0.70710678118654752f
#define LM__INV_SQRT_2PI 0.39894228040143268f
static const float lm__erfc_p[10] = {    /* P(t), highest power first */
    0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
    -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f };

/* erfc(|x| / sqrt 2) for |x| <= LM__ERF_CAP (NaN stays NaN) */
static float lm__s_erfc_half(float ax) {
    float t = 1.0f / (1.0f + 0.5f * LM__SQRT1_2 * ax), p = lm__erfc_p[0];
    int i;
    for (i = 1; i < 10; i++) p = p * t + lm__erfc_p[i];
    return t * lm__s_exp(p - 0.5f * (ax * ax));
}
static float lm__s_gelu_erf(float x) {
    float ax = fabsf(x), e = lm__s_erfc_half(ax < LM__ERF_CAP ? ax : LM__ERF_CAP);
    return x * (x < 0 ? 0.5f * e : 1.0f - 0.5f * e);
}
static float lm__s_gelu_erf_grad(float x) {
    float ax = fabsf(x) < LM__ERF_CAP ? fabsf(x) : LM__ERF_CAP, e = lm__s_erfc_half(ax);
    float phi = lm__s_exp(-0.5f * (ax * ax)) * LM__INV_SQRT_2PI;
    if (x != x) return x + x;
    return (x < 0 ? 0.5f * e : 1.0f - 0.5f * e) + copysignf(ax, x) * phi;
}

static inline lm__vf lm__vf_erfc_half(lm__vf ax) {
    lm__vf t, p;
    int i;
    t = lm__vf_div(lm__vf_set1(1.0f), lm__vf_fma(ax, lm__vf_set1(0.5f * LM__SQRT1_2), lm__vf_set1(1.0f)));
    p = lm__vf_set1(lm__erfc_p[0]);
    for (i = 1; i < 10; i++) p = lm__vf_fma(p, t, lm__vf_set1(lm__erfc_p[i]));
    return lm__vf_mul(t, lm__vf_exp(lm__vf_fma(lm__vf_mul(ax, ax), lm__vf_set1(-0.5f), p)));
}
/* Phi(x) from E = erfc(|x| / sqrt 2) */
static inline lm__vf lm__vf_phi_cdf(lm__vf x, lm__vf e) {
    lm__vf h = lm__vf_mul(lm__vf_set1(0.5f), e);
    return lm__vf_select(lm__vf_lt(x, lm__vf_set1(0.0f)), h, lm__vf_sub(lm__vf_set1(1.0f), h));
}
static inline lm__vf lm__vf_gelu_erf(lm__vf x) {
    lm__vf ax = lm__vf_min(lm__vf_set1(LM__ERF_CAP), lm__vf_abs(x));   /* NaN passes through */
    return lm__vf_mul(x, lm__vf_phi_cdf(x, lm__vf_erfc_half(ax)));
}
static inline lm__vf lm__vf_gelu_erf_grad(lm__vf x) {
    lm__vf ax = lm__vf_min(lm__vf_set1(LM__ERF_CAP), lm__vf_abs(x)), phi;
    phi = lm__vf_mul(lm__vf_exp(lm__vf_mul(lm__vf_mul(ax, ax), lm__vf_set1(-0.5f))),
                     lm__vf_set1(LM__INV_SQRT_2PI));
    return lm__vf_fma(lm__vf_copysign(ax, x), phi, lm__vf_phi_cdf(x, lm__vf_erfc_half(ax)));
}

/* ---------------------------------------------------------------------------------------
   3. Array kernels. Each one: a loop over whole vectors (skipped when lm__vec_simd is 0),
   then a scalar loop for what is left. Every kernel accepts n <= 0 (it does nothing) and
   pointers with any alignment; the elementwise ones also accept an output that is one of
   their inputs. Not every build calls every kernel, so they are marked as possibly unused
   (no warning then).
   --------------------------------------------------------------------------------------- */
LM__VEC_FN int lm__vec_lanes(void) { return lm__vec_simd ? LM__VW : 1; }

/* y = exp(x) (y may be x) */
LM__VEC_FN void lm__vexp(const float *x, float *y, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW) lm__vf_store(y + i, lm__vf_exp(lm__vf_load(x + i)));
    for (; i < n; i++) y[i] = lm__s_exp(x[i]);
}

/* y = tanh(x) */
LM__VEC_FN void lm__vtanh(const float *x, float *y, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW) lm__vf_store(y + i, lm__vf_tanh(lm__vf_load(x + i)));
    for (; i < n; i++) y[i] = lm__s_tanh(x[i]);
}

/* y = 1 / (1 + exp(-x)) */
LM__VEC_FN void lm__vsigmoid(const float *x, float *y, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW)
            lm__vf_store(y + i, lm__vf_sigmoid(lm__vf_load(x + i)));
    for (; i < n; i++) y[i] = lm__s_sigmoid(x[i]);
}

/* y = gelu(x) */
LM__VEC_FN void lm__gelu_fwd(const float *x, float *y, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW) lm__vf_store(y + i, lm__vf_gelu(lm__vf_load(x + i)));
    for (; i < n; i++) y[i] = lm__s_gelu(x[i]);
}

/* dx += dy * gelu'(x): backward accumulates into the input's gradient */
LM__VEC_FN void lm__gelu_bwd(const float *x, const float *dy, float *dx, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW) {
            lm__vf g = lm__vf_gelu_grad(lm__vf_load(x + i));
            lm__vf_store(dx + i, lm__vf_fma(lm__vf_load(dy + i), g, lm__vf_load(dx + i)));
        }
    for (; i < n; i++) dx[i] += dy[i] * lm__s_gelu_grad(x[i]);
}

/* y = relu(x) = x > 0 ? x : 0 (NaN gives 0, on both paths) */
LM__VEC_FN void lm__relu_fwd(const float *x, float *y, int n) {
    int i = 0;
    if (lm__vec_simd) {
        lm__vf z = lm__vf_set1(0.0f);
        for (; i + LM__VW <= n; i += LM__VW) {
            lm__vf v = lm__vf_load(x + i);
            lm__vf_store(y + i, lm__vf_select(lm__vf_lt(z, v), v, z));
        }
    }
    for (; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

/* dx += x > 0 ? dy : 0 */
LM__VEC_FN void lm__relu_bwd(const float *x, const float *dy, float *dx, int n) {
    int i = 0;
    if (lm__vec_simd) {
        lm__vf z = lm__vf_set1(0.0f);
        for (; i + LM__VW <= n; i += LM__VW) {
            lm__vf g = lm__vf_select(lm__vf_lt(z, lm__vf_load(x + i)), lm__vf_load(dy + i), z);
            lm__vf_store(dx + i, lm__vf_add(lm__vf_load(dx + i), g));
        }
    }
    for (; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : 0;
}

/* y = gelu_erf(x) (the exact form) */
LM__VEC_FN void lm__gelu_erf_fwd(const float *x, float *y, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW) lm__vf_store(y + i, lm__vf_gelu_erf(lm__vf_load(x + i)));
    for (; i < n; i++) y[i] = lm__s_gelu_erf(x[i]);
}

/* dx += dy * gelu_erf'(x) */
LM__VEC_FN void lm__gelu_erf_bwd(const float *x, const float *dy, float *dx, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW) {
            lm__vf g = lm__vf_gelu_erf_grad(lm__vf_load(x + i));
            lm__vf_store(dx + i, lm__vf_fma(lm__vf_load(dy + i), g, lm__vf_load(dx + i)));
        }
    for (; i < n; i++) dx[i] += dy[i] * lm__s_gelu_erf_grad(x[i]);
}

/* max of x[0..n); -inf when n <= 0. NaN entries may be skipped. */
LM__VEC_FN float lm__vmax(const float *x, int n) {
    float m = -INFINITY;
    int i = 0;
    if (lm__vec_simd && n >= LM__VW) {
        lm__vf m0 = lm__vf_load(x), m1 = m0;               /* two chains: twice the speed */
        for (i = LM__VW; i + 2 * LM__VW <= n; i += 2 * LM__VW) {
            m0 = lm__vf_max(m0, lm__vf_load(x + i));
            m1 = lm__vf_max(m1, lm__vf_load(x + i + LM__VW));
        }
        for (; i + LM__VW <= n; i += LM__VW) m0 = lm__vf_max(m0, lm__vf_load(x + i));
        m = lm__vf_reduce_max(lm__vf_max(m0, m1));
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* y = exp(x - shift) (y may be NULL: nothing is stored); returns the sum of them. This is
   softmax's denominator, over up to a whole vocabulary (50257), so the sum must not drift:
   each lane sums in float over blocks of LM__VSUM_BLOCK elements, and the blocks are added
   in double. Each lane then adds at most 256 / LM__VW terms in float (relative error a
   few 1e-8), and the double total adds nothing measurable. */
#define LM__VSUM_BLOCK 256
LM__VEC_FN double lm__vsum_exp_shift(const float *x, float shift, float *y, int n) {
    double total = 0;
    int i = 0;
    if (lm__vec_simd) {
        lm__vf sh = lm__vf_set1(shift);
        while (i + LM__VW <= n) {
            int end = n - i > LM__VSUM_BLOCK ? i + LM__VSUM_BLOCK : n;
            lm__vf acc = lm__vf_set1(0.0f);
            for (; i + LM__VW <= end; i += LM__VW) {
                lm__vf e = lm__vf_exp(lm__vf_sub(lm__vf_load(x + i), sh));
                if (y) lm__vf_store(y + i, e);
                acc = lm__vf_add(acc, e);
            }
            total += lm__vf_sum_double(acc);
        }
    }
    for (; i < n; i++) {
        float e = lm__s_exp(x[i] - shift);
        if (y) y[i] = e;
        total += e;
    }
    return total;
}

/* sum of x[i]^2 (the gradient norm of clipping), summed as lm__vsum_exp_shift sums: float
   lanes over blocks of LM__VSUM_BLOCK, the blocks in double. */
LM__VEC_FN double lm__vsumsq(const float *x, int n) {
    double total = 0;
    int i = 0;
    if (lm__vec_simd)
        while (i + LM__VW <= n) {
            int end = n - i > LM__VSUM_BLOCK ? i + LM__VSUM_BLOCK : n;
            lm__vf acc = lm__vf_set1(0.0f);
            for (; i + LM__VW <= end; i += LM__VW) {
                lm__vf v = lm__vf_load(x + i);
                acc = lm__vf_fma(v, v, acc);
            }
            total += lm__vf_sum_double(acc);
        }
    for (; i < n; i++) total += (double)x[i] * x[i];
    return total;
}

/* sum of a[i] b[i], in float with four independent accumulators */
LM__VEC_FN float lm__vdot(const float *a, const float *b, int n) {
    float s = 0;
    int i = 0;
    if (lm__vec_simd && n >= LM__VW) {
        lm__vf s0 = lm__vf_set1(0.0f), s1 = s0, s2 = s0, s3 = s0;
        for (; i + 4 * LM__VW <= n; i += 4 * LM__VW) {
            s0 = lm__vf_fma(lm__vf_load(a + i), lm__vf_load(b + i), s0);
            s1 = lm__vf_fma(lm__vf_load(a + i + LM__VW), lm__vf_load(b + i + LM__VW), s1);
            s2 = lm__vf_fma(lm__vf_load(a + i + 2 * LM__VW), lm__vf_load(b + i + 2 * LM__VW), s2);
            s3 = lm__vf_fma(lm__vf_load(a + i + 3 * LM__VW), lm__vf_load(b + i + 3 * LM__VW), s3);
        }
        for (; i + LM__VW <= n; i += LM__VW)
            s0 = lm__vf_fma(lm__vf_load(a + i), lm__vf_load(b + i), s0);
        s = lm__vf_reduce_add(lm__vf_add(lm__vf_add(s0, s1), lm__vf_add(s2, s3)));
    }
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y += a x */
LM__VEC_FN void lm__vaxpy(float a, const float *x, float *y, int n) {
    int i = 0;
    if (lm__vec_simd) {
        lm__vf va = lm__vf_set1(a);
        for (; i + LM__VW <= n; i += LM__VW)
            lm__vf_store(y + i, lm__vf_fma(va, lm__vf_load(x + i), lm__vf_load(y + i)));
    }
    for (; i < n; i++) y[i] += a * x[i];
}

/* One block of columns of a matrix-vector product, as generation runs a layer for a token:
   y[j] = b[j] + sum over i < in of x[i] W[i * ld + j] for j < n (b NULL: 0), each sum over
   i in order, one fused multiply-add per term (lm__ref_gemv is the plain math). Four
   vectors of columns stay in registers while the rows of W go by, the row LM__GEMV_PF
   ahead prefetched, so W streams in once. Leftover columns: one vector, then one at a
   time. */
#define LM__GEMV_PF 8
LM__VEC_FN void lm__gemv_cols(const float *x, const float *W, size_t ld, int in, const float *b,
                              float *y, int n) {
    int i, j = 0;
    if (lm__vec_simd) {
        for (; j + 4 * LM__VW <= n; j += 4 * LM__VW) {
            const float *w = W + j;
            lm__vf z = lm__vf_set1(0.0f), a0 = z, a1 = z, a2 = z, a3 = z;
            if (b) {
                a0 = lm__vf_load(b + j); a1 = lm__vf_load(b + j + LM__VW);
                a2 = lm__vf_load(b + j + 2 * LM__VW); a3 = lm__vf_load(b + j + 3 * LM__VW);
            }
            for (i = 0; i < in; i++, w += ld) {
                lm__vf xi = lm__vf_set1(x[i]);
                if (i + LM__GEMV_PF < in) {
                    const float *f = w + LM__GEMV_PF * ld;
                    LM__PREFETCH(f);
                    LM__PREFETCH(f + 4 * LM__VW - 1);
                }
                a0 = lm__vf_fma(xi, lm__vf_load(w), a0);
                a1 = lm__vf_fma(xi, lm__vf_load(w + LM__VW), a1);
                a2 = lm__vf_fma(xi, lm__vf_load(w + 2 * LM__VW), a2);
                a3 = lm__vf_fma(xi, lm__vf_load(w + 3 * LM__VW), a3);
            }
            lm__vf_store(y + j, a0); lm__vf_store(y + j + LM__VW, a1);
            lm__vf_store(y + j + 2 * LM__VW, a2); lm__vf_store(y + j + 3 * LM__VW, a3);
        }
        for (; j + LM__VW <= n; j += LM__VW) {
            const float *w = W + j;
            lm__vf a0 = b ? lm__vf_load(b + j) : lm__vf_set1(0.0f);
            for (i = 0; i < in; i++, w += ld) a0 = lm__vf_fma(lm__vf_set1(x[i]), lm__vf_load(w), a0);
            lm__vf_store(y + j, a0);
        }
    }
    for (; j < n; j++) {
        float s = b ? b[j] : 0.0f;
        for (i = 0; i < in; i++) s += x[i] * W[(size_t)i * ld + j];
        y[j] = s;
    }
}

/* y = a + b (y may be a or b) */
LM__VEC_FN void lm__vadd(const float *a, const float *b, float *y, int n) {
    int i = 0;
    if (lm__vec_simd)
        for (; i + LM__VW <= n; i += LM__VW)
            lm__vf_store(y + i, lm__vf_add(lm__vf_load(a + i), lm__vf_load(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}

/* y += x */
LM__VEC_FN void lm__vacc(const float *x, float *y, int n) { lm__vadd(y, x, y, n); }

/* y += x in IEEE adds only, so that every element comes out the same whichever lane or
   tail loop it falls in: gradient accumulation's addition (lm_grad_accumulate), whose bits
   must not depend on where a program cuts its arrays. The vector loop where vector adds
   are IEEE; plain C on armv7 (the path where LM__V_EXACT is 0), whose NEON flushes
   subnormals to zero. */
LM__VEC_FN void lm__vacc_ieee(const float *x, float *y, int n) {
#if LM__V_EXACT
    lm__vacc(x, y, n);
#else
    int i;
    for (i = 0; i < n; i++) y[i] += x[i];
#endif
}

/* One AdamW step over n parameters (see TRAINING), in exactly PyTorch's order of float
   operations per element:
       w *= decay;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;
       w -= step_size m / (sqrt(v) / bc2_sqrt + eps)
   with decay = 1 - lr wd, step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t). Division
   and square root are the IEEE ones (so armv7, whose NEON has neither, runs the scalar
   loop). clang is told not to fuse a * b + c into an fma here; gcc does not fuse in its
   ISO modes (-std=c99) but may in its GNU modes and C++, which moves a last bit. */
LM__VEC_FN void lm__adamw_update(float *w, const float *g, float *m, float *v, int n,
                                 float decay, float b1, float b2, float step_size,
                                 float bc2_sqrt, float eps) {
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
    float c1 = 1.0f - b1, c2 = 1.0f - b2;
    int i = 0;
#if LM__V_EXACT
    if (lm__vec_simd) {
        lm__vf vdecay = lm__vf_set1(decay), vb1 = lm__vf_set1(b1), vb2 = lm__vf_set1(b2);
        lm__vf vc1 = lm__vf_set1(c1), vc2 = lm__vf_set1(c2), vstep = lm__vf_set1(step_size);
        lm__vf vbc2 = lm__vf_set1(bc2_sqrt), veps = lm__vf_set1(eps);
        for (; i + LM__VW <= n; i += LM__VW) {
            lm__vf gi = lm__vf_load(g + i);
            lm__vf wi = lm__vf_mul(lm__vf_load(w + i), vdecay);
            lm__vf mi = lm__vf_add(lm__vf_mul(vb1, lm__vf_load(m + i)), lm__vf_mul(vc1, gi));
            lm__vf vi = lm__vf_add(lm__vf_mul(vb2, lm__vf_load(v + i)),
                                   lm__vf_mul(lm__vf_mul(vc2, gi), gi));
            lm__vf den = lm__vf_add(lm__vf_div(lm__vf_sqrt(vi), vbc2), veps);
            wi = lm__vf_sub(wi, lm__vf_div(lm__vf_mul(vstep, mi), den));
            lm__vf_store(w + i, wi);
            lm__vf_store(m + i, mi);
            lm__vf_store(v + i, vi);
        }
    }
#endif
    for (; i < n; i++) {
        w[i] *= decay;
        m[i] = b1 * m[i] + c1 * g[i];
        v[i] = b2 * v[i] + c2 * g[i] * g[i];
        w[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

/* One LayerNorm row, as PyTorch: mean, biased variance var = mean((x - mean)^2),
   rstd = 1 / sqrt(var + eps), y = (x - mean) rstd w + b.
   Accuracy: pass 1 finds the mean to float precision, c. Pass 2 sums the deviations
   x - c and their squares; x - c is exact for x near c, so the remainder d = mean(x - c)
   corrects both the mean (c + d) and the variance (mean((x - c)^2) - d^2), with none of
   the cancellation of E[x^2] - mean^2. Pass 3 uses (x - c) - d, so rows whose mean is
   large next to their spread stay accurate too. Sums run in float lanes over blocks of
   LM__VSUM_BLOCK, added in double. mean_out and rstd_out may be NULL (inference); with
   n <= 0 they are set to 0 and nothing else happens. */
LM__VEC_FN void lm__layernorm_row(const float *x, const float *w, const float *b, float *y,
                                  int n, float eps, float *mean_out, float *rstd_out) {
    double sum = 0, sd = 0, ss = 0, d, var;
    float c, fd, rstd;
    int i = 0, j;
    if (n <= 0) {
        if (mean_out) *mean_out = 0;
        if (rstd_out) *rstd_out = 0;
        return;
    }
    /* pass 1: the mean, to float precision */
    if (lm__vec_simd)
        while (i + LM__VW <= n) {
            int end = n - i > LM__VSUM_BLOCK ? i + LM__VSUM_BLOCK : n;
            lm__vf acc = lm__vf_set1(0.0f);
            for (; i + LM__VW <= end; i += LM__VW) acc = lm__vf_add(acc, lm__vf_load(x + i));
            sum += lm__vf_sum_double(acc);
        }
    for (; i < n; i++) sum += x[i];
    c = (float)(sum / n);
    /* pass 2: deviations from c and their squares */
    i = 0;
    if (lm__vec_simd) {
        lm__vf vc = lm__vf_set1(c);
        while (i + LM__VW <= n) {
            int end = n - i > LM__VSUM_BLOCK ? i + LM__VSUM_BLOCK : n;
            lm__vf a1 = lm__vf_set1(0.0f), a2 = a1;
            for (; i + LM__VW <= end; i += LM__VW) {
                lm__vf dv = lm__vf_sub(lm__vf_load(x + i), vc);
                a1 = lm__vf_add(a1, dv);
                a2 = lm__vf_fma(dv, dv, a2);
            }
            sd += lm__vf_sum_double(a1);
            ss += lm__vf_sum_double(a2);
        }
    }
    for (; i < n; i++) {
        float dv = x[i] - c;
        sd += dv;
        ss += (double)dv * dv;
    }
    d = sd / n;
    var = ss / n - d * d;
    if (var < 0) var = 0;
    rstd = (float)(1.0 / sqrt(var + eps));
    fd = (float)d;
    /* pass 3: normalise, scale, shift */
    i = 0;
    if (lm__vec_simd) {
        lm__vf vc = lm__vf_set1(c), vd = lm__vf_set1(fd), vr = lm__vf_set1(rstd);
        for (; i + LM__VW <= n; i += LM__VW) {
            lm__vf xh = lm__vf_sub(lm__vf_sub(lm__vf_load(x + i), vc), vd);
            xh = lm__vf_mul(xh, vr);
            lm__vf_store(y + i, lm__vf_fma(xh, lm__vf_load(w + i), lm__vf_load(b + i)));
        }
    }
    for (j = i; j < n; j++) y[j] = ((x[j] - c) - fd) * rstd * w[j] + b[j];
    if (mean_out) *mean_out = (float)(c + d);
    if (rstd_out) *rstd_out = rstd;
}

/* LayerNorm backward for one row, given the forward's mean and rstd (xh = (x - mean) rstd):
       pw += dy xh     pb += dy                          (weight and bias gradients)
       dx += rstd (dy w - mean(dy w) - xh mean(dy w xh))   (when dx is not NULL)
   The two means are summed like lm__vsum_exp_shift's total: float lanes over blocks of
   LM__VSUM_BLOCK, the blocks in double. */
LM__VEC_FN void lm__ln_bwd_row(const float *x, const float *dy, const float *w, float mean,
                               float rstd, float *pw, float *pb, float *dx, int n) {
    double s1 = 0, s2 = 0;
    float m1, m2;
    int i = 0, j;
    if (lm__vec_simd) {
        lm__vf vm = lm__vf_set1(mean), vr = lm__vf_set1(rstd);
        while (i + LM__VW <= n) {
            int end = n - i > LM__VSUM_BLOCK ? i + LM__VSUM_BLOCK : n;
            lm__vf a1 = lm__vf_set1(0.0f), a2 = a1;
            for (; i + LM__VW <= end; i += LM__VW) {
                lm__vf g = lm__vf_load(dy + i);
                lm__vf xh = lm__vf_mul(lm__vf_sub(lm__vf_load(x + i), vm), vr);
                lm__vf gw = lm__vf_mul(g, lm__vf_load(w + i));
                a1 = lm__vf_add(a1, gw);
                a2 = lm__vf_fma(gw, xh, a2);
                lm__vf_store(pw + i, lm__vf_fma(g, xh, lm__vf_load(pw + i)));
                lm__vf_store(pb + i, lm__vf_add(lm__vf_load(pb + i), g));
            }
            s1 += lm__vf_sum_double(a1);
            s2 += lm__vf_sum_double(a2);
        }
    }
    for (j = i; j < n; j++) {
        float xh = (x[j] - mean) * rstd, gw = dy[j] * w[j];
        s1 += gw;
        s2 += (double)gw * xh;
        pw[j] += dy[j] * xh;
        pb[j] += dy[j];
    }
    if (!dx) return;
    m1 = (float)(s1 / n);
    m2 = (float)(s2 / n);
    i = 0;
    if (lm__vec_simd) {
        lm__vf vm = lm__vf_set1(mean), vr = lm__vf_set1(rstd), v1 = lm__vf_set1(m1), v2 = lm__vf_set1(m2);
        for (; i + LM__VW <= n; i += LM__VW) {
            lm__vf xh = lm__vf_mul(lm__vf_sub(lm__vf_load(x + i), vm), vr);
            lm__vf t = lm__vf_sub(lm__vf_mul(lm__vf_load(dy + i), lm__vf_load(w + i)), v1);
            t = lm__vf_sub(t, lm__vf_mul(xh, v2));
            lm__vf_store(dx + i, lm__vf_fma(vr, t, lm__vf_load(dx + i)));
        }
    }
    for (j = i; j < n; j++) {
        float xh = (x[j] - mean) * rstd;
        dx[j] += rstd * (dy[j] * w[j] - m1 - xh * m2);
    }
}

/* =======================================================================================
   14. Text and numbers in files
   What the file formats of sections 15 to 17 share: UTF-8, decimal numbers, a strict JSON
   lexer, and whole files - read in one go, and written through a temporary file that is
   renamed over the target only when complete, so a crash never leaves half a file.
   ======================================================================================= */
/* Decode one well-formed UTF-8 character at s[0..n), n >= 1: returns its length (1..4) and
   sets *cp, or returns 0 if the bytes there are not well-formed (RFC 3629: no overlong
   forms, no surrogates, nothing above U+10FFFF). */
static int lm__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    int len, k;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;           /* overlong */
        if (c == 0xED) hi = 0x9F;           /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;           /* overlong */
        if (c == 0xF4) hi = 0x8F;           /* above U+10FFFF */
    } else return 0;
    if (n < (size_t)len || s[1] < lo || s[1] > hi) return 0;
    *cp = c & (0x7F >> len);
    for (k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        *cp = *cp << 6 | (s[k] & 0x3F);
    }
    return len;
}
static int lm__utf8_valid(const char *z) {
    const unsigned char *s = (const unsigned char *)z;
    size_t n = strlen(z), i = 0;
    uint32_t cp;
    int k;
    while (i < n) { if (!(k = lm__utf8_decode(s + i, n - i, &cp))) return 0; i += (size_t)k; }
    return 1;
}

/* Decimal text of v into out (room for 21 bytes); returns the end (at the NUL). */
static char *lm__utoa(uint64_t v, char *out) {
    char tmp[24];
    int k = 0;
    do { tmp[k++] = (char)('0' + (int)(v % 10)); v /= 10; } while (v);
    while (k) *out++ = tmp[--k];
    *out = 0;
    return out;
}
/* A strict decimal: digits only, no sign, no leading zero, at most max. Returns the bytes
   read (0: none, or not such a number); z need not be NUL-terminated after the digits. */
static size_t lm__atou_n(const char *z, size_t n, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    if (!z || !n || z[0] < '0' || z[0] > '9') return 0;
    if (z[0] == '0' && n > 1 && z[1] >= '0' && z[1] <= '9') return 0;       /* leading zero */
    for (; i < n && z[i] >= '0' && z[i] <= '9'; i++) {
        unsigned d = (unsigned)(z[i] - '0');
        if (v > (max - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return i;
}
/* The same for a whole NUL-terminated string. */
static int lm__atou(const char *z, uint64_t max, uint64_t *out) {
    size_t n = z ? strlen(z) : 0;
    return n && lm__atou_n(z, n, max, out) == n;
}

/* ---------------------------------------------------------------------------------------
   A strict JSON lexer, for the two JSON documents the library reads: a safetensors header
   and GPT-2's encoder.json. Their parsers (sections 15 and 16) are recursive descent
   over exactly their schema, with depth fixed by construction, so a document of a million
   '[' is just "expected '{'"; this lexer gives them the pieces: white space, punctuation,
   strings and non-negative integers. Strings are unescaped into one pool as large as the
   document (unescaping never lengthens a string, and the closing quote pays for the NUL),
   as valid UTF-8 with no NUL inside, so they stay valid as long as the pool.
   --------------------------------------------------------------------------------------- */
typedef struct lm__json {
    const unsigned char *s;  /* the document                                              */
    size_t n, i;             /* its length, the read position                            */
    char *pool;              /* unescaped strings                                        */
    size_t used;
    const char *file, *doc;  /* for messages: "safetensors" and "header", ...            */
} lm__json;

static void lm__json_init(lm__json *p, const void *s, size_t n, char *pool, const char *file,
                          const char *doc) {
    p->s = (const unsigned char *)s; p->n = n; p->i = 0;
    p->pool = pool; p->used = 0;
    p->file = file; p->doc = doc;
}
static int lm__json_fail(const lm__json *p, const char *what, const char *ctx) {
    if (p->i >= p->n)
        return lm__fail(LM_ERR_FORMAT, "%s: %s ends early (at byte %zu): %s%s", p->file, p->doc,
                        p->i, what, ctx);
    return lm__fail(LM_ERR_FORMAT, "%s: bad %s at byte %zu: %s%s", p->file, p->doc, p->i, what, ctx);
}
static void lm__json_ws(lm__json *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}
/* Skip white space; is the next byte c? (Not consumed.) */
static int lm__json_peek(lm__json *p, int c) {
    lm__json_ws(p);
    return p->i < p->n && p->s[p->i] == c;
}
static int lm__json_want(lm__json *p, int c) {
    char what[16] = "expected ' '";
    if (lm__json_peek(p, c)) { p->i++; return LM_OK; }
    what[10] = (char)c;
    return lm__json_fail(p, what, "");
}
/* After an item: ',' (returns 1: another follows) or the closing byte (returns 0). */
static int lm__json_next(lm__json *p, int close, int *more) {
    char what[24] = "expected ',' or ' '";
    lm__json_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') { p->i++; *more = 1; return LM_OK; }
    if (p->i < p->n && p->s[p->i] == close) { p->i++; *more = 0; return LM_OK; }
    what[17] = (char)close;
    return lm__json_fail(p, what, "");
}

static int lm__json_hex4(lm__json *p, uint32_t *out) {
    uint32_t v = 0;
    int k;
    if (p->n - p->i < 4) return lm__json_fail(p, "unterminated \\u escape", "");
    for (k = 0; k < 4; k++) {
        int c = p->s[p->i + k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return lm__json_fail(p, "bad hex digit in \\u escape", "");
    }
    p->i += 4;
    *out = v;
    return LM_OK;
}

/* A JSON string, unescaped into the pool as valid UTF-8 with no NUL inside. what names
   the string in messages ("tensor name", ...). */
static int lm__json_string(lm__json *p, const char *what, char **out) {
    char ctx[80] = " (";
    char *d;
    strcat(ctx, what);
    strcat(ctx, ")");
    lm__json_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"') return lm__json_fail(p, "expected a string", ctx);
    p->i++;
    d = p->pool + p->used;
    *out = d;
    for (;;) {
        unsigned c;
        if (p->i >= p->n) return lm__json_fail(p, "unterminated string", ctx);
        c = p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) return lm__json_fail(p, "raw control character in a string", ctx);
        if (c == '\\') {
            uint32_t cp, lo;
            if (p->i + 1 >= p->n) { p->i = p->n; return lm__json_fail(p, "unterminated string", ctx); }
            c = p->s[p->i + 1];
            p->i += 2;
            switch (c) {
            case '"': case '\\': case '/': *d++ = (char)c; continue;
            case 'b': *d++ = '\b'; continue;
            case 'f': *d++ = '\f'; continue;
            case 'n': *d++ = '\n'; continue;
            case 'r': *d++ = '\r'; continue;
            case 't': *d++ = '\t'; continue;
            case 'u': break;
            default: p->i -= 2; return lm__json_fail(p, "bad escape", ctx);
            }
            if (lm__json_hex4(p, &cp)) return LM_ERR_FORMAT;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* a high surrogate must be followed by an escaped low one */
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                    return lm__json_fail(p, "unpaired surrogate in \\u escape", ctx);
                p->i += 2;
                if (lm__json_hex4(p, &lo)) return LM_ERR_FORMAT;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return lm__json_fail(p, "unpaired surrogate in \\u escape", ctx);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return lm__json_fail(p, "unpaired surrogate in \\u escape", ctx);
            }
            if (cp == 0) return lm__json_fail(p, "NUL character (\\u0000)", ctx);
            /* code point to UTF-8 */
            if (cp < 0x80) *d++ = (char)cp;
            else if (cp < 0x800) {
                *d++ = (char)(0xC0 | cp >> 6); *d++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *d++ = (char)(0xE0 | cp >> 12); *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *d++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *d++ = (char)(0xF0 | cp >> 18); *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *d++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *d++ = (char)(0x80 | (cp & 0x3F));
            }
        } else {
            uint32_t cp;
            size_t k = (size_t)lm__utf8_decode(p->s + p->i, p->n - p->i, &cp);
            if (!k) return lm__json_fail(p, "invalid UTF-8", ctx);
            memcpy(d, p->s + p->i, k);
            d += k;
            p->i += k;
        }
    }
    *d++ = 0;
    p->used = (size_t)(d - p->pool);
    return LM_OK;
}

/* A non-negative integer that fits in a u64: digits only, no leading zero, no fraction
   or exponent. */
static int lm__json_uint(lm__json *p, const char *what, uint64_t *out) {
    char ctx[300] = " (";
    uint64_t v = 0;
    strcat(ctx, what);
    strcat(ctx, ")");
    lm__json_ws(p);
    if (p->i < p->n && p->s[p->i] == '-') return lm__json_fail(p, "negative number", ctx);
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
        return lm__json_fail(p, "expected a non-negative integer", ctx);
    if (p->s[p->i] == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
        return lm__json_fail(p, "number with a leading zero", ctx);
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = (unsigned)(p->s[p->i] - '0');
        if (v > (~(uint64_t)0 - d) / 10) return lm__json_fail(p, "number too large", ctx);
        v = v * 10 + d;
        p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
        return lm__json_fail(p, "not an integer", ctx);
    *out = v;
    return LM_OK;
}

#ifndef LM_NO_STDIO
#include <errno.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#ifndef __cplusplus
/* fsync and fileno are POSIX, not C99: under -std=c99 the system headers may hide them.
   Repeating a compatible declaration is always allowed in C (C++ builds see them anyway). */
extern int fsync(int fd);
extern int (fileno)(FILE *stream);
#endif
#include <fcntl.h>            /* open: a directory is synced through a descriptor */
#define LM__FSYNC 1
#endif

/* Read a whole file (a pipe too) into a new buffer, to be freed with LM_FREE. */
static int lm__read_file(const char *path, unsigned char **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    size_t cap = 0, got;
    unsigned char *p = NULL;
    *buf = NULL;
    *n = 0;
    if (!f) return lm__fail(LM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    for (;;) {
        unsigned char *q = (unsigned char *)lm__grow(p, &cap, *n + 65536, 1);
        if (!q) { fclose(f); LM_FREE(p); return lm__fail(LM_ERR_MEM, "'%s': out of memory", path); }
        p = q;
        got = fread(p + *n, 1, cap - *n, f);
        *n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { fclose(f); LM_FREE(p); return lm__fail(LM_ERR_IO, "cannot read '%s'", path); }
    fclose(f);
    *buf = p;
    return LM_OK;
}

/* path + suffix, in a new buffer (LM_FREE it). */
static char *lm__path_plus(const char *path, const char *suffix) {
    size_t a = strlen(path), b = strlen(suffix);
    char *s = (char *)LM_MALLOC(a + b + 1);
    if (s) { memcpy(s, path, a); memcpy(s + a, suffix, b + 1); }
    return s;
}

/* Atomic replace: everything goes to path.tmp; only a complete, flushed and synced file is
   renamed over path (rename within a directory is atomic on POSIX), and then the directory
   itself is synced, so that the rename survives a power cut too. A crash, a kill or a full
   disk at any moment leaves either the old file or the new one, never half of one; and
   once a save has returned LM_OK, the new file is on the disk. Use: lm__out_open, then
   lm__out_put as often as needed, then lm__out_close, which reports the first failure (and
   removes the temporary file) or renames and syncs. A writer of two files that must change
   together (a checkpoint and its resume state) takes the steps of lm__out_close itself:
   lm__out_finish on both before lm__out_commit on either, then one lm__out_sync; and
   lm__out_drop gives a file up. */
typedef struct lm__out {
    FILE *fp;                /* the temporary file, path.tmp                                */
    char *tmp;               /* its name, then the directory's (one block)                  */
    const char *path;        /* the target                                                  */
    int dir;                 /* the directory, open for its fsync after the rename; -1: none */
    int rc;                  /* the first failure of lm__out_put                            */
} lm__out;
static void lm__out_release(lm__out *o) {
#ifdef LM__FSYNC
    if (o->dir >= 0) close(o->dir);
#endif
    o->dir = -1;
    LM_FREE(o->tmp);
    o->tmp = NULL;
}
/* Give the file up: close and remove the temporary file. */
static void lm__out_drop(lm__out *o) {
    if (o->fp) fclose(o->fp);
    o->fp = NULL;
    remove(o->tmp);
    lm__out_release(o);
}
static int lm__out_open(lm__out *o, const char *path) {
    size_t n = strlen(path);
    int rc;
    o->fp = NULL; o->path = path; o->rc = LM_OK; o->dir = -1;
    if (!(o->tmp = (char *)LM_MALLOC(2 * n + 7))) return lm__fail(LM_ERR_MEM, "'%s': out of memory", path);
    memcpy(o->tmp, path, n);
    memcpy(o->tmp + n, ".tmp", 5);
#ifdef LM__FSYNC
    {
        /* the directory, opened now so that nothing after the rename can run out of memory;
           one that may not be read (mode -wx) cannot be synced, which is all that costs */
        const char *slash = strrchr(path, '/');
        char *dir = o->tmp + n + 5;
        size_t d = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
        if (d) memcpy(dir, path, d); else dir[d++] = '.';
        dir[d] = 0;
        if ((o->dir = open(dir, O_RDONLY)) < 0 && errno != EACCES) {
            rc = lm__fail(LM_ERR_IO, "cannot open the directory '%s' of '%s': %s", dir, path,
                          strerror(errno));
            lm__out_release(o);
            return rc;
        }
    }
#endif
    if (!(o->fp = fopen(o->tmp, "wb"))) {
        rc = lm__fail(LM_ERR_IO, "cannot create '%s': %s", o->tmp, strerror(errno));
        lm__out_release(o);
        return rc;
    }
    return LM_OK;
}
static void lm__out_put(lm__out *o, const void *p, size_t n) {
    if (o->rc == LM_OK && n && fwrite(p, 1, n, o->fp) != n)
        o->rc = lm__fail(LM_ERR_IO, "cannot write '%s': %s", o->tmp, strerror(errno));
}
/* Flush, sync and close the temporary file. On failure it is removed (lm__out_drop). */
static int lm__out_finish(lm__out *o) {
    int rc = o->rc;
    if (rc == LM_OK && fflush(o->fp) != 0)
        rc = lm__fail(LM_ERR_IO, "cannot write '%s': %s", o->tmp, strerror(errno));
#ifdef LM__FSYNC
    if (rc == LM_OK && fsync(fileno(o->fp)) != 0)
        rc = lm__fail(LM_ERR_IO, "cannot write '%s': %s", o->tmp, strerror(errno));
#endif
    if (fclose(o->fp) != 0 && rc == LM_OK)
        rc = lm__fail(LM_ERR_IO, "cannot write '%s': %s", o->tmp, strerror(errno));
    o->fp = NULL;
    if (rc != LM_OK) lm__out_drop(o);
    return rc;
}
/* Rename the finished temporary file over the target. If that fails, the temporary file
   is removed, unless kept says why it is kept (a caller whose other file is already
   committed needs it), and o is released. */
static int lm__out_commit(lm__out *o, const char *kept) {
    int rc;
#ifdef _WIN32
    /* Windows' rename will not replace a file: drop the old one first (not atomic there) */
    remove(o->path);
#endif
    if (rename(o->tmp, o->path) == 0) return LM_OK;
    rc = lm__fail(LM_ERR_IO, "cannot rename '%s' to '%s': %s%s%s", o->tmp, o->path,
                  strerror(errno), kept ? "; " : "", kept ? kept : "");
    if (!kept) remove(o->tmp);
    lm__out_release(o);
    return rc;
}
/* After the renames: sync the directory, so that they survive a power cut (a file system
   that cannot sync one, EINVAL, is no error), and release o. */
static int lm__out_sync(lm__out *o) {
    int rc = LM_OK;
#ifdef LM__FSYNC
    if (o->dir >= 0 && fsync(o->dir) != 0 && errno != EINVAL)
        rc = lm__fail(LM_ERR_IO, "'%s' is written, but syncing its directory failed (it may not "
                      "survive a power cut): %s", o->path, strerror(errno));
#endif
    lm__out_release(o);
    return rc;
}
static int lm__out_close(lm__out *o) {
    int rc = lm__out_finish(o);
    if (rc == LM_OK) rc = lm__out_commit(o, NULL);
    return rc == LM_OK ? lm__out_sync(o) : rc;
}
#endif /* LM_NO_STDIO */

/* =======================================================================================
   15. Tokenizers
   Raw bytes, byte-level BPE (trained here), and GPT-2's BPE.
   A tokenizer is a table of tokens (each a short byte string, addressed by id) plus a
   ranked list of merges "token l followed by token r becomes token m". The bytes kind is
   the same thing with no merges. Encoding cuts the text into pre-tokens (GPT-2's pattern,
   written out by hand below) and runs the merges inside each pre-token; decoding just
   concatenates the tokens' bytes. The docs block above the API spells out the rules.
   ======================================================================================= */
#define LM__TOK_MAXLEN 1024                 /* longest token, in bytes                    */
#define LM__TOK_MAXVOCAB 1048576            /* most ids a tokenizer may have              */
#define LM__TOK_MAXBYTES ((size_t)1 << 26)  /* all tokens' bytes together                 */

enum { LM__TOK_BYTES = 0, LM__TOK_BPE = 1, LM__TOK_GPT2 = 2 };

struct lm_tokenizer {
    int kind;                   /* LM__TOK_BYTES, LM__TOK_BPE or LM__TOK_GPT2              */
    int vocab;                  /* number of ids                                           */
    int n_merges;
    uint32_t *off;              /* (vocab + 1): token i is bytes[off[i] .. off[i+1])       */
    unsigned char *bytes;       /* (off[vocab]) every token's bytes, back to back          */
    int byte_id[256];           /* the id of each single byte's token                      */
    int *merge_l, *merge_r;     /* (n_merges) merge of rank k joins merge_l[k], merge_r[k] */
    int *merge_to;              /* (n_merges) ... into token merge_to[k]                   */
    uint64_t *pair;             /* (1 << pair_bits) hash table (l, r) -> rank; a slot is   */
    int pair_bits;              /* 1 << 63 | l << 40 | r << 20 | rank, or 0 when empty     */
};

/* ---------------------------------------------------------------------------------------
   Hashes: of a byte string (for the tables of tokens and pre-tokens), and of a pair of ids.
   --------------------------------------------------------------------------------------- */
static uint64_t lm__tok_hash(const unsigned char *s, size_t n) {   /* FNV-1a, then mixed */
    uint64_t h = lm__fnv1a(LM__FNV_SEED, s, n);
    return h ^ (h >> 29);
}

/* Ids and ranks are below 2^20 (LM__TOK_MAXVOCAB), so a pair packs into 40 bits. */
static uint64_t lm__tok_pair_key(int l, int r) { return (uint64_t)l << 20 | (uint64_t)r; }
static size_t lm__tok_pair_slot(uint64_t key, int bits) {       /* Fibonacci hashing */
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* ---------------------------------------------------------------------------------------
   Unicode classes for the pre-tokenizer: letter (\p{L}), number (\p{N}), space (\s, the
   White_Space property) or other. The table holds runs: entry k is (first code point << 2)
   | class, and a run lasts until the next entry; a binary search finds the run of a code
   point. ASCII, by far the most common case, has its own table of class digits.
   --------------------------------------------------------------------------------------- */
enum { LM__CL_OTHER = 0, LM__CL_LETTER = 1, LM__CL_NUMBER = 2, LM__CL_SPACE = 3 };

/* Generated by tools/gen_unicode.py (Python regex 2022.10.31, unicodedata 14.0.0): 1562 runs. */
static const uint32_t lm__tok_uni_runs[1562] = {
    0x0000000, 0x0000027, 0x0000038, 0x0000083, 0x0000084, 0x00000c2, 0x00000e8, 0x0000105,
    0x000016c, 0x0000185, 0x00001ec, 0x0000217, 0x0000218, 0x0000283, 0x0000284, 0x00002a9,
    0x00002ac, 0x00002ca, 0x00002d0, 0x00002d5, 0x00002d8, 0x00002e6, 0x00002e9, 0x00002ec,
    0x00002f2, 0x00002fc, 0x0000301, 0x000035c, 0x0000361, 0x00003dc, 0x00003e1, 0x0000b08,
    0x0000b19, 0x0000b48, 0x0000b81, 0x0000b94, 0x0000bb1, 0x0000bb4, 0x0000bb9, 0x0000bbc,
    0x0000dc1, 0x0000dd4, 0x0000dd9, 0x0000de0, 0x0000de9, 0x0000df8, 0x0000dfd, 0x0000e00,
    0x0000e19, 0x0000e1c, 0x0000e21, 0x0000e2c, 0x0000e31, 0x0000e34, 0x0000e39, 0x0000e88,
    0x0000e8d, 0x0000fd8, 0x0000fdd, 0x0001208, 0x0001229, 0x00014c0, 0x00014c5, 0x000155c,
    0x0001565, 0x0001568, 0x0001581, 0x0001624, 0x0001741, 0x00017ac, 0x00017bd, 0x00017cc,
    0x0001881, 0x000192c, 0x0001982, 0x00019a8, 0x00019b9, 0x00019c0, 0x00019c5, 0x0001b50,
    0x0001b55, 0x0001b58, 0x0001b95, 0x0001b9c, 0x0001bb9, 0x0001bc2, 0x0001be9, 0x0001bf4,
    0x0001bfd, 0x0001c00, 0x0001c41, 0x0001c44, 0x0001c49, 0x0001cc0, 0x0001d35, 0x0001e98,
    0x0001ec5, 0x0001ec8, 0x0001f02, 0x0001f29, 0x0001fac, 0x0001fd1, 0x0001fd8, 0x0001fe9,
    0x0001fec, 0x0002001, 0x0002058, 0x0002069, 0x000206c, 0x0002091, 0x0002094, 0x00020a1,
    0x00020a4, 0x0002101, 0x0002164, 0x0002181, 0x00021ac, 0x00021c1, 0x0002220, 0x0002225,
    0x000223c, 0x0002281, 0x0002328, 0x0002411, 0x00024e8, 0x00024f5, 0x00024f8, 0x0002541,
    0x0002544, 0x0002561, 0x0002588, 0x000259a, 0x00025c0, 0x00025c5, 0x0002604, 0x0002615,
    0x0002634, 0x000263d, 0x0002644, 0x000264d, 0x00026a4, 0x00026a9, 0x00026c4, 0x00026c9,
    0x00026cc, 0x00026d9, 0x00026e8, 0x00026f5, 0x00026f8, 0x0002739, 0x000273c, 0x0002771,
    0x0002778, 0x000277d, 0x0002788, 0x000279a, 0x00027c1, 0x00027c8, 0x00027d2, 0x00027e8,
    0x00027f1, 0x00027f4, 0x0002815, 0x000282c, 0x000283d, 0x0002844, 0x000284d, 0x00028a4,
    0x00028a9, 0x00028c4, 0x00028c9, 0x00028d0, 0x00028d5, 0x00028dc, 0x00028e1, 0x00028e8,
    0x0002965, 0x0002974, 0x0002979, 0x000297c, 0x000299a, 0x00029c0, 0x00029c9, 0x00029d4,
    0x0002a15, 0x0002a38, 0x0002a3d, 0x0002a48, 0x0002a4d, 0x0002aa4, 0x0002aa9, 0x0002ac4,
    0x0002ac9, 0x0002ad0, 0x0002ad5, 0x0002ae8, 0x0002af5, 0x0002af8, 0x0002b41, 0x0002b44,
    0x0002b81, 0x0002b88, 0x0002b9a, 0x0002bc0, 0x0002be5, 0x0002be8, 0x0002c15, 0x0002c34,
    0x0002c3d, 0x0002c44, 0x0002c4d, 0x0002ca4, 0x0002ca9, 0x0002cc4, 0x0002cc9, 0x0002cd0,
    0x0002cd5, 0x0002ce8, 0x0002cf5, 0x0002cf8, 0x0002d71, 0x0002d78, 0x0002d7d, 0x0002d88,
    0x0002d9a, 0x0002dc0, 0x0002dc5, 0x0002dca, 0x0002de0, 0x0002e0d, 0x0002e10, 0x0002e15,
    0x0002e2c, 0x0002e39, 0x0002e44, 0x0002e49, 0x0002e58, 0x0002e65, 0x0002e6c, 0x0002e71,
    0x0002e74, 0x0002e79, 0x0002e80, 0x0002e8d, 0x0002e94, 0x0002ea1, 0x0002eac, 0x0002eb9,
    0x0002ee8, 0x0002f41, 0x0002f44, 0x0002f9a, 0x0002fcc, 0x0003015, 0x0003034, 0x0003039,
    0x0003044, 0x0003049, 0x00030a4, 0x00030a9, 0x00030e8, 0x00030f5, 0x00030f8, 0x0003161,
    0x000316c, 0x0003175, 0x0003178, 0x0003181, 0x0003188, 0x000319a, 0x00031c0, 0x00031e2,
    0x00031fc, 0x0003201, 0x0003204, 0x0003215, 0x0003234, 0x0003239, 0x0003244, 0x0003249,
    0x00032a4, 0x00032a9, 0x00032d0, 0x00032d5, 0x00032e8, 0x00032f5, 0x00032f8, 0x0003375,
    0x000337c, 0x0003381, 0x0003388, 0x000339a, 0x00033c0, 0x00033c5, 0x00033cc, 0x0003411,
    0x0003434, 0x0003439, 0x0003444, 0x0003449, 0x00034ec, 0x00034f5, 0x00034f8, 0x0003539,
    0x000353c, 0x0003551, 0x000355c, 0x0003562, 0x000357d, 0x0003588, 0x000359a, 0x00035e4,
    0x00035e9, 0x0003600, 0x0003615, 0x000365c, 0x0003669, 0x00036c8, 0x00036cd, 0x00036f0,
    0x00036f5, 0x00036f8, 0x0003701, 0x000371c, 0x000379a, 0x00037c0, 0x0003805, 0x00038c4,
    0x00038c9, 0x00038d0, 0x0003901, 0x000391c, 0x0003942, 0x0003968, 0x0003a05, 0x0003a0c,
    0x0003a11, 0x0003a14, 0x0003a19, 0x0003a2c, 0x0003a31, 0x0003a90, 0x0003a95, 0x0003a98,
    0x0003a9d, 0x0003ac4, 0x0003ac9, 0x0003ad0, 0x0003af5, 0x0003af8, 0x0003b01, 0x0003b14,
    0x0003b19, 0x0003b1c, 0x0003b42, 0x0003b68, 0x0003b71, 0x0003b80, 0x0003c01, 0x0003c04,
    0x0003c82, 0x0003cd0, 0x0003d01, 0x0003d20, 0x0003d25, 0x0003db4, 0x0003e21, 0x0003e34,
    0x0004001, 0x00040ac, 0x00040fd, 0x0004102, 0x0004128, 0x0004141, 0x0004158, 0x0004169,
    0x0004178, 0x0004185, 0x0004188, 0x0004195, 0x000419c, 0x00041b9, 0x00041c4, 0x00041d5,
    0x0004208, 0x0004239, 0x000423c, 0x0004242, 0x0004268, 0x0004281, 0x0004318, 0x000431d,
    0x0004320, 0x0004335, 0x0004338, 0x0004341, 0x00043ec, 0x00043f1, 0x0004924, 0x0004929,
    0x0004938, 0x0004941, 0x000495c, 0x0004961, 0x0004964, 0x0004969, 0x0004978, 0x0004981,
    0x0004a24, 0x0004a29, 0x0004a38, 0x0004a41, 0x0004ac4, 0x0004ac9, 0x0004ad8, 0x0004ae1,
    0x0004afc, 0x0004b01, 0x0004b04, 0x0004b09, 0x0004b18, 0x0004b21, 0x0004b5c, 0x0004b61,
    0x0004c44, 0x0004c49, 0x0004c58, 0x0004c61, 0x0004d6c, 0x0004da6, 0x0004df4, 0x0004e01,
    0x0004e40, 0x0004e81, 0x0004fd8, 0x0004fe1, 0x0004ff8, 0x0005005, 0x00059b4, 0x00059bd,
    0x0005a03, 0x0005a05, 0x0005a6c, 0x0005a81, 0x0005bac, 0x0005bba, 0x0005bc5, 0x0005be4,
    0x0005c01, 0x0005c48, 0x0005c7d, 0x0005cc8, 0x0005d01, 0x0005d48, 0x0005d81, 0x0005db4,
    0x0005db9, 0x0005dc4, 0x0005e01, 0x0005ed0, 0x0005f5d, 0x0005f60, 0x0005f71, 0x0005f74,
    0x0005f82, 0x0005fa8, 0x0005fc2, 0x0005fe8, 0x0006042, 0x0006068, 0x0006081, 0x00061e4,
    0x0006201, 0x0006214, 0x000621d, 0x00062a4, 0x00062a9, 0x00062ac, 0x00062c1, 0x00063d8,
    0x0006401, 0x000647c, 0x000651a, 0x0006541, 0x00065b8, 0x00065c1, 0x00065d4, 0x0006601,
    0x00066b0, 0x00066c1, 0x0006728, 0x0006742, 0x000676c, 0x0006801, 0x000685c, 0x0006881,
    0x0006954, 0x0006a02, 0x0006a28, 0x0006a42, 0x0006a68, 0x0006a9d, 0x0006aa0, 0x0006c15,
    0x0006cd0, 0x0006d15, 0x0006d34, 0x0006d42, 0x0006d68, 0x0006e0d, 0x0006e84, 0x0006eb9,
    0x0006ec2, 0x0006ee9, 0x0006f98, 0x0007001, 0x0007090, 0x0007102, 0x0007128, 0x0007135,
    0x0007142, 0x0007169, 0x00071f8, 0x0007201, 0x0007224, 0x0007241, 0x00072ec, 0x00072f5,
    0x0007300, 0x00073a5, 0x00073b4, 0x00073b9, 0x00073d0, 0x00073d5, 0x00073dc, 0x00073e9,
    0x00073ec, 0x0007401, 0x0007700, 0x0007801, 0x0007c58, 0x0007c61, 0x0007c78, 0x0007c81,
    0x0007d18, 0x0007d21, 0x0007d38, 0x0007d41, 0x0007d60, 0x0007d65, 0x0007d68, 0x0007d6d,
    0x0007d70, 0x0007d75, 0x0007d78, 0x0007d7d, 0x0007df8, 0x0007e01, 0x0007ed4, 0x0007ed9,
    0x0007ef4, 0x0007ef9, 0x0007efc, 0x0007f09, 0x0007f14, 0x0007f19, 0x0007f34, 0x0007f41,
    0x0007f50, 0x0007f59, 0x0007f70, 0x0007f81, 0x0007fb4, 0x0007fc9, 0x0007fd4, 0x0007fd9,
    0x0007ff4, 0x0008003, 0x000802c, 0x00080a3, 0x00080a8, 0x00080bf, 0x00080c0, 0x000817f,
    0x0008180, 0x00081c2, 0x00081c5, 0x00081c8, 0x00081d2, 0x00081e8, 0x00081fd, 0x0008202,
    0x0008228, 0x0008241, 0x0008274, 0x0008409, 0x000840c, 0x000841d, 0x0008420, 0x0008429,
    0x0008450, 0x0008455, 0x0008458, 0x0008465, 0x0008478, 0x0008491, 0x0008494, 0x0008499,
    0x000849c, 0x00084a1, 0x00084a4, 0x00084a9, 0x00084b8, 0x00084bd, 0x00084e8, 0x00084f1,
    0x0008500, 0x0008515, 0x0008528, 0x0008539, 0x000853c, 0x0008542, 0x000860d, 0x0008616,
    0x0008628, 0x0009182, 0x0009270, 0x00093aa, 0x0009400, 0x0009dda, 0x0009e50, 0x000b001,
    0x000b394, 0x000b3ad, 0x000b3bc, 0x000b3c9, 0x000b3d0, 0x000b3f6, 0x000b3f8, 0x000b401,
    0x000b498, 0x000b49d, 0x000b4a0, 0x000b4b5, 0x000b4b8, 0x000b4c1, 0x000b5a0, 0x000b5bd,
    0x000b5c0, 0x000b601, 0x000b65c, 0x000b681, 0x000b69c, 0x000b6a1, 0x000b6bc, 0x000b6c1,
    0x000b6dc, 0x000b6e1, 0x000b6fc, 0x000b701, 0x000b71c, 0x000b721, 0x000b73c, 0x000b741,
    0x000b75c, 0x000b761, 0x000b77c, 0x000b8bd, 0x000b8c0, 0x000c003, 0x000c004, 0x000c015,
    0x000c01e, 0x000c020, 0x000c086, 0x000c0a8, 0x000c0c5, 0x000c0d8, 0x000c0e2, 0x000c0ed,
    0x000c0f4, 0x000c105, 0x000c25c, 0x000c275, 0x000c280, 0x000c285, 0x000c3ec, 0x000c3f1,
    0x000c400, 0x000c415, 0x000c4c0, 0x000c4c5, 0x000c63c, 0x000c64a, 0x000c658, 0x000c681,
    0x000c700, 0x000c7c1, 0x000c800, 0x000c882, 0x000c8a8, 0x000c922, 0x000c940, 0x000c946,
    0x000c980, 0x000ca02, 0x000ca28, 0x000cac6, 0x000cb00, 0x000d001, 0x0013700, 0x0013801,
    0x0029234, 0x0029341, 0x00293f8, 0x0029401, 0x0029834, 0x0029841, 0x0029882, 0x00298a9,
    0x00298b0, 0x0029901, 0x00299bc, 0x00299fd, 0x0029a78, 0x0029a81, 0x0029b9a, 0x0029bc0,
    0x0029c5d, 0x0029c80, 0x0029c89, 0x0029e24, 0x0029e2d, 0x0029f2c, 0x0029f41, 0x0029f48,
    0x0029f4d, 0x0029f50, 0x0029f55, 0x0029f68, 0x0029fc9, 0x002a008, 0x002a00d, 0x002a018,
    0x002a01d, 0x002a02c, 0x002a031, 0x002a08c, 0x002a0c2, 0x002a0d8, 0x002a101, 0x002a1d0,
    0x002a209, 0x002a2d0, 0x002a342, 0x002a368, 0x002a3c9, 0x002a3e0, 0x002a3ed, 0x002a3f0,
    0x002a3f5, 0x002a3fc, 0x002a402, 0x002a429, 0x002a498, 0x002a4c1, 0x002a51c, 0x002a581,
    0x002a5f4, 0x002a611, 0x002a6cc, 0x002a73d, 0x002a742, 0x002a768, 0x002a781, 0x002a794,
    0x002a799, 0x002a7c2, 0x002a7e9, 0x002a7fc, 0x002a801, 0x002a8a4, 0x002a901, 0x002a90c,
    0x002a911, 0x002a930, 0x002a942, 0x002a968, 0x002a981, 0x002a9dc, 0x002a9e9, 0x002a9ec,
    0x002a9f9, 0x002aac0, 0x002aac5, 0x002aac8, 0x002aad5, 0x002aadc, 0x002aae5, 0x002aaf8,
    0x002ab01, 0x002ab04, 0x002ab09, 0x002ab0c, 0x002ab6d, 0x002ab78, 0x002ab81, 0x002abac,
    0x002abc9, 0x002abd4, 0x002ac05, 0x002ac1c, 0x002ac25, 0x002ac3c, 0x002ac45, 0x002ac5c,
    0x002ac81, 0x002ac9c, 0x002aca1, 0x002acbc, 0x002acc1, 0x002ad6c, 0x002ad71, 0x002ada8,
    0x002adc1, 0x002af8c, 0x002afc2, 0x002afe8, 0x002b001, 0x0035e90, 0x0035ec1, 0x0035f1c,
    0x0035f2d, 0x0035ff0, 0x003e401, 0x003e9b8, 0x003e9c1, 0x003eb68, 0x003ec01, 0x003ec1c,
    0x003ec4d, 0x003ec60, 0x003ec75, 0x003ec78, 0x003ec7d, 0x003eca4, 0x003eca9, 0x003ecdc,
    0x003ece1, 0x003ecf4, 0x003ecf9, 0x003ecfc, 0x003ed01, 0x003ed08, 0x003ed0d, 0x003ed14,
    0x003ed19, 0x003eec8, 0x003ef4d, 0x003f4f8, 0x003f541, 0x003f640, 0x003f649, 0x003f720,
    0x003f7c1, 0x003f7f0, 0x003f9c1, 0x003f9d4, 0x003f9d9, 0x003fbf4, 0x003fc42, 0x003fc68,
    0x003fc85, 0x003fcec, 0x003fd05, 0x003fd6c, 0x003fd99, 0x003fefc, 0x003ff09, 0x003ff20,
    0x003ff29, 0x003ff40, 0x003ff49, 0x003ff60, 0x003ff69, 0x003ff74, 0x0040001, 0x0040030,
    0x0040035, 0x004009c, 0x00400a1, 0x00400ec, 0x00400f1, 0x00400f8, 0x00400fd, 0x0040138,
    0x0040141, 0x0040178, 0x0040201, 0x00403ec, 0x004041e, 0x00404d0, 0x0040502, 0x00405e4,
    0x004062a, 0x0040630, 0x0040a01, 0x0040a74, 0x0040a81, 0x0040b44, 0x0040b86, 0x0040bf0,
    0x0040c01, 0x0040c82, 0x0040c90, 0x0040cb5, 0x0040d06, 0x0040d09, 0x0040d2a, 0x0040d2c,
    0x0040d41, 0x0040dd8, 0x0040e01, 0x0040e78, 0x0040e81, 0x0040f10, 0x0040f21, 0x0040f40,
    0x0040f46, 0x0040f58, 0x0041001, 0x0041278, 0x0041282, 0x00412a8, 0x00412c1, 0x0041350,
    0x0041361, 0x00413f0, 0x0041401, 0x00414a0, 0x00414c1, 0x0041590, 0x00415c1, 0x00415ec,
    0x00415f1, 0x004162c, 0x0041631, 0x004164c, 0x0041651, 0x0041658, 0x004165d, 0x0041688,
    0x004168d, 0x00416c8, 0x00416cd, 0x00416e8, 0x00416ed, 0x00416f4, 0x0041801, 0x0041cdc,
    0x0041d01, 0x0041d58, 0x0041d81, 0x0041da0, 0x0041e01, 0x0041e18, 0x0041e1d, 0x0041ec4,
    0x0041ec9, 0x0041eec, 0x0042001, 0x0042018, 0x0042021, 0x0042024, 0x0042029, 0x00420d8,
    0x00420dd, 0x00420e4, 0x00420f1, 0x00420f4, 0x00420fd, 0x0042158, 0x0042162, 0x0042181,
    0x00421dc, 0x00421e6, 0x0042201, 0x004227c, 0x004229e, 0x00422c0, 0x0042381, 0x00423cc,
    0x00423d1, 0x00423d8, 0x00423ee, 0x0042401, 0x004245a, 0x0042470, 0x0042481, 0x00424e8,
    0x0042601, 0x00426e0, 0x00426f2, 0x00426f9, 0x0042702, 0x0042740, 0x004274a, 0x0042801,
    0x0042804, 0x0042841, 0x0042850, 0x0042855, 0x0042860, 0x0042865, 0x00428d8, 0x0042902,
    0x0042924, 0x0042981, 0x00429f6, 0x00429fc, 0x0042a01, 0x0042a76, 0x0042a80, 0x0042b01,
    0x0042b20, 0x0042b25, 0x0042b94, 0x0042bae, 0x0042bc0, 0x0042c01, 0x0042cd8, 0x0042d01,
    0x0042d58, 0x0042d62, 0x0042d81, 0x0042dcc, 0x0042de2, 0x0042e01, 0x0042e48, 0x0042ea6,
    0x0042ec0, 0x0043001, 0x0043124, 0x0043201, 0x00432cc, 0x0043301, 0x00433cc, 0x00433ea,
    0x0043401, 0x0043490, 0x00434c2, 0x00434e8, 0x0043982, 0x00439fc, 0x0043a01, 0x0043aa8,
    0x0043ac1, 0x0043ac8, 0x0043c01, 0x0043c76, 0x0043c9d, 0x0043ca0, 0x0043cc1, 0x0043d18,
    0x0043d46, 0x0043d54, 0x0043dc1, 0x0043e08, 0x0043ec1, 0x0043f16, 0x0043f30, 0x0043f81,
    0x0043fdc, 0x004400d, 0x00440e0, 0x004414a, 0x00441c0, 0x00441c5, 0x00441cc, 0x00441d5,
    0x00441d8, 0x004420d, 0x00442c0, 0x0044341, 0x00443a4, 0x00443c2, 0x00443e8, 0x004440d,
    0x004449c, 0x00444da, 0x0044500, 0x0044511, 0x0044514, 0x004451d, 0x0044520, 0x0044541,
    0x00445cc, 0x00445d9, 0x00445dc, 0x004460d, 0x00446cc, 0x0044705, 0x0044714, 0x0044742,
    0x0044769, 0x004476c, 0x0044771, 0x0044774, 0x0044786, 0x00447d4, 0x0044801, 0x0044848,
    0x004484d, 0x00448b0, 0x00448fd, 0x0044904, 0x0044a01, 0x0044a1c, 0x0044a21, 0x0044a24,
    0x0044a29, 0x0044a38, 0x0044a3d, 0x0044a78, 0x0044a7d, 0x0044aa4, 0x0044ac1, 0x0044b7c,
    0x0044bc2, 0x0044be8, 0x0044c15, 0x0044c34, 0x0044c3d, 0x0044c44, 0x0044c4d, 0x0044ca4,
    0x0044ca9, 0x0044cc4, 0x0044cc9, 0x0044cd0, 0x0044cd5, 0x0044ce8, 0x0044cf5, 0x0044cf8,
    0x0044d41, 0x0044d44, 0x0044d75, 0x0044d88, 0x0045001, 0x00450d4, 0x004511d, 0x004512c,
    0x0045142, 0x0045168, 0x004517d, 0x0045188, 0x0045201, 0x00452c0, 0x0045311, 0x0045318,
    0x004531d, 0x0045320, 0x0045342, 0x0045368, 0x0045601, 0x00456bc, 0x0045761, 0x0045770,
    0x0045801, 0x00458c0, 0x0045911, 0x0045914, 0x0045942, 0x0045968, 0x0045a01, 0x0045aac,
    0x0045ae1, 0x0045ae4, 0x0045b02, 0x0045b28, 0x0045c01, 0x0045c6c, 0x0045cc2, 0x0045cf0,
    0x0045d01, 0x0045d1c, 0x0046001, 0x00460b0, 0x0046281, 0x0046382, 0x00463cc, 0x00463fd,
    0x004641c, 0x0046425, 0x0046428, 0x0046431, 0x0046450, 0x0046455, 0x004645c, 0x0046461,
    0x00464c0, 0x00464fd, 0x0046500, 0x0046505, 0x0046508, 0x0046542, 0x0046568, 0x0046681,
    0x00466a0, 0x00466a9, 0x0046744, 0x0046785, 0x0046788, 0x004678d, 0x0046790, 0x0046801,
    0x0046804, 0x004682d, 0x00468cc, 0x00468e9, 0x00468ec, 0x0046941, 0x0046944, 0x0046971,
    0x0046a28, 0x0046a75, 0x0046a78, 0x0046ac1, 0x0046be4, 0x0047001, 0x0047024, 0x0047029,
    0x00470bc, 0x0047101, 0x0047104, 0x0047142, 0x00471b4, 0x00471c9, 0x0047240, 0x0047401,
    0x004741c, 0x0047421, 0x0047428, 0x004742d, 0x00474c4, 0x0047519, 0x004751c, 0x0047542,
    0x0047568, 0x0047581, 0x0047598, 0x004759d, 0x00475a4, 0x00475a9, 0x0047628, 0x0047661,
    0x0047664, 0x0047682, 0x00476a8, 0x0047b81, 0x0047bcc, 0x0047c09, 0x0047c0c, 0x0047c11,
    0x0047c44, 0x0047c49, 0x0047cd0, 0x0047d42, 0x0047d68, 0x0047ec1, 0x0047ec4, 0x0047f02,
    0x0047f54, 0x0048001, 0x0048e68, 0x0049002, 0x00491bc, 0x0049201, 0x0049510, 0x004be41,
    0x004bfc4, 0x004c001, 0x004d0c0, 0x004d105, 0x004d11c, 0x0051001, 0x005191c, 0x005a001,
    0x005a8e4, 0x005a901, 0x005a97c, 0x005a982, 0x005a9a8, 0x005a9c1, 0x005aafc, 0x005ab02,
    0x005ab28, 0x005ab41, 0x005abb8, 0x005ac01, 0x005acc0, 0x005ad01, 0x005ad10, 0x005ad42,
    0x005ad68, 0x005ad6e, 0x005ad88, 0x005ad8d, 0x005ade0, 0x005adf5, 0x005ae40, 0x005b901,
    0x005ba02, 0x005ba5c, 0x005bc01, 0x005bd2c, 0x005bd41, 0x005bd44, 0x005be4d, 0x005be80,
    0x005bf81, 0x005bf88, 0x005bf8d, 0x005bf90, 0x005c001, 0x0061fe0, 0x0062001, 0x0063358,
    0x0063401, 0x0063424, 0x006bfc1, 0x006bfd0, 0x006bfd5, 0x006bff0, 0x006bff5, 0x006bffc,
    0x006c001, 0x006c48c, 0x006c4c9, 0x006c4cc, 0x006c541, 0x006c54c, 0x006c555, 0x006c558,
    0x006c591, 0x006c5a0, 0x006c5c1, 0x006cbf0, 0x006f001, 0x006f1ac, 0x006f1c1, 0x006f1f4,
    0x006f201, 0x006f224, 0x006f241, 0x006f268, 0x0074b02, 0x0074b50, 0x0074b82, 0x0074bd0,
    0x0074d82, 0x0074de4, 0x0075001, 0x0075154, 0x0075159, 0x0075274, 0x0075279, 0x0075280,
    0x0075289, 0x007528c, 0x0075295, 0x007529c, 0x00752a5, 0x00752b4, 0x00752b9, 0x00752e8,
    0x00752ed, 0x00752f0, 0x00752f5, 0x0075310, 0x0075315, 0x0075418, 0x007541d, 0x007542c,
    0x0075435, 0x0075454, 0x0075459, 0x0075474, 0x0075479, 0x00754e8, 0x00754ed, 0x00754fc,
    0x0075501, 0x0075514, 0x0075519, 0x007551c, 0x0075529, 0x0075544, 0x0075549, 0x0075a98,
    0x0075aa1, 0x0075b04, 0x0075b09, 0x0075b6c, 0x0075b71, 0x0075bec, 0x0075bf1, 0x0075c54,
    0x0075c59, 0x0075cd4, 0x0075cd9, 0x0075d3c, 0x0075d41, 0x0075dbc, 0x0075dc1, 0x0075e24,
    0x0075e29, 0x0075ea4, 0x0075ea9, 0x0075f0c, 0x0075f11, 0x0075f30, 0x0075f3a, 0x0076000,
    0x0077c01, 0x0077c7c, 0x0077c95, 0x0077cac, 0x00780c1, 0x00781b8, 0x0078401, 0x00784b4,
    0x00784dd, 0x00784f8, 0x0078502, 0x0078528, 0x0078539, 0x007853c, 0x0078a41, 0x0078ab8,
    0x0078b01, 0x0078bb0, 0x0078bc2, 0x0078be8, 0x0079341, 0x00793b0, 0x00793c2, 0x00793e8,
    0x0079f81, 0x0079f9c, 0x0079fa1, 0x0079fb0, 0x0079fb5, 0x0079fbc, 0x0079fc1, 0x0079ffc,
    0x007a001, 0x007a314, 0x007a31e, 0x007a340, 0x007a401, 0x007a510, 0x007a52d, 0x007a530,
    0x007a542, 0x007a568, 0x007b1c6, 0x007b2b0, 0x007b2b6, 0x007b2c0, 0x007b2c6, 0x007b2d4,
    0x007b406, 0x007b4b8, 0x007b4be, 0x007b4f8, 0x007b801, 0x007b810, 0x007b815, 0x007b880,
    0x007b885, 0x007b88c, 0x007b891, 0x007b894, 0x007b89d, 0x007b8a0, 0x007b8a5, 0x007b8cc,
    0x007b8d1, 0x007b8e0, 0x007b8e5, 0x007b8e8, 0x007b8ed, 0x007b8f0, 0x007b909, 0x007b90c,
    0x007b91d, 0x007b920, 0x007b925, 0x007b928, 0x007b92d, 0x007b930, 0x007b935, 0x007b940,
    0x007b945, 0x007b94c, 0x007b951, 0x007b954, 0x007b95d, 0x007b960, 0x007b965, 0x007b968,
    0x007b96d, 0x007b970, 0x007b975, 0x007b978, 0x007b97d, 0x007b980, 0x007b985, 0x007b98c,
    0x007b991, 0x007b994, 0x007b99d, 0x007b9ac, 0x007b9b1, 0x007b9cc, 0x007b9d1, 0x007b9e0,
    0x007b9e5, 0x007b9f4, 0x007b9f9, 0x007b9fc, 0x007ba01, 0x007ba28, 0x007ba2d, 0x007ba70,
    0x007ba85, 0x007ba90, 0x007ba95, 0x007baa8, 0x007baad, 0x007baf0, 0x007c402, 0x007c434,
    0x007efc2, 0x007efe8, 0x0080001, 0x00a9b80, 0x00a9c01, 0x00adce8, 0x00add01, 0x00ae078,
    0x00ae081, 0x00b3a88, 0x00b3ac1, 0x00baf84, 0x00be001, 0x00be878, 0x00c0001, 0x00c4d2c,
    0x00c4d41, 0x00c8ec0,
};
static const char lm__tok_ascii[129] =
    "0000000003333300000000000000000030000000000000002222222222000000"
    "0111111111111111111111111110000001111111111111111111111111100000";

static int lm__tok_uni_class(uint32_t cp) {
    size_t lo = 0, hi = sizeof lm__tok_uni_runs / sizeof lm__tok_uni_runs[0];
    while (hi - lo > 1) {                     /* the last run starting at or before cp */
        size_t mid = lo + (hi - lo) / 2;
        if ((lm__tok_uni_runs[mid] >> 2) <= cp) lo = mid; else hi = mid;
    }
    return (int)(lm__tok_uni_runs[lo] & 3);
}


/* Class of the character at s[i] (i < n) and its length in bytes. A byte that does not
   start a well-formed character is a one-byte character of class other. */
static int lm__tok_char_class(const unsigned char *s, size_t n, size_t i, size_t *len) {
    uint32_t cp;
    int k;
    if (s[i] < 0x80) { *len = 1; return lm__tok_ascii[s[i]] - '0'; }
    k = lm__utf8_decode(s + i, n - i, &cp);
    if (!k) { *len = 1; return LM__CL_OTHER; }
    *len = (size_t)k;
    return lm__tok_uni_class(cp);
}

/* ---------------------------------------------------------------------------------------
   Pre-tokenizer: GPT-2's pattern by hand. Given the start i of a pre-token, return its
   end. The alternatives are tried in the pattern's order:
     's 't 're 've 'm 'll 'd          an ASCII apostrophe and a lowercase suffix
     ' ?\p{L}+' ' ?\p{N}+'            an optional space, then a run of one class (letter,
     ' ?[^\s\p{L}\p{N}]+'             number or other; the run is greedy)
     '\s+(?!\S)'                      whitespace not followed by a non-space: the whole run
                                      at the end of the text, else the run minus its last
                                      character (which then starts the next pre-token)
     '\s+'                            a single whitespace character before a non-space
   Every character matches some alternative, so pre-tokens tile the text exactly.
   --------------------------------------------------------------------------------------- */
static size_t lm__tok_pretok_end(const unsigned char *s, size_t n, size_t i) {
    size_t len, j, last;
    int c;
    if (s[i] == '\'' && i + 1 < n) {
        unsigned a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    c = lm__tok_char_class(s, n, i, &len);
    j = i + len;
    if (s[i] == ' ' && j < n) {               /* ' ?X+': the space leads a non-space run */
        int c1 = lm__tok_char_class(s, n, j, &len);
        if (c1 != LM__CL_SPACE) { c = c1; j += len; }
    }
    while (c != LM__CL_SPACE && j < n) {              /* the run, ASCII the quick way */
        if (s[j] < 0x80) {
            if (lm__tok_ascii[s[j]] - '0' != c) return j;
            j++;
        } else {
            if (lm__tok_char_class(s, n, j, &len) != c) return j;
            j += len;
        }
    }
    if (c != LM__CL_SPACE) return j;
    last = i;                                 /* whitespace run; last = its last char */
    while (j < n && lm__tok_char_class(s, n, j, &len) == LM__CL_SPACE) { last = j; j += len; }
    if (j == n) return n;
    return last > i ? last : j;
}

/* ---------------------------------------------------------------------------------------
   Building a tokenizer: one allocation per array, then a pair table that maps (l, r) to
   the rank of the merge that joins them.
   --------------------------------------------------------------------------------------- */
LMDEF void lm_tok_free(lm_tokenizer *t) {
    if (!t) return;
    LM_FREE(t->off); LM_FREE(t->bytes);
    LM_FREE(t->merge_l); LM_FREE(t->merge_r); LM_FREE(t->merge_to);
    LM_FREE(t->pair);
    LM_FREE(t);
}

/* A tokenizer with room for vocab tokens of nbytes bytes in all and max_merges merges. */
static lm_tokenizer *lm__tok_alloc(int kind, int vocab, size_t nbytes, int max_merges) {
    lm_tokenizer *t = (lm_tokenizer *)LM_MALLOC(sizeof *t);
    size_t slots, i, m = max_merges > 0 ? (size_t)max_merges : 1;
    int bits = 1;
    if (!t) return lm__fail(LM_ERR_MEM, "tokenizer: out of memory"), (lm_tokenizer *)NULL;
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->vocab = vocab;
    while (((size_t)1 << bits) < 2 * m) bits++;          /* load factor at most 1/2 */
    t->pair_bits = bits;
    slots = (size_t)1 << bits;
    t->off = (uint32_t *)LM_MALLOC(((size_t)vocab + 1) * sizeof *t->off);
    t->bytes = (unsigned char *)LM_MALLOC(nbytes ? nbytes : 1);
    t->merge_l = (int *)LM_MALLOC(m * sizeof(int));
    t->merge_r = (int *)LM_MALLOC(m * sizeof(int));
    t->merge_to = (int *)LM_MALLOC(m * sizeof(int));
    t->pair = (uint64_t *)LM_MALLOC(slots * sizeof(uint64_t));
    if (!t->off || !t->bytes || !t->merge_l || !t->merge_r || !t->merge_to || !t->pair) {
        lm_tok_free(t);
        return lm__fail(LM_ERR_MEM, "tokenizer: out of memory"), (lm_tokenizer *)NULL;
    }
    for (i = 0; i < slots; i++) t->pair[i] = 0;
    t->off[0] = 0;
    return t;
}

/* The rank of the merge joining l and r, or -1 if there is none. */
static int lm__tok_rank(const lm_tokenizer *t, int l, int r) {
    uint64_t key = lm__tok_pair_key(l, r);
    size_t mask = ((size_t)1 << t->pair_bits) - 1, h = lm__tok_pair_slot(key, t->pair_bits);
    for (;; h = (h + 1) & mask) {
        uint64_t v = t->pair[h];
        if (!v) return -1;
        if ((v >> 20 & 0xFFFFFFFFFFull) == key) return (int)(v & 0xFFFFF);
    }
}

/* Append the merge (l, r) -> to as the next rank. Fails on a pair seen before. */
static int lm__tok_add_merge(lm_tokenizer *t, int l, int r, int to) {
    uint64_t key = lm__tok_pair_key(l, r);
    size_t mask = ((size_t)1 << t->pair_bits) - 1, h = lm__tok_pair_slot(key, t->pair_bits);
    for (; t->pair[h]; h = (h + 1) & mask)
        if ((t->pair[h] >> 20 & 0xFFFFFFFFFFull) == key)
            return lm__fail(LM_ERR_FORMAT, "tokenizer: merge %d repeats the pair (%d, %d)",
                            t->n_merges, l, r);
    t->pair[h] = (uint64_t)1 << 63 | key << 20 | (uint64_t)t->n_merges;
    t->merge_l[t->n_merges] = l;
    t->merge_r[t->n_merges] = r;
    t->merge_to[t->n_merges] = to;
    t->n_merges++;
    return LM_OK;
}

/* Our BPE from its merge list: token 256+k = token l[k] then token r[k]. Checks every id
   and length, so it also validates a loaded file. */
static lm_tokenizer *lm__tok_build_bpe(int n_merges, const int *l, const int *r) {
    lm_tokenizer *t;
    size_t total = 256;
    int k, vocab = 256 + n_merges;
    uint32_t *len;
    if (n_merges < 0 || n_merges > LM__TOK_MAXVOCAB - 256)
        return lm__fail(LM_ERR_FORMAT, "tokenizer: %d merges is out of range", n_merges),
               (lm_tokenizer *)NULL;
    /* first pass: lengths, so the byte table is allocated once */
    len = (uint32_t *)LM_MALLOC((size_t)vocab * sizeof *len);
    if (!len) return lm__fail(LM_ERR_MEM, "tokenizer: out of memory"), (lm_tokenizer *)NULL;
    for (k = 0; k < 256; k++) len[k] = 1;
    for (k = 0; k < n_merges; k++) {
        if (l[k] < 0 || r[k] < 0 || l[k] >= 256 + k || r[k] >= 256 + k) {
            LM_FREE(len);
            return lm__fail(LM_ERR_FORMAT, "tokenizer: merge %d uses an id not yet defined",
                            k), (lm_tokenizer *)NULL;
        }
        len[256 + k] = len[l[k]] + len[r[k]];
        total += len[256 + k];
        if (len[256 + k] > LM__TOK_MAXLEN || total > LM__TOK_MAXBYTES) {
            LM_FREE(len);
            return lm__fail(LM_ERR_FORMAT, "tokenizer: merge %d makes tokens too long", k),
                   (lm_tokenizer *)NULL;
        }
    }
    LM_FREE(len);
    t = lm__tok_alloc(n_merges ? LM__TOK_BPE : LM__TOK_BYTES, vocab, total, n_merges);
    if (!t) return NULL;
    for (k = 0; k < 256; k++) {
        t->bytes[k] = (unsigned char)k;
        t->off[k + 1] = (uint32_t)(k + 1);
        t->byte_id[k] = k;
    }
    for (k = 0; k < n_merges; k++) {
        uint32_t o = t->off[256 + k], ll = t->off[l[k] + 1] - t->off[l[k]];
        uint32_t lr = t->off[r[k] + 1] - t->off[r[k]];
        memcpy(t->bytes + o, t->bytes + t->off[l[k]], ll);
        memcpy(t->bytes + o + ll, t->bytes + t->off[r[k]], lr);
        t->off[256 + k + 1] = o + ll + lr;
        if (lm__tok_add_merge(t, l[k], r[k], 256 + k) != LM_OK) { lm_tok_free(t); return NULL; }
    }
    return t;
}

LMDEF lm_tokenizer *lm_tok_bytes(void) { return lm__tok_build_bpe(0, NULL, NULL); }

LMDEF int lm_tok_vocab_size(const lm_tokenizer *t) {
    if (!t) return lm__fail(LM_ERR_ARG, "tokenizer: NULL");
    return t->vocab;
}

/* ---------------------------------------------------------------------------------------
   Encoding one pre-token. The bytes start as single-byte tokens in a linked list; a
   min-heap holds candidate merges keyed (rank << 32 | position), so the lowest rank comes
   first and, within a rank, the leftmost pair. A popped entry is stale if an earlier
   merge changed its pair: the two tokens now at that position must still be the merge's.
   Pairs created by a merge wait in `pend` until every merge of the current rank is done:
   that is GPT-2's rule "merge all occurrences of the best pair, then look again", and it
   keeps us exact even for a merge list whose new pairs may rank below their parents'.
   --------------------------------------------------------------------------------------- */
typedef struct lm__bpe_work {
    uint64_t *mem;             /* (6 cap) u64: heap, pend, tok, next, prev (see below)        */
    size_t cap;                /* longest pre-token the block can take                        */
    int on_heap;               /* mem came from LM_MALLOC                                     */
} lm__bpe_work;

static void lm__tok_heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = v;
}
static uint64_t lm__tok_heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, c;
    while ((c = 2 * i + 1) < *n) {
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Merge s[0..L) (L >= 2) into tokens: *out gets them (inside w) and the return value
   their count, or a negative error. */
static long lm__bpe_piece(const lm_tokenizer *t, const unsigned char *s, size_t L,
                          lm__bpe_work *w, const int **out) {
    uint64_t *heap, *pend;
    int *tok, *next, *prev, n = (int)L, i, m = 0;
    size_t nh = 0, np = 0;
    long cur = -1;
    if (L > (size_t)INT_MAX / 2)
        return lm__fail(LM_ERR_ARG, "tokenizer: pre-token of %zu bytes is too long", L);
    if (L > w->cap) {                               /* a longer pre-token than so far */
        size_t bytes, cap = L > 2 * w->cap ? L : 2 * w->cap;
        uint64_t *mem;
        if (!lm__mul_ok(cap, 6 * sizeof(uint64_t), &bytes) ||
            (mem = (uint64_t *)LM_MALLOC(bytes)) == NULL)
            return lm__fail(LM_ERR_MEM, "tokenizer: out of memory for a %zu-byte pre-token", L);
        if (w->on_heap) LM_FREE(w->mem);
        w->mem = mem;
        w->cap = cap;
        w->on_heap = 1;
    }
    heap = w->mem;                                  /* (3L) candidates                */
    pend = heap + 3 * L;                            /* (L) pairs made at this rank    */
    tok = (int *)(pend + L);                        /* (L) token at each position     */
    next = tok + L;                                 /* (L) linked list of positions   */
    prev = next + L;                                /* (L)                            */
    for (i = 0; i < n; i++) { tok[i] = t->byte_id[s[i]]; next[i] = i + 1; prev[i] = i - 1; }
    for (i = 0; i + 1 < n; i++) {
        int r = lm__tok_rank(t, tok[i], tok[i + 1]);
        if (r >= 0) lm__tok_heap_push(heap, &nh, (uint64_t)r << 32 | (uint32_t)i);
    }
    for (;;) {
        uint64_t e;
        int r, a, b, r2;
        if (np && (nh == 0 || (long)(heap[0] >> 32) != cur))   /* rank done: new pairs in */
            while (np) lm__tok_heap_push(heap, &nh, pend[--np]);
        if (nh == 0) break;
        e = lm__tok_heap_pop(heap, &nh);
        r = (int)(e >> 32);
        a = (int)(uint32_t)e;
        if (tok[a] < 0 || next[a] >= n) continue;              /* merged away, or last */
        b = next[a];
        if (tok[a] != t->merge_l[r] || tok[b] != t->merge_r[r]) continue;   /* stale */
        cur = r;
        tok[a] = t->merge_to[r];                               /* a absorbs b */
        tok[b] = -1;
        next[a] = next[b];
        if (next[b] < n) prev[next[b]] = a;
        if (prev[a] >= 0 && (r2 = lm__tok_rank(t, tok[prev[a]], tok[a])) >= 0)
            pend[np++] = (uint64_t)r2 << 32 | (uint32_t)prev[a];
        if (next[a] < n && (r2 = lm__tok_rank(t, tok[a], tok[next[a]])) >= 0)
            pend[np++] = (uint64_t)r2 << 32 | (uint32_t)a;
    }
    for (i = 0; i < n; i = next[i]) tok[m++] = tok[i];         /* m <= i: safe in place */
    *out = tok;
    return m;
}

/* Long texts repeat their words, so encode keeps a small direct-mapped cache from a
   pre-token (found by its first place in the text) to its ids. It only saves time: the
   ids are the same with or without it. */
#define LM__TOK_CACHE 32768              /* entries, a power of two                        */
#define LM__TOK_CACHE_IDS 6            /* pre-tokens of at most this many ids are kept   */
typedef struct lm__tok_cached {
    size_t off;                /* where the pre-token is in the text                      */
    uint32_t len;              /* its length in bytes; 0 = empty entry                    */
    int nids, ids[LM__TOK_CACHE_IDS];
} lm__tok_cached;

LMDEF long lm_tok_encode(const lm_tokenizer *t, const void *text, size_t n, int *ids,
                         size_t cap) {
    const unsigned char *s = (const unsigned char *)text;
    uint64_t stack_mem[6 * 64];
    lm__bpe_work w;
    lm__tok_cached *cache = NULL;
    size_t i = 0, count = 0;
    long err = 0;
    if (!t || (!s && n) || (!ids && cap))
        return lm__fail(LM_ERR_ARG, "lm_tok_encode: NULL argument");
    if (n > (size_t)LONG_MAX)
        return lm__fail(LM_ERR_ARG, "lm_tok_encode: %zu bytes is too long", n);
    if (t->n_merges == 0) {                                    /* bytes: nothing to merge */
        for (i = 0; i < n && i < cap; i++) ids[i] = t->byte_id[s[i]];
        return (long)n;
    }
    w.mem = stack_mem;
    w.cap = 64;
    w.on_heap = 0;
    if (n >= 65536) {                                 /* worth a cache; fine without one */
        cache = (lm__tok_cached *)LM_MALLOC(LM__TOK_CACHE * sizeof *cache);
        for (i = 0; cache && i < LM__TOK_CACHE; i++) cache[i].len = 0;
        i = 0;
    }
    while (i < n) {
        size_t j = lm__tok_pretok_end(s, n, i), len = j - i;
        lm__tok_cached *c = NULL;
        const int *out = NULL;
        long k, m;
        if (len == 1) {                                        /* one byte, one token */
            if (count < cap) ids[count] = t->byte_id[s[i]];
            count++;
            i = j;
            continue;
        }
        if (cache) c = &cache[lm__tok_hash(s + i, len) & (LM__TOK_CACHE - 1)];
        if (c && c->len == len && !memcmp(s + c->off, s + i, len)) {
            out = c->ids;
            m = c->nids;
        } else {
            m = lm__bpe_piece(t, s + i, len, &w, &out);
            if (m < 0) { err = m; break; }
            if (c && m <= LM__TOK_CACHE_IDS) {
                c->off = i;
                c->len = (uint32_t)len;       /* at most 1024 bytes per id */
                c->nids = (int)m;
                memcpy(c->ids, out, (size_t)m * sizeof *out);
            }
        }
        for (k = 0; k < m; k++, count++)
            if (count < cap) ids[count] = out[k];
        i = j;
    }
    if (w.on_heap) LM_FREE(w.mem);
    LM_FREE(cache);
    return err ? err : (long)count;
}

LMDEF long lm_tok_decode(const lm_tokenizer *t, const int *ids, size_t n, void *out,
                         size_t cap) {
    unsigned char *o = (unsigned char *)out;
    size_t i, total = 0;
    if (!t || (!ids && n) || (!o && cap))
        return lm__fail(LM_ERR_ARG, "lm_tok_decode: NULL argument");
    for (i = 0; i < n; i++) {
        int id = ids[i];
        size_t len;
        if (id < 0 || id >= t->vocab)
            return lm__fail(LM_ERR_ARG, "lm_tok_decode: id %d at %zu is out of range [0, %d)",
                            id, i, t->vocab);
        len = t->off[id + 1] - t->off[id];
        if (total < cap)
            memcpy(o + total, t->bytes + t->off[id], cap - total < len ? cap - total : len);
        total += len;
        if (total > (size_t)LONG_MAX) return lm__fail(LM_ERR_ARG, "lm_tok_decode: output too long");
    }
    return (long)total;
}

/* ---------------------------------------------------------------------------------------
   Training a byte-level BPE.
   1. Cut the text into pre-tokens and count each distinct one (a hash table over byte
      strings). The distinct pre-tokens ("words") are laid end to end as one array of
      symbols, at first their bytes; each symbol is linked to its neighbours in its word
      and knows which word it is in, and so how often it occurs.
   2. Count every adjacent pair of symbols, weighted by the frequency of its word, and
      keep for each pair the list of its places (the index of its left symbol).
   3. Repeat: take the most frequent pair (a max-heap; ties go to the smaller left id,
      then the smaller right id), give it the next id, and rewrite it at each of its
      places: its count goes down, the pairs it formed with its left and right neighbours
      are replaced by pairs with the new token, and those new pairs go on the heap. A
      place whose pair has changed since it was listed is skipped. When both halves are
      the same token ("a a a"), a run is merged from its left end, as encoding does.
      Heap entries are not updated in place: counts only fall, except for pairs that
      contain the new token, which are pushed fresh; an entry whose count is out of date
      is pushed again with the true count when it reaches the top.
   A merge costs time in proportion to the places it rewrites, never a rescan, so a long
   pre-token (a line of CJK, a run of digits) costs no more than many short ones.
   --------------------------------------------------------------------------------------- */
typedef struct lm__bpe_word {
    size_t start;              /* offset of the pre-token in the text                      */
    size_t len;                /* its length in bytes                                      */
    int64_t freq;              /* how often it occurs                                      */
    uint64_t hash;
} lm__bpe_word;

typedef struct lm__bpe_pair {
    int a, b;                  /* left and right token ids                                 */
    int64_t count;             /* weighted occurrences                                     */
    int head;                  /* first node of its list of places, -1 when empty          */
    int stamp;                 /* the new token of the last merge that queued it           */
} lm__bpe_pair;

typedef struct lm__bpe_node { int pos, next; } lm__bpe_node;
typedef struct lm__bpe_entry { int64_t count; int pair; } lm__bpe_entry;

typedef struct lm__bpe_trainer {
    lm__bpe_word *words; size_t nwords, cap_words;
    int *sym;                  /* (nsym) token at each place, -1 once merged away          */
    int *next, *prev;          /* (nsym) neighbours in the same word, -1 past its ends     */
    int *word;                 /* (nsym) the word each symbol belongs to                   */
    lm__bpe_pair *pairs; size_t npairs, cap_pairs;
    int *pair_slot; int pair_bits;                   /* (a, b) -> pair index, -1 = empty */
    lm__bpe_node *nodes; size_t nnodes, cap_nodes;   /* the lists of places              */
    lm__bpe_entry *heap; size_t nheap, cap_heap;
    int *touched; size_t ntouched, cap_touched;      /* pairs to push after a merge      */
    int *tok_len;                                    /* (vocab_size) bytes per token     */
    int *ml, *mr;                                    /* (vocab_size) the merges so far   */
} lm__bpe_trainer;

static int lm__bpe_oom(void) { return lm__fail(LM_ERR_MEM, "lm_tok_train: out of memory"); }

/* Heap order: higher count first, then smaller (a, b). */
static int lm__bpe_before(const lm__bpe_trainer *tr, lm__bpe_entry x, lm__bpe_entry y) {
    const lm__bpe_pair *p = &tr->pairs[x.pair], *q = &tr->pairs[y.pair];
    if (x.count != y.count) return x.count > y.count;
    if (p->a != q->a) return p->a < q->a;
    return p->b < q->b;
}

static int lm__bpe_push(lm__bpe_trainer *tr, int pair) {
    lm__bpe_entry e, *h;
    size_t i;
    h = (lm__bpe_entry *)lm__grow(tr->heap, &tr->cap_heap, tr->nheap + 1, sizeof *h);
    if (!h) return lm__bpe_oom();
    tr->heap = h;
    e.count = tr->pairs[pair].count;
    e.pair = pair;
    for (i = tr->nheap++; i > 0 && lm__bpe_before(tr, e, h[(i - 1) / 2]); i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    h[i] = e;
    return LM_OK;
}

static lm__bpe_entry lm__bpe_pop(lm__bpe_trainer *tr) {
    lm__bpe_entry *h = tr->heap, top = h[0], v = h[--tr->nheap];
    size_t i = 0, c, n = tr->nheap;
    while ((c = 2 * i + 1) < n) {
        if (c + 1 < n && lm__bpe_before(tr, h[c + 1], h[c])) c++;
        if (!lm__bpe_before(tr, h[c], v)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Index of pair (a, b), created with count 0 if new (add = 1); -1 if absent (add = 0),
   or -2 when out of memory. */
static int lm__bpe_pair_index(lm__bpe_trainer *tr, int a, int b, int add) {
    uint64_t key = lm__tok_pair_key(a, b);
    size_t mask = ((size_t)1 << tr->pair_bits) - 1, h;
    lm__bpe_pair *p;
    if (add && 2 * (tr->npairs + 1) > mask + 1) {        /* keep the load under 1/2 */
        int bits = tr->pair_bits + 1, *slot;
        size_t i, n = (size_t)1 << bits;
        if (bits > 30) return -2;
        slot = (int *)LM_MALLOC(n * sizeof *slot);
        if (!slot) return -2;
        for (i = 0; i < n; i++) slot[i] = -1;
        for (i = 0; i < tr->npairs; i++) {
            h = lm__tok_pair_slot(lm__tok_pair_key(tr->pairs[i].a, tr->pairs[i].b), bits);
            while (slot[h] >= 0) h = (h + 1) & (n - 1);
            slot[h] = (int)i;
        }
        LM_FREE(tr->pair_slot);
        tr->pair_slot = slot;
        tr->pair_bits = bits;
        mask = n - 1;
    }
    for (h = lm__tok_pair_slot(key, tr->pair_bits); tr->pair_slot[h] >= 0; h = (h + 1) & mask) {
        p = &tr->pairs[tr->pair_slot[h]];
        if (p->a == a && p->b == b) return tr->pair_slot[h];
    }
    if (!add) return -1;
    p = (lm__bpe_pair *)lm__grow(tr->pairs, &tr->cap_pairs, tr->npairs + 1, sizeof *p);
    if (!p) return -2;
    tr->pairs = p;
    p += tr->npairs;
    p->a = a; p->b = b; p->count = 0; p->head = -1; p->stamp = -1;
    tr->pair_slot[h] = (int)tr->npairs;
    return (int)tr->npairs++;
}

/* One more occurrence, of weight f, of the pair (a, b) at place pos. Pairs made by the
   merge that creates token x (x >= 0) are queued for the heap. */
static int lm__bpe_add(lm__bpe_trainer *tr, int a, int b, int64_t f, int pos, int x) {
    int i = lm__bpe_pair_index(tr, a, b, 1);
    lm__bpe_node *nd;
    if (i < 0) return lm__bpe_oom();
    tr->pairs[i].count += f;
    nd = (lm__bpe_node *)lm__grow(tr->nodes, &tr->cap_nodes, tr->nnodes + 1, sizeof *nd);
    if (!nd) return lm__bpe_oom();
    tr->nodes = nd;
    nd[tr->nnodes].pos = pos;
    nd[tr->nnodes].next = tr->pairs[i].head;
    tr->pairs[i].head = (int)tr->nnodes++;
    if (x >= 0 && tr->pairs[i].stamp != x) {
        int *q = (int *)lm__grow(tr->touched, &tr->cap_touched, tr->ntouched + 1, sizeof *q);
        if (!q) return lm__bpe_oom();
        tr->touched = q;
        q[tr->ntouched++] = i;
        tr->pairs[i].stamp = x;
    }
    return LM_OK;
}

static void lm__bpe_sub(lm__bpe_trainer *tr, int a, int b, int64_t f) {
    int i = lm__bpe_pair_index(tr, a, b, 0);
    if (i >= 0) tr->pairs[i].count -= f;                  /* always found: it was counted */
}

/* Step 1: distinct pre-tokens with their counts, then the symbol arrays. */
static int lm__bpe_count_words(lm__bpe_trainer *tr, const unsigned char *s, size_t n) {
    int *table;
    int bits = 10;
    size_t i = 0, total = 0, k, mask = ((size_t)1 << bits) - 1;
    table = (int *)LM_MALLOC((mask + 1) * sizeof *table);
    if (!table) return lm__bpe_oom();
    for (k = 0; k <= mask; k++) table[k] = -1;
    while (i < n) {
        size_t j = lm__tok_pretok_end(s, n, i), len = j - i, h;
        uint64_t hash;
        lm__bpe_word *w;
        if (len < 2) { i = j; continue; }                 /* a single byte has no pairs */
        hash = lm__tok_hash(s + i, len);
        for (h = (size_t)(hash >> 7) & mask; table[h] >= 0; h = (h + 1) & mask) {
            w = &tr->words[table[h]];
            if (w->hash == hash && w->len == len && !memcmp(s + w->start, s + i, len)) break;
        }
        if (table[h] >= 0) { tr->words[table[h]].freq++; i = j; continue; }
        if (total + len > (size_t)INT_MAX / 2) {
            LM_FREE(table);
            return lm__fail(LM_ERR_ARG, "lm_tok_train: text has too many distinct words");
        }
        w = (lm__bpe_word *)lm__grow(tr->words, &tr->cap_words, tr->nwords + 1, sizeof *w);
        if (!w) { LM_FREE(table); return lm__bpe_oom(); }
        tr->words = w;
        w += tr->nwords;
        w->start = i; w->len = len; w->freq = 1; w->hash = hash;
        table[h] = (int)tr->nwords++;
        total += len;
        if (2 * tr->nwords > mask) {                      /* grow the table */
            int *t2;
            bits++;
            mask = ((size_t)1 << bits) - 1;
            t2 = (int *)LM_MALLOC((mask + 1) * sizeof *t2);
            if (!t2) { LM_FREE(table); return lm__bpe_oom(); }
            for (k = 0; k <= mask; k++) t2[k] = -1;
            for (k = 0; k < tr->nwords; k++) {
                for (h = (size_t)(tr->words[k].hash >> 7) & mask; t2[h] >= 0; h = (h + 1) & mask) {}
                t2[h] = (int)k;
            }
            LM_FREE(table);
            table = t2;
        }
        i = j;
    }
    LM_FREE(table);
    k = total ? total : 1;
    tr->sym = (int *)LM_MALLOC(k * sizeof(int));
    tr->next = (int *)LM_MALLOC(k * sizeof(int));
    tr->prev = (int *)LM_MALLOC(k * sizeof(int));
    tr->word = (int *)LM_MALLOC(k * sizeof(int));
    if (!tr->sym || !tr->next || !tr->prev || !tr->word) return lm__bpe_oom();
    for (i = 0, total = 0; i < tr->nwords; i++) {
        const lm__bpe_word *w = &tr->words[i];
        for (k = 0; k < w->len; k++) {
            int p = (int)(total + k);
            tr->sym[p] = s[w->start + k];
            tr->prev[p] = k > 0 ? p - 1 : -1;
            tr->next[p] = k + 1 < w->len ? p + 1 : -1;
            tr->word[p] = (int)i;
            if (k > 0 && lm__bpe_add(tr, tr->sym[p - 1], tr->sym[p], w->freq, p - 1, -1) != LM_OK)
                return LM_ERR_MEM;                        /* step 2, as we go */
        }
        total += w->len;
    }
    return LM_OK;
}

/* Is the pair at place pos still (a, b)? */
static int lm__bpe_at(const lm__bpe_trainer *tr, int pos, int a, int b) {
    return pos >= 0 && tr->sym[pos] == a && tr->next[pos] >= 0 && tr->sym[tr->next[pos]] == b;
}

/* Step 3 at one place: the pair (a, b) at pos becomes token x, pair index p. */
static int lm__bpe_merge_at(lm__bpe_trainer *tr, int pos, int p, int x) {
    int q = tr->next[pos], l = tr->prev[pos], r = tr->next[q], a = tr->sym[pos], b = tr->sym[q];
    int64_t f = tr->words[tr->word[pos]].freq;
    if (l >= 0) lm__bpe_sub(tr, tr->sym[l], a, f);        /* old neighbour pairs out */
    if (r >= 0) lm__bpe_sub(tr, b, tr->sym[r], f);
    tr->pairs[p].count -= f;
    tr->sym[pos] = x;                                     /* pos absorbs q */
    tr->sym[q] = -1;
    tr->next[pos] = r;
    if (r >= 0) tr->prev[r] = pos;
    if (l >= 0 && lm__bpe_add(tr, tr->sym[l], x, f, l, x) != LM_OK) return LM_ERR_MEM;
    if (r >= 0 && lm__bpe_add(tr, x, tr->sym[r], f, pos, x) != LM_OK) return LM_ERR_MEM;
    return LM_OK;
}

/* Step 3: pair p becomes token x at all of its places. */
static int lm__bpe_merge(lm__bpe_trainer *tr, int p, int x) {
    int node, a = tr->pairs[p].a, b = tr->pairs[p].b;
    size_t i;
    tr->ntouched = 0;
    for (node = tr->pairs[p].head; node >= 0; node = tr->nodes[node].next) {
        int pos = tr->nodes[node].pos;
        if (!lm__bpe_at(tr, pos, a, b)) continue;         /* changed since listed */
        if (a != b) {
            if (lm__bpe_merge_at(tr, pos, p, x) != LM_OK) return LM_ERR_MEM;
            continue;
        }
        while (tr->prev[pos] >= 0 && tr->sym[tr->prev[pos]] == a) pos = tr->prev[pos];
        for (; lm__bpe_at(tr, pos, a, a); pos = tr->next[pos])   /* the run, left to right */
            if (lm__bpe_merge_at(tr, pos, p, x) != LM_OK) return LM_ERR_MEM;
    }
    for (i = 0; i < tr->ntouched; i++)
        if (tr->pairs[tr->touched[i]].count > 0 && lm__bpe_push(tr, tr->touched[i]) != LM_OK)
            return LM_ERR_MEM;
    return LM_OK;
}

static void lm__bpe_trainer_free(lm__bpe_trainer *tr) {
    LM_FREE(tr->words); LM_FREE(tr->sym); LM_FREE(tr->next); LM_FREE(tr->prev);
    LM_FREE(tr->word); LM_FREE(tr->pairs); LM_FREE(tr->pair_slot); LM_FREE(tr->nodes);
    LM_FREE(tr->heap); LM_FREE(tr->touched); LM_FREE(tr->tok_len); LM_FREE(tr->ml);
    LM_FREE(tr->mr);
}

LMDEF lm_tokenizer *lm_tok_train(const void *text, size_t n, int vocab_size) {
    lm__bpe_trainer tr;
    lm_tokenizer *t = NULL;
    int m = 0, k;
    size_t i;
    if (!text && n) return lm__fail(LM_ERR_ARG, "lm_tok_train: NULL text"), (lm_tokenizer *)NULL;
    if (vocab_size < 256 || vocab_size > LM__TOK_MAXVOCAB)
        return lm__fail(LM_ERR_ARG, "lm_tok_train: vocab_size %d is not in [256, %d]",
                        vocab_size, LM__TOK_MAXVOCAB), (lm_tokenizer *)NULL;
    memset(&tr, 0, sizeof tr);
    tr.pair_bits = 10;
    tr.pair_slot = (int *)LM_MALLOC(((size_t)1 << tr.pair_bits) * sizeof(int));
    tr.tok_len = (int *)LM_MALLOC((size_t)vocab_size * sizeof(int));
    tr.ml = (int *)LM_MALLOC((size_t)vocab_size * sizeof(int));
    tr.mr = (int *)LM_MALLOC((size_t)vocab_size * sizeof(int));
    if (!tr.pair_slot || !tr.tok_len || !tr.ml || !tr.mr) { lm__bpe_oom(); goto done; }
    for (k = 0; k < (1 << tr.pair_bits); k++) tr.pair_slot[k] = -1;
    for (k = 0; k < 256; k++) tr.tok_len[k] = 1;
    if (lm__bpe_count_words(&tr, (const unsigned char *)text, n) != LM_OK) goto done;
    for (i = 0; i < tr.npairs; i++)
        if (lm__bpe_push(&tr, (int)i) != LM_OK) goto done;
    while (256 + m < vocab_size && tr.nheap > 0) {
        lm__bpe_entry e = lm__bpe_pop(&tr);
        int a = tr.pairs[e.pair].a, b = tr.pairs[e.pair].b;
        if (e.count != tr.pairs[e.pair].count) {             /* out of date: requeue */
            if (tr.pairs[e.pair].count > 0 && lm__bpe_push(&tr, e.pair) != LM_OK) goto done;
            continue;
        }
        if (tr.tok_len[a] + tr.tok_len[b] > LM__TOK_MAXLEN) continue;   /* never merged */
        tr.ml[m] = a;
        tr.mr[m] = b;
        tr.tok_len[256 + m] = tr.tok_len[a] + tr.tok_len[b];
        if (lm__bpe_merge(&tr, e.pair, 256 + m) != LM_OK) goto done;
        m++;
    }
    t = lm__tok_build_bpe(m, tr.ml, tr.mr);
done:
    lm__bpe_trainer_free(&tr);
    return t;
}

/* ---------------------------------------------------------------------------------------
   Our file format (see the docs block): a header of three lines, then one "L R" line per
   merge. Written in two passes, the first only measuring; read by a strict cursor.
   --------------------------------------------------------------------------------------- */
typedef struct lm__tok_cur { const unsigned char *p, *end; } lm__tok_cur;

/* Append s[0..n) at *pos when it fits below cap (out may be NULL to only measure). */
static void lm__tok_put(unsigned char *out, size_t cap, size_t *pos, const char *s, size_t n) {
    if (out && *pos + n <= cap) memcpy(out + *pos, s, n);
    *pos += n;
}
static void lm__tok_put_uint(unsigned char *out, size_t cap, size_t *pos, unsigned v, char end) {
    char tmp[24], *e = lm__utoa(v, tmp);
    *e++ = end;
    lm__tok_put(out, cap, pos, tmp, (size_t)(e - tmp));
}
static size_t lm__tok_image(const lm_tokenizer *t, unsigned char *out, size_t cap) {
    size_t pos = 0;
    int k;
    lm__tok_put(out, cap, &pos, "lm-bpe 1\npretok gpt2\nmerges ", 28);
    lm__tok_put_uint(out, cap, &pos, (unsigned)t->n_merges, '\n');
    for (k = 0; k < t->n_merges; k++) {
        lm__tok_put_uint(out, cap, &pos, (unsigned)t->merge_l[k], ' ');
        lm__tok_put_uint(out, cap, &pos, (unsigned)t->merge_r[k], '\n');
    }
    return pos;
}

LMDEF long lm_tok_save_mem(const lm_tokenizer *t, void *buf, size_t cap) {
    size_t need;
    if (!t || (!buf && cap)) return lm__fail(LM_ERR_ARG, "lm_tok_save_mem: NULL argument");
    if (t->kind == LM__TOK_GPT2)
        return lm__fail(LM_ERR_ARG, "lm_tok_save: a GPT-2 tokenizer is kept as its own "
                        "encoder.json and vocab.bpe");
    need = lm__tok_image(t, NULL, 0);
    if (need > (size_t)LONG_MAX) return lm__fail(LM_ERR_ARG, "lm_tok_save_mem: too large");
    if (buf && cap >= need) lm__tok_image(t, (unsigned char *)buf, cap);
    return (long)need;
}

static int lm__tok_lit(lm__tok_cur *c, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n)) return 0;
    c->p += n;
    return 1;
}
/* A decimal number of at most 9 digits without leading zeros, then the character end. */
static int lm__tok_uint(lm__tok_cur *c, long *v, char end) {
    uint64_t u;
    size_t k = lm__atou_n((const char *)c->p, (size_t)(c->end - c->p), 999999999, &u);
    if (k == 0 || c->p + k >= c->end || c->p[k] != (unsigned char)end) return 0;
    c->p += k + 1;
    *v = (long)u;
    return 1;
}

LMDEF lm_tokenizer *lm_tok_load_mem(const void *buf, size_t n) {
    lm__tok_cur c;
    long version, count, k, v;
    int *lr;
    lm_tokenizer *t;
    if (!buf && n)
        return lm__fail(LM_ERR_ARG, "lm_tok_load_mem: NULL buffer"), (lm_tokenizer *)NULL;
    c.p = (const unsigned char *)buf;
    c.end = c.p + n;
    if (!lm__tok_lit(&c, "lm-bpe "))
        return lm__fail(LM_ERR_FORMAT, "tokenizer file: not an lm-bpe file (bad magic)"),
               (lm_tokenizer *)NULL;
    if (!lm__tok_uint(&c, &version, '\n') || version != 1)
        return lm__fail(LM_ERR_FORMAT, "tokenizer file: unsupported version (this reads 1)"),
               (lm_tokenizer *)NULL;
    if (!lm__tok_lit(&c, "pretok gpt2\n"))
        return lm__fail(LM_ERR_FORMAT, "tokenizer file: line 2 is not \"pretok gpt2\""),
               (lm_tokenizer *)NULL;
    if (!lm__tok_lit(&c, "merges ") || !lm__tok_uint(&c, &count, '\n') ||
        count > LM__TOK_MAXVOCAB - 256)
        return lm__fail(LM_ERR_FORMAT, "tokenizer file: line 3 is not \"merges N\" with "
                        "N <= %d", LM__TOK_MAXVOCAB - 256), (lm_tokenizer *)NULL;
    if ((size_t)count > (size_t)(c.end - c.p) / 4)           /* a line takes 4+ bytes */
        return lm__fail(LM_ERR_FORMAT, "tokenizer file: truncated (%ld merges announced)",
                        count), (lm_tokenizer *)NULL;
    lr = (int *)LM_MALLOC(2 * ((size_t)count + 1) * sizeof *lr);
    if (!lr) return lm__fail(LM_ERR_MEM, "tokenizer file: out of memory"), (lm_tokenizer *)NULL;
    for (k = 0; k < count; k++) {
        if (!lm__tok_uint(&c, &v, ' ') || v >= 256 + k) break;
        lr[k] = (int)v;
        if (!lm__tok_uint(&c, &v, '\n') || v >= 256 + k) break;
        lr[count + k] = (int)v;
    }
    if (k < count || c.p != c.end) {
        LM_FREE(lr);
        if (k < count)
            return lm__fail(LM_ERR_FORMAT, "tokenizer file: line %ld is not \"L R\" with ids "
                            "below %ld", k + 4, 256 + k), (lm_tokenizer *)NULL;
        return lm__fail(LM_ERR_FORMAT, "tokenizer file: unexpected bytes after the last "
                        "merge"), (lm_tokenizer *)NULL;
    }
    t = lm__tok_build_bpe((int)count, lr, lr + count);
    LM_FREE(lr);
    return t;
}

/* ---------------------------------------------------------------------------------------
   GPT-2's files. GPT-2 writes each token as a string of printable characters: byte b is
   the character U+00b itself when b is printable Latin-1 (33..126, 161..172, 174..255),
   and the k-th other byte (in byte order) is U+0100 + k, so U+0100..U+0143 are used.
   encoder.json maps those strings to ids; vocab.bpe lists the merges "A B" by rank after
   a "#version" line. Both are read strictly: any malformed JSON, unknown character,
   repeated string, id or pair, or merge whose parts or result are not tokens is an error.
   --------------------------------------------------------------------------------------- */
#define LM__GPT2_NCHAR 324                 /* characters U+0000..U+0143 */

static void lm__gpt2_unmap(int *u2b) {     /* (LM__GPT2_NCHAR) character -> byte or -1 */
    int b, k = 0;
    for (b = 0; b < LM__GPT2_NCHAR; b++) u2b[b] = -1;
    for (b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        u2b[printable ? b : 256 + k++] = b;
    }
}

static int lm__gpt2_err(const char *file, const lm__tok_cur *c, const unsigned char *start,
                        const char *what) {
    return lm__fail(LM_ERR_FORMAT, "%s: %s at byte %zu", file, what, (size_t)(c->p - start));
}

/* The bytes of a GPT-2 token, from its string (UTF-8, unescaped by the JSON lexer):
   each character must stand for a byte. In place (no byte is longer than its character);
   returns the length, or -1. */
static int lm__gpt2_bytes(char *str, const int *u2b) {
    const unsigned char *z = (const unsigned char *)str;
    size_t n = strlen(str), i = 0;
    int len = 0;
    while (i < n) {
        uint32_t cp;
        int k = lm__utf8_decode(z + i, n - i, &cp);   /* the lexer checked the UTF-8 */
        if (!k || cp >= LM__GPT2_NCHAR || u2b[cp] < 0 || len >= LM__TOK_MAXLEN) return -1;
        str[len++] = (char)u2b[cp];
        i += (size_t)k;
    }
    return len;
}

/* Token lookup by bytes, for resolving merges: open addressing over ids. */
typedef struct lm__tok_index { int *slot; int bits; } lm__tok_index;
static int lm__tok_find(const lm_tokenizer *t, const lm__tok_index *ix,
                        const unsigned char *s, size_t n, int insert_id) {
    size_t mask = ((size_t)1 << ix->bits) - 1, h = (size_t)lm__tok_hash(s, n) & mask;
    for (; ix->slot[h] >= 0; h = (h + 1) & mask) {
        int id = ix->slot[h];
        if (t->off[id + 1] - t->off[id] == n && !memcmp(t->bytes + t->off[id], s, n)) return id;
    }
    if (insert_id >= 0) ix->slot[h] = insert_id;
    return -1;
}

typedef struct lm__tok_json_entry { size_t off; int len, id; } lm__tok_json_entry;

LMDEF lm_tokenizer *lm_tok_load_gpt2_mem(const void *encoder_json, size_t n1,
                                         const void *vocab_bpe, size_t n2) {
    const unsigned char *js = (const unsigned char *)encoder_json;
    const unsigned char *bp = (const unsigned char *)vocab_bpe;
    int u2b[LM__GPT2_NCHAR];
    unsigned char *blob = NULL, pair[2 * LM__TOK_MAXLEN];
    lm__tok_json_entry *ent = NULL;
    size_t nent = 0, cap_ent = 0, used = 0, i, lines = 1;
    int *by_id = NULL, vocab, b, more;
    lm__json js_p;
    lm__tok_index ix;
    lm_tokenizer *t = NULL;
    lm__tok_cur c;
    ix.slot = NULL;
    if ((!js && n1) || (!bp && n2))
        return lm__fail(LM_ERR_ARG, "lm_tok_load_gpt2_mem: NULL buffer"), (lm_tokenizer *)NULL;
    lm__gpt2_unmap(u2b);

    /* encoder.json: { "token": id, ... }; the JSON lexer unescapes each token's string
       into blob, and lm__gpt2_bytes turns it into the token's bytes in place */
    blob = (unsigned char *)LM_MALLOC(n1 + 1);
    if (!blob) { lm__fail(LM_ERR_MEM, "encoder.json: out of memory"); goto fail; }
    lm__json_init(&js_p, js, n1, (char *)blob, "encoder.json", "JSON");
    if (lm__json_want(&js_p, '{')) goto fail;
    if (lm__json_peek(&js_p, '}')) { lm__json_fail(&js_p, "no tokens", ""); goto fail; }
    for (more = 1; more;) {
        lm__tok_json_entry *e;
        char *str;
        uint64_t id;
        int len;
        size_t at = js_p.used;
        if (lm__json_string(&js_p, "token", &str) || lm__json_want(&js_p, ':') ||
            lm__json_uint(&js_p, "id", &id))
            goto fail;
        if (id >= LM__TOK_MAXVOCAB) { lm__json_fail(&js_p, "an id not below 1048576", ""); goto fail; }
        if ((len = lm__gpt2_bytes(str, u2b)) < 0) {
            lm__json_fail(&js_p, "a character that stands for no byte", " (token)");
            goto fail;
        }
        js_p.used = at + (size_t)len;             /* keep the bytes, packed */
        e = (lm__tok_json_entry *)lm__grow(ent, &cap_ent, nent + 1, sizeof *e);
        if (!e) { lm__fail(LM_ERR_MEM, "encoder.json: out of memory"); goto fail; }
        ent = e;
        ent[nent].off = at;
        ent[nent].len = len;
        ent[nent].id = (int)id;
        nent++;
        if (lm__json_next(&js_p, '}', &more)) goto fail;
    }
    lm__json_ws(&js_p);
    if (js_p.i != js_p.n) { lm__json_fail(&js_p, "text after the object", ""); goto fail; }
    used = js_p.used;
    if (nent > LM__TOK_MAXVOCAB || used > LM__TOK_MAXBYTES) {
        lm__fail(LM_ERR_FORMAT, "encoder.json: too many tokens");
        goto fail;
    }
    vocab = (int)nent;

    /* ids must be exactly 0 .. vocab-1 */
    by_id = (int *)LM_MALLOC((size_t)vocab * sizeof *by_id);
    if (!by_id) { lm__fail(LM_ERR_MEM, "encoder.json: out of memory"); goto fail; }
    for (i = 0; i < nent; i++) by_id[i] = -1;
    for (i = 0; i < nent; i++) {
        if (ent[i].id >= vocab || by_id[ent[i].id] >= 0) {
            lm__fail(LM_ERR_FORMAT, "encoder.json: id %d is repeated or not below the token "
                     "count %d", ent[i].id, vocab);
            goto fail;
        }
        by_id[ent[i].id] = (int)i;
    }

    /* the tokenizer, with room for one merge per line of vocab.bpe */
    for (i = 0; i < n2; i++) lines += bp[i] == '\n';
    if (lines > LM__TOK_MAXVOCAB) {
        lm__fail(LM_ERR_FORMAT, "vocab.bpe: too many lines");
        goto fail;
    }
    t = lm__tok_alloc(LM__TOK_GPT2, vocab, used, (int)lines);
    if (!t) goto fail;
    for (b = 0, used = 0; b < vocab; b++) {
        const lm__tok_json_entry *e = &ent[by_id[b]];
        memcpy(t->bytes + used, blob + e->off, (size_t)e->len);
        used += (size_t)e->len;
        t->off[b + 1] = (uint32_t)used;
    }
    ix.bits = 1;
    while (((size_t)1 << ix.bits) < 2 * (size_t)vocab) ix.bits++;
    ix.slot = (int *)LM_MALLOC(((size_t)1 << ix.bits) * sizeof(int));
    if (!ix.slot) { lm__fail(LM_ERR_MEM, "encoder.json: out of memory"); goto fail; }
    for (i = 0; i < ((size_t)1 << ix.bits); i++) ix.slot[i] = -1;
    for (b = 0; b < vocab; b++) {
        if (lm__tok_find(t, &ix, t->bytes + t->off[b], t->off[b + 1] - t->off[b], b) >= 0) {
            lm__fail(LM_ERR_FORMAT, "encoder.json: token %d repeats an earlier string", b);
            goto fail;
        }
    }
    for (b = 0; b < 256; b++) {
        unsigned char one = (unsigned char)b;
        if ((t->byte_id[b] = lm__tok_find(t, &ix, &one, 1, -1)) < 0) {
            lm__fail(LM_ERR_FORMAT, "encoder.json: no token for the byte %d", b);
            goto fail;
        }
    }

    /* vocab.bpe: "#version ..." then "A B" lines in rank order */
    c.p = bp;
    c.end = bp + n2;
    if (!lm__tok_lit(&c, "#version")) {
        lm__gpt2_err("vocab.bpe", &c, bp, "expected a #version line");
        goto fail;
    }
    while (c.p < c.end && *c.p != '\n') c.p++;
    if (c.p < c.end) c.p++;
    while (c.p < c.end) {
        int len = 0, split = -1, l, r, to;
        while (c.p < c.end && *c.p != '\n') {
            uint32_t cp;
            int k;
            if (*c.p == ' ' && split < 0 && len > 0) { split = len; c.p++; continue; }
            k = lm__utf8_decode(c.p, (size_t)(c.end - c.p), &cp);
            if (!k || cp >= LM__GPT2_NCHAR || u2b[cp] < 0 ||
                len - (split < 0 ? 0 : split) >= LM__TOK_MAXLEN) {
                lm__gpt2_err("vocab.bpe", &c, bp, "bad character in a merge");
                goto fail;
            }
            pair[len++] = (unsigned char)u2b[cp];
            c.p += k;
        }
        if (split < 0 || split == len) {
            lm__gpt2_err("vocab.bpe", &c, bp, "a merge line is not \"A B\"");
            goto fail;
        }
        if (c.p < c.end) c.p++;                                  /* the newline */
        l = lm__tok_find(t, &ix, pair, (size_t)split, -1);
        r = lm__tok_find(t, &ix, pair + split, (size_t)(len - split), -1);
        to = lm__tok_find(t, &ix, pair, (size_t)len, -1);
        if (l < 0 || r < 0 || to < 0) {
            lm__gpt2_err("vocab.bpe", &c, bp, "a merge of or into a string that is no token");
            goto fail;
        }
        if (lm__tok_add_merge(t, l, r, to) != LM_OK) goto fail;
    }
    LM_FREE(blob); LM_FREE(ent); LM_FREE(by_id); LM_FREE(ix.slot);
    return t;
fail:
    LM_FREE(blob); LM_FREE(ent); LM_FREE(by_id); LM_FREE(ix.slot);
    lm_tok_free(t);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
   Files: read whole, parse in memory; save through a temporary file and a rename, so a
   crash never leaves half a tokenizer behind.
   --------------------------------------------------------------------------------------- */
#ifndef LM_NO_STDIO
LMDEF lm_tokenizer *lm_tok_load(const char *path) {
    unsigned char *buf;
    size_t n;
    lm_tokenizer *t;
    if (!path) return lm__fail(LM_ERR_ARG, "lm_tok_load: NULL path"), (lm_tokenizer *)NULL;
    if (lm__read_file(path, &buf, &n) != LM_OK) return NULL;
    t = lm_tok_load_mem(buf, n);
    LM_FREE(buf);
    return t;
}

LMDEF lm_tokenizer *lm_tok_load_gpt2(const char *dir) {
    unsigned char *enc = NULL, *bpe = NULL;
    size_t n1, n2, dl;
    char *path;
    lm_tokenizer *t = NULL;
    if (!dir) return lm__fail(LM_ERR_ARG, "lm_tok_load_gpt2: NULL dir"), (lm_tokenizer *)NULL;
    dl = strlen(dir);
    path = (char *)LM_MALLOC(dl + 16);
    if (!path) return lm__fail(LM_ERR_MEM, "out of memory"), (lm_tokenizer *)NULL;
    memcpy(path, dir, dl);
    memcpy(path + dl, "/encoder.json", 14);
    if (lm__read_file(path, &enc, &n1) == LM_OK) {
        memcpy(path + dl, "/vocab.bpe", 11);
        if (lm__read_file(path, &bpe, &n2) == LM_OK) {
            t = lm_tok_load_gpt2_mem(enc, n1, bpe, n2);
            LM_FREE(bpe);
        }
        LM_FREE(enc);
    }
    LM_FREE(path);
    return t;
}

LMDEF int lm_tok_save(const lm_tokenizer *t, const char *path) {
    long need = lm_tok_save_mem(t, NULL, 0);
    unsigned char *buf;
    lm__out o;
    int rc;
    if (need < 0) return (int)need;
    if (!path) return lm__fail(LM_ERR_ARG, "lm_tok_save: NULL path");
    buf = (unsigned char *)LM_MALLOC((size_t)need + 1);
    if (!buf) return lm__fail(LM_ERR_MEM, "lm_tok_save: out of memory");
    lm_tok_save_mem(t, buf, (size_t)need);
    if ((rc = lm__out_open(&o, path)) == LM_OK) {
        lm__out_put(&o, buf, (size_t)need);
        rc = lm__out_close(&o);
    }
    LM_FREE(buf);
    return rc;
}
#endif /* LM_NO_STDIO */

/* =======================================================================================
   16. Safetensors
   A file is: u64 little-endian N; N bytes of JSON; the raw data. The JSON is one object
   mapping each tensor name to {"dtype": "F32", "shape": [...], "data_offsets": [b, e]},
   offsets relative to the start of the data, plus an optional "__metadata__" object of
   string -> string. Checkpoints come from strangers, so the reader trusts nothing: the
   header length is checked against the file, the JSON is parsed by a small strict parser
   that knows exactly this schema (so no nesting can make it recurse), every string must be
   valid UTF-8, and every shape and offset is checked with overflow-safe arithmetic before
   a single byte of data is touched. Numbers in the data are assembled from bytes, so the
   code is right on big-endian hosts and at any alignment.
   ======================================================================================= */
/* Bytes <-> numbers, little-endian whatever the host. */
static uint64_t lm__st_le64(const unsigned char *p) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static void lm__st_put_le64(unsigned char *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++, v >>= 8) p[i] = (unsigned char)(v & 0xFF);
}
static int lm__st_host_le(void) {
    const uint32_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 1;
}
static float lm__st_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t lm__st_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* IEEE half (1 sign, 5 exponent, 10 mantissa bits) to float, exactly: every half value,
   subnormals, infinities and NaNs included, is a float. */
static float lm__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    uint32_t x;
    if (exp == 0x1F) {
        x = sign | 0x7F800000u | man << 13;                  /* inf, or NaN with payload */
    } else if (exp) {
        x = sign | (exp + 112) << 23 | man << 13;            /* rebias 15 -> 127          */
    } else if (!man) {
        x = sign;                                            /* +-0                       */
    } else {
        /* subnormal man * 2^-24: shift until the leading bit becomes the implicit one */
        uint32_t e = 113;
        while (!(man & 0x400)) { man <<= 1; e--; }
        x = sign | e << 23 | (man & 0x3FF) << 13;
    }
    return lm__st_bits_f32(x);
}

/* Float to half, rounded to nearest even; too large gives infinity, NaN stays NaN. */
static uint16_t lm__f32_to_f16(float f) {
    uint32_t x = lm__st_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000, man = x & 0x7FFFFF, h, rem, half;
    int e = (int)((x >> 23) & 0xFF) - 127 + 15;               /* half's biased exponent */
    if (((x >> 23) & 0xFF) == 0xFF)
        return (uint16_t)(sign | 0x7C00 | (man ? 0x200 | man >> 13 : 0));
    if (e >= 31) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        /* a half subnormal m * 2^-24 with m = (1.man) * 2^(e+9): shift the full 24-bit
           significand right by 14 - e and round on the bits shifted out */
        int shift = 14 - e;
        if (shift > 24) return (uint16_t)sign;                 /* below half the smallest */
        man |= 0x800000;
        h = man >> shift;
        rem = man & ((1u << shift) - 1);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    h = sign | (uint32_t)e << 10 | man >> 13;
    rem = man & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;  /* a carry may reach inf: right */
    return (uint16_t)h;
}

/* bfloat16 is the top half of a float: widening is a shift, narrowing rounds to even. */
static float lm__bf16_to_f32(uint16_t b) { return lm__st_bits_f32((uint32_t)b << 16); }
static uint16_t lm__f32_to_bf16(float f) {
    uint32_t x = lm__st_f32_bits(f);
    if ((x & 0x7FFFFFFF) > 0x7F800000u) return (uint16_t)(x >> 16 | 0x40);  /* quiet NaN */
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* The dtypes of the format. Only the first three can be read as floats; the others are
   known so that a file holding them still parses and its offsets can be checked. */
typedef struct lm__st_dtype_info { const char *name; int size; } lm__st_dtype_info;
static const lm__st_dtype_info lm__st_dtypes[LM_DT_COUNT] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2},
    {"I8", 1}, {"U8", 1}, {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8},
    {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"C64", 8}};

LMDEF const char *lm_st_dtype_name(int dtype) {
    return dtype >= 0 && dtype < LM_DT_COUNT ? lm__st_dtypes[dtype].name : "?";
}
LMDEF int lm_st_dtype_size(int dtype) {
    return dtype >= 0 && dtype < LM_DT_COUNT ? lm__st_dtypes[dtype].size : 0;
}

/* Decode n elements of a readable dtype from little-endian bytes at src into floats. */
static void lm__st_decode(const unsigned char *src, int dtype, size_t n, float *out) {
    size_t i;
    if (dtype == LM_DT_F32) {
        if (lm__st_host_le()) {
            if (n) memcpy(out, src, n * 4);
        } else {
            for (i = 0; i < n; i++, src += 4)
                out[i] = lm__st_bits_f32((uint32_t)src[0] | (uint32_t)src[1] << 8 |
                                         (uint32_t)src[2] << 16 | (uint32_t)src[3] << 24);
        }
    } else if (dtype == LM_DT_F16) {
        for (i = 0; i < n; i++, src += 2)
            out[i] = lm__f16_to_f32((uint16_t)(src[0] | src[1] << 8));
    } else {
        for (i = 0; i < n; i++, src += 2)
            out[i] = lm__bf16_to_f32((uint16_t)(src[0] | src[1] << 8));
    }
}

/* Encode n floats as dtype (F32, F16 or BF16) little-endian bytes at dst. */
static void lm__st_encode(const float *src, int dtype, size_t n, unsigned char *dst) {
    size_t i;
    if (dtype == LM_DT_F32) {
        if (lm__st_host_le()) {
            if (n) memcpy(dst, src, n * 4);
        } else {
            for (i = 0; i < n; i++, dst += 4) {
                uint32_t u = lm__st_f32_bits(src[i]);
                dst[0] = (unsigned char)u; dst[1] = (unsigned char)(u >> 8);
                dst[2] = (unsigned char)(u >> 16); dst[3] = (unsigned char)(u >> 24);
            }
        }
    } else {
        for (i = 0; i < n; i++, dst += 2) {
            uint16_t h = dtype == LM_DT_F16 ? lm__f32_to_f16(src[i]) : lm__f32_to_bf16(src[i]);
            dst[0] = (unsigned char)(h & 0xFF);
            dst[1] = (unsigned char)(h >> 8);
        }
    }
}



/* "[a, b, c]" for messages. */
static void lm__st_shape_str(const int64_t *shape, int ndim, char *out) {
    int i;
    *out++ = '[';
    for (i = 0; i < ndim; i++) {
        if (i) { *out++ = ','; *out++ = ' '; }
        out = lm__utoa((uint64_t)shape[i], out);
    }
    *out++ = ']';
    *out = 0;
}



/* One tensor's description {"dtype":..., "shape":[...], "data_offsets":[b, e]}, then the
   checks that make its byte range safe to read: shape product without overflow, size in
   bytes, begin <= end <= data length, end - begin == numel * dtype size. */
static int lm__st_parse_tensor(lm__json *p, lm_st_entry *e, size_t data_len) {
    int seen_dtype = 0, seen_shape = 0, seen_off = 0, more = 1, k;
    uint64_t off[2], numel = 1, bytes, size;
    char ctx[300] = "shape of tensor '";
    strcat(ctx, e->name);
    strcat(ctx, "'");
    if (lm__json_want(p, '{')) return LM_ERR_FORMAT;
    if (lm__json_peek(p, '}')) { p->i++; more = 0; }
    while (more) {
        char *key;
        size_t mark = p->used;
        if (lm__json_string(p, "key of a tensor", &key) || lm__json_want(p, ':'))
            return LM_ERR_FORMAT;
        if (!strcmp(key, "dtype")) {
            char *dt;
            if (seen_dtype++) return lm__json_fail(p, "repeated key \"dtype\"", "");
            if (lm__json_string(p, "dtype", &dt)) return LM_ERR_FORMAT;
            for (k = 0; k < LM_DT_COUNT && strcmp(dt, lm__st_dtypes[k].name); k++) {}
            if (k == LM_DT_COUNT)
                return lm__fail(LM_ERR_FORMAT, "safetensors: tensor '%s' has unknown dtype '%s'",
                                e->name, dt);
            e->dtype = k;
        } else if (!strcmp(key, "shape")) {
            int again;
            if (seen_shape++) return lm__json_fail(p, "repeated key \"shape\"", "");
            if (lm__json_want(p, '[')) return LM_ERR_FORMAT;
            again = !lm__json_peek(p, ']');
            if (!again) p->i++;
            while (again) {
                uint64_t dim;
                if (e->ndim == LM_MAX_DIMS)
                    return lm__fail(LM_ERR_FORMAT, "safetensors: tensor '%s' has more than %d dims",
                                    e->name, LM_MAX_DIMS);
                if (lm__json_uint(p, ctx, &dim)) return LM_ERR_FORMAT;
                if (dim > (uint64_t)INT64_MAX) return lm__json_fail(p, "dimension too large", "");
                e->shape[e->ndim++] = (int64_t)dim;
                if (lm__json_next(p, ']', &again)) return LM_ERR_FORMAT;
            }
        } else if (!strcmp(key, "data_offsets")) {
            int again;
            char octx[300] = "data_offsets of tensor '";
            strcat(octx, e->name);
            strcat(octx, "'");
            if (seen_off++) return lm__json_fail(p, "repeated key \"data_offsets\"", "");
            if (lm__json_want(p, '[') || lm__json_uint(p, octx, &off[0]) ||
                lm__json_want(p, ',') || lm__json_uint(p, octx, &off[1]) ||
                lm__json_next(p, ']', &again))
                return LM_ERR_FORMAT;
            if (again) return lm__json_fail(p, "data_offsets must have exactly 2 numbers", "");
        } else {
            return lm__fail(LM_ERR_FORMAT, "safetensors: unknown key '%s' in tensor '%s'",
                            key, e->name);
        }
        p->used = mark;                      /* keys and dtype strings are not kept     */
        if (lm__json_next(p, '}', &more)) return LM_ERR_FORMAT;
    }
    if (!seen_dtype || !seen_shape || !seen_off)
        return lm__fail(LM_ERR_FORMAT, "safetensors: tensor '%s' has no \"%s\"", e->name,
                        !seen_dtype ? "dtype" : !seen_shape ? "shape" : "data_offsets");

    /* numel: zero if any dim is zero, else an overflow-checked product */
    for (k = 0; k < e->ndim; k++) if (e->shape[k] == 0) numel = 0;
    for (k = 0; numel && k < e->ndim; k++) {
        uint64_t d = (uint64_t)e->shape[k];
        if (numel > ~(uint64_t)0 / d)
            return lm__fail(LM_ERR_FORMAT, "safetensors: the shape of tensor '%s' overflows",
                            e->name);
        numel *= d;
    }
    size = (uint64_t)lm__st_dtypes[e->dtype].size;
    if (numel > ~(uint64_t)0 / size)
        return lm__fail(LM_ERR_FORMAT, "safetensors: the size of tensor '%s' overflows", e->name);
    bytes = numel * size;
    e->numel = numel;
    e->begin = off[0];
    e->end = off[1];
    if (off[0] > off[1])
        return lm__fail(LM_ERR_FORMAT, "safetensors: tensor '%s' has data_offsets [%llu, %llu] "
                        "with begin > end", e->name, (unsigned long long)off[0],
                        (unsigned long long)off[1]);
    if (off[1] > (uint64_t)data_len)
        return lm__fail(LM_ERR_FORMAT, "safetensors: tensor '%s' ends at byte %llu, past the "
                        "%zu bytes of data (truncated file?)", e->name,
                        (unsigned long long)off[1], data_len);
    if (off[1] - off[0] != bytes)
        return lm__fail(LM_ERR_FORMAT, "safetensors: tensor '%s' has %llu bytes of data, but "
                        "its shape and dtype need %llu", e->name,
                        (unsigned long long)(off[1] - off[0]), (unsigned long long)bytes);
    return LM_OK;
}

/* The top-level object: tensors and at most one __metadata__ object of strings. */
static int lm__st_parse_header(lm__json *p, lm_st_file *f) {
    size_t ecap = 0, mcap = 0;
    int more = 1, seen_meta = 0;
    lm__json_ws(p);
    if (p->i < p->n && p->s[p->i] != '{')
        return lm__json_fail(p, "the header must be a JSON object", "");
    if (lm__json_want(p, '{')) return LM_ERR_FORMAT;
    if (lm__json_peek(p, '}')) { p->i++; more = 0; }
    while (more) {
        char *name;
        if (lm__json_string(p, "tensor name", &name) || lm__json_want(p, ':'))
            return LM_ERR_FORMAT;
        if (!strcmp(name, "__metadata__")) {
            int mmore = 1;
            if (seen_meta++) return lm__json_fail(p, "a second __metadata__", "");
            if (lm__json_want(p, '{')) return LM_ERR_FORMAT;
            if (lm__json_peek(p, '}')) { p->i++; mmore = 0; }
            while (mmore) {
                char *key, *val;
                void *q;
                if (lm__json_string(p, "metadata key", &key) || lm__json_want(p, ':'))
                    return LM_ERR_FORMAT;
                if (!lm__json_peek(p, '"'))
                    return lm__fail(LM_ERR_FORMAT, "safetensors: metadata value of '%s' is not "
                                    "a string", key);
                if (lm__json_string(p, "metadata value", &val)) return LM_ERR_FORMAT;
                if ((size_t)(2 * f->nmeta + 2) > mcap) {
                    q = lm__grow((void *)f->meta, &mcap, (size_t)(2 * f->nmeta + 2), sizeof(char *));
                    if (!q) return lm__fail(LM_ERR_MEM, "safetensors: out of memory for metadata");
                    f->meta = (const char **)q;
                }
                f->meta[2 * f->nmeta] = key;
                f->meta[2 * f->nmeta + 1] = val;
                f->nmeta++;
                if (lm__json_next(p, '}', &mmore)) return LM_ERR_FORMAT;
            }
        } else {
            lm_st_entry *e;
            size_t len = strlen(name);
            if (len == 0) return lm__fail(LM_ERR_FORMAT, "safetensors: empty tensor name");
            if (len >= LM_ST_NAME_MAX)
                return lm__fail(LM_ERR_FORMAT, "safetensors: tensor name of %zu bytes is too long "
                                "(limit %d)", len, LM_ST_NAME_MAX - 1);
            if ((size_t)f->n + 1 > ecap) {
                void *q = lm__grow(f->entries, &ecap, (size_t)f->n + 1, sizeof(lm_st_entry));
                if (!q) return lm__fail(LM_ERR_MEM, "safetensors: out of memory for tensors");
                f->entries = (lm_st_entry *)q;
            }
            e = &f->entries[f->n++];
            memset(e, 0, sizeof *e);
            e->name = name;
            if (lm__st_parse_tensor(p, e, f->data_len)) return LM_ERR_FORMAT;
        }
        if (lm__json_next(p, '}', &more)) return LM_ERR_FORMAT;
    }
    lm__json_ws(p);
    if (p->i != p->n) return lm__json_fail(p, "unexpected bytes after the header object", "");
    return LM_OK;
}

/* Names and keys are looked up through an open-addressing hash table (FNV-1a), which also
   finds duplicates in linear time however many tensors a hostile header lists. */
static uint32_t lm__st_hash(const char *z) { return (uint32_t)lm__fnv1a(LM__FNV_SEED, z, strlen(z)); }
/* Index n keys (key(ctx, i) for i < n) into a new table; *dup = first duplicate or -1. */
typedef const char *(*lm__st_keyfn)(const void *ctx, int i);
static const char *lm__st_key_entry(const void *ctx, int i) {
    return ((const lm_st_file *)ctx)->entries[i].name;
}
static const char *lm__st_key_kv(const void *ctx, int i) {
    return ((const char *const *)ctx)[2 * i];
}
static const char *lm__st_key_out(const void *ctx, int i) {
    return ((const lm_st_out *)ctx)[i].name;
}
static int lm__st_index(lm__st_keyfn key, const void *ctx, int n, int **index, int *cap,
                        int *dup) {
    int c = 16, i;
    size_t bytes;
    *dup = -1;
    while (c < 2 * n) c *= 2;
    if (!lm__mul_ok((size_t)c, sizeof(int), &bytes) || !(*index = (int *)LM_MALLOC(bytes)))
        return lm__fail(LM_ERR_MEM, "safetensors: out of memory for the name index");
    memset(*index, 0, bytes);
    *cap = c;
    for (i = 0; i < n; i++) {
        const char *k = key(ctx, i);
        uint32_t h = lm__st_hash(k) & (uint32_t)(c - 1);
        while ((*index)[h]) {
            if (!strcmp(key(ctx, (*index)[h] - 1), k)) {
                if (*dup < 0) *dup = i;
                break;
            }
            h = (h + 1) & (uint32_t)(c - 1);
        }
        if (!(*index)[h]) (*index)[h] = i + 1;
    }
    return LM_OK;
}

static void lm__st_free(lm_st_file *f) {
    if (f->entries) LM_FREE(f->entries);
    if (f->meta) LM_FREE((void *)f->meta);
    if (f->strings) LM_FREE(f->strings);
    if (f->index) LM_FREE(f->index);
    if (f->owned) LM_FREE(f->owned);
    memset(f, 0, sizeof *f);
}
LMDEF void lm_st_close(lm_st_file *f) { if (f) lm__st_free(f); }

/* The tensors must tile the data section exactly, as the format requires: in order of
   their offsets each begins where the previous ended, the first at 0 and the last at the
   end of the file. A gap or an overlap would let one file mean two things. */
typedef struct { uint64_t b, e; int i; } lm__st_span;
static int lm__st_span_cmp(const void *x, const void *y) {
    const lm__st_span *a = (const lm__st_span *)x, *c = (const lm__st_span *)y;
    if (a->b != c->b) return a->b < c->b ? -1 : 1;
    if (a->e != c->e) return a->e < c->e ? -1 : 1;
    return 0;
}
static int lm__st_check_tiling(const lm_st_file *f) {
    lm__st_span *sp;
    uint64_t pos = 0;
    size_t bytes;
    int k, rc = LM_OK;
    if (f->n == 0) {
        if (f->data_len == 0) return LM_OK;
        return lm__fail(LM_ERR_FORMAT, "safetensors: %zu bytes of data but no tensor", f->data_len);
    }
    if (!lm__mul_ok((size_t)f->n, sizeof *sp, &bytes) || !(sp = (lm__st_span *)LM_MALLOC(bytes)))
        return lm__fail(LM_ERR_MEM, "safetensors: out of memory checking the offsets");
    for (k = 0; k < f->n; k++) { sp[k].b = f->entries[k].begin; sp[k].e = f->entries[k].end; sp[k].i = k; }
    qsort(sp, (size_t)f->n, sizeof *sp, lm__st_span_cmp);
    for (k = 0; k < f->n && rc == LM_OK; k++) {
        if (sp[k].b > pos)
            rc = lm__fail(LM_ERR_FORMAT, "safetensors: data bytes [%llu, %llu) belong to no "
                          "tensor (a gap before '%s')", (unsigned long long)pos,
                          (unsigned long long)sp[k].b, f->entries[sp[k].i].name);
        else if (sp[k].b < pos)
            rc = lm__fail(LM_ERR_FORMAT, "safetensors: tensors '%s' and '%s' overlap",
                          f->entries[sp[k - 1].i].name, f->entries[sp[k].i].name);
        pos = sp[k].e;
    }
    if (rc == LM_OK && pos != (uint64_t)f->data_len)
        rc = lm__fail(LM_ERR_FORMAT, "safetensors: %llu bytes after the last tensor belong to "
                      "no tensor", (unsigned long long)((uint64_t)f->data_len - pos));
    LM_FREE(sp);
    return rc;
}

LMDEF int lm_st_parse(lm_st_file *f, const void *buf, size_t len) {
    const unsigned char *b = (const unsigned char *)buf;
    uint64_t hlen;
    lm__json p;
    int dup = -1, rc, *mindex = NULL, mcap = 0;
    if (!f) return lm__fail(LM_ERR_ARG, "lm_st_parse: NULL file");
    memset(f, 0, sizeof *f);
    if (!buf && len) return lm__fail(LM_ERR_ARG, "lm_st_parse: NULL buffer");
    if (len < 8)
        return lm__fail(LM_ERR_FORMAT, "safetensors: %zu bytes is too short (the header length "
                        "alone takes 8)", len);
    hlen = lm__st_le64(b);
    if (hlen > LM_ST_HEADER_MAX)
        return lm__fail(LM_ERR_FORMAT, "safetensors: header length %llu is absurd (limit %d)",
                        (unsigned long long)hlen, LM_ST_HEADER_MAX);
    if (hlen > (uint64_t)(len - 8))
        return lm__fail(LM_ERR_FORMAT, "safetensors: header length %llu exceeds the %zu bytes "
                        "after it (truncated file?)", (unsigned long long)hlen, len - 8);
    f->data = b + 8 + (size_t)hlen;
    f->data_len = len - 8 - (size_t)hlen;
    f->strings = (char *)LM_MALLOC((size_t)hlen + 1);
    if (!f->strings) return lm__fail(LM_ERR_MEM, "safetensors: out of memory for the header");
    lm__json_init(&p, b + 8, (size_t)hlen, f->strings, "safetensors", "header");
    rc = lm__st_parse_header(&p, f);
    if (rc) { lm__st_free(f); return rc; }

    /* duplicate tensor names, then duplicate metadata keys */
    rc = lm__st_index(lm__st_key_entry, f, f->n, &f->index, &f->index_cap, &dup);
    if (!rc && dup >= 0)
        rc = lm__fail(LM_ERR_FORMAT, "safetensors: duplicate tensor name '%s'", f->entries[dup].name);
    if (!rc && f->nmeta) {
        rc = lm__st_index(lm__st_key_kv, f->meta, f->nmeta, &mindex, &mcap, &dup);
        if (mindex) LM_FREE(mindex);
        if (!rc && dup >= 0)
            rc = lm__fail(LM_ERR_FORMAT, "safetensors: duplicate metadata key '%s'", f->meta[2 * dup]);
    }
    if (!rc) rc = lm__st_check_tiling(f);
    if (rc) lm__st_free(f);
    return rc;
}

LMDEF const lm_st_entry *lm_st_find(const lm_st_file *f, const char *name) {
    uint32_t h;
    if (!f || !name || !f->index || !f->n) return NULL;
    h = lm__st_hash(name) & (uint32_t)(f->index_cap - 1);
    while (f->index[h]) {
        const lm_st_entry *e = &f->entries[f->index[h] - 1];
        if (!strcmp(e->name, name)) return e;
        h = (h + 1) & (uint32_t)(f->index_cap - 1);
    }
    return NULL;
}

LMDEF const char *lm_st_meta(const lm_st_file *f, const char *key) {
    int i;
    if (!f || !key) return NULL;
    for (i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}

LMDEF int lm_st_read_f32(const lm_st_file *f, const lm_st_entry *e, float *out) {
    if (!f || !e || (!out && e->numel))
        return lm__fail(LM_ERR_ARG, "lm_st_read_f32: NULL argument");
    if (e->dtype != LM_DT_F32 && e->dtype != LM_DT_F16 && e->dtype != LM_DT_BF16)
        return lm__fail(LM_ERR_FORMAT, "safetensors: tensor '%s' has dtype %s; only F32, F16 "
                        "and BF16 can be read", e->name, lm_st_dtype_name(e->dtype));
    /* parse checked these; a caller-made entry is checked again rather than trusted */
    if (e->begin > e->end || e->end > (uint64_t)f->data_len ||
        e->end - e->begin != e->numel * (uint64_t)lm__st_dtypes[e->dtype].size)
        return lm__fail(LM_ERR_ARG, "lm_st_read_f32: tensor '%s' has a bad byte range", e->name);
    lm__st_decode(f->data + (size_t)e->begin, e->dtype, (size_t)e->numel, out);
    return LM_OK;
}

#ifndef LM_NO_STDIO
LMDEF int lm_st_open(lm_st_file *f, const char *path) {
    unsigned char *buf;
    size_t size;
    int rc;
    if (!f || !path) return lm__fail(LM_ERR_ARG, "lm_st_open: NULL argument");
    memset(f, 0, sizeof *f);
    if ((rc = lm__read_file(path, &buf, &size)) != LM_OK) return rc;
    rc = lm_st_parse(f, buf, size);
    if (rc) { LM_FREE(buf); return rc; }
    f->owned = buf;
    return LM_OK;
}
#endif

/* ---- The writer ---------------------------------------------------------------------
   The header is produced twice by the same code: once into a counting sink to learn its
   length, once for real. Tensors are laid out back to back in the order given. */
typedef struct lm__sink { char *buf; size_t len; } lm__sink;   /* buf NULL: only count */
static void lm__sink_put(lm__sink *s, const char *z, size_t n) {
    if (s->buf) memcpy(s->buf + s->len, z, n);
    s->len += n;
}
static void lm__sink_str(lm__sink *s, const char *z) { lm__sink_put(s, z, strlen(z)); }
static void lm__sink_u64(lm__sink *s, uint64_t v) {
    char tmp[24];
    lm__sink_put(s, tmp, (size_t)(lm__utoa(v, tmp) - tmp));
}
/* A JSON string literal: quotes, backslashes and control characters escaped; the rest
   (checked UTF-8) copied as it is. */
static void lm__sink_json(lm__sink *s, const char *z) {
    lm__sink_put(s, "\"", 1);
    for (; *z; z++) {
        unsigned char c = (unsigned char)*z;
        if (c == '"' || c == '\\') { char e[2]; e[0] = '\\'; e[1] = (char)c; lm__sink_put(s, e, 2); }
        else if (c < 0x20) {
            char e[7] = "\\u0000";
            e[4] = "0123456789abcdef"[c >> 4];
            e[5] = "0123456789abcdef"[c & 15];
            lm__sink_put(s, e, 6);
        } else lm__sink_put(s, (const char *)&c, 1);
    }
    lm__sink_put(s, "\"", 1);
}

/* Bytes of tensor t as stored (checked by lm__st_check_out first). */
static uint64_t lm__st_out_numel(const lm_st_out *t) {
    uint64_t n = 1;
    int k;
    for (k = 0; k < t->ndim; k++) n *= (uint64_t)t->shape[k];
    return n;
}

/* Everything the writer is given is checked as strictly as the reader checks a file, so
   what we write we can read back. *data_bytes receives the size of the data section. */
static int lm__st_check_out(const lm_st_out *t, int n, const char *const *kv, int nmeta,
                            uint64_t *data_bytes) {
    int i, k, dup, cap, *index = NULL, rc;
    uint64_t total = 0;
    if (n < 0 || nmeta < 0 || (n && !t) || (nmeta && !kv))
        return lm__fail(LM_ERR_ARG, "safetensors write: bad tensor or metadata list");
    for (i = 0; i < n; i++) {
        uint64_t numel = 1, size;
        const char *nm = t[i].name;
        if (!nm || !*nm || strlen(nm) >= LM_ST_NAME_MAX || !lm__utf8_valid(nm) ||
            !strcmp(nm, "__metadata__"))
            return lm__fail(LM_ERR_ARG, "safetensors write: tensor %d has a bad name "
                            "(empty, too long, not UTF-8 or reserved)", i);
        if (t[i].raw ? t[i].dtype < 0 || t[i].dtype >= LM_DT_COUNT
                     : t[i].dtype != LM_DT_F32 && t[i].dtype != LM_DT_F16 && t[i].dtype != LM_DT_BF16)
            return lm__fail(LM_ERR_ARG, "safetensors write: tensor '%s': dtype must be F32, F16 "
                            "or BF16 (any known dtype for raw bytes)", nm);
        if (t[i].ndim < 0 || t[i].ndim > LM_MAX_DIMS)
            return lm__fail(LM_ERR_ARG, "safetensors write: tensor '%s' has %d dims", nm, t[i].ndim);
        for (k = 0; k < t[i].ndim; k++) if (t[i].shape[k] < 0)
            return lm__fail(LM_ERR_ARG, "safetensors write: tensor '%s' has a negative dim", nm);
        for (k = 0; k < t[i].ndim; k++) if (t[i].shape[k] == 0) numel = 0;
        for (k = 0; numel && k < t[i].ndim; k++) {
            if (numel > ~(uint64_t)0 / (uint64_t)t[i].shape[k]) numel = ~(uint64_t)0;
            else numel *= (uint64_t)t[i].shape[k];
        }
        size = (uint64_t)lm__st_dtypes[t[i].dtype].size;
        if (numel > ((uint64_t)(size_t)-1) / 8 || numel * size > ~(uint64_t)0 - total)
            return lm__fail(LM_ERR_ARG, "safetensors write: tensor '%s' is too large", nm);
        if (numel && !t[i].data && !t[i].raw)
            return lm__fail(LM_ERR_ARG, "safetensors write: tensor '%s' has no data", nm);
        total += numel * size;
    }
    for (i = 0; i < 2 * nmeta; i++)
        if (!kv[i] || !lm__utf8_valid(kv[i]) || (i % 2 == 0 && (!*kv[i] ||
            strlen(kv[i]) >= LM_ST_NAME_MAX)))
            return lm__fail(LM_ERR_ARG, "safetensors write: metadata %s %d is NULL, empty, too "
                            "long or not UTF-8", i % 2 ? "value" : "key", i / 2);
    /* duplicates, through the same index the reader uses */
    if (n) {
        rc = lm__st_index(lm__st_key_out, t, n, &index, &cap, &dup);
        if (index) LM_FREE(index);
        index = NULL;
        if (rc) return rc;
        if (dup >= 0) return lm__fail(LM_ERR_ARG, "safetensors write: duplicate tensor name '%s'",
                                      t[dup].name);
    }
    if (nmeta) {
        rc = lm__st_index(lm__st_key_kv, kv, nmeta, &index, &cap, &dup);
        if (index) LM_FREE(index);
        if (rc) return rc;
        if (dup >= 0) return lm__fail(LM_ERR_ARG, "safetensors write: duplicate metadata key '%s'",
                                      kv[2 * dup]);
    }
    *data_bytes = total;
    return LM_OK;
}

static void lm__st_header(lm__sink *s, const lm_st_out *t, int n, const char *const *kv,
                          int nmeta) {
    uint64_t off = 0;
    int i, k;
    lm__sink_str(s, "{");
    if (nmeta) {
        lm__sink_str(s, "\"__metadata__\":{");
        for (i = 0; i < nmeta; i++) {
            if (i) lm__sink_str(s, ",");
            lm__sink_json(s, kv[2 * i]);
            lm__sink_str(s, ":");
            lm__sink_json(s, kv[2 * i + 1]);
        }
        lm__sink_str(s, n ? "}," : "}");
    }
    for (i = 0; i < n; i++) {
        uint64_t bytes = lm__st_out_numel(&t[i]) * (uint64_t)lm__st_dtypes[t[i].dtype].size;
        if (i) lm__sink_str(s, ",");
        lm__sink_json(s, t[i].name);
        lm__sink_str(s, ":{\"dtype\":\"");
        lm__sink_str(s, lm__st_dtypes[t[i].dtype].name);
        lm__sink_str(s, "\",\"shape\":[");
        for (k = 0; k < t[i].ndim; k++) {
            if (k) lm__sink_str(s, ",");
            lm__sink_u64(s, (uint64_t)t[i].shape[k]);
        }
        lm__sink_str(s, "],\"data_offsets\":[");
        lm__sink_u64(s, off);
        lm__sink_str(s, ",");
        lm__sink_u64(s, off + bytes);
        lm__sink_str(s, "]}");
        off += bytes;
    }
    lm__sink_str(s, "}");
}

/* Validate, and measure: padded header length and total file size. */
static int lm__st_layout(const lm_st_out *t, int n, const char *const *kv, int nmeta,
                         size_t *hlen, size_t *total) {
    uint64_t data_bytes = 0;
    lm__sink s;
    int rc = lm__st_check_out(t, n, kv, nmeta, &data_bytes);
    if (rc) return rc;
    s.buf = NULL;
    s.len = 0;
    lm__st_header(&s, t, n, kv, nmeta);
    *hlen = (s.len + 7) & ~(size_t)7;
    if (*hlen > LM_ST_HEADER_MAX || data_bytes > (uint64_t)((size_t)-1 - 8 - *hlen))
        return lm__fail(LM_ERR_ARG, "safetensors write: the file would be too large");
    *total = 8 + *hlen + (size_t)data_bytes;
    return LM_OK;
}

/* 8-byte length, the header, and its padding into out (8 + hlen bytes). */
static void lm__st_write_header(unsigned char *out, size_t hlen, const lm_st_out *t, int n,
                                const char *const *kv, int nmeta) {
    lm__sink s;
    lm__st_put_le64(out, (uint64_t)hlen);
    s.buf = (char *)out + 8;
    s.len = 0;
    lm__st_header(&s, t, n, kv, nmeta);
    memset(out + 8 + s.len, ' ', hlen - s.len);
}

LMDEF int lm_st_write_mem(const lm_st_out *t, int n, const char *const *meta_kv, int nmeta,
                          void *buf, size_t cap, size_t *size) {
    size_t hlen = 0, total = 0;
    unsigned char *p;
    int i, rc;
    if (size) *size = 0;
    rc = lm__st_layout(t, n, meta_kv, nmeta, &hlen, &total);
    if (rc) return rc;
    if (size) *size = total;
    if (!buf) return LM_OK;
    if (cap < total)
        return lm__fail(LM_ERR_ARG, "safetensors write: buffer of %zu bytes, %zu needed", cap, total);
    p = (unsigned char *)buf;
    lm__st_write_header(p, hlen, t, n, meta_kv, nmeta);
    p += 8 + hlen;
    for (i = 0; i < n; i++) {
        size_t numel = (size_t)lm__st_out_numel(&t[i]);
        if (t[i].raw) { if (numel) memcpy(p, t[i].raw, numel * (size_t)lm__st_dtypes[t[i].dtype].size); }
        else lm__st_encode(t[i].data, t[i].dtype, numel, p);
        p += numel * (size_t)lm__st_dtypes[t[i].dtype].size;
    }
    return LM_OK;
}

#ifndef LM_NO_STDIO
/* A file image to write through lm__out (section 14): checked and measured, with a buffer
   for the header and for the data, which is encoded a chunk at a time. Everything that can
   fail before the first byte goes out happens in lm__st_plan_make. */
#define LM__ST_CHUNK 16384             /* floats encoded per write                       */
typedef struct lm__st_plan {
    const lm_st_out *t;
    int n, nmeta;
    const char *const *kv;
    size_t hlen, total;
    unsigned char *buf;
} lm__st_plan;
static int lm__st_plan_make(lm__st_plan *pl, const lm_st_out *t, int n, const char *const *kv,
                            int nmeta) {
    int rc = lm__st_layout(t, n, kv, nmeta, &pl->hlen, &pl->total);
    pl->t = t; pl->n = n; pl->kv = kv; pl->nmeta = nmeta; pl->buf = NULL;
    if (rc) return rc;
    if (!(pl->buf = (unsigned char *)LM_MALLOC(8 + pl->hlen + LM__ST_CHUNK * 4)))
        return lm__fail(LM_ERR_MEM, "safetensors write: out of memory");
    return LM_OK;
}
static void lm__st_plan_put(const lm__st_plan *pl, lm__out *o) {
    int i;
    lm__st_write_header(pl->buf, pl->hlen, pl->t, pl->n, pl->kv, pl->nmeta);
    lm__out_put(o, pl->buf, 8 + pl->hlen);
    for (i = 0; o->rc == LM_OK && i < pl->n; i++) {
        const lm_st_out *t = &pl->t[i];
        size_t numel = (size_t)lm__st_out_numel(t), at, size = (size_t)lm__st_dtypes[t->dtype].size;
        if (t->raw) { lm__out_put(o, t->raw, numel * size); continue; }
        for (at = 0; o->rc == LM_OK && at < numel; at += LM__ST_CHUNK) {
            size_t k = numel - at < LM__ST_CHUNK ? numel - at : LM__ST_CHUNK;
            lm__st_encode(t->data + at, t->dtype, k, pl->buf);
            lm__out_put(o, pl->buf, size * k);
        }
    }
}

/* Through a temporary file and a rename (section 14). */
LMDEF int lm_st_write(const char *path, const lm_st_out *t, int n,
                      const char *const *meta_kv, int nmeta) {
    lm__st_plan pl;
    lm__out o;
    int rc;
    if (!path) return lm__fail(LM_ERR_ARG, "lm_st_write: NULL path");
    if ((rc = lm__st_plan_make(&pl, t, n, meta_kv, nmeta)) == LM_OK &&
        (rc = lm__out_open(&o, path)) == LM_OK) {
        lm__st_plan_put(&pl, &o);
        rc = lm__out_close(&o);
    }
    LM_FREE(pl.buf);
    return rc;
}
#endif

/* =======================================================================================
   17. Checkpoints
   GPT checkpoints: the model's parameters under Hugging Face GPT-2 names; then the
   encoder-decoder's, under PyTorch's; and the resume state every model writes the same way.
   Saving is a loop over lm_gpt.params, which holds the tensors in checkpoint order with
   their names. Loading infers the configuration from the shapes, accepts what Hugging
   Face files contain (a "transformer." prefix, attention-mask buffers, a tied lm_head),
   checks every tensor against the expected layout, and only then builds a model and
   copies the weights in: a bad file never yields a half-loaded model.
   ======================================================================================= */

/* Tensor k of the GPT layout (section 5): its name, and its shape as the file's int64. */
static int lm__gpt_slot(const lm_gpt_config *c, int k, char *name, int64_t *shape) {
    int nd, d, sh[LM_MAX_DIMS];
    char tmp[LM_NAME_MAX];
    lm__trunk_layout(c->n_layer, c->n_embd, c->n_ctx, c->vocab, k, name ? name : tmp, &nd, sh);
    for (d = 0; d < nd; d++) shape[d] = sh[d];
    return nd;
}

/* What a tensor name is, once an optional "transformer." prefix is dropped. */
enum { LM__G_WTE, LM__G_WPE, LM__G_LNF_W, LM__G_LNF_B, LM__G_BLOCK, LM__G_IGNORE,
       LM__G_HEAD, LM__G_UNKNOWN };
static int lm__gpt_classify(const char *name, int *blk, int *key) {
    int i = 0, j;
    if (!strncmp(name, "transformer.", 12)) name += 12;
    *blk = *key = -1;
    if (!strcmp(name, "wte.weight")) return LM__G_WTE;
    if (!strcmp(name, "wpe.weight")) return LM__G_WPE;
    if (!strcmp(name, "ln_f.weight")) return LM__G_LNF_W;
    if (!strcmp(name, "ln_f.bias")) return LM__G_LNF_B;
    if (!strcmp(name, "lm_head.weight")) return LM__G_HEAD;
    if (name[0] != 'h' || name[1] != '.' || name[2] < '0' || name[2] > '9') return LM__G_UNKNOWN;
    name += 2;
    if (name[0] == '0' && name[1] != '.') return LM__G_UNKNOWN;     /* "h.01." */
    for (j = 0; *name >= '0' && *name <= '9'; name++, j++) {
        if (j == 4) return LM__G_UNKNOWN;                       /* 10000 blocks or more */
        i = i * 10 + (*name - '0');
    }
    if (*name++ != '.') return LM__G_UNKNOWN;
    *blk = i;
    if (!strcmp(name, "attn.bias") || !strcmp(name, "attn.masked_bias")) return LM__G_IGNORE;
    for (j = 0; j < LM__BLOCK_N; j++)
        if (!strcmp(name, lm__block_keys[j])) { *key = j; return LM__G_BLOCK; }
    return LM__G_UNKNOWN;
}

/* A config number from __metadata__: 0 if absent, 1 if read, an error if malformed. */
static int lm__gpt_meta_int(const lm_st_file *f, const char *key, uint64_t max, uint64_t *out) {
    const char *v = lm_st_meta(f, key);
    if (!v) return 0;
    if (!lm__atou(v, max, out))
        return lm__fail(LM_ERR_FORMAT, "checkpoint: metadata %s = '%s' is not a valid number",
                        key, v);
    return 1;
}

/* Do two readable tensors of equal numel hold the same values? Compared through float32
   in small chunks, so no copy of the (large) embedding is needed. */
static int lm__st_same_values(const lm_st_file *f, const lm_st_entry *a, const lm_st_entry *b) {
    float x[256], y[256];
    uint64_t at;
    size_t sa = (size_t)lm__st_dtypes[a->dtype].size, sb = (size_t)lm__st_dtypes[b->dtype].size;
    for (at = 0; at < a->numel; at += 256) {
        size_t k = a->numel - at < 256 ? (size_t)(a->numel - at) : 256, i;
        lm__st_decode(f->data + (size_t)a->begin + (size_t)at * sa, a->dtype, k, x);
        lm__st_decode(f->data + (size_t)b->begin + (size_t)at * sb, b->dtype, k, y);
        for (i = 0; i < k; i++)
            if (lm__st_f32_bits(x[i]) != lm__st_f32_bits(y[i])) return 0;
    }
    return 1;
}

static int lm__st_readable(int dtype) {
    return dtype == LM_DT_F32 || dtype == LM_DT_F16 || dtype == LM_DT_BF16;
}

/* A Q8_0 weight NAME is two tensors, NAME.q8 and NAME.d (section 10, CHECKPOINTS): which
   part a name is, and what its NAME is. Only the block matrices and wte.weight have parts;
   for any other NAME the answer is LM__G_UNKNOWN. */
enum { LM__P_PLAIN = 0, LM__P_Q8 = 1, LM__P_D = 2 };
static int lm__gpt_classify_part(const char *name, int *blk, int *key, int *part) {
    char base[LM_ST_NAME_MAX];
    size_t n = strlen(name), cut;
    int kind;
    *part = n > 3 && !strcmp(name + n - 3, ".q8") ? LM__P_Q8
          : n > 2 && !strcmp(name + n - 2, ".d") ? LM__P_D : LM__P_PLAIN;
    if (*part == LM__P_PLAIN || n >= sizeof base) return lm__gpt_classify(name, blk, key);
    cut = n - (*part == LM__P_Q8 ? 3 : 2);
    memcpy(base, name, cut);
    base[cut] = 0;
    kind = lm__gpt_classify(base, blk, key);
    return kind == LM__G_WTE || (kind == LM__G_BLOCK && lm__block_rows[*key]) ? kind : LM__G_UNKNOWN;
}

/* The values of a Q8_0 weight: q in [-127, 127] (the byte -128 is not Q8_0) and finite
   F16 scales. */
static int lm__q8_check_file(const lm_st_file *f, const lm_st_entry *q, const lm_st_entry *d) {
    const unsigned char *p = f->data + (size_t)q->begin;
    uint64_t i;
    for (i = 0; i < q->numel; i++)
        if (p[i] == 0x80)
            return lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' holds -128 (Q8_0 values are in "
                            "[-127, 127])", q->name);
    p = f->data + (size_t)d->begin;
    for (i = 0; i < d->numel; i++)
        if ((p[2 * i + 1] & 0x7C) == 0x7C)
            return lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' holds a scale that is not finite",
                            d->name);
    return LM_OK;
}

/* Check a parsed checkpoint completely, then build the model and copy the weights in. */
static lm_gpt *lm__gpt_from_st(const lm_st_file *f, int n_head) {
    const lm_st_entry *wte = NULL, *wpe = NULL, *head = NULL, **slot = NULL, **dslot = NULL;
    lm_gpt_config cfg;
    lm_gpt *m = NULL;
    uint64_t u;
    int64_t shape[LM_MAX_DIMS];
    int i, k, blk, key, part, L = 0, ignored_blocks = 0, nslot, rc, n_q8 = 0, q8_wte = 0;
    char name[LM_NAME_MAX], s1[128], s2[128];
    const char *quant;
    uint16_t *drow = NULL;

    /* pass 1: every name must be known; count the blocks and the Q8_0 weights */
    for (i = 0; i < f->n; i++) {
        const lm_st_entry *e = &f->entries[i];
        int kind = lm__gpt_classify_part(e->name, &blk, &key, &part);
        if (kind == LM__G_UNKNOWN) {
            lm__fail(LM_ERR_FORMAT, part == LM__P_PLAIN ? "checkpoint: unexpected tensor '%s' (not a "
                     "GPT-2 name)" : "checkpoint: unexpected tensor '%s' (only the block matrices "
                     "and wte.weight can be Q8_0, as NAME.q8 and NAME.d)", e->name);
            return NULL;
        }
        if (part == LM__P_Q8) { if (kind == LM__G_WTE) q8_wte = 1; else n_q8++; }
        if (kind == LM__G_BLOCK && blk + 1 > L) L = blk + 1;
        if (kind == LM__G_IGNORE && blk + 1 > ignored_blocks) ignored_blocks = blk + 1;
        if (kind == LM__G_WTE && part != LM__P_D) wte = e;   /* NAME.q8 is (V, C) too */
        if (kind == LM__G_WPE) wpe = e;
        if (kind == LM__G_HEAD) head = e;
    }
    if (!wte || !wpe) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: no tensor '%s'", !wte ? "wte.weight" : "wpe.weight");
        return NULL;
    }
    if (wte->ndim != 2 || wpe->ndim != 2 || wpe->shape[1] != wte->shape[1]) {
        lm__st_shape_str(wte->shape, wte->ndim, s1);
        lm__st_shape_str(wpe->shape, wpe->ndim, s2);
        lm__fail(LM_ERR_FORMAT, "checkpoint: wte.weight %s and wpe.weight %s must be (V, C) "
                 "and (n_ctx, C)", s1, s2);
        return NULL;
    }
    /* every tensor must fit an lm_tensor (int sizes): the largest are V*C, n_ctx*C, 4C*C */
    if (wte->shape[1] < 1 || wte->shape[0] < 1 || wpe->shape[0] < 1 ||
        wte->shape[1] > INT_MAX / 4 || wte->numel > INT_MAX || wpe->numel > INT_MAX ||
        (uint64_t)wte->shape[1] * (uint64_t)wte->shape[1] > INT_MAX / 4) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: sizes out of range (V %lld, C %lld, n_ctx %lld)",
                 (long long)wte->shape[0], (long long)wte->shape[1], (long long)wpe->shape[0]);
        return NULL;
    }
    if (L == 0) { lm__fail(LM_ERR_FORMAT, "checkpoint: no transformer blocks (h.0.*)"); return NULL; }
    if (ignored_blocks > L) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: attention buffer of block %d, but only %d blocks",
                 ignored_blocks - 1, L);
        return NULL;
    }
    cfg.n_layer = L;
    cfg.n_embd = (int)wte->shape[1];
    cfg.vocab = (int)wte->shape[0];
    cfg.n_ctx = (int)wpe->shape[0];
    /* Q8_0: all the block matrices or none (then wte may be too), as the metadata says */
    cfg.quant = n_q8 == 0 && !q8_wte ? LM_QUANT_NONE : q8_wte ? LM_QUANT_Q8_0_EMB : LM_QUANT_Q8_0;
    quant = lm_st_meta(f, "quant");
    if (cfg.quant != LM_QUANT_NONE && n_q8 != 4 * L) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: %d of the %d block matrices are Q8_0: a quantized "
                 "checkpoint has every one (and wte.weight optionally)", n_q8, 4 * L);
        return NULL;
    }
    if (quant && strcmp(quant, "q8_0")) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: metadata quant = '%s' (only q8_0 is known)", quant);
        return NULL;
    }
    if (!quant != (cfg.quant == LM_QUANT_NONE)) {
        lm__fail(LM_ERR_FORMAT, quant ? "checkpoint: metadata says quant = q8_0 but no tensor is "
                 "quantized" : "checkpoint: Q8_0 tensors without metadata quant = q8_0");
        return NULL;
    }
    if (head && cfg.quant == LM_QUANT_Q8_0_EMB) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: lm_head.weight beside a Q8_0 wte.weight (the head is "
                 "tied: leave it out)");
        return NULL;
    }

    /* n_head: the caller's, else the metadata's, else GPT-2's head size of 64 */
    if (n_head > 0) cfg.n_head = n_head;
    else if ((rc = lm__gpt_meta_int(f, "n_head", INT_MAX, &u)) < 0) return NULL;
    else if (rc == 1) cfg.n_head = (int)u;
    else if (cfg.n_embd % 64 == 0) cfg.n_head = cfg.n_embd / 64;
    else {
        lm__fail(LM_ERR_FORMAT, "checkpoint: n_embd %d is not a multiple of 64 and the file does "
                 "not say n_head: give n_head", cfg.n_embd);
        return NULL;
    }
    if (cfg.n_head < 1 || cfg.n_embd % cfg.n_head) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: n_head %d does not divide n_embd %d", cfg.n_head,
                 cfg.n_embd);
        return NULL;
    }
    /* what the metadata says must agree with the shapes */
    {
        static const char *const keys[4] = {"n_layer", "n_embd", "n_ctx", "vocab_size"};
        int have[4];
        have[0] = cfg.n_layer; have[1] = cfg.n_embd; have[2] = cfg.n_ctx; have[3] = cfg.vocab;
        for (k = 0; k < 4; k++) {
            if ((rc = lm__gpt_meta_int(f, keys[k], INT_MAX, &u)) < 0) return NULL;
            if (rc == 1 && u != (uint64_t)have[k]) {
                lm__fail(LM_ERR_FORMAT, "checkpoint: metadata says %s = %d, the tensors say %d",
                         keys[k], (int)u, have[k]);
                return NULL;
            }
        }
    }

    /* pass 2: each tensor into its slot, with dtype and shape checked */
    nslot = LM__TRUNK_N(L);
    slot = (const lm_st_entry **)LM_MALLOC(2 * (size_t)nslot * sizeof *slot);
    if (!slot) { lm__fail(LM_ERR_MEM, "checkpoint: out of memory"); return NULL; }
    dslot = slot + nslot;                          /* the NAME.d of a Q8_0 weight         */
    for (k = 0; k < 2 * nslot; k++) slot[k] = NULL;
    for (i = 0; i < f->n; i++) {
        const lm_st_entry *e = &f->entries[i], **sp;
        int kind = lm__gpt_classify_part(e->name, &blk, &key, &part), nd;
        if (kind == LM__G_IGNORE) continue;
        k = kind == LM__G_WTE ? 0 : kind == LM__G_WPE ? 1 : kind == LM__G_LNF_W ? 2 + LM__BLOCK_N * L
          : kind == LM__G_LNF_B ? 3 + LM__BLOCK_N * L : kind == LM__G_BLOCK ? 2 + LM__BLOCK_N * blk + key : 0;
        if (part != LM__P_PLAIN) {
            /* NAME.q8: I8 (out, in); NAME.d: F16 (out, ceil(in / 32)); with the product's
               (out, in) of a Conv1D weight (in, out), or of wte (V, C) as it is */
            int out, in, want = part == LM__P_Q8 ? LM_DT_I8 : LM_DT_F16, sh[2];
            lm__gpt_slot(&cfg, k, NULL, shape);
            sh[0] = (int)shape[0];
            sh[1] = (int)shape[1];
            lm__q8_dims(kind == LM__G_WTE ? LM__Q8_OUT_IN : LM__Q8_IN_OUT, sh, &out, &in);
            shape[0] = out;
            shape[1] = part == LM__P_Q8 ? in : (in + 31) / 32;
            if (e->dtype != want) {
                lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' has dtype %s; a Q8_0 weight's %s "
                         "must be %s", e->name, lm_st_dtype_name(e->dtype), part == LM__P_Q8 ?
                         "values" : "scales", lm_st_dtype_name(want));
                goto fail;
            }
            if (e->ndim != 2 || e->shape[0] != shape[0] || e->shape[1] != shape[1]) {
                lm__st_shape_str(e->shape, e->ndim, s1);
                lm__st_shape_str(shape, 2, s2);
                lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' has shape %s, expected %s",
                         e->name, s1, s2);
                goto fail;
            }
            sp = part == LM__P_D ? &dslot[k] : &slot[k];
            if (*sp) {
                lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' appears twice (as '%s' too)",
                         e->name, (*sp)->name);
                goto fail;
            }
            *sp = e;
            continue;
        }
        if (!lm__st_readable(e->dtype)) {
            lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' has dtype %s; weights must be F32, "
                     "F16 or BF16", e->name, lm_st_dtype_name(e->dtype));
            goto fail;
        }
        if (kind != LM__G_HEAD) {
            if (slot[k]) {
                lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' appears twice (as '%s' too)",
                         e->name, slot[k]->name);
                goto fail;
            }
            slot[k] = e;
        }
        nd = lm__gpt_slot(&cfg, k, NULL, shape);   /* lm_head is shaped as wte, slot 0 */
        if (e->ndim != nd || e->shape[0] != shape[0] || (nd == 2 && e->shape[1] != shape[1])) {
            lm__st_shape_str(e->shape, e->ndim, s1);
            lm__st_shape_str(shape, nd, s2);
            lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' has shape %s, expected %s", e->name,
                     s1, s2);
            goto fail;
        }
    }
    for (k = 0; k < nslot; k++) {
        int q8 = lm__gpt_slot(&cfg, k, name, shape) && lm__q8_kind(cfg.quant, name);
        if (!slot[k] || (q8 && !dslot[k])) {
            lm__fail(LM_ERR_FORMAT, "checkpoint: missing tensor '%s%s'", name,
                     !q8 ? "" : !slot[k] ? ".q8" : ".d");
            goto fail;
        }
        if (!q8 != !dslot[k] || (q8 && slot[k]->dtype != LM_DT_I8)) {
            lm__fail(LM_ERR_FORMAT, "checkpoint: '%s' must be %s", name, q8 ? "Q8_0 (NAME.q8 and "
                     "NAME.d), as every block matrix of a quantized checkpoint" : "a plain tensor");
            goto fail;
        }
        if (q8 && lm__q8_check_file(f, slot[k], dslot[k]) != LM_OK) goto fail;
    }
    if (head && !lm__st_same_values(f, head, wte)) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: lm_head.weight differs from wte.weight (an untied "
                 "output head is not supported)");
        goto fail;
    }

    /* everything checked: build the model, make sure its layout is the one we checked
       against, and copy the weights in */
    m = lm__gpt_alloc(&cfg);
    if (!m) goto fail;
    if (m->params.n != nslot || m->cfg.n_layer != cfg.n_layer || m->cfg.n_embd != cfg.n_embd ||
        m->cfg.n_ctx != cfg.n_ctx || m->cfg.vocab != cfg.vocab || m->cfg.n_head != cfg.n_head ||
        m->cfg.quant != cfg.quant) {
        lm__fail(LM_ERR_ARG, "checkpoint: the model built has a different layout");
        goto fail;
    }
    for (k = 0; k < nslot; k++) {
        const lm_tensor *t = &m->params.t[k];
        int nd = lm__gpt_slot(&cfg, k, name, shape), d, same = t->ndim == nd;
        for (d = 0; same && d < nd; d++) same = t->shape[d] == shape[d];
        if (!same || strcmp(m->params.names[k], name)) {
            lm__fail(LM_ERR_ARG, "checkpoint: the model's parameter %d is '%s', expected '%s'",
                     k, m->params.names[k], name);
            goto fail;
        }
    }
    for (k = 0; k < nslot; k++) {
        const lm_q8 *W = m->params.t[k].q8;
        int r, b;
        if (!W) {
            if (lm_st_read_f32(f, slot[k], m->params.t[k].data)) goto fail;
            continue;
        }
        if (!drow && !(drow = (uint16_t *)LM_MALLOC(((size_t)cfg.n_embd * 4 / 32 + 1) * sizeof *drow))) {
            lm__fail(LM_ERR_MEM, "checkpoint: out of memory");
            goto fail;
        }
        for (r = 0; r < W->out; r++) {           /* the file's rows into the packed layout */
            const unsigned char *d = f->data + (size_t)dslot[k]->begin + (size_t)r * W->nb * 2;
            for (b = 0; b < W->nb; b++) drow[b] = (uint16_t)(d[2 * b] | d[2 * b + 1] << 8);
            lm__q8_pack_row(W, r, (const signed char *)(f->data + (size_t)slot[k]->begin +
                                                        (size_t)r * W->in), drow);
        }
    }
    if (drow) LM_FREE(drow);
    LM_FREE((void *)slot);
    return m;
fail:
    if (m) lm_gpt_free(m);
    if (drow) LM_FREE(drow);
    LM_FREE((void *)slot);
    return NULL;
}

LMDEF lm_gpt *lm_gpt_load_mem(const void *buf, size_t len, int n_head) {
    lm_st_file f;
    lm_gpt *m;
    if (lm_st_parse(&f, buf, len)) return NULL;
    m = lm__gpt_from_st(&f, n_head);
    lm_st_close(&f);
    return m;
}

/* The config as metadata strings: format, n_layer, n_head, n_embd, n_ctx, vocab_size. */
static void lm__gpt_meta(const lm_gpt *m, char (*num)[24], const char **kv) {
    static const char *const keys[6] = {"format", "n_layer", "n_head", "n_embd", "n_ctx",
                                        "vocab_size"};
    int vals[5], i;
    vals[0] = m->cfg.n_layer; vals[1] = m->cfg.n_head; vals[2] = m->cfg.n_embd;
    vals[3] = m->cfg.n_ctx; vals[4] = m->cfg.vocab;
    for (i = 0; i < 6; i++) kv[2 * i] = keys[i];
    kv[1] = "pt";
    for (i = 0; i < 5; i++) {
        lm__utoa((uint64_t)(vals[i] < 0 ? 0 : vals[i]), num[i]);
        kv[2 * i + 3] = num[i];
    }
}

/* A fingerprint of the weights (FNV-1a over their bytes as a checkpoint stores them,
   little-endian F32, so a host of either byte order computes the same number), kept in the
   state file, so that a state is never used with weights other than its own. */
static uint64_t lm__weights_fnv(const lm_params *p) {
    unsigned char le[1024];
    uint64_t h = LM__FNV_SEED;
    size_t at, c;
    int k;
    for (k = 0; k < p->n; k++)
        for (at = 0; at < (size_t)p->t[k].size; at += c) {
            c = (size_t)p->t[k].size - at < 256 ? (size_t)p->t[k].size - at : 256;
            lm__st_encode(p->t[k].data + at, LM_DT_F32, c, le);
            h = lm__fnv1a(h, le, 4 * c);
        }
    return h;
}

/* The parameters as writer entries o[0..n): data from base (the weights, or a moment
   buffer laid out like them), names prefix + the parameter's name written into names (or,
   when names is NULL, the parameters' own). An error if the model looks wrong. */
static int lm__params_outs(const lm_params *p, const float *base, lm_st_out *o,
                           char (*names)[LM_NAME_MAX + 2], const char *prefix) {
    int i, k;
    for (i = 0; i < p->n; i++) {
        const lm_tensor *t = &p->t[i];
        size_t off = t->data >= p->data ? (size_t)(t->data - p->data) : p->total + 1;
        if (off > p->total || (size_t)t->size > p->total - off)
            return lm__fail(LM_ERR_ARG, "checkpoint: parameter %d lies outside the parameter block", i);
        o[i].name = p->names[i];
        if (names) {
            strcpy(names[i], prefix);
            strcat(names[i], p->names[i]);
            o[i].name = names[i];
        }
        o[i].ndim = t->ndim;
        for (k = 0; k < LM_MAX_DIMS; k++) o[i].shape[k] = k < t->ndim ? t->shape[k] : 0;
        o[i].data = base + off;
        o[i].dtype = LM_DT_F32;
        o[i].raw = NULL;
    }
    return LM_OK;
}

/* A file of a model as writer entries and metadata, ready for lm_st_write_mem or the file
   writer: state NULL, the checkpoint (the weights, the config as metadata); else the resume
   state (tensors m.<name> and v.<name>, the AdamW moments shaped as the parameters, and as
   metadata the config plus adam_step, step, data_pos, rng and the weights' fingerprint).
   The model's own make function puts its config's ncfg pairs in kv[0 .. 2 ncfg) (their
   numbers in num[0 .. 15)) and calls lm__model_file_make. kv points into num: use it
   where it was made. lm__model_file_free releases it. */
typedef struct lm__model_file {
    lm_st_out *o;            /* (n) entries, then (a state) their names                     */
    int n, nmeta;
    char num[20][24];        /* the metadata's numbers as text: the config's, then the state's */
    const char *kv[40];
} lm__model_file;
static void lm__model_file_free(lm__model_file *f) { LM_FREE(f->o); f->o = NULL; }
static int lm__model_file_make(lm__model_file *f, const lm_params *p, int ncfg,
                               const lm_train_state *state) {
    char (*names)[LM_NAME_MAX + 2] = NULL;
    int rc;
    f->o = NULL;
    if (p->n <= 0 || !p->t || !p->names || !p->data)
        return lm__fail(LM_ERR_ARG, "checkpoint: the model has no parameters");
    if (state && (!p->m || !p->v))
        return lm__fail(LM_ERR_ARG, "resume state: the model has no optimizer state");
    if (state && (state->step < 0 || p->step < 0))
        return lm__fail(LM_ERR_ARG, "resume state: negative step");
    f->n = state ? 2 * p->n : p->n;
    f->o = (lm_st_out *)LM_MALLOC((size_t)f->n * (sizeof(lm_st_out) + (state ? LM_NAME_MAX + 2 : 0)));
    if (!f->o) return lm__fail(LM_ERR_MEM, "checkpoint: out of memory");
    if (state) {
        names = (char (*)[LM_NAME_MAX + 2])(f->o + f->n);
        rc = lm__params_outs(p, p->m, f->o, names, "m.");
        if (rc == LM_OK) rc = lm__params_outs(p, p->v, f->o + p->n, names + p->n, "v.");
    } else {
        rc = lm__params_outs(p, p->data, f->o, NULL, "");
    }
    if (rc != LM_OK) { lm__model_file_free(f); return rc; }
    f->nmeta = ncfg;
    if (state) {
        const char **kv = f->kv + 2 * ncfg;
        char (*num)[24] = f->num + 15;
        kv[0] = "adam_step"; lm__utoa((uint64_t)p->step, num[0]); kv[1] = num[0];
        kv[2] = "step"; lm__utoa((uint64_t)state->step, num[1]); kv[3] = num[1];
        kv[4] = "data_pos"; lm__utoa(state->data_pos, num[2]); kv[5] = num[2];
        kv[6] = "rng"; lm__utoa(state->rng, num[3]); kv[7] = num[3];
        kv[8] = "weights_fnv"; lm__utoa(lm__weights_fnv(p), num[4]); kv[9] = num[4];
        f->nmeta = ncfg + 5;
    }
    return LM_OK;
}
static int lm__gpt_file_make(lm__model_file *f, const lm_gpt *m, const lm_train_state *state) {
    lm__gpt_meta(m, f->num, f->kv);
    return lm__model_file_make(f, &m->params, 6, state);
}

/* A Q8_0 model's checkpoint (CHECKPOINTS): each quantized weight NAME as NAME.q8 (I8,
   [out, in]) and NAME.d (F16, [out, nb]), unpacked from the kernels' layout into one
   buffer; the rest as F32; metadata quant = q8_0. To path, or else to memory. */
static int lm__gpt_save_q8(const lm_gpt *m, const char *path, void *mem, size_t cap, size_t *size) {
    const lm_params *p = &m->params;
    char num[5][24], (*names)[LM_NAME_MAX + 4] = NULL;
    const char *kv[14];
    lm_st_out *o = NULL;
    unsigned char *buf = NULL;
    size_t bytes = 0, at = 0;
    uint16_t *drow = NULL;
    int k, r, b, n = 0, rc = LM_ERR_MEM;
    for (k = 0; k < p->n; k++)
        if (p->t[k].q8) bytes += (size_t)p->t[k].q8->out * ((size_t)p->t[k].q8->in + 4 * (size_t)p->t[k].q8->nb) + 4;
    o = (lm_st_out *)LM_MALLOC(2 * (size_t)p->n * sizeof *o);
    names = (char (*)[LM_NAME_MAX + 4])LM_MALLOC(2 * (size_t)p->n * sizeof *names);
    buf = (unsigned char *)LM_MALLOC(bytes + 4);
    drow = (uint16_t *)LM_MALLOC(((size_t)m->cfg.n_embd * 4 / 32 + 1) * sizeof *drow);
    if (!o || !names || !buf || !drow) { lm__fail(LM_ERR_MEM, "checkpoint: out of memory"); goto done; }
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        const lm_q8 *W = t->q8;
        lm_st_out *e = &o[n++];
        memset(e, 0, sizeof *e);
        e->name = p->names[k];
        e->ndim = t->ndim;
        for (r = 0; r < t->ndim; r++) e->shape[r] = t->shape[r];
        e->data = t->data;
        if (!W) continue;
        /* the values, row by row (output-major), then the scales as floats (exact F16) */
        strcpy(names[2 * k], p->names[k]);
        strcat(names[2 * k], ".q8");
        e->name = names[2 * k];
        e->dtype = LM_DT_I8;
        e->shape[0] = W->out;
        e->shape[1] = W->in;
        e->raw = buf + at;
        for (r = 0; r < W->out; r++) lm__q8_unpack_row(W, r, (signed char *)(buf + at) + (size_t)r * W->in, drow);
        at += (size_t)W->out * W->in;
        e = &o[n++];
        memset(e, 0, sizeof *e);
        strcpy(names[2 * k + 1], p->names[k]);
        strcat(names[2 * k + 1], ".d");
        e->name = names[2 * k + 1];
        e->ndim = 2;
        e->shape[0] = W->out;
        e->shape[1] = W->nb;
        e->dtype = LM_DT_F16;
        e->data = (const float *)(buf + (at + 3) / 4 * 4);
        at = (at + 3) / 4 * 4;
        for (r = 0; r < W->out; r++)
            for (b = 0; b < W->nb; b++)
                ((float *)(buf + at))[(size_t)r * W->nb + b] = lm__f16_to_f32(W->d[lm__q8_dat(W, r, b)]);
        at += (size_t)W->out * W->nb * sizeof(float);
    }
    lm__gpt_meta(m, num, kv);
    kv[12] = "quant";
    kv[13] = "q8_0";
#ifndef LM_NO_STDIO
    if (path) { rc = lm_st_write(path, o, n, kv, 7); goto done; }
#endif
    rc = lm_st_write_mem(o, n, kv, 7, mem, cap, size);
done:
    if (o) LM_FREE(o);
    if (names) LM_FREE(names);
    if (buf) LM_FREE(buf);
    if (drow) LM_FREE(drow);
    (void)path;
    return rc;
}

LMDEF int lm_gpt_save_mem(const lm_gpt *m, void *buf, size_t cap, size_t *size) {
    lm__model_file f;
    int rc;
    if (size) *size = 0;
    if (!m) return lm__fail(LM_ERR_ARG, "lm_gpt_save_mem: NULL model");
    if (m->cfg.quant) return lm__gpt_save_q8(m, NULL, buf, cap, size);
    if ((rc = lm__gpt_file_make(&f, m, NULL)) != LM_OK) return rc;
    rc = lm_st_write_mem(f.o, f.n, f.kv, f.nmeta, buf, cap, size);
    lm__model_file_free(&f);
    return rc;
}

/* ---------------------------------------------------------------------------------------
   Encoder-decoder checkpoints. The parameters under their own names (section 9's layout:
   PyTorch's state-dict names of nn.Transformer under "transformer.", in its (out, in)
   layout, and the embeddings and output layer of PyTorch's translation tutorial), the
   config as metadata under nn.Transformer's argument names. Loading takes the shape from
   the tensors and the rest from the metadata, and checks that every tensor the layout has
   is there with its shape and a readable dtype, and nothing else is (but the tutorial's
   positions buffer, which lm.h computes itself), before anything is allocated.
   --------------------------------------------------------------------------------------- */
#define LM__S2S_META 14
static void lm__s2s_meta(const lm_seq2seq *m, char (*num)[24], const char **kv) {
    static const char *const keys[LM__S2S_META] = {
        "format", "d_model", "nhead", "num_encoder_layers", "num_decoder_layers",
        "dim_feedforward", "norm_first", "activation", "n_ctx", "src_vocab_size",
        "tgt_vocab_size", "bos_id", "eos_id", "pad_id" };
    const lm_seq2seq_config *c = &m->cfg;
    int vals[LM__S2S_META], i;
    vals[1] = c->d_model; vals[2] = c->nhead; vals[3] = c->num_encoder_layers;
    vals[4] = c->num_decoder_layers; vals[5] = c->dim_feedforward; vals[8] = c->n_ctx;
    vals[9] = c->src_vocab; vals[10] = c->tgt_vocab; vals[11] = c->bos_id; vals[12] = c->eos_id;
    vals[13] = c->pad_id;
    for (i = 0; i < LM__S2S_META; i++) {
        kv[2 * i] = keys[i];
        if (i == 0 || i == 6 || i == 7) continue;
        lm__utoa((uint64_t)(vals[i] < 0 ? 0 : vals[i]), num[i]);
        kv[2 * i + 1] = num[i];
    }
    kv[1] = "pt";
    kv[13] = c->norm_first ? "true" : "false";
    kv[15] = c->activation == LM_ACT_GELU ? "gelu" : "relu";
}

/* The number of a layer in a name "transformer.STACK.layers.N.rest", or -1 when the name is
   not one of STACK's layers (N: 1 to 3 digits, no leading zero). */
static int lm__s2s_layer_of(const char *name, const char *stack) {
    size_t n = strlen(stack);
    int i = 0, d = 0;
    if (strncmp(name, "transformer.", 12) || strncmp(name + 12, stack, n) ||
        strncmp(name + 12 + n, ".layers.", 8)) return -1;
    name += 12 + n + 8;
    if (name[0] == '0' && name[1] != '.') return -1;
    for (; *name >= '0' && *name <= '9'; name++, d++) {
        if (d == 3) return -1;
        i = i * 10 + (*name - '0');
    }
    return d > 0 && *name == '.' ? i : -1;
}

/* A yes/no from __metadata__: 0 or 1 if read, *out untouched when absent, an error if not
   one of true, false, True, False, 1, 0. */
static int lm__s2s_meta_bool(const lm_st_file *f, const char *key, int *out) {
    const char *v = lm_st_meta(f, key);
    if (!v) return LM_OK;
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0")) *out = 0;
    else return lm__fail(LM_ERR_FORMAT, "checkpoint: metadata %s = '%s' is not true or false", key, v);
    return LM_OK;
}

/* Check a parsed checkpoint completely, then build the model and copy the weights in. */
static lm_seq2seq *lm__s2s_from_st(const lm_st_file *f) {
    const lm_st_entry *se = lm_st_find(f, "src_tok_emb.embedding.weight");
    const lm_st_entry *te = lm_st_find(f, "tgt_tok_emb.embedding.weight"), *l1 = NULL;
    const char *act = lm_st_meta(f, "activation");
    lm_seq2seq_config c;
    lm_seq2seq *m = NULL;
    char name[LM_NAME_MAX], s1[128], s2[128];
    int64_t want[LM_MAX_DIMS];
    int i, k, n, rc, nd, shape[LM_MAX_DIMS], *used = NULL;
    uint64_t u;
    if (!se || !te) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: no tensor '%s' (not an encoder-decoder checkpoint)",
                 !se ? "src_tok_emb.embedding.weight" : "tgt_tok_emb.embedding.weight");
        return NULL;
    }
    if (se->ndim != 2 || te->ndim != 2 || se->shape[1] != te->shape[1] || se->shape[1] < 1 ||
        se->shape[1] > 65536 || se->shape[0] < 1 || te->shape[0] < 1 ||
        se->numel > INT_MAX || te->numel > INT_MAX) {
        lm__st_shape_str(se->shape, se->ndim, s1);
        lm__st_shape_str(te->shape, te->ndim, s2);
        lm__fail(LM_ERR_FORMAT, "checkpoint: the embeddings %s and %s must be (V, d_model) of one "
                 "d_model, within range", s1, s2);
        return NULL;
    }
    memset(&c, 0, sizeof c);
    c.d_model = (int)se->shape[1];
    c.src_vocab = (int)se->shape[0];
    c.tgt_vocab = (int)te->shape[0];
    for (i = 0; i < f->n; i++) {                       /* the stacks' depths */
        int le = lm__s2s_layer_of(f->entries[i].name, "encoder");
        int ld = lm__s2s_layer_of(f->entries[i].name, "decoder");
        if (le + 1 > c.num_encoder_layers) c.num_encoder_layers = le + 1;
        if (ld + 1 > c.num_decoder_layers) c.num_decoder_layers = ld + 1;
    }
    if (!c.num_encoder_layers || !c.num_decoder_layers) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: no %s layers (transformer.%s.layers.0.*)",
                 c.num_encoder_layers ? "decoder" : "encoder", c.num_encoder_layers ? "decoder" : "encoder");
        return NULL;
    }
    l1 = lm_st_find(f, "transformer.encoder.layers.0.linear1.weight");
    if (!l1 || l1->ndim != 2 || l1->shape[0] < 1 || l1->shape[0] > INT_MAX / 2) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: no tensor 'transformer.encoder.layers.0.linear1.weight' "
                 "of shape (dim_feedforward, d_model)");
        return NULL;
    }
    c.dim_feedforward = (int)l1->shape[0];
    /* the rest from the metadata: nhead must be there; the others default as PyTorch's */
    if ((rc = lm__gpt_meta_int(f, "nhead", INT_MAX, &u)) < 0) return NULL;
    if (rc == 0) { lm__fail(LM_ERR_FORMAT, "checkpoint: no nhead in the metadata"); return NULL; }
    c.nhead = (int)u;
    if (c.nhead < 1) { lm__fail(LM_ERR_FORMAT, "checkpoint: nhead 0"); return NULL; }
    if (lm__s2s_meta_bool(f, "norm_first", &c.norm_first) != LM_OK) return NULL;
    if (act && strcmp(act, "relu") && strcmp(act, "gelu")) {
        lm__fail(LM_ERR_FORMAT, "checkpoint: metadata activation = '%s' is not relu or gelu", act);
        return NULL;
    }
    c.activation = act && !strcmp(act, "gelu") ? LM_ACT_GELU : LM_ACT_RELU;
    {
        static const char *const keys[10] = { "n_ctx", "bos_id", "eos_id", "pad_id", "d_model",
            "num_encoder_layers", "num_decoder_layers", "dim_feedforward", "src_vocab_size",
            "tgt_vocab_size" };
        int *dst[4], have[6];
        dst[0] = &c.n_ctx; dst[1] = &c.bos_id; dst[2] = &c.eos_id; dst[3] = &c.pad_id;
        have[0] = c.d_model; have[1] = c.num_encoder_layers; have[2] = c.num_decoder_layers;
        have[3] = c.dim_feedforward; have[4] = c.src_vocab; have[5] = c.tgt_vocab;
        for (k = 0; k < 10; k++) {
            if ((rc = lm__gpt_meta_int(f, keys[k], INT_MAX, &u)) < 0) return NULL;
            if (rc == 0) continue;
            if (k < 4) {
                if (u == 0) {                  /* 0 in the config means "the default" */
                    lm__fail(LM_ERR_FORMAT, "checkpoint: metadata %s = 0 is not supported", keys[k]);
                    return NULL;
                }
                *dst[k] = (int)u;
            } else if (u != (uint64_t)have[k - 4]) {
                lm__fail(LM_ERR_FORMAT, "checkpoint: metadata says %s = %d, the tensors say %d",
                         keys[k], (int)u, have[k - 4]);
                return NULL;
            }
        }
    }
    if (lm__s2s_config(&c, &c) != LM_OK) {
        char why[400];
        lm__fmt(why, sizeof why, "%s", lm_error());
        lm__fail(LM_ERR_FORMAT, "checkpoint: %s", why);
        return NULL;
    }
    /* every tensor of the layout, with its shape and a readable dtype; then nothing else */
    n = LM__S2S_N(c.num_encoder_layers, c.num_decoder_layers);
    used = (int *)LM_MALLOC(((size_t)f->n + 1) * sizeof(int));
    if (!used) { lm__fail(LM_ERR_MEM, "checkpoint: out of memory"); return NULL; }
    for (i = 0; i < f->n; i++) used[i] = 0;
    for (k = 0; k < n; k++) {
        const lm_st_entry *e;
        int d, same;
        lm__s2s_layout(&c, k, name, &nd, shape);
        if (!(e = lm_st_find(f, name))) {
            lm__fail(LM_ERR_FORMAT, "checkpoint: missing tensor '%s'", name);
            goto fail;
        }
        if (!lm__st_readable(e->dtype)) {
            lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' has dtype %s; weights must be F32, "
                     "F16 or BF16", e->name, lm_st_dtype_name(e->dtype));
            goto fail;
        }
        for (same = e->ndim == nd, d = 0; d < nd; d++) {
            want[d] = shape[d];
            if (same) same = e->shape[d] == shape[d];
        }
        if (!same) {
            lm__st_shape_str(e->shape, e->ndim, s1);
            lm__st_shape_str(want, nd, s2);
            lm__fail(LM_ERR_FORMAT, "checkpoint: tensor '%s' has shape %s, expected %s", name, s1, s2);
            goto fail;
        }
        used[e - f->entries] = 1;
    }
    for (i = 0; i < f->n; i++)
        if (!used[i] && strcmp(f->entries[i].name, "positional_encoding.pos_embedding")) {
            lm__fail(LM_ERR_FORMAT, "checkpoint: unexpected tensor '%s' (not a name of the "
                     "encoder-decoder)", f->entries[i].name);
            goto fail;
        }
    LM_FREE(used);
    used = NULL;
    /* all checked: build the model and copy the weights in */
    if (!(m = lm__s2s_alloc(&c))) return NULL;
    for (k = 0; k < n; k++)
        if (lm_st_read_f32(f, lm_st_find(f, m->params.names[k]), m->params.t[k].data) != LM_OK) goto fail;
    return m;
fail:
    if (used) LM_FREE(used);
    lm_seq2seq_free(m);
    return NULL;
}

LMDEF lm_seq2seq *lm_seq2seq_load_mem(const void *buf, size_t len) {
    lm_st_file f;
    lm_seq2seq *m;
    if (lm_st_parse(&f, buf, len)) return NULL;
    m = lm__s2s_from_st(&f);
    lm_st_close(&f);
    return m;
}

static int lm__s2s_file_make(lm__model_file *f, const lm_seq2seq *m, const lm_train_state *state) {
    lm__s2s_meta(m, f->num, f->kv);
    return lm__model_file_make(f, &m->params, LM__S2S_META, state);
}

LMDEF int lm_seq2seq_save_mem(const lm_seq2seq *m, void *buf, size_t cap, size_t *size) {
    lm__model_file f;
    int rc;
    if (size) *size = 0;
    if (!m) return lm__fail(LM_ERR_ARG, "lm_seq2seq_save_mem: NULL model");
    if ((rc = lm__s2s_file_make(&f, m, NULL)) != LM_OK) return rc;
    rc = lm_st_write_mem(f.o, f.n, f.kv, f.nmeta, buf, cap, size);
    lm__model_file_free(&f);
    return rc;
}

#ifndef LM_NO_STDIO
LMDEF int lm_gpt_save(const lm_gpt *m, const char *path) {
    lm__model_file f;
    int rc;
    if (!m || !path) return lm__fail(LM_ERR_ARG, "lm_gpt_save: NULL argument");
    if (m->cfg.quant) return lm__gpt_save_q8(m, path, NULL, 0, NULL);
    if ((rc = lm__gpt_file_make(&f, m, NULL)) != LM_OK) return rc;
    rc = lm_st_write(path, f.o, f.n, f.kv, f.nmeta);
    lm__model_file_free(&f);
    return rc;
}

LMDEF lm_gpt *lm_gpt_load(const char *path, int n_head) {
    lm_st_file f;
    lm_gpt *m;
    if (!path) { lm__fail(LM_ERR_ARG, "lm_gpt_load: NULL path"); return NULL; }
    if (lm_st_open(&f, path)) return NULL;
    m = lm__gpt_from_st(&f, n_head);
    lm_st_close(&f);
    return m;
}

/* A resume state file made by f (released here) to model_path.state. */
static int lm__save_state(lm__model_file *f, const char *model_path, const char *who) {
    char *path;
    int rc;
    if ((path = lm__path_plus(model_path, ".state")) != NULL) {
        rc = lm_st_write(path, f->o, f->n, f->kv, f->nmeta);
        LM_FREE(path);
    } else {
        rc = lm__fail(LM_ERR_MEM, "%s: out of memory", who);
    }
    lm__model_file_free(f);
    return rc;
}
LMDEF int lm_gpt_save_state(const lm_gpt *m, const char *model_path, const lm_train_state *s) {
    lm__model_file f;
    int rc;
    if (!m || !model_path || !s) return lm__fail(LM_ERR_ARG, "lm_gpt_save_state: NULL argument");
    if ((rc = lm__gpt_file_make(&f, m, s)) != LM_OK) return rc;
    return lm__save_state(&f, model_path, "lm_gpt_save_state");
}

/* The checkpoint and its resume state as one commit (section 14's writer, twice): both
   temporary files are written, flushed and synced before either is renamed; then the
   weights are renamed (the commit point), then the state. Stopped before the commit, the
   old pair stands; after it, the new weights stand and the state that goes with them is
   complete in path.state.tmp, where lm_gpt_load_state finds it (see below). */
/* The checkpoint fm and its resume state fs, both made (released here), as one commit to
   path and path.state. */
static int lm__save_with_state(lm__model_file *fm, lm__model_file *fs, const char *path,
                               const char *who) {
    lm__st_plan pm, ps;
    lm__out om, os;
    char *spath = NULL;
    int rc;
    pm.buf = ps.buf = NULL;
    /* everything that can fail before a file is touched */
    if ((rc = lm__st_plan_make(&ps, fs->o, fs->n, fs->kv, fs->nmeta)) != LM_OK ||
        (rc = lm__st_plan_make(&pm, fm->o, fm->n, fm->kv, fm->nmeta)) != LM_OK)
        goto done;
    if (!(spath = lm__path_plus(path, ".state"))) {
        rc = lm__fail(LM_ERR_MEM, "%s: out of memory", who);
        goto done;
    }
    if ((rc = lm__out_open(&os, spath)) != LM_OK) goto done;
    lm__st_plan_put(&ps, &os);
    if ((rc = lm__out_finish(&os)) != LM_OK) goto done;
    if ((rc = lm__out_open(&om, path)) != LM_OK) { lm__out_drop(&os); goto done; }
    lm__st_plan_put(&pm, &om);
    if ((rc = lm__out_finish(&om)) != LM_OK) { lm__out_drop(&os); goto done; }
    if ((rc = lm__out_commit(&om, NULL)) != LM_OK) { lm__out_drop(&os); goto done; }
    if ((rc = lm__out_commit(&os, "the weights are saved, and the resume state that goes with "
                             "them is kept complete in the temporary file (loading the state "
                             "finds it there)")) != LM_OK) {
        lm__out_sync(&om);            /* the committed weights, at least, made durable */
        goto done;
    }
    lm__out_release(&om);             /* same directory: one sync covers both renames */
    rc = lm__out_sync(&os);
done:
    LM_FREE(pm.buf);
    LM_FREE(ps.buf);
    lm__model_file_free(fm);
    lm__model_file_free(fs);
    LM_FREE(spath);
    return rc;
}
LMDEF int lm_gpt_save_with_state(const lm_gpt *m, const char *path, const lm_train_state *s) {
    lm__model_file fm, fs;
    int rc;
    if (!m || !path || !s) return lm__fail(LM_ERR_ARG, "lm_gpt_save_with_state: NULL argument");
    fm.o = fs.o = NULL;
    if ((rc = lm__gpt_file_make(&fs, m, s)) != LM_OK || (rc = lm__gpt_file_make(&fm, m, NULL)) != LM_OK) {
        lm__model_file_free(&fs);
        lm__model_file_free(&fm);
        return rc;
    }
    return lm__save_with_state(&fm, &fs, path, "lm_gpt_save_with_state");
}

/* Check a parsed state file against a model's parameters and config (the integers have[k]
   under the metadata keys cfg_keys[k]); copy only when all of it fits. */
static int lm__state_from_st(lm_params *p, const char *const *cfg_keys, const int *have, int ncfg,
                             const lm_st_file *f, lm_train_state *s, const char *who) {
    static const char *const num_keys[5] = {"adam_step", "step", "data_pos", "rng", "weights_fnv"};
    uint64_t num[5], u;
    int i, k, rc;
    char name[LM_NAME_MAX + 2];
    for (k = 0; k < ncfg; k++) {
        if ((rc = lm__gpt_meta_int(f, cfg_keys[k], INT_MAX, &u)) < 0) return rc;
        if (rc == 0) return lm__fail(LM_ERR_FORMAT, "state file: no metadata %s", cfg_keys[k]);
        if (u != (uint64_t)have[k])
            return lm__fail(LM_ERR_FORMAT, "state file: %s is %d, the model has %d", cfg_keys[k],
                            (int)u, have[k]);
    }
    for (k = 0; k < 5; k++) {
        uint64_t max = k < 2 ? (uint64_t)LONG_MAX : ~(uint64_t)0;
        if ((rc = lm__gpt_meta_int(f, num_keys[k], max, &num[k])) < 0) return rc;
        if (rc == 0) return lm__fail(LM_ERR_FORMAT, "state file: no metadata %s", num_keys[k]);
    }
    if (!p->m || !p->v || p->n <= 0 || !p->t)
        return lm__fail(LM_ERR_ARG, "%s: the model has no optimizer state", who);
    if (f->n != 2 * p->n)
        return lm__fail(LM_ERR_FORMAT, "state file: %d tensors, the model needs %d", f->n, 2 * p->n);
    for (i = 0; i < 2 * p->n; i++) {
        const lm_tensor *t = &p->t[i % p->n];
        const lm_st_entry *e;
        int same, d;
        strcpy(name, i < p->n ? "m." : "v.");
        strcat(name, p->names[i % p->n]);
        if (!(e = lm_st_find(f, name)))
            return lm__fail(LM_ERR_FORMAT, "state file: missing tensor '%s'", name);
        same = e->dtype == LM_DT_F32 && e->ndim == t->ndim;
        for (d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
        if (!same)
            return lm__fail(LM_ERR_FORMAT, "state file: tensor '%s' is not F32 of the "
                            "parameter's shape", name);
        if (t->data < p->data || (size_t)(t->data - p->data) + (size_t)t->size > p->total)
            return lm__fail(LM_ERR_ARG, "%s: parameter %d outside the block", who, i);
    }
    if (num[4] != lm__weights_fnv(p))
        return lm__fail(LM_ERR_FORMAT, "state file: it was saved with other weights than the "
                        "model's (an interrupted save?); cannot resume exactly");
    /* all checked (and since the count matches and names are unique, nothing is extra) */
    for (i = 0; i < 2 * p->n; i++) {
        const lm_tensor *t = &p->t[i % p->n];
        float *dst = (i < p->n ? p->m : p->v) + (t->data - p->data);
        strcpy(name, i < p->n ? "m." : "v.");
        strcat(name, p->names[i % p->n]);
        if ((rc = lm_st_read_f32(f, lm_st_find(f, name), dst)) != LM_OK) return rc;
    }
    p->step = (long)num[0];
    s->step = (long)num[1];
    s->data_pos = num[2];
    s->rng = num[3];
    return LM_OK;
}

static int lm__state_load(lm_params *p, const char *const *cfg_keys, const int *have, int ncfg,
                          const char *path, lm_train_state *s, const char *who) {
    lm_st_file f;
    int rc = lm_st_open(&f, path);
    if (rc) return rc;
    rc = lm__state_from_st(p, cfg_keys, have, ncfg, &f, s, who);
    lm_st_close(&f);
    return rc;
}
/* PATH.state; or, when that is missing or not m's, PATH.state.tmp if it is: a save of
   lm_gpt_save_with_state (or lm_seq2seq_save_with_state) stopped after renaming the
   weights left the state that goes with them complete there, and renaming it into place
   finishes that save. */
static int lm__load_state(lm_params *p, const char *const *cfg_keys, const int *have, int ncfg,
                          const char *model_path, lm_train_state *s, const char *who) {
    char *path, *tmp, why[512];
    size_t n;
    int rc;
    if (!p->m || !p->v)                            /* (a quantized model, say) */
        return lm__fail(LM_ERR_ARG, "%s: the model has no optimizer state", who);
    n = strlen(model_path);
    if (!(path = (char *)LM_MALLOC(2 * n + 22)))               /* PATH.state, PATH.state.tmp */
        return lm__fail(LM_ERR_MEM, "%s: out of memory", who);
    tmp = path + n + 7;
    memcpy(path, model_path, n);
    memcpy(path + n, ".state", 7);
    memcpy(tmp, path, n + 6);
    memcpy(tmp + n + 6, ".tmp", 5);
    if ((rc = lm__state_load(p, cfg_keys, have, ncfg, path, s, who)) != LM_OK && rc != LM_ERR_MEM) {
        int rc2;
        lm__fmt(why, sizeof why, "%s", lm_error());
        if ((rc2 = lm__state_load(p, cfg_keys, have, ncfg, tmp, s, who)) == LM_OK) {
            rc = LM_OK;
            if (rename(tmp, path) == 0)            /* if not, the next save puts it right */
                lm_log("checkpoint: finished a save of '%s' that had stopped between its two "
                       "renames (its resume state was still in '%s')", model_path, tmp);
        } else if (rc2 == LM_ERR_MEM) {
            rc = rc2;                              /* it may load when memory is back */
        } else {
            rc = lm__fail(rc, "%s", why);
        }
    }
    LM_FREE(path);
    return rc;
}
LMDEF int lm_gpt_load_state(lm_gpt *m, const char *model_path, lm_train_state *s) {
    static const char *const cfg_keys[5] = {"n_layer", "n_head", "n_embd", "n_ctx", "vocab_size"};
    int have[5];
    if (!m || !model_path || !s) return lm__fail(LM_ERR_ARG, "lm_gpt_load_state: NULL argument");
    have[0] = m->cfg.n_layer; have[1] = m->cfg.n_head; have[2] = m->cfg.n_embd;
    have[3] = m->cfg.n_ctx; have[4] = m->cfg.vocab;
    return lm__load_state(&m->params, cfg_keys, have, 5, model_path, s, "lm_gpt_load_state");
}
LMDEF int lm_seq2seq_save(const lm_seq2seq *m, const char *path) {
    lm__model_file f;
    int rc;
    if (!m || !path) return lm__fail(LM_ERR_ARG, "lm_seq2seq_save: NULL argument");
    if ((rc = lm__s2s_file_make(&f, m, NULL)) != LM_OK) return rc;
    rc = lm_st_write(path, f.o, f.n, f.kv, f.nmeta);
    lm__model_file_free(&f);
    return rc;
}

LMDEF lm_seq2seq *lm_seq2seq_load(const char *path) {
    lm_st_file f;
    lm_seq2seq *m;
    if (!path) { lm__fail(LM_ERR_ARG, "lm_seq2seq_load: NULL path"); return NULL; }
    if (lm_st_open(&f, path)) return NULL;
    m = lm__s2s_from_st(&f);
    lm_st_close(&f);
    return m;
}

/* The resume state as the GPT's, with the shape's config checked. Dropout masks come from
   (m->seed, m->steps): loading the state sets m->steps to its step, and a loaded model's
   seed is 0 until the caller sets it (to the seed of the run that is resumed). */
LMDEF int lm_seq2seq_save_state(const lm_seq2seq *m, const char *model_path, const lm_train_state *s) {
    lm__model_file f;
    int rc;
    if (!m || !model_path || !s) return lm__fail(LM_ERR_ARG, "lm_seq2seq_save_state: NULL argument");
    if ((rc = lm__s2s_file_make(&f, m, s)) != LM_OK) return rc;
    return lm__save_state(&f, model_path, "lm_seq2seq_save_state");
}
LMDEF int lm_seq2seq_save_with_state(const lm_seq2seq *m, const char *path, const lm_train_state *s) {
    lm__model_file fm, fs;
    int rc;
    if (!m || !path || !s) return lm__fail(LM_ERR_ARG, "lm_seq2seq_save_with_state: NULL argument");
    fm.o = fs.o = NULL;
    if ((rc = lm__s2s_file_make(&fs, m, s)) != LM_OK || (rc = lm__s2s_file_make(&fm, m, NULL)) != LM_OK) {
        lm__model_file_free(&fs);
        lm__model_file_free(&fm);
        return rc;
    }
    return lm__save_with_state(&fm, &fs, path, "lm_seq2seq_save_with_state");
}
LMDEF int lm_seq2seq_load_state(lm_seq2seq *m, const char *model_path, lm_train_state *s) {
    static const char *const cfg_keys[7] = { "d_model", "nhead", "num_encoder_layers",
        "num_decoder_layers", "dim_feedforward", "src_vocab_size", "tgt_vocab_size" };
    const lm_seq2seq_config *c;
    int have[7], rc;
    if (!m || !model_path || !s) return lm__fail(LM_ERR_ARG, "lm_seq2seq_load_state: NULL argument");
    c = &m->cfg;
    have[0] = c->d_model; have[1] = c->nhead; have[2] = c->num_encoder_layers;
    have[3] = c->num_decoder_layers; have[4] = c->dim_feedforward; have[5] = c->src_vocab;
    have[6] = c->tgt_vocab;
    rc = lm__load_state(&m->params, cfg_keys, have, 7, model_path, s, "lm_seq2seq_load_state");
    if (rc == LM_OK) m->steps = (uint64_t)s->step;
    return rc;
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
