"""The live edge: what is accepted, what is rejected and why, and that it never raises."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import SimClock
from monitor.feed import FeedStats, read_feeds
from monitor.sources.edge import Edge, Rejection
from monitor.sources.http import WalkCursor
from monitor.sources.recorder import Recorder
from rules.records import Post
from tests.unit.test_fuzz import plain_like

POST = {"id": 5010000000000001, "created_at": "Wed May 20 08:25:40 +0800 2026",
        "text": "快書包&amp;ＡＢＣ 送貨太慢", "user": {"id": 42, "screen_name": "u42"},
        "reposts_count": 3}


def test_one_object_is_normalised_once_at_the_edge() -> None:
    edge = Edge("mqtt:t")
    got = edge.decode(json.dumps(POST).encode())
    assert got.rejected == 0
    [event] = got.events
    assert isinstance(event, Post)
    assert event.id == "5010000000000001"
    assert event.text == "快书包&ABC 送货太慢"  # entity, full-width, traditional
    assert event.source == "mqtt:t"
    assert got.raw == [POST]


def test_an_array_keeps_the_good_posts_and_counts_the_bad() -> None:
    edge = Edge("mqtt:t")
    bad_types = {**POST, "id": 2, "text": ["not", "text"]}
    no_time = {k: v for k, v in POST.items() if k != "created_at"}
    got = edge.decode(json.dumps([POST, bad_types, no_time, 7, {**POST, "id": 3}]).encode())
    assert [e.id for e in got.events] == ["5010000000000001", "3"]
    assert got.rejected == 3
    assert edge.stats.rejected == {Rejection.NOT_A_POST: 3}
    assert edge.stats.accepted == 2


@pytest.mark.parametrize(("payload", "why"), [
    (b'{"id": 1, "text": "\xff\xfe"}', Rejection.NOT_UTF8),
    (b'{"id": 1, "text": "cut', Rejection.NOT_JSON),
    (b"", Rejection.NOT_JSON),
    (b"[" * 1000, Rejection.NOT_JSON),
    (b'{"text": "' + b"x" * 2000 + b'"}', Rejection.TOO_LARGE),
])
def test_bad_payloads_are_rejected_with_a_reason(payload: bytes, why: Rejection) -> None:
    edge = Edge("mqtt:t", max_payload=1024)
    got = edge.decode(payload, "topic/a")
    assert got.events == [] and got.rejected == 1
    assert edge.stats.rejected == {why: 1}


def test_a_bom_is_not_an_error() -> None:
    got = Edge("x").decode(b"\xef\xbb\xbf" + json.dumps(POST).encode())
    assert len(got.events) == 1


@pytest.mark.parametrize("text", ["", "123", "123|456|789", "|456|"])
def test_walk_cursor_round_trips(text: str) -> None:
    assert str(WalkCursor.parse(text)) == text


def test_recorder_writes_replayable_rotating_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = SimClock(1_780_000_000.0)
    rec = Recorder(tmp_path, clock, rotate_every=60.0)
    rec.write([POST, {**POST, "id": 2}])
    clock.advance(61)
    rec.write([{**POST, "id": 3}])
    rec.close()
    files = sorted(tmp_path.glob("live-*.jsonl.gz"))
    assert len(files) == 2
    assert gzip.decompress(files[1].read_bytes()).count(b"\n") == 1
    stats = FeedStats()
    events = read_feeds(files, stats)
    assert [e.id for e in events] == ["5010000000000001", "2", "3"]
    assert stats.skipped == 0


# ``Edge.decode_many`` (the MQTT source's batch) against ``decode`` one payload at a time:
# lines of the usual shape and their near misses (``test_fuzz.plain_like``), with the time
# also as epoch seconds, plus arrays, actions and bad payloads among them.
_live_like = plain_like | st.fixed_dictionaries(
    {"id": st.integers(0, 2**64), "user": st.fixed_dictionaries({"id": st.integers(0, 99)}),
     "created_at": st.floats(0, 2e9) | st.integers(0, 2**40) | st.just(True),
     "text": st.sampled_from(["快書包送貨太慢", "這個", "小满咖啡 不错", "&amp;x", ""])})
_payloads = st.lists(
    _live_like.map(lambda o: json.dumps(o, ensure_ascii=False).encode())
    | st.lists(_live_like, max_size=3).map(lambda o: json.dumps(o).encode())
    | st.sampled_from([b"", b"{", b"\xff", b'{"action": "ack", "target": "a-1", "by": "x", '
                       b'"created_at": 1}', b"\xef\xbb\xbf" + json.dumps(POST).encode(),
                       b"[" * 100, json.dumps({**POST, "text": "x" * 3000}).encode()]),
    max_size=12)


@settings(max_examples=300, deadline=None)
@given(_payloads)
def test_decode_many_is_decode_one_by_one(payloads: list[bytes]) -> None:
    one, many = Edge("mqtt:t", max_payload=2048), Edge("mqtt:t", max_payload=2048)
    events, rejected = [], 0
    for data in payloads:
        got = one.decode(data, "t")
        events += got.events
        rejected += got.rejected
    batch = many.decode_many([(data, "t") for data in payloads])
    assert batch.events == events
    assert batch.rejected == rejected
    assert many.stats == one.stats
