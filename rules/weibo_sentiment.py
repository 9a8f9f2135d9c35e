"""Weibo sentiment model, three classes (negative, neutral, positive): a multinomial logistic
regression over hashed features of jieba tokens, Weibo emoticons, emoji, negation-marked
tokens, token bigrams and character bigrams.

Why not SnowNLP's stock model: it was trained on product reviews and segments with its own slow
segmenter (58 % accuracy on Weibo, ~140 posts/s).

Why hashed and vectorised: on this (2-core) class of machine a Python dict look-up into a large
weight table costs ~0.2-0.8 µs, and a post yields ~100-150 features, which alone caps a
dict-based scorer near 8,000 posts/s. Instead, segmented tokens of a whole batch are joined into
one code-point array and every feature is hashed with a polynomial rolling hash computed by
numpy (prefix sums in wrapping uint64 arithmetic), so the per-feature work runs in C. The weight
table is a dense float16 array of 2**bits buckets by 3 classes; collisions are rare and
harmless for a linear model. The model is produced by :mod:`rules.train_sentiment`.

File format (``seeds/models/weibo_sentiment.msgpack.gz``): gzip'd msgpack map with ``format``
(``crisismon-weibo-sentiment/3``), ``bits``, ``weights`` (little-endian float16 bytes, row-major
bucket by class), ``bias`` (one per class), ``meta`` and ``classes``. The two-class format
``/2`` of earlier releases (one weight per bucket, one bias) still loads.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from rules import derived
from rules.sentiment import Polarity
from rules.textnorm import fold_batch
from rules.tokenize import _PUNCT, NEGATORS, Segmenter, default_segmenter

FORMAT = "crisismon-weibo-sentiment/3"
FORMAT_BINARY = "crisismon-weibo-sentiment/2"
"""The two-class format of earlier releases: still loads (``scoring.model_path``)."""
MODEL_FILENAME = "weibo_sentiment.msgpack.gz"
DEFAULT_BITS = 21

# Rolling-hash base (odd, so invertible mod 2**64) and its inverse; salts separate feature kinds.
_P = 0x100000001B3
_PINV = pow(_P, -1, 1 << 64)
_NOT_SALT = np.uint64(0x9E3779B97F4A7C15)
_BIGRAM_MUL = np.uint64(0xC2B2AE3D27D4EB4F)
_BIGRAM_SALT = np.uint64(0x165667B19E3779F9)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U64 = np.uint64

_KIND: dict[str, int] = {**dict.fromkeys(NEGATORS, 1), **dict.fromkeys(_PUNCT, 2)}
# Normalisation leaves only runs of U+0020 as whitespace; longer runs than listed are merely
# noise tokens (their character bigrams are skipped anyway).
_KIND.update(dict.fromkeys((" " * k for k in range(1, 17)), 3))
_KIND_OF_CHAR = np.zeros(0x110000, dtype=np.int8)
"""``_KIND`` of each one-character token, by code point (1.1 MB, zero-filled pages)."""
_STARTS_LONGER = np.zeros(0x110000, dtype=bool)
"""Whether some multi-character token of ``_KIND`` starts with the code point."""
for _tok, _kind in _KIND.items():
    if len(_tok) == 1:
        _KIND_OF_CHAR[ord(_tok)] = _kind
    else:
        _STARTS_LONGER[ord(_tok[0])] = True
SCORE_BATCH = 128
"""Texts featurised together by ``score_many``: large enough to amortise numpy call overhead,
small enough for the working arrays to stay in cache."""


_CACHE_NAME = "weibo-sentiment"
_CACHE_VERSION = "weibo-sentiment weights float32 row-major, bias float64, meta JSON /2"
"""Part of a cached table's key (``WeiboSentiment.load``): changed whenever what is
cached, or how it is made from the file, changes."""


def shipped_model_path() -> Path:
    """Path of the model shipped in ``seeds/models/``."""
    from seeds import SEEDS_DIR

    return SEEDS_DIR / "models" / MODEL_FILENAME


class _Powers:
    """Growing tables of P**k and P**-k mod 2**64 (shared, read-mostly)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pow: np.ndarray = np.ones(1, dtype=np.uint64)
        self.inv: np.ndarray = np.ones(1, dtype=np.uint64)

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pw, inv = self.pow, self.inv
        if len(pw) > n:
            return pw, inv
        with self._lock:
            size = max(n + 1, 2 * len(self.pow), 1 << 16)
            # cumprod wraps modulo 2**64 on uint64 arrays: exactly the arithmetic wanted.
            pw = np.cumprod(np.full(size, _P, dtype=np.uint64))
            pw = np.concatenate(([_U64(1)], pw[:-1]))
            inv = np.cumprod(np.full(size, _PINV, dtype=np.uint64))
            inv = np.concatenate(([_U64(1)], inv[:-1]))
            self.pow, self.inv = pw, inv
        return pw, inv


