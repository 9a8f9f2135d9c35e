"""The replay's feed reader: the events, order, counts and bad lines of ``read_feeds``, in
chunks, read in a forked process or in this one; and the assessments it makes there."""

from __future__ import annotations

import functools
import gzip
import json
import multiprocessing
from pathlib import Path

import pytest

from monitor.app import build_scorer, default_assessor
from monitor.config import load_config
from monitor.feed import FeedStats, read_feeds
from monitor.feedstream import FeedReader
from rules.matching import BrandMatcher
from rules.records import Event, Post
from rules.scoring import assess_posts

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "seeds" / "feeds" / "sample_day.jsonl"


def post(pid: int, at: str, text: str = "快书包不错") -> str:
    return json.dumps({"id": pid, "created_at": at, "text": text,
                       "user": {"id": 7, "screen_name": "a", "followers_count": 3}},
                      ensure_ascii=False)


def t(second: int) -> str:
    return f"2026-05-20T10:00:{second:02d}+08:00"


def awkward_feeds(tmp: Path) -> list[Path]:
    """Out of order, ties within and across files, actions, blank lines, gzip, a truncated
    gzip, and a bad line of every kind (with and without a readable time)."""
    a = tmp / "a.jsonl"
    a.write_text("\n".join([
        post(1, t(30)), post(2, t(10)), "", "{oops", post(3, t(10)),
        json.dumps({"action": "ack", "target": "1", "by": "x", "created_at": t(10)}),
        json.dumps({"id": 4, "text": "no time", "user": {"id": 1}}),
        json.dumps({"id": 5, "created_at": "yesterday", "text": "x", "user": {"id": 1}}),
        json.dumps({"created_at": t(5), "text": "no id", "user": {"id": 1}}),
        json.dumps([1, 2]), "[" * 3000 + "]" * 3000,
        post(6, "Wed May 20 10:00:01 +0800 2026"), post(7, "1779242405"),
    ]) + "\n", encoding="utf-8")
    b = tmp / "b.jsonl.gz"
    b.write_bytes(gzip.compress(("\n".join([
        post(8, t(10)), post(9, t(0)), post(10, t(30), "快书包 ＫＵＡＩ &amp; 繁體")]) + "\n"
    ).encode() + b'{"id": 11, "created_at": "' + t(1).encode() + b'", "text": "\xff"}\n'))
    c = tmp / "c.jsonl.gz"
    c.write_bytes(gzip.compress((post(12, t(2)) + "\n" + post(13, t(3)) + "\n").encode())[:-12])
    return [a, b, c]


def read_all(reader: FeedReader) -> list[Event]:
    events: list[Event] = []
    for chunk in reader:
        events.extend(chunk.events)
    return events


@pytest.mark.parametrize("fork", [True, False])
def test_the_events_counts_and_bad_lines_of_read_feeds_in_chunks(tmp_path: Path,
                                                                 fork: bool) -> None:
    feeds = awkward_feeds(tmp_path)
    want_stats = FeedStats()
    want = read_feeds(feeds, want_stats)
    assert len(want_stats.bad) >= 8 and len(want) >= 8  # the feed is as awkward as meant
    stats = FeedStats()
    reader = FeedReader(feeds, stats, chunk=4, batch=2, fork=fork)
    try:
        chunks = [chunk.events for chunk in reader]
    finally:
        reader.close()
    # A forked reader sends one batch first (the replay waits for it), then whole chunks.
    sizes = [2] + [4] * (len(chunks) - 2) if fork else [4] * (len(chunks) - 1)
    assert [len(c) for c in chunks[:-1]] == sizes
    assert [e for c in chunks for e in c] == want
    assert (stats.lines, stats.events, stats.bad) == \
        (want_stats.lines, want_stats.events, want_stats.bad)
    assert reader.expected is not None and reader.expected >= len(want)


