#!/bin/sh
# tests/cortex_m.sh - text generation on a Cortex-M4F under emulation (make test-cortex-m).
#
#   1. build ./lm and tools/lm2c;
#   2. train a small byte-level GPT on lm.h (a few seconds of CPU);
#   3. export it as C with lm2c, and check the export bit for bit against the checkpoint
#      (examples/cortex_m/check_model.c);
#   4. build examples/cortex_m/generate.c twice from the same source: for the host, and for
#      a Cortex-M4F (arm-none-eabi-gcc, newlib, no malloc, no threads, no stdio);
#   5. run both - the Cortex-M one under qemu-system-arm (mps2-an386, semihosting) - with
#      greedy decoding from the same prompt, and require the same bytes - and the same
#      bits in every logit of the first n_ctx positions;
#   6. the same for the low-RAM variant (-DCM_LOW_RAM: lm_gpt_step_token only);
#   7. quantize the model (lm quantize --quantize-embeddings: Q8_0 block matrices and
#      wte), export and check it the same way, and run 5 and 6 again on it: the Cortex-M4
#      and the host's quantized model must agree bit for bit too;
#   8. compare flash and RAM of the float32 and Q8_0 programs: the Q8_0 weights must take
#      at most 0.35 of the float32 weights' flash (the code, the same in both, is shown
#      beside).
# It prints the flash and RAM each image takes and what the emulated runs wrote.
# Exit status 0 when everything matches, 1 otherwise. Set LM_KEEP=1 to keep the build
# directory. Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm.
set -u
cd "$(dirname "$0")/.." || exit 1
MAKE=${MAKE:-make}

fail() { echo "test-cortex-m: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

for tool in cc arm-none-eabi-gcc arm-none-eabi-size arm-none-eabi-nm qemu-system-arm timeout cmp; do
    command -v "$tool" >/dev/null 2>&1 ||
        fail "'$tool' not found (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
done

B=$(mktemp -d "${TMPDIR:-/tmp}/lm_cortex_m.XXXXXX") || fail "mktemp"
if [ -n "${LM_KEEP:-}" ]; then echo "build directory: $B"; else trap 'rm -rf "$B"' EXIT; fi
trap 'exit 1' INT TERM

step "1. build ./lm and lm2c"
$MAKE -s lm || fail "make lm"
cc -O2 -I. tools/lm2c.c -o "$B/lm2c" -lm || fail "building tools/lm2c.c"

# 2 layers of width 64, context 64: 120k parameters, 480 KB of weights in flash.
step "2. train a 2-layer GPT (width 64, context 64) on lm.h, 300 steps"
t0=$(date +%s)
./lm train --data lm.h --layers 2 --heads 2 --embd 64 --ctx 64 --batch 8 --steps 300 \
    --lr 3e-3 --warmup 30 --val-frac 0 --eval-every 0 --seed 1337 --quiet \
    --model "$B/cm.safetensors" || fail "lm train"
echo "   trained in $(( $(date +%s) - t0 )) s"

step "3. export with lm2c, check the export against the checkpoint"
"$B/lm2c" "$B/cm.safetensors" "$B/model.h" || fail "lm2c"
$MAKE -s -C examples/cortex_m OUT="$B" MODEL="$B/model.h" "$B/check_model" >"$B/build.log" 2>&1 ||
    { cat "$B/build.log"; fail "building examples/cortex_m/check_model.c"; }
"$B/check_model" "$B/cm.safetensors" || fail "model.h is not the checkpoint (check_model)"

step "4. build the host and the Cortex-M4F programs (lm_gpt_generate, and one token at a time)"
$MAKE -s -C examples/cortex_m OUT="$B" MODEL="$B/model.h" all >>"$B/build.log" 2>&1 ||
    { cat "$B/build.log"; fail "building examples/cortex_m"; }
# compiler warnings (the build is -Wall -Wextra -pedantic), one line each
grep "warning:" "$B/build.log" | sort -u | sed 's/^/   /'

# image_bytes DIR: the bytes of const weights in DIR/model.h
image_bytes() {
    n=$(sed -n 's/^#define MODEL_N_FLOATS \([0-9]*\)$/\1/p' "$1/model.h")
    if [ -n "$n" ]; then echo $((n * 4)); else sed -n 's/^#define MODEL_IMAGE_BYTES \([0-9]*\)$/\1/p' "$1/model.h"; fi
}

# run_pair DIR NAME: run DIR/NAME_host and DIR/NAME.elf (under qemu), show and compare;
# DIR/NAME.mem gets "flash RAM" in bytes.
run_pair() {
    D=$1
    shift
    weights=$(image_bytes "$D")
    "$D/$1_host" >"$D/$1.host.out" 2>"$D/$1.host.err" || { cat "$D/$1.host.err"; fail "$1: host run"; }
    t0=$(date +%s)
    timeout 600 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic -monitor none \
        -semihosting-config enable=on,target=native -kernel "$D/$1.elf" \
        >"$D/$1.target.out" 2>"$D/$1.target.err"
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    [ $rc -eq 124 ] && fail "$1: qemu did not finish within 600 s"

    echo "-- $1: emulated Cortex-M4 output (stdout; ${secs} s under qemu, exit status $rc):"
    cat "$D/$1.target.out"
    echo "-- its report (stderr):"
    sed 's/^/   /' "$D/$1.target.err"
    echo "-- memory (arm-none-eabi-size; flash = text + data, RAM = data + bss + the stack used):"
    arm-none-eabi-size "$D/$1.elf" | sed 's/^/   /'
    stack=$(sed -n 's/^stack: \([0-9]*\) bytes used.*/\1/p' "$D/$1.target.err")
    arm-none-eabi-size "$D/$1.elf" | awk -v w="$weights" -v st="${stack:-0}" 'NR == 2 {
        printf "   flash %d bytes (%.1f KB), of which weights %d bytes\n", $1 + $2, ($1 + $2) / 1024, w
        printf "   RAM %d bytes static + %d bytes of stack at most = %.1f KB\n",
               $2 + $3, st, ($2 + $3 + st) / 1024 }'
    arm-none-eabi-size "$D/$1.elf" | awk -v st="${stack:-0}" 'NR == 2 { print $1 + $2, $2 + $3 + st }' >"$D/$1.mem"
    if arm-none-eabi-nm "$D/$1.elf" | grep -qw malloc; then
        echo "   newlib's malloc is linked in (lm.h does not call it: see 'malloc calls' above)"
    else
        echo "   no malloc linked in at all"
    fi

    [ $rc -eq 0 ] || fail "$1: the Cortex-M run exited with status $rc"
    grep -q "may have overflowed" "$D/$1.target.err" && fail "$1: the stack overflowed"
    if ! cmp -s "$D/$1.host.out" "$D/$1.target.out"; then
        echo "-- $1: host output:"; cat "$D/$1.host.out"
        fail "$1: host and Cortex-M outputs differ"
    fi
    echo "-- $1: host and Cortex-M4 outputs are identical ($(wc -c <"$D/$1.host.out") bytes)"

    # The logits, bit for bit: the same float operations in the same order give the same
    # bits on both (lm.h computes exp and tanh itself, so no libm difference comes in).
    hh=$(sed -n 's/^logits-hash: \([0-9a-f]*\).*/\1/p' "$D/$1.host.err")
    th=$(sed -n 's/^logits-hash: \([0-9a-f]*\).*/\1/p' "$D/$1.target.err")
    [ -n "$hh" ] && [ "$hh" = "$th" ] ||
        fail "$1: the logits differ in their bits (hash $hh on the host, $th on the Cortex-M):" \
             "a libm call, a fused multiply-add or another order of summation on one side"
    echo "-- $1: logits bit-identical too (hash $hh over the first n_ctx positions)"
}

