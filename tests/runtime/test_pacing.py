"""Digests and throttles against the real store, under concurrency, sent for real to loopback
sinks: many events for one key in the same second give exactly one digest; a throttle holds
across several workers and across two stores (two sidecars) on one database file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clarion.compile import build
from clarion.runtime import Policy, Runtime, SQLiteStore, TableIndex
from clarion.runtime.api import create_app
from clarion.runtime.pacing import next_boundary
from clarion.runtime.scenario import SimulatedClock
from clarion.runtime.store import open_store
from clarion.runtime.store.base import Store
from tests.sinks import HttpSink

START = datetime(2026, 3, 2, 10, 0, 0, 500_000, tzinfo=UTC)

CONFIG = """
version: 1
defaults: {{timezone: Europe/Madrid, allow_private_targets: true}}  # loopback sink
events:
  payout.processed:
    category: payouts
    description: Payout Processed
    data: {{type: object, required: [payout_id], properties: {{payout_id: {{type: string}}}}}}
    example: {{payout_id: po_1}}
  order.status_changed:
    data: {{type: object, required: [order_id], properties: {{order_id: {{type: string}}}}}}
    example: {{order_id: SO-1}}
channels:
  hook:
    address: url
recipients:
  finance:
    hook: {{device: finance-hook, url: "{url}", events: [payouts], digest: {{every: 1h}}}}
  ops:
    hook: {{device: ops-hook, url: "{url}/ops", events: none}}
flows:
  status_digest:
    on: order.status_changed
    steps:
      - digest: {{window: 10m, key: "{{{{ contact.id }}}}", max: 4}}
      - send: {{to: [ops], channels: [hook], template: orders}}
customer_messages:
  order.status_changed:
    channels: [hook]
    template: order_status
    throttle: {{limit: 3, per: 1h, key: "{{{{ contact.id }}}}"}}
consent:
  default: {{hook: true}}
"""


def table_for(tmp_path: Path, url: str, config: str = CONFIG) -> TableIndex:
    folder = tmp_path / "config"
    (folder / "templates").mkdir(parents=True)
    (folder / "main.yaml").write_text(config.format(url=url), "utf-8")
    (folder / "templates" / "order_status.hook.j2").write_text("Order {{ data.order_id }}\n")
    (folder / "templates" / "orders.hook.j2").write_text(
        "Subject: {{ count }} updates for {{ contact.id }}\n"
        "{% for e in events %}{{ e.data.order_id }} {% endfor %}\n"
    )
    (folder / "templates" / "digest.hook.j2").write_text(
        "Subject: {{ count }} payouts\n{% for e in events %}{{ e.data.payout_id }} {% endfor %}\n"
    )
    result = build(folder)
    assert result.table is not None and result.data is not None, result.diagnostics
    return TableIndex.from_table(result.table, result.data)


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


def rows(store: Store, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """A query on the store's own connection (`?` placeholders on either backend)."""
    found: list[tuple[Any, ...]] = store.write(lambda tx: tx.conn.execute(sql, args).fetchall())  # type: ignore[attr-defined]
    return [tuple(row) for row in found]


