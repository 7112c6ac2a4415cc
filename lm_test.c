/* lm_test.c - the lm.h test suite: `make test`.

   Unit tests, a gradient check of every op against central differences, GEMM against a
   naive loop, optimizers against their formulas, tokenizers, checkpoints (including
   malformed files), and end-to-end checks of the GPT and the `lm` command line.
   The last line of the output is `N passed, M failed`; the exit status is non-zero if
   anything failed. Build with -DLM_TEST_NO_CLI to leave out the tests that run ./lm
   (cross builds under an emulator). */
#define _POSIX_C_SOURCE 200809L
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>
#include <stdlib.h>
#include "parts/harness.h"
#include "parts/test_core.inc"
#include "parts/test_gemm.inc"
#include "parts/test_st.inc"
#include "parts/test_tok.inc"
#include "parts/test_vec.inc"
#include "parts/test_plot.inc"
#ifndef LM_TEST_NO_CLI
#include "parts/test_cli.inc"
#endif

int main(void) {
    printf("lm.h test suite: SIMD path %s, %d cores\n", lm_simd_name(), lm_num_cores());
    run_core_tests();
    run_gemm_tests();
    run_st_tests();
    run_tok_tests();
    run_vec_tests();
    run_plot_tests();
#ifndef LM_TEST_NO_CLI
    run_cli_tests();
#endif
    return SUMMARY();
}
