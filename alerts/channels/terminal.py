"""One readable line per alert on a text stream (stdout by default), coloured in a terminal.

For a person watching the daemon in the foreground, and for demos: the built-in
``terminal`` channel (``[alerts] terminal = true``), a ``type = "terminal"`` channel, the
lines ``crisismon replay`` prints and digests sent to ``"terminal"``. A digest is printed
as its plain text, not one line. Colour only when the stream is a TTY, so journald and
files get clean text.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, tzinfo
from typing import Literal, TextIO

from alerts.channels.base import DeliveryError, Thread, level_label, type_label
from alerts.channels.options import TerminalChannelConfig
from alerts.digest import from_alert, is_digest, plain_text
from monitor.textsafe import printable
from rules.records import DEFAULT_TZ, Alert

_RESET = "\033[0m"
_SEVERITY_STYLE = {"P1": "\033[1;97;41m", "P2": "\033[1;31m", "P3": "\033[33m", "P4": "\033[36m"}
_DIM = "\033[2m"
_BOLD = "\033[1m"


def format_line(alert: Alert, tz: tzinfo = DEFAULT_TZ, colour: bool = False,
                thread: Thread | None = None) -> str:
    """``09:05:00 P1 快书包 reply.breach 回复超时 L1 客服总监 帖子 4321 — <title> [a-…]``."""
    when = datetime.fromtimestamp(alert.at, tz=UTC).astimezone(tz).strftime("%H:%M:%S")
    where = []
    if alert.post_id:
        where.append(f"帖子 {printable(alert.post_id)}")
    if thread is not None and thread.update:
        where.append(printable(f"事件 {thread.incident_id} 更新{thread.update}"))
    elif alert.incident_id:
        where.append(f"事件 {printable(alert.incident_id)}")
    # Every text from outside (a title quotes the author and the post) is cleaned of
    # control characters and bidi overrides first: an author named "\x1b[2J" would
    # otherwise clear the screen of whoever watches this terminal.
    sev, title, dim, reset = printable(alert.severity), printable(alert.title), "", ""
    if colour:
        sev = f"{_SEVERITY_STYLE.get(sev, '')} {sev} {_RESET}"
        title, dim, reset = f"{_BOLD}{title}{_RESET}", _DIM, _RESET
    parts = [f"{dim}{when}{reset}", sev, printable(alert.brand),
             printable(f"{alert.type} {type_label(alert)}"),
             level_label(alert.level), *where, f"— {title}",
             f"{dim}[{printable(alert.id)}]{reset}"]
    return " ".join(parts)  # one line: ``printable`` turned any line break into a space


class TerminalChannel:
    """Writes one line per alert to ``stream``."""

    def __init__(self, name: str = "terminal", stream: TextIO | None = None,
                 color: Literal["auto", "always", "never"] = "auto",
                 tz: tzinfo = DEFAULT_TZ) -> None:
        self.name = name
        self._stream = stream if stream is not None else sys.stdout
        isatty = getattr(self._stream, "isatty", None)
        tty = bool(isatty and isatty())
        self._colour = color == "always" or (color == "auto" and tty)
        self._tz = tz

    @classmethod
    def from_config(cls, cfg: TerminalChannelConfig, tz: tzinfo = DEFAULT_TZ) -> TerminalChannel:
        """Build from settings."""
        stream = sys.stderr if cfg.stream == "stderr" else sys.stdout
        return cls(cfg.name, stream, cfg.color, tz)

    def write(self, alert: Alert, thread: Thread | None = None) -> None:
        """Print the line (a digest: its text) and flush, so a piped stdout does not hold
        it back. Raises OSError or ValueError when the stream is closed."""
        if is_digest(alert):
            text = printable(plain_text(from_alert(alert)[0]), keep_lines=True)
        else:
            text = format_line(alert, self._tz, self._colour, thread) + "\n"
        self._stream.write(text)
        self._stream.flush()

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        """:meth:`write`, as a channel: a closed stream is a delivery that cannot work."""
        try:
            self.write(alert, thread)
        except (OSError, ValueError) as exc:  # closed pipe / closed file
            raise DeliveryError(f"terminal: {type(exc).__name__}: {exc}",
                                retryable=False) from None

    async def aclose(self) -> None:
        """Nothing to release; the stream belongs to whoever passed it in."""
