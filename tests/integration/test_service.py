"""``crisismon run`` under a (fake) systemd: sd_notify, health/metrics, SIGHUP, SIGTERM.

Real child processes, a real notify socket, real HTTP on a free port. Time: the feed runs
on a ScaledClock (speed 10), so a 90 s warning falls 9 wall seconds after start.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.fixtures.service import (
    BRAND_A,
    BRAND_B,
    T0,
    Daemon,
    NotifySocket,
    config_text,
    free_port,
    post,
    read_alerts,
    write_feed,
)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(body: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    head = f"{name}{{{want}}}" if labels else name
    for line in body.splitlines():
        if line.startswith(head + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{head} not in metrics:\n{body}")


def test_notify_health_metrics_and_sigterm(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "feed.jsonl", [
        post("1", T0, "小满咖啡的外卖又送错了，太差劲了"),
        post("2", T0 + 1, "今天天气不错"),
    ])
    port = free_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(feed, 10, http=f"127.0.0.1:{port}"), encoding="utf-8")
    sock = NotifySocket()
    d = Daemon(cfg, {"NOTIFY_SOCKET": sock.name, "WATCHDOG_USEC": "400000"})
    try:
        ready = sock.wait_for("READY", "1")
        assert "pending deadlines" in ready["STATUS"]
        base = f"http://127.0.0.1:{port}"
        assert get(base + "/healthz")[0] == 200
        status, body = get(base + "/readyz")
        assert status == 200, body
        assert json.loads(body)["ready"] is True
        # The mention is at T0 (the clock's start): wait until it has been paged.
        end = time.monotonic() + 15
        while time.monotonic() < end:
            body = get(base + "/metrics")[1]
            if 'crisismon_alerts_total{brand="小满咖啡",type="mention.new"}' in body \
                    and 'crisismon_posts_ingested_total{source="feed0:' + str(feed) + '"} 2' \
                    in body:
                break
            time.sleep(0.1)
        assert metric(body, "crisismon_posts_ingested_total",
                      source=f"feed0:{feed}") == 2
        assert metric(body, "crisismon_mentions_total", brand="小满咖啡") == 1
        assert metric(body, "crisismon_alerts_total", type="mention.new", brand="小满咖啡") == 1
        assert metric(body, "crisismon_pending_deadlines") == 1
        assert metric(body, "crisismon_open_incidents", brand="小满咖啡") == 0
        assert metric(body, "crisismon_ready") == 1
        assert "crisismon_event_loop_lag_seconds" in body
        assert "crisismon_poll_lag_seconds" in body
        # The API still needs the token; the ops paths do not.
        assert get(base + "/api/does-not-matter")[0] == 401
        # Watchdog pings at half WATCHDOG_USEC: expect several in a second.
        n0 = sum("WATCHDOG" in m for m in sock.messages)
        time.sleep(1.0)
        pings = sum("WATCHDOG" in m for m in sock.messages) - n0
        assert 3 <= pings <= 7, pings
        t = time.monotonic()
        assert d.stop() == 0
        stop_s = time.monotonic() - t
        sock.wait_for("STOPPING", "1", timeout=1)
        assert stop_s < 10, stop_s
    finally:
        d.kill()
        sock.close()


def test_sighup_reloads_brands_and_keeps_pending_deadline(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "feed.jsonl", [
        post("1", T0, "小满咖啡的外卖又送错了，太差劲了"),       # arms a 90 s warning
        post("2", T0 + 60, "大熊奶茶的珍珠是硬的，太失望了"),   # a brand added by the reload
    ])
    cfg = tmp_path / "config.toml"
    sla = 'warn_at = "90s"\nreply_within = "10m"\nescalate_after = "30m"'
    cfg.write_text(config_text(feed, 10, sla=sla), encoding="utf-8")
    sock = NotifySocket()
    d = Daemon(cfg, {"NOTIFY_SOCKET": sock.name})
    try:
        sock.wait_for("READY", "1")
        assert d.proc.poll() is None
        cfg.write_text(config_text(feed, 10, sla=sla, brands=BRAND_A + BRAND_B),
                       encoding="utf-8")
        n = len(sock.messages)
        d.signal(signal.SIGHUP)
        rec = d.wait_event("config reloaded", timeout=5)
        assert rec["added"] == ["大熊奶茶"]
        assert rec["pending_deadlines"] == 1  # post 1's warning is still armed
        sock.wait_for("RELOADING", "1", after=n, timeout=2)

        # An invalid config is refused; the daemon keeps running on the old one.
        cfg.write_text(config_text(feed, 10, sla='warn_at = "soon"'), encoding="utf-8")
        d.signal(signal.SIGHUP)
        refused = d.wait_event("config reload refused; keeping the running config", timeout=5)
        assert any("sla.warn_at" in p for p in refused["problems"])  # type: ignore[union-attr]
        time.sleep(0.3)
        assert d.proc.poll() is None

        # T0 + 90 s (9 wall seconds in): the warning that was pending before the reload.
        alerts_path = tmp_path / "var" / "alerts.jsonl"
        end = time.monotonic() + 20
        while time.monotonic() < end:
            got = {(a["type"], a["brand"], a["post_id"]) for a in read_alerts(alerts_path)}
            if ("reply.warning", "小满咖啡", "1") in got:
                break
            time.sleep(0.2)
        assert ("mention.new", "小满咖啡", "1") in got
        assert ("mention.new", "大熊奶茶", "2") in got  # matched thanks to the reload
        assert ("reply.warning", "小满咖啡", "1") in got
        assert d.stop() == 0
    finally:
        d.kill()
        sock.close()


def test_sighup_says_a_changed_digest_needs_a_restart(tmp_path: Path) -> None:
    """The digest task keeps the schedules it started with (docs/reports.md): a reload
    that adds or changes a [[digests]] entry must say it was not applied, not just
    "config reloaded" while nothing will ever send it."""
    feed = write_feed(tmp_path / "feed.jsonl", [post("1", T0, "小满咖啡的外卖又送错了")])
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(feed, 10), encoding="utf-8")
    sock = NotifySocket()
    d = Daemon(cfg, {"NOTIFY_SOCKET": sock.name})
    try:
        sock.wait_for("READY", "1")
        digest = '[[digests]]\nname = "daily"\ncron = "0 9 * * *"\nchannels = ["terminal"]'
        cfg.write_text(config_text(feed, 10, extra=digest), encoding="utf-8")
        d.signal(signal.SIGHUP)
        d.wait_event("config reloaded", timeout=5)
        kept = d.wait_event("config changes that need a restart were not applied", timeout=5)
        assert kept["sections"] == ["digests"]
        assert d.stop() == 0
    finally:
        d.kill()
        sock.close()
