"""The embedded store: one SQLite file in WAL mode, one writer thread with group commit.

SQLite allows one writer at a time; rather than have request threads queue on its lock, every
write is a job for one thread that runs whatever jobs are waiting inside one transaction, each in
its own savepoint (a job that fails leaves nothing behind), commits with `synchronous=FULL`, and
only then resolves the jobs' futures. Reads use their own connections and never wait for it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar, cast

from clarion.runtime.store.base import (
    ClaimedDelivery,
    ConsentChange,
    ContactRow,
    DigestFold,
    EventRecord,
    NewDelivery,
    Outcome,
    RunRow,
    Tx,
)

_RUN_COLUMNS = "id, flow, key, event_id, contact_id, status, step, due_at, created_at"

T = TypeVar("T")
_Job = tuple[Callable[["Tx"], Any], "Future[Any]", bool]
MAX_GROUP = 512  # jobs per commit
READY_WITHIN = 3.0  # seconds /readyz waits for its test write
FAILED_WRITE_MEMORY = 5.0  # seconds a failed commit keeps the store unready (the Retry-After)

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        envelope TEXT NOT NULL,
        contact_id TEXT,
        table_digest TEXT NOT NULL,
        received_at REAL NOT NULL,
        answer TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL REFERENCES events(id),
        event_type TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT,
        address TEXT,
        url TEXT,
        template TEXT,
        locale TEXT NOT NULL,
        timezone TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        detail TEXT,
        due_at REAL,
        lease_until REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        sent_at REAL
    );
    CREATE INDEX deliveries_event ON deliveries(event_id);
    CREATE INDEX deliveries_due ON deliveries(due_at) WHERE status IN ('pending', 'failed');
    CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 'sending';
    CREATE TABLE attempts (
        delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
        number INTEGER NOT NULL,
        at REAL NOT NULL,
        result TEXT NOT NULL,
        elapsed REAL NOT NULL,
        error TEXT,
        PRIMARY KEY (delivery_id, number)
    );
    CREATE TABLE contacts (
        id TEXT PRIMARY KEY,
        email TEXT,
        phone TEXT,
        email_norm TEXT,
        phone_norm TEXT,
        name TEXT,
        locale TEXT,
        timezone TEXT,
        devices TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX contacts_email ON contacts(email_norm);
    CREATE INDEX contacts_phone ON contacts(phone_norm);
    CREATE TABLE consent (
        contact_id TEXT NOT NULL REFERENCES contacts(id),
        channel TEXT NOT NULL,
        granted INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (contact_id, channel)
    );
    CREATE TABLE consent_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        contact_id TEXT NOT NULL REFERENCES contacts(id),
        channel TEXT NOT NULL,
        granted INTEGER NOT NULL,
        at REAL NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX consent_history_contact ON consent_history(contact_id, id);
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL,
        delivery_id INTEGER NOT NULL UNIQUE REFERENCES deliveries(id),
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        title TEXT,
        body TEXT NOT NULL,
        link TEXT,
        created_at REAL NOT NULL,
        read_at REAL
    );
    CREATE INDEX inbox_recipient ON inbox(recipient, id);
    """,
    # 2: flows. A run is its own scheduler row: the next step and when it is due.
    """
    ALTER TABLE deliveries ADD COLUMN run_id INTEGER;
    ALTER TABLE deliveries ADD COLUMN step INTEGER;
    CREATE INDEX deliveries_run ON deliveries(run_id, step) WHERE run_id IS NOT NULL;
    CREATE TABLE flow_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        key TEXT,
        event_id TEXT NOT NULL REFERENCES events(id),
        contact_id TEXT,
        status TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        due_at REAL,
        lease_until REAL,
        reason TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX flow_runs_due ON flow_runs(due_at) WHERE status = 'active';
    CREATE INDEX flow_runs_key ON flow_runs(flow, key) WHERE status = 'active';
    """,
    # 3: pacing. A contact's own quiet hours; which provider URL of a channel answered an
    # attempt; the fallback channels a delivery has left, in order (JSON list).
    """
    ALTER TABLE contacts ADD COLUMN quiet_hours TEXT;
    ALTER TABLE attempts ADD COLUMN provider INTEGER;
    ALTER TABLE deliveries ADD COLUMN fallback TEXT;
    """,
    # 4: provider rates. One row per rate key: the earliest time the next send may go.
    """
    CREATE TABLE rate_slots (
        key TEXT PRIMARY KEY,
        next_at REAL NOT NULL
    );
    """,
    # 5: digests and throttles. A throttle counter per (scope, key) for its current window;
    # digests, one open per (scope, key): `open` is 1 while it collects and NULL once closed,
    # and NULLs never collide in a UNIQUE, so concurrent events for one key fold into one digest
    # on SQLite and PostgreSQL alike. A digest's events are those of the deliveries folded into
    # it (their `digest_id`, reason `digested`), plus, for a flow digest, its first run's event
    # in `digest_items`. `count` is kept up to date only under a `max_count`.
    """
    ALTER TABLE deliveries ADD COLUMN digest_id INTEGER;
    CREATE INDEX deliveries_digest ON deliveries(digest_id) WHERE digest_id IS NOT NULL;
    CREATE TABLE throttle_hits (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE TABLE digests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        open INTEGER,
        due_at REAL NOT NULL,
        count INTEGER NOT NULL,
        max_count INTEGER,
        delivery_id INTEGER,
        created_at REAL NOT NULL,
        closed_at REAL,
        UNIQUE (scope, key, open)
    );
    CREATE TABLE digest_items (
        digest_id INTEGER NOT NULL REFERENCES digests(id),
        event_id TEXT NOT NULL REFERENCES events(id),
        at REAL NOT NULL,
        PRIMARY KEY (digest_id, event_id)
    );
    CREATE INDEX digest_items_event ON digest_items(event_id);
    """,
]

