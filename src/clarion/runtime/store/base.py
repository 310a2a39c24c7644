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


@dataclass(frozen=True)
class Outcome:
    """What one send attempt gave, and what becomes of the delivery."""

    delivery_id: int
    status: str  # sent | failed (retried at next_due_at) | dead
    result: str  # sent | failed | timeout | error | dry-run
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

    def run_read_at(self, run_id: int) -> float | None:
        """When an in-app item delivered by this flow run was first read; None: none was."""
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

    def ping(self) -> None: ...

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        """Be told of other processes' writes: `work` (something may be due) and `inbox` (an
        item for the recipient in the payload). A store one process owns never calls back."""
        ...

    def close(self) -> None: ...
