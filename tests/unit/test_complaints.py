"""The complaint reading (rules.complaints): grievances read from grammar, and the scorer's
correction of the odds of negative for them."""

from __future__ import annotations

import re

import pytest

from rules.complaints import COMPLAINT_NEGATIVE_ODDS, COMPLAINT_PATTERNS
from rules.harm import default_grievance_table
from rules.lexicon import Lexicon
from rules.scoring import Scorer
from rules.sentiment import Polarity
from rules.textnorm import normalise_for_scoring

GRIEVANCE = default_grievance_table()


@pytest.mark.parametrize(("text", "terms"), [
    ("送餐有点慢", ("有点慢",)),                   # a degree adverb on a bad quality
    ("价格比较贵，味道很一般", ("比较贵", "很一般")),
    ("送餐慢，分量也少，", ("送餐慢", "分量也少")),  # a quality of what reviews judge
    ("送得晚了", ("送得晚",)),                     # a verb's complement
    ("味道不错，就是有点咸", ("就是有点咸",)),     # the verdict after a contrast
    ("菜都凉了", ("都凉了",)),                     # what happened to the order
    ("汤洒了一半", ("汤洒了",)),
    ("少送了一份", ("少送",)),                     # missing or wrong
    ("送错了，我点的是鸡腿饭", ("送错",)),
    ("一个半小时才送到", ("小时才送",)),           # late
    ("用了三天就坏了", ("就坏",)),                 # soon broken
    ("耳机右耳没声音，", ("没声音,",)),
    ("一点都不好吃", ("一点都不好吃",)),           # a good quality flatly denied
    ("味道不太好", ("不太好",)),                   # or hedged away
    ("还不如去店里吃", ("还不如",)),               # an expectation let down
    ("再也不买了", ("再也不买",)),
    ("服务员态度很差", ("态度很差",)),             # the staff's manner
    ("同一笔订单扣了两次钱", ("扣了两次",)),       # charged twice
    ("师傅连着放了三次鸽子", ("放了三次鸽子",)),   # a separable verb, its object apart
    ("面积比合同少了五平米", ("比合同少",)),       # less than the contract said
    ("打车明明只开了五公里，系统收了我一百二", ("明明", "收了我一百二")),
    ("客服只肯补二十", ("只肯补二十",)),
    ("三个月了厨房还没动", ("三个月了厨房还没",)),
])
def test_complaints_are_read(text: str, terms: tuple[str, ...]) -> None:
    r = GRIEVANCE.read(text)
    assert r.terms == terms
    assert r.weight >= 1.0


@pytest.mark.parametrize("text", [
    "太好吃了，下次还来",             # a degree adverb on a good quality
    "一点都不贵，分量也足",           # a bad quality flatly denied is praise
    "送餐不太慢，还行",               # 不 before the degree adverb
    "没有太慢，可以接受",             # a narrow negator
    "被这部剧虐得心都碎了",           # a feeling, not an order
    "今天天气凉了，来碗热汤",         # the weather, not the food
    "很少见这么好的店",               # 少 not closing its phrase
    "买了不后悔",
    "价格不贵，味道好",               # a bad quality negated
    "但是不过分",
    "但是一般来说不会",               # 一般 must close its phrase
    "但是麻烦您再确认一下",
    "不好意思久等了",
    "物流很快，好评",
    "考试挂了，心情超差",               # the writer's mood, not a quality of the seller
    "今天运气真的太差了",
    "消费者协会发布年度报告",           # 消费: consuming, not a fee
    "骑手冒雨送来，给他加了小费",       # a tip the customer gives
    "这也太让人[费解]了吧",             # an emoticon
    "和面真费劲",                       # effort
    "好吃，不难吃",                     # a bare verdict denied
    "难吃的东西也能做得好吃",           # not a clause of its own
])
def test_praise_and_feelings_are_not_complaints(text: str) -> None:
    assert GRIEVANCE.read(text).weight < 1.0


def test_a_pleasant_surprise_is_half_a_cue() -> None:
    """居然/竟然/明明 only mark a complaint beside another cue."""
    assert GRIEVANCE.read("宝宝第一次坐安全座椅，居然没哭").weight == 0.5


