"""Text from the outside made safe to show: in a terminal, on the dashboard, in a log line.

A post's author chooses their screen name, and Weibo lets it (and, through the API, a
post's text) carry characters that act instead of showing: a terminal escape
(``\\x1b[2J`` clears the screen of whoever watches the terminal alert channel), a C1
control, or a bidi override (``\\u202e``) that makes ``gnp.exe`` read ``exe.png`` and can
flip the rest of a dashboard line. ``printable`` removes them all, turns line breaks
into spaces, and leaves every visible character (Chinese, emoji, punctuation) alone.
"""

from __future__ import annotations

import re

# C0 controls and DEL, C1 controls, zero-width characters, the Arabic letter mark, the
# bidi marks, embeddings, overrides and isolates, word joiners and invisible operators,
# and the BOM. Line breaks (and tab) are spaced instead, so words stay apart.
_BREAKS = re.compile("[\t\n\r\x0b\x0c\u2028\u2029\x85]+")
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]+")


def printable(text: str, keep_lines: bool = False) -> str:
    """``text`` without control characters or bidi overrides; line breaks become spaces
    (or, with ``keep_lines``, plain ``\n``: for a multi-line block such as a digest)."""
    if not text or text.isprintable():  # nearly every text: one C-level scan, no regex
        return text
    if keep_lines:
        return "\n".join(_UNSAFE.sub("", _BREAKS.sub(" ", line))
                         for line in re.split("\r\n|[\n\r\u2028\u2029\x85]", text))
    return _UNSAFE.sub("", _BREAKS.sub(" ", text))
