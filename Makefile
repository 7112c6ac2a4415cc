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

# The header compiles warning-free as C99 with gcc and clang, as C++, with tcc, and with
# each config macro; two translation units link (implementation in one only).
CHECK_DEFS = "" "-DLM_NO_SIMD" "-DLM_NO_THREADS" "-DLM_NO_STDIO" "-DLM_STATIC"
compile-check:
	@set -e; for cc in gcc clang; do for d in $(CHECK_DEFS); do \
	  echo "$$cc $$d"; \
	  $$cc -std=c99 -Wall -Wextra -pedantic -Werror -O1 -march=native $$d -I. tests/compile_a.c tests/compile_b.c -o /tmp/lm_compile_check -lm -lpthread; \
	  /tmp/lm_compile_check; done; done
	@set -e; for d in $(CHECK_DEFS); do echo "g++ -x c++ $$d"; \
	  g++ -x c++ -Wall -Wextra -Werror -O1 -march=native $$d -I. tests/compile_a.c tests/compile_b.c -o /tmp/lm_compile_check -lm -lpthread; done
	@if command -v tcc >/dev/null; then echo tcc; tcc -I. tests/compile_a.c tests/compile_b.c -o /tmp/lm_compile_check -lm -lpthread && /tmp/lm_compile_check; fi
	@rm -f /tmp/lm_compile_check

clean:
	rm -f lm lm_test $(EXAMPLES) demo.safetensors demo.safetensors.state

.PHONY: all test demo clean compile-check
