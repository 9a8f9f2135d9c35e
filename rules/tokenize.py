"""Segmentation of (normalised) Weibo text into sentiment tokens.

rjieba (jieba-rs) segments with jieba's own dictionary about 25x faster than jieba and loads
in ~0.4 s instead of ~1 s; it supports ``add_word``, so brand names and lexicon terms are added
to its dictionary directly and stay whole (no placeholder protection needed).

Weibo bracket emoticons (``[怒]``) and emoji are lifted out *before* segmentation and kept as
single tokens: they are the strongest sentiment signal in Weibo text and the segmenter would
otherwise split ``[哈哈]`` into ``[`` ``哈哈`` ``]``. :data:`NEGATORS` and the punctuation that
ends their scope are defined here; the featuriser (``rules.weibo_sentiment.featurise``) marks
the tokens in a negator's scope, so that 不/没/别 + 好 cannot look like praise.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections.abc import Iterable

import rjieba

from rules.textnorm import SEP

# Pictographic emoji blocks plus dingbats/misc symbols (☹ ❤ ✌). Variation selectors and ZWJ
# are dropped with the rest of the emoji sequence: each pictograph becomes its own token.
_EMOJI_CHARS = (
    "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\u3030\u303d\u3297\u3299"
)
EMOJI_RE = re.compile(f"[{_EMOJI_CHARS}]")

# Everything lifted out of the text before segmenting: emoticons, emoji, variation selectors and
# ZWJ, URLs and @mentions (user names are arbitrary strings, not sentiment). A mention stops at
# whitespace, punctuation or the next mention/retweet marker.
_STRIP_RE = re.compile(
    r"\[[^\[\]]{1,8}\]"
    r"|https?://[\x21-\x7e]+"
    r"|@[^\s:：@,，.。!！?？/、;；)）(（\[\]]{1,30}"
)
_STRIP_EMOJI_RE = re.compile(f"[{_EMOJI_CHARS}\ufe0e\ufe0f\u200d]")
"""``_STRIP_RE`` is applied, then this: as one alternation of both, since no branch can
start where another can ([, an emoji, h, @), and what the first pass puts in (a space)
no emoji. Each pattern starts with a literal or a set, which ``re`` looks for before
trying to match (the alternation made it try every branch at every place: ~2x the time)."""

# A Weibo bracket emoticon (``[怒]``, ``[泪]``, ``[中国赞]``); it never spans two texts of a
# joined batch.
_EMOTICON_BATCH_RE = re.compile(r"\[[^\[\]\x1e]{1,8}\]")
_SEP_RE = re.compile(SEP)


def _is_emoji_then_pos(match: tuple[int, str]) -> tuple[bool, int]:
    # Per text the order is all emoticons, then all emoji; a sort by
    # (is emoji, position) keeps that order within each text, and bisect assigns texts.
    return (match[1][0] != "[", match[0])


NEGATORS: frozenset[str] = frozenset(
    {
        "不", "没", "没有", "别", "无", "未", "非", "莫", "勿", "甭", "不是", "不会", "不要",
        "不能", "不用", "不再", "不够", "不太", "不怎么", "并不", "并没有", "从不", "从没",
        "从来不", "绝不", "毫无", "决不", "从未", "不算", "算不上", "谈不上", "称不上",
    }
)
"""Tokens that put the next few tokens in negation scope."""

# Punctuation ends a negation scope; runs of the same mark collapse to one token.
_PUNCT = frozenset("，,。.!！?？;；:：、~～…/\\|()（）【】《》\"'“”‘’-—_=+*&^%$#<>")


class Segmenter:
    """rjieba segmenter with its own dictionary (so added words do not leak to other users)."""

    def __init__(self) -> None:
        self._jieba = _fresh_jieba()
        self._lock = threading.Lock()
        self._added: set[str] = set()

    def add_words(self, words: Iterable[str]) -> int:
        """Add words (brand names, lexicon terms) so they are never split; returns how many
        were new. Words are normalised the same way as scored text would be by the caller."""
        new = 0
        with self._lock:
            for word in words:
                word = word.strip()
                if not word or word in self._added:
                    continue
                # freq=None lets jieba-rs pick a frequency high enough to keep the word whole.
                self._jieba.add_word(word, None, None)
                self._added.add(word)
                new += 1
        return new

    def raw_tokens_batch(self, joined: str, n_docs: int) -> tuple[list[str], list[int]]:
        """Sentiment tokens of a whole batch in ONE segmenter call: ``joined`` holds
        ``n_docs`` folded texts separated by ``rules.textnorm.SEP``. Returns the flat token list
        (per text: emoticons, emoji, then words; separators removed) and each text's count.

        One call instead of one per text saves the per-call overhead (~3 µs) and the
        separator is a segmentation boundary, so each text segments as it would alone.
        """
        specials: dict[int, list[str]] = {}
        if "[" in joined or not joined.isascii():
            found = [(m.start(), m.group()) for m in _EMOTICON_BATCH_RE.finditer(joined)]
            found += [(m.start(), m.group()) for m in EMOJI_RE.finditer(joined)]
            if found:
                # Document of each match: how many separators precede it.
                seps = [m.start() for m in _SEP_RE.finditer(joined)]
                ordered = sorted(found, key=_is_emoji_then_pos) if len(found) > 1 else found
                for pos, tok in ordered:
                    specials.setdefault(bisect_right(seps, pos), []).append(tok)
        # Always applied, so a text's tokens never depend on the
        # other texts of its batch: ``score_many`` equals ``score`` text by text.
        joined = _STRIP_EMOJI_RE.sub(" ", _STRIP_RE.sub(" ", joined))
        cut = self._jieba.cut(joined)
        out: list[str] = []
        counts: list[int] = []
        start = 0
        index = cut.index
        for d in range(n_docs):
            end = index(SEP, start) if d < n_docs - 1 else len(cut)
            sp = specials.get(d)
            if sp:
                out += sp
                out += cut[start:end]
                counts.append(len(sp) + end - start)
            else:
                out += cut[start:end]
                counts.append(end - start)
            start = end + 1
        return out, counts


_spare_taken = False
_SPARE_LOCK = threading.Lock()


def _fresh_jieba() -> rjieba.Jieba:
    """A ``rjieba.Jieba()`` no one else has used. Importing rjieba builds one (its module
    functions' ``_DEFAULT_JIEBA``, ~0.09 s for the dictionary) that nothing in crisismon
    calls: the first segmenter takes that one instead of building a second (the replay's
    feed reader builds exactly one); any later one builds its own."""
    global _spare_taken
    with _SPARE_LOCK:
        if not _spare_taken:
            _spare_taken = True
            spare = getattr(rjieba, "_DEFAULT_JIEBA", None)
            if isinstance(spare, rjieba.Jieba):
                return spare
    return rjieba.Jieba()


_DEFAULT: Segmenter | None = None
_DEFAULT_LOCK = threading.Lock()


def default_segmenter() -> Segmenter:
    """The process-wide segmenter (created on first use: ~0.4 s for the jieba dictionary)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = Segmenter()
    return _DEFAULT
