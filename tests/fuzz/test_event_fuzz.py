"""Fuzzing the event envelope and its data: whatever JSON (or bytes) arrives, ingest answers with
one of its documented codes, the API with a documented status and the one error shape, and an
accepted event's deliveries are planned, rendered and recorded without the dispatcher failing."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from clarion.compile import build
from clarion.runtime import Policy, Runtime, SQLiteStore, TableIndex
from clarion.runtime.api import create_app
from clarion.runtime.envelope import Rejection
from clarion.runtime.ingest import Checked, check_event
from tests.conftest import EXAMPLES
from tests.fuzz.harness import bounded, fuzz_settings

CODES = {
    "unknown_event_type", "invalid_data", "invalid_event", "batch_not_allowed",
    "duplicate_contact", "idempotency_conflict",
}  # fmt: skip
ERROR_CODES = CODES | {"invalid_json", "too_large", "invalid_request"}

TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["", "payment.failed", "EUR", "+34600000000", "6282114000032", "a@example.com", "x@",
         "2026-03-10T09:00:00Z", "2026-13-45", "Europe/Madrid", "Mars/Olympus", "es", "zz",
         "{{ data }}", "{secret:SMTP_PASSWORD}", "\x00", "\ud800", "\u202e", "~1/0"]
    ),
)  # fmt: skip
NUMBERS = st.one_of(
    st.integers(), st.integers(-(2**80), 2**80), st.floats(allow_nan=True, allow_infinity=True)
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=25,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid nine times in ten: enough inputs get past the envelope to reach what follows."""
    return st.integers(0, 9).flatmap(lambda n: JSON if n == 0 else valid)


IDS = st.text(min_size=1, max_size=30)
MOMENTS = st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat())
CONTACT = st.fixed_dictionaries(
    {"id": mostly(IDS)},
    optional={
        "email": mostly(st.sampled_from(["ana@example.com", "Ana@Example.COM", "x@", "@"])),
        "phone": mostly(st.sampled_from(["+34600000000", "6282114000032", "0", "+1"])),
        "name": mostly(TEXT),
        "locale": mostly(st.sampled_from(["en", "es", "id", "pt_BR", "xx", ""])),
        "timezone": mostly(st.sampled_from(["UTC", "Asia/Jakarta", "Nope/Nope", ""])),
        "consent": st.dictionaries(
            st.sampled_from(["email", "sms", "whatsapp", "viber", "push", "fax"]),
            mostly(st.booleans()),
            max_size=3,
        ),
        "devices": st.lists(
            st.fixed_dictionaries(
                {"device": IDS, "url": mostly(st.sampled_from(["ntfy://h/t", "json://"]))}
            ),
            max_size=3,
        ),
    },
)


@pytest.fixture(scope="module")
def table() -> TableIndex:
    result = build(EXAMPLES)
    assert result.table is not None and result.data is not None
    return TableIndex.from_table(result.table, result.data)


def _near_example(table: TableIndex) -> st.SearchStrategy[dict[str, Any]]:
    """An event of a known type whose data is its example with fields changed, dropped or
    added: most inputs get past the envelope into the data schema, the planner and templates."""
    types = sorted(t for t, spec in table.table.events.items() if spec.example is not None)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        kind = draw(st.sampled_from(types))
        example = table.table.events[kind].example
        assert example is not None
        data = dict(example)
        for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=3)) if data else []:
            data[key] = draw(JSON)
        data.update(draw(st.dictionaries(TEXT, JSON, max_size=2)))
        for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=1)) if data else []:
            data.pop(key, None)
        event: dict[str, Any] = {"type": kind, "id": draw(IDS)}
        event["data"] = data if draw(st.integers(0, 9)) else draw(JSON)
        if draw(st.booleans()):
            event["contact"] = draw(CONTACT)
        if draw(st.booleans()):
            event["occurred_at"] = draw(mostly(MOMENTS))
        return event

    return build()


def _assert_rejection(rejection: Rejection) -> None:
    assert rejection.code in CODES, rejection
    assert rejection.status in (409, 422)
    assert rejection.message
    for detail in rejection.details:
        assert isinstance(detail["pointer"], str) and detail["pointer"][:1] in ("", "/")
    json.dumps(rejection.as_json())


