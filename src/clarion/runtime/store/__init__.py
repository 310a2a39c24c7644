"""Stores: the interface the runtime needs, and its backends."""

from __future__ import annotations

import os
from pathlib import Path

from clarion.runtime.store.base import Store
from clarion.runtime.store.sqlite import SQLiteStore, StoreError

__all__ = ["SQLiteStore", "Store", "StoreError", "open_store"]


def open_store(url: str) -> Store:
    """`sqlite:///path/to/file.db`, `sqlite://:memory:`; PostgreSQL comes with scale-out."""
    if url in ("sqlite://:memory:", "sqlite://", ":memory:"):
        return SQLiteStore(None)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not url.startswith("sqlite:////") and not path.is_absolute():
            path = Path(os.getcwd()) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        raise StoreError("the PostgreSQL store is not available in this version; use sqlite:///")
    raise StoreError(f"unknown store URL {url!r}; use sqlite:///path/to/clarion.db")
