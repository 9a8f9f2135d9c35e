"""The scoring stage: text and author in, a ``Score`` out (sentiment, terms, severity)."""

from __future__ import annotations

import csv
import functools
import operator
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import ahocorasick_rs
import msgspec

from rules.acts import ACT_NEGATIVE_ODDS, anchor_keys, mention_spans, read_acts
from rules.complaints import COMPLAINT_NEGATIVE_ODDS
from rules.harm import NOTHING, CueTable, Found, default_grievance_table, default_harm_table
from rules.lexicon import Lexicon, LexTerm
from rules.matching import BrandMatch, BrandMatcher
from rules.records import Author, Post, Score
from rules.sentiment import Polarity, SentimentModel, polarities
from rules.severity import SeverityPolicy, Tier, assess
from rules.textnorm import fold_simplified, normalise_for_scoring, scoring_forms

DANGER = "danger"
_NOBODY = Author(id="")
"""The author of a bare text (``score_text``): no followers, no tier."""


_NEGATOR_CHARS = frozenset("没未无不非绝")
"""A character every one of the grievance reading's negators holds (rules.harm)."""


@functools.lru_cache(maxsize=4096)
def _term_key(term: str) -> str:
    """A lexicon term as the scorer's text reads it (``Lexicon.load`` matches this form)."""
    return normalise_for_scoring(term).lower()


_END_THEN_LONGEST = operator.itemgetter(2, 1)
"""A hit ``(key, start, stop)``'s sort key: its end, then the longest (earliest start)."""


class Scanner:
    """One Aho-Corasick pass over a post's scoring form for every table the scorer reads
    there: the crisis lexicon, the harm and the grievance tables (terms, and their
    patterns' anchors) and the acts' anchors. Each table's own pass cost ~1 µs of set-up
    for a few hits; six a post were ~0.4 s of a mention-heavy day's 35,000 scored posts.

    The hits come out per table in the order the table's own automaton gives them: both
    report every key ending at a place, longest first, places in order, so the keys of
    one table keep their order among themselves however many others are added."""

    _LEXICON, _HARM, _HARM_ANCHOR, _GRIEVANCE, _GRIEVANCE_ANCHOR, _ACTS = range(6)
    _MORE = 32
    """The acts' anchors go in one mask: the plain acts' bits, then the others' from here."""

    def __init__(self, lexicon: Lexicon, harm: CueTable, grievance: CueTable) -> None:
        self.tables = (lexicon, harm, grievance)
        by_key: dict[str, list[tuple[int, Any]]] = {}
        for key, entry in lexicon.terms.items():
            by_key.setdefault(key, []).append((self._LEXICON, entry))
        for slot, table in ((self._HARM, harm), (self._GRIEVANCE, grievance)):
            for key, term, value in table.scan_keys():
                by_key.setdefault(key, []).append((slot if term else slot + 1, value))
        acts: dict[str, int] = {}
        for key, plain, mask in anchor_keys():
            if mask >> self._MORE:
                raise ValueError("more acts than the scanner's mask holds")
            acts[key] = acts.get(key, 0) | (mask if plain else mask << self._MORE)
        self.mentionless = not any(" " in key for key in acts)
        """No acts' anchor holds a space: one cannot span a cut-out @name (``scan``)."""
        keys: list[str] = []
        self._values: list[Any] = []  # by key index: the hits a key makes
        for key, values in by_key.items():
            if key in acts:
                values.append((self._ACTS, acts[key]))
            keys.append(key)
            self._values.append(tuple(values))
        for key, mask in acts.items():  # the most frequent hits: a plain int, no tuple
            if key not in by_key:
                keys.append(key)
                self._values.append(mask)
        # ahocorasick_rs (the Rust aho-corasick crate, as a DFA): ~2 µs a scored post
        # against ~10 µs for pyahocorasick's iterator, which builds a Python tuple per
        # place it looks at; the hits come back as one list of key indexes.
        self._automaton = None if not keys else ahocorasick_rs.AhoCorasick(
            keys, matchkind=ahocorasick_rs.MatchKind.Standard,
            implementation=ahocorasick_rs.Implementation.DFA)

    def scan(self, norm: str, mentions: list[tuple[int, int]] | None = None
             ) -> tuple[list[LexTerm], Found, Found, tuple[int, int]]:
        """The hits in ``norm``: the lexicon's (``Lexicon.find_normalised``), the harm and
        the grievance table's (``CueTable.cues``), the acts' anchors (``read_acts``).
        ``mentions``: the spans of the @names in ``norm`` (``rules.acts.mention_spans``),
        where the acts' anchors are not counted: then they are those of the text with the
        names cut out, as ``read_acts`` reads it (no anchor holds the space a name is
        replaced by: ``mentionless``), and it need not look for them again."""
        lexicon: list[LexTerm] = []
        harm: list[tuple[int, tuple[int, LexTerm]]] = []
        grievance: list[tuple[int, tuple[int, LexTerm]]] = []
        harm_anchored: set[int] = set()
        grievance_anchored: set[int] = set()
        acts = 0
        if self._automaton is not None:
            hits = self._automaton.find_matches_as_indexes(norm, overlapping=True)
            # Places in order and, at one place, the longest key first (as a table's own
            # automaton reports them); ``end`` is the place of a key's last character.
            if len(hits) > 1:
                hits.sort(key=_END_THEN_LONGEST)
            table = self._values
            # The @names' spans, of the usual one name as two numbers: asked inline, not
            # by a generator (~0.5 µs an anchor's hit; ~70,000 on a mention-heavy day).
            one = mentions[0] if mentions and len(mentions) == 1 else None
            for index, start, stop in hits:
                values = table[index]
                end = stop - 1
                if type(values) is int:
                    if not mentions or (not (one[0] < stop and start < one[1]) if one
                                        else not any(cs < stop and start < ce
                                                     for cs, ce in mentions)):
                        acts |= values
                    continue
                for slot, value in values:
                    if slot == 0:
                        lexicon.append(value)
                    elif slot == 1:
                        harm.append((end, value))
                    elif slot == 2:
                        harm_anchored.update(value)
                    elif slot == 3:
                        grievance.append((end, value))
                    elif slot == 4:
                        grievance_anchored.update(value)
                    elif not mentions or not any(cs < stop and start < ce
                                                 for cs, ce in mentions):
                        acts |= value
        return (lexicon, (harm, harm_anchored), (grievance, grievance_anchored),
                (acts & ((1 << self._MORE) - 1), acts >> self._MORE))


