"""The shipped unit passes ``systemd-analyze verify`` and keeps its promises.

``systemd-analyze`` comes with the Debian package ``systemd`` (.ci/run installs it). When
it is missing the test FAILS: an unverified unit must not look green.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "crisismon.service"
SHIPPED_BIN = "/opt/crisismon/.venv/bin/crisismon"


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (see .ci/run)")
    return tool


def verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """Verify ``text`` as a unit, with ExecStart pointing at this checkout's crisismon."""
    here = Path(sys.executable).parent / "crisismon"
    assert here.exists(), f"{here}: install the package first (pip install -e .)"
    unit = tmp_path / "crisismon.service"
    unit.write_text(text.replace(SHIPPED_BIN, str(here)), encoding="utf-8")
    return subprocess.run([analyze(), "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)


def test_shipped_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert SHIPPED_BIN in text
    result = verify(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    result = verify(tmp_path, UNIT.read_text(encoding="utf-8").replace("Type=notify",
                                                                         "Type=notfy"))
    assert "notfy" in result.stderr


def test_unit_settings() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    svc = parser["Service"]
    assert svc["Type"] == "notify"
    assert svc["Restart"] == "on-failure"
    assert svc["DynamicUser"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["StateDirectory"] == "crisismon"
    assert svc["WatchdogSec"] == "30s"
    assert "LoadCredential" in svc
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert svc["ExecStart"].endswith("crisismon run --config /etc/crisismon/config.toml")
