#!/usr/bin/python3
"""lm.h's encoder-decoder (lm_seq2seq) as a PyTorch module, so that weights move both ways.

The model is torch.nn.Transformer itself, with the embeddings and output layer of PyTorch's
translation tutorial around it, under the names lm.h's checkpoints use:

    src_tok_emb.embedding.weight   (V_src, d_model)   source token embedding
    tgt_tok_emb.embedding.weight   (V_tgt, d_model)   target token embedding
    transformer.*                                    nn.Transformer's own state dict
    generator.weight, .bias        (V_tgt, d_model)   the output layer

Tokens enter as embedding * sqrt(d_model) plus the sinusoidal positions of "Attention Is
All You Need" (computed in float64, as lm.h does, and not saved); the source's padding is
masked in the encoder and in the decoder's cross-attention, the decoder is causal. The
decoder reads BOS + target and predicts target + EOS. Dropout is 0: this module is for
checking and for moving weights, not for training recipes.

    from seq2seq_torch import Seq2Seq
    model = Seq2Seq.load("model.safetensors")          # an lm.h checkpoint (F32)
    print(model.translate([ord(c) for c in "5 March 2021"]))
    model.save("again.safetensors")                     # lm.h loads it back

Needs Debian's python3-torch and python3-numpy (/usr/bin/python3), and torch_check.py
beside it (its safetensors reader and writer; F32 files, as lm.h writes). Run as a script, it
loads a checkpoint and translates each line of stdin (byte vocabulary), as
`lm s2s translate` does:   tools/seq2seq_torch.py MODEL < sources.txt
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

from torch_check import st_read, st_write    # safetensors by hand (F32), beside this file

DEFAULTS = dict(d_model=128, nhead=4, num_encoder_layers=3, num_decoder_layers=3,
                dim_feedforward=None, norm_first=False, activation="relu", n_ctx=128,
                src_vocab_size=259, tgt_vocab_size=259, bos_id=None, eos_id=None, pad_id=None)


def st_meta(path):
    """The __metadata__ of a safetensors file (a dict of strings)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def positions(T, C):
    """pe[t, j] = sin(t / 10000^(2i/C)) for j = 2i, cos(...) for j = 2i + 1 (float64)."""
    t = np.arange(T, dtype=np.float64)[:, None]
    j = np.arange(C)
    f = np.exp(-(j & ~1).astype(np.float64) * math.log(10000.0) / C)
    ang = t * f[None, :]
    return np.where(j % 2 == 1, np.cos(ang), np.sin(ang))


class TokenEmbedding(nn.Module):
    def __init__(self, vocab, d_model):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.scale = math.sqrt(d_model)

    def forward(self, tokens):
        return self.embedding(tokens) * self.scale


