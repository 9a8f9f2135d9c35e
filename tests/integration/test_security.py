"""Security checks of a running daemon (issue 8): token, loopback, secrets, hostile text.

- every API and dashboard route refuses a request without the token (or with a wrong
  one); only ``/healthz``, ``/readyz`` and ``/metrics`` are open, and the server listens
  on 127.0.0.1 unless told otherwise;
- no secret (API token, webhook URL and HMAC key, MQTT password, Weibo token) appears in
  the log lines, ``/metrics``, ``/readyz`` or the store, even on the failure paths where
  error messages are built;
- post text is data: SQL and shell syntax in it are stored and read back intact, and no
  product module can hand it to a shell.
"""

from __future__ import annotations

import ast
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.channels.options import WebhookChannelConfig
from monitor.clock import ScaledClock
from monitor.config import (
    AlertsConfig,
    Config,
    HttpConfig,
    HttpSourceConfig,
    MqttSourceConfig,
    load_config,
)
from monitor.http import OPEN_PATHS, SIGN_IN_PATHS
from monitor.sources.base import Batch, Source
from monitor.sources.factory import build_sources
from monitor.sources.mqtt import MqttSource
from rules.policy import BrandConfig, CrisisConfig
from tests.fakes.providers import WEBHOOK_SECRET, Fault, running_providers
from tests.fixtures.broker import free_port
from tests.fixtures.clocks import StepClock
from tests.fixtures.live import TOKEN, LogLines, captured_logs, running_daemon, until

ROOT = Path(__file__).resolve().parents[2]
BRAND = "快书包"
T0 = 1_779_242_400.0
SECRETS = {
    "FAULT_TOKEN": TOKEN,
    "SEC_HOOK_SECRET": WEBHOOK_SECRET,
    "SEC_URL_KEY": "url-key-0d9e77",
    "SEC_MQTT_PASSWORD": "mqtt-pass-51c2aa",
    "SEC_WEIBO_TOKEN": "weibo-token-93be10",
}
INJECTION = "'); DROP TABLE events;--"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def logs() -> Iterator[LogLines]:
    with captured_logs() as lines:
        yield lines


def config(tmp: Path, **kw: Any) -> Config:
    return Config(brands=(BrandConfig(name=BRAND, keywords=(BRAND,),
                                      official_accounts=("1650000001",)),),
                  crisis=CrisisConfig(burst_min_negatives=1000, danger_min_posts=1000),
                  http=HttpConfig(listen=f"127.0.0.1:{free_port()}", token="env:FAULT_TOKEN"),
                  alerts=AlertsConfig(terminal=False, log=str(tmp / "alerts.jsonl")), **kw)


