#define LM_IMPLEMENTATION
#include "../lm.h"
#include <stdlib.h>
#include "harness.h"
#include "test_core.inc"
int main(void) { run_core_tests(); return SUMMARY(); }
