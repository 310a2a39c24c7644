"""Flows: runs that start on an event, wait, send, emit, and can be replaced or canceled.

A run is one row in the store with the index of its next step and when that step is due; the
scheduler claims due runs and advances them, inside a store transaction, until the next wait.
Everything a run will not send is recorded as skipped, with why (`replaced`, `canceled`,
`late`, `condition_false`), so that a scenario or a person can ask.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError

from clarion.check.addresses import AddressError, normalize_email
from clarion.check.rendering import render
from clarion.check.timing import zone
from clarion.compile.table import Flow, Send
from clarion.runtime import pacing_flows, quiet
from clarion.runtime.envelope import EventIn, Rejection
from clarion.runtime.planner import (
    ContactState,
    Delivery,
    Status,
    as_row,
    condition,
    evaluate,
    template_context,
    to_contact,
)
from clarion.runtime.schedule import ScheduleError, wait_for, wait_until
from clarion.runtime.store.base import ContactRow, NewDelivery, RunRow, Tx
from clarion.runtime.tableindex import TableIndex

# How an emitted event is accepted (ingest.accept_raw): handed in, so that flows need not import
# ingest, which starts flows. Raises Rejection when the event is refused.
Accept = Callable[[Tx, TableIndex, dict[str, Any], float], tuple[int, dict[str, Any]]]


def on_event(
    tx: Tx,
    table: TableIndex,
    event: EventIn,
    contact: ContactState | None,
    now: float,
    accept: Accept,
) -> None:
    """Cancel the runs this event cancels, then start the runs it starts."""
    if event.type not in table.flow_events:
        return
    context = template_context(event, table, contact)
    for name, flow in sorted(table.table.flows.items()):
        if event.type in flow.cancel_on and flow.key:
            key = _key(flow, context)
            for run in tx.active_runs(name, key):
                _end(tx, table, run, "canceled", f"by {event.type} {event.id}", now)
    for name, flow in sorted(table.table.flows.items()):
        if flow.on != event.type:
            continue
        reason = _start_refused(flow, context)
        if reason is not None:
            # A newer event for the same key stands for the pending run even when it starts
            # nothing: "paused through the due date" must drop the reminder already scheduled.
            key = _key(flow, context) if flow.key else None
            if key is not None:
                for run in tx.active_runs(name, key):
                    _end(
                        tx,
                        table,
                        run,
                        "replaced",
                        f"by {event.id}: {reason}",
                        now,
                        skip_reason="condition_false",
                    )
            _skip_sends(
                tx,
                table,
                flow,
                event.id,
                event.type,
                contact,
                0,
                "condition_false",
                now,
                detail=reason,
                run_id=None,
            )
            continue
        key = _key(flow, context) if flow.key else None
        if key is not None:
            for run in tx.active_runs(name, key):
                _end(tx, table, run, "replaced", f"by {event.id}", now)
        run_id = tx.insert_run(name, key, event.id, contact.id if contact else None, now)
        started = tx.run(run_id)
        assert started is not None
        advance(tx, table, started, now, accept, known=(event, contact))


def advance(
    tx: Tx,
    table: TableIndex,
    run: RunRow,
    now: float,
    accept: Accept,
    known: tuple[EventIn, ContactState | None] | None = None,
) -> None:
    """Take the run's steps from its current one until a wait, a pending send, or the end.
    `known`: the event and contact, when the caller has them already (a run just started)."""
    flow = table.table.flows.get(run.flow)
    if known is None:
        envelope = tx.envelope(run.event_id)
        if flow is None or envelope is None:
            reason = "the flow is gone from the table" if flow is None else "its event is gone"
            tx.update_run(run.id, "failed", run.step, None, reason, now)
            return
        event = EventIn.model_validate(json.loads(envelope))
        contact = _contact(tx, table, run.contact_id)
    else:
        event, contact = known
    if flow is None:
        tx.update_run(run.id, "failed", run.step, None, "the flow is gone from the table", now)
        return
    context = template_context(event, table, contact)
    step = run.step
    if run.due_at is not None and step > 0 and _is_wait(flow, step - 1):
        late = now - run.due_at
        if late > table.table.defaults.catch_up_seconds:
            window = table.table.defaults.catch_up_seconds
            detail = f"due {_iso(run.due_at)}, {int(late)} s late (catch-up window {window} s)"
            _stop(tx, table, flow, event, contact, run, step, "late", "late", detail, now, step)
            return
    # A run resuming after its `digest` step sends once for every run folded into it.
    digest_id = pacing_flows.resume(tx, flow, run, step, event.id, now)
    while step < len(flow.steps):
        spec = flow.steps[step]
        if spec.send is not None:
            read_at = tx.run_read_at(run.id) if spec.send.unless == "read" else None
            planned = plan_send(table, spec.send, contact, event.type)
            if read_at is not None:
                note = f"an in-app item this run sent was read at {_iso(read_at)}"
                planned = [_skipped(d, "read", note) for d in planned if d.reason != "fallback"]
            else:
                planned = quiet.hold(table, planned, event.type, contact, _moment(now))
            rows = [as_row(d, now, run.id, step) for d in planned]
            rows = pacing_flows.paced_send(tx, spec.send, run, step, context, rows, digest_id, now)
            tx.insert_deliveries(event.id, event.type, rows, now)
            step += 1
            continue
        if spec.digest is not None:
            folded = pacing_flows.collect(tx, spec.digest, run, step, event.id, context, now)
            if folded.opened:
                tx.update_run(run.id, "active", step + 1, folded.due_at, None, now)
            else:
                detail = f"folded into the digest {folded.digest_id} of an earlier run"
                _stop(
                    tx,
                    table,
                    flow,
                    event,
                    contact,
                    run,
                    step + 1,
                    "digested",
                    "done",
                    detail,
                    now,
                    step,
                    folded.digest_id,
                )
            return
        if spec.emit is not None:
            statuses = tx.step_statuses(run.id, step - 1)
            if any(s in ("pending", "sending", "failed") for s in statuses):
                tx.update_run(run.id, "active", step, None, "waiting for the send to finish", now)
                return
            if "sent" not in statuses:
                tx.update_run(run.id, "done", step, None, "nothing was sent: not emitted", now)
                return
            if not _emit(tx, table, run, event, spec.emit, step, now, accept):
                return
            step += 1
            continue
        wait = spec.wait
        assert wait is not None
        try:
            if wait.kind == "for":
                due = wait_for(_moment(now), wait.seconds or 0)
            else:
                name = (contact.timezone if contact else None) or table.table.defaults.timezone
                tz = zone(name) or zone(table.table.defaults.timezone) or ZoneInfo("UTC")
                value = evaluate(wait.until or "", context)
                due = wait_until(value, wait.offset_seconds, wait.at, tz)
        except (ScheduleError, TemplateError, TypeError, ValueError) as exc:
            detail = f"wait {step + 1}: {exc}"
            _stop(
                tx,
                table,
                flow,
                event,
                contact,
                run,
                step + 1,
                "condition_false",
                "failed",
                detail,
                now,
                step,
            )
            return
        if due.timestamp() < now and wait.kind == "until" and wait.late == "skip":
            detail = f"its moment {due.isoformat()} had passed when planned"
            _stop(tx, table, flow, event, contact, run, step + 1, "late", "late", detail, now, step)
            return
        tx.update_run(run.id, "active", step + 1, max(due.timestamp(), now), None, now)
        return
    tx.update_run(run.id, "done", step, None, None, now)


def _stop(
    tx: Tx,
    table: TableIndex,
    flow: Flow,
    event: EventIn,
    contact: ContactState | None,
    run: RunRow,
    from_step: int,
    reason: str,
    status: str,
    detail: str,
    now: float,
    at_step: int,
    digest_id: int | None = None,
) -> None:
    """End a run early at `at_step`: its sends from `from_step` are skipped with `reason`
    (`digested`: into the digest `digest_id`)."""
    _skip_sends(
        tx,
        table,
        flow,
        event.id,
        event.type,
        contact,
        from_step,
        reason,
        now,
        detail=detail,
        run_id=run.id,
        digest_id=digest_id,
    )
    tx.update_run(run.id, status, at_step, None, detail, now)


def plan_send(
    table: TableIndex, send: Send, contact: ContactState | None, event_type: str
) -> list[Delivery]:
    """The deliveries of a flow's `send` step: to the contact, or to team recipients."""
    t = table.table
    out: list[Delivery] = []
    if send.to == "contact":
        return to_contact(table, contact, send.channels, send.template, "flow", send.fallback)
    for name in send.to:
        recipient = t.recipients.get(name)
        for target in table.targets_by_recipient.get(name, []):
            if target.channel not in send.channels:
                continue
            status: Status = "planned" if target.enabled else "skipped"
            reason = None
            if not target.enabled:
                reason = "device_disabled" if target.kind == "url" else "event_disabled"
            address: str | None = (
                target.device
                if target.kind == "url"
                else (target.recipient if target.kind == "inbox" else target.address)
            )
            out.append(
                Delivery(
                    recipient=name,
                    channel=target.channel,
                    kind=target.kind,
                    to=address,
                    template=send.template,
                    status=status,
                    reason=reason,
                    target=target.id,
                    url=target.url,
                    locale=(recipient.locale if recipient else None) or t.defaults.locale,
                    timezone=(recipient.timezone if recipient else None) or t.defaults.timezone,
                    source="flow",
                )
            )
    return out


