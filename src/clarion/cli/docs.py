"""`clarion docs [DIR] -o FOLDER`: a static HTML site of the config, for a team to publish from CI.

Built from the compiled routing table (so a config directory and a table file give the same site):
the event catalogue, the matrix of who gets which event on which channel, the customer messages and
the flows as timelines. Plain files: four pages, one CSS file and one small script (a filter box,
the pages work without it); no network request, no time stamp (the same table gives the same
bytes). Secrets never reach a page: a push device is shown by its name, never its URL, and a
channel's Apprise URLs are not shown at all. Every text goes through Jinja2's autoescaping.
The runtime is never imported."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import click
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from clarion.cli.options import EnvironmentProblem, table_or_exit
from clarion.compile import RoutingTable, digest
from clarion.compile.table import Flow, Route, Selector, Step, Target

PAGES = ("index.html", "events.html", "customers.html", "flows.html")
ASSETS = ("clarion-docs.css", "clarion-docs.js")
NO_CATEGORY = "(no category)"
MINUS = "\u2212"  # a real minus sign in offsets, as in the flow summaries

CellState = Literal["on", "route", "maybe", "disabled", "none"]


@click.command("docs")
@click.argument("source", required=False, default=".", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder to write the site into (created if missing; other files are left alone).",
)
def docs_command(source: Path, output: Path) -> None:
    """Write a static HTML site of a config: event catalogue, who gets what, customer messages,
    flows.

    SOURCE is a config directory (default: the current one) or a compiled table file. Writes
    index.html (the matrix of who gets which event on which channel), events.html,
    customers.html, flows.html, a CSS file and a small script into FOLDER; nothing is fetched
    from the network when the pages are opened."""
    table, table_digest = _load(source)
    site = Site.of(table, table_digest)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"{output}: {exc.strerror or exc}") from None
    env = _environment()
    for page in PAGES:
        text = env.get_template(f"{page}.j2").render(site=site, page=page)
        _write(output / page, text)
    assets = files("clarion.cli").joinpath("docs_site")
    for asset in ASSETS:
        _write(output / asset, assets.joinpath(asset).read_text(encoding="utf-8"))
    click.echo(f"wrote {output / 'index.html'} and {len(PAGES) + len(ASSETS) - 1} more", err=True)


# ---------------------------------------------------------------------------------------------
# Reading the table
# ---------------------------------------------------------------------------------------------


def _load(source: Path) -> tuple[RoutingTable, str]:
    _, raw = table_or_exit(source, nothing="; nothing written")
    # Read back from the canonical bytes, as from a table file: the same site either way (the
    # canonical form sorts mappings, which the pages order by schema instead).
    return RoutingTable.model_validate_json(raw), digest(raw)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("clarion.cli", "docs_site"),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wbr"] = breakable
    return env


def breakable(text: str, where: str = "._@") -> Markup:
    """Escaped, with line-break opportunities after dots and underscores and before `@` (those
    of them in `where`), so a long event name or address wraps at its parts in a narrow column,
    not letter by letter."""
    out = []
    for char in text:
        if char not in where:
            out.append(escape(char))
        elif char == "@":
            out.append(Markup("<wbr>@"))
        else:
            out.append(escape(char) + Markup("<wbr>"))
    return Markup("").join(out)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EnvironmentProblem(f"{path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------
# What the pages show
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One team address, push device or inbox: a column of the matrix."""

    id: str
    recipient: str
    channel: str
    label: str  # the address, the device's name, or "inbox"; never a device URL
    enabled: bool
    wants: str  # the event toggles in words
    timezone: str
    locale: str
    first: bool  # the first of its recipient's columns

    @property
    def search(self) -> str:
        return f"{self.recipient} {self.channel} {self.label}".lower()


@dataclass(frozen=True)
class Cell:
    target: str
    state: CellState
    notes: tuple[str, ...] = ()  # "by route NAME when COND"

    @property
    def title(self) -> str:
        return {
            "on": "gets it (its own event toggles)",
            "route": "gets it by route",
            "maybe": "gets it by route, when the condition holds",
            "disabled": "would get it, but the device is disabled",
            "none": "does not get it",
        }[self.state]


