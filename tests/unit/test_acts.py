"""What a post does (rules.acts), and how the scorer weighs it: a plain question, notice,
promotion or thanks is not read as negative unless the model is sure or something went
wrong in it."""

from __future__ import annotations

import pytest

from rules.acts import ACT_NEGATIVE_ODDS, read_acts
from rules.lexicon import Lexicon
from rules.scoring import Scorer
from rules.sentiment import Polarity
from rules.textnorm import normalise_for_scoring


def acts(text: str) -> tuple[str, ...]:
    return read_acts(normalise_for_scoring(text).lower())


@pytest.mark.parametrize(("text", "expected"), [
    ("请问一下海底捞五道口店周末要排多久的队？", ("询问",)),
    ("有人知道这家店几点开门吗", ("询问",)),
    ("这款扫地机吸力怎么样？", ("询问",)),
    ("孕妇可以喝低因拿铁吗？", ("询问",)),
    ("乐康乳业今日发布第三季度财报，营收同比增长12%", ("通告",)),
    ("小区快递站从今天起营业时间调整为早八点到晚九点", ("通告",)),
    ("转发抽奖：关注并转发本条，周五抽5位送兑换券", ("推广",)),
    ("鲜丰外卖今天满30减15", ("推广",)),
    ("冒雨送餐还提前到了，给个五星好评", ("称赞",)),
    ("健身一个月瘦了十斤，感谢教练", ("称赞",)),
    ("味道还不错，推荐", ("称赞",)),                    # 还不错 is not 还不…
    ("請問門店可以帶寵物進去嗎？", ("询问",)),          # traditional characters
    ("朋友说这款奶粉喝了不上火，真的吗", ("询问",)),      # checking a claim heard
    ("新换的床垫睡着特别舒服", ("称赞",)),              # a good quality with a degree word
    # hyperbole: pleasure, laughter, slang praise, popularity, won over, hooked, the day
    ("这家的芝士蛋糕好吃到想哭", ("夸张",)),
    ("笑死，主播今天又翻车了", ("夸张",)),
    ("新款的配色绝了，已经下单", ("夸张",)),
    ("这季的剧情炸裂，每集都有反转", ("夸张",)),
    ("联名款又是一抢而空", ("夸张",)),
    ("被这首主题曲洗脑了", ("夸张",)),
    ("安利给室友之后她也中毒了，天天喝", ("称赞", "夸张")),
    ("下午搬了一天家，累成狗", ("夸张",)),
    # a flaw negated after a degree or frequency adverb
    ("用了三年一次都没坏过", ("没出毛病",)),
    ("开十个应用也一点都不卡", ("没出毛病",)),
    ("一点都不后悔买了它", ("没出毛病",)),           # 后悔 negated does not block
    ("装好以后一点问题都没有", ("没出毛病",)),       # nor does 问题
    ("用了这么久还没坏", ("没出毛病",)),             # 还没 + a flaw is not 还没到
    # the product as what got one through
    ("通宵赶方案，全靠这杯美式续命", ("解围",)),
    ("多亏这个充电宝，手机撑到了家", ("解围",)),
    ("有检测报告，给孩子用着放心", ("解围",)),
    # a purchase told beside a feeling about something else, with why it is there
    ("加班到半夜，幸亏公司楼下还有一家便利店开着", ("解围",)),   # 幸亏 … 有
    ("感冒了一整天，喝完这碗姜汤舒服多了", ("解围",)),           # the writer's state mended
    ("期末周全靠楼下的咖啡撑过来", ("解围",)),
    ("背了两年的包，边角一点磨损都没有", ("没出毛病",)),
    ("戴着游泳也没进过水", ("没出毛病",)),
    ("这家网店买过三次，衣服都没起球，没踩雷", ("没出毛病",)),   # a letdown denied blocks nothing
    ("这本教材讲得特别清楚", ("称赞",)),
    ("这部电影后劲太大，看完哭得停不下来", ("夸张",)),          # moved to tears by a work
    ("面试没过，心情很差，买了杯奶茶安慰一下自己", ("他事",)),
    ("周末在商场逛了半天，顺便吃了个冰淇淋，腿都酸了", ("他事",)),
])
def test_reads_the_act(text: str, expected: tuple[str, ...]) -> None:
    assert acts(text) == expected


@pytest.mark.parametrize("text", [
    "到底什么时候退款？",                 # exasperated, and money
    "凭什么不给退？",                     # rhetorical
    "为什么快递三天了还没到？",
    "官方通报：该品牌奶粉抽检不合格，已下架召回",  # bad corporate news
    "感谢某某快递让我等了一个星期，呵呵",   # sarcasm
    "今天天气不错",                       # no act at all
    "",
    "商家说找骑手，骑手说找平台，绝了",      # the sarcastic verdict at the end of a story
    "这售后也是绝了",                       # 也是绝了: sarcasm
    "等外卖等到饿死了",                     # the hunger is the service's doing
    "饿死了，外卖一个小时了还没送到",
    "还好意思说是正品",                     # 还好意思: not relief
    "这种东西谁敢放心给孩子用",             # 放心 denied
    "一点都不好吃",                         # a good word negated is no praise
    "从来不回消息",                         # 回 is no flaw
    "谁懂我今天有多累",                     # 谁懂我 is no 太懂我
    "买了个充电宝安慰自己，结果用了两天就不充电了",  # a purchase that turned out badly
    "点了份外卖，在家好无聊",                # a purchase with no reason given: not read
    "没买到票，只好在家陪我妈",              # no purchase made
    "在梦里拒绝了他",                       # 拒绝了 is no 绝了
    "冷笑了一声",                           # 冷笑 is no laughter
    "很好吃，就是送得太慢了",               # the turn is the verdict
    "用起来不是很方便",                     # a good word negated
    "看了这条新闻哭得不行",                 # tears, but at no work
    "幸亏我留了截图，不然退款都要不回来",     # relief inside a complaint
    "又踩雷了，再也不买",                   # a letdown not denied
    "剧烈疼痛，哭得不行",                   # 剧烈 is no drama
])
def test_no_act_or_blocked(text: str) -> None:
    assert acts(text) == ()


