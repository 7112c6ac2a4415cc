/* tests/docs/readme_2_1.c fills "...change any option you like..." in README.md's
   encoder-decoder example, for `make test`: 5 steps instead of 300, quick on any compiler. */
opt.steps = 5;