def test_concurrent_events_for_one_key_fold_into_exactly_one_digest(
    tmp_path: Path, sink: HttpSink, store_url: str
) -> None:
    table = table_for(tmp_path, sink.apprise_url("/digest"))
    clock = SimulatedClock(START)
    store = open_store(store_url)
    runtime = Runtime(table, store, Policy(workers=8), clock=clock)
    runtime.start()
    count = 48
    barrier = threading.Barrier(count)
    try:
        with TestClient(create_app(runtime)) as client:

            def post(i: int) -> int:
                barrier.wait()  # all in the same (simulated) second, as close together as can be
                body = {
                    "type": "payout.processed",
                    "id": f"evt_{i}",
                    "data": {"payout_id": f"po_{i}"},
                }
                return client.post("/v1/events", json=body).status_code

            with ThreadPoolExecutor(count) as pool:
                statuses = list(pool.map(post, range(count)))
            assert statuses == [202] * count
            digests = rows(store, "SELECT id, open, delivery_id FROM digests")
            assert len(digests) == 1, digests
            digest_id, is_open, message = digests[0]
            assert is_open == 1
            own = rows(
                store,
                "SELECT status, reason, digest_id FROM deliveries "
                "WHERE id != ? AND recipient = 'finance' "
                "ORDER BY id",
                message,
            )
            assert own == [("skipped", "digested", digest_id)] * count
            assert sink.received == []  # nothing before the hour
            # the hour strikes: one message, listing all of them
            clock.moment = next_boundary(START.timestamp(), 3600, None, UTC) + 0.1  # type: ignore[arg-type]
            runtime.dispatcher.wake()
            (got,) = sink.wait_for(1, timeout=10)
            assert got.title == f"{count} payouts"
            listed = set((got.message or "").split())
            assert listed == {f"po_{i}" for i in range(count)}
            event = client.get("/v1/events/evt_0").json()
            [folded_row] = [d for d in event["deliveries"] if d["reason"] == "digested"]
            assert folded_row["digest_id"] == digest_id
            assert f"in the digest message {message}" in folded_row["detail"]
            # a later event opens the next digest, not the one already sent
            later = {"type": "payout.processed", "id": "evt_late", "data": {"payout_id": "po_x"}}
            assert client.post("/v1/events", json=later).status_code == 202
            assert len(rows(store, "SELECT id FROM digests")) == 2
            assert len(sink.received) == 1
    finally:
        runtime.stop(timeout=5)


def test_a_throttle_holds_across_workers_and_across_two_stores_on_one_file(
    tmp_path: Path, sink: HttpSink, store_url: str
) -> None:
    table = table_for(tmp_path, sink.apprise_url("/digest"))
    clock = SimulatedClock(START)
    # two sidecars' worth of runtimes on one database: each its own writer, as two processes
    first = Runtime(table, open_store(store_url), Policy(dry_run=True, workers=4), clock=clock)
    store = open_store(store_url)
    second = Runtime(table, store, Policy(dry_run=True, workers=4), clock=clock)
    per_worker, workers = 10, 8
    barrier = threading.Barrier(workers)

    def worker(w: int) -> list[int]:
        runtime = first if w % 2 else second
        barrier.wait()
        out = []
        for i in range(per_worker):
            raw = {
                "type": "order.status_changed",
                "id": f"evt_{w}_{i}",
                "data": {"order_id": f"SO-{w}-{i}"},
                "contact": {
                    "id": "cus_1" if i % 2 else "cus_2",
                    "devices": [{"device": "phone", "url": "json://127.0.0.1:9/"}],
                },
            }
            [answer] = runtime.ingest([raw])
            out.append(answer.status)
        return out

    try:
        with ThreadPoolExecutor(workers) as pool:
            answers = [s for got in pool.map(worker, range(workers)) for s in got]
        assert answers == [202] * (per_worker * workers)
        by_contact = rows(
            store,
            "SELECT recipient, status, COUNT(*) FROM deliveries WHERE recipient LIKE 'contact:%' "
            "GROUP BY recipient, status "
            "ORDER BY recipient, status",
        )
        total = per_worker * workers // 2
        assert by_contact == [
            ("contact:cus_1", "pending", 3),
            ("contact:cus_1", "skipped", total - 3),
            ("contact:cus_2", "pending", 3),
            ("contact:cus_2", "skipped", total - 3),
        ]
        reasons = rows(
            store,
            "SELECT DISTINCT reason FROM deliveries WHERE status = 'skipped' "
            "AND recipient LIKE 'contact:%'",
        )
        assert reasons == [("throttled",)]
        # the next window lets three more through
        clock.moment += 3600
        [answer] = first.ingest(
            [
                {
                    "type": "order.status_changed",
                    "id": "evt_next_hour",
                    "data": {"order_id": "SO-9"},
                    "contact": {"id": "cus_1"},
                }
            ]
        )
        assert answer.status == 202
        last = rows(
            store,
            "SELECT status FROM deliveries WHERE event_id = 'evt_next_hour' "
            "AND recipient LIKE 'contact:%'",
        )
        assert last == [("pending",)]
    finally:
        first.stop(timeout=5)
        second.stop(timeout=5)


