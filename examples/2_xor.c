/* cc -O2 -march=native -I.. 2_xor.c -o 2_xor -lm -lpthread

   Lesson 2: why neural networks have hidden layers.

   XOR is the smallest problem a straight line cannot solve:
       x1 x2 | y
        0  0 | 0
        0  1 | 1
        1  0 | 1
        1  1 | 0
   The ones sit on one diagonal of the square and the zeros on the other, so no line
   w1 x1 + w2 x2 + b = 0 puts both ones on one side and both zeros on the other.

   Part 1 fits the best "one neuron" model there is: a linear layer followed by a sigmoid,
   p = sigmoid(x W + b), trained on binary cross-entropy. Gradient descent drives it to
   the least-bad compromise, which for XOR is W = 0, b = 0: it answers p = 0.5 for every
   input and the loss sits at ln 2 = 0.693. At most 3 of the 4 points can be right.

   Part 2 puts a hidden layer of H neurons in front:
       h = act(x W1 + b1)          (4, H)   each neuron: a weighted sum, then a bend
       logit = h W2 + b2           (4, 1)
   The activation `act` is what makes the difference: without a bend the two layers
   would collapse into one linear map. Each hidden neuron draws its own line; the output
   neuron combines them, and two lines are enough to cut out XOR's diagonal. We train it
   with each of the three classic activations (sigmoid, tanh, relu) and expect 4/4.
   (relu is the one to watch: a neuron whose sum is negative on all four inputs passes no
   gradient and never recovers. With seed 2 instead of 7, two of the four points stay
   stuck at p = 0.5. More neurons, or a different start, get around it.)

   Backpropagation is not written here at all: every op we call records itself on a
   graph, and lm_backward walks that graph in reverse, applying the chain rule to fill
   the gradient of every parameter. */
#define LM_IMPLEMENTATION
#include "lm.h"
#include <stdio.h>

#define H 8                /* hidden neurons: 2 would do in theory, 8 train reliably  */
#define STEPS 1000

static float X[4 * 2] = { 0, 0,  0, 1,  1, 0,  1, 1 };   /* (4, 2) the four inputs     */
static float Y[4] = { 0, 1, 1, 0 };                       /* (4)    their XOR          */

enum { ACT_SIGMOID, ACT_TANH, ACT_RELU };
static const char *act_name[3] = { "sigmoid", "tanh", "relu" };

/* Train one model on the four points and report its final loss and how many of the four
   it gets right. hidden = 0 is the single-neuron model of part 1; otherwise act is the
   activation of the hidden layer. Returns -1 on a library error. */
