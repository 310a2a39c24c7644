"""The store's contract, held against every backend (the `store_url` fixture runs each test on
SQLite and on PostgreSQL): what the runtime relies on, operation by operation."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clarion.runtime.store import StoreError, open_store
from clarion.runtime.store.base import ConsentChange, ContactRow, NewDelivery, Outcome, Store, Tx
from clarion.runtime.store.sqlite import MIGRATIONS

NOW = 1_800_000_000.0


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def delivery(recipient: str = "ops", *, due: float = NOW, kind: str = "email") -> NewDelivery:
    return NewDelivery(
        recipient=recipient,
        channel="email",
        kind=kind,
        to="ops@example.com",
        template=None,
        status="pending",
        reason=None,
        target="ops.email",
        url="mailto://x",
        locale="en",
        timezone="UTC",
        source="route:test",
        due_at=due,
    )


def add_event(store: Store, event_id: str, *rows: NewDelivery) -> None:
    def job(tx: Tx) -> None:
        tx.insert_event(event_id, "t", "h", "{}", None, "d", NOW, {"id": event_id})
        tx.insert_deliveries(event_id, "t", rows, NOW)

    store.write(job)


def sent(delivery_id: int, claimed: int | None = None, **inbox: Any) -> Outcome:
    return Outcome(
        delivery_id, "sent", "sent", None, 0.01, inbox=inbox or None, claimed_attempts=claimed
    )


def test_opening_again_migrates_nothing_and_keeps_the_rows(store_url: str) -> None:
    first = open_store(store_url)
    add_event(first, "e1", delivery())
    first.close()
    again = open_store(store_url)
    try:
        record = again.event("e1")
        assert record is not None and len(record.deliveries) == 1
        assert again.event("nope") is None
    finally:
        again.close()


def test_a_schema_newer_than_this_clarion_is_refused(store_url: str) -> None:
    opened = open_store(store_url)
    opened.write(lambda tx: tx.conn.execute("UPDATE schema_version SET version = 999"))  # type: ignore[attr-defined]
    opened.close()
    with pytest.raises(StoreError, match=f"newer than this Clarion knows \\({len(MIGRATIONS)}\\)"):
        open_store(store_url)


def test_a_failing_job_leaves_nothing_and_its_group_commits(store: Store) -> None:
    def bad(tx: Tx) -> None:
        tx.insert_event("bad", "t", "h", "{}", None, "d", NOW, {})
        raise ValueError("refused")

    futures = [store.submit(bad), store.submit(lambda tx: add_in(tx, "good"))]
    with pytest.raises(ValueError, match="refused"):
        futures[0].result()
    futures[1].result()
    assert store.event("bad") is None
    assert store.event("good") is not None


def add_in(tx: Tx, event_id: str) -> None:
    tx.insert_event(event_id, "t", "h", "{}", None, "d", NOW, {"id": event_id})


def test_the_same_event_id_twice_in_one_store_is_refused_by_the_store(store: Store) -> None:
    add_event(store, "e1")
    with pytest.raises(Exception, match=r"(?i)unique|duplicate key"):  # the backend's own
        add_event(store, "e1")
    answer = store.write(lambda tx: tx.event_answer("e1"))
    assert answer == ("h", {"id": "e1"})


def test_claims_take_what_is_due_once_and_lease_it(store: Store) -> None:
    add_event(store, "e1", delivery("a"), delivery("b"), delivery("later", due=NOW + 60))
    first = store.write(lambda tx: tx.claim_due(NOW, 10, 30.0))
    assert sorted(c.recipient for c in first) == ["a", "b"]
    assert store.write(lambda tx: tx.claim_due(NOW, 10, 30.0)) == []
    assert store.next_due_at() == NOW + 30.0  # the lease runs out before the later one is due
    assert store.stats(NOW)["queue_depth"] == 2


def test_an_expired_lease_is_released_as_a_timeout_and_phones_wait(store: Store) -> None:
    add_event(store, "e1", delivery("mail"), delivery("phone", kind="phone"))
    store.write(lambda tx: tx.claim_due(NOW, 10, 30.0))
    assert store.write(lambda tx: tx.release_expired(NOW + 10, NOW + 900)) == []
    released = store.write(lambda tx: tx.release_expired(NOW + 31, NOW + 900))
    assert sorted(kind for _, kind in released) == ["email", "phone"]
    again = store.write(lambda tx: tx.claim_due(NOW + 31, 10, 30.0))
    assert [c.recipient for c in again] == ["mail"]
    assert again[0].attempts == 1
    record = store.event("e1")
    assert record is not None
    logs = {d["recipient"]: d["attempt_log"] for d in record.deliveries}
    assert [a["result"] for a in logs["phone"]] == ["timeout"]


def test_a_late_outcome_after_the_lease_was_released_is_not_recorded(store: Store) -> None:
    add_event(store, "e1", delivery())
    [claim] = store.write(lambda tx: tx.claim_due(NOW, 10, 30.0))
    store.write(lambda tx: tx.release_expired(NOW + 31, NOW + 900))
    [again] = store.write(lambda tx: tx.claim_due(NOW + 31, 10, 30.0))
    # the first sender comes back late: its outcome belongs to an attempt that is over
    store.write(lambda tx: tx.complete([sent(claim.id, claim.attempts)], NOW + 32))
    record = store.event("e1")
    assert record is not None and record.deliveries[0]["status"] == "sending"
    store.write(lambda tx: tx.complete([sent(again.id, again.attempts)], NOW + 33))
    record = store.event("e1")
    assert record is not None
    assert record.deliveries[0]["status"] == "sent"
    assert [a["result"] for a in record.deliveries[0]["attempt_log"]] == ["timeout", "sent"]


def test_an_in_app_delivery_keeps_the_newest_items(store: Store) -> None:
    add_event(store, "e1", *[delivery("ops", kind="inbox") for _ in range(5)])
    claimed = store.write(lambda tx: tx.claim_due(NOW, 10, 30.0))
    outcomes = [sent(c.id, title=f"t{c.id}", body="b", keep=3) for c in claimed]
    store.write(lambda tx: tx.complete(outcomes, NOW))
    items = store.inbox("ops", unread=False, before=None, after=None, limit=10)
    assert [i["title"] for i in items] == [f"t{c.id}" for c in reversed(claimed)][:3]
    assert store.unread_count("ops") == 3
    assert store.write(lambda tx: tx.mark_read("ops", [items[0]["id"]], NOW)) == 1
    assert store.unread_count("ops") == 2
    # `{"ids": []}` is a valid request: it marks nothing (PostgreSQL refuses `IN ()`)
    assert store.write(lambda tx: tx.mark_read("ops", [], NOW)) == 0
    assert store.unread_count("ops") == 2


def test_contacts_and_consent_keep_their_history(store: Store) -> None:
    row = ContactRow(
        "c1", "A@x.com", None, "a@x.com", None, "Ana", "es", "Europe/Madrid", (), {}, NOW, NOW
    )
    store.write(lambda tx: tx.save_contact(row, [ConsentChange("sms", True, NOW, "default")]))
    store.write(lambda tx: tx.change_consent("c1", [ConsentChange("sms", False, NOW + 1, "api")]))
    found = store.contact("c1")
    assert found is not None
    contact, history = found
    assert contact.consent == {"sms": False} and contact.name == "Ana"
    assert [(h.granted, h.source) for h in history] == [(True, "default"), (False, "api")]
    assert store.write(lambda tx: tx.contact_by("email", "a@x.com")) == "c1"


def test_runs_are_claimed_once_and_found_by_a_missing_key(store: Store) -> None:
    add_event(store, "e1")
    run_id = store.write(lambda tx: tx.insert_run("f", None, "e1", None, NOW))
    assert [r.id for r in store.write(lambda tx: tx.active_runs("f", None))] == [run_id]
    assert store.runs_due(NOW)
    assert [r.id for r in store.write(lambda tx: tx.claim_due_runs(NOW, 10, 30.0))] == [run_id]
    assert store.write(lambda tx: tx.claim_due_runs(NOW, 10, 30.0)) == []
    assert not store.runs_due(NOW)
    store.write(lambda tx: tx.update_run(run_id, "done", 1, None, None, NOW))
    assert store.write(lambda tx: tx.active_runs("f", None)) == []


def test_active_runs_are_listed_in_one_order_on_every_backend(store: Store) -> None:
    """Soonest first, then the runs waiting on a send's outcome (no due time): SQLite sorts a
    NULL first and PostgreSQL last, so the order is spelled out."""
    add_event(store, "e1")

    def start(tx: Tx) -> list[int]:
        waiting = tx.insert_run("f", "a", "e1", None, NOW)
        tx.update_run(waiting, "active", 1, None, None, NOW)
        later = tx.insert_run("f", "b", "e1", None, NOW)
        tx.update_run(later, "active", 1, NOW + 60, None, NOW)
        return [tx.insert_run("f", "c", "e1", None, NOW), later, waiting]

    expected = store.write(start)
    assert [run["id"] for run in store.active_runs()] == expected  # type: ignore[attr-defined]


def replace_run(tx: Tx, event_id: str, pause: float) -> int:
    """What a flow does when an event for its key arrives: end the key's active run, start
    one (flows.on_event), with a pause between, as planning takes time."""
    for run in tx.active_runs("f", "order-1"):
        tx.update_run(run.id, "replaced", run.step, None, f"by {event_id}", NOW)
    time.sleep(pause)
    return tx.insert_run("f", "order-1", event_id, None, NOW)


def test_two_stores_replacing_a_keys_run_at_once_leave_one_active(store_url: str) -> None:
    """Two sidecars accepting events for one flow key at the same moment: the later sees the
    earlier's run and replaces it, so one run stays active (one reminder, not two)."""
    stores = [open_store(store_url), open_store(store_url)]
    try:
        for n in (0, 1, 2):
            add_event(stores[0], f"e{n}")
        stores[0].write(lambda tx: replace_run(tx, "e0", 0.0))
        first = stores[0].submit(lambda tx: replace_run(tx, "e1", 1.0))
        time.sleep(0.3)  # the first is planning, between its read and its insert
        second = stores[1].submit(lambda tx: replace_run(tx, "e2", 0.0))
        first.result(30)
        second.result(30)
        active = stores[0].write(lambda tx: tx.active_runs("f", "order-1"))
        assert [run.event_id for run in active] == ["e2"]
    finally:
        for opened in stores:
            opened.close()


