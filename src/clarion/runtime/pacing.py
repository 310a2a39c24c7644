"""Pacing at run time: throttles and digests, applied to what the planner planned.

The planner stays a pure function of (table, event, contact, now); this module takes its planned
deliveries inside the accept transaction and asks the store, which is where the limits live (so
that they hold across the dispatcher's and ingest's workers and, on PostgreSQL, across sidecars):

- a throttle counts one message per event (or flow send) for its rendered key in a fixed window
  of `per` seconds aligned on the epoch; over `limit`, every planned delivery of the message is
  skipped with the reason `throttled`;
- a team address with `digest` gets one message (template `digest`) at the next boundary of its
  schedule; each event's own delivery is recorded as skipped with the reason `digested`,
  pointing at the digest message (column `digest_id`, and the detail).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError

from clarion.check.rendering import render
from clarion.check.timing import format_duration, parse_time_of_day, zone
from clarion.compile.table import Digest, Throttle
from clarion.runtime.envelope import EventIn
from clarion.runtime.schedule import iso, local
from clarion.runtime.store.base import NewDelivery, Tx
from clarion.runtime.tableindex import TableIndex

DIGEST_TEMPLATE = "digest"
DAY = 86_400


@dataclass(frozen=True)
class PacingIndex:
    """What of a table is paced, looked up once per table."""

    digests: dict[str, tuple[Digest, ZoneInfo]]  # target id -> its digest and time zone
    customer: dict[str, Throttle]  # event type -> its customer message's throttle
    routes: dict[str, Throttle]  # "route:<name>" -> the route's throttle

    @property
    def any(self) -> bool:
        return bool(self.digests or self.customer or self.routes)


@functools.lru_cache(maxsize=8)
def index(table: TableIndex) -> PacingIndex:
    t = table.table
    fallback = zone(t.defaults.timezone) or ZoneInfo("UTC")
    digests: dict[str, tuple[Digest, ZoneInfo]] = {}
    for target in t.targets:
        if target.digest is not None:
            person = t.recipients.get(target.recipient)
            name = person.timezone if person and person.timezone else None
            digests[target.id] = (target.digest, (zone(name) if name else None) or fallback)
    return PacingIndex(
        digests=digests,
        customer={e: m.throttle for e, m in t.customer_messages.items() if m.throttle},
        routes={f"route:{r.name}": r.throttle for r in t.routes if r.throttle},
    )


def next_boundary(now: float, every: int, at: str | None, tz: ZoneInfo) -> float:
    """When a digest opened at `now` is sent: the next multiple of `every` since the epoch, or,
    with `at`, the next `at` on the wall clock of a day that is a multiple of `every` days since
    a Monday (so `every: 7d` falls on Mondays)."""
    every = max(every, 1)
    if at is None:
        return float((math.floor(now / every) + 1) * every)
    clock = parse_time_of_day(at)
    assert clock is not None  # the checker refused anything else
    days = max(every // DAY, 1)
    today = datetime.fromtimestamp(now, tz).date()
    for ahead in range(days + 2):
        day = today + timedelta(days=ahead)
        if (day.toordinal() - 1) % days:
            continue
        moment = local(day, clock, tz).timestamp()
        if moment > now:
            return moment
    raise AssertionError("a boundary lies within every + 1 days")  # pragma: no cover


_PATH = re.compile(r"^\{\{\s*((?:contact|data|event)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*\}\}$")


@functools.lru_cache(maxsize=256)
def _simple_path(key: str) -> tuple[str, ...] | None:
    """`{{ contact.id }}` as ("contact", "id"): looked up directly, without Jinja2."""
    match = _PATH.match(key.strip())
    return tuple(match.group(1).split(".")) if match else None


def _key_context(key: str, event: EventIn) -> dict[str, Any] | None:
    """Enough of the template context for the commonest keys (`{{ contact.id }}`,
    `{{ data.FIELD }}`), without building the whole of it; None: build it."""
    path = _simple_path(key)
    if path is None:
        return None
    if path[0] == "data":
        return {"data": event.data}
    if path == ("contact", "id"):
        return {"contact": {"id": event.contact.id} if event.contact is not None else {}}
    return None


def render_key(key: str, context: dict[str, Any]) -> str:
    """A throttle's or digest's key for this event; one that cannot render is the empty key."""
    path = _simple_path(key)
    if path is not None:
        value: Any = context
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return ""
            value = value[part]
        if isinstance(value, str | int | float):  # printed as Jinja2 prints them
            return str(value).strip()
    try:
        return render(key, context, locale="en", timezone_name="UTC").body.strip()
    except (TemplateError, TypeError, ValueError):
        return ""


def with_changes(row: NewDelivery, **changes: Any) -> NewDelivery:
    """`dataclasses.replace` for the hot path: a copy of the frozen row's fields with some
    changed, without running `__init__` field by field again (several times cheaper)."""
    new = object.__new__(NewDelivery)
    new.__dict__.update(row.__dict__, **changes)
    return new


def throttle(
    tx: Tx,
    spec: Throttle,
    scope: str,
    context: dict[str, Any],
    rows: Sequence[NewDelivery],
    now: float,
) -> list[NewDelivery]:
    """One message (the pending rows) counted against the throttle; over it, all skipped."""
    if not any(r.status == "pending" for r in rows):
        return list(rows)  # nothing would be sent: nothing to count
    key = render_key(spec.key, context)
    per = max(spec.per_seconds, 1)
    start = int(now // per) * per
    if tx.throttle_hit(scope, key, start, spec.limit):
        return list(rows)
    detail = (
        f"over {spec.limit} per {format_duration(per)} for {key!r}; "
        f"the window ends {_iso(float(start + per))}"
    )
    return [
        with_changes(r, status="skipped", reason="throttled", due_at=None, detail=detail)
        if r.status == "pending"
        else r
        for r in rows
    ]


def apply(
    tx: Tx,
    table: TableIndex,
    event: EventIn,
    rows: list[NewDelivery],
    context: Callable[[], dict[str, Any]],
    now: float,
) -> list[NewDelivery]:
    """Throttles, then digests, on an event's planned rows (inside the accept transaction; the
    event is already inserted). `context` gives the template context, made only when needed."""
    paced = index(table)
    if not paced.any:
        return rows
    customer = paced.customer.get(event.type)
    if customer is not None or paced.routes:
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            source = row.source
            if (customer is not None and source == "customer") or source in paced.routes:
                groups.setdefault(source, []).append(i)
        for source, members in groups.items():
            spec = customer if source == "customer" else paced.routes[source]
            assert spec is not None
            scope = f"customer:{event.type}" if source == "customer" else source
            values = _key_context(spec.key, event) or context()
            done = throttle(tx, spec, scope, values, [rows[i] for i in members], now)
            for i, row in zip(members, done, strict=True):
                rows[i] = row
    if paced.digests:
        rows = [
            fold(tx, event, row, *paced.digests[row.target], now)
            if row.status == "pending" and row.target in paced.digests
            else row
            for row in rows
        ]
    return rows


def fold(
    tx: Tx, event: EventIn, row: NewDelivery, spec: Digest, tz: ZoneInfo, now: float
) -> NewDelivery:
    """A team delivery folded into its address's digest: the digest message is opened (due at
    the schedule's next boundary) by the first event, and every event's own row is `digested`."""
    due = next_boundary(now, spec.every_seconds, spec.at, tz)

    def message(digest_id: int) -> NewDelivery:
        return with_changes(row, template=DIGEST_TEMPLATE, due_at=due, digest_id=digest_id)

    found = tx.digest_fold(
        f"target:{row.target}", "", event.id, due, None, (event.id, event.type, message), now
    )
    return with_changes(
        row,
        status="skipped",
        reason="digested",
        due_at=None,
        digest_id=found.digest_id,
        detail=f"in the digest message {found.delivery_id}, due {_iso(found.due_at)}",
    )


@functools.lru_cache(maxsize=64)
def _iso(moment: float) -> str | None:
    return iso(moment)


# -- rendering a digest message ------------------------------------------------------------------


def template_source(table: TableIndex, name: str, channel: str, locale: str) -> tuple[str, str]:
    """A digest message's template: the team's `digest.<channel>` (or the flow send's own), else
    Clarion's built-in digest."""
    if name == DIGEST_TEMPLATE and f"{name}.{channel}" not in table.table.templates:
        builtin = table.table.builtin_templates.get(DIGEST_TEMPLATE)
        if builtin is not None:
            return builtin, locale
    return table.template_source(name, channel, locale)


def items(table: TableIndex, envelopes: Sequence[str]) -> list[dict[str, Any]]:
    """The `events` a digest template lists: each event's type, id, time, category,
    description, data and contact id."""
    import json

    out: list[dict[str, Any]] = []
    for envelope in envelopes:
        raw = json.loads(envelope)
        spec = table.table.events.get(raw.get("type", ""))
        out.append(
            {
                "type": raw.get("type"),
                "id": raw.get("id"),
                "occurred_at": raw.get("occurred_at"),
                "category": spec.category if spec else None,
                "description": spec.description if spec else None,
                "data": raw.get("data", {}),
                "contact": {"id": (raw.get("contact") or {}).get("id")},
            }
        )
    return out


# -- explain: what pacing would do to one event, without a store -----------------------------------


def explain(
    table: TableIndex,
    event: EventIn,
    deliveries: list[Any],
    context: dict[str, Any],
    now: float,
) -> list[Any]:
    """The planner's deliveries (planner.Delivery) as pacing would take them: a throttled
    message says its limit and key (one event alone is never over it); a delivery to an address
    with a digest is `digested`, and the digest message it joins is shown as scheduled."""
    paced = index(table)
    if not paced.any:
        return deliveries
    out: list[Any] = []
    for d in deliveries:
        spec = (
            paced.customer.get(event.type) if d.source == "customer" else paced.routes.get(d.source)
        )
        if spec is not None and d.status == "planned":
            key = render_key(spec.key, context)
            per = format_duration(spec.per_seconds)
            note = f"throttle: at most {spec.limit} per {per} for {key!r}"
            d = replace(d, detail=f"{d.detail}; {note}" if d.detail else note)
        if d.status == "planned" and d.target in paced.digests:
            digest, tz = paced.digests[d.target]
            due = next_boundary(now, digest.every_seconds, digest.at, tz)
            out.append(
                replace(
                    d,
                    status="skipped",
                    reason="digested",
                    detail=f"collected for the digest sent {iso(due)}",
                )
            )
            d = replace(
                d,
                template=DIGEST_TEMPLATE,
                source=f"digest:{d.target}",
                detail=f"digest of {d.recipient}'s {d.channel}, sent {iso(due)}",
            )
        out.append(d)
    return out
