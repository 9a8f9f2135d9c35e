"""Normalisation of post text before sentiment scoring.

Kept apart from ingest normalisation on purpose: what the scorer wants (simplified characters,
half-width forms, a length cap) is not what we want to store or show to the PR team.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rules import derived

MAX_SCORING_CHARS = 2000
"""Only the head of a post is scored: sentiment is settled long before 2,000 characters and
the cap bounds the cost of pathological (e.g. 1 MB) inputs."""

# C0/C1 controls (tab and newline included: they become a plain space too), zero-width and bidi
# marks, line/paragraph separators, BOM.
_CONTROL_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2064\ufeff]+"
)


@lru_cache(maxsize=1)
def zh_cn_table() -> tuple[frozenset[str], dict[str, str]]:
    """Traditional-only characters known to zhconv, and the zh-cn conversion dictionary.

    zhconv.convert is pure Python (~24k short texts/s) and would eat the whole speed budget,
    yet fewer than 2 % of Weibo posts contain a traditional character. Skipping posts without
    any character that zhconv maps to something else keeps conversion exact where it matters.
    (Phrase rules made only of simplified characters, e.g. 么九 -> 幺九, are simplified-to-
    simplified corrections and are deliberately not applied to such posts.)
    """
    import zhconv.zhconv as zc

    table = zc.getdict("zh-cn")
    trad = frozenset(k for k, v in table.items() if len(k) == 1 and v != k)
    return trad, table


@lru_cache(maxsize=1)
def traditional_mask() -> np.ndarray:
    """Per code point (all of Unicode), whether it is one of ``zh_cn_table``'s
    traditional-only characters: for testing a whole batch's characters at once (one
    table for the scoring forms here and the feed's simplification, ``monitor.normalise``)."""
    trad, _ = zh_cn_table()
    mask = np.zeros(0x110000, dtype=bool)
    mask[[ord(c) for c in trad]] = True
    return mask


def to_simplified(text: str) -> str:
    """Convert traditional Chinese characters to simplified ones (zhconv, zh-cn rules)."""
    trad, _ = zh_cn_table()
    if trad.isdisjoint(text):
        return text
    import zhconv

    return zhconv.convert(text, "zh-cn")


