#!/usr/bin/python3
"""Reference GPT-2 encoder, to check lm.h's GPT-2 tokenizer id for id.

It follows GPT-2's published algorithm (openai/gpt-2, src/encoder.py): split the text with
the regex below (Python's `regex` module), write each piece's UTF-8 bytes as printable
characters (the byte-to-unicode table), then repeatedly merge the adjacent pair with the
lowest rank in vocab.bpe, all its occurrences left to right, and look the pieces up in
encoder.json.

Input is bytes, which GPT-2 itself never sees (it takes str). Bytes that are not valid UTF-8
are decoded with "surrogateescape": each such byte becomes a lone surrogate U+DC80..U+DCFF,
which is neither a letter, a number nor a space, and goes back to the same byte when the
piece is encoded. lm.h classifies such bytes the same way, so the two must agree on any byte
string.

Usage (needs python3-regex; run with /usr/bin/python3):
  gpt2_ref.py DIR ids FILE          ids of FILE's bytes, one line separated by spaces
  gpt2_ref.py DIR cases FILE        FILE holds cases (u32 little-endian length, bytes ...):
                                    one line of ids per case
  gpt2_ref.py DIR emit-c            fixed test cases as C arrays for the tokenizer tests in lm_test.c
  gpt2_ref.py fuzz N SEED FILE      write N random cases (mixed scripts, whitespace,
                                    contractions, invalid UTF-8) to FILE
"""
import json
import random
import struct
import sys

import regex

PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def byte_chars():
    """byte -> the printable character GPT-2 writes for it."""
    keep = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Gpt2:
    def __init__(self, d):
        with open(d + "/encoder.json", encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(d + "/vocab.bpe", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1:] if line]
        self.rank = {m: i for i, m in enumerate(merges)}
        self.chars = byte_chars()
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.rank.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, parts[i], parts[i + 1])
            if best is None:
                break
            _, a, b = best
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        self.cache[word] = parts
        return parts

    def encode(self, data):
        text = data.decode("utf-8", "surrogateescape")
        ids = []
        for piece in PATTERN.findall(text):
            raw = piece.encode("utf-8", "surrogateescape")
            word = "".join(self.chars[b] for b in raw)
            ids.extend(self.encoder[p] for p in self.bpe(word))
        return ids


def read_cases(path):
    data = open(path, "rb").read()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


def write_cases(path, cases):
    with open(path, "wb") as f:
        for c in cases:
            f.write(struct.pack("<I", len(c)) + c)


# Fixed cases for the tokenizer tests in lm_test.c: each exercises one rule of the pattern or one kind
# of text. Bytes literals, so NUL and invalid UTF-8 can be written down.
FIXED = [
    b"Hello world",
    b"Hello, world! How are you doing today?",
    b"The quick brown fox jumps over the lazy dog.",
    b"I'm here, you're there, we've been, he'll go, she'd say, it's, don't",
    b"IT'S JOHN'S DOG'S 'S 'T 'RE",
    b"'s's'''s 'sx 'll'lll ''re",
    b"x  y   z    w\t\tv\n\nu \n v \t\n",
    b"trailing spaces   ",
    b"   leading",
    b"\n\n\n",
    b" ",
    b"a",
    b"",
    b"tabs\tand\r\nCRLF\r\n  indented\n\tcode();\n",
    b"12345 678 9.5 3,141 1e10 0x1F 007",
    b"x=1;y=2;if(x<y){return x*y;}",
    b"def f(a, b):\n    return a + b  # sum\n",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00c5ngstr\u00f6m".encode(),
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8".encode(),
    "\ud55c\uad6d\uc5b4 \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u05e2\u05d1\u05e8\u05d9\u05ea \u0627\u0644\u0639\u0631\u0628\u064a\u0629".encode(),
    "emoji \U0001f600\U0001f44d\U0001f3fd \U0001f1eb\U0001f1f7 \u2764\ufe0f!".encode(),
    "\u00bd \u2155 \u0663\u0664 \u2167 \u00b2\u00b3 \u3007".encode(),
    "nbsp\u00a0here\u2003em\u3000ideo\u2028line\u0085nel".encode(),
    "\u001c\u001d\u001e\u001f are not spaces".encode(),
    b"NUL\x00byte\x00\x00end",
    b"bad \xff\xfe utf8 \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf \x80x",
    b"\xe2\x82\xac\xe2\x82",
    b"<|endoftext|>",
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    b"-" * 70 + b" " + b"=" * 33,
    b"supercalifragilisticexpialidocious antidisestablishmentarianism",
    b"First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n",
]


def c_string(b):
    out = []
    for c in b:
        if 32 <= c < 127 and c not in (34, 92, 63):
            out.append(chr(c))
        else:
            out.append("\\%03o" % c)
    return '"' + "".join(out) + '"'


def emit_c(g):
    print("/* Generated by tools/gpt2_ref.py DIR emit-c: GPT-2 ids of fixed texts. */")
    print("static const struct { const char *text; int n, nids, first; } lm_t_gpt2_cases[] = {")
    flat = []
    for b in FIXED:
        ids = g.encode(b)
        print("    {%s, %d, %d, %d}," % (c_string(b), len(b), len(ids), len(flat)))
        flat.extend(ids)
    print("};")
    print("static const int lm_t_gpt2_ids[%d] = {" % max(1, len(flat)))
    for i in range(0, len(flat), 12):
        print("    " + ", ".join(str(x) for x in flat[i:i + 12]) + ",")
    print("};")


def fuzz(n, seed):
    rnd = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009", "\x0b", "\x0c", "\x85",
        "'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'LL",
        ".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`\"",
        "\u00e9\u00e8\u00e0\u00fc\u00f6\u00df\u00e7\u00f1\u00c9",
        "\u4f60\u597d\u4e16\u754c\u65e5\u672c\u8a9e\u3002\u3001",
        "\u0430\u0431\u0432\u0433\u0434\u0435\u0436\u03b1\u03b2\u03b3",
        "\u0661\u0662\u00bd\u2155\u2167\u00b2",
        "\U0001f600\U0001f44d\U0001f3fd\u2764\ufe0f\u200d",
        "\u001c\u001d\u001e\u001f\u0000\u0007",
    ]
    cases = []
    for _ in range(n):
        parts = []
        for _ in range(rnd.randint(0, 40)):
            r = rnd.random()
            if r < 0.08:                       # raw bytes, often invalid UTF-8
                parts.append(bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4))))
            else:
                pool = rnd.choice(pools)
                k = rnd.randint(1, 6)
                parts.append("".join(rnd.choice(pool) if len(pool) > 3 else pool
                                     for _ in range(k)).encode())
        cases.append(b"".join(parts))
    return cases


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "fuzz":
        write_cases(a[3], fuzz(int(a[1]), int(a[2])))
        return
    g = Gpt2(a[0])
    if a[1] == "ids":
        print(" ".join(map(str, g.encode(open(a[2], "rb").read()))))
    elif a[1] == "cases":
        for c in read_cases(a[2]):
            print(" ".join(map(str, g.encode(c))))
    elif a[1] == "emit-c":
        emit_c(g)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
