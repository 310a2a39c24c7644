"""Accepting an event: validate it, then in one store transaction keep it, its contact and every
delivery planned for it. The same id again gives the first answer and plans nothing twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clarion.check.addresses import AddressError, normalize_email, normalize_phone
from clarion.runtime import flows, pacing, quiet
from clarion.runtime.envelope import EventIn, Rejection, parse_event, pointer
from clarion.runtime.planner import ContactState, as_row, plan, template_context
from clarion.runtime.store.base import ConsentChange, ContactRow, Tx
from clarion.runtime.tableindex import TableIndex


@dataclass(frozen=True)
class Checked:
    """An event that passed every check that needs no store."""

    event: EventIn
    envelope: str  # canonical JSON of the event as given
    body_hash: str
    given: dict[str, Any]


def check_event(
    table: TableIndex, raw: Any, *, batch: bool = False, prefix: tuple[Any, ...] = ()
) -> Checked:
    """Envelope, type, data schema, batch permission: a Rejection with a JSON pointer, or ok."""
    event = parse_event(raw, prefix)
    spec = table.table.events.get(event.type)
    if spec is None:
        from clarion.diagnostics import did_you_mean

        hint = did_you_mean(event.type, table.table.events)
        raise Rejection(
            "unknown_event_type",
            f"unknown event type {event.type!r}" + (f"; {hint}" if hint else ""),
            details=[{"pointer": pointer((*prefix, "type")), "message": "not in the catalogue"}],
        )
    if batch and not spec.batch:
        raise Rejection(
            "batch_not_allowed",
            f"events of type {event.type!r} are accepted one at a time, not in a batch",
            details=[{"pointer": pointer((*prefix, "type")), "message": "batch: false"}],
        )
    errors = []
    if not table.data_is_valid(event.type, event.data):
        found = table.validator(event.type).iter_errors(event.data)
        errors = sorted(found, key=lambda e: list(e.path))
    if errors:
        details = [
            {"pointer": pointer((*prefix, "data", *e.absolute_path)), "message": e.message}
            for e in errors
        ]
        raise Rejection(
            "invalid_data",
            f"{details[0]['pointer']}: {details[0]['message']}",
            details=details,
        )
    if event.contact is not None and event.contact.consent:
        unknown = [c for c in event.contact.consent if c not in table.table.channels]
        if unknown:
            raise Rejection(
                "invalid_event",
                f"unknown channel {unknown[0]!r} in contact.consent",
                details=[
                    {
                        "pointer": pointer((*prefix, "contact", "consent", c)),
                        "message": "unknown channel",
                    }
                    for c in unknown
                ],
            )
    try:
        given = event.model_dump(mode="json", exclude_none=True, by_alias=True)
        text = json.dumps(given, sort_keys=True, separators=(",", ":"))
        encoded = text.encode()
    except (UnicodeEncodeError, ValueError):
        # JSON may escape half of a UTF-16 pair ("\ud800"); no store or template can keep it.
        raise Rejection(
            "invalid_event",
            "the event holds a lone UTF-16 surrogate (an escape like \\ud800), which is not text",
            details=[{"pointer": pointer(prefix), "message": "not valid Unicode"}],
        ) from None
    return Checked(event, text, hashlib.sha256(encoded).hexdigest(), given)


def accept(tx: Tx, table: TableIndex, checked: Checked, now: float) -> tuple[int, dict[str, Any]]:
    """Inside a store transaction: (HTTP status, answer). Raises Rejection (rolled back)."""
    event = checked.event
    envelope = checked.envelope
    if event.occurred_at is None:
        # Templates and schedules need a moment; an event without one happened when it came in.
        moment = _datetime(now)
        event = event.model_copy(update={"occurred_at": moment})
        # The envelope is canonical (sorted keys) and "type", its last key, is a string: the
        # moment goes in just before it, without encoding the event again.
        cut = envelope.rfind(',"type":')
        stamp = moment.isoformat().replace("+00:00", "Z")
        envelope = f'{envelope[:cut]},"occurred_at":"{stamp}"{envelope[cut:]}'
    earlier = tx.event_answer(event.id)
    if earlier is not None:
        body_hash, answer = earlier
        if body_hash != checked.body_hash:
            raise Rejection(
                "idempotency_conflict",
                f"event {event.id!r} was accepted before with a different body",
                status=409,
            )
        return 200, answer
    contact = _contact(tx, table, event, now) if event.contact is not None else None
    deliveries = plan(table, event, contact, _datetime(now))
    answer = {"id": event.id, "status": "accepted"}
    tx.insert_event(
        event.id,
        event.type,
        checked.body_hash,
        envelope,
        contact.id if contact else None,
        table.digest,
        now,
        answer,
    )
    rows = [as_row(d, now) for d in deliveries]
    rows = pacing.apply(
        tx, table, event, rows, lambda: template_context(event, table, contact), now
    )
    tx.insert_deliveries(event.id, event.type, rows, now)
    flows.on_event(tx, table, event, contact, now, accept_raw)
    return 202, answer


def accept_raw(
    tx: Tx, table: TableIndex, raw: dict[str, Any], now: float
) -> tuple[int, dict[str, Any]]:
    """check_event then accept: how a flow's `emit` hands its event to ingest."""
    return accept(tx, table, check_event(table, raw), now)


