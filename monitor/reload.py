"""SIGHUP: swap brands, keywords, routing and scoring into the running pipeline.

The engine is NOT rebuilt: its armed deadlines, open reply clocks and incidents stay as
they are, so a reload never loses or re-sends a page. What changes applies to *new* posts
only: what they are matched against (the matcher), how they are scored, the reply rule
(``[sla]``) their mentions get and the crisis settings (``[crisis]``) of incidents opened
from now on; who is paged (the router); the engine's brand set (a new brand gets its
activity record). A mention keeps the reply rule it was first seen under, an incident
the settings it opened under (``rules.engine``): decisions are made once. The engine is
snapshotted in the transaction that swaps the config in, so a restart feeds the events
after it under the config they were handled with. Sections that shape the process itself
(store, sources, http, log) need a restart; a reload that changes them says so in the log
and keeps the old ones.

An invalid file is refused whole: every problem is logged with its key path and the
daemon keeps running on the config it had.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from monitor.app import brand_words, build_argument_guard, build_router, build_scorer
from monitor.config import Config, ConfigError, load_config
from rules.crisis import BrandActivity
from rules.matching import BrandMatcher
from rules.scoring import Scorer

if TYPE_CHECKING:
    from monitor.daemon import Daemon

log = structlog.get_logger(__name__)

RESTART = ("store", "sources", "http", "log", "record", "alerts", "timezone", "digests")
"""Sections that only take effect on restart (the digest task keeps its schedules)."""


async def prepare(old: Config, new: Config, scorer: Scorer) -> Scorer:
    """The scorer for ``new``: rebuilt (off the loop) if scoring changed, else extended."""
    if new.scoring != old.scoring:
        return await asyncio.to_thread(build_scorer, new)
    add_words = getattr(scorer.sentiment, "add_words", None)
    if callable(add_words):
        add_words(brand_words(new))  # new brand names stay whole in the segmenter
    return scorer


async def reload_config(daemon: Daemon, new: Config) -> bool:
    """Apply ``new`` to the running daemon; False (and nothing changed) if it cannot be."""
    old = daemon.config
    pipeline = daemon.pipeline
    try:
        scorer = await prepare(old, new, pipeline.scorer)
        argument = build_argument_guard(new)
        matcher = BrandMatcher(new.brands)
    except ConfigError as exc:
        refuse(exc)
        daemon.metrics.reloads.labels("refused").inc()
        return False
    kept = [k for k in RESTART if getattr(old, k) != getattr(new, k)]
    router = build_router(new)  # ladder, routes and on-call rotations
    effective = replace(new, **{k: getattr(old, k) for k in RESTART})
    object.__setattr__(effective, "base_dir", old.base_dir)

    def swap() -> None:
        # Everything is built; now swap in one step (no await between), so a batch sees
        # either the old config or the new one, never a mix; and snapshot the engine in
        # the same transaction (see the module docstring).
        with daemon.store.transaction():
            engine = pipeline.engine
            engine.brands = {b.name: b for b in new.brands} | {
                name: b for name, b in engine.brands.items()
                if name not in {x.name for x in new.brands}}
            for b in new.brands:
                engine.activity.setdefault(b.name, BrandActivity())
            engine.sla = new.sla
            engine.crisis = new.crisis
            pipeline.matcher = matcher
            pipeline.router = router
            pipeline.scorer = scorer
            pipeline.argument = argument
            pipeline.config = effective
            daemon.config = effective
            daemon.take_snapshot()

    await daemon.locks.retry("reload", swap)
    engine = pipeline.engine
    daemon.metrics.reloads.labels("applied").inc()
    added = sorted({b.name for b in new.brands} - {b.name for b in old.brands})
    removed = sorted({b.name for b in old.brands} - {b.name for b in new.brands})
    log.info("config reloaded", brands=[b.name for b in new.brands], added=added,
             removed=removed, pending_deadlines=engine.pending())
    if kept:
        log.warning("config changes that need a restart were not applied", sections=kept)
    return True


async def reload_from(daemon: Daemon, path: str | Path) -> bool:
    """Read ``path`` and apply it (SIGHUP); an invalid file is refused, the old config kept."""
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        refuse(exc)
        daemon.metrics.reloads.labels("refused").inc()
        return False
    return await daemon.reload(new)


def refuse(exc: ConfigError) -> None:
    log.error("config reload refused; keeping the running config", file=exc.source,
              problems=exc.problems)
