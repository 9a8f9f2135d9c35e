"""The edge: raw Weibo-API-shaped objects into typed ``Post``/``Action`` records.

Text is normalised here, once, for every source (feed, HTTP poller, MQTT): HTML
entities, full-width forms, traditional characters, control characters. Anything
malformed raises ``BadInput`` with a one-line reason; callers count and skip it.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, MutableSequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Annotated, Any

import msgspec
import numpy as np
import zhconv

from alerts.ack import base_alert_id
from monitor.textsafe import printable
from rules.records import Action, ActionKind, Author, Event, Post, PostKind
from rules.textnorm import traditional_mask, zh_cn_table

MAX_TEXT = 10_000
"""Characters kept of one post's text. Weibo's long posts stay under this; a giant
payload is cut rather than let through to the matcher and the store."""

CHINA = timezone(timedelta(hours=8))
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\ufeff]")
_SPACES = re.compile(r"[ \t\r\n\u3000]+")
# Markup only (<a href=..>, </a>, <br/>, <img ..>): a tag's name starts with a letter. Text
# such as "<@我是歌手 >" (typed by a person, escaped by the API as &lt;..&gt;) is kept.
_TAGS = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
# Full-width letters, digits and ASCII symbols fold to ASCII (ＫＵＡＩ -> KUAI, ＠ -> @), so
# keywords match; Chinese punctuation (，。！？：；（）) is left as people wrote it.
_KEEP = set("，。！？：；（）【】《》、～")
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F) if chr(cp) not in _KEEP}
_FULLWIDTH[0x3000] = 0x20
_FULLWIDTH_CHARS = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_FULLWIDTH)) + "]")
# Anything the steps of ``normalise_text`` before ``simplified`` would change: most posts
# hold none of it, and one scan is cheaper than the five steps. The characters only: a
# double space and a space at either end are asked of the string (``untidy``), which is
# 2.4x cheaper than the alternation ``|  |^\s|\s$`` in the pattern (the engine tried each
# branch at every position).
_UNTIDY_CHARS = re.compile("[&<" + "".join(re.escape(chr(c)) for c in sorted(_FULLWIDTH))
                           + r"\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\ufeff\t\r\n]")
PURE_REPOST_TEXTS = frozenset({"", "转发微博", "轉發微博", "repost", "Repost"})


class BadInput(ValueError):
    """A post or action that cannot be used, with a reason a person can act on."""


def invalid_utf8(data: bytes) -> UnicodeDecodeError | None:
    """Why ``data`` is not UTF-8, or None if it is: for a JSON decode that failed.

    Older msgspec releases raise ``UnicodeDecodeError`` for invalid UTF-8 inside a string,
    newer ones a ``msgspec.DecodeError`` like any bad JSON (0.23 does); asking the bytes
    tells the two apart under either. Only called once decoding has failed, so a good
    payload pays nothing for it."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    return None


def parse_time(value: Any) -> float:
    """Weibo's ``Tue May 31 17:46:55 +0800 2011``, ISO 8601, or epoch seconds -> epoch.

    ISO times without an offset are taken as China time (+08:00), Weibo's own zone.
    """
    if type(value) is str:
        known = _seen_times.get(value)
        if known is not None:
            return known
        if not value.endswith("Z"):
            # ISO 8601 as written (the usual export): what ``_parse_time_text`` gives it, as
            # it cannot be Weibo's form (six words), without its strip and split (~0.8 µs
            # of ~1.7 µs a new time). Anything else, or a bad time, takes the long way.
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=CHINA)
                return _remember(value, dt.timestamp())
    if isinstance(value, bool):
        raise BadInput(f"created_at {value!r} is not a time")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"created_at {value!r} is not a time")
    return _remember(value, _parse_time_text(value.strip()))


def _remember(value: str, t: float) -> float:
    if len(_seen_times) >= 65536:
        _seen_times.clear()
    _seen_times[value] = t
    return t


_seen_times: dict[str, float] = {}
"""Times read before, as written: a burst of posts shares many identical second-resolution
stamps, and a replay's reader reads each line's time twice (to sort, then to parse)."""


