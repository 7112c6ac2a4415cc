#!/usr/bin/python3
"""tools/bench_mpi.py - data-parallel training on this machine, and on paper on a cluster.

    make lm lm-mpi && /usr/bin/python3 tools/bench_mpi.py [--reps 5] [--steps 3]

1. The small GPT (6 layers x 384, context 256, vocabulary 256, micro-batches of 8 rows),
   one step of 16 rows, three ways, alternated --reps times (the machine is shared: the
   medians and spreads are what to read):
     one   ./lm bench train --accum 2 --threads 2: one process, 2 threads, 2 micro-batches
           (what `lm train --accum 2` does: the bit-for-bit twin of two)
     two   mpirun -np 2 ./lm-mpi bench train --threads 1: two processes of one thread, one
           micro-batch each, exchanging the gradient over shared memory
     big   ./lm bench train --batch 16 --threads 2: one batch of 16 rows (not the same
           bits; how fast one process does the same work in one piece)
   and prints two's step against one's (the target is at most 1.15), how two's step
   divides between computing, waiting for the slower process, exchanging the gradient and
   updating, and the exchange's rate.
2. GPT-2 124M (12 x 768, context 1024, vocabulary 50257): the compute of one micro-batch
   of one row on 2 threads, and the update, measured once (--no-gpt2 skips it; about two
   minutes).
3. A table of step times for 8 and 64 machines like this one on 10 and 100 Gb/s links,
   COMPUTED (not measured) from the measured compute and update per machine and the
   chain's cost model (tools/lm_mpi.h): K chunks of c bytes (the same sizing rule as
   lm-mpi), each taking c / bandwidth + latency, 2K + 2P chunk times for P >= 3 ranks.
   Latency per message: 30 us at 10 Gb/s (TCP), 5 us at 100 Gb/s (RDMA), assumed.
"""
import argparse
import os
import statistics
import subprocess
import sys

SMALL = ["--layers", "6", "--heads", "6", "--embd", "384", "--ctx", "256", "--vocab", "256",
         "--batch", "8"]
GPT2 = ["--layers", "12", "--heads", "12", "--embd", "768", "--ctx", "1024", "--vocab", "50257",
        "--batch", "1"]


def run(cmd):
    load = os.getloadavg()[0]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    last = p.stdout.strip().splitlines()[-1].split()
    vals = {last[i]: float(last[i + 1]) for i in range(0, len(last) - 1, 2)}
    vals["load"] = load
    return vals


def med(xs):
    return statistics.median(xs)


def spread(xs):
    return f"{min(xs):.0f}-{max(xs):.0f}"


