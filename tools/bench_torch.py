#!/usr/bin/python3
"""bench_torch.py - the PyTorch side of `make bench`: a minimal GPT-2 (lm.h, TRAINING) timed
the same way as `lm bench train` and `lm bench generate`.

    bench_torch.py train    --layers L --heads H --embd C --ctx T --batch B --vocab V
                            [--steps 5] [--warmup 2] [--threads N]
        last line: ms_per_step X tok_per_s Y peak_rss_mb Z   (X: median over the steps)
    bench_torch.py generate --layers L --heads H --embd C --ctx T --vocab V
                            [--tokens T-1] [--reps 3] [--threads N]
        last line: tok_per_s X   (median over the repetitions)

The model: token + position embeddings, L pre-LayerNorm blocks (causal self-attention with
an explicit masked softmax - torch 1.13 has no scaled_dot_product_attention - and a tanh-GELU
MLP), a final LayerNorm and a head tied to the token embedding. The layers are nn.Linear
(weights stored out x in rather than Hugging Face's Conv1D in x out: the same products,
PyTorch's usual and fastest form). Training is one AdamW step per batch of random tokens
with gradient clipping at 1.0, as `lm bench train` does.
Generation decodes one token at a time through a key/value cache written here, sampling at
temperature 0.8 from a one-token prompt, as `lm bench generate` does.

Run one configuration per process: the peak RSS (getrusage ru_maxrss) is the process's, and
the thread count is fixed once. tools/bench.py sets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS
to the same count, OMP_WAIT_POLICY=PASSIVE and the OpenBLAS kernel before starting it.
"""
import argparse
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)), with an optional key/value cache."""

    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def attn(self, x, mask, cache=None, pos=0):
        B, T, C = x.shape
        H, D = self.H, C // self.H
        q, k, v = self.c_attn(x).split(C, dim=2)            # each (B, T, C)
        q = q.view(B, T, H, D).transpose(1, 2)               # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        if cache is not None:                                # append to the cache, attend to all
            kc, vc = cache                                   # (B, H, n_ctx, D) each
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            k, v = kc[:, :, :pos + T], vc[:, :, :pos + T]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))   # (B, H, T, S)
        if mask is not None:
            att = att.masked_fill(mask, float("-inf"))
        y = F.softmax(att, dim=-1) @ v                       # (B, H, T, D)
        return self.attn_proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, mask, cache=None, pos=0):
        x = x + self.attn(self.ln_1(x), mask, cache, pos)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, H, C, n_ctx, V):
        super().__init__()
        self.n_ctx = n_ctx
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(n_ctx, C)
        self.h = nn.ModuleList([Block(C, H) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        # causal mask: True above the diagonal (the future), filled with -inf
        self.register_buffer("mask", torch.triu(torch.ones(n_ctx, n_ctx, dtype=torch.bool), 1))
        # lm.h's initialisation (TRAINING)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln_" in name or name.startswith("ln_f"):
                nn.init.ones_(p)
            elif name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, caches=None, pos=0):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + T))
        # with a cache and a single new token, that token may see everything: no mask
        mask = None if (caches is not None and T == 1) else self.mask[pos:pos + T, :pos + T]
        for i, blk in enumerate(self.h):
            x = blk(x, mask, caches[i] if caches is not None else None, pos)
        return self.ln_f(x) @ self.wte.weight.t()           # tied head: (B, T, V)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def bench_train(a, model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    g = torch.Generator().manual_seed(2)
    times, cpu = [], 0.0
    for s in range(a.warmup + a.steps):
        x = torch.randint(0, a.vocab, (a.batch, a.ctx), generator=g)
        y = torch.randint(0, a.vocab, (a.batch, a.ctx), generator=g)
        t, c = time.perf_counter(), time.process_time()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, a.vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t, c = time.perf_counter() - t, time.process_time() - c
        if not math.isfinite(loss.item()):
            sys.exit("training diverged")
        if s >= a.warmup:
            times.append(t)
            cpu += c
    times.sort()
    ms = times[len(times) // 2] * 1e3
    print(f"torch train {a.layers} layers, {a.heads} heads, {a.embd} wide, context {a.ctx}, "
          f"vocab {a.vocab}, batch {a.batch}: {torch.get_num_threads()} threads, "
          f"{a.steps} steps, all ms: {' '.join(f'{t * 1e3:.1f}' for t in times)}, "
          f"cpu ms/step {cpu / a.steps * 1e3:.1f}")
    print(f"ms_per_step {ms:.3f} tok_per_s {a.batch * a.ctx / ms * 1e3:.1f} "
          f"peak_rss_mb {peak_rss_mb():.1f}")


@torch.no_grad()
def generate_once(a, model, n):
    L, H, D = a.layers, a.heads, a.embd // a.heads
    caches = [(torch.zeros(1, H, a.ctx, D), torch.zeros(1, H, a.ctx, D)) for _ in range(L)]
    g = torch.Generator().manual_seed(1)
    tok = torch.tensor([[ord("\n") % a.vocab]])
    t = time.perf_counter()
    for pos in range(n):                    # pos: where the current token sits
        logits = model(tok, caches, pos)[0, -1]
        probs = F.softmax(logits / 0.8, dim=-1)
        tok = torch.multinomial(probs, 1, generator=g).view(1, 1)
    return time.perf_counter() - t


def bench_generate(a, model):
    n = a.tokens if a.tokens else a.ctx - 1
    if n > a.ctx - 1:
        sys.exit("--tokens must stay within the context (n_ctx - 1)")
    model.eval()
    generate_once(a, model, min(n, 16))     # warm-up
    times = sorted(generate_once(a, model, n) for _ in range(a.reps))
    t = times[len(times) // 2]
    print(f"torch generate {n} tokens: {a.layers} layers, {a.heads} heads, {a.embd} wide, "
          f"context {a.ctx}, vocab {a.vocab}, {torch.get_num_threads()} threads, "
          f"all tok/s: {' '.join(f'{n / x:.1f}' for x in times)}")
    print(f"tok_per_s {n / t:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["train", "generate"])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=128)
    p.add_argument("--ctx", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed training steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    p.add_argument("--tokens", type=int, default=0, help="generated tokens (default n_ctx-1)")
    p.add_argument("--reps", type=int, default=3, help="generation repetitions")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    model = GPT(a.layers, a.heads, a.embd, a.ctx, a.vocab)
    if a.what == "train":
        bench_train(a, model)
    else:
        bench_generate(a, model)


if __name__ == "__main__":
    main()
