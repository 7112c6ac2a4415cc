#!/usr/bin/python3
"""bench.py - `make bench`: lm.h against OpenBLAS (GEMM) and PyTorch (training, generation),
measured in one run on the same machine, with the ratios and the targets of issue 6.

    /usr/bin/python3 tools/bench.py [--only gemm,train,generate,shakespeare,q8] [--reps 3]
                                    [--quick] [--gemm-cputime] [--shakespeare FILE]
                                    [--lm ./lm] [--out out/bench.txt]

Needs the binaries of `make bench`: ./lm, out/bench_gemm (lm.h), out/bench_gemm_avx2 (lm.h
built for AVX2 + FMA alone, as most x86 machines run it) and out/bench_gemm_openblas (the
same harness calling cblas_sgemm of Debian's libopenblas), and Debian's python3-torch,
hence /usr/bin/python3 (a venv python3 does not see it).

What is measured, each in a fresh process:
  OpenBLAS  which kernel Debian's OpenBLAS (built with DYNAMIC_ARCH) really runs: first with
            OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, its own choice from the CPUID, then
            with each AVX-512 kernel forced (SkylakeX, Cooperlake). On a CPU model it does
            not know - a recent Xeon in a VM - its own choice can be the old SSE3 kernel
            "Prescott", several times slower; comparing against that would flatter lm.h.
            So the comparisons below are against the fastest kernel ("OpenBLAS best"), and
            PyTorch runs with both the automatic and the fastest kernel, keeping its best.
  GEMM      GFLOP/s of tools/bench_gemm.c (median of 7 timings) for lm.h and each OpenBLAS
            kernel, at 1 and 2 threads; and lm.h's AVX2 build against OpenBLAS's Haswell
            kernel (OPENBLAS_CORETYPE=Haswell, AVX2 + FMA), 1 thread.
  train     ms per step of `lm bench train` (at 2 threads; 1 thread for information) and of
            tools/bench_torch.py at 1 and 2 threads; PyTorch's best is its fastest thread
            count and kernel. Peak RSS of each process (getrusage). Both figures are the median
            of the process's timed steps.
  generate  tokens/s of KV-cache generation from a one-token prompt, n_ctx - 1 tokens, for
            `lm bench generate` and bench_torch.py at 1 and 2 threads; best of each. Then
            the same as bytes of weights read per second (every weight is read once a
            token), against the machine's streaming bandwidth measured in the same run by
            `lm bench bandwidth` on 2 threads, over a buffer the size of the weights (the
            same level of the memory hierarchy; a 1 GB buffer, main memory, is shown too).
            Then lm.h's Q8_0 weights (`--quantize`) against its own float32 at 2 threads, the
            runs alternating, with the weight bytes a token reads over the time it takes,
            beside `lm bench bandwidth` on 2 threads (1 GB, and the weights' size) in the same runs.
  peak      the machine's peak, measured first: GFLOP/s of independent fused multiply-adds
            (`bench_gemm --peak`) in lm.h's build's widest vectors at 1 and 2 threads and in
            the AVX2 build at 1 thread (median of --reps). The GEMM rows and the small GPT's
            training (its matrix products' FLOPs a step, counted dense) are shown against it.
  shakespeare  the 2000-step Tiny Shakespeare run with 8 evaluations, wall time: `lm train`
            with its defaults (2 threads) against tools/train_torch.py, the same recipe,
            at 1 and 2 threads (best). Needs the text: --shakespeare FILE (the default
            looks in ../shared/data/ and ../../shared/data/; the row is skipped if absent).
Every configuration runs --reps times (the runs of lm and PyTorch interleaved, so a change
in the machine's load hits both alike) and the median is kept. PyTorch runs with
OMP_WAIT_POLICY=PASSIVE and OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = its thread count.

Each line of the log also shows "cpu N%": the CPU time the process got over its wall time
(100% = one core busy). Well below 100% per thread means the machine was shared and the
timings are inflated; the ratios are then noisy. The load average is printed too.
Benchmarks never run inside `make test`.
"""
import argparse
import datetime
import os
import platform
import re
import resource
import subprocess
import sys
import time

