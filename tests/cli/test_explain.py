"""`clarion explain`: every candidate delivery of one event and its fate, on the examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion

from clarion.cli import cli
from clarion.compile import build
from tests.conftest import EXAMPLES

BIG = 125_000  # the big-failed-payments route takes amounts of 100000 and more
SMALL = 4_999


@pytest.fixture(scope="module")
def examples_build() -> tuple[dict[str, Any], bytes, str]:
    result = build(EXAMPLES)
    assert result.table is not None and result.data is not None and result.digest
    examples = {name: spec.example for name, spec in result.table.events.items() if spec.example}
    return examples, result.data, result.digest


@pytest.fixture(scope="module")
def table_file(examples_build: tuple[dict[str, Any], bytes, str], tmp_path_factory: Any) -> Path:
    path: Path = tmp_path_factory.mktemp("table") / "table.json"
    path.write_bytes(examples_build[1])
    return path


def event(
    examples_build: tuple[dict[str, Any], bytes, str],
    event_type: str,
    event_id: str = "evt_1",
    contact: dict[str, Any] | None = None,
    **data: Any,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": event_type,
        "id": event_id,
        "data": {**examples_build[0].get(event_type, {}), **data},
    }
    if contact is not None:
        raw["contact"] = contact
    return raw


def explain(source: Path, raw: Any, *args: str) -> tuple[int, str, str]:
    """Run `clarion explain SOURCE --event -` with RAW on standard input."""
    text = raw if isinstance(raw, str) else json.dumps(raw)
    result = CliRunner().invoke(
        cli,
        ["explain", str(source), "--event", "-", *args],
        input=text,
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def deliveries(source: Path, raw: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    code, out, err = explain(source, raw, "--format", "json", *args)
    assert code == 0, err
    found: list[dict[str, Any]] = json.loads(out)["deliveries"]
    return found


def find(found: list[dict[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    return [d for d in found if all(d.get(k) == v for k, v in fields.items())]


def test_small_failed_payment_skips_finance_on_the_route_condition(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    found = deliveries(table_file, event(examples_build, "payment.failed", amount=SMALL))
    finance = find(found, recipient="finance")
    assert finance and all(d["status"] == "skipped" for d in finance)
    assert {d["reason"] for d in finance} == {"condition_false"}
    assert all("big-failed-payments" in d["detail"] for d in finance)
    [tablet] = find(found, to="owner-tablet")
    assert (tablet["status"], tablet["reason"]) == ("skipped", "device_disabled")
    [sales] = find(found, recipient="sales")
    assert sales["status"] == "planned" and sales["source"] == "team"


def test_big_failed_payment_reaches_finance_through_the_route(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    found = deliveries(table_file, event(examples_build, "payment.failed", amount=BIG))
    finance = find(found, recipient="finance")
    assert {(d["channel"], d["status"]) for d in finance} == {
        ("email", "planned"),
        ("push", "planned"),
    }
    assert {d["source"] for d in finance} == {"route:big-failed-payments"}
    # never to a disabled device, whatever the route says
    [tablet] = find(found, to="owner-tablet")
    assert tablet["reason"] == "device_disabled"


def test_switched_off_customer_message_is_message_disabled(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    contact = {"id": "cus_1", "email": "ana@example.com"}
    found = deliveries(table_file, event(examples_build, "license_key.created", contact=contact))
    [customer] = find(found, source="customer")
    assert customer["recipient"] == "contact:cus_1"
    assert (customer["status"], customer["reason"]) == ("skipped", "message_disabled")


def test_consent_withdrawn_in_the_event_is_no_consent(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    contact = {"id": "cus_2", "phone": "6282114000032", "consent": {"whatsapp": False}}
    noon = ("--at", "2026-03-02T12:00:00Z")  # outside the example's quiet hours
    found = deliveries(table_file, event(examples_build, "order.created", contact=contact), *noon)
    [customer] = find(found, source="customer")
    assert customer["channel"] == "whatsapp" and customer["to"] == "+6282114000032"
    assert (customer["status"], customer["reason"]) == ("skipped", "no_consent")
    # the default consent of a first-seen contact: sent
    contact["consent"] = {}
    found = deliveries(table_file, event(examples_build, "order.created", contact=contact), *noon)
    assert find(found, source="customer")[0]["status"] == "planned"


def test_json_shape_and_key_order(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    raw = event(examples_build, "payment.failed", "evt_json", amount=SMALL)
    code, out, _ = explain(table_file, raw, "--format", "json", "--at", "2026-03-01T09:00:00+01:00")
    assert code == 0
    answer = json.loads(out)
    assert list(answer) == ["event", "digest", "at", "deliveries"]
    assert answer["event"] == {"type": "payment.failed", "id": "evt_json"}
    assert answer["digest"] == examples_build[2]
    assert answer["at"] == "2026-03-01T08:00:00Z"
    keys = ["recipient", "channel", "to", "template", "status", "reason", "detail", "source"]
    assert all(list(d) == keys for d in answer["deliveries"])
    assert {d["status"] for d in answer["deliveries"]} == {"planned", "skipped"}
    # same input, same bytes
    assert explain(table_file, raw, "--format", "json", "--at", "2026-03-01T08:00:00Z")[1] == out


def test_text_output_snapshot(
    examples_build: tuple[dict[str, Any], bytes, str], snapshot: SnapshotAssertion
) -> None:
    # From the config directory itself; the digest changes with every edit of the examples.
    raw = event(examples_build, "payment.failed", "evt_snap", amount=SMALL)
    code, out, _ = explain(EXAMPLES, raw, "--at", "2026-03-01T09:00:00Z")
    assert code == 0
    assert examples_build[2] in out.splitlines()[0]
    assert out.replace(examples_build[2], "sha256:<digest>") == snapshot


def test_text_lines_are_aligned_and_summarised(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    code, out, _ = explain(table_file, event(examples_build, "payment.failed", amount=BIG))
    assert code == 0
    lines = out.splitlines()
    rows = lines[1:-1]
    assert all(r.startswith(("send  ", "skip  ")) for r in rows)
    # the channel column starts at the same place on every row
    starts = {len(r) - len(r.split(None, 2)[2]) for r in rows}
    assert len(starts) == 1
    sent = sum(r.startswith("send") for r in rows)
    assert lines[-1] == f"{sent} to send, {len(rows) - sent} skipped"
    tablet = next(r for r in rows if "owner-tablet" in r)
    assert "device_disabled: the push device is disabled" in tablet
    assert any("via route big-failed-payments" in r for r in rows)


def test_unknown_event_type_is_exit_1_with_the_code(table_file: Path) -> None:
    code, out, err = explain(table_file, {"type": "payment.faild", "id": "e", "data": {}})
    assert code == 1
    assert out == ""
    assert "error[unknown_event_type]" in err and "did you mean 'payment.failed'" in err
    assert "/type" in err


def test_invalid_data_names_the_pointer(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    code, _, err = explain(table_file, event(examples_build, "payment.failed", amount=-1))
    assert code == 1
    assert "error[invalid_data]" in err and "/data/amount" in err


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_an_event_that_is_not_a_json_object_is_exit_1(table_file: Path, text: str) -> None:
    code, _, err = explain(table_file, text)
    assert code == 1
    assert "error[invalid_json]" in err or "error[invalid_event]" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("moment", ["yesterday", "2026-13-01", "now-ish"])
def test_bad_at_is_a_usage_error(table_file: Path, moment: str) -> None:
    code, _, err = explain(table_file, {"type": "payment.failed", "id": "e"}, "--at", moment)
    assert code == 2
    assert "--at" in err


def test_missing_source_or_event_file_is_exit_2(tmp_path: Path, table_file: Path) -> None:
    result = CliRunner().invoke(cli, ["explain", str(tmp_path / "nope"), "--event", "-"])
    assert result.exit_code == 2
    result = CliRunner().invoke(
        cli, ["explain", str(table_file), "--event", str(tmp_path / "missing.json")]
    )
    assert result.exit_code == 2
    assert "missing.json" in result.stderr


def test_event_from_a_file_and_a_broken_config(
    examples_build: tuple[dict[str, Any], bytes, str], examples_copy: Path, tmp_path: Path
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event(examples_build, "payout.failed")))
    result = CliRunner().invoke(cli, ["explain", str(examples_copy), "--event", str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("payout.failed evt_1 (table sha256:")
    routes = examples_copy / "routes.yaml"
    routes.write_text(routes.read_text().replace("to: [finance, owner]", "to: [finanse, owner]"))
    result = CliRunner().invoke(cli, ["explain", str(examples_copy), "--event", str(path)])
    assert result.exit_code == 1
    assert "error[" in result.stderr and "finanse" in result.stderr
    assert result.stdout == ""


def test_explain_never_imports_the_web_stack(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event(examples_build, "payment.failed")))
    code = (
        "import sys\n"
        "from clarion.cli import main\n"
        "try:\n    main(['explain', sys.argv[1], '--event', sys.argv[2]])\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "heavy = [m for m in ('apprise', 'fastapi', 'uvicorn', 'starlette') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(table_file), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_flows_show_scheduled_and_late_steps(tmp_path: Path) -> None:
    event = {
        "type": "subscription.renewal_scheduled",
        "id": "evt_1",
        "data": {"subscription_id": "sub_1", "plan": "Premium", "due_date": "2026-03-10",
                 "amount": 2900, "currency": "EUR"},
        "contact": {"id": "cus_1", "email": "ana@example.com", "timezone": "Europe/Madrid"},
    }  # fmt: skip
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    runner = CliRunner()
    early = runner.invoke(cli, ["explain", str(EXAMPLES), "--event", str(path), "--at",
                                "2026-03-01T08:00:00Z", "--format", "json"])  # fmt: skip
    assert early.exit_code == 0, early.output
    scheduled = [d for d in json.loads(early.output)["deliveries"] if d["status"] == "scheduled"]
    assert [(d["channel"], d["to"]) for d in scheduled] == [("email", "ana@example.com")]
    assert "2026-03-08T08:00:00Z" in scheduled[0]["detail"]  # 09:00 in Madrid
    late = runner.invoke(cli, ["explain", str(EXAMPLES), "--event", str(path), "--at",
                               "2026-03-09T08:00:00Z"])  # fmt: skip
    assert late.exit_code == 0
    assert "late:" in late.output and "\nsched " not in late.output


def test_quiet_hours_show_as_scheduled_with_when(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    contact = {"id": "cus_qh", "phone": "+34612345678", "timezone": "Europe/Madrid"}
    raw = event(examples_build, "order.created", contact=contact)
    night = ("--at", "2026-03-01T23:00:00Z")  # midnight in Madrid, inside 21:00-08:00
    found = deliveries(table_file, raw, *night)
    [customer] = find(found, source="customer")
    assert (customer["status"], customer["reason"]) == ("scheduled", "quiet_hours")
    assert customer["detail"] == (
        "quiet hours 21:00-08:00 (Europe/Madrid): held until 2026-03-02T08:00:00+01:00"
    )
    # the owner's email has `quiet_hours: false`, and the inbox never waits
    owner = [d for d in find(found, recipient="owner") if d["status"] != "skipped"]
    assert {(d["channel"], d["status"]) for d in owner} == {
        ("email", "planned"),
        ("in_app", "planned"),
    }
    code, out, _ = explain(table_file, raw, *night)
    assert code == 0
    row = next(r for r in out.splitlines() if "contact:cus_qh" in r)
    assert row.startswith("sched ") and "held until 2026-03-02T08:00:00+01:00" in row
    # a critical event is never held
    found = deliveries(table_file, event(examples_build, "dispute.created"), *night)
    support = [d for d in find(found, recipient="support") if d["status"] != "skipped"]
    assert {d["channel"] for d in support} == {"email", "sms", "in_app"}
    assert {d["status"] for d in support} == {"planned"}


def test_fallback_order_and_replacement(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    noon = ("--at", "2026-03-02T12:00:00Z")
    contact: dict[str, Any] = {"id": "cus_fb", "phone": "6282114000032"}
    found = deliveries(table_file, event(examples_build, "order.shipped", contact=contact), *noon)
    [whatsapp] = find(found, source="customer")
    assert whatsapp["channel"] == "whatsapp" and whatsapp["status"] == "planned"
    assert whatsapp["detail"] == "if dead-lettered: sms"
    contact["consent"] = {"whatsapp": False}
    found = deliveries(table_file, event(examples_build, "order.shipped", contact=contact), *noon)
    by_channel = {d["channel"]: d for d in find(found, source="customer")}
    assert (by_channel["whatsapp"]["status"], by_channel["whatsapp"]["reason"]) == (
        "skipped",
        "no_consent",
    )
    sms = by_channel["sms"]
    assert (sms["status"], sms["reason"]) == ("planned", "fallback")
    assert sms["detail"] == "sms replaces whatsapp (no_consent)"
    assert sms["to"] == "+6282114000032"
    # no consent for SMS either: both are recorded, nothing is planned
    contact["consent"] = {"whatsapp": False, "sms": False}
    found = deliveries(table_file, event(examples_build, "order.shipped", contact=contact), *noon)
    assert {(d["channel"], d["reason"]) for d in find(found, source="customer")} == {
        ("whatsapp", "no_consent"),
        ("sms", "no_consent"),
    }


def test_escalation_is_scheduled_unless_read(
    examples_build: tuple[dict[str, Any], bytes, str], table_file: Path
) -> None:
    found = deliveries(
        table_file, event(examples_build, "dispute.created"), "--at", "2026-03-02T12:00:00Z"
    )
    [inbox] = find(found, recipient="support", channel="in_app", source="flow")
    assert inbox["status"] == "planned" and inbox["source"] == "flow"
    [phone] = find(found, to="owner-phone", source="flow:dispute_escalation")
    assert phone["status"] == "scheduled" and phone["source"] == "flow:dispute_escalation"
    assert phone["detail"] == (
        "scheduled 2026-03-02T13:00:00Z by flow dispute_escalation; "
        "unless an in-app item this run sent is read by then"
    )
