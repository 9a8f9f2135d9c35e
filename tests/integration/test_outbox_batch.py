"""The outbox's batched path (``send_batch``): every due page of a pass handed over at once.

A fake batching channel records each call; the store is real SQLite; time is a SimClock:
no sleeps. Also the alert log's batch (one write, one fsync, each id once) and the metrics
wrapper, which offers ``send_batch`` only when its channel does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts import alertlog
from alerts.alertlog import AlertLogChannel
from alerts.channels.base import Thread
from alerts.noise import PagingConfig, RateLimitConfig, Stages
from alerts.outbox import Outbox
from monitor.clock import SimClock
from monitor.metrics import Metrics
from monitor.store import Store
from rules.records import Alert, Duration
from tests.integration.test_outbox import alerts, drain_until_idle
from tests.unit.test_oncall import SH


class BatchChannel:
    """Sends in batches; fails the alerts named in ``fail`` (once each, retryably)."""

    def __init__(self, name: str = "batch", fail: set[str] | None = None) -> None:
        self.name = name
        self.fail = set(fail or ())
        self.calls: list[list[tuple[Alert, Thread | None]]] = []
        self.sent: list[str] = []

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        raise AssertionError("a batching channel is handed batches")

    async def send_batch(self, items: list[tuple[Alert, Thread | None]]
                         ) -> list[str | Exception | None]:
        self.calls.append(items)
        out: list[str | Exception | None] = []
        for alert, _thread in items:
            if alert.id in self.fail:
                self.fail.discard(alert.id)
                out.append(RuntimeError("broker gone"))
            else:
                self.sent.append(alert.id)
                out.append(None)
        return out


class OneByOne(BatchChannel):
    """The same channel without ``send_batch``: the outbox's classic path."""

    send_batch = None  # type: ignore[assignment]

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        self.sent.append(alert.id)


def stored(store: Store, items: list[Alert], channels: list[str]) -> None:
    with store.transaction():
        store.add_alerts(items, channels)