# the shapes and targets of issue 6
GEMM_SHAPES = [  # (M, N, K, B transposed)
    (2048, 1152, 384, False),
    (2048, 384, 1536, False),
    (2048, 1536, 384, True),
    (512, 512, 512, False),
]
SMALL = dict(layers=6, heads=6, embd=384, ctx=256, batch=8, vocab=256)
TINY = dict(layers=4, heads=4, embd=128, ctx=64, batch=16, vocab=256)
TORCH = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_torch.py")]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


class Log:
    """Print to the terminal and keep the text for the report file."""

    def __init__(self):
        self.lines = []

    def __call__(self, s=""):
        print(s, flush=True)
        self.lines.append(s)


log = Log()
shares = []  # the CPU share of every benchmark process, to judge how busy the machine was


def base_env():
    env = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "GOTO_NUM_THREADS",
              "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    return env


def run(cmd, env=None, tag=""):
    """Run one benchmark process; return (last stdout line as a dict of numbers, its stderr)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env or base_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    short = " ".join(os.path.basename(c) if i < 2 else c for i, c in enumerate(cmd))
    try:
        if p.returncode != 0:
            raise ValueError(f"exit status {p.returncode}")
        last = (p.stdout.strip().splitlines() or [""])[-1].split()
        vals = {last[i]: float(last[i + 1]) for i in range(0, len(last) - 1, 2)}
        if not vals:
            raise ValueError("no result line")
    except ValueError as e:
        log(f"  FAILED ({e}): {short}\n    {p.stderr.strip()[-400:]}")
        return None, p.stderr
    share = 100.0 * cpu / wall if wall > 0 else 0
    shares.append(share)
    short = (short + " " + tag).strip()
    log(f"  {short:<86} {' '.join(f'{k} {v:g}' for k, v in vals.items())}  (cpu {share:.0f}%)")
    return vals, p.stderr


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def openblas_config():
    """OpenBLAS's version and build, asked in a child process (loading it here would start
    its thread pool in this process for nothing)."""
    code = ("import ctypes; l = ctypes.CDLL('libopenblas.so.0'); "
            "l.openblas_get_config.restype = l.openblas_get_corename.restype = ctypes.c_char_p; "
            "print(l.openblas_get_config().decode(), '- automatic kernel:', "
            "l.openblas_get_corename().decode())")
    p = subprocess.run([sys.executable, "-c", code], env=base_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return p.stdout.strip() or "not found"


def torch_version():
    try:
        p = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return p.stdout.strip() or "not found"
    except OSError:
        return "not found"


def shape_args(cfg, keys):
    out = []
    for k in keys:
        out += [f"--{k}", str(cfg[k])]
    return out


# --------------------------------------------------------------------------------------
# the summary: one row per measurement, with the ratio and the target where there is one
summary = []


def row(what, lm, ref, ratio, target, unit, higher_is_better=True):
    if ratio is None or target is None:
        met = ""
    else:
        met = "yes" if (ratio >= target if higher_is_better else ratio <= target) else "NO"
    summary.append((what, lm, ref, ratio, target, unit, higher_is_better, met))


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def ratio_of(a, b):
    return a / b if (a is not None and b) else None


# --------------------------------------------------------------------------------------
# OpenBLAS's kernel. Debian's library is built with DYNAMIC_ARCH: it picks a kernel from the
# CPUID at load time, or the one OPENBLAS_CORETYPE names. On a CPU model it does not know
# (e.g. a recent Xeon in a VM) the automatic choice can fall back to an old SSE3 kernel
# ("Prescott"), several times slower than its AVX-512 ones. So OpenBLAS - and PyTorch, which
# calls it for its matrix products - is measured both with its automatic choice (the
# environment variables unset, as the issue asks) and with each AVX-512 kernel forced, and
# the comparison is against the fastest: "OpenBLAS's best kernel".
OB_CANDIDATES = [None, "SkylakeX", "Cooperlake"]  # None: OPENBLAS_CORETYPE unset


def ob_env(coretype, threads=None):
    env = base_env()
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    if threads:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def probe_openblas(a):
    """Which kernel each OpenBLAS setting really runs, and how fast (512^3, 1 thread, CPU
    time). Returns [(label, coretype, core, gflops)], one per distinct kernel, and sets
    a.torch_kernels: the automatic choice plus the fastest kernel, for PyTorch."""
    log(f"OpenBLAS kernels (512^3, 1 thread, timed by CPU time) (load average {loadavg()})")
    kernels = []
    for ct in OB_CANDIDATES:
        env = ob_env(ct, 1)
        env["OPENBLAS_VERBOSE"] = "2"  # prints "Core: NAME" to stderr
        tag = f"[OPENBLAS_CORETYPE={ct or '(unset)'}]"
        v, err = run([a.gemm_ob, "512", "512", "512", "--threads", "1", "--cputime"], env, tag)
        m = re.search(r"Core: (\S+)", err or "")
        core = m.group(1) if m else "?"
        if v is None or any(k[2] == core for k in kernels):
            continue
        label = f"{core} (auto)" if ct is None else core
        kernels.append((label, ct, core, v["gflops"]))
    if not kernels:
        sys.exit("bench.py: OpenBLAS does not run (is libopenblas-dev installed?)")
    log("  kernels: " + ", ".join(f"{k[0]} {k[3]:g} GFLOP/s" for k in kernels))
    best = max(kernels, key=lambda k: k[3])
    # PyTorch: the fastest kernel every time, the automatic one (if slower) in the first run
    # only, for information - its matrix products cannot be faster with a slower kernel
    a.torch_kernels = [best] + ([kernels[0]] if best is not kernels[0] else [])
    return kernels


def bench_peak(a):
    """The machine's peak (GFLOP/s of FMAs, no memory traffic) in the same run: a.peak =
    {1: lm.h's build 1t, 2: its 2t, "avx2": the AVX2 build 1t}."""
    log(f"peak: fused multiply-adds, no memory traffic (load average {loadavg()})")
    runs = {1: [], 2: [], "avx2": []}
    for _ in range(a.reps):
        for th in (1, 2):
            v, _ = run([a.gemm_lm, "--peak", "--threads", str(th)], base_env())
            runs[th].append(v and v["gflops"])
        v, _ = run([a.gemm_avx2, "--peak", "--threads", "1"], base_env(), "[AVX2 build]")
        runs["avx2"].append(v and v["gflops"])
    a.peak = {k: median(v) for k, v in runs.items()}
    row("peak, lm.h's build, 1t, for information", a.peak[1], None, None, None, "GFLOP/s")
    row("peak, lm.h's build, 2t, for information", a.peak[2], None, None, None, "GFLOP/s")
    row("peak, AVX2 build, 1t, for information", a.peak["avx2"], None, None, None, "GFLOP/s")


def bench_gemm(a):
    kernels = probe_openblas(a)
    log(f"GEMM: GFLOP/s, C = A op(B) with A M x K (load average {loadavg()})"
        + ("; 1-thread runs timed by CPU time" if a.gemm_cputime else ""))
    for M, N, K, bt in GEMM_SHAPES:
        name = f"{M}x{N}x{K}" + (" B^T" if bt else "")
        args = [str(M), str(N), str(K)] + (["--bt"] if bt else [])
        lm = {1: [], 2: []}
        ob = {(k[0], th): [] for k in kernels for th in (1, 2)}
        for _ in range(a.reps):
            for th in (1, 2):
                extra = ["--threads", str(th)] + (["--cputime"] if a.gemm_cputime and th == 1 else [])
                v, _ = run([a.gemm_lm] + args + extra, base_env())
                lm[th].append(v and v["gflops"])
                for label, ct, core, _g in kernels:
                    v, _ = run([a.gemm_ob] + args + extra, ob_env(ct, th), f"[{label}]")
                    ob[(label, th)].append(v and v["gflops"])
        lm = {k: median(v) for k, v in lm.items()}
        ob = {k: median(v) for k, v in ob.items()}
        best = {}
        for th in (1, 2):
            ok = [k[0] for k in kernels if ob[(k[0], th)] is not None]
            best[th] = max(ok, key=lambda lab: ob[(lab, th)]) if ok else kernels[0][0]
        auto = kernels[0][0]
        row(f"GEMM {name}, 1t: lm.h / OpenBLAS best ({best[1]})", lm[1], ob[(best[1], 1)],
            ratio_of(lm[1], ob[(best[1], 1)]), 1.0, "GFLOP/s")
        if best[1] != auto:
            row(f"GEMM {name}, 1t: lm.h / OpenBLAS {auto}", lm[1], ob[(auto, 1)],
                ratio_of(lm[1], ob[(auto, 1)]), None, "GFLOP/s")
        row(f"GEMM {name}: lm.h 2t / lm.h 1t", lm[2], lm[1],
            ratio_of(lm[2], lm[1]) if not a.gemm_cputime else None,
            1.85 if not a.gemm_cputime else None, "GFLOP/s")
        row(f"GEMM {name}, 2t: lm.h / OpenBLAS best ({best[2]})", lm[2], ob[(best[2], 2)],
            ratio_of(lm[2], ob[(best[2], 2)]), None, "GFLOP/s")
        row(f"GEMM {name}, 1t: lm.h / the machine's peak 1t", lm[1], a.peak.get(1),
            ratio_of(lm[1], a.peak.get(1)), None, "GFLOP/s")
    # most x86 machines have AVX2 and no AVX-512: lm.h built that way against OpenBLAS's
    # Haswell kernel (AVX2 + FMA), one thread each
    log(f"GEMM, AVX2 builds: lm.h (-mavx2 -mfma) and OpenBLAS Haswell, 1 thread "
        f"(load average {loadavg()})")
    for M, N, K, bt in GEMM_SHAPES:
        name = f"{M}x{N}x{K}" + (" B^T" if bt else "")
        args = [str(M), str(N), str(K)] + (["--bt"] if bt else []) + ["--threads", "1"]
        args += ["--cputime"] if a.gemm_cputime else []
        l2, o2 = [], []
        for _ in range(a.reps):
            v, _ = run([a.gemm_avx2] + args, base_env(), "[AVX2 build]")
            l2.append(v and v["gflops"])
            v, _ = run([a.gemm_ob] + args, ob_env("Haswell", 1), "[Haswell]")
            o2.append(v and v["gflops"])
        l2, o2 = median(l2), median(o2)
        row(f"GEMM {name}, 1t, AVX2: lm.h / OpenBLAS Haswell", l2, o2, ratio_of(l2, o2), 1.0,
            "GFLOP/s")
        row(f"GEMM {name}, 1t, AVX2: lm.h / the AVX2 peak 1t", l2, a.peak.get("avx2"),
            ratio_of(l2, a.peak.get("avx2")), None, "GFLOP/s")


def torch_kernels(a):
    """OpenBLAS kernels to run PyTorch with (see probe_openblas): the fastest first."""
    if getattr(a, "torch_kernels", None) is None:
        probe_openblas(a)
    return a.torch_kernels


def torch_runs(a, rep):
    """The kernels PyTorch runs with in repetition rep: the slower one in the first only."""
    ks = torch_kernels(a)
    return ks if rep == 0 else ks[:1]


def torch_env(threads, coretype):
    env = ob_env(coretype, threads)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def bench_train_one(a, label, cfg, steps, warmup, rss_target, speed_target):
    kernels = torch_kernels(a)
    log(f"training, {label} GPT {cfg} (load average {loadavg()})")
    keys = ["layers", "heads", "embd", "ctx", "batch", "vocab"]
    lm = {1: [], 2: []}
    lm_rss = {1: [], 2: []}
    pt = {(k[0], th): [] for k in kernels for th in (1, 2)}
    pt_rss = {(k[0], th): [] for k in kernels for th in (1, 2)}
    for rep in range(a.reps):
        for th in (1, 2):
            v, _ = run([a.lm, "bench", "train"] + shape_args(cfg, keys) +
                       ["--steps", str(steps), "--threads", str(th)])
            lm[th].append(v and v["ms_per_step"])
            lm_rss[th].append(v and v["peak_rss_mb"])
            for klabel, ct, core, _g in torch_runs(a, rep):
                v, _ = run(TORCH + ["train"] + shape_args(cfg, keys) +
                           ["--steps", str(steps), "--warmup", str(warmup), "--threads", str(th)],
                           torch_env(th, ct), f"[OpenBLAS {klabel}]")
                pt[(klabel, th)].append(v and v["ms_per_step"])
                pt_rss[(klabel, th)].append(v and v["peak_rss_mb"])
    lm = {k: median(v) for k, v in lm.items()}
    lm_rss = {k: median(v) for k, v in lm_rss.items()}
    pt = {k: median(v) for k, v in pt.items()}
    pt_rss = {k: median(v) for k, v in pt_rss.items()}
    for (klabel, th), ms in pt.items():
        row(f"train {label}: PyTorch {th}t, OpenBLAS {klabel}", None, ms, None, None, "ms/step")
    ok = [k for k in pt if pt[k] is not None]
    best = min(ok, key=lambda k: pt[k]) if ok else (kernels[0][0], 1)
    bname = f"{best[1]}t {best[0]}"
    row(f"train {label}: lm.h 1t / PyTorch best ({bname})", lm[1], pt[best],
        ratio_of(pt[best], lm[1]), None, "ms/step")
    row(f"train {label}: lm.h 2t / PyTorch best ({bname})", lm[2], pt[best],
        ratio_of(pt[best], lm[2]), speed_target, "ms/step")
    gf = train_gflop(cfg)
    got = gf / (lm[2] / 1e3) if lm[2] else None
    row(f"train {label}: lm.h 2t's matrix products / the machine's peak 2t", got,
        a.peak.get(2), ratio_of(got, a.peak.get(2)), None, "GFLOP/s")
    row(f"train {label}: peak RSS lm.h 2t / PyTorch best", lm_rss[2], pt_rss[best],
        ratio_of(lm_rss[2], pt_rss[best]), rss_target, "MB", higher_is_better=False)


def train_gflop(cfg):
    """GFLOP of one training step's matrix products (forward 2, backward 4 per multiply-add):
    the blocks' four matrices (12 C^2 a token), the head (V C), and attention's Q K^T and
    P V counted dense (T^2 C a layer each)."""
    L, C, V, B, T = cfg["layers"], cfg["embd"], cfg["vocab"], cfg["batch"], cfg["ctx"]
    return 6.0 * (B * T * (L * 12 * C * C + V * C) + 2 * L * B * T * T * C) / 1e9


def bench_train(a):
    bench_train_one(a, "small", SMALL, a.small_steps, 2, 0.5, 1.7)
    bench_train_one(a, "tiny", TINY, a.tiny_steps, 3, 0.5, 2.0)


def weight_bytes(cfg):
    """The bytes of weights one generated token reads: every block's matrices, biases and
    LayerNorms, the final LayerNorm, one row of wpe, and wte once more as the head."""
    L, C, V = cfg["layers"], cfg["embd"], cfg["vocab"]
    return 4 * (L * (12 * C * C + 13 * C) + 2 * C + C + V * C)


def bench_generate(a):
    kernels = torch_kernels(a)
    cfg = SMALL
    log(f"generation with the KV cache, small GPT, {cfg['ctx'] - 1} tokens "
        f"(load average {loadavg()})")
    keys = ["layers", "heads", "embd", "ctx", "vocab"]
    lm = {1: [], 2: []}
    pt = {(k[0], th): [] for k in kernels for th in (1, 2)}
    for rep in range(a.reps):
        for th in (1, 2):
            v, _ = run([a.lm, "bench", "generate"] + shape_args(cfg, keys) + ["--threads", str(th)])
            lm[th].append(v and v["tok_per_s"])
            for klabel, ct, core, _g in torch_runs(a, rep):
                v, _ = run(TORCH + ["generate"] + shape_args(cfg, keys) +
                           ["--reps", str(a.gen_reps), "--threads", str(th)],
                           torch_env(th, ct), f"[OpenBLAS {klabel}]")
                pt[(klabel, th)].append(v and v["tok_per_s"])
    lm = {k: median(v) for k, v in lm.items()}
    pt = {k: median(v) for k, v in pt.items()}
    for (klabel, th), tps in pt.items():
        row(f"generate small: PyTorch {th}t, OpenBLAS {klabel}", None, tps, None, None, "tok/s")
    ok = [k for k in pt if pt[k] is not None]
    best = max(ok, key=lambda k: pt[k]) if ok else (kernels[0][0], 1)
    bname = f"{best[1]}t {best[0]}"
    lbest = max((t for t in (1, 2) if lm[t] is not None), key=lambda t: lm[t], default=1)
    row(f"generate small: lm.h 1t / PyTorch best ({bname})", lm[1], pt[best],
        ratio_of(lm[1], pt[best]), None, "tok/s")
    row(f"generate small: lm.h 2t / PyTorch best ({bname})", lm[2], pt[best],
        ratio_of(lm[2], pt[best]), None, "tok/s")
    row(f"generate small: lm.h best ({lbest}t) / PyTorch best", lm[lbest], pt[best],
        ratio_of(lm[lbest], pt[best]), 2.5, "tok/s")
    # the same in bytes of weights read per second, against what the machine streams
    wb = weight_bytes(cfg)
    mb = (wb + (1 << 20) - 1) >> 20
    log(f"streaming bandwidth, 2 threads: {mb} MB (the weights' size) and 1024 MB "
        f"(load average {loadavg()})")
    bw, dram = [], []
    for _ in range(a.reps):
        v, _ = run([a.lm, "bench", "bandwidth", "--mb", str(mb), "--threads", "2"])
        bw.append(v and v["gb_per_s"])
        v, _ = run([a.lm, "bench", "bandwidth", "--mb", "1024", "--threads", "2"])
        dram.append(v and v["gb_per_s"])
    bw, dram = median(bw), median(dram)
    gen_gbs = lm[lbest] * wb / 1e9 if lm[lbest] else None
    row(f"generate small: weights read, lm.h best ({lbest}t) / bandwidth ({mb} MB, 2t)",
        gen_gbs, bw, ratio_of(gen_gbs, bw), 0.6, "GB/s")
    row("bandwidth, main memory (1024 MB, 2t), for information", dram, None, None, None, "GB/s")
    bench_generate_q8(a, cfg, keys)


def find_shakespeare(a):
    if a.shakespeare:
        return a.shakespeare if os.path.exists(a.shakespeare) else None
    here = os.path.dirname(os.path.abspath(__file__))
    for rel in ("../../shared/data", "../../../shared/data", "../shared/data"):
        path = os.path.normpath(os.path.join(here, rel, "tinyshakespeare.txt"))
        if os.path.exists(path):
            return path
    return None


def bench_shakespeare(a):
    """The whole recipe of the README's run: `lm train` defaults, 2000 steps, an evaluation
    every 250 (8), against tools/train_torch.py's same recipe; wall time of each process."""
    path = find_shakespeare(a)
    if not path:
        log("shakespeare: tinyshakespeare.txt not found (--shakespeare FILE): row skipped")
        return
    steps = 200 if a.quick else 2000
    log(f"the Tiny Shakespeare run, {steps} steps, an evaluation every 250 ({path}) "
        f"(load average {loadavg()})")
    os.makedirs("out", exist_ok=True)
    lm, pt = [], {(k[0], th): [] for k in torch_kernels(a) for th in (1, 2)}
    for rep_i in range(a.shakespeare_reps):
        t = time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([a.lm, "train", "--data", path, "--steps", str(steps),
                            "--eval-every", "250", "--threads", "2",
                            "--model", "out/bench_shakespeare.safetensors"],
                           env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if p.returncode != 0:
            log(f"  FAILED: lm train: {p.stderr.strip()[-300:]}")
            lm.append(None)
        else:
            val = [ln for ln in p.stderr.splitlines() + p.stdout.splitlines() if "val" in ln]
            shares.append(100.0 * cpu / wall)
            log(f"  lm train (2 threads): wall {wall:.1f} s; {val[-1].strip() if val else ''}"
                f"  (cpu {100.0 * cpu / wall:.0f}%)")
            lm.append(wall)
        for klabel, ct, core, _g in torch_runs(a, rep_i):
            for th in (1, 2):
                v, _ = run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "train_torch.py"),
                            "--data", path, "--steps", str(steps), "--eval-every", "250",
                            "--threads", str(th)], torch_env(th, ct), f"[OpenBLAS {klabel}]")
                pt[(klabel, th)].append(v and v["wall_s"])
    lm = median(lm)
    pt = {k: median(v) for k, v in pt.items()}
    ok = [k for k in pt if pt[k] is not None]
    if not ok:
        return
    best = min(ok, key=lambda k: pt[k])
    row(f"Tiny Shakespeare {steps} steps + evals, wall: lm.h 2t / PyTorch best ({best[1]}t {best[0]})",
        lm, pt[best], ratio_of(pt[best], lm), 2.0, "s")


