#define LM_IMPLEMENTATION
#include "../lm.h"
#include "harness.h"
#include "test_gemm.inc"
int main(void) { run_gemm_tests(); return SUMMARY(); }