_POWERS = _Powers()


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads rolling hashes over all 64 bits before bucketing."""
    h = (h ^ (h >> _U64(30))) * _MIX1
    h = (h ^ (h >> _U64(27))) * _MIX2
    return h ^ (h >> _U64(31))


def featurise(
    texts: Sequence[str], bits: int, segmenter: Segmenter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hashed binary features of raw texts: ``(doc_index, bucket)`` pairs, unique per doc.

    Features: every token (emoticon, emoji, word; ``NOT_``-marked within two tokens after a
    negator, until punctuation), every pair of adjacent tokens, every character bigram of the
    token stream. A two-character word and the same character bigram share one bucket on
    purpose (same evidence).
    """
    seg = segmenter or default_segmenter()
    n_docs = len(texts)
    if not n_docs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    # The whole batch is folded and segmented as one string: per-text calls cost more in
    # call overhead than in work.
    toks, counts = seg.raw_tokens_batch(fold_batch(texts), n_docs)
    n_tok = len(toks)
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    if not n_tok:
        return empty

    # The tokens' lengths from where NUL, which no token holds (folding made every control
    # character a space), falls in their joined code points: ~10x cheaper than asking each
    # token its ``len`` (a Python call per token).
    raw = np.frombuffer("\0".join(toks).encode("utf-32-le"), dtype=np.uint32)
    kept = raw != 0
    if len(raw) - int(np.count_nonzero(kept)) == n_tok - 1:
        bounds = np.empty(n_tok + 1, dtype=np.int64)
        bounds[0] = -1
        bounds[1:-1] = np.flatnonzero(~kept)
        bounds[-1] = len(raw)
        lens = np.diff(bounds) - 1
        chars = raw[kept]
    else:  # a token holds NUL (a segmenter of one's own): ask each its length
        lens = np.fromiter(map(len, toks), dtype=np.int64, count=n_tok)
        chars = np.frombuffer("".join(toks).encode("utf-32-le"), dtype=np.uint32)
    codes = chars.astype(np.uint64)
    ends = np.cumsum(lens)
    starts = ends - lens
    n_chr = int(ends[-1])
    pw, inv = _POWERS.upto(n_chr + 2)
    prefix = np.zeros(n_chr + 1, dtype=np.uint64)
    np.cumsum(codes * pw[:n_chr], out=prefix[1:])

    def span(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        # Position-independent hash of chars [i, j): sum c_k P**(k-i).
        return (prefix[j] - prefix[i]) * inv[i]

    tok_doc = np.repeat(np.arange(n_docs, dtype=np.int64), counts)
    # Tokens' kinds (``_KIND``): 1 negator, 2 punctuation, 3 whitespace. A one-character
    # token's by a table of code points; a longer one is looked up only if it starts as one
    # of ``_KIND``'s longer keys does (不, 没, 从 …: a few tokens in a hundred). A look-up per
    # token cost ~5x more.
    if lens.all():
        first = chars[starts]
        one = lens == 1
        kind = np.where(one, _KIND_OF_CHAR[first], 0).astype(np.int8)
        for i in np.flatnonzero(_STARTS_LONGER[first] & ~one).tolist():
            kind[i] = _KIND.get(toks[i], 0)
    else:  # an empty token (a segmenter of one's own)
        kind = np.fromiter(map(_KIND.get, toks, repeat(0, n_tok)), dtype=np.int8, count=n_tok)
    space = kind == 3
    neg = kind == 1
    brk = kind >= 2

    # Negation scope: one or two tokens after a negator, same doc, no punctuation in between.
    same1 = np.zeros(n_tok, dtype=bool)
    same1[1:] = tok_doc[1:] == tok_doc[:-1]
    scope = np.zeros(n_tok, dtype=bool)
    scope[1:] = neg[:-1] & same1[1:]
    scope[2:] |= neg[:-2] & same1[2:] & same1[1:-1] & ~brk[1:-1] & ~neg[1:-1]
    scope &= ~brk & ~neg

    tok_h = span(starts, ends) ^ (scope.astype(np.uint64) * _NOT_SALT)
    keep_tok = ~space
    # Bigrams of adjacent non-space tokens (spaces are dropped first, as the segmenter would).
    kt = np.flatnonzero(keep_tok)
    kd = tok_doc[kt]
    kh = tok_h[kt]
    pair = kd[1:] == kd[:-1]
    big_h = (_mix(kh[:-1][pair]) * _BIGRAM_MUL + kh[1:][pair]) ^ _BIGRAM_SALT
    big_d = kd[1:][pair]
    # Character bigrams inside one doc, neither char whitespace.
    chr_doc = np.repeat(tok_doc, lens)
    solid = codes > 32
    ok = (chr_doc[1:] == chr_doc[:-1]) & solid[1:] & solid[:-1]
    ci = np.flatnonzero(ok)
    chr_h = span(ci, ci + 2)

    docs = np.concatenate((kd, big_d, chr_doc[ci]))
    hashes = np.concatenate((kh, big_h, chr_h))
    buckets = _mix(hashes) >> _U64(64 - bits)
    keys = (docs.astype(np.uint64) << _U64(bits)) | buckets
    # Binary features: sort, then drop repeats (cheaper than np.unique's hash table here).
    # Sorted as signed integers, of 32 bits where they fit (a batch of ``SCORE_BATCH``):
    # numpy's vectorised sort serves those, ~5x faster than for uint64; same order, as
    # every key is below 2**63.
    if n_docs << bits <= 1 << 31:
        keys = keys.astype(np.int32)
    elif n_docs << bits <= 1 << 63:
        keys = keys.astype(np.int64)
    keys.sort()
    if len(keys) > 1:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return (keys >> bits).astype(np.int64), (keys & ((1 << bits) - 1)).astype(np.uint64)


class ModelFile(msgspec.Struct):
    """On-disk layout of a trained model. ``classes`` 1: one logit, P(positive) (format /2);
    3: logits of negative, neutral, positive, ``weights`` row-major (bucket, class), ``bias``
    one per class (format /3)."""

    format: str
    bits: int
    weights: bytes
    bias: float | list[float]
    meta: dict[str, Any] = {}
    classes: int = 1


class WeiboSentiment:
    """Sentiment scorer for Weibo posts (implements ``rules.sentiment.SentimentModel``).

    A three-class model (negative / neutral / positive, the shipped one) serves
    :meth:`polarity_many`; ``score`` is then ``Polarity.sentiment`` (neutral counts half).
    A two-class model file (format /2) still loads: its P(positive) is the score and it has no
    neutral mass."""

    name = "weibo-lr"

    def __init__(
        self,
        weights: np.ndarray,
        bias: float | Sequence[float] | np.ndarray,
        meta: dict[str, Any] | None = None,
        segmenter: Segmenter | None = None,
    ) -> None:
        w = np.asarray(weights, dtype=np.float32)
        if w.ndim == 1:
            w = w[:, None]
        bits = len(w).bit_length() - 1
        if len(w) != 1 << bits:
            raise ValueError("weight table size must be a power of two")
        if w.shape[1] not in (1, 3):
            raise ValueError("a model has one logit (binary) or three (neg, neutral, pos)")
        self.bits = bits
        self.classes = int(w.shape[1])
        # Row-major: a bucket's three weights share a cache line, so ``logits`` gathers a
        # feature's row with one memory access (the table is 24 MB, every gather a cache
        # miss): ~20 % less than a gather per class from one contiguous column each.
        self._w = np.ascontiguousarray(w)
        self._bias = np.asarray(bias, dtype=np.float64).reshape(self.classes)
        self.meta = meta or {}
        self._segmenter = segmenter or default_segmenter()

    @classmethod
    def load(cls, path: Path | None = None, segmenter: Segmenter | None = None) -> WeiboSentiment:
        """Load a model file; ``None`` loads the model shipped in ``seeds/models/``.

        The weight table made from a file is kept in the user's cache (``rules.derived``,
        by a hash of the file's bytes) and read from there the next time (~0.01 s instead
        of ~0.08 s to unzip and widen it)."""
        path = path or shipped_model_path()
        raw = path.read_bytes()
        entry = derived.key(_CACHE_VERSION, raw)
        cached = derived.load(_CACHE_NAME, entry)
        if cached is not None:
            try:
                return cls(cached["weights"], cached["bias"], json.loads(str(cached["meta"])),
                           segmenter)
            except (KeyError, ValueError, TypeError):
                pass  # not an entry this version wrote: made afresh below, and replaced
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        mf = msgspec.msgpack.decode(raw, type=ModelFile)
        if mf.format not in (FORMAT, FORMAT_BINARY):
            raise ValueError(f"{path}: unsupported model format {mf.format!r}")
        classes = 3 if mf.format == FORMAT else 1
        w = np.frombuffer(mf.weights, dtype="<f2")
        if len(w) != classes << mf.bits:
            raise ValueError(f"{path}: {len(w)} weights for {mf.bits} hash bits")
        model = cls(w.reshape(-1, classes), mf.bias, mf.meta, segmenter)
        meta = json.dumps(model.meta, sort_keys=True)
        if json.loads(meta) == model.meta:  # (kept only where JSON gives it back the same)
            derived.store(_CACHE_NAME, entry, {"weights": model._w, "bias": model._bias,
                                               "meta": np.array(meta)})
        return model

    def save(self, path: Path) -> None:
        """Write the model (gzip'd msgpack, float16 weights; byte-identical for equal models)."""
        w = np.ascontiguousarray(self._w).astype("<f2")
        if self.classes == 3:
            mf = ModelFile(FORMAT, self.bits, w.tobytes(), self._bias.tolist(), self.meta, 3)
        else:
            mf = ModelFile(FORMAT_BINARY, self.bits, w.tobytes(), float(self._bias[0]),
                           self.meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        # mtime=0 keeps the gzip header free of the time: deterministic retrain, same bytes.
        path.write_bytes(gzip.compress(msgspec.msgpack.encode(mf), compresslevel=9, mtime=0))

    def add_words(self, words: Iterable[str]) -> int:
        """Add brand names / lexicon terms to the segmenter so they stay whole."""
        return self._segmenter.add_words(words)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Per text, the class logits: shape (n, 3) for a three-class model, (n, 1) (log-odds
        of positive) for a binary one."""
        n = len(texts)
        docs, buckets = featurise(texts, self.bits, self._segmenter)
        rows = self._w.take(buckets, axis=0)  # ``take``: ~4x the speed of ``w[buckets]``
        z = np.empty((n, self.classes))
        for k in range(self.classes):
            z[:, k] = np.bincount(docs, weights=rows[:, k], minlength=n)
        return z + self._bias

    def _probs(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 3) class probabilities: negative, neutral, positive."""
        z = self.logits(texts)
        if self.classes == 1:
            p = 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -60.0, 60.0)))
            return np.stack((1.0 - p, np.zeros_like(p), p), axis=1)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def polarity_many(self, texts: Sequence[str]) -> list[Polarity]:
        """Class probabilities of each text (batched; much faster than one by one)."""
        out: list[Polarity] = []
        make = Polarity._make
        for i in range(0, len(texts), SCORE_BATCH):
            out += map(make, self._probs(texts[i : i + SCORE_BATCH]).tolist())
        return out

    def score_many(self, texts: Sequence[str]) -> list[float]:
        """Probability positive (0..1) for each text; batching is much faster than ``score``."""
        out: list[float] = []
        for i in range(0, len(texts), SCORE_BATCH):
            p = self._probs(texts[i : i + SCORE_BATCH])
            out += (p[:, 2] + 0.5 * p[:, 1]).tolist()
        return out

    def score(self, text: str) -> float:
        """Probability that ``text`` is positive, in [0, 1]. Empty text gets the bias alone."""
        return self.score_many([text])[0]

    @property
    def n_features(self) -> int:
        """Number of non-zero weight buckets."""
        return int(np.count_nonzero(np.any(self._w != 0, axis=1)))
