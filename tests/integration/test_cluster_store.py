"""Two instances' pipelines on one PostgreSQL schema, in one process: who records what.

Real PostgreSQL 15 (127.0.0.1:5432, database ``test``), a fresh schema per test. The
process-level test (two ``crisismon run``, MQTT, SIGKILL) is ``test_cluster_pg.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from alerts.record import AlertType
from monitor.app import build_pipeline
from monitor.cluster import Cluster
from monitor.pipeline import Pipeline
from monitor.store_pg import PgStore, drop_schema
from tests.factories import BRAND, T0, config, post

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"t_{secrets.token_hex(6)}"
    yield name
    drop_schema(DSN, name)


def instance(schema: str, name: str) -> tuple[PgStore, Pipeline, Cluster]:
    store = PgStore(DSN, schema)
    pipeline = build_pipeline(config(), store, ["log"])
    cluster = Cluster(store, pipeline, lambda: [BRAND], instance=name, ttl=30)
    with store.transaction():
        cluster.start()
        pipeline.rebuild()
    return store, pipeline, cluster


def test_only_the_lease_holder_records_and_delivers(schema: str) -> None:
    store_a, a, ca = instance(schema, "a")
    store_b, b, cb = instance(schema, "b")
    assert ca.held == {BRAND} and cb.held == frozenset()

    p1, p2 = post(T0, pid="501"), post(T0 + 1, pid="502")
    with store_b.transaction():  # the shared subscription gave p1 to b
        assert b.handle(p1, T0) == []  # b does not page for the brand
    with store_a.transaction():
        assert [x.type for x in a.handle(p2, T0 + 1)] == [AlertType.MENTION_NEW]
    # a catches up with p1 (stored by b) and pages for it; b sees p2, records nothing
    assert [(x.type, x.post_id) for x in ca.apply_peers()] == [(AlertType.MENTION_NEW, "501")]
    assert cb.apply_peers() == []
    assert ca.apply_peers() == []  # its own p2 is not applied twice
    assert b.engine.tracks("501") and b.engine.tracks("502") and a.engine.tracks("501")
    assert len(a.engine.clocks) == len(b.engine.clocks) == 2

    # the outbox of b sees none of a's deliveries, and no retry time to spin on
    assert [d.alert.post_id for d in store_a.pending_deliveries("log", T0 + 10)] == \
        ["502", "501"]
    assert store_b.pending_deliveries("log", T0 + 10) == []
    assert store_b.next_retry("log") is None and store_a.next_retry("log") == 0

    with store_a.transaction():  # a fires the warnings; b's engine fires them unrecorded
        assert len(a.tick(T0 + 200)) == 2
    with store_b.transaction():
        assert b.tick(T0 + 200) == []

    # a goes away; b takes the brand over: a fresh rebuild re-records nothing ...
    ca.release()
    assert cb.claim() == {BRAND}
    assert cb.rebuild_all() == []
    assert len(store_b.alert_ids()) == 4
    # ... and from now on b fires the brand's deadlines
    with store_b.transaction():
        breaches = b.tick(T0 + 400)
    assert sorted(x.post_id for x in breaches if x.type == AlertType.REPLY_BREACH) == \
        ["501", "502"]
    assert len(store_b.pending_deliveries("log", T0 + 500)) == 6
    store_a.close()
    store_b.close()


def test_catch_up_reads_events_in_commit_order(schema: str) -> None:
    store_a, a, ca = instance(schema, "a")
    store_b, b, _ = instance(schema, "b")
    with store_a.transaction():
        a.handle(post(T0, pid="601"), T0)
        a.handle(post(T0, pid="601"), T0)  # a duplicate takes a seq but stores nothing
    with store_b.transaction():
        b.handle(post(T0, pid="602"), T0)
    seqs = [seq for seq, _, _, _ in store_a.events_after(0)]
    assert seqs == sorted(seqs) and len(seqs) == 2
    assert store_a.own_seqs == {seqs[0]} and store_b.own_seqs == {seqs[1]}
    ca.apply_peers()
    assert ca.watermark == seqs[1] and store_a.own_seqs == set()
    store_a.close()
    store_b.close()
