"""crisismon's configuration: ``config.toml`` as typed, validated, frozen objects.

Keys in sections ``sla``, ``crisis`` and ``brands`` are part of the outside contract
(INTERFACES.md section 4) and keep their meaning; everything else is ours. Those three
are the engine's policy types (``rules.policy``), loaded and validated here like every
other table. Unknown keys are refused, and every problem is reported with its key path.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.channels.registry import ChannelConfig
from alerts.noise import BUILT_IN, PagingConfig
from alerts.oncall import OncallConfig
from alerts.routing import LadderConfig, RouteConfig, route_problems
from monitor.digest_config import DigestConfig
from monitor.secrets import check_reference
from monitor.settings import SettingsError, load_partial
from rules.policy import BrandConfig, CrisisConfig, Problem, SlaConfig
from rules.records import Duration

H = 3600.0


@dataclass(frozen=True)
class ScoringConfig:
    """Sentiment and severity."""

    model: Literal["weibo", "snownlp"] = "weibo"
    """``weibo``: the shipped model trained on Weibo posts; ``snownlp``: stock SnowNLP."""
    model_path: str = ""
    """A retrained model file (``crisismon train-sentiment``); empty = the shipped one."""
    negative_below: float = 0.4
    """A mention is negative when P(positive) is below this."""
    lexicon: str = ""
    """Crisis lexicon TSV (term, weight, category); empty = the shipped one."""
    argument_lexicon: str = ""
    """Phrases an official reply must never use; empty = the shipped list."""
    author_tiers: str = ""
    """Optional CSV ``user_id,tier`` (none, micro, weak, strong, super)."""

    def validate(self) -> Iterator[Problem]:
        if not 0 < self.negative_below < 1:
            yield "negative_below", "must be between 0 and 1"


@dataclass(frozen=True)
class StoreConfig:
    """Where state lives. SQLite (WAL) on one machine; PostgreSQL for several instances."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    """``sqlite``: one machine, no server; ``postgres``: several instances share the state
    (``dsn``, ``schema``)."""
    path: str = "var/crisismon.db"
    """SQLite file, relative to the config file's folder."""
    dsn: str = ""
    """PostgreSQL connection string (``backend = "postgres"``), e.g.
    ``"postgresql://crisismon@127.0.0.1:5432/crisismon"``; a password belongs in
    ``~/.pgpass`` or ``PGPASSWORD`` (systemd: a credential), not here."""
    schema: str = "crisismon"
    """PostgreSQL schema holding the tables; instances sharing work share the schema."""
    lease_ttl: Duration = Duration(30)
    """PostgreSQL: how long a brand lease lasts unrenewed. Each instance renews its leases
    every ``lease_ttl / 3``; when an instance dies, another takes its brands over within
    about ``lease_ttl * 4 / 3`` (see docs/operations.md)."""
    instance: str = ""
    """PostgreSQL: this instance's name in the lease table; empty = ``<hostname>:<pid>``.
    Must differ between instances sharing a schema."""
    catch_up_every: Duration = Duration(0.5)
    """PostgreSQL: how often an instance reads the events other instances stored (a
    brand's lease holder pages for posts that reached a peer within about this long)."""
    retention: Duration = Duration(14 * 24 * H)
    """Raw events, settled mentions and delivered alerts older than this are deleted in
    the background (recorded feeds stay the long-term archive); a post older than this
    that comes in again is not handled. At least a day."""

    def validate(self) -> Iterator[Problem]:
        if self.lease_ttl < 1:
            yield "lease_ttl", 'must be at least "1s"'
        if not 0 < self.catch_up_every <= self.lease_ttl:
            yield "catch_up_every", "must be positive and at most lease_ttl"
        if self.retention < 24 * H:
            yield "retention", 'must be at least "1d"'
        if self.backend == "postgres" and not self.dsn.startswith(("postgresql://",
                                                                    "postgres://")):
            yield "dsn", 'backend "postgres" needs dsn = "postgresql://user@host:5432/db"'
        if self.backend == "postgres" and not re.match(r"^[a-z_][a-z0-9_]{0,62}$",
                                                        self.schema):
            yield "schema", "must be a lower-case SQL identifier (letters, digits, _)"


