#define LM_IMPLEMENTATION
#include "../lm.h"
#include <stdlib.h>
#include "harness.h"
#include "test_st.inc"
int main(void) { run_st_tests(); return SUMMARY(); }
