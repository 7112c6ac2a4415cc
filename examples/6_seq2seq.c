/* cc -O2 -march=native -I.. 6_seq2seq.c -o 6_seq2seq -lm -lpthread

   Lesson 6: text in, other text out - the encoder-decoder of "Attention Is All You Need".

   People write a date in many ways: "5 March 2021", "March 5th, 2021", "Friday, 5 Mar 21",
   "5.3.2021". A program wants one: "2021-03-05" (ISO 8601). Here a Transformer learns the
   rewrite from examples, with no rules given.

   The model is PyTorch's nn.Transformer: an encoder reads the whole source (a bidirectional
   stack, as in lesson 4); a decoder writes the answer one byte at a time, each position
   seeing the bytes it wrote before (causal, as the GPT of lesson 3) and, through
   cross-attention, every position of the encoder's output: a query from the decoder, keys
   and values from the source. The decoder starts from a BOS token and stops by writing EOS.
   Training is "teacher forcing": the decoder is fed the right answer so far and learns to
   predict each next byte of it; the loss is the mean cross-entropy of those predictions.
   Decoding feeds the model its own bytes instead, one at a time (greedy: the likeliest
   byte each time).

   The data is made here from a seed. Each format below has one fixed order of day and
   month, so every source has exactly one right answer (a format like "05/03/21" would be
   ambiguous if both orders were in use); two-digit years mean 1950..2049. The formats
   spell the same date in words, with ordinals, abbreviations, weekdays, other cases and
   separators: the model has to learn month names, ordinal suffixes, zero padding and the
   century of a two-digit year, and to ignore the weekday. 1000 dates are held out; the
   model never trains on them, in any format, and is tested on them at the end.

   About 100 s of CPU time (a minute or so on 2 cores). Exits 1 unless at least 99% of the
   unseen dates come out exactly right (all 1000 did here, with three different seeds, on
   the AVX-512 and the scalar path). */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <string.h>

#define BATCH 64            /* pairs per training step                                   */
#define STEPS 1500
#define N_TEST 1000         /* unseen dates                                              */
#define FIRST_YEAR 1950     /* dates from 1950-01-01 ...                                 */
#define N_YEARS 100         /* ... to 2049-12-31                                         */
#define MAXLEN 40           /* bytes of a source at most                                 */

static const char *const month_name[12] = { "January", "February", "March", "April", "May",
    "June", "July", "August", "September", "October", "November", "December" };
