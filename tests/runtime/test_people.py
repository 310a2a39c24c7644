"""Inbox and consent API: paging, unread, mark read, retention, live stream, consent history."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clarion.compile import build
from clarion.runtime import Policy, Runtime, SQLiteStore, TableIndex
from clarion.runtime.api import create_app
from tests.runtime.conftest import example


def serve(table: TableIndex, token: str | None = None) -> Iterator[tuple[Runtime, TestClient]]:
    runtime = Runtime(table, SQLiteStore(None), Policy(dry_run=True, workers=2))
    runtime.start()
    with TestClient(create_app(runtime, token, heartbeat=0.2)) as client:
        yield runtime, client
    runtime.stop(timeout=5)


@pytest.fixture
def api(examples_table: TableIndex) -> Iterator[tuple[Runtime, TestClient]]:
    yield from serve(examples_table)


def post_disputes(client: TestClient, table: TableIndex, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        data = example(table, "dispute.created")
        assert (
            client.post(
                "/v1/events", json={"type": "dispute.created", "id": f"d{i}", "data": data}
            ).status_code
            == 202
        )


def wait_items(client: TestClient, recipient: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        body: dict[str, Any] = client.get(f"/v1/inbox/{recipient}?limit=200").json()
        if len(body["items"]) >= count:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def test_paging_newest_first(api: tuple[Runtime, TestClient], examples_table: TableIndex) -> None:
    _, client = api
    post_disputes(client, examples_table, 5)
    wait_items(client, "owner", 5)
    first = client.get("/v1/inbox/owner?limit=2").json()
    assert [i["event_id"] for i in first["items"]] == ["d4", "d3"]
    assert first["unread"] == 5 and first["next_cursor"] is not None
    second = client.get(f"/v1/inbox/owner?limit=2&cursor={first['next_cursor']}").json()
    assert [i["event_id"] for i in second["items"]] == ["d2", "d1"]
    third = client.get(f"/v1/inbox/owner?limit=2&cursor={second['next_cursor']}").json()
    assert [i["event_id"] for i in third["items"]] == ["d0"] and third["next_cursor"] is None
    item = first["items"][0]
    assert set(item) == {
        "id",
        "title",
        "body",
        "link",
        "event_type",
        "event_id",
        "created_at",
        "read_at",
    }
    assert item["title"] and item["link"] and item["read_at"] is None


def test_unread_and_mark_read(api: tuple[Runtime, TestClient], examples_table: TableIndex) -> None:
    _, client = api
    post_disputes(client, examples_table, 3)
    items = wait_items(client, "owner", 3)["items"]
    answer = client.post("/v1/inbox/owner/read", json={"ids": [items[0]["id"]]}).json()
    assert answer == {"marked": 1, "unread": 2}
    unread = client.get("/v1/inbox/owner?unread=true").json()
    assert [i["id"] for i in unread["items"]] == [items[1]["id"], items[2]["id"]]
    assert client.post("/v1/inbox/owner/read", json={"all": True}).json() == {
        "marked": 2,
        "unread": 0,
    }
    assert client.get("/v1/inbox/owner?unread=true").json()["items"] == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/inbox/nobody/read", {"all": True}, 404),
        ("/v1/inbox/owner/read", {"ids": "1"}, 422),
        ("/v1/inbox/owner/read", {"ids": [True]}, 422),
        ("/v1/inbox/owner/read", {"all": False}, 422),
        ("/v1/inbox/owner/read", [1, 2], 422),
        ("/v1/inbox/owner/read", {"ids": list(range(1001))}, 422),
        ("/v1/inbox/owner/read", {"ids": [2**70]}, 422),  # past 64 bits: was a 500 on SQLite
        ("/v1/inbox/owner/read", {"ids": [0]}, 422),
    ],
)
def test_bad_mark_read(api: tuple[Runtime, TestClient], path: str, body: Any, status: int) -> None:
    _, client = api
    response = client.post(path, json=body)
    assert response.status_code == status and "error" in response.json()
    assert client.post("/v1/inbox/owner/read", content=b"{oops").status_code == 400


def test_bad_reads(api: tuple[Runtime, TestClient]) -> None:
    _, client = api
    assert client.get("/v1/inbox/nobody").status_code == 404
    assert client.get("/v1/inbox/club_admin").status_code == 404  # no in-app entry
    assert client.get("/v1/inbox/owner?cursor=-1").status_code == 422
    assert client.get("/v1/inbox/owner?limit=100000").status_code == 422
    assert client.get("/v1/inbox/owner/stream", headers={"last-event-id": "x"}).status_code == 422


def test_retention(tmp_path: Path, examples_copy: Path) -> None:
    clarion = examples_copy / "clarion.yaml"
    clarion.write_text(
        clarion.read_text().replace("defaults:\n", "defaults:\n  inbox_keep: 3\n", 1)
    )
    built = build(examples_copy)
    assert built.table is not None and built.data is not None, built.diagnostics
    table = TableIndex.from_table(built.table, built.data)
    for _, client in serve(table):
        post_disputes(client, table, 5)
        deadline = time.monotonic() + 5
        while client.get("/v1/events/d4").json()["deliveries"][0]["status"] == "planned":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        body = client.get("/v1/inbox/owner").json()
        assert [i["event_id"] for i in body["items"]] == ["d4", "d3", "d2"]


def test_stream_sends_new_items_and_counts_and_resumes(
    api: tuple[Runtime, TestClient], examples_table: TableIndex
) -> None:
    _, client = api
    post_disputes(client, examples_table, 1)
    wait_items(client, "owner", 1)
    received: list[tuple[str, Any]] = []

    def read(headers: dict[str, str], stop_after: int) -> None:
        with client.stream("GET", "/v1/inbox/owner/stream", headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    received.append((kind or "", json.loads(line.removeprefix("data: "))))
                    items = len([k for k, _ in received if k == "item"])
                    if items >= stop_after and kind == "unread":
                        return  # the count that follows the last item

    reader = threading.Thread(target=read, args=({}, 2), daemon=True)
    reader.start()
    time.sleep(0.3)
    post_disputes(client, examples_table, 2, start=1)
    reader.join(10)
    assert not reader.is_alive()
    items = [d for k, d in received if k == "item"]
    assert [i["event_id"] for i in items] == ["d1", "d2"]  # only new ones, in order
    assert received[0] == ("unread", {"unread": 1})
    assert {"unread": 3} in [d for k, d in received if k == "unread"]
    # resume after d1: d2 comes again and nothing else (no gaps, no repeats)
    received.clear()
    read({"last-event-id": str(items[0]["id"])}, 1)
    assert [d["event_id"] for k, d in received if k == "item"] == ["d2"]


def test_consent_history_and_changes(
    api: tuple[Runtime, TestClient], examples_table: TableIndex
) -> None:
    _, client = api
    data = example(examples_table, "order.created")
    contact = {
        "id": "cus_1",
        "phone": "6282114000032",
        "email": "ana@example.com",
        "consent": {"sms": False},
    }
    assert (
        client.post(
            "/v1/events",
            json={"type": "order.created", "id": "o1", "data": data, "contact": contact},
        ).status_code
        == 202
    )
    body = client.get("/v1/contacts/cus_1").json()
    assert body["email"] == "a***@example.com" and "6282114000032" not in json.dumps(body)
    assert body["consent"]["sms"] is False and body["consent"]["email"] is True
    sources = [(h["channel"], h["granted"], h["source"]) for h in body["history"]]
    assert ("email", True, "default") in sources and ("sms", False, "event:o1") in sources
    changed = client.put(
        "/v1/contacts/cus_1/consent",
        json={"consent": {"sms": True, "whatsapp": False}, "source": "support-desk"},
    )
    assert changed.status_code == 200 and changed.json()["consent"]["whatsapp"] is False
    history = client.get("/v1/contacts/cus_1").json()["history"]
    assert history[-2:] == [
        {"channel": "sms", "granted": True, "at": history[-2]["at"], "source": "api:support-desk"},
        {
            "channel": "whatsapp",
            "granted": False,
            "at": history[-1]["at"],
            "source": "api:support-desk",
        },
    ]
    # a later delivery follows the change
    assert (
        client.post(
            "/v1/events",
            json={"type": "order.created", "id": "o2", "data": data, "contact": {"id": "cus_1"}},
        ).status_code
        == 202
    )
    deliveries = client.get("/v1/events/o2").json()["deliveries"]
    [whatsapp] = [d for d in deliveries if d["recipient"] == "contact:cus_1"]
    assert whatsapp["reason"] == "no_consent"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"consent": {"carrier_pigeon": True}}, "/consent/carrier_pigeon"),
        ({"consent": {"sms": "yes"}}, "/consent/sms"),
        ({"sms": 1}, "/sms"),
        ({"consent": {}, "extra": 1}, "/extra"),
    ],
)
def test_bad_consent_changes(
    api: tuple[Runtime, TestClient], examples_table: TableIndex, body: Any, pointer: str
) -> None:
    _, client = api
    data = example(examples_table, "order.created")
    client.post(
        "/v1/events",
        json={"type": "order.created", "id": "o1", "data": data, "contact": {"id": "c"}},
    )
    response = client.put("/v1/contacts/c/consent", json=body)
    assert response.status_code == 422
    assert pointer in [d["pointer"] for d in response.json()["error"]["details"]]


def test_unknown_contact_and_reveal(examples_table: TableIndex) -> None:
    for _, client in serve(examples_table, token="tok-123"):
        auth = {"authorization": "Bearer tok-123"}
        assert client.get("/v1/contacts/nope", headers=auth).status_code == 404
        assert (
            client.put("/v1/contacts/nope/consent", json={"sms": True}, headers=auth).status_code
            == 404
        )
        data = example(examples_table, "order.created")
        event = {
            "type": "order.created",
            "id": "o1",
            "data": data,
            "contact": {"id": "c", "email": "ana@example.com"},
        }
        client.post("/v1/events", json=event, headers=auth)
        assert client.get("/v1/contacts/c", headers=auth).json()["email"] == "a***@example.com"
        assert (
            client.get("/v1/contacts/c?reveal=true", headers=auth).json()["email"]
            == "ana@example.com"
        )
        assert (
            client.get(
                "/v1/contacts/c?reveal=true", headers={"authorization": "Bearer no"}
            ).status_code
            == 401
        )
    for _, client in serve(examples_table):
        assert client.get("/v1/contacts/c?reveal=true").status_code == 403
