#define LM_IMPLEMENTATION
#include "../lm.h"
#include "harness.h"
#include "test_tok.inc"
int main(void) { run_tok_tests(); return SUMMARY(); }
