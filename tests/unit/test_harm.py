"""Harm and grievance readings (rules.harm): exact texts in, exact verdicts out."""

from __future__ import annotations

import pytest

from rules.harm import CueTable, default_grievance_table, default_harm_table
from rules.lexicon import Lexicon
from rules.records import Author, Post, PostKind
from rules.severity import SeverityPolicy, assess

HARM = default_harm_table()
GRIEVANCE = default_grievance_table()


@pytest.mark.parametrize(("text", "terms"), [
    # the examples: harm the sentiment model reads as neutral
    ("吃了他们家的外卖，我和同事三个人都食物中毒了，已经送医", ("同事", "食物中毒", "送医")),
    ("今天下午…后厨发生爆炸，玻璃全碎了，有店员受伤", ("爆炸", "碎了", "店员", "受伤")),
    ("网传某乳企奶粉检出致癌物黄曲霉毒素", ("检出", "致癌物", "黄曲霉", "毒素")),
    ("买的婴儿床护栏断裂，孩子差点摔下来", ("婴儿", "断裂", "孩子", "差点", "摔下来")),
    # a hedge is not a negation: a rumour of harm is what PR must answer
    ("听说有人喝了他家奶茶进了医院", ("有人", "进了医院")),
    ("據說門店後廚起火了", ("起火",)),                     # traditional characters
    ("不小心被锅烫伤了，手上一个大泡", ("烫伤",)),          # 不小心 does not negate
    ("吃完不到一小时就上吐下泻", ("上吐下泻",)),            # nor does 不到
    ("起火了，万幸无人受伤", ("起火",)),                   # a fire is an incident anyway
    ("Their battery 爆炸 at home, 孩子 burned", ("爆炸", "孩子")),  # English mixed in
])
def test_reports_harm(text: str, terms: tuple[str, ...]) -> None:
    reading = HARM.read(text)
    assert reading.harm, reading
    assert reading.terms == terms


@pytest.mark.parametrize(("text", "dropped"), [
    # figures of speech
    ("花火爆炸好看", (("爆炸", "比喻"),)),
    ("这家的芝士蛋糕好吃到爆炸", (("爆炸", "比喻"),)),
    ("新店人气爆炸，排队排到门外", (("爆炸", "比喻"),)),
    ("爆炸头也太可爱了", (("爆炸", "比喻"),)),
    ("考了一天试，脑袋都要爆炸了", (("爆炸", "比喻"),)),
    ("这剧情让人窒息", (("窒息", "比喻"),)),
    # a worry or a precaution is not an event
    ("等了一小时车还不来，气得想打人", (("打人", "假设"),)),
    ("手机晚上别放枕头边，免得被辐射了", (("辐射", "假设"),)),
    ("宝宝吃这个会不会过敏啊", (("过敏", "假设"),)),
    ("商场今天组织消防演练，模拟起火疏散", (("起火", "演练"),)),
    # negation
    ("小朋友差点摔倒，店员扶住了，没有受伤", (("受伤", "否定"),)),
    ("第三方检测未检出致癌物", (("检出", "否定"), ("致癌物", "否定"))),
    ("新电池针刺不起火不爆炸", (("起火", "否定"), ("爆炸", "否定"))),
    ("事故无人员伤亡", (("伤亡", "否定"),)),
    # the post says it did not happen
    ("关于网传门店食物中毒一事：经调查系不实信息", (("食物中毒", "辟谣"),)),
])
def test_not_harm(text: str, dropped: tuple[tuple[str, str], ...]) -> None:
    reading = HARM.read(text)
    assert not reading.harm, reading
    assert reading.dropped == dropped


@pytest.mark.parametrize("text", [
    "笑死我了", "累死了", "这次又是爆款", "热死了来杯冰沙", "被主播安利中毒，又下单了三支口红",
    "急死人了，钱还没到账", "孕妇可以喝低因拿铁吗", "婴儿床有多高", "", "😀😀😀", "x" * 10_000,
])
def test_no_harm_words_that_count(text: str) -> None:
    assert not HARM.read(text).harm


def test_one_weak_cue_is_not_enough_and_a_victim_never_counts_alone() -> None:
    assert HARM.read("护栏断裂").weight == 1.0 and not HARM.read("护栏断裂").harm
    assert HARM.read("孩子今天很开心").weight == 0.0
    assert HARM.read("护栏断裂，孩子摔了").harm  # 断裂 1 + a victim 1


