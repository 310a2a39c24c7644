"""Templates and expressions: one sandboxed Jinja2 environment for the checker and the runtime.

Undefined names are errors (StrictUndefined), the environment is immutable (templates cannot change
the data they are given), and filters format money, dates and times for the reader's locale and
time zone with Babel.

Templates are config, and config comes through pull requests: a template must not be able to read
the process (the sandbox refuses `__class__`, `__globals__`...), nor take the sidecar down with
memory or time, whatever the event data. So a render is capped: at most `MAX_OUTPUT` characters
out, `MAX_SECONDS` of work (checked on every line of a template with loops or macros), no value
over `MAX_SIZE` and no width over `MAX_WIDTH` made by one operation (`'x' * 10**9`,
`'%0999999999d' % 1`, `'x'.ljust(10**9)`, `center(10**9)`, `tojson(indent=10**9)`). Over a cap is
a `RenderLimit`; Python's own errors on the values (`1 + 'x'`) are a `RenderError`. Both are
TemplateErrors: a CL404 at validate, a dead letter at run time.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from types import FrameType
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    nodes,
    pass_context,
)
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


class FilterError(TemplateError):
    """A filter was given a value it cannot format."""


class RenderLimit(SecurityError):
    """A render went over a cap: output size, time, or the size of one value."""


class RenderError(TemplateRuntimeError):
    """A template failed on the values it was given (`1 + "x"`, a division by zero...)."""


# What Python raises when a template's operators, filters or methods meet the wrong values
# (Jinja's own filters check some arguments with `assert`: truncate(-1); and Jinja writes a
# constant that folds to infinity as `inf` into the code it generates: a NameError).
VALUE_ERRORS = (
    NameError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    AttributeError,
    RecursionError,
    AssertionError,
)


# Event data reaches templates and expressions, so no value in it may make one rendering take
# unbounded time or memory: `"x" * data.n`, `data.a ** data.b`, `data.s | center(data.n)`.
# Strings, lists and numbers a template makes stay under these bounds (a message is far smaller).
MAX_SIZE = 1_000_000  # characters or items of one value a template makes
MAX_WIDTH = 10_000  # a padding width, a batch size, a format width
MAX_POWER_BITS = 64 * 1024  # the size of an integer `**` may make
_WIDE_PRINTF = re.compile(r"%[^a-zA-Z%]*(\*|\d{5})")
_WIDE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(\{|\d{5})")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# The argument after the value that sizes what the filter makes.
_WIDTH_FILTERS = {
    "center": "width",
    "indent": "width",
    "batch": "linecount",
    "slice": "slices",
    "tojson": "indent",
}


def _sized(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_SIZE:
        raise RenderLimit(f"{what} makes a value of more than {MAX_SIZE:,} characters or items")
    return value


def _narrow(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
            raise RenderLimit(f"{what} takes a width of at most {MAX_WIDTH:,}, got {value}")


def _printf(template: Any, what: str) -> None:
    if isinstance(template, str) and _WIDE_PRINTF.search(template):
        raise RenderLimit(f"{what}: a format width or precision is at most 4 digits, not *")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with the bounds above on what can grow."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _too_big_power(left, right):
            raise RenderLimit(f"{left} ** {right} is too large a number")
        if operator == "*" and _too_long_repeat(left, right):
            raise RenderLimit(f"* makes a value of more than {MAX_SIZE:,} characters or items")
        if operator == "%":
            _printf(left, "%")
        return _sized(super().call_binop(context, operator, left, right), operator)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str) and name in _PADDING_METHODS:
            _narrow(args, kwargs, f"{name}()")
        return _sized(super().call(__context, __obj, *args, **kwargs), f"{name or 'a call'}()")

    def wrap_str_format(self, value: Any) -> Any:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and _WIDE_FORMAT.search(owner):
            raise RenderLimit("format(): a field width is at most 4 digits and not nested")
        return super().wrap_str_format(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _too_big_power(base: Any, exponent: Any) -> bool:
    return (
        _is_int(base)
        and _is_int(exponent)
        and abs(base) > 1
        and exponent * abs(base).bit_length() > MAX_POWER_BITS
    )


def _too_long_repeat(left: Any, right: Any) -> bool:
    return any(
        isinstance(seq, str | list | tuple) and _is_int(times) and len(seq) * times > MAX_SIZE
        for seq, times in ((left, right), (right, left))
    )


def _bounded_filter(name: str, function: Any) -> Any:
    width = _WIDTH_FILTERS.get(name)
    # Filters that take the context (or the environment) first have the value second.
    value_at = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if width is not None:
            given = kwargs.get(width, args[value_at + 1] if len(args) > value_at + 1 else None)
            _narrow((given,), {}, name)
        if name == "format" and len(args) > value_at:
            _printf(args[value_at], "format")
        return _sized(function(*args, **kwargs), name)

    return bounded


def _bounded_lipsum(function: Any) -> Any:
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        paragraphs = kwargs.get("n", args[0] if args else 5)
        if _is_int(paragraphs) and paragraphs > 100:
            raise RenderLimit(f"lipsum() makes at most 100 paragraphs, not {paragraphs}")
        _narrow(args[1:], {k: v for k, v in kwargs.items() if k != "n"}, "lipsum()")
        return function(*args, **kwargs)

    return bounded


def _locale(context: Context) -> str:
    return _known_locale(str(context.get(LOCALE_VAR) or "en"))


@functools.lru_cache(maxsize=256)
def _known_locale(name: str) -> str:
    """`name` if Babel knows it, else "en": a contact's locale comes from an event, and, like an
    unknown time zone (UTC), an unknown locale formats in a default rather than failing."""
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(name.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return "en"
    return name.replace("-", "_")


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
    env = _BoundedSandbox(
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
    for name, function in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, function)
    env.globals["lipsum"] = _bounded_lipsum(env.globals["lipsum"])
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
    """Render template source; raises jinja2.TemplateError (syntax, undefined, filter misuse,
    RenderError for what the values make fail, RenderLimit past a cap), and nothing else."""
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
    except (OverflowError, RecursionError, MemoryError) as exc:
        # The sandbox's own refusals (`range(10**9)`) and recursion are not TemplateErrors.
        limit = RenderLimit(str(exc) or type(exc).__name__)
        raise limit.with_traceback(exc.__traceback__) from None
    except TemplateError:
        raise
    except VALUE_ERRORS as exc:
        # Python's own complaints from inside a template (`1 + 'a'`, an int of 5000 digits):
        # the template's fault; the original traceback keeps its line for the diagnostic.
        failed = RenderError(f"{type(exc).__name__}: {exc}")
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
    try:
        environment().compile_expression(source)  # refuses statements and trailing junk
    except TemplateSyntaxError:
        raise
    except (TemplateError, *VALUE_ERRORS) as exc:
        # Jinja folds constants while compiling: `data.x if 1[0] else 2` fails there already.
        message = getattr(exc, "message", None) or str(exc)
        raise TemplateSyntaxError(f"{message} (in a constant part)", 1) from None
    return environment().parse("{{ (" + source + ") }}")
