"""``crisismon run`` as a process: alerts fall due, SIGTERM stops it, a restart resends none."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
T = "2026-05-20T10:00:{:02d}+08:00"


def feed_lines() -> list[dict[str, object]]:
    user = {"id": 42, "screen_name": "顾客", "followers_count": 10, "verified": False}
    return [
        {"id": "1", "created_at": T.format(0), "text": "小满咖啡的外卖又送错了，太差劲了[怒]",
         "user": user, "reposts_count": 0, "comments_count": 0, "attitudes_count": 0},
        {"id": "2", "created_at": T.format(5), "text": "小满咖啡的拿铁很好喝[哈哈]", "user": user,
         "reposts_count": 0, "comments_count": 0, "attitudes_count": 0},
        {"id": "3", "created_at": T.format(30), "text": "您好，已为您安排补送",
         "user": {"id": "7000000002", "screen_name": "小满咖啡客服"}, "status": {"id": "2"},
         "reposts_count": 0, "comments_count": 0, "attitudes_count": 0},
    ]


def write_config(tmp: Path, speed: float) -> Path:
    feed = tmp / "feed.jsonl"
    feed.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in feed_lines()),
                    encoding="utf-8")
    base = (ROOT / "config.toml").read_text(encoding="utf-8")
    base = base.replace('path = "seeds/feeds/sample_day.jsonl"', f'path = "{feed}"')
    base = base.replace("speed = 60 ", f"speed = {speed} ")
    base += "\n[http]\nenabled = false\n"  # no fixed port shared between test runs
    cfg = tmp / "config.toml"
    cfg.write_text(base, encoding="utf-8")
    return cfg


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """Lines of a child's stream, read on a thread so the test can wait with a timeout."""
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put("")

    threading.Thread(target=pump, daemon=True).start()
    return q


def wait_for(q: queue.Queue[str], needle: str, timeout: float = 60.0) -> list[str]:
    seen: list[str] = []
    while True:
        line = q.get(timeout=timeout)
        if not line:
            raise AssertionError(f"stream ended before {needle!r}; saw {seen}")
        seen.append(line)
        if needle in line:
            return seen


def start(cfg: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)],
                            cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_run_pages_then_stops_on_sigterm_and_restarts_without_resending(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, speed=300)  # 15 simulated minutes in 3 wall seconds
    proc = start(cfg)
    try:
        out = lines_of(proc.stdout)  # type: ignore[arg-type]
        seen = wait_for(out, "reply.escalated")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    types = [line.split()[3] for line in seen if line.strip()]
    assert types == ["mention.new", "mention.new", "reply.warning", "reply.breach",
                     "reply.escalated"]
    log = [json.loads(x) for x in (tmp_path / "var" / "alerts.jsonl").read_text(
        encoding="utf-8").splitlines()]
    assert [a["type"] for a in log] == types
    assert [a["at"] for a in log[2:]] == [T.format(0).replace("10:00:00", t)
                                          for t in ("10:03:00", "10:05:00", "10:15:00")]

    again = start(cfg)
    try:
        err = lines_of(again.stderr)  # type: ignore[arg-type]
        wait_for(err, "crisismon started")
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
        rest = again.stdout.read()  # type: ignore[union-attr]
    finally:
        again.kill()
    assert rest.strip() == ""  # nothing was sent a second time
    assert len((tmp_path / "var" / "alerts.jsonl").read_text(encoding="utf-8").splitlines()) == 5


def test_invalid_config_is_refused_before_start(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[brands]]\nname = "x"\nkeywords = ["x"]\n[sla]\nwarn_at = "soon"\n',
                   encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert run.returncode == 2
    assert 'sla.warn_at: "soon" is not a duration' in run.stderr
