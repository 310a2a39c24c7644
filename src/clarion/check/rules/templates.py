"""Every referenced template exists and renders against its event's example in each locale."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, UndefinedError

from clarion.check.context import CheckContext
from clarion.check.models import DigestStep, SendStep
from clarion.check.rendering import TEMPLATE_NAMES, parse_template, render, unknown_names
from clarion.check.rules.settings import known_locale
from clarion.check.templates import TemplateFile
from clarion.diagnostics import Diagnostic, Location, Severity, did_you_mean
from clarion.load import YamlPath

SAMPLE_CONTACT_ID = "cus_example"
DIGEST_TEMPLATE = "digest"  # a team address's digest message: templates/digest.<channel>.j2


@dataclass(frozen=True)
class Use:
    """One place that sends template `name` on `channel` for event `event`."""

    name: str
    channel: str
    event: str
    path: YamlPath  # where the template is named (or the event, for team messages)
    required: bool  # False: a missing file falls back to the built-in message
    team: bool
    digest: bool = False  # rendered with `events` and `count` (a digest message)


def uses(ctx: CheckContext) -> list[Use]:
    config = ctx.config
    out: list[Use] = []
    for event_name, event in sorted(config.events.items()):
        name = event.template or event_name
        path: YamlPath = (
            ("events", event_name, "template") if event.template else ("events", event_name)
        )
        for channel in sorted(ctx.team_reach.get(event_name, set())):
            out.append(Use(name, channel, event_name, path, False, True))
    for event_name, message in sorted(config.customer_messages.items()):
        for channel in [*message.channels, *message.fallback]:
            path = ("customer_messages", event_name, "template")
            out.append(Use(message.template, channel, event_name, path, True, False))
    for flow_name, flow in sorted(config.flows.items()):
        digested = False
        for index, step in enumerate(flow.steps):
            digested = digested or isinstance(step, DigestStep)
            if isinstance(step, SendStep):
                path = ("flows", flow_name, "steps", index, "send", "template")
                team = step.send.to != "contact"
                for channel in [*step.send.channels, *step.send.fallback]:
                    out.append(
                        Use(step.send.template, channel, flow.on, path, True, team, digested)
                    )
    for entry in ctx.entries:
        if entry.entry.digest is None or entry.channel not in config.channels:
            continue
        for event_name in sorted(ctx.expand(entry.entry.events)):
            path = (*entry.path, "digest")
            out.append(Use(DIGEST_TEMPLATE, entry.channel, event_name, path, False, True, True))
    return out


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    index = ctx.templates
    for display, why, line in index.unreadable:
        yield Diagnostic(
            "CL403",
            f"template cannot be read: {why}",
            Location(display, line, 1 if line else 0),
            hint="save templates as UTF-8" if "UTF-8" in why else None,
            excerpt=False,
        )
    for display in index.stray:
        yield Diagnostic(
            "CL903",
            "template file name does not read as <name>.<channel>.j2 (or <locale>/<name>...)",
            Location(display),
            severity=Severity.WARNING,
        )
    for variants in index.files.values():
        for locale in variants:
            if locale is not None and not known_locale(locale):
                yield Diagnostic(
                    "CL504",
                    f"template folder {locale!r} is not a locale",
                    Location(variants[locale].display),
                    hint="locale folders are named like en, es or pt_BR",
                )
    syntax_ok: dict[str, bool] = {}
    rendered: set[tuple[str, str, bool, bool]] = set()
    referenced: set[tuple[str, str]] = set()
    explicit_missing: set[tuple[str, YamlPath]] = set()
    default_locale = ctx.config.defaults.locale
    for use in uses(ctx):
        if use.channel not in ctx.config.channels:
            continue
        variants = index.variants(use.name, use.channel)
        referenced.add((use.name, use.channel))
        if (use.name, use.channel) in index.broken:
            continue  # reported above as unreadable
        if not variants:
            if use.required:
                yield _missing(ctx, use, "")
            elif (
                use.path[-1] == "template"
                and not any(n == use.name for n, _ in index.files)
                and (use.name, use.path) not in explicit_missing
            ):
                explicit_missing.add((use.name, use.path))
                yield _missing(ctx, use, "", any_channel=True)
            continue
        if None not in variants and default_locale not in variants:
            have = ", ".join(sorted(str(k) for k in variants))
            yield _missing(ctx, use, f" for the default locale {default_locale!r} (it has {have})")
        for locale, file in sorted(variants.items(), key=lambda kv: str(kv[0])):
            if file.display not in syntax_ok:
                syntax_ok[file.display] = True
                for diagnostic in _syntax(file):
                    syntax_ok[file.display] = False
                    yield diagnostic
            if not syntax_ok[file.display]:
                continue
            key = (file.display, use.event, use.team, use.digest)
            if key in rendered:
                continue
            rendered.add(key)
            yield from _render(ctx, use, file, locale or default_locale)
    for name, channel in sorted(index.files):
        if (name, channel) in referenced:
            continue
        for file in index.files[(name, channel)].values():
            yield Diagnostic(
                "CL903",
                f"template {name}.{channel} is not used by any event, customer message or flow",
                Location(file.display),
                hint=_unused_hint(ctx, name, channel),
                severity=Severity.WARNING,
            )


def _unused_hint(ctx: CheckContext, name: str, channel: str) -> str | None:
    if channel not in ctx.config.channels:
        return did_you_mean(channel, ctx.config.channels) or f"there is no channel {channel!r}"
    if name not in ctx.config.events:
        close = did_you_mean(name, [*ctx.config.events, *_named_templates(ctx)])
        if close:
            return close
    return "remove it, or name it in a template: key"


def _named_templates(ctx: CheckContext) -> list[str]:
    names = [m.template for m in ctx.config.customer_messages.values()]
    names += [e.template for e in ctx.config.events.values() if e.template]
    return names


def _missing(ctx: CheckContext, use: Use, suffix: str, any_channel: bool = False) -> Diagnostic:
    folder = ctx.config.templates.dir
    expected = f"{folder}/{use.name}.{use.channel}.j2"
    if any_channel:
        message = f"template {use.name!r} does not exist for any channel"
    else:
        message = f"template {use.name}.{use.channel} does not exist{suffix}"
    others = [n for n in ctx.templates.names() if n != use.name]
    hint = did_you_mean(use.name, others) if not suffix else None
    if hint is None:
        hint = (
            f"create {expected}"
            + (
                f" or {folder}/{ctx.config.defaults.locale}/{use.name}.{use.channel}.j2"
                if suffix
                else ""
            )
            + ("" if ctx.templates.folder else f" (the folder {folder!r} does not exist)")
        )
    return ctx.error("CL206", message, use.path, hint=hint)


def _syntax(file: TemplateFile) -> Iterator[Diagnostic]:
    try:
        ast = parse_template(file.source)
    except TemplateSyntaxError as exc:
        yield Diagnostic(
            "CL403",
            f"template {file.name}.{file.channel} does not parse: {exc.message}",
            Location(file.display, exc.lineno or 0, 1),
        )
        return
    for unknown in unknown_names(ast, TEMPLATE_NAMES):
        yield Diagnostic(
            "CL404",
            f"template {file.name}.{file.channel} uses {unknown!r}; templates may use "
            "data, contact, event and recipient",
            Location(file.display, _first_line(file.source, unknown), 1),
            hint=f"did you mean data.{unknown}?",
        )


def _first_line(source: str, word: str) -> int:
    for number, line in enumerate(source.splitlines(), 1):
        if word in line:
            return number
    return 1


def sample_context(
    ctx: CheckContext, event_name: str, locale: str, team: bool, digest: bool = False
) -> dict[str, Any]:
    event = ctx.config.events[event_name]
    context: dict[str, Any] = {
        "event": {
            "type": event_name,
            "id": "evt_example",
            "occurred_at": "2026-01-15T09:30:00Z",
            "category": event.category,
            "description": event.description,
        },
        "data": event.example or {},
        "contact": {
            "id": SAMPLE_CONTACT_ID,
            "email": "customer@example.com",
            "phone": "+34600000000",
            "locale": locale,
            "timezone": ctx.config.defaults.timezone,
        },
    }
    if team:
        context["recipient"] = "example-recipient"
    if digest:
        context["events"] = [{**context["event"], "data": context["data"]}]
        context["count"] = 1
    return context


def _render(ctx: CheckContext, use: Use, file: TemplateFile, locale: str) -> Iterator[Diagnostic]:
    event = ctx.config.events.get(use.event)
    if event is None or event.example is None:
        return
    context = sample_context(ctx, use.event, locale, use.team, use.digest)
    try:
        render(file.source, context, locale=locale, timezone_name=ctx.config.defaults.timezone)
    except TemplateError as exc:
        line = _template_line(exc.__traceback__)
        detail = exc.message or str(exc)
        hint = None
        if isinstance(exc, UndefinedError):
            fields = ", ".join(sorted(event.example)) or "nothing"
            hint = (
                f"the example of {use.event} has {fields}; contact has id, email, phone, locale "
                "and timezone (write contact.name | default(...) for optional ones)"
            )
        where = f" ({file.locale})" if file.locale else ""
        yield Diagnostic(
            "CL404",
            f"template {file.name}.{file.channel}{where} fails for event {use.event!r}: {detail}",
            Location(file.display, line, 1 if line else 0),
            hint=hint,
        )


def _template_line(tb: TracebackType | None) -> int:
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
