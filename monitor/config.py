"""crisismon's configuration: ``config.toml`` as typed, validated, frozen objects.

Keys in sections ``sla``, ``crisis`` and ``brands`` are part of the outside contract
(INTERFACES.md section 4) and keep their meaning; everything else is ours. Unknown
keys are refused, and every problem is reported with its key path.
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
from alerts.routing import RouteConfig, route_problems
from monitor.digest_config import DigestConfig
from monitor.secrets import check_reference
from monitor.settings import Duration, SettingsError, load_partial
from monitor.sources.commands import CommandsConfig

Problem = tuple[str, str]

H = 3600.0
M = 60.0


@dataclass(frozen=True)
class SlaConfig:
    """The reply rule: every mention gets a public official reply in time."""

    warn_at: Duration = Duration(3 * M)
    """After ``created_at``: remind the duty responder (``reply.warning``)."""
    reply_within: Duration = Duration(5 * M)
    """After ``created_at``: breached, page the supervisor (``reply.breach``)."""
    escalate_after: Duration = Duration(15 * M)
    """After ``created_at``: page leadership (``reply.escalated``)."""
    public_followup_within: Duration = Duration(30 * M)
    """After a private resolve: a public follow-up is due (``resolution.not_public``)."""

    def validate(self) -> Iterator[Problem]:
        if not 0 < self.warn_at <= self.reply_within:
            yield "warn_at", "must be positive and not after reply_within"
        if self.escalate_after < self.reply_within:
            yield "escalate_after", "must not be before reply_within"
        if self.public_followup_within <= 0:
            yield "public_followup_within", "must be positive"


@dataclass(frozen=True)
class CrisisConfig:
    """When a brand story becomes an incident, and how the incident is tracked."""

    window: tuple[Duration, Duration] = (Duration(12 * H), Duration(24 * H))
    """The crisis window: bad news spreads fastest in its first 12-24 hours."""
    checkpoints: tuple[Duration, ...] = (Duration(H), Duration(4 * H), Duration(12 * H),
                                         Duration(24 * H))
    """After ``opened``: a ``crisis.checkpoint`` at each, while the incident is open."""
    statement_due: Duration = Duration(H)
    """After ``opened``: ``crisis.escalated`` if no official statement is out."""
    burst_window: Duration = Duration(30 * M)
    """Negative mentions are counted over this sliding window to find a burst."""
    burst_min_negatives: int = 6
    """A burst needs at least this many negative mentions in the window ..."""
    burst_factor: float = 4.0
    """... and this many times the brand's own baseline for a window that long."""
    baseline_span: Duration = Duration(24 * H)
    """How much history the brand's baseline negative rate is measured over."""
    baseline_floor_per_hour: float = 1.0
    """The baseline never counts as lower than this (a new brand has no history)."""
    spread_window: Duration = Duration(H)
    """Reposts of one negative mention are counted over this window."""
    spread_min_reposts: int = 30
    """An influential negative post with this many reposts in the window opens a crisis."""
    viral_min_reposts: int = 150
    """Any negative post with this many reposts in the window opens a crisis."""
    influential_followers: int = 100_000
    """Authors with at least this many followers (or verified) are influential."""
    danger_min_posts: int = 1
    """Negative mentions with a danger term (爆炸, 中毒 ...) in the burst window to open one."""
    story_alpha: float = 0.05
    """How often a normal story may open an incident over its whole life: the story's
    negative share (one-sided binomial tail against the brand's normal share) and its speed
    are tested at every post with words, each look at a level spent out of this one
    (``rules.crisis.spent_level``: half of it while the story has 8-15 posts with words, a
    quarter at 16-31, ...); bursts are tested the same way."""
    influential_alpha: float = 0.05
    """The same, for a story whose root is a negative post by an influential author (it
    reaches many people at once: a higher value opens it on less evidence)."""
    story_share_factor: float = 1.5
    """... and its negative share must be at least this many times the brand's normal one
    (an effect size: in a story of 500 posts a rise from 20% to 26% is significant, and
    no crisis)."""
    story_min_scored: int = 8
    """A story's posts with words of their own (pure reposts are volume only) before its
    negative share is tested: fewer say nothing about the public's reaction."""
    prior_negative_share: float = 0.2
    """A brand with no history is taken to draw this share of negative posts (a Beta prior
    worth ``prior_weight`` posts; the brand's own stories update it). Chosen on the
    development set of brand stories, 5-fold cross-validated (``bench/detection.py --cv``)."""
    prior_weight: float = 20.0
    """How many posts the prior share is worth against the brand's own history."""
    prior_posts_per_hour: float = 5.0
    """A brand with no history is taken to get this many posts an hour (a Gamma prior worth
    ``prior_hours``): what a story's speed and a burst are measured against."""
    prior_hours: float = 6.0
    """How many hours of history the volume prior is worth."""
    danger_spread_posts: int = 10
    """A harm report corroborated by spread: its story has this many posts in
    ``spread_window`` (other corroboration: an influential author, a second reporter)."""
    close_factor: float = 1.5
    """Closed once negatives in the last hour are at most this times the baseline."""
    close_check_every: Duration = Duration(H)
    """After the window's end, how often to look again whether it has calmed down."""

    def validate(self) -> Iterator[Problem]:
        if not 0 < self.window[0] <= self.window[1]:
            yield "window", "needs two positive durations, the first not after the second"
        if list(self.checkpoints) != sorted(set(self.checkpoints)):
            yield "checkpoints", "must be in increasing order without repeats"
        if any(c <= 0 for c in self.checkpoints):
            yield "checkpoints", "must be positive"
        for key in ("statement_due", "burst_window", "baseline_span", "spread_window",
                    "close_check_every"):
            if getattr(self, key) <= 0:
                yield key, "must be positive"
        for key in ("burst_min_negatives", "spread_min_reposts", "viral_min_reposts",
                    "danger_min_posts"):
            if getattr(self, key) < 1:
                yield key, "must be at least 1"
        for key in ("story_alpha", "influential_alpha", "prior_negative_share"):
            if not 0 < getattr(self, key) < 1:
                yield key, "must be between 0 and 1"
        if self.story_share_factor < 1:
            yield "story_share_factor", "must be at least 1"
        for key in ("prior_weight", "prior_posts_per_hour", "prior_hours"):
            if getattr(self, key) <= 0:
                yield key, "must be positive"
        for key in ("story_min_scored", "danger_spread_posts"):
            if getattr(self, key) < 1:
                yield key, "must be at least 1"
        if self.burst_factor <= 1 or self.close_factor < 1:
            yield "burst_factor", "must be above 1 (and close_factor at least 1)"


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
class BrandConfig:
    """One brand to watch (contract section 4)."""

    name: str
    keywords: tuple[str, ...] = ()
    """Any of these in a post makes it a mention."""
    ambiguous_keywords: tuple[str, ...] = ()
    """Count only with a ``context`` term, or as @mention / inside a #hashtag#."""
    context: tuple[str, ...] = ()
    """Terms that confirm an ambiguous keyword is about the brand."""
    exclude: tuple[str, ...] = ()
    """Phrases that veto a mention (see README: masking vs whole-post veto)."""
    official_accounts: tuple[str, ...] = ()
    """Weibo user ids (strings) of the brand's own accounts."""

    def validate(self) -> Iterator[Problem]:
        if not self.name.strip():
            yield "name", "must not be empty"
        if not self.keywords and not self.ambiguous_keywords:
            yield "keywords", "a brand needs at least one keyword or ambiguous_keyword"
        for key in ("keywords", "ambiguous_keywords", "context", "exclude"):
            if any(not t.strip() for t in getattr(self, key)):
                yield key, "has an empty term"
        if self.ambiguous_keywords and not self.context:
            yield "context", "ambiguous_keywords need context terms (or they only count as @/#)"