step "5. lm_gpt_generate: run on both, greedy, and compare"
run_pair "$B" generate
step "6. one token at a time (CM_LOW_RAM): run on both, greedy, and compare"
run_pair "$B" generate_lowram

step "7. Q8_0: lm quantize --quantize-embeddings, export, check, run 5 and 6 again"
Q="$B/q8"
mkdir -p "$Q" || fail "mkdir"
./lm quantize --model "$B/cm.safetensors" --out "$B/cm_q8.safetensors" --quantize-embeddings \
    >"$Q/quantize.out" || fail "lm quantize"
sed 's/^/   /' "$Q/quantize.out"
"$B/lm2c" "$B/cm_q8.safetensors" "$Q/model.h" || fail "lm2c (Q8_0)"
$MAKE -s -C examples/cortex_m OUT="$Q" MODEL="$Q/model.h" "$Q/check_model" >"$Q/build.log" 2>&1 ||
    { cat "$Q/build.log"; fail "building check_model (Q8_0)"; }
"$Q/check_model" "$B/cm_q8.safetensors" || fail "the Q8_0 model.h is not the checkpoint (check_model)"
$MAKE -s -C examples/cortex_m OUT="$Q" MODEL="$Q/model.h" all >>"$Q/build.log" 2>&1 ||
    { cat "$Q/build.log"; fail "building examples/cortex_m (Q8_0)"; }
grep "warning:" "$Q/build.log" | sort -u | sed 's/^/   /'
run_pair "$Q" generate
run_pair "$Q" generate_lowram

step "8. flash and RAM: float32 and Q8_0"
w32=$(image_bytes "$B")
w8=$(image_bytes "$Q")
awk -v a="$w32" -v b="$w8" 'BEGIN { printf "   weights in flash: float32 %d bytes (%.1f KB), Q8_0 %d bytes (%.1f KB): %.3f of float32 (at most 0.35)\n",
                                    a, a / 1024, b, b / 1024, b / a }'
for v in generate generate_lowram; do
    read -r f32_flash f32_ram <"$B/$v.mem"
    read -r q8_flash q8_ram <"$Q/$v.mem"
    awk -v v="$v" -v ff="$f32_flash" -v fr="$f32_ram" -v qf="$q8_flash" -v qr="$q8_ram" -v w="$w32" 'BEGIN {
        printf "   %-16s float32: flash %6.1f KB, RAM %6.1f KB; Q8_0: flash %6.1f KB, RAM %6.1f KB; whole flash %.3f of float32 (code and constants %.1f KB in both)\n",
               v, ff / 1024, fr / 1024, qf / 1024, qr / 1024, qf / ff, (ff - w) / 1024 }'
done
awk -v a="$w32" -v b="$w8" 'BEGIN { exit !(b > 0 && b <= 0.35 * a) }' ||
    fail "the Q8_0 weights take more than 0.35 of the float32 weights' flash"
echo "test-cortex-m: OK"
