/* lm_plot.h - loss curves and confusion matrices as SVG files, with no dependencies.

   A small companion of lm.h for the programs around it (tools/lm_cli.c, examples/4_classify.c).
   It draws three pictures a person training a model wants to look at:
     - the loss curve of a run: the train loss as logged (faint) and smoothed (bold), the
       validation loss as points joined by a line, and the learning-rate schedule on a
       second axis on the right;
     - a confusion matrix: a heat map with a row per true class and a column per predicted
       class, each cell holding its count and coloured by its share of the row;
     - labelled points in series, such as validation loss against model size for each way
       of compressing a model (examples/7_compress.c).
   The output is one self-contained SVG file (no fonts, scripts or images from elsewhere; a
   generic font family), which any browser shows and any text editor can read.

   Use: include this header (it needs only the C library: stdio, stdlib, string, math) and
     lmplot_series s;
     lmplot_init(&s);
     lmplot_push(&s, step, loss, lr, val_loss);     (NAN where a value is missing)
     if (lmplot_loss_svg(&s, "GPT 4x128 - tiny.txt", "loss.svg", err, sizeof err)) ...
     lmplot_free(&s);
   or read the CSV log that `lm train --log` writes with lmplot_read_csv.
   Every function returns 0 on success, or -1 with a one-line reason in err (err may be
   NULL; errlen is its size). A failed plot leaves no file behind and does not touch an
   existing one: the picture is built in memory, written beside the target as PATH.tmp and
   renamed over it.

   All functions are static (each program includes this header in one file); they are
   marked "maybe unused" so a program that draws only one kind of plot compiles cleanly.
   Numbers are written and read with the C library's "C" locale conventions (a '.' as
   decimal point), which is the locale a program runs in unless it calls setlocale. */
#ifndef LM_PLOT_H
#define LM_PLOT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <errno.h>

#if defined(__GNUC__) || defined(__clang__)
#define LMPLOT_FN static __attribute__((unused))
#else
#define LMPLOT_FN static
#endif

/* ---------------------------------------------------------------------------------------
   The log of a run: four columns of equal length n, one row per logged step. A value that
   was not logged (the validation loss between evals, an empty CSV cell, a NaN) is NAN.
   --------------------------------------------------------------------------------------- */
typedef struct lmplot_series {
    int n, cap;       /* rows in use, rows allocated                                        */
    double *step;     /* (n) x coordinate: the optimizer step                               */
    double *loss;     /* (n) train loss of that step                                        */
    double *lr;       /* (n) learning rate of that step                                     */
    double *val;      /* (n) validation loss, NAN except on eval rows                       */
} lmplot_series;

LMPLOT_FN void lmplot_init(lmplot_series *s) { memset(s, 0, sizeof *s); }

LMPLOT_FN void lmplot_free(lmplot_series *s) {
    free(s->step);
    free(s->loss);
    free(s->lr);
    free(s->val);
    memset(s, 0, sizeof *s);
}

/* Append a row, growing the columns by doubling. -1 when out of memory (s unchanged). */
LMPLOT_FN int lmplot_push(lmplot_series *s, double step, double loss, double lr, double val) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256, k;
        double *col[4];
        double **slot[4];
        slot[0] = &s->step; slot[1] = &s->loss; slot[2] = &s->lr; slot[3] = &s->val;
        if (cap <= s->cap || (size_t)cap > (size_t)-1 / sizeof(double)) return -1;
        for (k = 0; k < 4; k++) {
            col[k] = (double *)malloc((size_t)cap * sizeof(double));
            if (!col[k]) {
                while (k-- > 0) free(col[k]);
                return -1;
            }
        }
        for (k = 0; k < 4; k++) {
            if (s->n) memcpy(col[k], *slot[k], (size_t)s->n * sizeof(double));
            free(*slot[k]);
            *slot[k] = col[k];
        }
        s->cap = cap;
    }
    s->step[s->n] = step;
    s->loss[s->n] = loss;
    s->lr[s->n] = lr;
    s->val[s->n] = val;
    s->n++;
    return 0;
}

/* ---------------------------------------------------------------------------------------
   Small tools: error messages, finite checks, a growing text buffer, XML-safe text.
   --------------------------------------------------------------------------------------- */
static int lmplot__fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* x is a number we can draw: not NaN, not infinite, and not so huge that the spans and
   scales computed from it overflow (a loss beyond 1e30 is a broken run, not a value to
   plot). Written without isfinite so that the oldest C++ compilers accept it too. */
static int lmplot__ok(double x) { return x == x && x <= 1e30 && x >= -1e30; }

/* The SVG text grows here; oom remembers a failed allocation so the writers need no checks. */
typedef struct lmplot__buf {
    char *p;
    size_t n, cap;
    int oom;
} lmplot__buf;

static void lmplot__put(lmplot__buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->n + n + 1) {
            if (cap > (size_t)-1 / 2) { b->oom = 1; return; }
            cap *= 2;
        }
        p = (char *)malloc(cap);
        if (!p) { b->oom = 1; return; }
        if (b->n) memcpy(p, b->p, b->n);
        free(b->p);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void lmplot__s(lmplot__buf *b, const char *s) { lmplot__put(b, s, strlen(s)); }

/* printf into the buffer; for markup and numbers only (pieces under 512 bytes) - text
   that came from outside goes through lmplot__text. */
static void lmplot__f(lmplot__buf *b, const char *fmt, ...) {
    char tmp[512];
    int k;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = 1; return; }
    lmplot__put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one,
   or if it encodes a character XML forbids (controls other than tab/newline/return,
   U+FFFE, U+FFFF). Overlong forms and surrogates are not valid UTF-8. */
static int lmplot__utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len, k;
    if (c < 0x80) return c >= 0x20 || c == '\t' || c == '\n' || c == '\r' ? 1 : 0;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3;
    else if (c >= 0xF0 && c <= 0xF4) len = 4;
    else return 0;
    if ((size_t)len > n) return 0;
    for (k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;                 /* overlong 3-byte form   */
    if (c == 0xED && s[1] > 0x9F) return 0;                 /* UTF-16 surrogates      */
    if (c == 0xF0 && s[1] < 0x90) return 0;                 /* overlong 4-byte form   */
    if (c == 0xF4 && s[1] > 0x8F) return 0;                 /* beyond U+10FFFF        */
    if (c == 0xEF && s[1] == 0xBF && (s[2] == 0xBE || s[2] == 0xBF)) return 0;
    return len;
}

