"""From a checked Config to a RoutingTable: selectors resolved, schedules normalised, addresses
normalised, templates embedded, every list in an order that does not depend on file layout."""

from __future__ import annotations

from clarion.check.addresses import normalize_email, normalize_phone
from clarion.check.context import CheckContext, selector_key
from clarion.check.models import (
    AllExcept,
    Channel,
    Digest,
    DigestStep,
    EmitStep,
    Flow,
    QuietHours,
    SendStep,
    Throttle,
    WaitStep,
)
from clarion.check.models import Selector as SelectorSpec
from clarion.check.templates import ADDRESS_KINDS, builtin_source
from clarion.check.timing import parse_duration, parse_offset, parse_rate, parse_time_of_day
from clarion.compile import table as t

DIGEST = "digest"  # the built-in digest message, for team addresses with `digest`


def build_table(ctx: CheckContext) -> t.RoutingTable:
    config = ctx.config
    defaults = config.defaults
    targets = _targets(ctx)
    builtins = {kind: builtin_source(kind) for kind in ADDRESS_KINDS}
    if any(target.digest for target in targets):
        builtins[DIGEST] = builtin_source(DIGEST)
    return t.RoutingTable(
        defaults=t.Defaults(
            timezone=defaults.timezone,
            locale=defaults.locale,
            phone_region=defaults.phone_region,
            catch_up_seconds=parse_duration(defaults.catch_up) or 0,
            inbox_keep=defaults.inbox_keep,
            quiet_hours=_quiet(defaults.quiet_hours),
            allow_private_targets=defaults.allow_private_targets,
        ),
        channels={name: _channel(channel) for name, channel in config.channels.items()},
        events={
            name: t.Event(
                category=event.category,
                description=event.description,
                critical=event.critical,
                batch=event.batch,
                template=event.template or name,
                data_schema=event.data,
                example=event.example,
            )
            for name, event in config.events.items()
        },
        recipients={
            name: t.Recipient(timezone=person.timezone, locale=person.locale)
            for name, person in config.recipients.items()
        },
        targets=targets,
        routes=sorted(
            (
                t.Route(
                    name=route.name,
                    events=resolve(ctx, route.events),
                    when=route.when,
                    to=sorted(set(route.to)),
                    channels=sorted(set(route.channels)) if route.channels else None,
                    throttle=_throttle(route.throttle),
                )
                for route in config.routes
            ),
            key=lambda r: r.name,
        ),
        customer_messages={
            name: t.CustomerMessage(
                channels=list(message.channels),
                template=message.template,
                enabled=message.enabled,
                attach=message.attach,
                fallback=list(message.fallback),
                throttle=_throttle(message.throttle),
            )
            for name, message in config.customer_messages.items()
        },
        flows={name: _flow(flow) for name, flow in config.flows.items()},
        consent_default=dict(config.consent.default),
        unique_contact_fields=sorted(set(config.contacts.unique)),
        templates={
            f"{name}.{channel}": {locale or "": file.source for locale, file in variants.items()}
            for (name, channel), variants in ctx.templates.files.items()
        },
        builtin_templates=builtins,
    )


def resolve(ctx: CheckContext, selector: SelectorSpec) -> t.Selector:
    if selector == "all":
        return t.Selector(all=True)
    if selector == "none":
        return t.Selector()
    items = selector.except_ if isinstance(selector, AllExcept) else selector
    categories: set[str] = set()
    events: set[str] = set()
    for item in items:
        if item in ctx.categories and item not in ctx.config.events:
            categories.add(item)
        else:
            events.update(ctx.match_item(item))
    # An event already covered by one of the categories needs no entry of its own.
    events = {e for e in events if ctx.config.events[e].category not in categories}
    if isinstance(selector, AllExcept):
        return t.Selector(
            all=True, except_categories=sorted(categories), except_events=sorted(events)
        )
    return t.Selector(categories=sorted(categories), events=sorted(events))


