"""Soak: kill -9 a live ``crisismon run`` many times; nothing lost, nothing sent twice.

    python bench/soak.py [--kills 20] [--seed 7] [--speed 10] [--posts 300] [--keep DIR]

1. Builds a deterministic recorded feed from ``--seed``: ``--posts`` posts over a few
   simulated minutes for two brands (praise, comments, a post naming both, complaints,
   pure reposts, noise), official replies in time, after the warning and after the
   breach, two replies that argue, private and public resolves, an ack, a burst of
   complaints that opens a crisis for one brand and a poisoning post that opens one for
   the other (with an official statement). The reply ladder runs in seconds and the
   crisis window in minutes (config), so every deadline falls inside the run.
2. Reference: ``crisismon replay FEED --speed max`` with the same config.
3. Live: ``crisismon run`` plays the feed on a scaled clock (``--speed`` simulated
   seconds per wall second) under a fake systemd (``NOTIFY_SOCKET``). It is SIGKILLed
   ``--kills`` times at seeded-random delays, so kills land mid-ingest, mid-delivery,
   during commits and (about one in five) during start-up and the rebuild; it is restarted
   each time, then left to finish and stopped with SIGTERM.
4. Compares the live store and alert log with the reference and prints PASS/FAIL per
   check; exits 1 if any check fails.

Where the kills land is wall-clock luck and differs between runs; what is compared does
not depend on it: alert ids and types (an id is derived from the facts, never from the
time of detection), the reply deadlines' ``at`` (from ``created_at``), the mentions and
their reply state, the stored events. ``at`` of ``mention.new`` and of the crisis alerts
is the live clock's and is not compared. The feed keeps every official reply at least
10 simulated seconds away from the deadline it beats, and the crisis triggers well inside
their windows, so wall-clock jitter of under a second (at the default speed) cannot
change an outcome either.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.kill9 import (  # noqa: E402 - needs the repository on sys.path
    FAST_SLA,
    alert_keys,
    duplicated,
    read_alert_log,
    replay_reference,
    undelivered,
)
from tests.fixtures.service import (  # noqa: E402
    BRAND_A,
    BRAND_B,
    T0,
    Daemon,
    NotifySocket,
    config_text,
    iso,
    post,
    write_feed,
)

A, A_OFFICIAL = "小满咖啡", "7000000001"  # as in BRAND_A / BRAND_B of the fixtures
B, B_OFFICIAL = "大熊奶茶", "7000000009"
CRISIS = """[crisis]
window = ["2m", "3m"]
checkpoints = ["1m", "2m", "3m"]
statement_due = "90s"
burst_window = "60s"
baseline_floor_per_hour = 60.0
close_check_every = "30s"
"""
"""The 12-24 h window squeezed into minutes. The baseline floor of 60 negatives an hour
lets an incident close at its window's end (at most 1.5 x 60 negatives in the last hour)
while a burst still needs 6 negatives in a minute."""

PRAISE = ["{b}的拿铁很好喝，推荐", "今天的{b}真香，开心[哈哈]", "{b}新品不错，还会再来",
          "和朋友在{b}聊了一下午，很惬意", "{b}店员小姐姐很热情，赞"]
COMPLAINT = ["{b}外卖又送错了，太差劲", "{b}等了一个小时还没到，气死了，再也不买",
             "{b}杯盖又漏了，洒了一身，服务太差", "{b}态度恶劣，退款也不给，垃圾"]
BOTH = "今天{a}和{b}都喝了，开心[哈哈]"
NOISE = ["晚饭吃了火锅，好满足", "地铁好挤啊", "新买的耳机音质不错", "周末去爬山，风景真好",
         "今天天气不错"]
DANGER = "喝了{b}之后拉肚子，怀疑食物中毒"
REPLIES = ["您好，已为您安排补送", "抱歉给您带来不便，马上处理", "感谢支持，欢迎再来"]
ARGUMENT = "您好，这不是我们的问题，请你看说明书"
STATEMENT = "{b}关于近期食品安全反馈的说明：已暂停相关门店并送检"

# After created_at: (earliest, latest) second of an official reply. Each range keeps 8 s
# or more from the deadlines of FAST_SLA (30 s warning, 60 s breach, 120 s escalation).
REPLY_IN_TIME = (5, 20)
REPLY_AFTER_WARNING = (38, 52)
REPLY_AFTER_BREACH = (72, 105)
WINDOW_END = 180
"""The crisis window's end (``CRISIS``): an incident closes this long after it opened."""
QUIET = (-2, 20)
"""No mention this close (simulated seconds) to an incident's close: the close falls at
``opened_at`` + the window, and ``opened_at`` is the live clock's when it handles the
trigger, a little after the post; a mention in between would be attached to the incident
live but not in the replay."""
DEADLINE_TYPES = ("reply.warning", "reply.breach", "reply.escalated",
                  "resolution.not_public")
