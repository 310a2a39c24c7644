"""Fuzzing templates' expressions: any expression over any event data parses or fails to parse
with a TemplateSyntaxError, and renders or fails with a TemplateError; a route's condition is
true, false, or false with a reason. Never another exception, a hang or unbounded memory."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st
from jinja2 import TemplateError, TemplateSyntaxError

from clarion.check.rendering import (
    EXPRESSION_NAMES,
    environment,
    parse_expression,
    parse_template,
    render,
    unknown_names,
)
from clarion.runtime.planner import condition
from tests.fuzz.harness import bounded, fuzz_settings

BIG = st.sampled_from([10**9, 2**64, 10**5, 99999, -(10**9), 0, -1, 7])
LITERALS = st.one_of(
    st.integers(-1000, 1000).map(str),
    BIG.map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        ["'x'", "'%s'", "'%099999d'", "'%*d'", "'{:>99999}'", "'{}'", "'a\\nb'", "''", "none",
         "true", "[1, 2, 3]", "[]", "{}", "{'a': 1}", "(1, 2)", "range(10)", "range(10**9)",
         "'{{ data }}'", "'é'", "lipsum", "dict", "cycler", "joiner", "namespace"]
    ),
)  # fmt: skip
NAMES = st.sampled_from(
    ["data", "data.amount", "data.currency", "data.items", "data.s", "data.n", "data.missing",
     "data['amount']", "data.items[0]", "contact", "contact.name", "contact.locale", "event",
     "event.type", "event.occurred_at", "data.nested.deep", "data.__class__", "data.items.pop",
     "data.s.__len__", "undefined_name", "recipient"]
)  # fmt: skip
FILTERS = sorted(environment().filters)
METHODS = st.sampled_from(
    ["center", "ljust", "rjust", "zfill", "replace", "format", "split", "join", "upper",
     "expandtabs", "startswith", "count", "encode", "items", "keys", "get", "mro"]
)  # fmt: skip
BINARY = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "==", "<", "in"])


def _expressions() -> st.SearchStrategy[str]:
    atoms = st.one_of(LITERALS, NAMES)

    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        args = st.lists(st.one_of(inner, BIG.map(str)), max_size=3).map(", ".join)
        return st.one_of(
            st.tuples(inner, BINARY, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, st.sampled_from(FILTERS), args).map(
                lambda t: f"({t[0]} | {t[1]}({t[2]}))"
            ),
            st.tuples(inner, METHODS, args).map(lambda t: f"{t[0]}.{t[1]}({t[2]})"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
            inner.map(lambda e: f"(not {e})"),
            inner.map(lambda e: f"(-{e})"),
        )

    return st.recursive(atoms, grow, max_leaves=8)


EXPRESSIONS = _expressions()
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), BIG, st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
DATA = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(("amount", "currency", "items", "s", "n", "nested"), VALUES),
).flatmap(lambda d: st.just(d) | st.dictionaries(st.text(max_size=8), VALUES, max_size=3))


def _context(data: Any) -> dict[str, Any]:
    return {
        "data": data,
        "contact": {"id": "c1", "name": "Ana", "locale": "es"},
        "event": {"type": "payment.failed", "id": "e1", "occurred_at": "2026-03-10T09:00:00Z"},
    }


@fuzz_settings(default=300)
@given(source=EXPRESSIONS, data=DATA)
def test_any_expression_over_any_data(source: str, data: Any) -> None:
    with bounded(source):
        try:
            ast = parse_expression(source)
        except TemplateSyntaxError:
            event("does not parse")
            return
        unknown_names(ast, EXPRESSION_NAMES)
        value, problem = condition(source, _context(data))
        assert isinstance(value, bool)
        assert problem is None or isinstance(problem, str)
        event("false with a reason" if problem else f"evaluates to {value}")
        try:
            render("{{ " + source + " }}", _context(data), locale="es", timezone_name="UTC")
        except TemplateError:
            event("render: TemplateError")


@fuzz_settings(default=150)
@given(
    shape=st.sampled_from(
        [
            "{{ E }}",
            "{% if E %}yes{% else %}{{ E }}{% endif %}",
            "{% for x in E %}{{ x }}{{ E }}{% endfor %}",
            "Subject: {{ E }}\nLink: {{ E }}\n\n{{ E | money(E) }} {{ E | date }} {{ E | time }}",
            "{% set v = E %}{{ v }}{{ v ~ E }}",
            "{{ E | datetime('full') }}{{ E | date(E) }}",
        ]
    ),
    parts=st.lists(EXPRESSIONS, min_size=4, max_size=4),
    data=DATA,
    locale=st.sampled_from(["en", "es", "id", "xx", "", "en_US_POSIX"]),
    zone=st.sampled_from(["UTC", "Europe/Madrid", "Nope/Nope", ""]),
)
def test_any_template_over_any_data(
    shape: str, parts: list[str], data: Any, locale: str, zone: str
) -> None:
    source = shape
    for part in parts:
        source = source.replace("E", part, 1)
    source = source.replace("E", parts[0])
    with bounded(source):
        try:
            parse_template(source)
        except TemplateSyntaxError:
            event("does not parse")
            return
        try:
            message = render(source, _context(data), locale=locale, timezone_name=zone)
        except TemplateError:
            event("render: TemplateError")
            return
        event("rendered")
        assert isinstance(message.body, str)
