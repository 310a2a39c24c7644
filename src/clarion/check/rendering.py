"""Templates and expressions: one sandboxed Jinja2 environment for the checker and the runtime.

Undefined names are errors (StrictUndefined), the environment is immutable (templates cannot change
the data they are given), and filters format money, dates and times for the reader's locale and
time zone with Babel.

Templates are config, and config comes through pull requests: a template must not be able to read
the process (the sandbox refuses `__class__`, `__globals__`...), nor take the sidecar down with
memory or time. So a render is capped: at most `MAX_OUTPUT` characters out, `MAX_SECONDS` of work
(checked on every template line), and no single operation that would build a value larger than
the output may be (`'x' * 10**9`, `'%0999999999d' % 1`, `'x'.ljust(10**9)`, `center(10**9)`).
Over a cap is a `RenderLimit`, a TemplateError: a CL404 at validate, a dead letter at run time.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes, pass_context
from jinja2 import filters as jinja_filters
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from clarion.check.timing import zone

EXPRESSION_NAMES = frozenset({"data", "contact", "event"})
TEMPLATE_NAMES = EXPRESSION_NAMES | {"recipient", "events", "count"}  # the last two: digests
LOCALE_VAR = "_clarion_locale"
ZONE_VAR = "_clarion_timezone"
_HEADER = re.compile(r"^(Subject|Link):[ \t]*(.*)$")


MAX_OUTPUT = 512 * 1024  # characters a template may produce; far above any real message
MAX_SECONDS = 1.0  # a real template renders in well under a millisecond
_WIDE = re.compile(r"\d{6,}|\*")  # a field width or precision of 100000 and up, or `*`


class FilterError(TemplateError):
    """A filter was given a value it cannot format."""


class RenderLimit(SecurityError):
    """A render went over a cap: output size, time, or the size of one value."""


def _too_big(size: float, what: str) -> None:
    if size > MAX_OUTPUT:
        raise RenderLimit(f"{what} would be over {MAX_OUTPUT:,} characters")


class _Environment(ImmutableSandboxedEnvironment):
    # Jinja routes these operators through call_binop only when they are listed here.
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _too_big(len(seq) * times, "a repeated value")
        elif operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            if abs(left) > 1 and right > 0:
                _too_big(right * math.log10(abs(left)), "a power's digits")
        elif operator == "%" and isinstance(left, str) and _WIDE.search(left):
            raise RenderLimit("a %-format with a field width of 100000 or more, or `*`")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # Methods of strings and lists take sizes (`ljust`, `center`, `zfill`, `expandtabs`).
        if isinstance(getattr(__obj, "__self__", None), str | list):
            for value in (*args, *kwargs.values()):
                if isinstance(value, int):
                    _too_big(value, f"{getattr(__obj, '__name__', 'a method')}()")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _WIDE.search(value.__self__):
            raise RenderLimit("a format string with a field width of 100000 or more, or `*`")
        return wrapped


def _sized(name: str, *positions: int) -> Callable[..., Any]:
    """A built-in filter whose numeric arguments (widths, counts) are capped."""
    original = jinja_filters.FILTERS[name]

    @functools.wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for index in positions:
            value = args[index] if index < len(args) else None
            if isinstance(value, int):
                _too_big(value, f"the {name} filter's argument")
        for value in kwargs.values():
            if isinstance(value, int):
                _too_big(value, f"the {name} filter's argument")
        return original(*args, **kwargs)

    return checked


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
    env = _Environment(
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
    # Filters that take a width or a count: capped like the operators above.
    env.filters["center"] = _sized("center", 1)
    env.filters["indent"] = _sized("indent", 1)
    env.filters["wordwrap"] = _sized("wordwrap", 2)
    env.filters["slice"] = _sized("slice", 1)
    env.filters["batch"] = _sized("batch", 1)
    env.filters["format"] = _checked_format
    return env


def _checked_format(value: Any, *args: Any, **kwargs: Any) -> str:
    if isinstance(value, str) and _WIDE.search(value):
        raise RenderLimit("a format string with a field width of 100000 or more, or `*`")
    return str(jinja_filters.do_format(value, *args, **kwargs))


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
    """Render template source; raises jinja2.TemplateError (syntax, undefined, filter misuse,
    and RenderLimit for a render over a cap)."""
    template = compiled(source)
    deadline = time.monotonic() + MAX_SECONDS

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise RenderLimit(f"the template ran for more than {MAX_SECONDS:g} s")
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        # Line events only in the template's own code: the filters' code runs untraced.
        return on_line if frame.f_code.co_filename == "<template>" else None

    chunks: list[str] = []
    size = 0
    previous = sys.gettrace()
    timed = _can_run_long(source)
    if timed:
        sys.settrace(on_call)
    try:
        for chunk in template.generate({**context, LOCALE_VAR: locale, ZONE_VAR: timezone_name}):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderLimit(f"the message is over {MAX_OUTPUT:,} characters")
            chunks.append(chunk)
    except (ArithmeticError, RecursionError, MemoryError) as exc:
        # The sandbox's own refusals (`range(10**9)`) and recursion are not TemplateErrors.
        limit = RenderLimit(str(exc) or type(exc).__name__)
        raise limit.with_traceback(exc.__traceback__) from None
    except (ValueError, TypeError, LookupError) as exc:
        # Python's own complaints from inside a template (`1 + 'a'`, an int of 5000 digits):
        # the template's fault, reported like any other template error.
        failed = TemplateRuntimeError(f"{type(exc).__name__}: {exc}")
        raise failed.with_traceback(exc.__traceback__) from None
    finally:
        if timed:
            sys.settrace(previous)
    return split_headers("".join(chunks))


@functools.lru_cache(maxsize=2048)
def _can_run_long(source: str) -> bool:
    """Only a loop or a macro (which may recurse) can make a template run long: without them
    it runs once through, each step capped in size. Tracing costs about 5x a render, so only
    such templates are timed."""
    ast = parse_template(source)
    return any(
        True for kind in (nodes.For, nodes.Macro, nodes.CallBlock) for _ in ast.find_all(kind)
    )


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
