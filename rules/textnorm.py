"""Normalisation of post text before sentiment scoring.

Kept apart from ingest normalisation on purpose: what the scorer wants (simplified characters,
half-width forms, a length cap) is not what we want to store or show to the PR team.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_SCORING_CHARS = 2000
"""Only the head of a post is scored: sentiment is settled long before 2,000 characters and
the cap bounds the cost of pathological (e.g. 1 MB) inputs."""

# C0/C1 controls (tab and newline included: they become a plain space too), zero-width and bidi
# marks, line/paragraph separators, BOM.
_CONTROL_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2064\ufeff]+"
)


@lru_cache(maxsize=1)
def _zh_cn_table() -> tuple[frozenset[str], dict[str, str]]:
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


def to_simplified(text: str) -> str:
    """Convert traditional Chinese characters to simplified ones (zhconv, zh-cn rules)."""
    trad, _ = _zh_cn_table()
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