@pytest.mark.parametrize(("text", "kinds", "weight"), [
    ("自动续费扣了我268，找客服要退款一直说在处理", ("money", "service"), 4.0),
    ("客服一直踢皮球，已读不回", ("service",), 2.5),
    ("买到假货，商家跑路了", ("fraud",), 3.0),
    ("客服能不能转个人工啊", ("service",), 1.0),  # a rhetorical question still complains
    ("客服小姐姐五分钟就帮我把问题解决了", (), 0.0),  # the topic word is not a grievance
    ("这家从来没有乱收费", (), 0.0),                  # negated
])
def test_grievance(text: str, kinds: tuple[str, ...], weight: float) -> None:
    reading = GRIEVANCE.read(text)
    assert (reading.kinds, reading.weight) == (kinds, weight)


POLICY = SeverityPolicy()
NOBODY = Author(id="1", followers_count=50)


@pytest.mark.parametrize(("text", "p", "severity", "danger"), [
    # harm is P1 whatever the model says, unless the post is clearly positive
    ("我和同事都食物中毒了，已经送医", 0.46, "P1", True),
    ("我和同事都食物中毒了，已经送医", 0.79, "P1", True),
    ("这款灭火器太好用了，厨房着火一下就扑灭了", 0.92, "P4", False),
    # complaints rank by strength: cues (+1 when the model says negative)
    ("自动续费扣了我268，找客服要退款一直说在处理", 0.2, "P2", False),
    ("客服能不能转个人工啊", 0.5, "P3", False),
    ("客服能不能转个人工啊", 0.2, "P2", False),
    ("今天天气不错", 0.9, "P4", False),
    ("今天心情不好", 0.1, "P3", False),
])
def test_severity_from_readings(text: str, p: float, severity: str, danger: bool) -> None:
    a = assess(p, p < 0.4, (), 0.0, (), NOBODY, 0, None, POLICY, HARM.read(text),
               GRIEVANCE.read(text))
    assert (a.severity, a.danger) == (severity, danger)


def test_reasons_name_the_harm_and_the_complaint() -> None:
    a = assess(0.5, False, (), 0.0, (), NOBODY, 0, None, POLICY,
               HARM.read("孩子误吞了磁力珠，已经做了手术"), GRIEVANCE.read(""))
    assert a.reasons == ("伤害报告（受伤、就医）：孩子、误吞、做了手术",)
    b = assess(0.1, True, (), 0.0, (), NOBODY, 0, None, POLICY, HARM.read("没有人受伤"),
               GRIEVANCE.read("退款拖了三个月"))
    assert b.reasons == ("负面（正面概率 0.10）", "危险词不计：受伤（否定）",
                         "投诉（金钱、服务）：退款、拖了")
    assert b.severity == "P2"


def test_scorer_marks_danger_and_adds_the_harm_cues_to_terms() -> None:
    from monitor.app import build_scorer
    from monitor.config import load_config
    from tests.unit.test_scoring import ROOT

    scorer = build_scorer(load_config(ROOT / "config.toml"))
    post = Post(id="1", kind=PostKind.STATUS, created_at=0.0, author=NOBODY,
                text="吃了他们家的外卖，我和同事三个人都食物中毒了，已经送医")
    score = scorer.score(post, p=0.46)  # the reading: neutral
    assert (score.severity, score.danger, score.negative) == ("P1", True, False)
    assert score.terms == ("食物中毒", "中毒", "送医", "同事")
    assert score.reasons == ("伤害报告（中毒不适、就医）：同事、食物中毒、送医",)
    joke = scorer.score_text("今晚的花火爆炸好看！", p=0.3)
    assert not joke.danger and joke.severity == "P3"  # negative per the model, not harm


def test_custom_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "harm.tsv"
    p.write_text("term\tweight\tcategory\n漏水\t2\tfailure\n", encoding="utf-8")
    table = CueTable(Lexicon.load(p), figurative=True)
    assert table.read("楼上漏水了").harm and not table.read("没有漏水").harm