static int fit(lm_arena *arena, int hidden, int act, float *final_loss, float probs[4]) {
    lm_params p;
    lm_rng rng = lm_rng_seed(7);
    int ndims[4] = { 2, 1, 2, 1 };
    int shapes[4][LM_MAX_DIMS] = { { 2, H }, { H }, { H, 1 }, { 1 } };
    const char *names[4] = { "w1", "b1", "w2", "b2" };
    lm_train_opts opt = lm_train_defaults();   /* AdamW; we use its betas and eps       */
    size_t mark = lm_arena_mark(arena), graph_mark;
    size_t i;
    int step, k, correct = 0;

    if (!hidden) { shapes[0][1] = 1; shapes[1][0] = 1; }  /* part 1: W (2, 1), b (1)    */
    if (lm_params_init(&p, arena, hidden ? 4 : 2, ndims, (const int (*)[LM_MAX_DIMS])shapes, names) != LM_OK)
        return -1;
    /* Weights start small and random, biases at zero. If every weight started equal,
       every hidden neuron would get the same gradient and they would stay identical:
       the randomness is what lets them learn different lines. */
    for (k = 0; k < p.n; k++)
        if (p.t[k].ndim == 2)
            for (i = 0; i < (size_t)p.t[k].size; i++) p.t[k].data[i] = 0.5f * lm_rng_normal(&rng);
    opt.wd = 0.0f;                             /* no weight decay: 4 points, no noise   */
    graph_mark = lm_arena_mark(arena);         /* each step's graph lives above this    */

    for (step = 0; step < STEPS; step++) {
        lm_graph g;
        int xs[2] = { 4, 2 }, ys[2] = { 4, 1 };
        lm_tensor *x, *y, *z, *loss;
        lm_graph_init(&g, arena);
        x = lm_tensor_wrap(&g, X, 2, xs, 0);
        y = lm_tensor_wrap(&g, Y, 2, ys, 0);
        if (hidden) {
            z = lm_linear(&g, x, &p.t[0], &p.t[1]);                      /* (4, H)  */
            z = act == ACT_SIGMOID ? lm_sigmoid(&g, z)
              : act == ACT_TANH    ? lm_tanh(&g, z) : lm_relu(&g, z);
            z = lm_linear(&g, z, &p.t[2], &p.t[3]);                      /* (4, 1)  */
        } else {
            z = lm_linear(&g, x, &p.t[0], &p.t[1]);                      /* (4, 1)  */
        }
        /* The loss takes the logit z, not sigmoid(z): BCE-with-logits folds the sigmoid
           in, which is the same function but stays accurate when z is large. */
        loss = lm_bce_logits(&g, z, y);
        lm_params_zero_grad(&p);
        if (lm_backward(&g, loss) != LM_OK) return -1;       /* fills every p.t[k].grad */
        *final_loss = loss->data[0];
        if (step == STEPS - 1) {
            /* the probabilities, through the sigmoid op (no gradient needed for these) */
            lm_tensor *pr = lm_sigmoid(&g, z);
            if (!pr) return -1;
            for (k = 0; k < 4; k++) probs[k] = pr->data[k];
        } else {
            lm_adamw_step(&p, &opt, 0.02f);
        }
        lm_graph_reset(&g, graph_mark);  /* drop the graph, keep the parameters         */
        if (step % 200 == 0 && hidden)
            printf("    step %4d  loss %.4f\n", step, *final_loss);
    }
    for (k = 0; k < 4; k++) correct += (probs[k] > 0.5f) == (Y[k] > 0.5f);
    lm_arena_reset(arena, mark);        /* free this model: the next one reuses memory  */
    return correct;
}

int main(void) {
    static unsigned char memory[1 << 20];
    lm_arena arena;
    float loss, probs[4];
    int correct, a, k, ok = 1;

    lm_arena_init_buffer(&arena, memory, sizeof memory);

    printf("Part 1: one neuron, p = sigmoid(x W + b)\n");
    correct = fit(&arena, 0, 0, &loss, probs);
    if (correct < 0) { fprintf(stderr, "xor: %s\n", lm_error()); return 1; }
    for (k = 0; k < 4; k++)
        printf("    %g xor %g = %g   p = %.3f\n", X[2 * k], X[2 * k + 1], Y[k], probs[k]);
    printf("    loss %.4f (ln 2 = 0.6931), %d/4 right: a line cannot separate XOR\n\n", loss, correct);
    /* The lesson holds if the single neuron is stuck near ln 2 and gets at most 3 right. */
    if (!(loss > 0.6f) || correct > 3) ok = 0;

    for (a = ACT_SIGMOID; a <= ACT_RELU; a++) {
        printf("Part 2: hidden layer of %d %s neurons\n", H, act_name[a]);
        correct = fit(&arena, 1, a, &loss, probs);
        if (correct < 0) { fprintf(stderr, "xor: %s\n", lm_error()); return 1; }
        for (k = 0; k < 4; k++)
            printf("    %g xor %g = %g   p = %.3f\n", X[2 * k], X[2 * k + 1], Y[k], probs[k]);
        printf("    loss %.4f, %d/4 right\n\n", loss, correct);
        if (correct != 4 || !(loss < 0.1f)) ok = 0;
    }
    printf(ok ? "OK: one layer cannot learn XOR, two layers can\n" : "FAILED\n");
    return ok ? 0 : 1;
}
