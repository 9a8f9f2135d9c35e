"""The daemon's one HTTP server: API, dashboard, health and metrics share an address.

Feature modules add their routes through ``ROUTES`` hooks (each a function taking the
``web.Application`` and the ``Daemon``), so the server is built in one place.

Who may ask (``Auth``):

- scripts send ``Authorization: Bearer <token>``: the shared ``http.token`` or one
  person's ``[[http.users]]`` token;
- the dashboard signs in once (``GET /dashboard?token=T``, the link printed at start, or
  the sign-in form) and then carries an HttpOnly, SameSite=Strict session cookie, so no
  token stays in an address bar, a bookmark, the history or a proxy's access log. The
  cookie is signed with the token it was issued for (HMAC), so it outlives a restart
  but not a change of that token, and keeps no state on the server.

``/healthz``, ``/readyz`` and ``/metrics`` need nothing (bind to loopback to keep them
local); ``/dashboard`` and its sign-in/sign-out serve without a token too (the page holds
no data: it loads everything through ``/api/``). Every other route needs one of the two.
Every answer carries ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from monitor.config import ConfigError, HttpConfig, is_loopback
from monitor.secrets import SecretError, resolve_secret

if TYPE_CHECKING:
    from monitor.daemon import Daemon

log = structlog.get_logger(__name__)

DAEMON: web.AppKey[Daemon] = web.AppKey("daemon", object)  # type: ignore[arg-type]
AUTH: web.AppKey[Auth] = web.AppKey("auth", object)  # type: ignore[arg-type]
Hook = Callable[[web.Application, "Daemon"], None]
ROUTES: list[Hook] = []
"""Route hooks, registered by feature modules at import (see ``register``)."""

OPEN_PATHS = ("/healthz", "/readyz", "/metrics")
SIGN_IN_PATHS = ("/dashboard", "/dashboard/signin", "/dashboard/signout")
"""Served without a token: the page (data-free; it shows the sign-in form when the
session is missing) and the routes that set and clear the session cookie."""
COOKIE = "crisismon_session"
UNAUTHORISED = "missing or wrong bearer token"


def register(hook: Hook) -> Hook:
    """Decorator: a feature module's function that adds its routes to the app."""
    ROUTES.append(hook)
    return hook


@dataclass(frozen=True)
class Identity:
    """Who a request comes from."""

    name: str | None
    """The ``[[http.users]]`` name; None for the shared token (the caller says who acts)."""
    via: str
    """``bearer`` or ``cookie``."""


IDENTITY: Any = (web.RequestKey("identity", Identity) if hasattr(web, "RequestKey")
                 else "crisismon.identity")  # aiohttp before 3.14: a plain key
"""Key of the request's :class:`Identity`, set by the auth middleware."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Auth:
    """Checks bearer tokens and issues/reads the dashboard's signed session cookie."""

    def __init__(self, token: str, users: Mapping[str, str] | None = None,
                 ttl: float = 7 * 86400, wall: Callable[[], float] = time.time) -> None:
        self.token = token
        self.users = dict(users or {})
        """Name -> that person's token."""
        self.ttl = ttl
        self.wall = wall
        """Real time for the cookie's expiry (a session is real time even on a demo clock)."""

    def _secret(self, name: str | None) -> str | None:
        return self.token if name is None else self.users.get(name)

    def check_token(self, given: str) -> Identity | None:
        """The identity whose token ``given`` is (compared in constant time), else None."""
        if not given:
            return None
        found: Identity | None = None
        for name, secret in ((None, self.token), *self.users.items()):
            # Every candidate is compared, so the time taken says nothing about which.
            if secret and hmac.compare_digest(given.encode(), secret.encode()):
                found = found or Identity(name, "bearer")
        return found

    def _sign(self, name: str | None, expires: int) -> str | None:
        secret = self._secret(name)
        if not secret:
            return None
        key = hashlib.sha256(b"crisismon-session\0" + secret.encode()).digest()
        msg = f"v1\0{'' if name is None else name}\0{int(name is None)}\0{expires}".encode()
        return _b64(hmac.new(key, msg, hashlib.sha256).digest())

    def session_cookie(self, ident: Identity) -> str:
        """The cookie value for ``ident``, valid for ``ttl`` seconds from now."""
        expires = int(self.wall() + self.ttl)
        who = "-" if ident.name is None else _b64(ident.name.encode())
        return f"v1.{who}.{expires}.{self._sign(ident.name, expires)}"

    def from_cookie(self, value: str) -> Identity | None:
        """The identity a session cookie stands for; None when forged, expired or stale
        (signed with a token that has since changed)."""
        try:
            version, who, expires_text, sig = value.split(".")
            name = None if who == "-" else _unb64(who).decode()
            expires = int(expires_text)
        except (ValueError, UnicodeDecodeError):
            return None
        if version != "v1" or expires < self.wall():
            return None
        good = self._sign(name, expires)
        if good is None or not hmac.compare_digest(good.encode(), sig.encode()):
            return None
        return Identity(name, "cookie")

    def identify(self, request: web.Request) -> Identity | None:
        """Bearer header first (scripts), then the session cookie (the dashboard)."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.check_token(header[7:])
        cookie = request.cookies.get(COOKIE)
        return self.from_cookie(cookie) if cookie else None


def identity(request: web.Request) -> Identity | None:
    """The request's identity (None on the open routes)."""
    found = request.get(IDENTITY)
    return found if isinstance(found, Identity) else None


