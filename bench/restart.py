"""Restart cost against history: N posts into the live daemon, then restarts.

    python bench/restart.py [--posts 100000 300000 1000000] [--keep DIR]

For each N, one command, real processes, wall clock:

1. A synthetic feed of N posts (``bench/synth.py``: 100,000 a day from the real Weibo
   texts of ``../shared/data/sentiment``, read, never copied; three brands, 15 % mentions,
   40 % answered, a burst, reposts), as many days as it takes.
2. ``crisismon run`` plays it from a feed source at full speed (``--speed``: its clock
   offers more posts per second than the daemon takes in; "clock ahead" says how far
   the daemon's clock ended past the last post), default retention (14 days). Measured:
   ingest time (start to every post stored), peak RSS while ingesting (``VmHWM``).
3. ``kill -9`` once every post is stored; start again: time to ``/readyz`` (the events
   after the last engine snapshot are fed again). SIGTERM; start again: time to
   ``/readyz`` after a clean stop, RSS once ready; the state's size on disk.
4. Start once more with ``store.retention = "1d"`` and no input: the first retention pass
   (10 s after start) deletes everything but the last day; its rows, time, longest chunk
   (one transaction: the longest the loop waits on it) and the event loop's worst lag
   while it ran (the daemon's own ``LagWatch``, logged; the alert-log backlog the firehose
   left is marked delivered first, so the outbox is idle and every old alert may go); the
   size on disk after (SQLite keeps the freed pages for new rows: the file stops growing
   rather than shrinking).

Prints one table; figures are noisy on a shared machine, so the load average is printed
with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import synth  # noqa: E402

PER_DAY = 100_000
DAY = 86_400.0
TOKEN = "bench-restart-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_feed(path: Path, posts: int, texts: tuple[list[str], list[str]]) -> int:
    """``posts`` posts as consecutive synthetic days; returns the lines written."""
    lines, day = 0, 0
    base = synth.DAY0
    with path.open("w", encoding="utf-8") as fh:
        while posts > 0:
            n = min(PER_DAY, posts)
            synth.DAY0 = base + day * DAY  # make_day reads it when called
            shift = day * 10_000_000_000
            for row in synth.make_day(n, seed=20260520 + day, burst=min(600, n // 10),
                                      texts=texts):
                row["id"] += shift
                for ref in ("retweeted_status", "status"):
                    if ref in row:
                        row[ref] = {"id": row[ref]["id"] + shift}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                lines += 1
            posts -= n
            day += 1
    synth.DAY0 = base
    return lines


def write_config(folder: Path, feed: Path, port: int, retention: str, speed: float,
                 source: bool = True) -> Path:
    """The bench's config; ``source`` False: no input at all (the retention pass then
    runs alone, and the loop lag measured during it is its own)."""
    cfg = folder / "config.toml"
    feed_source = f"""
[[sources]]
type = "feed"
name = "feed"
path = "{feed}"
speed = {speed}
""" if source else ""
    cfg.write_text(synth.brand_config() + f"""
[store]
path = "var/crisismon.db"
retention = "{retention}"
[alerts]
terminal = false
log = "var/alerts.jsonl"
[http]
listen = "127.0.0.1:{port}"
token = "env:BENCH_TOKEN"
[log]
format = "json"
stream = "stderr"
{feed_source}""", encoding="utf-8")
    return cfg


class Run:
    """One life of the daemon."""

    def __init__(self, cfg: Path, log: Path) -> None:
        self.port = int(cfg.read_text().split('listen = "127.0.0.1:')[1].split('"')[0])
        self.log = log
        self.started = time.monotonic()
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)],
                cwd=cfg.parent, stdout=subprocess.DEVNULL, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_TOKEN": TOKEN})

    def ready(self, timeout: float = 600.0) -> float:
        """Seconds from start to the first 200 on ``/readyz``."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        while time.monotonic() - self.started < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited ({self.proc.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"not ready after {timeout}s; see {self.log}")

    def status(self, field: str) -> int:
        """A ``/proc/PID/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)


def stored(db: Path) -> int:
    """Lines the feed source has submitted (its cursor), read beside the daemon."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = con.execute("SELECT value FROM cursors WHERE source = 'feed'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return -1
    return int(row[0].split("@")[0]) if row else 0


def clock_of(db: Path) -> float:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return float(con.execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()[0])
    finally:
        con.close()


def last_created(feed: Path) -> float:
    from monitor.feed import parse_line

    with feed.open("rb") as fh:
        fh.seek(max(0, feed.stat().st_size - 4096))
        line = fh.read().splitlines()[-1]
    event = parse_line(line, str(feed), 0, "")
    return float(getattr(event, "created_at"))  # noqa: B009 - a BadLine has none: fail