class Scorer:
    """Scores posts. Stateless apart from its models, so it can be shared and reused."""

    def __init__(self, sentiment: SentimentModel, lexicon: Lexicon, negative_below: float,
                 policy: SeverityPolicy | None = None,
                 tiers: dict[str, Tier] | None = None, harm: CueTable | None = None,
                 grievance: CueTable | None = None,
                 act_negative_odds: float = ACT_NEGATIVE_ODDS,
                 complaint_negative_odds: float = COMPLAINT_NEGATIVE_ODDS) -> None:
        self.sentiment = sentiment
        self.lexicon = lexicon
        self.negative_below = negative_below
        self.policy = policy or SeverityPolicy()
        self.tiers = tiers or {}
        self.harm = harm or default_harm_table()
        self.grievance = grievance or default_grievance_table()
        self.act_negative_odds = act_negative_odds
        """Factor on the odds of negative for a post read as a plain question, notice,
        promotion or thanks (``rules.acts``); 1.0 turns the reading off."""
        self.complaint_negative_odds = complaint_negative_odds
        """Factor on the odds of negative for a post whose grievance cues reach weight 1:
        it says the product or the service failed the customer (``rules.complaints``);
        1.0 turns the correction off."""
        self._scanner: Scanner | None = None  # built on first use, for the tables then

    def scanner(self) -> Scanner:
        """The one-pass ``Scanner`` of the scorer's tables (rebuilt if one was swapped)."""
        sc = self._scanner
        if (sc is None or sc.tables[0] is not self.lexicon or sc.tables[1] is not self.harm
                or sc.tables[2] is not self.grievance):
            sc = self._scanner = Scanner(self.lexicon, self.harm, self.grievance)
        return sc

    def score_text(self, text: str, p: Polarity | float | None = None, *,
                   simplified: bool = False) -> Score:
        """Score a bare text (``crisismon score``): no author, no reach. ``simplified``: the
        text is already in simplified characters with no control characters (as
        ``monitor.normalise`` leaves it), so reading it needs only NFKC and lower case
        (~5 µs a text less)."""
        return self._score(text, p, None, simplified)

    def score(self, post: Post, p: Polarity | float | None = None,
              norm: str | None = None) -> Score:
        """Score a post: sentiment (or the given ``p`` from ``score_many``, or a bare
        P(positive)), lexicon terms, severity. ``norm``: the text as the cue tables read
        it, if worked out already (``rules.textnorm.scoring_forms``, for a batch)."""
        return self._score(post.text, p, post, norm=norm)

    def score_many(self, texts: Sequence[str]) -> list[Polarity]:
        """Class probabilities of each text, batched; pass each to ``score``."""
        return polarities(self.sentiment, texts)

    def polarity(self, pol: Polarity) -> tuple[float, bool, str]:
        """``sentiment`` (P(positive), neutral counting half), ``negative`` (below
        ``negative_below``, as ever) and the polarity label, consistent with ``negative``."""
        p = pol.sentiment
        negative = p < self.negative_below
        if negative:
            return p, True, "negative"
        return p, False, "positive" if pol.positive >= pol.neutral else "neutral"

    def _negated(self, norm: str, term: LexTerm) -> bool:
        """A complaint term every use of which is negated (这次没踩雷, 从没有过期) names no
        grievance: the grievance reading's narrow negators decide, as for its own cues.
        Danger terms are left to the harm reading."""
        if term.category == DANGER:
            return False
        key = _term_key(term.term)
        starts = [m.start() for m in re.finditer(re.escape(key), norm)]
        # most terms have no negator anywhere before them: no need to read their clause
        return bool(starts) and all(_NEGATOR_CHARS.intersection(norm[max(0, i - 8):i])
                                    and self.grievance.negated(norm, i, i + len(key))
                                    for i in starts)

    def _score(self, text: str, p: Polarity | float | None, post: Post | None,
               simplified: bool = False, norm: str | None = None) -> Score:
        if p is None:
            p = polarities(self.sentiment, [text])[0]
        elif not isinstance(p, Polarity):
            p = Polarity.from_binary(p)
        pol = p
        if norm is not None:
            pass
        elif not text:
            norm = ""
        elif simplified:
            norm = fold_simplified(text)
        else:
            norm = normalise_for_scoring(text).lower()
        mentions = None
        if norm:  # every table's hits, in one pass
            scanner = self.scanner()
            if "@" in norm and scanner.mentionless:
                mentions = mention_spans(norm)
            lex_hits, harm_hits, grievance_hits, anchored = scanner.scan(norm, mentions)
            found = self.lexicon.find_normalised(norm, lex_hits) if lex_hits else []
        else:
            found, harm_hits, grievance_hits, anchored = [], None, None, None
        if found:
            found = [t for t in found if not self._negated(norm, t)]
        if found:
            complaint = tuple(t.term for t in found if t.category != DANGER)
            weight = sum(t.weight for t in found if t.category != DANGER)
        else:  # most posts: no lexicon term
            complaint, weight = (), 0.0
        # Harm and grievances are read from what the post says happened, not from the
        # model's tone: it reads 我们三个人都食物中毒了，已经送医 as neutral (rules.harm).
        # A table with no term and no pattern's anchor in the post reads nothing (most
        # posts, for one table or both): not asked.
        harm = (self.harm.read_normalised(norm, harm_hits)
                if harm_hits is not None and (harm_hits[0] or harm_hits[1]) else NOTHING)
        grievance = (self.grievance.read_normalised(norm, grievance_hits)
                     if grievance_hits is not None and (grievance_hits[0] or grievance_hits[1])
                     else NOTHING)
        # A question, a notice, a promotion or thanks, with nothing gone wrong in it: the
        # emotion-labelled corpus over-reads such posts as negative (rules.acts).
        # A reported harm or a complaint always wins; a single weak cue (画面炸裂's 炸,
        # 屏幕都没碎's 摔) lets only the figurative readings through, which explain it.
        if harm.harm or grievance.weight >= 1.0 or complaint:
            acts: tuple[str, ...] = ()
        else:
            acts = read_acts(norm, bool(harm.weight or grievance.weight),
                             pol.sentiment < self.negative_below, anchored,
                             mentionless=mentions is not None)
        if acts and self.act_negative_odds != 1.0:
            pol = pol.negative_odds(self.act_negative_odds)
        # A grievance against the seller, however calmly told (送餐有点慢, 菜都凉了): the
        # emotion-labelled corpus under-reads such posts as neutral (rules.complaints).
        elif grievance.weight >= 1.0 and self.complaint_negative_odds != 1.0:
            pol = pol.negative_odds(self.complaint_negative_odds)
        p, negative, polarity = self.polarity(pol)
        if post is not None:
            author = post.author
            reach = post.reposts_count + post.comments_count
            tier = self.tiers.get(author.id)
        else:
            author, reach, tier = _NOBODY, 0, None
        verdict = assess(p, negative, harm.terms, weight, complaint, author, reach, tier,
                         self.policy, harm, grievance, pol.negative, acts)
        terms = tuple(t.term for t in found) if found else ()
        if verdict.danger:
            terms += tuple(t for t in harm.terms if t not in terms)
        return Score(sentiment=round(p, 4), negative=negative, severity=verdict.severity,
                     terms=terms, danger=verdict.danger, reasons=verdict.reasons,
                     polarity=polarity, p_negative=round(pol.negative, 4))


