/* cc -O2 -I.. 1_linreg.c -o 1_linreg -lm -lpthread

   Lesson 1: fitting a line by gradient descent.

   We make 200 noisy points on the line y = 3x - 2, then fit y = w x + b by gradient
   descent on the mean squared error, using lm.h's autograd to get the gradients and its
   SGD optimizer to follow them. At the end we compare with the exact least-squares answer,
   which for a line has a closed form:
       w = cov(x, y) / var(x),   b = mean(y) - w mean(x)
   Gradient descent should land on the same numbers. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>

#define N 200

int main(void) {
    static unsigned char memory[1 << 20];       /* all the memory this program uses      */
    float xs[N], ys[N];
    lm_arena arena;
    lm_params p;
    lm_rng rng = lm_rng_seed(42);
    int ndims[2] = { 2, 1 };
    int shapes[2][LM_MAX_DIMS] = { { 1, 1 }, { 1 } };   /* w is a 1x1 matrix, b a 1-vector */
    const char *names[2] = { "w", "b" };
    double mx = 0, my = 0, sxy = 0, sxx = 0, w_exact, b_exact;
    int i, step;

    /* 1. Data: x uniform in [-1, 1], y = 3x - 2 plus a little Gaussian noise. */
    for (i = 0; i < N; i++) {
        xs[i] = 2.0f * lm_rng_uniform(&rng) - 1.0f;
        ys[i] = 3.0f * xs[i] - 2.0f + 0.1f * lm_rng_normal(&rng);
    }

    /* 2. Parameters: w and b, both starting at 0, in an arena on our static buffer. */
    lm_arena_init_buffer(&arena, memory, sizeof memory);
    if (lm_params_init(&p, &arena, 2, ndims, (const int (*)[LM_MAX_DIMS])shapes, names) != LM_OK) {
        fprintf(stderr, "linreg: %s\n", lm_error());
        return 1;
    }

    /* 3. Gradient descent. Each step builds the graph pred = x w + b, loss = mean((pred-y)^2),
       runs it backwards to fill p.grad, and takes an SGD step. The graph lives above a mark
       in the arena; resetting to the mark frees it for the next step. */
    for (step = 0; step < 300; step++) {
        size_t mark = lm_arena_mark(&arena);
        lm_graph g;
        int shape[2] = { N, 1 };
        lm_tensor *x, *y, *pred, *loss;
        lm_graph_init(&g, &arena);
        x = lm_tensor_wrap(&g, xs, 2, shape, 0);       /* (N, 1) inputs, no gradient     */
        y = lm_tensor_wrap(&g, ys, 2, shape, 0);       /* (N, 1) targets                 */
        pred = lm_linear(&g, x, &p.t[0], &p.t[1]);     /* (N, 1) = x w + b               */
        loss = lm_mse(&g, pred, y);
        lm_params_zero_grad(&p);
        if (lm_backward(&g, loss) != LM_OK) { fprintf(stderr, "linreg: %s\n", lm_error()); return 1; }
        if (step % 50 == 0) printf("step %3d  loss %.5f  w %.4f  b %.4f\n", step, loss->data[0], p.t[0].data[0], p.t[1].data[0]);
        lm_sgd_step(&p, 0.1f, 0.9f, 0.0f);             /* lr 0.1, momentum 0.9, no decay */
        lm_graph_reset(&g, mark);
    }

    /* 4. The closed-form least-squares line, for comparison. */
    for (i = 0; i < N; i++) { mx += xs[i]; my += ys[i]; }
    mx /= N; my /= N;
    for (i = 0; i < N; i++) { sxy += (xs[i] - mx) * (ys[i] - my); sxx += (xs[i] - mx) * (xs[i] - mx); }
    w_exact = sxy / sxx;
    b_exact = my - w_exact * mx;
    printf("gradient descent: w = %.5f  b = %.5f\n", p.t[0].data[0], p.t[1].data[0]);
    printf("closed form:      w = %.5f  b = %.5f\n", w_exact, b_exact);
    printf("difference:       %.2e  %.2e\n", p.t[0].data[0] - w_exact, p.t[1].data[0] - b_exact);
    return (fabs(p.t[0].data[0] - w_exact) < 1e-3 && fabs(p.t[1].data[0] - b_exact) < 1e-3) ? 0 : 1;
}