@dataclass(frozen=True)
class PayloadField:
    name: str
    type: str
    required: bool
    notes: str


@dataclass(frozen=True)
class EventDoc:
    name: str
    category: str | None
    description: str | None
    critical: bool
    batch: bool
    template: str
    fields: list[PayloadField]
    free_form: bool  # the schema says nothing about the fields
    example: str | None  # pretty JSON
    cells: list[Cell]
    reached: list[str]  # "owner · email (owner@...)", with route notes
    customer: str | None  # "email: receipt (on)"
    flows: list[str]  # flows this event starts or cancels

    @property
    def anchor(self) -> str:
        return f"event-{self.name}"

    @property
    def search(self) -> str:
        return f"{self.name} {self.category or ''}".lower()


@dataclass(frozen=True)
class Category:
    name: str
    events: list[EventDoc]

    @property
    def anchor(self) -> str:
        return "uncategorised" if self.name == NO_CATEGORY else f"category-{self.name}"


@dataclass(frozen=True)
class Group:
    """A recipient's columns, side by side under its name."""

    recipient: str
    columns: list[Column]


@dataclass(frozen=True)
class RouteDoc:
    name: str
    events: str
    when: str | None
    to: list[str]
    channels: str


@dataclass(frozen=True)
class MessageDoc:
    event: str
    channels: list[str]
    template: str
    enabled: bool
    attach: str | None


@dataclass(frozen=True)
class FlowSend:
    """A flow's `send` step to the contact: a customer message too, on a schedule."""

    flow: str
    on: str
    channels: list[str]
    template: str


@dataclass(frozen=True)
class StepDoc:
    kind: Literal["wait", "send", "emit", "digest"]
    text: str
    detail: str | None = None


@dataclass(frozen=True)
class FlowDoc:
    name: str
    on: str
    when: str | None
    unless: str | None
    key: str | None
    cancel_on: list[str]
    steps: list[StepDoc]

    @property
    def summary(self) -> str:
        return " \u2192 ".join([f"on {self.on}", *(step.text for step in self.steps)])

    @property
    def anchor(self) -> str:
        return f"flow-{self.name}"


@dataclass(frozen=True)
class ChannelDoc:
    name: str
    address: str
    rate: str | None
    providers: int