def normalise_for_scoring(text: str, max_chars: int = MAX_SCORING_CHARS) -> str:
    """Return ``text`` ready for the sentiment tokenizer.

    Steps: cap to ``max_chars`` (before any work, so huge inputs stay cheap), replace control /
    zero-width characters by a space, NFKC (full-width ASCII and punctuation to half-width),
    traditional to simplified. Never raises on ``str`` input; ``None`` is treated as empty.
    """
    if not text:
        return ""
    # Cap first: every later step is linear in the length.
    text = text[:max_chars]
    text = _CONTROL_RE.sub(" ", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return to_simplified(text)


def fold_simplified(text: str, max_chars: int = MAX_SCORING_CHARS) -> str:
    """``normalise_for_scoring(text).lower()`` for a text already in simplified characters
    without control characters (``monitor.normalise`` output): only the cap, NFKC and lower
    case are left to do. (NFKC could in theory turn a compatibility ideograph into a
    traditional one; such a character then stays as it is.)"""
    text = text[:max_chars]
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text.lower()


@lru_cache(maxsize=1)
def _bmp_forms() -> tuple[list[str], list[str], list[int]]:
    """Every character of the Basic Multilingual Plane but the surrogates and ``SEP``, the
    NFKC of each, and the code points of those that are control characters
    (``_CONTROL_RE``): what ``_nfkc_tables`` and ``_fold_table`` are built from (~0.02 s,
    once for both)."""
    chars = [chr(cp) for cp in range(0x10000) if not 0xD800 <= cp < 0xE000 and cp != ord(SEP)]
    # Every character's NFKC in one call (a tenth of the time of 63,488 calls): SEP, a
    # control character, neither reorders nor composes with its neighbours.
    forms = unicodedata.normalize("NFKC", SEP.join(chars)).split(SEP)
    if len(forms) != len(chars):
        raise RuntimeError("NFKC table: the separator did not keep the characters apart")
    controls = [ord(c) for m in _CONTROL_RE.finditer("".join(chars)) for c in m.group()]
    return chars, forms, controls


@lru_cache(maxsize=1)
def _nfkc_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``scoring_forms``: per BMP code point, its NFKC when that is one code point (else
    itself), and whether a text holding it needs ``normalise_for_scoring`` itself (a
    control character, or an NFKC of several code points); per code point, whether it is
    a traditional character (``to_simplified`` converts a text holding one)."""
    _fold, nfkc, slow = _bmp_tables()
    return nfkc, slow, traditional_mask()


_TABLES = "textnorm"
_TABLES_VERSION = "textnorm fold uint32, nfkc uint32, slow bool, per BMP code point /1"


def _tables_entry() -> str | None:
    """The cache entry of the BMP tables (``rules.derived``): a hash of what they are made
    from (this module's code, Unicode's version, zhconv's code and dictionary); None if
    those files cannot be read (no cache then)."""
    try:
        zhconv = importlib.util.find_spec("zhconv")  # found, not imported (~0.15 s)
        folder = Path(zhconv.origin).parent if zhconv and zhconv.origin else None
        if folder is None:
            return None
        return derived.key(_TABLES_VERSION, unicodedata.unidata_version,
                           Path(__file__).read_bytes(), (folder / "zhconv.py").read_bytes(),
                           (folder / "zhcdict.json").read_bytes())
    except (OSError, ImportError, ValueError):
        return None


@lru_cache(maxsize=1)
def _bmp_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_fold_table``'s table and the first two of ``_nfkc_tables``: from the user's cache
    (~3 ms), else built (~0.035 s) and kept there."""
    entry = _tables_entry()
    got = None if entry is None else derived.load(_TABLES, entry)
    if got is not None:
        try:
            tables = got["fold"], got["nfkc"], got["slow"]
        except KeyError:
            pass
        else:
            if all(t.shape == (0x10000,) for t in tables) and \
                    [t.dtype for t in tables] == [np.uint32, np.uint32, np.bool_]:
                return tables
    nfkc, slow = _build_nfkc()
    fold = _build_fold()
    if entry is not None:
        derived.store(_TABLES, entry, {"fold": fold, "nfkc": nfkc, "slow": slow})
    return fold, nfkc, slow


def _build_nfkc() -> tuple[np.ndarray, np.ndarray]:
    nfkc = np.arange(0x10000, dtype=np.uint32)
    slow = np.zeros(0x10000, dtype=bool)
    slow[0xD800:0xE000] = True  # surrogates (no text holds one that encodes)
    chars, forms, controls = _bmp_forms()
    for c, f in zip(chars, forms, strict=True):
        if f != c:
            if len(f) == 1:
                nfkc[ord(c)] = ord(f)
            else:
                slow[ord(c)] = True
    slow[ord(SEP)] = True  # a control character
    slow[controls] = True
    return nfkc, slow


def scoring_forms(texts: Sequence[str], max_chars: int = MAX_SCORING_CHARS) -> list[str]:
    """``normalise_for_scoring(text, max_chars).lower()`` of each text, exactly, for a batch.

    Text by text, NFKC costs ~5.5 µs a post (``unicodedata`` works character by
    character) and the traditional-character test ~2.5 µs. Here one numpy pass over the
    batch maps each character to its own NFKC and finds the texts holding a control
    character, a character whose NFKC is several, or (after NFKC) a traditional one; those
    few take ``normalise_for_scoring``. The rest need only a check and lower case: a
    character's NFKC is compatibility-equivalent to it, so the mapped text has the same
    NFKD as the text, and if it is NFKC-normalised (``is_normalized``: a combining mark
    or a Hangul jamo can make it not) it is the text's NFKC.
    """
    capped = [t[:max_chars] if t else "" for t in texts]
    try:
        codes = np.frombuffer("".join(capped).encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:  # a lone surrogate: text by text, as ever
        return [normalise_for_scoring(t, max_chars).lower() for t in capped]
    nfkc, slow_bmp, is_trad = _nfkc_tables()
    bmp = codes < 0x10000
    if bmp.all():
        mapped = nfkc[codes]
        slow = slow_bmp[codes]
    else:
        mapped = codes.copy()
        mapped[bmp] = nfkc[codes[bmp]]
        slow = np.zeros(len(codes), dtype=bool)
        slow[bmp] = slow_bmp[codes[bmp]]
    slow |= is_trad[mapped]
    ends = np.cumsum(np.fromiter(map(len, capped), dtype=np.int64, count=len(capped)))
    slow_texts = set(np.searchsorted(ends, np.flatnonzero(slow), side="right").tolist())
    joined = mapped.tobytes().decode("utf-32-le")
    is_normalized = unicodedata.is_normalized
    out: list[str] = []
    start = 0
    for i, end in enumerate(ends.tolist()):
        form = joined[start:end]
        if i in slow_texts or not is_normalized("NFKC", form):
            form = normalise_for_scoring(capped[i], max_chars)
        out.append(form.lower())
        start = end
    return out


SEP = "\x1e"
"""Separator of texts in one joined batch string: a control character, so it never survives
scoring normalisation inside a text (a text's own SEP folds to a space, as any control does)."""

_SPACE_RUN_RE = re.compile("  +")


def _fold_table() -> np.ndarray:
    """Per-code-point fold of the Basic Multilingual Plane: controls and zero-width marks to a
    space, single-character NFKC (full-width forms), traditional to simplified (zhconv's
    single-character rules) and lower case, composed (``_bmp_tables``)."""
    return _bmp_tables()[0]


def _build_fold() -> np.ndarray:
    """``_fold_table``, built (~0.02 s, from the NFKC forms ``_nfkc_tables`` is built from)."""
    _, zh = zh_cn_table()
    chars, forms, controls = _bmp_forms()
    get = zh.get
    at: list[int] = []
    to: list[int] = []
    for c, f in zip(chars, forms, strict=True):
        if c < "\x80" and not c.isupper():
            continue
        f = get(f, f).lower()
        # Multi-character results (… -> ..., ™ -> TM) keep the original: one code point in,
        # one out, so the fold is a plain array look-up.
        if len(f) == 1 and f != c:
            at.append(ord(c))
            to.append(ord(f))
    table = np.arange(0x10000, dtype=np.uint32)
    table[at] = to
    table[controls] = 0x20  # (SEP, not among ``chars``, stays itself)
    return table


def fold_batch(texts: Sequence[str | None], max_chars: int = MAX_SCORING_CHARS) -> str:
    """Normalise a batch of texts for scoring into ONE string, texts joined by :data:`SEP`.

    The batch form of :func:`normalise_for_scoring` plus lower-casing, done as a single numpy
    table look-up over the code points of the whole batch (~0.5 µs per post instead of ~10 µs
    for per-text regex + NFKC + zhconv). It differs from the per-text path only where the
    latter maps one character to several (… stays …, not ...), in applying zhconv's
    single-character rules only (no phrase rules), and in leaving astral-plane characters
    (emoji) untouched. Runs of spaces collapse to one. Idempotent.
    """
    capped = [t[:max_chars] if t else "" for t in texts]
    joined = SEP.join(capped)
    if joined.count(SEP) != len(capped) - 1:
        # A text carries SEP itself: fold it to the space it would become anyway.
        joined = SEP.join(t.replace(SEP, " ") for t in capped)
    if not joined:
        return joined
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    table = _fold_table()
    bmp = codes < 0x10000
    if bmp.all():
        folded = table[codes]
    else:
        folded = codes.copy()
        folded[bmp] = table[codes[bmp]]
    out = folded.tobytes().decode("utf-32-le")
    if "  " in out:
        out = _SPACE_RUN_RE.sub(" ", out)
    return out
