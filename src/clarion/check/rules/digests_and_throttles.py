"""Digests and throttles: durations that parse, times with a zone to read them in, keys that name
something, limits that let at least one message through."""

from __future__ import annotations

from collections.abc import Generator, Iterator

from clarion.check.context import CheckContext
from clarion.check.models import DigestStep, SendStep, Throttle
from clarion.check.timing import DURATION_HINT, UNIT_SECONDS, parse_duration, parse_time_of_day
from clarion.diagnostics import Diagnostic
from clarion.load import YamlPath

DAY_SECONDS = UNIT_SECONDS["d"]
KEY_HINT = 'write a template string such as "{{ contact.id }}": its value names one counter'


def throttles(ctx: CheckContext) -> Iterator[tuple[Throttle, YamlPath]]:
    """Every `throttle` of the config with its path."""
    for index, route in enumerate(ctx.config.routes):
        if route.throttle is not None:
            yield route.throttle, ("routes", index, "throttle")
    for name, message in ctx.config.customer_messages.items():
        if message.throttle is not None:
            yield message.throttle, ("customer_messages", name, "throttle")
    for name, flow in ctx.config.flows.items():
        for index, step in enumerate(flow.steps):
            if isinstance(step, SendStep) and step.send.throttle is not None:
                yield step.send.throttle, ("flows", name, "steps", index, "send", "throttle")


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    path: YamlPath
    for throttle, path in throttles(ctx):
        if throttle.limit < 1:
            yield ctx.error(
                "CL522",
                f"throttle limit {throttle.limit} lets no message through",
                (*path, "limit"),
                hint="a limit is at least 1; to send nothing, switch the message off instead",
            )
        yield from _duration(ctx, throttle.per, (*path, "per"), "per")
        yield from _key(ctx, throttle.key, (*path, "key"), "throttle")
    for entry in ctx.entries:
        digest = entry.entry.digest
        if digest is None:
            continue
        path = (*entry.path, "digest")
        every = yield from _duration(ctx, digest.every, (*path, "every"), "every")
        if digest.at is None:
            continue
        if parse_time_of_day(digest.at) is None:
            yield ctx.error(
                "CL502",
                f"{digest.at!r} is not a time of day",
                (*path, "at"),
                hint="write 24-hour HH:MM in quotes, e.g. at: '09:00'",
            )
            continue
        if every and every % DAY_SECONDS:
            yield ctx.error(
                "CL523",
                f"a digest sent at {digest.at} must come every whole number of days, "
                f"not every {digest.every}",
                (*path, "every"),
                hint="every: 1d (daily) or 7d (weekly, on Mondays); or drop `at`",
            )
        person = ctx.config.recipients[entry.recipient]
        if person.timezone is None and "timezone" not in ctx.config.defaults.model_fields_set:
            yield ctx.error(
                "CL520",
                f"digest at {digest.at} for {entry.recipient!r}: in which time zone? neither "
                "the recipient nor `defaults` gives one",
                (*path, "at"),
                hint=f"add timezone: Europe/Madrid to recipient {entry.recipient!r}, or "
                "defaults.timezone (UTC must be written, too)",
            )
    for name, flow in ctx.config.flows.items():
        for index, step in enumerate(flow.steps):
            if not isinstance(step, DigestStep):
                continue
            path = ("flows", name, "steps", index, "digest")
            spec = step.digest
            yield from _duration(ctx, spec.window, (*path, "window"), "window")
            yield from _key(ctx, spec.key, (*path, "key"), "digest")
            if spec.max is not None and spec.max < 1:
                yield ctx.error(
                    "CL522",
                    f"digest max {spec.max} holds no event",
                    (*path, "max"),
                    hint="max is at least 1 (or leave it out: no limit)",
                )
            if not any(isinstance(later, SendStep) for later in flow.steps[index + 1 :]):
                yield ctx.error(
                    "CL507",
                    "a `digest` step collects events for the sends after it, and none follows",
                    ("flows", name, "steps", index),
                    hint="put the digest before the `send` that should list the events",
                )


def _duration(
    ctx: CheckContext, text: str, path: YamlPath, what: str
) -> Generator[Diagnostic, None, int]:
    """Findings about a duration that must be more than nothing; returns its seconds (0: bad)."""
    seconds = parse_duration(text)
    if seconds is None:
        yield ctx.error("CL501", f"{what} {text!r} is not a duration", path, hint=DURATION_HINT)
    elif seconds == 0:
        yield ctx.error("CL501", f"{what} {text!r} is no time at all", path, hint=DURATION_HINT)
    return seconds or 0


def _key(ctx: CheckContext, key: str, path: YamlPath, what: str) -> Iterator[Diagnostic]:
    if "{{" not in key or "}}" not in key:
        yield ctx.error(
            "CL521",
            f"{what} key {key!r} is not a template expression: every message would share it",
            path,
            hint=KEY_HINT,
        )
