"""Typed config: durations, key paths in every error, unknown keys refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_config
from rules.records import format_duration, parse_duration

ROOT = Path(__file__).resolve().parents[2]
BRAND = '[[brands]]\nname = "快书包"\nkeywords = ["快书包"]\nofficial_accounts = ["1"]\n'


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("5m", 300), ("12h", 43200), ("1.5h", 5400), ("2d", 172800),
    (" 3m ", 180), ("250ms", 0.25), ("1w", 604800),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["five minutes", "5", "m5", "-5m", "5 minutes", "", "5M"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("90s", "5m", "12h", "2d"):
        assert format_duration(parse_duration(text)) == text


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "test.toml")
    return err.value.problems


def test_the_bundled_config_is_valid() -> None:
    cfg = load_config(ROOT / "config.toml")
    assert cfg.sla.reply_within == 300
    assert cfg.crisis.checkpoints == (3600, 4 * 3600, 12 * 3600, 24 * 3600)
    assert cfg.brands[0].official_accounts == ("7000000001", "7000000002")
    assert cfg.resolve("x") == ROOT / "x"


def test_defaults_match_the_contract() -> None:
    cfg = parse_config(BRAND)
    assert (cfg.sla.warn_at, cfg.sla.reply_within, cfg.sla.escalate_after,
            cfg.sla.public_followup_within) == (180, 300, 900, 1800)
    assert cfg.crisis.window == (12 * 3600, 24 * 3600)
    assert cfg.crisis.statement_due == 3600


def test_error_names_the_key_path() -> None:
    assert problems('[sla]\nreply_within = "five minutes"\n' + BRAND) == [
        'sla.reply_within: "five minutes" is not a duration (use e.g. "90s", "5m", "12h")']


def test_every_problem_is_reported_at_once() -> None:
    found = problems('[sla]\nwarn_at = 5\n[crisis]\nwindow = ["12h"]\nbogus = 1\n'
                     '[[brands]]\nname = "x"\nkeywords = "x"\n')
    assert 'sla.warn_at: 5 is not a duration (use e.g. "90s", "5m", "12h")' in found
    assert "crisis.window: needs exactly 2 items, got 1" in found
    assert any(p.startswith("crisis.bogus: unknown key") for p in found)
    assert 'brands[0].keywords: "x" is not a list' in found


def test_cross_field_checks() -> None:
    assert "sla.warn_at: must be positive and not after reply_within" in problems(
        '[sla]\nwarn_at = "10m"\n' + BRAND)
    assert "crisis.checkpoints: must be in increasing order without repeats" in problems(
        '[crisis]\ncheckpoints = ["4h", "1h"]\n' + BRAND)
    assert 'brands[1].name: "快书包" is used by another brand' in problems(BRAND + BRAND)
    assert "brands: at least one [[brands]] table is required" in problems("")
    assert problems('timezone = "Mars/Olympus"\n' + BRAND) == [
        'timezone: "Mars/Olympus" is not a known time zone (e.g. "Asia/Shanghai")']


def test_source_types_are_told_apart() -> None:
    (found,) = problems(BRAND + '[[sources]]\ntype = "carrier-pigeon"\n')
    # More source types join the list over time; "feed" is always one of them.
    assert found.startswith('sources[0].type: "carrier-pigeon" is not one of "feed"')
    found = problems(BRAND + '[[sources]]\ntype = "feed"\n')
    assert "sources[0].path: is required (a string)" in found


def test_toml_syntax_error_is_one_line() -> None:
    found = problems("[sla\n")
    assert len(found) == 1 and found[0].startswith("(toml)")


def test_check_config_exits_2_with_the_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sla]\nreply_within = "five minutes"\n' + BRAND, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "check-config", "--config",
                          str(bad)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert run.returncode == 2
    assert 'sla.reply_within: "five minutes" is not a duration' in run.stderr
    assert "Traceback" not in run.stderr


def test_check_config_accepts_the_bundled_config() -> None:
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "check-config"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "check-config", "--config",
                          str(tmp_path / "nope.toml")], capture_output=True, text=True,
                         cwd=ROOT, check=False)
    assert run.returncode == 2 and "file not found" in run.stderr


def test_paging_keys_are_typed_and_checked_with_their_key_paths() -> None:
    slack_bot = ('[[channels]]\ntype = "slack"\nname = "pr-slack"\ntoken = "env:SLACK_BOT_TOKEN"\n'
                 'channel = "C0123456789"\nbroadcast = ["P1"]\n')
    ok = parse_config(BRAND + slack_bot + '[[paging.silences]]\nbrand = ["快书包"]\n'
                      'severities = ["P3", "P4"]\n[[paging.rate_limits]]\nchannel = "pr-slack"\n')
    assert ok.paging.silences[0].severities == ("P3", "P4")
    assert ok.channels[0].broadcast == ("P1",)  # type: ignore[union-attr]
    found = problems(BRAND + '[[channels]]\ntype = "slack"\nname = "s"\ntoken = "env:T"\n'
                     '[[paging.silences]]\nseverities = ["P1"]\n')
    assert found == [
        'channels[0].channel: a bot (token) needs the conversation id, e.g. "C0123456789"',
        "paging.silences[0].severities: P1 always pages; list only P2, P3, P4"]
    assert problems(BRAND + slack_bot + '[[paging.rate_limits]]\nchannel = "nowhere"\n') == [
        'paging.rate_limits[0].channel: "nowhere" is not a [[channels]] name']


def test_a_config_error_survives_pickling() -> None:
    """A forked worker (the replay's feed reader) hands its errors over as pickles."""
    import pickle

    err = ConfigError(["scoring: /nowhere/model.gz does not exist", "sla.warn_at: bad"],
                      "config.toml")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ConfigError
    assert back.problems == err.problems and back.source == "config.toml"
    assert str(back) == str(err)


def test_a_refused_part_does_not_hide_the_checks_across_the_others() -> None:
    """The loader goes on past a refused value: the references across parts are checked
    on what loaded, and the partial config comes with the error for the start checks."""
    slack = '[[channels]]\ntype = "slack"\nname = "pr"\nurl = "env:SLACK_URL"\n'
    with pytest.raises(ConfigError) as err:
        parse_config('timezone = 8\n[http]\nlisten = "nonsense"\n' + BRAND + slack
                     + '[[routes]]\nmin_level = "high"\n[[routes]]\nchannels = ["nowhere"]\n'
                     + '[[digests]]\nname = "d"\ncron = "0 9 * * *"\nbrands = ["别家"]\n',
                     "test.toml")
    assert err.value.problems == [
        "timezone: 8 is not a string",
        'http.listen: "nonsense" is not host:port (e.g. "127.0.0.1:8787")',
        "routes[0].min_level: \"high\" is not a whole number",
        'routes[1].channels[0]: "nowhere" is not a [[channels]] name (known: pr)',
        'digests[0].brands[0]: "别家" is not one of the [[brands]]']
    partial = err.value.config
    assert partial is not None
    assert partial.timezone is None and partial.routes[0] is None  # refused: left out
    assert partial.http.listen == "nonsense"  # typed, only its own check failed: kept
    assert partial.channels[0].name == "pr" and partial.brands[0].name == "快书包"


def test_a_refused_list_item_hides_no_name_and_invents_no_problem() -> None:
    """A brand or channel that was refused may be the one a reference names: saying the
    reference is unknown would send the user after the wrong key."""
    source = '[[sources]]\ntype = "weibo_api"\nbrand = "别家"\n'
    found = problems(BRAND + '[[brands]]\nname = "别家"\nkeywords = 5\n' + source
                     + '[[routes]]\nchannels = ["pr"]\n'
                     + '[[channels]]\ntype = "slack"\nname = "pr"\nurl = 5\n')
    assert found == ["brands[1].keywords: 5 is not a list",
                     "channels[0].url: 5 is not a string"]