@dataclass(frozen=True)
class FeedSourceConfig:
    """Plays a recorded feed into the live daemon, sped up (demo, drills)."""

    type: Literal["feed"]
    path: str
    """The recorded feed (``.jsonl`` or ``.jsonl.gz``), relative to the config file."""
    speed: float = 60.0
    """Simulated seconds per wall second: 60 runs a day in 24 minutes."""
    name: str = ""
    """For logs and metrics (the ``source`` label); empty = ``feed:<file name>``."""

    def validate(self) -> Iterator[Problem]:
        if self.speed <= 0:
            yield "speed", "must be positive"


WeiboEndpoint = Literal["search", "mentions", "comments", "replies"]


@dataclass(frozen=True)
class HttpSourceConfig:
    """Polls a Weibo-style open API for one brand: one poller per endpoint."""

    type: Literal["weibo_api"]
    brand: str
    """The brand (``[[brands]].name``) these pollers watch; ``search`` uses its keywords."""
    url: str = "https://api.weibo.com"
    """Base URL of the API (``crisismon weibo-sim`` for demos and tests)."""
    token: str = ""
    """Access token as a secret reference: ``"env:WEIBO_TOKEN"``, ``"file:/path"``,
    ``"credential:NAME"``; never the token itself in a shared config."""
    endpoints: tuple[WeiboEndpoint, ...] = ("search", "mentions", "comments", "replies")
    """``search``: keyword search; ``mentions``: @ of the official account;
    ``comments``: comments on the official account's posts; ``replies``: the comments the
    official account wrote (``comments/by_me``): its replies, which end reply clocks."""
    interval: Duration = Duration(60)
    """Time between polls of one endpoint when all is well."""
    count: int = 100
    """Posts per page (the API allows 1..200)."""
    max_pages: int = 50
    """Pages walked per poll; a longer burst is finished on the next polls, losing nothing."""
    timeout: Duration = Duration(15)
    """A request that takes longer is a failure (retried with backoff)."""
    concurrency: int = 2
    """Requests in flight at once across this source's pollers."""
    requests_per_hour: int = 0
    """Client-side budget for the token (Weibo's limits are hourly); 0 = only obey 429s."""
    backoff_max: Duration = Duration(300)
    """Longest wait between retries of a failing endpoint."""
    refresh_every: Duration = Duration(300)
    """How often page 1 is fetched again without ``since_id``, so counts of recent posts
    are seen to grow (repost growth feeds crisis detection); 0 = never."""
    name: str = ""
    """For logs, metrics and the stored cursors; empty = ``weibo:<brand>``."""

    def validate(self) -> Iterator[Problem]:
        if not self.brand.strip():
            yield "brand", "must name one of the [[brands]]"
        if not self.url.startswith(("http://", "https://")):
            yield "url", f'"{self.url}" is not an http(s) URL'
        if self.token and (problem := check_reference(self.token)):
            yield "token", problem
        if not self.endpoints:
            yield "endpoints", ('needs at least one of "search", "mentions", "comments", '
                                '"replies"')
        if len(set(self.endpoints)) != len(self.endpoints):
            yield "endpoints", "has a repeat"
        if self.interval <= 0 or self.timeout <= 0 or self.backoff_max <= 0:
            yield "interval", "interval, timeout and backoff_max must be positive"
        if not 1 <= self.count <= 200:
            yield "count", "must be between 1 and 200"
        if self.max_pages < 1 or self.concurrency < 1:
            yield "max_pages", "max_pages and concurrency must be at least 1"
        if self.requests_per_hour < 0 or self.refresh_every < 0:
            yield "requests_per_hour", "requests_per_hour and refresh_every must not be negative"