class Fixed:
    """A three-class test double: the same class probabilities for every text."""

    name = "fixed"

    def __init__(self, pol: Polarity) -> None:
        self.pol = pol

    def polarity_many(self, texts):
        return [self.pol] * len(texts)

    def score_many(self, texts):
        return [self.pol.sentiment] * len(texts)

    def score(self, text: str) -> float:
        return self.pol.sentiment


def test_negative_odds_is_a_prior_correction() -> None:
    p = Polarity(0.6, 0.1, 0.3).negative_odds(0.2)
    assert sum(p) == pytest.approx(1.0)
    # odds of negative against the rest: 0.6/0.4 -> 0.12/0.4
    assert p.negative / (1 - p.negative) == pytest.approx(0.2 * 0.6 / 0.4)
    assert p.neutral / p.positive == pytest.approx(0.1 / 0.3)   # the rest keep their ratio


def test_a_question_the_model_reads_as_negative_is_not_negative() -> None:
    scorer = Scorer(Fixed(Polarity(0.66, 0.2, 0.14)), Lexicon({}), 0.4)
    s = scorer.score_text("请问一下门店周末要排多久的队？")
    assert not s.negative and s.polarity == "neutral" and s.severity == "P4"
    assert s.p_negative == pytest.approx(0.66 * ACT_NEGATIVE_ODDS
                                         / (0.66 * ACT_NEGATIVE_ODDS + 0.34), abs=1e-4)
    assert "非投诉：询问" in s.reasons
    # the same model call on a complaint stays negative
    s = scorer.score_text("到底什么时候给我退款？")
    from rules.complaints import COMPLAINT_NEGATIVE_ODDS  # raised by the complaint reading
    assert s.negative and s.p_negative == pytest.approx(
        0.66 * COMPLAINT_NEGATIVE_ODDS / (0.66 * COMPLAINT_NEGATIVE_ODDS + 0.34), abs=1e-4)
    # and a reading turned off leaves the model alone
    off = Scorer(Fixed(Polarity(0.66, 0.2, 0.14)), Lexicon({}), 0.4, act_negative_odds=1.0)
    assert off.score_text("请问一下门店周末要排多久的队？").negative


def test_a_model_that_is_sure_still_wins() -> None:
    scorer = Scorer(Fixed(Polarity(0.97, 0.01, 0.02)), Lexicon({}), 0.4)
    assert scorer.score_text("请问门店可以带宠物进去吗？").negative


def test_anchors_never_skip_a_match() -> None:
    """An act's pattern runs only when one of its anchors is in the post: every match on
    the labelled posts and replies must contain one, or the shortcut would change verdicts."""
    import json
    from pathlib import Path

    from rules.acts import ACTS, ANCHORS

    data = Path(__file__).resolve().parents[1] / "data"
    texts = [normalise_for_scoring(json.loads(line)["text"]).lower()
             for name in ("severity_posts.jsonl", "official_replies.jsonl")
             for line in (data / name).read_text("utf-8").splitlines()]
    texts += ["这款扫地机吸力怎么样", "从3月1日起恢复营业", "抽两位送券"]
    matched = 0
    for (name, rx), anchors in zip(ACTS, ANCHORS, strict=True):
        for text in texts:
            for m in rx.finditer(text):
                matched += 1
                assert any(a in m.group() for a in anchors), (name, m.group())
    assert matched > 50


@pytest.mark.parametrize(("text", "read"), [
    ("新手机的宣传片画面炸裂", ("夸张",)),          # 炸裂: one weak harm cue, explained
    ("两米摔下去屏幕都没碎，牛", ("没出毛病", "夸张")),
    ("起火了，幸好有灭火器，有人受伤", ()),            # a harm report wins
    ("客服说找商家，商家说找客服，退款一直没到，绝了", ()),  # a complaint wins
])
def test_harm_and_complaints_still_win(text: str, read: tuple[str, ...]) -> None:
    """A harm report or a complaint blocks every act; a single weak cue lets through only
    the readings that explain it (a figure of speech, a negated flaw)."""
    scorer = Scorer(Fixed(Polarity(0.7, 0.2, 0.1)), Lexicon({}), 0.4)
    s = scorer.score_text(text)
    named = next((r for r in s.reasons if r.startswith("非投诉：")), "")
    assert sorted(named.removeprefix("非投诉：").split("、") if named else []) == sorted(read)
