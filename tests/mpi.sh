#!/bin/sh
# tests/mpi.sh - lm-mpi against lm (make test-mpi). Needs mpirun (Debian: openmpi-bin).
#
#   tests/mpi.sh ./lm ./lm-mpi
#
# The contract (README.md, "Training on several machines"): `mpirun -np P lm-mpi train ...
# --accum A` ends with exactly the checkpoint, resume state and loss log of `lm train ...
# --accum P*A`. Checked here on a tiny model for a few hundred steps:
#   - P = 1, 2, 3 with A = 1 and 2 (random order), and P = 3 in sequential order: the
#     checkpoint and state files byte for byte, and the log's step, loss, lr and val_loss
#     columns (the other two are timings);
#   - lm-mpi eval (the windows shared out) prints what lm eval prints;
#   - a run of 2 processes resumed by 3 (and the same number of micro-batches a step) ends
#     as the uninterrupted single process, log included;
#   - SIGTERM to mpirun mid-run, or to rank 0: rank 0 saves the last whole step at once,
#     and resuming from there (with another P) ends as the uninterrupted run;
#   - a rank killed (SIGKILL) mid-run: mpirun fails and says so, and the last checkpoint
#     loads and resumes;
#   - only rank 0 speaks: usage errors and progress once, not once per process.
# Last line: N passed, M failed (exit status 1 if any failed).
set -u
LM=${1:-./lm}
LMMPI=${2:-./lm-mpi}
MPIRUN="mpirun --oversubscribe"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
DIR=$(mktemp -d /tmp/lm_mpi_XXXXXX)
trap 'rm -rf "$DIR"' EXIT
pass=0
fail=0
check() { # check WHAT COMMAND...: the command's success is the check's
    what=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL mpi: $what"; fi
}
mpi() { # mpi P ARGS...: lm-mpi on P processes
    p=$1
    shift
    $MPIRUN -np "$p" "$LMMPI" "$@"
}
# same A B: checkpoints, states and logs (step, loss, lr, val_loss) of runs A and B agree
same() {
    cmp -s "$DIR/$1.safetensors" "$DIR/$2.safetensors" &&
    cmp -s "$DIR/$1.safetensors.state" "$DIR/$2.safetensors.state" &&
    cut -d, -f1,2,3,5 "$DIR/$1.csv" >"$DIR/$1.cols" &&
    cut -d, -f1,2,3,5 "$DIR/$2.csv" >"$DIR/$2.cols" &&
    cmp -s "$DIR/$1.cols" "$DIR/$2.cols" &&
    [ "$(wc -l <"$DIR/$1.csv")" -gt 100 ]
}
# lm.h's own text: every checkout has it. The model has 118k parameters: the gradient
# goes in 8 messages of 64 KB, more than the chain keeps in flight.
head -c 300000 lm.h >"$DIR/text.txt"
RUN="train --data $DIR/text.txt --layers 2 --heads 2 --embd 64 --ctx 32 --batch 3 --lr 3e-3 --warmup 20 --val-frac 0.1 --threads 1 --quiet"

echo "mpi: $("$LMMPI" version | head -n 1); $(mpirun --version 2>&1 | head -n 1)"
for A in 1 2; do
    for P in 1 2 3; do
        "$LM" $RUN --steps 300 --eval-every 100 --accum $((P * A)) --model "$DIR/one.safetensors" --log "$DIR/one.csv"
        mpi $P $RUN --steps 300 --eval-every 100 --accum $A --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv"
        check "$P processes x --accum $A == lm --accum $((P * A)) (checkpoint, state, log)" same one mpi
    done
done
"$LM" $RUN --steps 200 --eval-every 100 --order sequential --accum 3 --model "$DIR/one.safetensors" --log "$DIR/one.csv"
mpi 3 $RUN --steps 200 --eval-every 100 --order sequential --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv"
check "sequential order: 3 processes == lm --accum 3" same one mpi
check "the log has validation losses" grep -Eq '^100,[^,]*,[^,]*,[0-9]' "$DIR/mpi.cols"

"$LM" eval --model "$DIR/one.safetensors" --data "$DIR/text.txt" --ctx 16 >"$DIR/eval1"
for P in 2 3; do
    mpi $P eval --model "$DIR/one.safetensors" --data "$DIR/text.txt" --ctx 16 --threads 1 >"$DIR/evalp"
    check "lm-mpi eval on $P processes prints lm eval's line" cmp -s "$DIR/eval1" "$DIR/evalp"
done

# resume with another P: constant schedule, so 150 steps then 150 more equal 300 straight
R="$RUN --schedule constant --eval-every 50"
"$LM" $R --steps 300 --accum 6 --model "$DIR/one.safetensors" --log "$DIR/one.csv"
mpi 2 $R --steps 150 --accum 3 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv"
mpi 3 $R --steps 300 --accum 2 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv" --resume "$DIR/mpi.safetensors"
check "2 processes, then resumed by 3 == one process straight (checkpoint, state, log)" same one mpi

