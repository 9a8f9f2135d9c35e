"""The ``weibo-sim`` poller demo of docs/ingest.md, run as written (only its ports and its
folder under /tmp changed, so it cannot collide with anything else on the machine).

It must page the first mention to the duty responder, dated now (the simulator moves the
recorded May times to its own start), never straight to leadership; the official reply,
fetched from the customer-service account's ``replies``, must stop the clock; and SIGTERM
must stop the daemon cleanly, logged as the signal it was.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from tests.fixtures.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
FIRST_POST = "5010000000001657"  # 08:23:01, answered by the service account at 08:25:40


def demo_block() -> str:
    """The shell block that follows "A poller demo" in docs/ingest.md."""
    doc = (ROOT / "docs" / "ingest.md").read_text(encoding="utf-8")
    at = doc.index("A poller demo")
    m = re.compile(r"```sh\n(.*?)```", re.S).search(doc, at)
    assert m is not None, "docs/ingest.md lost its poller demo"
    return m.group(1)


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Poll ``check()`` (two real processes run the demo: nothing to await) until it
    gives a true value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def alerts(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_the_readme_poller_demo_as_written(tmp_path: Path) -> None:
    sim_port, http_port = free_port(), free_port()
    script = (demo_block().replace("8080", str(sim_port)).replace("8787", str(http_port))
              .replace("/tmp/crisismon-demo", str(tmp_path / "demo")))
    assert "crisismon weibo-sim" in script and "crisismon run" in script
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "demo" / "var" / "alerts.jsonl"
    started = time.time()
    try:
        first = wait_for(lambda: [a for a in alerts(log) if a["post_id"] == FIRST_POST],
                         90, "the first mention's page")
        (page,) = first
        assert page["type"] == "mention.new" and page["level"] == 0
        at = datetime.fromisoformat(str(page["at"])).timestamp()
        assert abs(at - started) < 120, page["at"]  # now, not the recorded May day
        # The reply comes 2m39s later in the recording: move the simulator on.
        req = urllib.request.Request(f"http://127.0.0.1:{sim_port}/admin/clock",
                                     data=json.dumps({"advance": 170}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        db = tmp_path / "demo" / "var" / "crisismon.db"

        def replied() -> object:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                row = conn.execute("SELECT replied_by FROM mentions WHERE post_id = ?",
                                   (FIRST_POST,)).fetchone()
            return row and row[0]

        assert wait_for(replied, 60, "the official reply to be fetched") == "小满咖啡客服"
        assert [a for a in alerts(log) if int(str(a["level"])) > 0] == []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    stopping = [json.loads(line) for line in err.splitlines()
                if line.startswith("{") and '"stopping"' in line]
    assert [s["reason"] for s in stopping] == ["SIGTERM received"], err[-2000:]
    assert "crisismon stopped cleanly" in err
    assert "no more input" not in err
