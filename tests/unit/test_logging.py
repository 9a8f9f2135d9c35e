"""Log lines: where they go (service mode), and the post id and brand on lines about a post."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from monitor.app import build_pipeline
from monitor.config import LogConfig
from monitor.secrets import Secret
from monitor.store import Store
from monitor.telemetry import configure_logging, log_stream, service_mode
from rules.records import Post
from tests.factories import BRAND, T0, config, post


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(LogConfig(format="json"), stream=out)
    yield out
    structlog.reset_defaults()


def test_service_mode_means_stdout_is_the_journal(tmp_path: Path) -> None:
    with (tmp_path / "x").open("w") as f:
        st = os.fstat(f.fileno())
        journal = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert service_mode(journal, f.fileno())
        assert not service_mode({"JOURNAL_STREAM": "1:2"}, f.fileno())  # inherited, elsewhere
        assert not service_mode({}, f.fileno())
    assert log_stream(LogConfig(stream="stdout")) is sys.stdout
    assert log_stream(LogConfig(stream="stderr"), journal) is sys.stderr
    assert log_stream(LogConfig(), {}) is sys.stderr


class BrokenScorer:
    """A scorer that fails, so the pipeline logs about the post it was handling."""

    def score(self, post: Post, p: float | None = None) -> None:
        raise RuntimeError("model file corrupt")

    def score_many(self, texts: list[str]) -> list[float]:
        raise RuntimeError("model file corrupt")


def test_lines_about_a_post_carry_its_id_and_brand(lines: io.StringIO, tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipeline = build_pipeline(config(), store, ["log"], scorer=BrokenScorer())  # type: ignore[arg-type]
    with store.transaction():
        assert pipeline.handle(post(T0, pid="777"), T0) == []
    structlog.get_logger("after").info("unrelated")
    recs = [json.loads(x) for x in lines.getvalue().splitlines()]
    skipped = next(r for r in recs if r["event"] == "event skipped: handling it failed")
    assert (skipped["post_id"], skipped["brand"]) == ("777", BRAND)
    assert "post_id" not in recs[-1] and "brand" not in recs[-1]  # the context is unbound
    store.close()


def test_secrets_print_masked(lines: io.StringIO) -> None:
    structlog.get_logger("t").info("login", token=Secret("s3cr3t"))
    assert "s3cr3t" not in lines.getvalue() and "***" in lines.getvalue()


def test_a_plain_post_that_fails_to_store_is_logged_counted_and_skipped(
        lines: io.StringIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A post the replay's reader found plain (no brand, no official author, no story)
    takes ``handle``'s short way, which logs and counts a failure as the long one does."""
    store = Store(tmp_path / "s.db")
    pipeline = build_pipeline(config(), store, ["log"])
    plain = post(T0, text="今天天气不错", pid="888")
    real = store.add_event

    def broken(event: object, now: float) -> bool:
        raise RuntimeError("disk on fire")

    with store.transaction():
        pipeline.prepare([plain], assessed={}, decided={})  # as the reader hands it over
        monkeypatch.setattr(store, "add_event", broken)
        assert pipeline.handle(plain, T0) == []
        monkeypatch.setattr(store, "add_event", real)
        pipeline.prepare([plain], assessed={}, decided={})
        assert pipeline.handle(plain, T0) == [] and pipeline.handle(plain, T0) == []
    assert (pipeline.stats.failed, pipeline.stats.posts, pipeline.stats.duplicates) == (1, 1, 1)
    recs = [json.loads(x) for x in lines.getvalue().splitlines()]
    skipped = next(r for r in recs if r["event"] == "event skipped: handling it failed")
    assert skipped["post_id"] == "888" and "disk on fire" in skipped["exception"]
    assert store.has_post("888")
    store.close()