def bench_generate_q8(a, cfg, keys):
    """Q8_0 against float32, lm.h alone, 2 threads, alternating runs (issue 14), beside
    the machine's read bandwidth at 2 threads (lm bench bandwidth) in the same runs."""
    res = {"float32": [], "Q8_0": []}
    gbs = {"float32": [], "Q8_0": []}
    mem, near = [], []
    wmb = None
    for rep in range(a.reps):
        for label, extra in (("float32", []), ("Q8_0", ["--quantize"])):
            v, _ = run([a.lm, "bench", "generate"] + shape_args(cfg, keys) + extra + ["--threads", "2"])
            res[label].append(v and v["tok_per_s"])
            gbs[label].append(v and v.get("gb_per_s"))
            if label == "float32" and v and v.get("weight_mb_per_token"):
                wmb = int(v["weight_mb_per_token"] + 0.5)
        v, _ = run([a.lm, "bench", "bandwidth", "--mb", "1024", "--threads", "2"])
        mem.append(v and v["gb_per_s"])
        if wmb:
            v, _ = run([a.lm, "bench", "bandwidth", "--mb", str(wmb), "--threads", "2"],
                       tag="(the float32 weights' size)")
            near.append(v and v["gb_per_s"])
    f32, q8, bw = median(res["float32"]), median(res["Q8_0"]), median(mem)
    row("memory read bandwidth, 2 threads, 1 GB (GB/s)", bw, None, None, None, "GB/s")
    row(f"read bandwidth, 2 threads, {wmb} MB (GB/s; caches may hold it)", median(near), None, None, None, "GB/s")
    row("generate small 2t: weights read, float32 (GB/s) / bandwidth", median(gbs["float32"]), bw,
        ratio_of(median(gbs["float32"]), bw), None, "GB/s")
    row("generate small 2t: weights read, Q8_0 (GB/s) / bandwidth", median(gbs["Q8_0"]), bw,
        ratio_of(median(gbs["Q8_0"]), bw), None, "GB/s")
    row("generate small: lm.h Q8_0 2t / lm.h float32 2t", q8, f32, ratio_of(q8, f32), 2.5, "tok/s")


