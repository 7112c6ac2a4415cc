/* Compile check, translation unit A: the implementation (see `make compile-check`).
   With LM_STATIC everything is private to one translation unit, so B is not linked. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include "lm.h" /* a second include must be harmless */
#ifdef LM_STATIC
static int lm_compile_b(void) { lm_rng r = lm_rng_seed(1); return lm_rng_u64(&r) ? 256 : 0; }
#else
int lm_compile_b(void);
#endif
int main(void) { return lm_compile_b() == 256 ? 0 : 1; }
