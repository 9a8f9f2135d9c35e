"""Replay: recorded feeds through the live pipeline on a simulated clock.

Time comes only from the feed: the clock jumps to each line's ``created_at`` (paced by
``--speed N``, or not at all with ``max``), and after the last line it runs on until
every pending deadline has passed (or ``--until``). The same input gives a
byte-identical ``alerts.jsonl``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from alerts.record import Alert, format_instant, record_json
from monitor.app import build_pipeline
from monitor.clock import SimClock
from monitor.config import Config
from monitor.feed import FeedStats, read_feeds
from monitor.model import Event
from monitor.pipeline import Pipeline, incident_record
from monitor.store import Store

COMMIT_EVERY = 5120
"""Events per transaction: a multiple of ``PREPARE_EVERY``, so a commit never drops the
dedupe lookups ``prepare`` made for the events still ahead (``Store.expect``)."""
PREPARE_EVERY = 256


@dataclass(slots=True)
class ReplayResult:
    """What a replay did, for the report and the CLI."""

    out_dir: Path
    feed: FeedStats
    # Not in the repr: asyncio formats a finished task's result (twice per replay), and
    # the repr of 50,000 alerts cost ~1 s of a 100,000-post replay.
    alerts: list[Alert] = field(default_factory=list, repr=False)
    seconds: float = 0.0
    clock_start: float | None = None
    clock_end: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage (read, pipeline, outputs, report), for benchmarks."""


