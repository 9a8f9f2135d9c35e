"""Logging: structlog key-value events; colour in a terminal, JSON lines for journald."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

import structlog

from monitor.config import LogConfig


def service_mode(environ: Mapping[str, str] | None = None, fd: int = 1) -> bool:
    """True when ``fd`` (stdout) is systemd's connection to the journal.

    systemd sets ``$JOURNAL_STREAM`` to ``<device>:<inode>`` of that stream; a child that
    inherited the variable but writes elsewhere (a pipe in a test) does not match it.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def log_stream(cfg: LogConfig, environ: Mapping[str, str] | None = None) -> TextIO:
    """The stream log lines go to: ``log.stream``, where ``auto`` is stdout in service
    mode (journald reads it; one stream keeps lines in order) and stderr otherwise (so a
    terminal or a pipe keeps stdout for the alerts the terminal channel prints)."""
    if cfg.stream == "stdout" or (cfg.stream == "auto" and service_mode(environ)):
        return sys.stdout
    return sys.stderr


def logs_on_stdout(cfg: LogConfig) -> bool:
    """True when log lines share stdout (then the terminal alert channel stays off)."""
    return log_stream(cfg) is sys.stdout


def configure_logging(cfg: LogConfig, stream: object = None) -> None:
    """Set up structlog once for the process (logs go to ``log_stream`` unless ``stream``).

    Every line carries the context bound with ``structlog.contextvars`` (the pipeline
    binds ``post_id`` and ``brand`` while it handles a post, the outbox while it sends)."""
    out = stream if stream is not None else log_stream(cfg)
    level = getattr(logging, cfg.level.upper())
    fmt = cfg.format
    if fmt == "auto":
        fmt = "console" if getattr(out, "isatty", lambda: False)() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=True) if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=False),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
