"""PostgreSQL for the tests: a private schema per test in the database that
CLARION_TEST_POSTGRES_URL names (the CI sets it; without it these tests skip, with a message)."""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SERVER = os.environ.get("CLARION_TEST_POSTGRES_URL", "")
SKIP = (
    "PostgreSQL tests need CLARION_TEST_POSTGRES_URL, e.g. "
    "postgresql://postgres@127.0.0.1:5432/test (.ci/run sets it)"
)


def in_schema(url: str, schema: str) -> str:
    """The URL with `search_path` set to `schema`, so that every table lands there."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query += [("options", f"-csearch_path={schema}"), ("application_name", schema)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@contextmanager
def private_schema(server: str = SERVER, prefix: str = "clarion_test") -> Iterator[str]:
    """A store URL on a schema of its own in `server`, dropped afterwards."""
    if not server:
        pytest.skip(SKIP)
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        yield in_schema(server, schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            # a sidecar killed mid-test may still hold connections for a moment
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND application_name = %s",
                (schema,),
            )
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with private_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Each backend in turn: the tests that take it hold both to one contract."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
        return
    with private_schema() as url:
        yield url
