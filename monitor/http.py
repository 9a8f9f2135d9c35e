"""The daemon's one HTTP server: API, dashboard, health and metrics share an address.

Feature modules add their routes through ``ROUTES`` hooks (each a function taking the
``web.Application`` and the ``Daemon``), so the server is built in one place. Everything
under ``/api/`` and ``/dashboard`` needs the bearer token; ``/healthz``, ``/readyz`` and
``/metrics`` do not (bind to 127.0.0.1, the default, to keep them local).
"""

from __future__ import annotations

import errno
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from monitor.config import HttpConfig

if TYPE_CHECKING:
    from monitor.daemon import Daemon

log = structlog.get_logger(__name__)

DAEMON: web.AppKey[Daemon] = web.AppKey("daemon", object)  # type: ignore[arg-type]
Hook = Callable[[web.Application, "Daemon"], None]
ROUTES: list[Hook] = []
"""Route hooks, registered by feature modules at import (see ``register``)."""

OPEN_PATHS = ("/healthz", "/readyz", "/metrics")


def register(hook: Hook) -> Hook:
    """Decorator: a feature module's function that adds its routes to the app."""
    ROUTES.append(hook)
    return hook


def token_ok(request: web.Request, token: str) -> bool:
    """Bearer token in the Authorization header, or ``?token=`` (for EventSource)."""
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else request.query.get("token", "")
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def auth_middleware(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def check(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if not (request.path in OPEN_PATHS or token_ok(request, token)):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            # No route, or not this method: under /api/ that too is a JSON error, as
            # every handler's own are (aiohttp's default is a text/plain page).
            if exc.status < 400 or not request.path.startswith("/api/"):
                raise
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return web.json_response({"error": f"{exc.status} {exc.reason}"},
                                     status=exc.status, headers=allow)

    return check


def build_app(daemon: Daemon, token: str) -> web.Application:
    """The aiohttp application with every registered feature's routes."""
    app = web.Application(middlewares=[auth_middleware(token)], client_max_size=1 << 20)
    app[DAEMON] = daemon
    for hook in ROUTES:
        hook(app, daemon)
    return app


async def serve(app: web.Application, cfg: HttpConfig) -> web.AppRunner:
    """Start listening on ``cfg.listen`` (``host:port``); the caller cleans up the runner."""
    host, _, port = cfg.listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port))
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(cfg.listen, exc) from None
    log.info("http listening", listen=cfg.listen)
    return runner


class ListenError(OSError):
    """The HTTP address cannot be bound; the message names the key to change."""

    def __init__(self, listen: str, exc: OSError) -> None:
        busy = exc.errno == errno.EADDRINUSE
        why = "is already in use by another process (another crisismon?)" if busy else \
            f"cannot be bound ({exc.strerror or exc})"
        super().__init__(exc.errno, f"http.listen: {listen} {why}; set [http] listen to a "
                         'free host:port (e.g. "127.0.0.1:8788") in the config, or stop what '
                         "holds it")

    def __str__(self) -> str:
        return str(self.strerror)