async def replay(config: Config, feeds: Sequence[Path], out_dir: Path,
                 speed: float | None = None, until: float | None = None,
                 on_alert: Callable[[Alert], None] | None = None,
                 pipeline_factory: Callable[[Store], Pipeline] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Run ``feeds`` through the pipeline; write alerts, mentions, incidents and a report.

    ``speed`` None runs as fast as the CPU allows; otherwise simulated seconds per wall
    second. ``until`` stops the clock there instead of running every deadline out.
    ``progress(done, total)`` is told how many events are handled, every thousand.
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    state = out_dir / "state.db"
    for suffix in ("", "-wal", "-shm"):
        (out_dir / f"state.db{suffix}").unlink(missing_ok=True)
    stats = FeedStats()
    events = read_feeds(feeds, stats)
    read_s = time.perf_counter() - started
    store = Store(state)
    pipeline = pipeline_factory(store) if pipeline_factory else build_pipeline(config, store)
    # The events and the models live to the end: keep the garbage collector from walking
    # them again in every collection (~20 % of a 100,000-post replay). Nothing is kept
    # alive by this; it only narrows what the cycle collector looks at until ``unfreeze``.
    gc.freeze()
    try:
        result = await _run(config, events, stats, store, pipeline, out_dir, speed, until,
                            on_alert, progress, started)
        result.stage_seconds["read"] = read_s
        result.stage_seconds["pipeline"] = result.seconds - read_s
        return result
    finally:
        gc.unfreeze()


async def _run(config: Config, events: list[Event], stats: FeedStats, store: Store,
               pipeline: Pipeline, out_dir: Path, speed: float | None, until: float | None,
               on_alert: Callable[[Alert], None] | None,
               progress: Callable[[int, int], None] | None, started: float) -> ReplayResult:
    result = ReplayResult(out_dir=out_dir, feed=stats)
    clock = SimClock(events[0].created_at if events else 0.0)
    result.clock_start = clock.now() if events else None
    wall0, sim0 = time.monotonic(), clock.now()

    async def pace(t: float) -> None:
        if speed is not None:
            delay = (t - sim0) / speed - (time.monotonic() - wall0)
            if delay > 0:
                await asyncio.sleep(delay)

    def emit(alerts: list[Alert]) -> None:
        result.alerts.extend(alerts)
        if on_alert:
            for a in alerts:
                on_alert(a)

    store.begin()
    for i, event in enumerate(events):
        if until is not None and event.created_at > until:
            break
        if i % PREPARE_EVERY == 0:  # match and score the next events in one batch
            pipeline.prepare(events[i:i + PREPARE_EVERY])
        if speed is not None:
            # Deadlines between two lines fall due in (scaled) real time, not in a heap.
            while (due := pipeline.engine.next_due()) is not None and due < event.created_at:
                await pace(due)
                clock.advance_to(due)
                emit(pipeline.tick(due))
            await pace(event.created_at)
        clock.advance_to(event.created_at)
        emit(pipeline.handle(event, clock.now()))
        if progress is not None and i % 1000 == 999:
            progress(i + 1, len(events))
        if i % COMMIT_EVERY == COMMIT_EVERY - 1:
            store.commit()
            store.begin()
            await asyncio.sleep(0)  # let signals and progress output through
    end = until if until is not None else math.inf
    while (due := pipeline.engine.next_due()) is not None and due <= end:
        await pace(due)
        clock.advance_to(due)
        emit(pipeline.tick(due))
    if until is not None:
        clock.advance_to(until)
    result.clock_end = clock.now() if events else None
    if progress is not None:
        progress(len(events), len(events))
    store.commit()
    result.seconds = time.perf_counter() - started
    write_outputs(config, pipeline, result)
    result.stage_seconds["outputs"] = (time.perf_counter() - started - result.seconds
                                       - result.stage_seconds.get("report", 0.0))
    store.close()
    return result


def write_outputs(config: Config, pipeline: Pipeline, result: ReplayResult) -> None:
    """``alerts.jsonl``, ``mentions.jsonl``, ``incidents.jsonl`` and ``report.json``."""
    tz = config.tz
    out = result.out_dir
    alert_recs = [alert.to_record(tz) for alert in result.alerts]
    with (out / "alerts.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(record_json(rec) + "\n" for rec in alert_recs)
    sla = config.sla.reply_within
    replied_in_time = 0
    needing = 0
    mention_recs = []
    for clock in pipeline.engine.clocks.values():
        reply_s = None if clock.replied_at is None else clock.replied_at - clock.created_at
        needs_reply = clock.needs_reply
        if needs_reply:
            needing += 1
            replied_in_time += int(reply_s is not None and reply_s <= sla)
        mention_recs.append({
            "id": clock.post_id, "brand": clock.brand, "kind": str(clock.kind),
            "created_at": format_instant(clock.created_at, tz),
            "author_id": clock.author_id, "author": clock.author_name,
            "followers": clock.followers, "text": clock.text,
            "keywords": list(clock.keywords), "sentiment": clock.sentiment,
            "negative": clock.negative, "severity": clock.severity,
            "terms": list(clock.terms), "reasons": list(clock.reasons),
            "needs_reply": needs_reply,
            "replied_at": None if clock.replied_at is None
            else format_instant(clock.replied_at, tz),
            "reply_seconds": reply_s, "replied_by": clock.replied_by,
            "acked_by": clock.acked_by,
            "private_resolve_at": None if clock.private_resolve_at is None
            else format_instant(clock.private_resolve_at, tz),
            "incident_id": clock.incident_id,
        })
    with (out / "mentions.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in mention_recs)
    incidents = [incident_record(inc, config) for inc in pipeline.engine.incidents.values()]
    with (out / "incidents.jsonl").open("w", encoding="utf-8") as fh:
        for rec in incidents:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    by_type = Counter(str(a.type) for a in result.alerts)
    feed = result.feed
    report = {
        "lines": feed.lines,
        "events": feed.events,
        "skipped_lines": feed.skipped,
        "bad_lines": [str(b) for b in feed.bad[:1000]],
        "posts": pipeline.stats.posts,
        "duplicates": pipeline.stats.duplicates,
        "failed_events": pipeline.stats.failed,
        "actions": pipeline.stats.actions,
        "mentions": len(pipeline.engine.clocks),
        "mentions_needing_reply": needing,
        "replied_within_sla": replied_in_time,
        "sla_compliance": round(replied_in_time / needing, 4) if needing else None,
        "incidents": len(incidents),
        "alerts": len(result.alerts),
        "alerts_by_type": dict(sorted(by_type.items())),
        "clock_start": None if result.clock_start is None
        else format_instant(result.clock_start, tz),
        "clock_end": None if result.clock_end is None or math.isinf(result.clock_end)
        else format_instant(result.clock_end, tz),
        "wall_seconds": round(result.seconds, 3),
    }
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                                     encoding="utf-8")
    # The analyst report reads the same records; handing them over saves reading the
    # files just written back in (~40 % of its time on a 100,000-post day).
    t0 = time.perf_counter()
    write_analyst_report(config, out, (mention_recs, incidents, alert_recs, report))
    result.stage_seconds["report"] = time.perf_counter() - t0


def write_analyst_report(config: Config, out: Path,
                         records: tuple[list[dict[str, Any]], list[dict[str, Any]],
                                        list[dict[str, Any]], dict[str, Any]] | None = None,
                         ) -> None:
    """``report.html`` and the PNG plots, from the files just written (monitor.report),
    or from ``records`` (mentions, incidents, alerts, run report) as written to them.

    An extra for people: if it fails (say, a broken matplotlib), the replay's own
    outputs above are complete, so the error is logged once and the replay succeeds.
    """
    from monitor.report import summarise, write_report

    try:
        summary = None if records is None else summarise(out, *records, config)
        write_report(out, config, summary)
    except Exception as exc:
        structlog.get_logger(__name__).error("replay report not written", out=str(out),
                                             error=f"{type(exc).__name__}: {exc}")
