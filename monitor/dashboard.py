"""The PR team's dashboard: one page, its JSON views and a live event stream.

Routes (all behind the bearer token of ``monitor.http``):

- ``GET /dashboard``: the page (vanilla JS, no build step; see ``dashboard_page``).
- ``GET /api/mentions?open=1``: mentions waiting for a public reply, soonest deadline first.
- ``GET /api/incidents``: incidents (open first) with their window and negatives per hour.
- ``GET /api/events``: server-sent events; one ``change`` event whenever the daemon
  ingests a batch or fires alerts, so the page refetches instead of polling.

The views read the store's ``mentions``/``incidents`` projections (the same rows the
reports use) and the daemon's clock: times are on that clock, which in a demo runs
faster than the wall, so every response carries ``now`` and ``speed`` for the page's
countdowns. Post text is sent as JSON data and only ever set with ``textContent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from alerts.record import format_instant
from monitor.dashboard_page import render_page
from monitor.http import DAEMON, register

if TYPE_CHECKING:
    from monitor.daemon import Daemon

log = structlog.get_logger(__name__)

HEARTBEAT = 15.0
"""Seconds between SSE comments, so proxies and phones keep the stream open."""
MAX_MENTIONS = 500
MAX_INCIDENTS = 20
QUEUE_SIZE = 64
BYE = "bye"
"""Put in a stream's queue at server shutdown: the stream ends instead of holding it up."""
STREAMS: web.AppKey[set[asyncio.Queue[str]]] = web.AppKey("dashboard_streams", set)
MENTION_ALERTS = ("mention.new", "reply.warning", "reply.breach", "reply.escalated")


def weibo_url(post_id: str) -> str:
    """The post on Weibo's mobile site (works with the numeric id alone)."""
    return f"https://m.weibo.cn/detail/{post_id}"


def clock_info(daemon: Daemon) -> dict[str, Any]:
    """The daemon's ``now`` and how fast its clock runs against the wall (demo clocks)."""
    now = daemon.clock.now()
    return {"now": now, "now_text": format_instant(now, daemon.config.tz),
            "timezone": daemon.config.timezone,
            "speed": float(getattr(daemon.clock, "speed", 1.0))}


def open_mentions(daemon: Daemon, only_open: bool = True) -> list[dict[str, Any]]:
    """Mentions (by default only those still waiting for a public reply), deadline first."""
    sla = daemon.config.sla
    where = "WHERE m.needs_reply = 1 AND m.replied_at IS NULL" if only_open else ""
    marks = ", ".join("?" for _ in MENTION_ALERTS)
    rows = daemon.store.db.execute(
        "SELECT m.key, m.brand, m.post_id, m.created_at, m.author, m.followers, m.text, "
        "m.sentiment, m.negative, m.severity, m.reasons, m.needs_reply, m.replied_at, "
        "m.replied_by, m.acked_by, m.private_resolve_at, m.incident_id, "
        f"(SELECT a.id FROM alerts a WHERE a.post_id = m.post_id AND a.brand = m.brand "
        f" AND a.type IN ({marks}) ORDER BY a.seq DESC LIMIT 1) "
        f"FROM mentions m {where} ORDER BY m.created_at LIMIT ?",
        (*MENTION_ALERTS, MAX_MENTIONS)).fetchall()
    clocks = daemon.pipeline.engine.clocks
    out = []
    for (key, brand, post_id, created, author, followers, text, sentiment, negative,
         severity, reasons, needs_reply, replied_at, replied_by, acked_by, private_at,
         incident_id, alert_id) in rows:
        clock = clocks.get(key)
        out.append({
            "key": key, "brand": brand, "post_id": post_id, "url": weibo_url(post_id),
            "created_at": created, "warn_at": created + sla.warn_at,
            "deadline": created + sla.reply_within,
            "escalate_at": created + sla.escalate_after,
            "author": author, "followers": followers,
            "reposts": clock.last_reposts_count if clock is not None else 0,
            "text": text, "sentiment": sentiment, "negative": bool(negative),
            "severity": severity, "reasons": json.loads(reasons),
            "needs_reply": bool(needs_reply), "replied_at": replied_at,
            "replied_by": replied_by, "acked_by": acked_by,
            "private_resolve_at": private_at, "incident_id": incident_id,
            "alert_id": alert_id,
        })
    return out


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


def negatives_per_hour(daemon: Daemon, brand: str, start: float, end: float) -> list[int]:
    """Negative mentions of ``brand`` in each hour from ``start`` (at most 48 hours)."""
    hours = max(1, min(48, math.ceil((end - start) / 3600)))
    counts = [0] * hours
    rows = daemon.store.db.execute(
        "SELECT created_at FROM mentions WHERE brand = ? AND negative = 1 "
        "AND created_at >= ? AND created_at < ?", (brand, start, start + hours * 3600))
    for (created,) in rows:
        counts[int((created - start) // 3600)] += 1
    return counts


def incidents(daemon: Daemon) -> list[dict[str, Any]]:
    """Incidents, open ones first then the most recent, with epoch times for drawing."""
    rows = daemon.store.db.execute("SELECT body FROM incidents").fetchall()
    now = daemon.clock.now()
    items = []
    for (body,) in rows:
        rec = json.loads(body)
        opened = _epoch(rec["opened_at"]) or 0.0
        window_end = _epoch(rec["window_end"]) or opened
        start = opened - 3600  # an hour of context before the opening
        end = min(max(now, opened + 3600), window_end)
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


async def page(request: web.Request) -> web.Response:
    """The dashboard page, with a per-response nonce so only its own script runs."""
    nonce = secrets.token_urlsafe(12)
    resp = web.Response(text=render_page(nonce), content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


async def api_mentions(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    only_open = request.query.get("open", "1") not in ("0", "false", "")
    return web.json_response({**clock_info(daemon), "reply_within": daemon.config.sla
                              .reply_within, "mentions": open_mentions(daemon, only_open)},
                             dumps=_dumps)


async def api_incidents(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    return web.json_response({**clock_info(daemon), "incidents": incidents(daemon)},
                             dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def api_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``change`` when state moved; a comment line as a heartbeat."""
    daemon = request.app[DAEMON]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
    daemon.listeners.append(queue)
    request.app[STREAMS].add(queue)
    try:
        await resp.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
        while True:
            try:
                what = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            while not queue.empty():  # a burst of batches is one refetch
                what = BYE if queue.get_nowait() == BYE else what
            if what == BYE:
                break
            await resp.write(f"event: change\ndata: {json.dumps({'what': what})}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away; nothing to tell anyone
    finally:
        request.app[STREAMS].discard(queue)
        with contextlib.suppress(ValueError):
            daemon.listeners.remove(queue)
    return resp


async def _end_streams(app: web.Application) -> None:
    """At shutdown, end open event streams so the server need not wait for them."""
    for queue in list(app[STREAMS]):
        while queue.full():
            queue.get_nowait()
        queue.put_nowait(BYE)


@register
def routes(app: web.Application, daemon: Daemon) -> None:
    """Add the dashboard and its read-only JSON views."""
    app.router.add_get("/dashboard", page)
    app.router.add_get("/api/mentions", api_mentions)
    app.router.add_get("/api/incidents", api_incidents)
    app.router.add_get("/api/events", api_events)
    app[STREAMS] = set()
    app.on_shutdown.append(_end_streams)