def test_the_labelled_posts_are_read_as_the_labels_say() -> None:
    """The harm reading alone (no sentiment model) on the dev parts of
    tests/data/severity_posts.jsonl (the held-out part is the benchmark's, not a target
    to fit): nearly every harm post is a harm report and no benign post is (figures of
    speech, negations, questions and a debunk among them). bench/severity.py prints the
    rest, the held-out part included."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "severity_posts.jsonl"
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert len(rows) >= 100 and sum(r["split"] == "heldout" for r in rows) >= 50
    dev = [r for r in rows if not r["split"].startswith("heldout")]
    harm = [r for r in dev if r["label"] == "harm"]
    other = [r for r in dev if r["label"] != "harm"]
    assert sum(HARM.read(r["text"]).harm for r in harm) >= 0.9 * len(harm)
    assert [r["text"] for r in other if HARM.read(r["text"]).harm] == []
    for example in ("吃了他们家的外卖，我和同事三个人都食物中毒了，已经送医",
                    "网传某乳企奶粉检出致癌物黄曲霉毒素", "买的婴儿床护栏断裂，孩子差点摔下来",
                    "花火爆炸好看", "市场监管局公布抽检结果，该品牌所有批次均合格"):
        assert example in {r["text"] for r in rows}


@pytest.mark.parametrize(("p_negative", "severity", "reason"), [
    (0.95, "P2", "强烈负面（负面概率 0.95）"),  # the model is sure: strength 2
    (0.79, "P3", None),                          # below SeverityPolicy.confident_negative
])
def test_a_confidently_negative_post_is_a_strong_complaint(p_negative: float, severity: str,
                                                           reason: str | None) -> None:
    a = assess(0.1, True, (), 0.0, (), NOBODY, 0, None, POLICY, HARM.read("今天很糟糕"),
               GRIEVANCE.read("今天很糟糕"), p_negative)
    assert a.severity == severity
    assert (reason in a.reasons) if reason else not any("强烈" in r for r in a.reasons)


def test_pattern_anchors_never_skip_a_match() -> None:
    """A pattern runs only when one of its anchors is in the post: every match, on every
    labelled post and reply, must contain one, or the shortcut would change verdicts."""
    import json
    import re
    from pathlib import Path

    from rules.harm import GRIEVANCE_PATTERNS, HARM_PATTERNS
    from rules.textnorm import normalise_for_scoring

    data = Path(__file__).resolve().parents[1] / "data"
    texts = [json.loads(line)["text"] for name in ("severity_posts.jsonl",
                                                   "official_replies.jsonl")
             for line in (data / name).read_text("utf-8").splitlines()]
    texts += ["椅腿直接折了", "多收五百", "一周了还在待发货", "喝出了一颗螺丝钉", "脚趾头血肉模糊"]
    matched = 0
    for pattern, _, _, anchors in HARM_PATTERNS + GRIEVANCE_PATTERNS:
        rx = re.compile(pattern)
        for text in texts:
            for m in rx.finditer(normalise_for_scoring(text).lower()):
                matched += 1
                assert any(a in m.group() for a in anchors), (pattern, m.group())
    assert matched > 200


@pytest.mark.parametrize(("text", "harm"), [
    ("听说养老院有老人被护工打了", True),                 # someone beaten
    ("美容院做完疗程人直接虚脱了，叫了120", True),        # an emergency call
    ("外卖骑手闯红灯，把一个过马路的老太太撞飞了", True),
    ("旋转门转得太快，把一个小男孩卡住了", True),
    ("烤箱门的玻璃自己碎了，碎片溅了一地，儿子就站在旁边", True),
    ("手机屏幕摔了一下就碎了，售后换屏要九百", False),   # a broken thing is a complaint
    ("网传超市卖的猪肉是病死猪", True),
    ("今天被要求打了疫苗", False),                       # 打 a vaccine is not a blow
    ("我就是脑袋被驴踢了才来看这场球", False),           # an idiom
    ("问候你全家", False),
    ("被这部剧虐得心都碎了", False),                     # a broken heart is a figure
    ("杯子碎了", False),                                 # one weak cue alone
])
def test_more_ways_of_telling_harm(text: str, harm: bool) -> None:
    assert HARM.read(text).harm is harm


def test_one_weak_cue_is_not_a_harm_report_however_sure_the_model() -> None:
    """Tried and taken back: letting a confidently negative model stand in for a second
    cue doubled the harm reports on general Weibo posts (307 -> 660 of 15,442 in
    human_train.jsonl), nearly all of them feelings (气炸了, 头疼, 恶心, 伤心事). A single weak
    cue stays below P1 however negative the post."""
    text = "刚刚听到隔壁商场一声巨响，窗户都震了"
    reading = HARM.read(text)
    assert not reading.harm and reading.weight == 1.0
    a = assess(0.05, True, (), 0.0, (), NOBODY, 0, None, POLICY, reading, GRIEVANCE.read(text),
               0.92)
    assert a.severity != "P1" and not a.danger
    assert not HARM.read("我的头快炸了，气炸了").harm


@pytest.mark.parametrize(("text", "harm"), [
    ("陪朋友逛了一天街，腿都走断了", False),   # an everyday effort's result: tiredness
    ("排了三个小时队，腰都站断了", False),
    ("从梯子上摔下来，腿摔断了", True),         # an accident has a cause of its own
    ("被电动车撞了，腿撞断了", True),
])
def test_an_everyday_effort_is_not_an_injury(text: str, harm: bool) -> None:
    assert HARM.read(text).harm is harm