def print_summary():
    log()
    busy = median(shares)
    if busy is not None and busy < 80:
        log(f"WARNING: the machine was busy - the benchmark processes got a median {busy:.0f}% "
            f"of a core (about 100% or more if idle) - so the timings are inflated and the "
            f"ratios noisy. Rerun on an idle machine for figures to rely on (--gemm-cputime "
            f"gives load-robust 1-thread GEMM ratios).")
    log("Summary (ratio: lm.h's speed over the reference's, or for RSS lm.h's over PyTorch's)")
    w = max(len(r[0]) for r in summary) if summary else 40
    log(f"{'measurement':<{w}}  {'lm.h':>9}  {'reference':>9}  {'unit':<7}  {'ratio':>6}  "
        f"{'target':>7}  met")
    for what, lm, ref, ratio, target, unit, hib, met in summary:
        tgt = "" if target is None else (">= " if hib else "<= ") + f"{target:.2f}"
        log(f"{what:<{w}}  {fmt(lm):>9}  {fmt(ref):>9}  {unit:<7}  {fmt(ratio, 2):>6}  "
            f"{tgt:>7}  {met}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="gemm,train,generate,shakespeare",
                   help="comma-separated subset of gemm,train,generate,shakespeare,q8 (q8: only "
                        "the Q8_0 against float32 generation of generate, no PyTorch)")
    p.add_argument("--reps", type=int, default=3, help="runs of each configuration (median)")
    p.add_argument("--quick", action="store_true",
                   help="one run per configuration and fewer steps: a smoke test")
    p.add_argument("--lm", default="./lm")
    p.add_argument("--gemm-lm", default="out/bench_gemm")
    p.add_argument("--gemm-ob", default="out/bench_gemm_openblas")
    p.add_argument("--gemm-avx2", default="out/bench_gemm_avx2")
    p.add_argument("--shakespeare", default=None, help="tinyshakespeare.txt (default: look in "
                   "../shared/data/)")
    p.add_argument("--shakespeare-reps", type=int, default=1,
                   help="runs of the Tiny Shakespeare recipe (each takes a minute or two)")
    p.add_argument("--small-steps", type=int, default=5, help="timed steps, small GPT")
    p.add_argument("--tiny-steps", type=int, default=20, help="timed steps, tiny GPT")
    p.add_argument("--gen-reps", type=int, default=3,
                   help="generations per PyTorch process (its median)")
    p.add_argument("--gemm-cputime", action="store_true",
                   help="time the 1-thread GEMM runs by CPU time (steadier on a busy machine; "
                        "then no 2t/1t ratio)")
    p.add_argument("--out", default="out/bench.txt")
    a = p.parse_args()
    if a.quick:
        a.reps, a.small_steps, a.tiny_steps, a.gen_reps = 1, 1, 5, 1
    parts = [s.strip() for s in a.only.split(",") if s.strip()]
    for s in parts:
        if s not in ("gemm", "train", "generate", "shakespeare", "q8"):
            sys.exit(f"bench.py: unknown part '{s}' (gemm, train, generate, shakespeare, q8)")
    a.torch_kernels = None
    t0 = time.time()
    log(f"lm.h benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}, "
        f"{platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    log(f"OpenBLAS: {openblas_config()}")
    log(f"PyTorch: {torch_version()} ({sys.executable}); lm: {a.lm}; {a.reps} run(s) per configuration")
    log(f"load average at start: {loadavg()}")
    a.peak = {}
    if "gemm" in parts or "train" in parts:
        bench_peak(a)
    if "gemm" in parts:
        bench_gemm(a)
    if "train" in parts:
        bench_train(a)
    if "generate" in parts:
        bench_generate(a)
    elif "q8" in parts:
        log(f"generation with the KV cache, small GPT, Q8_0 against float32 "
            f"(load average {loadavg()})")
        bench_generate_q8(a, SMALL, ["layers", "heads", "embd", "ctx", "vocab"])
    if "shakespeare" in parts:
        bench_shakespeare(a)
    log(f"load average at end: {loadavg()}; {time.time() - t0:.0f} s in all")
    print_summary()
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as f:
            f.write("\n".join(log.lines) + "\n")
        print(f"(written to {a.out})")


if __name__ == "__main__":
    main()
