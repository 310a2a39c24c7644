"""The sidecar's moving parts in one place: the table being served (swapped atomically on
reload), the store, the dispatcher, metrics. The HTTP layer and `clarion test` both drive this."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from clarion.check.addresses import mask
from clarion.runtime.dispatch import AppriseSender, Dispatcher, Policy, Secrets, Sender
from clarion.runtime.envelope import Rejection
from clarion.runtime.inbox import InboxHub
from clarion.runtime.ingest import Checked, accept, check_event
from clarion.runtime.metrics import Metrics
from clarion.runtime.secrets import MissingSecret, resolve
from clarion.runtime.store.base import ClaimedDelivery, NewDelivery, Outcome, Store, Tx
from clarion.runtime.tableindex import TableError, TableIndex

log = logging.getLogger("clarion.runtime")

TableSource = Callable[[], TableIndex]  # raises TableError with a message to log


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class Runtime:
    def __init__(
        self,
        table: TableIndex,
        store: Store,
        policy: Policy,
        *,
        source: TableSource | None = None,
        clock: Callable[[], float] = time.time,
        sender: Sender | None = None,
    ) -> None:
        self._table = table
        self.store = store
        self.policy = policy
        self.source = source
        self.clock = clock
        self.metrics = Metrics(lambda: store.stats(clock()))
        self.metrics.serving(table.digest)
        simulated = sender is not None
        self._secrets = Secrets({} if policy.dry_run or simulated else resolve(table.table))
        if sender is None and not policy.dry_run:
            sender = AppriseSender(self._secrets)
        self.dispatcher = Dispatcher(
            store, self.table, sender, policy, clock=clock, on_outcome=self._count
        )
        self._reload_lock = threading.Lock()
        self._counters: dict[tuple[str, str], Any] = {}
        self.inbox = InboxHub()
        # Other sidecars' writes (a shared store): new work, and inbox items for open streams.
        store.subscribe("work", lambda _: self.dispatcher.wake())
        store.subscribe("inbox", self.inbox.publish)
        self.started = False
        self.stopping = False  # set on SIGTERM: new events are refused with 503 from then on

    def table(self) -> TableIndex:
        return self._table

    def start(self) -> None:
        self.dispatcher.start()
        self.started = True

    def drain(self, timeout: float = 30.0) -> bool:
        """Refuse new events (503 `shutting_down`) and finish or give back the sends in flight,
        within `timeout`. False: some sends were still in flight at the deadline."""
        self.stopping = True
        clean = self.dispatcher.stop(timeout)
        if self.dispatcher.released:
            log.info(
                "claimed sends given back unsent, for the next start",
                extra={"count": self.dispatcher.released},
            )
        if not clean:
            log.warning("sends still in flight at the deadline; the next start queues them again")
        return clean

    def stop(self, timeout: float = 30.0) -> bool:
        clean = self.drain(timeout)
        self.store.close()
        return clean

    # -- ingest ------------------------------------------------------------------------------

    def check(
        self,
        raw: Any,
        *,
        batch: bool = False,
        index: int | None = None,
        prefix: tuple[Any, ...] | None = None,
    ) -> Checked:
        if prefix is None:
            prefix = () if index is None else (index,)
        try:
            return check_event(self._table, raw, batch=batch, prefix=prefix)
        except Rejection as rejection:
            kind = raw.get("type") if isinstance(raw, dict) else None
            known = isinstance(kind, str) and kind in self._table.table.events
            self.metrics.events.labels(type=kind if known else "unknown", result="rejected").inc()
            raise rejection from None

    def submit(self, checked: Checked) -> Future[tuple[int, dict[str, Any]]]:
        table = self._table
        job = functools.partial(_accept, table=table, checked=checked, now=self.clock())
        return self.store.submit(job)

    def submit_many(
        self, items: Sequence[Checked]
    ) -> Future[list[tuple[int, dict[str, Any]] | Rejection]]:
        job = functools.partial(_accept_many, table=self._table, items=items, now=self.clock())
        return self.store.submit(job)

    def rejected(self, event_type: str | None) -> None:
        known = event_type is not None and event_type in self._table.table.events
        self.metrics.events.labels(type=event_type if known else "unknown", result="rejected").inc()

    def accepted(self, checked: Checked, status: int) -> None:
        result = "accepted" if status == 202 else "duplicate"
        counter = self._counters.get((checked.event.type, result))
        if counter is None:  # prometheus' labels() costs more than the rest of this method
            counter = self.metrics.events.labels(type=checked.event.type, result=result)
            self._counters[(checked.event.type, result)] = counter
        counter.inc()
        log.debug(result, extra={"event_id": checked.event.id, "type": checked.event.type})
        if status == 202:
            self.dispatcher.wake()

    def ingest(self, raws: Sequence[Any], *, batch: bool = False) -> list[Answer]:
        """Blocking ingest of several events (CLI, tests); the API does the same asynchronously."""
        answers: list[Answer | None] = [None] * len(raws)
        pending: list[tuple[int, Checked, Future[tuple[int, dict[str, Any]]]]] = []
        for index, raw in enumerate(raws):
            try:
                checked = self.check(raw, batch=batch, index=index if batch else None)
            except Rejection as rejection:
                answers[index] = Answer(rejection.status, rejection.as_json())
                continue
            pending.append((index, checked, self.submit(checked)))
        for index, checked, future in pending:
            try:
                status, body = future.result()
            except Rejection as rejection:
                answers[index] = Answer(rejection.status, rejection.as_json())
                continue
            self.accepted(checked, status)
            answers[index] = Answer(status, body)
        return [a for a in answers if a is not None]

    # -- reload ------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Swap in a fresh table from the source; a table that fails keeps the old one serving."""
        if self.source is None:
            return False
        with self._reload_lock:
            try:
                fresh = self.source()
                if not self.policy.dry_run:
                    resolve(fresh.table)  # a new secret must be set before the table is used
            except (TableError, MissingSecret) as exc:
                log.error(
                    "reload refused; still serving the previous table",
                    extra={"reason": str(exc), "digest": self._table.digest},
                )
                return False
            if fresh.digest == self._table.digest:
                log.info("reload: the table is unchanged", extra={"digest": fresh.digest})
                return True
            old = self._table.digest
            if not self.policy.dry_run:
                self._secrets.values.update(resolve(fresh.table))
            self._table = fresh
            self.metrics.serving(fresh.digest)
            log.info("reloaded the routing table", extra={"digest": fresh.digest, "previous": old})
            return True

    def _count(self, delivery: ClaimedDelivery, outcome: Outcome) -> None:
        if delivery.kind == "inbox" and outcome.status == "sent":
            self.inbox.publish(delivery.recipient)
        self.metrics.deliveries.labels(channel=delivery.channel, status=outcome.status).inc()
        fields = {
            "event_id": delivery.event_id,
            "delivery_id": delivery.id,
            "channel": delivery.channel,
            "recipient": delivery.recipient,
            "to": mask(delivery.to)
            if delivery.to and delivery.kind in ("email", "phone")
            else delivery.to,
            "result": outcome.result,
            "attempt": delivery.attempts + 1,
        }
        if outcome.status == "sent":
            log.debug("delivered", extra=fields)
        elif outcome.status == "dead":
            log.error("dead letter: no more attempts", extra={**fields, "error": outcome.error})
        else:
            log.warning("send failed; will retry", extra={**fields, "error": outcome.error})
        if outcome.failovers:
            self.metrics.failovers.labels(channel=delivery.channel).inc(outcome.failovers)
        if outcome.elapsed:
            self.metrics.dispatch_seconds.labels(channel=delivery.channel).observe(outcome.elapsed)


