"""Live sources from the config: Weibo API pollers and MQTT subscriptions.

Feed sources are built by the daemon itself (they drive the demo clock); everything
live is built here, with its stored cursors, its secrets resolved, and the shared
recorder when ``[record]`` is enabled.
"""

from __future__ import annotations

from monitor.clock import Clock
from monitor.config import Config, ConfigError, HttpSourceConfig, MqttSourceConfig
from monitor.secrets import SecretError, resolve_secret
from monitor.sources.base import Source
from monitor.sources.http import build_weibo_source, poller_specs
from monitor.sources.mqtt import MqttSource
from monitor.sources.recorder import Recorder
from monitor.store import Store


def build_recorder(config: Config, clock: Clock) -> Recorder | None:
    """The recorder of live input, or None when ``[record]`` is off."""
    rc = config.record
    if not rc.enabled:
        return None
    return Recorder(config.resolve(rc.dir), clock, compress=rc.gzip,
                    rotate_every=float(rc.rotate_every), rotate_bytes=rc.rotate_bytes)


def build_sources(config: Config, store: Store, clock: Clock,
                  recorder: Recorder | None = None) -> list[Source]:
    """Every ``weibo_api`` and ``mqtt`` source of the config, ready to run.

    Raises ConfigError (with the key path) when a brand is unknown or a secret cannot
    be resolved: better at start-up than at the first poll.
    """
    problems: list[str] = []
    sources: list[Source] = []
    names = {b.name for b in config.brands}
    used: set[str] = set()
    for i, sc in enumerate(config.sources):
        where = f"sources[{i}]"
        if isinstance(sc, HttpSourceConfig):
            if sc.brand not in names:
                problems.append(f'{where}.brand: "{sc.brand}" is not one of the [[brands]]')
                continue
            try:
                token = resolve_secret(sc.token) if sc.token else ""
            except SecretError as exc:
                problems.append(f"{where}.token: {exc}")
                continue
            brand = config.brand(sc.brand)
            keywords = list(dict.fromkeys([*brand.keywords, *brand.ambiguous_keywords]))
            # The name keys the stored cursors: keep it stable when tables are reordered.
            name = sc.name or f"weibo:{sc.brand}"
            if name in used:
                name = f"{name}#{i}"
            used.add(name)
            cursors = {pn: store.get_cursor(pn) for pn, _, _ in poller_specs(name, sc, keywords)}
            sources.append(build_weibo_source(sc, token, keywords, clock, cursors, recorder,
                                              name))
        elif isinstance(sc, MqttSourceConfig):
            try:
                password = resolve_secret(sc.password) if sc.password else ""
            except SecretError as exc:
                problems.append(f"{where}.password: {exc}")
                continue
            sources.append(MqttSource(sc.name or f"mqtt{i}:{sc.host}:{sc.port}", sc, clock,
                                      password=password, recorder=recorder))
    if problems:
        raise ConfigError(problems)
    return sources
