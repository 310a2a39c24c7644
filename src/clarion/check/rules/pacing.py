"""Quiet hours, channel fallback, provider failover and escalation (`unless: read`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from clarion.check.context import CheckContext
from clarion.check.models import QuietHours, SendSpec, SendStep
from clarion.check.rules.references import customer_channel
from clarion.check.timing import parse_time_of_day
from clarion.diagnostics import Diagnostic, did_you_mean
from clarion.load import YamlPath

UNLESS_VALUES = ("read",)


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    if config.defaults.quiet_hours is not None:
        yield from quiet_hours(ctx, config.defaults.quiet_hours, ("defaults", "quiet_hours"))
    for item in ctx.entries:
        if isinstance(item.entry.quiet_hours, QuietHours):
            yield from quiet_hours(ctx, item.entry.quiet_hours, (*item.path, "quiet_hours"))
    for name, channel in config.channels.items():
        if isinstance(channel.apprise, list):
            seen: dict[str, int] = {}
            for index, url in enumerate(channel.apprise):
                if url in seen:
                    yield ctx.error(
                        "CL608",
                        f"channel {name!r}: provider {index + 1} is the same URL as provider "
                        f"{seen[url] + 1}",
                        ("channels", name, "apprise", index),
                        hint="failover tries the next URL when one fails; a repeat adds nothing",
                        excerpt=False,
                    )
                seen.setdefault(url, index)
    for event, message in config.customer_messages.items():
        base: YamlPath = ("customer_messages", event)
        yield from fallback(ctx, message.channels, message.fallback, (*base, "fallback"))
    for name, flow in config.flows.items():
        inbox_before = False
        for index, step in enumerate(flow.steps):
            if not isinstance(step, SendStep):
                continue
            path: YamlPath = ("flows", name, "steps", index, "send")
            send = step.send
            if send.fallback and send.to != "contact":
                yield ctx.error(
                    "CL607",
                    "`fallback` goes with `to: contact`: team recipients choose their own channels",
                    (*path, "fallback"),
                    hint="remove `fallback`, or list every channel in `channels`",
                )
            elif send.fallback:
                yield from fallback(ctx, send.channels, send.fallback, (*path, "fallback"))
            if send.unless is not None:
                yield from _unless(ctx, name, send, inbox_before, (*path, "unless"))
            if _sends_to_inbox(ctx, send):
                inbox_before = True


def quiet_hours(ctx: CheckContext, window: QuietHours, path: YamlPath) -> Iterator[Diagnostic]:
    start, end = parse_time_of_day(window.from_), parse_time_of_day(window.to)
    for key, value, parsed in (("from", window.from_, start), ("to", window.to, end)):
        if parsed is None:
            yield ctx.error(
                "CL502",
                f"{value!r} is not a time of day",
                (*path, key),
                hint="write 24-hour HH:MM in quotes, e.g. from: '21:00'",
            )
    if start is not None and start == end:
        yield ctx.error(
            "CL510",
            f"quiet hours from {window.from_!r} to {window.to!r} are empty (or the whole day)",
            path,
            hint="give the window a length, e.g. {from: '21:00', to: '08:00'}; "
            "write quiet_hours: false on an address to have none",
        )


def fallback(
    ctx: CheckContext, channels: Sequence[str], chain: Sequence[str], path: YamlPath
) -> Iterator[Diagnostic]:
    seen: set[str] = set()
    for index, name in enumerate(chain):
        item: YamlPath = (*path, index)
        if name in channels:
            yield ctx.error(
                "CL607",
                f"fallback {name!r} is already one of the message's channels",
                item,
                hint="a fallback takes the place of a channel that failed; list it once",
            )
        elif name in seen:
            yield ctx.error("CL607", f"fallback {name!r} is listed twice", item)
        else:
            yield from customer_channel(ctx, name, item)
        seen.add(name)


def _sends_to_inbox(ctx: CheckContext, send: SendSpec) -> bool:
    return (
        any(
            (channel := ctx.config.channels.get(name)) is not None and channel.address == "inbox"
            for name in send.channels
        )
        and send.to != "contact"
    )


def _unless(
    ctx: CheckContext, flow: str, send: SendSpec, inbox_before: bool, path: YamlPath
) -> Iterator[Diagnostic]:
    if send.unless not in UNLESS_VALUES:
        yield ctx.error(
            "CL511",
            f"unknown `unless` {send.unless!r} on a send step",
            path,
            hint=did_you_mean(str(send.unless), UNLESS_VALUES)
            or "a send step knows `unless: read`; conditions on the event go on the flow's "
            "`when`/`unless`",
        )
    elif not inbox_before:
        yield ctx.error(
            "CL512",
            f"`unless: read` in flow {flow!r}, but no step before it sends to an in-app inbox",
            path,
            hint="send to team recipients on an inbox channel first, e.g. "
            "send: {to: [support], channels: [in_app]}",
        )
