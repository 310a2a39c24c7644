"""The routing table: canonical, content-hashed, self-contained, free of secrets."""

from __future__ import annotations

import json
import random
import shutil
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from clarion.compile import build, table_json_schema
from clarion.load import config_files
from clarion.load.reader import read_file
from tests.conftest import EXAMPLES, ROOT


def test_examples_compile_without_any_finding() -> None:
    result = build(EXAMPLES)
    assert result.diagnostics == []
    assert result.ok and result.data is not None


def test_examples_table_snapshot(snapshot: SnapshotAssertion) -> None:
    result = build(EXAMPLES)
    assert result.data is not None
    assert json.loads(result.data) == snapshot


def test_same_input_same_bytes() -> None:
    first, second = build(EXAMPLES), build(EXAMPLES)
    assert first.data == second.data
    assert first.digest == second.digest
    assert first.digest is not None and first.digest.startswith("sha256:")
    assert first.data is not None and first.data.endswith(b"\n")


def test_table_matches_its_committed_schema() -> None:
    result = build(EXAMPLES)
    assert result.data is not None
    committed = json.loads((ROOT / "schemas" / "routing-table.schema.json").read_text())
    assert committed == table_json_schema()
    jsonschema.validate(json.loads(result.data), committed)


def test_table_keeps_secret_placeholders_and_no_paths() -> None:
    result = build(EXAMPLES)
    assert result.data is not None
    text = result.data.decode()
    assert "{secret:SMTP_PASSWORD}" in text
    assert str(ROOT) not in text and "examples/config" not in text


def _sections() -> list[tuple[str, Any]]:
    """Every (section, name, value) of the examples, as loose pieces to rearrange."""
    pieces: list[tuple[str, Any]] = []
    for path in config_files(EXAMPLES):
        data = read_file(path.read_bytes(), str(path)).data or {}
        for section, value in data.items():
            if isinstance(value, dict) and section != "version":
                pieces.extend((section, {name: entry}) for name, entry in value.items())
            elif isinstance(value, list):
                pieces.extend((section, [item]) for item in value)
            else:
                pieces.append((section, value))
    return pieces


def _shuffled_dump(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled_dump(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled_dump(v, rng) for v in value]
    return value


@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.generate],  # each example builds a config: shrinking would take minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1), files=st.integers(1, 6))
def test_file_layout_and_key_order_do_not_change_the_bytes(
    tmp_path_factory: pytest.TempPathFactory, seed: int, files: int
) -> None:
    rng = random.Random(seed)
    target = tmp_path_factory.mktemp("layout")
    shutil.copytree(EXAMPLES / "templates", target / "templates")
    pieces = _sections()
    rng.shuffle(pieces)
    buckets: list[dict[str, Any]] = [{} for _ in range(files)]
    for section, value in pieces:
        bucket = buckets[rng.randrange(files)]
        if isinstance(value, dict):
            bucket.setdefault(section, {}).update(value)
        elif isinstance(value, list):
            bucket.setdefault(section, []).extend(value)
        else:
            bucket[section] = value
    for index, bucket in enumerate(buckets):
        folder = target / f"part{index % 2}"
        folder.mkdir(exist_ok=True)
        dumped = yaml.safe_dump(_shuffled_dump(bucket, rng), sort_keys=False, allow_unicode=True)
        (folder / f"f{rng.randrange(10**6)}_{index}.yaml").write_text(dumped)
    reference = build(EXAMPLES)
    rearranged = build(target)
    assert [d.message for d in rearranged.diagnostics] == []
    assert rearranged.digest == reference.digest
