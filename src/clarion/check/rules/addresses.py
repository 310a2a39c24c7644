"""Valid emails and phone numbers; an address once per channel; one name per device."""

from __future__ import annotations

from collections.abc import Iterator

from clarion.check.addresses import AddressError, normalize_email, normalize_phone
from clarion.check.context import CheckContext
from clarion.diagnostics import Diagnostic, Location
from clarion.load import YamlPath


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    region = ctx.config.defaults.phone_region
    seen: dict[tuple[str, str], tuple[str, YamlPath]] = {}
    for name, person in ctx.config.recipients.items():
        extra = person.__pydantic_extra__ or {}
        devices: dict[str, YamlPath] = {}
        for channel_name, entries in person.addresses().items():
            channel = ctx.config.channels.get(channel_name)
            if channel is None:
                continue
            single = not isinstance(extra[channel_name], list)
            for index, entry in enumerate(entries):
                base: YamlPath = ("recipients", name, channel_name)
                path = base if single else (*base, index)
                normal: str | None = None
                if channel.address == "email" and entry.address is not None:
                    try:
                        normal = normalize_email(entry.address)
                    except AddressError as exc:
                        yield ctx.error(
                            "CL301", str(exc), (*path, "address"), hint="write name@domain"
                        )
                elif channel.address == "phone" and entry.address is not None:
                    try:
                        normal = normalize_phone(entry.address, region)
                    except AddressError as exc:
                        yield ctx.error(
                            "CL302",
                            str(exc),
                            (*path, "address"),
                            hint="write it in international form, e.g. +6282114000032, "
                            "or set defaults.phone_region",
                        )
                elif channel.address == "url" and entry.url is not None:
                    normal = entry.url  # its form is the channels rule's business
                if entry.device is not None:
                    if entry.device in devices:
                        first = ctx.at(devices[entry.device])
                        yield ctx.error(
                            "CL305",
                            f"recipient {name!r} has two devices named {entry.device!r}"
                            + (f" (first at {first})" if first else ""),
                            (*path, "device"),
                            hint="give each device its own name",
                            related=_related(first),
                        )
                    else:
                        devices[entry.device] = (*path, "device")
                if normal is None:
                    continue
                key = (channel_name, normal.lower() if channel.address == "email" else normal)
                field = "url" if channel.address == "url" else "address"
                if key in seen:
                    owner, first_path = seen[key]
                    first = ctx.at(first_path)
                    shown = "the same device URL" if channel.address == "url" else repr(normal)
                    yield ctx.error(
                        "CL303",
                        f"{shown} is given twice on channel {channel_name!r} "
                        f"(first for {owner!r}" + (f" at {first})" if first else ")"),
                        (*path, field),
                        hint="an address belongs to one recipient; route events to it instead",
                        related=_related(first),
                        excerpt=channel.address != "url",
                    )
                else:
                    seen[key] = (name, (*path, field))


def _related(first: Location | None) -> tuple[tuple[str, Location], ...]:
    return (("first given here", first),) if first else ()
