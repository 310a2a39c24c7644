"""The HTTP API contract: status codes, error codes with JSON pointers, never a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clarion.runtime import Runtime
from clarion.runtime.api import MAX_EVENT_BYTES, create_app
from clarion.runtime.envelope import Rejection
from clarion.runtime.ingest import check_event
from clarion.runtime.tableindex import TableIndex
from tests.runtime.conftest import example


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    runtime.start()
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def event(
    table: TableIndex, event_type: str = "payment.failed", event_id: str = "evt_1", **extra: Any
) -> dict[str, Any]:
    return {"type": event_type, "id": event_id, "data": example(table, event_type), **extra}


def wait_settled(client: TestClient, event_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/events/{event_id}").json()
        if all(d["status"] not in ("planned", "sending") for d in body["deliveries"]):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def test_accept_then_same_id_gives_the_first_answer(
    client: TestClient, examples_table: TableIndex
) -> None:
    first = client.post("/v1/events", json=event(examples_table))
    assert first.status_code == 202
    assert first.json() == {"id": "evt_1", "status": "accepted"}
    again = client.post("/v1/events", json=event(examples_table))
    assert again.status_code == 200 and again.json() == first.json()
    body = wait_settled(client, "evt_1")
    # planned once: one row per candidate, not two
    targets = [(d["recipient"], d["channel"], d["to"]) for d in body["deliveries"]]
    assert len(targets) == len(set(targets))


def test_same_id_different_body_is_a_conflict(
    client: TestClient, examples_table: TableIndex
) -> None:
    assert client.post("/v1/events", json=event(examples_table)).status_code == 202
    changed = event(examples_table)
    changed["data"]["amount"] = 1
    response = client.post("/v1/events", json=changed)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"


def test_addresses_are_masked(client: TestClient, examples_table: TableIndex) -> None:
    raw = event(
        examples_table,
        "payment.succeeded",
        # no quiet hours: this test runs on the real clock, at any hour
        contact={
            "id": "cus_1",
            "email": "ana.lopez@example.com",
            "phone": "6282114000032",
            "quiet_hours": False,
        },
    )
    assert client.post("/v1/events", json=raw).status_code == 202
    body = wait_settled(client, "evt_1")
    text = json.dumps(body)
    assert "ana.lopez@example.com" not in text and "6282114000032" not in text
    assert "a***@example.com" in text
    customer = [d for d in body["deliveries"] if d["recipient"] == "contact:cus_1"]
    assert customer and customer[0]["status"] == "sent"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
        (b"[" * 1_000_000 + b"]" * 1_000_000, 413, "too_large"),
        (b"[1, 2]", 422, "invalid_event"),
        (b'{"type": "payment.failed"}', 422, "invalid_event"),
        (b'{"type": "nope.nope", "id": "x"}', 422, "unknown_event_type"),
        (b'{"type": "payment.failed", "id": "x", "data": {"amount": "12"}}', 422, "invalid_data"),
        (b'{"type": "payment.failed", "id": 5}', 422, "invalid_event"),
        (b'{"type": "payment.failed", "id": "x", "extra": 1}', 422, "invalid_event"),
    ],
)
def test_bad_bodies(client: TestClient, body: bytes, status: int, code: str) -> None:
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_errors_carry_the_json_pointer(client: TestClient, examples_table: TableIndex) -> None:
    raw = event(examples_table)
    raw["data"]["amount"] = "lots"
    error = client.post("/v1/events", json=raw).json()["error"]
    assert error["code"] == "invalid_data"
    assert {"pointer": "/data/amount", "message": "'lots' is not of type 'integer'"} in error[
        "details"
    ]
    raw = event(examples_table, contact={"id": "c", "consent": {"carrier_pigeon": True}})
    error = client.post("/v1/events", json=raw).json()["error"]
    assert error["details"][0]["pointer"] == "/contact/consent/carrier_pigeon"


def test_deeply_nested_json_is_a_4xx(client: TestClient) -> None:
    body = b'{"a":' * 5000 + b"1" + b"}" * 5000
    response = client.post("/v1/events", content=body)
    assert 400 <= response.status_code < 500


def test_oversized_event(client: TestClient, examples_table: TableIndex) -> None:
    raw = event(examples_table)
    raw["data"]["pad"] = "x" * (MAX_EVENT_BYTES + 1)
    assert client.post("/v1/events", json=raw).status_code == 413


def test_duplicate_contact(client: TestClient, examples_table: TableIndex) -> None:
    first = event(
        examples_table, "order.created", "e1", contact={"id": "a", "phone": "+6282114000032"}
    )
    second = event(
        examples_table, "order.created", "e2", contact={"id": "b", "phone": "6282114000032"}
    )
    assert client.post("/v1/events", json=first).status_code == 202
    response = client.post("/v1/events", json=second)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate_contact"
    assert client.get("/v1/events/e2").status_code == 404  # nothing half-written


def test_batch(client: TestClient, examples_table: TableIndex) -> None:
    items = [
        event(examples_table, "payment.failed", "b1"),
        event(examples_table, "order.shipped", "b2"),  # batch: false (seed 002)
        {"type": "payment.failed", "id": "b3"},
        event(examples_table, "payment.failed", "b1"),
    ]
    response = client.post("/v1/events:batch", json={"events": items})
    assert response.status_code == 200
    body = response.json()
    assert [r["http_status"] for r in body["results"]] == [202, 422, 422, 200]
    assert body["results"][0] == {"http_status": 202, "id": "b1", "status": "accepted"}
    assert body["results"][1]["error"]["code"] == "batch_not_allowed"
    assert body["results"][2]["error"]["details"][0]["pointer"].startswith("/events/2/")
    assert (body["accepted"], body["rejected"]) == (2, 2)


def test_read_side(client: TestClient, examples_table: TableIndex) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["digest"] == examples_table.digest
    table = client.get("/v1/table").json()
    assert table["digest"] == examples_table.digest and table["events"] > 10
    assert client.get("/v1/events/nope").json()["error"]["code"] == "not_found"
    client.post("/v1/events", json=event(examples_table))
    wait_settled(client, "evt_1")
    metrics = client.get("/metrics").text
    for name in (
        "clarion_events_total",
        "clarion_deliveries_total",
        "clarion_queue_depth",
        "clarion_oldest_pending_age_seconds",
        "clarion_table_info",
    ):
        assert name in metrics
    assert "evt_1" not in metrics and "@" not in metrics
    assert client.get("/openapi.json").status_code == 200


def test_bearer_token(runtime: Runtime) -> None:
    with TestClient(create_app(runtime, token="s3cret-token")) as c:
        assert c.get("/v1/table").status_code == 401
        assert c.get("/v1/table", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert (
            c.get("/v1/table", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
        )
        assert c.get("/healthz").status_code == 200
        # pages hold no data: they load, and the API they call still wants the token
        assert c.get("/inbox/owner").status_code == 200
        assert c.get("/v1/inbox/owner").status_code == 401
        assert c.get("/v1/events/x").status_code == 401


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["type", "id", "data", "contact", "consent", "x"]),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_no_body_gives_a_500(client: TestClient, body: bytes) -> None:
    for path in ("/v1/events", "/v1/events:batch"):
        response = client.post(path, content=body)
        assert response.status_code < 500, response.text
        assert "error" in response.json() or response.status_code in (200, 202)


def test_a_contacts_quiet_hours_hold_the_message_and_are_kept(
    client: TestClient, examples_table: TableIndex
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).strftime("%H:00"), (now + timedelta(hours=2))
    window = {"from": start, "to": end.strftime("%H:00")}
    contact = {"id": "cus_qh", "phone": "+34612345678", "timezone": "UTC", "quiet_hours": window}
    raw = event(examples_table, "order.created", "evt_qh", contact=contact)
    assert client.post("/v1/events", json=raw).status_code == 202
    body = wait_settled(client, "evt_qh")
    [held] = [d for d in body["deliveries"] if d["recipient"] == "contact:cus_qh"]
    assert (held["status"], held["reason"]) == ("scheduled", "quiet_hours")
    assert held["due_at"] == end.strftime("%Y-%m-%dT%H:00:00Z")
    assert held["detail"].startswith(f"quiet hours {start}-{window['to']} (UTC): held until ")
    assert body["event"]["contact"]["quiet_hours"] == window  # as given, `from` and all
    assert client.get("/v1/contacts/cus_qh").json()["quiet_hours"] == window
    # kept for later events, until the contact says otherwise
    again = event(examples_table, "order.paid", "evt_qh2", contact={"id": "cus_qh"})
    assert client.post("/v1/events", json=again).status_code == 202
    settled = wait_settled(client, "evt_qh2")["deliveries"]
    [held] = [d for d in settled if d["recipient"] == "contact:cus_qh"]
    assert held["reason"] == "quiet_hours"
    off = event(
        examples_table, "order.paid", "evt_qh3", contact={"id": "cus_qh", "quiet_hours": False}
    )
    assert client.post("/v1/events", json=off).status_code == 202
    [sent] = [
        d
        for d in wait_settled(client, "evt_qh3")["deliveries"]
        if d["recipient"] == "contact:cus_qh"
    ]
    assert (sent["status"], sent["reason"]) == ("sent", None)
    assert client.get("/v1/contacts/cus_qh").json()["quiet_hours"] is False
    bad = event(
        examples_table,
        "order.paid",
        "evt_qh4",
        contact={"id": "c", "quiet_hours": {"from": "8", "to": "9"}},
    )
    answer = client.post("/v1/events", json=bad)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_event"


@pytest.mark.parametrize(
    "body",
    [
        # found by tests/fuzz: a lone surrogate escape is valid JSON grammar, but not text; the
        # answer, the store and the templates all failed to encode it (a 500)
        b'{"type": "refund.completed", "id": "e1", "data": {"x": "\\ud800"}}',
        b'[{"type": "refund.completed", "id": "e1", "data": {}, "\\udfff": 1}]',
        b'{"type": "refund.completed", "id": "\xed\xa0\x80"}',
    ],
)
def test_a_lone_surrogate_is_not_json_text(client: TestClient, body: bytes) -> None:
    for path in ("/v1/events", "/v1/events:batch"):
        response = client.post(path, content=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_json"
        assert "surrogate" in response.json()["error"]["message"]


def test_a_surrogate_pair_is_text(client: TestClient, examples_table: TableIndex) -> None:
    body = event(examples_table, event_id="pair-\U0001f600")
    raw = json.dumps(body).encode()  # ensure_ascii: the emoji travels as "\ud83d\ude00"
    assert b"\\ud83d\\ude00" in raw
    assert client.post("/v1/events", content=raw).status_code == 202
    assert client.get("/v1/events/pair-\U0001f600").json()["id"] == "pair-\U0001f600"


def test_check_event_refuses_a_lone_surrogate(examples_table: TableIndex) -> None:
    # what a caller other than the API (a scenario file) may hand ingest
    data = {**example(examples_table, "contact.created"), "": {"\ud800": None}}
    raw = {"type": "contact.created", "id": "e1", "data": data}
    with pytest.raises(Rejection) as refused:
        check_event(examples_table, raw)
    assert refused.value.code == "invalid_event"


def test_the_people_routes_refuse_a_lone_surrogate(client: TestClient) -> None:
    body = b'{"consent": {"sms": false}, "source": "\\udc00"}'
    response = client.put("/v1/contacts/c1/consent", content=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_a_contact_with_an_unknown_locale_is_still_sent_to(
    client: TestClient, examples_table: TableIndex
) -> None:
    # found by tests/fuzz: the receipt's money filter raised Babel's UnknownLocaleError and the
    # delivery stayed "sending" instead of being sent
    body = event(
        examples_table,
        "payment.succeeded",
        "evt_xx",
        # no quiet hours: the test must not depend on the hour it runs at
        contact={"id": "cus_xx", "email": "xx@example.com", "locale": "xx", "quiet_hours": False},
    )
    assert client.post("/v1/events", json=body).status_code == 202
    [receipt] = [
        d
        for d in wait_settled(client, "evt_xx")["deliveries"]
        if d["recipient"] == "contact:cus_xx"
    ]
    assert receipt["status"] == "sent", receipt
