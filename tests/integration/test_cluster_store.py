"""Two instances' pipelines on one PostgreSQL schema, in one process: who records what.

Real PostgreSQL 15 (127.0.0.1:5432, database ``test``), a fresh schema per test. The
process-level test (two ``crisismon run``, MQTT, SIGKILL) is ``test_cluster_pg.py``.
"""

from __future__ import annotations

from alerts.outbox import Outbox
from monitor.app import build_pipeline
from monitor.clock import SimClock
from monitor.cluster import Cluster
from monitor.paging import outbox_options
from monitor.pipeline import Pipeline
from monitor.store.postgres import PgStore
from rules.records import Alert, AlertType
from tests.factories import BRAND, T0, config, official_comment, post
from tests.fixtures.pg import DSN  # the `schema` fixture: tests/fixtures/pg.py


def instance(schema: str, name: str,
             channels: tuple[str, ...] = ("log",)) -> tuple[PgStore, Pipeline, Cluster]:
    store = PgStore(DSN, schema)
    pipeline = build_pipeline(config(), store, list(channels))
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
    assert "501" in b.engine.by_post and "502" in b.engine.by_post and "501" in a.engine.by_post
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


class Pager:
    """A paging channel (not a built-in one, so its level >= 1 pages repeat)."""

    name = "pager"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.sent.append(alert)


async def test_after_a_takeover_the_outbox_asks_the_new_engine_whether_a_page_is_settled(
        schema: str) -> None:
    """The outbox is built once, before any takeover; a takeover swaps the engine. Its
    "is this page settled?" must read the engine in use: a breach answered after the
    takeover stops repeating, and a breach first raised after it repeats."""
    store_a, a, ca = instance(schema, "a", ("pager",))
    store_b, b, cb = instance(schema, "b", ("pager",))
    assert ca.held == {BRAND} and cb.held == frozenset()
    clock = SimClock(T0)
    pager = Pager()
    outbox = Outbox(store_b, {"pager": pager}, clock, **outbox_options(config(), b))

    with store_a.transaction():  # a pages for the brand; b stands by and catches up
        a.handle(post(T0, pid="701"), T0)
    cb.apply_peers()
    ca.release()  # a goes away: b takes the brand over with a fresh engine
    assert cb.claim() == {BRAND}
    cb.rebuild_all()
    with store_b.transaction():
        b.handle(post(T0 + 10, pid="702"), T0 + 10)
    with store_b.transaction():  # both breached (5 min), 701 first known before the takeover
        b.tick(T0 + 400)
    clock.advance_to(T0 + 400)
    await outbox.drain("pager")
    breaches = {x.post_id: x.id for x in pager.sent if x.type is AlertType.REPLY_BREACH}
    assert set(breaches) == {"701", "702"}

    with store_b.transaction():  # 701 is answered in public, after the takeover
        b.handle(official_comment(T0 + 420, on="701"), T0 + 420)
    clock.advance_to(T0 + 400 + 600)  # repeat_every: 10 min
    outbox.fire_repeats(clock.now())
    await outbox.drain("pager")
    repeats = {x.id.rsplit("-r", 1)[0] for x in pager.sent if "-r" in x.id}
    assert breaches["701"] not in repeats  # answered: settled, never repeated
    assert breaches["702"] in repeats  # unanswered: repeated
    store_a.close()
    store_b.close()
