"""Valid emails and phone numbers; an address once per channel; one name per device."""

from __future__ import annotations

from collections.abc import Iterator

from clarion.check.addresses import AddressError, normalize_email, normalize_phone
from clarion.check.context import CheckContext
from clarion.diagnostics import Diagnostic
from clarion.load import YamlPath


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    seen: dict[tuple[str, str], tuple[str, YamlPath]] = {}
    devices: dict[tuple[str, str], YamlPath] = {}
    for item in ctx.entries:
        channel = ctx.config.channels.get(item.channel)
        if channel is None:
            continue
        entry, path = item.entry, item.path
        normal = _normalized(ctx, channel.address, entry.address or entry.url, path)
        yield from normal[1]
        if entry.device is not None:
            mine = (item.recipient, entry.device)
            if mine in devices:
                yield ctx.twice(
                    "CL305",
                    f"recipient {item.recipient!r} has two devices named {entry.device!r}",
                    (*path, "device"),
                    devices[mine],
                    hint="give each device its own name",
                )
            else:
                devices[mine] = (*path, "device")
        if normal[0] is None:
            continue
        key = (item.channel, normal[0])
        field = "url" if channel.address == "url" else "address"
        if key in seen:
            owner, first_path = seen[key]
            shown = "the same device URL" if channel.address == "url" else repr(normal[0])
            yield ctx.twice(
                "CL303",
                f"{shown} is given twice on channel {item.channel!r}, first for {owner!r}",
                (*path, field),
                first_path,
                hint="an address belongs to one recipient; route events to it instead",
            )
        else:
            seen[key] = (item.recipient, (*path, field))


def _normalized(
    ctx: CheckContext, kind: str, value: str | None, path: YamlPath
) -> tuple[str | None, list[Diagnostic]]:
    """The address as compared for duplicates, or the finding that it cannot be read."""
    if value is None or kind == "inbox":
        return None, []
    if kind == "url":
        return value, []  # its form is the channels rule's business
    try:
        if kind == "email":
            return normalize_email(value).lower(), []
        return normalize_phone(value, ctx.config.defaults.phone_region), []
    except AddressError as exc:
        hint = (
            "write name@domain"
            if kind == "email"
            else "write it in international form, e.g. +6282114000032, or set defaults.phone_region"
        )
        code = "CL301" if kind == "email" else "CL302"
        return None, [ctx.error(code, str(exc), (*path, "address"), hint=hint)]