_DELIVERY_COLUMNS = (
    "id, event_id, event_type, recipient, channel, kind, target, address, url, template, locale, "
    "timezone, source, status, reason, detail, due_at, attempts, last_error, created_at, "
    "updated_at, sent_at, digest_id"
)


def next_group(jobs: queue.SimpleQueue[_Job | None]) -> list[_Job] | None:
    """The jobs waiting now (at least one, waited for), to share a commit; None: stop (the
    stop mark stays queued, for any other writer)."""
    first = jobs.get()
    if first is None:
        jobs.put(None)
        return None
    group = [first]
    while len(group) < MAX_GROUP:
        try:
            item = jobs.get_nowait()
        except queue.Empty:
            break
        if item is None:
            jobs.put(None)
            break
        group.append(item)
    return group


class StoreError(Exception):
    """The store cannot be opened or written (disk full, locked, corrupt): an environment
    problem, reported in one line."""


def _connect(target: str) -> sqlite3.Connection:
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class SQLiteStore:
    # One process owns the file: at start, sends left 'sending' by a process that died are its
    # own, and can be released at once rather than when their lease runs out.
    single_process = True

    def __init__(self, path: Path | None) -> None:
        """A file store at `path`, or a private throwaway one when `path` is None.

        The throwaway store is a file in a temporary folder, not `:memory:`: SQLite's shared
        in-memory databases lock whole tables between connections, and tests and `clarion test`
        should run the very code paths a file store runs."""
        self._scratch: Path | None = None
        if path is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="clarion-store-"))
            path = self._scratch / "store.db"
            self.url = "sqlite://:memory:"
        else:
            self.url = f"sqlite:///{path}"
        self._target = str(path)
        try:
            self._conn = _connect(self._target)
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot switch SQLite to WAL mode ({mode})")
            # FULL: an event is on disk before its 202. A throwaway store need not outlive us.
            durable = "OFF" if self._scratch else "FULL"
            self._conn.execute(f"PRAGMA synchronous = {durable}")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.url}: {exc}") from None
        self._local = threading.local()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._synchronous = "OFF" if self._scratch else "FULL"
        self._closed = False
        self._failed: tuple[float, str] | None = None  # the last failed commit: when, why
        self._queueing = threading.Lock()  # no job is queued behind the stop mark
        self._writer = threading.Thread(target=self._run, name="clarion-store-writer", daemon=True)
        self._writer.start()

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.url}: schema version {version} is newer than this Clarion knows "
                f"({len(MIGRATIONS)}); upgrade Clarion"
            )
        for number in range(version, len(MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (?)", (number + 1,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- writes ------------------------------------------------------------------------------

    def submit(self, job: Callable[[Tx], T], *, durable: bool = True) -> Future[T]:
        """Run `job` in the writer thread. `durable=False` (a send's outcome, a claim) lets a
        commit holding only such jobs skip the fsync: a power cut may then forget that a send
        happened, and it is sent again (at least once); an accepted event is never forgotten."""
        future: Future[T] = Future()
        # Checked and queued at once: a job queued behind close()'s stop mark would never run,
        # and whoever waits on it would wait for ever.
        with self._queueing:
            if self._closed:
                future.set_exception(StoreError("the store is closed"))
                return future
            self._jobs.put((job, future, durable))
        return future

    def write(self, job: Callable[[Tx], T], *, durable: bool = True) -> T:
        return self.submit(job, durable=durable).result()

    def _run(self) -> None:
        tx = _SQLiteTx(self._conn)
        while (group := next_group(self._jobs)) is not None:
            self._commit_group(tx, group)

    def _commit_group(self, tx: _SQLiteTx, group: list[_Job]) -> None:
        conn = self._conn
        results: list[tuple[Future[Any], bool, Any]] = []
        if self._scratch is None:
            wanted = "FULL" if any(durable for _, _, durable in group) else "NORMAL"
            if wanted != self._synchronous:
                conn.execute(f"PRAGMA synchronous = {wanted}")
                self._synchronous = wanted
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future, _ in group:
                if not future.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    value = job(tx)
                except Exception as exc:  # the job's own failure: undo only its writes
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((future, False, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((future, True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            error = StoreError(f"{self.url}: {exc}")
            self._failed = (time.monotonic(), str(exc))
            for _, future, _ in group:
                if future.done():
                    continue
                if future.running() or future.set_running_or_notify_cancel():
                    future.set_exception(error)
            return
        for future, ok, value in results:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    # -- reads -------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._target)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
        return conn

    def ping(self) -> None:
        try:
            self._reader().execute("SELECT 1 FROM schema_version").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.url}: {exc}") from None

    def failed_lately(self) -> None:
        """Raise for a commit that failed in the last FAILED_WRITE_MEMORY seconds: a probe of
        one small page may still fit where an event's commit did not (a nearly full disk)."""
        failed = self._failed
        if failed is not None and time.monotonic() - failed[0] < FAILED_WRITE_MEMORY:
            raise StoreError(f"{self.url}: {failed[1]}")

    def check_writable(self) -> None:
        self.failed_lately()
        # A real durable commit through the writer, as an event's would be: a full disk, a
        # file turned read-only or a size limit shows here, where a read would still pass.
        # Bounded: a stalled disk must not hold /readyz (and a thread of its pool) forever.
        try:
            self.submit(_touch).result(timeout=READY_WITHIN)
        except TimeoutError:
            late = f"a write did not commit within {READY_WITHIN:g} s"
            raise StoreError(f"{self.url}: {late}") from None

    def next_due_at(self) -> float | None:
        row = (
            self._reader()
            .execute(
                "SELECT (SELECT MIN(due_at) FROM deliveries WHERE status IN ('pending', 'failed')),"
                " (SELECT MIN(lease_until) FROM deliveries WHERE status = 'sending'),"
                " (SELECT MIN(due_at) FROM flow_runs WHERE status = 'active')"
            )
            .fetchone()
        )
        candidates = [v for v in row if v is not None]
        return min(candidates) if candidates else None

    def active_runs(self) -> list[dict[str, Any]]:
        cursor = self._reader().execute(
            "SELECT id, flow, key, event_id, contact_id, step, due_at FROM flow_runs "
            # NULLs (runs waiting on a send) last, spelled out: SQLite sorts them first.
            "WHERE status = 'active' ORDER BY due_at IS NULL, due_at, id"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def runs_due(self, now: float) -> bool:
        row = (
            self._reader()
            .execute(
                "SELECT 1 FROM flow_runs WHERE status = 'active' AND due_at <= ? "
                "AND (lease_until IS NULL OR lease_until <= ?) LIMIT 1",
                (now, now),
            )
            .fetchone()
        )
        return row is not None

    def event(self, event_id: str) -> EventRecord | None:
        conn = self._reader()
        row = conn.execute(
            "SELECT id, type, received_at, table_digest, envelope FROM events WHERE id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        cursor = conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ? ORDER BY id",
            (event_id,),
        )
        names = [d[0] for d in cursor.description]
        deliveries = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        attempts = conn.execute(
            "SELECT delivery_id, number, at, result, elapsed, error, provider FROM attempts "
            "WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?) "
            "ORDER BY delivery_id, number",
            (event_id,),
        ).fetchall()
        by_delivery: dict[int, list[dict[str, Any]]] = {}
        for delivery_id, number, at, result, elapsed, error, provider in attempts:
            item = {
                "number": number,
                "at": at,
                "result": result,
                "elapsed": elapsed,
                "error": error,
            }
            if provider is not None:
                item["provider"] = provider
            by_delivery.setdefault(delivery_id, []).append(item)
        for delivery in deliveries:
            delivery["attempt_log"] = by_delivery.get(delivery["id"], [])
        runs = [
            {
                "flow": flow,
                "key": key,
                "status": status,
                "next_step": step + 1,
                "due_at": due,
                "reason": reason,
                "created_at": created,
            }
            for flow, key, status, step, due, reason, created in conn.execute(
                "SELECT flow, key, status, step, due_at, reason, created_at FROM flow_runs "
                "WHERE event_id = ? ORDER BY id",
                (event_id,),
            )
        ]
        return EventRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), deliveries, runs)

    def records(self) -> list[dict[str, Any]]:
        """Every delivery, oldest first (scenario tests read the whole, small, history)."""
        cursor = self._reader().execute(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def inbox(
        self, recipient: str, *, unread: bool, before: int | None, after: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first (or, with `after`, oldest first: what a stream has not sent yet)."""
        clauses, args = ["recipient = ?"], list[object]([recipient])
        if unread:
            clauses.append("read_at IS NULL")
        if before is not None:
            clauses.append("id < ?")
            args.append(before)
        if after is not None:
            clauses.append("id > ?")
            args.append(after)
        order = "ASC" if after is not None else "DESC"
        cursor = self._reader().execute(
            "SELECT id, title, body, link, event_type, event_id, created_at, read_at FROM inbox "
            f"WHERE {' AND '.join(clauses)} ORDER BY id {order} LIMIT ?",
            (*args, limit),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def digest_events(self, digest_id: int) -> list[str]:
        return [
            str(row[0])
            for row in self._reader().execute(
                "SELECT e.envelope FROM events e JOIN (SELECT event_id FROM digest_items "
                "WHERE digest_id = ? UNION SELECT event_id FROM deliveries WHERE digest_id = ? "
                "AND reason = 'digested') m ON m.event_id = e.id ORDER BY e.received_at, e.id",
                (digest_id, digest_id),
            )
        ]

    def unread_count(self, recipient: str) -> int:
        row = (
            self._reader()
            .execute(
                "SELECT COUNT(*) FROM inbox WHERE recipient = ? AND read_at IS NULL", (recipient,)
            )
            .fetchone()
        )
        return int(row[0])

    def contact(self, contact_id: str) -> tuple[ContactRow, list[ConsentChange]] | None:
        conn = self._reader()
        row = _read_contact(conn, contact_id)
        if row is None:
            return None
        history = [
            ConsentChange(channel, bool(granted), at, source)
            for channel, granted, at, source in conn.execute(
                "SELECT channel, granted, at, source FROM consent_history "
                "WHERE contact_id = ? ORDER BY id",
                (contact_id,),
            )
        ]
        return row, history

    def stats(self, now: float) -> dict[str, float]:
        conn = self._reader()
        depth, oldest = conn.execute(
            "SELECT COUNT(*), MIN(due_at) FROM deliveries "
            "WHERE status IN ('pending', 'failed', 'sending') AND due_at <= ?",
            (now,),
        ).fetchone()
        return {
            "queue_depth": float(depth),
            "oldest_pending_age_seconds": max(0.0, now - oldest) if oldest is not None else 0.0,
        }

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        """Nothing to hear: this process makes every write, and wakes itself."""

    def close(self) -> None:
        with self._queueing:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        self._writer.join(timeout=10)
        self._conn.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _touch(tx: Tx) -> None:
    cast(_SQLiteTx, tx).conn.execute("UPDATE schema_version SET version = version")


def _read_contact(conn: sqlite3.Connection, contact_id: str) -> ContactRow | None:
    row = conn.execute(
        "SELECT id, email, phone, email_norm, phone_norm, name, locale, timezone, devices, "
        "created_at, updated_at, quiet_hours FROM contacts WHERE id = ?",
        (contact_id,),
    ).fetchone()
    if row is None:
        return None
    consent = {
        channel: bool(granted)
        for channel, granted in conn.execute(
            "SELECT channel, granted FROM consent WHERE contact_id = ?", (contact_id,)
        )
    }
    devices = tuple((d["device"], d["url"]) for d in json.loads(row[8]))
    return ContactRow(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        devices,
        consent,
        row[9],
        row[10],
        row[11],
    )


_INSERT_DELIVERY = (
    "INSERT INTO deliveries (event_id, event_type, recipient, channel, kind, target, "
    "address, url, template, locale, timezone, source, status, reason, detail, due_at, "
    "created_at, updated_at, run_id, step, fallback, digest_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _values(event_id: str, event_type: str, r: NewDelivery, now: float) -> tuple[Any, ...]:
    """A delivery's row for _INSERT_DELIVERY."""
    return (
        event_id,
        event_type,
        r.recipient,
        r.channel,
        r.kind,
        r.target,
        r.to,
        r.url,
        r.template,
        r.locale,
        r.timezone,
        r.source,
        r.status,
        r.reason,
        r.detail,
        r.due_at,
        now,
        now,
        r.run_id,
        r.step,
        json.dumps(list(r.fallback)) if r.fallback else None,
        r.digest_id,
    )


class _SQLiteTx:
    """The writer thread's operations; every call runs inside the current transaction.

    The statements are plain SQL that PostgreSQL runs too (its store subclasses this); the
    class attributes are where the two dialects differ."""

    SKIP_LOCKED = ""  # a claim by one process cannot race another: SQLite has one writer
    FOR_UPDATE = ""
    SAME = "IS"  # NULL-safe equality (IS NOT DISTINCT FROM needs SQLite 3.39)
    FOR_SHARE = ""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of a job that can fail alone (one event of a batch)."""
        self.conn.execute("SAVEPOINT item")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO item")
            self.conn.execute("RELEASE item")
            raise
        self.conn.execute("RELEASE item")

    def event_answer(self, event_id: str) -> tuple[str, dict[str, Any]] | None:
        row = self.conn.execute(
            "SELECT body_hash, answer FROM events WHERE id = ?", (event_id,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def event_answers(self, event_ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """The answers of those of these events accepted before, in a few statements (a batch
        asks once, not once an event)."""
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        unique = list(dict.fromkeys(event_ids))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT id, body_hash, answer FROM events WHERE id IN ({marks})", part
            )
            for event_id, body_hash, answer in rows:
                found[event_id] = (body_hash, json.loads(answer))
        return found

    def insert_event(
        self,
        event_id: str,
        event_type: str,
        body_hash: str,
        envelope: str,
        contact_id: str | None,
        table_digest: str,
        received_at: float,
        answer: dict[str, Any],
    ) -> None:
        self.insert_events(
            [
                (
                    event_id,
                    event_type,
                    body_hash,
                    envelope,
                    contact_id,
                    table_digest,
                    received_at,
                    answer,
                )
            ]
        )

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Several events in one statement: (id, type, body_hash, envelope, contact_id,
        table_digest, received_at, answer)."""
        self.conn.executemany(
            "INSERT INTO events (id, type, body_hash, envelope, contact_id, table_digest, "
            "received_at, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row[:7], json.dumps(row[7])) for row in rows],
        )

    def insert_deliveries(
        self, event_id: str, event_type: str, rows: Sequence[NewDelivery], now: float
    ) -> None:
        self.insert_delivery_rows([(event_id, event_type, r) for r in rows], now)

    def insert_delivery_rows(
        self, rows: Sequence[tuple[str, str, NewDelivery]], now: float
    ) -> None:
        """Deliveries of several events in one statement: (event_id, event_type, delivery)."""
        self.conn.executemany(_INSERT_DELIVERY, [_values(*row, now) for row in rows])

    def insert_delivery(self, event_id: str, event_type: str, row: NewDelivery, now: float) -> int:
        """One delivery; its id."""
        values = _values(event_id, event_type, row, now)
        return int(self.conn.execute(_INSERT_DELIVERY + " RETURNING id", values).fetchone()[0])

    def contact(self, contact_id: str) -> ContactRow | None:
        return _read_contact(self.conn, contact_id)

    def contact_by(self, field: str, value: str) -> str | None:
        column = {"email": "email_norm", "phone": "phone_norm"}[field]
        row = self.conn.execute(
            f"SELECT id FROM contacts WHERE {column} = ? LIMIT 1", (value,)
        ).fetchone()
        return str(row[0]) if row else None

    def save_contact(self, row: ContactRow, changes: Sequence[ConsentChange]) -> None:
        devices = json.dumps([{"device": d, "url": u} for d, u in row.devices])
        self.conn.execute(
            "INSERT INTO contacts (id, email, phone, email_norm, phone_norm, name, locale, "
            "timezone, devices, created_at, updated_at, quiet_hours) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET email = excluded.email, phone = excluded.phone, "
            "email_norm = excluded.email_norm, phone_norm = excluded.phone_norm, "
            "name = excluded.name, locale = excluded.locale, timezone = excluded.timezone, "
            "devices = excluded.devices, updated_at = excluded.updated_at, "
            "quiet_hours = excluded.quiet_hours",
            (
                row.id,
                row.email,
                row.phone,
                row.email_norm,
                row.phone_norm,
                row.name,
                row.locale,
                row.timezone,
                devices,
                row.created_at,
                row.updated_at,
                row.quiet_hours,
            ),
        )
        self.change_consent(row.id, changes)

    def change_consent(self, contact_id: str, changes: Sequence[ConsentChange]) -> None:
        for change in changes:
            self.conn.execute(
                "INSERT INTO consent (contact_id, channel, granted, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (contact_id, channel) DO UPDATE SET "
                "granted = excluded.granted, updated_at = excluded.updated_at",
                (contact_id, change.channel, int(change.granted), change.at),
            )
            self.conn.execute(
                "INSERT INTO consent_history (contact_id, channel, granted, at, source) "
                "VALUES (?, ?, ?, ?, ?)",
                (contact_id, change.channel, int(change.granted), change.at, change.source),
            )

    def claim_due(self, now: float, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        rows = self.conn.execute(
            "UPDATE deliveries SET status = 'sending', lease_until = ?, updated_at = ? "
            "WHERE id IN (SELECT id FROM deliveries WHERE status IN ('pending', 'failed') "
            "AND due_at <= ? ORDER BY due_at, id LIMIT ?"
            f"{self.SKIP_LOCKED}) "
            "RETURNING id, event_id, event_type, recipient, channel, kind, address, url, "
            "template, locale, timezone, attempts, source, run_id, step, fallback, digest_id",
            (now + lease_seconds, now, now, limit),
        ).fetchall()
        if not rows:
            return []
        envelopes = dict(
            self.conn.execute(
                "SELECT id, envelope FROM events WHERE id IN "
                f"({','.join('?' * len({r[1] for r in rows}))})",
                tuple({r[1] for r in rows}),
            ).fetchall()
        )
        claimed = [
            ClaimedDelivery(
                id=r[0],
                event_id=r[1],
                event_type=r[2],
                recipient=r[3],
                channel=r[4],
                kind=r[5],
                to=r[6],
                url=r[7],
                template=r[8],
                locale=r[9],
                timezone=r[10],
                attempts=r[11],
                envelope=envelopes[r[1]],
                source=r[12],
                run_id=r[13],
                step=r[14],
                fallback=tuple(json.loads(r[15])) if r[15] else (),
                digest_id=r[16],
            )
            for r in rows
        ]
        return sorted(claimed, key=lambda c: c.id)

    def complete(self, outcomes: Sequence[Outcome], now: float) -> list[int]:
        """Record the outcomes; the ids of the deliveries recorded (an outcome whose lease ran
        out, the delivery released and perhaps claimed again, is not)."""
        updated = self.update_each(
            "UPDATE deliveries SET status = ?, attempts = attempts + 1, lease_until = NULL, "
            "due_at = COALESCE(?, due_at), last_error = ?, updated_at = ?, "
            "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
            "WHERE id = ? AND status = 'sending' AND attempts = COALESCE(?, attempts) "
            "RETURNING attempts, recipient, event_id, event_type, run_id",
            [
                (
                    o.status,
                    o.next_due_at,
                    o.error,
                    now,
                    o.status,
                    now,
                    o.delivery_id,
                    o.claimed_attempts,
                )
                for o in outcomes
            ],
        )
        recorded: list[int] = []
        attempts, parked = [], []
        for o, number in zip(outcomes, updated, strict=True):
            if number is None:
                continue  # the lease expired and another worker has it now
            recorded.append(o.delivery_id)
            if o.status in ("sent", "dead") and number[4] is not None:
                parked.append((now, number[4]))
            attempts.append(
                (o.delivery_id, number[0], now, o.result, o.elapsed, o.error, o.provider)
            )
            if o.inbox is not None and o.status == "sent":
                self.conn.execute(
                    "INSERT INTO inbox (recipient, delivery_id, event_id, event_type, title, "
                    "body, link, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (
                        number[1],
                        o.delivery_id,
                        number[2],
                        number[3],
                        o.inbox.get("title"),
                        o.inbox["body"],
                        o.inbox.get("link"),
                        now,
                    ),
                )
                keep = int(o.inbox.get("keep") or 200)
                self.conn.execute(
                    "DELETE FROM inbox WHERE recipient = ? AND id <= (SELECT id FROM inbox "
                    "WHERE recipient = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (number[1], number[1], keep),
                )
                self.inbox_changed(number[1])
        if parked:
            # A run parked on this send's outcome (its next step is an `emit`) looks again.
            self.conn.executemany(
                "UPDATE flow_runs SET due_at = ? WHERE status = 'active' AND due_at IS NULL "
                "AND id = ?",
                parked,
            )
        if attempts:
            self.conn.executemany(
                "INSERT INTO attempts (delivery_id, number, at, result, elapsed, error, "
                "provider) VALUES (?, ?, ?, ?, ?, ?, ?)",
                attempts,
            )
        return recorded

    def inbox_changed(self, recipient: str) -> None:
        """An in-app item was written for `recipient`: this process wakes its own streams once
        the outcome is recorded; a shared store tells the other processes."""

    def update_each(
        self, statement: str, rows: Sequence[Sequence[Any]]
    ) -> list[tuple[Any, ...] | None]:
        """One UPDATE ... RETURNING per row of parameters: the row it returned, or None."""
        return [self.conn.execute(statement, row).fetchone() for row in rows]

    def release_expired(
        self, now: float, phone_due: float, everything: bool = False
    ) -> list[tuple[int, str]]:
        """Deliveries whose sender vanished mid-send: their outcome is unknown (the provider may
        have it), so the attempt is recorded as a timeout and the delivery goes back to the
        queue; phone channels (SMS, WhatsApp) wait until `phone_due`. Returns (id, kind)."""
        rows = self.conn.execute(
            "UPDATE deliveries SET status = 'failed', lease_until = NULL, "
            "attempts = attempts + 1, last_error = 'interrupted: outcome unknown', "
            "updated_at = ?, due_at = CASE WHEN kind = 'phone' THEN ? ELSE due_at END "
            "WHERE status = 'sending' AND (lease_until <= ? OR ?) "
            "RETURNING id, kind, attempts",
            (now, phone_due, now, everything),
        ).fetchall()
        if everything:
            # Runs a dead process was advancing: their step had not committed, so nothing of it
            # happened; they are simply due again.
            self.conn.execute(
                "UPDATE flow_runs SET lease_until = NULL WHERE status = 'active' "
                "AND lease_until IS NOT NULL"
            )
        for delivery_id, _kind, number in rows:
            self.conn.execute(
                "INSERT INTO attempts (delivery_id, number, at, result, elapsed, error) "
                "VALUES (?, ?, ?, 'timeout', 0, 'interrupted: outcome unknown')",
                (delivery_id, number, now),
            )
        return [(r[0], r[1]) for r in rows]

    def unclaim(self, delivery_ids: Sequence[int], now: float, due_at: float | None = None) -> int:
        if not delivery_ids:
            return 0
        marks = ",".join("?" * len(delivery_ids))
        cursor = self.conn.execute(
            "UPDATE deliveries SET status = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' "
            "END, lease_until = NULL, due_at = COALESCE(?, due_at), updated_at = ? "
            f"WHERE status = 'sending' AND id IN ({marks})",
            (due_at, now, *delivery_ids),
        )
        return int(cursor.rowcount)

    def take_slot(
        self, key: str, count: int, per_seconds: float, now: float, horizon: float
    ) -> float:
        spacing = per_seconds / count
        self.conn.execute(
            "INSERT INTO rate_slots (key, next_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (key, now),
        )
        (next_at,) = self.conn.execute(
            # locked on PostgreSQL: two sidecars taking a slot of one key at once take two
            f"SELECT next_at FROM rate_slots WHERE key = ?{self.FOR_UPDATE}",
            (key,),
        ).fetchone()
        slot = max(float(next_at), now)
        if slot - now > horizon:
            return slot
        self.conn.execute("UPDATE rate_slots SET next_at = ? WHERE key = ?", (slot + spacing, key))
        return slot

    def mark_read(self, recipient: str, ids: Sequence[int] | None, now: float) -> int:
        if ids is None:
            cursor = self.conn.execute(
                "UPDATE inbox SET read_at = ? WHERE recipient = ? AND read_at IS NULL",
                (now, recipient),
            )
        elif not ids:
            return 0  # `IN ()` is SQLite's alone: PostgreSQL refuses it
        else:
            marks = ",".join("?" * len(ids))
            cursor = self.conn.execute(
                f"UPDATE inbox SET read_at = ? WHERE recipient = ? AND read_at IS NULL "
                f"AND id IN ({marks})",
                (now, recipient, *ids),
            )
        return int(cursor.rowcount)

    def envelope(self, event_id: str) -> str | None:
        row = self.conn.execute("SELECT envelope FROM events WHERE id = ?", (event_id,)).fetchone()
        return str(row[0]) if row else None

    def insert_run(
        self, flow: str, key: str | None, event_id: str, contact_id: str | None, now: float
    ) -> int:
        row = self.conn.execute(
            "INSERT INTO flow_runs (flow, key, event_id, contact_id, status, step, due_at, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'active', 0, ?, ?, ?) RETURNING id",
            (flow, key, event_id, contact_id, now, now, now),
        ).fetchone()
        return int(row[0])

    def active_runs(self, flow: str, key: str | None) -> list[RunRow]:
        rows = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE flow = ? AND key {self.SAME} ? "
            "AND status = 'active' ORDER BY id",
            (flow, key),
        ).fetchall()
        return [RunRow(*row) for row in rows]

    def run(self, run_id: int) -> RunRow | None:
        row = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE id = ?{self.FOR_UPDATE}", (run_id,)
        ).fetchone()
        return RunRow(*row) if row else None

    def update_run(
        self,
        run_id: int,
        status: str,
        step: int,
        due_at: float | None,
        reason: str | None,
        now: float,
    ) -> None:
        self.conn.execute(
            "UPDATE flow_runs SET status = ?, step = ?, due_at = ?, reason = ?, "
            "lease_until = NULL, updated_at = ? WHERE id = ?",
            (status, step, due_at, reason, now, run_id),
        )

    def claim_due_runs(self, now: float, limit: int, lease_seconds: float) -> list[RunRow]:
        rows = self.conn.execute(
            "UPDATE flow_runs SET lease_until = ? WHERE id IN (SELECT id FROM flow_runs "
            "WHERE status = 'active' AND due_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
            f"ORDER BY due_at, id LIMIT ?{self.SKIP_LOCKED}) "
            f"RETURNING {_RUN_COLUMNS}",
            (now + lease_seconds, now, now, limit),
        ).fetchall()
        return sorted((RunRow(*row) for row in rows), key=lambda r: (r.due_at or 0, r.id))

    def step_statuses(self, run_id: int, step: int) -> list[str]:
        return [
            str(row[0])
            for row in self.conn.execute(
                "SELECT status FROM deliveries WHERE run_id = ? AND step = ?", (run_id, step)
            )
        ]

    def message_deliveries(
        self, event_id: str, recipient: str, source: str, run_id: int | None, step: int | None
    ) -> list[tuple[str, str, str | None, str | None]]:
        return [
            (str(channel), str(status), reason, detail)
            for channel, status, reason, detail in self.conn.execute(
                "SELECT channel, status, reason, detail FROM deliveries WHERE event_id = ? "
                f"AND recipient = ? AND source = ? AND run_id {self.SAME} ? AND step {self.SAME} ?",
                (event_id, recipient, source, run_id, step),
            )
        ]

    def run_read_at(self, run_id: int) -> float | None:
        row = self.conn.execute(
            "SELECT MIN(inbox.read_at) FROM inbox JOIN deliveries "
            "ON deliveries.id = inbox.delivery_id WHERE deliveries.run_id = ?",
            (run_id,),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # -- pacing --------------------------------------------------------------------------------

    def throttle_hit(self, scope: str, key: str, window_start: int, limit: int) -> bool:
        # One row per (scope, key): a later window starts the count again, in the same statement
        # (no read-then-write for two writers to race on, nothing to delete later).
        row = self.conn.execute(
            "INSERT INTO throttle_hits (scope, key, window_start, count) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (scope, key) DO UPDATE SET "
            "count = CASE WHEN excluded.window_start > throttle_hits.window_start THEN 1 "
            "ELSE throttle_hits.count + 1 END, "
            "window_start = CASE WHEN excluded.window_start > throttle_hits.window_start "
            "THEN excluded.window_start ELSE throttle_hits.window_start END "
            "WHERE excluded.window_start > throttle_hits.window_start "
            "OR throttle_hits.count < ? RETURNING count",
            (scope, key, window_start, limit),
        ).fetchone()
        return row is not None

    def digest_fold(
        self,
        scope: str,
        key: str,
        event_id: str,
        due_at: float,
        max_count: int | None,
        message: tuple[str, str, Callable[[int], NewDelivery]] | None,
        now: float,
    ) -> DigestFold:
        conn = self.conn
        while True:
            if max_count is not None:
                # counted: join and count in one statement, or close what cannot take it
                joined = conn.execute(
                    "UPDATE digests SET count = count + 1 WHERE scope = ? AND key = ? "
                    "AND open = 1 AND due_at > ? AND count < max_count AND (delivery_id IS NULL "
                    "OR (SELECT status FROM deliveries WHERE id = digests.delivery_id) = "
                    "'pending') RETURNING id, delivery_id, due_at",
                    (scope, key, now),
                ).fetchone()
                if joined is not None and self._message_waits(joined[1]):
                    fold = DigestFold(joined[0], joined[1], joined[2], opened=False)
                    break
                if joined is not None:  # its message was claimed meanwhile: not joined after all
                    conn.execute("UPDATE digests SET count = count - 1 WHERE id = ?", (joined[0],))
                conn.execute(
                    "UPDATE digests SET open = NULL, closed_at = ? "
                    "WHERE scope = ? AND key = ? AND open = 1",
                    (now, scope, key),
                )
            else:
                # a read, not a write, for the common case (PostgreSQL: FOR SHARE, so that a
                # close waits for this transaction)
                found = conn.execute(
                    "SELECT id, delivery_id, due_at, delivery_id IS NULL OR "
                    "(SELECT status FROM deliveries WHERE id = digests.delivery_id) = 'pending' "
                    f"FROM digests WHERE scope = ? AND key = ? AND open = 1{self.FOR_SHARE}",
                    (scope, key),
                ).fetchone()
                if found is not None:
                    digest_id, delivery_id, due, unclaimed = found
                    if unclaimed and due > now and self._message_waits(delivery_id):
                        fold = DigestFold(digest_id, delivery_id, due, opened=False)
                        break
                    # its time has come, or its message is being sent: close it
                    conn.execute(
                        "UPDATE digests SET open = NULL, closed_at = ? WHERE id = ?",
                        (now, digest_id),
                    )
            opened = conn.execute(
                "INSERT INTO digests (scope, key, open, due_at, count, max_count, created_at) "
                "VALUES (?, ?, 1, ?, 1, ?, ?) ON CONFLICT (scope, key, open) DO NOTHING "
                "RETURNING id",
                (scope, key, due_at, max_count, now),
            ).fetchone()
            if opened is None:
                continue  # another writer opened one just now (PostgreSQL): join it
            delivery_id = None
            if message is not None:
                event, event_type, make = message
                delivery_id = self.insert_delivery(event, event_type, make(opened[0]), now)
                conn.execute(
                    "UPDATE digests SET delivery_id = ? WHERE id = ?", (delivery_id, opened[0])
                )
            fold = DigestFold(opened[0], delivery_id, due_at, opened=True)
            break
        if message is None and fold.opened:
            # the event a flow digest's first run stands for (the others fold their sends in)
            conn.execute(
                "INSERT INTO digest_items (digest_id, event_id, at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (fold.digest_id, event_id, now),
            )
        return fold

    def _message_waits(self, delivery_id: int | None) -> bool:
        """Whether a digest's message, read as pending, is still pending with a lock that its
        claim waits for or skips (PostgreSQL: FOR SHARE), so that no message is rendered without
        an event that joined it. SQLite has one writer: what was read stays so."""
        if not self.FOR_SHARE or delivery_id is None:
            return True
        row = self.conn.execute(
            f"SELECT status FROM deliveries WHERE id = ?{self.FOR_SHARE}", (delivery_id,)
        ).fetchone()
        return row is not None and row[0] == "pending"

    def digest_close(self, scope: str, event_id: str, now: float) -> int | None:
        row = self.conn.execute(
            "SELECT d.id FROM digests d JOIN digest_items i ON i.digest_id = d.id "
            "WHERE d.scope = ? AND i.event_id = ? ORDER BY d.id DESC LIMIT 1",
            (scope, event_id),
        ).fetchone()
        if row is None:
            return None
        self.conn.execute(
            "UPDATE digests SET open = NULL, closed_at = COALESCE(closed_at, ?) WHERE id = ?",
            (now, row[0]),
        )
        return int(row[0])


def now() -> float:
    return time.time()
