"""``simplified`` skips zhconv only where zhconv would change nothing, and so does its
batch form (``may_simplify``, ``simplify_posts``)."""

from __future__ import annotations

import json
from pathlib import Path

import zhconv
import zhconv.zhconv as zc
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.normalise import may_simplify, simplified, simplify_posts
from rules.records import Author, Post, PostKind

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "sentiment"

_TABLE = zc.getdict("zh-cn")
_TRAD = sorted(k for k, v in _TABLE.items() if len(k) == 1 and v != k)
_PHRASES = sorted(k for k, v in _TABLE.items()
                  if k != v and len(k) > 1 and all(c not in _TRAD for c in k))


def test_every_phrase_rule_is_seen_in_context() -> None:
    assert len(_PHRASES) > 400  # the rules the fast path must not miss
    for key in _PHRASES:
        for text in (key, f"今天{key}了", f"{key}，好", f"一{key}"):
            assert simplified(text) == zhconv.convert(text, "zh-cn"), text


def test_traditional_text_is_converted() -> None:
    assert simplified("這個產品質量很差，客服態度惡劣") == "这个产品质量很差，客服态度恶劣"
    assert simplified("这个产品很好") == "这个产品很好"


def test_real_weibo_posts_convert_as_zhconv_does() -> None:
    path = DATA / "test.jsonl"
    assert path.exists(), f"{path} is missing: the evaluation data sits in ../shared/data"
    with path.open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for _, line in zip(range(3000), fh, strict=False)]
    changed = 0
    for text in texts:
        expected = zhconv.convert(text, "zh-cn")
        assert simplified(text) == expected, text
        changed += expected != text
    assert changed > 0  # the sample holds texts zhconv changes, so both paths are taken


# Text made of the rules' own characters (first characters of phrases, their rests,
# traditional characters) and a few common ones, so rules occur by chance.
_ALPHABET = sorted({c for k in _PHRASES for c in k} | set(_TRAD[:200]) | set("的了我你，。 a1"))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_any_text_of_rule_characters_converts_as_zhconv_does(text: str) -> None:
    assert simplified(text) == zhconv.convert(text, "zh-cn")


def _posts(texts: list[str]) -> list[Post]:
    return [Post(id=str(i), kind=PostKind.STATUS, created_at=0.0, text=t,
                 author=Author(id="1")) for i, t in enumerate(texts)]


def test_batch_simplification_flags_every_text_a_rule_changes() -> None:
    # Each rule alone, inside other words, and at a text's start and end next to its
    # neighbours in the batch (so a rule never looks split across two texts).
    texts = [t for key in _PHRASES + _TRAD for t in (key, f"今天{key}了", f"{key}，好")]
    flagged = set(may_simplify(texts))
    missed = [t for i, t in enumerate(texts) if i not in flagged and simplified(t) != t]
    assert not missed
    assert may_simplify(["这个产品很好", "ascii only", ""]) == []  # nothing to convert


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=_ALPHABET, max_size=30), max_size=8))
def test_simplify_posts_gives_what_to_event_gives(texts: list[str]) -> None:
    events = _posts(texts)
    simplify_posts(events)
    assert [e.text for e in events] == [simplified(t) if not t.isascii() else t
                                        for t in texts]
