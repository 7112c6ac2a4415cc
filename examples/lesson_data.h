/* lesson_data.h - the plumbing of lesson 4 (4_classify.c), kept out of the lesson's way:
   its command line, files of "label<TAB>text" lines, padded batches of texts in shuffled
   epochs, and the printed and drawn report. Nothing here is about models; a lesson that
   reads it learns nothing it needs.

   Use: include it after lm.h, in the one file of the lesson (every function is static):
       #define LM_IMPLEMENTATION
       #include "lm.h"
       #define LESSON "classify"      // the name its messages start with
       #include "lesson_data.h"
   The lesson's own cc command builds it: -I.. finds lm.h and tools/lm_plot.h, and the
   compiler looks for this file next to the lesson.

   What it gives:
       lesson_parse(argc, argv, &args)       the options of 4_classify.c; 0 on a bad line
       text_load(path, &labels, add, ctx, &set)
                                             read "label<TAB>text" lines (see text_load)
       text_batch(&set, idx, B, pad, tokens, lens)
                                             items idx[0..B) as one (B, T) batch; returns T
       batcher_init(&bt, &set, n, B, seed), batcher_next(&bt, idx), batcher_free(&bt)
                                             epochs of shuffled, length-bucketed batches
       report(&labels, confusion, &metrics, plot_path, test_path)
                                             per-class table, confusion matrix, SVG picture
       say(fmt, ...)                         "LESSON: message" on stderr; returns 0
   Errors are one line on stderr, and the function returns 0. */
#ifndef LESSON_DATA_H
#define LESSON_DATA_H

#include "lm.h"
#include "tools/lm_plot.h"   /* the SVG heat map of --plot: a companion of lm.h, no deps */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LESSON
#define LESSON "lesson"
#endif
#define MAX_LABELS 64         /* classes a file may have                                   */

static int say(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", LESSON);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}

/* ---- The command line -------------------------------------------------------------- */
typedef struct {
    const char *train, *test; /* the two files (default langs.tsv, langs_test.tsv)         */
    const char *plot;         /* --plot FILE.svg, or NULL                                  */
    double labels;            /* --labels F: the fraction of training labels used (1)      */
    int pretrain;             /* 0 with --no-pretrain                                      */
} lesson_args;

static int lesson_parse(int argc, char **argv, lesson_args *a) {
    int i, npos = 0;
    a->train = "langs.tsv"; a->test = "langs_test.tsv"; a->plot = NULL;
    a->labels = 1.0; a->pretrain = 1;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--labels") == 0 && i + 1 < argc) {
            a->labels = atof(argv[++i]);
            if (!(a->labels > 0 && a->labels <= 1)) return say("--labels wants a fraction in (0, 1]");
        } else if (strcmp(argv[i], "--no-pretrain") == 0) {
            a->pretrain = 0;
        } else if (strcmp(argv[i], "--plot") == 0 && i + 1 < argc) {
            a->plot = argv[++i];
        } else if (argv[i][0] != '-' && npos < 2) {
            if (npos++ == 0) a->train = argv[i]; else a->test = argv[i];
        } else {
            fprintf(stderr, "usage: %s [--labels F] [--no-pretrain] [--plot FILE.svg] "
                    "[TRAIN.tsv TEST.tsv]\n", argv[0]);
            return 0;
        }
    }
    if (npos == 1) return say("give both TRAIN.tsv and TEST.tsv");
    return 1;
}

/* ---- Labels and texts ---------------------------------------------------------------- */
/* The labels seen so far; a label's class id is its place in this list. */
typedef struct { char name[MAX_LABELS][32]; int n; } label_set;

/* The id of a label; an unseen label gets the next id if add is set, else -1. */
static int label_id(label_set *L, const char *s, int add) {
    int k;
    for (k = 0; k < L->n; k++) if (strcmp(L->name[k], s) == 0) return k;
    if (!add || L->n == MAX_LABELS || strlen(s) >= sizeof L->name[0]) return -1;
    strcpy(L->name[L->n], s);
    return L->n++;
}

/* One line: its class, and its text's len bytes at bytes + at of its set. */
typedef struct { int label, len; size_t at; } text_item;
typedef struct {
    text_item *it;
    int n, cap;
    unsigned char *bytes;     /* every item's text, one after another                      */
    size_t used, room;
} text_set;

static const unsigned char *text_of(const text_set *d, int i) { return d->bytes + d->it[i].at; }

static void text_free(text_set *d) {
    free(d->it); free(d->bytes);
    memset(d, 0, sizeof *d);
}

/* Read a file of "label<TAB>text" lines into d (which starts zeroed). Blank lines are
   skipped. Labels get class ids in the order they first appear (add = 1: the training
   file), or must be known already (add = 0: the test file). Each text keeps its line's
   '\n' as an end marker and is cut to ctx bytes, marker included. */