/* Text from outside (titles, class names) as XML character data: the five special
   characters become entities, and bytes that would make the file invalid (bad UTF-8,
   control characters) become U+FFFD. At most max_chars characters, then an ellipsis. */
static void lmplot__text_n(lmplot__buf *b, const char *s, int max_chars) {
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)u), i = 0;
    int chars = 0;
    while (i < n) {
        int len = lmplot__utf8_len(u + i, n - i);
        if (chars == max_chars) { lmplot__s(b, "\xE2\x80\xA6"); break; }
        chars++;
        if (len == 0) { lmplot__s(b, "\xEF\xBF\xBD"); i++; continue; }
        switch (u[i]) {
        case '&': lmplot__s(b, "&amp;"); break;
        case '<': lmplot__s(b, "&lt;"); break;
        case '>': lmplot__s(b, "&gt;"); break;
        case '"': lmplot__s(b, "&quot;"); break;
        case '\'': lmplot__s(b, "&apos;"); break;
        case '\t': case '\n': case '\r': lmplot__s(b, " "); break;
        default: lmplot__put(b, (const char *)u + i, (size_t)len);
        }
        i += (size_t)len;
    }
}
static void lmplot__text(lmplot__buf *b, const char *s) { lmplot__text_n(b, s, 1 << 30); }

/* Characters (not bytes) in a UTF-8 string, capped: the basis of our width estimates. */
static int lmplot__chars(const char *s, int cap) {
    int k = 0;
    for (; s && *s; s++)
        if ((*s & 0xC0) != 0x80) k++;
    return k < cap ? k : cap;
}

/* Write the finished buffer to path: first to path.tmp, then rename it over path, so that
   a failure (full disk, bad directory) never leaves a half file where the picture goes. */
static int lmplot__save(lmplot__buf *b, const char *path, char *err, size_t errlen) {
    char *tmp;
    FILE *f;
    size_t n;
    int bad, e_save;
    if (b->oom) return lmplot__fail(err, errlen, "out of memory while drawing '%s'", path);
    n = strlen(path);
    tmp = (char *)malloc(n + 5);
    if (!tmp) return lmplot__fail(err, errlen, "out of memory while drawing '%s'", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    errno = 0;
    f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(tmp);
        return lmplot__fail(err, errlen, "cannot write '%s': %s", path,
                            e ? strerror(e) : "cannot create the file");
    }
    bad = fwrite(b->p, 1, b->n, f) != b->n;
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    /* rename replaces the target atomically on POSIX, and if it fails the old picture
       stays; Windows refuses to replace a file, so there the old one goes first */
#ifdef _WIN32
    if (!bad) remove(path);
#endif
    if (!bad && rename(tmp, path) != 0) bad = 1;
    e_save = errno;
    if (bad) remove(tmp);
    free(tmp);
    return bad ? lmplot__fail(err, errlen, "cannot write '%s': %s", path,
                              e_save ? strerror(e_save) : "write error") : 0;
}

/* ---------------------------------------------------------------------------------------
   Reading the CSV log.
   The first non-blank line names the columns; the columns we want are found by name, in
   any order, among any others: step (or iter), loss (or train_loss), lr (or
   learning_rate), val_loss (or val, valid_loss, validation_loss). Only loss is required.
   A cell that is empty, missing (short row), not a number, or NaN reads as NAN. A missing
   step column, or an empty step cell, counts on from the row before. Lines may end in
   CRLF, fields may be quoted, a UTF-8 byte order mark is skipped.
   --------------------------------------------------------------------------------------- */
enum { LMPLOT__STEP, LMPLOT__LOSS, LMPLOT__LR, LMPLOT__VAL, LMPLOT__NCOL };

/* Which of our columns a header name is, or -1. Case and surrounding spaces are ignored. */
static int lmplot__column(const char *s, size_t n) {
    static const char *const names[] = {
        "step", "iter", "iteration", "loss", "train_loss", "lr", "learning_rate",
        "val_loss", "val", "valid_loss", "validation_loss"
    };
    static const int col[] = { 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3 };
    size_t i, k;
    for (i = 0; i < sizeof col / sizeof col[0]; i++) {
        if (strlen(names[i]) != n) continue;
        for (k = 0; k < n; k++) {
            char c = s[k];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != names[i][k]) break;
        }
        if (k == n) return col[i];
    }
    return -1;
}

/* The next field of a line [*p, end): sets its text span (quotes and surrounding spaces
   removed; a doubled quote inside quotes is left doubled, which no number or column name
   we look for contains) and moves *p past the comma. */
static void lmplot__field(const char **p, const char *end, const char **fs, size_t *fn) {
    const char *s = *p, *e;
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    if (s < end && *s == '"') {
        e = ++s;
        while (e < end && !(*e == '"' && (e + 1 == end || e[1] != '"'))) e += *e == '"' ? 2 : 1;
        *fs = s;
        *fn = (size_t)(e - s);
        while (e < end && *e != ',') e++;
    } else {
        e = s;
        while (e < end && *e != ',') e++;
        *fs = s;
        *fn = (size_t)(e - s);
        while (*fn > 0 && (s[*fn - 1] == ' ' || s[*fn - 1] == '\t')) (*fn)--;
    }
    *p = e < end ? e + 1 : end;
}

/* A cell as a number; anything that is not entirely a number is NAN. */
static double lmplot__number(const char *s, size_t n) {
    char tmp[64], *e;
    double v;
    if (n == 0 || n >= sizeof tmp) return NAN;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    v = strtod(tmp, &e);
    return e == tmp + n ? v : NAN;
}

/* Read the whole file into memory (works for pipes too). */
static char *lmplot__slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *p = NULL, *q;
    size_t n = 0, cap = 0, got;
    if (!f) return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            q = (char *)malloc(cap);
            if (!q) { free(p); fclose(f); return NULL; }
            if (n) memcpy(q, p, n);
            free(p);
            p = q;
        }
        got = fread(p + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { free(p); fclose(f); return NULL; }
    fclose(f);
    p[n] = 0;
    *len = n;
    return p;
}

