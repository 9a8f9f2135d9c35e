"""``crisismon digest NAME [--config F] [--now]``: print a digest, or send one now.

Without ``--now`` it prints the digest of the latest scheduled run (the one the daemon
sent, if it is in the store; else computed as the daemon would). With ``--now`` it makes
the digest of the period since the latest scheduled run up to now, stores it in the
outbox (one per name and period: running it twice in the same second sends it once)
and delivers it to the digest's channels at once; a channel that fails keeps its
delivery pending, and the running daemon retries it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from alerts.digest import Digest, from_alert, html_page, plain_text
from monitor.config import Config


class DigestUsageError(Exception):
    """Bad name or missing store: exit 2 with this one line."""


def add_arguments(parser: argparse.ArgumentParser, time_arg: Any) -> None:
    parser.add_argument("name", metavar="NAME", help="a [[digests]] name")
    parser.add_argument("--config", default="config.toml")
    parser.add_argument("--now", action="store_true",
                        help="send it now: the period since the latest scheduled run, up to "
                        "now, to the digest's channels")
    parser.add_argument("--at", type=time_arg, default=None, metavar="TIME",
                        help="take TIME (ISO 8601) as now, e.g. for a replayed or demo store")
    parser.add_argument("--store", type=Path, default=None, metavar="DB",
                        help="read this SQLite store instead of store.path (e.g. a replay's "
                        "OUT/state.db)")
    parser.add_argument("--json", action="store_true", help="print the digests.jsonl record")
    parser.add_argument("--html", type=Path, default=None, metavar="FILE",
                        help="also write the e-mail version, plots included, to FILE")


def run(config: Config, args: argparse.Namespace) -> int:
    """The command; returns the exit code."""
    from monitor.app import open_store
    from monitor.digests import Digests, compute, period_summary, stored_digests

    cfg = config.digest(args.name)
    if cfg is None:
        names = ", ".join(d.name for d in config.digests) or "none configured"
        raise DigestUsageError(f"{args.name}: no such digest in [[digests]] ({names})")
    if args.store is not None and not args.store.is_file():
        raise DigestUsageError(f"{args.store}: no such store file (--store)")
    if args.store is None and config.store.backend == "sqlite" and \
            not config.resolve(config.store.path).is_file():
        raise DigestUsageError(f"{config.resolve(config.store.path)}: no store yet (store.path; "
                               "start `crisismon run` first, or give --store)")
    store = open_store(config, args.store)
    try:
        digests = Digests(config, store)
        schedule = digests.schedules[cfg.name]
        now = args.at if args.at is not None else _wall()
        latest = schedule.latest(now)
        if args.now:
            start = now - float(cfg.period) if cfg.period is not None else \
                (latest if latest is not None and latest < now else digests.period(cfg, now))
            end = now
        else:
            if latest is None:
                raise DigestUsageError(f"{cfg.name}: its crontab ({cfg.cron}) has not fired "
                                       "before now")
            end = latest
            start = digests.period(cfg, end)
        made = [from_alert(a) for a in stored_digests(store)]
        stored = next(((d, p) for d, p in made
                       if d.name == cfg.name and d.period_end == _iso(end, config)), None)
        if stored is not None and not args.now:
            digest, plots = stored
        else:
            digest = compute(store, config, cfg, start, end, made_at=now if args.now else end)
            plots = {}
        if not plots and (args.html or (args.now and _mail(config, cfg.channels))):
            from monitor.digests import draw_plots

            plots = draw_plots(period_summary(store, config, digest))
        if args.now:
            _send(config, store, digest, plots, cfg.channels)
        if args.html:
            args.html.write_text(html_page(digest, plots), encoding="utf-8")
            print(f"wrote {args.html}", file=sys.stderr)
        if args.json:
            print(json.dumps(digest.record(), ensure_ascii=False, indent=2))
        else:
            sys.stdout.write(plain_text(digest))
    finally:
        store.close()
    return 0


def _wall() -> float:
    from monitor.clock import WallClock

    return WallClock().now()


def _iso(t: float, config: Config) -> str:
    from rules.records import format_instant

    return format_instant(t, config.tz)


def _mail(config: Config, channels: tuple[str, ...]) -> bool:
    return any(getattr(c, "type", "") == "email" and c.name in channels
               for c in config.channels)


def _send(config: Config, store: Any, digest: Digest, plots: dict[str, bytes],
          channels: tuple[str, ...]) -> None:
    """Store ``digest`` in the outbox for ``channels`` and deliver it now."""
    from alerts.channels.terminal import TerminalChannel
    from alerts.outbox import Outbox
    from monitor.clock import WallClock
    from monitor.digests import store_digest
    from monitor.paging import aclose_channels, build_paging_channels

    if not channels:
        print(f"{digest.name}: no channels configured (digests[].channels); printed only",
              file=sys.stderr)
        return
    with store.transaction():
        new = store_digest(store, digest, channels, plots)
    if new is None:
        print(f"{digest.id}: this digest was stored before; its deliveries go on as they "
              "were", file=sys.stderr)
    senders: list[Any] = [c for c in build_paging_channels(config) if c.name in channels]
    if "terminal" in channels:
        senders.append(TerminalChannel("terminal", sys.stderr, tz=config.tz))

    async def deliver() -> dict[str, int]:
        outbox = Outbox(store, {c.name: c for c in senders}, WallClock())
        try:
            return {c.name: await outbox.drain(c.name) for c in senders}
        finally:
            await aclose_channels(senders)

    sent = asyncio.run(deliver())
    for name in channels:
        what = "sent" if sent.get(name) else "not sent yet (kept in the outbox; the daemon " \
            "retries it)"
        print(f"{digest.id} -> {name}: {what}", file=sys.stderr)