@dataclass(frozen=True)
class LadderConfig:
    """Who is paged at each rung (issue 5 refines this with rotations)."""

    level0: tuple[str, ...] = ("值班客服",)
    level1: tuple[str, ...] = ("客服总监",)
    level2: tuple[str, ...] = ("公关负责人",)

    def recipients(self, level: int) -> tuple[str, ...]:
        return (self.level0, self.level1, self.level2)[max(0, min(level, 2))]


@dataclass(frozen=True)
class StoreConfig:
    """Where state lives. SQLite (WAL) on one machine; PostgreSQL for several instances."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
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
    speed: float = 60.0
    """Simulated seconds per wall second: 60 runs a day in 24 minutes."""
    name: str = ""

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
    port: int = 1883
    client_id: str = "crisismon"
    """Stable per instance: the broker keeps this client's session (and queued posts)
    while the daemon is down. Two instances must not share one."""
    share_group: str = ""
    """When set, topics are subscribed as ``$share/<group>/<topic>`` (MQTT 5) so several
    instances split one feed."""
    username: str = ""
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


@dataclass(frozen=True)
class RecordConfig:
    """Live-ingested raw posts appended to rotating JSONL(.gz) files, in the feed format."""

    enabled: bool = False
    dir: str = "var/recordings"
    """Folder for the files, relative to the config file."""
    gzip: bool = True
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
