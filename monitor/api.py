"""The paging API: acknowledge and resolve over HTTP, and read the audit log.

Every call becomes an :class:`~rules.records.Action` handed to ``daemon.ingest`` as a
batch from source ``api``: it is stored as an event before it acts and is replayed on
restart exactly like an action line of a feed. Bearer token required (``monitor.http``).

- ``POST /api/alerts/{id}/ack``          body optional: ``{"by": "小王"}``
- ``POST /api/mentions/{id}/ack``        (a mention is named by its post id)
- ``POST /api/mentions/{id}/resolve``    body ``{"public": true|false, "by": "小王"}``
- ``POST /api/incidents/{id}/ack``, ``POST /api/incidents/{id}/resolve``
- ``GET /api/audit?alert=ID&kind=delivery|ack|resolve&limit=100``

Who acts: a caller signed in with their own ``[[http.users]]`` token (bearer or the
dashboard's session) acts under that name, whatever ``by`` says; with the shared token,
``by`` names them (``api`` when absent).

Answers: 200 ``{"ok": true, "action": {...}}``; 404 unknown id; 400 bad JSON or fields.

Retries are safe: the action's id is derived from the request (``monitor.normalise.
parse_action``), so the same call made twice is one action, stored and audited once. A
client that means a second, identical action sends a new ``Idempotency-Key`` header.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from alerts.ack import base_alert_id
from alerts.audit import AuditLog
from monitor.http import identity, register
from monitor.normalise import BadInput, parse_action
from monitor.sources.base import Batch
from rules.records import format_instant

if TYPE_CHECKING:
    from monitor.daemon import Daemon


class BadRequest(Exception):
    """A 400 with this message."""


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _known(daemon: Daemon, kind: str, target: str) -> bool:
    engine = daemon.pipeline.engine
    if kind == "alerts":
        return daemon.store.has_alert(target)
    if kind == "mentions":
        return target in engine.by_post
    return target in engine.incidents


@register
def paging_routes(app: web.Application, daemon: Daemon) -> None:
    """Add the ack, resolve and audit routes."""
    audit = AuditLog(daemon.store)

    async def act(request: web.Request) -> web.Response:
        kind, verb = request.match_info["kind"], request.match_info["verb"]
        target = request.match_info["id"]
        if kind == "alerts":
            if verb != "ack":
                return web.json_response({"error": "an alert is acked; resolve its mention "
                                          "or incident"}, status=404)
            target = base_alert_id(target)  # a repeat's id acks the alert it repeats
        try:
            data = await _body(request)
            ident = identity(request)
            # The request's own id: a client's retry (Idempotency-Key header, or "id" in
            # the body) is the same action, and so is the same ack posted twice.
            action = parse_action(
                {**data, "action": verb, "target": target}, "api", now=daemon.clock.now(),
                by=ident.name if ident is not None and ident.name else None,
                key=request.headers.get("Idempotency-Key"), default_by="api",
                needs_public=kind == "mentions")
        except (BadRequest, BadInput) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        target, by, public, now = action.target, action.by, action.public, action.created_at
        if not _known(daemon, kind, target):
            return web.json_response({"error": f"no such {kind[:-1]}: {target}"}, status=404)
        await daemon.ingest(Batch("api", [action]))
        return web.json_response({"ok": True, "action": {
            "id": action.id, "action": verb, "target": target, "by": by, "public": public,
            "at": format_instant(now, daemon.config.tz)}})

    async def audit_log(request: web.Request) -> web.Response:
        try:
            limit = max(1, min(int(request.query.get("limit", "100")), 10_000))
        except ValueError:
            return web.json_response({"error": "limit must be a whole number"}, status=400)
        tz = daemon.config.tz
        rows = audit.entries(limit, request.query.get("alert") or None,
                             request.query.get("kind") or None)
        return web.json_response({"entries": [
            {"at": format_instant(e.at, tz), "kind": e.kind, "alert_id": e.alert_id,
             "channel": e.channel, "repeat": e.rep, "outcome": e.outcome, "detail": e.detail,
             "by": e.who, "via": e.via} for e in rows]},
            dumps=lambda o: json.dumps(o, ensure_ascii=False))

    app.router.add_post(r"/api/{kind:alerts|mentions|incidents}/{id}/{verb:ack|resolve}", act)
    app.router.add_get("/api/audit", audit_log)
