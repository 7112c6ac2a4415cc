# lm.h - build the tests, the `lm` tool and the examples.
#   make          build everything
#   make test     run the test suite (last line: N passed, M failed)
#   make demo     train a small GPT on lm.h's own source, then sample from it
#   make clean
CC ?= cc
CFLAGS ?= -O2 -march=native
WARN = -std=c99 -Wall -Wextra -pedantic
LDLIBS = -lm -lpthread
EXAMPLES = examples/linreg

all: lm lm_test $(EXAMPLES)

lm: tools/lm.c lm.h
	$(CC) $(WARN) $(CFLAGS) -I. tools/lm.c -o $@ $(LDLIBS)

lm_test: lm_test.c lm.h
	$(CC) $(WARN) $(CFLAGS) -I. lm_test.c -o $@ $(LDLIBS)

examples/%: examples/%.c lm.h
	$(CC) $(WARN) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

test: lm lm_test
	./lm_test

demo: lm
	./lm train --data lm.h --model demo.safetensors --layers 4 --heads 4 --embd 128 --ctx 64 \
	    --batch 12 --steps 600 --warmup 50 --eval-every 200 --val-frac 0.05
	./lm generate --model demo.safetensors --prompt "static " --tokens 400 --temperature 0.7

# ARM: the whole suite cross-compiled for aarch64 and armhf (NEON), run under qemu-user;
# then the scalar path (LM_NO_SIMD) natively. Needs gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf and qemu-user (see .ci/run).
ARM_TEST = -std=c99 -Wall -Wextra -pedantic -O2 -DLM_TEST_NO_CLI -I. lm_test.c -lm -lpthread
test-arm:
	aarch64-linux-gnu-gcc $(ARM_TEST) -o lm_test_aarch64
	@n=$$(aarch64-linux-gnu-objdump -d lm_test_aarch64 | grep -cE 'fmla[[:space:]]+v[0-9]+\.4s'); \
	  echo "aarch64: $$n NEON vector FMAs (fmla v.4s)"; test $$n -gt 0
	qemu-aarch64 -L /usr/aarch64-linux-gnu ./lm_test_aarch64
	arm-linux-gnueabihf-gcc -mfpu=neon-vfpv4 -mfloat-abi=hard $(ARM_TEST) -o lm_test_armhf
	@n=$$(arm-linux-gnueabihf-objdump -d lm_test_armhf | grep -cE 'vfma\.f32[[:space:]]+q'); \
	  echo "armhf: $$n NEON vector FMAs (vfma.f32 q)"; test $$n -gt 0
	qemu-arm -L /usr/arm-linux-gnueabihf ./lm_test_armhf
	$(CC) $(WARN) -O2 -DLM_NO_SIMD -DLM_TEST_NO_CLI -I. lm_test.c -o lm_test_scalar $(LDLIBS)
	./lm_test_scalar

# PyTorch cross-check (DESIGN 5): GPT logits, loss, every gradient and 10 AdamW steps;
# the encoder's masked-LM and classifier heads; `lm eval` and greedy `lm generate` - for
# the default (SIMD) build and a -DLM_NO_SIMD build, each against PyTorch and against each
# other. Needs Debian's python3-torch and python3-numpy, so it runs with /usr/bin/python3
# (a pyenv or venv python3 on PATH does not see them). Last line: N passed, M failed.
TORCH_PYTHON = /usr/bin/python3
TORCH_BINS = tools/torch_check tools/torch_check_scalar tools/lm_scalar

tools/torch_check: tools/torch_check.c lm.h
	$(CC) $(WARN) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

tools/torch_check_scalar: tools/torch_check.c lm.h
	$(CC) $(WARN) $(CFLAGS) -DLM_NO_SIMD -I. $< -o $@ $(LDLIBS)

tools/lm_scalar: tools/lm.c lm.h
	$(CC) $(WARN) $(CFLAGS) -DLM_NO_SIMD -I. $< -o $@ $(LDLIBS)

test-torch: lm $(TORCH_BINS)
	$(TORCH_PYTHON) tools/torch_check.py --run simd tools/torch_check ./lm \
	    --run scalar tools/torch_check_scalar tools/lm_scalar


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

clean:
	rm -f lm lm_test lm_test_aarch64 lm_test_armhf lm_test_scalar $(EXAMPLES) $(TORCH_BINS) lm2c \
	    demo.safetensors demo.safetensors.state
	rm -rf examples/cortex_m/build

.PHONY: all test demo clean compile-check test-arm test-torch test-cortex-m
