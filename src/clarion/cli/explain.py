"""`clarion explain [DIR] --event FILE|-`: every candidate delivery of one event and its fate.

Runs the sidecar's own checks and planner on the compiled table, with the contact as the store
would see it the first time; nothing is stored or sent, and the web stack is never imported."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clarion.cli.options import EnvironmentProblem, config_dir, table_or_exit

if TYPE_CHECKING:  # the runtime is imported when the command runs, never by `validate`
    from clarion.runtime.planner import Delivery
    from clarion.runtime.tableindex import TableIndex

FORMATS = ("text", "json")

# The fixed vocabulary of scenarios.md, in a few words each.
REASONS: dict[str, str] = {
    "event_disabled": "this address or device does not want this event",
    "device_disabled": "the push device is disabled",
    "no_consent": "the customer has not consented to this channel",
    "message_disabled": "the customer message is switched off",
    "condition_false": "the route's or flow's condition is false",
    "late": "the moment had already passed when it was planned",
    "canceled": "the pending flow run was canceled",
    "replaced": "the pending flow run was replaced by a newer one",
    "no_address": "the customer has no address for this channel",
    "invalid_address": "the address cannot be normalised",
    "duplicate_contact": "the contact's phone or email belongs to another contact",
    "read": "an in-app item the flow run sent earlier was read: no escalation",
    "throttled": "over the throttle's limit for its key in this window",
    "digested": "folded into the address's digest message",
}


def parse_moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime:
    """ISO 8601; a time without an offset is UTC. No value: now."""
    if value is None:
        return datetime.now(UTC)
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except (ValueError, IndexError):
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-03-01T09:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@click.command("explain")
@config_dir
@click.option(
    "--event",
    "event_file",
    required=True,
    metavar="FILE|-",
    help="The event as JSON (same shape as POST /v1/events); - reads standard input.",
)
@click.option(
    "--at",
    "moment",
    metavar="TIME",
    callback=parse_moment,
    help="Plan as at this ISO 8601 time (default: now; no offset means UTC).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
def explain_command(directory: Path, event_file: str, moment: datetime, fmt: str) -> None:
    """Show who would get one event, on which channel, and why others would not.

    DIRECTORY is a config directory (default: the current one) or a compiled table file."""
    from clarion.runtime import pacing
    from clarion.runtime.envelope import Rejection
    from clarion.runtime.ingest import check_event, merge_contact
    from clarion.runtime.planner import plan, template_context

    table = _table(directory)
    raw = _read_event(event_file)
    try:
        event = check_event(table, raw).event
    except Rejection as rejection:
        click.echo(f"error[{rejection.code}] {rejection.message}", err=True)
        for detail in rejection.details:
            where = detail.get("pointer") or "/"
            click.echo(f"  at {where}: {detail.get('message', '')}", err=True)
        raise SystemExit(1) from None
    if event.occurred_at is None:
        # As the sidecar does: an event without a moment happened when it came in.
        event = event.model_copy(update={"occurred_at": moment})
    contact = None
    if event.contact is not None:
        _, _, contact = merge_contact(table, event, None, moment.timestamp())
    planned = plan(table, event, contact, moment)
    context = template_context(event, table, contact)
    planned = pacing.explain(table, event, planned, context, moment.timestamp())
    deliveries = planned + _flows(table, raw, moment)
    if fmt == "json":
        click.echo(_as_json(event.type, event.id, table.digest, moment, deliveries))
    else:
        click.echo(_as_text(event.type, event.id, table, deliveries))
    raise SystemExit(0)


def _flows(table: TableIndex, raw: Any, moment: datetime) -> list[Delivery]:
    """What the event does to flows, from the real flow engine on a throwaway store at `moment`:
    steps sent now, steps scheduled (with when), and sends skipped (late, condition_false...)."""
    if not isinstance(raw, dict) or raw.get("type") not in table.flow_events:
        return []
    from dataclasses import replace

    from clarion.runtime import Policy, Runtime, SQLiteStore, quiet
    from clarion.runtime.flows import plan_send, state_of
    from clarion.runtime.planner import Delivery

    store = SQLiteStore(None)
    runtime = Runtime(table, store, Policy(dry_run=True, workers=1), clock=moment.timestamp)
    try:
        runtime.ingest([raw])
        out: list[Delivery] = []
        for row in store.records():
            if row["source"] != "flow":
                continue
            out.append(
                Delivery(
                    recipient=row["recipient"],
                    channel=row["channel"],
                    kind="",
                    to=row["address"],
                    template=row["template"],
                    status="planned" if row["status"] != "skipped" else "skipped",
                    reason=row["reason"],
                    source="flow",
                    detail=row["detail"],
                    due_at=datetime.fromtimestamp(row["due_at"], UTC)
                    if row["status"] == "pending" and row["reason"] == "quiet_hours"
                    else None,
                )
            )
        for run in store.active_runs():
            flow = table.table.flows[run["flow"]]
            if run["due_at"] is None or run["step"] >= len(flow.steps):
                continue
            send = flow.steps[run["step"]].send
            if send is None:
                continue
            stored = store.contact(run["contact_id"]) if run["contact_id"] else None
            contact = state_of(stored[0]) if stored else None
            when = datetime.fromtimestamp(run["due_at"], UTC)
            planned = plan_send(table, send, contact, str(raw.get("type")))
            planned = quiet.hold(table, planned, str(raw.get("type")), contact, when)
            for d in planned:
                note = f"scheduled {_iso(d.due_at or when)} by flow {run['flow']}"
                if d.detail:
                    note += f"; {d.detail}"
                if send.unless == "read":
                    note += "; unless an in-app item this run sent is read by then"
                out.append(
                    replace(
                        d,
                        source=f"flow:{run['flow']}",
                        detail=note if d.status == "planned" else d.detail,
                        status=d.status,
                    )
                )
        return out
    finally:
        runtime.stop(timeout=5)


def _table(source: Path) -> TableIndex:
    from clarion.runtime.tableindex import TableIndex

    table, raw = table_or_exit(source)
    return TableIndex.from_table(table, raw)


def _read_event(name: str) -> Any:
    label = "standard input" if name == "-" else name
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise EnvironmentProblem(f"{label}: {exc.strerror or exc}") from None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        click.echo(f"error[invalid_json] {label}: not JSON: {message}", err=True)
        raise SystemExit(1) from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _as_json(
    event_type: str, event_id: str, table_digest: str, moment: datetime, deliveries: list[Delivery]
) -> str:
    return json.dumps(
        {
            "event": {"type": event_type, "id": event_id},
            "digest": table_digest,
            "at": _iso(moment),
            "deliveries": [
                {
                    "recipient": d.recipient,
                    "channel": d.channel,
                    "to": d.to,
                    "template": d.template,
                    "status": "scheduled" if _label(d) == "sched" else d.status,
                    "reason": d.reason,
                    "detail": _detail(d),
                    "source": d.source,
                }
                for d in deliveries
            ],
        },
        indent=2,
        ensure_ascii=False,
    )


def _label(d: Delivery) -> str:
    if d.status != "planned":
        return "skip"
    held = d.due_at is not None  # quiet hours
    return "sched" if d.source.startswith(("flow:", "digest:")) or held else "send"


def _detail(d: Delivery) -> str | None:
    """The record's detail, and the fallback channels that would take a planned one's place."""
    parts = [d.detail] if d.detail else []
    if d.status == "planned" and d.fallback:
        parts.append("if dead-lettered: " + ", then ".join(d.fallback))
    return "; ".join(parts) or None


def _why(d: Delivery) -> str:
    scheduled = d.source.startswith(("flow:", "digest:"))
    if d.status == "planned" and (scheduled or d.detail or d.fallback):
        parts = [_detail(d) or ""]
        if d.source.startswith("route:"):
            parts.insert(0, f"via route {d.source.removeprefix('route:')}")
        return "; ".join(parts)
    if d.status == "planned":
        via = (
            f"via route {d.source.removeprefix('route:')}" if d.source.startswith("route:") else ""
        )
        return "; ".join(part for part in (via, d.detail) if part)
    reason = d.reason or "skipped"
    text = f"{reason}: {REASONS.get(reason, 'skipped')}"
    return f"{text} ({d.detail})" if d.detail else text


def _as_text(event_type: str, event_id: str, table: TableIndex, deliveries: list[Delivery]) -> str:
    lines = [f"{event_type} {event_id} (table {table.digest})"]
    rows = [
        (
            _label(d),
            d.recipient,
            d.channel,
            d.to or "-",
            d.template or "-",
            _why(d),
        )
        for d in deliveries
    ]
    if rows:
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append(("  ".join([*cells, row[5]])).rstrip())
    else:
        lines.append("no candidate deliveries")
    for name, flow in sorted(table.table.flows.items()):
        if flow.on == event_type:
            lines.append(f"note: starts flow {name}")
        elif event_type in flow.cancel_on:
            lines.append(f"note: cancels pending runs of flow {name} with the same key")
    labels = [_label(d) for d in deliveries]
    scheduled = labels.count("sched")
    tail = f", {scheduled} scheduled" if scheduled else ""
    lines.append(f"{labels.count('send')} to send{tail}, {labels.count('skip')} skipped")
    return "\n".join(lines)
