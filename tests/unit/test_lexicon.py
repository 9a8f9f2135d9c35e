"""Tests of the crisis / argument lexicons and their loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.lexicon import Lexicon, LexTerm, default_argument_lexicon, default_crisis_lexicon


def test_shipped_crisis_lexicon_size_and_categories() -> None:
    lex = default_crisis_lexicon()
    assert 150 <= len(lex) <= 400
    cats = {t.category for t in lex.terms.values()}
    assert {"complaint", "danger", "legal", "media"} <= cats
    for must in ("投诉", "维权", "曝光", "退款", "假货", "中毒", "爆炸", "死亡", "打人", "315"):
        assert must in lex.terms, must
    assert all(t.weight > 0 for t in lex.terms.values())


def test_shipped_argument_lexicon() -> None:
    lex = default_argument_lexicon()
    assert len(lex) >= 100
    for must in ("你自己看说明书", "不是我们的问题", "请你搞清楚", "无理取闹", "恶意差评"):
        assert must in lex.terms, must


def test_find_crisis_terms_in_post() -> None:
    found = default_crisis_lexicon().find("在这家店吃饭后食物中毒住院了，已经向12315投诉，求扩散！")
    terms = {t.term for t in found}
    assert {"食物中毒", "中毒", "住院", "12315", "投诉", "求扩散"} <= terms
    assert all(isinstance(t, LexTerm) for t in found)
    # Each term reported once even if repeated.
    assert len(default_crisis_lexicon().find("投诉投诉投诉")) == 1


def test_find_normalises_traditional_and_full_width() -> None:
    lex = default_crisis_lexicon()
    assert {t.term for t in lex.find("我要投訴，這是假貨")} >= {"投诉", "假货"}
    assert "315" in {t.term for t in lex.find("３１５晚会")}


def test_find_in_official_reply() -> None:
    found = default_argument_lexicon().find("亲，请你搞清楚，这不是我们的问题，你自己看说明书。")
    assert {"请你搞清楚", "不是我们的问题", "你自己看说明书"} <= {t.term for t in found}
    assert default_argument_lexicon().find("非常抱歉给您带来不便，我们马上为您处理。") == []


def test_load_custom_file_with_comments(tmp_path: Path) -> None:
    p = tmp_path / "lex.tsv"
    p.write_text(
        "# comment\n\nterm\tweight\tcategory\n# another\n好评\t1.5\tpraise\n差评\t2\tcomplaint\n",
        encoding="utf-8",
    )
    lex = Lexicon.load(p)
    assert lex.terms["差评"] == LexTerm("差评", 2.0, "complaint")
    assert [t.term for t in lex.find("先差评再好评")] == ["差评", "好评"]
    assert lex.score("差评") == 2.0


@pytest.mark.parametrize(
    "body", ["term\tweight\tcategory\n坏\tx\tbad\n", "no header\n", "term\tweight\tcategory\n坏\n"]
)
def test_load_rejects_bad_files(tmp_path: Path, body: str) -> None:
    p = tmp_path / "bad.tsv"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError):
        Lexicon.load(p)


def test_empty_and_odd_text() -> None:
    lex = default_crisis_lexicon()
    assert lex.find("") == []
    assert lex.find("\x00\x01😀") == []
    assert lex.find("投诉" + "啊" * 1_000_000) != []
