"""Severity, influence and the score command: P1..P4 with reasons a responder can read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rules.records import Author, Post, PostKind
from rules.scoring import Scorer
from rules.severity import SeverityPolicy, Tier, assess, influence_tier

ROOT = Path(__file__).resolve().parents[2]
POLICY = SeverityPolicy()
NOBODY = Author(id="1", followers_count=50)


def sev(negative: bool = True, danger: tuple[str, ...] = (), weight: float = 0.0,
        complaint: tuple[str, ...] = (), author: Author = NOBODY, reach: int = 0,
        tier: Tier | None = None) -> str:
    return assess(0.1 if negative else 0.9, negative, danger, weight, complaint, author,
                  reach, tier, POLICY).severity


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"negative": False}, "P4"),
    ({"negative": False, "danger": ("爆炸",)}, "P4"),    # praise stays P4
    ({}, "P3"),
    ({"weight": 3.0, "complaint": ("投诉",)}, "P2"),     # a strong complaint
    ({"reach": 150}, "P2"),                              # big reach
    ({"author": Author(id="2", followers_count=200_000)}, "P2"),  # influential author
    ({"danger": ("中毒",)}, "P1"),
    ({"complaint": ("维权",), "weight": 3.0,
      "author": Author(id="3", followers_count=2_000_000)}, "P1"),  # super user complains
    ({"complaint": ("退款",), "tier": Tier.SUPER}, "P1"),  # the team's tier CSV wins
    ({"tier": Tier.MICRO, "author": Author(id="4", followers_count=5_000_000)}, "P3"),
])
def test_severity_table(kwargs: dict[str, object], expected: str) -> None:
    assert sev(**kwargs) == expected  # type: ignore[arg-type]


def test_reasons_explain_the_severity() -> None:
    a = assess(0.05, True, ("中毒",), 3.0, ("投诉",), Author(id="9", followers_count=300_000,
                                                              verified=True), 120, None, POLICY)
    assert a.severity == "P1"
    text = "；".join(a.reasons)
    for part in ("负面", "强影响力作者", "300,000", "传播量大", "伤害报告：中毒", "投诉词：投诉"):
        assert part in text


@pytest.mark.parametrize(("followers", "verified", "tier"), [
    (10, False, Tier.NONE), (800, False, Tier.MICRO), (20_000, False, Tier.WEAK),
    (50, True, Tier.WEAK), (20_000, True, Tier.STRONG), (150_000, False, Tier.STRONG),
    (5_000_000, False, Tier.SUPER),
])
def test_influence_tiers_from_followers(followers: int, verified: bool, tier: Tier) -> None:
    author = Author(id="1", followers_count=followers, verified=verified)
    assert influence_tier(author, None, POLICY) is tier


def test_scorer_on_posts_uses_the_model_the_lexicon_and_the_author() -> None:
    from monitor.app import build_scorer
    from monitor.config import load_config

    scorer = build_scorer(load_config(ROOT / "config.toml"))
    post = Post(id="1", kind=PostKind.STATUS, created_at=0.0,
                text="喝了他们家的奶茶后食物中毒住院了，必须投诉维权[怒]",
                author=Author(id="5", followers_count=10))
    score = scorer.score(post)
    assert score.negative and score.danger and score.severity == "P1"
    assert {"中毒", "投诉", "维权"} <= set(score.terms)
    praise = scorer.score_text("新品太好喝了，店员也很热情[哈哈]")
    assert not praise.negative and praise.severity == "P4"


def test_author_tier_csv(tmp_path: Path) -> None:
    from rules.scoring import load_tiers

    csv = tmp_path / "tiers.csv"
    csv.write_text("user_id,tier\n# the team's list\n42,super\n7, Micro \n", encoding="utf-8")
    assert load_tiers(csv) == {"42": Tier.SUPER, "7": Tier.MICRO}
    csv.write_text("42,legend\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tiers.csv:1: tier 'legend' is not one of"):
        load_tiers(csv)


def score_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", "score", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def test_score_jsonl_one_line_out_per_line_in_and_in_order() -> None:
    texts = ["小满咖啡的拿铁太难喝了，再也不买了[怒]", "", "😀😀", "x" * 1_000_000,
             "小滿咖啡真好喝[哈哈]", "控制\x00字符\x1b[31m", "今日小满，万物小得盈满"]
    run = score_cli("--jsonl", stdin="".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert run.returncode == 0, run.stderr
    out = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(out) == len(texts)
    for rec in out:
        assert 0.0 <= rec["sentiment"] <= 1.0 and isinstance(rec["negative"], bool)
        assert rec["severity"] in ("P1", "P2", "P3", "P4") and isinstance(rec["terms"], list)
    assert out[0]["negative"] is True and out[0]["brands"] == ["小满咖啡"]
    assert out[4]["negative"] is False and out[4]["brands"] == ["小满咖啡"]  # traditional
    assert out[6]["brands"] == []  # the solar term is not the brand


def test_score_jsonl_bad_lines_keep_their_place() -> None:
    run = score_cli("--jsonl", stdin='{"text": "好喝"}\n{oops\n{"txt": 1}\n{"text": "难喝"}\n')
    assert run.returncode == 2
    out = [json.loads(line) for line in run.stdout.splitlines()]
    assert [("error" in r) for r in out] == [False, True, True, False]
    assert "stdin:2: skipped" in run.stderr and "stdin:3: skipped" in run.stderr


def test_score_texts_as_arguments() -> None:
    run = score_cli("快书包太坑了，要求退款[怒]")
    assert run.returncode == 0, run.stderr
    (rec,) = [json.loads(x) for x in run.stdout.splitlines()]
    assert rec["negative"] is True and "退款" in rec["terms"]


def test_simplified_text_is_read_as_the_full_normalisation_reads_it() -> None:
    """``crisismon score`` passes text already through ``normalise_text`` and skips the
    second simplification (``simplified=True``): on such text the shortcut must read
    exactly what the full scoring normalisation reads."""
    from monitor.app import build_scorer
    from monitor.config import load_config
    from monitor.normalise import normalise_text
    from rules.textnorm import fold_simplified, normalise_for_scoring

    data = ROOT / "tests" / "data"
    texts = [json.loads(line)["text"] for name in ("severity_posts.jsonl",
                                                   "official_replies.jsonl")
             for line in (data / name).read_text("utf-8").splitlines()]
    texts += ["據說門店後廚起火了，有店員受傷", "ＡＢＣ１２３，全角！",
              "emoji 😀 and\u200bzero width", "bell\x07 and\ttab", "Ⅻ ① ㎏", "", "x" * 10_000]
    scorer = build_scorer(load_config(ROOT / "config.toml"))
    for raw in texts:
        text = normalise_text(raw)
        assert fold_simplified(text) == normalise_for_scoring(text).lower(), raw
        assert scorer.score_text(text, 0.3, simplified=True) == scorer.score_text(text, 0.3)


def _own_passes(scorer: Scorer, norm: str) -> tuple[object, ...]:
    """What each table's own automaton finds in ``norm``, as ``Scanner.scan`` gives it."""
    from rules import acts

    lexicon = [entry for _end, entry in scorer.lexicon._automaton.iter(norm)]
    tables = []
    for table in (scorer.harm, scorer.grievance):
        terms = list(table._automaton.iter(norm))
        anchored: set[int] = set()
        for _end, ids in table._anchors.iter(norm):
            anchored.update(ids)
        tables.append((terms, anchored))
    plain = more = 0
    for _end, m in acts._PLAIN_ANCHORS.iter(norm):
        plain |= m
    for _end, m in acts._MORE_ANCHORS.iter(norm):
        more |= m
    return (lexicon, *tables, (plain, more))