def merge_contact(tx: Tx, email: str | None, phone: str | None, pause: float) -> None:
    """What accepting an event with a contact does (ingest.merge_contact): read the stored
    contact, keep what the event leaves out, save, with a pause between, as planning takes."""
    stored = tx.contact("c1")
    time.sleep(pause)
    row = ContactRow(
        "c1",
        email or (stored.email if stored else None),
        phone or (stored.phone if stored else None),
        None,
        None,
        None,
        None,
        None,
        (),
        {},
        NOW,
        NOW,
    )
    first_sight = [] if stored else [ConsentChange("email", True, NOW, "default")]
    tx.save_contact(row, first_sight)


def test_two_stores_updating_one_contact_at_once_keep_both_changes(store_url: str) -> None:
    """One contact's email comes with an event to one sidecar while its phone comes to
    another: the later merges into what the earlier saved, rather than overwrite it, and the
    contact is seen for the first time once."""
    stores = [open_store(store_url), open_store(store_url)]
    try:
        first = stores[0].submit(lambda tx: merge_contact(tx, "a@x.com", None, 1.0))
        time.sleep(0.3)  # the first is between its read and its write
        second = stores[1].submit(lambda tx: merge_contact(tx, None, "+34600000000", 0.0))
        first.result(30)
        second.result(30)
        found = stores[0].contact("c1")
        assert found is not None
        row, history = found
        assert (row.email, row.phone) == ("a@x.com", "+34600000000")
        assert [change.source for change in history] == ["default"]
    finally:
        for opened in stores:
            opened.close()