class Seq2Seq(nn.Module):
    def __init__(self, **cfg):
        super().__init__()
        c = dict(DEFAULTS)
        c.update({k: v for k, v in cfg.items() if v is not None})
        if c["dim_feedforward"] is None:
            c["dim_feedforward"] = 4 * c["d_model"]
        V = c["tgt_vocab_size"]
        for k, d in (("bos_id", 3), ("eos_id", 2), ("pad_id", 1)):
            if c[k] is None:
                c[k] = V - d
        self.cfg = c
        C = c["d_model"]
        self.transformer = nn.Transformer(
            d_model=C, nhead=c["nhead"], num_encoder_layers=c["num_encoder_layers"],
            num_decoder_layers=c["num_decoder_layers"], dim_feedforward=c["dim_feedforward"],
            dropout=0.0, activation=c["activation"], batch_first=True, norm_first=c["norm_first"])
        self.generator = nn.Linear(C, V)
        self.src_tok_emb = TokenEmbedding(c["src_vocab_size"], C)
        self.tgt_tok_emb = TokenEmbedding(V, C)
        self.register_buffer("pe", torch.tensor(positions(c["n_ctx"], C), dtype=torch.float32),
                             persistent=False)

    # -----------------------------------------------------------------------------------
    def _embed(self, emb, tokens):
        x = emb(tokens)
        return x + self.pe[:tokens.shape[1]].to(x.dtype)

    def encode(self, src, src_len):
        """src (B, S) long, src_len list of B lengths -> memory (B, S, C), padding mask."""
        B, S = src.shape
        pad = torch.arange(S)[None, :] >= torch.as_tensor(src_len)[:, None]
        mem = self.transformer.encoder(self._embed(self.src_tok_emb, src), src_key_padding_mask=pad)
        return mem, pad

    def decode(self, dec, mem, pad):
        """Decoder inputs dec (B, T) long (BOS first) -> logits (B, T, V_tgt)."""
        T = dec.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        y = self.transformer.decoder(self._embed(self.tgt_tok_emb, dec), mem, tgt_mask=causal,
                                     memory_key_padding_mask=pad)
        return self.generator(y)

    def teacher(self, tgt, tgt_len):
        """Decoder inputs BOS + target and targets target + EOS, both padded with PAD."""
        c = self.cfg
        B, T = len(tgt_len), (tgt.shape[1] if len(tgt_len) else 0)
        dec = torch.full((B, T + 1), c["pad_id"], dtype=torch.long)
        out = torch.full((B, T + 1), c["pad_id"], dtype=torch.long)
        for b, n in enumerate(tgt_len):
            dec[b, 0] = c["bos_id"]
            dec[b, 1:n + 1] = torch.as_tensor(tgt[b, :n])
            out[b, :n] = torch.as_tensor(tgt[b, :n])
            out[b, n] = c["eos_id"]
        return dec, out

    def forward(self, src, src_len, tgt, tgt_len):
        """Logits (B, T + 1, V_tgt) and the mean cross-entropy over the counted positions."""
        mem, pad = self.encode(torch.as_tensor(src), src_len)
        dec, out = self.teacher(np.asarray(tgt), tgt_len)
        logits = self.decode(dec, mem, pad)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), out.reshape(-1),
                                           ignore_index=self.cfg["pad_id"])
        return logits, loss

    # -----------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, src, beam=1, max_out=None, gaps=None):
        """Tokens of one source, as lm_seq2seq_translate: beam search over `beam`
        hypotheses by total log-probability (greedy for 1), BOS and PAD never chosen, ties
        to the earlier hypothesis and the smaller token; stops at EOS, max_out tokens or
        n_ctx. gaps (a list) receives, per step, the gap between the last score kept and
        the first one dropped (how close the choice was)."""
        c = self.cfg
        N, K = c["n_ctx"], max(1, beam)
        limit = min(max_out if max_out is not None else N, N)
        if limit <= 0:
            return []
        mem, pad = self.encode(torch.as_tensor([list(src)]), [len(src)])
        live = [([], 0.0)]
        best = None
        for pos in range(limit):
            cand = []
            for i, (toks, score) in enumerate(live):
                dec = torch.as_tensor([[c["bos_id"]] + toks])
                logits = self.decode(dec, mem, pad)[0, -1].double()
                lp = torch.log_softmax(logits, dim=-1).numpy()
                for j in range(len(lp)):
                    if j in (c["bos_id"], c["pad_id"]):
                        continue
                    cand.append((score + float(lp[j]), i, j))
            cand.sort(key=lambda x: (-x[0], x[1], x[2]))
            if gaps is not None and len(cand) > K:
                gaps.append(cand[K - 1][0] - cand[K][0])
            cand = cand[:K]
            nlive = []
            for s, i, j in cand:
                toks = live[i][0]
                if j == c["eos_id"] or pos + 1 == limit:
                    out = toks if j == c["eos_id"] else toks + [j]
                    if best is None or s > best[0]:
                        best = (s, out)
                    continue
                nlive.append((toks + [j], s))
            live = nlive
            if best is not None and (not live or best[0] >= live[0][1]):
                break
        return best[1] if best else []

    # -----------------------------------------------------------------------------------
    def meta(self):
        c = self.cfg
        m = {"format": "pt"}
        for k in ("d_model", "nhead", "num_encoder_layers", "num_decoder_layers", "dim_feedforward",
                  "n_ctx", "src_vocab_size", "tgt_vocab_size", "bos_id", "eos_id", "pad_id"):
            m[k] = str(c[k])
        m["norm_first"] = "true" if c["norm_first"] else "false"
        m["activation"] = c["activation"]
        return m

    def save(self, path):
        """An lm.h checkpoint: the state dict (F32) and the config as metadata."""
        st_write(path, [(n, p.detach().float().numpy()) for n, p in self.state_dict().items()],
                 self.meta())

    @classmethod
    def load(cls, path, dtype=torch.float32):
        """A module with the config and weights of an lm.h checkpoint."""
        w, meta = st_read(path), st_meta(path)
        cfg = {}
        for k in DEFAULTS:
            if k in meta:
                v = meta[k]
                cfg[k] = (v in ("true", "True", "1")) if k == "norm_first" else \
                    (v if k == "activation" else int(v))
        model = cls(**cfg).to(dtype)
        state = {n: torch.tensor(np.array(a), dtype=dtype) for n, a in w.items()
                 if n != "positional_encoding.pos_embedding"}
        model.load_state_dict(state)
        return model


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seq2seq_torch.py MODEL < sources   (one source a line, bytes)")
    model = Seq2Seq.load(sys.argv[1])
    model.train()    # dropout is 0; the training-mode path is the plain one
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\n").rstrip(b"\r")
        out = bytes(model.translate(list(line)))
        sys.stdout.buffer.write(out.split(b"\n")[0] + b"\n")


if __name__ == "__main__":
    main()
