"""The argument guard: does an official reply argue with the customer?

An official reply must never argue in public. Arguing is phrased a thousand ways, so the guard
is a small grammar of *moves*, not a list of sentences:

- **blame** the customer: 你自己没看清, 还怪我们？, 是你的问题, 关我们什么事;
- **deny** their account: 不可能, 根本没有, 不存在, 别乱说, 系统显示你已签收 + a rebuttal;
- **talk down**: 搞清楚, 有点常识, 买不起就别买, 爱买不买, 无理取闹, 恶意差评, 你闹也没用;
- **sarcasm**: 呵呵, 您说是就是, 您可真是…, 想象力真丰富, “宝贵”意见;
- **rhetorical questions** aimed at the customer: 难道…？, 凭什么…？, 至于吗？, 早干嘛去了？

Each move is a regular expression with a weight; a reply argues when its moves add up to
``ARGUES_AT``. Weight 2 is a move no polite reply makes (爱买不买, 还怪我们？); weight 1 needs a
second (系统显示你已签收 is information until followed by 别乱说 or 自己找找吧). Phrases of the
team's forbidden-reply lexicon (``scoring.argument_lexicon``) count too: weight 2 for its
severe entries (>= 4.5), 1 for the rest.

Polite replies are full of 不 and 没 (不好意思, 没问题, 不会再发生, 不客气): no move is a bare
negator, and owning the fault (是我们的问题, 怪我们没有说清楚) is not blaming the customer.

Built and tuned on the train part of ``tests/data/official_replies.jsonl``; the held-out part
is scored by ``bench/severity.py`` (see docs/severity.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rules.lexicon import Lexicon
from rules.textnorm import normalise_for_scoring

ARGUES_AT = 2.0

YOU = "(?:你|您)"
US = "(?:我们|本店|商家|平台|商场|酒店|店家|门店|别人|谁)"

# (pattern, weight, move). Patterns run on NFKC-normalised, lower-cased text: full-width
# ？！， are ASCII there.
MOVES: tuple[tuple[str, float, str], ...] = (
    # --- blame the customer
    (rf"(?:还|来|就|能|别)怪{US}|怪{US}[^,.!?。]{{0,6}}\?|怪不了|能怪谁|怪谁", 2, "归咎顾客"),
    (rf"{YOU}(?:自己)?(?:没|不|没有)(?:仔细)?(?:看|注意|检查|问|按|听|关注|保存|确认|锁|充)",
     2, "归咎顾客"),
    (rf"{YOU}自己(?!在家|不用|可以|也可以|方便)", 1, "归咎顾客"),
    (r"自己(?:弄|造成|负责|的问题|的失误|的事|找找|不听|不看|手滑|选的)", 2, "归咎顾客"),
    (rf"肯定是{YOU}|{YOU}肯定是", 2, "归咎顾客"),
    (rf"(?:是|都是){YOU}(?:自己)?的(?:问题|责任|事|失误)|{YOU}的失误|有问题的是{YOU}"
     rf"|是{YOU}的事|顾客自己", 2, "归咎顾客"),
    (r"操作不当|使用不当|人为(?:损坏|原因)", 1.5, "归咎顾客"),
    (r"(?:关|跟|和)我们[^,.!?。]{0,3}(?:什么事|啥事|没关系)"
     r"|不是我们的[^,.!?。]{0,4}(?:问题|责任)", 2, "归咎顾客"),
    (r"(?:都|还)要我们", 2, "归咎顾客"),
    (r"反省|反思一下自己|好好想想", 2, "归咎顾客"),
    (rf"(?:明明|还不)是{YOU}", 2, "归咎顾客"),
    (r"不负责|后果自负|自己负责|买单", 1, "归咎顾客"),
    # --- deny the customer's account
    (r"(?<!确实)不可能", 1.5, "否认顾客"),
    (r"(?<!确实)不可能(?:是|有)|^不可能", 2, "否认顾客"),
    (r"(?:这样|这么)说(?:就)?不对", 2, "否认顾客"),
    (r"正常现象", 1.5, "否认顾客"),
    (r"根本(?:没|不|就)|不存在|纯属|胡扯|瞎说|乱说|胡说|编故事|捏造|诬陷|污蔑|颠倒黑白"
     r"|夸大其词|带节奏|站不住脚|毫无根据|记错了|p的|泼脏水|造谣", 2, "否认顾客"),
    (rf"(?:系统|记录|后台|监控)(?:显示|记录)(?:{YOU}|是{YOU})", 1, "否认顾客"),
    (r"证据呢|说没收到就", 2, "否认顾客"),
    (rf"就{YOU}(?:有问题|出问题|有事|看不懂)|偏偏{YOU}|怎么就{YOU}|别人(?:怎么|都)", 2,
     "否认顾客"),
    # --- talk down, dismiss, threaten
    (rf"搞清楚|动动脑子|常识|认字|学一下|不懂|听不懂|看不懂|见多了|第一次网购|第一天用"
     rf"|低级问题|小事也|离谱|不在乎|不缺{YOU}|就不错了|买不起|嫌贵|别家|不买拉倒|爱买不买"
     rf"|没人逼|没人求|以后别来|不欢迎|拉黑|随便{YOU}|有本事|去告|{YOU}闹|闹也没用|纠缠"
     rf"|无理取闹|胡搅蛮缠|碰瓷|讹|白嫖|占便宜|恶意差评|追究|删帖|报警了|爱信不信|不会理会"
     rf"|别来烦|陪{YOU}闹|没时间陪|说什么都没用|发多少遍|对{YOU}没好处|注意言辞|想要赔偿吧"
     rf"|伺候不起|这种客户|这样的顾客|什么样的顾客|行业标准再|别以为", 2, "贬低顾客"),
    (r"规定就是规定|只认", 1, "贬低顾客"),
    # --- sarcasm
    (rf"呵呵|可真是|真厉害|佩服佩服|说是就是|说什么都对|开心就好|高兴就好|想象力|写小说"
     rf"|演得|表演|怎么不去当|要不{YOU}来|全世界就|太倒霉了呢|“宝贵”|“认真”|又来", 2, "讽刺"),
    (r"哈哈,", 1, "讽刺"),
    # --- rhetorical questions aimed at the customer
    (rf"难道|凭什么|早干嘛|谁让{YOU}|至于吗|有必要发|还想|还要我们|到底想|想怎么样|想怎样"
     rf"|哪个商家|哪家店|确定{YOU}|有什么好|这也要|不会自己|合理吗|第一天|有什么用", 2,
     "反问顾客"),
    (rf"{YOU}[^,.!?。]{{0,6}}不(?:会|看|懂|知道)[^,.!?。]*\?", 2, "反问顾客"),
    (r"怎么不(?:早|检查|看)", 2, "反问顾客"),
)

OWNING = re.compile(r"是我们的(?:问题|失误|责任)|我们(?:没有|没)(?:做好|说清楚|看清)|我们的问题"
                    r"|怪我们没|我们做得不够")
"""Owning the fault: the reply blames itself, not the customer."""

OFFER = re.compile(r"为您|帮您|欢迎|随时|联系我们|私信")
"""An offer to check or help: a denial that comes with one is firm, not a fight (不存在杀熟的
情况，您可以对比订单明细，有疑问我们随时为您核对). Halves the weight of denials."""
SOFTENED = frozenset({"否认顾客", "禁用语"})

SERVICE = re.compile(r"抱歉|歉意|对不起|不好意思|为您|帮您|给您|请您|麻烦您|谢谢|感谢|您好|欢迎"
                     r"|我们会|马上|已经|私信|放心|祝|理解|安排|核实|联系")
"""What a civil reply nearly always has: an apology, thanks, an offer, a step taken."""
ADDRESSED = re.compile(r"你|您|\?|别|不要|少")
"""Aimed at someone: second person, a question, an imperative."""
TONE_AT = 0.6
"""P(negative) of a reply, by the sentiment model, at or above which a reply that is aimed at
the customer and offers nothing argues by its tone alone. Chosen on the train part only
(there: 2 of 119 civil replies, 1 of 66 polite ones with 不/没, would trigger by tone)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's reading of one reply."""

    argues: bool
    weight: float
    phrases: tuple[str, ...]
    """The wording that argues, as it appears in the reply (for the alert's 问题用语)."""
    moves: tuple[str, ...]