def claim_email(tx: Tx, contact_id: str, pause: float) -> None:
    """ingest._contact with unique emails: refuse an email another contact has, else save."""
    owner = tx.contact_by("email", "a@x.com")
    if owner is not None and owner != contact_id:
        raise ValueError(f"taken by {owner}")
    time.sleep(pause)
    row = ContactRow(
        contact_id, "a@x.com", None, "a@x.com", None, None, None, None, (), {}, NOW, NOW
    )
    tx.save_contact(row, [])


def test_two_stores_giving_one_email_to_two_contacts_at_once_refuse_one(store_url: str) -> None:
    stores = [open_store(store_url), open_store(store_url)]
    try:
        first = stores[0].submit(lambda tx: claim_email(tx, "c1", 1.0))
        time.sleep(0.3)
        second = stores[1].submit(lambda tx: claim_email(tx, "c2", 0.0))
        first.result(30)
        with pytest.raises(ValueError, match="taken by c1"):
            second.result(30)
        assert stores[0].contact("c2") is None
    finally:
        for opened in stores:
            opened.close()


def test_two_stores_on_one_database_claim_disjoint_work(store_url: str) -> None:
    """Two sidecars (two store objects) claiming at once never take the same delivery."""
    stores = [open_store(store_url), open_store(store_url)]
    try:
        add_event(stores[0], "e1", *[delivery(f"r{n}") for n in range(400)])
        taken: list[list[int]] = [[], []]

        def claim(index: int) -> None:
            while True:
                got = stores[index].write(lambda tx: tx.claim_due(NOW, 7, 30.0))
                if not got:
                    return
                taken[index].extend(c.id for c in got)

        threads = [threading.Thread(target=claim, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not set(taken[0]) & set(taken[1])
        assert len(taken[0]) + len(taken[1]) == 400
    finally:
        for opened in stores:
            opened.close()


def test_the_url_password_never_appears_in_errors() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://clarion:hunter2-secret@127.0.0.1:1/none")
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(StoreError) as caught:
        open_store("mysql://clarion:hunter2-secret@host/db")
    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        # libpq quotes the token it cannot read, or the whole URL, in its error
        "postgresql://clarion:hunter2-secret%zz@127.0.0.1:1/none",
        "postgresql://clarion:hunter2-secret@[::1:1/none",
        # a password left unencoded: '/' and '@' are the user's mistake, not a licence to leak
        "postgresql://clarion:hunter2/secret@127.0.0.1:1/none",
        "postgresql://clarion:hunter2@secret@127.0.0.1:1/none",
    ],
)
def test_a_malformed_url_does_not_leak_its_password(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value) and "secret" not in str(caught.value)


