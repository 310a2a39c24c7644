"""End to end through `clarion serve`: provider failover and channel fallback, against real
loopback HTTP sinks (one that fails, one that works), no mocks."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.runtime.serving import Sidecar
from tests.sinks import HttpSink

TOKEN = "tok-sms-4471"  # a secret in the SMS provider URLs: never in a record, log or error


def write_config(folder: Path, whatsapp: list[str], sms: list[str]) -> Path:
    config = {
        "version": 1,
        "defaults": {"timezone": "Europe/Madrid", "allow_private_targets": True},  # loopback sinks
        "events": {
            "order.shipped": {
                "description": "The warehouse shipped an order.",
                "data": {
                    "type": "object",
                    "required": ["order_id"],
                    "properties": {"order_id": {"type": "string"}},
                },
                "example": {"order_id": "SO-1"},
            }
        },
        "channels": {
            "whatsapp": {"address": "phone", "apprise": whatsapp},
            "sms": {"address": "phone", "apprise": sms},
        },
        "customer_messages": {
            "order.shipped": {"channels": ["whatsapp"], "fallback": ["sms"], "template": "shipped"}
        },
        "consent": {"default": {"whatsapp": True, "sms": True}},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clarion.yaml").write_text(json.dumps(config, indent=2))
    templates = folder / "templates"
    templates.mkdir(exist_ok=True)
    for channel in ("whatsapp", "sms"):
        (templates / f"shipped.{channel}.j2").write_text(
            "Subject: Shipped\nOrder {{ data.order_id }} is on its way.\n"
        )
    return folder


def provider(sink: HttpSink, name: str) -> str:
    return sink.apprise_url(f"/{name}/{{secret:SMS_TOKEN}}/{{to}}")


def settled(sidecar: Sidecar, event_id: str, count: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = sidecar.event(event_id)
        done = [d for d in body["deliveries"] if d["status"] in ("sent", "skipped", "dead")]
        if len(done) == len(body["deliveries"]) == count:
            return body
        assert time.monotonic() < deadline, json.dumps(body, indent=1)
        time.sleep(0.05)


def shipped(event_id: str, phone: str) -> dict[str, Any]:
    return {
        "type": "order.shipped",
        "id": event_id,
        "data": {"order_id": "SO-7"},
        "contact": {"id": f"cus_{event_id}", "phone": phone},
    }


def metrics(sidecar: Sidecar) -> str:
    with urllib.request.urlopen(sidecar.url + "/metrics", timeout=10) as response:
        text: str = response.read().decode()
    return text


def test_a_failing_sms_provider_fails_over_to_the_next_within_one_attempt(
    tmp_path: Path,
) -> None:
    with HttpSink(status=503) as down, HttpSink() as up, HttpSink() as whatsapp:
        config = write_config(
            tmp_path / "config",
            whatsapp=[whatsapp.apprise_url("/wa/{to}")],
            sms=[provider(down, "twilio"), provider(up, "vonage")],
        )
        env = {"SMS_TOKEN": TOKEN}
        with Sidecar(config, tmp_path / "store.db", "--backoff", "0.05", env=env) as sidecar:
            # no WhatsApp consent: SMS replaces it at once, and its first provider fails
            event = shipped("f1", "+34612345678")
            event["contact"]["consent"] = {"whatsapp": False}
            assert sidecar.post("/v1/events", event)[0] == 202
            body = settled(sidecar, "f1", 2)
            by_channel = {d["channel"]: d for d in body["deliveries"]}
            assert by_channel["whatsapp"]["reason"] == "no_consent"
            sms = by_channel["sms"]
            assert (sms["status"], sms["reason"]) == ("sent", "fallback")
            assert sms["detail"] == "sms replaces whatsapp (no_consent)"
            # one attempt, answered by provider 1 (the second URL), after provider 0 failed
            assert sms["attempts"] == 1
            [attempt] = sms["attempt_log"]
            assert (attempt["result"], attempt["provider"]) == ("sent", 1)
            [refused] = down.wait_for(1)
            [arrived] = up.wait_for(1)
            assert refused.path == arrived.path.replace("/vonage/", "/twilio/")
            assert arrived.path == f"/vonage/{TOKEN}/+34612345678"
            assert arrived.message is not None and "SO-7 is on its way" in arrived.message
            assert len(whatsapp) == 0
            assert 'clarion_failovers_total{channel="sms"} 1.0' in metrics(sidecar)


def test_when_every_provider_fails_the_attempt_fails_naming_providers_by_index(
    tmp_path: Path,
) -> None:
    with HttpSink(status=503) as first, HttpSink(status=500) as second, HttpSink() as whatsapp:
        config = write_config(
            tmp_path / "config",
            whatsapp=[whatsapp.apprise_url("/wa/{to}")],
            sms=[provider(first, "twilio"), provider(second, "vonage")],
        )
        args = ("--backoff", "0.01", "--max-attempts", "2")
        env = {"SMS_TOKEN": TOKEN}
        with Sidecar(config, tmp_path / "store.db", *args, env=env) as sidecar:
            event = shipped("f2", "+34612345679")
            event["contact"]["consent"] = {"whatsapp": False}
            sidecar.post("/v1/events", event)
            sms = {d["channel"]: d for d in settled(sidecar, "f2", 2)["deliveries"]}["sms"]
            assert sms["status"] == "dead" and sms["attempts"] == 2
            for attempt in sms["attempt_log"]:
                assert attempt["provider"] == 1
                assert attempt["error"].startswith("provider 0: ")
                assert "; provider 1: " in attempt["error"]
            assert len(first) == len(second) == 2  # each attempt tried both, in order
            assert 'clarion_failovers_total{channel="sms"} 2.0' in metrics(sidecar)
            shown = json.dumps(sidecar.event("f2"))
            assert TOKEN not in shown and "json://" not in shown
        assert TOKEN not in sidecar.log.read_text()


def test_a_dead_lettered_whatsapp_message_falls_back_to_sms(tmp_path: Path) -> None:
    with HttpSink(status=503) as whatsapp, HttpSink() as sms:
        config = write_config(
            tmp_path / "config",
            whatsapp=[whatsapp.apprise_url("/wa/{to}")],
            sms=[provider(sms, "twilio")],
        )
        args = ("--backoff", "0.01", "--max-attempts", "3")
        env = {"SMS_TOKEN": TOKEN}
        with Sidecar(config, tmp_path / "store.db", *args, env=env) as sidecar:
            assert sidecar.post("/v1/events", shipped("d1", "6282114000032"))[0] == 202
            body = settled(sidecar, "d1", 2)
            first, second = body["deliveries"]
            assert (first["channel"], first["status"], first["attempts"]) == ("whatsapp", "dead", 3)
            assert (second["channel"], second["status"]) == ("sms", "sent")
            assert second["reason"] == "fallback"
            assert second["detail"] == "sms replaces whatsapp (dead)"
            assert second["to"] == first["to"]  # the same customer, masked alike
            assert len(whatsapp.wait_for(3)) == 3
            [arrived] = sms.wait_for(1)
            assert arrived.path == f"/twilio/{TOKEN}/+6282114000032"
            # delivered once: nothing more arrives
            time.sleep(0.5)
            assert len(sms) == 1 and len(whatsapp) == 3


def test_a_message_whose_every_device_dies_falls_back_once(tmp_path: Path) -> None:
    """Two push devices of one customer both dead-lettered: one SMS, not one per device (found
    in review: each dead delivery planned its own fallback)."""
    from tests.runtime.serving import free_port

    closed = free_port()  # nothing listens: every push send fails at once
    with HttpSink() as sink:
        folder = write_config(tmp_path / "config", [provider(sink, "wa")], [provider(sink, "sms")])
        config = json.loads((folder / "clarion.yaml").read_text())
        config["channels"]["push"] = {"address": "url"}
        config["customer_messages"]["order.shipped"]["channels"] = ["push"]
        config["consent"]["default"]["push"] = True
        (folder / "clarion.yaml").write_text(json.dumps(config, indent=2))
        (folder / "templates" / "shipped.push.j2").write_text("Subject: Shipped\nOn its way.\n")
        env = {"SMS_TOKEN": TOKEN}
        with Sidecar(folder, tmp_path / "s.db", "--max-attempts", "1", env=env) as sidecar:
            event = shipped("evt_two_devices", "+34612345678")
            event["contact"]["devices"] = [
                {"device": f"phone{n}", "url": f"json://127.0.0.1:{closed}/dev{n}"} for n in (0, 1)
            ]
            assert sidecar.post("/v1/events", event)[0] == 202
            body = settled(sidecar, "evt_two_devices", 3)
            statuses = sorted((d["channel"], d["status"]) for d in body["deliveries"])
            assert statuses == [("push", "dead"), ("push", "dead"), ("sms", "sent")], statuses
            time.sleep(0.5)  # a second fallback would arrive now
            assert len([r for r in sink.received if r.path.startswith("/sms/")]) == 1
