"""Ack and resolve through a real Daemon: HTTP API, ``crisismon ack``, the MQTT command topic.

The daemon serves on a free loopback port, delivers to a loopback webhook receiver, and
takes commands from the real broker. Every action must be stored as an event (so a
restart replays it), reach the engine, and appear in the audit log.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

import monitor.api  # noqa: F401  (registers the routes under test)
from alerts.channels.options import WebhookChannelConfig
from monitor.app import build_pipeline
from monitor.clock import ScaledClock
from monitor.config import AlertsConfig, CommandsConfig, Config, HttpConfig
from monitor.daemon import Daemon, build_channels
from monitor.sources.base import Batch, Source
from monitor.sources.commands import CommandSource
from monitor.store import Store
from rules.policy import BrandConfig
from rules.records import Author, Post, PostKind
from tests.fakes.providers import WEBHOOK_SECRET, Providers, running_providers
from tests.fixtures.broker import free_port

TOKEN = "api-test-token"
BRAND = "快书包"
T0 = 1_779_242_400.0  # 2026-05-20 10:00 +08:00
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    daemon: Daemon
    base: str
    providers: Providers
    http: aiohttp.ClientSession
    config: Config
    store_path: Path


def post(pid: str, text: str = "快书包送错了，太差劲") -> Post:
    return Post(id=pid, kind=PostKind.STATUS, created_at=T0, text=text,
                author=Author(id="42", screen_name="顾客"))


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - polls state owned elsewhere
            await asyncio.sleep(0.02)


def make_config(tmp: Path, providers: Providers, port: int) -> Config:
    return Config(brands=(BrandConfig(name=BRAND, keywords=(BRAND,),
                                      official_accounts=("1650000001",)),),
                  http=HttpConfig(listen=f"127.0.0.1:{port}", token=TOKEN),
                  alerts=AlertsConfig(terminal=False, log=str(tmp / "alerts.jsonl")),
                  channels=(WebhookChannelConfig(type="webhook", name="hook",
                                                 url=providers.webhook_url,
                                                 secret="env:TEST_WEBHOOK_SECRET"),))


async def start(config: Config, store_path: Path,
                sources: Callable[[Daemon], list[Source]] | None = None
                ) -> tuple[Daemon, asyncio.Event, asyncio.Task[None]]:
    store = Store(store_path)
    channels = build_channels(config)
    daemon = Daemon(config, store, build_pipeline(config, store, [c.name for c in channels]),
                    ScaledClock(T0, 1.0), channels)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(sources(daemon) if sources else [], stop),
                               name="daemon")
    await until(lambda: daemon.started)
    return daemon, stop, task


async def shut(daemon: Daemon, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await task
    for c in daemon.outbox.channels.values():
        aclose: Callable[[], Awaitable[None]] | None = getattr(c, "aclose", None)
        if aclose is not None:
            await aclose()
    daemon.store.close()


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    async with running_providers() as providers:
        port = free_port()
        config = make_config(tmp_path, providers, port)
        daemon, stop, task = await start(config, tmp_path / "s.db")
        async with aiohttp.ClientSession() as http:
            try:
                yield Env(daemon, f"http://127.0.0.1:{port}", providers, http, config,
                          tmp_path / "s.db")
            finally:
                await shut(daemon, stop, task)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def test_ack_over_http_is_stored_replayed_and_audited(env: Env) -> None:
    await env.daemon.ingest(Batch("test", [post("9001")]))
    await until(lambda: len(env.providers.webhook.received) == 1)
    # Received is not yet recorded (the audit's "delivered" row): that follows the reply.
    # The alert log is a channel of its own: its delivery may be recorded after the hook's.
    await until(lambda: env.daemon.store.delivery_counts().get(("hook", "delivered")) == 1
                and env.daemon.store.delivery_counts().get(("log", "delivered")) == 1)
    alert_id = env.providers.webhook.received[0].body["id"]
    url = f"{env.base}/api/alerts/{alert_id}/ack"
    async with env.http.post(url, json={"by": "小王"}) as r:
        assert r.status == 401
    async with env.http.post(url, data=b"{not json", headers=auth()) as r:
        assert r.status == 400
    async with env.http.post(f"{env.base}/api/alerts/a-0000000000000000/ack", headers=auth(),
                             json={"by": "小王"}) as r:
        assert r.status == 404
    async with env.http.post(url, json={"by": "小王"}, headers=auth()) as r:
        assert r.status == 200
        assert (await r.json())["action"]["target"] == alert_id
    clock = env.daemon.pipeline.engine.clocks[f"{BRAND}\x1f9001"]
    assert clock.acked_by == "小王" and clock.is_open  # an ack never stops the reply clock
    kinds = [type(e).__name__ for _, e in env.daemon.store.events()]
    assert kinds == ["Post", "Action"]
    async with env.http.get(f"{env.base}/api/audit", params={"alert": alert_id},
                            headers=auth()) as r:
        entries = (await r.json())["entries"]
    assert {(e["kind"], e["outcome"], e["channel"]) for e in entries} >= {
        ("delivery", "delivered", "hook"), ("delivery", "delivered", "log"),
        ("ack", "recorded", None)}
    assert next(e for e in entries if e["kind"] == "ack")["by"] == "小王"


async def test_the_same_ack_posted_twice_is_one_action(env: Env) -> None:
    """A client's retry (its answer was lost) must not become a second action."""
    await env.daemon.ingest(Batch("test", [post("9005")]))
    await until(lambda: len(env.providers.webhook.received) == 1)
    alert_id = env.providers.webhook.received[0].body["id"]
    url = f"{env.base}/api/alerts/{alert_id}/ack"
    ids = []
    for _ in range(2):
        async with env.http.post(url, json={"by": "小王"}, headers=auth()) as r:
            assert r.status == 200
            ids.append((await r.json())["action"]["id"])
    assert ids[0] == ids[1]
    actions = [e for _, e in env.daemon.store.events() if type(e).__name__ == "Action"]
    assert [a.id for a in actions] == ids[:1]
    assert len(env.daemon.outbox.audit.entries(10, alert_id, "ack")) == 1
    # A client that means a second ack says so with a new key: that one is kept.
    async with env.http.post(url, json={"by": "小王"},
                             headers={**auth(), "Idempotency-Key": "second"}) as r:
        assert r.status == 200 and (await r.json())["action"]["id"] != ids[0]
    assert len(env.daemon.outbox.audit.entries(10, alert_id, "ack")) == 2