@dataclass
class Site:
    digest: str
    timezone: str
    locale: str
    categories: list[Category]
    groups: list[Group]
    routes: list[RouteDoc]
    messages: list[MessageDoc]
    flow_sends: list[FlowSend]
    consent: dict[str, bool]
    flows: list[FlowDoc]
    channels: list[ChannelDoc]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[Column]:
        return [column for group in self.groups for column in group.columns]

    @property
    def events(self) -> list[EventDoc]:
        return [event for category in self.categories for event in category.events]

    @classmethod
    def of(cls, table: RoutingTable, table_digest: str) -> Site:
        defaults = table.defaults
        groups: dict[str, list[Column]] = {}
        targets = sorted(table.targets, key=lambda t: (t.recipient, t.channel, t.id))
        for target in targets:
            recipient = table.recipients.get(target.recipient)
            first = target.recipient not in groups
            groups.setdefault(target.recipient, []).append(
                Column(
                    id=target.id,
                    recipient=target.recipient,
                    channel=target.channel,
                    label=_label(target),
                    enabled=target.enabled,
                    wants=describe_selector(target.events),
                    timezone=(recipient.timezone if recipient else None) or defaults.timezone,
                    locale=(recipient.locale if recipient else None) or defaults.locale,
                    first=first,
                )
            )
        by_category: dict[str, list[EventDoc]] = {}
        for name in sorted(table.events):
            doc = _event_doc(table, name, targets)
            by_category.setdefault(doc.category or NO_CATEGORY, []).append(doc)
        categories = [
            Category(name, by_category[name])
            for name in sorted(by_category, key=lambda c: (c == NO_CATEGORY, c))
        ]
        messages = [
            MessageDoc(event, list(m.channels), m.template, m.enabled, m.attach)
            for event, m in sorted(table.customer_messages.items())
        ]
        flows = [
            _flow_doc(name, flow, defaults.timezone) for name, flow in sorted(table.flows.items())
        ]
        channels = [
            ChannelDoc(
                name,
                channel.address,
                _rate(channel.rate.count, channel.rate.per_seconds) if channel.rate else None,
                len(channel.apprise),
            )
            for name, channel in sorted(table.channels.items())
        ]
        site = cls(
            digest=table_digest,
            timezone=defaults.timezone,
            locale=defaults.locale,
            categories=categories,
            groups=[Group(name, columns) for name, columns in groups.items()],
            routes=[_route_doc(route) for route in table.routes],
            messages=messages,
            flow_sends=[
                FlowSend(name, flow.on, list(step.send.channels), step.send.template)
                for name, flow in sorted(table.flows.items())
                for step in flow.steps
                if step.send is not None and step.send.to == "contact"
            ],
            consent=dict(sorted(table.consent_default.items())),
            flows=flows,
            channels=channels,
        )
        site.counts = {
            "events": len(table.events),
            "categories": len(categories),
            "recipients": len(groups),
            "targets": len(targets),
            "disabled": sum(1 for t in targets if not t.enabled),
            "routes": len(table.routes),
            "messages_on": sum(1 for m in messages if m.enabled),
            "messages_off": sum(1 for m in messages if not m.enabled),
            "flows": len(flows),
        }
        return site


def _label(target: Target) -> str:
    if target.device is not None:
        return target.device  # never target.url: it holds the device's secret topic or token
    if target.address is not None:
        return target.address
    return "inbox" if target.kind == "inbox" else target.channel


def describe_selector(selector: Selector) -> str:
    """A target's or route's event toggles in words."""
    if selector.all:
        left_out = [f"category {c}" for c in selector.except_categories] + list(
            selector.except_events
        )
        return "all events" + (f" except {', '.join(left_out)}" if left_out else "")
    parts = []
    if selector.categories:
        word = "category" if len(selector.categories) == 1 else "categories"
        parts.append(f"{word} {', '.join(selector.categories)}")
    if selector.events:
        parts.append(", ".join(selector.events))
    return "; ".join(parts) if parts else "no events (Disable All)"


def _reaches(route: Route, target: Target) -> bool:
    return target.recipient in route.to and (
        route.channels is None or target.channel in route.channels
    )


def route_note(route: Route) -> str:
    return f"by route {route.name}" + (f" when {route.when}" if route.when else "")


def cell(table: RoutingTable, target: Target, event: str, category: str | None) -> Cell:
    """Whether this address or device gets the event: as the planner decides, without the
    route conditions' values (shown instead)."""
    wants = target.events.matches(event, category)
    routing = [r for r in table.routes if _reaches(r, target) and r.events.matches(event, category)]
    if not target.enabled:
        return Cell(target.id, "disabled" if wants or routing else "none")
    if wants:
        return Cell(target.id, "on")
    if routing:
        notes = tuple(route_note(r) for r in routing)
        always = any(r.when is None for r in routing)
        return Cell(target.id, "route" if always else "maybe", notes)
    return Cell(target.id, "none")


