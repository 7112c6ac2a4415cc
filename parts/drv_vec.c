#define LM_IMPLEMENTATION
#include "../lm.h"
#ifndef LM__VEC_IMPL      /* until lm.h includes the vector kernels itself */
#include "vec_impl.inc"
#endif
#include "harness.h"
#include "test_vec.inc"
int main(void) { run_vec_tests(); return SUMMARY(); }
