#!/usr/bin/python3
"""Cross-check lm.h against PyTorch (lm.h's TRAINING docs): `make test-torch`.

For several random configurations (widths that are not powers of two, 1 to 3 heads, sequence
lengths that are not multiples of 8, a byte vocabulary and one of a few thousand, 1 to 3
layers) this script builds the same model twice - once in lm.h, through the C harness
tools/torch_check.c, and once as the small PyTorch module below - and compares:

  GPT       logits, loss, the gradient of every parameter, the learning-rate schedule
            (cosine with warmup), and every parameter after 10 AdamW steps with global
            gradient clipping and weight decay on tensors of 2 or more dims only;
  encoder   hidden states under a padding mask, the masked-LM logits, loss and gradients,
            the classifier (mean over the valid positions; cross-entropy over n_class, or
            BCE-with-logits for one class) logits, loss and gradients, the library's own
            classifier loss and probabilities, and the parameters after a few steps;
  encoder-decoder  torch.nn.Transformer (tools/seq2seq_torch.py) for (post-LN, relu),
            (pre-LN, gelu) and (pre-LN, relu): logits over a padded batch, loss, every
            gradient, greedy and beam decoding of each source, and 4 AdamW steps;
  lm CLI    `lm eval` (lm_gpt_eval's windows) and greedy `lm generate` (the window slides to
            the last n_ctx tokens) on the byte-vocabulary checkpoints; `lm s2s eval` (loss,
            exact match) and `lm s2s translate` on the encoder-decoder's; and the other
            way round, a model `lm s2s train` wrote read by PyTorch (same loss, same
            greedy outputs) and saved by it again for lm (same `lm s2s eval` line).
The GPT checkpoints are written here in the Hugging Face GPT-2 layout and read by
lm_gpt_load: with `h.{i}.attn.bias` buffers and the config in __metadata__; with a
`transformer.` prefix, `attn.masked_bias` buffers, a tied `lm_head.weight` and no metadata
(n_head passed: lm_gpt_load's argument, `--heads` for the CLI); with metadata only.
Two further checks: the exact gradient of the key block of c_attn.bias is 0 (lm.h's must
vanish), and the cases clip the gradient on some steps and not on others.

The PyTorch side runs in float64 by default, so the measured deviations are those of
lm.h's float32 arithmetic against the exact result (--dtype float32 compares with
PyTorch's own float32 instead).

Deviation of a tensor a (lm.h) from its reference b: max|a - b| / max|b|, per tensor (a
reference that is all zeros must be matched exactly). Tolerances: 1e-5 for forward
values (logits, losses, hidden states, probabilities), 1e-4 for gradients and for the
parameters and losses after the training steps (with AdamW's eps at 1e-5: see OPTS),
1e-6 for the learning rates. `lm eval`
prints 6 decimals, so its loss gets 1e-5 relative plus 1e-6 absolute; `lm generate` must
match byte for byte.

Usage (Debian's PyTorch: python3-torch and python3-numpy, run with /usr/bin/python3):
  torch_check.py --run NAME HARNESS LM [--run NAME2 HARNESS2 LM2 ...] [--threads N]
                 [--dtype float64|float32] [--keep DIR]
Each --run is one build of lm.h (e.g. the SIMD one and a -DLM_NO_SIMD one): the C harness
and the `lm` command line built from it. Every run is checked against PyTorch, and every
run after the first against the first. The last line is `N passed, M failed`; the exit
status is 1 when anything failed.
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    sys.exit("torch_check.py: %s: needs Debian's python3-torch and python3-numpy, run with "
             "/usr/bin/python3" % e)

TOL_FWD = 1e-5    # logits, losses, hidden states, probabilities
TOL_GRAD = 1e-4   # gradients
TOL_STEP = 1e-4   # parameters and losses after the training steps
TOL_LR = 1e-6     # learning-rate schedule (float32 rounding of a double formula)
TINY = 1e-30      # floor of max|b| in the deviation


# ---------------------------------------------------------------------------------------
# safetensors, by hand: u64 header length, JSON header padded with spaces to a multiple
# of 8, then the little-endian data with offsets relative to its start.
# ---------------------------------------------------------------------------------------
def st_write(path, tensors, meta=None):
    """tensors: list of (name, float32 array), written in that order as F32."""
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, arr in tensors:
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for raw in blobs:
            f.write(raw)


def st_read(path):
    """name -> float32 array, for the F32 files the harness writes."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError("%s: dtype %s" % (name, e["dtype"]))
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"])
    return out


# ---------------------------------------------------------------------------------------
# The reference model: GPT-2 as lm.h's TRAINING docs state it. Conv1D keeps its weight as
# (in, out); the output head is the token embedding (tied); GELU is the tanh form;
# LayerNorm eps is 1e-5; no dropout. Parameter names are those of Hugging Face GPT-2,
# so named_parameters() lines up with lm.h's checkpoint names.
# ---------------------------------------------------------------------------------------
class Conv1D(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)

    def forward(self, x, causal, lens):
        B, T, C = x.shape
        hs = C // self.H
        q, k, v = self.c_attn(x).split(C, dim=2)          # column blocks [0,C) [C,2C) [2C,3C)
        q, k, v = (t.view(B, T, self.H, hs).transpose(1, 2) for t in (q, k, v))  # (B,H,T,hs)
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)     # (B, H, T, T)
        visible = torch.ones(B, 1, T, T, dtype=torch.bool)
        if causal:
            visible = visible & torch.tril(torch.ones(T, T, dtype=torch.bool))
        if lens is not None:                              # key j visible iff j < lens[b]
            keys = torch.arange(T)[None, :] < torch.as_tensor(lens)[:, None]      # (B, T)
            visible = visible & keys[:, None, None, :]
        att = att.masked_fill(~visible, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = Conv1D(C, 4 * C)
        self.c_proj = Conv1D(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = Attention(C, H)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = MLP(C)

    def forward(self, x, causal, lens):
        x = x + self.attn(self.ln_1(x), causal, lens)
        return x + self.mlp(self.ln_2(x))


class Body(nn.Module):
    """Embeddings, blocks and ln_f: the GPT when causal, the encoder's trunk when not."""

    def __init__(self, cfg):
        super().__init__()
        C = cfg["n_embd"]
        self.wte = nn.Embedding(cfg["vocab"], C)
        self.wpe = nn.Embedding(cfg["n_ctx"], C)
        self.h = nn.ModuleList([Block(C, cfg["n_head"]) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)

    def hidden(self, idx, causal, lens=None):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe.weight[:T]
        for block in self.h:
            x = block(x, causal, lens)
        return self.ln_f(x)


class GPT(Body):
    def forward(self, idx):
        return self.hidden(idx, True) @ self.wte.weight.T      # tied head: (B, T, V)


class Bias(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n))


class Encoder(Body):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.mlm = Bias(cfg["vocab"])                         # "mlm.bias"
        self.cls = Conv1D(cfg["n_embd"], cfg["n_class"])     # "cls.weight", "cls.bias"

    def mlm_logits(self, h, rows):                            # (n, V)
        return h.reshape(-1, h.shape[-1])[rows] @ self.wte.weight.T + self.mlm.bias

    def pool(self, h, lens):                                  # mean of the valid positions
        return torch.stack([h[b, :lens[b]].mean(dim=0) for b in range(h.shape[0])])


def load_weights(model, weights, dtype):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(weights[name]).to(dtype))
    return model.to(dtype)


def param_names(cfg, encoder=False):
    names = ["wte.weight", "wpe.weight"]
    for i in range(cfg["n_layer"]):
        for s in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                  "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                  "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"):
            names.append("h.%d.%s" % (i, s))
    names += ["ln_f.weight", "ln_f.bias"]
    if encoder:
        names += ["mlm.bias", "cls.weight", "cls.bias"]
    return names


def random_weights(cfg, rng, encoder=False):
    """Weights large enough that attention is far from uniform, LayerNorm and biases far
    from their fresh values, and greedy decoding free of near ties. cfg["emb_std"] (if
    given) sets the embeddings' scale: at GPT-2's 0.02 the first LayerNorm sees a variance
    of about 1e-3, where its eps of 1e-5 changes the result by 1%, so a wrong eps shows."""
    model = (Encoder if encoder else GPT)(cfg)
    w = {}
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name in ("wte.weight", "wpe.weight") and "emb_std" in cfg:
            w[name] = cfg["emb_std"] * rng.standard_normal(shape)
        elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            w[name] = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) >= 2:
            w[name] = 0.1 * rng.standard_normal(shape)
        else:
            w[name] = 0.05 * rng.standard_normal(shape)
        w[name] = w[name].astype(np.float32)
    return w