class ArgumentGuard:
    """Grammar of arguing moves plus the team's forbidden-reply lexicon."""

    def __init__(self, lexicon: Lexicon | None = None, argues_at: float = ARGUES_AT) -> None:
        self.lexicon = lexicon
        self.argues_at = argues_at
        self._moves = tuple((re.compile(p), w, m) for p, w, m in MOVES)

    def read(self, text: str, tone: Callable[[str], float] | None = None) -> Verdict:
        """Does ``text`` argue? With the phrases that say so.

        ``tone`` (P(negative) of a text, the sentiment model's) catches what the grammar
        does not know: a reply with no apology, thanks or offer (``SERVICE``), aimed at the
        customer (``ADDRESSED``), whose tone is negative (>= ``TONE_AT``), argues. It is
        asked only when the grammar alone does not decide."""
        norm = normalise_for_scoring(text).lower()
        if not norm.strip():
            return Verdict(False, 0.0, (), ())
        owning = OWNING.search(norm) is not None
        found: dict[tuple[int, int], tuple[float, str]] = {}
        for pattern, weight, move in self._moves:
            for m in pattern.finditer(norm):
                if owning and move == "归咎顾客":
                    continue
                span = m.span()
                if span not in found or found[span][0] < weight:
                    found[span] = (weight, move)
        if self.lexicon is not None:
            for term in self.lexicon.find_normalised(norm):
                key = normalise_for_scoring(term.term).lower()
                at = norm.find(key)
                span = (at, at + len(key))
                found.setdefault(span, (2.0 if term.weight >= 4.5 else 1.0, "禁用语"))
        spans = _outermost(sorted(found))
        offer = OFFER.search(norm) is not None
        weight = sum(found[s][0] / (2 if offer and found[s][1] in SOFTENED else 1)
                     for s in spans)
        phrases = tuple(dict.fromkeys(norm[a:b] for a, b in spans))
        moves = tuple(dict.fromkeys(found[s][1] for s in spans))
        if (weight < self.argues_at and tone is not None and SERVICE.search(norm) is None
                and ADDRESSED.search(norm) is not None):
            p_negative = tone(text)
            if p_negative >= TONE_AT:
                weight += self.argues_at
                phrases += (f"整体语气（负面概率 {p_negative:.2f}）",)
                moves += ("语气对立",)
        argues = weight >= self.argues_at
        return Verdict(argues, weight, phrases if argues else (), moves if argues else ())

    def check(self, text: str, tone: Callable[[str], float] | None = None) -> tuple[str, ...]:
        """The arguing phrases of ``text``; empty when it does not argue."""
        return self.read(text, tone).phrases


def _outermost(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop spans inside another (one wording counts once)."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans, key=lambda s: (s[0], -s[1])):
        if out and a >= out[-1][0] and b <= out[-1][1]:
            continue
        out.append((a, b))
    return out
