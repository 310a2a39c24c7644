"""A stateful property test of the runtime on a simulated clock (the clock and the way of moving
it that `clarion test` uses): events are posted, time passes, consent changes, the table is
reloaded and the store restarted, in any order hypothesis finds. After every step the store is
held to a small reference model:

- nothing is planned (let alone sent) to a customer on a channel whose consent was off, or to a
  team address or device that was switched off, at the moment it was planned;
- a delivery recorded as skipped is never sent later;
- no flow step is scheduled in the past;
- a replaced or canceled run sends nothing after it ended.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from clarion.compile import build
from clarion.runtime import Policy, Runtime, SQLiteStore, TableIndex
from clarion.runtime.scenario import SimulatedClock, _advance
from clarion.runtime.store.base import ConsentChange, Tx
from tests.conftest import EXAMPLES
from tests.fuzz.harness import examples

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CONSENT_DEFAULT = {"email": True, "sms": True, "whatsapp": True, "viber": False, "push": True}
CHANNELS = sorted(CONSENT_DEFAULT)
CONTACTS = {
    "c1": {"email": "ana@example.com", "phone": "+34600000001"},
    "c2": {"email": "ben@example.com", "phone": "+34600000002"},
}
SUBSCRIPTIONS = ["sub_1", "sub_2"]


def _tables() -> dict[str, TableIndex]:
    """The examples ("a"), and the same with three team addresses switched off ("b")."""
    out: dict[str, TableIndex] = {}
    with tempfile.TemporaryDirectory() as name:
        variant = Path(name) / "config"
        shutil.copytree(EXAMPLES, variant)
        team = variant / "team.yaml"
        text = team.read_text()
        for old, new in [
            (
                "email: {address: owner@yourcompany.com, events: all, quiet_hours: false}",
                "email: {address: owner@yourcompany.com, events: all, quiet_hours: false, "
                "enabled: false}",
            ),
            (
                'sms: {address: "600 123 456", events: [dispute.created]}',
                'sms: {address: "600 123 456", events: [dispute.created], enabled: false}',
            ),
            (
                "email: {address: sales@yourcompany.com, "
                "events: [payment.received, payment.failed]}",
                "email: {address: sales@yourcompany.com, events: none}",
            ),
        ]:
            assert old in text, old
            text = text.replace(old, new)
        team.write_text(text)
        for key, root in (("a", EXAMPLES), ("b", variant)):
            result = build(root)
            assert result.table is not None and result.data is not None, result.diagnostics
            out[key] = TableIndex.from_table(result.table, result.data)
    return out


TABLES = _tables()
# The reference: what each table switches off, team-wide (no route reaches past `enabled: false`,
# and no route goes to sales).
OFF = {"a": set(), "b": {("owner", "email"), ("support", "sms"), ("sales", "email")}}


def _change_consent(tx: Tx, contact_id: str, channel: str, granted: bool, now: float) -> bool:
    stored = tx.contact(contact_id)
    if stored is None:
        return False
    if stored.consent.get(channel) != granted:
        tx.change_consent(contact_id, [ConsentChange(channel, granted, now, "api:test")])
    return True


class Runtime_(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="clarion-stateful-"))
        self.path = self.dir / "store.db"
        self.clock = SimulatedClock(START)
        self.table = "a"
        self.runtime = self._open()
        self.consent: dict[str, dict[str, bool]] = {}  # the model's consent, once a contact exists
        self.seen: dict[int, str] = {}  # delivery id -> status when first seen
        self.runs: dict[int, tuple[str, float | None]] = {}  # run id -> (status, due_at) last seen
        self.ended: dict[int, float] = {}  # replaced or canceled run -> when it was seen ended
        self.next_id = 0

    def _open(self) -> Runtime:
        source = TABLES[self.table]
        runtime = Runtime(
            source,
            SQLiteStore(self.path),
            Policy(dry_run=True, workers=1),
            clock=self.clock,
            source=lambda: TABLES[self.table],
        )
        runtime.dispatcher.run_pending()
        return runtime

    def teardown(self) -> None:
        self.runtime.stop(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- steps -------------------------------------------------------------------------------

    def _post(self, event: dict[str, Any]) -> int:
        self.next_id += 1
        event = {**event, "id": f"e{self.next_id}"}
        [answer] = self.runtime.ingest([event])
        assert answer.status in (202, 409, 422), answer
        if answer.status == 202 and "contact" in event:
            contact = event["contact"]
            state = self.consent.setdefault(contact["id"], dict(CONSENT_DEFAULT))
            state.update(contact.get("consent", {}))
        self.runtime.dispatcher.run_pending()
        self._check_new(event.get("type", ""))
        return answer.status

    def _contact(self, contact_id: str, consent: dict[str, bool]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": contact_id, **CONTACTS[contact_id]}
        out["devices"] = [{"device": f"{contact_id}-phone", "url": "ntfy://127.0.0.1:9/t"}]
        if consent:
            out["consent"] = consent
        return out

    @rule(
        contact=st.sampled_from(sorted(CONTACTS)),
        subscription=st.sampled_from(SUBSCRIPTIONS),
        due_in_days=st.integers(-3, 12),
        paused=st.booleans(),
        consent=st.dictionaries(st.sampled_from(CHANNELS), st.booleans(), max_size=2),
    )
    def renewal_scheduled(
        self,
        contact: str,
        subscription: str,
        due_in_days: int,
        paused: bool,
        consent: dict[str, bool],
    ) -> None:
        due = (datetime.fromtimestamp(self.clock(), UTC) + timedelta(days=due_in_days)).date()
        data: dict[str, Any] = {
            "subscription_id": subscription,
            "due_date": due.isoformat(),
            "amount": 3900,
            "currency": "EUR",
        }
        if paused:
            data["paused_through"] = (due + timedelta(days=1)).isoformat()
        event = {
            "type": "subscription.renewal_scheduled",
            "data": data,
            "contact": self._contact(contact, consent),
        }
        self._post(event)

    @rule(
        contact=st.sampled_from(sorted(CONTACTS)),
        subscription=st.sampled_from(SUBSCRIPTIONS),
        kind=st.sampled_from(["payment.succeeded", "subscription.canceled"]),
    )
    def cancel(self, contact: str, subscription: str, kind: str) -> None:
        example = TABLES[self.table].table.events[kind].example
        assert example is not None
        data = {**example, "subscription_id": subscription}
        self._post({"type": kind, "data": data, "contact": self._contact(contact, {})})

    @rule(
        kind=st.sampled_from(["payment.failed", "dispute.created", "payout.failed"]),
        big=st.booleans(),
    )
    def team_event(self, kind: str, big: bool) -> None:
        example = TABLES[self.table].table.events[kind].example
        assert example is not None
        data = dict(example)
        if kind == "payment.failed":
            data["amount"] = 250000 if big else 999
        self._post({"type": kind, "data": data})
        if kind == "dispute.created" and self.table == "a":
            # the model's "on" is real: support's on-call phone gets disputes in table a
            with self._db() as db:
                planned = db.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE event_id = ? AND recipient = 'support' "
                    "AND channel = 'sms' AND status != 'skipped'",
                    (f"e{self.next_id}",),
                ).fetchone()[0]
            assert planned == 1

    @rule(
        contact=st.sampled_from(sorted(CONTACTS)),
        channel=st.sampled_from(CHANNELS),
        granted=st.booleans(),
    )
    def change_consent(self, contact: str, channel: str, granted: bool) -> None:
        done = self.runtime.store.submit(
            lambda tx: _change_consent(tx, contact, channel, granted, self.clock())
        ).result(timeout=10)
        assert done == (contact in self.consent)
        if done:
            self.consent[contact][channel] = granted

    @rule(hours=st.integers(1, 24 * 8))
    def advance(self, hours: int) -> None:
        _advance(self.runtime, self.runtime.store, self.clock, self.clock() + hours * 3600)
        self._check_new("advance")

    @rule(which=st.sampled_from(["a", "b"]))
    def reload(self, which: str) -> None:
        self.table = which
        assert self.runtime.reload()
        assert self.runtime.table() is TABLES[which]

    @rule()
    def restart(self) -> None:
        self.runtime.stop(timeout=5)
        self.runtime = self._open()
        self._check_new("restart")

    # -- the reference model ---------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def _check_new(self, why: str) -> None:
        """Deliveries first seen now were planned now: against the model as it is now."""
        now = self.clock()
        with self._db() as db:
            rows = db.execute(
                "SELECT id, recipient, channel, status, reason, run_id, created_at "
                "FROM deliveries ORDER BY id"
            ).fetchall()
            runs = db.execute("SELECT id, status, due_at, updated_at FROM flow_runs").fetchall()
        for delivery_id, recipient, channel, status, _reason, run_id, created_at in rows:
            first = delivery_id not in self.seen
            if first:
                self.seen[delivery_id] = status
                assert created_at <= now
                if status != "skipped":
                    if recipient.startswith("contact:"):
                        contact = recipient.split(":", 1)[1]
                        wanted = self.consent.get(contact, {}).get(channel)
                        assert wanted is True, (why, delivery_id, recipient, channel, wanted)
                    else:
                        assert (recipient, channel) not in OFF[self.table], (
                            why,
                            delivery_id,
                            recipient,
                            channel,
                            self.table,
                        )
                if run_id is not None and run_id in self.ended:
                    assert status == "skipped", ("a send of an ended run", run_id, status)
            elif self.seen[delivery_id] == "skipped":
                assert status == "skipped", ("skipped, then", status, delivery_id)
        for kind, count in Counter(status for _, status, _, _ in runs).items():
            event(f"a run {kind}", count > 0)  # --hypothesis-show-statistics: what was reached
        if any(run_id is not None and status == "sent" for *_, status, _, run_id, _ in rows):
            event("a flow step sent")
        for run_id, status, due_at, _updated in runs:
            before = self.runs.get(run_id)
            if (
                status == "active"
                and due_at is not None
                and (before is None or before[1] != due_at)
            ):
                # (re)scheduled in this step: never for a moment already past
                assert due_at >= now - 1e-6, ("scheduled in the past", run_id, due_at, now)
            if status in ("replaced", "canceled"):
                self.ended.setdefault(run_id, now)
            self.runs[run_id] = (status, due_at)

    @invariant()
    def ended_runs_send_nothing(self) -> None:
        with self._db() as db:
            sent = db.execute(
                "SELECT d.run_id, d.status, d.sent_at, r.updated_at FROM deliveries d "
                "JOIN flow_runs r ON r.id = d.run_id "
                "WHERE r.status IN ('replaced', 'canceled') AND d.status = 'sent' "
                "AND d.sent_at > r.updated_at"
            ).fetchall()
        assert not sent, sent

    @invariant()
    def nothing_sent_that_was_skipped(self) -> None:
        with self._db() as db:
            statuses = dict(db.execute("SELECT id, status FROM deliveries").fetchall())
        for delivery_id, first in self.seen.items():
            if first == "skipped":
                assert statuses[delivery_id] == "skipped"

    @precondition(lambda self: bool(self.consent))
    @invariant()
    def the_store_agrees_with_the_models_consent(self) -> None:
        with self._db() as db:
            stored = db.execute("SELECT contact_id, channel, granted FROM consent").fetchall()
        for contact_id, channel, granted in stored:
            assert self.consent[contact_id][channel] == bool(granted), (contact_id, channel)

    @initialize()
    def start(self) -> None:
        assert self.runtime.table() is TABLES["a"]


Runtime_.TestCase.settings = settings(
    max_examples=examples(20),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
TestRuntimeAgainstModel = Runtime_.TestCase
