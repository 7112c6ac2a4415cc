#!/usr/bin/python3
"""train_torch.py - `lm train` written in PyTorch, to time and cross-check a whole run.

    train_torch.py --data FILE [--val-frac 0.1] [--layers 4] [--heads 4] [--embd 128]
                   [--ctx 64] [--batch 12] [--steps 2000] [--lr 1e-3] [--min-lr 1e-4]
                   [--warmup 100] [--eval-every 250] [--seed 1337] [--threads 2]

The same run as `lm train` with the same flags (lm.h's TRAINING docs): byte tokens,
the first (1 - val-frac) of the file trains, random windows, AdamW (wd 0.1 on matrices and
embeddings, betas 0.9/0.99), clipping at 1.0, warmup then cosine to min-lr; validation
loss over the non-overlapping windows of the held-out bytes at each eval. The model is
tools/bench_torch.py's. Its random numbers are PyTorch's, so the losses are those of a
different draw of the same recipe, not the same digits: this measures what the recipe
reaches and what the run costs in PyTorch on this machine.

Last line: wall_s X train_s Y val_loss Z   (train_s: the steps alone, evals excluded).
For the best PyTorch speed set OMP_WAIT_POLICY=PASSIVE, as tools/bench.py does.
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import GPT, peak_rss_mb  # noqa: E402


@torch.no_grad()
def evaluate(model, val, T):
    model.eval()
    n = (len(val) - 1) // T
    total = 0.0
    for i in range(0, n, 64):                       # 64 windows per forward pass
        k = min(64, n - i)
        x = torch.stack([val[(i + j) * T:(i + j) * T + T] for j in range(k)])
        y = torch.stack([val[(i + j) * T + 1:(i + j) * T + T + 1] for j in range(k)])
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction="sum").item()
    model.train()
    return total / (n * T)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--val-frac", type=float, default=0.1)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=128)
    p.add_argument("--ctx", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    data = torch.tensor(list(open(a.data, "rb").read()), dtype=torch.long)
    n_train = len(data) - int(len(data) * a.val_frac)
    train, val = data[:n_train], data[n_train:]
    model = GPT(a.layers, a.heads, a.embd, a.ctx, 256)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.99), eps=1e-8)
    S, W, T, B = a.steps, a.warmup, a.ctx, a.batch

    def lr_at(s):                                   # lm_lr_at
        if s < W:
            return a.lr * (s + 1) / W
        r = (s - W) / max(1, S - 1 - W)
        return a.min_lr + 0.5 * (1 + math.cos(math.pi * r)) * (a.lr - a.min_lr)

    t0 = time.perf_counter()
    train_s, val_loss = 0.0, float("nan")
    for s in range(S):
        t = time.perf_counter()
        off = torch.randint(0, n_train - T, (B,))
        x = torch.stack([train[o:o + T] for o in off])
        y = torch.stack([train[o + 1:o + T + 1] for o in off])
        for grp in opt.param_groups:
            grp["lr"] = lr_at(s)
        loss = F.cross_entropy(model(x).view(-1, 256), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        train_s += time.perf_counter() - t
        if (s + 1) % 100 == 0:
            print(f"step {s + 1}/{S} loss {loss.item():.4f}", file=sys.stderr)
        if len(val) > T and ((a.eval_every and (s + 1) % a.eval_every == 0) or s + 1 == S):
            val_loss = evaluate(model, val, T)
            print(f"step {s + 1}/{S} val loss {val_loss:.4f}", file=sys.stderr)
    wall = time.perf_counter() - t0
    print(f"torch {a.layers}x{a.embd} on {a.data}: {S} steps, {torch.get_num_threads()} threads, "
          f"{B * T * S / train_s:.0f} tok/s in the steps, peak RSS {peak_rss_mb():.0f} MB")
    print(f"wall_s {wall:.1f} train_s {train_s:.1f} val_loss {val_loss:.4f}")


if __name__ == "__main__":
    main()