def _forged(request: web.Request) -> bool:
    """A cookie-borne request that changes state without a JSON body: what a form on
    another site could send. SameSite=Strict keeps the cookie off such requests already;
    requiring JSON too means a cross-origin script would need a CORS preflight, which
    this server never grants. (``Origin`` is not compared with ``Host``: a reverse proxy
    often rewrites ``Host``.)"""
    return (request.method not in ("GET", "HEAD", "OPTIONS")
            and request.content_type != "application/json")


def auth_middleware(auth: Auth) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def check(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if request.path not in OPEN_PATHS and request.path not in SIGN_IN_PATHS:
            ident = auth.identify(request)
            if ident is None:
                return web.json_response({"error": UNAUTHORISED}, status=401)
            if ident.via == "cookie" and _forged(request):
                return web.json_response({"error": "send JSON (Content-Type: "
                                          "application/json) with the session cookie"},
                                         status=403)
            request[IDENTITY] = ident
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


async def _hygiene(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer, errors and streams included: never cached, never content-sniffed."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def set_session(response: web.StreamResponse, request: web.Request, auth: Auth,
                ident: Identity) -> None:
    """Put the session cookie on ``response``: HttpOnly (no script reads it), SameSite=Strict
    (no other site's page sends it), Secure when served over HTTPS."""
    response.set_cookie(COOKIE, auth.session_cookie(ident), max_age=int(auth.ttl), path="/",
                        httponly=True, samesite="Strict", secure=_secure(request))


async def sign_in(request: web.Request) -> web.Response:
    """``POST /dashboard/signin`` with ``{"token": ...}`` (JSON or a form): sets the cookie."""
    auth = request.app[AUTH]
    try:
        if request.content_type == "application/json":
            body = json.loads(await request.read() or b"{}")
            token = body.get("token") if isinstance(body, dict) else None
        else:
            token = (await request.post()).get("token")
    except (ValueError, UnicodeDecodeError, AssertionError):  # not JSON, a broken form
        return web.json_response({"error": 'send {"token": "..."} as JSON or a form'},
                                 status=400)
    ident = auth.check_token(token.strip()) if isinstance(token, str) else None
    if ident is None:
        return web.json_response({"error": UNAUTHORISED}, status=401)
    resp = web.json_response({"ok": True, "user": ident.name})
    set_session(resp, request, auth, Identity(ident.name, "cookie"))
    return resp


async def sign_out(request: web.Request) -> web.Response:
    """``POST /dashboard/signout``: the browser forgets the session cookie."""
    resp = web.json_response({"ok": True})
    resp.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
    return resp


async def session(request: web.Request) -> web.Response:
    """``GET /api/session``: who is signed in; renews the cookie (a sliding session)."""
    ident = identity(request)
    assert ident is not None  # the middleware let it through
    resp = web.json_response({"user": ident.name, "via": ident.via})
    if ident.via == "cookie":
        set_session(resp, request, request.app[AUTH], ident)
    return resp


def load_auth(daemon: Daemon, token: str) -> Auth:
    """The shared token plus each ``[[http.users]]`` token, resolved now: a missing one
    stops the start with its key path rather than failing a person's first sign-in."""
    cfg = daemon.config.http
    users: dict[str, str] = {}
    for i, user in enumerate(cfg.users):
        try:
            users[user.name] = resolve_secret(user.token)
        except SecretError as exc:
            raise ConfigError([f"http.users[{i}].token: {exc}"]) from None
    return Auth(token, users, cfg.session_ttl)


def build_app(daemon: Daemon, token: str, auth: Auth | None = None) -> web.Application:
    """The aiohttp application with every registered feature's routes."""
    auth = auth or load_auth(daemon, token)
    app = web.Application(middlewares=[auth_middleware(auth)], client_max_size=1 << 20)
    app[DAEMON] = daemon
    app[AUTH] = auth
    app.on_response_prepare.append(_hygiene)
    app.router.add_post("/dashboard/signin", sign_in)
    app.router.add_post("/dashboard/signout", sign_out)
    app.router.add_get("/api/session", session)
    for hook in ROUTES:
        hook(app, daemon)
    return app


def tls_context(cfg: HttpConfig, resolve: Callable[[str], object]) -> ssl.SSLContext | None:
    """The server's TLS context from ``tls_cert``/``tls_key`` (None: plain HTTP)."""
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(resolve(cfg.tls_cert)), str(resolve(cfg.tls_key)))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"http.tls_cert: cannot load {cfg.tls_cert} / {cfg.tls_key} "
                           f"({type(exc).__name__}: {exc})"]) from None
    return ctx


async def serve(app: web.Application, cfg: HttpConfig) -> web.AppRunner:
    """Start listening on ``cfg.listen`` (``host:port``); the caller cleans up the runner.

    Refuses plain HTTP beyond loopback unless ``http.allow_plain_public`` (the config
    check says so first; this guards configs built in code)."""
    host, _, port = cfg.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not (is_loopback(host) or cfg.tls or cfg.allow_plain_public):
        raise ConfigError([f'http.listen: "{cfg.listen}" is reachable beyond this machine '
                           "over plain HTTP: set http.tls_cert and http.tls_key, or "
                           "http.allow_plain_public = true"])
    daemon = app.get(DAEMON)
    resolve = daemon.config.resolve if daemon is not None else str
    ctx = tls_context(cfg, resolve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port), ssl_context=ctx)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(cfg.listen, exc) from None
    log.info("http listening", listen=cfg.listen, tls=ctx is not None)
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