def _accept(tx: Tx, table: TableIndex, checked: Checked, now: float) -> tuple[int, dict[str, Any]]:
    return accept(tx, table, checked, now)


def _accept_many(
    tx: Tx, table: TableIndex, items: Sequence[Checked], now: float
) -> list[tuple[int, dict[str, Any]] | Rejection]:
    batch = _Batch(tx, now)
    batch.prefetch([checked.event.id for checked in items])
    out: list[tuple[int, dict[str, Any]] | Rejection] = []
    for checked in items:
        # No savepoint per event: accept() refuses (Rejection) only before its first write, and
        # anything else fails the whole job, which the store rolls back.
        try:
            out.append(accept(cast(Tx, batch), table, checked, now))
        except Rejection as rejection:
            out.append(rejection)
    batch.flush()
    return out


class _Batch:
    """A batch's view of the transaction: events and their deliveries are written with one
    statement each for the whole batch, not two per event. Any other operation (contacts,
    flows) first writes what is gathered, so it sees the store as accept() left it."""

    def __init__(self, tx: Tx, now: float) -> None:
        self._tx = tx
        self._now = now
        self._answers: dict[str, tuple[str, dict[str, Any]]] = {}
        self._events: list[tuple[Any, ...]] = []
        self._deliveries: list[tuple[str, str, NewDelivery]] = []
        self._known: dict[str, tuple[str, dict[str, Any]]] = {}
        self._asked: frozenset[str] = frozenset()

    def prefetch(self, event_ids: Sequence[str]) -> None:
        """Which of the batch's ids were accepted before: one question for the batch."""
        self._known = self._tx.event_answers(event_ids)
        self._asked = frozenset(event_ids)

    def event_answer(self, event_id: str) -> tuple[str, dict[str, Any]] | None:
        if event_id in self._answers:
            return self._answers[event_id]
        if event_id in self._asked:  # nothing else writes them in this transaction
            return self._known.get(event_id)
        return self._tx.event_answer(event_id)

    def insert_event(self, event_id: str, *rest: Any) -> None:
        self._answers[event_id] = (rest[1], rest[6])
        self._events.append((event_id, *rest))

    def insert_deliveries(
        self, event_id: str, event_type: str, rows: Sequence[NewDelivery], now: float
    ) -> None:
        self._deliveries.extend((event_id, event_type, row) for row in rows)

    def flush(self) -> None:
        if self._events:
            self._tx.insert_events(self._events)
        if self._deliveries:
            self._tx.insert_delivery_rows(self._deliveries, self._now)
        self._events, self._deliveries = [], []

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._tx, name)


class ConfigWatcher:
    """Reloads when the files behind the table change (polled: no extra dependency, and a
    config is a few dozen files)."""

    def __init__(self, runtime: Runtime, paths: Callable[[], list[Path]], every: float = 1.0):
        self.runtime = runtime
        self.paths = paths
        self.every = every
        self._stop = threading.Event()
        self._seen = self._fingerprint()
        self._thread = threading.Thread(target=self._run, name="clarion-watch", daemon=True)

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for path in self.paths():
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(sorted(out))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            current = self._fingerprint()
            if current != self._seen:
                self._seen = current
                log.info("config changed on disk; reloading")
                self.runtime.reload()
