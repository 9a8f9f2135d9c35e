"""Golden replays: each case's outputs equal the checked-in ones byte for byte.

A deterministic regression (a changed alert, a page that is no longer rate-limited, a
mention that lost a field) fails here with a readable diff; if the change is intended,
``python -m tests.golden.regen NAME`` rewrites the expected files for review.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.golden.regen import FILES, HERE, cases, run_case

MAX_DIFF_LINES = 60


def readable_diff(expected: Path, actual: Path) -> str:
    """A unified diff of two JSONL files, cut to ``MAX_DIFF_LINES`` lines."""
    old = expected.read_text(encoding="utf-8").splitlines(keepends=True)
    new = actual.read_text(encoding="utf-8").splitlines(keepends=True)
    diff = list(difflib.unified_diff(old, new, f"expected/{expected.name}",
                                     f"replayed/{actual.name}", n=1))
    cut = diff[:MAX_DIFF_LINES]
    if len(diff) > MAX_DIFF_LINES:
        cut.append(f"... {len(diff) - MAX_DIFF_LINES} more diff lines\n")
    return "".join(cut)


def test_the_golden_cases_cover_the_practice() -> None:
    assert {"ladder", "argument", "private_resolve", "crisis", "paging"} <= set(cases())


@pytest.mark.parametrize("name", cases())
def test_golden_replay(name: str, tmp_path: Path) -> None:
    run_case(name, tmp_path)
    problems = []
    for f in FILES:
        expected = HERE / name / "expected" / f
        actual = tmp_path / f
        if not expected.is_file():
            problems.append(f"{f}: no expected file (python -m tests.golden.regen {name})")
        elif not actual.is_file():
            problems.append(f"{f}: the replay did not write it")
        elif expected.read_bytes() != actual.read_bytes():
            problems.append(f"{f} differs:\n{readable_diff(expected, actual)}")
    assert not problems, (f"golden replay {name!r} changed; if intended, run "
                          f"`python -m tests.golden.regen {name}` and review the diff\n\n"
                          + "\n".join(problems))


def test_a_replay_stopped_early_is_the_full_replays_beginning(tmp_path: Path) -> None:
    """``--until``: the outbox's outcomes up to then are the full run's, no more."""
    import asyncio
    from datetime import datetime

    from monitor.config import load_config
    from monitor.replay import replay

    case = HERE / "paging"
    until = "2026-05-20T09:30:00+08:00"
    asyncio.run(replay(load_config(case / "config.toml"), [case / "feed.jsonl"], tmp_path,
                       until=datetime.fromisoformat(until).timestamp(),
                       analyst_report=False))
    full = (case / "expected" / "deliveries.jsonl").read_text(encoding="utf-8").splitlines()
    early = (tmp_path / "deliveries.jsonl").read_text(encoding="utf-8").splitlines()
    assert early == [line for line in full if line[8:33] <= until]
    assert 0 < len(early) < len(full)
