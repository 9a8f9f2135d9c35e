"""The PR team's dashboard: one page, its JSON views and a live event stream.

Routes (``/api/`` behind the token or the session cookie of ``monitor.http``):

- ``GET /dashboard``: the page (vanilla JS, no build step; see ``dashboard_page``). It
  holds no data, so it is served to anyone: without a session it shows the sign-in form.
  ``GET /dashboard?token=T`` (the link printed at start) signs in and redirects to
  ``/dashboard``, taking the token out of the address bar and the history.
- ``GET /api/mentions``: open mentions in the work queue's order (``urgency``), paginated
  (``limit``, ``offset``), with counts per state.
- ``GET /api/incidents``: incidents (open first) with their window and negatives per hour.
- ``GET /api/events``: server-sent events. ``snapshot`` (all open mentions and incidents)
  on connect, then ``patch`` (only the mentions that changed, by key, and the removed
  keys) after each change, and a ``tick`` every few seconds, so a page never refetches
  and knows at once when its data stops being current.

One ``LiveView`` per server computes a change once for every open page: the rows are
re-read (one indexed query), compared with the last ones, and the difference is encoded
once and queued to every stream. A page too slow to take its queue is disconnected; it
reconnects and resyncs from a fresh snapshot.

Times are on the daemon's clock, which in a demo runs faster than the wall, so every
message carries ``now`` and ``speed``. Every text from outside is cleaned of control
characters and bidi overrides (``monitor.textsafe``) and only ever set with ``textContent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from monitor.dashboard_page import render_page
from monitor.http import AUTH, DAEMON, Identity, identity, register, set_session
from monitor.mention_record import MentionRecord
from monitor.textsafe import printable
from rules.deadlines import reply_deadlines
from rules.records import format_instant

if TYPE_CHECKING:
    from monitor.daemon import Daemon

log = structlog.get_logger(__name__)

HEARTBEAT = 5.0
"""Seconds between ``tick`` events: a page that hears nothing for three of them knows
its data may be stale, says so and reconnects."""
COALESCE = 0.25
"""Real seconds a change waits for the next ones: a burst of batches is one patch."""
MAX_INCIDENTS = 20
QUEUE_SIZE = 64
PAGE_LIMIT = 1000
"""Default page size of ``GET /api/mentions`` (``limit`` goes up to ``MAX_LIMIT``)."""
MAX_LIMIT = 10_000
BYE = b""
"""Put in a stream's queue to end it (server shutdown, or a page too slow to keep up)."""
STREAMS: web.AppKey[set[asyncio.Queue[bytes]]] = web.AppKey("dashboard_streams", set)
VIEW: web.AppKey[LiveView] = web.AppKey("dashboard_view", object)  # type: ignore[arg-type]
MENTION_ALERTS = ("mention.new", "reply.warning", "reply.breach", "reply.escalated")
SEVERITY_RANK = {"P1": 0, "P2": 1, "P3": 2, "P4": 3}


def weibo_url(post_id: str) -> str:
    """The post on Weibo's mobile site (works with the numeric id alone)."""
    return f"https://m.weibo.cn/detail/{post_id}"


def clock_info(daemon: Daemon) -> dict[str, Any]:
    """The daemon's ``now`` and how fast its clock runs against the wall (demo clocks)."""
    now = daemon.clock.now()
    return {"now": now, "now_text": format_instant(now, daemon.config.tz),
            "timezone": daemon.config.timezone,
            "speed": float(getattr(daemon.clock, "speed", 1.0))}


def _clean(text: str | None) -> str | None:
    return None if text is None else printable(text)


