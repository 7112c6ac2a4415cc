#define LM_IMPLEMENTATION
#include "../lm.h"
#include "harness.h"
#include "test_cli.inc"
int main(void) { run_cli_tests(); return SUMMARY(); }
