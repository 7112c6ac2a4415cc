#!/usr/bin/env python3
"""Make a sentence-level classification task for lesson 4 (examples/4_classify.c) from
plain-text corpora, one class each:

    python3 tools/sentence_task.py [--train N] [--test N] [--min 20] [--max 250]
                                   OUT_DIR LABEL=FILE LABEL=FILE ...

Each corpus is cut into sentences: its lines are joined within a paragraph (blank lines
separate paragraphs), a leading verse reference such as "Ge1:1 " is dropped, so is a line
that only names a speaker (a short line ending in ':', as in a play), and the text is split
after '.', '?' or '!'. Sentences of --min to --max bytes are kept, then shuffled (seed 1).
Each class gives N/classes sentences to train.tsv and to test.tsv ("label<TAB>text"), and
all the rest, without labels, to unlabeled.txt (one a line, shuffled): a pool for
pretraining, as unbalanced as the corpora are. Train and test are balanced.
Standard library only."""
import argparse, os, random, re, sys

REF = re.compile(r'^[1-4]?[A-Z][a-z]*\d+:\d+ ')


def sentences(path, lo, hi):
    paras, cur = [], []
    with open(path, encoding='utf-8', errors='surrogateescape') as f:
        for line in f:
            line = REF.sub('', line.strip())
            if not line:
                if cur:
                    paras.append(' '.join(cur))
                cur = []
            elif line.endswith(':') and len(line.split()) <= 3:
                if cur:
                    paras.append(' '.join(cur))
                cur = []
            else:
                cur.append(line)
    if cur:
        paras.append(' '.join(cur))
    out = []
    for p in paras:
        for s in re.split(r'(?<=[.?!])\s+', p):
            s = ' '.join(s.split())
            if lo <= len(s.encode('utf-8', 'surrogateescape')) <= hi:
                out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--train', type=int, default=2000)
    ap.add_argument('--test', type=int, default=2000)
    ap.add_argument('--min', type=int, default=20)
    ap.add_argument('--max', type=int, default=250)
    ap.add_argument('out')
    ap.add_argument('corpora', nargs='+', metavar='LABEL=FILE')
    a = ap.parse_args()
    if len(a.corpora) < 2:
        sys.exit('give at least two LABEL=FILE corpora')
    rng = random.Random(1)
    per = {}
    for c in a.corpora:
        label, _, path = c.partition('=')
        if not label or not path or '\t' in label:
            sys.exit('%s: want LABEL=FILE' % c)
        s = sentences(path, a.min, a.max)
        rng.shuffle(s)
        per[label] = s
    k_train, k_test = a.train // len(per), a.test // len(per)
    n = min(len(s) for s in per.values())
    if n < k_train + k_test:
        sys.exit('a corpus has only %d sentences of %d..%d bytes, fewer than %d'
                 % (n, a.min, a.max, k_train + k_test))
    train, test, pool = [], [], []
    for label, s in per.items():
        train += [(label, x) for x in s[:k_train]]
        test += [(label, x) for x in s[k_train:k_train + k_test]]
        pool += s[k_train + k_test:]
    for rows in (train, test, pool):
        rng.shuffle(rows)
    os.makedirs(a.out, exist_ok=True)
    for name, rows in (('train.tsv', train), ('test.tsv', test)):
        with open(os.path.join(a.out, name), 'w', encoding='utf-8', errors='surrogateescape') as f:
            f.writelines('%s\t%s\n' % r for r in rows)
    with open(os.path.join(a.out, 'unlabeled.txt'), 'w', encoding='utf-8', errors='surrogateescape') as f:
        f.writelines(x + '\n' for x in pool)
    print('%s: train %d, test %d, unlabeled %d (sentences: %s)' % (a.out, len(train), len(test),
          len(pool), ', '.join('%s %d' % (k, len(s)) for k, s in per.items())))


if __name__ == '__main__':
    main()