async def test_due_pages_go_out_in_one_batch_and_are_all_recorded(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    channel = BatchChannel()
    outbox = Outbox(store, {"batch": channel}, SimClock(0.0))
    stored(store, alerts(120), ["batch"])
    assert await outbox.drain("batch") == 120
    assert len(channel.calls) == 1 and len(channel.calls[0]) == 120
    assert channel.sent == [a.id for a in alerts(120)]  # in order
    assert store.delivery_counts() == {("batch", "delivered"): 120}
    assert await outbox.drain("batch") == 0  # recorded: nothing goes out twice


async def test_a_failed_page_in_a_batch_is_retried_and_the_others_are_not_resent(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    batch = alerts(10)
    channel = BatchChannel(fail={batch[3].id})
    clock = SimClock(0.0)
    outbox = Outbox(store, {"batch": channel}, clock, seed=1)
    stored(store, batch, ["batch"])
    assert await outbox.drain("batch") == 9
    assert outbox.failing() == {"batch"} and outbox.next_try("batch") is not None
    await drain_until_idle(outbox, clock, "batch")
    assert sorted(channel.sent) == sorted(a.id for a in batch)  # each exactly once
    assert store.delivery_counts() == {("batch", "delivered"): 10}
    assert outbox.failing() == set()


async def test_messages_of_one_incident_in_a_batch_are_consecutive_thread_updates(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    channel = BatchChannel()
    clock = SimClock(0.0)
    outbox = Outbox(store, {"batch": channel}, clock)
    stored(store, alerts(3, incident="inc-1", prefix="x"), ["batch"])
    await outbox.drain("batch")
    stored(store, alerts(2, incident="inc-1", prefix="y", t=10), ["batch"])
    await outbox.drain("batch")
    threads = [t for call in channel.calls for _a, t in call]
    assert [t.update for t in threads if t] == [0, 1, 2, 3, 4]
    assert all(t is not None and t.incident_id == "inc-1" for t in threads)
    assert threads[1].root is not None and threads[1].root.id == "a-x0000"  # type: ignore[union-attr]
    assert outbox.threads.get("batch", "inc-1").update == 5  # the store moved on too


async def test_a_rate_limited_channel_is_not_batched(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    channel = BatchChannel()
    stages = Stages.from_config(PagingConfig(
        rate_limits=(RateLimitConfig(channel="batch", max=2, per=Duration(60)),)), SH)
    outbox = Outbox(store, {"batch": channel}, SimClock(0.0), stages=stages)
    assert not outbox.batched(channel)
    assert outbox.batched(BatchChannel("other"))
    assert not outbox.batched(OneByOne("plain"))


async def test_a_channel_without_send_batch_keeps_the_one_by_one_path(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    channel = OneByOne("plain")
    outbox = Outbox(store, {"plain": channel}, SimClock(0.0))
    stored(store, alerts(5), ["plain"])
    assert await outbox.drain("plain") == 5
    assert channel.calls == [] and len(channel.sent) == 5


async def test_the_alert_log_writes_a_batch_once_with_each_id_once(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    log = AlertLogChannel(path, SH)
    batch = alerts(4)
    assert await log.send_batch([(a, None) for a in [*batch, batch[0]]]) == [None] * 5
    await log.send_batch([(batch[1], None)])  # a retry after a crash: not written again
    await log.send(batch[2])
    log.close()
    ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert ids == [a.id for a in batch]
    again = AlertLogChannel(path, SH)  # a restart remembers what the file holds
    await again.send_batch([(a, None) for a in batch])
    again.close()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 4


async def test_the_alert_log_remembers_the_last_lines_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start reads the ids of the file's end, not of all history (it grew with it),
    and the ids of what it writes are forgotten past ``RECENT_IDS``: the outbox records
    each batch before the next, so only the last ones can come again."""
    monkeypatch.setattr(alertlog, "RECENT_IDS", 5)
    path = tmp_path / "alerts.jsonl"
    batch = alerts(12)
    log = AlertLogChannel(path, SH)
    await log.send_batch([(a, None) for a in batch[:8]])
    assert log._ids == {a.id for a in batch[3:8]}  # the last 5 written
    log.close()
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "a-torn", "ty')  # a crash in mid-line
    lines = path.read_bytes().split(b"\n")  # [..., 6, 7, torn]: 2 whole + some of 5
    monkeypatch.setattr(alertlog, "TAIL_BYTES", sum(len(x) + 1 for x in lines[-3:]) + 20)
    again = AlertLogChannel(path, SH)  # the end only: two whole lines, the torn one
    assert again._ids == {batch[6].id, batch[7].id}
    await again.send_batch([(a, None) for a in batch[6:]])  # the last batch again, and more
    again.close()
    ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()
           if not line.startswith('{"id": "a-torn"')]
    assert ids == [a.id for a in batch]  # each once


async def test_the_daemon_outbox_batches_through_the_metrics_wrapper(tmp_path: Path) -> None:
    metrics = Metrics()
    batching, plain = metrics.metered([BatchChannel(fail={"a-0001"}), OneByOne("plain")])
    assert callable(getattr(batching, "send_batch", None))
    assert getattr(plain, "send_batch", None) is None
    results = await batching.send_batch([(a, None) for a in alerts(3)])  # type: ignore[attr-defined]
    assert [isinstance(r, Exception) for r in results] == [False, True, False]
    sample = metrics.registry.get_sample_value
    assert sample("crisismon_deliveries_total", {"channel": "batch", "type": "mention.new"}) == 2
    assert sample("crisismon_delivery_failures_total", {"channel": "batch"}) == 1



def test_a_channels_queue_is_found_by_index_not_by_scanning_deliveries(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")  # deliveries pile up by the million: no full scans
    plans = [" ".join(str(r[-1]) for r in store.db.execute(f"EXPLAIN QUERY PLAN {q}", args))
             for q, args in (
                 ("SELECT MIN(next_try) FROM deliveries WHERE channel = ? AND state IN "
                  "('pending', 'held')", ("mqtt",)),
                 ("SELECT alert_id FROM deliveries WHERE channel = ? AND state = 'pending' "
                  "AND next_try <= ?", ("mqtt", 1.0)))]
    assert all("deliveries_channel" in p for p in plans), plans


def test_an_exclusive_store_skips_lookups_but_still_drops_stored_alerts(tmp_path: Path) -> None:
    """``Store(exclusive=True)`` (the replay's) looks up only ids it buffered before; a
    rolled-back or undone alert is still recorded when raised again, a stored one is not."""
    store = Store(tmp_path / "state.db", exclusive=True)
    first, again, later = alerts(3)
    store.begin()
    assert store.add_alerts([first]) == [first]
    store.rollback()  # never stored: raised again, it is new
    store.begin()
    mark = store.mark()
    assert store.add_alerts([first]) == [first]
    store.undo(mark)
    assert store.add_alerts([first, again]) == [first, again]
    assert store.add_alerts([first]) == []  # buffered in this transaction
    store.commit()
    assert store.add_alerts([again, later]) == [later]  # stored before
    assert [a.id for a in store.alerts()] == [first.id, again.id, later.id]
    store.close()
    reopened = Store(tmp_path / "state.db", exclusive=True)  # not empty: every id looked up
    assert reopened._seen_ids is None
    assert reopened.add_alerts([first]) == []
    reopened.close()
