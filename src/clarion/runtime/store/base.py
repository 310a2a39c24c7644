"""What the runtime needs from a store, whatever keeps the rows (SQLite, PostgreSQL).

Writes happen in transactions handed to `Store.submit`: the store runs each job inside its own
savepoint, several jobs to one commit (group commit), and resolves the job's future only once
the commit is durable. That is how an event is on disk before its `202`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


# The password runs to the *last* `@` before the query: one typed unencoded (`/`, `@` in it)
# is still the password, and still secret.
_USERINFO = re.compile(r"(://[^:/@?#]*):([^?#]*)@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)")


def redact_url(url: str) -> str:
    """A store URL without its password (`?password=` too): it is logged and shown in errors."""
    url = _USERINFO.sub(r"\1:***@", url)
    return _QUERY_PASSWORD.sub(r"\1***", url)


def redact_text(text: str, url: str) -> str:
    """A message about the store at `url` (the database's or libpq's, which may quote the URL
    or the token of it that it could not read) without the URL's password."""
    secrets = [m.group(2) for m in _USERINFO.finditer(url)]
    secrets += [m.group(2) for m in _QUERY_PASSWORD.finditer(url)]
    # libpq reads an unencoded password only up to its first `@` or `/`, and may then quote the
    # rest as a host name or a path.
    secrets += [p for s in secrets for p in re.split(r"[@/]", s) if len(p) >= 3]
    text = text.replace(url, redact_url(url))
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in (secret, urllib.parse.unquote(secret)):
            text = text.replace(form, "***")
    return text


@dataclass(frozen=True)
class ContactRow:
    id: str
    email: str | None
    phone: str | None
    email_norm: str | None
    phone_norm: str | None
    name: str | None
    locale: str | None
    timezone: str | None
    devices: tuple[tuple[str, str], ...]
    consent: dict[str, bool]
    created_at: float
    updated_at: float
    # The contact's own quiet hours: `{"from": "HH:MM", "to": "HH:MM"}` as JSON, `"off"`, or None
    # (the table's defaults apply).
    quiet_hours: str | None = None


@dataclass(frozen=True)
class ConsentChange:
    channel: str
    granted: bool
    at: float
    source: str


@dataclass(frozen=True)
class NewDelivery:
    recipient: str
    channel: str
    kind: str
    to: str | None
    template: str | None
    status: str  # pending | skipped
    reason: str | None
    target: str | None
    url: str | None
    locale: str
    timezone: str
    source: str
    due_at: float | None
    detail: str | None = None
    run_id: int | None = None
    step: int | None = None
    fallback: Sequence[str] = ()  # channels that take this one's place if it dies, in order
    digest_id: int | None = None  # a digest message, or a delivery folded into one (`digested`)


@dataclass(frozen=True)
class DigestFold:
    """Where an event went in a digest: the digest, its message (team digests), when it is sent,
    and whether this event opened it."""

    digest_id: int
    delivery_id: int | None
    due_at: float
    opened: bool


@dataclass(frozen=True)
class RunRow:
    """A flow run: the next step to take and when (None: waiting on a send's outcome)."""

    id: int
    flow: str
    key: str | None
    event_id: str
    contact_id: str | None
    status: str  # active | done | replaced | canceled | late | failed
    step: int
    due_at: float | None
    created_at: float


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    event_id: str
    event_type: str
    recipient: str
    channel: str
    kind: str
    to: str | None
    url: str | None
    template: str | None
    locale: str
    timezone: str
    attempts: int
    envelope: str  # the event as accepted, JSON
    source: str = "team"
    run_id: int | None = None
    step: int | None = None
    fallback: tuple[str, ...] = ()  # channels that take this one's place if it dies, in order
    digest_id: int | None = None  # a digest message: rendered with the digest's events


@dataclass(frozen=True)
class Outcome:
    """What one send attempt gave, and what becomes of the delivery."""

    delivery_id: int
    status: str  # sent | failed (retried at next_due_at) | dead
    result: str  # sent | failed | timeout | error | refused | dry-run
    error: str | None
    elapsed: float
    next_due_at: float | None = None
    inbox: dict[str, Any] | None = None  # title, body, link for an in-app delivery
    provider: int | None = None  # index of the channel's provider URL that answered last
    failovers: int = 0  # providers that failed before it, within this attempt
    # The attempts count the delivery had when claimed: an outcome that arrives after its lease
    # ran out and the delivery was released (and perhaps claimed again) is not recorded twice.
    claimed_attempts: int | None = None


@dataclass(frozen=True)
class EventRecord:
    id: str
    type: str
    received_at: float
    table_digest: str
    envelope: dict[str, Any]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # flow runs this event started