LMPLOT_FN int lmplot_read_csv(const char *path, lmplot_series *out, char *err, size_t errlen) {
    int where[LMPLOT__NCOL] = { -1, -1, -1, -1 }, header = 1, k;
    size_t len = 0;
    char *text;
    const char *p, *end;
    lmplot_init(out);
    if (!path) return lmplot__fail(err, errlen, "no log file given");
    errno = 0;
    text = lmplot__slurp(path, &len);
    if (!text)
        return lmplot__fail(err, errlen, "cannot read '%s': %s", path,
                            errno ? strerror(errno) : "read error");
    p = text;
    end = text + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    while (p < end) {
        const char *eol = (const char *)memchr(p, '\n', (size_t)(end - p)), *q, *le, *fs;
        double v[LMPLOT__NCOL];
        size_t fn;
        int blank = 1;
        le = eol ? eol : end;
        if (le > p && le[-1] == '\r') le--;
        for (q = p; q < le; q++)
            if (*q != ' ' && *q != '\t' && *q != ',') blank = 0;
        if (blank) { p = eol ? eol + 1 : end; continue; }
        if (header) {
            /* the column names; the first of each kind wins */
            for (k = 0, q = p; q < le; k++) {
                int c;
                lmplot__field(&q, le, &fs, &fn);
                c = lmplot__column(fs, fn);
                if (c >= 0 && where[c] < 0) where[c] = k;
            }
            if (where[LMPLOT__LOSS] < 0) {
                free(text);
                return lmplot__fail(err, errlen, "'%s' has no 'loss' column in its header line "
                                    "(expected a CSV log as lm train --log writes)", path);
            }
            header = 0;
        } else {
            for (k = 0; k < LMPLOT__NCOL; k++) v[k] = NAN;
            for (k = 0, q = p; q < le; k++) {
                int c;
                lmplot__field(&q, le, &fs, &fn);
                for (c = 0; c < LMPLOT__NCOL; c++)
                    if (where[c] == k) v[c] = lmplot__number(fs, fn);
            }
            /* no step: count on from the row before (the first row is step 1) */
            if (!lmplot__ok(v[LMPLOT__STEP]))
                v[LMPLOT__STEP] = out->n ? out->step[out->n - 1] + 1 : 1;
            if (lmplot_push(out, v[LMPLOT__STEP], v[LMPLOT__LOSS], v[LMPLOT__LR], v[LMPLOT__VAL])) {
                free(text);
                lmplot_free(out);
                return lmplot__fail(err, errlen, "out of memory reading '%s'", path);
            }
        }
        p = eol ? eol + 1 : end;
    }
    free(text);
    if (header) return lmplot__fail(err, errlen, "'%s' is empty (no header line)", path);
    if (out->n == 0)
        return lmplot__fail(err, errlen, "'%s' has a header but no data rows", path);
    return 0;
}

/* ---------------------------------------------------------------------------------------
   Axes.
   An axis maps a value range onto a pixel range. Its ticks are "nice": the step is 1, 2
   or 5 times a power of ten, chosen to give about as many ticks as asked for, and the
   range is widened to whole steps so the data starts and ends on a tick. Tick labels
   print just enough decimals for the step; very small or very large values are shown as
   plain numbers with the power of ten moved into the axis title (as "×10⁻³").
   --------------------------------------------------------------------------------------- */
typedef struct lmplot__axis {
    double lo, hi, step;     /* value range (whole steps) and tick step                 */
    double p0, p1;           /* pixels of lo and hi                                     */
    int exp10;               /* labels show value / 10^exp10                            */
} lmplot__axis;

/* 1, 2 or 5 times a power of ten, near span / want. */
static double lmplot__nice_step(double span, int want) {
    double raw = span / want, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void lmplot__axis_fit(lmplot__axis *a, double lo, double hi, int want) {
    double big;
    /* one value (or none, or a spread below double precision): a range around it */
    if (!(hi - lo > 1e-9 * (fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi)))) {
        double d = lo != 0 && lmplot__ok(lo) ? fabs(lo) * 0.1 : 1;
        if (!lmplot__ok(lo)) lo = 0;
        hi = lo + d;
        lo = lo >= 0 && lo - d < 0 ? 0 : lo - d;
    }
    a->step = lmplot__nice_step(hi - lo, want);
    /* the 1e-6 keeps a value a rounding error past a tick (a float logged as text, say)
       from adding a whole step */
    a->lo = floor(lo / a->step + 1e-6) * a->step;
    a->hi = ceil(hi / a->step - 1e-6) * a->step;
    if (!(a->hi > a->lo)) a->hi = a->lo + a->step;
    big = fabs(a->lo) > fabs(a->hi) ? fabs(a->lo) : fabs(a->hi);
    a->exp10 = big < 1e-2 || big >= 1e6 ? (int)floor(log10(big) + 1e-9) : 0;
}

static double lmplot__px(const lmplot__axis *a, double v) {
    return a->p0 + (v - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
}

/* The number of tick intervals (ticks are lo + k * step for k = 0 ... that number). */
static int lmplot__ticks(const lmplot__axis *a) {
    double k = floor((a->hi - a->lo) / a->step + 0.5);
    return k >= 1 && k <= 100 ? (int)k : 1;
}

/* The label of tick value v: as many decimals as the step needs, after the axis scale. */
static void lmplot__tick_label(const lmplot__axis *a, double v, char *out, size_t n) {
    double scale = pow(10.0, -a->exp10), step = a->step * scale;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-6);
    v *= scale;
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0.0" */
    snprintf(out, n, "%.*f", dec, v);
}

/* An axis title with the scale appended, e.g. "learning rate (×10⁻³)". */
static void lmplot__axis_title(lmplot__buf *b, const char *name, int exp10) {
    static const char *const sup[10] = {
        "\xE2\x81\xB0", "\xC2\xB9", "\xC2\xB2", "\xC2\xB3", "\xE2\x81\xB4",
        "\xE2\x81\xB5", "\xE2\x81\xB6", "\xE2\x81\xB7", "\xE2\x81\xB8", "\xE2\x81\xB9"
    };
    char digits[16];
    int k, e = exp10 < 0 ? -exp10 : exp10;
    lmplot__text(b, name);
    if (!exp10) return;
    lmplot__s(b, " (\xC3\x97" "10");
    if (exp10 < 0) lmplot__s(b, "\xE2\x81\xBB");
    snprintf(digits, sizeof digits, "%d", e);
    for (k = 0; digits[k]; k++) lmplot__text(b, sup[digits[k] - '0']);
    lmplot__s(b, ")");
}

