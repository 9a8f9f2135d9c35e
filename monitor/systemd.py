"""Talking to systemd: ``sd_notify`` over ``$NOTIFY_SOCKET``, with a plain datagram socket.

Why no library: the protocol is one datagram of ``KEY=value`` lines to a unix socket
(``@name`` is the abstract namespace); twenty lines of code beat a C binding. When the
daemon does not run under systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.

What we say: ``READY=1`` once the store is open, the state rebuilt and the sources
started (``Type=notify`` makes ``systemctl start`` wait for it); ``WATCHDOG=1`` from a
task on the event loop every half ``$WATCHDOG_USEC`` (a loop that hangs stops the
pings, and systemd restarts us); ``STATUS=`` with live counts for ``systemctl status``;
``STOPPING=1`` when shutdown begins; ``RELOADING=1`` around a SIGHUP reload.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

from monitor.retry import FailureLog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify messages; silent when not started by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]  # the abstract namespace
        elif address.startswith("/"):
            self.address = address
        self.watchdog_interval = watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._health = FailureLog(log, "sd_notify failing", "sd_notify recovered")

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines (``notify(READY=1, STATUS="...")``); True if sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            self._health.failed(exc, socket=os.environ.get("NOTIFY_SOCKET"))
            return False
        self._health.succeeded()
        return True

    async def watchdog(self, status: Callable[[], str] | None = None,
                       status_every: float = 10.0) -> None:
        """Ping ``WATCHDOG=1`` at half the configured interval; refresh ``STATUS=`` too.

        Runs on the event loop on purpose: if the loop is stuck, the pings stop.
        """
        if self.address is None:
            return
        interval = self.watchdog_interval or status_every
        since_status = status_every  # send a status with the first ping
        while True:
            fields: dict[str, object] = {}
            if self.watchdog_interval:
                fields["WATCHDOG"] = 1
            if status is not None and since_status >= status_every:
                fields["STATUS"] = status()
                since_status = 0.0
            if fields:
                self.notify(**fields)
            await asyncio.sleep(interval)
            since_status += interval

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # set for another process (we were exec'd by a wrapper)
    return int(usec) / 1e6 / 2