# SIGTERM to mpirun: rank 0 saves the last whole step; a resume by 3 processes (and
# lm itself) finishes as the uninterrupted run
S="$RUN --eval-every 0 --steps 1500"
"$LM" $S --accum 6 --model "$DIR/one.safetensors" --log "$DIR/one.csv"
rm -f "$DIR"/mpi.*
$MPIRUN -np 2 "$LMMPI" $S --accum 3 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv" 2>"$DIR/err" &
pid=$!
n=0
while [ $n -lt 1000 ] && [ "$(cat "$DIR/mpi.csv" 2>/dev/null | wc -l)" -lt 40 ]; do sleep 0.02; n=$((n + 1)); done
kill -TERM $pid
wait $pid
rc=$?
rows=$(($(wc -l <"$DIR/mpi.csv") - 1))
check "SIGTERM to mpirun: mpirun fails" [ $rc -ne 0 ]
check "SIGTERM: rank 0 says it saved" grep -q "stopped by SIGTERM after step $rows/1500; saved" "$DIR/err"
check "SIGTERM: stopped mid-run" [ "$rows" -ge 39 -a "$rows" -lt 1500 ]
mpi 3 $S --accum 2 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv" --resume "$DIR/mpi.safetensors"
check "SIGTERM, then resumed by 3 processes == uninterrupted" same one mpi

# SIGTERM to rank 0 itself: it saves (in its own time), and mpirun ends with its status
rm -f "$DIR"/mpi.*
$MPIRUN -np 3 "$LMMPI" $S --accum 2 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv" 2>"$DIR/err" &
pid=$!
n=0
while [ $n -lt 1000 ] && [ "$(cat "$DIR/mpi.csv" 2>/dev/null | wc -l)" -lt 40 ]; do sleep 0.02; n=$((n + 1)); done
for p in $(pgrep -f "$DIR/mpi.safetensors"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=0'; then kill -TERM "$p"; fi
done
wait $pid
rc=$?
check "SIGTERM to rank 0: mpirun exits 143" [ $rc -eq 143 ]
check "SIGTERM to rank 0: it says it saved" grep -q "stopped by SIGTERM after step .*; saved" "$DIR/err"
"$LM" $S --accum 6 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv" --resume "$DIR/mpi.safetensors"
check "SIGTERM to rank 0, then resumed by lm == uninterrupted" same one mpi

# a rank killed: mpirun fails and names it; the last checkpoint loads and resumes
rm -f "$DIR"/mpi.*
$MPIRUN -np 3 "$LMMPI" $S --accum 2 --save-every 10 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv" 2>"$DIR/err" &
pid=$!
n=0
while [ $n -lt 1000 ] && [ "$(cat "$DIR/mpi.csv" 2>/dev/null | wc -l)" -lt 40 ]; do sleep 0.02; n=$((n + 1)); done
for p in $(pgrep -f "$DIR/mpi.safetensors"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then kill -KILL "$p"; fi
done
wait $pid
rc=$?
check "a rank killed: mpirun fails" [ $rc -ne 0 ]
check "a rank killed: mpirun says which (signal 9)" grep -q "rank 1 .*signal 9" "$DIR/err"
check "a rank killed: the checkpoint loads" "$LM" eval --model "$DIR/mpi.safetensors" --data "$DIR/text.txt" --ctx 16 >/dev/null
"$LM" $S --accum 6 --model "$DIR/mpi.safetensors" --log "$DIR/mpi.csv" --resume "$DIR/mpi.safetensors"
check "a rank killed: resumed by lm == uninterrupted" same one mpi

# only rank 0 speaks
mpi 3 generate --model "$DIR/one.safetensors" >"$DIR/out" 2>"$DIR/err"
rc=$?
check "lm-mpi generate on 3 processes: a usage error, said once" \
    [ $rc -ne 0 -a "$(grep -c 'lm-mpi generate: runs on one process only' "$DIR/err")" -eq 1 ]
mpi 3 train --data "$DIR/text.txt" --accum 0 2>"$DIR/err"
check "a bad --accum on 3 processes: said once" [ "$(grep -c '^lm-mpi train: --accum' "$DIR/err")" -eq 1 ]
mpi 2 $RUN --steps 100 --eval-every 50 --model "$DIR/mpi.safetensors" --plot "$DIR/mpi.svg" 2>"$DIR/err"
check "the final summary once" [ "$(grep -c 'steps in' "$DIR/err")" -eq 1 ]
check "--plot: rank 0 draws the curves" grep -q '</svg>' "$DIR/mpi.svg"
mpi 2 train --help >"$DIR/out"
"$LM" train --help >"$DIR/out1"
check "--help printed once" cmp -s "$DIR/out" "$DIR/out1"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