def test_sidecars_starting_together_migrate_once(postgres_url: str) -> None:
    """Migrations run under an advisory lock: stores opened at the same moment on an empty
    schema all start, and the schema is migrated once."""
    opened: list[Store] = []
    failures: list[BaseException] = []
    gate = threading.Barrier(4)

    def start() -> None:
        gate.wait()
        try:
            opened.append(open_store(postgres_url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not failures, failures
        assert len(opened) == 4
        version = opened[0].write(
            lambda tx: tx.conn.execute("SELECT version FROM schema_version").fetchall()  # type: ignore[attr-defined]
        )
        assert version == [(len(MIGRATIONS),)]
    finally:
        for store in opened:
            store.close()


def test_a_write_on_one_sidecar_wakes_the_others(postgres_url: str) -> None:
    """LISTEN/NOTIFY: new work and inbox items reach every store's subscribers, so an idle
    dispatcher wakes without polling."""
    listening, writing = open_store(postgres_url), open_store(postgres_url)
    try:
        work, inbox = threading.Event(), []
        time.sleep(0.5)  # the listener's first wake-up (it looks for missed work) passes
        listening.subscribe("work", lambda _: work.set())
        listening.subscribe("inbox", inbox.append)
        add_event(writing, "e1", delivery("ops", kind="inbox"))
        assert work.wait(5), "no notification of new work"
        [claim] = writing.write(lambda tx: tx.claim_due(NOW, 10, 30.0))
        writing.write(lambda tx: tx.complete([sent(claim.id, title="t", body="b")], NOW))
        deadline = time.monotonic() + 5
        while "ops" not in inbox:
            assert time.monotonic() < deadline, "no notification of the inbox item"
            time.sleep(0.05)
    finally:
        listening.close()
        writing.close()


def test_a_write_submitted_as_the_store_closes_is_answered(store_url: str) -> None:
    """A write that found the store open but was queued as it closed (the stop mark already
    queued before it) must still be answered, done or refused, not wait for ever: the request
    behind it would hang. The interleaving is forced: close() runs between submit's check that
    the store is open and its queueing of the job."""
    store = open_store(store_url)
    closing = threading.Thread(target=store.close)
    armed = threading.Event()

    class Racing(type(store)):  # type: ignore[misc]
        @property
        def _closed(self) -> bool:
            value = bool(self.__dict__["_closed"])
            if armed.is_set() and threading.current_thread() is threading.main_thread():
                armed.clear()
                closing.start()
                closing.join(2)  # close() runs now, if it can
            return value

        @_closed.setter
        def _closed(self, value: bool) -> None:
            self.__dict__["_closed"] = value

    store.__class__ = Racing
    armed.set()
    future = store.submit(lambda tx: add_in(tx, "late"))
    closing.join(30)
    with contextlib.suppress(StoreError):  # refused is an answer too
        future.result(timeout=10)