static const char *const day_name[7] = { "Sunday", "Monday", "Tuesday", "Wednesday",
    "Thursday", "Friday", "Saturday" };

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
static int month_days(int y, int m) {
    static const int d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return d[m - 1] + (m == 2 && leap(y));
}
/* Day number d (0 = 1950-01-01) as year, month, day. */
static void from_day(int d, int *y, int *m, int *dd) {
    for (*y = FIRST_YEAR; d >= 365 + leap(*y); (*y)++) d -= 365 + leap(*y);
    for (*m = 1; d >= month_days(*y, *m); (*m)++) d -= month_days(*y, *m);
    *dd = d + 1;
}
static int n_days(void) {
    int y, n = 0;
    for (y = FIRST_YEAR; y < FIRST_YEAR + N_YEARS; y++) n += 365 + leap(y);
    return n;
}
/* 1950-01-01 was a Sunday */
static const char *weekday(int d) { return day_name[d % 7]; }
static const char *ordinal(int d) {
    if (d % 10 == 1 && d != 11) return "st";
    if (d % 10 == 2 && d != 12) return "nd";
    if (d % 10 == 3 && d != 13) return "rd";
    return "th";
}
/* The first three letters of a name, in its case, upper case or lower case. */
static void abbr(char *out, const char *name, int upper, int lower) {
    int i;
    for (i = 0; i < 3; i++) {
        char ch = name[i];
        if (upper && ch >= 'a' && ch <= 'z') ch = (char)(ch - 32);
        if (lower && ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
        out[i] = ch;
    }
    out[3] = 0;
}

#define N_FORMATS 12
/* Day number d in format f. */
static void format_date(char *s, int f, int d) {
    int y, m, dd;
    char mon[4], wd[4], low[16];
    const char *M;
    size_t i;
    from_day(d, &y, &m, &dd);
    M = month_name[m - 1];
    abbr(mon, M, 0, 0);
    abbr(wd, weekday(d), 0, 0);
    for (i = 0; M[i]; i++) low[i] = (char)(M[i] >= 'A' && M[i] <= 'Z' ? M[i] + 32 : M[i]);
    low[i] = 0;
    switch (f) {
    case 0: sprintf(s, "%d %s %d", dd, M, y); break;                       /* 5 March 2021     */
    case 1: sprintf(s, "%s %d%s, %d", M, dd, ordinal(dd), y); break;       /* March 5th, 2021  */
    case 2: sprintf(s, "%s, %d %s %02d", weekday(d), dd, mon, y % 100); break; /* Friday, 5 Mar 21 */
    case 3: sprintf(s, "%d.%d.%d", dd, m, y); break;                       /* 5.3.2021         */
    case 4: sprintf(s, "%02d/%02d/%d", m, dd, y); break;                   /* 03/05/2021 (US)  */
    case 5: sprintf(s, "%02d-%s-%d", dd, mon, y); break;                   /* 05-Mar-2021      */
    case 6: sprintf(s, "%s %d, %d", mon, dd, y); break;                    /* Mar 5, 2021      */
    case 7: sprintf(s, "the %d%s of %s %d", dd, ordinal(dd), M, y); break; /* the 5th of March 2021 */
    case 8: abbr(wd, weekday(d), 1, 0); abbr(mon, M, 1, 0);
            sprintf(s, "%s %02d %s %d", wd, dd, mon, y); break;            /* FRI 05 MAR 2021  */
    case 9: sprintf(s, "%s %d %s %d", weekday(d), dd, M, y); break;        /* Friday 5 March 2021 */
    case 10: sprintf(s, "%d, %s %d", y, M, dd); break;                     /* 2021, March 5    */
    default: abbr(mon, M, 0, 1);
             sprintf(s, "%d %s %d", dd, low, y); break;                    /* 5 march 2021     */
    }
}
static void iso(char *s, int d) {
    int y, m, dd;
    from_day(d, &y, &m, &dd);
    sprintf(s, "%04d-%02d-%02d", y, m, dd);
}

/* A string as byte tokens; returns its length. */
static int bytes(const char *s, int *ids) {
    int n = 0;
    while (s[n]) { ids[n] = (unsigned char)s[n]; n++; }
    return n;
}

int main(void) {
    static int src[BATCH * MAXLEN], tgt[BATCH * 10], src_len[BATCH], tgt_len[BATCH], held[40000];
    static int test_day[N_TEST], test_fmt[N_TEST];
    lm_seq2seq_config cfg;
    lm_seq2seq *m;
    lm_train_opts opt = lm_train_defaults();
    lm_rng data_rng = lm_rng_seed(1), test_rng = lm_rng_seed(2);
    int i, step, n = n_days(), correct = 0, out[32];
    double avg = 0;

    /* 1000 dates for the test, drawn first; training never sees them */
    memset(held, 0, sizeof held);
    for (i = 0; i < N_TEST; i++) {
        int d;
        do d = (int)lm_rng_below(&test_rng, (uint32_t)n); while (held[d]);
        held[d] = 1;
        test_day[i] = d;
        test_fmt[i] = (int)lm_rng_below(&test_rng, N_FORMATS);
    }

    /* The model: 2 encoder and 2 decoder layers, 64 wide, 4 heads, an MLP of 256; the
       rest as nn.Transformer's defaults (post-LayerNorm, relu). Byte vocabulary: the 256
       bytes, then BOS (256), EOS (257) and PAD (258). */
    memset(&cfg, 0, sizeof cfg);
    cfg.d_model = 64;
    cfg.nhead = 4;
    cfg.num_encoder_layers = 2;
    cfg.num_decoder_layers = 2;
    cfg.dim_feedforward = 256;
    cfg.n_ctx = MAXLEN;
    lm_set_threads(0);
    m = lm_seq2seq_new(&cfg, 1337);
    if (!m) { printf("%s\n", lm_error()); return 1; }
    printf("encoder-decoder: %d+%d layers, %d wide, %lu parameters; %d training steps of %d "
           "pairs\n", cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.d_model,
           (unsigned long)lm_seq2seq_num_params(m), STEPS, BATCH);

    opt.steps = STEPS;
    opt.lr = 2e-3f;
    opt.min_lr = 1e-4f;
    opt.warmup = 200;
    for (step = 0; step < STEPS; step++) {
        lm_seq2seq_batch b;
        float loss;
        char s[BATCH][64];
        int S = 1;
        /* a fresh batch: random training dates in random formats. Row i of src holds
           src_len[i] bytes; the rows are S apart, S the longest source of the batch. */
        for (i = 0; i < BATCH; i++) {
            int d;
            do d = (int)lm_rng_below(&data_rng, (uint32_t)n); while (held[d]);
            format_date(s[i], (int)lm_rng_below(&data_rng, N_FORMATS), d);
            if ((int)strlen(s[i]) > S) S = (int)strlen(s[i]);
            iso(s[i] + 48, d);
            tgt_len[i] = bytes(s[i] + 48, tgt + i * 10);
        }
        for (i = 0; i < BATCH; i++) src_len[i] = bytes(s[i], src + i * S);
        b.B = BATCH; b.S = S; b.T = 10;
        b.src = src; b.src_len = src_len; b.tgt = tgt; b.tgt_len = tgt_len;
        loss = lm_seq2seq_train_step(m, &opt, &b, step);
        if (loss != loss) { printf("step %d: %s\n", step, lm_error()); return 1; }
        avg = step ? 0.98 * avg + 0.02 * loss : loss;
        if (step % 250 == 0 || step == STEPS - 1) printf("step %4d  loss %.4f\n", step, avg);
    }

    /* The unseen dates, decoded greedily: exactly right or not. */
    for (i = 0; i < N_TEST; i++) {
        char s[64], want[16], got[32];
        int len, k;
        format_date(s, test_fmt[i], test_day[i]);
        iso(want, test_day[i]);
        len = bytes(s, src);
        k = lm_seq2seq_translate(m, src, len, 1, out, 31);
        if (k < 0) { printf("%s\n", lm_error()); return 1; }
        for (len = 0; len < k; len++) got[len] = (char)out[len];
        got[k] = 0;
        correct += !strcmp(got, want);
        if (i < 8 || (strcmp(got, want) && i < 200))
            printf("  %-28s -> %-12s %s\n", s, got, strcmp(got, want) ? "WRONG" : "");
    }
    printf("exact match on %d unseen dates: %.3f\n", N_TEST, (double)correct / N_TEST);
    lm_seq2seq_free(m);
    if (correct < 0.99 * N_TEST) {
        printf("the lesson did not work: below 0.99\n");
        return 1;
    }
    return 0;
}
