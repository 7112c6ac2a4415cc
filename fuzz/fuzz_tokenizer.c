/* fuzz_tokenizer.c - libFuzzer target for the tokenizer readers (and the BPE trainer).

   Build (make fuzz does this):
       clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_tokenizer.c \
             -o fuzz/tokenizer-fuzz -lm -lpthread

   The first byte of the input chooses what the rest is (its value modulo 3):
     0  an lm-bpe file for lm_tok_load_mem;
     1  GPT-2's two files for lm_tok_load_gpt2_mem: encoder.json, a NUL byte, vocab.bpe.
        A separator byte (rather than a split point stored in the input) keeps the split
        where it was when the mutator inserts or deletes bytes in either file; neither
        file may hold a raw NUL, so nothing is lost. No NUL: vocab.bpe is empty.
     2  text for lm_tok_train; the second byte sets the vocabulary, 256 + (0..255).
   Whatever loads is then used, and its promises checked:
     - every text encodes to ids in [0, vocab), at most one per byte, and decodes back to
       exactly the same bytes (a fixed text with contractions, numbers, non-ASCII letters,
       invalid UTF-8 and white-space runs, and the tail of the input itself);
     - encoding or decoding into a buffer that is too small still reports the full count;
     - decoding ids taken from the input fails with LM_ERR_ARG exactly when one is out of
       range;
     - an lm-bpe file that loads saves back to the same bytes (the format has one
       spelling per tokenizer), and a trained tokenizer saves and reloads to the same
       encoding. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond, what) do { if (!(cond)) { \
    fprintf(stderr, "fuzz_tokenizer: %s [%s] (lm_error: %s)\n", what, #cond, lm_error()); \
    abort(); } } while (0)

/* Longest text given to the trainer: training is the slowest path here. */
#define FUZZ_TRAIN_MAX 4096

static const char fuzz_text[] =
    "Hello, world! It's 2024; they'll say \"we've\" done it   twice.\n\n"
    "  na\xc3\xafve caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac 12345 x\xc2\xb2 \t\r\n"
    "\xff\xfe stray \x80 bytes, a cut \xe2\x82 sequence, <|endoftext|>  ";

/* Encode text[0..n) and decode it back; both must be exact. */
static void fuzz_roundtrip(const lm_tokenizer *t, const unsigned char *text, size_t n) {
    int vocab = lm_tok_vocab_size(t), *ids, small[1];
    unsigned char *back;
    long count, k, bytes;
    ids = (int *)malloc((n ? n : 1) * sizeof(int));
    back = (unsigned char *)malloc(n ? n : 1);
    FUZZ_ASSERT(ids && back, "malloc");
    count = lm_tok_encode(t, text, n, ids, n);
    FUZZ_ASSERT(count >= 0 && (size_t)count <= n, "encode: at most one id per byte");
    FUZZ_ASSERT(n == 0 || count > 0, "encode: a non-empty text gives ids");
    for (k = 0; k < count; k++) FUZZ_ASSERT(ids[k] >= 0 && ids[k] < vocab, "encode: ids in range");
    FUZZ_ASSERT(lm_tok_encode(t, text, n, small, n ? 1 : 0) == count,
                "encode: a short buffer still reports the full count");
    bytes = lm_tok_decode(t, ids, (size_t)count, back, n);
    FUZZ_ASSERT(bytes == (long)n && (n == 0 || !memcmp(back, text, n)),
                "decode(encode(text)) == text");
    if (n > 1)
        FUZZ_ASSERT(lm_tok_decode(t, ids, (size_t)count, back, n / 2) == (long)n,
                    "decode: a short buffer still reports the full length");
    free(ids);
    free(back);
}

