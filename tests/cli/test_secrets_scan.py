"""No secret value anywhere: every `{secret:NAME}` of examples/config gets a distinctive value,
every command runs, sends fail on purpose (so that Apprise's errors are logged), and all that comes
out is scanned: stdout and stderr, files written, the sidecar's log, every API read, every row of
every table of the store, and the compiled table."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from clarion.check.secrets import secret_names
from clarion.cli import cli
from tests.runtime.serving import Sidecar, free_port
from tests.sinks import HttpSink

LOOPBACK_NTFY = "ntfy://127.0.0.1:{port}/"


def _secrets(config: Path) -> dict[str, str]:
    names: set[str] = set()
    for path in config.rglob("*.yaml"):
        names.update(secret_names(path.read_text()))
    # Letters and digits only: a value cannot be hidden by URL-quoting or JSON escaping. No part
    # of the name either: a part of the value must mean the value.
    return {name: "Zq9" + hashlib.sha256(name.encode()).hexdigest()[:24] for name in sorted(names)}


def _point_at_loopback(config: Path, sink_port: int, closed_port: int) -> None:
    """Every URL keeps its secrets, and goes to a sink answering 500 or to a closed port."""
    channels = config / "channels.yaml"
    text = channels.read_text()
    text = text.replace("@smtp.example.com/", f"@127.0.0.1:{closed_port}/")
    text = text.replace("mailtos://", "mailto://")
    text = text.replace(
        "twilio://{secret:TWILIO_SID}:{secret:TWILIO_TOKEN}@15551234567/{to}",
        f"json://{{secret:TWILIO_SID}}:{{secret:TWILIO_TOKEN}}@127.0.0.1:{sink_port}/sms/{{to}}",
    )
    text = text.replace(
        "vonage://{secret:VONAGE_KEY}:{secret:VONAGE_SECRET}@15551234567/{to}",
        f"json://{{secret:VONAGE_KEY}}:{{secret:VONAGE_SECRET}}@127.0.0.1:{sink_port}/sms2/{{to}}",
    )
    text = text.replace(
        "whatsapp://{secret:WHATSAPP_TOKEN}@{secret:WHATSAPP_FROM_ID}/{to}",
        f"json://{{secret:WHATSAPP_TOKEN}}:{{secret:WHATSAPP_FROM_ID}}@127.0.0.1:{sink_port}"
        "/wa/{to}",
    )
    text = text.replace(
        "viber://{secret:VIBER_TOKEN}/{to}",
        f"json://bot:{{secret:VIBER_TOKEN}}@127.0.0.1:{sink_port}/viber/{{to}}",
    )
    channels.write_text(text)
    team = config / "team.yaml"
    team.write_text(
        team.read_text().replace("ntfy://ntfy.example.com/", LOOPBACK_NTFY.format(port=sink_port))
    )
    assert "example.com/{secret" not in team.read_text()
    assert "://{secret" not in channels.read_text().replace("json://", "").replace("mailto://", "")
    main = config / "clarion.yaml"  # the sinks are on loopback
    main.write_text(
        main.read_text().replace("defaults:\n", "defaults:\n  allow_private_targets: true\n", 1)
    )


class Scan:
    """Everything that came out, with where it came from."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.seen: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.seen.append((where, text))

    def add_tree(self, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.add(str(path), path.read_bytes())

    def add_store(self, path: Path) -> int:
        rows = 0
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            assert {"events", "deliveries", "attempts"} <= set(tables), tables
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    rows += 1
                    self.add(f"store table {table}", repr(row))
        return rows

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.seen:
            for name, value in self.secrets.items():
                # the value, and any 10 characters of it (a masked or cut copy still leaks)
                parts = [value[i : i + 10] for i in range(len(value) - 9)]
                hit = next((part for part in parts if part in text), None)
                if hit is not None:
                    index = text.find(hit)
                    found.append(
                        f"{name} in {where}: ...{text[max(0, index - 80) : index + 80]}..."
                    )
        return found


def _run(scan: Scan, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    # In process (a subprocess per command costs seconds on a busy CI); the sidecar below is a
    # real process, with its own log.
    result = CliRunner(env=env).invoke(cli, list(args), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    scan.add(f"clarion {' '.join(args)} (stdout)", result.stdout)
    scan.add(f"clarion {' '.join(args)} (stderr)", result.stderr)
    assert result.exit_code in (0, 1), (args, result.exit_code, result.stderr)
    return result.stdout


def _event(event_id: str, event_type: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": event_type, "id": event_id, "data": data, **extra}


def test_no_secret_value_comes_out_anywhere(examples_copy: Path, tmp_path: Path) -> None:
    secrets = _secrets(examples_copy)
    assert len(secrets) >= 8, secrets  # every {secret:NAME} of the examples
    scan = Scan(secrets)
    env = {**os.environ, **secrets, "NO_COLOR": "1"}

    with HttpSink(status=500) as sink:
        _point_at_loopback(examples_copy, sink.port, free_port())
        table_file = tmp_path / "table.json"
        changed = tmp_path / "changed"
        shutil.copytree(examples_copy, changed)
        routes = changed / "routes.yaml"
        routes.write_text(routes.read_text().replace("events: all", "events: none", 1))

        # every command that reads the config
        for fmt in ("text", "json", "github", "sarif"):
            _run(scan, env, "validate", str(examples_copy), "--format", fmt)
        _run(scan, env, "compile", str(examples_copy), "-o", str(table_file))
        scan.add("compiled table", table_file.read_bytes())
        _run(scan, env, "schema")
        _run(scan, env, "schema", "--table")
        _run(scan, env, "test", str(examples_copy))
        for fmt in ("text", "markdown", "json"):
            _run(scan, env, "diff", str(examples_copy), str(changed), "--format", fmt)
        _run(scan, env, "diff", str(table_file), str(changed))
        example = json.loads(_run(scan, env, "compile", str(examples_copy)))["events"]
        failed = _event("evt_fail", "payment.failed", example["payment.failed"]["example"])
        event_file = tmp_path / "event.json"
        event_file.write_text(json.dumps(failed))
        for fmt in ("text", "json"):
            _run(
                scan,
                env,
                "explain",
                str(examples_copy),
                "--event",
                str(event_file),
                "--format",
                fmt,
            )
        _run(scan, env, "render", str(examples_copy), "payment_failed", "--channel", "email")
        _run(scan, env, "render", str(examples_copy), "--all", "-o", str(tmp_path / "previews"))
        scan.add_tree(tmp_path / "previews")
        _run(scan, env, "docs", str(examples_copy), "-o", str(tmp_path / "site"))
        scan.add_tree(tmp_path / "site")

        # the sidecar: sends that fail, so Apprise and the dispatcher log their errors
        store = tmp_path / "store.db"
        sidecar = Sidecar(
            examples_copy, store, "--max-attempts", "2", "--backoff", "0.05", env=secrets
        )
        with sidecar:
            customer = {
                "id": "cus_1",
                "email": "ana@example.com",
                "phone": "+34600000001",
                "consent": {"viber": True},
                "devices": [{"device": "ana-phone", "url": f"ntfy://127.0.0.1:{sink.port}/ana"}],
            }
            events = [
                failed,
                _event("evt_dispute", "dispute.created", example["dispute.created"]["example"]),
                _event(
                    "evt_order",
                    "order.created",
                    example["order.created"]["example"],
                    contact=customer,
                ),
                _event(
                    "evt_sub",
                    "subscription.unpaid",
                    example["subscription.unpaid"]["example"],
                    contact={
                        **customer,
                        "id": "cus_2",
                        "email": "b@example.com",
                        "phone": "+34600000002",
                    },
                ),
            ]
            lines = tmp_path / "events.jsonl"
            lines.write_text("\n".join(json.dumps(e) for e in events) + "\n")
            send_env = {**env, "CLARION_URL": sidecar.url}
            _run(scan, send_env, "send", str(lines))
            _run(scan, send_env, "send", "-", stdin=json.dumps(failed))
            _run(scan, send_env, "send", "-", stdin='{"type": "nope"}')

            deadline = time.monotonic() + 60
            while True:  # every send tried until it is dead (or sent nowhere: inbox)
                bodies = [sidecar.event(e["id"]) for e in events]
                open_ = [
                    d
                    for b in bodies
                    for d in b["deliveries"]
                    if d["status"] in ("planned", "sending", "failed") and d["due_at"] is not None
                    and d["attempts"] < 2 and d["channel"] != "in_app"
                ]  # fmt: skip
                if not open_ or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            dead = [d for b in bodies for d in b["deliveries"] if d["status"] == "dead"]
            assert dead, "no send failed: the scan would not see Apprise's errors"
            assert any(d["last_error"] for d in dead)
            assert sink.received, "nothing reached the loopback sink"

            reads = [
                *(f"/v1/events/{e['id']}" for e in events),
                "/v1/inbox/owner",
                "/v1/inbox/support?unread=true",
                "/v1/inboxes",
                "/v1/contacts/cus_1",
                "/v1/contacts/cus_2",
                "/v1/table",
                "/openapi.json",
                "/healthz",
                "/readyz",
            ]
            for path in reads:
                status, body = sidecar.get(path)
                assert status == 200, (path, body)
                scan.add(f"GET {path}", json.dumps(body))
            status, body = sidecar.request(
                "PUT", "/v1/contacts/cus_1/consent", {"consent": {"sms": False}}
            )
            assert status == 200, body
            scan.add("PUT consent", json.dumps(body))
            for path in ("/metrics", "/", "/inbox/owner", "/events/evt_fail", "/assets/event.js"):
                with urllib.request.urlopen(sidecar.url + path, timeout=10) as response:
                    scan.add(f"GET {path}", response.read())
            sidecar.stop()

        scan.add("the sidecar's log", sidecar.log.read_bytes())
        assert sidecar.log.read_text().count("\n") > 5
        assert scan.add_store(store) > 10
        scan.add("every request the sink received", repr(sink.received))

    leaks = [leak for leak in scan.leaks() if not leak.split(" in ")[1].startswith("every request")]
    assert not leaks, "\n".join(leaks)
    # The scan can see a secret where there is one: the sends carried them to the sink.
    assert Scan(secrets).leaks() == []
    carried = Scan(secrets)
    carried.add("sink", repr(sink.received))
    assert carried.leaks(), "the sends did not carry their secrets: the scan proves nothing"
