"""Every item of an event selector must match at least one event."""

from __future__ import annotations

from collections.abc import Iterator

from clarion.check.context import CheckContext
from clarion.check.models import Selector
from clarion.diagnostics import Diagnostic, did_you_mean
from clarion.load import YamlPath


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    for item in ctx.entries:
        yield from selector(ctx, item.entry.events, (*item.path, "events"))
    for index, route in enumerate(ctx.config.routes):
        yield from selector(ctx, route.events, ("routes", index, "events"))


def selector(ctx: CheckContext, value: Selector, path: YamlPath) -> Iterator[Diagnostic]:
    choices = [*ctx.event_names, *ctx.categories]
    reported = False
    for _, item, sub in ctx.selector_items(value):
        if ctx.match_item(item):
            continue
        reported = True
        glob = any(ch in item for ch in "*?[")
        if glob:
            code, what = "CL204", "no event matches the pattern"
        elif "." in item:
            code, what = "CL201", "unknown event type"
        else:
            code, what = "CL202", "unknown category"
        yield ctx.error(
            code,
            f"{what} {item!r}",
            (*path, *sub),
            hint=did_you_mean(item, choices)
            or ("categories: " + ", ".join(sorted(ctx.categories)) if ctx.categories else None),
        )
    if not reported and value != "none" and not ctx.expand(value):
        yield ctx.error(
            "CL204",
            "this selector matches no event",
            path,
            hint="write `none` to switch the address off (Disable All)",
        )
