"""Replay: recorded feeds through the live pipeline on a simulated clock.

Time comes only from the feed: the clock jumps to each line's ``created_at`` (paced by
``--speed N``, or not at all with ``max``), and after the last line it runs on until
every pending deadline has passed (or ``--until``). The same input gives a
byte-identical ``alerts.jsonl``.

Replay is the daemon: the same pipeline, and with ``[[channels]]`` configured the same
outbox (silences, quiet hours, grouping, rate limits, repeats), whose workers wait on the
simulated clock. Each paging channel is a ``Recorder``: what it would have been sent is
in ``deliveries.jsonl``, one line per outcome. The clock's timers (deadlines, retries,
deferrals, group flushes, repeats) fire in time order, each at its own moment, and after
each the outbox runs until it waits again; the replay ends when the feed is done and no
timer is due before the end (burst mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import math
import operator
import os
import pickle
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

import msgspec
import structlog

from alerts.channels.base import Thread
from alerts.outbox import Outbox
from monitor import workers
from monitor.app import build_pipeline, default_assessor
from monitor.clock import SimClock
from monitor.config import Config
from monitor.digests import Digests
from monitor.digests import compute as digest_compute
from monitor.feed import FeedStats
from monitor.feedstream import FeedReader
from monitor.mention_record import mention_fields, mention_line, report_record
from monitor.paging import outbox_options
from monitor.pipeline import Pipeline, incident_record
from monitor.store import PlainPost, Store
from rules.deadlines import in_time
from rules.records import Alert, AlertType, Event, format_instant

ReportRecords = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]],
                      dict[str, Any]]
"""What the analyst report is built from: mentions, incidents, the incidents' alerts
(``crisis.*``; the run report counts the others), run report."""

COMMIT_EVERY = 5120
"""Events per transaction: a multiple of ``PREPARE_EVERY``, so a commit never drops the
dedupe lookups ``prepare`` made for the events still ahead (``Store.expect``)."""
PREPARE_EVERY = 256
_to_json = json.JSONEncoder(ensure_ascii=False).encode
"""``json.dumps(rec, ensure_ascii=False)``, same text, without building an encoder per call."""


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
    digests: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """The ``digests.jsonl`` records: each ``[[digests]]`` made on the simulated clock."""
    deliveries: list[dict[str, Any]] | None = field(default=None, repr=False)
    """The ``deliveries.jsonl`` records (None: no paging channel, no outbox)."""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage (read, pipeline, outputs, report), for benchmarks. ``read``
    is the time the replay waited for the feed reader (and decoded its chunks); with a
    forked reader, ``reader_cpu`` is the CPU seconds that process used; with a
    report process, ``report`` is only what the replay spends on it beyond the output
    files: handing the records over and waiting for it to finish."""


