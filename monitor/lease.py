"""Per-brand leases in PostgreSQL: which instance runs a brand's clocks.

One row per brand (``owner``, ``expires_at``). ``claim`` renews this instance's leases and
takes any that are free or expired, in one statement, so two instances can never both
hold a brand: PostgreSQL serialises the upserts on the row. An instance that dies stops
renewing; after ``ttl`` its brands are free and the next ``claim`` of a survivor takes
them.

Leases are timed by the PostgreSQL server's clock (``server_now``), the one clock every
instance sees, so the instances' own clocks need not agree. The daemon uses them through
:mod:`monitor.cluster`.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.store_pg import PgStore

LEASES = """
CREATE TABLE IF NOT EXISTS leases (
    brand TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
)
"""


class Leases:
    """This instance's view of the brand leases, over a ``PgStore`` connection."""

    def __init__(self, store: PgStore, owner: str, ttl: float) -> None:
        self.store = store
        self.owner = owner
        self.ttl = ttl
        store.db.execute(LEASES)

    def claim(self, brands: Iterable[str], now: float) -> set[str]:
        """Renew ours, take free or expired ones; return the brands this instance holds."""
        held: set[str] = set()
        for brand in brands:
            row = self.store.db.execute(
                "INSERT INTO leases (brand, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (brand) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
                "RETURNING brand", (brand, self.owner, now + self.ttl, now)).fetchone()
            if row is not None:
                held.add(brand)
        return held

    def release(self) -> None:
        """Give every lease up at once (clean shutdown), so a peer need not wait ``ttl``."""
        self.store.db.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))

    def server_now(self) -> float:
        """The database server's time (epoch seconds): what lease expiry is measured in."""
        row = self.store.db.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
        return float(row.fetchone()[0])

    def owners(self) -> dict[str, str]:
        """Brand -> the instance holding (or last holding) its lease."""
        rows = self.store.db.execute("SELECT brand, owner FROM leases")
        return {brand: owner for brand, owner in rows}
