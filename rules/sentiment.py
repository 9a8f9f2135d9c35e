"""Sentiment behind one small interface, so the model can be swapped without touching callers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class SentimentModel(Protocol):
    """Probability that a text is positive, 0..1."""

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
