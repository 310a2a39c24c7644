"""Webhook and push sends to the sidecar's own network are refused at connect time, names and
literal addresses alike, unless `defaults.allow_private_targets` says otherwise."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clarion.check.rendering import Message
from clarion.runtime import dispatch
from tests.runtime.serving import Sidecar
from tests.sinks import HttpSink


def device_config(folder: Path, allow: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 1,
        "defaults": {"allow_private_targets": allow},
        "events": {"tick": {"description": "A tick", "data": {"type": "object"}, "example": {}}},
        "channels": {"push": {"address": "url"}},
        "customer_messages": {"tick": {"channels": ["push"], "template": "tick"}},
        "consent": {"default": {"push": True}},
    }
    (folder / "c.yaml").write_text(json.dumps(config))
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "templates" / "tick.push.j2").write_text("Subject: tick\n{{ event.id }}\n")
    return folder


def devices(http: HttpSink) -> list[dict[str, str]]:
    # Device URLs come with the customer's event: the validator never sees them.
    return [
        {"device": "by-name", "url": f"json://localhost:{http.port}/by-name"},  # /etc/hosts
        {"device": "literal", "url": http.apprise_url("/literal")},
        {"device": "ipv6", "url": f"json://[::1]:{http.port}/ipv6"},
        {"device": "metadata", "url": "json://169.254.169.254/latest/meta-data/"},
        {"device": "aws-v6", "url": "json://[fd00:ec2::254]/latest/meta-data/"},
        {"device": "private", "url": "form://10.1.2.3:8080/hook"},
    ]


def settled(sidecar: Sidecar, event_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        deliveries: list[dict[str, Any]] = sidecar.event(event_id)["deliveries"]
        if all(d["status"] in ("sent", "dead", "skipped") for d in deliveries):
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.05)


def test_private_push_targets_are_dead_letters_with_the_reason(tmp_path: Path) -> None:
    with HttpSink() as http:
        config = device_config(tmp_path / "config", allow=False)
        with Sidecar(config, tmp_path / "store.db", "--backoff", "0.01") as sidecar:
            event = {"type": "tick", "id": "t1", "data": {}}
            event["contact"] = {"id": "c1", "devices": devices(http)}
            assert sidecar.post("/v1/events", event)[0] == 202
            deliveries = settled(sidecar, "t1")
            assert len(deliveries) == 6
            for delivery in deliveries:
                assert delivery["status"] == "dead", delivery
                assert delivery["attempts"] == 1, delivery  # not retried: same answer next time
                assert delivery["attempt_log"][0]["result"] == "refused"
                assert delivery["last_error"].startswith("refused: "), delivery
                assert "allow_private_targets" in delivery["last_error"]
            errors = {d["to"]: d["last_error"] for d in deliveries}
            assert "127.0.0.1, a loopback address" in errors["by-name"]
            assert "link-local (cloud metadata)" in errors["metadata"]
            assert "fd00:ec2::254" in errors["aws-v6"]
            assert "10.1.2.3, a private address" in errors["private"]
            assert len(http) == 0  # nothing reached the sink


def test_allow_private_targets_lets_them_through(tmp_path: Path) -> None:
    with HttpSink() as http:
        config = device_config(tmp_path / "config", allow=True)
        with Sidecar(config, tmp_path / "store.db", "--max-attempts", "1") as sidecar:
            event = {"type": "tick", "id": "t2", "data": {}}
            event["contact"] = {"id": "c2", "devices": devices(http)[:2]}
            assert sidecar.post("/v1/events", event)[0] == 202
            deliveries = settled(sidecar, "t2")
            assert {d["to"]: d["status"] for d in deliveries} == {
                "by-name": "sent",
                "literal": "sent",
            }
            assert sorted(r.path for r in http.received) == ["/by-name", "/literal"]


class _Redirect(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.2:9/inside")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_redirect_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline there is no public host to start from: 127.0.0.1 plays the public one (the
    classifier says so for it alone) and redirects to 127.0.0.2, which stays loopback. The
    redirect is followed by Apprise's requests call and refused when it connects."""
    real = dispatch.not_public
    monkeypatch.setattr(
        dispatch,
        "not_public",
        lambda address: None if str(address) == "127.0.0.1" else real(address),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sender = dispatch.AppriseSender(dispatch.Secrets({}))
        url = f"json://127.0.0.1:{server.server_address[1]}/start"
        result = sender.send(url, None, Message(body="hi"), [], guard=True)
        assert result.result == "refused", result
        assert result.error is not None and "127.0.0.2, a loopback address" in result.error
        unguarded = sender.send(url, None, Message(body="hi"), [], guard=False)
        assert unguarded.result == "failed", unguarded  # followed, and nothing listens there
    finally:
        server.shutdown()
        server.server_close()
