"""The PostgreSQL store when the network between it and the database fails: a loopback proxy
in front of the test server that can drop every connection and refuse new ones, as a database
restart or a failover does."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from clarion.runtime import Policy, Runtime, TableIndex
from clarion.runtime.dispatch import _Outcomes
from clarion.runtime.store import StoreError, postgres
from clarion.runtime.store.base import ClaimedDelivery, Outcome, Tx
from clarion.runtime.store.postgres import PostgresStore
from tests.runtime.conftest import example
from tests.runtime.test_store import NOW, add_event, delivery


class Proxy:
    """TCP from a loopback port to the server; `cut()` drops every connection and refuses new
    ones until `mend()`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._sockets: set[socket.socket] = set()
        self._muted: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.port = 0
        self.mend()

    def mend(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            doomed, self._sockets = list(self._sockets), set()
            if self._listener is not None:
                doomed.append(self._listener)
                self._listener = None
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def lose_next_commit_reply(self) -> None:
        """The next COMMIT reaches the server, which commits; then the connection drops before
        its reply comes back: the client cannot tell whether it committed."""
        self._lose_commit = True

    _lose_commit = False
    COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # the simple-query message psycopg sends

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if source in self._muted:
                    continue  # the reply to a lost COMMIT
                if self._lose_commit and data.endswith(self.COMMIT):
                    self._lose_commit = False
                    self._muted.add(sink)
                    sink.sendall(data)
                    time.sleep(0.5)  # the server commits; its answer goes nowhere
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[str, Proxy]]:
    """(the private schema's URL through the proxy, the proxy)."""
    parts = urllib.parse.urlsplit(postgres_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    yield urllib.parse.urlunsplit(parts._replace(netloc=netloc)), proxy
    proxy.cut()


def claimed(store: PostgresStore, count: int) -> list[ClaimedDelivery]:
    add_event(store, "e1", *(delivery(f"r{n}") for n in range(count)))
    found = store.write(lambda tx: tx.claim_due(NOW, count, 60.0))
    assert len(found) == count
    return found


def test_outcomes_are_recorded_again_after_a_write_failed_while_the_database_was_away(
    proxied: tuple[str, Proxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of outcomes whose write failed without ever running (no connection) must not
    keep later outcomes from being written: they would never be recorded, and every delivery
    would be sent again when its lease ran out, until the sidecar restarts."""
    monkeypatch.setattr(postgres, "RECONNECT_FOR", 1.0)
    url, proxy = proxied
    store = PostgresStore(url, writers=1)
    try:
        first, second = claimed(store, 2)
        outcomes = _Outcomes(store, lambda: NOW, lambda: None)  # type: ignore[arg-type,return-value]
        proxy.cut()
        lost = outcomes.record(sent(first), first)
        with pytest.raises(StoreError):
            lost.result(timeout=20)
        proxy.mend()
        outcomes.record(sent(second), second).result(timeout=20)
        statuses = {d["recipient"]: d["status"] for d in store.records()}
        assert statuses == {"r0": "sending", "r1": "sent"}
    finally:
        store.close()


def sent(claim: ClaimedDelivery) -> Outcome:
    return Outcome(claim.id, "sent", "sent", None, 0.01, claimed_attempts=claim.attempts)


def test_ping_says_the_database_is_unreachable_promptly(proxied: tuple[str, Proxy]) -> None:
    """`/readyz` pings the store: while the database is away it must answer 503 within a load
    balancer's health-check timeout, not after the pool's 30 s wait for a connection (every
    probe, and every read, would otherwise hold a thread that long)."""
    url, proxy = proxied
    store = PostgresStore(url, writers=1)
    try:
        store.ping()
        proxy.cut()
        for _ in range(2):  # the pooled connection that broke, then no connection at all
            started = time.monotonic()
            with pytest.raises(StoreError):
                store.ping()
            assert time.monotonic() - started < 6.0
        proxy.mend()
        store.ping()
    finally:
        store.close()


def test_close_while_the_database_is_away_ends_promptly_and_fails_the_waiting_writes(
    proxied: tuple[str, Proxy],
) -> None:
    """A sidecar stopped during an outage: the write retrying for RECONNECT_FOR gives up at
    once, and nothing is left waiting on a future that no writer will ever resolve."""
    url, proxy = proxied
    store = PostgresStore(url, writers=2)
    proxy.cut()
    waiting = [store.submit(functools.partial(add_in, event_id=f"e{n}")) for n in range(3)]
    time.sleep(0.5)  # the writers are retrying
    late: list[Future[None]] = []
    stop = threading.Event()

    def keep_submitting() -> None:  # requests still arriving while the sidecar stops
        n = 0
        while not stop.is_set():
            late.append(store.submit(functools.partial(add_in, event_id=f"late{n}")))
            n += 1

    submitter = threading.Thread(target=keep_submitting)
    submitter.start()
    started = time.monotonic()
    store.close()
    stop.set()
    submitter.join()
    assert time.monotonic() - started < 10.0
    for future in [*waiting, *late]:
        with pytest.raises(StoreError):
            future.result(timeout=5)


def add_in(tx: Tx, event_id: str) -> None:
    tx.insert_event(event_id, "t", "h", "{}", None, "d", NOW, {"id": event_id})


def test_a_deadlock_a_job_caught_in_its_savepoint_still_retries_the_group(
    postgres_url: str,
) -> None:
    """A job may catch a part's failure (`_Outcomes._write` logs a fallback it could not plan
    and records the other outcomes). A deadlock there is the database's choice of victim, not
    the part's failure: rolling back to the savepoint clears it, and the part would be lost
    for good. The whole group is retried instead, and the part done."""
    store = PostgresStore(postgres_url, writers=1)
    runs: list[int] = []

    def job(tx: Tx) -> None:
        runs.append(1)
        add_in(tx, "kept")
        try:
            with tx.savepoint():
                if len(runs) == 1:  # what a deadlock raises, once
                    tx.conn.execute(  # type: ignore[attr-defined]
                        "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' "
                        "USING ERRCODE = '40P01'; END $$"
                    )
                add_in(tx, "part")
        except Exception:
            pass  # as a job that logs one part's failure and goes on

    try:
        store.write(job)
        assert len(runs) == 2
        assert store.event("kept") is not None and store.event("part") is not None
    finally:
        store.close()


def test_an_event_whose_commit_reply_was_lost_is_answered_and_planned_once(
    proxied: tuple[str, Proxy], examples_table: TableIndex
) -> None:
    """The commit happened, the sidecar did not hear it and writes again: the event is found,
    answered 200 with the same answer (docs/scaling.md), and planned once."""
    url, proxy = proxied
    runtime = Runtime(examples_table, PostgresStore(url, writers=1), Policy(dry_run=True))
    try:
        data = example(examples_table, "payment.failed")
        event = {"type": "payment.failed", "id": "evt-lost-reply", "data": data}
        proxy.lose_next_commit_reply()
        [answer] = runtime.ingest([event])
        assert not proxy._lose_commit, "the commit was not intercepted"
        assert (answer.status, answer.body) == (200, {"id": "evt-lost-reply", "status": "accepted"})
        record = runtime.store.event("evt-lost-reply")
        assert record is not None and record.deliveries
        again = runtime.ingest([event])
        assert [a.body for a in again] == [answer.body]
        assert runtime.store.event("evt-lost-reply") == record
    finally:
        runtime.stop(timeout=5)


def test_a_read_only_database_is_the_stores_answer_not_a_crash(postgres_url: str) -> None:
    """A failover that leaves the sidecar on a read-only standby: /readyz's write check is a
    StoreError (a 503), not a psycopg error (a 500). Found in review."""
    from psycopg_pool import ConnectionPool

    store = PostgresStore(postgres_url)
    try:
        store.pool.close()
        store.pool = ConnectionPool(  # as a hot standby answers every write
            postgres_url,
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True, "options": "-c default_transaction_read_only=on"},
            open=True,
        )
        with pytest.raises(StoreError, match="read-only"):
            store.check_writable()
        store.ping()  # reads still work
    finally:
        store.close()
