/* lm2c - turn a GPT checkpoint into C source, so a program without a file system (a
   microcontroller) can carry the model in flash.

   Build from the repository root:
       cc -O2 -I. tools/lm2c.c -o lm2c -lm
   Use:
       ./lm2c [--name NAME] [--heads N] [--quantize | --quantize-embeddings]
              MODEL.safetensors OUT.h

   The checkpoint is read with lm_gpt_load, so anything `lm` can load works: our own
   checkpoints, Q8_0 ones from `lm quantize`, and Hugging Face GPT-2 files (F32, F16 or
   BF16; the weights come out as float32). --quantize stores the block matrices in Q8_0
   (as lm quantize does), --quantize-embeddings the token embedding too. A float32 model's
   OUT.h holds, for NAME (default "model"):

       #define NAME_N_LAYER ... NAME_N_HEAD ... NAME_N_EMBD ... NAME_N_CTX ... NAME_VOCAB
       #define NAME_N_FLOATS                      the length of the weights array
       static const lm_gpt_config NAME_config;    the shape, as lm_gpt_config
       static const float NAME_weights[];         every tensor, in checkpoint order

   The weights are the model's tensors in checkpoint order (wte, wpe, then per
   block ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, each weight then
   bias, then ln_f), each tensor's floats row-major, one tensor straight after the other
   with no padding. A table of offsets in the file's opening comment shows where each
   starts. `const` at file scope puts the array in .rodata: flash on a microcontroller.
   The macros are plain integer constants, so a program can size static buffers with them.

   Every float is printed with 9 significant digits, which is enough to get back exactly
   the same float32 (the C compiler rounds decimal constants correctly), so the model in
   the C file is bit for bit the model in the checkpoint.

   A Q8_0 model's OUT.h is the image lm_gpt_from_memory reads (lm.h, lm_gpt_image): the
   tensors in the same order, a float32 one as its floats, a Q8_0 one as its scales (F16
   bits, uint16_t) then its values (bytes q + 128, in lm.h's packed layout of 16-row
   groups), as the members of one const struct, each named after its tensor:

       #define NAME_QUANT, NAME_IMAGE_BYTES       LM_QUANT_* and the image's size
       static const lm_gpt_config NAME_config;    with .quant = NAME_QUANT
       static const struct { ... } NAME_image;    wte_weight_d, wte_weight_q, wpe_weight, ...
       static const void *const NAME_weights;     = &NAME_image, for lm_gpt_from_memory

   Every size in the struct is a multiple of 4 bytes, so there is no padding between its
   members; a compile-time check on sizeof (NAME_image) says so. The float32 output also
   defines NAME_QUANT (0) and NAME_IMAGE_BYTES, so a program can use the same names for
   both.

   Include OUT.h after lm.h in one C file; examples/cortex_m/generate.c shows how to run
   it with no malloc. The file is written beside OUT first and renamed over it, so a
   failed run never leaves half a file. Exit status 0 on success, 2 on a usage error,
   1 when the checkpoint cannot be read or the output cannot be written. */
#define LM_NO_THREADS        /* a converter has no use for a thread pool */
#define LM_IMPLEMENTATION
#include "lm.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr, "usage: lm2c [--name NAME] [--heads N] [--quantize | --quantize-embeddings]\n"
                    "            MODEL.safetensors OUT.h\n"
                    "  --name NAME             prefix of the emitted names (default: model)\n"
                    "  --heads N               attention heads, when the checkpoint does not say\n"
                    "  --quantize              the block matrices in Q8_0 (int8 + scales)\n"
                    "  --quantize-embeddings   and the token embedding too\n");
}

/* Print one float so that the compiler reads back exactly the same float32: 9 significant
   digits, and always a '.' or an exponent, since "3f" is not a C constant but "3.0f" is. */
static void put_float(FILE *f, float v) {
    char s[48];
    sprintf(s, "%.9g", (double)v);
    if (!strchr(s, '.') && !strchr(s, 'e')) strcat(s, ".0");
    fprintf(f, "%sf", s);
}

/* Write the whole C file for model m: 0 on success, 1 on an I/O error, 2 when a weight
   is not a finite number (said on stderr). */