"""Alerts whose ``at`` is a deadline from ``created_at``, the same live and replayed."""
EVERY_TYPE = ("mention.new", "reply.warning", "reply.breach", "reply.escalated",
              "reply.argument", "resolution.not_public", "crisis.opened",
              "crisis.checkpoint", "crisis.escalated", "crisis.closed")
STARTUP_KILLS = 0.2
"""Share of kills aimed at start-up (store open, rebuild, re-sending the unsent)."""


# ----------------------------------------------------------------------------- the feed
@dataclass
class Feed:
    """The recorded feed and what went into it."""

    lines: list[dict[str, object]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    span: int = 0
    """Simulated seconds from the first post to the last."""

    def add(self, kind: str, line: dict[str, object]) -> None:
        self.kinds[kind] += 1
        self.lines.append(line)


def make_feed(posts: int, seed: int) -> Feed:
    """``posts`` posts (plus replies and actions) over ~1.2 s each, from ``seed``."""
    rng = random.Random(seed)
    feed = Feed(span=max(240, round(posts * 1.2)))
    span = feed.span
    t_burst, t_danger = round(span * 0.4), round(span * 0.6)
    # A's incident opens on the burst's 6th complaint (10 s in), B's on the danger post.
    closes = (t_burst + 10 + WINDOW_END, t_danger + WINDOW_END)

    def quiet(t: int) -> bool:
        return any(c + QUIET[0] <= t <= c + QUIET[1] for c in closes)

    n = 0

    def pid() -> str:
        nonlocal n
        n += 1
        return f"s{seed}-{n}"

    def user() -> str:
        return str(rng.randrange(100_000, 999_999))

    needing: list[tuple[str, float, str]] = []  # (post id, created, brand) needing a reply
    praised: list[tuple[str, str]] = []  # (id, text) of statuses a pure repost may quote
    noise: list[tuple[str, float]] = []
    # Complaints: scattered ones (never 6 in a minute), none in the 90 s before A's burst,
    # so the burst's 6th complaint is what opens A's incident whatever the live clock says.
    for i, t in enumerate(range(10, span, 45)):
        brand = (A, B)[i % 2]
        if (brand == A and t_burst - 90 <= t < t_burst + 20) or quiet(t):
            continue
        mid = pid()
        feed.add("complaint", post(mid, T0 + t, rng.choice(COMPLAINT).format(b=brand),
                                   user=user()))
        needing.append((mid, T0 + t, brand))
    for i in range(10):  # A's burst: 10 complaints in 18 s
        mid, t = pid(), T0 + t_burst + 2 * i
        feed.add("burst complaint", post(mid, t, COMPLAINT[i % 4].format(b=A), user=user()))
        needing.append((mid, t, A))
    mid = pid()  # B's danger post: an incident at once; a statement 40 s later
    feed.add("danger complaint", post(mid, T0 + t_danger, DANGER.format(b=B), user=user()))
    needing.append((mid, T0 + t_danger, B))
    feed.add("official statement", post(pid(), T0 + t_danger + 40, STATEMENT.format(b=B),
                                        user=B_OFFICIAL))
    rest = posts - len(feed.lines)
    for t in sorted(rng.randrange(0, span) for _ in range(rest)):
        at, roll = T0 + t, rng.random()
        brand = A if rng.random() < 0.6 else B
        if roll < 0.35 or (roll < 0.45 and not noise) or quiet(t):
            nid = pid()
            feed.add("noise", post(nid, at, rng.choice(NOISE), user=user()))
            noise.append((nid, at))
        elif roll < 0.45:  # a comment mentioning the brand under someone's status
            mid = pid()
            parent = rng.choice(noise)[0]
            feed.add("comment mention", post(mid, at, rng.choice(PRAISE).format(b=brand),
                                             user=user(), status={"id": parent}))
            needing.append((mid, at, brand))
        elif roll < 0.50:  # one post, two brands: two mentions, two clocks
            mid = pid()
            feed.add("two-brand mention", post(mid, at, BOTH.format(a=A, b=B), user=user()))
            needing += [(mid, at, A), (mid, at, B)]
        elif roll < 0.65 and praised:  # pure repost: volume, no reply clock
            orig, quoted = rng.choice(praised)
            text = "转发微博" if rng.random() < 0.5 else f"转发微博//@u:{quoted}"
            feed.add("pure repost", post(pid(), at, text, user=user(),
                                         retweeted_status={"id": orig}))
        else:
            mid, text = pid(), rng.choice(PRAISE).format(b=brand)
            feed.add("mention", post(mid, at, text, user=user()))
            needing.append((mid, at, brand))
            praised.append((mid, text))
    _answer(feed, rng, needing, pid)
    feed.lines.sort(key=lambda x: str(x["created_at"]))
    return feed


def _answer(feed: Feed, rng: random.Random, needing: list[tuple[str, float, str]],
            new_id: Callable[[], str]) -> None:
    """Official replies (in time, late, argumentative), resolves and an ack."""
    arguments = 2
    actions = {"private resolve": 2, "public resolve": 1, "ack": 1}
    for mid, at, brand in needing:
        official = A_OFFICIAL if brand == A else B_OFFICIAL
        roll = rng.random()
        window = (REPLY_IN_TIME if roll < 0.30 else REPLY_AFTER_WARNING if roll < 0.45
                  else REPLY_AFTER_BREACH if roll < 0.60 else None)
        if window is None:
            kind = next((k for k, left in actions.items() if left), None)
            if kind is not None and rng.random() < 0.3:
                actions[kind] -= 1
                _act(feed, kind, mid, at)
            continue
        text = rng.choice(REPLIES)
        if arguments and window is REPLY_IN_TIME:
            arguments -= 1
            text = ARGUMENT  # in time, yet an alert of its own
        reply_at = at + rng.randint(*window)
        feed.add("official reply", post(new_id(), reply_at, text, user=official,
                                        status={"id": mid}))


def _act(feed: Feed, kind: str, mid: str, at: float) -> None:
    """A responder's move on a mention: a private or public resolve, or an ack."""
    line: dict[str, object] = {"id": f"act-{len(feed.lines)}", "target": mid, "by": "客服小王",
                               "created_at": iso(at + (40 if kind == "ack" else 15))}
    if kind == "ack":
        line["action"] = "ack"
    else:
        line.update(action="resolve", public=kind == "public resolve")
    feed.add(kind, line)


# ----------------------------------------------------------------------------- live runs
@dataclass
class Kill:
    """One SIGKILL and the state it left behind."""

    aimed: str
    """"start-up" (a delay from spawn); "random", "line" or "deadline" (a delay after
    READY: at random, or just after a feed line or an alert of the reference fell due)."""
    delay: float
    ready: bool
    """Whether READY=1 had come before the kill."""
    sim: float = 0.0
    cursor: int = 0
    stored: int = 0
    logged: int = 0
    backlog: int = 0


@dataclass
class Start:
    """One ``crisismon run`` process."""

    ready_s: float | None = None
    """Spawn to READY=1 (None: killed before it)."""


def spawn(cfg: Path) -> tuple[Daemon, NotifySocket, float]:
    """Start ``crisismon run`` under a fake systemd."""
    sock = NotifySocket()
    return Daemon(cfg, {"NOTIFY_SOCKET": sock.name}), sock, time.monotonic()


def ready_after(d: Daemon, sock: NotifySocket, t0: float, until: float) -> float | None:
    """Seconds from spawn to READY=1, waiting at most until ``until`` (monotonic)."""
    while True:
        if any(m.get("READY") == "1" for m in sock.messages):
            return time.monotonic() - t0
        if d.proc.poll() is not None:
            raise SystemExit(f"soak: crisismon run exited {d.proc.returncode} by itself:\n"
                             f"{d.tail()}")
        if time.monotonic() >= until:
            return None
        time.sleep(0.01)


def snapshot(var: Path, log: Path) -> dict[str, float]:
    """What a killed daemon left: its clock, feed cursor, alerts stored and logged."""
    db_path = var / "crisismon.db"
    if not db_path.exists():
        return {"sim": T0, "cursor": 0, "stored": 0, "backlog": 0,
                "logged": len(read_alert_log(log)[0])}
    db = sqlite3.connect(db_path)
    try:
        clock = db.execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()
        cursor = db.execute("SELECT value FROM cursors").fetchone()
        stored = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    finally:
        db.close()
    return {"sim": float(clock[0]) if clock else T0, "cursor": int(cursor[0]) if cursor else 0,
            "stored": stored, "backlog": undelivered(db_path),
            "logged": len(read_alert_log(log)[0])}


@dataclass
class Plan:
    """How to place the kills."""

    kills: int
    speed: float
    run_wall: float
    """Wall seconds the run takes without kills (simulated span / speed)."""
    lines: list[float]
    """Simulated seconds (from T0) at which feed lines fall due."""
    deadlines: list[float]
    """Simulated seconds (from T0) at which the reference raised alerts, once per alert:
    a moment when many fall due is aimed at more often (more to store and deliver)."""


def aim(plan: Plan, rng: random.Random, sim_now: float, typical_ready: float) -> Kill:
    """Where the next kill goes: during start-up, at a random moment, or just after a
    feed line or a deadline falls due (so it lands in that batch's commit or delivery)."""
    roll = rng.random()
    if roll < STARTUP_KILLS:
        return Kill("start-up", rng.uniform(0.2, typical_ready * 1.1), False)
    # Up to twice the mean share of the run per life: kills fall all along the feed and
    # its deadlines, some after the last line.
    life = 2 * plan.run_wall / plan.kills
    if roll < 0.6:
        moments, name = (plan.lines, "line") if roll < 0.4 else (plan.deadlines, "deadline")
        ahead = [m for m in moments if sim_now + plan.speed * 0.1 < m
                 <= sim_now + life * plan.speed]
        if ahead:  # tens of milliseconds after it falls due: mid-batch, mid-commit, mid-send
            delay = (rng.choice(ahead) - sim_now) / plan.speed + rng.uniform(0.0, 0.08)
            return Kill(name, delay, True)
    return Kill("random", rng.uniform(0.0, life), True)


def soak(cfg: Path, plan: Plan, rng: random.Random) -> tuple[
        list[Kill], list[Start], Daemon, NotifySocket]:
    """Kill ``plan.kills`` times; return the kills, the starts and the last (running)
    daemon."""
    var, log = cfg.parent / "var", cfg.parent / "var" / "alerts.jsonl"
    done: list[Kill] = []
    starts: list[Start] = []
    for _ in range(plan.kills):
        d, sock, t0 = spawn(cfg)
        start = Start()
        starts.append(start)
        try:
            known = [s.ready_s for s in starts if s.ready_s is not None]
            # The clock resumes where the store's stood at the last kill.
            kill = aim(plan, rng, done[-1].sim if done else min(plan.lines),
                       statistics.median(known) if known else 2.0)
            if kill.aimed == "start-up":
                start.ready_s = ready_after(d, sock, t0, t0 + kill.delay)
                time.sleep(max(0.0, t0 + kill.delay - time.monotonic()))
            else:
                start.ready_s = ready_after(d, sock, t0, t0 + 120)
                if start.ready_s is None:
                    raise SystemExit(f"soak: no READY=1 in 120 s:\n{d.tail()}")
                time.sleep(kill.delay)
            if d.proc.poll() is not None:
                raise SystemExit(f"soak: crisismon run exited {d.proc.returncode} before "
                                 f"the kill:\n{d.tail()}")
            if start.ready_s is None:
                start.ready_s = ready_after(d, sock, t0, 0)  # READY in the last instant?
            kill.ready = start.ready_s is not None
            d.proc.kill()  # SIGKILL: no handler, no flush, no close
            d.proc.wait(10)
        finally:
            d.kill()
            sock.close()
        state = snapshot(var, log)
        kill.sim = state["sim"] - T0
        kill.cursor, kill.stored = int(state["cursor"]), int(state["stored"])
        kill.logged, kill.backlog = int(state["logged"]), int(state["backlog"])
        done.append(kill)
    d, sock, t0 = spawn(cfg)
    last = Start(ready_after(d, sock, t0, t0 + 120))
    starts.append(last)
    if last.ready_s is None:
        d.kill()
        raise SystemExit(f"soak: the last start gave no READY=1 in 120 s:\n{d.tail()}")
    return done, starts, d, sock


def finish(d: Daemon, log: Path, expected: set[tuple[str, str]], timeout: float,
           settle: float) -> int:
    """Wait until every expected alert is in the log (or ``timeout``), then ``settle``
    seconds more for stragglers that should not come; SIGTERM. Returns the exit code."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if expected <= set(alert_keys(read_alert_log(log)[0])):
            break
        if d.proc.poll() is not None:
            break
        time.sleep(0.2)
    time.sleep(settle)
    return d.stop(timeout=30)


# ----------------------------------------------------------------------------- comparing
MENTION_STATE = ("brand, post_id, needs_reply, replied_at, replied_by, acked_by, "
                 "private_resolve_at, incident_id")


def db_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """All rows of ``sql`` on the SQLite file ``path``."""
    db = sqlite3.connect(path)
    try:
        return [tuple(r) for r in db.execute(sql)]
    finally:
        db.close()


def incidents(path: Path) -> list[tuple[str, str, str, bool]]:
    """(id, trigger, trigger post, closed) of each stored incident."""
    out = []
    for (body,) in db_rows(path, "SELECT body FROM incidents"):
        rec = json.loads(str(body))
        out.append((rec["id"], rec["trigger"], rec["trigger_post_id"],
                    rec["closed_at"] is not None))
    return sorted(out)


def at_of(alert: dict[str, object]) -> float:
    """An alert's ``at`` as epoch seconds."""
    return datetime.fromisoformat(str(alert["at"])).timestamp()


@dataclass
class Check:
    """One PASS/FAIL line."""

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"  {'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def lost_extra(live: set[object], ref: set[object]) -> str:
    """"N lost, M extra" with the first few of each."""
    lost, extra = sorted(ref - live, key=str), sorted(live - ref, key=str)
    text = f"{len(lost)} lost, {len(extra)} extra"
    if lost:
        text += f"; lost e.g. {lost[:3]}"
    if extra:
        text += f"; extra e.g. {extra[:3]}"
    return text


def compare(live_dir: Path, ref_dir: Path, stop_rc: int) -> list[Check]:
    """Every check of the soak, live (store + alert log) against the reference."""
    live_db, ref_db = live_dir / "var" / "crisismon.db", ref_dir / "state.db"
    checks = []
    ref_alerts, _ = read_alert_log(ref_dir / "alerts.jsonl")
    logged, torn = read_alert_log(live_dir / "var" / "alerts.jsonl")
    covered = sorted(set(EVERY_TYPE) - {str(a["type"]) for a in ref_alerts})
    checks.append(Check("the reference exercises every alert type", not covered,
                        f"missing {covered}" if covered else f"{len(EVERY_TYPE)} types"))

    m_sql = f"SELECT {MENTION_STATE} FROM mentions"
    live_m, ref_m = db_rows(live_db, m_sql), db_rows(ref_db, m_sql)
    live_keys = [(r[0], r[1]) for r in live_m]
    ref_keys = {(r[0], r[1]) for r in ref_m}
    twice = duplicated(f"{b}/{p}" for b, p in live_keys)
    checks.append(Check(
        "mentions: none lost, none twice (store vs reference)",
        set(live_keys) == ref_keys and not twice and len(live_keys) == len(ref_keys),
        f"{len(live_keys)} live, {len(ref_keys)} reference, "
        f"{lost_extra(set(live_keys), ref_keys)}, {len(twice)} twice"))
    checks.append(Check(
        "mention state (reply, ack, resolve, incident) as in the reference",
        set(live_m) == set(ref_m), f"{len(set(live_m) & set(ref_m))}/{len(ref_m)} equal"
        + ("" if set(live_m) == set(ref_m) else f"; {lost_extra(set(live_m), set(ref_m))}")))
    e_sql = "SELECT key FROM events"
    live_e, ref_e = db_rows(live_db, e_sql), db_rows(ref_db, e_sql)
    checks.append(Check(
        "feed events stored once each", set(live_e) == set(ref_e) and
        len(live_e) == len(set(live_e)),
        f"{len(live_e)} live, {len(ref_e)} reference, {lost_extra(set(live_e), set(ref_e))}"))

    ref_deadlines = {(str(a["id"]), str(a["type"]))
                     for a in ref_alerts if str(a["type"]).startswith(
                         ("reply.warning", "reply.breach", "reply.escalated", "resolution.",
                          "crisis."))}
    live_set = set(alert_keys(logged))
    lost = ref_deadlines - live_set
    checks.append(Check(
        "no deadline lost (every reply/resolution/crisis alert of the reference delivered)",
        not lost, f"{len(ref_deadlines) - len(lost)}/{len(ref_deadlines)} delivered"
        + (f"; lost e.g. {sorted(lost)[:3]}" if lost else "")))
    ref_at = {str(a["id"]): at_of(a) for a in ref_alerts if a["type"] in DEADLINE_TYPES}
    live_at = {str(a["id"]): at_of(a) for a in logged if a["type"] in DEADLINE_TYPES}
    wrong = sorted(i for i in ref_at if i in live_at and abs(live_at[i] - ref_at[i]) > 1e-3)
    checks.append(Check(
        "reply deadlines carry the reference's `at`", not wrong,
        f"{len(ref_at) - len(wrong)}/{len(ref_at)} equal" + (f"; e.g. {wrong[:3]}" if wrong
                                                            else "")))
    ref_set = set(alert_keys(ref_alerts))
    checks.append(Check(
        "delivered alert log = reference (id, type)", live_set == ref_set,
        f"{len(live_set)} live, {len(ref_set)} reference, {lost_extra(live_set, ref_set)}"))
    twice = duplicated(a["id"] for a in logged)
    checks.append(Check("no alert id twice in the delivered alert log", not twice,
                        f"{len(logged)} lines, {len(twice)} ids twice"
                        + (f" e.g. {twice[:3]}" if twice else "")
                        + f"; {torn} torn line(s) skipped"))
    stored = db_rows(live_db, "SELECT id, type FROM alerts")
    ds = db_rows(live_db, "SELECT alert_id, channel, COUNT(*) FROM deliveries WHERE rep = 0 "
                          "GROUP BY alert_id, channel HAVING COUNT(*) > 1")
    twice = duplicated(i for i, _ in stored)
    checks.append(Check(
        "no alert id twice in the store; store = reference",
        not twice and not ds and {(str(i), str(t)) for i, t in stored} == ref_set,
        f"{len(stored)} stored, {len(twice)} ids twice, {len(ds)} deliveries twice, "
        f"{lost_extra({(str(i), str(t)) for i, t in stored}, ref_set)}"))
    backlog = undelivered(live_db)
    checks.append(Check("outbox drained", backlog == 0, f"{backlog} deliveries not delivered"))
    live_i, ref_i = incidents(live_db), incidents(ref_db)
    checks.append(Check(
        "incidents: same ids and triggers, all closed",
        live_i == ref_i and all(i[3] for i in live_i),
        f"{len(live_i)} live, {len(ref_i)} reference, "
        f"{sum(i[3] for i in live_i)} closed"))
    checks.append(Check("clean stop at the end (SIGTERM)", stop_rc == 0, f"exit {stop_rc}"))
    return checks


# ----------------------------------------------------------------------------- main
def seconds(xs: list[float]) -> str:
    """median / min / max of some durations."""
    if not xs:
        return "none"
    return (f"median {statistics.median(xs):.2f}s, min {min(xs):.2f}s, max {max(xs):.2f}s "
            f"(n={len(xs)})")


def main(argv: list[str] | None = None) -> int:
    """Build the feed, run the reference and the killed live run, compare, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--speed", type=float, default=10.0,
                    help="simulated seconds per wall second of the live run")
    ap.add_argument("--posts", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None,
                    help="work in this folder and keep it (feed, reference, live store)")
    args = ap.parse_args(argv)
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crisismon-soak-") as tmp:
        base = args.keep or Path(tmp)
        if args.keep:  # a fresh folder: a store left from an earlier soak would resume
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True)
        feed = make_feed(args.posts, args.seed)
        feed_path = write_feed(base / "feed.jsonl", feed.lines)
        cfg_text = config_text(feed_path, args.speed, sla=FAST_SLA, extra=CRISIS,
                               brands=BRAND_A + BRAND_B)
        print(f"soak: seed {args.seed}, {len(feed.lines)} feed lines over "
              f"{feed.span} simulated s, live at {args.speed:g}x, {args.kills} kills")
        print("  feed: " + ", ".join(f"{n} {k}" for k, n in feed.kinds.most_common()))

        ref_dir = base / "reference"
        ref_dir.mkdir()
        (ref_dir / "config.toml").write_text(cfg_text, encoding="utf-8")
        t0 = time.monotonic()
        replay_reference(ref_dir / "config.toml", feed_path, ref_dir)
        ref_alerts, _ = read_alert_log(ref_dir / "alerts.jsonl")
        report = json.loads((ref_dir / "report.json").read_text(encoding="utf-8"))
        print(f"reference (crisismon replay --speed max): {time.monotonic() - t0:.1f}s, "
              f"{len(ref_alerts)} alerts, {report['mentions']} mentions, "
              f"{report['incidents']} incidents")
        print("  alerts: " + ", ".join(f"{k} {n}" for k, n in
                                       sorted(Counter(str(a['type'])
                                                      for a in ref_alerts).items())))
        ref_end = max(at_of(a) for a in ref_alerts)
        plan = Plan(args.kills, args.speed, (ref_end - T0) / args.speed,
                    sorted({datetime.fromisoformat(str(x["created_at"])).timestamp() - T0
                            for x in feed.lines}),
                    sorted(at_of(a) - T0 for a in ref_alerts))

        live = base / "live"
        live.mkdir()
        cfg = live / "config.toml"
        cfg.write_text(cfg_text, encoding="utf-8")
        rng = random.Random(args.seed)
        t0 = time.monotonic()
        kills, starts, d, sock = soak(cfg, plan, rng)
        try:
            # All the time the rest of the run needs on the scaled clock, and then some.
            left = max(0.0, ref_end - T0 - (kills[-1].sim if kills else 0.0))
            rc = finish(d, live / "var" / "alerts.jsonl", set(alert_keys(ref_alerts)),
                        timeout=left / args.speed + 60, settle=max(2.0, 60 / args.speed))
        finally:
            d.kill()
            sock.close()
        live_wall = time.monotonic() - t0

        # The first start opens an empty store; the restarts rebuild from it.
        ready = [s.ready_s for s in starts[1:] if s.ready_s is not None]
        print(f"live (crisismon run, kill -9, restart): {live_wall:.1f}s wall, "
              f"{len(kills)} kills done, {len(starts) - 1} restarts, {len(starts)} starts")
        print(f"  first start to READY=1: {starts[0].ready_s or float('nan'):.2f}s; "
              f"restart to READY=1 (rebuild included): {seconds(ready)}")
        early = sum(not k.ready for k in kills)
        print(f"  kills before READY=1 (start-up, rebuild): {early}; while running: "
              f"{len(kills) - early}; with deliveries pending (mid-outbox): "
              f"{sum(k.backlog > 0 for k in kills)}; with alerts stored but not yet in "
              f"the log: {sum(k.stored > k.logged for k in kills)}")
        print("   #  aimed      delay  READY  sim t  lines stored  alerts stored/logged  "
              "backlog")
        for i, k in enumerate(kills, 1):
            print(f"  {i:2}  {k.aimed:9} {k.delay:5.2f}s  {'yes' if k.ready else 'no':5}"
                  f" {k.sim:5.0f}s  {k.cursor:5}/{len(feed.lines):<5}  "
                  f"{k.stored:6}/{k.logged:<6}          {k.backlog:4}")
        checks = compare(live, ref_dir, rc)
        print("checks:")
        for c in checks:
            print(c)
        ok = all(c.ok for c in checks)
        print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; "
              f"soak wall time {time.monotonic() - t_all:.0f}s")
        print(f"RESULT: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