static int text_load(const char *path, label_set *L, int add, int ctx, text_set *d) {
    static char line[1 << 16];
    FILE *f = fopen(path, "rb");
    int lineno = 0, ok = 1;
    if (!f) return say("cannot open %s", path);
    while (ok && fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        size_t len;
        text_item *x;
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (!tab) { ok = say("%s:%d: no TAB after the label", path, lineno); break; }
        *tab = 0;
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 1024;
            d->it = (text_item *)realloc(d->it, (size_t)d->cap * sizeof(text_item));
        }
        if (d->used + (size_t)ctx > d->room) {
            d->room = d->room ? 2 * d->room : (size_t)1 << 16;
            while (d->used + (size_t)ctx > d->room) d->room *= 2;
            d->bytes = (unsigned char *)realloc(d->bytes, d->room);
        }
        if (!d->it || !d->bytes) { ok = say("out of memory"); break; }
        x = &d->it[d->n];
        if ((x->label = label_id(L, line, add)) < 0) {
            ok = say("%s:%d: label '%s' %s", path, lineno, line,
                     add ? "is too long, or one label too many" : "is not in the training file");
            break;
        }
        len = strlen(tab + 1);
        x->len = (int)(len < (size_t)ctx ? len + 1 : (size_t)ctx);
        x->at = d->used;
        memcpy(d->bytes + x->at, tab + 1, (size_t)x->len);
        if (len < (size_t)ctx) d->bytes[x->at + len] = '\n';
        d->used += (size_t)x->len;
        d->n++;
    }
    fclose(f);
    if (ok && d->n == 0) ok = say("%s has no data", path);
    return ok;
}

/* Items idx[0..B) as a (B, T) batch of token ids, T the longest of them: each row is its
   text's bytes, then pad ids; lens[b] says how many positions are real (an empty text
   counts as one pad, so every row has a position to average). Returns T. */
static int text_batch(const text_set *d, const int *idx, int B, int pad, int *tokens, int *lens) {
    int b, t, T = 1;
    for (b = 0; b < B; b++) if (d->it[idx[b]].len > T) T = d->it[idx[b]].len;
    for (b = 0; b < B; b++) {
        const text_item *x = &d->it[idx[b]];
        const unsigned char *s = text_of(d, idx[b]);
        for (t = 0; t < T; t++) tokens[b * T + t] = t < x->len ? s[t] : pad;
        lens[b] = x->len > 0 ? x->len : 1;
    }
    return T;
}

/* ---- Batches in epochs ---------------------------------------------------------------- */
/* Every epoch visits each of the first n items once, in a fresh random order. A batch is
   padded to its longest text, so mixing long and short texts wastes work on padding.
   Bucketing avoids most of it: after the shuffle, each run of 16 batches' worth of items
   is sorted by length, so a batch holds texts of about the same length. */
typedef struct { const text_set *d; int n, B, pos, *order; lm_rng rng; } batcher;

static int batcher_init(batcher *s, const text_set *d, int n, int B, uint64_t seed) {
    s->d = d; s->n = n; s->B = B; s->pos = n; s->rng = lm_rng_seed(seed);
    s->order = (int *)malloc((size_t)n * sizeof(int));
    return s->order ? 1 : say("out of memory");
}

static void batcher_free(batcher *s) { free(s->order); s->order = NULL; }

static void batcher_next(batcher *s, int *idx) {
    int b, i, j, w, *p = s->order, win = 16 * s->B;
    for (b = 0; b < s->B; b++) {
        if (s->pos == s->n) {                            /* a new epoch                   */
            for (i = 0; i < s->n; i++) p[i] = i;
            for (i = s->n - 1; i > 0; i--) {             /* Fisher-Yates shuffle          */
                int k = (int)lm_rng_below(&s->rng, (uint32_t)(i + 1)), t = p[i];
                p[i] = p[k]; p[k] = t;
            }
            for (w = 0; w < s->n; w += win) {            /* insertion sort of each window */
                int end = w + win < s->n ? w + win : s->n;
                for (i = w + 1; i < end; i++) {
                    int x = p[i];
                    for (j = i; j > w && s->d->it[p[j - 1]].len > s->d->it[x].len; j--) p[j] = p[j - 1];
                    p[j] = x;
                }
            }
            s->pos = 0;
        }
        idx[b] = p[s->pos++];
    }
}

/* ---- The report ----------------------------------------------------------------------- */
/* Per-class precision, recall, F1 and support, then the confusion matrix (row: true
   class, column: predicted); with a plot path, the same matrix as an SVG heat map. */
static int report(const label_set *L, const long *confusion, const lm_metrics *mt,
                  const char *plot_path, const char *test_path) {
    int i, j, n = L->n;
    printf("\n%-10s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "support");
    for (i = 0; i < n; i++)
        printf("%-10s %9.3f %9.3f %9.3f %8ld\n", L->name[i], mt->precision[i], mt->recall[i],
               mt->f1[i], mt->support[i]);
    printf("\nconfusion (row: true class, column: predicted)\n%-10s", "");
    for (j = 0; j < n; j++) printf(" %6.6s", L->name[j]);
    printf("\n");
    for (i = 0; i < n; i++) {
        printf("%-10s", L->name[i]);
        for (j = 0; j < n; j++) printf(" %6ld", confusion[i * n + j]);
        printf("\n");
    }
    if (plot_path) {
        const char *names[MAX_LABELS];
        char title[128], err[256];
        for (i = 0; i < n; i++) names[i] = L->name[i];
        snprintf(title, sizeof title, "%s: %s (macro-F1 %.3f)", LESSON, test_path, mt->macro_f1);
        if (lmplot_confusion_svg(confusion, n, names, title, plot_path, err, sizeof err) != 0)
            return say("%s", err);
        printf("confusion matrix drawn in %s\n", plot_path);
    }
    return 1;
}

#endif /* LESSON_DATA_H */
