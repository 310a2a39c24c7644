"""The event id is the idempotency key, under contention and across a restart, against a real
`clarion serve` on a store file: one event row, its deliveries planned once, the first answer
for every repeat, and 409 for the same id with another body."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from clarion.runtime import TableIndex
from tests.conftest import EXAMPLES
from tests.runtime.conftest import example
from tests.runtime.serving import Sidecar

THREADS = 50


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    with Sidecar(EXAMPLES, tmp_path / "store.db", "--dry-run", "--no-watch") as running:
        yield running


def _together(count: int, call: Callable[[int], tuple[int, Any]]) -> list[tuple[int, Any]]:
    """`count` calls released at the same moment, each on its own thread."""
    start = threading.Barrier(count)

    def one(index: int) -> tuple[int, Any]:
        start.wait(timeout=30)
        return call(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _rows(store: Path, event_id: str) -> tuple[int, list[tuple[Any, ...]]]:
    with sqlite3.connect(store) as db:
        events = db.execute("SELECT COUNT(*) FROM events WHERE id = ?", (event_id,)).fetchone()[0]
        deliveries = db.execute(
            # source: a route's skipped row and a flow's send may share the rest
            "SELECT recipient, channel, address, template, source FROM deliveries "
            "WHERE event_id = ?",
            (event_id,),
        ).fetchall()
    return events, deliveries


def _dispute(table: TableIndex, event_id: str, **data: Any) -> dict[str, Any]:
    return {
        "type": "dispute.created",
        "id": event_id,
        "data": example(table, "dispute.created", **data),
    }


def test_fifty_posts_of_one_event_plan_it_once(
    sidecar: Sidecar, examples_table: TableIndex, tmp_path: Path
) -> None:
    event = _dispute(examples_table, "evt_race")
    answers = _together(THREADS, lambda _: sidecar.post("/v1/events", event))
    statuses = Counter(status for status, _ in answers)
    assert statuses == {202: 1, 200: THREADS - 1}, statuses
    assert all(body == {"id": "evt_race", "status": "accepted"} for _, body in answers)

    deliveries = sidecar.event("evt_race")["deliveries"]
    assert deliveries
    sidecar.stop()
    events, rows = _rows(tmp_path / "store.db", "evt_race")
    assert events == 1
    assert len(rows) == len(set(rows)) == len(deliveries)


def test_one_id_two_bodies_at_once_one_wins_the_other_conflicts(
    sidecar: Sidecar, examples_table: TableIndex
) -> None:
    bodies = [
        _dispute(examples_table, "evt_two", amount=1000),
        _dispute(examples_table, "evt_two", amount=2000),
    ]
    answers = _together(THREADS, lambda i: sidecar.post("/v1/events", bodies[i % 2]))
    by_body: dict[int, Counter[int]] = {0: Counter(), 1: Counter()}
    for index, (status, body) in enumerate(answers):
        by_body[index % 2][status] += 1
        if status == 409:
            assert body["error"]["code"] == "idempotency_conflict"
    winner = 0 if by_body[0][202] else 1
    loser = 1 - winner
    assert by_body[winner] == {202: 1, 200: THREADS // 2 - 1}, by_body
    assert by_body[loser] == {409: THREADS // 2}, by_body
    kept = sidecar.event("evt_two")["event"]["data"]["amount"]
    assert kept == bodies[winner]["data"]["amount"]


def test_a_batch_and_single_posts_of_one_id_plan_it_once(
    sidecar: Sidecar, examples_table: TableIndex, tmp_path: Path
) -> None:
    event = _dispute(examples_table, "evt_mixed")
    paid = {
        "type": "payment.failed",
        "id": "evt_mixed_2",
        "data": example(examples_table, "payment.failed"),
    }

    def post(index: int) -> tuple[int, Any]:
        if index % 5 == 0:  # a batch holding the event twice, and another one
            status, body = sidecar.post("/v1/events:batch", [event, paid, event])
            return status, [r["http_status"] for r in body["results"]]
        return sidecar.post("/v1/events", event)

    answers = _together(20, post)
    firsts = [s for s, body in answers if isinstance(body, dict) and s == 202]
    in_batches = [h for s, body in answers if isinstance(body, list) for h in (body[0], body[2])]
    assert len(firsts) + in_batches.count(202) == 1, answers
    assert set(in_batches) <= {200, 202}
    sidecar.stop()
    for event_id in ("evt_mixed", "evt_mixed_2"):
        events, rows = _rows(tmp_path / "store.db", event_id)
        assert events == 1 and rows and len(rows) == len(set(rows))


def test_dedup_survives_a_restart(examples_table: TableIndex, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    event = _dispute(examples_table, "evt_restart")
    with Sidecar(EXAMPLES, store, "--dry-run", "--no-watch") as first:
        assert first.post("/v1/events", event) == (202, {"id": "evt_restart", "status": "accepted"})
        before = first.event("evt_restart")["deliveries"]
        assert first.stop() == 0
    _, rows_before = _rows(store, "evt_restart")

    with Sidecar(EXAMPLES, store, "--dry-run", "--no-watch") as second:
        answers = _together(10, lambda _: second.post("/v1/events", event))
        assert answers == [(200, {"id": "evt_restart", "status": "accepted"})] * 10
        changed = _dispute(examples_table, "evt_restart", amount=1)
        status, body = second.post("/v1/events", changed)
        assert status == 409 and body["error"]["code"] == "idempotency_conflict"
        after = second.event("evt_restart")["deliveries"]
        assert [d["id"] for d in after] == [d["id"] for d in before]
        assert second.stop() == 0
    events, rows_after = _rows(store, "evt_restart")
    assert events == 1 and rows_after == rows_before


def test_the_store_file_is_what_was_answered(examples_table: TableIndex, tmp_path: Path) -> None:
    # killed (no clean stop) right after the 202: the event was on disk before it was answered
    store = tmp_path / "store.db"
    event = _dispute(examples_table, "evt_killed")
    with Sidecar(EXAMPLES, store, "--dry-run", "--no-watch") as running:
        assert running.post("/v1/events", event)[0] == 202
        running.kill()
    events, rows = _rows(store, "evt_killed")
    assert events == 1 and rows
    with Sidecar(EXAMPLES, store, "--dry-run", "--no-watch") as again:
        assert again.post("/v1/events", event)[0] == 200
    assert json.loads(json.dumps(rows))  # plain values, nothing half-written