def test_one_scan_finds_what_each_table_finds_in_the_same_order() -> None:
    """``Scanner``: one pass for the lexicon, the harm and grievance tables and the acts'
    anchors gives each exactly its own pass's hits, in its order (``cues`` and
    ``find_normalised`` read them in that order)."""
    from rules.lexicon import default_crisis_lexicon
    from rules.sentiment import load_sentiment
    from rules.textnorm import scoring_forms

    scorer = Scorer(load_sentiment("weibo", None, []), default_crisis_lexicon(), 0.4)
    feed = ROOT / "seeds" / "feeds" / "sample_day.jsonl"
    texts = [json.loads(line).get("text") or "" for line in
             feed.read_text(encoding="utf-8").splitlines()]
    # And texts dense with overlapping cues, so that keys of several tables end at one place.
    texts += ["食物中毒了，孩子送医，退款呵呵，骗子，等了三天了还没到，请问怎么办？",
              "爆炸了爆炸爆炸，吃完拉肚子，说好的包邮呢，扣了运费，谢谢好评"]
    hits = 0
    for norm in scoring_forms(texts):
        got = scorer.scanner().scan(norm)
        assert got == _own_passes(scorer, norm)
        hits += len(got[0]) + len(got[1][0]) + len(got[2][0])
    assert hits > 20


def test_one_scan_keeps_each_tables_order_where_many_keys_overlap() -> None:
    """Texts made of the tables' own keys run together (seeded): many keys end at one
    place and inside each other, where the scan's place-then-longest order must give each
    table its own automaton's order."""
    import random

    from rules.acts import anchor_keys
    from rules.lexicon import default_crisis_lexicon
    from rules.sentiment import load_sentiment

    scorer = Scorer(load_sentiment("weibo", None, []), default_crisis_lexicon(), 0.4)
    keys = sorted({*scorer.lexicon.terms, *(k for k, _p, _m in anchor_keys()),
                   *(k for table in (scorer.harm, scorer.grievance)
                     for k, _t, _v in table.scan_keys())})
    rng = random.Random(19)
    hits = 0
    for _ in range(300):
        norm = "".join(rng.choice(keys) + rng.choice(("", "", "了", "，"))
                       for _ in range(rng.randint(1, 12)))
        got = scorer.scanner().scan(norm)
        assert got == _own_passes(scorer, norm), norm
        hits += len(got[0]) + len(got[1][0]) + len(got[2][0])
    assert hits > 500


def test_one_scan_leaves_out_the_acts_anchors_inside_at_names() -> None:
    """With the @names' spans, the scan's acts' anchors are those of the text with the
    names cut out (as ``read_acts`` reads it), for one name (tested inline) and several."""
    from rules import acts
    from rules.lexicon import default_crisis_lexicon
    from rules.sentiment import load_sentiment

    scorer = Scorer(load_sentiment("weibo", None, []), default_crisis_lexicon(), 0.4)
    scanner = scorer.scanner()
    assert scanner.mentionless
    texts = ["@请问小助手 谢谢推荐", "请问@谢谢好评 怎么办", "@求推荐 请问 @谢谢 好评",
             "谢谢@好评 请问@求助一下 推荐", "@谢谢 @好评 @请问"]
    for norm in texts:
        mentions = acts.mention_spans(norm)
        assert mentions
        cut = acts._MENTION.sub(" ", norm)
        assert scanner.scan(norm, mentions)[3] == _own_passes(scorer, cut)[3], norm
    # the names did hide anchors: without the spans, more acts are anchored
    assert any(scanner.scan(t)[3] != scanner.scan(t, acts.mention_spans(t))[3]
               for t in texts)