async def replay(config: Config, feeds: Sequence[Path], out_dir: Path,
                 speed: float | None = None, until: float | None = None,
                 on_alert: Callable[[Alert], None] | None = None,
                 pipeline_factory: Callable[[Store], Pipeline] | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 analyst_report: bool = True) -> ReplayResult:
    """Run ``feeds`` through the pipeline; write alerts, mentions, incidents and a report.

    ``speed`` None runs as fast as the CPU allows; otherwise simulated seconds per wall
    second. ``until`` stops the clock there instead of running every deadline out.
    ``progress(done, total)`` is told how many events are handled, every thousand.
    ``analyst_report`` False: the JSON files only, no ``report.html`` or plots.
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    # No cycle collection while replaying: what the replay builds (the feed's sorted lines,
    # clocks, alerts, rows) lives to its end or is freed by reference counting, and the
    # collector only walked it again and again (a 100,000-post replay leaves 37 objects
    # for it, collected at the end). From the start: the feed's first pass, in a thread
    # from here on (``FeedReader``), took ~0.1 s longer with it. The forked workers start
    # without it too (the report's imports matplotlib so; the others never enable it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return await _replay(config, feeds, out_dir, speed, until, on_alert,
                             pipeline_factory, progress, analyst_report, started)
    finally:
        if collecting:
            # What the replay left tracked (its alerts, whatever the caller keeps) is all
            # in the youngest generation, which the first allocation after ``enable``
            # would walk whole (~0.4 s of CPU after a mention-heavy day's replay, before
            # it returned). Moved to the oldest instead, in one step and unwalked
            # (``freeze`` then ``unfreeze``): collected, cycles and all, at the next
            # full collection, as anything else long-lived.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


async def _replay(config: Config, feeds: Sequence[Path], out_dir: Path, speed: float | None,
                  until: float | None, on_alert: Callable[[Alert], None] | None,
                  pipeline_factory: Callable[[Store], Pipeline] | None,
                  progress: Callable[[int, int], None] | None, analyst_report: bool,
                  started: float) -> ReplayResult:
    # Forked first, while this process is small: it imports matplotlib during the replay.
    reporter = ReportWorker(config) if analyst_report else None
    # Reads ahead on the second core, and matches and scores there what it read; with a
    # pipeline of the caller's, the pipeline does its own matching and scoring.
    reader = FeedReader(feeds, FeedStats(), batch=PREPARE_EVERY, assessor=None
                        if pipeline_factory else functools.partial(default_assessor, config))
    store: Store | None = None
    done = False
    try:
        state = out_dir / "state.db"
        for suffix in ("", "-wal", "-shm"):
            (out_dir / f"state.db{suffix}").unlink(missing_ok=True)
        # Created just now and rebuilt on every run: no one else's events or alerts in it
        # (no lookup per new key or alert id), and nothing a crash could lose that a rerun
        # would not rebuild (no fsyncs, no write-ahead log).
        # Its inserts in a process of their own, on the second core, unless the outbox
        # or the digests read the store while the feed is replayed (each read waits
        # for the writes before it).
        store = Store(state, exclusive=True, durable=False,
                      write_behind=not (config.channels or config.digests
                                        or pipeline_factory))
        # The reader loads the models and scores every post: none are loaded here unless
        # a post arrives unscored (no fork: the reader runs in this process).
        # Every alert gets a delivery row on each paging channel it is routed to, as
        # live; the replay's outbox sends them to channels that record (``Recorder``).
        pipeline = (pipeline_factory(store) if pipeline_factory
                    else build_pipeline(config, store, paging_channels(config),
                                        lazy_scorer=True))
        result = await _run(config, reader, store, pipeline, out_dir, speed, until,
                            on_alert, progress, started, reporter)
        done = True
        return result
    finally:
        if store is not None and not done:
            store.abandon()
        reader.close()
        if reporter is not None:
            reporter.close()


async def _run(config: Config, reader: FeedReader, store: Store, pipeline: Pipeline,
               out_dir: Path, speed: float | None, until: float | None,
               on_alert: Callable[[Alert], None] | None,
               progress: Callable[[int, int], None] | None, started: float,
               reporter: ReportWorker | None) -> ReplayResult:
    result = ReplayResult(out_dir=out_dir, feed=reader.stats)
    clock: SimClock | None = None
    paging: ReplayOutbox | None = None
    wall0 = sim0 = 0.0
    waited = 0.0  # for the reader: the read stage, as far as it held the replay up

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
        if paging is not None and alerts:
            paging.outbox.notify()

    store.begin()
    i = 0
    stopped = False
    chunks = iter(reader)
    # Digests fire on the simulated clock, before the first event at or after their time.
    digests = Digests(config, store) if config.digests else None
    next_digest = math.inf

    def make_digests(upto: float) -> float:
        """Make every digest due at or before ``upto``; the next fire time after."""
        assert clock is not None and digests is not None
        nxt = next_digest
        while nxt <= upto:
            clock.advance_to(nxt)
            emit(pipeline.tick(nxt, inclusive=False))  # what fell due before belongs in
            for due in digests.due(nxt):
                result.digests.append(digest_compute(store, config, due.cfg, due.start,
                                                     due.end).record())
                digests.made(due)
            nxt = digests.next_at() or math.inf
        return nxt

    async def advance(t: float, inclusive: bool) -> None:
        """Fire every deadline and outbox timer due before ``t`` (or at ``t``, if
        ``inclusive``) in time order, each at its own moment; after each, the outbox
        runs until it waits again (burst mode: nothing runs ahead of the clock)."""
        nonlocal next_digest
        assert clock is not None
        while True:
            due = pipeline.engine.next_due()
            timer = None if paging is None else clock.next_timer()
            nxt = due if timer is None or (due is not None and due <= timer) else timer
            if nxt is None or nxt > t or (nxt == t and not inclusive):
                return
            if nxt >= next_digest:
                next_digest = make_digests(nxt)
            await pace(nxt)
            if nxt == due:
                clock.advance_to(due)
                emit(pipeline.tick(due))
                if paging is not None:
                    await clock.settle(paging.tasks)
            else:
                await clock.run_until(nxt, paging.tasks)  # type: ignore[union-attr]

    # At full speed, without an outbox, digests or ``until``, nothing but ``handle`` acts
    # between two events: the loop below, less its tests for what cannot happen, and
    # without moving the clock (which then has no timers) to every event's time.
    lean = (speed is None and until is None and digests is None
            and not pipeline.channels)
    handle = pipeline.handle

    async def handle_chunk(chunk: list[Event | PlainPost], assessed: Any, decided: Any,
                           i: int) -> int:
        """``chunk`` handled as the loop below would (with ``lean``); the events handled
        so far."""
        assert clock is not None
        now = clock.now()
        for j in range(0, len(chunk), PREPARE_EVERY):
            batch = chunk[j:j + PREPARE_EVERY]  # matched and scored in one batch
            pipeline.prepare(batch, None if assessed is None else assessed[j // PREPARE_EVERY],
                             None if decided is None else decided[j // PREPARE_EVERY])
            for event in batch:
                t = event.created_at
                if t > now:  # (time stays monotonic, as ``SimClock.advance_to`` keeps it)
                    now = t
                alerts = handle(event, now)
                if alerts:
                    emit(alerts)
                i += 1
                if progress is not None and i % 1000 == 0:
                    progress(i, max(i, reader.expected or 0))
                if i % COMMIT_EVERY == 0:
                    clock.advance_to(now)
                    store.commit()
                    store.begin()
                    await asyncio.sleep(0)  # let signals and progress output through
        clock.advance_to(now)
        return i

    while True:
        t0 = time.perf_counter()
        read = next(chunks, None)
        waited += time.perf_counter() - t0
        if read is None:
            break
        if stopped:
            continue  # past ``until``: read on only for the feed's counts
        chunk, assessed, decided = read.events, read.assessed, read.decided
        if read.bodies is not None:
            store.encoded(read.bodies)
        if clock is None:
            clock = SimClock(chunk[0].created_at, autojump=False)
            wall0, sim0 = time.monotonic(), clock.now()
            result.clock_start = sim0
            if pipeline.channels:
                store.commit()  # (the outbox's tables are made outside a transaction)
                paging = ReplayOutbox(config, store, pipeline, clock)
                store.begin()
                await clock.settle(paging.tasks)
            if digests is not None:
                digests.due(sim0)  # starts each schedule: its first is the next fire time
                next_digest = digests.next_at() or math.inf
        if lean:
            i = await handle_chunk(chunk, assessed, decided, i)
            continue
        for j, event in enumerate(chunk):
            if until is not None and event.created_at > until:
                stopped = True
                break
            if event.created_at >= next_digest:
                next_digest = make_digests(event.created_at)
            if j % PREPARE_EVERY == 0:  # match and score the next events in one batch
                pipeline.prepare(chunk[j:j + PREPARE_EVERY],
                                 None if assessed is None else assessed[j // PREPARE_EVERY],
                                 None if decided is None else decided[j // PREPARE_EVERY])
            if speed is not None or paging is not None:
                # Deadlines and outbox timers between two lines fire one by one, in time
                # order (paced in real time with ``--speed N``). Without an outbox, at full
                # speed, ``handle`` fires the deadlines before its event itself, together.
                await advance(event.created_at, inclusive=False)
                await pace(event.created_at)
            clock.advance_to(event.created_at)
            emit(pipeline.handle(event, clock.now()))
            if paging is not None and paging.outbox_due():
                await clock.settle(paging.tasks)
            i += 1
            if progress is not None and i % 1000 == 0:
                progress(i, max(i, reader.expected or 0))
            if i % COMMIT_EVERY == 0:
                store.commit()
                store.begin()
                await asyncio.sleep(0)  # let signals and progress output through
    if clock is not None:
        # Run until idle: every deadline and outbox timer up to the end (arq's burst mode).
        end = until if until is not None else math.inf
        await advance(end, inclusive=True)
        if until is not None:
            if until >= next_digest:
                next_digest = make_digests(until)
            clock.advance_to(until)
        result.clock_end = clock.now()
    if progress is not None:
        progress(i, i)
    if paging is not None:
        await paging.stop()
        result.deliveries = paging.records(config)
    store.commit()
    store.end_bulk_load()  # the writer builds its indexes while the outputs are written
    result.seconds = time.perf_counter() - started
    result.stage_seconds["read"] = waited
    result.stage_seconds["pipeline"] = result.seconds - waited
    if reader.cpu_seconds is not None:
        result.stage_seconds["reader_cpu"] = reader.cpu_seconds
    write_outputs(config, pipeline, result, reporter, render=reporter is not None)
    write_digests(config, result)
    write_deliveries(result)
    result.stage_seconds["outputs"] = (time.perf_counter() - started - result.seconds
                                       - result.stage_seconds.get("report", 0.0))
    store.close()
    return result


def write_outputs(config: Config, pipeline: Pipeline, result: ReplayResult,
                  reporter: ReportWorker | None = None, render: bool = True) -> None:
    """``alerts.jsonl``, ``mentions.jsonl``, ``incidents.jsonl`` and ``report.json``, and
    the analyst report (unless not ``render``): by ``reporter`` while the files are
    written, if given, else after them in this process."""
    tz = config.tz
    out = result.out_dir
    # Every record first, so the report process can render while the files are written.
    sla = config.sla.reply_within
    replied_in_time = 0
    needing = 0
    clocks = pipeline.engine.clocks.values()
    # The report's fields of each mention record first (none made: ``mention_fields``),
    # its mentions.jsonl line once the report process has them (``mention_line``).
    slim_mentions: list[tuple[Any, ...]] = []  # (``SlimMention``s)
    for clock in clocks:
        fields = mention_fields(clock, tz)
        if fields[5]:  # needs_reply
            needing += 1
            replied_in_time += in_time(fields[6], sla)  # reply_seconds
        slim_mentions.append(fields)
    incidents = [incident_record(inc, config) for inc in pipeline.engine.incidents.values()]
    by_type = {str(kind): n for kind, n in  # (a ``str`` per kind, not per alert)
               Counter(map(_alert_type, result.alerts)).items()}
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
    # The analyst report reads the same records; handing them over saves reading the
    # files just written back in (~40 % of its time on a 100,000-post day). Of the
    # alerts, only what it reads (``SlimAlert``), the times formatted by the report
    # process: sent whole, the 51,546 alerts of that day took ~0.7 s to build, send and
    # unpickle. Of the mentions, only the fields it reads (``SlimMention``): whole, that
    # day's 15,474 took 0.13 s to unpack there, after the replay was done.
    # Of the alerts, only the incidents' own: the report draws those, and counts the rest
    # from ``report`` (alerts, alerts_by_type). Sending all 131,722 of the mention-heavy
    # day cost ~0.15 s here and ~0.6 s there (unpack, a dict each, each incident's plot
    # scanning them all), where it is the replay's last step.
    slim = [(alert.type.value, alert.at, alert.incident_id) for alert in result.alerts
            if alert.type in _INCIDENT_TYPES]
    t0 = time.perf_counter()
    if reporter is not None:
        reporter.submit(out, (slim_mentions, incidents, slim, report))
    report_s = time.perf_counter() - t0
    mention_lines = [mention_line(clock, tz, fields)
                     for clock, fields in zip(clocks, slim_mentions, strict=True)]
    with (out / "alerts.jsonl").open("wb") as fh:
        # The UTF-8 line the store was given for each alert (cached on it, in the same
        # zone), written as it is: no ``str`` of it is ever made (~60 MB on the
        # mention-heavy day), nor encoded again by a text file; joined a few thousand
        # at a time, not two writes per line.
        _write_lines(fh, [alert.to_json_bytes(tz) for alert in result.alerts])
    with (out / "mentions.jsonl").open("wb") as fh:
        _write_lines(fh, mention_lines)
    with (out / "incidents.jsonl").open("w", encoding="utf-8") as fh:
        for rec in incidents:
            fh.write(_to_json(rec) + "\n")
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                                     encoding="utf-8")
    t0 = time.perf_counter()
    if render and (reporter is None or not reporter.finish(out)):
        # (the report reads only the ``MENTION_FIELDS`` of a mention record)
        write_analyst_report(config, out, ([report_record(m) for m in slim_mentions],
                                           incidents, report_alerts(slim, tz), report))
    result.stage_seconds["report"] = report_s + time.perf_counter() - t0


def _write_lines(fh: Any, lines: list[bytes], chunk: int = 4096) -> None:
    """``lines`` to the binary file ``fh``, each ended by a newline."""
    for i in range(0, len(lines), chunk):
        # The last newline written apart: appended to the joined chunk, it copied those
        # few MB again into a fresh block (0.1-0.15 s of the mention-heavy day's 89 MB).
        fh.write(b"\n".join(lines[i:i + chunk]))
        fh.write(b"\n")


_alert_type = operator.attrgetter("type")
_INCIDENT_TYPES = frozenset(t for t in AlertType if t.value.startswith("crisis."))
"""The alerts the analyst report draws (``monitor.plots.plot_incident``)."""


def paging_channels(config: Config) -> list[str]:
    """The paging channels a replay records: the ``[[channels]]`` (the alert log is
    ``alerts.jsonl`` itself)."""
    return [c.name for c in config.channels]


class Recorder:
    """A paging channel that records what would have been sent instead of sending it.

    It sends in batches (``send_batch``), so the outbox hands it a pass's pages at once,
    and it never fails. What it was given is in the replay's audit log (deliveries.jsonl).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0

    async def send(self, alert: Alert, thread: Thread | None = None) -> str | None:
        self.sent += 1
        return None

    async def send_batch(self, items: list[tuple[Alert, Thread | None]]) -> list[str | None]:
        self.sent += len(items)
        return [None] * len(items)