def disk_mb(folder: Path) -> float:
    """The state's size: the store, its log and the snapshot files beside it."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def life_lines(log: Path, event: str) -> list[str]:
    return [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.startswith("{") and f'"event": "{event}"' in line]


def last_log(log: Path, event: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("event") == event:
                found = rec
    return found


def bench(posts: int, folder: Path, texts: tuple[list[str], list[str]],
          speed: float) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    feed = folder / "feed.jsonl"
    lines = write_feed(feed, posts, texts)
    port = free_port()
    cfg = write_config(folder, feed, port, "14d", speed)
    var, db = folder / "var", folder / "var" / "crisismon.db"
    load0 = os.getloadavg()[0]
    out: dict[str, Any] = {"posts": posts, "lines": lines}

    life = Run(cfg, folder / "daemon.log")
    while stored(db) < lines:
        if life.proc.poll() is not None:
            raise SystemExit(f"daemon exited; see {life.log}")
        time.sleep(0.5)
    out["ingest_s"] = time.monotonic() - life.started
    out["peak_rss_mb"] = life.status("VmHWM") / 1024
    life.stop(signal.SIGKILL)
    out["clock_ahead_h"] = (clock_of(db) - last_created(feed)) / 3600

    again = Run(cfg, folder / "daemon.log")
    out["ready_after_kill_s"] = again.ready()
    out["refed_after_kill"] = last_log(again.log, "state rebuilt").get("events")
    again.stop()
    third = Run(cfg, folder / "daemon.log")
    out["ready_s"] = third.ready()
    time.sleep(1.0)
    out["rss_after_restart_mb"] = third.status("VmRSS") / 1024
    third.stop()
    out["disk_mb"] = disk_mb(var)

    write_config(folder, feed, port, "1d", speed, source=False)
    # The firehose left the alert log far behind (it delivers a few hundred a second);
    # marked delivered here, so the pass runs with an idle outbox and may delete them all.
    con = sqlite3.connect(db)
    con.execute("UPDATE deliveries SET state = 'delivered' WHERE state = 'pending'")
    con.commit()
    con.close()
    pruning = Run(cfg, folder / "daemon.log")
    pruning.ready()
    deadline = time.monotonic() + 300
    while not (rec := last_log(pruning.log, "retention: old rows deleted")) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    pruning.stop()
    out["snapshot_s"] = max((json.loads(line).get("seconds", 0) for line in
                             life_lines(folder / "daemon.log", "engine snapshot stored")),
                            default=None)
    out["pruned_rows"] = rec.get("rows")
    out["prune_s"] = rec.get("seconds")
    out["prune_lag_ms"] = rec.get("max_loop_lag_ms")
    out["prune_chunk_ms"] = rec.get("longest_chunk_ms")
    out["disk_after_prune_mb"] = disk_mb(var)
    out["load"] = f"{load0:.1f}/{os.getloadavg()[0]:.1f}"
    return out


COLUMNS = [("posts", "posts", "{:,}"), ("ingest_s", "ingest s", "{:.0f}"),
           ("clock_ahead_h", "clock ahead h", "{:.1f}"),
           ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
           ("ready_after_kill_s", "ready after kill -9 s", "{:.2f}"),
           ("refed_after_kill", "events re-fed", "{}"), ("ready_s", "ready s", "{:.2f}"),
           ("rss_after_restart_mb", "RSS after restart MB", "{:.0f}"),
           ("disk_mb", "disk MB", "{:.0f}"), ("snapshot_s", "longest snapshot s", "{}"),
           ("pruned_rows", "pruned rows", "{}"),
           ("prune_s", "prune s", "{}"), ("prune_chunk_ms", "longest prune chunk ms", "{}"),
           ("prune_lag_ms", "max loop lag ms", "{}"),
           ("disk_after_prune_mb", "disk after prune MB", "{:.0f}"),
           ("load", "load avg start/end", "{}")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--keep", type=Path, help="keep the runs' folders here")
    ap.add_argument("--speed", type=float, default=3000.0,
                    help="feed clock speed (default 3000: ~3,500 posts/s offered, more than "
                         "the daemon takes in, so it ingests at full speed while its clock "
                         "stays near the posts' time)")
    args = ap.parse_args()
    texts = synth.load_texts()
    top = args.keep or Path(tempfile.mkdtemp(prefix="crisismon-restart-"))
    rows = []
    try:
        for n in args.posts:
            rows.append(bench(n, top / f"n{n}", texts, args.speed))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(top, ignore_errors=True)
    print()
    print(" | ".join(title for _, title, _ in COLUMNS))
    for row in rows:
        print(" | ".join(fmt.format(row[key]) if row.get(key) is not None else "-"
                         for key, _, fmt in COLUMNS))
    ok = all(r["ready_s"] <= 5 and r["ready_after_kill_s"] <= 5 and r["peak_rss_mb"] < 1024
             for r in rows)
    print("PASS" if ok else "FAIL", "(ready <= 5 s after a clean stop and after kill -9; "
          "peak RSS < 1 GB)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
