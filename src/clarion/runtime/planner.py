"""Who gets what: a pure function of (table, event, contact state, now) -> delivery records.

Every candidate is recorded: planned, or skipped with a reason code from scenarios.md, so that
"why was this not sent?" always has an answer. Nothing here touches the store or the network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from jinja2 import TemplateError

from clarion.check.rendering import VALUE_ERRORS, RenderError, environment
from clarion.compile.table import Route, Target
from clarion.runtime import quiet
from clarion.runtime.envelope import EventIn
from clarion.runtime.store.base import NewDelivery
from clarion.runtime.tableindex import TableIndex

Status = Literal["planned", "skipped"]


@dataclass(frozen=True)
class ContactState:
    """A customer as the store knows them once this event's changes are applied."""

    id: str
    email: str | None = None  # normalised; None when absent or invalid
    phone: str | None = None
    email_invalid: bool = False
    phone_invalid: bool = False
    devices: tuple[tuple[str, str], ...] = ()  # (name, Apprise URL)
    consent: dict[str, bool] = field(default_factory=dict)
    locale: str | None = None
    timezone: str | None = None
    name: str | None = None
    quiet_hours: str | None = None  # the contact's own: JSON `{from, to}`, "off", or None

    def as_template_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {"id": self.id}
        for key in ("email", "phone", "name", "locale", "timezone"):
            if getattr(self, key) is not None:
                value[key] = getattr(self, key)
        return value


@dataclass(frozen=True)
class Delivery:
    """One candidate delivery and its fate."""

    recipient: str  # team recipient name, or "contact:<id>"
    channel: str
    kind: str  # email | phone | url | inbox
    to: str | None  # normalised address, device name, or inbox owner
    template: str | None
    status: Status
    reason: str | None = None
    target: str | None = None  # team target id
    url: str | None = None  # push device URL, secrets still as placeholders
    locale: str = "en"
    timezone: str = "UTC"
    source: str = "team"  # team | route:<name> | customer
    detail: str | None = None
    due_at: datetime | None = None  # later than now: held (quiet hours)
    fallback: tuple[str, ...] = ()  # channels that take this one's place if it dies, in order


def template_context(
    event: EventIn, table: TableIndex, contact: ContactState | None
) -> dict[str, Any]:
    spec = table.table.events.get(event.type)
    occurred = event.occurred_at.isoformat() if event.occurred_at else None
    return {
        "event": {
            "type": event.type,
            "id": event.id,
            "occurred_at": occurred,
            "category": spec.category if spec else None,
            "description": spec.description if spec else None,
        },
        "data": event.data,
        "contact": contact.as_template_value() if contact else {},
    }


@functools.lru_cache(maxsize=1024)
def _expression(source: str) -> Callable[..., Any]:
    return environment().compile_expression(source)


def evaluate(source: str, context: dict[str, Any]) -> Any:
    """The value of an expression; raises jinja2.TemplateError, and nothing else."""
    try:
        value = _expression(source)(**context)
    except TemplateError:
        raise
    except VALUE_ERRORS as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}") from None
    if hasattr(value, "_undefined_name") or type(value).__name__.endswith("Undefined"):
        raise RenderError(f"{source} is not defined for this event")
    return value


def condition(source: str, context: dict[str, Any]) -> tuple[bool, str | None]:
    """(value, problem): an expression that cannot be evaluated is false, and says why."""
    try:
        return bool(_expression(source)(**context)), None
    except TemplateError as exc:
        return False, f"{source!r}: {exc.message or exc}"
    except VALUE_ERRORS as exc:
        return False, f"{source!r}: {type(exc).__name__}: {exc}"


def plan(
    table: TableIndex,
    event: EventIn,
    contact: ContactState | None,
    now: datetime,
) -> list[Delivery]:
    spec = table.table.events[event.type]
    deliveries = _team(table, event, spec.category, contact)
    deliveries += _customer(table, event.type, contact)
    return quiet.hold(table, deliveries, event.type, contact, now)


def _team(
    table: TableIndex, event: EventIn, category: str | None, contact: ContactState | None
) -> list[Delivery]:
    event_type = event.type
    routes = table.routes_for(event_type)
    verdicts: tuple[tuple[bool, str | None], ...] = ()
    if any(route.when for route in routes):
        context = template_context(event, table, contact)
        verdicts = tuple(
            condition(route.when, context) if route.when else (True, None) for route in routes
        )
    else:
        verdicts = tuple((True, None) for _ in routes)
    # The team's plan depends only on the event type and the routes' verdicts: compute it once.
    key = (event_type, verdicts)
    cached = table.team_plans.get(key)
    if cached is None:
        cached = _team_plan(table, event_type, category, routes, verdicts)
        if len(table.team_plans) < 4096:
            table.team_plans[key] = cached
    return list(cached)


def _team_plan(
    table: TableIndex,
    event_type: str,
    category: str | None,
    routes: list[Route],
    verdicts: tuple[tuple[bool, str | None], ...],
) -> tuple[Delivery, ...]:
    t = table.table
    template = t.events[event_type].template
    by_name = {route.name: verdict for route, verdict in zip(routes, verdicts, strict=True)}
    out: list[Delivery] = []
    for target in t.targets:
        recipient = t.recipients[target.recipient]
        wants = target.events.matches(event_type, category)
        routing = [r for r in routes if _route_reaches(r, target)]
        routed_by = next((r for r in routing if by_name[r.name][0]), None)
        status: Status = "planned"
        reason: str | None = None
        detail: str | None = None
        source = "team"
        if not target.enabled:
            status = "skipped"
            reason = "device_disabled" if target.kind == "url" else "event_disabled"
        elif not wants and routed_by is not None:
            source = f"route:{routed_by.name}"
        elif not wants and routing:
            status, reason = "skipped", "condition_false"
            detail = "; ".join(
                f"route {r.name}: " + (by_name[r.name][1] or f"{r.when} is false") for r in routing
            )
        elif not wants:
            status, reason = "skipped", "event_disabled"
        out.append(
            Delivery(
                recipient=target.recipient,
                channel=target.channel,
                kind=target.kind,
                to=_team_address(target),
                template=template,
                status=status,
                reason=reason,
                target=target.id,
                url=target.url,
                locale=recipient.locale or t.defaults.locale,
                timezone=recipient.timezone or t.defaults.timezone,
                source=source,
                detail=detail,
            )
        )
    return tuple(out)


