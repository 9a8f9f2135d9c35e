"""What a post says happened, read without the sentiment model: harm, and grievances.

The sentiment model reads a factual report (我们三个人都食物中毒了，已经送医) as neutral: it
learned tone, not events. Severity needs the event. So a post is read for *cues* from two
term tables a PR lead can edit:

- ``seeds/lexicon/harm_terms.tsv``: harm to a person (受伤, 送医, 身亡), a hazard (爆炸, 漏电,
  致癌物), a product failure (断裂, 刹车失灵, 差点), and who was harmed (孩子, 老人);
- ``seeds/lexicon/grievance_terms.tsv``: what went wrong in a complaint about money
  (退款, 多扣), service (踢皮球, 已读不回) or fraud (假货, 跑路);

and from a small grammar beside each (``HARM_PATTERNS``, ``GRIEVANCE_PATTERNS``) for what a
word list cannot enumerate: a body part then what happened to it (脚趾头血肉模糊), something
eaten then a symptom (吃完…跑厕所), single morphemes (伤, 血), an amount taken (多收五百),
a broken promise (说好的…). Lists and patterns cover what they were written against far
better than new wordings (docs/severity.md has the held-out figures).

Each cue is weighed in its clause (the text since the last ``，。！？；``):

- **negated** (没有受伤, 未检出, 无人员伤亡, 不起火) — a negator just before the cue;
- **hypothetical** (免得被辐射, 会不会过敏, 以防起火) — a precaution or a worry earlier in the
  clause;
- **a figure of speech** (好吃到爆炸, 人气爆炸, 花火爆炸好看) — a degree complement before a
  fire word, an evaluation right after a cue;
- **a debunk** (谣言, 不实, 辟谣 anywhere in the post) — the post says the harm did not happen;
  **a drill** (演练, 演习) — it was staged.

A hedge (网传, 听说, 据说) is *not* a negation: a rumour of harm is what PR must answer.
Cues that survive are summed: weight 2 reports harm alone (受伤, 爆炸), weight 1 needs a second
cue (断裂 + 差点, 中毒 + 呕吐), and a victim (孩子) corroborates but never counts alone. Harm is
reported at 2. A post that says nobody was hurt (没有受伤) reports no harm unless a weight-2
cue survives elsewhere (起火了，无人受伤: a fire is still an incident).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import ahocorasick

from rules.lexicon import Lexicon, LexTerm
from rules.rxlead import Lead
from rules.textnorm import normalise_for_scoring

HARM_AT = 2.0
"""Summed cue weight at which a post reports harm."""

VICTIM = "victim"
SETTING = "setting"
"""Where harm is treated (医院, 医生): however many, they count once, like victims."""
OUTCOME = frozenset({"injury", "death", "medical"})
"""Categories whose negation (没有受伤, 无人员伤亡) says nobody was hurt."""

KIND_WORDS = {
    "poisoning": "中毒不适", "medical": "就医", "injury": "受伤", "death": "死亡",
    "violence": "暴力", "fire": "火灾爆炸", "electric": "漏电泄漏", "failure": "产品故障",
    "contamination": "有害物质", "setting": "就医", "money": "金钱", "service": "服务",
    "fraud": "欺诈", "quality": "质量",
}

CLAUSE_ENDS = ",.!?;:。…\n~～"
"""Clause boundaries after NFKC (，！？；： become ASCII; 。 stays)."""

NEGATORS = ("没有", "没", "未", "无", "不", "非", "别", "均未", "并无", "从未", "杜绝", "零")
"""A negator at most ``NEGATION_GAP`` characters before a cue negates it."""
NEGATION_GAP = 4

HYPOTHETICAL = ("免得", "以免", "防止", "预防", "避免", "谨防", "以防", "防范", "会不会", "是否",
                "担心", "怕", "万一", "小心", "如果", "要是", "假如", "能不能", "可不可以",
                "测试", "想")
"""Anywhere earlier in the clause: the cue is a worry, a precaution or a test, not an event."""

DRILL = ("演练", "演习")
"""Anywhere in the post: the fire is a drill (消防演练，模拟起火疏散)."""

NOT_HYPOTHETICAL = ("可怕", "恐怕", "哪怕", "怕是", "不小心", "小心翼翼")

A_OR_NOT = ("能不能", "会不会", "是不是", "要不要", "可不可以", "行不行", "有没有", "好不好")
"""A-not-A questions are not negations (能不能转人工); 会不会 is still a worry (HYPOTHETICAL)."""

NOT_NEGATION = ("不小心", "不慎", "不幸", "不停", "不断", "不止", "不少", "不久", "不到",
                "不得不", "不住", "不知", "不明", "不行", "不了", "不舒服", "不适", "不对劲",
                "不醒", "不省人事", "不清", "不退", "不管", "不过", "没想到", "没多久",
                "没过多久", "没注意", "没了", "没救", "没好", "没反应", "无缘无故", "毫无",
                "可怕", "害怕", "恐怕", "哪怕", "怕是", "非常", "无法", "不料", "没几天", "不一会",
                *A_OR_NOT)
"""Words that contain a negator or a worry but do not negate what follows (不小心烫伤了)."""

GRIEVANCE_NEGATORS = ("没有", "没", "未", "无", "从不", "不存在", "并非", "绝不")
"""A complaint is full of 不 that does not negate it (不买就不给装, 这不是坑人吗)."""

GUARDED = ("防", "抗", "耐", "阻")
"""防漏电, 抗摔, 耐高温: a protection the product has, not a harm it did."""

LAUGHING = ("笑得", "笑到", "乐得", "笑死", "笑出")
"""笑得我肚子疼: laughter, not an injury."""

DEGREE = ("到", "得")
"""好吃到爆炸, 火得爆炸: a degree complement makes a fire word an intensifier."""
FIGURATIVE_BEFORE = ("人气", "信息", "流量", "热度", "销量", "心态", "评论区", "朋友圈", "演技",
                     "颜值", "口碑", "好评", "订单", "简直", "脑袋", "脑子")
IDIOM_BEFORE = ("让人", "令人", "灵魂", "心灵", "心都")
"""让人窒息, 令人窒息, 心灵受伤: before any cue, a feeling, not an event."""
EFFORT_BEFORE = ("走", "站", "逛", "爬", "蹲", "跑", "跳", "坐", "等", "排")
EFFORT_RESULT = ("断", "麻", "废", "软", "酸")
"""腿都走断了, 脚都站麻了, 腰都坐断了: an everyday effort with the body as its result
complement is hyperbole of tiredness; an accident has a cause of its own (摔断, 撞断, 夹断)."""
FIGURATIVE_AFTER = ("好看", "好吃", "好喝", "好听", "可爱", "漂亮", "过瘾", "性", "头", "款",
                    "级", "式", "好评")
FIGURATIVE_KINDS = frozenset({"fire"})

DEBUNK = ("谣言", "辟谣", "不实", "不属实", "假消息", "造谣", "谣传", "系误传", "摆拍", "系他人")
"""Anywhere in the post: it says the harm did not happen (关于网传…系不实信息)."""


@dataclass(frozen=True, slots=True)
class Cue:
    """One term found in a post, and whether it counts."""

    term: str
    weight: float
    category: str
    start: int
    dropped: str = ""
    """Why it does not count: 否定 / 假设 / 比喻 / 辟谣 / 演练; empty when it counts."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What one table of cues found in a post."""

    weight: float = 0.0
    """Summed weight of the distinct cues that count (victims only corroborate)."""
    terms: tuple[str, ...] = ()
    """Cues that count, in order of first occurrence (victims included)."""
    kinds: tuple[str, ...] = ()
    """Their categories, each once, in order (victims excluded)."""
    victims: tuple[str, ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()
    """(cue, why) for cues that were found but do not count."""
    no_one_hurt: bool = False
    """An injury or death cue was negated (没有受伤, 无人员伤亡)."""
    strongest: float = 0.0
    """The largest weight of one cue that counts (victims excluded)."""

    @property
    def harm(self) -> bool:
        """Does the post report harm? (Only meaningful for the harm table.)"""
        if self.no_one_hurt and self.strongest < HARM_AT:
            return False  # 差点摔倒…没有受伤: the near miss is the story, and it ended well
        return self.weight >= HARM_AT

    def kind_words(self) -> str:
        return "、".join(dict.fromkeys(KIND_WORDS.get(k, k) for k in self.kinds))


NOTHING = Reading()


_BODY = ("(?:脚趾头?|脚踝|脚|腿|膝盖|胳膊|手臂|手指|手腕|手掌|手背|脸|额头|后脑勺|脑袋|头"
         "|脖子|胸口|肋骨|背|腰|眼睛|嘴唇|嘴巴|嘴|舌头|喉咙|牙齿?|鼻子|耳朵|皮肤|肚子|胃|肝|肾"
         "|心脏|心肌|眉毛|大腿|小腿|屁股)")
_HURT = ("(?:血肉模糊|流血|出血|是血|划破|划了|口子|没知觉|烂了|破了|错位|变形|起了个(?:大)?包"
         "|脱皮|皮都|淤青|骨折|断|烫|起泡|水泡|受损|灼伤|发黑|坏死|夹住|夹伤)")
_ACHE = "(?:疼|痛|肿|麻|晕|包|撞|裂)"
"""Aches are weak alone (头疼的事, 气得胃疼): a body part that aches needs a second cue."""
_INTAKE = "(?:吃|喝|用|涂|抹|睡|游|坐|戴|穿|洗)(?:完|了|过)"
_SYMPTOM = ("(?:高烧|发烧|跑厕所|喘不上气|呼吸困难|没知觉|头晕|恶心|抽搐|昏迷|吐了|呕吐|腹痛"
            "|胃疼|肚子疼|起疹子|疹子|疙瘩|痒得|过敏|红肿|拉肚子|腹泻|发麻|麻了|心慌|心悸|虚脱|晕)")
_HURT_ANCHORS = ("血", "划", "口子", "没知觉", "烂了", "破了", "错位", "变形", "包", "脱皮", "皮都",
                 "淤青", "骨折", "断", "烫", "泡", "受损", "灼伤", "发黑", "坏死", "夹")
_SYMPTOM_ANCHORS = ("烧", "厕所", "喘不上气", "呼吸困难", "没知觉", "晕", "恶心", "抽搐", "昏迷",
                    "吐", "腹痛", "疼", "疹", "疙瘩", "痒", "过敏", "红肿", "拉肚子", "腹泻", "麻",
                    "心慌", "心悸", "虚脱")
Pattern = tuple[str, float, str, tuple[str, ...]]
"""(regular expression, weight, category, anchors): a match always contains one of the
anchors (literal words), so a post with none of them skips the pattern."""
Found = tuple[list[tuple[int, tuple[int, LexTerm]]], set[int]]
"""A table's hits in a text found by someone else's pass (``CueTable.cues``): its terms'
``(end, (length, entry))`` in the order its own automaton gives them, and the indexes of
the patterns whose anchors are there."""

HARM_PATTERNS: tuple[Pattern, ...] = (
    # a part of the body, then what happened to it (脚趾头血肉模糊, 后脑勺…起了个大包)
    (rf"{_BODY}[^,.!?;。]{{0,8}}?(?P<at>{_HURT})", 2.0, "injury", _HURT_ANCHORS),
    (rf"{_BODY}[^,.!?;。]{{0,4}}?(?P<at>{_ACHE})", 1.0, "injury",
     ("疼", "痛", "肿", "麻", "晕", "包", "撞", "裂")),
    # something eaten, drunk or used, then a symptom (吃完一家人半夜轮流跑厕所)
    (rf"{_INTAKE}[^。!?]{{0,20}}?(?P<at>{_SYMPTOM})", 2.0, "poisoning", _SYMPTOM_ANCHORS),
    (_SYMPTOM, 1.0, "poisoning", _SYMPTOM_ANCHORS),
    # a foreign object found in food (喝出了一颗螺丝钉)
    (r"(?:吃|喝|咬)(?:出|到)了?(?:一|半|两|几)?(?:颗|根|块|只|个|片|条|粒|截)", 1.5,
     "contamination", ("吃出", "喝出", "咬出", "吃到", "喝到", "咬到")),
    # an accident: falling, crushing, being thrown or caught
    (r"摔(?:下来|下去|倒|伤|了|得|出去)|砸(?:在|到|中|伤)|卷(?:进|入|住)|夹(?:到|伤|住)"
     r"|卡住|甩(?:出去|了出去)|撞(?:到|上|伤|倒|飞|翻)|磕(?:在|到|破)|掉下来|坠"
     r"|出事了|出人命", 1.0,
     "failure", ("摔", "砸", "卷", "夹", "卡", "甩", "撞", "磕", "掉下来", "坠", "出事了",
                 "出人命")),
    # someone beaten: 被 (by whom) then the blow (被护工打了, 被店员推倒在地)
    (r"被(?!驴|门|炮)[^,.!?;。]{0,6}?(?:打|踢|扇|掐|推倒|推搡|拽)(?:了|伤|得|成|倒|在)"
     r"(?![^,.!?;。]{0,3}(?:针|疫苗|电话|折|卡|分|车|包|球))", 2.0, "violence",
     ("被",)),
    # an emergency call (叫了120, 拨打120)
    (r"(?:叫|打|拨打?)了?(?:120|急救)", 2.0, "medical", ("120", "急救")),
    # a part giving way (椅腿直接折了, 挂钩突然松了, 停不下来)
    (r"(?:折|断|松|掉|裂|塌)了|脱落|裂开|裂纹|裂缝|刹不住|突然加速|失控", 1.0,
     "failure", ("折了", "断了", "松了", "掉了", "裂了", "塌了", "脱落", "裂开", "裂纹",
                 "裂缝", "刹不住", "突然加速", "失控")),
    # glass or a shell shattering: half a cue (a phone screen that broke is a complaint;
    # shards flying near a child are not)
    (r"碎了|碎片|碎渣|炸碎", 0.5, "failure", ("碎了", "碎片", "碎渣", "炸碎")),
    # fire and blasts described, not named (浓烟冲天, 嘭的一声, 消防车)
    (r"浓烟|黑烟|冒烟|焦糊|烧焦|火光|火苗|火星|火花|燎|消防车|嘭的一声|砰的一声|炸开|冲开"
     r"|爆开|巨响|明火|烧着|着了火|烧化|熔化|发烫|烫得|鼓起", 1.0, "fire",
     ("浓烟", "黑烟", "冒烟", "焦糊", "烧焦", "火光", "火苗", "火星", "火花", "燎", "消防车",
      "一声", "炸开", "冲开", "爆开", "巨响", "明火", "烧着", "着了火", "烧化", "熔化", "发烫",
      "烫得", "鼓起")),
    # single morphemes of harm, each a weak cue (两个, or one and a victim, make a report):
    # 伤 and 血 (not 伤心, 心血, 血拼), a doctor or a hospital, a rescue, a crash
    (r"(?<![悲忧感心哀])伤(?![心感])|(?<![心热])血(?![拼赚亏型压糖])|急救"
     r"|救(?:出|上|回)|没救|车祸|事故|活虫|虫子?|回收油", 1.0, "injury",
     ("伤", "血", "救", "车祸", "事故", "虫", "回收油")),
    # a doctor or a hospital: together they count once (a setting, not an event)
    (r"医院|医生|就医|就诊|拍了?片|诊所", 1.0, SETTING,
     ("医院", "医生", "就医", "就诊", "拍", "诊所")),
)
"""Harm told in the reporter's own words: a small grammar beside the term table."""

_MONEY = (r"(?:\d+(?:多)?(?:块|元|毛)?"
          r"|[一两二三四五六七八九几]?[十百千万][一二三四五六七八九十百千万]*(?:多)?(?:块|元|毛)?"
          r"|[一两二三四五六七八九几]+(?:多)?(?:块|元|毛))")
GRIEVANCE_PATTERNS: tuple[Pattern, ...] = (
    # money taken or kept, with an amount (多收五百, 加收两百, 扣10块钱)
    # (a pronoun object may come between: 收了我一百二; a grudging modal: 只肯补二十)
    (rf"(?:多收|加收|另收|收了|扣了?|加价|多花|只(?:肯|愿意|同意|答应)?(?:退|赔|补|给|返))"
     rf"(?:我|我们|你)?{_MONEY}", 1.0, "money",
     ("多收", "加收", "另收", "收了", "扣", "加价", "多花", "只退", "只赔", "只给", "只补", "只返",
      "只肯", "只愿意", "只同意", "只答应")),
    (r"违约金|临时加价|一分钱[^,.!?。]{0,6}(?:都|也)?没|钱照扣|照样扣|倒闭|打不通|没下文"
     r"|一律不退|不给(?:装|修|换|退|办|处理)|就不(?:给|装|搬|修|送|退)", 1.0, "money",
     ("违约金", "临时加价", "一分钱", "钱照扣", "照样扣", "倒闭", "打不通", "没下文", "一律不退",
      "不给", "就不")),
    # a promise broken or a thing misrepresented (说好的…呢, 说是全飞秒…后来是半飞秒)
    (r"说好的|(?:说|承诺|保证|答应)(?:是|好|了)?[^。!?]{1,16}(?:结果|后来|实际|其实)|宣传的|一口咬定|货不对|只有[^,.!?。]{0,4}"
     r"(?:斤|两|克|个)|缩水|推销", 1.0, "fraud",
     ("说好的", "结果", "后来", "实际", "其实", "宣传的", "一口咬定", "货不对", "只有", "缩水",
      "推销")),
    # fees and money taken, however named (高空作业费, 要自费, 钱却被扣了, 只到账五十)
    # (not 消费 and 消费者: consuming; not 小费: a tip the customer gives; not 费劲, 费心:
    # effort)
    (r"(?<![免消小])(?:付|收|自|交|扣|另外|额外)?费(?!用自理|劲|力|心|神|时|事|解|尽|脑)|费用自理|被扣|扣了|只到账|到账\S{0,3}只"
     r"|钱(?:却|也|还|都)", 1.0, "money", ("费", "被扣", "扣了", "只到账", "到账", "钱")),
    # what was written or shown is not what came (标签上写的…, 跟图片上完全两个东西)
    (r"写(?:着|的)|标(?:着|的)|图片|原价|库存|两个东西|货不对板", 1.0, "fraud",
     ("写着", "写的", "标着", "标的", "图片", "原价", "库存", "两个东西", "货不对板")),
    # nobody acts, or the customer is sent elsewhere (谁都不来修, 让我去找平台)
    (r"没有一个人|谁都不|都不来|互相推|让我(?:自己)?去|找不到人|联系不上|约不上|不负责|忘了"
     r"|凭什么|根本没收到|啥都没有|什么都没有", 1.0, "service",
     ("没有一个人", "谁都不", "都不来", "互相推", "让我", "找不到人", "联系不上", "约不上",
      "不负责", "忘了", "凭什么", "根本没收到", "啥都没有", "什么都没有")),
    # waiting (一周了还在待发货, 等了四十分钟)
    (r"(?:\d+|[一两二三四五六七八九十几半]+)(?:个)?(?:天|周|星期|个月|月|小时|分钟)了"
     r"[^,.!?;。]{0,4}(?:还|都|也)(?:没|在|是|不)|等了(?:\d+|[一两二三四五六七八九十几半]+)|超时|缺货"
     r"|已催促|催了", 1.0,
     "service", ("天了", "周了", "星期了", "月了", "小时了", "分钟了", "等了", "超时", "缺货",
                 "已催促", "催了")),
)
"""Grievances told in the customer's own words: a small grammar beside the term table."""


class CueTable:
    """A term table (``term  weight  category`` TSV) matched with its clause context,
    plus a small grammar of patterns (regular expressions, each with a weight and a
    category) for what a term list cannot enumerate."""

    def __init__(self, lexicon: Lexicon, figurative: bool,
                 patterns: tuple[Pattern, ...] = ()) -> None:
        self.lexicon = lexicon
        self.figurative = figurative
        """Harm reading: worries, figures of speech and debunks are looked for too."""
        self.patterns = tuple((re.compile(p), w, c) for p, w, c, _ in patterns)
        self._finditer = tuple(Lead(rx).finditer for rx, _w, _c in self.patterns)
        """Each pattern's ``finditer``, from the first place a match can start
        (``rules.rxlead``: the same matches)."""
        # One Aho-Corasick pass over the post finds the anchors present: only the patterns
        # one of whose anchors is there are run (most posts run none).
        self._anchors = ahocorasick.Automaton()
        by_anchor: dict[str, list[int]] = {}
        for i, (_, _, _, anchors) in enumerate(patterns):
            for a in anchors:
                by_anchor.setdefault(a, []).append(i)
        for a, ids in by_anchor.items():
            self._anchors.add_word(a, tuple(ids))
        if by_anchor:
            self._anchors.make_automaton()
        self._automaton = ahocorasick.Automaton()
        for key, entry in lexicon.terms.items():
            self._automaton.add_word(key, (len(key), entry))
        if lexicon.terms:
            self._automaton.make_automaton()

    @classmethod
    def load(cls, path: Path | str, figurative: bool = True,
             patterns: tuple[Pattern, ...] = ()) -> CueTable:
        return cls(Lexicon.load(path), figurative, patterns)

    def scan_keys(self) -> list[tuple[str, bool, Any]]:
        """What ``cues`` looks for in one pass, for a caller that scans a text once for
        several tables (``rules.scoring.Scanner``): each term, as ``(key, True, (length,
        entry))``, and each anchor, as ``(key, False, pattern indexes)``."""
        keys: list[tuple[str, bool, Any]] = [(k, True, (len(k), e))
                                             for k, e in self.lexicon.terms.items()]
        keys += [(str(k), False, v) for k, v in self._anchors.items()] if self.patterns else []
        return keys

    def cues(self, norm: str, found: Found | None = None) -> list[Cue]:
        """Every cue in ``norm`` (text as ``normalise_for_scoring(...).lower()`` gives it),
        the longest at each place, each with why it does not count (if it does not).
        ``found``: the ``scan_keys`` hits in ``norm``, found already (the terms in the
        order the table's own pass gives them, and the anchors' pattern indexes)."""
        if not norm:
            return []
        # (start, end, entry, where the context is read from)
        spans: list[tuple[int, int, LexTerm, int]] = []
        wanted: set[int] = set()
        if found is not None:
            for end, (length, entry) in found[0]:
                spans.append((end - length + 1, end + 1, entry, end - length + 1))
            wanted = found[1]
        else:
            if self.lexicon.terms:
                for end, (length, entry) in self._automaton.iter(norm):
                    spans.append((end - length + 1, end + 1, entry, end - length + 1))
            if self.patterns:
                for _end, ids in self._anchors.iter(norm):
                    wanted.update(ids)
        for i in sorted(wanted):
            pattern, weight, category = self.patterns[i]
            for m in self._finditer[i](norm):
                # A pattern may mark where its cue is (``at``: the symptom after 吃完…,
                # the hurt after the body part): negation is read just before it.
                at = m.start("at") if "at" in pattern.groupindex else m.start()
                spans.append((m.start(), m.end(), LexTerm(m.group(), weight, category), at))
        if not spans or (self.figurative
                         and all(entry.category == VICTIM for _, _, entry, _ in spans)):
            return []  # nothing, or only victims: they never count alone (the common case)
        spans.sort(key=lambda s: (s[0], -s[1]))
        out: list[Cue] = []
        covered = -1
        debunked = ""
        if self.figurative:
            if any(map(norm.__contains__, DEBUNK)):  # (no generator: ~2x as quick)
                debunked = "辟谣"
            elif any(map(norm.__contains__, DRILL)):
                debunked = "演练"
        for start, end, entry, at in spans:
            if start < covered:  # inside or across a longer cue (中毒 in 食物中毒, 爆炸了)
                continue
            covered = max(covered, end)
            why = debunked or self._why_not(norm, at, end, entry.category)
            out.append(Cue(entry.term, entry.weight, entry.category, start, why))
        return out

    def negated(self, norm: str, start: int, end: int) -> bool:
        """Is the word at ``norm[start:end]`` negated by this table's negators (the
        grievance table's narrow ones: 没, 没有, 未, 从不 …)? The scorer asks it of the
        crisis lexicon's complaint terms (这次没踩雷 names no grievance)."""
        return self._why_not(norm, start, end, "") == "否定"

    def _why_not(self, norm: str, start: int, end: int, category: str) -> str:
        # ``rfind(c, 0, start)`` of each clause end, mapped (no generator: ~2x as quick)
        clause_start = max(map(norm.rfind, CLAUSE_ENDS, repeat(0), repeat(start))) + 1
        before = norm[clause_start:start]
        near = _NOT_NEGATION_RE.sub(_mask, before[-(NEGATION_GAP + 6):])
        negators = NEGATORS if self.figurative else GRIEVANCE_NEGATORS
        if _NEGATOR_RE.search(near[-(NEGATION_GAP + 2):]) and any(
                n in near[-(NEGATION_GAP + len(n)):] for n in negators):
            return "否定"
        if not self.figurative:
            return ""  # a complaint's question is rhetorical (能不能退款): it still counts
        if before.endswith(GUARDED):
            return "否定"
        if any(map(before.__contains__, LAUGHING)):
            return "比喻"
        if _HYPOTHETICAL_RE.search(_NOT_HYPOTHETICAL_RE.sub(_mask, before)):
            return "假设"
        if before.endswith(IDIOM_BEFORE):
            return "比喻"
        if norm.startswith(EFFORT_RESULT, start) and before.endswith(EFFORT_BEFORE):
            return "比喻"
        if category in FIGURATIVE_KINDS:
            after = norm[end:end + 2]
            if (before.endswith(DEGREE) or any(f in before[-len(f) - 2:] for f in FIGURATIVE_BEFORE)
                    or after.startswith(FIGURATIVE_AFTER)):
                return "比喻"
        return ""

    def read(self, text: str) -> Reading:
        """The cues of ``text`` that count, summed (see the module docstring)."""
        return self.read_normalised(normalise_for_scoring(text).lower())

    def read_normalised(self, norm: str, found: Found | None = None) -> Reading:
        """``read`` of a text normalised already; ``found``: see ``cues``."""
        cues = self.cues(norm, found)
        if not cues:
            return NOTHING
        seen: set[str] = set()
        terms: list[str] = []
        kinds: list[str] = []
        victims: list[str] = []
        dropped: list[tuple[str, str]] = []
        weight = strongest = 0.0
        no_one_hurt = setting = False
        for c in cues:
            if c.dropped:
                if c.category != VICTIM:
                    dropped.append((c.term, c.dropped))
                no_one_hurt |= c.dropped == "否定" and c.category in OUTCOME
                continue
            if c.term in seen:
                continue
            seen.add(c.term)
            terms.append(c.term)
            if c.category == VICTIM:
                victims.append(c.term)
                continue
            if c.category == SETTING:
                if setting:
                    continue
                setting = True
            weight += c.weight
            strongest = max(strongest, c.weight)
            if c.category not in kinds:
                kinds.append(c.category)
        if weight > 0 and victims:
            weight += 1.0  # who was harmed corroborates, once
        return Reading(weight, tuple(terms), tuple(kinds), tuple(victims), tuple(dropped),
                       no_one_hurt, strongest)


def _alternation(words: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for ``words``, longest first (so 没有 wins over 没)."""
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))


def _mask(m: re.Match[str]) -> str:
    """A match masked, same length, so offsets hold."""
    return "\x00" * (m.end() - m.start())


_NOT_NEGATION_RE = _alternation(NOT_NEGATION)
_NOT_HYPOTHETICAL_RE = _alternation(NOT_HYPOTHETICAL)
_NEGATOR_RE = _alternation(NEGATORS)
_HYPOTHETICAL_RE = _alternation(HYPOTHETICAL)


def default_harm_table() -> CueTable:
    """The shipped harm cues (``seeds/lexicon/harm_terms.tsv``)."""
    from seeds import SEEDS_DIR

    return CueTable.load(SEEDS_DIR / "lexicon" / "harm_terms.tsv", figurative=True,
                         patterns=HARM_PATTERNS)


def default_grievance_table() -> CueTable:
    """The shipped grievance cues (``seeds/lexicon/grievance_terms.tsv``)."""
    from rules.complaints import COMPLAINT_PATTERNS  # it imports this module
    from seeds import SEEDS_DIR

    return CueTable.load(SEEDS_DIR / "lexicon" / "grievance_terms.tsv", figurative=False,
                         patterns=GRIEVANCE_PATTERNS + COMPLAINT_PATTERNS)