def chain_seconds(n_params, P, gbps, latency):
    """The exchange's cost model of tools/lm_mpi.h (team_chunk and team_chain)."""
    if P == 1:
        return 0.0
    ch = n_params // (8 * P)
    ch = (ch + 16383) // 16384 * 16384
    ch = min(max(ch, 16384), 262144)
    K = -(-n_params // ch)
    t_chunk = 4.0 * ch / (gbps * 1e9 / 8) + latency
    return (K + 2 if P == 2 else 2 * K + 2 * P) * t_chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lm", default="./lm")
    ap.add_argument("--lm-mpi", default="./lm-mpi")
    ap.add_argument("--mpirun", default="mpirun --oversubscribe" +
                    (" --allow-run-as-root" if os.geteuid() == 0 else ""))
    ap.add_argument("--no-gpt2", action="store_true")
    a = ap.parse_args()
    steps = ["--steps", str(a.steps)]
    res = {"one": [], "two": [], "big": []}
    for rep in range(a.reps):
        res["one"].append(run([a.lm, "bench", "train"] + SMALL + steps + ["--accum", "2", "--threads", "2"]))
        res["two"].append(run(a.mpirun.split() + ["-np", "2", a.lm_mpi, "bench", "train"] + SMALL + steps +
                              ["--threads", "1"]))
        b = SMALL[:-1] + ["16"]
        res["big"].append(run([a.lm, "bench", "train"] + b + steps + ["--threads", "2"]))
        print(f"rep {rep + 1}: one {res['one'][-1]['ms_per_step']:.0f} ms, two "
              f"{res['two'][-1]['ms_per_step']:.0f} ms (wait {res['two'][-1].get('wait_ms', 0):.0f}, "
              f"exchange {res['two'][-1]['exchange_ms']:.0f}), "
              f"big {res['big'][-1]['ms_per_step']:.0f} ms; load {res['one'][-1]['load']:.2f} "
              f"{res['two'][-1]['load']:.2f} {res['big'][-1]['load']:.2f}", flush=True)
    one = [r["ms_per_step"] for r in res["one"]]
    two = [r["ms_per_step"] for r in res["two"]]
    big = [r["ms_per_step"] for r in res["big"]]
    ratios = [t / o for t, o in zip(two, one)]
    ex = [r["exchange_ms"] for r in res["two"]]
    wt = [r.get("wait_ms", 0) for r in res["two"]]
    co = [r["compute_ms"] for r in res["two"]]
    up = [r["update_ms"] for r in res["two"]]
    sent = res["two"][0]["sent_mb"]
    loads = [r["load"] for k in res for r in res[k]]
    print()
    print(f"small GPT, a step of 16 rows of 256 tokens, medians of {a.reps} runs of {a.steps} "
          f"steps (load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores):")
    print(f"  one process x 2 threads, --accum 2   {med(one):8.0f} ms/step  ({spread(one)})")
    print(f"  2 processes x 1 thread (lm-mpi)      {med(two):8.0f} ms/step  ({spread(two)})")
    print(f"    rank 0: compute {med(co):.0f} ms, waiting for rank 1 {med(wt):.0f} ms, exchange "
          f"{med(ex):.0f} ms ({spread(ex)}; {100 * med(ex) / med(two):.1f}% of the step), "
          f"update {med(up):.0f} ms")
    print(f"    {sent:.1f} MB sent and received by each process a step: "
          f"{sent / med(ex) :.2f} GB/s each way over shared memory, waits included")
    print(f"  one process x 2 threads, --batch 16  {med(big):8.0f} ms/step  ({spread(big)})")
    print(f"  2 processes / one process: median of the paired ratios {med(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f}); target <= 1.15")

    # the compute and update of one machine, per micro-batch, for the projection
    node = {"small GPT (10.8M)": (med([r["compute_ms"] for r in res["one"]]) / 2 / 1e3,
                                  med([r["update_ms"] for r in res["one"]]) / 1e3, 10844160, 8 * 256)}
    if not a.no_gpt2:
        g = run([a.lm, "bench", "train"] + GPT2 + ["--steps", "1", "--accum", "2", "--threads", "2"])
        print(f"GPT-2 124M, 2 micro-batches of 1 x 1024 on 2 threads: compute {g['compute_ms']:.0f} ms, "
              f"update {g['update_ms']:.0f} ms (load {g['load']:.2f})")
        node["GPT-2 124M"] = (g["compute_ms"] / 2 / 1e3, g["update_ms"] / 1e3, 12 * 768 * 768 * 12 + 12 * 13 * 768 + 50257 * 768 + 1024 * 768 + 2 * 768, 1024)
    print()
    print("COMPUTED step times (not measured): P machines like this one, one micro-batch each,")
    print("compute and update as measured here, the chain's exchange at the link's full rate:")
    print("| model | machines | link | compute | exchange | update | step | tokens/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (c, u, n, tok) in node.items():
        for P in (1, 8, 64):
            for gbps, lat in ((10, 30e-6), (100, 5e-6)):
                if P == 1 and gbps == 100:
                    continue
                e = chain_seconds(n, P, gbps, lat)
                step = c + e + u
                link = "-" if P == 1 else f"{gbps} Gb/s"
                print(f"| {name} | {P} | {link} | {c:.2f} s | {e:.3f} s | {u:.3f} s | {step:.2f} s | "
                      f"{P * tok / step:,.0f} |")


if __name__ == "__main__":
    main()