class Tx(Protocol):
    """Operations inside one write transaction."""

    def savepoint(self) -> AbstractContextManager[None]: ...

    def event_answer(self, event_id: str) -> tuple[str, dict[str, Any]] | None: ...

    def event_answers(self, event_ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]: ...

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
    ) -> None: ...

    def insert_deliveries(
        self, event_id: str, event_type: str, rows: Sequence[NewDelivery], now: float
    ) -> None: ...

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> None: ...

    def insert_delivery_rows(
        self, rows: Sequence[tuple[str, str, NewDelivery]], now: float
    ) -> None: ...

    def contact(self, contact_id: str) -> ContactRow | None: ...

    def contact_by(self, field: str, value: str) -> str | None: ...

    def save_contact(self, row: ContactRow, changes: Sequence[ConsentChange]) -> None: ...

    def change_consent(self, contact_id: str, changes: Sequence[ConsentChange]) -> None: ...

    def claim_due(self, now: float, limit: int, lease_seconds: float) -> list[ClaimedDelivery]: ...

    def complete(self, outcomes: Sequence[Outcome], now: float) -> list[int]:
        """Record each outcome; the ids of the deliveries recorded (a delivery whose lease ran
        out, now another worker's, is left alone and not in the list)."""
        ...

    def release_expired(
        self, now: float, phone_due: float, everything: bool = False
    ) -> list[tuple[int, str]]: ...

    def unclaim(self, delivery_ids: Sequence[int], now: float, due_at: float | None = None) -> int:
        """Give back claimed deliveries whose send never began (the sidecar is stopping, or the
        channel's rate has no slot soon): status back to `pending` (`failed` when tried before),
        lease cleared, `due_at` moved to `due_at` when given, `attempts` unchanged and no
        attempt row: nothing was sent. Only rows still `sending`. Returns how many."""
        ...

    def take_slot(
        self, key: str, count: int, per_seconds: float, now: float, horizon: float
    ) -> float:
        """The rate `count` per `per_seconds` named `key` (a channel and provider): sends are
        spaced `per_seconds / count` apart, across every worker and, in a shared store, every
        sidecar. Returns the time of the next free slot; when it is within `horizon` of `now`
        it is reserved for the caller (the key's row moves one spacing on), otherwise nothing
        is reserved and the caller tries again then. An unused slot is not saved up: no burst
        after an idle spell. One row per key, read and moved in one transaction (PostgreSQL:
        `SELECT ... FOR UPDATE`, or `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`)."""
        ...

    def envelope(self, event_id: str) -> str | None: ...

    def mark_read(self, recipient: str, ids: Sequence[int] | None, now: float) -> int: ...

    def insert_run(
        self, flow: str, key: str | None, event_id: str, contact_id: str | None, now: float
    ) -> int: ...

    def active_runs(self, flow: str, key: str | None) -> list[RunRow]: ...

    def run(self, run_id: int) -> RunRow | None: ...

    def update_run(
        self,
        run_id: int,
        status: str,
        step: int,
        due_at: float | None,
        reason: str | None,
        now: float,
    ) -> None: ...

    def claim_due_runs(self, now: float, limit: int, lease_seconds: float) -> list[RunRow]: ...

    def step_statuses(self, run_id: int, step: int) -> list[str]: ...

    def message_deliveries(
        self, event_id: str, recipient: str, source: str, run_id: int | None, step: int | None
    ) -> list[tuple[str, str, str | None, str | None]]:
        """One message's deliveries to one recipient: (channel, status, reason, detail)."""
        ...

    def run_read_at(self, run_id: int) -> float | None:
        """When an in-app item delivered by this flow run was first read; None: none was."""
        ...

    # -- pacing (runtime/pacing.py): enforced here, so limits hold across workers and sidecars --

    def throttle_hit(self, scope: str, key: str, window_start: int, limit: int) -> bool:
        """Count one message for (scope, key) in the window starting at `window_start` (a later
        window than the one counted so far starts again at 1); False, and nothing counted, when
        the window already holds `limit`."""
        ...

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
        """Add the event to the open digest of (scope, key) if it can still take it (due after
        `now`, its message not yet claimed, fewer than `max_count` events); otherwise close that
        one and open a new one due at `due_at`.

        A team digest has a `message` (event id, event type, digest id -> row): inserted as the
        digest's message when a digest opens. A flow digest has none; the event of the run that
        opens it is kept in `digest_items`. Every other event of a digest is known by the
        deliveries the caller folds into it (`digest_id` set, reason `digested`).

        Under concurrent writers (PostgreSQL): the join must hold a lock that closing the digest
        and claiming its message wait for or skip (`FOR SHARE` on the digest row and on the
        message's delivery row), so that no message is rendered without an event that joined
        it; a second writer opening the same key meets `UNIQUE (scope, key, open)` (`ON
        CONFLICT DO NOTHING`) and joins the digest the first one opened."""
        ...

    def digest_close(self, scope: str, event_id: str, now: float) -> int | None:
        """Close the digest of `scope` that holds this event; its id (None: there is none)."""
        ...


class Store(Protocol):
    url: str
    single_process: bool

    def submit(self, job: Callable[[Tx], T], *, durable: bool = True) -> Future[T]: ...

    def write(self, job: Callable[[Tx], T], *, durable: bool = True) -> T: ...

    def next_due_at(self) -> float | None: ...

    def runs_due(self, now: float) -> bool: ...

    def event(self, event_id: str) -> EventRecord | None: ...

    def contact(self, contact_id: str) -> tuple[ContactRow, list[ConsentChange]] | None: ...

    def stats(self, now: float) -> dict[str, float]: ...

    def inbox(
        self, recipient: str, *, unread: bool, before: int | None, after: int | None, limit: int
    ) -> list[dict[str, Any]]: ...

    def unread_count(self, recipient: str) -> int: ...

    def digest_events(self, digest_id: int) -> list[str]:
        """The envelopes of a digest's events, in the order they came."""
        ...

    def ping(self) -> None: ...

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        """Be told of other processes' writes: `work` (something may be due) and `inbox` (an
        item for the recipient in the payload). A store one process owns never calls back."""
        ...

    def check_writable(self) -> None:
        """Raise StoreError unless a durable write commits now (disk full, read-only file,
        database down): what `/readyz` asks before it says ready."""
        ...

    def close(self) -> None: ...
