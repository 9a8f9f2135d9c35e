"""``simplified`` skips zhconv only where zhconv would change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import zhconv
import zhconv.zhconv as zc
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.normalise import simplified

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
