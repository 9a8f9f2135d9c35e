"""Rewrite the expected outputs of the golden replays (``python -m tests.golden.regen
[NAME...]``); review the diff (``git diff tests/golden``) before committing it."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from monitor.config import load_config
from monitor.replay import replay

HERE = Path(__file__).resolve().parent
FILES = ("alerts.jsonl", "mentions.jsonl", "incidents.jsonl", "deliveries.jsonl")
"""The outputs compared: every deterministic file a replay writes."""


def cases() -> list[str]:
    """The golden cases: every folder here with a feed and a config."""
    return sorted(d.name for d in HERE.iterdir()
                  if (d / "feed.jsonl").is_file() and (d / "config.toml").is_file())


def run_case(name: str, out: Path) -> None:
    """Replay case ``name`` into ``out`` (the JSON files only, no analyst report)."""
    case = HERE / name
    config = load_config(case / "config.toml")
    asyncio.run(replay(config, [case / "feed.jsonl"], out, analyst_report=False))


def regen(name: str) -> list[str]:
    """Replay ``name`` and store its outputs as expected; the files that changed."""
    expected = HERE / name / "expected"
    expected.mkdir(exist_ok=True)
    changed = []
    with tempfile.TemporaryDirectory(prefix=f"golden-{name}-") as tmp:
        run_case(name, Path(tmp))
        for f in FILES:
            new = Path(tmp) / f
            old = expected / f
            if not old.is_file() or old.read_bytes() != new.read_bytes():
                changed.append(f)
                shutil.copyfile(new, old)
    return changed


def main(argv: list[str]) -> int:
    import logging

    import structlog

    # The outbox's debug lines (each page judged) are not what a regeneration reports.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    names = argv or cases()
    unknown = sorted(set(names) - set(cases()))
    if unknown:
        print(f"no such golden case: {', '.join(unknown)} (have: {', '.join(cases())})",
              file=sys.stderr)
        return 2
    for name in names:
        changed = regen(name)
        print(f"{name}: {'changed ' + ', '.join(changed) if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
