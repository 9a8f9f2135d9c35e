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

from monitor.store.postgres import PgStore


class Leases:
    """This instance's view of the brand leases, over a ``PgStore`` connection."""

    def __init__(self, store: PgStore, owner: str, ttl: float) -> None:
        self.store = store
        self.owner = owner
        self.ttl = ttl

    def claim(self, brands: Iterable[str], now: float) -> set[str]:
        """Renew ours, take free or expired ones; return the brands this instance holds."""
        return {brand for brand in brands
                if self.store.take_lease(brand, self.owner, now + self.ttl, now)}

    def release(self) -> None:
        """Give every lease up at once (clean shutdown), so a peer need not wait ``ttl``."""
        self.store.release_leases(self.owner)

    def server_now(self) -> float:
        """The database server's time (epoch seconds): what lease expiry is measured in."""
        return self.store.server_now()

    def owners(self) -> dict[str, str]:
        """Brand -> the instance holding (or last holding) its lease."""
        return self.store.lease_owners()
