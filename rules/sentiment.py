"""Sentiment behind one small interface, so the model can be swapped without touching callers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol


class Polarity(NamedTuple):
    """Class probabilities of one text: negative, neutral, positive (they sum to 1)."""

    negative: float
    neutral: float
    positive: float

    @property
    def sentiment(self) -> float:
        """The binary "probability positive" served as ``sentiment``: a neutral text counts
        half, so a clearly neutral post sits at 0.5 (not negative) and
        ``sentiment < 0.4`` means P(negative) exceeds P(positive) by more than 0.2."""
        return self.positive + 0.5 * self.neutral

    def negative_odds(self, factor: float) -> Polarity:
        """The same probabilities with the odds of negative multiplied by ``factor`` (a prior
        correction: what a reading of the post says about how often such posts are negative,
        beside what the model learned)."""
        n = self.negative * factor
        total = n + self.neutral + self.positive
        if total <= 0.0:
            return self
        return Polarity(n / total, self.neutral / total, self.positive / total)

    @classmethod
    def from_binary(cls, p: float) -> Polarity:
        """A two-class model's P(positive) as a polarity with no neutral mass."""
        return cls(1.0 - p, 0.0, p)


class SentimentModel(Protocol):
    """Probability that a text is positive, 0..1 (``Polarity.sentiment`` for a three-class
    model). A model may also offer ``polarity_many(texts) -> list[Polarity]``; see
    :func:`polarities`."""

    name: str

    def score(self, text: str) -> float:
        """P(positive) of one text."""
        ...

    def score_many(self, texts: Sequence[str]) -> list[float]:
        """P(positive) of each text, in order (lets a model batch its work)."""
        ...


class SnowNLPSentiment:
    """Stock SnowNLP (trained on product reviews; slow). Kept as a baseline."""

    name = "snownlp"

    def __init__(self) -> None:
        from snownlp import SnowNLP  # imported lazily: it loads its models on import

        self._snow = SnowNLP

    def score(self, text: str) -> float:
        if not text.strip():
            return 0.5
        return float(self._snow(text).sentiments)

    def score_many(self, texts: Sequence[str]) -> list[float]:
        return [self.score(t) for t in texts]


def polarities(model: SentimentModel, texts: Sequence[str]) -> list[Polarity]:
    """Class probabilities of each text: the model's own when it has three classes, else its
    binary P(positive) with no neutral mass."""
    many = getattr(model, "polarity_many", None)
    if many is not None:
        return many(texts)
    return [Polarity.from_binary(p) for p in model.score_many(texts)]


def load_sentiment(kind: str = "weibo", path: str | Path | None = None,
                   words: Sequence[str] = ()) -> SentimentModel:
    """The configured model. ``words`` (brand names) are kept whole by the segmenter."""
    if kind == "snownlp":
        return SnowNLPSentiment()
    from rules.weibo_sentiment import WeiboSentiment

    model = WeiboSentiment.load(Path(path) if path else None)
    if words:
        model.add_words(words)
    return model
