"""Where a regular expression can start: a cheap scan before the full search.

``re`` skips ahead to where a pattern can start only when the pattern begins with a literal
(or every branch of it does). The scorer's readings (``rules.acts``, ``rules.harm``,
``rules.complaints``) are alternations whose branches begin with a set (``[0-9一二…]``), a
group or a look-behind, so ``re`` tried every branch at every place of a post: a quarter of
the scorer's instructions. ``Lead`` works out, from the parsed pattern, the characters a
match can begin with; a scan for the first of them (a set, which ``re`` does skip along)
finds the first place a match can start, and the pattern is searched from there.

The answer is the same: a match consumes at least one character (``lead`` is None for a
pattern that can match the empty string), look-arounds consume none, so the first
character of any match is at its start and is one of the lead characters; no match starts
before the first of them. Searching from a position (``pos``) leaves look-behinds and ``^``
reading the whole string, as ever. A pattern whose lead cannot be read (case folding, a
character class by category, a back reference, ``.``) is searched as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

_ANY = None
"""Any character may come first (or it cannot be said)."""
_WIDEST_RANGE = 4096
"""A character range wider than this counts as any character (a set that large would
barely narrow the search)."""


def _first_of_sequence(items: Any) -> tuple[set[str] | None, bool]:
    """The characters the sequence can begin with (None: any), and whether it can match
    the empty string."""
    out: set[str] = set()
    for op, av in items:
        first, empty = _first_of_item(op, av)
        if first is None:
            return None, False
        out |= first
        if not empty:
            return out, False
    return out, True


def _first_of_item(op: Any, av: Any) -> tuple[set[str] | None, bool]:
    if op is _c.LITERAL:
        return {chr(av)}, False
    if op is _c.IN:
        chars: set[str] = set()
        for kind, value in av:
            if kind is _c.LITERAL:
                chars.add(chr(value))
            elif kind is _c.RANGE and value[1] - value[0] < _WIDEST_RANGE:
                chars.update(map(chr, range(value[0], value[1] + 1)))
            else:  # a negated set, a category, a case-folding range
                return None, False
        return chars, False
    if op is _c.BRANCH:
        chars = set()
        empty = False
        for alternative in av[1]:
            first, can_be_empty = _first_of_sequence(alternative)
            if first is None:
                return None, False
            chars |= first
            empty = empty or can_be_empty
        return chars, empty
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, items = av
        if add_flags or del_flags:  # (?i:...) and the like
            return None, False
        return _first_of_sequence(items)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
        low, _high, items = av
        first, empty = _first_of_sequence(items)
        return first, first is not None and (low == 0 or empty)
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _first_of_sequence(av)
    if op in (_c.ASSERT, _c.ASSERT_NOT, _c.AT):  # consume nothing
        return set(), True
    return None, False  # ., a category, a back reference, a conditional …


def lead(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """A pattern for the characters a match of ``pattern`` can begin with, or None if that
    cannot be said (or a match may be empty)."""
    if pattern.flags & (re.IGNORECASE | re.VERBOSE) or not isinstance(pattern.pattern, str):
        return None
    try:
        parsed = _p.parse(pattern.pattern, pattern.flags)
        if parsed.state.flags & re.IGNORECASE:
            return None
        first, empty = _first_of_sequence(parsed.data)
    except Exception:  # a parser of another Python: search as it is
        return None
    if first is None or empty or not first:
        return None
    return re.compile("[" + "".join(re.escape(c) for c in sorted(first)) + "]")


class Lead:
    """``pattern``'s ``search`` and ``finditer``, each from the first place a match can
    start (see the module docstring): the same matches."""

    __slots__ = ("_lead", "pattern")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        # Read on first use (parsing a pattern again costs ~0.2 ms): loading the scorer
        # stays as quick, and a pattern never searched costs nothing.
        self._lead: re.Pattern[str] | bool | None = False

    def _first(self) -> re.Pattern[str] | None:
        found = self._lead
        if found is False:
            found = self._lead = lead(self.pattern)
        return found  # type: ignore[return-value]

    def search(self, text: str) -> re.Match[str] | None:
        """``pattern.search(text)``."""
        first = self._first()
        if first is None:
            return self.pattern.search(text)
        at = first.search(text)
        return None if at is None else self.pattern.search(text, at.start())

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """``pattern.finditer(text)``."""
        first = self._first()
        if first is None:
            return self.pattern.finditer(text)
        at = first.search(text)
        return iter(()) if at is None else self.pattern.finditer(text, at.start())
