"""Two real ``crisismon run`` processes share one feed and one PostgreSQL schema.

The real Mosquitto splits the feed between them (MQTT 5 shared subscription); both store
into one fresh schema on the real PostgreSQL 15 (127.0.0.1:5432, database ``test``).
Checked: the lease holder alone pages, every alert is recorded and delivered exactly once
(the two alert logs together), and after the holder is SIGKILLed the survivor takes its
brands over within ``lease_ttl`` (+ one renewal period + margin) and fires the pending
deadlines of the posts the dead one had ingested.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.publish as publish
import psycopg
import pytest

from tests.fixtures.pg import DSN  # the `schema` fixture: tests/fixtures/pg.py
from tests.fixtures.service import (
    BRAND_A,
    BRAND_B,
    Daemon,
    NotifySocket,
    free_port,
    read_alerts,
)

TTL = 3.0
RENEW = TTL / 3
BRANDS = ("小满咖啡", "大熊奶茶")


def instance_config(root: Path, name: str, schema: str, topic: str,
                    broker: tuple[str, int]) -> tuple[Path, int]:
    """One instance's folder and config; returns the config path and its HTTP port."""
    folder = root / name
    folder.mkdir()
    port = free_port()
    cfg = folder / "config.toml"
    cfg.write_text(f"""
timezone = "Asia/Shanghai"
[sla]
warn_at = "3s"
reply_within = "5s"
[store]
backend = "postgres"
dsn = "{DSN}"
schema = "{schema}"
lease_ttl = "{TTL:g}s"
instance = "{name}"
catch_up_every = "250ms"
[[sources]]
type = "mqtt"
name = "mqtt-{name}"
topics = ["{topic}"]
host = "{broker[0]}"
port = {broker[1]}
client_id = "crisismon-{name}-{secrets.token_hex(4)}"
share_group = "crisismon"
session_expiry = "0s"
[alerts]
terminal = false
log = "var/alerts.jsonl"
[http]
listen = "127.0.0.1:{port}"
token = "test-token"
[log]
format = "json"
{BRAND_A}
{BRAND_B}
""", encoding="utf-8")
    return cfg, port


def wait_ready(daemon: Daemon, sock: NotifySocket, port: int) -> None:
    """READY=1, then /readyz 200 (the MQTT source is subscribed)."""
    daemon.wait_ready(sock)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"instance on :{port} not ready: {daemon.tail()}")


def post(pid: str, brand: str) -> str:
    """A complaint created now (fractional seconds: the deadlines are seconds long)."""
    now = datetime.now(UTC).isoformat()
    return json.dumps({"id": pid, "created_at": now, "text": f"{brand}太难喝了，退钱",
                       "user": {"id": "42", "screen_name": "u42", "followers_count": 10,
                                "verified": False},
                       "reposts_count": 0, "comments_count": 0, "attitudes_count": 0},
                      ensure_ascii=False)


def query(schema: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}".encode())
        return list(conn.execute(sql.encode()).fetchall())


def wait_until(what: str, check: object, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sources_of(schema: str, ids: list[str]) -> dict[str, str]:
    """Post id -> the instance's source that ingested it."""
    rows = query(schema, "SELECT body FROM events WHERE kind = 'post'")
    bodies = [json.loads(bytes(b)) for (b,) in rows]  # type: ignore[arg-type]
    return {b["id"]: b["source"] for b in bodies if b["id"] in ids}


def settled(schema: str, n_alerts: int) -> bool:
    """``n_alerts`` recorded and none of their deliveries still pending."""
    alerts = query(schema, "SELECT COUNT(*) FROM alerts")[0][0]
    pending = query(schema, "SELECT COUNT(*) FROM deliveries WHERE state <> 'delivered'")
    return alerts == n_alerts and pending[0][0] == 0


def test_two_daemons_share_the_feed_and_take_over(tmp_path: Path, schema: str,
                                                  mqtt_broker: tuple[str, int],
                                                  mqtt_protocol: str) -> None:
    if mqtt_protocol != "5":
        pytest.skip("shared subscriptions need an MQTT 5 broker (Mosquitto)")
    topic = f"crisismon-test/{secrets.token_hex(6)}/posts"
    cfg_a, port_a = instance_config(tmp_path, "a", schema, topic, mqtt_broker)
    cfg_b, port_b = instance_config(tmp_path, "b", schema, topic, mqtt_broker)
    sock_a, sock_b = NotifySocket(), NotifySocket()
    a = Daemon(cfg_a, {"NOTIFY_SOCKET": sock_a.name})
    b = None
    try:
        wait_ready(a, sock_a, port_a)  # a starts first: it claims both brands
        b = Daemon(cfg_b, {"NOTIFY_SOCKET": sock_b.name})
        wait_ready(b, sock_b, port_b)
        assert dict(query(schema, "SELECT brand, owner FROM leases")) == \
            {brand: "a" for brand in BRANDS}

        def send(ids: list[str]) -> None:
            publish.multiple([{"topic": topic, "payload": post(pid, BRANDS[i % 2]), "qos": 1}
                              for i, pid in enumerate(ids)],
                             hostname=mqtt_broker[0], port=mqtt_broker[1])

        # 1. Both instances ingest; only the lease holder pages, each alert once.
        first = [f"91000{i}" for i in range(4)]
        send(first)
        wait_until("4 mentions x (new, warning, breach)", lambda: settled(schema, 12), 15)
        got = sources_of(schema, first)
        assert set(got.values()) == {"mqtt-a", "mqtt-b"}, got  # the feed was shared
        log_a, log_b = tmp_path / "a/var/alerts.jsonl", tmp_path / "b/var/alerts.jsonl"
        assert read_alerts(log_b) == []  # b holds no brand: it pages for none
        types = Counter(r["type"] for r in read_alerts(log_a))
        assert types == {"mention.new": 4, "reply.warning": 4, "reply.breach": 4}

        # 2. New posts, paged as new by a; then a dies before their deadlines.
        second = [f"92000{i}" for i in range(4)]
        send(second)
        wait_until("4 more mention.new delivered", lambda: settled(schema, 16), 10)
        assert "mqtt-a" in sources_of(schema, second).values()  # a had ingested some
        assert len(read_alerts(log_b)) == 0
        killed = time.monotonic()
        a.kill()
        taken = b.wait_event("brands taken over", timeout=TTL + RENEW + 5)
        takeover = time.monotonic() - killed
        print(f"\ntakeover {takeover:.2f}s after SIGKILL (lease_ttl {TTL:g}s)")
        assert sorted(taken["brands"]) == sorted(BRANDS)  # type: ignore[arg-type]
        assert takeover <= TTL + RENEW + 1.0
        wait_until("the dead instance's pending deadlines", lambda: settled(schema, 24), 10)

        # 3. Every alert recorded once and delivered once, over both instances.
        combined = read_alerts(log_a) + read_alerts(log_b)
        ids = [r["id"] for r in combined]
        assert len(ids) == len(set(ids)) == 24
        assert set(ids) == {r[0] for r in query(schema, "SELECT id FROM alerts")}
        late = Counter((r["type"], r["post_id"] in second) for r in read_alerts(log_b))
        assert late == {("reply.warning", True): 4, ("reply.breach", True): 4}
        assert dict(query(schema, "SELECT brand, owner FROM leases")) == \
            {brand: "b" for brand in BRANDS}
        assert b.stop() == 0
        assert query(schema, "SELECT COUNT(*) FROM leases")[0][0] == 0  # released at stop
    finally:
        a.kill()
        if b is not None:
            b.kill()
        sock_a.close()
        sock_b.close()
