"""`clarion render [DIR] TEMPLATE --channel C`: one message as a reader would get it.

Renders with the checker's own context (the event type's `example` and a sample contact) or with a
real event from `--event FILE`; `--all -o FOLDER` writes every template, locale and channel as
files a pull request can show. Uses the checked config, never the runtime."""

from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from jinja2 import TemplateError

from clarion.check.context import CheckContext
from clarion.check.rendering import Message, render
from clarion.check.rules.settings import known_locale
from clarion.check.rules.templates import Use, sample_context, uses
from clarion.check.templates import TemplateFile, builtin_display, builtin_source
from clarion.cli import reporters
from clarion.cli.options import EnvironmentProblem, build_or_exit, settle_heap, source_line_of
from clarion.diagnostics import did_you_mean

# What may break while rendering someone's template: Jinja2's errors (undefined names, filter
# misuse, the sandbox) and the plain ones a filter or an operator raises on odd data.
RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


class RenderProblem(click.ClickException):
    """Bad input (unknown template, channel or event type; a template that fails): exit 1."""

    exit_code = 1

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@dataclass(frozen=True)
class Source:
    """The template source used, where it comes from, and the locale it renders in."""

    text: str
    display: str
    locale: str


@click.command("render")
@click.argument("args", nargs=-1, metavar="[DIR] TEMPLATE")
@click.option("--channel", "-c", metavar="C", help="Channel name (required unless --all).")
@click.option("--locale", "-l", metavar="L", help="Reader's locale (default: defaults.locale).")
@click.option(
    "--event",
    "event_file",
    metavar="FILE|-",
    help="An event as JSON ({type, data, contact?}) instead of the event type's example.",
)
@click.option("--all", "render_all", is_flag=True, help="Render every template, locale, channel.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --all: the folder to write previews and index.html into.",
)
def render_command(
    args: tuple[str, ...],
    channel: str | None,
    locale: str | None,
    event_file: str | None,
    render_all: bool,
    output: Path | None,
) -> None:
    """Print a template rendered for one channel (subject line first).

    DIR is a config directory (default: the current one). By default the message is rendered
    against the `example` of the first event (sorted) that sends TEMPLATE; --event renders a
    real event instead. With --all -o FOLDER, writes every template x locale x channel
    (<name>.<channel>.<locale>.html or .txt, and an index.html) for a pull request preview."""
    if render_all:
        if len(args) > 1:
            raise click.UsageError("--all renders every template: give at most DIR")
        if output is None:
            raise click.UsageError("--all needs -o FOLDER")
        if channel or locale or event_file:
            raise click.UsageError("--all renders every channel and locale against examples")
        directory = Path(args[0]) if args else Path(".")
        ctx = _context(directory)
        raise SystemExit(_render_all(ctx, output))
    if not args:
        raise click.UsageError("missing argument TEMPLATE")
    if len(args) > 2:
        raise click.UsageError(f"unexpected extra argument {args[2]!r}")
    if output is not None:
        raise click.UsageError("-o is for --all; a single message is printed")
    if channel is None:
        raise click.UsageError("missing option --channel")
    if locale is not None and not known_locale(locale):
        raise click.BadParameter(f"{locale!r} is not a locale", param_hint="--locale")
    directory, name = (Path(args[0]), args[1]) if len(args) == 2 else (Path("."), args[0])
    ctx = _context(directory)
    event = _read_event(event_file) if event_file else None
    message, note = _render_one(ctx, name, channel, locale, event)
    click.echo(f"# {note}", err=True)
    click.echo(_as_text(message))


def _context(directory: Path) -> CheckContext:
    result = build_or_exit(directory)
    settle_heap()
    checked = result.checked
    if checked is None or checked.context is None:
        color = sys.stderr.isatty()
        click.echo(reporters.text(result.diagnostics, source_line_of(result), color), err=True)
        click.echo(f"{directory}: {reporters.summary(result.diagnostics)}", err=True)
        raise SystemExit(1)
    if not result.ok:
        click.echo(
            f"# note: {directory} has {reporters.summary(result.diagnostics)} "
            "(see clarion validate); rendering anyway",
            err=True,
        )
    return checked.context


def _read_event(name: str) -> dict[str, Any]:
    label = "standard input" if name == "-" else name
    try:
        raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise EnvironmentProblem(f"{label}: {exc.strerror or exc}") from None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        problem = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise RenderProblem(f"{label}: not JSON: {problem}") from None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise RenderProblem(f"{label}: an event is a JSON object with a string `type`")
    if not isinstance(value.get("data", {}), dict):
        raise RenderProblem(f"{label}: the event's `data` must be a JSON object")
    contact = value.get("contact")
    if contact is not None and not (
        isinstance(contact, dict) and isinstance(contact.get("id"), str)
    ):
        raise RenderProblem(f"{label}: `contact` must be a JSON object with a string `id`")
    return value


