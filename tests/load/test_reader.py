"""The loader: YAML 1.2 core types, exact positions, and refusals that never raise."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clarion.diagnostics import Diagnostic
from clarion.load import MAX_ALIAS_NODES, load_directory, load_text
from clarion.load.reader import read_file


def codes(diagnostics: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [
        (d.code, d.location.line if d.location else 0, d.location.column if d.location else 0)
        for d in diagnostics
    ]


def test_yaml_12_core_types_keep_names_and_times_as_strings() -> None:
    result = load_text(
        "on: order.created\nat: 09:00\nday: 2026-03-10\nyes: no\nn: 0x1F\nok: true\n"
    )
    assert result.diagnostics == []
    assert result.document is not None
    assert result.document.data == {
        "on": "order.created",
        "at": "09:00",
        "day": "2026-03-10",
        "yes": "no",
        "n": 31,
        "ok": True,
    }


def test_every_value_and_key_has_its_position() -> None:
    result = load_text("events:\n  payment.failed:\n    category: payments\n")
    document = result.document
    assert document is not None
    loc = document.locate(("events", "payment.failed", "category"))
    assert loc is not None and (loc.line, loc.column) == (3, 15)
    key = document.locate_key(("events", "payment.failed"))
    assert key is not None and (key.line, key.column) == (2, 3)
    # a path below a value falls back to the nearest enclosing one
    deeper = document.locate(("events", "payment.failed", "category", "x"))
    assert deeper == loc


def test_duplicate_key_cites_both_lines() -> None:
    result = load_text("events:\n  a: {}\n  a: {}\n")
    assert codes(result.diagnostics) == [("CL004", 3, 3)]
    assert result.diagnostics[0].related[0][1].line == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:\n\tb: 1\n", ("CL003", 2, 1)),
        ("a: 1\n b: 2\n", ("CL003", 2, 3)),
        ("- one\n- two\n", ("CL005", 1, 1)),
        ("just a string\n", ("CL005", 1, 1)),
        ("a: !!python/object/apply:os.system [ls]\n", ("CL009", 1, 4)),
        ("a: &x [*x]\n", ("CL006", 1, 4)),
        ("? [a, b]\n: c\n", ("CL010", 1, 3)),
        ("a: .nan\n", ("CL104", 1, 4)),
        ("a: *missing\n", ("CL003", 1, 4)),
        ("a: \x00\n", ("CL003", 1, 4)),
    ],
)
def test_refusals_are_located(text: str, expected: tuple[str, int, int]) -> None:
    assert codes(load_text(text).diagnostics) == [expected]


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    result = load_text("\n".join(lines) + "\n")
    assert [d.code for d in result.diagnostics] == ["CL006"]
    assert f"{MAX_ALIAS_NODES:,}" in result.diagnostics[0].message


def test_deep_nesting_is_refused() -> None:
    text = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    assert [d.code for d in load_text(text).diagnostics] == ["CL002"]
    block = "".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v: 1\n"
    assert [d.code for d in load_text(block).diagnostics] == ["CL002"]


def test_non_utf8_is_located_at_the_bad_byte() -> None:
    result = read_file(b"version: 1\nname: caf\xe9\n", "bad.yaml")
    assert codes(result.diagnostics) == [("CL001", 2, 10)]


def test_size_limit() -> None:
    from clarion.load import MAX_FILE_BYTES

    result = read_file(b"#" * (MAX_FILE_BYTES + 1), "big.yaml")
    assert [d.code for d in result.diagnostics] == ["CL002"]


def test_merge_keys_and_anchors() -> None:
    text = "base: &b {events: all, enabled: true}\nx:\n  <<: *b\n  enabled: false\n"
    result = load_text(text)
    assert result.document is not None
    assert result.document.data["x"] == {"events": "all", "enabled": False}


def test_directory_merges_sections_and_cites_both_definitions(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nevents:\n  one: {}\nroutes:\n  - name: r1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(
        "events:\n  two: {}\n  one: {}\nroutes:\n  - name: r2\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "scenario.yaml").write_text("not: [config\n")  # skipped: scenarios
    result = load_directory(tmp_path)
    document = result.document
    assert document is not None
    assert sorted(document.data["events"]) == ["one", "two"]
    assert [r["name"] for r in document.data["routes"]] == ["r1", "r2"]
    # the second route's location was shifted past the first file's routes
    second = document.locate(("routes", 1, "name"))
    assert second is not None and second.file.endswith("b.yml") and second.line == 5
    [duplicate] = result.diagnostics
    assert duplicate.code == "CL007"
    assert duplicate.location is not None and duplicate.location.file.endswith("b.yml")
    assert duplicate.related[0][1].file.endswith("a.yaml")
    assert "a.yaml:3:3" in duplicate.message


def test_empty_directory_is_a_diagnostic(tmp_path: Path) -> None:
    assert [d.code for d in load_directory(tmp_path).diagnostics] == ["CL008"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_any_text_gives_a_document_or_diagnostics(text: str) -> None:
    result = load_text(text)
    assert result.document is not None
    for d in result.diagnostics:
        assert d.code.startswith("CL0") or d.code == "CL104"
        assert d.location is not None


_YAMLISH = st.lists(
    st.sampled_from(
        [
            "a",
            ":",
            " ",
            "\n",
            "-",
            "[",
            "]",
            "{",
            "}",
            ",",
            "&x",
            "*x",
            "<<",
            "!!str",
            "\t",
            "'",
            '"',
            "#",
            "?",
            "|",
            ">",
            "1",
            "on",
            "09:00",
            "\xe9",
            "\x00",
            "  ",
            "!tag",
        ]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_YAMLISH, st.binary(max_size=300)))
def test_yaml_like_input_and_bytes_never_raise(value: str | bytes) -> None:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    result = read_file(raw, "fuzz.yaml")
    assert all(d.location is not None for d in result.diagnostics)
