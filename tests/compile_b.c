/* Compile check, translation unit B: declarations only, linked against A. */
#include "lm.h"
int lm_compile_b(void) {
    lm_rng r = lm_rng_seed(1);
    (void)lm_rng_u64(&r);
    return 256;
}