def _datetime(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def _normalized(value: str | None, kind: str, region: str | None) -> tuple[str | None, bool]:
    """(normalised value, invalid?) of a contact's email or phone."""
    if not value:
        return None, False
    try:
        if kind == "email":
            return normalize_email(value), False  # domain lower-cased (scenarios.md)
        return normalize_phone(value, region), False
    except AddressError:
        return None, True


def _contact(tx: Tx, table: TableIndex, event: EventIn, now: float) -> ContactState:
    assert event.contact is not None
    row, changes, state = merge_contact(table, event, tx.contact(event.contact.id), now)
    for field, value in (("email", row.email_norm), ("phone", row.phone_norm)):
        if field in table.table.unique_contact_fields and value is not None:
            owner = tx.contact_by(field, value)
            if owner is not None and owner != row.id:
                raise Rejection(
                    "duplicate_contact",
                    f"the {field} of contact {row.id!r} belongs to another contact",
                    status=409,
                    details=[{"pointer": pointer(("contact", field)), "message": "already taken"}],
                )
    tx.save_contact(row, changes)
    return state


def merge_contact(
    table: TableIndex, event: EventIn, stored: ContactRow | None, now: float
) -> tuple[ContactRow, list[ConsentChange], ContactState]:
    """The contact once this event's fields and consent changes apply to what is stored."""
    given = event.contact
    assert given is not None
    t = table.table
    email = given.email if given.email is not None else (stored.email if stored else None)
    phone = given.phone if given.phone is not None else (stored.phone if stored else None)
    email_norm, email_bad = _normalized(email, "email", t.defaults.phone_region)
    phone_norm, phone_bad = _normalized(phone, "phone", t.defaults.phone_region)
    changes: list[ConsentChange] = []
    consent = dict(stored.consent) if stored else {}
    if stored is None:
        # First sight: consent as the defaults say *now*; later changes to the defaults do not
        # reach existing customers (seed 004).
        for channel, granted in sorted(t.consent_default.items()):
            consent[channel] = granted
            changes.append(ConsentChange(channel, granted, now, "default"))
    for channel, granted in sorted((given.consent or {}).items()):
        if consent.get(channel) != granted:
            consent[channel] = granted
            changes.append(ConsentChange(channel, granted, now, f"event:{event.id}"))
    devices: Sequence[tuple[str, str]] = (
        tuple((d.device, d.url) for d in given.devices)
        if given.devices is not None
        else (stored.devices if stored else ())
    )

    def keep(new: str | None, old: str | None) -> str | None:
        return new if new is not None else old

    row = ContactRow(
        id=given.id,
        email=email,
        phone=phone,
        # compared case-insensitively for uniqueness: Ana@x.com and ana@x.com are one person
        email_norm=email_norm.lower() if email_norm else None,
        phone_norm=phone_norm,
        name=keep(given.name, stored.name if stored else None),
        locale=keep(given.locale, stored.locale if stored else None),
        timezone=keep(given.timezone, stored.timezone if stored else None),
        devices=tuple(devices),
        consent=consent,
        created_at=stored.created_at if stored else now,
        updated_at=now,
        quiet_hours=keep(
            quiet.stored_form(given.quiet_hours), stored.quiet_hours if stored else None
        ),
    )
    state = ContactState(
        id=row.id,
        email=email_norm,
        phone=phone_norm,
        email_invalid=email_bad,
        phone_invalid=phone_bad,
        devices=row.devices,
        consent=consent,
        locale=row.locale,
        timezone=row.timezone,
        name=row.name,
        quiet_hours=row.quiet_hours,
    )
    return row, changes, state