def listening_address(port: int) -> str:
    """The local address of the TCP socket listening on ``port`` (from /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                return addr
    raise AssertionError(f"nothing listens on port {port}")


async def test_every_route_but_the_health_ones_needs_the_token(tmp_path: Path) -> None:
    assert HttpConfig().listen.startswith("127.0.0.1:")  # the default stays on this machine
    assert load_config(ROOT / "config.toml").http.listen.startswith("127.0.0.1:")
    cfg = config(tmp_path)
    async with running_daemon(cfg, tmp_path / "s.db", ScaledClock(T0, 1.0), channels=[]) as live:
        port = int(cfg.http.listen.rsplit(":", 1)[1])
        assert listening_address(port) == "0100007F"  # 127.0.0.1, not 0.0.0.0
        from monitor.http import build_app

        routes = {(r.method, r.resource.canonical) for r in build_app(live.daemon, TOKEN)
                  .router.routes() if r.resource is not None and r.method != "HEAD"}
        assert len(routes) >= 9, routes
        for method, path in sorted(routes):
            url = live.base + re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: {
                "kind": "alerts", "verb": "ack"}.get(m.group(1), "x"), path)
            for headers, params in (({}, {}), ({"Authorization": "Bearer wrong"}, {}),
                                    ({"Authorization": f"Basic {TOKEN}"}, {}),
                                    ({}, {"token": "wrong"}), ({}, {"token": ""})):
                async with live.http.request(method, url, headers=headers,
                                             params=params) as r:
                    if path in OPEN_PATHS:
                        assert r.status in (200, 503), (method, path)
                    elif path in SIGN_IN_PATHS and (method, path) != (
                            "POST", "/dashboard/signin"):
                        # The data-free page (its sign-in form) and sign-out: no data,
                        # and no session cookie handed out.
                        assert r.status == 200, (method, path)
                        assert "crisismon_session=v1" not in r.headers.get("Set-Cookie", "")
                    else:
                        assert r.status == 401, (method, path, headers, params)
        async with live.http.get(live.base + "/api/mentions",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200


async def test_no_secret_in_logs_metrics_readiness_or_store(
        tmp_path: Path, logs: LogLines) -> None:
    dead = free_port()  # nothing listens: the sources fail, building their error messages
    async with running_providers() as providers:
        cfg = config(tmp_path, sources=(
            HttpSourceConfig(type="weibo_api", brand=BRAND, url=f"http://127.0.0.1:{dead}",
                             token="env:SEC_WEIBO_TOKEN", endpoints=("mentions",)),
            MqttSourceConfig(type="mqtt", topics=("t",), port=dead, username="crisismon",
                             password="env:SEC_MQTT_PASSWORD", name="mqtt:secret")),
            channels=(WebhookChannelConfig(
                type="webhook", name="hook", secret="env:SEC_HOOK_SECRET",
                url=providers.url("/webhook/alerts?key=") + SECRETS["SEC_URL_KEY"]),))
        providers.webhook.fail_next(Fault(status=500, body="oops"))
        clock = StepClock(T0)  # the sources' backoff waits: they fail once, then wait

        def sources(d: Any) -> list[Source]:
            return build_sources(d.config, d.store, clock)

        async with running_daemon(cfg, tmp_path / "s.db", ScaledClock(T0, 1.0),
                                  sources=sources) as live:
            await live.daemon.ingest(Batch("test", [_post("1", f"{BRAND}太差了")]))
            await until(lambda: len(logs.events("source failing")) == 2, what="both sources")
            await until(lambda: live.daemon.outbox.failures["hook"] == 1)
            await until(lambda: len(providers.webhook.received) == 1, timeout=10)
            texts = [logs.text, await live.metrics()]
            for path in ("/readyz", "/healthz", "/api/mentions", "/api/audit"):
                async with live.http.get(live.base + path, headers={
                        "Authorization": f"Bearer {TOKEN}"}) as r:
                    texts.append(await r.text())
            store = "\n".join(sqlite3.connect(tmp_path / "s.db").iterdump())
    assert "HTTP 500" in store  # the failure was recorded, without the URL
    for text in [*texts, store]:
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} leaked"


def _post(pid: str, text: str, name: str = "顾客") -> Any:
    from rules.records import Author, Post, PostKind

    return Post(id=pid, kind=PostKind.STATUS, created_at=T0, text=text,
                author=Author(id="42", screen_name=name))


async def test_sql_and_shell_text_in_a_post_is_stored_and_read_back_intact(
        tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_protocol: str) -> None:
    if mqtt_protocol != "5":
        pytest.fail("needs an MQTT 5 broker (mosquitto)")
    topic = f"crisismon-test/{uuid.uuid4().hex}/posts"
    # (HTML tags are stripped at the edge by design, Weibo text carries links as markup;
    # that markup is shown as text is tested with a browser in test_dashboard.py.)
    text = f"{BRAND}{INJECTION} $(touch /tmp/x) `id` \\' \" %s ?"
    name = "Robert'); DROP TABLE mentions;--"
    raw = {"id": 6_200_000_000_000_001, "created_at": "2026-05-20T10:00:00+08:00",
           "text": text, "user": {"id": 42, "screen_name": name}}
    source = MqttSource("mqtt:posts", MqttSourceConfig(
        type="mqtt", topics=(topic,), host=mqtt_broker[0], port=mqtt_broker[1],
        client_id=f"crisismon-{uuid.uuid4().hex}"), StepClock(T0))
    cfg = config(tmp_path)
    async with running_daemon(cfg, tmp_path / "s.db", ScaledClock(T0, 1.0),
                              sources=lambda _d: [source]) as live:
        await until(source.subscribed.is_set, what="the subscription")
        import aiomqtt

        async with aiomqtt.Client(mqtt_broker[0], mqtt_broker[1],
                                  protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.publish(topic, json.dumps(raw).encode(), qos=1)
        store = live.daemon.store
        await until(lambda: store.count_events() == 1 and len(store.alerts()) == 1)
        async with aiohttp.ClientSession() as http, http.get(
                live.base + "/api/mentions", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            shown = (await r.json())["mentions"]
        stored = [e for _, e in store.events()]
        alert = store.alerts()[0]
    assert [(e.text, e.author.screen_name) for e in stored] == [(text, name)]  # type: ignore[union-attr]
    assert [(m["text"], m["author"]) for m in shown] == [(text, name)]
    assert INJECTION in alert.text or INJECTION in alert.title
    tables = {r[0] for r in sqlite3.connect(tmp_path / "s.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "mentions", "alerts", "deliveries"} <= tables
    log_line = json.loads((tmp_path / "alerts.jsonl").read_text(encoding="utf-8"))
    assert INJECTION in json.dumps(log_line, ensure_ascii=False)


SHELL_CALLS = {"system", "popen", "spawnl", "spawnv", "execv", "execl", "execvp",
               "create_subprocess_shell", "create_subprocess_exec", "getoutput"}


def test_no_product_module_runs_a_shell_or_a_subprocess() -> None:
    """Post text cannot reach a shell: nothing in monitor/, alerts/ or rules/ starts one."""
    found = []
    files = [p for d in ("monitor", "alerts", "rules") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 50
    for path in files:
        source = path.read_text(encoding="utf-8")
        if not any(word in source for word in ("subprocess", "pty", *SHELL_CALLS)):
            continue  # cannot contain one: skip the (slow) parse
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if any(m.split(".")[0] in ("subprocess", "pty") for m in mods):
                    found.append(f"{path.name}:{node.lineno} imports {mods}")
            elif isinstance(node, ast.Attribute) and node.attr in SHELL_CALLS:
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert found == []