async def test_resolve_mention_public_ends_the_clock_and_bad_input_is_refused(env: Env) -> None:
    await env.daemon.ingest(Batch("test", [post("9002")]))
    url = f"{env.base}/api/mentions/9002/resolve"
    async with env.http.post(url, json={"by": "小王"}, headers=auth()) as r:
        assert r.status == 400 and "public" in (await r.json())["error"]
    async with env.http.post(f"{env.base}/api/mentions/404404/resolve", headers=auth(),
                             json={"public": True, "by": "小王"}) as r:
        assert r.status == 404
    async with env.http.post(url, json={"public": True, "by": "小王"}, headers=auth()) as r:
        assert r.status == 200
    assert not env.daemon.pipeline.engine.clocks[f"{BRAND}\x1f9002"].is_open


async def test_crisismon_ack_from_the_shell_and_the_ack_survives_a_restart(
        env: Env, tmp_path: Path) -> None:
    await env.daemon.ingest(Batch("test", [post("9003")]))
    await until(lambda: len(env.providers.webhook.received) == 1)
    alert_id = env.providers.webhook.received[0].body["id"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "ack", alert_id, "--by", "老陈", "--url", env.base,
        env={**os.environ, "CRISISMON_TOKEN": TOKEN}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert f"ack {alert_id} by 老陈" in out.decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "ack", "a-ffffffffffffffff", "--url", env.base,
        env={**os.environ, "CRISISMON_TOKEN": TOKEN}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and "HTTP 404" in err.decode()
    # A fresh pipeline over the same store replays the stored action.
    store = Store(env.store_path)
    pipeline = build_pipeline(env.config, store)
    with store.transaction():
        pipeline.rebuild()
    assert pipeline.engine.clocks[f"{BRAND}\x1f9003"].acked_by == "老陈"
    store.close()


async def test_ack_over_the_mqtt_command_topic(tmp_path: Path, mqtt_broker: tuple[str, int],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    host, port = mqtt_broker
    topic = f"crisismon-test/{uuid.uuid4().hex[:8]}/commands"
    cc = CommandsConfig(enabled=True, host=host, port=port, topic=topic,
                        client_id=f"cmd-{uuid.uuid4().hex[:8]}")
    async with running_providers() as providers:
        config = make_config(tmp_path, providers, free_port())
        commands: list[CommandSource] = []

        def sources(d: Daemon) -> list[Source]:
            commands.append(CommandSource(cc, d.clock))
            return list(commands)

        daemon, stop, task = await start(config, tmp_path / "s.db", sources)
        try:
            await daemon.ingest(Batch("test", [post("9004")]))
            await until(lambda: len(providers.webhook.received) == 1)
            alert_id = providers.webhook.received[0].body["id"]
            await until(commands[0].subscribed.is_set)
            async with aiomqtt.Client(host, port) as client:
                await client.publish(topic, b'{"action": "ack"}', qos=1)  # no target: refused
                await client.publish(topic, json.dumps(
                    {"action": "ack", "target": alert_id, "by": "值班甲"}).encode(), qos=1)
            clock = daemon.pipeline.engine.clocks[f"{BRAND}\x1f9004"]
            await until(lambda: clock.acked_by == "值班甲")
            assert commands[0].rejected == 1
            entries = daemon.outbox.audit.entries(10, alert_id, "ack")
            assert [(e.who, e.via) for e in entries] == [("值班甲", "commands")]
        finally:
            await shut(daemon, stop, task)
