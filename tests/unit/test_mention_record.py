"""One mention record (issue 19): the stored row and the mentions.jsonl line of a mention
agree, because both are written from ``MentionRecord`` and read back through it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from monitor.config import Config, load_config
from monitor.mention_record import (
    MENTION_FIELDS,
    MentionRecord,
    mention_dict,
    mention_fields,
    mention_json,
    mention_json_bytes,
    mention_line,
    report_fields,
    report_record,
    stored_rows,
)
from monitor.replay import replay
from monitor.store import MENTION_COLUMNS, SHOWN_MENTION_COLUMNS, Store

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "seeds" / "feeds" / "sample_day.jsonl"
NOT_STORED = ("kind", "author_id", "keywords", "polarity", "p_negative", "terms")
"""The ``mentions.jsonl`` fields the store does not keep."""


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.toml")


@pytest.fixture(scope="module")
def sample(config: Config, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[list[dict[str, object]], list[tuple[object, ...]]]:
    """The sample day's mentions.jsonl records and the stored rows (SHOWN columns)."""
    out = tmp_path_factory.mktemp("mentions")
    asyncio.run(replay(config, [SAMPLE], out, analyst_report=False))
    lines = (out / "mentions.jsonl").read_text(encoding="utf-8").splitlines()
    store = Store(out / "state.db")
    try:
        rows = store.mention_rows(open_only=False)
    finally:
        store.close()
    return [json.loads(line) for line in lines], rows


def test_stored_row_reads_back_as_the_jsonl_record(
        config: Config, sample: tuple[list[dict[str, object]], list[tuple[object, ...]]]
) -> None:
    records, rows = sample
    assert len(rows) == len(records) > 50
    by_id = {(r["brand"], r["id"]): r for r in records}
    for row in rows:
        m = MentionRecord.from_row(row)
        assert all(getattr(m, f) is None for f in NOT_STORED)
        want = by_id[(m.brand, m.post_id)]
        got = json.loads(mention_json(m.to_dict(config.tz)))
        # What the store keeps comes back as the JSON line has it; the author is the shown
        # name (the screen name, else the id).
        assert got["author"] == (want["author"] or want["author_id"])
        for field in got.keys() - {"author", *NOT_STORED}:
            assert got[field] == want[field], field
        # And the row it writes is the row it was read from (bar seen_at, not read back).
        written = dict(zip(MENTION_COLUMNS, m.to_row(), strict=True))
        assert tuple(written[c] for c in SHOWN_MENTION_COLUMNS) == tuple(row)
    assert any(r["replied_at"] is not None for r in records)  # replies are compared too


def test_clock_and_record_give_the_same_row_and_line(
        config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stored_rows`` and ``mention_dict`` take the engine's clocks directly (the replay's
    paths) or records: the same row and record either way, and ``to_json`` is the line of
    ``to_dict``."""
    from monitor.pipeline import Pipeline

    clocks = []
    original = Pipeline._flush_projections

    def spy(self: Pipeline) -> None:
        clocks.extend(self.engine.dirty_mentions)
        original(self)

    monkeypatch.setattr(Pipeline, "_flush_projections", spy)
    asyncio.run(replay(config, [SAMPLE], tmp_path, analyst_report=False))
    assert len(clocks) > 50
    for clock in clocks:
        rec = MentionRecord.from_clock(clock)
        assert stored_rows([clock]) == [rec.to_row()]
        assert mention_dict(clock, config.tz) == rec.to_dict(config.tz)  # every field kept
        assert rec.to_json(config.tz) == mention_json(rec.to_dict(config.tz))
        # The replay's line and report fields, made without the record: the same.
        record = mention_dict(clock, config.tz)
        assert mention_line(clock, config.tz) == mention_json_bytes(record)
        assert mention_fields(clock, config.tz) == report_fields(record)


def test_until_leaves_out_a_later_reply(config: Config) -> None:
    """A digest reads the mention as it stood when its period ended."""
    m = MentionRecord(key="b\x1f1", post_id="1", brand="b", kind="original",
                      created_at=1000.0, seen_at=1000.0, author_id="9", author_name="a",
                      followers=3, text="t", keywords=("b",), sentiment=0.1, negative=True,
                      polarity="negative", p_negative=0.9, severity="P2", terms=(),
                      reasons=("r",), needs_reply=True, replied_at=1100.0,
                      replied_by="official", acked_by=None, private_resolve_at=None,
                      incident_id=None)
    assert m.reply_seconds() == 100.0
    assert report_record(report_fields(m.to_dict(config.tz)))["reply_seconds"] == 100.0
    late = report_record(report_fields(m.to_dict(config.tz, until=1100.0)))
    assert set(late) == set(MENTION_FIELDS)
    assert late["reply_seconds"] is None and m.reply_seconds(until=1100.0) is None
    assert m.to_dict(config.tz, until=1100.0)["replied_at"] is None
    assert m.to_dict(config.tz, until=1100.5)["replied_at"] is not None


@pytest.mark.parametrize("value", [
    0.0, -0.0, 0.0001, 0.00012345, 1e-05, 2.5e-07, 0.07385, 123.456, 299.99999999999994,
    999999999999999.9, 1e15, 1e16, 1.2345678901234568e+17, -3.5, 1e300, float("nan"),
    float("inf"), float("-inf"), 2**70, True, None])
def test_mention_line_is_json_dumps_text(value: object) -> None:
    """``mention_json`` (msgspec, spaced by its formatter) writes exactly the text of
    ``json.dumps(rec, ensure_ascii=False)``: floats in and out of the range msgspec
    writes as ``repr`` does, non-finite ones, big ints, and strings that need escapes."""
    rec = {"id": "1", "text": 'a"b\\c\n\t\x00\x1f\x7f\u2028\u2029 中文 😀',
           "keywords": ("小满", "x"), "terms": (), "sentiment": value, "reply_seconds": value,
           "nested": None}
    assert mention_json(rec) == json.dumps(rec, ensure_ascii=False)
    assert mention_json({**rec, "text": "\ud800"}) == json.dumps({**rec, "text": "\ud800"},
                                                              ensure_ascii=False)


@pytest.mark.parametrize("value", [0.0, 0.0001, 1e-05, 123.456, 1e16, float("nan"), 7])
def test_mention_line_matches_the_record_path(config: Config, value: float) -> None:
    """``mention_line`` writes the line ``mention_json_bytes`` writes of the record, also
    where msgspec would write a float otherwise (then it takes the record's path), and
    with a reply, a private resolve and text that needs escapes."""
    m = MentionRecord(key="b\x1f1", post_id="1", brand="b", kind="comment",
                      created_at=1000.0, seen_at=1000.0, author_id="9", author_name="a",
                      followers=3, text='a"b\\c\n\u2028 中文', keywords=("b",),
                      sentiment=value, negative=True, polarity="negative",
                      p_negative=value, severity="P2", terms=("t",), reasons=("r",),
                      needs_reply=True, replied_at=1000.0 + value if abs(value) < 1e9 else None,
                      replied_by="official", acked_by="x", private_resolve_at=1200.5,
                      incident_id="inc-1")
    record = mention_dict(m, config.tz)
    assert mention_line(m, config.tz) == mention_json_bytes(record)
    assert mention_fields(m, config.tz) == report_fields(record)
    assert mention_line(m, config.tz, mention_fields(m, config.tz)) == mention_json_bytes(record)
