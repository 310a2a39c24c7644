"""End to end through `clarion serve`: real HTTP and SMTP sinks on loopback, no mocks."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.serving import Sidecar, only_timeouts_twice
from tests.sinks import HttpSink, SmtpSink

PAYMENT_SCHEMA = {
    "type": "object",
    "required": ["payment_id", "amount", "currency"],
    "properties": {
        "payment_id": {"type": "string"},
        "amount": {"type": "integer"},
        "currency": {"type": "string"},
        "receipt_path": {"type": "string"},
    },
}


def write_config(folder: Path, http: HttpSink, smtp: SmtpSink, receipt: Path) -> Path:
    config = {
        "version": 1,
        "defaults": {"timezone": "Europe/Madrid", "locale": "en", "allow_private_targets": True},
        "events": {
            "payment.failed": {
                "category": "payments",
                "description": "A payment attempt failed.",
                "critical": True,
                "data": PAYMENT_SCHEMA,
                "example": {"payment_id": "pay_1", "amount": 4999, "currency": "EUR"},
            },
            "payment.succeeded": {
                "category": "payments",
                "description": "A payment went through.",
                "data": PAYMENT_SCHEMA,
                "example": {
                    "payment_id": "pay_2",
                    "amount": 4999,
                    "currency": "EUR",
                    "receipt_path": str(receipt),
                },
            },
        },
        "channels": {
            "email": {"address": "email", "apprise": smtp.apprise_url("billing@example.com")},
            "push": {"address": "url"},
            "in_app": {"address": "inbox"},
        },
        "recipients": {
            "owner": {
                "email": {"address": "owner@yourcompany.com", "events": "all"},
                "push": [
                    {
                        "device": "owner-phone",
                        "url": http.apprise_url("/owner-phone"),
                        "events": ["payments"],
                    },
                    {
                        "device": "owner-tablet",
                        "url": http.apprise_url("/owner-tablet"),
                        "enabled": False,
                    },
                ],
                "in_app": {"events": "all"},
            },
            "sales": {
                "email": {"address": "sales@yourcompany.com", "events": "none"},
                "in_app": {"events": ["payment.succeeded"]},
            },
        },
        "customer_messages": {
            "payment.succeeded": {
                "channels": ["email"],
                "template": "receipt",
                "attach": "{{ data.receipt_path }}",
            }
        },
        "consent": {"default": {"email": True}},
        "contacts": {"unique": ["email"]},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clarion.yaml").write_text(json.dumps(config, indent=2))
    templates = folder / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "payment.failed.email.j2").write_text(
        "Subject: Payment {{ data.payment_id }} failed\n"
        "Hi {{ recipient }}, a payment of {{ data.amount | money(data.currency) }} failed "
        "({{ event.id }}).\n"
    )
    (templates / "payment.failed.push.j2").write_text(
        "Subject: Payment failed\n{{ event.id }} for {{ recipient }}\n"
    )
    (templates / "receipt.email.j2").write_text(
        "Subject: Your receipt\nThank you {{ contact.name | default('there') }}, "
        "we received {{ data.amount | money(data.currency) }}.\n"
    )
    return folder


@pytest.fixture
def receipt(tmp_path: Path) -> Path:
    path = tmp_path / "receipt-0001.pdf"
    path.write_bytes(b"%PDF-1.4\n% a receipt\n")
    return path


def settled(sidecar: Sidecar, event_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = sidecar.event(event_id)
        if all(d["status"] in ("sent", "skipped", "dead") for d in body["deliveries"]):
            return body
        assert time.monotonic() < deadline, json.dumps(body, indent=1)
        time.sleep(0.05)


def by(deliveries: list[dict[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    return [d for d in deliveries if all(d[k] == v for k, v in fields.items())]


def test_delivers_per_recipient_with_reasons_for_the_rest(
    tmp_path: Path, http_sink: HttpSink, smtp_sink: SmtpSink, receipt: Path
) -> None:
    config = write_config(tmp_path / "config", http_sink, smtp_sink, receipt)
    with Sidecar(config, tmp_path / "store.db", "--backoff", "0.05") as sidecar:
        failed = {"payment_id": "pay_9", "amount": 150000, "currency": "EUR"}
        assert (
            sidecar.post("/v1/events", {"type": "payment.failed", "id": "e1", "data": failed})[0]
            == 202
        )
        succeeded = {**failed, "receipt_path": str(receipt)}
        contact = {"id": "cus_1", "email": "Ana@Example.com", "name": "Ana"}
        event = {"type": "payment.succeeded", "id": "e2", "data": succeeded, "contact": contact}
        assert sidecar.post("/v1/events", event)[0] == 202

        one = settled(sidecar, "e1")["deliveries"]
        assert by(one, recipient="owner", channel="email")[0]["status"] == "sent"
        assert by(one, to="owner-phone")[0]["status"] == "sent"
        assert by(one, to="owner-tablet")[0]["reason"] == "device_disabled"
        assert by(one, recipient="sales", channel="email")[0]["reason"] == "event_disabled"
        assert by(one, recipient="owner", channel="in_app")[0]["status"] == "sent"
        two = settled(sidecar, "e2")["deliveries"]
        assert by(two, recipient="contact:cus_1")[0]["status"] == "sent"

        mails = smtp_sink.wait_for(3, timeout=10)
        to_owner = [m for m in mails if list(m.rcpt_tos) == ["owner@yourcompany.com"]]
        failed_mail = next(m for m in to_owner if m.subject == "Payment pay_9 failed")
        assert "Hi owner, a payment of €1,500.00 failed (e1)." in (failed_mail.text or "")
        # the address as normalised: domain lower-cased, local part kept (scenarios.md)
        [to_customer] = [m for m in mails if list(m.rcpt_tos) == ["Ana@example.com"]]
        assert to_customer.subject == "Your receipt"
        assert "Thank you Ana, we received €1,500.00." in (to_customer.text or "")
        [attachment] = to_customer.attachments
        assert attachment.filename == "receipt-0001.pdf"
        assert attachment.data == receipt.read_bytes()
        assert not [m for m in mails if "sales@" in " ".join(m.rcpt_tos)]

        pushes = http_sink.wait_for(2, timeout=10)
        assert {p.path for p in pushes} == {"/owner-phone"}
        first = next(p for p in pushes if p.message and "e1" in p.message)
        assert (first.title, first.message.strip()) == ("Payment failed", "e1 for owner")
        assert sidecar.stop() == 0


def test_a_failing_provider_is_retried_with_backoff_and_delivered_once(
    tmp_path: Path, smtp_sink: SmtpSink, receipt: Path
) -> None:
    with HttpSink(fail_first=2) as http:
        config = write_config(tmp_path / "config", http, smtp_sink, receipt)
        with Sidecar(config, tmp_path / "store.db", "--backoff", "0.05") as sidecar:
            data = {"payment_id": "pay_3", "amount": 100, "currency": "EUR"}
            sidecar.post("/v1/events", {"type": "payment.failed", "id": "r1", "data": data})
            deliveries = settled(sidecar, "r1")["deliveries"]
            [push] = by(deliveries, to="owner-phone")
            assert push["status"] == "sent"
            assert push["attempts"] == 3
            assert [a["result"] for a in push["attempt_log"]] == ["failed", "failed", "sent"]
            arrivals = [r for r in http.received if r.path == "/owner-phone"]
            assert [r.outcome for r in arrivals] == ["fail", "fail", "ok"]  # delivered once
            times = [a["at"] for a in push["attempt_log"]]
            assert times == sorted(times) and len(set(times)) == 3


def test_a_provider_that_never_answers_ends_dead_with_its_answer_kept(
    tmp_path: Path, smtp_sink: SmtpSink, receipt: Path
) -> None:
    with HttpSink(status=503) as http:
        config = write_config(tmp_path / "config", http, smtp_sink, receipt)
        args = ("--backoff", "0.01", "--max-attempts", "3")
        with Sidecar(config, tmp_path / "store.db", *args) as sidecar:
            data = {"payment_id": "pay_4", "amount": 100, "currency": "EUR"}
            sidecar.post("/v1/events", {"type": "payment.failed", "id": "d1", "data": data})
            [push] = by(settled(sidecar, "d1")["deliveries"], to="owner-phone")
            assert push["status"] == "dead" and push["attempts"] == 3
            assert push["last_error"] and "503" in push["last_error"]


def test_refuses_to_start_without_a_secret_or_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config"
    config.mkdir()
    (config / "c.yaml").write_text(
        "version: 1\n"
        "events: {ping: {description: Ping, example: {}}}\n"
        "channels:\n"
        "  sms: {address: phone, apprise: 'twilio://{secret:TW_SID}:{secret:TW_TOKEN}@15551234567/{to}'}\n"
        "recipients: {ops: {sms: {address: '+34612345678'}}}\n"
    )
    env = {"PATH": "/usr/bin:/bin", "TW_TOKEN": "tok-value-123"}
    run = subprocess.run(
        [sys.executable, "-m", "clarion", "serve", str(config), "--port", "0",
         "--store", f"sqlite:///{tmp_path / 's.db'}"],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert run.returncode == 2
    assert "TW_SID" in run.stderr and "tok-value-123" not in run.stderr + run.stdout
    public = subprocess.run(
        [sys.executable, "-m", "clarion", "serve", str(config), "--host", "0.0.0.0", "--dry-run"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30,
    )  # fmt: skip
    assert public.returncode == 2 and "CLARION_TOKEN" in public.stderr


def crash_config(folder: Path, http: HttpSink, rate: str | None = None) -> Path:
    """One event type, `tick`, one push delivery to the sink (paced at `rate`, if given)."""
    channel = "{address: url" + (f", rate: {rate}" if rate else "") + "}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "c.yaml").write_text(
        "version: 1\n"
        "defaults: {allow_private_targets: true}\n"  # the sink is on loopback
        "events:\n"
        "  tick: {description: A tick, data: {type: object}, example: {}}\n"
        f"channels: {{push: {channel}}}\n"
        "recipients:\n"
        f"  ops: {{push: {{device: pager, url: '{http.apprise_url('/pager')}'}}}}\n"
    )
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "templates" / "tick.push.j2").write_text("Subject: tick\n{{ event.id }}\n")
    return folder


def test_crash_mid_dispatch_loses_nothing(tmp_path: Path) -> None:
    """2,000 accepted events, SIGKILL while sending, restart: every delivery reaches the sink or
    is dead, and only deliveries recorded as timed out (outcome unknown) may arrive twice."""
    total = 2000
    # 2,000 sends of 20 ms over 8 workers take about 5 s: the kill at a quarter is mid-burst
    # even on a loaded machine.
    with HttpSink(delay=0.02) as http:
        config = crash_config(tmp_path / "config", http)
        store = tmp_path / "store.db"
        sidecar = Sidecar(config, store, "--workers", "8", "--backoff", "0.05").start()
        try:
            events = [{"type": "tick", "id": f"t{i:05d}", "data": {}} for i in range(total)]
            for start in range(0, total, 500):
                status, body = sidecar.post(
                    "/v1/events:batch", {"events": events[start : start + 500]}
                )
                assert status == 200 and body["accepted"] == 500
            deadline = time.monotonic() + 30
            while len(http) < total // 4:
                assert time.monotonic() < deadline, "dispatch never got going"
                time.sleep(0.01)
            sidecar.kill()  # SIGKILL, mid-dispatch
            assert len(http) < total, "the burst finished before the kill; nothing was tested"
            sidecar.start()
            deadline = time.monotonic() + 90
            while True:
                done = sum(1 for r in http.received if r.outcome == "ok")
                if done >= total:
                    break
                assert time.monotonic() < deadline, f"only {done} of {total} arrived"
                time.sleep(0.1)
            time.sleep(0.5)  # let the last outcomes be recorded
            counts = collections.Counter((r.message or "").strip() for r in http.received)
            assert set(counts) == {e["id"] for e in events}
            only_timeouts_twice(sidecar, counts)
            for event_id in [e["id"] for e in events[:: total // 20]]:
                [delivery] = sidecar.event(event_id)["deliveries"]
                assert delivery["status"] == "sent", delivery
        finally:
            sidecar.kill()


def test_reload_on_sighup_and_on_change_keeps_the_old_table_when_the_new_fails(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    import signal

    config = crash_config(tmp_path / "config", http_sink)
    with Sidecar(config, tmp_path / "store.db", "--dry-run") as sidecar:
        first = sidecar.get("/v1/table")[1]["digest"]

        def digest_becomes(predicate: Any, timeout: float = 10.0) -> str:
            deadline = time.monotonic() + timeout
            while True:
                current: str = sidecar.get("/v1/table")[1]["digest"]
                if predicate(current):
                    return current
                assert time.monotonic() < deadline, current
                time.sleep(0.1)

        # a change on disk is picked up
        (config / "extra.yaml").write_text("events: {tock: {description: A tock, example: {}}}\n")
        second = digest_becomes(lambda d: d != first)
        assert sidecar.post("/v1/events", {"type": "tock", "id": "k1"})[0] == 202
        # a broken config is refused, the old table keeps serving, and the log says so
        (config / "extra.yaml").write_text("events: {tock: {descripton: typo}}\n")
        time.sleep(2.5)
        assert sidecar.get("/v1/table")[1]["digest"] == second
        assert sidecar.post("/v1/events", {"type": "tock", "id": "k2"})[0] == 202
        log = sidecar.log.read_text()
        assert "reload refused; still serving the previous table" in log
        assert "CL103" in log
        # SIGHUP reloads too (here: back to the first config)
        (config / "extra.yaml").unlink()
        assert sidecar.process is not None
        sidecar.process.send_signal(signal.SIGHUP)
        digest_becomes(lambda d: d == first)
        assert sidecar.post("/v1/events", {"type": "tock", "id": "k3"})[1]["error"]["code"] == (
            "unknown_event_type"
        )


def scheduled_config(folder: Path, http: HttpSink, catch_up: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "c.yaml").write_text(
        "version: 1\n"
        f"defaults: {{catch_up: {catch_up}, allow_private_targets: true}}\n"
        "events:\n"
        "  ping: {description: A ping, data: {type: object}, example: {}}\n"
        "channels: {push: {address: url}}\n"
        "recipients:\n"
        f"  ops: {{push: {{device: pager, url: '{http.apprise_url('/pager')}', events: none}}}}\n"
        "flows:\n"
        "  later:\n"
        "    on: ping\n"
        "    steps:\n"
        "      - wait: {for: 2s}\n"
        "      - send: {to: [ops], channels: [push], template: later}\n"
    )
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "templates" / "later.push.j2").write_text("Subject: later\n{{ event.id }}\n")
    return folder


@pytest.mark.parametrize(("catch_up", "arrive"), [("1h", True), ("1s", False)])
def test_steps_due_while_down_fire_in_order_on_restart_or_are_late(
    tmp_path: Path, catch_up: str, arrive: bool
) -> None:
    with HttpSink() as http:
        config = scheduled_config(tmp_path / "config", http, catch_up)
        sidecar = Sidecar(config, tmp_path / "store.db").start()
        try:
            for name in ("first", "second", "third"):
                assert sidecar.post("/v1/events", {"type": "ping", "id": name})[0] == 202
                time.sleep(0.2)
            sidecar.kill()  # down before anything is due
            time.sleep(4.5)  # every step falls due while it is down, ~2.5 s late
            sidecar.start()
            if arrive:
                arrivals = http.wait_for(3, timeout=10)
                time.sleep(1.0)
                assert sorted((r.message or "").strip() for r in arrivals) == [
                    "first",
                    "second",
                    "third",
                ]
                assert len(http) == 3  # each once
                # fired in due order: each step's delivery was created in that order
                ids = [
                    sidecar.event(n)["deliveries"][-1]["id"] for n in ("first", "second", "third")
                ]
                assert ids == sorted(ids)
            else:
                time.sleep(2.0)
                assert len(http) == 0
                for name in ("first", "second", "third"):
                    [delivery] = sidecar.event(name)["deliveries"][-1:]
                    assert (delivery["status"], delivery["reason"]) == ("skipped", "late")
        finally:
            sidecar.kill()