Assessment = tuple[list[BrandMatch], Score]
"""A post that names a brand: the brands it is about, and its score. A repost or comment
of a known story that names no brand: no brands, and the score of its own words."""

PURE_REPOST_WORDS = ("", "转发微博", "轉發微博", "Repost")


def own_words(text: str) -> str:
    """The reposter's own words: what comes before the quoted ``//@user:`` chain."""
    cut = text.find("//@")
    return text if cut < 0 else text[:cut].strip()


def has_own_words(post: Post) -> bool:
    """Does the post say anything of its own (not a bare 转发微博)?"""
    return own_words(post.text).strip() not in PURE_REPOST_WORDS


def replace_text(post: Post, text: str) -> Post:
    """``post`` with other words (its own, without the quoted chain)."""
    return msgspec.structs.replace(post, text=text)


class StoryIds(Protocol):
    """Root ids of the stories known so far (``assess_posts`` adds the mentions it finds)."""

    def __contains__(self, post_id: object) -> bool: ...

    def add(self, post_id: str) -> None: ...


_STORY_IDS_MAX = 500_000


def assess_posts(posts: Sequence[Post], matcher: BrandMatcher, scorer: Scorer,
                 stories: StoryIds | None = None) -> dict[str, Assessment]:
    """The posts among ``posts`` that mention a brand, assessed, by post id (the first
    post of an id counts); with ``stories``, also the reposts and comments of a mention
    (earlier in ``posts``, or in ``stories``) that have words of their own,
    scored on those words. Pure given ``stories``: the same posts in the same order give
    the same answer in any process. A story post left out (``stories`` forgot its root)
    is scored by the pipeline itself, to the same result.

    Sentiment is scored as one batch (~30 µs a text, against ~500 µs alone), and the
    texts are normalised for the cue tables as one (``scoring_forms``: ~2 µs a text,
    against ~9 µs alone).
    """
    found: dict[str, tuple[Post, list[BrandMatch]]] = {}
    seen: set[str] = set()
    roots: set[str] = set()  # this batch's mentions
    # the others name no brand; the hits found in passing are not looked for again
    naming = matcher.candidate_hits([post.text for post in posts])
    for i, post in enumerate(posts):
        if post.id in seen:
            continue
        seen.add(post.id)
        matches = matcher.match(post.text, post.author.id, naming[i]) if i in naming else []
        if matches:
            found[post.id] = (post, matches)
            roots.add(post.id)
            if stories is not None:
                if isinstance(stories, set) and len(stories) >= _STORY_IDS_MAX:
                    stories.clear()  # bounded; what it forgets the pipeline scores itself
                stories.add(post.id)  # its reposts and comments are its story
        elif (stories is not None
              # most posts answer nothing: no story to look up, no own words to cut out
              and (post.reposts_id or post.on_status_id or post.reply_to_id)
              and has_own_words(post) and any(
                t in roots or t in stories
                for t in (post.reposts_id, post.on_status_id, post.reply_to_id) if t)):
            found[post.id] = (replace_text(post, own_words(post.text)), [])
    if not found:
        return {}
    texts = [post.text for post, _ in found.values()]
    ps = scorer.score_many(texts)
    norms = scoring_forms(texts)
    return {pid: (matches, scorer.score(post, p, norm))
            for (pid, (post, matches)), p, norm in zip(found.items(), ps, norms, strict=True)}


def load_tiers(path: Path) -> dict[str, Tier]:
    """The team's author-tier CSV: ``user_id,tier`` (header optional, ``#`` comments)."""
    tiers: dict[str, Tier] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#") or row[0].strip() in ("user_id", "id"):
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{lineno}: expected user_id,tier")
            try:
                tiers[row[0].strip()] = Tier(row[1].strip().lower())
            except ValueError:
                allowed = ", ".join(t.value for t in Tier)
                raise ValueError(f"{path}:{lineno}: tier {row[1]!r} is not one of {allowed}") \
                    from None
    return tiers
