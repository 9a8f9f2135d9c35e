"""Wiring: build the pipeline's stages from a validated config."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alerts.oncall import OnCall
from alerts.router import Router
from monitor.config import Config, ConfigError
from monitor.pipeline import Pipeline, early_decisions, official_decision
from monitor.store import Store
from rules.argument import ArgumentGuard
from rules.lexicon import Lexicon, default_argument_lexicon, default_crisis_lexicon
from rules.matching import BrandMatcher
from rules.records import Author, Post, PostKind
from rules.scoring import Assessment, Scorer, assess_posts, load_tiers
from rules.sentiment import load_sentiment, polarities
from rules.severity import SeverityPolicy


def brand_words(config: Config) -> list[str]:
    """Brand names and keywords: the segmenter must keep them whole."""
    words: list[str] = []
    for b in config.brands:
        words.extend([b.name, *b.keywords, *b.ambiguous_keywords])
    return list(dict.fromkeys(w for w in words if w))


def build_scorer(config: Config) -> Scorer:
    """Sentiment model, crisis lexicon, severity policy and author tiers from config."""
    sc = config.scoring
    problems: list[str] = []  # every file's problem at once, each with its key

    def load(key: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except FileNotFoundError as exc:
            problems.append(f"scoring.{key}: {exc.filename or exc}: no such file")
        except (OSError, ValueError) as exc:
            problems.append(f"scoring.{key}: {exc}")
        return None

    lexicon = load("lexicon", lambda: Lexicon.load(config.resolve(sc.lexicon)) if sc.lexicon
                   else default_crisis_lexicon())
    tiers = load("author_tiers", lambda: load_tiers(config.resolve(sc.author_tiers))
                 if sc.author_tiers else {})
    model_path = config.resolve(sc.model_path) if sc.model_path else None
    if model_path is not None and not model_path.exists():
        problems.append(f"scoring.model_path: {model_path} does not exist")
    if problems:
        raise ConfigError(problems)
    words = brand_words(config) + list(lexicon.terms)
    sentiment = load_sentiment(sc.model, model_path, words)
    policy = SeverityPolicy(influential_followers=config.crisis.influential_followers)
    return Scorer(sentiment, lexicon, sc.negative_below, policy, tiers)


WARM_UP_TEXT = "的客服太差了，退款一直不处理，还骗人，吃了拉肚子住院了，要投诉曝光！@客服 回复一下"
"""What ``ReaderWork.warm_up`` asks about each brand: a complaint with harm, a grievance,
demands and an @name, so most of the scorer's tables and patterns are met once."""


def default_assessor(config: Config) -> ReaderWork:
    """The pipeline's matching and scoring as ``build_pipeline`` wires them, on their own
    (for the replay's feed reader, which does that work in its own process), and what
    can be decided from them ahead (``ReaderWork.decide``)."""
    return ReaderWork(config)


class ReaderWork:
    """What the replay's feed reader works out for each batch of posts, in its own
    process: brand matches and scores (called: ``rules.scoring.assess_posts``), then the
    decisions that need no engine (``decide``), so the replay's process only stores,
    decides the rest and runs the engine."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.matcher = BrandMatcher(config.brands)
        self.scorer = build_scorer(config)
        # The story roots seen so far, kept across batches: reposts of a mention are scored
        # here too (rules.scoring.assess_posts), in feed order, as the pipeline would.
        self.stories: set[str] = set()
        self._argument: ArgumentGuard | None = None  # built for the first official post

    def __call__(self, posts: Sequence[Post]) -> dict[str, Assessment]:
        return assess_posts(posts, self.matcher, self.scorer, self.stories)

    def warm_up(self) -> None:
        """Build what the first batch would build on first use: the scorer's one-pass
        scanner, the first-character leads of the patterns its text meets (compiled on a
        pattern's first search), the argument guard. The forked reader calls this while
        it waits for the feed's sorted lines: the first batch took ~0.07 s against
        ~0.008 s for the next, and the replay waits for it. A made-up complaint naming
        each brand is assessed, with a story memory of its own (``stories`` stays as it
        was; matching and scoring are pure functions of the post)."""
        posts = [Post(id=f"warm-up-{i}", kind=PostKind.STATUS, created_at=0.0,
                      text=f"{brand.keywords[0]}{WARM_UP_TEXT}", author=Author(id="0"))
                 for i, brand in enumerate(self.config.brands) if brand.keywords]
        assess_posts(posts, self.matcher, self.scorer, set())
        if self._argument is None:
            self._argument = build_argument_guard(self.config)

    def decide(self, posts: Sequence[Post], assessed: dict[str, Assessment]
               ) -> dict[str, bytes]:
        """``monitor.pipeline.early_decisions`` of ``posts``, as ``build_pipeline``'s
        pipeline would decide them (its argument guard, its model's tone)."""
        return early_decisions(posts, assessed, self.matcher, self._official)

    def _official(self, post: Post) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if self._argument is None:
            self._argument = build_argument_guard(self.config)
        return official_decision(post, self.matcher, self._argument, self._tone)

    def _tone(self, text: str) -> float:
        """P(negative) of a text, as ``Pipeline._tone`` reads an official reply's."""
        return polarities(self.scorer.sentiment, [text])[0].negative


def build_argument_guard(config: Config) -> ArgumentGuard:
    """The guard on official replies: its grammar of arguing moves plus the team's
    forbidden-reply lexicon (``scoring.argument_lexicon``; empty = the shipped list)."""
    path = config.scoring.argument_lexicon
    try:
        lexicon = Lexicon.load(config.resolve(path)) if path else default_argument_lexicon()
    except (OSError, ValueError) as exc:
        raise ConfigError([f"scoring.argument_lexicon: {exc}"]) from None
    return ArgumentGuard(lexicon)


def build_pipeline(config: Config, store: Store, channels: Sequence[str] = (),
                   scorer: Scorer | None = None, lazy_scorer: bool = False) -> Pipeline:
    """The whole pipeline over ``store``; ``channels`` get a delivery row per alert.

    ``lazy_scorer``: load the models only if a post is ever scored in this process (the
    replay's are matched and scored by its feed reader; ``monitor.feedstream``)."""
    if scorer is None and not lazy_scorer:
        scorer = build_scorer(config)
    return Pipeline(config, store, scorer, build_argument_guard(config),
                    build_router(config), channels,
                    make_scorer=functools.partial(build_scorer, config))


def build_router(config: Config) -> Router:
    """Routes, on-call rotations and the ladder, from the config."""
    return Router(config.ladder, config.routes, OnCall(config.oncall, config.tz),
                  [c.name for c in config.channels])


def open_store(config: Config, override: str | Path | None = None) -> Store:
    """The configured store (or ``override``, e.g. a replay's own state file)."""
    if override is None and config.store.backend == "postgres":
        from monitor.store.postgres import PgStore  # psycopg is an optional extra

        return PgStore(config.store.dsn, config.store.schema)
    return Store(override if override is not None else config.resolve(config.store.path))
