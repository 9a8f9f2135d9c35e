"""Operations endpoints: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

They need no token (see ``monitor.http``): keep ``[http] listen`` on 127.0.0.1, the
default, or behind a proxy that only lets the scraper in.

- ``/healthz``: 200 while the event loop answers at all; the body says how late the loop
  probe woke up. A hung loop cannot answer, which is the point.
- ``/readyz``: 200 once the state is rebuilt, every source is connected and the store
  takes a write; 503 with the reasons otherwise.
- ``/metrics``: Prometheus text format from the daemon's own registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from monitor.http import register
from monitor.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from monitor.daemon import Daemon


@register
def ops_routes(app: web.Application, daemon: Daemon) -> None:
    """Add the three operations routes."""

    async def healthz(_: web.Request) -> web.Response:
        lag = daemon.metrics.last_loop_lag
        return web.json_response({"status": "ok", "event_loop_lag_seconds": round(lag, 4)})

    async def readyz(_: web.Request) -> web.Response:
        problems = daemon.readiness()
        body = {"ready": not problems, "problems": problems}
        return web.json_response(body, status=503 if problems else 200)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=daemon.metrics.render(),
                            headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
