/* lm_asan_options.c - ASan defaults for the `lm` tool built by `make test-asan`.

   `lm` ends every failure with exit(), holding whatever it had allocated, as any program
   may: LeakSanitizer would report those blocks at exit and the extra lines would break the
   "one line on stderr" checks of the command-line tests. So leak detection is off for this
   binary only. Leaks are still looked for everywhere else: in the library by the test suite
   (lm_test_asan) and the fuzzers, in the tool's successful runs by tests/valgrind.sh and in
   its option parsing by fuzz/fuzz_cli.c, which frees what an exiting subcommand held.
   ASAN_OPTIONS in the environment still overrides this. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }
