"""The rough edges a new user hit (issue 21), each as the user meets it: the command line
in a real process, its output and exit code."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.weibo_sim import WeiboSim, weibo_time
from tests.fixtures.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "seeds" / "feeds" / "sample_day.jsonl"


def crisismon(*args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def test_check_config_reports_every_start_problem_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("""
[[brands]]
name = "快书包"
keywords = ["快书包"]
[[sources]]
type = "feed"
path = "missing/day.jsonl"
[[sources]]
type = "feed"
path = "feeds"
[[sources]]
type = "weibo_api"
brand = "快书包"
token = "env:I21_TEST_UNSET_TOKEN"
[[channels]]
type = "dingtalk"
name = "pr"
url = "env:I21_TEST_UNSET_URL"
secret = "file:/nonexistent/dingtalk-secret"
[scoring]
lexicon = "nowhere.tsv"
""", encoding="utf-8")
    (tmp_path / "feeds").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("I21_TEST_")}
    for command in ("check-config", "run"):  # run refuses exactly what check-config reports
        res = subprocess.run([sys.executable, "-m", "monitor.cli", command, "--config",
                              str(cfg)], capture_output=True, text=True, cwd=ROOT,
                             timeout=120, check=False, env=env)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.splitlines()
        assert lines[0] == f"crisismon: invalid config {cfg}"
        problems = [line.strip() for line in lines[1:]]
        want = [
            "channels[0].url: secret env:I21_TEST_UNSET_URL: environment variable "
            "I21_TEST_UNSET_URL is not set",
            "channels[0].secret: secret file:/nonexistent/dingtalk-secret: no such file "
            "/nonexistent/dingtalk-secret",
            f"sources[0].path: {tmp_path}/missing/day.jsonl: no such feed file",
            f"sources[1].path: {tmp_path}/feeds: is a directory, not a feed file (give the "
            f"files in it, e.g. {tmp_path}/feeds/*.jsonl)",
            "sources[2].token: secret env:I21_TEST_UNSET_TOKEN: environment variable "
            "I21_TEST_UNSET_TOKEN is not set",
            f"scoring.lexicon: {tmp_path}/nowhere.tsv: no such file",
        ]
        assert problems == want


def test_check_config_reports_every_kind_of_problem_in_one_run(tmp_path: Path) -> None:
    """Acceptance QA: a refused value (``http.listen``, a digest's ``cron``) hid the
    references across parts (a digest naming an unknown channel or brand), and those hid
    the start problems (an unset secret, a missing feed file): three runs to see them
    all. One run lists every one, under the file's name, and ``run`` refuses the same."""
    cfg = tmp_path / "all-kinds.toml"
    cfg.write_text("""
[sla]
reply_within = "five minutes"
[http]
listen = "nonsense"
[[brands]]
name = "快书包"
keywords = ["快书包"]
[[sources]]
type = "feed"
path = "missing/day.jsonl"
[[sources]]
type = "weibo_api"
brand = "快书包"
token = "env:I21_TEST_UNSET_TOKEN"
[[sources]]
type = "weibo_api"
brand = "快书包"
count = "many"
[[channels]]
type = "dingtalk"
name = "pr"
url = "env:I21_TEST_UNSET_URL"
[[digests]]
name = "daily"
cron = "0 9 * *"
channels = ["pr-group"]
[[digests]]
name = "weekly"
cron = "0 9 * * mon"
brands = ["快书包", "没有"]
channels = ["pr", "terminal"]
""", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("I21_TEST_")}
    want = [
        # the values refused by their own checks, in the file's order of sections ...
        'sla.reply_within: "five minutes" is not a duration (use e.g. "90s", "5m", "12h")',
        "sources[2].count: \"many\" is not a whole number",
        'http.listen: "nonsense" is not host:port (e.g. "127.0.0.1:8787")',
        'digests[0].cron: "0 9 * *" is not a five-field crontab (minute hour day month '
        'weekday, e.g. "0 9 * * *")',
        # ... the references across parts, made on the parts that loaded ...
        'digests[0].channels[0]: "pr-group" is not a [[channels]] name (or "terminal")',
        'digests[1].brands[1]: "没有" is not one of the [[brands]]',
        # ... and what would stop the start, on the parts that loaded.
        "channels[0].url: secret env:I21_TEST_UNSET_URL: environment variable "
        "I21_TEST_UNSET_URL is not set",
        f"sources[0].path: {tmp_path}/missing/day.jsonl: no such feed file",
        "sources[1].token: secret env:I21_TEST_UNSET_TOKEN: environment variable "
        "I21_TEST_UNSET_TOKEN is not set",
    ]
    for command in ("check-config", "run"):
        res = subprocess.run([sys.executable, "-m", "monitor.cli", command, "--config",
                              str(cfg)], capture_output=True, text=True, cwd=ROOT,
                             timeout=120, check=False, env=env)
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        lines = res.stderr.splitlines()
        assert lines[0] == f"crisismon: invalid config {cfg}", command
        assert [line.strip() for line in lines[1:]] == want, command


def test_check_config_refuses_a_personal_token_run_would_refuse(tmp_path: Path) -> None:
    """A ``[[http.users]]`` token that does not resolve stops ``run`` at start; check-config
    said OK for it, and run's message lacked the file's name."""
    cfg = tmp_path / "users.toml"
    cfg.write_text("""
[store]
path = "var/state.db"
[alerts]
log = "var/alerts.jsonl"
[http]
listen = "127.0.0.1:1"
token = "env:I21_TEST_SHARED"
[[http.users]]
name = "小王"
token = "file:/nonexistent/xiaowang-token"
[[http.users]]
name = "老张"
token = "env:I21_TEST_LAOZHANG"
[[brands]]
name = "快书包"
keywords = ["快书包"]
""", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("I21_TEST_")}
    for command in ("check-config", "run"):
        res = subprocess.run([sys.executable, "-m", "monitor.cli", command, "--config",
                              str(cfg)], capture_output=True, text=True, cwd=ROOT,
                             timeout=120, check=False, env=env)
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        lines = res.stderr.splitlines()
        assert lines[0] == f"crisismon: invalid config {cfg}"
        assert [line.strip() for line in lines[1:]] == [
            "http.users[0].token: secret file:/nonexistent/xiaowang-token: no such file "
            "/nonexistent/xiaowang-token",
            "http.users[1].token: secret env:I21_TEST_LAOZHANG: environment variable "
            "I21_TEST_LAOZHANG is not set",
        ]


def test_check_config_says_when_the_api_token_will_be_made_up(tmp_path: Path) -> None:
    """docs/operations.md checks the config with the service's credentials: a missing
    api-token credential still passes (run makes a token up, as documented) but must be
    said, or the dashboard links and ``crisismon ack`` break at every restart unnoticed."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[http]
token = "credential:api-token"
[[brands]]
name = "快书包"
keywords = ["快书包"]
""", encoding="utf-8")
    res = crisismon("check-config", "--config", str(cfg),
                    env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [
        f"note: http.token: secret credential:api-token: no such file {creds}/api-token; "
        "run makes up a token at every start (the dashboard link and `crisismon ack` stop "
        "working after a restart)"]
    (creds / "api-token").write_text("t0ken", encoding="utf-8")
    res = crisismon("check-config", "--config", str(cfg),
                    env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_the_shipped_config_still_checks_ok() -> None:
    res = crisismon("check-config")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("config.toml: OK")


def test_a_busy_port_names_the_key_and_no_dashboard_address_is_printed(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cfg = tmp_path / "c.toml"
        cfg.write_text(f"""
[http]
listen = "127.0.0.1:{port}"
token = "env:I21_TEST_NO_TOKEN"
[log]
format = "json"
[[brands]]
name = "快书包"
keywords = ["快书包"]
""", encoding="utf-8")
        res = crisismon("run", "--config", str(cfg))
    assert res.returncode == 1
    assert (f"crisismon: error: http.listen: 127.0.0.1:{port} is already in use by another "
            "process") in res.stderr
    assert "set [http] listen to a free host:port" in res.stderr
    assert "dashboard?token=" not in res.stderr + res.stdout
    assert "Traceback" not in res.stderr


def test_report_on_a_damaged_folder_names_the_file_and_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert crisismon("replay", str(SAMPLE), "--out", str(out), "--quiet").returncode == 0
    lines = (out / "mentions.jsonl").read_text(encoding="utf-8").splitlines()
    lines[6] = lines[6][:40]  # cut mid-record, as a full disk would
    (out / "mentions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = crisismon("report", str(out))
    assert res.returncode == 2
    assert res.stderr.startswith(f"crisismon: error: {out}/mentions.jsonl:7: not a JSON line")
    assert "replay again into this folder" in res.stderr and "Traceback" not in res.stderr
    assert "JSONDecodeError" not in res.stderr


@pytest.mark.parametrize("command", [["replay"], ["compare", "config.toml", "config.toml"]])
def test_a_feed_that_is_a_directory_says_so(command: list[str]) -> None:
    res = crisismon(*command, "seeds/feeds")
    assert res.returncode == 2
    assert res.stderr.strip() == ("crisismon: error: seeds/feeds: is a directory, not a feed "
                                  "file (give the files in it, e.g. seeds/feeds/*.jsonl)")
    res = crisismon("weibo-sim", "--feed", "seeds/feeds", "--port", str(free_port()))
    assert res.returncode == 2 and "seeds/feeds: is a directory" in res.stderr


def test_weibo_sim_moves_recorded_times_to_its_start_and_serves_own_replies() -> None:
    posts = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    start = 1_900_000_000.0  # the wall-clock time the server "started"
    sim = WeiboSim(posts, speed=0, tokens={"t": "7000000001", "s": "7000000002"},
                   rebase_to=start)
    sim.advance(200)
    items, _ = sim.query("search", "小满咖啡")
    first = items[-1]  # newest first: the oldest is last
    assert first["id"] == "5010000000001657"
    assert first["created_at"] == weibo_time(start)  # recorded 08:23:01 -> the start
    replies, _ = sim.query("by_me", "7000000002")
    (reply,) = replies
    assert reply["status"]["id"] == "5010000000001657"
    assert reply["created_at"] == weibo_time(start + 159)  # 2m39s later, as recorded
    assert sim.query("by_me", "7000000001")[0] == []  # the brand account wrote none yet
    plain = WeiboSim(posts, speed=0)
    plain.advance(200)
    assert plain.query("search", "小满咖啡")[0][-1]["created_at"] == first_recorded(posts)


def first_recorded(posts: list[dict[str, object]]) -> object:
    return next(p["created_at"] for p in posts if p["id"] == "5010000000001657")


def test_plots_find_a_cjk_font_installed_after_matplotlibs_cache(tmp_path: Path) -> None:
    """A font cache written before fonts-noto-cjk was installed: the plots still speak
    Chinese, the cache is rewritten, and the replay prints no matplotlib warning."""
    if shutil.which("fc-list") is None or not subprocess.run(
            ["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
            check=False).stdout.strip():
        pytest.fail("no CJK font installed (apt-get install fonts-noto-cjk; .ci/run does)")
    cache = tmp_path / "mpl"
    env = {"MPLCONFIGDIR": str(cache)}
    # The stale cache: matplotlib's own list with every CJK font taken out.
    stale = subprocess.run([sys.executable, "-c", """
import matplotlib, os
from matplotlib import font_manager as fm
m = fm.fontManager
m.ttflist = [f for f in m.ttflist if 'CJK' not in f.name and 'Hei' not in f.name]
fm.json_dump(m, os.path.join(matplotlib.get_cachedir(),
                             f'fontlist-v{fm.FontManager.__version__}.json'))
print(len(m.ttflist))
"""], capture_output=True, text=True, env={**os.environ, **env}, check=False, timeout=120)
    assert stale.returncode == 0, stale.stderr
    out = tmp_path / "out"
    res = crisismon("replay", str(SAMPLE), "--out", str(out), "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr and "missing from font" not in res.stderr
    assert "no CJK font found" not in res.stderr
    assert (out / "mentions_per_hour.png").stat().st_size > 0
    probe = subprocess.run([sys.executable, "-c", """
from matplotlib import font_manager as fm
print(sorted({f.name for f in fm.fontManager.ttflist if 'CJK' in f.name})[:1])
"""], capture_output=True, text=True, env={**os.environ, **env}, check=False, timeout=120)
    assert "CJK" in probe.stdout, probe.stdout + probe.stderr  # the cache was rewritten


def test_operations_install_creates_every_credential_its_config_names() -> None:
    """docs/operations.md's install steps make each ``credential:NAME`` its example config
    uses (the API token included), and the unit loads each of them."""
    import re

    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    install = doc[doc.index("## Install with systemd"):doc.index("## The unit, explained")]
    named = set(re.findall(r'"credential:([\w.-]+)"', install))
    made = set(re.findall(r"tee /etc/crisismon/credentials/([\w.-]+)", install))
    unit = (ROOT / "deploy" / "crisismon.service").read_text(encoding="utf-8")
    loaded = set(re.findall(r"LoadCredential=-?([\w.-]+):", unit))
    assert "api-token" in named
    assert named <= made, f"no install step creates {named - made}"
    assert named <= loaded, f"the unit does not load {named - loaded}"
    assert "CREDENTIALS_DIRECTORY=/etc/crisismon/credentials" in install  # checked as run


def test_operations_example_config_checks_ok_with_the_credentials_made(
        tmp_path: Path) -> None:
    """The ``config.toml`` tables docs/operations.md tells an operator to use, with the
    bundled config's brand and the credentials its install steps create, pass the
    check-config step the install runs (it said ``sources[0].brand: is required``)."""
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    install = doc[doc.index("## Install with systemd"):doc.index("## The unit, explained")]
    example = install[install.index("```toml") + len("```toml"):install.rindex("```")]
    bundled = (ROOT / "config.toml").read_text(encoding="utf-8")
    start = bundled.index("\n[[brands]]\n")
    brand = bundled[start:bundled.index("\n\n", start + 1)]
    cfg = tmp_path / "config.toml"
    cfg.write_text(example.replace("/var/lib/crisismon", str(tmp_path / "state")) + "\n"
                   + brand + "\n", encoding="utf-8")
    creds = tmp_path / "credentials"
    creds.mkdir()
    for name in ("weibo-token", "api-token"):
        (creds / name).write_text("s3cret", encoding="utf-8")
    res = crisismon("check-config", "--config", str(cfg),
                    env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{cfg}: OK (1 brands: 小满咖啡; 1 sources)")
    assert res.stderr == ""
