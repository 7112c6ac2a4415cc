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

# The README's first command: a byte-level GPT trained on lm.h's own source (every checkout
# has it), its progress and falling loss, a loss curve (demo.svg), then a sample.
demo: lm
	./lm train --data lm.h --model demo.safetensors --steps 1000 --eval-every 200 \
	    --val-frac 0.1 --log demo.csv --plot demo.svg
	./lm generate --model demo.safetensors --prompt "static " --tokens 400 --temperature 0.7
	@echo
	@echo "(loss curve: demo.svg)"

clean:
	rm -f lm lm_test lm_test_aarch64 lm_test_armhf lm_test_scalar $(EXAMPLES) $(TORCH_BINS) lm2c \
	    demo.safetensors demo.safetensors.state demo.csv demo.svg
	rm -rf examples/cortex_m/build $(SAN_CLEAN)

.PHONY: all test demo clean compile-check test-arm test-torch test-cortex-m test-asan test-valgrind fuzz