def _candidates(ctx: CheckContext, name: str) -> list[Use]:
    """Every place that sends template `name`, plus the events whose team template it is (on
    any channel, even one no team address listens on)."""
    found = [use for use in uses(ctx) if use.name == name]
    for event_name, event in sorted(ctx.config.events.items()):
        if (event.template or event_name) == name:
            for channel in sorted(ctx.config.channels):
                found.append(Use(name, channel, event_name, ("events", event_name), False, True))
    return found


def _pick(found: list[Use], channel: str, event_type: str | None) -> Use | None:
    """The first event (sorted) that sends it, preferring this channel (and the given event)."""

    def rank(use: Use) -> tuple[bool, bool, str, bool]:
        return (
            event_type is not None and use.event != event_type,
            use.channel != channel,
            use.event,
            use.team,  # a customer message before the team's, for the same event
        )

    return min(found, key=rank) if found else None


def _unknown_template(ctx: CheckContext, name: str) -> RenderProblem:
    known = {use.name for use in uses(ctx)} | set(ctx.templates.names())
    known |= {event.template or event_name for event_name, event in ctx.config.events.items()}
    hint = did_you_mean(name, known)
    return RenderProblem(
        f"unknown template {name!r}: no event, customer message or flow sends it, and "
        f"{ctx.config.templates.dir}/ has no {name}.<channel>.j2"
        + (f"\nhint: {hint}" if hint else "")
    )


def _render_one(
    ctx: CheckContext,
    name: str,
    channel: str,
    locale: str | None,
    event: dict[str, Any] | None,
) -> tuple[Message, str]:
    config = ctx.config
    if channel not in config.channels:
        hint = did_you_mean(channel, config.channels)
        raise RenderProblem(
            f"unknown channel {channel!r}"
            + (f"\nhint: {hint}" if hint else f" (channels: {', '.join(sorted(config.channels))})")
        )
    event_type = event["type"] if event is not None else None
    if event_type is not None and event_type not in config.events:
        hint = did_you_mean(event_type, config.events)
        raise RenderProblem(
            f"unknown event type {event_type!r} in the event file"
            + (f"\nhint: {hint}" if hint else "")
        )
    found = _candidates(ctx, name)
    if not found and not ctx.templates.variants(name, channel):
        has_any = any(n == name for n, _ in ctx.templates.files)
        if not has_any:
            raise _unknown_template(ctx, name)
    use = _pick(found, channel, event_type)
    if use is None and event_type is None:
        raise RenderProblem(
            f"template {name!r} is not sent by any event, customer message or flow, so it has "
            "no example to render with\nhint: give an event with --event FILE"
        )
    event_name = event_type or (use.event if use else "")
    team = use.team if use is not None and use.event == event_name else False
    contact = (event or {}).get("contact") or {}
    reader_locale = locale or contact.get("locale") or config.defaults.locale
    source = _source(
        ctx, name, channel, reader_locale, builtin=use is not None and not use.required
    )
    if source is None:
        have = sorted(c for n, c in ctx.templates.files if n == name)
        raise RenderProblem(
            f"template {name}.{channel} does not exist"
            + (f" (it exists for {', '.join(have)})" if have else "")
            + f"\nhint: create {config.templates.dir}/{name}.{channel}.j2"
        )
    timezone = contact.get("timezone") or config.defaults.timezone
    context = sample_context(ctx, event_name, source.locale, team)
    if event is not None:
        context["data"] = event.get("data", {})
        context["event"]["id"] = event.get("id") or context["event"]["id"]
        context["event"]["occurred_at"] = (
            event.get("occurred_at") or context["event"]["occurred_at"]
        )
        if contact:
            context["contact"] = {
                key: contact[key]
                for key in ("id", "email", "phone", "name", "locale", "timezone")
                if contact.get(key) is not None
            }
    elif config.events[event_name].example is None:
        raise RenderProblem(
            f"event {event_name!r} has no `example` to render {name}.{channel} with\n"
            "hint: add an example to the event, or give one with --event FILE"
        )
    if use is not None and use.digest:
        # a digest message: the one event as the list it would be in
        context["events"] = [{**context["event"], "data": context["data"]}]
        context["count"] = 1
    try:
        message = render(source.text, context, locale=source.locale, timezone_name=timezone)
    except RENDER_ERRORS as exc:
        detail = getattr(exc, "message", None) or str(exc)
        raise RenderProblem(
            f"{source.display}: template {name}.{channel} fails for event {event_name!r}: {detail}"
        ) from None
    what = "event file" if event is not None else "example"
    who = "team message" if team else "customer message"
    if use is not None and use.event == event_name and not use.team and use.path[0] == "flows":
        who = f"flow {use.path[1]}"
    with_contact = "" if team or (event is not None and contact) else ", sample contact"
    note = (
        f"{name} on {channel} in {source.locale} ({source.display}), {who} for {event_name} "
        f"({what}{with_contact})"
    )
    return message, note


