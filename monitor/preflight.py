"""What ``crisismon run`` would refuse at start, found without starting anything.

``check-config`` and ``run`` share this list, so a config ``check-config`` passes is one
``run`` starts with: every secret reference resolves (an unset environment variable, a
missing file), every feed file is there, the model, lexicon and tier files load, and the
folders the daemon writes to can be written. Every problem is reported at once, each
with its key path, like the config loader's own problems.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from monitor.config import (
    Config,
    ConfigError,
    FeedSourceConfig,
    HttpSourceConfig,
    MqttSourceConfig,
    load_config,
)
from monitor.feed import feed_problem
from monitor.secrets import SecretError, is_reference, resolve_secret
from rules.policy import CrisisConfig


def _secret(key: str, ref: str, notes: list[str]) -> Iterator[str]:
    if not ref or not is_reference(ref):
        return
    if ref.startswith("credential:") and not os.environ.get("CREDENTIALS_DIRECTORY"):
        # Only systemd sets it, for the service: from a shell the file cannot be found.
        notes.append(f"{key}: {ref} not checked ($CREDENTIALS_DIRECTORY is not set outside "
                     "the service)")
        return
    try:
        resolve_secret(ref)
    except SecretError as exc:
        yield f"{key}: {exc}"


def _writable_dir(key: str, folder: Path) -> Iterator[str]:
    """``folder`` exists and is writable, or can be created (its first existing parent is
    a writable folder)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        yield f"{key}: {probe} is not a folder (needed for {folder})"
    elif not os.access(probe, os.W_OK | os.X_OK):
        yield f"{key}: cannot write in {probe} (permission denied)"


def start_problems(config: Config, notes: list[str] | None = None,
                   models: bool = True) -> list[str]:
    """Every reason ``run`` would refuse ``config``, one ``key.path: what`` line each.
    ``notes`` collects what could not be checked here (credentials outside systemd);
    ``models`` False leaves the scoring files to the caller, which loads them anyway."""
    notes = [] if notes is None else notes
    problems: list[str] = []
    # A config that failed its own checks comes here partial (monitor.config.ConfigError
    # .config): a refused part or list item is None and is skipped.
    for i, ch in enumerate(config.channels or ()):
        if ch is None:
            continue
        for f in dataclasses.fields(ch):
            value = getattr(ch, f.name)
            if isinstance(value, str):
                problems += _secret(f"channels[{i}].{f.name}", value, notes)
    for i, sc in enumerate(config.sources or ()):
        where = f"sources[{i}]"
        if isinstance(sc, FeedSourceConfig):
            problem = feed_problem(config.resolve(sc.path))
            if problem:
                problems.append(f"{where}.path: {problem}")
        elif isinstance(sc, HttpSourceConfig):
            problems += _secret(f"{where}.token", sc.token, notes)
        elif isinstance(sc, MqttSourceConfig):
            problems += _secret(f"{where}.password", sc.password, notes)
    if config.commands and config.commands.enabled:
        problems += _secret("commands.password", config.commands.password, notes)
    if config.http and config.http.enabled:
        # Personal tokens stop the start when missing (monitor.http.load_auth); the shared
        # one does not: unset, the daemon makes one up for the run and prints it. That is
        # said as a note, since a service's links and scripts then break at each restart.
        notes += [f"{p}; run makes up a token at every start (the dashboard link and "
                  "`crisismon ack` stop working after a restart)"
                  for p in _secret("http.token", config.http.token, notes)]
        for i, user in enumerate(config.http.users):
            problems += _secret(f"http.users[{i}].token", user.token, notes)
    if config.store and config.store.backend == "sqlite":
        problems += _writable_dir("store.path", config.resolve(config.store.path).parent)
    if config.alerts:
        problems += _writable_dir("alerts.log", config.resolve(config.alerts.log).parent)
    if config.record and config.record.enabled:
        problems += _writable_dir("record.dir", config.resolve(config.record.dir))
    if models:
        problems += _model_problems(config)
    return problems


def _model_problems(config: Config) -> list[str]:
    """The scoring files (model, lexicons, tiers), each loaded as ``run`` loads them."""
    from monitor.app import build_argument_guard, build_scorer

    if config.scoring is None:
        return []
    if config.brands is None or config.crisis is None:
        # A partial config: the files are what is checked here, and the scorer also
        # reads the brands' words and one crisis setting; stand-ins do for those.
        fill = {"brands": tuple(b for b in config.brands or () if b),
                "crisis": config.crisis or CrisisConfig()}
        base_dir = config.base_dir
        config = dataclasses.replace(config, **fill)
        object.__setattr__(config, "base_dir", base_dir)
    problems = []
    for build in (build_scorer, build_argument_guard):
        try:
            build(config)
        except ConfigError as exc:
            problems += exc.problems
    return problems


def load_checked(path: str, models: bool = True) -> tuple[Config, list[str]]:
    """``path`` loaded and checked as ``run`` needs it: the config and the notes on what
    could not be checked, or ConfigError with every problem at once.

    The problems come in one list, in this order: the values refused by the config's
    own checks, the references across parts (a digest naming an unknown channel), then
    what would stop the start (an unset secret, a missing feed file), found on the
    parts that loaded. A key that already has a problem gets no second line.
    ``models`` False leaves the scoring files out when the config is otherwise fine (the
    caller loads them anyway); a config refused for other reasons has them checked too,
    so ``run`` refuses with the list ``check-config`` prints.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        if exc.config is None:  # unreadable, or not TOML: nothing to check further
            raise
        keys = {problem.split(": ", 1)[0] for problem in exc.problems}
        more = [p for p in start_problems(exc.config, [], models=True)
                if p.split(": ", 1)[0] not in keys]
        raise ConfigError(exc.problems + more, exc.source) from None
    notes: list[str] = []
    problems = start_problems(config, notes, models)
    if problems and not models:
        problems += _model_problems(config)
    if problems:
        raise ConfigError(problems, path)
    return config, notes