class ReplayOutbox:
    """The daemon's outbox over the replay's store, on the simulated clock, with a
    ``Recorder`` per paging channel: silences, quiet hours, grouping, rate limits and
    repeats are replayed as they would have happened live."""

    def __init__(self, config: Config, store: Store, pipeline: Pipeline,
                 clock: SimClock) -> None:
        self.store = store
        self.clock = clock
        self.recorders = [Recorder(name) for name in pipeline.channels]
        self.outbox = Outbox(store, {r.name: r for r in self.recorders}, clock,
                             seed=0, **outbox_options(config, pipeline))
        self._tasks = [asyncio.create_task(self.outbox.run(r.name), name=f"outbox:{r.name}")
                       for r in self.recorders]
        self._tasks.append(asyncio.create_task(self.outbox.run_repeats(),
                                               name="outbox:repeats"))
        self.tasks = len(self._tasks)
        """How many tasks wait on the clock when the outbox is idle (``SimClock.settle``)."""

    def outbox_due(self) -> bool:
        """Whether the outbox was woken (new alerts) and must run before time moves on."""
        return self.outbox.woken()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for task in self._tasks:  # a worker that failed fails the replay
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    def records(self, config: Config) -> list[dict[str, Any]]:
        """Every delivery outcome the outbox recorded, in order (``deliveries.jsonl``)."""
        tz = config.tz
        entries = self.outbox.audit.entries(limit=1 << 62, kind="delivery")
        return [{"at": format_instant(e.at, tz), "alert_id": e.alert_id, "channel": e.channel,
                 "rep": e.rep, "state": e.outcome, "detail": e.detail} for e in entries]


