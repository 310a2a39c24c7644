"""Fuzzing the loader, the checker and the compiler: any config directory, however broken, gives
diagnostics (or a table), formatted by every reporter; never another exception, a hang or
unbounded memory."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from clarion.cli import reporters
from clarion.cli.options import source_line_of
from clarion.compile import build
from clarion.diagnostics import Diagnostic
from tests.conftest import EXAMPLES
from tests.fuzz.harness import bounded, fuzz_settings

CONFIG_FILES = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*.yaml"))
TEXT_FILES = sorted(
    p.relative_to(EXAMPLES)
    for p in EXAMPLES.rglob("*")
    if p.is_file() and p.suffix in (".yaml", ".j2") and "tests" not in p.parts
)


def _keys(value: Any, into: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            into.add(str(key))
            _keys(item, into)
    elif isinstance(value, list):
        for item in value:
            _keys(item, into)
    return into


EXAMPLE_DATA = {path: yaml.safe_load((EXAMPLES / path).read_text()) for path in CONFIG_FILES}
KNOWN_KEYS = [*sorted(_keys(list(EXAMPLE_DATA.values()), set()) - {"True"}), "on"]
SECTIONS = sorted(set().union(*(d.keys() for d in EXAMPLE_DATA.values() if isinstance(d, dict))))

# Values a config holds, and the ones at the edges of what the checker reads.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "email",
            "phone",
            "url",
            "inbox",
            "*",
            "payments",
            "payments.*",
            "payment.failed",
            "09:00",
            "25:99",
            "2h",
            "-1d",
            "1e9d",
            "P1D",
            "+34600000000",
            "6282114000032",
            "owner",
            "a@b.c",
            "not an email",
            "Europe/Madrid",
            "Mars/Olympus",
            "en",
            "es",
            "xx_YY",
            "json://127.0.0.1/{to}",
            "mailto://{secret:X}@h/?to={to}",
            "{secret:}",
            "{secret:a b}",
            "{{ data.amount }}",
            "{{ data.",
            "data.amount > 1",
            "data.amount >",
            "{% for %}",
            "{{ 'x' * 10**9 }}",
            "{{ 2 ** 2 ** 40 }}",
            "~",
            "\x00",
            "\u202e",
            "é" * 3,
        ]
    ),
    st.text(max_size=30),
)
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=12))
CONFIG_LIKE = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=40,
)


def _validate(root: Path) -> None:
    """What `clarion validate` does with a directory, in every output format."""
    with bounded(root):
        result = build(root)
        for d in result.diagnostics:
            assert isinstance(d, Diagnostic)
            assert d.code.startswith("CL"), d
        reporters.text(result.diagnostics, source_line_of(result), color=False)
        json.loads(reporters.as_json(result.ok, result.digest, result.diagnostics))
        reporters.github(result.diagnostics)
        json.loads(reporters.sarif(result.diagnostics))
        assert result.ok == (result.data is not None)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="clarion-fuzz-") as name:
        yield Path(name)


def _fresh(workdir: Path, files: dict[str, str | bytes], with_examples: bool) -> Path:
    root = workdir / "config"
    shutil.rmtree(root, ignore_errors=True)
    if with_examples:
        shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("tests", ".clarion"))
    else:
        root.mkdir()
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return root


@fuzz_settings()
@given(
    config=st.fixed_dictionaries({}, optional=dict.fromkeys([*SECTIONS, "version"], CONFIG_LIKE)),
    extra=st.dictionaries(KEYS, CONFIG_LIKE, max_size=2),
)
def test_config_shaped_data(workdir: Path, config: dict[str, Any], extra: dict[str, Any]) -> None:
    text = yaml.safe_dump({**config, **extra}, allow_unicode=True, sort_keys=False)
    _validate(_fresh(workdir, {"clarion.yaml": text}, with_examples=False))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutate(document: Any, draw: Any) -> Any:
    paths = [p for p in _paths(document) if p]
    if not paths:
        return draw(CONFIG_LIKE)
    path = draw(st.sampled_from(paths))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    how = draw(st.sampled_from(["replace", "delete", "rename", "wrap", "copy"]))
    if how == "replace":
        parent[last] = draw(CONFIG_LIKE)
    elif how == "delete":
        del parent[last]
    elif how == "rename" and isinstance(parent, dict):
        parent[draw(KEYS)] = parent.pop(last)
    elif how == "wrap":
        parent[last] = [parent[last]] if draw(st.booleans()) else {draw(KEYS): parent[last]}
    else:
        other = draw(st.sampled_from(paths))
        source = document
        for step in other:
            source = source[step]
        parent[last] = json.loads(json.dumps(source, default=str))
    return document


@fuzz_settings()
@given(data=st.data(), file=st.sampled_from(CONFIG_FILES), count=st.integers(1, 4))
def test_mutated_examples(workdir: Path, data: st.DataObject, file: Path, count: int) -> None:
    document = json.loads(json.dumps(EXAMPLE_DATA[file], default=str))
    for _ in range(count):
        document = _mutate(document, data.draw)
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    _validate(_fresh(workdir, {str(file): text}, with_examples=True))


TOKENS = st.sampled_from(
    [
        ":", " ", "\n", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!!str ",
        "!!python/object ", "\t", "'", '"', "#", "? ", "|", ">", "{{", "}}", "{%", "%}",
        "{{ data.x }}", "{% endif %}",
        "{secret:", "\x00", "\ufeff", "\r", "0x", "1e400", ".nan", "null", "yes", "on",
    ]
)  # fmt: skip


@fuzz_settings()
@given(
    file=st.sampled_from(TEXT_FILES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "duplicate_line", "drop_line"]),
            st.floats(0, 1),
            st.one_of(TOKENS, st.text(max_size=8)),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_edited_example_text(
    workdir: Path, file: Path, edits: list[tuple[str, float, str]]
) -> None:
    text = (EXAMPLES / file).read_text()
    for how, where, token in edits:
        at = int(where * len(text))
        lines = text.split("\n")
        line = min(int(where * len(lines)), len(lines) - 1)
        if how == "insert":
            text = text[:at] + token + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + 1 + len(token) :]
        elif how == "duplicate_line":
            text = "\n".join([*lines[: line + 1], lines[line], *lines[line + 1 :]])
        else:
            text = "\n".join(lines[:line] + lines[line + 1 :])
    _validate(_fresh(workdir, {str(file): text}, with_examples=True))


@fuzz_settings(default=40)
@given(raw=st.binary(max_size=2000), name=st.sampled_from(["a.yaml", "templates/x.email.j2"]))
def test_any_bytes_in_a_config_file(workdir: Path, raw: bytes, name: str) -> None:
    _validate(_fresh(workdir, {name: raw}, with_examples=name.endswith(".j2")))
