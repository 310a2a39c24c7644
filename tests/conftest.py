from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.postgres import postgres_url, store_url

__all__ = ["postgres_url", "store_url"]  # fixtures, for every test

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "config"


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    """A private copy of examples/config that a test may change."""
    target = tmp_path / "config"
    shutil.copytree(EXAMPLES, target)
    return target
