"""What the outbox must remember across restarts besides the deliveries themselves.

- **Threads**: per (channel, incident), the message that opened the incident's thread,
  the provider's handle on it (mail ``Message-ID``, Slack ``ts``) and how many messages
  the thread holds, so after a restart an update still replies to the first page and
  carries the next number.
- **Sends**: per rate-limited channel, when each message went out during the last
  window, so a restart neither forgets the window (and pages past the limit) nor the
  summary it owes (held pages are deliveries in the store already).

Both live in the daemon's store as tables of their own (``threads``, ``channel_sends``,
created with the store's schema); on PostgreSQL several instances share them, which is
right for both: one thread and one limit per channel, whoever sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from alerts.channels.base import Thread
from rules.records import Alert

if TYPE_CHECKING:
    from monitor.store import Store


class ThreadBook:
    """The incident threads of every channel, in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, channel: str, incident_id: str) -> Thread:
        """Where the next message about ``incident_id`` on ``channel`` stands: update 0
        when the channel has not delivered one yet."""
        row = self.store.thread(channel, incident_id)
        if row is None:
            return Thread(incident_id, 0)
        sent, root, ref = row
        return Thread(incident_id, int(sent), Alert.from_record(msgspec.json.decode(root)), ref)

    def delivered(self, channel: str, thread: Thread, message: Alert, ref: str | None,
                  now: float) -> None:
        """``message`` went out as ``thread``'s update; ``ref`` (when the channel gave one)
        makes it the thread's new first message, e.g. after the old one was deleted."""
        if thread.update == 0 or ref is not None:
            self.store.start_thread(channel, thread.incident_id, thread.update + 1,
                                    message.to_json(), ref, now)
        else:
            self.store.count_thread(channel, thread.incident_id, thread.update + 1, now)

    def delivered_many(self, channel: str, sent: Iterable[tuple[Thread, Alert, str | None]],
                       now: float) -> None:
        """``delivered`` for each ``(thread, message, ref)`` of a window, in order, with the
        threads' counts written by one statement at the end: a count is a thread's whole
        row state, so only each thread's last one is written, and a (re)start drops the
        count before it (one ``UPDATE`` per page had cost ~3 us a post at 5,000 a second)."""
        counts: dict[str, int] = {}
        for thread, message, ref in sent:
            if thread.update == 0 or ref is not None:
                counts.pop(thread.incident_id, None)
                self.delivered(channel, thread, message, ref, now)
            else:
                counts[thread.incident_id] = thread.update + 1
        if counts:
            self.store.count_threads(channel, list(counts.items()), now)


class SendLog:
    """When each rate-limited channel sent its recent messages (a durable sliding window,
    see :class:`alerts.noise.RateLimiter`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def times(self, channel: str, since: float) -> list[float]:
        """Send times of ``channel`` after ``since``, oldest first."""
        return self.store.send_times(channel, since)

    def add(self, channel: str, at: float, forget_before: float) -> None:
        """A message went out at ``at``; sends at or before ``forget_before`` no longer
        count for any window and are dropped."""
        self.store.record_send(channel, at, forget_before)
