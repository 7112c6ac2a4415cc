#define LM_IMPLEMENTATION
#include "../lm.h"
#include "harness.h"
#include "test_plot.inc"
int main(void) { run_plot_tests(); return SUMMARY(); }
