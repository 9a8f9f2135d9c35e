"""Logging: structlog key-value events; colour in a terminal, JSON lines for journald."""

from __future__ import annotations

import logging
import sys

import structlog

from monitor.config import LogConfig


def configure_logging(cfg: LogConfig, stream: object = None) -> None:
    """Set up structlog once for the process (logs go to stderr unless ``stream``)."""
    out = stream if stream is not None else sys.stderr
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