def _skipped(d: Delivery, reason: str, detail: str) -> Delivery:
    if d.status == "skipped":
        return d
    return replace(d, status="skipped", reason=reason, detail=detail, fallback=())


def _start_refused(flow: Flow, context: dict[str, Any]) -> str | None:
    if flow.when is not None:
        value, problem = condition(flow.when, context)
        if not value:
            return problem or f"when: {flow.when} is false"
    if flow.unless is not None:
        value, problem = condition(flow.unless, context)
        if value:
            return f"unless: {flow.unless} is true"
    return None


def _key(flow: Flow, context: dict[str, Any]) -> str | None:
    if not flow.key:
        return None
    try:
        return render(flow.key, context, locale="en", timezone_name="UTC").body.strip()
    except TemplateError:
        return None


def _end(
    tx: Tx,
    table: TableIndex,
    run: RunRow,
    status: str,
    detail: str,
    now: float,
    skip_reason: str | None = None,
) -> None:
    flow = table.table.flows.get(run.flow)
    envelope = tx.envelope(run.event_id)
    if flow is not None and envelope is not None:
        event = EventIn.model_validate(json.loads(envelope))
        contact = _contact(tx, table, run.contact_id)
        _skip_sends(
            tx,
            table,
            flow,
            event.id,
            event.type,
            contact,
            run.step,
            skip_reason or status,
            now,
            detail=detail,
            run_id=run.id,
        )
        # A run waiting out its digest's window: later runs start a new digest, not this one.
        pacing_flows.resume(tx, flow, run, run.step, run.event_id, now)
    tx.update_run(run.id, status, run.step, None, detail, now)


