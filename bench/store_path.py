"""The store's share of the live path, alone: 100,000 alerts on two channels.

    python bench/store_path.py [--alerts 100000] [--batch 250]

Per batch: ``add_alerts`` (two channels) in one transaction, as ingest records a batch's
alerts; then per channel ``pending_deliveries`` and, in one transaction,
``mark_delivered_many`` and the audit rows, as the outbox records a window
(``Outbox._delivered_all``); a checkpoint every 20 batches, as ``monitor.walcheck``
does (the log it found at each pass is summed: the pages the commits wrote). Prints the
CPU time of the whole run and of its first and last quarter: a cost that grows with the
tables (an index on hashed ids) shows as a last quarter dearer than the first. Copy it
into an export of older code and run it there for a before/after.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.audit import AuditLog
from monitor.store.sqlite import PendingDelivery, Store
from rules.records import Alert, AlertType

CHANNELS = ("log", "mqtt")
BY_SEQ = "seq" in PendingDelivery.__dataclass_fields__
"""Whether this code records deliveries by their alert's seq (since issue 18, round 3);
before, ``mark_delivered_many`` and the audit rows took no seq."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=250)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="crisismon-store-") as folder:
        store = Store(os.path.join(folder, "state.db"))
        audit = AuditLog(store)
        times: list[float] = []
        n = 0
        logged = 0
        for batch in range(args.alerts // args.batch):
            started = time.process_time()
            alerts = []
            for _ in range(args.batch):
                n += 1
                aid = "a-" + hashlib.blake2b(str(n).encode(), digest_size=8).hexdigest()
                alerts.append(Alert(id=aid, type=AlertType.MENTION_NEW, at=1000.0 + n,
                                    brand="b", level=0, severity="P3", title="t" * 40,
                                    text="x" * 300, post_id=str(n)))
            with store.transaction():
                store.add_alerts(alerts, CHANNELS)
            for channel in CHANNELS:
                items = store.pending_deliveries(channel, 1e12, limit=2 * args.batch)
                with store.transaction():
                    if BY_SEQ:
                        store.mark_delivered_many(
                            channel, [(i.alert.id, i.rep, i.seq) for i in items], 5.0)
                        audit.deliveries(5.0, channel, [(i.alert.id, i.rep, "", i.seq)
                                                        for i in items], "delivered")
                    else:  # the code before (this script copied into an export of it)
                        old_api: Any = store, audit
                        old_api[0].mark_delivered_many(
                            channel, [(i.alert.id, i.rep) for i in items], 5.0)
                        old_api[1].deliveries(5.0, channel, [(i.alert.id, i.rep, "")
                                                             for i in items], "delivered")
            if batch % 20 == 19:
                store.checkpoint()
                logged += store.wal_log_bytes()  # (the frames since the last pass)
                store.finish_checkpoint()
            times.append(time.process_time() - started)
        store.close()
    q = max(1, len(times) // 4)
    print(f"{n:,} alerts on {len(CHANNELS)} channels: {sum(times):.2f} s of CPU "
          f"({sum(times) / n * 1e6:.0f} µs an alert); first quarter {sum(times[:q]):.2f} s, "
          f"last quarter {sum(times[-q:]):.2f} s; write-ahead log ~{logged / 1e6:.0f} MB; "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