def test_complaint_anchors_never_skip_a_match() -> None:
    """A pattern runs only when one of its anchors is in the post: every match must hold
    one, or the shortcut would change verdicts."""
    import json
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data"
    texts = [json.loads(line)["text"] for line in
             (data / "severity_posts.jsonl").read_text("utf-8").splitlines()]
    texts += ["送餐有点慢", "菜都凉了", "汤洒掉了", "也太敷衍了吧", "越来越难吃", "真的差劲",
              "一点也不新鲜", "不是很满意", "少了两杯", "晚了半小时", "一洗就掉色", "不制冷",
              "扣了2次", "花我三百", "比图片小一圈"]
    matched = 0
    for pattern, _, _, anchors in COMPLAINT_PATTERNS:
        rx = re.compile(pattern)
        for text in texts:
            for m in rx.finditer(normalise_for_scoring(text).lower()):
                matched += 1
                assert any(a in m.group() for a in anchors), (pattern, m.group())
    assert matched > 40


class _Fixed:
    """A three-class model double that reads every text the same."""

    name = "fixed"

    def __init__(self, pol: Polarity) -> None:
        self.pol = pol

    def score(self, text: str) -> float:
        return self.pol.sentiment

    def score_many(self, texts: list[str]) -> list[float]:
        return [self.pol.sentiment for _ in texts]

    def polarity_many(self, texts: list[str]) -> list[Polarity]:
        return [self.pol for _ in texts]


def test_a_calm_complaint_reads_negative() -> None:
    """The model's odds of negative are multiplied for a complaint: a grievance it reads as
    half neutral (送餐有点慢) becomes negative; with the factor at 1 it stays neutral."""
    pol = Polarity(0.35, 0.45, 0.20)  # sentiment 0.425: not negative by the model alone
    on = Scorer(_Fixed(pol), Lexicon({}), 0.4)
    off = Scorer(_Fixed(pol), Lexicon({}), 0.4, complaint_negative_odds=1.0)
    s = on.score_text("送餐有点慢")
    assert COMPLAINT_NEGATIVE_ODDS > 1.0
    assert s.negative and s.polarity == "negative"
    assert s.p_negative == pytest.approx(0.35 * COMPLAINT_NEGATIVE_ODDS
                                         / (0.35 * COMPLAINT_NEGATIVE_ODDS + 0.65), abs=1e-4)
    assert not off.score_text("送餐有点慢").negative
    assert not on.score_text("送餐挺快的").negative  # no grievance, no correction


def test_a_clearly_positive_post_stays_positive() -> None:
    """A prior correction, not an override: the model's clear praise wins."""
    pol = Polarity(0.05, 0.05, 0.90)
    s = Scorer(_Fixed(pol), Lexicon({}), 0.4).score_text("就是有点贵，但是真的好吃")
    assert not s.negative and s.polarity == "positive"


@pytest.mark.parametrize("text", ["菜超咸", "服务态度超差", "还要另收200安装费",
                                  "物业费年年涨", "难吃", "送来的时候，难喝死了。", "不新鲜，"])
def test_the_seller_s_qualities_and_fees_still_count(text: str) -> None:
    """The mood and fee exceptions are narrow: the seller's qualities and fees still count;
    a bad verdict told as a clause of its own (难吃) is one too."""
    assert GRIEVANCE.read(text).weight >= 1.0


def test_a_negated_complaint_term_names_no_grievance() -> None:
    """这次没踩雷: the crisis lexicon's complaint term is negated, as the grievance reading
    reads its own cues; a term used as said still counts."""
    from rules.lexicon import default_crisis_lexicon

    scorer = Scorer(_Fixed(Polarity(0.3, 0.4, 0.3)), default_crisis_lexicon(), 0.4)
    assert not any("投诉词" in r for r in scorer.score_text("衣服洗了都没掉色，这次没踩雷").reasons)
    assert any("投诉词：踩雷" in r for r in scorer.score_text("又踩雷了，这家真难吃").reasons)