def _event_doc(table: RoutingTable, name: str, targets: list[Target]) -> EventDoc:
    event = table.events[name]
    cells = [cell(table, target, name, event.category) for target in targets]
    reached = []
    for target, c in zip(targets, cells, strict=True):
        if c.state in ("on", "route", "maybe"):
            who = f"{target.recipient} \u00b7 {target.channel} ({_label(target)})"
            reached.append(who + (f", {'; '.join(c.notes)}" if c.notes else ""))
    message = table.customer_messages.get(name)
    customer = None
    if message is not None:
        state = "on" if message.enabled else "off"
        customer = f"{', '.join(message.channels)}: {message.template} ({state})"
        if message.fallback:
            customer += f", fallback {', '.join(message.fallback)}"
    flows = [f"starts {f}" for f, flow in sorted(table.flows.items()) if flow.on == name]
    flows += [f"cancels {f}" for f, flow in sorted(table.flows.items()) if name in flow.cancel_on]
    flows += [
        f"emitted by {f}"
        for f, flow in sorted(table.flows.items())
        if any(step.emit == name for step in flow.steps)
    ]
    fields, free_form = payload_fields(event.data_schema)
    example = None
    if event.example is not None:
        example = json.dumps(
            in_schema_order(event.example, event.data_schema), indent=2, ensure_ascii=False
        )
    return EventDoc(
        name=name,
        category=event.category,
        description=event.description,
        critical=event.critical,
        batch=event.batch,
        template=event.template,
        fields=fields,
        free_form=free_form,
        example=example,
        cells=cells,
        reached=reached,
        customer=customer,
        flows=flows,
    )


def _route_doc(route: Route) -> RouteDoc:
    return RouteDoc(
        name=route.name,
        events=describe_selector(route.events),
        when=route.when,
        to=list(route.to),
        channels=", ".join(route.channels) if route.channels else "every channel they have",
    )


# ---------------------------------------------------------------------------------------------
# Payload schemas, readably
# ---------------------------------------------------------------------------------------------

