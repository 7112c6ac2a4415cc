# lm.h - build the tests, the `lm` tool and the examples.
#   make          build everything
#   make test     run the test suite (last line: N passed, M failed)
#   make demo     train a small GPT on lm.h's own source, then sample from it
#   make install  lm.h and the lm tool under PREFIX (default /usr/local); make uninstall
#   make clean
# Extra suites (each needs Debian packages that .ci/run installs): compile-check,
# examples-run, test-torch, test-arm, test-be, test-cortex-m, test-asan, test-valgrind,
# test-tsan, test-faults, fuzz, test-mpi;
# `make bench` prints speed ratios against OpenBLAS and PyTorch (never part of a test).
CC ?= cc
CFLAGS ?= -O2 -march=native
WARN = -std=c99 -Wall -Wextra -pedantic
LDLIBS = -lm -lpthread
EXAMPLES = examples/1_linreg examples/2_xor examples/3_gpt examples/4_classify examples/5_binary \
           examples/6_seq2seq examples/7_compress

all: lm lm_test $(EXAMPLES)

lm: tools/lm_cli.c lm.h tools/lm_plot.h
	$(CC) $(WARN) $(CFLAGS) -I. tools/lm_cli.c -o $@ $(LDLIBS)

# The suite is built with -fstack-clash-protection where the compiler has it: every big
# frame then touches each page of its stack as it grows, so the small-stack tests (lm.h on
# a 64 KB thread stack) crash on the guard page instead of silently jumping over it.
STACK_CHECK := $(shell $(CC) -fstack-clash-protection -E -x c - </dev/null >/dev/null 2>&1 && \
                 echo -fstack-clash-protection)

lm_test: lm_test.c lm.h
	$(CC) $(WARN) $(CFLAGS) $(STACK_CHECK) -I. lm_test.c -o $@ $(LDLIBS)

examples/%: examples/%.c lm.h
	$(CC) $(WARN) $(CFLAGS) -I. $< -o $@ $(LDLIBS)
examples/4_classify: examples/lesson_data.h tools/lm_plot.h
examples/7_compress: tools/lm_plot.h

test: lm lm_test out/docs/list
	./lm_test

