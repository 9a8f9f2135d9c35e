"""All durable state, and every SQL statement: one interface, two backends.

- ``sqlite.py``: ``Store``, the interface and its SQLite (WAL) implementation, the
  default: events, snapshots, alerts, deliveries, cursors, projections (mentions,
  incidents), the outbox's memory (threads, rate-limit sends) and the audit log. Its
  schema: ``sqlite.SCHEMA``.
- ``postgres.py``: ``PgStore``, the same interface on PostgreSQL for several instances
  sharing state (plus the brand leases of ``monitor.cluster``). Its schema, written for
  PostgreSQL: ``postgres.SCHEMA``; its SQL where the dialects differ is its own.

Nothing outside this package runs SQL or holds SQL text (``tests/unit/test_sql_owner.py``):
everything else calls the store's methods, named in the domain (``pending_deliveries``,
``mark_delivered``, ``record_action``, ``take_lease`` ...). ``PgStore`` is imported from
``monitor.store.postgres`` (psycopg is an optional extra).
"""

from monitor.store.sqlite import (
    MENTION_COLUMNS,
    SEEN_IDS_MAX,
    SHOWN_MENTION_COLUMNS,
    SNAPSHOT_PART,
    SNAPSHOT_SUFFIX,
    CountsSeen,
    Mark,
    PendingDelivery,
    PlainPost,
    Store,
    StoredEvent,
    decode_event,
    encode_event,
    encode_events,
    event_key,
    post_key,
)

__all__ = ["MENTION_COLUMNS", "SEEN_IDS_MAX", "SHOWN_MENTION_COLUMNS", "SNAPSHOT_PART",
           "SNAPSHOT_SUFFIX", "CountsSeen", "Mark", "PendingDelivery", "PlainPost", "Store",
           "StoredEvent", "decode_event", "encode_event", "encode_events",
           "event_key", "post_key"]