def mention_row(daemon: Daemon, row: tuple[Any, ...], reposts: int) -> dict[str, Any]:
    """One stored mention as the page and scripts see it (texts cleaned for display)."""
    m = MentionRecord.from_row(row)
    # The deadlines the engine armed: the reply rule the mention was first seen under
    # (a reload does not move them), else the configured one.
    clock = daemon.pipeline.engine.clocks.get(m.key)
    warn_at, deadline, escalate_at = reply_deadlines(
        m.created_at, daemon.config.sla if clock is None else clock.sla)
    return {
        "key": m.key, "brand": printable(m.brand), "post_id": m.post_id,
        "url": weibo_url(m.post_id), "created_at": m.created_at, "warn_at": warn_at,
        "deadline": deadline, "escalate_at": escalate_at,
        "author": printable(m.shown_author), "followers": m.followers, "reposts": reposts,
        "text": printable(m.text), "sentiment": m.sentiment, "negative": m.negative,
        "severity": m.severity, "reasons": [printable(r) for r in m.reasons],
        "needs_reply": m.needs_reply, "replied_at": m.replied_at,
        "replied_by": _clean(m.replied_by), "acked_by": _clean(m.acked_by),
        "private_resolve_at": m.private_resolve_at, "incident_id": m.incident_id,
    }


def _reposts(daemon: Daemon, key: str) -> int:
    clock = daemon.pipeline.engine.clocks.get(key)
    return clock.last_reposts_count if clock is not None else 0


def urgency(m: dict[str, Any], now: float) -> tuple[Any, ...]:
    """Sort key of the work queue (the page sorts with the same rule, ``urgencyKey``).

    P1 first; then what can still be answered in time, least time left first (severity
    breaks ties); then what is past its deadline, worst severity first and the most
    recently breached first, so a breach minutes old is not buried under hours-old ones.
    """
    sev = SEVERITY_RANK.get(m["severity"], 4)
    left = m["deadline"] - now
    if left >= 0:
        return (sev != 0, 0, left, sev, m["key"])
    return (sev != 0, 1, sev, -left, m["key"])


def state_counts(mentions: Iterable[dict[str, Any]], now: float) -> dict[str, int]:
    """Open mentions per state: in time, warned (past ``warn_at``), breached; acked; P1."""
    counts = {"open": 0, "in_time": 0, "warning": 0, "breached": 0, "acked": 0, "p1": 0}
    for m in mentions:
        counts["open"] += 1
        state = ("breached" if now >= m["deadline"] else
                 "warning" if now >= m["warn_at"] else "in_time")
        counts[state] += 1
        counts["acked"] += bool(m["acked_by"])
        counts["p1"] += m["severity"] == "P1"
    return counts


def open_mentions(daemon: Daemon, only_open: bool = True) -> list[dict[str, Any]]:
    """Mentions (by default only those still waiting for a public reply), newest first."""
    rows = daemon.store.mention_rows(only_open, newest_first=True)
    return [mention_row(daemon, row, _reposts(daemon, row[0])) for row in rows]


def latest_alerts(daemon: Daemon, mentions: list[dict[str, Any]]) -> None:
    """Set each mention's ``alert_id``: its latest reply-clock page (what an ack names)."""
    latest = daemon.store.latest_alerts(MENTION_ALERTS, [m["post_id"] for m in mentions])
    for m in mentions:
        m["alert_id"] = latest.get((m["post_id"], m["brand"]))


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