def _skip_sends(
    tx: Tx,
    table: TableIndex,
    flow: Flow,
    event_id: str,
    event_type: str,
    contact: ContactState | None,
    from_step: int,
    reason: str,
    now: float,
    *,
    detail: str | None,
    run_id: int | None,
    digest_id: int | None = None,
) -> None:
    """Record, as skipped with `reason`, every delivery the run's remaining sends would make."""
    rows: list[NewDelivery] = []
    for index in range(from_step, len(flow.steps)):
        send = flow.steps[index].send
        if send is None:
            continue
        for d in plan_send(table, send, contact, event_type):
            if d.reason == "fallback":
                continue  # it would only have replaced a channel that is skipped as well
            rows.append(
                NewDelivery(
                    recipient=d.recipient,
                    channel=d.channel,
                    kind=d.kind,
                    to=d.to,
                    template=d.template,
                    status="skipped",
                    reason=reason,
                    target=d.target,
                    url=d.url,
                    locale=d.locale,
                    timezone=d.timezone,
                    source="flow",
                    due_at=None,
                    detail=detail,
                    run_id=run_id,
                    step=index,
                    digest_id=digest_id,
                )
            )
    if rows:
        tx.insert_deliveries(event_id, event_type, rows, now)


def _emit(
    tx: Tx,
    table: TableIndex,
    run: RunRow,
    event: EventIn,
    event_type: str,
    step: int,
    now: float,
    accept: Accept,
) -> bool:
    """Accept the emitted event in this same transaction; False when it is refused."""
    raw: dict[str, Any] = {
        "type": event_type,
        "id": f"{event.id}/{run.flow}/{step + 1}",
        "data": event.data,
        "occurred_at": _moment(now).isoformat(),
    }
    if event.contact is not None:
        raw["contact"] = event.contact.model_dump(
            mode="json", exclude_none=True, by_alias=True, exclude={"consent"}
        )
    try:
        accept(tx, table, raw, now)
    except Rejection as rejection:
        tx.update_run(run.id, "failed", step, None, f"emit {event_type}: {rejection.message}", now)
        return False
    return True


def _contact(tx: Tx, table: TableIndex, contact_id: str | None) -> ContactState | None:
    if contact_id is None:
        return None
    row = tx.contact(contact_id)
    return state_of(row) if row else None


def state_of(row: ContactRow) -> ContactState:
    email = None
    if row.email and row.email_norm:
        try:
            email = normalize_email(row.email)
        except AddressError:
            email = None
    return ContactState(
        id=row.id,
        email=email,
        phone=row.phone_norm,
        email_invalid=bool(row.email) and row.email_norm is None,
        phone_invalid=bool(row.phone) and row.phone_norm is None,
        devices=row.devices,
        consent=row.consent,
        locale=row.locale,
        timezone=row.timezone,
        name=row.name,
        quiet_hours=row.quiet_hours,
    )


def _is_wait(flow: Flow, index: int) -> bool:
    return 0 <= index < len(flow.steps) and flow.steps[index].wait is not None


def _moment(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def _iso(moment: float) -> str:
    return _moment(moment).isoformat()