def lr_at(o, s):
    """lm_lr_at: linear warmup to lr, then cosine down to min_lr at the last step."""
    W, S = o["warmup"], o["steps"]
    if s < W:
        return o["lr"] * (s + 1) / W
    r = (s - W) / max(1, S - 1 - W)
    return o["min_lr"] + 0.5 * (1 + math.cos(math.pi * r)) * (o["lr"] - o["min_lr"])


def adamw(model, o):
    """torch.optim.AdamW, weight decay on tensors of 2 or more dims only."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": o["wd"]},
                              {"params": other, "weight_decay": 0.0}],
                             lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])


def train_steps(model, o, loss_fn):
    """o["steps"] steps: clip the global norm, set the scheduled lr, AdamW. Returns the
    losses (before each update) and the gradient norms (before clipping)."""
    opt = adamw(model, o)
    losses, norms = [], []
    for s in range(o["steps"]):
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(s)
        loss.backward()
        for p in model.parameters():            # a parameter no gradient reached: zeros,
            if p.grad is None:                   # as lm.h steps every parameter
                p.grad = torch.zeros_like(p)
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), o["clip"])))
        for group in opt.param_groups:
            group["lr"] = lr_at(o, s)
        opt.step()
        losses.append(float(loss))
    return losses, norms


def numpy_of(model):
    """Copies (a float64 tensor's .numpy() would share its memory)."""
    return {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}


def grads_of(model):
    return {n: (p.grad.detach().double().numpy().copy() if p.grad is not None
                else np.zeros(tuple(p.shape))) for n, p in model.named_parameters()}


# ---------------------------------------------------------------------------------------
# Checks: each one counts; the worst deviation of each kind is kept for the summary.
# ---------------------------------------------------------------------------------------
def deviation(a, b):
    """max|a - b| / max|b| (a reference of all zeros must be matched exactly)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    d = float(np.max(np.abs(a - b)))
    if not np.isfinite(d):
        return float("inf")
    return d / max(float(np.max(np.abs(b))), TINY)


class Checks:
    def __init__(self):
        self.passed = self.failed = 0
        self.worst = {}        # kind -> (deviation, where)

    def ok(self, cond, what):
        if cond:
            self.passed += 1
            print("  ok    %s" % what)
        else:
            self.failed += 1
            print("  FAIL  %s" % what)
        return cond

    def near(self, kind, where, got, want, tol):
        """One check: deviation(got, want) <= tol, noted under kind."""
        dev = deviation(got, want)
        if kind not in self.worst or dev > self.worst[kind][0]:
            self.worst[kind] = (dev, where)
        return self.ok(dev <= tol, "%-52s dev %.2e (tol %.0e)" % (where, dev, tol))

    def near_all(self, kind, where, got, want, tol):
        """One check over a dict of tensors: the worst of them."""
        devs = sorted(((deviation(got.get(n, np.array(np.nan)), want[n]), n) for n in want),
                      reverse=True)
        dev, name = devs[0]
        if kind not in self.worst or dev > self.worst[kind][0]:
            self.worst[kind] = (dev, "%s %s" % (where, name))
        return self.ok(dev <= tol, "%-52s dev %.2e (tol %.0e) worst %s" % (where, dev, tol, name))


def run(cmd, what, checks):
    """Run a command; a failure is a failed check with its stderr."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        checks.ok(False, "%s: %s" % (what, e))
        return None
    if r.returncode != 0:
        checks.ok(False, "%s: exit %d: %s" % (what, r.returncode,
                                             r.stderr.decode(errors="replace").strip()[-400:]))
        return None
    return r


def check_key_bias(checks, tag, grads, cfg):
    """The key block of each c_attn.bias adds q . b_k to a whole row of attention scores,
    which the softmax ignores: its exact gradient is 0. lm.h's must be negligible next to
    the rest of the tensor (1e-5 of its largest entry)."""
    C = cfg["n_embd"]
    worst = 0.0
    for i in range(cfg["n_layer"]):
        g = np.abs(np.asarray(grads["h.%d.attn.c_attn.bias" % i], dtype=np.float64))
        worst = max(worst, float(g[C:2 * C].max()) / max(float(g.max()), TINY))
    checks.ok(worst <= 1e-5, "%-52s %.1e of the tensor's largest" % (
        tag + " key-bias gradients vanish", worst))


# ---------------------------------------------------------------------------------------
# GPT cases
# ---------------------------------------------------------------------------------------
GPT_CASES = [
    # layers, heads, width, context, vocab, batch, T; how the checkpoint is written; the
    # clipping norm (chosen so that some steps clip and some do not)
    dict(n_layer=1, n_head=1, n_embd=24, n_ctx=8, vocab=256, B=2, T=7, style="hf-bias", clip=1.0),
    dict(n_layer=2, n_head=3, n_embd=36, n_ctx=16, vocab=3001, B=3, T=13, style="hf-bias", clip=1.5),
    dict(n_layer=3, n_head=3, n_embd=48, n_ctx=13, vocab=256, B=2, T=13, style="prefix-nometa", clip=2.0),
    dict(n_layer=2, n_head=2, n_embd=40, n_ctx=20, vocab=3001, B=4, T=9, style="hf-meta-only", clip=1.0,
         emb_std=0.02),
]
GPT_WEIGHTS = {}   # case number -> the weights its checkpoint holds (for the CLI checks)
# AdamW's eps is 1e-5 here, not the 1e-8 default. AdamW's first update of an element is
# lr * g / (|g| + eps), about lr * sign(g): so an element whose exact gradient is (nearly)
# 0 steps by lr in a direction that rounding noise decides. The key block of every
# c_attn.bias is such an element (see check_key_bias), and so is, now and then, an entry
# of a weight matrix. With eps 1e-8, PyTorch's own float32 run of these cases ends 10
# steps 0.6% to 2.3% away from its float64 run (worst tensor, max-norm); with eps 1e-5,
# at most 2.4e-5. So the comparison is about arithmetic, not noise, and eps still matters
# for the many gradient entries of 1e-6 to 1e-4.
OPTS = dict(lr=1e-2, min_lr=1e-3, warmup=3, steps=10, wd=0.1, beta1=0.9, beta2=0.95,
            eps=1e-5, clip=1.0)


def write_checkpoint(path, cfg, w, style):
    """The Hugging Face GPT-2 layout. hf-bias: plain names, the h.{i}.attn.bias mask
    buffers, n_head (and the rest) in __metadata__. prefix-nometa: a "transformer."
    prefix, attn.masked_bias buffers, a tied lm_head.weight, no metadata (n_head then
    comes from the caller). hf-meta-only: plain names, metadata only."""
    T = cfg["n_ctx"]
    meta = {"format": "pt"}
    if style != "prefix-nometa":
        meta.update({k: str(cfg[k]) for k in ("n_layer", "n_head", "n_embd", "n_ctx")})
        meta["vocab_size"] = str(cfg["vocab"])
    pre = "transformer." if style == "prefix-nometa" else ""
    tensors = []
    for name in param_names(cfg):
        tensors.append((pre + name, w[name]))
        if name.endswith("ln_1.bias") and style == "hf-bias":
            i = name.split(".")[1]
            mask = np.tril(np.ones((T, T), dtype=np.float32)).reshape(1, 1, T, T)
            tensors.append(("h.%s.attn.bias" % i, mask))
        if name.endswith("ln_1.bias") and style == "prefix-nometa":
            i = name.split(".")[1]
            tensors.append(("transformer.h.%s.attn.masked_bias" % i, np.array(-1e4, dtype=np.float32)))
    if style == "prefix-nometa":
        tensors.append(("lm_head.weight", w["wte.weight"]))
    st_write(path, tensors, meta)


def gpt_case(k, cfg, dirpath, dtype, runs, checks, outputs):
    rng = np.random.default_rng(1000 + k)
    B, T, V = cfg["B"], cfg["T"], cfg["vocab"]
    o = dict(OPTS, clip=cfg["clip"])
    S = o["steps"]
    name = "gpt%d L%d H%d C%d T%d V%d" % (k, cfg["n_layer"], cfg["n_head"], cfg["n_embd"], T, V)
    print("%s (ctx %d, batch %d, %s)" % (name, cfg["n_ctx"], B, cfg["style"]))
    w = random_weights(cfg, rng)
    GPT_WEIGHTS[k] = w
    seq = rng.integers(0, V, size=(B, T + 1))
    inputs, targets = seq[:, :T], seq[:, 1:]
    steps = rng.integers(0, V, size=(S, B, T + 1))
    model_path = os.path.join(dirpath, "gpt%d.safetensors" % k)
    case_path = os.path.join(dirpath, "gpt%d.case.safetensors" % k)
    write_checkpoint(model_path, cfg, w, cfg["style"])
    meta = {key: str(cfg[key]) for key in ("n_layer", "n_head", "n_embd", "n_ctx", "vocab", "B", "T")}
    meta.update({key: repr(v) for key, v in o.items()})
    meta["load_heads"] = str(cfg["n_head"] if cfg["style"] == "prefix-nometa" else 0)
    st_write(case_path, [("inputs", inputs.astype(np.float32)), ("targets", targets.astype(np.float32)),
                         ("step_inputs", steps[:, :, :T].astype(np.float32)),
                         ("step_targets", steps[:, :, 1:].astype(np.float32))], meta)

    # PyTorch: one batch forward and backward, then the training steps
    model = load_weights(GPT(cfg), w, dtype)
    ti, tt = torch.as_tensor(inputs), torch.as_tensor(targets)
    logits = model(ti)
    loss = F.cross_entropy(logits.reshape(-1, V), tt.reshape(-1))
    loss.backward()
    ref = {"logits": logits.detach().double().numpy(), "loss": float(loss)}
    ref_grads = grads_of(model)
    model.zero_grad(set_to_none=True)
    st = torch.as_tensor(steps)
    losses, norms = train_steps(model, o, lambda s: F.cross_entropy(
        model(st[s, :, :T]).reshape(-1, V), st[s, :, 1:].reshape(-1)))
    ref_after = numpy_of(model)
    clipped = sum(n > o["clip"] for n in norms)
    print("  grad norms %s: %d of %d steps clipped at %g" % (
        " ".join("%.3g" % n for n in norms), clipped, S, o["clip"]))
    checks.clip_counts.append((clipped, S))
    ref_lr = [lr_at(o, s) for s in range(S)]

    for rname, harness, _ in runs:
        out_path = os.path.join(dirpath, "gpt%d.%s.out" % (k, rname))
        r = run([harness, "gpt", model_path, case_path, out_path, str(checks.threads)],
                "%s [%s] harness" % (name, rname), checks)
        if r is None:
            continue
        got = st_read(out_path)
        outputs.setdefault(("gpt", k), {})[rname] = got
        parts = r.stderr.decode(errors="replace").rsplit("(", 1)
        checks.simd[rname] = parts[1].split(")")[0] if len(parts) == 2 else "?"
        tag = "%s [%s]" % (name, rname)
        checks.near("forward", tag + " logits", got["logits"], ref["logits"], TOL_FWD)
        checks.near("forward", tag + " loss", got["loss"], [ref["loss"]], TOL_FWD)
        checks.near("forward", tag + " lm_gpt_loss", got["loss_api"], [ref["loss"]], TOL_FWD)
        checks.near_all("gradients", tag + " gradients", {n: got["grad." + n] for n in ref_grads},
                        ref_grads, TOL_GRAD)
        check_key_bias(checks, tag, {n: got["grad." + n] for n in ref_grads}, cfg)
        checks.near("schedule", tag + " lr schedule", got["lr"], ref_lr, TOL_LR)
        checks.near("after steps", tag + " losses of the 10 steps", got["step_loss"], losses, TOL_STEP)
        checks.near_all("after steps", tag + " parameters after 10 steps",
                        {n: got["after." + n] for n in ref_after}, ref_after, TOL_STEP)


# ---------------------------------------------------------------------------------------
# Encoder cases
# ---------------------------------------------------------------------------------------
ENC_CASES = [
    dict(n_layer=2, n_head=3, n_embd=36, n_ctx=16, vocab=258, n_class=3, B=3, T=13),
    dict(n_layer=1, n_head=1, n_embd=24, n_ctx=7, vocab=3001, n_class=1, B=4, T=7, emb_std=0.02),
    dict(n_layer=3, n_head=2, n_embd=24, n_ctx=12, vocab=300, n_class=2, B=2, T=11),
]
ENC_OPTS = dict(lr=1e-2, min_lr=1e-3, warmup=2, steps=5, wd=0.1, beta1=0.9, beta2=0.95,
                eps=1e-5, clip=1.0)


def enc_case(k, cfg, dirpath, dtype, runs, checks, outputs):
    rng = np.random.default_rng(2000 + k)
    B, T, V, K = cfg["B"], cfg["T"], cfg["vocab"], cfg["n_class"]
    mask_id, pad_id = V - 2, V - 1
    name = "enc%d L%d H%d C%d T%d V%d K%d" % (k, cfg["n_layer"], cfg["n_head"], cfg["n_embd"], T, V, K)
    print("%s (ctx %d, batch %d)" % (name, cfg["n_ctx"], B))
    w = random_weights(cfg, rng, encoder=True)
    # lengths: one full row, the others shorter; padding after each text's end
    lens = [T] + [int(x) for x in rng.integers(1, T, size=B - 1)]
    orig = rng.integers(0, V - 2, size=(B, T))
    tokens = orig.copy()
    rows, tgt = [], []
    for b in range(B):
        tokens[b, lens[b]:] = pad_id
        chosen = [t for t in range(lens[b]) if rng.random() < 0.15] or [int(rng.integers(0, lens[b]))]
        for t in chosen:
            u = rng.random()
            tokens[b, t] = mask_id if u < 0.8 else (int(rng.integers(0, V - 2)) if u < 0.9 else orig[b, t])
            rows.append(b * T + t)
            tgt.append(orig[b, t])
    labels = rng.integers(0, 2 if K == 1 else K, size=B)
    case_path = os.path.join(dirpath, "enc%d.case.safetensors" % k)
    meta = {key: str(cfg[key]) for key in ("n_layer", "n_head", "n_embd", "n_ctx", "vocab", "n_class", "B", "T")}
    meta.update({"mask_id": str(mask_id), "pad_id": str(pad_id)})
    meta.update({key: repr(v) for key, v in ENC_OPTS.items()})
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    st_write(case_path, [(n, w[n]) for n in param_names(cfg, True)] +
             [("tokens", f32(tokens)), ("lens", f32(lens)), ("mlm_pos", f32(rows)),
              ("mlm_targets", f32(tgt)), ("labels", f32(labels))], meta)

    model = load_weights(Encoder(cfg), w, dtype)
    ttok = torch.as_tensor(tokens)
    trows, ttgt, tlab = torch.as_tensor(rows), torch.as_tensor(tgt), torch.as_tensor(labels)

    def cls_loss():
        h = model.hidden(ttok, False, lens)
        pooled = model.pool(h, lens)
        logits = model.cls(pooled)
        if K == 1:
            return pooled, logits, F.binary_cross_entropy_with_logits(logits.reshape(-1), tlab.to(dtype))
        return pooled, logits, F.cross_entropy(logits, tlab)

    h = model.hidden(ttok, False, lens)
    mlm_logits = model.mlm_logits(h, trows)
    mlm_loss = F.cross_entropy(mlm_logits, ttgt)
    mlm_loss.backward()
    ref = {"hidden": h.detach().double().numpy(), "mlm_logits": mlm_logits.detach().double().numpy(),
           "mlm_loss": float(mlm_loss)}
    ref_gmlm = grads_of(model)
    model.zero_grad(set_to_none=True)
    pooled, logits, loss = cls_loss()
    loss.backward()
    ref.update({"pooled": pooled.detach().double().numpy(), "cls_logits": logits.detach().double().numpy(),
                "cls_loss": float(loss)})
    ref["probs"] = (torch.sigmoid(logits) if K == 1 else logits.softmax(dim=-1)).detach().double().numpy()
    ref_gcls = grads_of(model)
    model.zero_grad(set_to_none=True)
    losses, norms = train_steps(model, ENC_OPTS, lambda s: cls_loss()[2])
    ref_after = numpy_of(model)
    clipped = sum(n > ENC_OPTS["clip"] for n in norms)
    print("  lens %s, %d masked positions; grad norms %s: %d of %d clipped" % (
        lens, len(rows), " ".join("%.3g" % n for n in norms), clipped, len(norms)))

    valid = np.zeros((B, T), dtype=bool)
    for b in range(B):
        valid[b, :lens[b]] = True
    for rname, harness, _ in runs:
        out_path = os.path.join(dirpath, "enc%d.%s.out" % (k, rname))
        r = run([harness, "enc", case_path, out_path, str(checks.threads)],
                "%s [%s] harness" % (name, rname), checks)
        if r is None:
            continue
        got = st_read(out_path)
        outputs.setdefault(("enc", k), {})[rname] = got
        tag = "%s [%s]" % (name, rname)
        checks.near("encoder forward", tag + " hidden (valid positions)", got["hidden"][valid],
                    ref["hidden"][valid], TOL_FWD)
        checks.near("encoder forward", tag + " masked-LM logits", got["mlm_logits"], ref["mlm_logits"], TOL_FWD)
        checks.near("encoder forward", tag + " masked-LM loss", got["mlm_loss"], [ref["mlm_loss"]], TOL_FWD)
        checks.near_all("encoder gradients", tag + " masked-LM gradients",
                        {n: got["grad_mlm." + n] for n in ref_gmlm}, ref_gmlm, TOL_GRAD)
        checks.near("encoder forward", tag + " mean pool", got["pooled"], ref["pooled"], TOL_FWD)
        checks.near("encoder forward", tag + " classifier logits", got["cls_logits"], ref["cls_logits"], TOL_FWD)
        checks.near("encoder forward", tag + " classifier loss (%s)" % ("BCE" if K == 1 else "CE"),
                    got["cls_loss"], [ref["cls_loss"]], TOL_FWD)
        checks.near("encoder forward", tag + " lm_encoder_cls_step loss", got["cls_loss_api"],
                    [ref["cls_loss"]], TOL_FWD)
        checks.near("encoder forward", tag + " lm_encoder_predict", got["probs"], ref["probs"], TOL_FWD)
        checks.near_all("encoder gradients", tag + " classifier gradients",
                        {n: got["grad_cls." + n] for n in ref_gcls}, ref_gcls, TOL_GRAD)
        check_key_bias(checks, tag, {n: got["grad_cls." + n] for n in ref_gcls}, cfg)
        checks.near("encoder after steps", tag + " losses of the %d steps" % ENC_OPTS["steps"],
                    got["step_loss"], losses, TOL_STEP)
        checks.near_all("encoder after steps", tag + " parameters after %d steps" % ENC_OPTS["steps"],
                        {n: got["after." + n] for n in ref_after}, ref_after, TOL_STEP)


# ---------------------------------------------------------------------------------------
# Encoder-decoder cases: torch.nn.Transformer itself (tools/seq2seq_torch.py) against
# lm_seq2seq, for (post-LN, relu) and (pre-LN, gelu) and one more, random weights written
# as an lm.h checkpoint (PyTorch's state-dict names) and read by lm_seq2seq_load. Per case:
# logits (the source's padding holds random ids, which must not matter), loss, every
# gradient, greedy and beam decoding of each source, and 4 AdamW steps.
# ---------------------------------------------------------------------------------------
S2S_CASES = [
    dict(d_model=24, nhead=3, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=40,
         norm_first=False, activation="relu", n_ctx=16, src_vocab_size=259, tgt_vocab_size=259,
         B=3, S=9, T=6),
    dict(d_model=36, nhead=2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=50,
         norm_first=True, activation="gelu", n_ctx=20, src_vocab_size=300, tgt_vocab_size=270,
         B=4, S=11, T=7),
    dict(d_model=16, nhead=1, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=24,
         norm_first=True, activation="relu", n_ctx=12, src_vocab_size=259, tgt_vocab_size=259,
         B=2, S=5, T=10),
]
S2S_OPTS = dict(lr=1e-2, min_lr=1e-3, warmup=2, steps=4, wd=0.1, beta1=0.9, beta2=0.95,
                eps=1e-5, clip=1.0)
S2S_BEAM = 3
S2S_MODELS = {}    # case number -> (checkpoint path, its reference module), for the CLI


def s2s_weights(model, rng):
    """Random weights that make attention far from uniform and LayerNorm and biases far
    from their fresh values; the embeddings of unit size once scaled by sqrt(d_model)."""
    C = model.cfg["d_model"]
    w = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith("embedding.weight"):
            a = rng.standard_normal(shape) / math.sqrt(C)
        elif "norm" in name and name.endswith("weight"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("in_proj_weight") or name == "generator.weight":
            a = 0.3 * rng.standard_normal(shape)
        elif len(shape) >= 2:
            a = 0.15 * rng.standard_normal(shape)
        else:
            a = 0.05 * rng.standard_normal(shape)
        w[name] = a.astype(np.float32)
    return w


def s2s_batch(rng, cfg):
    """Sources (B, S) and targets (B, T) with their lengths: a full row, an empty target,
    the rest random; the padding holds random ids."""
    B, S, T = cfg["B"], cfg["S"], cfg["T"]
    src = rng.integers(0, cfg["src_vocab_size"], size=(B, S))
    tgt = rng.integers(0, cfg["tgt_vocab_size"] - 3, size=(B, T))
    src_len = [S] + [int(x) for x in rng.integers(1, S + 1, size=B - 1)]
    tgt_len = ([T, 0] + [int(x) for x in rng.integers(0, T + 1, size=B - 2)])[:B]
    return src, src_len, tgt, tgt_len


def s2s_key_bias(d, C):
    """The tensors of d with the key block [C, 2C) of every in_proj_bias left out. That
    block adds q . b_k to a whole row of attention scores, which the softmax ignores: its
    exact gradient is 0, and after AdamW steps it holds what rounding noise made of it
    (see OPTS), so it is checked on its own (its gradient vanishes), not compared."""
    return {n: (np.concatenate([np.asarray(a)[:C], np.asarray(a)[2 * C:]]) if n.endswith("in_proj_bias") else a)
            for n, a in d.items()}


def s2s_case(k, cfg, dirpath, dtype, runs, checks, outputs):
    from seq2seq_torch import Seq2Seq      # here, not at the top: it imports this file
    rng = np.random.default_rng(4000 + k)
    B, S, T = cfg["B"], cfg["S"], cfg["T"]
    mcfg = {n: v for n, v in cfg.items() if n not in ("B", "S", "T")}
    name = "s2s%d %s %s C%d H%d L%d/%d F%d" % (k, "pre-LN" if cfg["norm_first"] else "post-LN",
                                                cfg["activation"], cfg["d_model"], cfg["nhead"],
                                                cfg["num_encoder_layers"], cfg["num_decoder_layers"],
                                                cfg["dim_feedforward"])
    print("%s (ctx %d, V %d/%d, batch %d, S %d, T %d)" % (name, cfg["n_ctx"], cfg["src_vocab_size"],
                                                           cfg["tgt_vocab_size"], B, S, T))
    model = Seq2Seq(**mcfg)
    w = s2s_weights(model, rng)
    model_path = os.path.join(dirpath, "s2s%d.safetensors" % k)
    st_write(model_path, list(w.items()), model.meta())
    src, src_len, tgt, tgt_len = s2s_batch(rng, cfg)
    steps = [s2s_batch(rng, cfg) for _ in range(S2S_OPTS["steps"])]
    case_path = os.path.join(dirpath, "s2s%d.case.safetensors" % k)
    meta = {"B": str(B), "S": str(S), "T": str(T), "max_out": str(cfg["n_ctx"]), "beam": str(S2S_BEAM)}
    meta.update({key: repr(v) for key, v in S2S_OPTS.items()})
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    st_write(case_path, [("src", f32(src)), ("src_len", f32(src_len)), ("tgt", f32(tgt)),
                         ("tgt_len", f32(tgt_len)),
                         ("step_src", f32([b[0] for b in steps])),
                         ("step_src_len", f32([b[1] for b in steps])),
                         ("step_tgt", f32([b[2] for b in steps])),
                         ("step_tgt_len", f32([b[3] for b in steps]))], meta)

    # PyTorch: the module as read back from the checkpoint just written
    model = Seq2Seq.load(model_path, dtype)
    model.train()                          # dropout is 0; the plain (not the fast) path
    logits, loss = model(src, src_len, tgt, tgt_len)
    loss.backward()
    ref = {"logits": logits.detach().double().numpy(), "loss": float(loss)}
    ref_grads = grads_of(model)
    model.zero_grad(set_to_none=True)
    gaps, greedy, beam = [], [], []
    for b in range(B):
        greedy.append(model.translate(src[b, :src_len[b]], 1, cfg["n_ctx"], gaps))
        beam.append(model.translate(src[b, :src_len[b]], S2S_BEAM, cfg["n_ctx"], gaps))
    print("  lens: sources %s, targets %s; outputs of %s tokens (greedy), %s (beam); smallest "
          "score gap at a choice %.3g" % (src_len, tgt_len, [len(g) for g in greedy],
                                          [len(g) for g in beam], min(gaps)))
    losses, norms = train_steps(model, S2S_OPTS, lambda s: model(*steps[s])[1])
    ref_after = numpy_of(model)
    print("  grad norms %s: %d of %d steps clipped" % (
        " ".join("%.3g" % n for n in norms), sum(n > S2S_OPTS["clip"] for n in norms), len(norms)))
    S2S_MODELS[k] = (model_path, Seq2Seq.load(model_path, dtype))

    for rname, harness, _ in runs:
        out_path = os.path.join(dirpath, "s2s%d.%s.out" % (k, rname))
        r = run([harness, "s2s", model_path, case_path, out_path, str(checks.threads)],
                "%s [%s] harness" % (name, rname), checks)
        if r is None:
            continue
        got = st_read(out_path)
        outputs.setdefault(("s2s", k), {})[rname] = got
        tag = "%s [%s]" % (name, rname)
        checks.near("s2s forward", tag + " logits", got["logits"], ref["logits"], TOL_FWD)
        checks.near("s2s forward", tag + " loss", got["loss"], [ref["loss"]], TOL_FWD)
        checks.near("s2s forward", tag + " lm_seq2seq_loss", got["loss_api"], [ref["loss"]], TOL_FWD)
        checks.near_all("s2s gradients", tag + " gradients",
                        {n: got["grad." + n] for n in ref_grads}, ref_grads, TOL_GRAD)
        C = cfg["d_model"]
        worst = max(float(np.abs(got["grad." + n][C:2 * C]).max()) /
                    max(float(np.abs(got["grad." + n]).max()), TINY)
                    for n in ref_grads if n.endswith("in_proj_bias"))
        checks.ok(worst <= 1e-5, "%-52s %.1e of the tensor's largest" % (
            tag + " key-bias gradients vanish", worst))
        for kind, want in (("greedy", greedy), ("beam", beam)):
            rows = got[kind]
            have = [[int(x) for x in r[1:1 + int(r[0])]] for r in rows]
            same = have == [list(x) for x in want]
            what = "greedy" if kind == "greedy" else "beam-%d" % S2S_BEAM
            checks.ok(same, "%-52s %s" % (tag + " %s decoding of %d sources" % (what, B),
                                          "same tokens" if same else "got %s want %s" % (have, want)))
        checks.near("s2s after steps", tag + " losses of the %d steps" % S2S_OPTS["steps"],
                    got["step_loss"], losses, TOL_STEP)
        checks.near_all("s2s after steps", tag + " parameters after %d steps" % S2S_OPTS["steps"],
                        s2s_key_bias({n: got["after." + n] for n in ref_after}, C),
                        s2s_key_bias(ref_after, C), TOL_STEP)


# ---------------------------------------------------------------------------------------
# The lm command line on the encoder-decoder's byte-vocabulary checkpoints.
# ---------------------------------------------------------------------------------------
def s2s_cli_case(k, cfg, dirpath, dtype, runs, checks, outputs):
    """`lm s2s eval` (loss per target token, exact match) and `lm s2s translate` (greedy
    outputs, one a line) on a byte-vocabulary checkpoint of s2s_case, against PyTorch. (A
    model of random weights rarely says EOS, so its exact match is 0 on both sides; lm_test
    checks a trained one's.)"""
    model_path, model = S2S_MODELS[k]
    name = "lm s2s CLI on s2s%d (ctx %d)" % (k, cfg["n_ctx"])
    print(name)
    rng = np.random.default_rng(5000 + k)
    alphabet = [c for c in range(32, 127)]                 # printable ASCII: no tab, no newline
    pairs = []
    for _ in range(20):
        ns = int(rng.integers(1, cfg["n_ctx"] + 1))
        nt = int(rng.integers(0, cfg["n_ctx"]))
        pairs.append((bytes(int(x) for x in rng.choice(alphabet, ns)),
                      bytes(int(x) for x in rng.choice(alphabet, nt))))
    data_path = os.path.join(dirpath, "s2s%d.pairs.tsv" % k)
    with open(data_path, "wb") as f:
        for s, t in pairs:
            f.write(s + b"\t" + t + b"\n")
    src_path = os.path.join(dirpath, "s2s%d.sources.txt" % k)
    with open(src_path, "wb") as f:
        for s, _ in pairs:
            f.write(s + b"\n")
    with torch.no_grad():
        ref_loss = float(model(*s2s_pairs_tensors(pairs))[1])
    outs = [bytes(model.translate(list(s), 1, cfg["n_ctx"])).split(b"\n")[0] for s, _ in pairs]
    ref_em = sum(o == t for o, (_, t) in zip(outs, pairs)) / len(pairs)
    print("  %d pairs: loss %.6f, exact match %.2f (greedy)" % (len(pairs), ref_loss, ref_em))
    for rname, _, lm in runs:
        tag = "%s [%s]" % (name, rname)
        r = run([lm, "s2s", "eval", "--model", model_path, "--data", data_path], tag + " eval", checks)
        if r is not None:
            last = (r.stdout.decode().strip().splitlines() or [""])[-1].split()
            ok = len(last) == 4 and last[0] == "loss" and last[2] == "exact_match"
            loss = float(last[1]) if ok else float("nan")
            em = float(last[3]) if ok else float("nan")
            dev = abs(loss - ref_loss) / abs(ref_loss)
            if "s2s cli eval" not in checks.worst or not dev <= checks.worst["s2s cli eval"][0]:
                checks.worst["s2s cli eval"] = (dev, tag)
            checks.ok(ok and abs(loss - ref_loss) <= TOL_FWD * abs(ref_loss) + 1e-6 and em == ref_em,
                      "%-52s loss %.6f exact_match %.2f vs %.6f %.2f" % (tag + " eval", loss, em,
                                                                         ref_loss, ref_em))
        with open(src_path, "rb") as f:
            try:
                r = subprocess.run([lm, "s2s", "translate", "--model", model_path], stdin=f,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as e:
                checks.ok(False, "%s translate: %s" % (tag, e))
                continue
        got = r.stdout.split(b"\n")
        same = r.returncode == 0 and got[:-1] == outs and got[-1] == b""
        checks.ok(same, "%-52s %d sources, one output a line%s" % (
            tag + " greedy translate", len(pairs), "" if same else ": differ"))


def s2s_pairs_tensors(pairs):
    """Rows of source and target bytes, zero-padded, and their lengths."""
    S, T = max(len(s) for s, _ in pairs), max(max(len(t) for _, t in pairs), 1)
    src = np.zeros((len(pairs), S), dtype=np.int64)
    tgt = np.zeros((len(pairs), T), dtype=np.int64)
    for i, (s, t) in enumerate(pairs):
        src[i, :len(s)] = list(s)
        tgt[i, :len(t)] = list(t)
    return src, [len(s) for s, _ in pairs], tgt, [len(t) for _, t in pairs]


def s2s_trained_case(dirpath, dtype, runs, checks):
    """The other way round: a checkpoint lm.h wrote (`lm s2s train`: pre-LN, gelu, 1 + 2
    layers) read by PyTorch (Seq2Seq.load), whose loss and greedy outputs on the pairs must
    be `lm s2s eval`'s and `lm s2s translate`'s; then saved by PyTorch (Seq2Seq.save) and
    read by lm.h again, whose `lm s2s eval` must print the same line as on its own file."""
    from seq2seq_torch import Seq2Seq
    name = "lm s2s train -> PyTorch -> lm"
    print(name)
    rng = np.random.default_rng(6000)
    pairs = []
    for _ in range(40):
        s = bytes(int(x) for x in rng.choice(list(b"abcdef"), int(rng.integers(1, 8))))
        pairs.append((s, s[::-1]))
    data_path = os.path.join(dirpath, "s2s_trained.pairs.tsv")
    src_path = os.path.join(dirpath, "s2s_trained.sources.txt")
    with open(data_path, "wb") as f:
        f.write(b"".join(s + b"\t" + t + b"\n" for s, t in pairs))
    with open(src_path, "wb") as f:
        f.write(b"".join(s + b"\n" for s, _ in pairs))
    batch = s2s_pairs_tensors(pairs)
    for rname, _, lm in runs:
        tag = "%s [%s]" % (name, rname)
        ck = os.path.join(dirpath, "s2s_trained.%s.safetensors" % rname)
        if run([lm, "s2s", "train", "--data", data_path, "--model", ck, "--embd", "24",
                "--heads", "2", "--enc-layers", "1", "--dec-layers", "2", "--ff", "40",
                "--ctx", "10", "--norm-first", "--activation", "gelu", "--steps", "60",
                "--batch", "8", "--lr", "1e-2", "--warmup", "5", "--val-frac", "0",
                "--eval-every", "0", "--threads", str(checks.threads)],
               tag + " train", checks) is None:
            continue
        model = Seq2Seq.load(ck, dtype)
        model.train()                      # dropout is 0; the plain path
        with torch.no_grad():
            ref_loss = float(model(*batch)[1])
        outs = [bytes(model.translate(list(s), 1, 10)).split(b"\n")[0] for s, _ in pairs]
        ref_em = sum(o == t for o, (_, t) in zip(outs, pairs)) / len(pairs)
        r = run([lm, "s2s", "eval", "--model", ck, "--data", data_path], tag + " eval", checks)
        line = (r.stdout.decode().strip().splitlines() or [""])[-1] if r else ""
        last = line.split()
        ok = len(last) == 4 and last[0] == "loss" and last[2] == "exact_match"
        loss, em = (float(last[1]), float(last[3])) if ok else (float("nan"), float("nan"))
        checks.ok(ok and abs(loss - ref_loss) <= TOL_FWD * abs(ref_loss) + 1e-6 and em == ref_em,
                  "%-52s loss %.6f exact_match %.2f vs PyTorch %.6f %.2f" % (
                      tag + " eval", loss, em, ref_loss, ref_em))
        with open(src_path, "rb") as f:
            r = subprocess.run([lm, "s2s", "translate", "--model", ck], stdin=f,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        got = r.stdout.split(b"\n")
        checks.ok(r.returncode == 0 and got[:-1] == outs and got[-1] == b"",
                  "%-52s %d sources as PyTorch's greedy outputs" % (tag + " translate", len(pairs)))
        again = os.path.join(dirpath, "s2s_trained.%s.torch.safetensors" % rname)
        model.save(again)
        r = run([lm, "s2s", "eval", "--model", again, "--data", data_path],
                tag + " eval of PyTorch's save", checks)
        line2 = (r.stdout.decode().strip().splitlines() or [""])[-1] if r else "(none)"
        checks.ok(ok and line2 == line, "%-52s %s" % (tag + " saved by PyTorch, read by lm",
                                                       line2 if line2 == line else
                                                       "%r vs %r" % (line2, line)))


# ---------------------------------------------------------------------------------------
# The lm command line: eval and greedy generate on the byte-vocabulary checkpoints.
# ---------------------------------------------------------------------------------------
def greedy(model, prompt, n_new, n_ctx):
    """Greedy decoding, the model seeing the last n_ctx tokens; also the smallest gap
    between the best and the second-best logit (a near tie would make the check moot)."""
    seq, gap = list(prompt), float("inf")
    with torch.no_grad():
        for _ in range(n_new):
            logits = model(torch.as_tensor([seq[-n_ctx:]]))[0, -1]
            top = torch.topk(logits, 2).values
            gap = min(gap, float(top[0] - top[1]))
            seq.append(int(torch.argmax(logits)))
    return bytes(seq[len(prompt):]), gap


def cli_case(k, cfg, dirpath, dtype, runs, checks, outputs):
    n_ctx = cfg["n_ctx"]
    name = "lm CLI on gpt%d (ctx %d, %s)" % (k, n_ctx, cfg["style"])
    print(name)
    w = GPT_WEIGHTS[k]             # the checkpoint gpt_case wrote
    model_path = os.path.join(dirpath, "gpt%d.safetensors" % k)
    model = load_weights(GPT(cfg), w, dtype)
    heads = ["--heads", str(cfg["n_head"])] if cfg["style"] == "prefix-nometa" else []

    # eval: texts of 12 n_ctx bytes (11 windows, as the last window's targets would run past
    # the end) and of 11 n_ctx + 5 (11 windows and a partial tail), both more windows than
    # lm_gpt_eval's batch of 8
    evals = []
    for j, n in enumerate((12 * n_ctx, 11 * n_ctx + 5)):
        text = bytes(int(x) for x in np.random.default_rng(3000 + 10 * k + j).integers(0, 256, size=n))
        data_path = os.path.join(dirpath, "eval%d.%d.bin" % (k, j))
        with open(data_path, "wb") as f:
            f.write(text)
        nw = (len(text) - 1) // n_ctx
        ids = torch.as_tensor(list(text))
        x = ids[:nw * n_ctx].reshape(nw, n_ctx)
        y = ids[1:nw * n_ctx + 1].reshape(nw, n_ctx)
        with torch.no_grad():
            evals.append((data_path, len(text), nw, float(F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1)))))

    prompts = [b"Hi", b"A prompt longer than the context window."]
    refs = []
    for p in prompts:
        refs.append(greedy(model, p, 3 * n_ctx, n_ctx))
    print("  eval: %s; greedy decoding: smallest top-2 gap %.3g" % (
        ", ".join("%d bytes, %d windows, loss %.6f" % e[1:] for e in evals), min(g for _, g in refs)))

    for rname, _, lm in runs:
        tag = "%s [%s]" % (name, rname)
        for data_path, n, nw, ref_loss in evals:
            what = tag + " eval, %d bytes" % n
            r = run([lm, "eval", "--model", model_path, "--data", data_path] + heads, what, checks)
            if r is None:
                continue
            last = (r.stdout.decode().strip().splitlines() or [""])[-1].split()
            ok = len(last) == 4 and last[0] == "loss" and last[2] == "ppl"
            loss = float(last[1]) if ok else float("nan")
            ppl = float(last[3]) if ok else float("nan")
            dev = abs(loss - ref_loss) / abs(ref_loss)
            if "cli eval" not in checks.worst or not dev <= checks.worst["cli eval"][0]:
                checks.worst["cli eval"] = (dev, what)
            ref_ppl = math.exp(ref_loss)
            checks.ok(ok and abs(loss - ref_loss) <= TOL_FWD * abs(ref_loss) + 1e-6 and
                      abs(ppl - ref_ppl) <= 2 * TOL_FWD * ref_ppl + 1e-6,
                      "%-52s loss %.6f ppl %.4f vs %.6f %.4f" % (what, loss, ppl, ref_loss, ref_ppl))
        for p, (want, _) in zip(prompts, refs):
            r = run([lm, "generate", "--model", model_path, "--prompt", p.decode(), "--tokens",
                     str(3 * n_ctx), "--temperature", "0"] + heads, tag + " generate", checks)
            if r is None:
                continue
            got = r.stdout
            same = got == p + want
            where = ""
            if not same:
                n = next((i for i in range(min(len(got), len(p + want))) if got[i] != (p + want)[i]),
                         min(len(got), len(p + want)))
                where = ": first difference at byte %d of %d" % (n, len(p + want))
            checks.ok(same, "%-52s %d + %d bytes%s" % (
                tag + " greedy generate, prompt of %d" % len(p), len(p), 3 * n_ctx, where))


# ---------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", nargs=3, action="append", metavar=("NAME", "HARNESS", "LM"),
                    required=True, help="a build to check: its name, C harness and lm binary")
    ap.add_argument("--threads", type=int, default=2, help="threads for the C harness")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--keep", help="keep the case files in this directory")
    args = ap.parse_args()
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    torch.manual_seed(0)
    torch.set_num_threads(1)
    t0 = time.time()

    dirpath = args.keep or tempfile.mkdtemp(prefix="torch_check.")
    os.makedirs(dirpath, exist_ok=True)
    checks = Checks()
    checks.threads = args.threads
    checks.clip_counts = []
    checks.simd = {}
    outputs = {}
    print("PyTorch %s (%s reference); builds: %s" % (
        torch.__version__, args.dtype, ", ".join(r[0] for r in args.run)))
    try:
        for k, cfg in enumerate(GPT_CASES):
            gpt_case(k, cfg, dirpath, dtype, args.run, checks, outputs)
        for k, cfg in enumerate(ENC_CASES):
            enc_case(k, cfg, dirpath, dtype, args.run, checks, outputs)
        for k, cfg in enumerate(S2S_CASES):
            s2s_case(k, cfg, dirpath, dtype, args.run, checks, outputs)
        for k, cfg in enumerate(GPT_CASES):
            if cfg["vocab"] == 256:
                cli_case(k, cfg, dirpath, dtype, args.run, checks, outputs)
        for k, cfg in enumerate(S2S_CASES):
            if cfg["src_vocab_size"] == cfg["tgt_vocab_size"] == 259:
                s2s_cli_case(k, cfg, dirpath, dtype, args.run, checks, outputs)
        s2s_trained_case(dirpath, dtype, args.run, checks)

        # The test exercises clipping: some steps clip and some do not.
        clipped = sum(c for c, _ in checks.clip_counts)
        total = sum(s for _, s in checks.clip_counts)
        print("clipping")
        checks.ok(0 < clipped < total, "%-52s %d of %d GPT steps clipped" % (
            "clip active on some steps, not all", clipped, total))

        # Every build against the first, output by output, with the tolerance of its kind.
        if len(args.run) > 1:
            print("builds against each other")
            for key, by_run in sorted(outputs.items()):
                base = args.run[0][0]
                for rname in by_run:
                    if rname == base or base not in by_run:
                        continue
                    worst, wname = 0.0, ""
                    pair = by_run[rname], by_run[base]
                    if key[0] == "s2s":                 # key biases: noise after steps
                        C = S2S_CASES[key[1]]["d_model"]
                        pair = tuple(s2s_key_bias({n: a for n, a in d.items()}, C) for d in pair)
                    for n, a in pair[0].items():
                        tol = TOL_FWD if not (n.startswith("grad") or n.startswith("after") or
                                              n == "step_loss") else TOL_GRAD
                        d = deviation(a, pair[1][n]) / tol
                        if d > worst:
                            worst, wname = d, n
                    checks.ok(worst <= 1.0, "%-52s worst %s at %.2f of its tolerance" % (
                        "%s%d: %s vs %s" % (key[0], key[1], rname, base), wname, worst))
    finally:
        if not args.keep:
            shutil.rmtree(dirpath, ignore_errors=True)

    print("worst deviations from PyTorch (%s):" % args.dtype)
    for kind in ("forward", "gradients", "after steps", "schedule", "encoder forward",
                 "encoder gradients", "encoder after steps", "s2s forward", "s2s gradients",
                 "s2s after steps", "cli eval", "s2s cli eval"):
        if kind in checks.worst:
            dev, where = checks.worst[kind]
            print("  %-20s %.2e  (%s)" % (kind, dev, where))
    print("kernels: %s" % ", ".join("%s build %s" % (r[0], checks.simd.get(r[0], "?")) for r in args.run))
    print("time %.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (checks.passed, checks.failed))
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