def write_deliveries(result: ReplayResult) -> None:
    """``deliveries.jsonl``: one line per delivery outcome on a paging channel (a stale
    file from an earlier replay into the folder is removed when there is none)."""
    path = result.out_dir / "deliveries.jsonl"
    if result.deliveries is None:
        path.unlink(missing_ok=True)
        return
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(_to_json(rec) + "\n" for rec in result.deliveries)


def write_digests(config: Config, result: ReplayResult) -> None:
    """``digests.jsonl``: one line per digest made, when any ``[[digests]]`` is set (a
    stale file from an earlier replay into the folder is removed otherwise)."""
    path = result.out_dir / "digests.jsonl"
    if not config.digests:
        path.unlink(missing_ok=True)
        return
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(_to_json(rec) + "\n" for rec in result.digests)


SlimAlert = tuple[str, float, str | None]
"""An alert as the report reads it (``monitor.report`` and ``monitor.plots`` read no other
field of an alert record): type, ``at`` (epoch seconds), incident id."""
SlimMention = tuple[object, ...]
"""A mention record's values of ``monitor.mention_record.MENTION_FIELDS``, in that order."""


def report_alerts(slim: list[SlimAlert], tz: tzinfo) -> list[dict[str, Any]]:
    """The report's alert records, with the fields of ``alerts.jsonl`` that it reads."""
    return [{"type": kind, "at": format_instant(at, tz), "incident_id": incident}
            for kind, at, incident in slim]