# The documentation's C examples - lm.h's QUICK START and README.md's ```c blocks - as
# printed, with each ...elision... filled in from tests/docs/ (tests/docs.sh); lm_test
# runs them.
out/docs/list: lm.h README.md tests/docs.sh $(wildcard tests/docs/*.c)
	sh tests/docs.sh $(CC) $(WARN) -Werror $(CFLAGS)

# The examples in course order, run as a user would (from examples/, no arguments); each
# checks its own lesson and exits non-zero if it failed. About ten minutes on 2 cores,
# most of it 3_gpt, 4_classify, 6_seq2seq and 7_compress. 4_classify also draws its
# confusion matrix (out/classify_confusion.svg) and 7_compress its loss against size
# (out/compress.svg), checked for well-formed XML when xmllint is installed.
examples-run: $(EXAMPLES)
	mkdir -p out
	cd examples && ./1_linreg && ./2_xor && ./3_gpt && \
	    ./4_classify --plot ../out/classify_confusion.svg && ./5_binary && ./6_seq2seq && \
	    ./7_compress --plot ../out/compress.svg
	if command -v xmllint >/dev/null; then xmllint --noout out/classify_confusion.svg out/compress.svg; fi

# The README's first command: a byte-level GPT trained on lm.h's own source (every checkout
# has it), its progress and falling loss, a loss curve (demo.svg), then a sample.
demo: lm
	./lm train --data lm.h --model demo.safetensors --steps 1000 --eval-every 200 \
	    --val-frac 0.1 --log demo.csv --plot demo.svg
	./lm generate --model demo.safetensors --prompt "static " --tokens 400 --temperature 0.7
	@echo
	@echo "(loss curve: demo.svg)"

# lm.h to $(PREFIX)/include and the lm tool to $(PREFIX)/bin, under DESTDIR when set (for
# packaging: make install DESTDIR=/tmp/pkg PREFIX=/usr). uninstall removes those two.
PREFIX ?= /usr/local
install: lm
	install -d "$(DESTDIR)$(PREFIX)/include" "$(DESTDIR)$(PREFIX)/bin"
	install -m 644 lm.h "$(DESTDIR)$(PREFIX)/include/lm.h"
	install -m 755 lm "$(DESTDIR)$(PREFIX)/bin/lm"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/include/lm.h" "$(DESTDIR)$(PREFIX)/bin/lm"

# ARM: the whole suite cross-compiled for aarch64 and armhf (NEON), run under qemu-user;
# aarch64 again with the dot-product extension (the Q8_0 kernels' sdot path); then the
# x86 AVX2 path (no AVX-512) and the scalar path (LM_NO_SIMD) natively, so every kernel
# path meets the same tests. Needs gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf and
# qemu-user (see .ci/run), and an x86 machine with AVX2.
ARM_TEST = -std=c99 -Wall -Wextra -pedantic -O2 -DLM_TEST_NO_CLI -I. lm_test.c -lm -lpthread
test-arm:
	aarch64-linux-gnu-gcc $(ARM_TEST) -o lm_test_aarch64
	@n=$$(aarch64-linux-gnu-objdump -d lm_test_aarch64 | grep -cE 'fmla[[:space:]]+v[0-9]+\.4s'); \
	  echo "aarch64: $$n NEON vector FMAs (fmla v.4s)"; test $$n -gt 0
	qemu-aarch64 -L /usr/aarch64-linux-gnu ./lm_test_aarch64
	aarch64-linux-gnu-gcc -march=armv8.2-a+dotprod $(ARM_TEST) -o lm_test_aarch64_dot
	@n=$$(aarch64-linux-gnu-objdump -d lm_test_aarch64_dot | grep -cE 'sdot[[:space:]]+v'); \
	  echo "aarch64+dotprod: $$n sdot instructions"; test $$n -gt 0
	qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu ./lm_test_aarch64_dot
	arm-linux-gnueabihf-gcc -mfpu=neon-vfpv4 -mfloat-abi=hard $(ARM_TEST) -o lm_test_armhf
	@n=$$(arm-linux-gnueabihf-objdump -d lm_test_armhf | grep -cE 'vfma\.f32[[:space:]]+q'); \
	  echo "armhf: $$n NEON vector FMAs (vfma.f32 q)"; test $$n -gt 0
	qemu-arm -L /usr/arm-linux-gnueabihf ./lm_test_armhf
	$(CC) $(WARN) -O2 -march=native -mno-avx512f -DLM_TEST_NO_CLI -I. lm_test.c -o lm_test_avx2 $(LDLIBS)
	./lm_test_avx2
	$(CC) $(WARN) -O2 -DLM_NO_SIMD -DLM_TEST_NO_CLI -I. lm_test.c -o lm_test_scalar $(LDLIBS)
	./lm_test_scalar

# Big-endian: checkpoints, tokenizer files and resume state are little-endian whatever the
# host. The whole suite cross-compiled for s390x (big-endian) and run under qemu-user; then
# tests/endian.c, built for both, writes the files on each side and reads the other side's:
# the host's checkpoint gives the same logits there, and each side's files saved again, or
# made from the same seeds, are byte for byte the other's. Needs gcc-s390x-linux-gnu,
# libc6-dev-s390x-cross and qemu-user (see .ci/run). About 4 minutes on 2 cores.
BE_CC = s390x-linux-gnu-gcc
BE_RUN = qemu-s390x
BE_FLAGS = -O2 -std=c99 -static -Wall -Wextra -pedantic -I.
lm_test_s390x: lm_test.c lm.h tools/lm_plot.h
	$(BE_CC) $(BE_FLAGS) -DLM_TEST_NO_CLI lm_test.c -o $@ -lm -lpthread
out/endian_host: tests/endian.c lm.h
	@mkdir -p out
	$(CC) $(WARN) $(CFLAGS) -I. tests/endian.c -o $@ $(LDLIBS)
out/endian_s390x: tests/endian.c lm.h
	@mkdir -p out
	$(BE_CC) $(BE_FLAGS) tests/endian.c -o $@ -lm -lpthread
test-be: lm_test_s390x out/endian_host out/endian_s390x
	$(BE_RUN) ./lm_test_s390x
	rm -rf out/be && mkdir -p out/be/host out/be/s390x
	out/endian_host write out/be/host
	$(BE_RUN) out/endian_s390x write out/be/s390x
	$(BE_RUN) out/endian_s390x check out/be/host out/be/s390x
	out/endian_host check out/be/s390x out/be/host

# PyTorch cross-check: GPT logits, loss, every gradient and 10 AdamW steps;
# the encoder's masked-LM and classifier heads; the encoder-decoder (nn.Transformer:
# logits, loss, every gradient, greedy and beam decodes, AdamW steps; `lm s2s eval` and
# `lm s2s translate`; a model `lm s2s train` wrote, read and saved again by PyTorch);
# `lm eval` and greedy `lm generate` - for
# the default (SIMD) build and a -DLM_NO_SIMD build, each against PyTorch and against each
# other. Needs Debian's python3-torch and python3-numpy, so it runs with /usr/bin/python3
# (a pyenv or venv python3 on PATH does not see them). Last line: N passed, M failed.
TORCH_PYTHON = /usr/bin/python3
TORCH_BINS = tools/torch_check tools/torch_check_scalar tools/lm_scalar

tools/torch_check: tools/torch_check.c lm.h
	$(CC) $(WARN) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

tools/torch_check_scalar: tools/torch_check.c lm.h
	$(CC) $(WARN) $(CFLAGS) -DLM_NO_SIMD -I. $< -o $@ $(LDLIBS)

tools/lm_scalar: tools/lm_cli.c lm.h
	$(CC) $(WARN) $(CFLAGS) -DLM_NO_SIMD -I. $< -o $@ $(LDLIBS)

test-torch: lm $(TORCH_BINS)
	$(TORCH_PYTHON) tools/torch_check.py --run simd tools/torch_check ./lm \
	    --run scalar tools/torch_check_scalar tools/lm_scalar


# lm-mpi: the lm command line over MPI (tools/lm_mpi.h); `mpirun -np P ./lm-mpi train ...
# --accum A` is bit for bit `./lm train ... --accum P*A`. Needs mpicc (libopenmpi-dev).
# test-mpi (tests/mpi.sh) checks that for P = 1, 2, 3, and evaluation, resuming with
# another P, SIGTERM and a killed rank; about a minute. Needs openmpi-bin (see .ci/run).
MPICC ?= mpicc
lm-mpi: tools/lm_cli.c tools/lm_mpi.h lm.h tools/lm_plot.h
	$(MPICC) $(WARN) $(CFLAGS) -DLM_MPI -I. tools/lm_cli.c -o $@ $(LDLIBS)

test-mpi: lm lm-mpi
	sh tests/mpi.sh ./lm ./lm-mpi

# Cortex-M4F: a GPT exported to C by tools/lm2c writes text with no malloc, no threads and
# no stdio, built with arm-none-eabi-gcc and run under qemu-system-arm (mps2-an386,
# semihosting); the same program built for the host must print the same bytes. Prints the
# image's flash and RAM use. Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and
# qemu-system-arm (see .ci/run).
test-cortex-m:
	sh tests/cortex_m.sh

# lm2c: a checkpoint as C source (const float arrays in flash), for programs with no files
lm2c: tools/lm2c.c lm.h
	$(CC) $(WARN) $(CFLAGS) -I. tools/lm2c.c -o $@ -lm

# The header compiles warning-free as C99 with gcc and clang, as C++, with tcc, and with
# each config macro; two translation units link (implementation in one only).
CHECK_DEFS = "" "-DLM_NO_SIMD" "-DLM_NO_THREADS" "-DLM_NO_STDIO" "-DLM_STATIC"
compile-check:
	@set -e; for cc in gcc clang "g++ -x c++"; do for d in $(CHECK_DEFS); do \
	  echo "$$cc $$d"; f="tests/compile_a.c tests/compile_b.c"; \
	  case "$$d" in *STATIC*) f=tests/compile_a.c;; esac; \
	  std=-std=c99; case "$$cc" in g++*) std=;; esac; \
	  $$cc $$std -Wall -Wextra -pedantic -Werror -O1 -march=native $$d -I. $$f -o /tmp/lm_compile_check -lm -lpthread; \
	  /tmp/lm_compile_check; done; done
	@if command -v tcc >/dev/null; then echo tcc; tcc -I. tests/compile_a.c tests/compile_b.c -o /tmp/lm_compile_check -lm -lpthread && /tmp/lm_compile_check; fi
	@rm -f /tmp/lm_compile_check

# ---- Sanitizers, valgrind and fuzzers (issue 8) ---------------------------------------
#   make test-asan       the test suite and the `lm` tool under AddressSanitizer and
#                        UndefinedBehaviorSanitizer; then the fuzz regression inputs
#   make test-valgrind   the test suite (without its CLI part), the `lm` tool on tiny runs,
#                        and the fuzz seeds and regression inputs, under valgrind memcheck
#   make fuzz            each libFuzzer target for FUZZ_SECONDS (default 60) after replaying
#                        its regression inputs; needs clang with libFuzzer (FUZZ_CC)
# Every target builds its own binaries (names below), so none disturbs `make test`.
SAN_FLAGS = -std=c99 -Wall -Wextra -pedantic -g -O1 -march=native -fno-omit-frame-pointer \
            -fsanitize=address,undefined -fno-sanitize-recover=all $(STACK_CHECK)
SAN_ENV = UBSAN_OPTIONS=print_stacktrace=1
# valgrind cannot run AVX-512 code: the AVX2 path (or scalar) is what it checks
VG_FLAGS = -std=c99 -Wall -Wextra -pedantic -g -O1 -march=native -mno-avx512f
VALGRIND = valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
FUZZ_CC ?= clang
FUZZ_FLAGS = -std=c99 -g -O1 -march=native -fsanitize=fuzzer,address,undefined \
             -fno-sanitize-recover=all
FUZZ_SECONDS ?= 60
FUZZ_NAMES = safetensors tokenizer cli
LM_PARTS = tools/lm_plot.h

lm_test_asan: lm_test.c lm.h $(LM_PARTS)
	$(CC) $(SAN_FLAGS) -I. lm_test.c -o $@ $(LDLIBS)
lm_asan: tools/lm_cli.c fuzz/lm_asan_options.c lm.h $(LM_PARTS)
	$(CC) $(SAN_FLAGS) -I. tools/lm_cli.c fuzz/lm_asan_options.c -o $@ $(LDLIBS)
fuzz/%-replay: fuzz/fuzz_%.c fuzz/replay.c lm.h tools/lm_cli.c $(LM_PARTS)
	$(CC) $(SAN_FLAGS) -I. fuzz/replay.c $< -o $@ $(LDLIBS)

test-asan: lm_test_asan lm_asan $(FUZZ_NAMES:%=fuzz/%-replay)
	$(SAN_ENV) LM_BIN=./lm_asan ./lm_test_asan
	@fail=0; for t in $(FUZZ_NAMES); do \
	  if $(SAN_ENV) fuzz/$$t-replay fuzz/regressions/$$t >fuzz/$$t-replay.log 2>&1; then \
	    echo "asan: fuzz/regressions/$$t: $$(tail -n 1 fuzz/$$t-replay.log)"; \
	  else tail -n 40 fuzz/$$t-replay.log; echo "asan: a regression input of $$t FAILS"; fail=1; fi; \
	done; exit $$fail

lm_test_vg: lm_test.c lm.h $(LM_PARTS)
	$(CC) $(VG_FLAGS) -I. lm_test.c -o $@ $(LDLIBS)
lm_vg: tools/lm_cli.c lm.h $(LM_PARTS)
	$(CC) $(VG_FLAGS) -I. tools/lm_cli.c -o $@ $(LDLIBS)
fuzz/%-replay-vg: fuzz/fuzz_%.c fuzz/replay.c lm.h tools/lm_cli.c $(LM_PARTS)
	$(CC) $(VG_FLAGS) -I. fuzz/replay.c $< -o $@ $(LDLIBS)
fuzz/make-seeds: fuzz/make_seeds.c lm.h $(LM_PARTS)
	$(CC) $(WARN) -O1 -I. fuzz/make_seeds.c -o $@ $(LDLIBS)
fuzz/seeds: fuzz/make-seeds
	rm -rf fuzz/seeds && fuzz/make-seeds fuzz/seeds

test-valgrind: lm_test_vg lm_vg fuzz/seeds $(FUZZ_NAMES:%=fuzz/%-replay-vg)
	LM_TEST_SKIP_CLI=1 $(VALGRIND) ./lm_test_vg
	sh tests/valgrind.sh ./lm_vg
	@fail=0; for t in $(FUZZ_NAMES); do \
	  if $(VALGRIND) fuzz/$$t-replay-vg fuzz/seeds/$$t fuzz/regressions/$$t >fuzz/$$t-replay.log 2>&1; \
	  then echo "valgrind: fuzz/seeds/$$t fuzz/regressions/$$t: $$(tail -n 1 fuzz/$$t-replay.log)"; \
	  else tail -n 40 fuzz/$$t-replay.log; echo "valgrind: an input of $$t FAILS"; fail=1; fi; \
	done; exit $$fail

fuzz/%-fuzz: fuzz/fuzz_%.c lm.h tools/lm_cli.c $(LM_PARTS)
	$(FUZZ_CC) $(FUZZ_FLAGS) -I. $< -o $@ $(LDLIBS)

# Each target: its regression inputs once (-runs=0 runs a corpus and stops), then fuzzing
# from its saved corpus and the seeds for FUZZ_SECONDS. A crash leaves the input in
# fuzz/artifacts/ and the log in fuzz/TARGET.log; keep it under fuzz/regressions/TARGET/.
fuzz: fuzz/seeds $(FUZZ_NAMES:%=fuzz/%-fuzz)
	@mkdir -p fuzz/artifacts; fail=0; for t in $(FUZZ_NAMES); do \
	  mkdir -p fuzz/corpus/$$t; \
	  if ! fuzz/$$t-fuzz -runs=0 -artifact_prefix=fuzz/artifacts/$$t- fuzz/regressions/$$t \
	      >fuzz/$$t.log 2>&1; then \
	    tail -n 30 fuzz/$$t.log; echo "fuzz $$t: a regression input FAILS"; fail=1; continue; fi; \
	  if fuzz/$$t-fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=30 -print_final_stats=1 \
	      -artifact_prefix=fuzz/artifacts/$$t- fuzz/corpus/$$t fuzz/seeds/$$t >fuzz/$$t.log 2>&1; \
	  then echo "fuzz $$t: $$(sed -n 's/^stat::number_of_executed_units: *//p' fuzz/$$t.log)" \
	    "executions in $(FUZZ_SECONDS) s, corpus of $$(ls fuzz/corpus/$$t | wc -l) inputs, nothing found"; \
	  else tail -n 30 fuzz/$$t.log; echo "fuzz $$t: FAILED, the input is in fuzz/artifacts/"; fail=1; fi; \
	done; exit $$fail

# ---- ThreadSanitizer (issue 20) --------------------------------------------------------
#   make test-tsan       lm_test's thread tests under ThreadSanitizer: 2 and 4 threads
#                        calling lm.h at once (each training its own GPT, generating, a
#                        GEMM, failing with errors of its own), one of them while another
#                        thread keeps changing lm_set_threads, and 4 threads generating from
#                        one shared copy of the weights; every result bit-identical to the
#                        single-threaded run, and any data race reported fails the target.
TSAN_FLAGS = -std=c99 -Wall -Wextra -pedantic -g -O1 -march=native -fsanitize=thread
lm_test_tsan: lm_test.c lm.h $(LM_PARTS)
	$(CC) $(TSAN_FLAGS) -I. lm_test.c -o $@ $(LDLIBS)
test-tsan: lm_test_tsan
	TSAN_OPTIONS="halt_on_error=1 exitcode=66" LM_TEST_ONLY=threads ./lm_test_tsan

# What these targets build (for `make clean`: rm -rf $(SAN_CLEAN)); fuzz/corpus/ is the
# corpus the fuzzers grow from run to run, kept.
SAN_CLEAN = lm_test_asan lm_test_tsan lm_asan lm_test_vg lm_vg fuzz/*-fuzz fuzz/*-replay fuzz/*-replay-vg \
            fuzz/make-seeds fuzz/seeds fuzz/artifacts fuzz/*.log

.PHONY: test-asan test-valgrind test-tsan fuzz

# ---- Faults (issue 20) ------------------------------------------------------------------
#   make test-faults     lm.h when the machine fails under it (tests/faults.c, under ASan and
#                        UBSan): every allocation of each operation that allocates fails in
#                        turn; every file call of each save fails in turn; `lm train` with
#                        each file call failing, with a file size limit, and killed (SIGKILL)
#                        before each file call and at random moments, then resumed. Prints
#                        the counts; last line N passed, M failed. A few minutes on 2 cores.
out/faults: tests/faults.c lm.h
	@mkdir -p out
	$(CC) $(SAN_FLAGS) -I. tests/faults.c -o $@ $(LDLIBS)
out/lm_faults: tests/faults.c lm.h tools/lm_cli.c fuzz/lm_asan_options.c $(LM_PARTS)
	@mkdir -p out
	$(CC) $(SAN_FLAGS) -DFAULTS_CLI -I. tests/faults.c fuzz/lm_asan_options.c -o $@ $(LDLIBS)
test-faults: out/faults out/lm_faults
	$(SAN_ENV) out/faults

.PHONY: test-faults

# Speed comparison (issue 6): lm.h against OpenBLAS for GEMM (Debian's libopenblas, its own
# kernel choice and each AVX-512 kernel forced; compared against the fastest) and against
# Debian's PyTorch at its best thread count for training and KV-cache generation, all in one
# run on this machine; lm.h's AVX2 build against OpenBLAS's Haswell kernel; generation's
# weights read per second against the machine's streaming bandwidth; the Tiny Shakespeare
# run (when ../shared/data/tinyshakespeare.txt or --shakespeare FILE is there). Prints each
# figure, the ratio and the target; writes out/bench.txt.
# About 15-20 minutes on an idle 2-core machine. Needs libopenblas-dev and python3-torch.
# Never part of `make test`. BENCH_ARGS passes options to tools/bench.py, e.g.
# BENCH_ARGS="--quick" (a smoke test), "--only gemm", "--gemm-cputime" (busy machine).
BENCH_ARGS ?=

out/bench_gemm: tools/bench_gemm.c lm.h
	@mkdir -p out
	$(CC) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

out/bench_gemm_openblas: tools/bench_gemm.c lm.h
	@mkdir -p out
	$(CC) $(CFLAGS) -DLM_BENCH_OPENBLAS -I. $< -o $@ -lopenblas $(LDLIBS)

out/bench_gemm_avx2: tools/bench_gemm.c lm.h
	@mkdir -p out
	$(CC) -O2 -mavx2 -mfma -I. $< -o $@ $(LDLIBS)

bench: lm out/bench_gemm out/bench_gemm_avx2 out/bench_gemm_openblas
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(TORCH_PYTHON) tools/bench.py $(BENCH_ARGS)

clean:
	rm -f lm lm-mpi lm_test lm_test_aarch64 lm_test_aarch64_dot lm_test_armhf lm_test_avx2 lm_test_scalar lm_test_s390x $(EXAMPLES) $(TORCH_BINS) lm2c \
	    demo.safetensors demo.safetensors.state demo.csv demo.svg
	rm -rf examples/cortex_m/build $(SAN_CLEAN) out

.PHONY: all test examples-run demo install uninstall clean compile-check test-arm test-torch \
	test-be test-cortex-m test-asan test-valgrind test-tsan test-faults fuzz bench test-mpi
