"""Template filters format money and dates for the reader; headers split off the body."""

from __future__ import annotations

import pytest
from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError

from clarion.check.rendering import parse_expression, render, split_headers
from clarion.runtime.planner import condition, evaluate


def show(source: str, locale: str = "en", tz: str = "Europe/Madrid", **data: object) -> str:
    return render(source, {"data": data}, locale=locale, timezone_name=tz).body


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "expected"),
    [
        ("en", 4999, "EUR", "€49.99"),
        ("es", 4999, "EUR", "49,99\xa0€"),
        ("en", 4999, "JPY", "¥4,999"),  # no minor units
        ("id", 150000000, "IDR", "Rp1.500.000,00"),  # CLDR: no space in id
        ("en", 1000, "KWD", "KWD1.000"),  # three minor units
    ],
)
def test_money_from_minor_units(locale: str, amount: int, currency: str, expected: str) -> None:
    assert show("{{ data.a | money(data.c) }}", locale, a=amount, c=currency) == expected


def test_money_refuses_a_non_integer_amount() -> None:
    with pytest.raises(TemplateError, match="integer amount in minor units"):
        show("{{ data.a | money('EUR') }}", a="49.99")


def test_dates_in_locale_and_time_zone() -> None:
    assert show("{{ data.d | date }}", "en", d="2026-03-10") == "Mar 10, 2026"
    assert show("{{ data.d | date('long') }}", "es", d="2026-03-10") == "10 de marzo de 2026"
    # 23:30 UTC is already the next day in Madrid
    assert show("{{ data.t | date }}", "en", t="2026-03-10T23:30:00Z") == "Mar 11, 2026"
    assert (
        show("{{ data.t | time }}", "en", "Asia/Jakarta", t="2026-03-10T02:00:00Z")
        == "9:00\u202fAM"
    )


def test_undefined_is_an_error_and_the_sandbox_holds() -> None:
    with pytest.raises(TemplateError):
        show("{{ data.missing }}")
    with pytest.raises(SecurityError):
        show("{{ data.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        show("{{ data.x.append(1) }}", x=[])


def test_headers() -> None:
    message = split_headers("Subject: Paid\nLink: https://x.example/1\nHello\n\nBye\n")
    assert (message.subject, message.link, message.body) == (
        "Paid",
        "https://x.example/1",
        "Hello\n\nBye",
    )
    plain = split_headers("Amount: 5\nSubject: late")
    assert plain.subject is None and plain.body.startswith("Amount")


@pytest.mark.parametrize(
    ("source", "data"),
    [
        ("{{ 'x' * data.n }}", {"n": 10**9}),
        ("{{ data.a ** data.b }}", {"a": 7, "b": 10**8}),
        ("{{ data.s | center(data.n) }}", {"s": "x", "n": 10**9}),
        ("{{ data.s | indent(data.n) }}", {"s": "a\nb", "n": 10**9}),
        ("{{ data.s.rjust(data.n) }}", {"s": "x", "n": 10**9}),
        ("{{ [1] | batch(data.n, 'x') | list }}", {"n": 10**9}),
        ("{{ data.f % 1 }}", {"f": "%0999999999d"}),
        ("{{ data.f | format(1) }}", {"f": "%*d"}),
        ("{{ data.f.format(1) }}", {"f": "{:>999999999}"}),
        # found by tests/fuzz (a longer run): 4 GB of indentation
        ("{{ -121 | tojson(data.n) }}", {"n": 10**9}),
        ("{{ lipsum(data.n) }}", {"n": 10**9}),
        (
            "{{ data.s | replace('', 'aa') | replace('', 'aa') | replace('', 'aa') }}",
            {"s": "a" * 99999},
        ),
    ],
)
def test_event_data_cannot_make_a_template_grow_without_bound(
    source: str, data: dict[str, object]
) -> None:
    # Each of these took seconds to minutes and up to gigabytes before the sandbox bounded them.
    with pytest.raises(SecurityError):
        render(source, {"data": data}, locale="en", timezone_name="UTC")


def test_bounded_operators_still_work_at_ordinary_sizes() -> None:
    assert show("{{ 2 ** 10 }} {{ 'ab' * 2 }} [{{ 'x' | center(5) }}] {{ '%.2f' % 3.14159 }}") == (
        "1024 abab [  x  ] 3.14"
    )
    assert show("{{ '{:>4}'.format(7) }}|{{ 'a\nb' | indent(2) }}") == "   7|a\n  b"
    # a value, not a width: only the argument after it is bounded
    assert show("{{ 1000000 | tojson }} {{ 1000000 | string | center(9) }}") == "1000000  1000000 "
    assert show("{{ data.d | tojson(2) }}", d={"a": 1}) == '{\n  "a": 1\n}'
    assert len(show("{{ lipsum(2, false) }}")) > 10


@pytest.mark.parametrize(
    ("source", "data", "message"),
    [
        ("{{ data.a + 'x' }}", {"a": 1}, "TypeError"),
        ("{{ 1 / data.z }}", {"z": 0}, "ZeroDivisionError"),
        ("{{ data.items[5] }}", {"items": [1]}, "Undefined"),  # jinja's own, a TemplateError too
        ("{% if 1e308 + 1e308 %}y{% endif %}", {}, "NameError"),
    ],
)
def test_a_failure_on_the_values_is_a_template_error(
    source: str, data: dict[str, object], message: str
) -> None:
    with pytest.raises(TemplateError) as raised:
        render(source, {"data": data}, locale="en", timezone_name="UTC")
    assert message in type(raised.value).__name__ + str(raised.value)


def test_an_expression_whose_constant_part_fails_does_not_parse() -> None:
    # found by tests/fuzz: Jinja folds constants while compiling, and `1[0]` failed there with an
    # UndefinedError that the checker did not expect (clarion validate ended in a traceback)
    with pytest.raises(TemplateSyntaxError, match="no element 0"):
        parse_expression("data.x if 1[0] else 2")


@pytest.mark.parametrize(
    ("source", "data"),
    [
        ("data.n | dictsort", {"n": 5}),  # AttributeError inside the filter
        ("data.a // data.b", {"a": 1, "b": 0}),  # ZeroDivisionError
        ("data.a + 1", {"a": "x"}),  # TypeError
        ("data.s | truncate(data.n)", {"s": "abc", "n": -(10**9)}),  # Jinja's own `assert`
        # Jinja folds the constant to infinity and generates `inf`, a NameError when it runs
        ("(1e308 + 1e308) > data.x", {"x": 1}),
    ],
)
def test_a_condition_that_fails_on_the_data_is_false_with_a_reason(
    source: str, data: dict[str, object]
) -> None:
    # found by tests/fuzz: an AttributeError escaped `condition`, failing the whole accept (a 500)
    value, problem = condition(source, {"data": data})
    assert value is False and problem is not None and source in problem
    with pytest.raises(TemplateError):
        evaluate(source, {"data": data})


@pytest.mark.parametrize("locale", ["xx", "zz_ZZ", "../x", ""])
def test_an_unknown_locale_formats_in_english(locale: str) -> None:
    # found by tests/fuzz: a contact's locale comes from the event; Babel's UnknownLocaleError
    # escaped the template, and the dispatcher left the delivery claimed ("sending") for good
    assert show(
        "{{ data.a | money('EUR') }} {{ data.d | date }}", locale, a=4999, d="2026-03-10"
    ) == ("€49.99 Mar 10, 2026")