@dataclass(frozen=True)
class MqttSourceConfig:
    """Subscribes to MQTT topics carrying posts (one object or a JSON array per message)."""

    type: Literal["mqtt"]
    topics: tuple[str, ...]
    """Topic filters, e.g. ``["weibo/posts/#"]``."""
    host: str = "127.0.0.1"
    """Broker host."""
    port: int = 1883
    """Broker port."""
    client_id: str = "crisismon"
    """Stable per instance: the broker keeps this client's session (and queued posts)
    while the daemon is down. Two instances must not share one."""
    share_group: str = ""
    """When set, topics are subscribed as ``$share/<group>/<topic>`` (MQTT 5) so several
    instances split one feed."""
    username: str = ""
    """Login name; empty: anonymous."""
    password: str = ""
    """A secret reference (``"env:MQTT_PASSWORD"``) or empty."""
    session_expiry: Duration = Duration(7 * 24 * H)
    """How long the broker keeps the session (and its queued posts) while we are away."""
    max_payload: int = 1_048_576
    """Bytes; a larger message is rejected at the edge."""
    backoff_max: Duration = Duration(15)
    """Longest wait between reconnect attempts: after the broker is back, posts flow again
    within this long (a reconnect attempt is one TCP connect, cheap to repeat)."""
    name: str = ""
    """For logs and metrics (the ``source`` label); empty = ``mqtt<i>:<host>:<port>``."""

    def validate(self) -> Iterator[Problem]:
        if not self.topics or any(not t.strip() for t in self.topics):
            yield "topics", "needs at least one non-empty topic filter"
        if any(t.startswith("$share/") for t in self.topics):
            yield "topics", "write plain topics; set share_group for a shared subscription"
        if not 0 < self.port < 65536:
            yield "port", "must be 1..65535"
        if not self.client_id.strip():
            yield "client_id", "must not be empty"
        if "/" in self.share_group or "+" in self.share_group or "#" in self.share_group:
            yield "share_group", "must not contain /, + or #"
        if self.password and (problem := check_reference(self.password)):
            yield "password", problem
        if self.session_expiry < 0 or self.backoff_max <= 0 or self.max_payload < 1024:
            yield "session_expiry", ("session_expiry must not be negative, backoff_max must "
                                     "be positive, max_payload at least 1024")


DEFAULT_TOPIC = "crisismon/commands"


@dataclass(frozen=True)
class CommandsConfig:
    """Acks and resolves over MQTT (``[commands]``, ``monitor.sources.commands``)."""

    enabled: bool = False
    """Subscribe to the command topic (acks and resolves from other tools)."""
    host: str = "127.0.0.1"
    """Broker host."""
    port: int = 1883
    """Broker port."""
    topic: str = DEFAULT_TOPIC
    """Where commands are published; JSON ``{"action", "target", "by", "public"}``."""
    client_id: str = "crisismon-commands"
    """Stable, so the broker queues commands while the daemon is down."""
    username: str = ""
    """Login name; empty: anonymous."""
    password: str = ""
    """A secret ref (``env:NAME``, ``file:/path``, ``credential:NAME``) or empty."""
    backoff_max: Duration = Duration(15.0)
    """Longest wait between reconnect attempts (acks flow again this soon after the
    broker is back)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not 0 < self.port < 65536:
            yield "port", "must be 1..65535"
        if not self.topic or any(c in self.topic for c in "+#"):
            yield "topic", "must be a topic without wildcards"
        if self.password and (problem := check_reference(self.password)):
            yield "password", problem


@dataclass(frozen=True)
class RecordConfig:
    """Live-ingested raw posts appended to rotating JSONL(.gz) files, in the feed format."""

    enabled: bool = False
    """Append every live-ingested raw post to the files (``crisismon replay`` reads them)."""
    dir: str = "var/recordings"
    """Folder for the files, relative to the config file."""
    gzip: bool = True
    """Write ``.jsonl.gz`` (else plain ``.jsonl``)."""
    rotate_every: Duration = Duration(H)
    """Start a new file after this much time ..."""
    rotate_bytes: int = 64 * 1024 * 1024
    """... or after this many (uncompressed) bytes, whichever comes first."""

    def validate(self) -> Iterator[Problem]:
        if self.rotate_every <= 0 or self.rotate_bytes < 1024:
            yield "rotate_every", "must be positive (and rotate_bytes at least 1024)"


SourceConfig = FeedSourceConfig | HttpSourceConfig | MqttSourceConfig


@dataclass(frozen=True)
class AlertsConfig:
    """Where pages go besides the channels."""

    terminal: bool = True
    """Print each alert to stdout as it falls due."""
    log: str = "var/alerts.jsonl"
    """The durable alert log (one JSON line per alert), relative to the config file."""


@dataclass(frozen=True)
class HttpUserConfig:
    """One person's own dashboard/API token (``[[http.users]]``): acks are signed as them."""

    name: str
    """Shown on acks and resolves (``acked_by``), e.g. ``"小王"``."""
    token: str
    """A secret reference (``env:NAME``, ``file:PATH``, ``credential:NAME``) or, discouraged,
    the literal token."""

    def validate(self) -> Iterator[Problem]:
        if not self.name.strip() or _UNPRINTABLE.search(self.name):
            yield "name", "must be a non-empty name without control characters"
        if not self.token.strip():
            yield "token", 'must not be empty (e.g. "env:XIAOWANG_TOKEN")'
        elif problem := check_reference(self.token):
            yield "token", problem


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, ``localhost``)."""
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class HttpConfig:
    """The daemon's HTTP server: API, dashboard, health and metrics."""

    enabled: bool = True
    """Serve the API, the dashboard, ``/healthz``, ``/readyz`` and ``/metrics``."""
    listen: str = "127.0.0.1:8787"
    """``host:port``; 127.0.0.1 keeps it on this machine."""
    token: str = "env:CRISISMON_TOKEN"
    """Bearer token for the API and dashboard: a secret ref (``env:NAME``, ``file:PATH``,
    ``credential:NAME``) or, discouraged, the literal token. ``""`` with ``users``: only
    personal tokens are accepted."""
    users: tuple[HttpUserConfig, ...] = ()
    """Per-person tokens (``[[http.users]]``): who signs in with one acts under its name."""
    session_ttl: Duration = Duration(7 * 24 * H)
    """How long a dashboard sign-in (its session cookie) lasts without a visit; each
    visit renews it."""
    tls_cert: str = ""
    """PEM certificate (chain) file, relative to the config file: serve HTTPS."""
    tls_key: str = ""
    """PEM private key file for ``tls_cert``."""
    allow_plain_public: bool = False
    """Allow ``listen`` beyond loopback without TLS (tokens and cookies then cross the
    network in clear text: only behind a TLS-terminating proxy on a trusted network)."""

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    def validate(self) -> Iterator[Problem]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            yield "listen", f'"{self.listen}" is not host:port (e.g. "127.0.0.1:8787")'
        elif not is_loopback(host) and not self.tls and not self.allow_plain_public:
            yield "listen", (f'"{self.listen}" is reachable beyond this machine over plain '
                             "HTTP: set tls_cert and tls_key, or keep 127.0.0.1 behind a TLS "
                             "proxy, or set http.allow_plain_public = true")
        if bool(self.tls_cert) != bool(self.tls_key):
            yield ("tls_key" if self.tls_cert else "tls_cert"), \
                "tls_cert and tls_key go together (a PEM certificate and its key)"
        if self.token and (problem := check_reference(self.token)):
            yield "token", problem
        if not self.token.strip() and not self.users:
            yield "token", ('is empty and there are no [[http.users]]: nobody could sign in '
                            '(e.g. token = "env:CRISISMON_TOKEN")')
        names = [u.name for u in self.users if u]
        for i, name in enumerate(names):
            if name in names[:i]:
                yield f"users[{i}].name", f'"{name}" is used by another user'
        if self.session_ttl <= 0:
            yield "session_ttl", 'must be positive (e.g. "7d")'


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe log lines written."""
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: colour in a terminal, JSON lines otherwise (journald)."""
    stream: Literal["auto", "stdout", "stderr"] = "auto"
    """Where log lines go. ``auto``: stdout under systemd (``$JOURNAL_STREAM`` set: the
    service mode, where the terminal alert channel is then off), stderr otherwise."""


