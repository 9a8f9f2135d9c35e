"""Fuzzing: parsers never raise anything but their own clear errors, whatever they are fed."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import ConfigError, parse_config
from monitor.feed import FeedStats, iter_feed
from monitor.normalise import (
    _FULLWIDTH,
    BadInput,
    normalise_text,
    parse_time,
    plain_post,
    to_event,
    untidy,
)
from rules.matching import BrandMatcher
from rules.records import Action, Post, parse_duration

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=20,
)
# Objects that look like feed lines, with every field possibly of the wrong type.
post_like = st.fixed_dictionaries({}, optional={
    "id": json_values, "created_at": json_values | st.just("Tue May 31 17:46:55 +0800 2011"),
    "text": json_values, "user": json_values | st.fixed_dictionaries(
        {}, optional={"id": json_values, "followers_count": json_values,
                      "verified": json_values, "screen_name": json_values}),
    "status": json_values, "reply_comment": json_values, "retweeted_status": json_values,
    "reposts_count": json_values, "action": st.sampled_from(["ack", "resolve", "x"]) | json_values,
    "target": json_values, "public": json_values,
})


@FAST
@given(post_like)
def test_to_event_raises_only_bad_input(obj: dict[str, object]) -> None:
    try:
        event = to_event(obj)
    except BadInput as exc:
        assert str(exc)  # a reason a person can read
        return
    assert event.id and isinstance(event.created_at, float)


# Lines of the usual shape, with a few of each field's near misses: what ``plain_post``
# decodes straight into types, or must hand on to ``to_event``. (``one_of`` picks a branch
# evenly: the good values are listed several times, so most lines are of the usual shape.)
def _mostly(good: st.SearchStrategy[object], *odd: object) -> st.SearchStrategy[object]:
    return st.one_of(good, good, good, good, st.sampled_from(odd))


ids = _mostly(st.integers(0, 2**70), -1, " 7 ", "", "x" * 65, True, None, 1.5)
counts = _mostly(st.integers(0, 2**64), -3, None, True, 2.0, "12", "100万+")
plain_like = st.fixed_dictionaries({
    "id": ids, "created_at": _mostly(st.sampled_from(["Tue May 31 17:46:55 +0800 2011",
                                                      "2013-04-05 22:34:13"]),
                                     "soon", "", 1306835215, None),
    "user": st.fixed_dictionaries({"id": ids}, optional={
        "screen_name": _mostly(st.text(max_size=8), None, 5), "followers_count": counts,
        "verified": _mostly(st.booleans(), None, 1),
        "verified_type": _mostly(st.integers(-1, 3) | st.none(), True, "2")})},
    optional={
    "text": _mostly(st.text(max_size=20), "&amp;快书包 <b>x</b>", "這個", None, 3),
    "reposts_count": counts, "comments_count": counts, "attitudes_count": counts,
    "status": ids | st.fixed_dictionaries({}, optional={"id": ids, "idstr": ids}),
    "retweeted_status": ids | st.fixed_dictionaries({}, optional={"id": ids}),
    "retweeted_id": ids, "reply_comment": ids | st.fixed_dictionaries({"id": ids}),
    "action": st.sampled_from(["ack", None]), "idstr": ids,
})


@settings(FAST, max_examples=400)
@given(plain_like, st.booleans())
def test_plain_post_is_to_event(obj: dict[str, object], simplify: bool) -> None:
    line = json.dumps(obj, ensure_ascii=False).encode()
    fast = plain_post(line, "f.jsonl:1", simplify)
    try:
        slow: object = to_event(msgspec.json.decode(line), "f.jsonl:1", simplify)
    except BadInput:
        slow = None
    assert fast is None or fast == slow
    if slow is None:
        assert fast is None


@FAST
@given(json_values)
def test_any_json_value(obj: object) -> None:
    try:
        event = to_event(obj)
    except BadInput as exc:
        assert str(exc)
    else:
        assert isinstance(event, Post | Action)


# The one pattern ``untidy`` replaced (an alternation, slower).
_UNTIDY_ONE_PATTERN = re.compile("[&<" + "".join(re.escape(chr(c)) for c in sorted(_FULLWIDTH))
                                 + r"\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\ufeff\t\r\n]"
                                 r"|  |^\s|\s$")
_SPACY = st.text(alphabet=st.sampled_from(" a快\n\t\xa0\u3000\u2028\x85\x1c&<Ａ\u200b"),
                 max_size=6)


@settings(FAST, max_examples=400)
@given(st.text(max_size=8) | _SPACY)
def test_untidy_is_the_one_pattern(text: str) -> None:
    assert untidy(text) == (_UNTIDY_ONE_PATTERN.search(text) is not None)


@FAST
@given(st.text())
def test_time_parser(text: str) -> None:
    try:
        assert isinstance(parse_time(text), float)
    except BadInput as exc:
        assert "created_at" in str(exc)


@FAST
@given(st.text())
def test_duration_parser(text: str) -> None:
    try:
        assert parse_duration(text) >= 0
    except ValueError as exc:
        assert "is not a duration" in str(exc)


@FAST
@given(st.text(max_size=300))
def test_normalise_and_match_any_text(text: str) -> None:
    from rules.policy import BrandConfig

    out = normalise_text(text)
    assert normalise_text(out) == out  # idempotent: normalising once at the edge is enough
    m = BrandMatcher([BrandConfig(name="美的", keywords=("美的空调",),
                                  ambiguous_keywords=("美的",), context=("空调",),
                                  exclude=("美的风景", "招聘"))])
    for found in m.match(out):
        assert found.brand == "美的"


toml_scalars = st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=False,
                                                            allow_infinity=False),
                         st.booleans(), st.text(max_size=20),
                         st.sampled_from(["5m", "12h", "90s", "x", ""]))
sections = st.dictionaries(
    st.sampled_from(["sla", "crisis", "scoring", "ladder", "store", "alerts", "log", "http",
                     "bogus"]),
    st.dictionaries(st.sampled_from(["warn_at", "reply_within", "window", "checkpoints",
                                     "model", "negative_below", "level0", "path", "terminal",
                                     "level", "listen", "nope"]),
                    toml_scalars | st.lists(toml_scalars, max_size=3), max_size=4),
    max_size=5,
)


def to_toml(doc: dict[str, dict[str, object]], brands: list[dict[str, object]]) -> str:
    lines: list[str] = []
    for name, table in doc.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()]
    for b in brands:
        lines.append("[[brands]]")
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in b.items()]
    return "\n".join(lines) + "\n"


@FAST
@given(sections, st.lists(st.dictionaries(
    st.sampled_from(["name", "keywords", "ambiguous_keywords", "context", "official_accounts",
                     "extra"]), toml_scalars | st.lists(st.text(max_size=6), max_size=3),
    max_size=5), max_size=3))
def test_config_loader_reports_problems_with_key_paths(doc: dict[str, dict[str, object]],
                                                       brands: list[dict[str, object]]) -> None:
    text = to_toml(doc, brands)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # json.dumps of some floats is not TOML; not the loader's input
    try:
        parse_config(text)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            key, sep, message = problem.partition(": ")
            assert sep and key and message, problem


@FAST
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_feed_reader_survives_any_bytes(tmp_path_factory: object, lines: list[bytes]) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "f.jsonl"  # type: ignore[attr-defined]
    path.write_bytes(b"\n".join(lines) + b"\n")
    stats = FeedStats()
    events = list(iter_feed(path, stats))
    assert stats.events == len(events)
    assert stats.lines == stats.events + stats.skipped