def write_analyst_report(config: Config, out: Path,
                         records: ReportRecords | None = None) -> None:
    """``report.html`` and the PNG plots, from the files just written (monitor.report),
    or from ``records`` (mentions, incidents, the ``crisis.*`` alerts, run report) as
    written to them.

    An extra for people: if it fails (say, a broken matplotlib), the replay's own
    outputs above are complete, so the error is logged once and the replay succeeds.
    """
    error = _render_report(config, out, records)
    if error is not None:
        _report_failed(out, error)


def _render_report(config: Config, out: Path, records: ReportRecords | None,
                   split: bool = False) -> str | None:
    """Write the analyst report; None, or what went wrong (``Type: message``).
    ``split``: in the report process, which draws the plots in three processes once the
    replay is done (``monitor.plots.write_plots``)."""
    from monitor.report import summarise, write_report

    try:
        summary = None if records is None else summarise(out, *records, config,
                                                         incident_alerts_only=True)
        write_report(out, config, summary, split)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _report_failed(out: Path, error: str) -> None:
    structlog.get_logger(__name__).error("replay report not written", out=str(out),
                                         error=error)


class ReportWorker:
    """The analyst report, rendered in a second process on a second core.

    Most of the report's time is matplotlib (importing matplotlib, laying out and saving six
    figures), none of which the replay's own files need. Forked when the replay starts,
    the worker imports matplotlib while the feed is replayed; at the end it receives the
    records and renders while the replay writes its JSONL files, and the replay waits
    for it (``finish``). Failures are reported as ``write_analyst_report`` reports them:
    logged once (by this process, so the replay's log handlers see it), the replay
    succeeds. Where ``fork`` is unavailable (or fails), ``finish`` says so, and the replay
    renders the report itself.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._proc: Any = None
        self._conn: Any = None
        self._sent = False
        started = workers.start(_report_process, config, name="crisismon-report")
        if started is not None:  # else: render in this process at the end
            self._proc, self._conn = started

    def submit(self, out: Path, records: tuple[list[SlimMention], list[dict[str, Any]],
                                               list[SlimAlert], dict[str, Any]]) -> None:
        """Hand the records over (mentions and alerts slim); the worker renders while the
        caller goes on."""
        if self._conn is None:
            return
        try:
            self._conn.send_bytes(_pack_records(out, records))
            self._sent = True
        except Exception:  # the worker is gone, or the send failed: ``finish`` says so
            pass

    def finish(self, out: Path) -> bool:
        """Wait for the report and log once if it could not be written; False if there is
        no worker, and the caller should render the report itself."""
        if self._proc is None:
            return False
        if self._conn is None:
            return True  # already reported as failed
        error: str | None
        try:
            if not self._sent:
                raise EOFError
            error = self._conn.recv()
        except (EOFError, OSError):
            self._conn.close()  # a worker still waiting for records ends on this EOF
            self._conn = None
            self._proc.join()
            error = f"report process ended without a report (exit code {self._proc.exitcode})"
        self._sent = False
        if error is not None:
            _report_failed(out, error)
        return True

    def close(self) -> None:
        """End the worker (it exits when its pipe closes) and reap it."""
        if self._proc is None:
            return
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._sent:
            # The replay failed while the worker was rendering: its report is not wanted.
            self._proc.terminate()
        self._proc.join()


def _report_process(conn: Any, config: Config) -> None:
    """The forked report worker: warm matplotlib up, render one report, answer."""
    # The warm-up (~0.4 s of CPU) runs at a lower priority, in a thread of its own: it
    # must not take the second core from the feed reader, which the replay waits for.
    # The rendering must not run at that priority: at the end, it is what the replay
    # waits for, beside the replay writing its files and the store's writer catching up
    # (with the whole process at nice 10, the report got ~10 % of a core until they were
    # done). Linux gives each thread its own nice value, and an unprivileged process may
    # not lower its own again.
    warming = threading.Thread(target=_warm_up, name="report-warm-up", daemon=True)
    warming.start()
    try:
        msg = conn.recv_bytes()
    except (EOFError, OSError):
        return  # the replay ended without a report (it failed, or was interrupted)
    finally:
        warming.join()
    # No cycle collection from here on: matplotlib's ~10^5 objects moved out of its
    # reach, and none for what comes (the records, 6 figures closed as drawn): each
    # young-generation pass while the records were unpacked walked them again (~0.3 s).
    gc.freeze()
    gc.disable()
    out, (mentions, incidents, slim, run) = _unpack_records(msg)
    records = ([report_record(m) for m in mentions], incidents,
               report_alerts(slim, config.tz), run)
    conn.send(_render_report(config, out, records, split=True))


def _warm_up() -> None:
    """Import matplotlib and find the fonts, at nice 10 for this thread only (Linux; see
    ``_report_process``). (Drawing a throw-away figure of each kind here as well made the
    report's first figures no faster: ~0.01 s.)"""
    if sys.platform.startswith("linux"):  # elsewhere a thread's id is not a pid
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    try:
        from monitor.plots import warm_up

        warm_up()
    except Exception:
        pass  # rendering will fail the same way and report it


def _pack_records(out: Path, records: object) -> bytes:
    """The records for the report process: msgpack (~5x cheaper to build and read back
    than a pickle of 15,000 mention records), a pickle for anything msgpack refuses."""
    try:
        return b"M" + msgspec.msgpack.encode((str(out), records))
    except (TypeError, msgspec.EncodeError):
        return b"P" + pickle.dumps((str(out), records))


def _unpack_records(msg: bytes) -> tuple[Path, Any]:
    out, records = (msgspec.msgpack.decode(msg[1:]) if msg[:1] == b"M"
                    else pickle.loads(msg[1:]))
    return Path(out), records
