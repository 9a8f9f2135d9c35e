"""mypy, default mode, over monitor/, rules/ and alerts/ ([tool.mypy] in pyproject.toml):
clean, so a type error fails the suite like any other test (CI runs exactly pytest)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_is_clean() -> None:
    # The files and options come from pyproject.toml, as for a bare `mypy` in the repo.
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"mypy found problems:\n{done.stdout}{done.stderr}"
    checked = re.search(r"no issues found in (\d+) source files", done.stdout)
    assert checked and int(checked[1]) > 50, done.stdout  # it looked at the packages
