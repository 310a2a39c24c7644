"""Warnings: critical events on too few channels, recipients who hear nothing."""

from __future__ import annotations

from collections.abc import Iterator

from clarion.check.context import CheckContext
from clarion.check.models import SendStep
from clarion.diagnostics import Diagnostic


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    for name, event in ctx.config.events.items():
        if not event.critical:
            continue
        channels = sorted(ctx.team_reach.get(name, set()))
        if len(channels) < 2:
            reach = f"only {channels[0]!r}" if channels else "no channel at all"
            yield ctx.warn(
                "CL901",
                f"critical event {name!r} reaches the team on {reach}",
                ("events", name, "critical"),
                hint="time-sensitive events should reach people on two channels or more "
                "(e.g. email and push)",
            )
    routed = {who for route in ctx.config.routes for who in route.to}
    for flow in ctx.config.flows.values():
        for step in flow.steps:
            if isinstance(step, SendStep) and isinstance(step.send.to, list):
                routed.update(step.send.to)
    for name, person in ctx.config.recipients.items():
        entries = [e for group in person.addresses().values() for e in group]
        if name in routed or not entries:
            continue
        if all(not e.enabled or not ctx.expand(e.events) for e in entries):
            yield ctx.warn(
                "CL902",
                f"recipient {name!r} gets nothing: every address is off",
                ("recipients", name),
                hint="switch an address on, or remove the recipient",
            )
