"""What a post says happened, read without the sentiment model: harm, and grievances.

The sentiment model reads a factual report (我们三个人都食物中毒了，已经送医) as neutral: it
learned tone, not events. Severity needs the event. So a post is read for *cues* from two
term tables a PR lead can edit:

- ``seeds/lexicon/harm_terms.tsv``: harm to a person (受伤, 送医, 身亡), a hazard (爆炸, 漏电,
  致癌物), a product failure (断裂, 刹车失灵, 差点), and who was harmed (孩子, 老人);
- ``seeds/lexicon/grievance_terms.tsv``: what went wrong in a complaint about money
  (退款, 多扣), service (踢皮球, 已读不回) or fraud (假货, 跑路).

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
from pathlib import Path

import ahocorasick

from rules.lexicon import Lexicon
from rules.textnorm import normalise_for_scoring

HARM_AT = 2.0
"""Summed cue weight at which a post reports harm."""

VICTIM = "victim"
OUTCOME = frozenset({"injury", "death", "medical"})
"""Categories whose negation (没有受伤, 无人员伤亡) says nobody was hurt."""

KIND_WORDS = {
    "poisoning": "中毒不适", "medical": "就医", "injury": "受伤", "death": "死亡",
    "violence": "暴力", "fire": "火灾爆炸", "electric": "漏电泄漏", "failure": "产品故障",
    "contamination": "有害物质", "money": "金钱", "service": "服务", "fraud": "欺诈",
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

DEGREE = ("到", "得")
"""好吃到爆炸, 火得爆炸: a degree complement makes a fire word an intensifier."""
FIGURATIVE_BEFORE = ("人气", "信息", "流量", "热度", "销量", "心态", "评论区", "朋友圈", "演技",
                     "颜值", "口碑", "好评", "订单", "简直", "脑袋", "脑子")
IDIOM_BEFORE = ("让人", "令人", "灵魂", "心灵", "心都")
"""让人窒息, 令人窒息, 心灵受伤: before any cue, a feeling, not an event."""
FIGURATIVE_AFTER = ("好看", "好吃", "好喝", "好听", "可爱", "漂亮", "过瘾", "性", "头", "款",
                    "级", "式", "好评")
FIGURATIVE_KINDS = frozenset({"fire"})

DEBUNK = ("谣言", "辟谣", "不实", "假消息", "造谣", "谣传", "系误传", "传言不实")
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
        return "、".join(KIND_WORDS.get(k, k) for k in self.kinds)


NOTHING = Reading()


class CueTable:
    """A term table (``term  weight  category`` TSV) matched with its clause context."""

    def __init__(self, lexicon: Lexicon, figurative: bool) -> None:
        self.lexicon = lexicon
        self.figurative = figurative
        """Harm reading: worries, figures of speech and debunks are looked for too."""
        self._automaton = ahocorasick.Automaton()
        for key, entry in lexicon.terms.items():
            self._automaton.add_word(key, (len(key), entry))
        if lexicon.terms:
            self._automaton.make_automaton()

    @classmethod
    def load(cls, path: Path | str, figurative: bool = True) -> CueTable:
        return cls(Lexicon.load(path), figurative)

    def cues(self, norm: str) -> list[Cue]:
        """Every cue in ``norm`` (text as ``normalise_for_scoring(...).lower()`` gives it),
        the longest at each place, each with why it does not count (if it does not)."""
        if not self.lexicon.terms or not norm:
            return []
        spans: list[tuple[int, int, object]] = []
        for end, (length, entry) in self._automaton.iter(norm):
            spans.append((end - length + 1, end + 1, entry))
        if not spans or (self.figurative
                         and all(entry.category == VICTIM for _, _, entry in spans)):
            return []  # nothing, or only victims: they never count alone (the common case)
        spans.sort(key=lambda s: (s[0], -s[1]))
        out: list[Cue] = []
        covered = -1
        debunked = ""
        if self.figurative:
            if any(d in norm for d in DEBUNK):
                debunked = "辟谣"
            elif any(d in norm for d in DRILL):
                debunked = "演练"
        for start, end, entry in spans:
            if start < covered:  # inside or across a longer cue (中毒 in 食物中毒, 爆炸了)
                continue
            covered = max(covered, end)
            why = debunked or self._why_not(norm, start, end, entry.category)
            out.append(Cue(entry.term, entry.weight, entry.category, start, why))
        return out

    def _why_not(self, norm: str, start: int, end: int, category: str) -> str:
        clause_start = max(norm.rfind(c, 0, start) for c in CLAUSE_ENDS) + 1
        before = norm[clause_start:start]
        near = _NOT_NEGATION_RE.sub(_mask, before[-(NEGATION_GAP + 6):])
        if _NEGATOR_RE.search(near[-(NEGATION_GAP + 2):]) and any(
                n in near[-(NEGATION_GAP + len(n)):] for n in NEGATORS):
            return "否定"
        if not self.figurative:
            return ""  # a complaint's question is rhetorical (能不能退款): it still counts
        if _HYPOTHETICAL_RE.search(_NOT_HYPOTHETICAL_RE.sub(_mask, before)):
            return "假设"
        if any(before.endswith(w) for w in IDIOM_BEFORE):
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

    def read_normalised(self, norm: str) -> Reading:
        cues = self.cues(norm)
        if not cues:
            return NOTHING
        seen: set[str] = set()
        terms: list[str] = []
        kinds: list[str] = []
        victims: list[str] = []
        dropped: list[tuple[str, str]] = []
        weight = strongest = 0.0
        no_one_hurt = False
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

    return CueTable.load(SEEDS_DIR / "lexicon" / "harm_terms.tsv", figurative=True)


def default_grievance_table() -> CueTable:
    """The shipped grievance cues (``seeds/lexicon/grievance_terms.tsv``)."""
    from seeds import SEEDS_DIR

    return CueTable.load(SEEDS_DIR / "lexicon" / "grievance_terms.tsv", figurative=False)