def negatives_per_hour(daemon: Daemon, brand: str, start: float, end: float) -> list[int]:
    """Negative mentions of ``brand`` in each hour from ``start`` (at most 48 hours)."""
    hours = max(1, min(48, math.ceil((end - start) / 3600)))
    counts = [0] * hours
    for created in daemon.store.negative_times(brand, start, start + hours * 3600):
        counts[int((created - start) // 3600)] += 1
    return counts


def incidents(daemon: Daemon) -> list[dict[str, Any]]:
    """Incidents, open ones first then the most recent, with epoch times for drawing."""
    bodies = daemon.store.incident_bodies()
    now = daemon.clock.now()
    items = []
    for body in bodies:
        rec = json.loads(body)
        opened = _epoch(rec["opened_at"]) or 0.0
        window_end = _epoch(rec["window_end"]) or opened
        start = opened - 3600  # an hour of context before the opening
        end = min(max(now, opened + 3600), window_end)
        for field in ("brand", "detail", "acked_by", "resolved_by"):
            if isinstance(rec.get(field), str):
                rec[field] = printable(rec[field])
        rec.update({
            "open": rec["closed_at"] is None,
            "t": {"opened": opened, "window_end": window_end,
                  "statement_due": _epoch(rec["statement_due"]),
                  "statement_at": _epoch(rec["statement_at"]),
                  "closed_at": _epoch(rec["closed_at"]),
                  "checkpoints": [_epoch(c) for c in rec["checkpoints"]]},
            "window_start": daemon.config.crisis.window[0],
            "series_start": start,
            "negatives_per_hour": negatives_per_hour(daemon, rec["brand"], start, end),
        })
        items.append(rec)
    items.sort(key=lambda r: (not r["open"], -r["t"]["opened"]))
    return items[:MAX_INCIDENTS]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (JSON on one line: ``json.dumps`` never writes a newline)."""
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


class LiveView:
    """The open mentions and incidents as the streams last saw them, and their changes."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.version = 0
        self.rows: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] | None = None
        """Key -> (stored row and reposts, the row as sent); None: not read yet."""
        self.incidents: list[dict[str, Any]] = []
        self._incidents_text = ""
        self.dirty = True
        self.streams: set[asyncio.Queue[bytes]] = set()

    def _read(self) -> tuple[dict[str, tuple[tuple[Any, ...], dict[str, Any]]], list[str]]:
        """The open mentions now, reusing the sent dict of every row that did not change."""
        old = self.rows or {}
        rows = {}
        changed = []
        for row in self.daemon.store.mention_rows(open_only=True):
            key = row[0]
            raw = (*row, _reposts(self.daemon, key))
            before = old.get(key)
            if before is not None and before[0] == raw:
                rows[key] = before
            else:
                rows[key] = (raw, mention_row(self.daemon, row, raw[-1]))
                changed.append(key)
        return rows, changed

    def refresh(self) -> bytes | None:
        """Re-read the state; the ``patch`` event for the streams, None if nothing changed."""
        self.dirty = False
        first = self.rows is None
        rows, changed = self._read()
        removed = [k for k in (self.rows or {}) if k not in rows]
        items = incidents(self.daemon)
        text = _dumps(items)
        incidents_changed = text != self._incidents_text
        self.rows, self.incidents, self._incidents_text = rows, items, text
        if first or not (changed or removed or incidents_changed):
            return None
        self.version += 1
        patch: dict[str, Any] = {"v": self.version, **clock_info(self.daemon),
                                 "upsert": [rows[k][1] for k in changed], "remove": removed}
        if incidents_changed:
            patch["incidents"] = items
        return sse("patch", patch)

    def snapshot(self) -> bytes:
        """Everything a page needs to start (or resync after a reconnect)."""
        return sse("snapshot", {"v": self.version, **clock_info(self.daemon),
                                "mentions": [m for _, m in (self.rows or {}).values()],
                                "incidents": self.incidents})

    def sync(self) -> None:
        """Bring the view up to date and queue the change to every stream; a stream whose
        queue is full is ended (its page reconnects and resyncs)."""
        if not self.streams:
            self.dirty = True  # nobody is watching: read again when someone connects
            self.rows = None
            return
        patch = self.refresh()
        if patch is None:
            return
        for queue in list(self.streams):
            try:
                queue.put_nowait(patch)
            except asyncio.QueueFull:
                self.end(queue)

    def end(self, queue: asyncio.Queue[bytes]) -> None:
        """Make a stream finish: its queue is emptied and holds only ``BYE``."""
        self.streams.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(BYE)

    def join(self) -> tuple[asyncio.Queue[bytes], bytes]:
        """A new stream's queue and its snapshot, taken together: no change falls between."""
        if (self.dirty or self.rows is None) and self.streams:
            self.sync()  # the others get the change as a patch first
        elif self.dirty or self.rows is None:
            self.refresh()
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SIZE)
        self.streams.add(queue)
        return queue, self.snapshot()

    async def run(self) -> None:
        """Turn the daemon's change notices into patches, a burst at a time."""
        notices: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.daemon.listeners.append(notices)
        try:
            while True:
                await notices.get()
                await asyncio.sleep(COALESCE)
                while not notices.empty():
                    notices.get_nowait()
                try:
                    self.sync()
                except Exception:  # a failed read must not end the live view for good
                    log.exception("dashboard: could not read the state; retrying on the "
                                  "next change")
                    self.dirty = True
        finally:
            with contextlib.suppress(ValueError):
                self.daemon.listeners.remove(notices)


