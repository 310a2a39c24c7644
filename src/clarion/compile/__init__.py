"""Stage 3: a checked config becomes one frozen, canonical, content-hashed routing table."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clarion.check import CheckResult, check
from clarion.compile.builder import build_table
from clarion.compile.canonical import canonical_bytes, digest
from clarion.compile.table import TABLE_FORMAT, RoutingTable, table_json_schema
from clarion.diagnostics import Diagnostic
from clarion.load import Document, load_directory

__all__ = [
    "TABLE_FORMAT",
    "Build",
    "RoutingTable",
    "build",
    "canonical_bytes",
    "compile_checked",
    "digest",
    "table_bytes",
    "table_json_schema",
]


@dataclass
class Build:
    """Everything one run of load -> check -> compile produced."""

    document: Document | None
    checked: CheckResult | None
    diagnostics: list[Diagnostic]
    table: RoutingTable | None = None
    data: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.table is not None

    @property
    def digest(self) -> str | None:
        return digest(self.data) if self.data is not None else None

    @property
    def redacted(self) -> set[tuple[str, int]]:
        return self.checked.redacted if self.checked else set()


def table_bytes(table: RoutingTable) -> bytes:
    return canonical_bytes(table.model_dump(mode="json", by_alias=True))


def compile_checked(checked: CheckResult) -> RoutingTable:
    assert checked.context is not None and checked.ok, "compile only a config without errors"
    return build_table(checked.context)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # A large config is hundreds of thousands of long-lived, acyclic objects; the cyclic
    # collector would walk them again and again as they pile up (half the build time on the
    # benchmark's config) without ever freeing one. It runs once, at the end, instead.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build(root: Path, *, locations: bool = True, pause_gc: bool = True) -> Build:
    """Load, check and, when there is no error, compile. Raises LoadError for a missing dir.

    `locations=False` is for callers that want only the table (`diff`): the first pass keeps no
    positions, and only a config with findings is read again to locate them. `pause_gc=False`
    trades some speed for a lower peak (two builds side by side in `diff`)."""
    with _collector_paused() if pause_gc else contextlib.nullcontext():
        result = _build(root, locations)
        if not locations and result.diagnostics:
            result = _build(root, True)
        return result


def _build(root: Path, locations: bool = True) -> Build:
    loaded = load_directory(root, locations=locations)
    if loaded.document is None or any(d.is_error for d in loaded.diagnostics):
        return Build(loaded.document, None, loaded.diagnostics)
    checked = check(loaded.document)
    diagnostics = [*loaded.diagnostics, *checked.diagnostics]
    if not checked.ok:
        return Build(loaded.document, checked, diagnostics)
    table = compile_checked(checked)
    return Build(loaded.document, checked, diagnostics, table, table_bytes(table))
