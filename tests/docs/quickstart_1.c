/* tests/docs/quickstart_1.c fills "...change any option you like..." in lm.h's QUICK START,
   for `make test`: a run of 5 steps instead of 2000, quick on any compiler. */
o.steps = 5;