CSP = ("default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
       "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


async def page(request: web.Request) -> web.StreamResponse:
    """The dashboard page, with a per-response nonce so only its own script runs.

    ``?token=T`` signs in: the session cookie is set and the browser is sent to the bare
    ``/dashboard``, so the token leaves the address bar (and the history: it is a redirect).
    """
    token = request.query.get("token")
    if token is not None:
        auth = request.app[AUTH]
        ident = auth.check_token(token.strip())
        where = "/dashboard" if ident is not None else "/dashboard?signin=failed"
        resp = web.Response(status=303, headers={"Location": where,
                                                 "Referrer-Policy": "no-referrer"})
        if ident is None:
            return resp
        set_session(resp, request, auth, Identity(ident.name, "cookie"))
        return resp
    nonce = secrets.token_urlsafe(12)
    resp = web.Response(text=render_page(nonce), content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = CSP.format(nonce=nonce)
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def _int(request: web.Request, name: str, default: int, top: int) -> int:
    try:
        return max(0, min(int(request.query.get(name, default)), top))
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be a whole number") from None


async def api_mentions(request: web.Request) -> web.Response:
    """Open mentions in the work queue's order, a page at a time, with counts per state.

    ``open=0`` lists replied mentions too, newest first."""
    daemon = request.app[DAEMON]
    only_open = request.query.get("open", "1") not in ("0", "false", "")
    try:
        limit = _int(request, "limit", PAGE_LIMIT, MAX_LIMIT)
        offset = _int(request, "offset", 0, 1 << 40)
    except web.HTTPBadRequest as exc:
        return web.json_response({"error": exc.reason}, status=400)
    now = daemon.clock.now()
    items = open_mentions(daemon, only_open)
    if only_open:
        items.sort(key=lambda m: urgency(m, now))
    shown = items[offset:offset + limit]
    latest_alerts(daemon, shown)
    nxt = offset + limit if offset + limit < len(items) else None
    return web.json_response(
        {**clock_info(daemon), "reply_within": daemon.config.sla.reply_within,
         "total": len(items), "offset": offset, "next_offset": nxt,
         "counts": state_counts((m for m in items if m["replied_at"] is None), now),
         "mentions": shown}, dumps=_dumps)


async def api_incidents(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    return web.json_response({**clock_info(daemon), "incidents": incidents(daemon)},
                             dumps=_dumps)


async def api_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``hello`` and ``snapshot``, then ``patch`` and ``tick``."""
    daemon = request.app[DAEMON]
    view = request.app[VIEW]
    ident = identity(request)
    queue, snapshot = view.join()  # before the headers: a failed read is a plain 500
    request.app[STREAMS].add(queue)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "X-Accel-Buffering": "no"})
    sla = daemon.config.sla
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n" + sse("hello", {
            **clock_info(daemon), "user": ident.name if ident else None,
            "heartbeat": HEARTBEAT, "sla": {"warn_at": sla.warn_at,
                                            "reply_within": sla.reply_within}}) + snapshot)
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                data = sse("tick", clock_info(daemon))
            if data == BYE:
                break
            await resp.write(data)
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away; nothing to tell anyone
    finally:
        request.app[STREAMS].discard(queue)
        view.streams.discard(queue)
    return resp


async def _start_view(app: web.Application) -> None:
    app[VIEW_TASK] = asyncio.create_task(app[VIEW].run(), name="dashboard-view")


async def _end_streams(app: web.Application) -> None:
    """At shutdown, end open event streams so the server need not wait for them."""
    streams = app[STREAMS]  # (named: in list(...) mypy cannot infer the key's type)
    for queue in list(streams):
        app[VIEW].end(queue)
    task = app.get(VIEW_TASK)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


VIEW_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("dashboard_view_task",
                                                       asyncio.Task)  # type: ignore[arg-type]


@register
def routes(app: web.Application, daemon: Daemon) -> None:
    """Add the dashboard and its read-only JSON views."""
    app.router.add_get("/dashboard", page)
    app.router.add_get("/api/mentions", api_mentions)
    app.router.add_get("/api/incidents", api_incidents)
    app.router.add_get("/api/events", api_events)
    app[STREAMS] = set()
    app[VIEW] = LiveView(daemon)
    app.on_startup.append(_start_view)
    app.on_shutdown.append(_end_streams)