_NOTE_KEYS = (
    ("format", "format {}"),
    ("pattern", "pattern {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "\u2265 {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "\u2264 {}"),
    ("exclusiveMaximum", "< {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
)


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def type_of(schema: Any) -> str:
    """A JSON Schema's type in a few words: `string`, `integer or null`, `array of string`."""
    if not isinstance(schema, dict):
        return "any" if schema is True or schema is None else "nothing"
    if "const" in schema:
        return f"always {_scalar(schema['const'])}"
    if "$ref" in schema:
        return f"see {schema['$ref']}"
    for combiner, word in (("anyOf", " or "), ("oneOf", " or "), ("allOf", " and ")):
        options = schema.get(combiner)
        if isinstance(options, list) and options and "type" not in schema:
            return word.join(type_of(option) for option in options)
    kind = schema.get("type")
    names = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    words = []
    for name in names:
        if name == "array":
            items = schema.get("items")
            words.append(f"array of {type_of(items)}" if isinstance(items, dict) else "array")
        else:
            words.append(str(name))
    if not words:
        return "object" if "properties" in schema else "any"
    return " or ".join(words)


def _notes(schema: dict[str, Any]) -> str:
    notes = []
    if isinstance(schema.get("description"), str):
        notes.append(schema["description"])
    enum = schema.get("enum")
    if isinstance(enum, list):
        notes.append("one of " + ", ".join(_scalar(v) for v in enum))
    for key, form in _NOTE_KEYS:
        if key in ("minLength", "minItems") and schema.get(key) == 1:
            notes.append("not empty")
        elif key in schema and not isinstance(schema[key], dict | list):
            notes.append(form.format(_scalar(schema[key])))
    if "default" in schema:
        notes.append(f"default {_scalar(schema['default'])}")
    return "; ".join(notes)


def payload_fields(schema: Any, prefix: str = "") -> tuple[list[PayloadField], bool]:
    """The fields of an event's `data`, nested ones as `parent.child` and `list[].child`.
    Second: True when the schema names no field at all."""
    out: list[PayloadField] = []
    _collect(schema, prefix, out, depth=0)
    return out, not out


def _collect(schema: Any, prefix: str, out: list[PayloadField], depth: int) -> None:
    if not isinstance(schema, dict) or depth > 8:
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = schema.get("required")
        needed = set(required) if isinstance(required, list) else set()
        for name in field_order(schema):
            sub = properties[name]
            path = f"{prefix}{name}"
            sub_schema = sub if isinstance(sub, dict) else {}
            out.append(PayloadField(path, type_of(sub), name in needed, _notes(sub_schema)))
            _collect(sub_schema, f"{path}.", out, depth + 1)
            items = sub_schema.get("items")
            if isinstance(items, dict):
                _collect(items, f"{path}[].", out, depth + 1)


def field_order(schema: dict[str, Any]) -> list[str]:
    """An object schema's properties: the required ones in the order `required` lists them,
    then the others by name (mappings reach the table sorted; lists keep the author's order)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    required = schema.get("required")
    first = [n for n in required if n in properties] if isinstance(required, list) else []
    return list(dict.fromkeys(first)) + sorted(n for n in properties if n not in first)


def in_schema_order(value: Any, schema: Any, depth: int = 0) -> Any:
    """An example with its keys in the order of the payload table."""
    if isinstance(value, list) and isinstance(schema, dict) and depth < 8:
        return [in_schema_order(v, schema.get("items"), depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    known = field_order(schema) if isinstance(schema, dict) and depth < 8 else []
    properties = schema.get("properties", {}) if known and isinstance(schema, dict) else {}
    keys = [k for k in known if k in value] + sorted(k for k in value if k not in known)
    return {k: in_schema_order(value[k], properties.get(k), depth + 1) for k in keys}


# ---------------------------------------------------------------------------------------------
# Flows, as timelines
# ---------------------------------------------------------------------------------------------


def duration(seconds: int) -> str:
    """3600 -> `1h`, 90000 -> `1d 1h`, 0 -> `0s`."""
    left = abs(seconds)
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts) or "0s"


def _rate(count: int, per_seconds: int) -> str:
    unit = {1: "s", 60: "m", 3600: "h"}.get(per_seconds)
    return f"{count}/{unit}" if unit else f"{count} per {duration(per_seconds)}"


def _step_doc(step: Step, timezone: str) -> StepDoc:
    if step.wait is not None:
        wait = step.wait
        if wait.kind == "for":
            return StepDoc("wait", f"wait {duration(wait.seconds or 0)}")
        text = f"wait until {wait.until}"
        if wait.offset_seconds:
            sign = MINUS if wait.offset_seconds < 0 else "+"
            text += f" {sign}{duration(wait.offset_seconds)}"
        if wait.at:
            text += f" at {wait.at}"
        detail = f"{wait.at} in the contact's time zone, else {timezone}" if wait.at else None
        if wait.late == "skip":
            text += " (skip if late)"
            late = "not retroactive: if the moment had passed when the run was planned, skipped"
        else:
            late = "if the moment had passed when the run was planned, sent at once"
        return StepDoc("wait", text, f"{detail}; {late}" if detail else late)
    if step.send is not None:
        send = step.send
        channels = ", ".join(send.channels)
        if send.to == "contact":
            note = "to the contact"
            if send.fallback:
                note += f"; fallback {', '.join(send.fallback)}"
            return StepDoc("send", f"send {channels}: {send.template}", note)
        who = ", ".join(send.to)
        note = "to the team"
        if send.unless == "read":
            note += "; not sent if an in-app item this run sent was read"
        return StepDoc("send", f"send to {who} by {channels}: {send.template}", note)
    if step.digest is not None:
        spec = step.digest
        most = f", at most {spec.max} events each" if spec.max is not None else ""
        return StepDoc(
            "digest",
            f"digest {duration(spec.window_seconds)} by {spec.key}",
            f"runs with the same key within the window send the steps after this once{most}",
        )
    return StepDoc("emit", f"emit {step.emit}", "once the message before it was delivered")


def _flow_doc(name: str, flow: Flow, timezone: str) -> FlowDoc:
    return FlowDoc(
        name=name,
        on=flow.on,
        when=flow.when,
        unless=flow.unless,
        key=flow.key,
        cancel_on=list(flow.cancel_on),
        steps=[_step_doc(step, timezone) for step in flow.steps],
    )