/* The SVG prologue: size, a white background and the font (a generic family only). */
static void lmplot__begin(lmplot__buf *b, int w, int h, const char *title) {
    lmplot__f(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
              w, h, w, h);
    lmplot__s(b, "<title>");
    lmplot__text(b, title);
    lmplot__s(b, "</title>\n");
    lmplot__f(b, "<rect class=\"background\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
}

/* A centred title line, shrunk when it is too long for the width. */
static void lmplot__title(lmplot__buf *b, const char *title, double cx, double y, double width) {
    double size = 17, est = 0.56 * size * lmplot__chars(title, 1 << 30);
    if (est > width) size = size * width / est;
    if (size < 8) size = 8;
    lmplot__f(b, "<text class=\"title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                 "font-size=\"%.1f\" font-weight=\"bold\" fill=\"#222222\">", cx, y, size);
    lmplot__text(b, title);
    lmplot__s(b, "</text>\n");
}

/* ---------------------------------------------------------------------------------------
   The loss curve.
   Layout (900 x 540): the title on top, a legend row under it (outside the plot, so it
   never covers a curve), the plot area with grid lines, the loss axis on the left, the
   learning-rate axis on the right, the steps below.
   Each series is one <path> with class "series NAME" and one point per row where it has a
   value; a gap in a series (a missing train loss) starts a new subpath, except for the
   validation loss, whose points are joined across the rows between evals.
   The loss axis covers the smoothed train loss and the validation loss, not the raw
   spikes: a noisy first step would otherwise flatten the whole curve. The raw line is
   clipped at the plot's edge instead.
   --------------------------------------------------------------------------------------- */

/* The centred moving average of the finite values of y, window 2h+1 rows, narrowed at
   the two ends so it stays centred (and starts and ends on the raw curve). */
static void lmplot__smooth(const double *y, int n, int h, double *out) {
    double *sum = (double *)malloc(((size_t)n + 1) * sizeof(double));
    int *cnt = (int *)malloc(((size_t)n + 1) * sizeof(int));
    int i;
    if (!sum || !cnt) { /* no memory: draw the raw values as they are */
        for (i = 0; i < n; i++) out[i] = y[i];
        free(sum);
        free(cnt);
        return;
    }
    sum[0] = 0;
    cnt[0] = 0;
    for (i = 0; i < n; i++) { /* prefix sums over the finite values */
        int ok = lmplot__ok(y[i]);
        sum[i + 1] = sum[i] + (ok ? y[i] : 0);
        cnt[i + 1] = cnt[i] + ok;
    }
    for (i = 0; i < n; i++) {
        int r = h, a, b;
        if (r > i) r = i;
        if (r > n - 1 - i) r = n - 1 - i;
        a = i - r;
        b = i + r + 1;
        out[i] = lmplot__ok(y[i]) && cnt[b] > cnt[a] ? (sum[b] - sum[a]) / (cnt[b] - cnt[a]) : NAN;
    }
    free(sum);
    free(cnt);
}

/* One series as one path; join = 1 joins points across missing rows. Returns points. */
static int lmplot__path(lmplot__buf *b, const char *cls, const double *x, const double *y, int n,
                        const lmplot__axis *ax, const lmplot__axis *ay, const char *style,
                        int join) {
    int i, pts = 0, pen = 0; /* pen: the previous row drew a point (so "L" continues) */
    lmplot__f(b, "<path class=\"series %s\" %s d=\"", cls, style);
    for (i = 0; i < n; i++) {
        if (!lmplot__ok(x[i]) || !lmplot__ok(y[i])) {
            if (!join) pen = 0;
            continue;
        }
        lmplot__f(b, "%c%.1f,%.1f", pen ? 'L' : 'M', lmplot__px(ax, x[i]), lmplot__px(ay, y[i]));
        pen = 1;
        pts++;
    }
    lmplot__s(b, "\"/>\n");
    return pts;
}

/* The range of the finite values of y on the rows where x is finite; 0 if none. */
static int lmplot__range(const double *x, const double *y, int n, double *lo, double *hi) {
    int i, any = 0;
    for (i = 0; i < n; i++) {
        if (!lmplot__ok(x[i]) || !lmplot__ok(y[i])) continue;
        if (!any || y[i] < *lo) *lo = y[i];
        if (!any || y[i] > *hi) *hi = y[i];
        any = 1;
    }
    return any;
}

/* The grid lines of a plot area [L, R] x [T, B] at the ticks of ax and ay. */
static void lmplot__grid(lmplot__buf *b, const lmplot__axis *ax, const lmplot__axis *ay,
                         double L, double R, double T, double B) {
    double v;
    int k;
    lmplot__s(b, "<g class=\"grid\" stroke=\"#e4e4e4\" stroke-width=\"1\">\n");
    for (k = 0; k <= lmplot__ticks(ax); k++) {
        v = lmplot__px(ax, ax->lo + k * ax->step);
        lmplot__f(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", v, T, v, B);
    }
    for (k = 0; k <= lmplot__ticks(ay); k++) {
        v = lmplot__px(ay, ay->lo + k * ay->step);
        lmplot__f(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, v, R, v);
    }
    lmplot__s(b, "</g>\n");
}

/* A legend entry at (*x, y): a sample of the line (and a dot), then the label. */
static void lmplot__legend(lmplot__buf *b, double *x, double y, const char *label,
                           const char *style, int dot, const char *colour) {
    lmplot__f(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" %s/>\n", *x, y - 4,
              *x + 24, y - 4, style);
    if (dot)
        lmplot__f(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", *x + 12, y - 4,
                  colour);
    lmplot__f(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#333333\">", *x + 30, y);
    lmplot__text(b, label);
    lmplot__s(b, "</text>\n");
    *x += 30 + 6.2 * lmplot__chars(label, 200) + 24;
}

LMPLOT_FN int lmplot_loss_svg(const lmplot_series *s, const char *title, const char *path,
                              char *err, size_t errlen) {
    /* the canvas and the plot area inside it */
    const int W = 900, H = 540;
    const double L = 76, R = W - 84, T = 78, B = H - 58;
    static const char *const c_train = "#1f77b4", *const c_val = "#d62728", *const c_lr = "#2ca02c";
    lmplot__axis ax, ay, alr;
    lmplot__buf b;
    double xlo = 0, xhi = 0, ylo = 0, yhi = 0, lo, hi, lrlo = 0, lrhi = 0, v, lx;
    double *smooth;
    int i, k, n, have_loss, have_val, have_lr, h, nval, first;
    char lab[64], note[160];
    const char *missing[3];
    int n_missing = 0;

    if (!s || !path) return lmplot__fail(err, errlen, "no log or no file name to plot");
    n = s->n;
    if (n <= 0) return lmplot__fail(err, errlen, "the log is empty: nothing to plot in '%s'", path);
    if (!title) title = "training loss";

    /* which series have anything to draw, and the ranges of the axes */
    have_loss = lmplot__range(s->step, s->loss, n, &ylo, &yhi);
    have_val = lmplot__range(s->step, s->val, n, &lo, &hi);
    have_lr = lmplot__range(s->step, s->lr, n, &lrlo, &lrhi);
    if (!have_loss && !have_val)
        return lmplot__fail(err, errlen, "the log has no finite train or validation loss: "
                            "nothing to plot in '%s'", path);
    smooth = (double *)malloc((size_t)n * sizeof(double));
    if (!smooth) return lmplot__fail(err, errlen, "out of memory while drawing '%s'", path);
    /* about 1/50 of the run each side: smooth enough to read, short enough to follow it;
       a log of a few rows is drawn as it is (h = 0: no smoothed line) */
    h = n / 50 > 0 ? n / 50 : 1;
    if (n < 8) h = 0;
    lmplot__smooth(s->loss, n, h, smooth);
    if (have_loss) { /* the loss axis: the raw minimum, the smoothed maximum */
        double slo, shi;
        if (lmplot__range(s->step, smooth, n, &slo, &shi)) yhi = shi;
    }
    if (have_val) {
        if (!have_loss || lo < ylo) ylo = lo;
        if (!have_loss || hi > yhi) yhi = hi;
    }
    for (i = 0, first = 1; i < n; i++) { /* x over the rows that have something to draw */
        if (!lmplot__ok(s->step[i])) continue;
        if (!lmplot__ok(s->loss[i]) && !lmplot__ok(s->val[i]) && !lmplot__ok(s->lr[i])) continue;
        if (first || s->step[i] < xlo) xlo = s->step[i];
        if (first || s->step[i] > xhi) xhi = s->step[i];
        first = 0;
    }
    if (xlo > 0 && xlo <= (xhi - xlo) * 0.1) xlo = 0; /* a run from step 1: start the axis at 0 */
    lmplot__axis_fit(&ax, xlo, xhi, 8);
    lmplot__axis_fit(&ay, ylo, yhi, 7);
    /* the learning rate from 0, with a little headroom so its peak stays off the top edge */
    if (have_lr) lmplot__axis_fit(&alr, lrlo < 0 ? lrlo : 0, lrhi > 0 ? lrhi * 1.04 : lrhi, 5);
    ax.p0 = L; ax.p1 = R;
    ay.p0 = B; ay.p1 = T;
    alr.p0 = B; alr.p1 = T;

    memset(&b, 0, sizeof b);
    lmplot__begin(&b, W, H, title);
    lmplot__f(&b, "<defs><clipPath id=\"lmplot-area\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                  "height=\"%.1f\"/></clipPath></defs>\n", L, T, R - L, B - T);
    lmplot__title(&b, title, W / 2.0, 30, W - 40);

    /* grid, ticks and labels: x below, loss on the left, learning rate on the right */
    lmplot__grid(&b, &ax, &ay, L, R, T, B);
    lmplot__f(&b, "<g class=\"axes\" stroke=\"#555555\" stroke-width=\"1\">\n"
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
              L, B, R, B, L, T, L, B);
    if (have_lr)
        lmplot__f(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                  R, T, R, B, c_lr);
    lmplot__s(&b, "</g>\n<g class=\"ticks\" fill=\"#444444\">\n");
    for (k = 0; k <= lmplot__ticks(&ax); k++) {
        v = ax.lo + k * ax.step;
        lmplot__tick_label(&ax, v, lab, sizeof lab);
        lmplot__f(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                  lmplot__px(&ax, v), B, lmplot__px(&ax, v), B + 5, lmplot__px(&ax, v), B + 19, lab);
    }
    for (k = 0; k <= lmplot__ticks(&ay); k++) {
        v = ay.lo + k * ay.step;
        lmplot__tick_label(&ay, v, lab, sizeof lab);
        lmplot__f(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                  L - 5, lmplot__px(&ay, v), L, lmplot__px(&ay, v), L - 8, lmplot__px(&ay, v) + 4, lab);
    }
    if (have_lr)
        for (k = 0; k <= lmplot__ticks(&alr); k++) {
            v = alr.lo + k * alr.step;
            lmplot__tick_label(&alr, v, lab, sizeof lab);
            lmplot__f(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n",
                      R, lmplot__px(&alr, v), R + 5, lmplot__px(&alr, v), c_lr, R + 8,
                      lmplot__px(&alr, v) + 4, c_lr, lab);
        }
    lmplot__s(&b, "</g>\n");
    lmplot__f(&b, "<text class=\"axis-title\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" "
                  "fill=\"#333333\">", (L + R) / 2, H - 16);
    lmplot__axis_title(&b, "step", ax.exp10);
    lmplot__f(&b, "</text>\n<text class=\"axis-title\" transform=\"translate(18,%.1f) rotate(-90)\" "
                  "text-anchor=\"middle\" fill=\"#333333\">", (T + B) / 2);
    lmplot__axis_title(&b, "loss (nats per token)", ay.exp10);
    lmplot__s(&b, "</text>\n");
    if (have_lr) {
        lmplot__f(&b, "<text class=\"axis-title\" transform=\"translate(%.1f,%.1f) rotate(90)\" "
                      "text-anchor=\"middle\" fill=\"%s\">", W - 16.0, (T + B) / 2, c_lr);
        lmplot__axis_title(&b, "learning rate", alr.exp10);
        lmplot__s(&b, "</text>\n");
    }

    /* the series: learning rate at the back, then train raw, train smoothed, validation */
    lmplot__s(&b, "<g clip-path=\"url(#lmplot-area)\" fill=\"none\" stroke-linejoin=\"round\">\n");
    if (have_lr) {
        char st[96];
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"", c_lr);
        lmplot__path(&b, "lr", s->step, s->lr, n, &ax, &alr, st, 0);
    }
    if (have_loss) {
        char st[96];
        /* fainter when the rows are denser than the pixels, so that a long run's noise
           stays a light band behind the smoothed line */
        double dens = n / (R - L), op = dens > 1 ? 0.45 / sqrt(dens) : 0.45;
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"1\" stroke-opacity=\"%.2f\"",
                 c_train, op < 0.15 ? 0.15 : op);
        lmplot__path(&b, "train-raw", s->step, s->loss, n, &ax, &ay, st, 0);
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"2.5\"", c_train);
        if (h > 0) lmplot__path(&b, "train-smooth", s->step, smooth, n, &ax, &ay, st, 0);
    }
    nval = 0;
    if (have_val) {
        char st[96];
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"1.5\"", c_val);
        nval = lmplot__path(&b, "val", s->step, s->val, n, &ax, &ay, st, 1);
    }
    lmplot__s(&b, "</g>\n");
    if (have_val) { /* the eval points on top, unclipped (they are inside the axes) */
        double r = nval > 150 ? 1.5 : nval > 50 ? 2.5 : 3.5;
        lmplot__f(&b, "<g class=\"points val\" fill=\"%s\" stroke=\"#ffffff\" stroke-width=\"1\">\n", c_val);
        for (i = 0; i < n; i++)
            if (lmplot__ok(s->step[i]) && lmplot__ok(s->val[i]))
                lmplot__f(&b, "<circle class=\"pt val\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n",
                          lmplot__px(&ax, s->step[i]), lmplot__px(&ay, s->val[i]), r);
        lmplot__s(&b, "</g>\n");
    }

    /* the legend: one row between the title and the plot; series with no values are
       listed at the end as a note instead */
    lx = L;
    lmplot__s(&b, "<g class=\"legend\">\n");
    if (have_loss) {
        char st[96];
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"1.5\" stroke-opacity=\"0.45\"", c_train);
        lmplot__legend(&b, &lx, T - 16, "train loss", st, 0, c_train);
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"2.5\"", c_train);
        snprintf(note, sizeof note, "train loss, mean of %d steps", 2 * h + 1);
        if (h > 0) lmplot__legend(&b, &lx, T - 16, note, st, 0, c_train);
    } else missing[n_missing++] = "train loss";
    if (have_val) {
        char st[96];
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"1.5\"", c_val);
        lmplot__legend(&b, &lx, T - 16, "validation loss", st, 1, c_val);
    } else missing[n_missing++] = "validation loss";
    if (have_lr) {
        char st[96];
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"", c_lr);
        lmplot__legend(&b, &lx, T - 16, "learning rate (right)", st, 0, c_lr);
    } else missing[n_missing++] = "learning rate";
    if (n_missing) {
        snprintf(note, sizeof note, "no %s%s%s%s%s logged", missing[0],
                 n_missing > 1 ? (n_missing > 2 ? ", " : " or ") : "", n_missing > 1 ? missing[1] : "",
                 n_missing > 2 ? " or " : "", n_missing > 2 ? missing[2] : "");
        lmplot__f(&b, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\" fill=\"#888888\" "
                      "font-style=\"italic\">", lx, T - 16);
        lmplot__text(&b, note);
        lmplot__s(&b, "</text>\n");
    }
    lmplot__s(&b, "</g>\n</svg>\n");
    free(smooth);
    i = lmplot__save(&b, path, err, errlen);
    free(b.p);
    return i;
}

