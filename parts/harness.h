/* Test harness shared by lm_test.c and the per-part drivers. */
#include <stdio.h>
#include <math.h>
static int lm_t_pass, lm_t_fail;
/* One check: counts a pass or prints the failure with its location. */
#define CHECK(cond, what) do { if (cond) lm_t_pass++; else { lm_t_fail++; \
    printf("FAIL %s:%d: %s  [%s]\n", __FILE__, __LINE__, what, #cond); } } while (0)
/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol, what) do { double lm_t_a = (a), lm_t_b = (b); \
    double lm_t_s = fabs(lm_t_b) > 1 ? fabs(lm_t_b) : 1; \
    if (fabs(lm_t_a - lm_t_b) <= (tol) * lm_t_s) lm_t_pass++; else { lm_t_fail++; \
    printf("FAIL %s:%d: %s: got %.9g want %.9g (tol %g)\n", __FILE__, __LINE__, what, \
           lm_t_a, lm_t_b, (double)(tol)); } } while (0)
#define SUMMARY() (printf("%d passed, %d failed\n", lm_t_pass, lm_t_fail), lm_t_fail ? 1 : 0)
