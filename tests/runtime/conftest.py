from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clarion.compile import build
from clarion.runtime import Policy, Runtime, TableIndex
from clarion.runtime.store import open_store
from tests.browser import browser
from tests.conftest import EXAMPLES
from tests.sinks import http_sink, smtp_sink

__all__ = ["browser", "http_sink", "smtp_sink"]  # fixtures


@pytest.fixture(scope="session")
def examples_table() -> TableIndex:
    result = build(EXAMPLES)
    assert result.table is not None and result.data is not None
    return TableIndex.from_table(result.table, result.data)


@pytest.fixture
def runtime(examples_table: TableIndex, store_url: str) -> Iterator[Runtime]:
    """The examples' table on each store in turn, recording instead of sending."""
    rt = Runtime(examples_table, open_store(store_url), Policy(dry_run=True, workers=4))
    yield rt
    rt.stop(timeout=5)


def example(table: TableIndex, event_type: str, **data: Any) -> dict[str, Any]:
    spec = table.table.events[event_type]
    assert spec.example is not None
    return {**spec.example, **data}
