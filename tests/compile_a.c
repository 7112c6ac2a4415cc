/* Compile check, translation unit A: the implementation (see `make compile-check`). */
#define LM_IMPLEMENTATION
#include "lm.h"
#include "lm.h" /* a second include must be harmless */
int lm_compile_b(void);
int main(void) { return lm_compile_b() == 256 ? 0 : 1; }