def _channel(channel: Channel) -> t.Channel:
    urls = (
        channel.apprise
        if isinstance(channel.apprise, list)
        else ([channel.apprise] if channel.apprise else [])
    )
    rate = parse_rate(channel.rate) if channel.rate else None
    return t.Channel(
        address=channel.address,
        apprise=list(urls),
        rate=t.Rate(count=rate[0], per_seconds=rate[1]) if rate else None,
    )


def _targets(ctx: CheckContext) -> list[t.Target]:
    region = ctx.config.defaults.phone_region
    cache: dict[tuple[object, ...], t.Selector] = {}
    out: list[t.Target] = []
    for name, person in ctx.config.recipients.items():
        for channel_name, entries in person.addresses().items():
            channel = ctx.config.channels[channel_name]
            for index, entry in enumerate(entries):
                key = selector_key(entry.events)
                if key not in cache:
                    cache[key] = resolve(ctx, entry.events)
                address = entry.address
                if address is not None and channel.address == "email":
                    address = normalize_email(address)
                elif address is not None and channel.address == "phone":
                    address = normalize_phone(address, region)
                suffix = entry.device or (str(index) if len(entries) > 1 else "")
                out.append(
                    t.Target(
                        id="/".join(p for p in (name, channel_name, suffix) if p),
                        recipient=name,
                        channel=channel_name,
                        kind=channel.address,
                        address=address,
                        device=entry.device,
                        url=entry.url,
                        enabled=entry.enabled,
                        events=cache[key],
                        quiet_hours="off"
                        if entry.quiet_hours is False
                        else _quiet(entry.quiet_hours),
                        digest=_digest(entry.digest),
                    )
                )
    return sorted(out, key=lambda target: target.id)


def _flow(flow: Flow) -> t.Flow:
    steps: list[t.Step] = []
    for step in flow.steps:
        if isinstance(step, WaitStep):
            wait = step.wait
            if wait.for_ is not None:
                steps.append(t.Step(wait=t.Wait(kind="for", seconds=parse_duration(wait.for_))))
            else:
                steps.append(
                    t.Step(
                        wait=t.Wait(
                            kind="until",
                            until=(wait.until or "").strip(),
                            offset_seconds=parse_offset(wait.offset or "0s") or 0,
                            at=_hhmm(wait.at),
                            late=wait.late,
                        )
                    )
                )
        elif isinstance(step, SendStep):
            send = step.send
            steps.append(
                t.Step(
                    send=t.Send(
                        to=send.to if send.to == "contact" else list(send.to),
                        channels=list(send.channels),
                        template=send.template,
                        fallback=list(send.fallback) if send.to == "contact" else [],
                        unless="read" if send.unless == "read" else None,
                        throttle=_throttle(send.throttle),
                    )
                )
            )
        elif isinstance(step, EmitStep):
            steps.append(t.Step(emit=step.emit))
        elif isinstance(step, DigestStep):
            spec = step.digest
            steps.append(
                t.Step(
                    digest=t.FlowDigest(
                        window_seconds=parse_duration(spec.window) or 0,
                        key=spec.key,
                        max=spec.max,
                    )
                )
            )
    return t.Flow(
        on=flow.on,
        when=flow.when,
        unless=flow.unless,
        key=flow.key,
        cancel_on=sorted(set(flow.cancel_on)),
        steps=steps,
    )


def _quiet(window: QuietHours | bool | None) -> t.QuietHours | None:
    if not isinstance(window, QuietHours):
        return None
    return t.QuietHours(start=_hhmm(window.from_) or "", end=_hhmm(window.to) or "")


def _hhmm(text: str | None) -> str | None:
    if text is None:
        return None
    moment = parse_time_of_day(text)
    return moment.strftime("%H:%M") if moment else None


def _throttle(spec: Throttle | None) -> t.Throttle | None:
    if spec is None:
        return None
    return t.Throttle(limit=spec.limit, per_seconds=parse_duration(spec.per) or 0, key=spec.key)


def _digest(spec: Digest | None) -> t.Digest | None:
    if spec is None:
        return None
    return t.Digest(every_seconds=parse_duration(spec.every) or 0, at=_hhmm(spec.at))