def _route_reaches(route: Route, target: Target) -> bool:
    return target.recipient in route.to and (
        route.channels is None or target.channel in route.channels
    )


def _team_address(target: Target) -> str | None:
    if target.kind == "url":
        return target.device
    if target.kind == "inbox":
        return target.recipient
    return target.address


def _customer(table: TableIndex, event_type: str, contact: ContactState | None) -> list[Delivery]:
    message = table.table.customer_messages.get(event_type)
    if message is None:
        return []
    if not message.enabled:
        common = _to_whom(table, contact, message.template, "customer")
        return [
            Delivery(
                channel=channel,
                kind=table.table.channels[channel].address,
                to=None,
                status="skipped",
                reason="message_disabled",
                **common,
            )
            for channel in message.channels
        ]
    return to_contact(
        table, contact, message.channels, message.template, "customer", message.fallback
    )


def _to_whom(
    table: TableIndex, contact: ContactState | None, template: str, source: str
) -> dict[str, Any]:
    defaults = table.table.defaults
    return {
        "recipient": f"contact:{contact.id}" if contact else "contact",
        "template": template,
        "locale": (contact.locale if contact else None) or defaults.locale,
        "timezone": (contact.timezone if contact else None) or defaults.timezone,
        "source": source,
    }


def to_contact(
    table: TableIndex,
    contact: ContactState | None,
    channels: list[str],
    template: str,
    source: str,
    fallback: Sequence[str] = (),
) -> list[Delivery]:
    """A message to the customer: each of their addresses on each channel, planned when they
    consent, or skipped with why (no contact, no or an invalid address, no consent). A channel
    that cannot be used is replaced by the first `fallback` channel that can (reason
    `fallback`); a planned one carries the fallback channels left, for when it is dead-lettered."""
    common = _to_whom(table, contact, template, source)
    out: list[Delivery] = []
    spare = list(fallback)
    for channel in channels:
        found = on_channel(table, contact, channel, common)
        if any(d.status == "planned" for d in found):
            out.extend(replace(d, fallback=tuple(spare)) for d in found)
            continue
        out.extend(found)
        why = f"{found[0].reason}" if found else "no_address"
        while spare:
            other = spare.pop(0)
            candidates = on_channel(table, contact, other, common)
            if any(d.status == "planned" for d in candidates):
                note = f"{other} replaces {channel} ({why})"
                out.extend(
                    replace(d, reason="fallback", detail=note, fallback=tuple(spare))
                    if d.status == "planned"
                    else d
                    for d in candidates
                )
                break
            out.extend(candidates)
            why += f"; {other}: {candidates[0].reason if candidates else 'no_address'}"
    return out


def on_channel(
    table: TableIndex, contact: ContactState | None, channel: str, common: dict[str, Any]
) -> list[Delivery]:
    """The customer's deliveries on one channel: planned, or skipped with why."""
    kind = table.table.channels[channel].address
    if contact is None:
        problem: str | None = "no_address"
        addresses: list[tuple[str, str | None]] = []
    else:
        addresses, problem = customer_addresses(contact, kind)
    if problem is not None:
        return [
            Delivery(
                channel=channel, kind=kind, to=None, status="skipped", reason=problem, **common
            )
        ]
    assert contact is not None
    consented = contact.consent.get(channel, False)
    status: Status = "planned" if consented else "skipped"
    reason = None if consented else "no_consent"
    return [
        Delivery(channel=channel, kind=kind, to=to, url=url, status=status, reason=reason, **common)
        for to, url in addresses
    ]


def customer_addresses(
    contact: ContactState, kind: str
) -> tuple[list[tuple[str, str | None]], str | None]:
    """The contact's (to, url) pairs on a channel of this kind, or the reason there are none."""
    if kind == "email":
        if contact.email_invalid:
            return [], "invalid_address"
        return ([(contact.email, None)], None) if contact.email else ([], "no_address")
    if kind == "phone":
        if contact.phone_invalid:
            return [], "invalid_address"
        return ([(contact.phone, None)], None) if contact.phone else ([], "no_address")
    if kind == "url":
        devices: list[tuple[str, str | None]] = [(name, url) for name, url in contact.devices]
        return (devices, None) if devices else ([], "no_address")
    return [], "no_address"


def as_row(
    d: Delivery, now: float, run_id: int | None = None, step: int | None = None
) -> NewDelivery:
    """A planned or skipped delivery as the store keeps it: planned ones are due now."""
    pending = d.status == "planned"
    due = (d.due_at.timestamp() if d.due_at is not None else now) if pending else None
    return NewDelivery(
        recipient=d.recipient,
        channel=d.channel,
        kind=d.kind,
        to=d.to,
        template=d.template,
        status="pending" if pending else "skipped",
        reason=d.reason,
        target=d.target,
        url=d.url,
        locale=d.locale,
        timezone=d.timezone,
        source=d.source,
        due_at=due,
        detail=d.detail,
        run_id=run_id,
        step=step,
        fallback=d.fallback,
    )
