"""Who gets what, and why not: every seed rule gives its reason code."""

from __future__ import annotations

from datetime import UTC, datetime

from clarion.runtime.envelope import parse_event
from clarion.runtime.ingest import merge_contact
from clarion.runtime.planner import ContactState, Delivery, plan
from clarion.runtime.tableindex import TableIndex
from tests.runtime.conftest import example

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def planned(table: TableIndex, raw: dict[str, object]) -> list[Delivery]:
    event = parse_event(raw)
    contact: ContactState | None = None
    if event.contact is not None:
        _, _, contact = merge_contact(table, event, None, NOW.timestamp())
    return plan(table, event, contact, NOW)


def find(deliveries: list[Delivery], **fields: object) -> list[Delivery]:
    return [d for d in deliveries if all(getattr(d, k) == v for k, v in fields.items())]


def test_enable_all_toggles_and_disable_all(examples_table: TableIndex) -> None:
    data = example(examples_table, "payment.failed", amount=4999)  # below the route's 100000
    out = planned(examples_table, {"type": "payment.failed", "id": "e1", "data": data})
    # owner: email Enable All
    [owner_email] = find(out, recipient="owner", channel="email")
    assert owner_email.status == "planned"
    # marketing: email Disable All
    [marketing] = find(out, recipient="marketing", channel="email")
    assert (marketing.status, marketing.reason) == ("skipped", "event_disabled")
    # finance: toggles without payments
    for d in find(out, recipient="finance", channel="email"):
        assert (d.status, d.reason) == ("skipped", "condition_false")  # the big-payment route
        assert d.detail is not None and "big-failed-payments" in d.detail


def test_disabled_device(examples_table: TableIndex) -> None:
    data = example(examples_table, "payment.failed")
    out = planned(examples_table, {"type": "payment.failed", "id": "e2", "data": data})
    [tablet] = find(out, recipient="owner", to="owner-tablet")
    assert (tablet.status, tablet.reason) == ("skipped", "device_disabled")
    [phone] = find(out, recipient="owner", to="owner-phone")
    assert phone.status == "planned"


def test_route_adds_big_failed_payments(examples_table: TableIndex) -> None:
    data = example(examples_table, "payment.failed", amount=250_000)
    out = planned(examples_table, {"type": "payment.failed", "id": "e3", "data": data})
    finance = find(out, recipient="finance", channel="email")
    assert finance and all(d.status == "planned" for d in finance)
    assert all(d.source == "route:big-failed-payments" for d in finance)


def test_switched_off_customer_email(examples_table: TableIndex) -> None:
    data = example(examples_table, "license_key.created")
    raw = {
        "type": "license_key.created",
        "id": "e4",
        "data": data,
        "contact": {"id": "cus_1", "email": "ana@example.com"},
    }
    [customer] = find(planned(examples_table, raw), source="customer")
    assert (customer.status, customer.reason) == ("skipped", "message_disabled")


def test_customer_message_on_by_default(examples_table: TableIndex) -> None:
    data = example(examples_table, "payment.succeeded")
    raw = {
        "type": "payment.succeeded",
        "id": "e5",
        "data": data,
        "contact": {"id": "cus_1", "email": "Ana@Example.COM"},
    }
    [customer] = find(planned(examples_table, raw), source="customer")
    assert customer.status == "planned"
    assert customer.to == "Ana@example.com"  # scenarios.md: the domain is lower-cased
    assert customer.recipient == "contact:cus_1"


def test_consent_per_channel(examples_table: TableIndex) -> None:
    data = example(examples_table, "order.created")
    contact = {"id": "cus_7", "phone": "6282114000032", "consent": {"whatsapp": False}}
    raw = {"type": "order.created", "id": "e6", "data": data, "contact": contact}
    [whatsapp] = find(planned(examples_table, raw), source="customer")
    assert (whatsapp.status, whatsapp.reason) == ("skipped", "no_consent")
    assert whatsapp.to == "+6282114000032"  # seed 002: read as Indonesian


def test_no_address_and_invalid_address(examples_table: TableIndex) -> None:
    data = example(examples_table, "order.created")
    missing = {"type": "order.created", "id": "e7", "data": data, "contact": {"id": "c"}}
    [d] = find(planned(examples_table, missing), source="customer")
    assert d.reason == "no_address"
    bad = {"type": "order.created", "id": "e8", "data": data, "contact": {"id": "c", "phone": "12"}}
    [d] = find(planned(examples_table, bad), source="customer")
    assert d.reason == "invalid_address"


def test_consent_defaults_fixed_at_first_sight(examples_table: TableIndex) -> None:
    data = example(examples_table, "order.created")
    event = parse_event({"type": "order.created", "id": "e9", "data": data, "contact": {"id": "c"}})
    row, changes, state = merge_contact(examples_table, event, None, NOW.timestamp())
    assert state.consent == examples_table.table.consent_default
    assert {c.source for c in changes} == {"default"}
    # seen again: the stored consent stands, whatever the defaults say now
    again = parse_event({**event.model_dump(), "id": "e10"})
    _, changes2, state2 = merge_contact(examples_table, again, row, NOW.timestamp())
    assert changes2 == [] and state2.consent == state.consent