static int write_c(FILE *f, const lm_gpt *m, const char *name, const char *upper,
                   const char *source, const char *file) {
    const lm_gpt_config *c = &m->cfg;
    const lm_params *p = &m->params;
    size_t total = 0, off = 0;
    int k, i, d;
    for (k = 0; k < p->n; k++) total += (size_t)p->t[k].size;

    /* the opening comment: where it came from, its shape and the tensor table */
    fprintf(f, "/* %s - written by tools/lm2c from %s; do not edit.\n", file, source);
    fprintf(f, "   A GPT of %d layers, %d heads, width %d, context %d, vocabulary %d:\n",
            c->n_layer, c->n_head, c->n_embd, c->n_ctx, c->vocab);
    fprintf(f, "   %lu parameters, %lu bytes of const float.\n", (unsigned long)total,
            (unsigned long)(total * sizeof(float)));
    fprintf(f, "   %s_weights: the tensors in checkpoint order, no padding between them:\n", name);
    fprintf(f, "       %-10s %-9s %-12s %s\n", "offset", "floats", "shape", "name");
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        char shape[64];
        int n = 0;
        for (d = 0; d < t->ndim; d++) n += sprintf(shape + n, d ? " x %d" : "%d", t->shape[d]);
        fprintf(f, "       %-10lu %-9d %-12s %s\n", (unsigned long)off, t->size, shape, p->names[k]);
        off += (size_t)t->size;
    }
    fprintf(f, "   Include this file after lm.h in one C file. */\n");
    fprintf(f, "#ifndef LM_H\n#error \"include lm.h before %s\"\n#endif\n\n", file);

    /* the shape as integer constants, then as an lm_gpt_config */
    fprintf(f, "#define %s_N_LAYER %d\n", upper, c->n_layer);
    fprintf(f, "#define %s_N_HEAD %d\n", upper, c->n_head);
    fprintf(f, "#define %s_N_EMBD %d\n", upper, c->n_embd);
    fprintf(f, "#define %s_N_CTX %d\n", upper, c->n_ctx);
    fprintf(f, "#define %s_VOCAB %d\n", upper, c->vocab);
    fprintf(f, "#define %s_QUANT 0\n", upper);
    fprintf(f, "#define %s_N_FLOATS %lu\n", upper, (unsigned long)total);
    fprintf(f, "#define %s_IMAGE_BYTES (%s_N_FLOATS * 4)\n\n", upper, upper);
    /* positional, in the field order of lm_gpt_config: n_layer, n_head, n_embd, n_ctx,
       vocab, quant */
    fprintf(f, "static const lm_gpt_config %s_config = {\n"
               "    %s_N_LAYER, %s_N_HEAD, %s_N_EMBD, %s_N_CTX, %s_VOCAB, %s_QUANT\n};\n\n",
            name, upper, upper, upper, upper, upper, upper);

    /* the weights: one tensor after another, a comment line naming each */
    fprintf(f, "static const float %s_weights[%s_N_FLOATS] = {\n", name, upper);
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        fprintf(f, "    /* %s */\n", p->names[k]);
        for (i = 0; i < t->size; i++) {
            if (i % 8 == 0) fputs("    ", f);
            if (!isfinite(t->data[i])) {
                fprintf(stderr, "lm2c: %s[%d] is not a finite number\n", p->names[k], i);
                return 2;
            }
            put_float(f, t->data[i]);
            fputs(k == p->n - 1 && i == t->size - 1 ? "\n" : (i % 8 == 7 || i == t->size - 1) ? ",\n" : ", ", f);
        }
    }
    fprintf(f, "};\n");
    return ferror(f) ? 1 : 0;
}

/* A tensor name as a C identifier: "h.0.attn.c_attn.weight" -> "h_0_attn_c_attn_weight". */
static const char *member(const char *tensor, const char *suffix) {
    static char id[LM_NAME_MAX + 8];
    size_t i;
    for (i = 0; tensor[i] && i < LM_NAME_MAX; i++) id[i] = isalnum((unsigned char)tensor[i]) ? tensor[i] : '_';
    id[i] = 0;
    strcat(id, suffix);
    return id;
}