/* Ids made from input bytes, some out of range: decoding fails exactly then. */
static void fuzz_decode_ids(const lm_tokenizer *t, const uint8_t *data, size_t size) {
    int vocab = lm_tok_vocab_size(t), ids[32] = {0}, bad = 0;
    size_t n = 0, i;
    unsigned char out[64];
    long got;
    for (i = 0; i + 3 <= size && n < 32; i += 3) {
        uint32_t v = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16;
        ids[n] = (int)(v % ((uint32_t)vocab + 2)) - 1;          /* -1 .. vocab */
        bad |= ids[n] < 0 || ids[n] >= vocab;
        n++;
    }
    got = lm_tok_decode(t, ids, n, out, sizeof out);
    FUZZ_ASSERT(bad ? got == LM_ERR_ARG : got >= (long)n, "decode refuses exactly the bad ids");
}

/* Everything we check on a tokenizer that loaded or trained. */
static void fuzz_use(const lm_tokenizer *t, const uint8_t *data, size_t size) {
    size_t tail = size < 64 ? size : 64;
    FUZZ_ASSERT(lm_tok_vocab_size(t) >= 256, "vocabulary of at least the 256 bytes");
    fuzz_roundtrip(t, (const unsigned char *)fuzz_text, sizeof fuzz_text - 1);
    fuzz_roundtrip(t, data + size - tail, tail);
    fuzz_decode_ids(t, data, size);
}

/* Save to memory (NULL: as the size the call reports). */
static unsigned char *fuzz_save(const lm_tokenizer *t, size_t *len) {
    long need = lm_tok_save_mem(t, NULL, 0);
    unsigned char *buf;
    FUZZ_ASSERT(need > 0, "save_mem: the size");
    buf = (unsigned char *)malloc((size_t)need);
    FUZZ_ASSERT(buf != NULL, "malloc");
    FUZZ_ASSERT(lm_tok_save_mem(t, buf, (size_t)need) == need, "save_mem: the image");
    *len = (size_t)need;
    return buf;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_tokenizer *t = NULL;
    const uint8_t *body = data + 1;
    size_t n = size ? size - 1 : 0, len;
    unsigned char *img;
    int mode;
    if (size == 0) return 0;
    mode = data[0] % 3;
    lm_clear_error();
    if (mode == 0) {
        t = lm_tok_load_mem(body, n);
        if (t) {
            img = fuzz_save(t, &len);
            FUZZ_ASSERT(len == n && !memcmp(img, body, n), "a loaded file saves to the same bytes");
            free(img);
        }
    } else if (mode == 1) {
        const uint8_t *nul = n ? (const uint8_t *)memchr(body, 0, n) : NULL;
        size_t n1 = nul ? (size_t)(nul - body) : n;
        t = lm_tok_load_gpt2_mem(body, n1, nul ? nul + 1 : body + n, nul ? n - n1 - 1 : 0);
        if (t) FUZZ_ASSERT(lm_tok_save_mem(t, NULL, 0) == LM_ERR_ARG, "GPT-2 tokenizers are not saved");
    } else {
        int vocab = 256 + (n ? body[0] : 0);
        const uint8_t *text = n ? body + 1 : body;
        size_t tn = n ? n - 1 : 0;
        if (tn > FUZZ_TRAIN_MAX) tn = FUZZ_TRAIN_MAX;
        t = lm_tok_train(text, tn, vocab);
        FUZZ_ASSERT(t != NULL, "training on any text works");
        FUZZ_ASSERT(lm_tok_vocab_size(t) <= vocab, "training stays within the vocabulary");
        fuzz_roundtrip(t, text, tn);
        {
            /* save, reload: the same tokenizer (the same image again, the same ids) */
            lm_tokenizer *r;
            unsigned char *img2;
            size_t len2;
            img = fuzz_save(t, &len);
            r = lm_tok_load_mem(img, len);
            FUZZ_ASSERT(r != NULL, "a trained tokenizer reloads");
            img2 = fuzz_save(r, &len2);
            FUZZ_ASSERT(len2 == len && !memcmp(img, img2, len), "reloaded: the same image");
            free(img2);
            lm_tok_free(r);
            free(img);
        }
    }
    if (t) fuzz_use(t, data, size);
    else FUZZ_ASSERT(strcmp(lm_error(), "no error"), "a failed load has a message");
    lm_tok_free(t);
    return 0;
}
