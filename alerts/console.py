"""Alerts as readable terminal lines (the default channel of ``crisismon run`` and replay)."""

from __future__ import annotations

from datetime import tzinfo
from typing import TextIO

from alerts.digest import from_alert, is_digest, plain_text
from monitor.textsafe import printable
from rules.records import Alert, format_instant

_COLOURS = {"P1": "\033[1;31m", "P2": "\033[31m", "P3": "\033[33m", "P4": "\033[36m"}
_RESET = "\033[0m"


def alert_line(alert: Alert, tz: tzinfo, colour: bool = False) -> str:
    """``2026-05-01T09:03:00+08:00 P2 L1 reply.breach 快书包 title -> 客服总监``."""
    # Cleaned of control characters and bidi overrides: a title quotes the author and the
    # post, and an escape code in either must not act on the terminal.
    sev = printable(alert.severity)
    if colour:
        sev = f"{_COLOURS.get(sev, '')}{sev}{_RESET}"
    who = printable(",".join(alert.recipients))
    return (f"{format_instant(alert.at, tz)} {sev} L{alert.level} {printable(alert.type)} "
            f"{printable(alert.title)}" + (f" -> {who}" if who else ""))


class TerminalPrinter:
    """Prints one line per alert; colour only on a real terminal."""

    def __init__(self, stream: TextIO, tz: tzinfo) -> None:
        self.stream = stream
        self.tz = tz
        self.colour = stream.isatty()

    def print(self, alert: Alert) -> None:
        if is_digest(alert):  # a scheduled summary: its text, not one line
            self.stream.write(printable(plain_text(from_alert(alert)[0]), keep_lines=True))
            self.stream.flush()
            return
        self.stream.write(alert_line(alert, self.tz, self.colour) + "\n")
        self.stream.flush()


class ConsoleChannel:
    """The terminal as an outbox channel (``alerts.terminal = true``)."""

    name = "terminal"

    def __init__(self, stream: TextIO, tz: tzinfo) -> None:
        self.printer = TerminalPrinter(stream, tz)

    async def send(self, alert: Alert, thread: object = None) -> None:
        self.printer.print(alert)