/* The C file of a Q8_0 model: the image of lm_gpt_image as one struct. */
static int write_c_q8(FILE *f, const lm_gpt *m, const char *name, const char *upper,
                      const char *source, const char *file) {
    const lm_gpt_config *c = &m->cfg;
    const lm_params *p = &m->params;
    size_t off = 0, image = lm_gpt_image(m, NULL, 0), i;
    int k, d;
    fprintf(f, "/* %s - written by tools/lm2c from %s; do not edit.\n", file, source);
    fprintf(f, "   A GPT of %d layers, %d heads, width %d, context %d, vocabulary %d, with %s\n"
               "   in Q8_0: %lu parameters in %lu bytes of const data (%.2f bytes a parameter).\n",
            c->n_layer, c->n_head, c->n_embd, c->n_ctx, c->vocab,
            c->quant == LM_QUANT_Q8_0_EMB ? "the block matrices and wte" : "the block matrices",
            (unsigned long)lm_gpt_num_params(m), (unsigned long)image,
            (double)image / (double)lm_gpt_num_params(m));
    fprintf(f, "   %s_image: the tensors in checkpoint order, as lm_gpt_from_memory reads them\n"
               "   (lm.h: lm_gpt_image; a Q8_0 tensor is its scales, then its values q + 128):\n", name);
    fprintf(f, "       %-10s %-9s %-12s %s\n", "offset", "bytes", "shape", "name");
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        char shape[64];
        size_t bytes = t->q8 ? LM_Q8_SCALES(t->q8->out, t->q8->in) * 2 + LM_Q8_VALUES(t->q8->out, t->q8->in)
                             : (size_t)t->size * 4;
        int n = 0;
        for (d = 0; d < t->ndim; d++) n += sprintf(shape + n, d ? " x %d" : "%d", t->shape[d]);
        fprintf(f, "       %-10lu %-9lu %-12s %s%s\n", (unsigned long)off, (unsigned long)bytes, shape,
                p->names[k], t->q8 ? " (Q8_0)" : "");
        off += bytes;
    }
    fprintf(f, "   Include this file after lm.h in one C file. */\n");
    fprintf(f, "#ifndef LM_H\n#error \"include lm.h before %s\"\n#endif\n\n", file);
    fprintf(f, "#define %s_N_LAYER %d\n#define %s_N_HEAD %d\n#define %s_N_EMBD %d\n"
               "#define %s_N_CTX %d\n#define %s_VOCAB %d\n#define %s_QUANT %d\n"
               "#define %s_IMAGE_BYTES %lu\n\n",
            upper, c->n_layer, upper, c->n_head, upper, c->n_embd, upper, c->n_ctx, upper,
            c->vocab, upper, c->quant, upper, (unsigned long)image);
    fprintf(f, "static const lm_gpt_config %s_config = {\n"
               "    %s_N_LAYER, %s_N_HEAD, %s_N_EMBD, %s_N_CTX, %s_VOCAB, %s_QUANT\n};\n\n",
            name, upper, upper, upper, upper, upper, upper);
    /* the struct type, then its value */
    fprintf(f, "static const struct {\n");
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        if (t->q8) {
            fprintf(f, "    uint16_t %s[%lu];\n", member(p->names[k], "_d"),
                    (unsigned long)LM_Q8_SCALES(t->q8->out, t->q8->in));
            fprintf(f, "    unsigned char %s[%lu];\n", member(p->names[k], "_q"),
                    (unsigned long)LM_Q8_VALUES(t->q8->out, t->q8->in));
        } else {
            fprintf(f, "    float %s[%d];\n", member(p->names[k], ""), t->size);
        }
    }
    fprintf(f, "} %s_image = {\n", name);
    for (k = 0; k < p->n; k++) {
        const lm_tensor *t = &p->t[k];
        size_t nv = t->q8 ? LM_Q8_SCALES(t->q8->out, t->q8->in) : (size_t)t->size;
        fprintf(f, "    /* %s%s */\n    {\n", p->names[k], t->q8 ? ": Q8_0 scales, F16" : "");
        for (i = 0; i < nv; i++) {
            if (i % 8 == 0) fputs("        ", f);
            if (t->q8) {
                fprintf(f, "0x%04x", (unsigned)t->q8->d[i]);
            } else {
                if (!isfinite(t->data[i])) {
                    fprintf(stderr, "lm2c: %s[%lu] is not a finite number\n", p->names[k], (unsigned long)i);
                    return 2;
                }
                put_float(f, t->data[i]);
            }
            fputs(i + 1 == nv ? "\n" : i % 8 == 7 ? ",\n" : ", ", f);
        }
        fputs(t->q8 || k + 1 < p->n ? "    },\n" : "    }\n", f);
        if (!t->q8) continue;
        nv = LM_Q8_VALUES(t->q8->out, t->q8->in);
        fprintf(f, "    /* %s: Q8_0 values q + 128 */\n    {\n", p->names[k]);
        for (i = 0; i < nv; i++) {
            if (i % 16 == 0) fputs("        ", f);
            fprintf(f, "%u", (unsigned)t->q8->q[i]);
            fputs(i + 1 == nv ? "\n" : i % 16 == 15 ? ",\n" : ",", f);
        }
        fputs(k + 1 < p->n ? "    },\n" : "    }\n", f);
    }
    fprintf(f, "};\n");
    fprintf(f, "/* no padding between the members: the struct is exactly the image */\n"
               "typedef char %s_image_is_packed[sizeof(%s_image) == %s_IMAGE_BYTES ? 1 : -1];\n",
            name, name, upper);
    fprintf(f, "static const void *const %s_weights = &%s_image;\n", name, name);
    return ferror(f) ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *name = "model", *in = NULL, *out = NULL, *base;
    char upper[64], tmp[4096];
    int heads = 0, a, rc, quant = LM_QUANT_NONE;
    size_t i;
    lm_gpt *m;
    FILE *f;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) { usage(); return 0; }
        if (strcmp(argv[a], "--name") == 0 && a + 1 < argc) { name = argv[++a]; continue; }
        if (strcmp(argv[a], "--quantize") == 0) { quant = LM_QUANT_Q8_0; continue; }
        if (strcmp(argv[a], "--quantize-embeddings") == 0) { quant = LM_QUANT_Q8_0_EMB; continue; }
        if (strcmp(argv[a], "--heads") == 0 && a + 1 < argc) {
            char *end;
            long v = strtol(argv[++a], &end, 10);
            if (*end || v < 1 || v > 65536) { fprintf(stderr, "lm2c: bad --heads '%s'\n", argv[a]); return 2; }
            heads = (int)v;
            continue;
        }
        if (argv[a][0] == '-' && argv[a][1]) { usage(); return 2; }
        if (!in) in = argv[a];
        else if (!out) out = argv[a];
        else { usage(); return 2; }
    }
    if (!in || !out) { usage(); return 2; }

    /* the name becomes C identifiers: NAME_weights, NAME_N_LAYER */
    if (!name[0] || strlen(name) >= sizeof upper || !(isalpha((unsigned char)name[0]) || name[0] == '_')) {
        fprintf(stderr, "lm2c: --name must be a C identifier\n");
        return 2;
    }
    for (i = 0; name[i]; i++) {
        if (!isalnum((unsigned char)name[i]) && name[i] != '_') {
            fprintf(stderr, "lm2c: --name must be a C identifier\n");
            return 2;
        }
        upper[i] = (char)toupper((unsigned char)name[i]);
    }
    upper[i] = 0;
    if (strlen(out) + 5 > sizeof tmp) { fprintf(stderr, "lm2c: output path too long\n"); return 2; }

    m = lm_gpt_load(in, heads);
    if (!m) { fprintf(stderr, "lm2c: %s\n", lm_error()); return 1; }
    if (quant != LM_QUANT_NONE) {
        lm_gpt *q;
        if (m->cfg.quant != LM_QUANT_NONE) {
            fprintf(stderr, "lm2c: '%s' is quantized already\n", in);
            lm_gpt_free(m);
            return 2;
        }
        if (!(q = lm_gpt_quantize(m, quant))) { fprintf(stderr, "lm2c: %s\n", lm_error()); return 1; }
        lm_gpt_free(m);
        m = q;
    }

    /* write OUT.tmp, then rename it over OUT */
    sprintf(tmp, "%s.tmp", out);
    f = fopen(tmp, "w");
    if (!f) { fprintf(stderr, "lm2c: cannot write '%s'\n", tmp); lm_gpt_free(m); return 1; }
    base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
    rc = m->cfg.quant ? write_c_q8(f, m, name, upper, in, base) : write_c(f, m, name, upper, in, base);
    if (fclose(f) != 0) rc = 1;
    if (rc == 0 && rename(tmp, out) != 0) rc = 1;
    if (rc != 0) {
        remove(tmp);
        if (rc == 1) fprintf(stderr, "lm2c: failed to write '%s'\n", out);
        rc = 1;
    } else {
        fprintf(stderr, "lm2c: %s -> %s (%lu parameters)\n", in, out,
                (unsigned long)lm_gpt_num_params(m));
    }
    lm_gpt_free(m);
    return rc;
}
