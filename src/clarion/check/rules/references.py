"""Every name used is defined (events, recipients, channels); addresses fit their channel."""

from __future__ import annotations

from collections.abc import Iterator

from clarion.check.context import CheckContext
from clarion.check.models import AddressEntry, SendStep
from clarion.diagnostics import Diagnostic, did_you_mean
from clarion.load import YamlPath

RESERVED_CHANNEL_NAMES = frozenset({"timezone", "locale"})
CUSTOMER_KINDS = frozenset({"email", "phone", "url"})


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    config = ctx.config
    for name in config.channels:
        if name in RESERVED_CHANNEL_NAMES:
            yield ctx.error(
                "CL208",
                f"{name!r} cannot be a channel name: recipients use it as a setting",
                ("channels", name),
                hint="rename the channel",
            )
    if "contact" in config.recipients:
        yield Diagnostic(
            "CL208",
            "'contact' cannot be a recipient name: flows use `to: contact` for the customer",
            ctx.key_at(("recipients", "contact")),
            hint="rename the recipient",
            path=("recipients", "contact"),
        )
    yield from _recipients(ctx)
    named: dict[str, YamlPath] = {}
    for index, route in enumerate(config.routes):
        base: YamlPath = ("routes", index)
        if route.name in named:
            yield ctx.twice(
                "CL007",
                f"route {route.name!r} is defined twice",
                (*base, "name"),
                (*named[route.name], "name"),
                hint="give each route its own name",
            )
        named.setdefault(route.name, base)
        for i, who in enumerate(route.to):
            yield from recipient(ctx, who, (*base, "to", i))
        for i, channel in enumerate(route.channels or []):
            yield from known_channel(ctx, channel, (*base, "channels", i))
    for event, message in config.customer_messages.items():
        base = ("customer_messages", event)
        if event not in config.events:
            yield ctx.unknown_event(event, base)
        for i, channel in enumerate(message.channels):
            yield from customer_channel(ctx, channel, (*base, "channels", i))
    for name, flow in config.flows.items():
        base = ("flows", name)
        if flow.on not in config.events:
            yield ctx.unknown_event(flow.on, (*base, "on"))
        for i, event in enumerate(flow.cancel_on):
            if event not in config.events:
                yield ctx.unknown_event(event, (*base, "cancel_on", i))
        for s, step in enumerate(flow.steps):
            if not isinstance(step, SendStep):
                continue
            spath: YamlPath = (*base, "steps", s, "send")
            send = step.send
            for i, channel in enumerate(send.channels):
                cpath = (*spath, "channels", i)
                if send.to == "contact":
                    yield from customer_channel(ctx, channel, cpath)
                    continue
                yield from known_channel(ctx, channel, cpath)
            if isinstance(send.to, list):
                for i, who in enumerate(send.to):
                    rpath = (*spath, "to", i)
                    if who not in config.recipients:
                        yield from recipient(ctx, who, rpath)
                        continue
                    have = config.recipients[who].addresses()
                    if not any(c in have for c in send.channels):
                        yield ctx.error(
                            "CL207",
                            f"recipient {who!r} has no address on "
                            + ", ".join(repr(c) for c in send.channels),
                            rpath,
                            hint=f"give {who} one of these channels, or send on one they have",
                        )
    for channel in config.consent.default:
        if channel not in config.channels:
            yield from known_channel(ctx, channel, ("consent", "default", channel), key=True)


def recipient(ctx: CheckContext, name: str, path: YamlPath) -> Iterator[Diagnostic]:
    if name not in ctx.config.recipients:
        yield ctx.error(
            "CL203",
            f"unknown recipient {name!r}",
            path,
            hint=did_you_mean(name, ctx.config.recipients) or "define it under `recipients:`",
        )


def known_channel(
    ctx: CheckContext, name: str, path: YamlPath, *, key: bool = False
) -> Iterator[Diagnostic]:
    if name not in ctx.config.channels:
        yield Diagnostic(
            "CL205",
            f"unknown channel {name!r}",
            ctx.key_at(path) if key else ctx.at(path),
            hint=did_you_mean(name, ctx.config.channels) or "define it under `channels:`",
            path=path,
        )


def customer_channel(ctx: CheckContext, name: str, path: YamlPath) -> Iterator[Diagnostic]:
    channel = ctx.config.channels.get(name)
    if channel is None:
        yield from known_channel(ctx, name, path)
    elif channel.address not in CUSTOMER_KINDS:
        yield ctx.error(
            "CL606",
            f"channel {name!r} ({channel.address}) cannot reach a customer",
            path,
            hint="the in-app inbox belongs to team recipients; use email, a phone channel or push",
        )


def _recipients(ctx: CheckContext) -> Iterator[Diagnostic]:
    unknown: set[tuple[str, str]] = set()
    for item in ctx.entries:
        channel = ctx.config.channels.get(item.channel)
        if channel is not None:
            yield from _fit(ctx, item.channel, channel.address, item.entry, item.path)
        elif (item.recipient, item.channel) not in unknown:
            unknown.add((item.recipient, item.channel))
            yield from known_channel(
                ctx, item.channel, ("recipients", item.recipient, item.channel), key=True
            )


def _fit(
    ctx: CheckContext, channel: str, kind: str, entry: AddressEntry, path: YamlPath
) -> Iterator[Diagnostic]:
    wanted = {"email": ("address",), "phone": ("address",), "url": ("device", "url"), "inbox": ()}[
        kind
    ]
    given = {k for k in ("address", "device", "url") if getattr(entry, k) is not None}
    for key in sorted(given - set(wanted)):
        yield Diagnostic(
            "CL207",
            f"`{key}` does not belong on channel {channel!r} ({kind})",
            ctx.key_at((*path, key)),
            hint=_kind_hint(kind),
            path=(*path, key),
        )
    for key in wanted:
        if key not in given:
            yield ctx.error(
                "CL207",
                f"channel {channel!r} ({kind}) needs `{key}`",
                path,
                hint=_kind_hint(kind),
            )


def _kind_hint(kind: str) -> str:
    return {
        "email": "an email entry is {address: name@example.com, events: ...}",
        "phone": "a phone entry is {address: '+34612345678', events: ...}",
        "url": "a push device is {device: NAME, url: APPRISE_URL, events: ...}",
        "inbox": "an in-app entry is {events: ...}; the inbox is the recipient's own",
    }[kind]