def _parse_time_text(s: str) -> float:
    parts = s.split()
    if len(parts) == 6 and parts[1] in _MONTHS:
        try:
            hh, mm, ss = (int(x) for x in parts[3].split(":"))
            off = parts[4]
            sign = -1 if off[0] == "-" else 1
            offset = timedelta(hours=int(off[1:3]), minutes=int(off[3:5])) * sign
            dt = datetime(int(parts[5]), _MONTHS[parts[1]], int(parts[2]), hh, mm, ss,
                          tzinfo=timezone(offset))
            return dt.timestamp()
        except (ValueError, IndexError):
            raise BadInput(f"created_at {s!r} is not a Weibo time") from None
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise BadInput(f'created_at {s!r} is neither Weibo\'s "Tue May 31 17:46:55 +0800 2011" '
                       "nor ISO 8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=CHINA)
    return dt.timestamp()


@lru_cache(maxsize=4096)
def _to_simplified(text: str) -> str:
    return zhconv.convert(text, "zh-cn")


@lru_cache(maxsize=1)
def _zh_changes() -> tuple[frozenset[str], frozenset[str], dict[str, re.Pattern[str]]]:
    """What can make zhconv change a text: a traditional character, or one of its ~480
    phrase rules written in simplified characters only (么九 -> 幺九). The phrases are
    grouped by their first character, one pattern each (that character, then the rests)."""
    trad, table = zh_cn_table()
    by_first: dict[str, list[str]] = {}
    for k, v in table.items():
        if k != v and len(k) > 1 and trad.isdisjoint(k):
            by_first.setdefault(k[0], []).append(k[1:])
    phrases = {c: re.compile(re.escape(c) + "(?:" + "|".join(
        map(re.escape, sorted(rest, key=len, reverse=True))) + ")")
        for c, rest in by_first.items()}
    return trad, frozenset(phrases), phrases


def simplified(text: str) -> str:
    """``zhconv.convert(text, "zh-cn")``, exactly, but ~15x faster on the 99 % of posts it
    would leave alone: zhconv is pure Python (~100 µs a post) and runs only when a rule can
    apply (no rule can fire in a text holding none of the rules' keys)."""
    trad, firsts, phrases = _zh_changes()
    # Only the phrase patterns of the first characters the text holds: one pattern of all
    # ~300 first characters made ``re`` try each branch at every candidate position (0.56 s
    # of a 100,000-post day; this way 0.37 s).
    if trad.isdisjoint(text) and not any(phrases[c].search(text) is not None
                                         for c in firsts.intersection(text)):
        return text
    return _to_simplified(text) if len(text) < 400 else zhconv.convert(text, "zh-cn")


@lru_cache(maxsize=1)
def _zh_marks() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For ``may_simplify``: per code point, whether it is a traditional character,
    whether some phrase rule starts with it, and whether some rule has it second; and the
    rules' first two characters, as ``first << 21 | second``, sorted."""
    trad, table = zh_cn_table()
    is_trad = traditional_mask()
    heads = {k[:2] for k, v in table.items() if k != v and len(k) > 1 and trad.isdisjoint(k)}
    starts = np.zeros(0x110000, dtype=bool)
    starts[[ord(h[0]) for h in heads]] = True
    seconds = np.zeros(0x110000, dtype=bool)
    seconds[[ord(h[1]) for h in heads]] = True
    pairs = np.array(sorted(ord(h[0]) << 21 | ord(h[1]) for h in heads), dtype=np.uint64)
    return is_trad, starts, seconds, pairs


def may_simplify(texts: list[str]) -> list[int]:
    """The indexes of ``texts`` that ``simplified`` might change (it leaves the others
    alone): those holding a traditional character or the first two characters of a phrase
    rule. One numpy pass over a batch (~0.5 µs a text), where asking ``simplified`` text
    by text costs ~6.5 µs a text, for the ~1.5 % of posts it converts."""
    if not texts:
        return []
    is_trad, starts, seconds, pairs = _zh_marks()
    # NUL joins them: it is in no rule, and a rule never spans two texts.
    codes = np.frombuffer("\0".join(texts).encode("utf-32-le"), dtype=np.uint32)
    hits = np.flatnonzero(is_trad[codes])
    first = np.flatnonzero(starts[codes[:-1]])
    # A rule's first character starts ~14 % of a day's characters, a pair of its first
    # two ~0.06 %: those followed by no rule's second character are dropped before the
    # sorted search (~8x fewer left: 0.032 -> ~0.005 s of a 100,000-post day).
    first = first[seconds[codes[first + 1]]]
    if len(first):
        pair = (codes[first].astype(np.uint64) << np.uint64(21)) | codes[first + 1]
        at = np.searchsorted(pairs, pair).clip(max=len(pairs) - 1)
        hits = np.concatenate((hits, first[pairs[at] == pair]))
    if not len(hits):
        return []
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1)
    return np.unique(np.searchsorted(ends, hits, side="right")).tolist()


