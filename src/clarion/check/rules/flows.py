"""Flows: steps in an order that can run, waits whose times parse, runs that can be matched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from clarion.check.context import CheckContext
from clarion.check.models import EmitStep, Flow, SendStep, WaitStep
from clarion.check.timing import DURATION_HINT, parse_duration, parse_offset, parse_time_of_day
from clarion.diagnostics import Diagnostic
from clarion.load import YamlPath

FIELD = re.compile(r"^\s*data((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*$")


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    for name, flow in ctx.config.flows.items():
        base: YamlPath = ("flows", name)
        if flow.cancel_on and flow.key is None:
            yield ctx.error(
                "CL508",
                f"flow {name!r} has `cancel_on` but no `key` to find the run to cancel",
                (*base, "cancel_on"),
                hint='add key: "{{ data.subscription_id }}" (whatever names one run)',
            )
        if not any(isinstance(step, SendStep) for step in flow.steps):
            yield ctx.error(
                "CL507",
                f"flow {name!r} never sends anything",
                (*base, "steps"),
                hint="add a `send` step",
            )
        sent = False
        for index, step in enumerate(flow.steps):
            path: YamlPath = (*base, "steps", index)
            if isinstance(step, SendStep):
                sent = True
            elif isinstance(step, EmitStep):
                yield from _emit(ctx, flow, step, (*path, "emit"), sent)
            elif isinstance(step, WaitStep):
                yield from _wait(ctx, flow, step, (*path, "wait"))


def _emit(
    ctx: CheckContext, flow: Flow, step: EmitStep, path: YamlPath, sent: bool
) -> Iterator[Diagnostic]:
    if step.emit not in ctx.config.events:
        yield ctx.unknown_event(step.emit, path)
    elif step.emit == flow.on:
        yield ctx.error(
            "CL507",
            f"the flow emits {step.emit!r}, the event that starts it: it would never end",
            path,
        )
    if not sent:
        yield ctx.error(
            "CL507",
            "`emit` must follow a `send`: it fires once the send before it succeeded",
            path,
        )


def _wait(ctx: CheckContext, flow: Flow, step: WaitStep, path: YamlPath) -> Iterator[Diagnostic]:
    wait = step.wait
    if (wait.for_ is None) == (wait.until is None):
        yield ctx.error(
            "CL507",
            "a wait takes either `for` (a duration) or `until` (a moment), not "
            + ("both" if wait.for_ is not None else "neither"),
            path,
            hint="wait: {for: 3d}  or  wait: {until: data.due_date, offset: -2d, at: '09:00'}",
        )
    if wait.for_ is not None and parse_duration(wait.for_) is None:
        yield ctx.error(
            "CL501", f"{wait.for_!r} is not a duration", (*path, "for"), hint=DURATION_HINT
        )
    if wait.until is None:
        for key, value in (("offset", wait.offset), ("at", wait.at)):
            if value is not None:
                yield ctx.error("CL507", f"`{key}` only goes with `until`", (*path, key))
    if wait.offset is not None and parse_offset(wait.offset) is None:
        yield ctx.error(
            "CL501",
            f"{wait.offset!r} is not an offset",
            (*path, "offset"),
            hint="a signed duration: -2d is two days before, 1h after",
        )
    if wait.at is not None and parse_time_of_day(wait.at) is None:
        yield ctx.error(
            "CL502",
            f"{wait.at!r} is not a time of day",
            (*path, "at"),
            hint="write 24-hour HH:MM in quotes, e.g. at: '09:00'",
        )
    if wait.until is not None:
        yield from _until_field(ctx, flow, wait.until, (*path, "until"))


def _until_field(ctx: CheckContext, flow: Flow, until: str, path: YamlPath) -> Iterator[Diagnostic]:
    match = FIELD.match(until)
    event = ctx.config.events.get(flow.on)
    if not match or event is None:
        return
    keys = match.group(1).lstrip(".").split(".")
    properties = event.data.get("properties")
    if isinstance(properties, dict) and keys[0] not in properties:
        yield ctx.error(
            "CL509",
            f"{until.strip()!r} is not a field of event {flow.on!r}",
            path,
            hint="fields: " + ", ".join(sorted(properties)) if properties else None,
        )
        return
    value: Any = event.example
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return  # optional field absent from the example: nothing to check
        value = value[key]
    if not _is_moment(value):
        yield ctx.error(
            "CL509",
            f"{until.strip()!r} is {value!r} in the example of {flow.on!r}, not a date",
            path,
            hint="the field must hold an ISO 8601 date (2026-03-10) or date-time",
        )


def _is_moment(value: Any) -> bool:
    if isinstance(value, date | datetime):
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
