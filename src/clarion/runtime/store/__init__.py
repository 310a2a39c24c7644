"""Stores: the interface the runtime needs, and its backends."""

from __future__ import annotations

import os
from pathlib import Path

from clarion.runtime.store.base import Store, redact_url
from clarion.runtime.store.sqlite import SQLiteStore, StoreError

__all__ = ["SQLiteStore", "Store", "StoreError", "open_store"]


def open_store(url: str) -> Store:
    """`sqlite:///path/to/file.db`, `sqlite://:memory:` (a throwaway file), or
    `postgresql://user@host:port/database` for several sidecars sharing one store."""
    if url in ("sqlite://:memory:", "sqlite://", ":memory:"):
        return SQLiteStore(None)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not url.startswith("sqlite:////") and not path.is_absolute():
            path = Path(os.getcwd()) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from clarion.runtime.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(
        f"unknown store URL {redact_url(url)!r}; use sqlite:///path/to/clarion.db or "
        "postgresql://user@host/database"
    )
