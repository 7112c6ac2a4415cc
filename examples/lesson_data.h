/* lesson_data.h - the plumbing of lesson 4 (4_classify.c), kept out of the lesson's way:
   its command line, files of "label<TAB>text" lines (and of plain lines, for pretraining),
   padded batches of texts in shuffled epochs, and the printed and drawn report. Nothing
   here is about models; a lesson that reads it learns nothing it needs.

   Use: include it after lm.h, in the one file of the lesson (every function is static):
       #define LM_IMPLEMENTATION
       #include "lm.h"
       #define LESSON "classify"      // the name its messages start with
       #include "lesson_data.h"
   The lesson's own cc command builds it: -I.. finds lm.h and tools/lm_plot.h, and the
   compiler looks for this file next to the lesson.

   What it gives:
       lesson_parse(argc, argv, &args)       the options of 4_classify.c; 0 on a bad line
       text_load(path, &labels, add, &set)   read "label<TAB>text" lines, or plain lines
                                             (labels NULL); texts are kept whole
       text_append(&set, &from)              add the texts of another set
       text_longest(&set), text_cut(&set, ctx, &cut)
                                             the longest text; cut each to ctx bytes
       batch_init(&x, B, ctx), batch_fill(&x, &set, pad), batch_free(&x)
                                             B items x.idx[0..B) as one padded (B, T) batch
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
    const char *unlabeled;    /* --unlabeled FILE: texts to pretrain on, or NULL           */
    const char *plot;         /* --plot FILE.svg, or NULL                                  */
    double labels;            /* --labels F: the fraction of training labels used (1)      */
    int pretrain;             /* 0 with --no-pretrain                                      */
    int ctx;                  /* --ctx N: bytes of each text the model sees; 0 = fit them  */
    int threads;              /* --threads N: 0 = all cores                                */
} lesson_args;

#define LESSON_USAGE "[--unlabeled FILE] [--labels F] [--no-pretrain] [--ctx N] " \
                     "[--threads N] [--plot FILE.svg] [TRAIN.tsv TEST.tsv]"
#define LESSON_CTX_LIMIT 4096 /* the largest --ctx                                         */

static int lesson_parse(int argc, char **argv, lesson_args *a) {
    int i, npos = 0;
    a->train = "langs.tsv"; a->test = "langs_test.tsv"; a->unlabeled = NULL; a->plot = NULL;
    a->labels = 1.0; a->pretrain = 1; a->ctx = 0; a->threads = 0;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--unlabeled") == 0 && i + 1 < argc) {
            a->unlabeled = argv[++i];
        } else if (strcmp(argv[i], "--ctx") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || n < 1 || n > LESSON_CTX_LIMIT)
                return say("--ctx wants a whole number of bytes in [1, %d]", LESSON_CTX_LIMIT);
            a->ctx = (int)n;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || n < 0 || n > 1024)
                return say("--threads wants a whole number in [0, 1024] (0 = all cores)");
            a->threads = (int)n;
        } else if (strcmp(argv[i], "--labels") == 0 && i + 1 < argc) {
            a->labels = atof(argv[++i]);
            if (!(a->labels > 0 && a->labels <= 1)) return say("--labels wants a fraction in (0, 1]");
        } else if (strcmp(argv[i], "--no-pretrain") == 0) {
            a->pretrain = 0;
        } else if (strcmp(argv[i], "--plot") == 0 && i + 1 < argc) {
            a->plot = argv[++i];
        } else if (argv[i][0] != '-' && npos < 2) {
            if (npos++ == 0) a->train = argv[i]; else a->test = argv[i];
        } else {
            fprintf(stderr, "usage: %s " LESSON_USAGE "\n", argv[0]);
            return 0;
        }
    }
    if (npos == 1) return say("give both TRAIN.tsv and TEST.tsv");
    if (a->unlabeled && !a->pretrain) return say("--unlabeled is for pretraining: drop --no-pretrain");
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

/* One text: its class (-1 without a label), the len bytes of it the model sees, and its
   whole length full, at bytes + at of its set. */
typedef struct { int label, len, full; size_t at; } text_item;
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

/* Room for one more item of len bytes. */
static int text_room(text_set *d, size_t len) {
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 1024;
        text_item *it = (text_item *)realloc(d->it, (size_t)cap * sizeof(text_item));
        if (!it || cap < d->cap) return say("out of memory");
        d->it = it; d->cap = cap;
    }
    if (d->used + len > d->room) {
        size_t room = d->room ? 2 * d->room : (size_t)1 << 16;
        unsigned char *bytes;
        while (d->used + len > room) room *= 2;
        if (!(bytes = (unsigned char *)realloc(d->bytes, room))) return say("out of memory");
        d->bytes = bytes; d->room = room;
    }
    return 1;
}

/* Add one text of len bytes to d, with its class. */
static int text_add(text_set *d, int label, const unsigned char *s, size_t len) {
    text_item *x;
    if (len > (size_t)1 << 30) return say("a text of %zu bytes is too long", len);
    if (!text_room(d, len)) return 0;
    x = &d->it[d->n++];
    x->label = label; x->len = x->full = (int)len; x->at = d->used;
    memcpy(d->bytes + x->at, s, len);
    d->used += len;
    return 1;
}

