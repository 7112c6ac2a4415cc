#!/bin/sh
# tests/valgrind.sh - the `lm` command line under valgrind's memcheck (make test-valgrind).
#
#   tests/valgrind.sh ./lm_vg
#
# Runs each subcommand once on tiny inputs, each under memcheck with --error-exitcode=1 and
# a full leak check: BPE training, a few training steps (with a BPE tokenizer, 2 threads,
# a CSV log and a checkpoint), a resumed run, eval, info, generate (greedy and sampled),
# tokenize and detokenize, the encoder-decoder's train, resume, eval and translate (greedy
# and beam, --text and stdin), and runs that fail (a missing file, a bad checkpoint). A
# run that must fail still must not touch bad memory: only its exit status differs.
# The text is the LICENSE file, so nothing has to be generated. Stops at the first error.
set -eu
LM=${1:-./lm_vg}
VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
DIR=$(mktemp -d /tmp/lm_vg_XXXXXX)
trap 'rm -rf "$DIR"' EXIT
TEXT=LICENSE
TINY="--layers 1 --heads 2 --embd 16 --ctx 16 --batch 2"

# run WANT_STATUS ARGS...: memcheck clean, and the exit status as wanted
run() {
    want=$1
    shift
    echo "valgrind: lm $*"
    set +e
    $VG "$LM" "$@" >"$DIR/out" 2>"$DIR/err"
    rc=$?
    set -e
    if [ "$rc" -eq 99 ]; then
        cat "$DIR/err"
        echo "valgrind: memcheck found errors in: lm $*"
        exit 1
    fi
    if [ "$rc" -ne "$want" ]; then
        cat "$DIR/err"
        echo "valgrind: lm $* exited $rc, expected $want"
        exit 1
    fi
}

run 0 bpe --data "$TEXT" --vocab 300 --out "$DIR/tok.bpe" --threads 1
run 0 train --data "$TEXT" --model "$DIR/m.safetensors" $TINY --steps 3 --warmup 1 \
    --eval-every 2 --save-every 2 --val-frac 0.2 --log "$DIR/log.csv" --tokenizer "$DIR/tok.bpe" \
    --threads 2 --quiet
run 0 train --data "$TEXT" --resume "$DIR/m.safetensors" --model "$DIR/m.safetensors" $TINY \
    --steps 4 --warmup 1 --eval-every 2 --save-every 2 --val-frac 0.2 --log "$DIR/log.csv" \
    --tokenizer "$DIR/tok.bpe" --threads 1 --quiet
run 0 train --data "$TEXT" --model "$DIR/a.safetensors" $TINY --steps 2 --warmup 1 --accum 3 \
    --threads 2 --quiet
run 0 eval --model "$DIR/m.safetensors" --data "$TEXT" --ctx 8 --tokenizer "$DIR/tok.bpe" --threads 2
run 0 info --model "$DIR/m.safetensors"
run 0 generate --model "$DIR/m.safetensors" --tokenizer "$DIR/tok.bpe" --prompt "The " \
    --tokens 20 --temperature 0 --threads 1
run 0 generate --model "$DIR/m.safetensors" --tokenizer "$DIR/tok.bpe" --prompt "" \
    --tokens 20 --temperature 0.9 --top-k 10 --top-p 0.9 --seed 5 --threads 2
run 0 tokenize --tokenizer "$DIR/tok.bpe" --text "Permission is hereby granted, free of charge"
cp "$DIR/out" "$DIR/ids"
set +e
$VG "$LM" detokenize --tokenizer "$DIR/tok.bpe" <"$DIR/ids" >"$DIR/out" 2>"$DIR/err"
rc=$?
set -e
echo "valgrind: lm detokenize --tokenizer tok.bpe < ids"
if [ "$rc" -ne 0 ] || [ "$(cat "$DIR/out")" != "Permission is hereby granted, free of charge" ]; then
    cat "$DIR/err"
    echo "valgrind: detokenize failed (exit $rc) or did not give the text back"
    exit 1
fi
printf 'abc\tcba\nhello\tolleh\nlicense\tesnecil\nmit\ttim\r\n\nfree\teerf\n' >"$DIR/pairs.tsv"
S2S="--layers 1 --enc-layers 2 --heads 2 --embd 16 --ff 24 --ctx 12 --batch 3"
run 0 s2s train --data "$DIR/pairs.tsv" --model "$DIR/s.safetensors" $S2S --steps 3 --warmup 1 \
    --eval-every 2 --val-frac 0.4 --dropout 0.1 --log "$DIR/s.csv" --tokenizer "$DIR/tok.bpe" \
    --threads 2 --quiet
run 0 s2s train --data "$DIR/pairs.tsv" --resume "$DIR/s.safetensors" --model "$DIR/s.safetensors" \
    $S2S --steps 4 --warmup 1 --eval-every 2 --val-frac 0.4 --dropout 0.1 --log "$DIR/s.csv" \
    --tokenizer "$DIR/tok.bpe" --norm-first --activation gelu --threads 1 --quiet
run 0 s2s eval --model "$DIR/s.safetensors" --data "$DIR/pairs.tsv" --tokenizer "$DIR/tok.bpe" --beam 2
run 0 s2s translate --model "$DIR/s.safetensors" --text "hello" --tokenizer "$DIR/tok.bpe" --stats
set +e
printf 'abc\n\nfree\r\n' | $VG "$LM" s2s translate --model "$DIR/s.safetensors" --tokenizer "$DIR/tok.bpe" \
    --beam 3 --threads 2 >"$DIR/out" 2>"$DIR/err"
rc=$?
set -e
echo "valgrind: lm s2s translate --beam 3 < 3 lines"
if [ "$rc" -ne 0 ] || [ "$(wc -l <"$DIR/out")" -ne 3 ]; then
    cat "$DIR/err"
    echo "valgrind: s2s translate failed (exit $rc) or did not give one line per source"
    exit 1
fi
run 1 s2s translate --model "$DIR/m.safetensors" --text abc
run 0 quantize --model "$DIR/m.safetensors" --out "$DIR/q.safetensors" --quantize-embeddings --threads 2
run 0 eval --model "$DIR/q.safetensors" --data "$TEXT" --ctx 8 --tokenizer "$DIR/tok.bpe" --threads 2
run 0 generate --model "$DIR/q.safetensors" --tokenizer "$DIR/tok.bpe" --prompt "The " \
    --tokens 20 --temperature 0 --threads 2
run 0 prune --model "$DIR/m.safetensors" --sparsity 0.5 --out "$DIR/p.safetensors" --threads 1
run 0 train --data "$TEXT" --init "$DIR/p.safetensors" --model "$DIR/p2.safetensors" --batch 2 \
    --steps 2 --warmup 1 --eval-every 0 --keep-zeros --tokenizer "$DIR/tok.bpe" --threads 2 --quiet
printf 'not a checkpoint\n' >"$DIR/junk.safetensors"
run 1 info --model "$DIR/junk.safetensors"
run 1 eval --model "$DIR/missing.safetensors" --data "$TEXT"
run 2 train --data "$TEXT" --steps 12abc
echo "valgrind: the command line is clean"
