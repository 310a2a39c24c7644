"""What changes for people between two routing tables.

Works on compiled tables only, so a pure file reorganisation (same table) is no change at all, and
a selector written another way (`[payments]` or `[payment.*]`) is no change when it picks the same
events. Selectors, categories, Enable All and Disable All are expanded to event names; routes are
folded in, so each team address ends with, per event: always, only when some route condition
holds, or never. Secrets never appear: push device URLs and channel provider URLs are named, not
printed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError

from clarion.check.rendering import Message, render
from clarion.compile import table as t

ALWAYS = "always"
NEVER = "never"
SAMPLE_CONTACT_ID = "cus_example"  # as the template check renders examples


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------


@dataclass
class ConditionChange:
    event: str
    before: str | list[str]  # "always", "never", or the conditions ("when ... (route r)")
    after: str | list[str]


@dataclass
class Reach:
    """One team address, device or inbox whose events change."""

    target: str
    recipient: str
    channel: str
    to: str  # address, device name, or the inbox owner
    starts: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    conditions: list[ConditionChange] = field(default_factory=list)


@dataclass
class Item:
    """A named thing added, removed or changed, with human-readable details."""

    name: str
    details: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    added: list[Item] = field(default_factory=list)
    removed: list[Item] = field(default_factory=list)
    changed: list[Item] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def as_json(self) -> dict[str, Any]:
        return {
            kind: [{"name": i.name, **i.fields, "details": i.details} for i in items]
            for kind, items in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
        }


@dataclass
class TemplateChange:
    template: str  # `name.channel`, or `old.channel → new.channel` when an event switched
    locale: str
    events: list[str]  # events whose rendered example changed (the diff shows the first)
    kind: str  # team | customer | flow
    diff: str


@dataclass
class TableDiff:
    reach: list[Reach] = field(default_factory=list)
    addresses: Section = field(default_factory=Section)  # team addresses, devices, inboxes
    recipients: Section = field(default_factory=Section)
    customer_messages: Section = field(default_factory=Section)
    routes: Section = field(default_factory=Section)
    flows: Section = field(default_factory=Section)
    consent: list[Item] = field(default_factory=list)
    events: Section = field(default_factory=Section)
    channels: Section = field(default_factory=Section)
    settings: list[Item] = field(default_factory=list)
    templates: list[TemplateChange] = field(default_factory=list)
    # catalogues, to show a list of events compactly (whole categories, every event)
    old_catalog: dict[str, str | None] = field(default_factory=dict, repr=False)
    new_catalog: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.reach,
                self.addresses,
                self.recipients,
                self.customer_messages,
                self.routes,
                self.flows,
                self.consent,
                self.events,
                self.channels,
                self.settings,
                self.templates,
            )
        )

    def counts(self) -> dict[str, int]:
        return {
            "starts": sum(1 for r in self.reach if r.starts),
            "stops": sum(1 for r in self.reach if r.stops),
            "conditions": sum(1 for r in self.reach if r.conditions),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "reach": [
                {
                    "target": r.target,
                    "recipient": r.recipient,
                    "channel": r.channel,
                    "to": r.to,
                    "starts": r.starts,
                    "stops": r.stops,
                    "conditions": [
                        {"event": c.event, "before": c.before, "after": c.after}
                        for c in r.conditions
                    ],
                }
                for r in self.reach
            ],
            "addresses": self.addresses.as_json(),
            "recipients": self.recipients.as_json(),
            "customer_messages": self.customer_messages.as_json(),
            "routes": self.routes.as_json(),
            "flows": self.flows.as_json(),
            "consent_default": [{"channel": i.name, **i.fields} for i in self.consent],
            "events": self.events.as_json(),
            "channels": self.channels.as_json(),
            "settings": [{"name": i.name, **i.fields} for i in self.settings],
            "templates": [
                {
                    "template": c.template,
                    "locale": c.locale,
                    "kind": c.kind,
                    "events": c.events,
                    "diff": c.diff,
                }
                for c in self.templates
            ],
        }


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def diff_tables(old: t.RoutingTable, new: t.RoutingTable) -> TableDiff:
    out = TableDiff(
        old_catalog={name: e.category for name, e in old.events.items()},
        new_catalog={name: e.category for name, e in new.events.items()},
    )
    if old == new:
        return out
    old_view, new_view = _View(old), _View(new)
    _targets(out, old_view, new_view)
    _recipients(out, old, new)
    _customer_messages(out, old, new)
    _routes(out, old_view, new_view)
    _flows(out, old, new)
    _consent(out, old, new)
    _events(out, old, new)
    _channels(out, old, new)
    _settings(out, old, new)
    out.templates = _templates(old, new)
    return out


# ---------------------------------------------------------------------------------------------
# Who gets what
# ---------------------------------------------------------------------------------------------

Reception = tuple[frozenset[str], dict[str, frozenset[str]]]  # always; event -> conditions
_NOTHING: Reception = (frozenset(), {})


class _View:
    """A table with its selectors expanded to sets of event names (each distinct one once)."""

    def __init__(self, table: t.RoutingTable) -> None:
        self.table = table
        self.all_events = frozenset(table.events)
        self.by_category: dict[str, set[str]] = {}
        for name, event in table.events.items():
            if event.category is not None:
                self.by_category.setdefault(event.category, set()).add(name)
        self._expanded: dict[tuple[object, ...], frozenset[str]] = {}
        self.routes_of: dict[str, list[t.Route]] = {}
        for route in table.routes:
            for who in route.to:
                self.routes_of.setdefault(who, []).append(route)

    def expand(self, selector: t.Selector) -> frozenset[str]:
        key = (
            selector.all,
            tuple(selector.categories),
            tuple(selector.events),
            tuple(selector.except_categories),
            tuple(selector.except_events),
        )
        found = self._expanded.get(key)
        if found is None:
            if selector.all:
                left = set(self.all_events).difference(selector.except_events)
                for category in selector.except_categories:
                    left -= self.by_category.get(category, set())
            else:
                left = set(self.all_events.intersection(selector.events))
                for category in selector.categories:
                    left |= self.by_category.get(category, set())
            found = frozenset(left)
            self._expanded[key] = found
        return found

    def reception(self, target: t.Target) -> Reception:
        if not target.enabled:
            return _NOTHING
        always = self.expand(target.events)
        conditional: dict[str, set[str]] = {}
        for route in self.routes_of.get(target.recipient, ()):
            if route.channels is not None and target.channel not in route.channels:
                continue
            events = self.expand(route.events)
            if route.when is None:
                always = always | events
                continue
            label = f"when {route.when} (route {route.name})"
            for event in events - always:
                conditional.setdefault(event, set()).add(label)
        return always, {e: frozenset(c) for e, c in conditional.items() if e not in always}


def _state(reception: Reception, event: str) -> str | list[str]:
    always, conditional = reception
    if event in always:
        return ALWAYS
    found = conditional.get(event)
    return sorted(found) if found else NEVER


def _reach_change(target: t.Target, old: Reception, new: Reception) -> Reach | None:
    (a_old, c_old), (a_new, c_new) = old, new
    if a_old == a_new and c_old == c_new:
        return None
    starts = sorted(a_new - a_old - c_old.keys())
    stops = sorted(a_old - a_new - c_new.keys())
    conditions = []
    for event in sorted((a_old ^ a_new) | c_old.keys() | c_new.keys()):
        if event in starts or event in stops:
            continue
        before, after = _state(old, event), _state(new, event)
        if before != after:
            conditions.append(ConditionChange(event, before, after))
    if not (starts or stops or conditions):
        return None
    return Reach(
        target.id, target.recipient, target.channel, _to(target), starts, stops, conditions
    )


def _to(target: t.Target) -> str:
    if target.kind == "url":
        return target.device or target.id
    if target.kind == "inbox":
        return f"{target.recipient}'s inbox"
    return target.address or target.id


def _identity(target: t.Target) -> tuple[str, str, str]:
    """What makes an address the same one across versions, whatever its list position."""
    if target.kind == "url":
        return (target.recipient, target.channel, "device:" + (target.device or target.id))
    if target.address is not None:
        return (target.recipient, target.channel, "address:" + target.address)
    return (target.recipient, target.channel, "id:" + target.id)


def _pair_targets(
    old: list[t.Target], new: list[t.Target]
) -> list[tuple[t.Target | None, t.Target | None]]:
    """Same identity first; then, within one recipient and channel, an address that changed
    (same id) is one address changed rather than one removed and one added."""
    old_by = {_identity(x): x for x in old}
    new_by = {_identity(x): x for x in new}
    pairs: list[tuple[t.Target | None, t.Target | None]] = [
        (old_by[k], new_by[k]) for k in old_by.keys() & new_by.keys()
    ]
    old_left = {old_by[k].id: old_by[k] for k in old_by.keys() - new_by.keys()}
    new_left = {new_by[k].id: new_by[k] for k in new_by.keys() - old_by.keys()}
    for same in sorted(old_left.keys() & new_left.keys()):
        a, b = old_left.pop(same), new_left.pop(same)
        if a.kind == b.kind and a.kind != "url":
            pairs.append((a, b))
        else:
            old_left[same + "\0"], new_left[same + "\0"] = a, b
    pairs += [(x, None) for x in old_left.values()]
    pairs += [(None, x) for x in new_left.values()]
    return sorted(pairs, key=_pair_id)


def _pair_id(pair: tuple[t.Target | None, t.Target | None]) -> str:
    shown = pair[1] or pair[0]
    return shown.id if shown is not None else ""


def _targets(out: TableDiff, old: _View, new: _View) -> None:
    same_catalog = out.old_catalog == out.new_catalog
    for before, after in _pair_targets(old.table.targets, new.table.targets):
        shown = after or before
        assert shown is not None
        if before is not None and after is not None:
            if (
                same_catalog
                and before == after
                and old.routes_of.get(before.recipient) == new.routes_of.get(after.recipient)
            ):
                continue
            _target_changed(out, before, after)
        elif after is not None:
            out.addresses.added.append(_target_item(after))
        elif before is not None:
            out.addresses.removed.append(_target_item(before))
        change = _reach_change(
            shown,
            old.reception(before) if before is not None else _NOTHING,
            new.reception(after) if after is not None else _NOTHING,
        )
        if change is not None:
            out.reach.append(change)


def _target_item(target: t.Target) -> Item:
    what = "device" if target.kind == "url" else ("inbox" if target.kind == "inbox" else "address")
    details = [f"{what} {_to(target)}"] + ([] if target.enabled else ["switched off"])
    if target.digest is not None:
        details.append(f"digest {describe_digest(target.digest)}")
    return Item(
        target.id,
        details,
        {
            "recipient": target.recipient,
            "channel": target.channel,
            "kind": what,
            "to": _to(target),
            "enabled": target.enabled,
        },
    )


def _target_changed(out: TableDiff, before: t.Target, after: t.Target) -> None:
    details: list[str] = []
    fields: dict[str, Any] = {"recipient": after.recipient, "channel": after.channel}
    if before.enabled != after.enabled:
        details.append("switched on" if after.enabled else "switched off")
        fields["enabled"] = after.enabled
    if before.address != after.address:
        details.append(f"address {before.address} → {after.address}")
        fields["address"] = {"before": before.address, "after": after.address}
    if before.url != after.url:
        details.append("device URL changed")  # never printed: it may name a secret's place
        fields["url_changed"] = True
    if before.quiet_hours != after.quiet_hours:
        a, b = quiet_hours(before.quiet_hours), quiet_hours(after.quiet_hours)
        details.append(f"quiet hours: {a} → {b}")
        fields["quiet_hours"] = {"before": a, "after": b}
    if before.digest != after.digest:
        details += _field_changes(
            [("digest", describe_digest(before.digest), describe_digest(after.digest))]
        )
        fields["digest"] = {
            "before": before.digest.model_dump() if before.digest else None,
            "after": after.digest.model_dump() if after.digest else None,
        }
    if details:
        out.addresses.changed.append(Item(after.id, details, fields))


def _recipients(out: TableDiff, old: t.RoutingTable, new: t.RoutingTable) -> None:
    for name in sorted(new.recipients.keys() - old.recipients.keys()):
        out.recipients.added.append(Item(name))
    for name in sorted(old.recipients.keys() - new.recipients.keys()):
        out.recipients.removed.append(Item(name))
    for name in sorted(old.recipients.keys() & new.recipients.keys()):
        a, b = old.recipients[name], new.recipients[name]
        details = _field_changes(
            (("time zone", a.timezone, b.timezone), ("locale", a.locale, b.locale))
        )
        if details:
            out.recipients.changed.append(Item(name, details))


# ---------------------------------------------------------------------------------------------
# Customer messages, routes, flows, consent, catalogue, channels, settings
# ---------------------------------------------------------------------------------------------


def _show(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


def _field_changes(rows: Iterable[tuple[str, object, object]]) -> list[str]:
    return [f"{label}: {_show(a)} → {_show(b)}" for label, a, b in rows if a != b]


def _customer_messages(out: TableDiff, old: t.RoutingTable, new: t.RoutingTable) -> None:
    section = out.customer_messages
    for name in sorted(new.customer_messages.keys() - old.customer_messages.keys()):
        m = new.customer_messages[name]
        details = [f"on {_show(m.channels)}, template {m.template}"]
        if m.fallback:
            details.append(f"fallback {_show(m.fallback)}")
        if not m.enabled:
            details.append("switched off")
        section.added.append(Item(name, details, {"channels": m.channels, "enabled": m.enabled}))
    for name in sorted(old.customer_messages.keys() - new.customer_messages.keys()):
        m = old.customer_messages[name]
        section.removed.append(
            Item(name, [f"was on {_show(m.channels)}"], {"channels": m.channels})
        )
    for name in sorted(old.customer_messages.keys() & new.customer_messages.keys()):
        a, b = old.customer_messages[name], new.customer_messages[name]
        if a == b:
            continue
        details = []
        fields: dict[str, Any] = {}
        if a.enabled != b.enabled:
            details.append("switched on" if b.enabled else "switched off")
            fields["enabled"] = b.enabled
        added = [c for c in b.channels if c not in a.channels]
        dropped = [c for c in a.channels if c not in b.channels]
        if added:
            details.append(f"now also on {_show(added)}")
        if dropped:
            details.append(f"no longer on {_show(dropped)}")
        if not added and not dropped and a.channels != b.channels:
            details.append(f"channel order: {_show(a.channels)} → {_show(b.channels)}")
        if a.channels != b.channels:
            fields["channels"] = {"before": a.channels, "after": b.channels}
        details += _field_changes(
            (
                ("template", a.template, b.template),
                ("attachment", a.attach, b.attach),
                ("fallback", a.fallback, b.fallback),
                ("throttle", describe_throttle(a.throttle), describe_throttle(b.throttle)),
            )
        )
        if a.fallback != b.fallback:
            fields["fallback"] = {"before": a.fallback, "after": b.fallback}
        section.changed.append(Item(name, details, fields))


def _routes(out: TableDiff, old: _View, new: _View) -> None:
    a_routes = {r.name: r for r in old.table.routes}
    b_routes = {r.name: r for r in new.table.routes}
    for name in sorted(b_routes.keys() - a_routes.keys()):
        out.routes.added.append(Item(name, [_route_summary(b_routes[name], new)]))
    for name in sorted(a_routes.keys() - b_routes.keys()):
        out.routes.removed.append(Item(name, [_route_summary(a_routes[name], old)]))
    for name in sorted(a_routes.keys() & b_routes.keys()):
        a, b = a_routes[name], b_routes[name]
        if a == b and out.old_catalog == out.new_catalog:
            continue
        details = []
        ea, eb = old.expand(a.events), new.expand(b.events)
        if eb - ea:
            details.append(f"now also for {_show(sorted(eb - ea))}")
        if ea - eb:
            details.append(f"no longer for {_show(sorted(ea - eb))}")
        details += _field_changes(
            (
                ("condition", a.when or "(always)", b.when or "(always)"),
                ("to", a.to, b.to),
                ("channels", a.channels or "every channel", b.channels or "every channel"),
                ("throttle", describe_throttle(a.throttle), describe_throttle(b.throttle)),
            )
        )
        if details:
            out.routes.changed.append(Item(name, details))


def _route_summary(route: t.Route, view: _View) -> str:
    events = sorted(view.expand(route.events))
    channels = _show(route.channels) if route.channels else "every channel"
    when = f" when {route.when}" if route.when else ""
    return f"{_show(events)} to {_show(route.to)} on {channels}{when}"


_UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def duration(seconds: int) -> str:
    """2 days, 1 hour 30 minutes, 0 seconds."""
    if seconds == 0:
        return "0 seconds"
    parts = []
    left = abs(seconds)
    for unit, size in _UNITS:
        if unit == "week" and left % size:
            continue  # 10 days reads better than 1 week 3 days
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {unit}{'s' * (count != 1)}")
    return " ".join(parts)


_FIELD = re.compile(r"^data\.([A-Za-z_][A-Za-z0-9_]*)$")


def _moment_name(expression: str) -> str:
    match = _FIELD.match(expression.strip())
    if not match:
        return f"`{expression}`"
    name = match.group(1)
    for suffix in ("_date", "_at", "_on", "_time"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("_", " ")


def describe_wait(wait: t.Wait) -> str:
    if wait.kind == "for":
        return f"wait {duration(wait.seconds or 0)}"
    moment = _moment_name(wait.until or "")
    if wait.offset_seconds:
        side = "before" if wait.offset_seconds < 0 else "after"
        text = f"{duration(abs(wait.offset_seconds))} {side} {moment}"
    else:
        text = f"at {moment}" if wait.at is None else f"on {moment}"
    if wait.at is not None:
        text += f" at {wait.at}"
    if wait.late == "skip":
        text += ", skipped if late"
    return text


def describe_step(step: t.Step) -> str:
    if step.wait is not None:
        return describe_wait(step.wait)
    if step.send is not None:
        send = step.send
        to = "the contact" if send.to == "contact" else _show(send.to)
        text = f"send {send.template} to {to} on {_show(send.channels)}"
        if send.fallback:
            text += f", fallback {_show(send.fallback)}"
        if send.unless == "read":
            text += ", unless the in-app item was read"
        if send.throttle is not None:
            text += f", throttled to {describe_throttle(send.throttle)}"
        return text
    if step.digest is not None:
        spec = step.digest
        most = f", at most {spec.max} events" if spec.max is not None else ""
        return f"digest {duration(spec.window_seconds)} of runs by {spec.key}{most}"
    return f"emit {step.emit}"


def describe_throttle(throttle: t.Throttle | None) -> str | None:
    """at most 3 per 1 hour for {{ contact.id }}; None: no throttle."""
    if throttle is None:
        return None
    return f"at most {throttle.limit} per {duration(throttle.per_seconds)} for {throttle.key}"


def describe_digest(digest: t.Digest | None) -> str | None:
    """every 1 day at 09:00; None: no digest (each event sent at once)."""
    if digest is None:
        return None
    every = f"every {duration(digest.every_seconds)}"
    return every + (f" at {digest.at}" if digest.at else "")


def _flow_summary(flow: t.Flow) -> str:
    return f"on {flow.on}: " + "; ".join(describe_step(s) for s in flow.steps)


def _flows(out: TableDiff, old: t.RoutingTable, new: t.RoutingTable) -> None:
    for name in sorted(new.flows.keys() - old.flows.keys()):
        out.flows.added.append(Item(name, [_flow_summary(new.flows[name])]))
    for name in sorted(old.flows.keys() - new.flows.keys()):
        out.flows.removed.append(Item(name, [_flow_summary(old.flows[name])]))
    for name in sorted(old.flows.keys() & new.flows.keys()):
        a, b = old.flows[name], new.flows[name]
        if a == b:
            continue
        details = _field_changes(
            (
                ("starts on", a.on, b.on),
                ("when", a.when or "(always)", b.when or "(always)"),
                ("unless", a.unless or "(never)", b.unless or "(never)"),
                ("key", a.key, b.key),
                ("canceled by", a.cancel_on, b.cancel_on),
            )
        )
        details += _step_changes(a.steps, b.steps)
        out.flows.changed.append(Item(name, details))


def _step_changes(a: list[t.Step], b: list[t.Step]) -> list[str]:
    before = [describe_step(s) for s in a]
    after = [describe_step(s) for s in b]
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            pairs = zip(range(i1, i2), range(j1, j2), strict=True)
            out += [f"{before[i]} → {after[j]}" for i, j in pairs]
            continue
        out += [f"removed step {i + 1}: {before[i]}" for i in range(i1, i2)]
        out += [f"added step {j + 1}: {after[j]}" for j in range(j1, j2)]
    return out


def _consent(out: TableDiff, old: t.RoutingTable, new: t.RoutingTable) -> None:
    # A channel left out of the defaults is off: only a change of the effective value counts.
    for channel in sorted(old.consent_default.keys() | new.consent_default.keys()):
        a = old.consent_default.get(channel, False)
        b = new.consent_default.get(channel, False)
        if a != b:
            out.consent.append(
                Item(channel, [f"{_show(a)} → {_show(b)}"], {"before": a, "after": b})
            )


def _events(out: TableDiff, old: t.RoutingTable, new: t.RoutingTable) -> None:
    for name in sorted(new.events.keys() - old.events.keys()):
        category = new.events[name].category
        out.events.added.append(
            Item(name, [f"category {category}"] if category else [], {"category": category})
        )
    for name in sorted(old.events.keys() - new.events.keys()):
        out.events.removed.append(Item(name, [], {"category": old.events[name].category}))
    for name in sorted(old.events.keys() & new.events.keys()):
        a, b = old.events[name], new.events[name]
        details = _field_changes(
            (
                ("category", a.category, b.category),
                ("critical", a.critical, b.critical),
                ("accepted in batches", a.batch, b.batch),
                ("team template", a.template, b.template),
            )
        )
        if a.data_schema != b.data_schema:
            details.append("data schema changed: events that passed before may be refused")
        if details:
            out.events.changed.append(Item(name, details))


def _providers(channel: t.Channel) -> list[str]:
    return [url.split("://", 1)[0] if "://" in url else "?" for url in channel.apprise]


def _rate(channel: t.Channel) -> str | None:
    if channel.rate is None:
        return None
    return f"{channel.rate.count} per {duration(channel.rate.per_seconds)}"


def _channels(out: TableDiff, old: t.RoutingTable, new: t.RoutingTable) -> None:
    for name in sorted(new.channels.keys() - old.channels.keys()):
        c = new.channels[name]
        out.channels.added.append(Item(name, [f"{c.address} via {_show(_providers(c))}"]))
    for name in sorted(old.channels.keys() - new.channels.keys()):
        out.channels.removed.append(Item(name))
    for name in sorted(old.channels.keys() & new.channels.keys()):
        a, b = old.channels[name], new.channels[name]
        details = _field_changes(
            (
                ("address", a.address, b.address),
                ("providers", _providers(a), _providers(b)),
                ("rate", _rate(a) or "unlimited", _rate(b) or "unlimited"),
            )
        )
        if _providers(a) == _providers(b) and a.apprise != b.apprise:
            details.append("provider URL changed")  # the URL itself is never printed
        if details:
            out.channels.changed.append(Item(name, details))


def quiet_hours(window: t.QuietHours | str | None, unset: str = "(default)") -> str:
    """`21:00-08:00`; `off` (an address with none); `(default)` (an address with no own)."""
    if window is None:
        return unset
    if isinstance(window, str):
        return window
    return f"{window.start}-{window.end}"


def _settings(out: TableDiff, old: t.RoutingTable, new: t.RoutingTable) -> None:
    a, b = old.defaults, new.defaults
    rows: list[tuple[str, object, object]] = [
        ("default time zone", a.timezone, b.timezone),
        ("default locale", a.locale, b.locale),
        ("phone region", a.phone_region, b.phone_region),
        ("catch-up", duration(a.catch_up_seconds), duration(b.catch_up_seconds)),
        ("quiet hours", quiet_hours(a.quiet_hours, "none"), quiet_hours(b.quiet_hours, "none")),
        ("unique contact fields", old.unique_contact_fields, new.unique_contact_fields),
    ]
    for label, x, y in rows:
        if x != y:
            out.settings.append(
                Item(label, [f"{_show(x)} → {_show(y)}"], {"before": x, "after": y})
            )


# ---------------------------------------------------------------------------------------------
# Templates: rendered against their event's example, before and after
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Use:
    template: str
    channel: str
    event: str
    kind: str  # team | customer | flow | digest
    team: bool
    digest: bool = False  # rendered with `events` and `count`


def _uses(table: t.RoutingTable) -> dict[tuple[str, ...], _Use]:
    found: dict[tuple[str, ...], _Use] = {}
    team_channels = sorted({x.channel for x in table.targets if x.enabled})
    for name, event in table.events.items():
        for channel in team_channels:
            found[("team", name, channel)] = _Use(event.template, channel, name, "team", True)
    for name, message in table.customer_messages.items():
        for channel in message.channels:
            found[("customer", name, channel)] = _Use(
                message.template, channel, name, "customer", False
            )
    for name, flow in table.flows.items():
        sends = [s.send for s in flow.steps if s.send is not None]
        digested = [
            any(s.digest is not None for s in flow.steps[:i])
            for i, s in enumerate(flow.steps)
            if s.send is not None
        ]
        for index, send in enumerate(sends):
            for channel in send.channels:
                found[("flow", name, str(index), channel)] = _Use(
                    send.template, channel, flow.on, "flow", send.to != "contact", digested[index]
                )
    for target in table.targets:
        if target.digest is None or not target.enabled:
            continue
        for name, event in table.events.items():
            if target.events.matches(name, event.category):
                found[("digest", name, target.channel)] = _Use(
                    "digest", target.channel, name, "digest", True, True
                )
    return found


def _source(table: t.RoutingTable, name: str, channel: str, locale: str) -> tuple[str, str]:
    """As the runtime picks it: the locale, its language, the root, the default, the built-in."""
    variants = table.templates.get(f"{name}.{channel}", {})
    for key in (locale, locale.split("_")[0], "", table.defaults.locale):
        if key in variants:
            return variants[key], key or locale
    spec = table.channels.get(channel)
    kind: str = spec.address if spec else "email"
    if name == "digest" and "digest" in table.builtin_templates:
        kind = "digest"  # a team address's digest message without a template of its own
    return table.builtin_templates.get(kind, ""), locale


def _inputs(table: t.RoutingTable, use: _Use, locale: str) -> tuple[Any, ...] | None:
    event = table.events.get(use.event)
    if event is None or event.example is None or use.channel not in table.channels:
        return None
    source, used = _source(table, use.template, use.channel, locale)
    return (
        source,
        used,
        event.example,
        event.category,
        event.description,
        table.defaults.timezone,
        use.team,
        use.digest,
    )


def _render(use: _Use, inputs: tuple[Any, ...]) -> str:
    source, locale, example, category, description, timezone, team, digest = inputs
    context: dict[str, Any] = {
        "event": {
            "type": use.event,
            "id": "evt_example",
            "occurred_at": "2026-01-15T09:30:00Z",
            "category": category,
            "description": description,
        },
        "data": example,
        "contact": {
            "id": SAMPLE_CONTACT_ID,
            "email": "customer@example.com",
            "phone": "+34600000000",
            "locale": locale,
            "timezone": timezone,
        },
    }
    if team:
        context["recipient"] = "example-recipient"
    if digest:
        context["events"] = [{**context["event"], "data": example}]
        context["count"] = 1
    try:
        message = render(source, context, locale=locale, timezone_name=timezone)
    except TemplateError as exc:
        return f"(does not render: {exc.message or exc})"
    except (TypeError, ValueError, ArithmeticError) as exc:
        return f"(does not render: {exc})"
    return _as_text(message)


def _as_text(message: Message) -> str:
    lines = []
    if message.subject is not None:
        lines.append(f"Subject: {message.subject}")
    if message.link is not None:
        lines.append(f"Link: {message.link}")
    if lines:
        lines.append("")
    return "\n".join(lines) + message.body


def _locales(table: t.RoutingTable, use: _Use) -> set[str]:
    variants = table.templates.get(f"{use.template}.{use.channel}", {})
    return {table.defaults.locale} | {k for k in variants if k}


def _templates(old: t.RoutingTable, new: t.RoutingTable) -> list[TemplateChange]:
    old_uses, new_uses = _uses(old), _uses(new)
    groups: dict[tuple[str, str, str], TemplateChange] = {}
    done: set[tuple[object, ...]] = set()
    for key in sorted(old_uses.keys() & new_uses.keys()):
        a, b = old_uses[key], new_uses[key]
        for locale in sorted(_locales(old, a) | _locales(new, b)):
            ia, ib = _inputs(old, a, locale), _inputs(new, b, locale)
            if ia is None or ib is None or ia == ib:
                continue
            seen = (a.template, b.template, b.channel, b.event, locale, b.team, a.team)
            if seen in done:
                continue
            done.add(seen)
            before, after = _render(a, ia), _render(b, ib)
            if before == after:
                continue
            label = f"{b.template}.{b.channel}"
            if a.template != b.template:
                label = f"{a.template}.{a.channel} → {label}"
            group = groups.get((label, locale, b.kind))
            if group is None:
                text = "\n".join(
                    difflib.unified_diff(
                        before.splitlines(),
                        after.splitlines(),
                        fromfile="before",
                        tofile="after",
                        lineterm="",
                    )
                )
                groups[(label, locale, b.kind)] = TemplateChange(
                    label, locale, [b.event], b.kind, text
                )
            elif b.event not in group.events:
                group.events.append(b.event)
    return [groups[k] for k in sorted(groups)]


# ---------------------------------------------------------------------------------------------
# Showing lists of events compactly
# ---------------------------------------------------------------------------------------------


def compact_events(events: Iterable[str], catalog: Mapping[str, str | None]) -> list[str]:
    """Event names, with a whole category as `category (all N)` and everything as `every event`."""
    chosen = set(events)
    if not chosen:
        return []
    known = set(catalog)
    if len(known) > 1 and chosen >= known:
        return [f"every event ({len(known)})", *sorted(chosen - known)]
    members: dict[str, set[str]] = {}
    for name, category in catalog.items():
        if category is not None:
            members.setdefault(category, set()).add(name)
    out: list[str] = []
    left = set(chosen)
    for category in sorted(members):
        names = members[category]
        if len(names) > 1 and names <= chosen:
            out.append(f"{category} (all {len(names)})")
            left -= names
    return out + sorted(left)
