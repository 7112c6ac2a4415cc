/* tests/docs/readme_1_1.c fills "...change any option you like..." in README.md's example,
   for `make test`: a run of 5 steps instead of 2000, quick on any compiler. */
opt.steps = 5;
