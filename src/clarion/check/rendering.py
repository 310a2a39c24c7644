"""Templates and expressions: one sandboxed Jinja2 environment for the checker and the runtime.

Undefined names are errors (StrictUndefined), the environment is immutable (templates cannot change
the data they are given), and filters format money, dates and times for the reader's locale and
time zone with Babel.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from clarion.check.timing import zone

EXPRESSION_NAMES = frozenset({"data", "contact", "event"})
TEMPLATE_NAMES = EXPRESSION_NAMES | {"recipient", "events", "count"}  # the last two: digests
LOCALE_VAR = "_clarion_locale"
ZONE_VAR = "_clarion_timezone"
_HEADER = re.compile(r"^(Subject|Link):[ \t]*(.*)$")


class FilterError(TemplateError):
    """A filter was given a value it cannot format."""


def _locale(context: Context) -> str:
    return str(context.get(LOCALE_VAR) or "en")


def _money(context: Context, amount: Any, currency: Any) -> str:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise FilterError(f"money() takes an integer amount in minor units, got {amount!r}")
    if not isinstance(currency, str) or len(currency) != 3:
        raise FilterError(f"money() takes a 3-letter currency code, got {currency!r}")
    return _format_money(amount, currency.upper(), _locale(context))


@functools.lru_cache(maxsize=8192)
def _format_money(amount: int, currency: str, locale: str) -> str:
    # Babel parses the locale on every call (~80 us); the same amounts recur in every message.
    from babel.numbers import format_currency, get_currency_precision

    value = Decimal(amount).scaleb(-get_currency_precision(currency))
    return str(format_currency(value, currency, locale=locale))


def _as_datetime(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FilterError(f"{what}() cannot read {value!r} as an ISO 8601 date") from None
    else:
        raise FilterError(f"{what}() takes an ISO 8601 date or date-time, got {value!r}")
    return moment


def _date(context: Context, value: Any, format: str = "medium") -> str:
    from babel.dates import format_date

    moment = _as_datetime(value, "date")
    if moment.tzinfo is not None:
        tz = zone(str(context.get(ZONE_VAR) or "UTC")) or UTC
        moment = moment.astimezone(tz)
    return str(format_date(moment.date(), format=format, locale=_locale(context)))


def _datetime(context: Context, value: Any, format: str = "medium") -> str:
    from babel.dates import format_datetime

    return str(
        format_datetime(_local(context, value, "datetime"), format=format, locale=_locale(context))
    )


def _time(context: Context, value: Any, format: str = "short") -> str:
    from babel.dates import format_time

    return str(format_time(_local(context, value, "time"), format=format, locale=_locale(context)))


def _local(context: Context, value: Any, what: str) -> datetime:
    """The moment in the reader's time zone; a moment without a zone is taken as UTC."""
    moment = _as_datetime(value, what)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(str(context.get(ZONE_VAR) or "UTC")) or UTC)


@functools.cache
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = pass_context(_money)
    env.filters["date"] = pass_context(_date)
    env.filters["datetime"] = pass_context(_datetime)
    env.filters["time"] = pass_context(_time)
    return env


@dataclass(frozen=True)
class Message:
    """A rendered template: optional `Subject:`/`Link:` header lines, then the body."""

    body: str
    subject: str | None = None
    link: str | None = None


def split_headers(text: str) -> Message:
    headers: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        match = _HEADER.match(lines[index].rstrip("\r"))
        if not match or match.group(1) in headers:
            break
        headers[match.group(1)] = match.group(2).strip()
        index += 1
    body = "\n".join(lines[index:]).strip("\n")
    return Message(body=body, subject=headers.get("Subject"), link=headers.get("Link"))


def render(
    source: str,
    context: dict[str, Any],
    *,
    locale: str,
    timezone_name: str,
) -> Message:
    """Render template source; raises jinja2.TemplateError (syntax, undefined, filter misuse)."""
    text = compiled(source).render({**context, LOCALE_VAR: locale, ZONE_VAR: timezone_name})
    return split_headers(text)


@functools.lru_cache(maxsize=2048)
def parse_template(source: str) -> nodes.Template:
    """Parse only; raises jinja2.TemplateSyntaxError with a line number."""
    return environment().parse(source)


@functools.lru_cache(maxsize=2048)
def compiled(source: str) -> Template:
    """A template compiled once per distinct source (the runtime renders the same ones often)."""
    return environment().from_string(parse_template(source))


def unknown_names(ast: nodes.Template, allowed: frozenset[str]) -> list[str]:
    """Names a template reads that it neither defines nor is given.

    jinja2.meta.find_undeclared_variables generates the whole template's code to answer this;
    walking the tree is ten times cheaper and, for the templates people write (variables,
    filters, if/for/set), gives the same answer.
    """
    loaded: set[str] = set()
    defined: set[str] = set()
    for name in ast.find_all(nodes.Name):
        (loaded if name.ctx == "load" else defined).add(name.name)
    env_globals = set(environment().globals)
    return sorted(
        loaded - defined - allowed - env_globals - {"loop", "caller", "varargs", "kwargs"}
    )


@functools.lru_cache(maxsize=4096)
def parse_expression(source: str) -> nodes.Template:
    """Parse a bare expression (`data.amount >= 100`); raises TemplateSyntaxError."""
    environment().compile_expression(source)  # refuses statements and trailing junk
    return environment().parse("{{ (" + source + ") }}")