def _tidy(text: str) -> str:
    """One pass of markup, width, control-character and space clean-up."""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _TAGS.sub("", text)  # the API sometimes wraps links and @names in <a>
    if _FULLWIDTH_CHARS.search(text) is not None:  # (translate with a dict: ~70 ns a char)
        text = text.translate(_FULLWIDTH)
    text = _CONTROL.sub("", text)
    return _SPACES.sub(" ", text).strip()[:MAX_TEXT]


def untidy(text: str) -> bool:
    """Would the steps of ``normalise_text`` before ``simplified`` change ``text``: does it
    hold markup, an entity, a full-width form, a control character, two spaces, or
    white space at either end? (``re``'s ``\\s`` is ``str.isspace``.)"""
    return (_UNTIDY_CHARS.search(text) is not None or "  " in text
            or text[:1].isspace() or text[-1:].isspace())


def normalise_text(raw: Any, simplify: bool = True) -> str:
    """One canonical form of a post's text for matching, scoring and display.

    ``simplify`` False: all but the last step, ``simplified`` (for a non-ASCII text),
    which the caller does, for a batch (``simplify_posts``)."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise BadInput(f"text must be a string, not {type(raw).__name__}")
    text = raw[:MAX_TEXT * 2]
    if len(text) <= MAX_TEXT and not untidy(text):
        return simplified(text) if simplify and not text.isascii() else text
    # Until a pass changes nothing, so that normalising is idempotent: one pass leaves
    # "&amp;amp;" as "&amp;", and a cut at MAX_TEXT can end in a space. It ends: a pass
    # that changes the text shortens it or folds width or tabs, which never come back.
    # A text that is not ``untidy`` (and not too long: ``_tidy`` cuts it) is a fixed point
    # of ``_tidy``: asked instead of a second pass (~10 µs), the loop stops where it did.
    text = _tidy(text)
    while untidy(text) and (tidy := _tidy(text)) != text:
        text = tidy
    if simplify and not text.isascii():
        text = simplified(text)
    return text


def _id(value: Any, what: str) -> str:
    if isinstance(value, bool) or value is None:
        raise BadInput(f"{what} is missing")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 64:
        return value.strip()
    raise BadInput(f"{what} {str(value)[:40]!r} is not an id")


def _count(value: Any) -> int:
    if type(value) is int:  # the usual case first (not a bool: its type is bool)
        return value if value >= 0 else 0
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float):
        return max(0, int(value))
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0  # Weibo sometimes sends "100万+"; a count is a hint, never a reason to drop a post


def _ref(obj: dict[str, Any], key: str) -> str | None:
    return _ref_value(obj.get(key), key)


def _ref_value(ref: Any, key: str) -> str | None:
    if ref is None:
        return None
    if isinstance(ref, dict):
        return _id(ref.get("id", ref.get("idstr")), f"{key}.id")
    return _id(ref, key)


def _author(user: Any) -> Author:
    if not isinstance(user, dict):
        raise BadInput("user is missing or not an object")
    verified_type = user.get("verified_type")
    return Author(
        id=_id(user.get("id", user.get("idstr")), "user.id"),
        # Cleaned like post text: a name is shown in terminals and on the dashboard.
        screen_name=printable(str(user.get("screen_name") or ""))[:100],
        followers_count=_count(user.get("followers_count")),
        verified=bool(user.get("verified", False)),
        verified_type=verified_type if isinstance(verified_type, int) else None,
    )


def to_event(obj: Any, source: str = "", simplify: bool = True) -> Event:
    """Turn one feed object (status, comment or action) into a typed record.

    ``simplify`` False: a post's text is not yet converted to simplified characters; the
    caller passes the batch to ``simplify_posts``."""
    if not isinstance(obj, dict):
        raise BadInput(f"expected a JSON object, got {type(obj).__name__}")
    if "action" in obj:
        return parse_action(obj, source)
    post_id = _id(obj.get("id", obj.get("idstr")), "id")
    if "created_at" not in obj:
        raise BadInput("created_at is missing")
    created = parse_time(obj["created_at"])
    on_status = _ref(obj, "status")
    # ``retweeted_id`` is the flat form used by some exports (e.g. rumour-cascade dumps).
    reposts = _ref(obj, "retweeted_status") or _ref(obj, "retweeted_id")
    text = normalise_text(obj.get("text"), simplify)
    author = _author(obj.get("user"))
    return _post(post_id, created, on_status, reposts, text, author,
                 (_count(obj.get("reposts_count")), _count(obj.get("comments_count")),
                  _count(obj.get("attitudes_count"))),
                 _ref(obj, "reply_comment") if on_status else None, source)


def _post(post_id: str, created: float, on_status: str | None, reposts: str | None,
          text: str, author: Author, counts: tuple[int, int, int], reply_to: str | None,
          source: str) -> Post:
    """A status, or a comment if it is ``on_status`` (the fields a kind has not: None),
    from checked fields (``to_event`` and its fast path ``plain_post``)."""
    reposts_count, comments_count, attitudes_count = counts
    if on_status:
        return Post(id=post_id, kind=PostKind.COMMENT, created_at=created, text=text,
                    author=author, reposts_count=reposts_count, comments_count=comments_count,
                    attitudes_count=attitudes_count, on_status_id=on_status,
                    reply_to_id=reply_to, source=source)
    return Post(id=post_id, kind=PostKind.STATUS, created_at=created, text=text,
                author=author, reposts_count=reposts_count, comments_count=comments_count,
                attitudes_count=attitudes_count, reposts_id=reposts, source=source)


Count = Annotated[int, msgspec.Meta(ge=0)]


class _PlainUser(msgspec.Struct, gc=False):
    """A ``user`` object in the shape nearly every feed line has (see ``_PlainPost``)."""

    id: int
    screen_name: str = ""
    followers_count: Count = 0
    verified: bool = False
    verified_type: int | None = None


class _PlainPost(msgspec.Struct, gc=False):
    """A status or comment line in the shape nearly every feed line has: numeric ids, a
    string time, counts that are non-negative integers. msgspec checks those types in C
    while it decodes, where ``to_event`` checks them field by field on a decoded dict;
    a line of any other shape fails to decode here and takes ``to_event``. ``created_at``
    may be epoch seconds, as ``parse_time`` takes them (what MQTT publishers often send;
    msgspec gives a JSON integer as a float, as ``parse_time`` would)."""

    id: int
    created_at: str | float
    user: _PlainUser
    text: str | None = None
    reposts_count: Count = 0
    comments_count: Count = 0
    attitudes_count: Count = 0
    status: Any = None
    retweeted_status: Any = None
    retweeted_id: Any = None
    reply_comment: Any = None
    action: Any = msgspec.UNSET


_plain_decoder = msgspec.json.Decoder(_PlainPost)


def plain_post(line: bytes, source: str = "", simplify: bool = True,
               created_at: float | None = None) -> Post | None:
    """``to_event`` of a JSON feed line of the usual shape (``_PlainPost``), decoded
    straight into types (~40 % less than decoding a dict and checking it); None for any
    other line, and for one that ``to_event`` would refuse: the caller takes the general
    path, which gives the same event or says what is wrong. Same result as ``to_event``
    on the decoded line wherever it gives one (``tests/unit/test_feed.py``).
    ``created_at``: ``parse_time`` of the line's ``created_at``, if read already (a
    replay's first pass reads every line's time to sort them)."""
    try:
        obj = _plain_decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if obj.action is not msgspec.UNSET:
        return None  # an action (to_event: any line with an "action" key)
    try:
        # In to_event's order, so the same problem would be found first (then refused
        # by both: the general path says which).
        created = parse_time(obj.created_at) if created_at is None else created_at
        # (most lines refer to nothing: no call to say so)
        on_status = None if obj.status is None else _ref_value(obj.status, "status")
        reposts = (None if obj.retweeted_status is None
                   else _ref_value(obj.retweeted_status, "retweeted_status"))
        if not reposts and obj.retweeted_id is not None:
            reposts = _ref_value(obj.retweeted_id, "retweeted_id")
        text = normalise_text(obj.text, simplify)
        u = obj.user
        author = Author(id=str(u.id), screen_name=printable(u.screen_name)[:100],
                        followers_count=u.followers_count, verified=u.verified,
                        verified_type=u.verified_type)
        return _post(str(obj.id), created, on_status, reposts, text, author,
                     (obj.reposts_count, obj.comments_count, obj.attitudes_count),
                     _ref_value(obj.reply_comment, "reply_comment") if on_status else None,
                     source)
    except BadInput:
        return None


def simplify_posts(events: MutableSequence[Event] | MutableSequence[Post]) -> None:
    """Finish, in place, what ``to_event(..., simplify=False)`` left out: each post's text
    in simplified characters, exactly as ``to_event`` gives it, for a batch at once
    (``may_simplify``). Anything that is not a ``Post`` is left as it is."""
    posts = [(i, e) for i, e in enumerate(events) if type(e) is Post and not e.text.isascii()]
    for k in may_simplify([post.text for _, post in posts]):
        i, post = posts[k]
        text = simplified(post.text)
        if text != post.text:
            events[i] = msgspec.structs.replace(post, text=text)


def parse_action(obj: Mapping[str, Any], source: str, *, now: float | None = None,
                 by: str | None = None, key: str | None = None, default_by: str = "unknown",
                 needs_public: bool = True) -> Action:
    """A responder's ack or resolve, from a feed line, an API request or an MQTT command.

    The one place an :class:`Action` is made. ``obj`` holds ``action``, ``target``,
    ``by``, ``public`` and, in a feed, ``created_at``; ``now`` is given for a request
    that happens when it arrives (API, MQTT), and then any ``created_at`` in ``obj`` is
    ignored. ``by`` overrides ``obj["by"]`` (a signed-in user); ``default_by`` stands in
    when neither names anyone. ``needs_public``: a resolve must say whether the answer
    was public (``False`` only for an incident's resolve over the API).

    The id is derived from the request: its action, target, who, ``public``, its own
    ``created_at`` (a feed line's, not ``now``) and the client's idempotency key
    (``key``, else ``obj["id"]``). The same request sent twice (a client's retry, MQTT
    redelivery, a feed read again) is the same action, and the store keeps it once; a
    client that means a second, identical action sends a new key. A target naming a
    repeat page (``a-…-r2``) names the alert it repeats. Raises ``BadInput``.
    """
    try:
        kind = ActionKind(str(obj.get("action")))
    except ValueError:
        raise BadInput(f'action {str(obj.get("action"))[:40]!r} is not "ack" or "resolve"') \
            from None
    target = base_alert_id(_id(obj.get("target"), "target (alert, mention or incident id)"))
    if now is not None:
        created, when = now, ""
    elif "created_at" in obj:
        created = parse_time(obj["created_at"])
        when = repr(created)
    else:
        raise BadInput("created_at is missing")
    public = obj.get("public")
    if public is not None and not isinstance(public, bool):
        raise BadInput('"public" must be true or false')
    if kind is ActionKind.RESOLVE and public is None and needs_public:
        raise BadInput('a resolve needs "public": true or false (was the answer public?)')
    if kind is ActionKind.ACK:
        public = None  # an ack says nothing about the answer
    who = by or obj.get("by") or default_by
    if not isinstance(who, str):
        raise BadInput('"by" must be a name (who is acting)')
    who = who.strip()[:100] or default_by
    given = key if key is not None else obj.get("id")
    if given is None:
        idem = ""
    elif isinstance(given, str | int) and not isinstance(given, bool) and str(given).strip():
        idem = str(given).strip()[:200]
    else:
        raise BadInput("id (idempotency key) must be a string or a number")
    content = "\x1f".join((kind, target, who, repr(public), when, idem))
    action_id = "act-" + hashlib.blake2b(content.encode(), digest_size=8).hexdigest()
    return Action(id=action_id, action=kind, target=target, by=who, created_at=created,
                  public=public, source=source)


def is_pure_repost(post: Post) -> bool:
    """A repost with nothing of its own to say: volume, but no reply needed."""
    return post.reposts_id is not None and post.text.strip() in PURE_REPOST_TEXTS