def _source(
    ctx: CheckContext, name: str, channel: str, locale: str, *, builtin: bool
) -> Source | None:
    """As the runtime looks it up: the reader's locale, its language, the folder's root, the
    default locale; then, for team messages, Clarion's built-in message."""
    variants = ctx.templates.variants(name, channel)
    default = ctx.config.defaults.locale
    for key in (locale, locale.split("_")[0], None, default):
        file: TemplateFile | None = variants.get(key)
        if file is not None:
            return Source(file.source, file.display, file.locale or locale)
    if builtin:
        kind = ctx.config.channels[channel].address
        return Source(builtin_source(kind), builtin_display(kind), locale)
    return None


def _as_text(message: Message) -> str:
    lines = []
    if message.subject is not None:
        lines.append(f"Subject: {message.subject}")
    if message.link is not None:
        lines.append(f"Link: {message.link}")
    if lines:
        lines.append("")
    lines.append(message.body)
    return "\n".join(lines)


@dataclass(frozen=True)
class Preview:
    name: str
    channel: str
    locale: str
    event: str
    file: str | None  # written file name; None when it failed
    subject: str | None
    error: str | None


def _render_all(ctx: CheckContext, folder: Path) -> int:
    config = ctx.config
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"{folder}: {exc.strerror or exc}") from None
    previews: list[Preview] = []
    default = config.defaults.locale
    for name, channel in sorted(ctx.templates.files):
        if channel not in config.channels:
            continue  # CL903: a template for no channel
        variants = ctx.templates.variants(name, channel)
        locales = sorted({default} | {k for k in variants if k is not None})
        for locale in locales:
            previews.append(_preview(ctx, folder, name, channel, locale))
    _write(folder / "index.html", _index(ctx, previews))
    written = sum(1 for p in previews if p.file)
    failed = [p for p in previews if p.error]
    for preview in failed:
        click.echo(
            f"error: {preview.name}.{preview.channel} ({preview.locale}): {preview.error}", err=True
        )
    click.echo(f"wrote {written} previews and {folder / 'index.html'}", err=True)
    return 1 if failed else 0


def _preview(ctx: CheckContext, folder: Path, name: str, channel: str, locale: str) -> Preview:
    try:
        message, _ = _render_one(ctx, name, channel, locale, None)
    except RenderProblem as problem:
        use = _pick(_candidates(ctx, name), channel, None)
        return Preview(name, channel, locale, use.event if use else "", None, None, problem.message)
    use = _pick(_candidates(ctx, name), channel, None)
    event = use.event if use else ""
    kind = ctx.config.channels[channel].address
    is_html = kind == "email" and message.body.lstrip().startswith("<")
    file = f"{name}.{channel}.{locale}.{'html' if is_html else 'txt'}"
    _write(folder / file, (message.body if is_html else _as_text(message)) + "\n")
    return Preview(name, channel, locale, event, file, message.subject, None)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EnvironmentProblem(f"{path}: {exc.strerror or exc}") from None


def _index(ctx: CheckContext, previews: list[Preview]) -> str:
    e = html.escape
    rows = []
    for p in previews:
        if p.file:
            cell = f'<a href="{e(p.file)}">{e(p.file)}</a>'
        else:
            cell = f'<span class="error">fails: {e(p.error or "")}</span>'
        rows.append(
            f"<tr><td>{e(p.name)}</td><td>{e(p.channel)}</td><td>{e(p.locale)}</td>"
            f"<td>{e(p.event)}</td><td>{e(p.subject or '')}</td><td>{cell}</td></tr>"
        )
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Clarion message previews'
        "</title>\n<style>body{font-family:sans-serif}td,th{padding:4px 8px;text-align:left}"
        ".error{color:#b00}</style></head>\n<body><h1>Message previews</h1>\n"
        f"<p>{len(previews)} messages, each rendered against its event's example "
        f"(times in {e(ctx.config.defaults.timezone)}).</p>\n"
        "<table><thead><tr><th>template</th><th>channel</th><th>locale</th><th>event</th>"
        "<th>subject</th><th>preview</th></tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></body></html>\n"
    )
