"""Quiet hours: a delivery planned inside its reader's window waits for the window to end.

The window is the address's own (`quiet_hours` on a recipient entry), the contact's own (their
`quiet_hours` in an event), else `defaults.quiet_hours`; `false` (stored `off`) means none. It is
read on the reader's wall clock, in their time zone, so "21:00 to 08:00" stays 08:00 local across
a daylight-saving change. A held delivery stays planned (status `scheduled` in the API), with the
reason `quiet_hours` and a detail saying until when; it is never a skip. Not held: deliveries of a
`critical` event, and the in-app inbox (it makes no sound).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from clarion.check.timing import zone
from clarion.compile.table import QuietHours
from clarion.runtime.envelope import QuietHoursIn
from clarion.runtime.schedule import local
from clarion.runtime.tableindex import TableIndex

if TYPE_CHECKING:  # the planner calls `hold`
    from clarion.runtime.planner import ContactState, Delivery

REASON = "quiet_hours"
Window = QuietHours | Literal["off"] | None


def stored_form(given: QuietHoursIn | Literal[False] | None) -> str | None:
    """How a contact's quiet hours from an event are kept: JSON, `off`, or None (not given)."""
    if given is None:
        return None
    if given is False:
        return "off"
    return json.dumps({"from": given.from_, "to": given.to}, sort_keys=True)


def shown(stored: str | None) -> dict[str, str] | Literal[False] | None:
    """A contact's own quiet hours as the API shows them: `{from, to}`, false, or null."""
    window = contact_window(stored)
    if window is None:
        return None
    if window == "off":
        return False
    return {"from": window.start, "to": window.end}


@functools.lru_cache(maxsize=1024)
def contact_window(stored: str | None) -> Window:
    if stored is None:
        return None
    if stored == "off":
        return "off"
    try:
        value = json.loads(stored)
        return QuietHours(start=value["from"], end=value["to"])
    except (ValueError, KeyError, TypeError):
        return None


@functools.lru_cache(maxsize=8)
def _in_use(table: TableIndex) -> bool:
    """Does anything in the table have quiet hours? (TableIndex hashes by identity.)"""
    t = table.table
    return t.defaults.quiet_hours is not None or any(
        isinstance(target.quiet_hours, QuietHours) for target in t.targets
    )


def window_of(
    table: TableIndex, delivery: Delivery, contact: ContactState | None
) -> QuietHours | None:
    """The quiet hours that apply to one delivery, or None."""
    if delivery.kind == "inbox":
        return None
    own: Window = None
    if delivery.recipient.startswith("contact"):
        own = contact_window(contact.quiet_hours if contact else None)
    elif delivery.target is not None:
        for target in table.targets_by_recipient.get(delivery.recipient, []):
            if target.id == delivery.target:
                own = target.quiet_hours
                break
    if own == "off":
        return None
    return own or table.table.defaults.quiet_hours


def window_end(window: QuietHours, moment: datetime, tz: ZoneInfo) -> datetime | None:
    """When the window `moment` falls in ends (UTC), or None when `moment` is outside it."""
    here = moment.astimezone(tz)
    clock = here.time().replace(tzinfo=None)
    start, end = time.fromisoformat(window.start), time.fromisoformat(window.end)
    day = here.date()
    if start < end:
        inside = start <= clock < end
    else:  # across midnight: 21:00 to 08:00
        inside = clock >= start or clock < end
        if clock >= start:
            day += timedelta(days=1)
    if not inside:
        return None
    return local(day, end, tz).astimezone(UTC)


def hold(
    table: TableIndex,
    deliveries: list[Delivery],
    event_type: str,
    contact: ContactState | None,
    now: datetime,
) -> list[Delivery]:
    """The deliveries, those planned inside their quiet hours moved to the window's end."""
    if not deliveries:
        return deliveries
    if not _in_use(table) and (contact is None or contact.quiet_hours is None):
        return deliveries
    spec = table.table.events.get(event_type)
    if spec is not None and spec.critical:
        return deliveries
    out: list[Delivery] = []
    for d in deliveries:
        window = window_of(table, d, contact) if d.status == "planned" else None
        if window is None:
            out.append(d)
            continue
        name = d.timezone if zone(d.timezone) else table.table.defaults.timezone
        tz = zone(name) or ZoneInfo("UTC")
        until = window_end(window, d.due_at or now, tz)
        if until is None:
            out.append(d)
            continue
        shown = until.astimezone(tz).isoformat()
        detail = f"quiet hours {window.start}-{window.end} ({name}): held until {shown}"
        if d.detail:  # e.g. which channel this one replaces
            detail = f"{d.detail}; {detail}"
        out.append(dataclasses.replace(d, due_at=until, reason=REASON, detail=detail))
    return out