/* Read a file into d (which starts zeroed, or holds texts already). With a label set L,
   each line is "label<TAB>text": labels get class ids in the order they first appear
   (add = 1: the training file), or must be known already (add = 0: the test file). With
   L NULL, each line is one text without a label (-1). Blank lines are skipped, a '\r'
   before the line's end is dropped, and lines may be of any length. Each text keeps its
   line's '\n' as an end marker; texts are kept whole (text_cut cuts them). */
static int text_load(const char *path, label_set *L, int add, text_set *d) {
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t n, cap = 0;
    int c, lineno = 0, ok = 1, before = d->n;
    if (!f) return say("cannot open %s", path);
    for (c = 0; ok && c != EOF;) {
        const char *text;
        int label = -1;
        for (n = 0; (c = getc(f)) != EOF;) {             /* one line, '\n' included     */
            if (n + 2 > cap) {
                char *grown = (char *)realloc(line, cap = cap ? 2 * cap : 256);
                if (!grown) { ok = say("out of memory"); break; }
                line = grown;
            }
            line[n++] = (char)c;
            if (c == '\n') break;
        }
        if (!ok || n == 0) break;
        lineno++;
        if (line[n - 1] == '\n') n--;
        if (n > 0 && line[n - 1] == '\r') n--;
        if (n == 0) continue;
        line[n] = '\n';                                   /* the end marker              */
        text = line;
        if (L) {
            char *tab = (char *)memchr(line, '\t', n);
            if (!tab) { ok = say("%s:%d: no TAB after the label", path, lineno); break; }
            *tab = 0;
            if ((label = label_id(L, line, add)) < 0) {
                ok = say("%s:%d: label '%s' %s", path, lineno, line,
                         add ? "is too long, or one label too many" : "is not in the training file");
                break;
            }
            text = tab + 1;
        }
        ok = text_add(d, label, (const unsigned char *)text, (size_t)(line + n + 1 - text));
    }
    if (ok && ferror(f)) ok = say("cannot read %s", path);
    fclose(f);
    free(line);
    if (ok && d->n == before) ok = say("%s has no data", path);
    return ok;
}

/* Add the texts of `from` (whole, as text_load keeps them) to d. */
static int text_append(text_set *d, const text_set *from) {
    int i;
    for (i = 0; i < from->n; i++)
        if (!text_add(d, from->it[i].label, text_of(from, i), (size_t)from->it[i].full)) return 0;
    return 1;
}

/* The length of the longest text in d, end marker included. */
static int text_longest(const text_set *d) {
    int i, m = 0;
    for (i = 0; i < d->n; i++) if (d->it[i].full > m) m = d->it[i].full;
    return m;
}

/* Let the model see the first ctx bytes of each text; returns how many texts that cuts,
   and adds the bytes cut to *lost. */
static int text_cut(text_set *d, int ctx, long *lost) {
    int i, cut = 0;
    for (i = 0; i < d->n; i++) {
        text_item *x = &d->it[i];
        x->len = x->full < ctx ? x->full : ctx;
        if (x->len < x->full) { cut++; *lost += x->full - x->len; }
    }
    return cut;
}

/* A batch: room for B texts of up to ctx bytes. batch_fill turns the items idx[0..B) of a
   set into one (B, T) batch, T the longest of them: each row is its text's bytes, then pad
   ids; lens[b] says how many positions are real (an empty text counts as one pad, so every
   row has a position to average); labels[b] is the item's class. */
typedef struct { int B, T, *idx, *tokens, *lens, *labels; } batch;

static void batch_free(batch *x) {
    free(x->idx); free(x->tokens); free(x->lens); free(x->labels);
    memset(x, 0, sizeof *x);
}

static int batch_init(batch *x, int B, int ctx) {
    x->B = B; x->T = 0;
    x->idx = (int *)malloc((size_t)B * sizeof(int));
    x->tokens = (int *)malloc((size_t)B * ctx * sizeof(int));
    x->lens = (int *)malloc((size_t)B * sizeof(int));
    x->labels = (int *)malloc((size_t)B * sizeof(int));
    if (x->idx && x->tokens && x->lens && x->labels) return 1;
    batch_free(x);
    return say("out of memory");
}

static void batch_fill(batch *x, const text_set *d, int pad) {
    int b, t, T = 1;
    for (b = 0; b < x->B; b++) if (d->it[x->idx[b]].len > T) T = d->it[x->idx[b]].len;
    for (b = 0; b < x->B; b++) {
        const text_item *it = &d->it[x->idx[b]];
        const unsigned char *s = text_of(d, x->idx[b]);
        for (t = 0; t < T; t++) x->tokens[b * T + t] = t < it->len ? s[t] : pad;
        x->lens[b] = it->len > 0 ? it->len : 1;
        x->labels[b] = it->label;
    }
    x->T = T;
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
