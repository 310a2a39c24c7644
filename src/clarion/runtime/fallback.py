"""Channel fallback once a delivery is dead-lettered: the next channel of its `fallback` list
that the customer can be reached on takes its place, recorded with the reason `fallback` and a
detail saying which channel replaced which ("sms replaces whatsapp (dead)").

Fallback at planning time (no consent, no address) is the planner's (`planner.to_contact`); a
delivery carries the fallback channels it has left, so that what happens when it dies does not
depend on a table reloaded since."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from clarion.runtime import quiet
from clarion.runtime.flows import state_of
from clarion.runtime.planner import Delivery, as_row, on_channel
from clarion.runtime.store.base import ClaimedDelivery, NewDelivery, Tx
from clarion.runtime.tableindex import TableIndex

REASON = "fallback"


def after_dead(tx: Tx, table: TableIndex, dead: ClaimedDelivery, now: float) -> list[NewDelivery]:
    """Inside the transaction that records `dead` as dead: plan its replacement, if any."""
    if not dead.fallback or not dead.recipient.startswith("contact:"):
        return []
    # (On PostgreSQL reading the contact also takes its lock: two deaths of one message in two
    # sidecars at once are decided one after the other.)
    row = tx.contact(dead.recipient.removeprefix("contact:"))
    siblings = tx.message_deliveries(
        dead.event_id, dead.recipient, dead.source, dead.run_id, dead.step
    )
    if any(reason == REASON or " replaces " in (detail or "") for _, _, reason, detail in siblings):
        return []  # another delivery of this message has fallen back already
    if any(c == dead.channel and s not in ("dead", "skipped") for c, s, _, _ in siblings):
        return []  # another device or address of this channel reached them, or still may
    contact = state_of(row) if row else None
    common = {
        "recipient": dead.recipient,
        "template": dead.template,
        "locale": dead.locale,
        "timezone": dead.timezone,
        "source": dead.source,
    }
    spare = [c for c in dead.fallback if c in table.table.channels]
    why = "dead"
    out: list[Delivery] = []
    while spare:
        other = spare.pop(0)
        candidates = on_channel(table, contact, other, common)
        if any(d.status == "planned" for d in candidates):
            note = f"{other} replaces {dead.channel} ({why})"
            moment = datetime.fromtimestamp(now, UTC)
            replacing = [
                replace(d, reason=REASON, detail=note, fallback=tuple(spare))
                if d.status == "planned"
                else d
                for d in candidates
            ]
            out.extend(quiet.hold(table, replacing, dead.event_type, contact, moment))
            break
        out.extend(candidates)
        why += f"; {other}: {candidates[0].reason if candidates else 'no_address'}"
    rows = [as_row(d, now, dead.run_id, dead.step) for d in out]
    if rows:
        tx.insert_deliveries(dead.event_id, dead.event_type, rows, now)
    return rows
