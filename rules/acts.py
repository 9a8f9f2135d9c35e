"""What a post does, read without the sentiment model: asks, announces, promotes, praises.

Why: the sentiment model learned from SMP2020-EWECT, whose people labelled the *emotion* of
the writer (angry, sad, fear → negative). There, 77 % of the posts that ask something are
negative (the asker is worried or fed up), and a brand post told in the first person leans
negative too. A PR team asks a different question: is this post against the brand? An
information-seeking question (请问门店可以带宠物吗？), a notice (本周六起延长营业), a giveaway
(关注并转发，抽三位送年卡) or a thank-you is not, unless it also says something went wrong.

So, like the harm reading, this is a separate reading of what the post *does*. When it finds
one of these acts and nothing that blocks it (a grievance or harm cue, a rhetorical or
distressed word, bad corporate news), the scorer moves the model's odds of ``negative`` by
``ACT_NEGATIVE_ODDS``: a prior correction (P(negative | such a post) is far lower among brand
mentions than in the emotion-labelled corpus), not an override, so a post the model is sure
about stays negative, and ``sentiment``, ``p_negative``, ``polarity`` and ``negative`` stay
consistent with one another.

The patterns are general forms of Chinese questions, notices, promotions and thanks, written
from the grammar, not from the labelled posts; ``bench/severity.py`` reports them on the parts
written before and after (``heldout2``).
"""

from __future__ import annotations

import re

import ahocorasick

ASK = re.compile(
    # explicit requests for information (请问, 有没有人知道, 求推荐)
    r"请问|想问一?下|问一下|求问|求助一下|求推荐|求科普|有没有(?:人|姐妹|朋友|大佬|宝子|小伙伴)"
    r"|有人知道|谁知道|有谁知道|有没有推荐"
    # what, when, where, how much, how is it — ending the clause (几点开始送吗？ 吸力怎么样？)
    r"|(?:什么时候|几点|多久|多长时间|几天|哪里|哪儿|在哪|哪家|哪款|哪个|哪种|多少钱|怎么样"
    r"|怎么(?:去|买|用|办|预约|报名|联系|选|吃))[^,.!?;。]{0,8}(?:[?？]|[吗呢啊呀]|$)"
    # yes/no questions about what one may do or what a thing is (可以带宠物进去吗？ 值得买吗)
    r"|(?:可以|能|会|需要|要|支持|值得|适合)[^,.!?;。]{0,14}[吗么](?:[?？]|$|[,.!;。])"
)
"""An information-seeking question."""

ANNOUNCE = re.compile(
    r"发布|宣布|公布|通报|公告|官方[:：]|通知[:：]|财报|营收|同比|签约|签署|上线|入选|获评|荣获"
    r"|开业|开张|开通|延长营业|恢复营业|调整为"
    r"|(?:从|自)?(?:今日|今天|明天|明日|下周|本周|即日|[0-9一二三四五六七八九十]+月"
    r"[0-9一二三四五六七八九十]+[日号])起"
)
"""A notice or a piece of news."""

PROMOTE = re.compile(
    r"抽奖|转发抽|关注[并和+]?转发|转发[并和+]?关注|抽(?:\d+|[一二两三四五六七八九十]+)(?:位|个|名)"
    r"|满\d+减\d+|第二(?:杯|件|份)半价|半价|买一送一|[0-9一二三四五六七八九](?:\.\d)?折"
    r"|优惠|折扣|特价|限时|秒杀|包邮|福利|上新|新品上市|免费领|领券|直降|兑换券|代金券"
)
"""A promotion or a giveaway."""

PRAISE = re.compile(
    r"好评|五星|点赞|感谢|谢谢|推荐|回购|安利|强推|必须收|绝配|yyds|良心|靠谱|给力|满意|贴心"
    r"|太好(?:吃|喝|用|看|听)了"
)
"""Thanks, a recommendation, a repeat purchase."""

BLOCK = re.compile(
    # rhetorical or exasperated questions (凭什么, 到底, 怎么还不)
    r"凭什么|为什么|为啥|难道|到底|究竟|怎么回事|怎么还|还要等|还不(?![错赖])|还没|什么鬼|有意思吗|要脸"
    r"|良心不会痛|有病|呵呵|无语|受不了|崩溃|气死|恶心|垃圾|坑|骗|忽悠|套路|投诉|曝光|差评|维权"
    r"|退款|赔偿|举报|避雷|踩雷|千万别|别买|怎么办|后悔|失望|心寒"
    # bad corporate news (处罚, 召回, 裁员)
    r"|处罚|罚款|罚单|立案|调查|下架|召回|暴跌|亏损|裁员|倒闭|违规|违法|不合格|约谈|被查|道歉"
    r"|事故|问题"
)
"""Any of these and the post is not read as a plain act: it may well be a complaint."""

ACTS = (("询问", ASK), ("通告", ANNOUNCE), ("推广", PROMOTE), ("称赞", PRAISE))

ANCHORS = (
    ("请问", "想问", "问一下", "求问", "求助一下", "求推荐", "求科普", "有没有", "有人知道",
     "谁知道", "什么时候", "几点", "多久", "多长时间", "几天", "哪", "多少钱", "怎么", "吗", "么"),
    ("发布", "宣布", "公布", "通报", "公告", "官方", "通知", "财报", "营收", "同比", "签约",
     "签署", "上线", "入选", "获评", "荣获", "开业", "开张", "开通", "延长营业", "恢复营业",
     "调整为", "起"),
    ("抽", "满", "半价", "买一送一", "折", "优惠", "特价", "限时", "秒杀", "包邮", "福利",
     "上新", "新品上市", "免费领", "领券", "直降", "兑换券", "代金券", "转发", "关注"),
    ("好评", "五星", "点赞", "感谢", "谢谢", "推荐", "回购", "安利", "强推", "必须收", "绝配",
     "yyds", "良心", "靠谱", "给力", "满意", "贴心", "太好"),
)
"""Per act, words one of which every match contains: one Aho-Corasick pass finds which acts
can match at all, and only their patterns run (most posts run none; a test checks that no
match lacks its anchor)."""


def _anchor_automaton() -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    masks: dict[str, int] = {}
    for i, words in enumerate(ANCHORS):
        for w in words:
            masks[w] = masks.get(w, 0) | (1 << i)
    for w, mask in masks.items():
        auto.add_word(w, mask)
    auto.make_automaton()
    return auto


_ANCHORS = _anchor_automaton()

ACT_NEGATIVE_ODDS = 0.2
"""Factor on the odds of negative for a post read as one of the acts (see the module
docstring and docs/sentiment.md for how it was chosen)."""


def read_acts(norm: str) -> tuple[str, ...]:
    """The acts ``norm`` (``normalise_for_scoring(text).lower()``) performs, by name, empty
    when it performs none or when something in it blocks the reading."""
    if not norm:
        return ()
    mask = 0
    for _end, m in _ANCHORS.iter(norm):
        mask |= m
    if not mask:
        return ()
    found = tuple(name for i, (name, rx) in enumerate(ACTS)
                  if mask >> i & 1 and rx.search(norm))
    if not found or BLOCK.search(norm):
        return ()
    return found