def _check(table: TableIndex, raw: Any) -> None:
    with bounded(raw):
        try:
            checked = check_event(table, raw)
        except Rejection as rejection:
            _assert_rejection(rejection)
            event(rejection.code)
            return
        event("accepted")
        assert isinstance(checked, Checked)
        assert json.loads(checked.envelope)["id"] == checked.event.id


@fuzz_settings(default=150)
@given(raw=st.one_of(JSON, st.dictionaries(st.sampled_from(["type", "id", "data"]), JSON)))
def test_any_json_is_checked_or_rejected(table: TableIndex, raw: Any) -> None:
    _check(table, raw)


@fuzz_settings(default=150)
@given(data=st.data())
def test_events_near_the_examples_are_checked_or_rejected(
    table: TableIndex, data: st.DataObject
) -> None:
    _check(table, data.draw(_near_example(table)))


class _Failures(logging.Handler):
    """Errors the dispatcher logs about itself (not a provider's answer): none may happen."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "internal" in record.getMessage():
            self.records.append(record)


@pytest.fixture(scope="module")
def served(table: TableIndex) -> Iterator[tuple[Runtime, TestClient, _Failures]]:
    # Not started: the test drives the dispatcher itself, so an input's sends happen within it.
    runtime = Runtime(table, SQLiteStore(None), Policy(dry_run=True, workers=1))
    failures = _Failures()
    logging.getLogger("clarion").addHandler(failures)
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield runtime, client, failures
    finally:
        logging.getLogger("clarion").removeHandler(failures)
        runtime.stop(timeout=5)


def _post(client: TestClient, path: str, body: bytes) -> Any:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 202, 400, 409, 413, 422), response.text
    answer = response.json()
    event(f"{path} {response.status_code}")  # shown by --hypothesis-show-statistics
    if response.status_code >= 400:
        assert set(answer) == {"error"}
        assert answer["error"]["code"] in ERROR_CODES
        assert isinstance(answer["error"]["message"], str)
        assert isinstance(answer["error"]["details"], list)
    return answer


def _dispatch(runtime: Runtime, failures: _Failures) -> None:
    runtime.dispatcher.run_pending()
    stuck = [r for r in runtime.store.records() if r["status"] == "sending"]
    assert not stuck, stuck  # claimed and never settled: the dispatcher failed on it
    assert not failures.records, [r.getMessage() for r in failures.records]


def _encoded(value: Any) -> bytes:
    # NaN and Infinity too: Python's json (the API's parser) accepts them
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@fuzz_settings(default=100)
@given(data=st.data())
def test_api_answers_any_event_with_a_documented_status(
    served: tuple[Runtime, TestClient, _Failures], table: TableIndex, data: st.DataObject
) -> None:
    runtime, client, failures = served
    value = data.draw(st.one_of(_near_example(table), JSON))
    with bounded(value):
        _post(client, "/v1/events", _encoded(value))
        _dispatch(runtime, failures)


@fuzz_settings(default=40)
@given(data=st.data())
def test_api_answers_any_batch_item_by_item(
    served: tuple[Runtime, TestClient, _Failures], table: TableIndex, data: st.DataObject
) -> None:
    runtime, client, failures = served
    items = data.draw(st.lists(st.one_of(_near_example(table), JSON), max_size=6))
    body: Any = {"events": items} if data.draw(st.booleans()) else items
    with bounded(body):
        answer = _post(client, "/v1/events:batch", _encoded(body))
        if "results" in answer:
            assert len(answer["results"]) == len(items)
            for result in answer["results"]:
                assert result["http_status"] in (200, 202, 409, 422)
        _dispatch(runtime, failures)


@fuzz_settings(default=60)
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode)))
def test_api_answers_any_bytes(served: tuple[Runtime, TestClient, _Failures], raw: bytes) -> None:
    _, client, _ = served
    with bounded(raw):
        _post(client, "/v1/events", raw)
        _post(client, "/v1/events:batch", raw)


def test_nan_is_refused_or_kept_as_json() -> None:
    # the strategies above send NaN; what comes back out must still be JSON a client can read
    assert math.isnan(json.loads(_encoded(float("nan"))))
