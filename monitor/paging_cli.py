"""``crisismon ack``, ``crisismon resolve`` and ``crisismon audit``: the paging API from a shell.

They talk to a running daemon over its HTTP API (``[http] listen``), so the action is
stored and replayed like any other; the token is read from an environment variable
(``CRISISMON_TOKEN`` by default), never from the command line where ``ps`` would show it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8787"
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class ApiError(Exception):
    """The API refused or could not be reached; ``code`` is the exit code to use."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


def add_paging_commands(sub: Any) -> None:
    """Add ``ack``, ``resolve`` and ``audit`` to the CLI's subparsers."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=DEFAULT_URL, help=f"daemon API (default {DEFAULT_URL})")
        p.add_argument("--token-env", default="CRISISMON_TOKEN",
                       help="environment variable holding the API token")

    ack = sub.add_parser("ack", help="acknowledge an alert (stops its repeat pages)")
    ack.add_argument("id", metavar="ID", help="alert id (a-…); or a mention/incident id with "
                     "--mention/--incident")
    kind = ack.add_mutually_exclusive_group()
    kind.add_argument("--mention", action="store_true", help="ID is a mention (post id)")
    kind.add_argument("--incident", action="store_true", help="ID is an incident")
    ack.add_argument("--by", default=os.environ.get("USER", "cli"), help="who acknowledges")
    common(ack)

    res = sub.add_parser("resolve", help="resolve a mention (public or private answer)")
    res.add_argument("id", metavar="POST_ID")
    way = res.add_mutually_exclusive_group(required=True)
    way.add_argument("--public", dest="public", action="store_true",
                     help="answered in public (ends the reply clock)")
    way.add_argument("--private", dest="public", action="store_false",
                     help="settled by private message (a public follow-up is still due)")
    res.add_argument("--by", default=os.environ.get("USER", "cli"))
    common(res)

    aud = sub.add_parser("audit", help="print the audit log (deliveries, acks) as JSON lines")
    aud.add_argument("--alert", default="", help="only this alert (and its repeats)")
    aud.add_argument("--kind", choices=("delivery", "ack", "resolve"), default=None)
    aud.add_argument("--limit", type=int, default=100)
    common(aud)


def call(url: str, token_env: str, method: str, path: str,
         body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One API request; raises ApiError with a one-line reason."""
    token = os.environ.get(token_env, "")
    if not token:
        raise ApiError(f"${token_env} is not set (export the daemon's API token)", EXIT_USAGE)
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        raise ApiError(f"{method} {path}: HTTP {exc.code}: {reason}",
                       EXIT_USAGE if exc.code in (400, 404) else EXIT_FAIL) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(f"cannot reach the daemon at {url}: {exc} (is crisismon run up? "
                       "see --url)") from None


def cmd_ack(args: argparse.Namespace) -> int:
    kind = "mentions" if args.mention else "incidents" if args.incident else "alerts"
    path = f"/api/{kind}/{urllib.parse.quote(args.id, safe='')}/ack"
    return _run(args, path, {"by": args.by})


def cmd_resolve(args: argparse.Namespace) -> int:
    path = f"/api/mentions/{urllib.parse.quote(args.id, safe='')}/resolve"
    return _run(args, path, {"by": args.by, "public": args.public})


def cmd_audit(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (("alert", args.alert), ("kind", args.kind),
                                                       ("limit", args.limit)) if v})
    try:
        data = call(args.url, args.token_env, "GET", f"/api/audit?{query}")
    except ApiError as exc:
        print(f"crisismon: error: {exc}", file=sys.stderr)
        return exc.code
    for entry in data.get("entries", []):
        print(json.dumps(entry, ensure_ascii=False))
    return EXIT_OK


def _run(args: argparse.Namespace, path: str, body: dict[str, Any]) -> int:
    try:
        data = call(args.url, args.token_env, "POST", path, body)
    except ApiError as exc:
        print(f"crisismon: error: {exc}", file=sys.stderr)
        return exc.code
    action = data.get("action", {})
    print(f"{action.get('action')} {action.get('target')} by {action.get('by')} "
          f"at {action.get('at')}")
    return EXIT_OK


PAGING_COMMANDS = {"ack": cmd_ack, "resolve": cmd_resolve, "audit": cmd_audit}
