#!/usr/bin/env python3
"""The baseline for lesson 4 (examples/4_classify.c): multinomial naive Bayes over the
character n-grams of each text, n = 1 .. N, with '^' and '$' marking its start and end,
add-0.1 smoothing. It reads the lesson's files ("label<TAB>text" lines, blank lines
skipped), uses the same --labels F (the first fraction F of the training lines), and
prints the lesson's last two lines: `accuracy X` and `macro_f1 X`.

    python3 tools/nb_baseline.py [--labels F] [--n N] TRAIN.tsv TEST.tsv

With N = 5 on the langid word set this is the 1..5-gram row of that set's baseline_nb.py.
Standard library only."""
import argparse, collections, math, sys


def load(path):
    rows = []
    with open(path, encoding='utf-8', errors='surrogateescape') as f:
        for k, line in enumerate(f, 1):
            line = line.rstrip('\r\n')
            if not line:
                continue
            if '\t' not in line:
                sys.exit('%s:%d: no TAB after the label' % (path, k))
            label, text = line.split('\t', 1)
            rows.append((label, text))
    if not rows:
        sys.exit('%s has no data' % path)
    return rows


def grams(text, n_max):
    s = '^' + text + '$'
    return [s[i:i + n] for n in range(1, n_max + 1) for i in range(len(s) - n + 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--labels', type=float, default=1.0)
    ap.add_argument('--n', type=int, default=5)
    ap.add_argument('train')
    ap.add_argument('test')
    a = ap.parse_args()
    if not 0 < a.labels <= 1:
        sys.exit('--labels wants a fraction in (0, 1]')
    train, test = load(a.train), load(a.test)
    train = train[:max(1, int(a.labels * len(train) + 0.5))]
    counts = collections.defaultdict(collections.Counter)
    total, prior, vocab = collections.Counter(), collections.Counter(), set()
    for label, text in train:
        g = grams(text, a.n)
        counts[label].update(g)
        total[label] += len(g)
        vocab.update(g)
        prior[label] += 1
    labels = sorted(prior)
    V = len(vocab)

    def score(label, g):
        c, t = counts[label], total[label] + 0.1 * V
        return math.log(prior[label]) + sum(math.log((c[x] + 0.1) / t) for x in g)

    conf = collections.Counter()
    for label, text in test:
        g = grams(text, a.n)
        conf[(label, max(labels, key=lambda L: score(L, g)))] += 1
    classes = sorted(set(labels) | {l for l, _ in test})
    f1s = []
    for L in classes:
        tp = conf[(L, L)]
        fp = sum(conf[(o, L)] for o in classes if o != L)
        fn = sum(conf[(L, o)] for o in classes if o != L)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    acc = sum(conf[(L, L)] for L in classes) / len(test)
    print('naive Bayes, char 1..%d-grams, %d training texts' % (a.n, len(train)))
    print('accuracy %.4f' % acc)
    print('macro_f1 %.4f' % (sum(f1s) / len(f1s)))


if __name__ == '__main__':
    main()