/* ---------------------------------------------------------------------------------------
   The confusion matrix.
   cm is n_class x n_class, row-major: cm[t * n_class + p] counts the examples of true
   class t predicted as p. Each cell shows its count and is coloured by its share of its
   row (so a rare class reads as clearly as a common one); the right margin gives each
   row's recall and size, and a colour bar gives the scale. Labels may be NULL (then the
   class numbers) and are cut to 24 characters.
   --------------------------------------------------------------------------------------- */

/* A share in [0, 1] as a colour on a white - mid blue - dark blue ramp. */
static void lmplot__ramp(double t, char *out, size_t n) {
    static const double stop[3][3] = { { 247, 251, 255 }, { 107, 174, 214 }, { 8, 48, 107 } };
    int k, c[3];
    double u;
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    k = t < 0.5 ? 0 : 1;
    u = t < 0.5 ? t * 2 : t * 2 - 1;
    c[0] = (int)(stop[k][0] + (stop[k + 1][0] - stop[k][0]) * u + 0.5);
    c[1] = (int)(stop[k][1] + (stop[k + 1][1] - stop[k][1]) * u + 0.5);
    c[2] = (int)(stop[k][2] + (stop[k + 1][2] - stop[k][2]) * u + 0.5);
    snprintf(out, n, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* A class's name: its label, or its number when there are no labels. */
static const char *lmplot__label(const char *const *labels, int i, char *tmp, size_t n) {
    if (labels && labels[i]) return labels[i];
    snprintf(tmp, n, "%d", i);
    return tmp;
}

LMPLOT_FN int lmplot_confusion_svg(const long *cm, int n_class, const char *const *labels,
                                   const char *title, const char *path, char *err, size_t errlen) {
    const int max_label = 24;
    lmplot__buf b;
    double cs, fs, lw, left, top, bottom, gx, gy, gw, W, H, total = 0, right_ = 0, *rows, cx, cy;
    int i, j, lc = 1, rotate;
    char tmp[32], col[16];

    if (!cm || !path) return lmplot__fail(err, errlen, "no confusion matrix or no file name");
    if (n_class < 1 || n_class > 1000)
        return lmplot__fail(err, errlen, "a confusion matrix needs 1 to 1000 classes, not %d", n_class);
    for (i = 0; i < n_class * n_class; i++)
        if (cm[i] < 0)
            return lmplot__fail(err, errlen, "the confusion matrix has a negative count (%ld) at "
                                "true class %d, predicted %d", cm[i], i / n_class, i % n_class);
    rows = (double *)malloc((size_t)n_class * sizeof(double));
    if (!rows) return lmplot__fail(err, errlen, "out of memory while drawing '%s'", path);
    for (i = 0; i < n_class; i++) {
        rows[i] = 0;
        for (j = 0; j < n_class; j++) rows[i] += (double)cm[i * n_class + j];
        total += rows[i];
        right_ += (double)cm[i * n_class + i];
        j = lmplot__chars(lmplot__label(labels, i, tmp, sizeof tmp), max_label + 1);
        if (j > lc) lc = j;
    }
    if (!title) title = "confusion matrix";

    /* the layout: cells of cs pixels; class names left of the rows and under the columns
       (slanted when they are wider than a cell); recall and the colour bar on the right */
    cs = floor(480.0 / n_class);
    if (cs > 90) cs = 90;
    if (cs < 16) cs = 16;
    lw = 7.0 * lc;
    rotate = lw + 8 > cs;
    left = 40 + lw + 10;
    top = 76;
    bottom = (rotate ? lw * 0.71 + 18 : 24) + 36;
    gx = left;
    gy = top;
    gw = cs * n_class;
    W = gx + gw + 200;
    if (W < 0.56 * 17 * lmplot__chars(title, 1 << 30) + 40) W = 0.56 * 17 * lmplot__chars(title, 1 << 30) + 40;
    H = gy + gw + bottom;
    memset(&b, 0, sizeof b);
    lmplot__begin(&b, (int)ceil(W), (int)ceil(H), title);
    lmplot__f(&b, "<defs><linearGradient id=\"lmplot-ramp\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
                  "<stop offset=\"0\" stop-color=\"#f7fbff\"/><stop offset=\"0.5\" stop-color=\"#6baed6\"/>"
                  "<stop offset=\"1\" stop-color=\"#08306b\"/></linearGradient></defs>\n");
    lmplot__title(&b, title, W / 2, 30, W - 40);
    if (total > 0)
        lmplot__f(&b, "<text class=\"subtitle\" x=\"%.1f\" y=\"52\" text-anchor=\"middle\" "
                      "fill=\"#555555\">accuracy %.1f%% (%.0f of %.0f)</text>\n",
                  W / 2, 100 * right_ / total, right_, total);
    else
        lmplot__f(&b, "<text class=\"subtitle\" x=\"%.1f\" y=\"52\" text-anchor=\"middle\" "
                      "fill=\"#555555\">no examples counted</text>\n", W / 2);

    /* the cells: colour by share of the row, the count in the middle */
    lmplot__s(&b, "<g class=\"cells\" stroke=\"#ffffff\" stroke-width=\"1\">\n");
    for (i = 0; i < n_class; i++)
        for (j = 0; j < n_class; j++) {
            long c = cm[i * n_class + j];
            double share = rows[i] > 0 ? (double)c / rows[i] : 0;
            int digits = (int)strlen((snprintf(tmp, sizeof tmp, "%ld", c), tmp));
            lmplot__ramp(share, col, sizeof col);
            cx = gx + j * cs;
            cy = gy + i * cs;
            lmplot__f(&b, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                          "fill=\"%s\"><title>true ", cx, cy, cs, cs, col);
            lmplot__text(&b, lmplot__label(labels, i, tmp, sizeof tmp));
            lmplot__s(&b, ", predicted ");
            lmplot__text(&b, lmplot__label(labels, j, tmp, sizeof tmp));
            lmplot__f(&b, ": %ld (%.1f%% of the row)</title></rect>\n", c, 100 * share);
            fs = cs * 0.9 / (0.62 * digits);
            if (fs > cs * 0.4) fs = cs * 0.4;
            if (fs > 14) fs = 14;
            if (fs < 5) fs = 5;
            lmplot__f(&b, "<text class=\"count\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                          "font-size=\"%.1f\" stroke=\"none\" fill=\"%s\">%ld</text>\n",
                      cx + cs / 2, cy + cs / 2 + fs * 0.35, fs,
                      share > 0.55 ? "#ffffff" : "#222222", c);
        }
    lmplot__s(&b, "</g>\n");

    /* class names: true classes left of the rows, predicted classes under the columns */
    lmplot__s(&b, "<g class=\"labels\" fill=\"#333333\">\n");
    for (i = 0; i < n_class; i++) {
        lmplot__f(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", gx - 6, gy + i * cs + cs / 2 + 4);
        lmplot__text_n(&b, lmplot__label(labels, i, tmp, sizeof tmp), max_label);
        lmplot__s(&b, "</text>\n");
    }
    for (j = 0; j < n_class; j++) {
        cx = gx + j * cs + cs / 2;
        if (rotate)
            lmplot__f(&b, "<text transform=\"translate(%.1f,%.1f) rotate(-45)\" text-anchor=\"end\">",
                      cx + 4, gy + gw + 10);
        else
            lmplot__f(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", cx, gy + gw + 17);
        lmplot__text_n(&b, lmplot__label(labels, j, tmp, sizeof tmp), max_label);
        lmplot__s(&b, "</text>\n");
    }
    lmplot__s(&b, "</g>\n");
    lmplot__f(&b, "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                  "font-weight=\"bold\" fill=\"#333333\">predicted class</text>\n",
              gx + gw / 2, H - 14);
    lmplot__f(&b, "<text class=\"axis-title\" transform=\"translate(18,%.1f) rotate(-90)\" "
                  "text-anchor=\"middle\" font-weight=\"bold\" fill=\"#333333\">true class</text>\n",
              gy + gw / 2);

    /* each row's recall and size, then the colour scale */
    lmplot__f(&b, "<g class=\"recall\" fill=\"#555555\" font-size=\"11\">\n"
                  "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">recall</text>\n", gx + gw + 8, gy - 6);
    for (i = 0; i < n_class; i++) {
        double fr = cs < 22 ? cs * 0.5 : 11;
        if (rows[i] > 0)
            lmplot__f(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\">%.0f%% of %.0f</text>\n",
                      gx + gw + 8, gy + i * cs + cs / 2 + fr * 0.35, fr,
                      100 * (double)cm[i * n_class + i] / rows[i], rows[i]);
        else
            lmplot__f(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\">none</text>\n",
                      gx + gw + 8, gy + i * cs + cs / 2 + fr * 0.35, fr);
    }
    lmplot__s(&b, "</g>\n");
    cx = gx + gw + 104;
    lmplot__f(&b, "<g class=\"scale\" fill=\"#555555\" font-size=\"11\">\n"
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"url(#lmplot-ramp)\" "
                  "stroke=\"#999999\" stroke-width=\"0.5\"/>\n", cx, gy, gw);
    for (i = 0; i <= 4; i++)
        lmplot__f(&b, "<text x=\"%.1f\" y=\"%.1f\">%d%%</text>\n", cx + 18, gy + gw - gw * i / 4 + 4, 25 * i);
    lmplot__f(&b, "<text transform=\"translate(%.1f,%.1f) rotate(90)\" text-anchor=\"middle\">"
                  "share of the true class</text>\n</g>\n", cx + 60, gy + gw / 2);
    lmplot__s(&b, "</svg>\n");
    free(rows);
    i = lmplot__save(&b, path, err, errlen);
    free(b.p);
    return i;
}

/* ---------------------------------------------------------------------------------------
   Labelled points: n points (x[i], y[i]), each in series[i] (0 .. n_series - 1, its colour;
   a series' points are joined in the order given) with a label beside it (labels may be
   NULL, or hold NULLs). Axes from the data, titles xtitle and ytitle; a legend of the
   series' names. Same layout and rules as the loss curve (900 x 540).
   --------------------------------------------------------------------------------------- */
LMPLOT_FN int lmplot_points_svg(int n, const double *x, const double *y, const int *series,
                                const char *const *labels, int n_series,
                                const char *const *series_names, const char *title,
                                const char *xtitle, const char *ytitle, const char *path,
                                char *err, size_t errlen) {
    static const char *const colours[8] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                            "#9467bd", "#8c564b", "#e377c2", "#7f7f7f" };
    const int W = 900, H = 540;
    const double L = 76, R = W - 40, T = 78, B = H - 58;
    lmplot__axis ax, ay;
    lmplot__buf b;
    double xlo = 0, xhi = 0, ylo = 0, yhi = 0, v, lx;
    int i, k, any = 0;
    char lab[64];
    if (!x || !y || !series || !path || n < 1 || n_series < 1 || n_series > 8)
        return lmplot__fail(err, errlen, "points: no points, no file name, or not 1 to 8 series");
    for (i = 0; i < n; i++) {
        if (series[i] < 0 || series[i] >= n_series)
            return lmplot__fail(err, errlen, "points: point %d is in series %d of %d", i, series[i], n_series);
        if (!lmplot__ok(x[i]) || !lmplot__ok(y[i])) continue;
        if (!any || x[i] < xlo) xlo = x[i];
        if (!any || x[i] > xhi) xhi = x[i];
        if (!any || y[i] < ylo) ylo = y[i];
        if (!any || y[i] > yhi) yhi = y[i];
        any = 1;
    }
    if (!any) return lmplot__fail(err, errlen, "points: no finite point to plot in '%s'", path);
    if (!title) title = "points";
    if (xlo > 0 && xlo <= (xhi - xlo) * 0.5) xlo = 0;
    lmplot__axis_fit(&ax, xlo, xhi, 8);
    lmplot__axis_fit(&ay, ylo, yhi, 7);
    ax.p0 = L; ax.p1 = R;
    ay.p0 = B; ay.p1 = T;
    memset(&b, 0, sizeof b);
    lmplot__begin(&b, W, H, title);
    lmplot__title(&b, title, W / 2.0, 30, W - 40);
    lmplot__grid(&b, &ax, &ay, L, R, T, B);
    lmplot__f(&b, "<g class=\"axes\" stroke=\"#555555\" stroke-width=\"1\">\n"
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n</g>\n"
                  "<g class=\"ticks\" fill=\"#444444\">\n", L, B, R, B, L, T, L, B);
    for (k = 0; k <= lmplot__ticks(&ax); k++) {
        v = ax.lo + k * ax.step;
        lmplot__tick_label(&ax, v, lab, sizeof lab);
        lmplot__f(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                  lmplot__px(&ax, v), B + 19, lab);
    }
    for (k = 0; k <= lmplot__ticks(&ay); k++) {
        v = ay.lo + k * ay.step;
        lmplot__tick_label(&ay, v, lab, sizeof lab);
        lmplot__f(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                  L - 8, lmplot__px(&ay, v) + 4, lab);
    }
    lmplot__f(&b, "</g>\n<text class=\"axis-title\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" "
                  "fill=\"#333333\">", (L + R) / 2, H - 16);
    lmplot__axis_title(&b, xtitle ? xtitle : "x", ax.exp10);
    lmplot__f(&b, "</text>\n<text class=\"axis-title\" transform=\"translate(18,%.1f) rotate(-90)\" "
                  "text-anchor=\"middle\" fill=\"#333333\">", (T + B) / 2);
    lmplot__axis_title(&b, ytitle ? ytitle : "y", ay.exp10);
    lmplot__s(&b, "</text>\n");
    /* each series: the line through its points, the points, their labels */
    for (k = 0; k < n_series; k++) {
        int pen = 0;
        lmplot__f(&b, "<path class=\"series s%d\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"",
                  k, colours[k]);
        for (i = 0; i < n; i++)
            if (series[i] == k && lmplot__ok(x[i]) && lmplot__ok(y[i])) {
                lmplot__f(&b, "%c%.1f,%.1f", pen ? 'L' : 'M', lmplot__px(&ax, x[i]), lmplot__px(&ay, y[i]));
                pen = 1;
            }
        lmplot__s(&b, "\"/>\n");
    }
    lmplot__s(&b, "<g class=\"points\" stroke=\"#ffffff\" stroke-width=\"1\">\n");
    for (i = 0; i < n; i++) {
        if (!lmplot__ok(x[i]) || !lmplot__ok(y[i])) continue;
        lmplot__f(&b, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/>\n",
                  lmplot__px(&ax, x[i]), lmplot__px(&ay, y[i]), colours[series[i]]);
        if (labels && labels[i]) {
            lmplot__f(&b, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" stroke=\"none\" fill=\"#333333\" "
                          "font-size=\"11\">", lmplot__px(&ax, x[i]) + 7, lmplot__px(&ay, y[i]) - 6);
            lmplot__text_n(&b, labels[i], 40);
            lmplot__s(&b, "</text>\n");
        }
    }
    lmplot__s(&b, "</g>\n<g class=\"legend\">\n");
    lx = L;
    for (k = 0; k < n_series; k++) {
        char st[96];
        snprintf(st, sizeof st, "stroke=\"%s\" stroke-width=\"1.5\"", colours[k]);
        lmplot__legend(&b, &lx, T - 16, series_names && series_names[k] ? series_names[k] : "series",
                       st, 1, colours[k]);
    }
    lmplot__s(&b, "</g>\n</svg>\n");
    i = lmplot__save(&b, path, err, errlen);
    free(b.p);
    return i;
}

#endif /* LM_PLOT_H */
