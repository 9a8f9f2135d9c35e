"""Weighted term lexicons (crisis terms, forbidden reply phrases) and fast matching.

Files are TSV with a ``term  weight  category`` header; blank lines and lines starting with ``#``
are ignored. Matching uses an Aho-Corasick automaton (pyahocorasick): one pass over the text
finds every term, however many terms the lexicon holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ahocorasick

from rules.textnorm import normalise_for_scoring

HEADER = ("term", "weight", "category")


@dataclass(frozen=True, slots=True)
class LexTerm:
    """One lexicon entry."""

    term: str
    weight: float
    category: str


class Lexicon:
    """A set of weighted terms with an Aho-Corasick matcher."""

    def __init__(self, terms: dict[str, LexTerm]) -> None:
        self.terms = terms
        self._automaton = ahocorasick.Automaton()
        for key, entry in terms.items():
            self._automaton.add_word(key, entry)
        if terms:
            self._automaton.make_automaton()

    @classmethod
    def load(cls, path: Path | str) -> Lexicon:
        """Parse a lexicon TSV. Terms are normalised like scored text (simplified, half-width,
        lower-case) so matching is done on the same form; a later duplicate wins."""
        path = Path(path)
        terms: dict[str, LexTerm] = {}
        header_seen = False
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                cols = [c.strip() for c in line.split("\t")]
                if not header_seen:
                    if tuple(c.lower() for c in cols[:3]) != HEADER:
                        raise ValueError(f"{path}:{lineno}: expected header {HEADER}")
                    header_seen = True
                    continue
                if len(cols) < 3 or not cols[0]:
                    raise ValueError(f"{path}:{lineno}: expected term<TAB>weight<TAB>category")
                try:
                    weight = float(cols[1])
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: bad weight {cols[1]!r}") from None
                key = normalise_for_scoring(cols[0]).lower()
                terms[key] = LexTerm(cols[0], weight, cols[2])
        return cls(terms)

    def find(self, text: str) -> list[LexTerm]:
        """Terms occurring in ``text`` (each once, in order of first occurrence)."""
        if not self.terms or not text:
            return []
        return self.find_normalised(normalise_for_scoring(text).lower())

    def find_normalised(self, norm: str, hits: list[LexTerm] | None = None
                        ) -> list[LexTerm]:
        """``find`` on text already normalised (``normalise_for_scoring(text).lower()``):
        the scorer normalises once for the lexicon and the harm and grievance readings.
        ``hits``: the terms' occurrences in ``norm``, found already by a pass of the
        caller's, in the order this lexicon's own pass gives them."""
        if not self.terms or not norm:
            return []
        if hits is None:
            hits = [entry for _end, entry in self._automaton.iter(norm)]
        seen: set[str] = set()
        out: list[LexTerm] = []
        for entry in hits:
            if entry.term not in seen:
                seen.add(entry.term)
                out.append(entry)
        return out

    def score(self, text: str) -> float:
        """Sum of the weights of the distinct terms found in ``text``."""
        return sum(t.weight for t in self.find(text))

    def __len__(self) -> int:
        return len(self.terms)


def default_crisis_lexicon() -> Lexicon:
    """The shipped crisis lexicon (``seeds/lexicon/crisis_terms.tsv``)."""
    from seeds import SEEDS_DIR

    return Lexicon.load(SEEDS_DIR / "lexicon" / "crisis_terms.tsv")


def default_argument_lexicon() -> Lexicon:
    """The shipped forbidden-reply lexicon (``seeds/lexicon/argument_terms.tsv``)."""
    from seeds import SEEDS_DIR

    return Lexicon.load(SEEDS_DIR / "lexicon" / "argument_terms.tsv")