def test_the_forked_reader_assesses_each_batch_as_the_pipeline_would() -> None:
    config = load_config(ROOT / "config.toml")
    reader = FeedReader([SAMPLE], FeedStats(), chunk=16, batch=8,
                        assessor=functools.partial(default_assessor, config))
    matcher, scorer = BrandMatcher(config.brands), build_scorer(config)
    mentions = 0
    stories: set[str] = set()  # the reader's assessor remembers story roots across batches
    try:
        for read in reader:  # every chunk, the first included: the models load first
            chunk, assessed, decided = read.events, read.assessed, read.decided
            assert assessed is not None and len(assessed) == -(-len(chunk) // 8)
            assert decided is not None and len(decided) == len(assessed)
            for j, got in enumerate(assessed):
                batch = [e for e in chunk[j * 8:(j + 1) * 8] if isinstance(e, Post)]
                want = assess_posts(batch, matcher, scorer, stories)
                # A post decided whole there is sent as its decision only.
                whole = {pid for pid, body in decided[j].items() if body}
                assert whole <= want.keys()
                assert got == {pid: a for pid, a in want.items() if pid not in whole}
                mentions += len(want)
    finally:
        reader.close()
    assert mentions > 50


def test_a_reader_that_fails_raises_its_error_here(tmp_path: Path) -> None:
    reader = FeedReader([tmp_path], FeedStats())  # a folder, not a feed
    with pytest.raises(IsADirectoryError):
        read_all(reader)
    reader.close()


def test_closing_early_ends_the_reader(tmp_path: Path) -> None:
    feed = tmp_path / "big.jsonl"
    feed.write_text("".join(post(i, t(i % 60)) + "\n" for i in range(20_000)), encoding="utf-8")
    reader = FeedReader([feed], FeedStats(), chunk=256)
    first = next(iter(reader))
    assert len(first.events) == 256
    reader.close()  # the reader is blocked on a full pipe: it must end all the same
    assert not multiprocessing.active_children()


def test_decisions_made_ahead_are_those_the_pipeline_makes(tmp_path: Path) -> None:
    """The reader decides ahead what needs no engine (a post naming a brand, wholly; an
    official account's post, its official part): handled with those, the pipeline stores
    the same decisions, events and alerts as one that decides everything itself."""
    from monitor.app import build_pipeline
    from monitor.store import Store

    config = load_config(ROOT / "tests" / "golden" / "argument" / "config.toml")
    events = read_feeds([ROOT / "tests" / "golden" / "argument" / "feed.jsonl",
                         SAMPLE], FeedStats())
    runs = []
    for ahead in (False, True):
        work = default_assessor(config)  # its own story roots, from the start
        store = Store(tmp_path / f"{ahead}.db", exclusive=True, durable=False)
        pipeline = build_pipeline(config, store)
        alerts = []
        early = 0
        with store.transaction():
            for j in range(0, len(events), 8):
                batch = events[j:j + 8]
                posts = [e for e in batch if isinstance(e, Post)]
                assessed = work(posts)
                decided = work.decide(posts, assessed) if ahead else None
                early += len(decided or {})
                pipeline.prepare(batch, assessed, decided)
                for e in batch:
                    alerts += [a.id for a in pipeline.handle(e, e.created_at)]
        rows = [(event, decision) for _seq, _at, event, decision in store.events_since(0)]
        runs.append((rows, alerts))
        store.close()
        if ahead:
            assert early > 20  # mentions and official replies were decided ahead
    assert runs[0] == runs[1]
    assert any(decision for _event, decision in runs[0][0])


def test_a_reader_never_read_from_ends_on_close(tmp_path: Path) -> None:
    """The forked reader waits for the sorted lines from this process, sent on the first
    read: closed before any, it ends all the same."""
    feed = tmp_path / "day.jsonl"
    feed.write_text(post(1, t(1)) + "\n", encoding="utf-8")
    reader = FeedReader([feed], FeedStats())
    reader.close()
    assert not multiprocessing.active_children()


def test_warming_the_assessor_up_changes_no_assessment() -> None:
    """``ReaderWork.warm_up`` (the forked reader's, while it waits for the lines) builds
    what the first batch would, and leaves the story memory as it was."""
    config = load_config(ROOT / "config.toml")
    warm, cold = default_assessor(config), default_assessor(config)
    warm.warm_up()
    assert warm.stories == set() and warm._argument is not None
    events = read_feeds([SAMPLE], FeedStats())
    posts = [e for e in events if isinstance(e, Post)]
    for i in range(0, len(posts), 64):
        batch = posts[i:i + 64]
        got, want = warm(batch), cold(batch)
        assert got == want
        assert warm.decide(batch, got) == cold.decide(batch, want)
    assert warm.stories == cold.stories and warm.stories


def test_a_chunks_bodies_are_those_of_each_keys_first_event() -> None:
    """``_bodies`` encodes a chunk's events at once: a key repeated in the chunk keeps
    the body of its first event, in that event's place (as the store keeps it)."""
    from monitor.feedstream import _bodies
    from monitor.store import encode_event, event_key
    from rules.records import Action, ActionKind, Author, PostKind

    def p(pid: str, text: str) -> Post:
        return Post(id=pid, kind=PostKind.STATUS, created_at=1.0, text=text,
                    author=Author(id="7"))

    events: list[Event] = [
        p("1", "第一\n行"), p("2", 'a "quoted"\r\x00 text'), p("1", "again, changed"),
        Action(id="act-1", action=ActionKind.ACK, target="1", by="x", created_at=2.0),
        p("3", ""), p("2", "changed too"),
        Action(id="act-1", action=ActionKind.ACK, target="9", by="y", created_at=3.0)]
    want: dict[str, bytes] = {}
    for event in events:
        want.setdefault(event_key(event), encode_event(event))
    got = _bodies(events)
    assert list(got.items()) == list(want.items())
    assert _bodies(events[:2]) == {k: want[k] for k in ("p:1", "p:2")}
    assert _bodies([]) == {}
