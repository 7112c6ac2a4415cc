/* lm_test.c - the lm.h test suite: `make test`.

   Unit tests, a gradient check of every op against central differences, GEMM against a
   naive loop, optimizers against their formulas, tokenizers, checkpoints (including
   malformed files), and end-to-end checks of the GPT and the `lm` command line.
   The last line of the output is `N passed, M failed`; the exit status is non-zero if
   anything failed. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include "parts/harness.h"
#include "parts/test_core.inc"
#include "parts/test_gemm.inc"

int main(void) {
    printf("lm.h test suite, SIMD path: %s, cores: %d\n", lm_simd_name(), lm_num_cores());
    run_core_tests();
    run_gemm_tests();
    return SUMMARY();
}