@pytest.mark.parametrize(
    ("now", "every", "at", "zone", "expected"),
    [
        ("2026-03-02T10:20:00+00:00", 3600, None, "UTC", "2026-03-02T11:00:00+00:00"),
        ("2026-03-02T10:00:00+01:00", 86400, "09:00", "Europe/Madrid", "2026-03-03T09:00:00+01:00"),
        ("2026-03-02T08:59:00+01:00", 86400, "09:00", "Europe/Madrid", "2026-03-02T09:00:00+01:00"),
        ("2026-03-02T09:00:00+01:00", 86400, "09:00", "Europe/Madrid", "2026-03-03T09:00:00+01:00"),
        # weekly: Mondays; 2026-03-04 is a Wednesday
        (
            "2026-03-04T12:00:00+00:00",
            604800,
            "08:00",
            "America/New_York",
            "2026-03-09T08:00:00-04:00",
        ),
        # daylight saving: 09:00 stays 09:00 on the wall clock across the change
        ("2026-03-28T10:00:00+01:00", 86400, "09:00", "Europe/Madrid", "2026-03-29T09:00:00+02:00"),
    ],
)
def test_digest_boundaries(now: str, every: int, at: str | None, zone: str, expected: str) -> None:
    from zoneinfo import ZoneInfo

    moment = datetime.fromisoformat(now).timestamp()
    got = next_boundary(moment, every, at, ZoneInfo(zone))
    assert got == datetime.fromisoformat(expected).timestamp()


def test_a_flow_digest_sends_once_per_key_listing_every_run_and_starts_again_past_max(
    tmp_path: Path, sink: HttpSink
) -> None:
    table = table_for(tmp_path, sink.apprise_url("/digest"))
    clock = SimulatedClock(START)
    runtime = Runtime(table, SQLiteStore(None), Policy(workers=2), clock=clock)
    try:
        for i in range(6):  # cus_1: 6 runs; max 4 -> a digest of 4, then one of 2
            raw = {
                "type": "order.status_changed",
                "id": f"evt_a{i}",
                "data": {"order_id": f"SO-{i}"},
                "contact": {"id": "cus_1"},
            }
            [answer] = runtime.ingest([raw])
            assert answer.status == 202
            clock.moment += 1
        [answer] = runtime.ingest(
            [
                {
                    "type": "order.status_changed",
                    "id": "evt_b",
                    "data": {"order_id": "SO-b"},
                    "contact": {"id": "cus_2"},
                }
            ]
        )
        runtime.dispatcher.run_pending()
        assert [r for r in sink.received if "updates for" in (r.title or "")] == []
        clock.moment += 600
        runtime.dispatcher.run_pending()
        got = sink.wait_for(3, timeout=10)
        flow = sorted(
            (r.title, sorted((r.message or "").split()))
            for r in got
            if "updates" in (r.title or "")
        )
        assert flow == [
            ("1 updates for cus_2", ["SO-b"]),
            ("2 updates for cus_1", ["SO-4", "SO-5"]),
            ("4 updates for cus_1", ["SO-0", "SO-1", "SO-2", "SO-3"]),
        ]
    finally:
        runtime.stop(timeout=5)


def test_a_send_after_a_wait_that_follows_a_flow_digest_still_gets_its_events(
    tmp_path: Path, sink: HttpSink
) -> None:
    """Found in review: the send after `wait` lost `events`/`count` and was dead-lettered."""
    send = "      - send: {{to: [ops], channels: [hook], template: orders}}\n"
    config = CONFIG.replace(send, send + "      - wait: {{for: 1h}}\n" + send)
    table = table_for(tmp_path, sink.apprise_url("/digest"), config)
    clock = SimulatedClock(START)
    runtime = Runtime(table, open_store("sqlite://:memory:"), Policy(workers=2), clock=clock)
    try:
        for i in range(2):
            raw = {
                "type": "order.status_changed",
                "id": f"evt_w{i}",
                "data": {"order_id": f"SO-{i}"},
                "contact": {"id": "cus_1"},
            }
            assert runtime.ingest([raw])[0].status == 202
        clock.moment += 600
        runtime.dispatcher.run_pending()
        clock.moment += 3600
        runtime.dispatcher.run_pending()
        got = [r for r in sink.wait_for(2, timeout=10) if "updates" in (r.title or "")]
        assert [r.title for r in got] == ["2 updates for cus_1"] * 2
    finally:
        runtime.stop(timeout=5)