@dataclass(frozen=True)
class Config:
    """The whole ``config.toml``."""

    brands: tuple[BrandConfig, ...] = ()
    timezone: str = "Asia/Shanghai"
    """Zone for alert times, local hours and on-call handovers."""
    sla: SlaConfig = field(default_factory=SlaConfig)
    crisis: CrisisConfig = field(default_factory=CrisisConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    ladder: LadderConfig = field(default_factory=LadderConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    sources: tuple[SourceConfig, ...] = ()
    record: RecordConfig = field(default_factory=RecordConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    channels: tuple[ChannelConfig, ...] = ()
    """Paging channels (``[[channels]]``, see docs/paging.md); the alert log and the
    terminal are built in."""
    routes: tuple[RouteConfig, ...] = ()
    """Which channels and on-call team an alert goes to; first match wins."""
    oncall: tuple[OncallConfig, ...] = ()
    """Weekly rotations filling the ladder's rungs per team."""
    paging: PagingConfig = field(default_factory=PagingConfig)
    """Repeats, grouping, silences, quiet hours, rate limits."""
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    """Acks and resolves over an MQTT command topic."""
    digests: tuple[DigestConfig, ...] = ()
    """Scheduled summaries (``[[digests]]``, ``monitor.digests``)."""
    base_dir: str = field(default=".", init=False, compare=False)
    """The config file's folder; relative paths are taken from here."""

    def validate(self) -> Iterator[Problem]:
        # Runs on a partial Config too (``parse_config``): a part refused by its own checks
        # is None, a refused item of a list is None, and a check across parts is skipped
        # when a part it needs is missing rather than reporting a consequence of it.
        if self.brands == ():
            yield "brands", "at least one [[brands]] table is required"
        names = _names(self.brands)
        for i, name in _repeats(self.brands):
            yield f"brands[{i}].name", f'"{name}" is used by another brand'
        for i, source in enumerate(self.sources or ()):
            brand = getattr(source, "brand", None)
            if isinstance(source, HttpSourceConfig) and names is not None and brand not in names:
                yield f"sources[{i}].brand", f'"{brand}" is not one of the [[brands]]'
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                yield "timezone", (f'"{self.timezone}" is not a known time zone '
                                   '(e.g. "Asia/Shanghai")')
        yield from self._paging_problems()
        yield from self._digest_problems(names)

    def _digest_problems(self, brands: list[str] | None) -> Iterator[Problem]:
        """Digest names unique; their brands and channels exist."""
        channels = _names(self.channels)
        seen: list[str] = []
        for i, d in enumerate(self.digests or ()):
            if d is None:
                continue
            if d.name in seen:
                yield f"digests[{i}].name", f'"{d.name}" is used by another digest'
            seen.append(d.name)
            for j, b in enumerate(d.brands):
                if brands is not None and b not in brands:
                    yield f"digests[{i}].brands[{j}]", f'"{b}" is not one of the [[brands]]'
            for j, c in enumerate(d.channels):
                if channels is not None and c not in [*channels, "terminal"]:
                    yield f"digests[{i}].channels[{j}]", (f'"{c}" is not a [[channels]] name '
                                                          '(or "terminal")')

    def _paging_problems(self) -> Iterator[Problem]:
        """Channel names unique and not a built-in's; routes and limits name real channels."""
        channel_names = _names(self.channels)
        repeats = dict(_repeats(self.channels))
        for i, channel in enumerate(self.channels or ()):
            if i in repeats:
                yield f"channels[{i}].name", f'"{channel.name}" is used by another channel'
            elif channel is not None and channel.name in BUILT_IN:
                yield f"channels[{i}].name", (f'"{channel.name}" is reserved for the built-in '
                                              "channel")
        if channel_names is None:
            return  # a channel was refused: a name it had would look unknown
        yield from route_problems(self.routes or (), channel_names)
        for i, limit in enumerate(self.paging.rate_limits if self.paging else ()):
            if limit and limit.channel not in channel_names:
                yield f"paging.rate_limits[{i}].channel", (f'"{limit.channel}" is not a '
                                                           "[[channels]] name")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def brand(self, name: str) -> BrandConfig:
        return next(b for b in self.brands if b.name == name)

    def digest(self, name: str) -> DigestConfig | None:
        """The ``[[digests]]`` entry named ``name``, or None."""
        return next((d for d in self.digests if d.name == name), None)


def _names(items: tuple[Any, ...] | None) -> list[str] | None:
    """The ``name`` of each table in a list, or None when the list or one of its items was
    refused (the names are then not all known: checking a reference would mislead)."""
    if items is None or any(item is None for item in items):
        return None
    return [item.name for item in items]


def _repeats(items: tuple[Any, ...] | None) -> Iterator[tuple[int, str]]:
    """(index, name) of each table in a list whose name an earlier one already has."""
    seen: set[str] = set()
    for i, item in enumerate(items or ()):
        if item is None:
            continue
        if item.name in seen:
            yield i, item.name
        seen.add(item.name)


class ConfigError(SettingsError):
    """The config file is invalid; ``problems`` holds one line per problem.

    ``config``, when the file was read and parsed, is what of it loaded: each part that
    was refused is None (``monitor.settings.load_partial``), so the start checks
    (``monitor.preflight``) can still be made on the rest and every problem is reported
    at once. It is not kept when the error is pickled.
    """

    def __init__(self, problems: list[str], source: str = "",
                 config: Config | None = None) -> None:
        super().__init__(problems, source)
        self.config = config


def parse_config(text: str, source: str = "<config>", base_dir: str = ".") -> Config:
    """Parse TOML text into a Config, or raise ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"(toml) {exc}"], source) from None
    config, problems = load_partial(Config, data)
    if config is not None:
        object.__setattr__(config, "base_dir", base_dir)
    if problems:
        raise ConfigError(problems, source, config)
    assert config is not None  # only a refused top-level table leaves none, with a problem
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate ``config.toml``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found (pass --config PATH)"], str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"], str(p)) from None
    return parse_config(text, str(p), str(p.resolve().parent))
