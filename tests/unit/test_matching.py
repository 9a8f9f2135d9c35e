"""Brand matching: is a post really about the brand?"""

from __future__ import annotations

import pytest

from monitor.normalise import normalise_text
from rules.matching import BrandMatcher
from rules.policy import BrandConfig

MIDEA = BrandConfig(
    name="美的",
    keywords=("美的集团", "美的空调", "Midea"),
    ambiguous_keywords=("美的",),
    context=("空调", "冰箱", "洗衣机", "售后", "客服"),
    exclude=("美的风景", "美的不像话", "招聘"),
    official_accounts=("1650000001",),
)
KUAI = BrandConfig(name="快书包", keywords=("快书包",), official_accounts=("1650000009",))


@pytest.fixture(scope="module")
def matcher() -> BrandMatcher:
    return BrandMatcher([MIDEA, KUAI])


def brands(m: BrandMatcher, text: str, author: str = "") -> list[str]:
    return [x.brand for x in m.match(normalise_text(text), author)]


@pytest.mark.parametrize(("text", "expected"), [
    ("美的空调坏了三次了", ["美的"]),                      # a plain keyword
    ("MIDEA的冰箱很好", ["美的"]),                        # case-insensitive
    ("ＭＩＤＥＡ客服", ["美的"]),                          # full-width, after normalisation
    ("今天的晚霞好美的", []),                              # "beautiful", no context
    ("你穿这件衣服真美的", []),
    ("美的售后电话一直打不通", ["美的"]),                  # ambiguous + context
    ("@美的 你们的东西坏了", ["美的"]),                     # @mention of the brand
    ("#美的# 又出问题了", ["美的"]),                        # inside a hashtag
    ("#今天也很美的一天# 出门散步", ["美的"]),             # a hashtag is a hashtag: counted
    ("这里美的风景让人想起空调房", []),                    # exclude masks the only hit
    ("美的风景，美的空调也不错", ["美的"]),                # masking keeps the other hit
    ("美的集团招聘客服专员", []),                          # an exclude without brand terms vetoes
    ("快书包和美的空调都不错", ["美的", "快书包"]),        # config order, both brands
    ("", []),
])
def test_matching(matcher: BrandMatcher, text: str, expected: list[str]) -> None:
    assert brands(matcher, text) == expected


def test_official_accounts_are_not_mentions_of_their_own_brand(matcher: BrandMatcher) -> None:
    assert brands(matcher, "美的空调618大促", author="1650000001") == []
    # ... but an official account of another brand is.
    assert brands(matcher, "美的空调618大促", author="1650000009") == ["美的"]
    assert matcher.official_brands("1650000001") == ("美的",)
    assert matcher.official_brands("42") == ()


def test_traditional_characters_match_after_normalisation() -> None:
    m = BrandMatcher([BrandConfig(name="小满咖啡", keywords=("小满咖啡",))])
    assert brands(m, "小滿咖啡的拿鐵") == ["小满咖啡"]


def test_matched_keywords_are_reported(matcher: BrandMatcher) -> None:
    (found,) = matcher.match("美的空调和美的冰箱")
    assert found.keywords == ("美的空调", "美的")


def test_many_brands_with_hundreds_of_keywords_each() -> None:
    brand_cfgs = [
        BrandConfig(name=f"品牌{b}", keywords=tuple(f"品牌{b}型号{k}" for k in range(300)))
        for b in range(20)
    ]
    m = BrandMatcher(brand_cfgs)
    assert [x.brand for x in m.match("我买的品牌7型号123坏了，品牌19型号0也是")] == \
        ["品牌7", "品牌19"]
    assert m.match("没有任何品牌") == []


def test_candidates_hold_every_text_that_matches(matcher: BrandMatcher) -> None:
    """``candidates`` (one pass over a batch) never leaves out a text ``match`` finds a
    brand in: case, a final sigma next to a neighbour, a length-changing lower case (İ), a
    NUL inside a text, terms at the very start and end of texts."""
    sigma = BrandMatcher([BrandConfig(name="ΟΔΟΣ", keywords=("οδος", "οδοσ"))])
    texts = ["ΟΔΟΣ", "x ΟΔΟΣ", "ΟΔΟΣ!", "美的", "@美的 空调", "美的风景", "快书包", "a快书包",
             "KUAI", "nothing here", "", "快书", "包"]
    for m in (matcher, sigma):
        found = m.candidates(texts)
        assert {i for i, t in enumerate(texts) if m.match(t)} <= found
        assert 9 not in found and 10 not in found  # no term: left out
    for odd in (["İ快书包", "快书包"], ["a\0快书包", "b"]):  # whole batch, the safe answer
        assert matcher.candidates(odd) == {0, 1}
