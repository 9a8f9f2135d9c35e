"""The /metrics ops alert on: delivery latency, oldest pending page, reply time.

An in-process daemon (real store, pipeline, outbox, HTTP) on a ``StepClock`` that both
the engine and the outbox read, so "due" and "delivered" are on one clock the test moves.
One channel delivers in batches, one is down for two minutes, then recovers. The body is
checked with ``promtool check metrics`` when promtool is installed, and always with
prometheus_client's parser; the alerting rules in docs/operations.md with ``promtool check
rules``, and every metric they name must be one the daemon serves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from alerts.channels.base import DeliveryError
from monitor.sources.base import Batch
from rules.records import Alert
from tests.factories import T0, official_comment, post
from tests.fixtures.clocks import StepClock
from tests.fixtures.live import metric, parse_metrics, running_daemon, until
from tests.integration.test_faults import base_config

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


class Batching:
    name = "batch"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, alert: Alert) -> None:
        self.sent.append(alert.id)

    async def send_batch(self, items: list[tuple[Alert, object]]) -> list[None]:
        self.sent += [a.id for a, _ in items]
        return [None] * len(items)


class Gate:
    """A paging channel that refuses (retryably) while closed."""

    name = "gate"

    def __init__(self) -> None:
        self.open = False
        self.sent: list[str] = []

    async def send(self, alert: Alert) -> None:
        if not self.open:
            raise DeliveryError("HTTP 503", retryable=True)
        self.sent.append(alert.id)


def promtool_check(body: str) -> None:
    """``promtool check metrics`` (lint) passes, when promtool is installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    run = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                         capture_output=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULT_TOKEN", "metrics-test-token")


async def test_delivery_latency_oldest_pending_and_reply_time(tmp_path: Path) -> None:
    clock = StepClock(T0)
    batch, gate = Batching(), Gate()
    async with running_daemon(base_config(tmp_path), tmp_path / "s.db", clock,
                              delivery_clock=clock, channels=[batch, gate]) as live:
        daemon, outbox = live.daemon, live.daemon.outbox
        await daemon.ingest(Batch("test", [post(T0, pid=str(i)) for i in range(3)]))
        await until(lambda: len(batch.sent) == 3, what="the batch channel")
        await until(lambda: outbox.failures["gate"] >= 1, what="the gate's first try")

        clock.advance_to(T0 + 120)  # two minutes of outage on the gate
        during = await live.metrics()
        clock.advance_to(T0 + 150)  # the brand answers post 0 after 150 s
        await daemon.ingest(Batch("test", [official_comment(T0 + 150, on="0")]))
        gate.open = True
        clock.advance_to(max(T0 + 150, outbox.next_try("gate") or 0))
        outbox.notify()
        await until(lambda: len(gate.sent) == 3, what="the gate after it opens")
        await until(lambda: daemon.store.delivery_counts().get(("gate", "delivered")) == 3,
                    what="the gate's deliveries recorded")
        after = await live.metrics()
        # A rebuild (a restart, a takeover) replays the reply: not counted again.
        daemon.pipeline.reset_engine()
        with daemon.store.transaction():
            daemon.pipeline.rebuild()
        rebuilt = await live.metrics()

    for body in (during, after):
        promtool_check(body)
    # During the outage: the gate's oldest page fell due 120 s ago, the batch has none.
    assert metric(during, "crisismon_delivery_oldest_pending_seconds", channel="gate") == 120
    assert metric(during, "crisismon_delivery_oldest_pending_seconds", channel="batch") == 0
    assert metric(during, "crisismon_delivery_latency_seconds_count", channel="batch") == 3
    assert metric(during, "crisismon_delivery_latency_seconds_sum", channel="batch") == 0
    assert ("crisismon_delivery_latency_seconds_count", frozenset({("channel", "gate")})) \
        not in parse_metrics(during)
    # After: all out, each first send observed once, at its lateness.
    assert metric(after, "crisismon_delivery_oldest_pending_seconds", channel="gate") == 0
    assert metric(after, "crisismon_delivery_latency_seconds_count", channel="gate") == 3
    late = metric(after, "crisismon_delivery_latency_seconds_sum", channel="gate") / 3
    assert late >= 150
    assert metric(after, "crisismon_delivery_latency_seconds_bucket", channel="gate",
                  le="120.0") == 0
    assert metric(after, "crisismon_delivery_latency_seconds_bucket", channel="gate",
                  le="300.0") == 3
    # Reply time: one mention answered, 150 s after it was posted.
    assert metric(after, "crisismon_reply_time_seconds_count", brand="快书包") == 1
    assert metric(after, "crisismon_reply_time_seconds_sum", brand="快书包") == 150
    assert metric(after, "crisismon_reply_time_seconds_bucket", brand="快书包",
                  le="120.0") == 0
    assert metric(rebuilt, "crisismon_reply_time_seconds_count", brand="快书包") == 1


def documented_rules() -> str:
    """The YAML block under "Alerting rules" in docs/operations.md."""
    text = OPERATIONS.read_text(encoding="utf-8").split("### Alerting rules", 1)[1]
    return text.split("```yaml\n", 1)[1].split("```", 1)[0]


async def test_the_documented_alerting_rules_pass_promtool_and_name_served_metrics(
        tmp_path: Path) -> None:
    rules = documented_rules()
    named = set(re.findall(r"crisismon_[a-z_]+", rules))
    assert {"crisismon_delivery_oldest_pending_seconds", "crisismon_reply_time_seconds_bucket",
            "crisismon_delivery_latency_seconds_bucket"} <= named
    clock = StepClock(T0)
    async with running_daemon(base_config(tmp_path), tmp_path / "s.db", clock,
                              delivery_clock=clock, channels=[Batching()]) as live:
        await live.daemon.ingest(Batch("test", [post(T0, pid="1")]))
        await live.daemon.ingest(Batch("test", [official_comment(T0 + 60, on="1")]))
        body = await live.metrics()
    served = {name for name, _labels in parse_metrics(body)}
    assert named <= served, named - served
    promtool_rules(rules, tmp_path / "rules.yml")


def promtool_rules(rules: str, path: Path) -> None:
    """``promtool check rules`` passes on ``rules``, when promtool is installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    path.write_text(rules, encoding="utf-8")
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
