"""Benchmark: the cost of pacing. 50,000 events for 5,000 contacts through a throttle, a team
digest and a flow digest on the simulated clock, against the same events without pacing.

    python benchmarks/pacing.py [--events N] [--contacts N] [--runs N]

1. Generates two configs that differ only in their pacing keys. One event type,
   `order.status_changed` (seed 002's WhatsApp order updates, here by email):
   - a customer message with `throttle: {limit: 3, per: 1h, key: "{{ contact.id }}"}`;
   - a team address (`ops`) with `digest: {every: 1h}`: every event folds into the hour's digest;
   - a flow `status_digest` whose steps are `digest: {window: 10m, key: "{{ contact.id }}"}` then
     a `send` to the contact.
   The reference config has the same message, address and flow without `throttle`, `digest` and
   the digest step: every delivery is planned at once.
2. In a fresh subprocess per config and run, the real `Runtime` on a `SimulatedClock` (what
   `clarion test` drives) and a file `SQLiteStore` (WAL, `synchronous=FULL`, as `clarion serve`):
   N events (default 50,000) for M contacts (default 5,000), each contact's N / M events in a
   burst (10 in a row), the clock moved 2 s per event and a batch accepted at its last event's
   moment, through the API's batch path
   (`Runtime.check(batch=True)` + `Runtime.submit_many` of 500, `Runtime.accepted`). The rate is
   events per second over check + accept (plan, pacing and the store's writes). Nothing is
   dispatched: this measures the planner's side, where pacing lives.
3. Checks (exit 1 if any fails), paced runs only: the number of `throttled` customer deliveries
   equals the count computed here from the events (per contact and per hour window, everything
   past 3); every team delivery is `digested`, into one digest per hour; every flow run either
   opened a digest or was folded into one (`digested`), one digest per contact's burst.
4. Prints both rates (best of `--runs`, default 3, alternating), the ratio and the overhead
   (paced time / reference time - 1), against the target: overhead < 30 %.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGET_OVERHEAD = 0.30
BATCH = 500
STEP_SECONDS = 2.0
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)

CONFIG = """\
version: 1
defaults: {{timezone: Europe/Madrid, locale: en}}
consent:
  default: {{email: true}}
channels:
  email:
    address: email
    apprise: "mailto://127.0.0.1:9?from=orders@example.com&to={{to}}"
events:
  order.status_changed:
    category: orders
    description: An order's status changed.
    data:
      type: object
      required: [order_id, status]
      properties:
        order_id: {{type: string, minLength: 1}}
        status: {{type: string}}
    example: {{order_id: SO-1, status: packed}}
recipients:
  ops:
    email: {{address: ops@example.com, events: [orders]{digest}}}
customer_messages:
  order.status_changed:
    channels: [email]
    template: order_status
{throttle}
flows:
  status_digest:
    on: order.status_changed
    steps:
{digest_step}      - send: {{to: contact, channels: [email], template: status_digest}}
"""

PACED = {
    "digest": ", digest: {every: 1h}",
    "throttle": '    throttle: {limit: 3, per: 1h, key: "{{ contact.id }}"}',
    "digest_step": '      - digest: {window: 10m, key: "{{ contact.id }}"}\n',
}
PLAIN = {"digest": "", "throttle": "", "digest_step": ""}

TEMPLATES = {
    "order_status.email.j2": (
        "Subject: Order {{ data.order_id }}\nYour order is {{ data.status }}.\n"
    ),
    "status_digest.email.j2": (
        "Subject: {{ count | default(1) }} order updates\n"
        "{% for e in events | default([]) %}{{ e.data.status }} {% endfor %}\n"
    ),
    "digest.email.j2": "Subject: {{ count }} updates\n{{ count }} order updates this hour.\n",
}


def write_config(folder: Path, paced: bool) -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "main.yaml").write_text(CONFIG.format(**(PACED if paced else PLAIN)), "utf-8")
    for name, text in TEMPLATES.items():
        if paced or name != "digest.email.j2":
            (folder / "templates" / name).write_text(text, "utf-8")
    return folder


def contact_of(i: int, count: int, contacts: int) -> int:
    """Each contact's events come in a burst: 10 in a row (50,000 events, 5,000 contacts)."""
    return (i // max(count // contacts, 1)) % contacts


def events(count: int, contacts: int) -> list[dict[str, Any]]:
    statuses = ("paid", "packed", "shipped", "out_for_delivery", "delivered")
    out = []
    for i in range(count):
        c = contact_of(i, count, contacts)
        out.append(
            {
                "type": "order.status_changed",
                "id": f"evt_{i:06d}",
                "data": {"order_id": f"SO-{c}", "status": statuses[i % len(statuses)]},
                "contact": {"id": f"cus_{c:05d}", "email": f"c{c}@example.com"},
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# One measured run, in its own process (--child)
# --------------------------------------------------------------------------------------------


def child(config: Path, store_path: Path, count: int, contacts: int) -> dict[str, Any]:
    from clarion.compile import build
    from clarion.runtime import Policy, Runtime, SQLiteStore, TableIndex
    from clarion.runtime.scenario import SimulatedClock

    result = build(config)
    if result.table is None or result.data is None:
        raise SystemExit(f"{config}: {[str(d.message) for d in result.diagnostics]}")
    table = TableIndex.from_table(result.table, result.data)
    clock = SimulatedClock(START)
    store = SQLiteStore(store_path)
    runtime = Runtime(table, store, Policy(dry_run=True, workers=1), clock=clock)
    raws = events(count, contacts)
    elapsed = cpu = 0.0
    try:
        for begin in range(0, count, BATCH):
            chunk = raws[begin : begin + BATCH]
            t0, c0 = time.perf_counter(), time.process_time()
            # a batch is accepted at one moment: its last event's
            clock.moment = START.timestamp() + (begin + len(chunk) - 1) * STEP_SECONDS
            items = [runtime.check(raw, batch=True, prefix=(k,)) for k, raw in enumerate(chunk)]
            answers = runtime.submit_many(items).result()
            for checked, answer in zip(items, answers, strict=True):
                if isinstance(answer, tuple):
                    runtime.accepted(checked, answer[0])
                else:
                    raise SystemExit(f"rejected: {answer}")
            elapsed += time.perf_counter() - t0
            cpu += time.process_time() - c0
    finally:
        runtime.stop(timeout=10)
    return {"events": count, "seconds": elapsed, "rate": count / elapsed, "cpu": cpu}


# --------------------------------------------------------------------------------------------
# Checks on a paced store
# --------------------------------------------------------------------------------------------


def expected_throttled(count: int, contacts: int) -> int:
    per_window: Counter[tuple[int, int]] = Counter()
    for i in range(count):
        last = min(count, (i // BATCH + 1) * BATCH) - 1  # the batch's moment
        moment = START.timestamp() + last * STEP_SECONDS
        per_window[(contact_of(i, count, contacts), int(moment // 3600))] += 1
    return sum(max(0, n - 3) for n in per_window.values())


def check(store_path: Path, count: int, contacts: int) -> list[str]:
    problems = []
    with sqlite3.connect(store_path) as conn:

        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]

        throttled = one(
            "SELECT COUNT(*) FROM deliveries WHERE source = 'customer' AND reason = 'throttled'"
        )
        want = expected_throttled(count, contacts)
        if throttled != want:
            problems.append(f"throttled customer deliveries: {throttled}, expected {want}")
        team = one(
            "SELECT COUNT(*) FROM deliveries WHERE recipient = 'ops' AND reason = 'digested'"
        )
        if team != count:
            problems.append(f"digested team deliveries: {team}, expected {count}")
        hours = len(
            {
                int((min(count, (i // BATCH + 1) * BATCH) - 1) * STEP_SECONDS // 3600)
                for i in range(count)
            }
        )
        team_digests = one("SELECT COUNT(*) FROM digests WHERE scope LIKE 'target:%'")
        if team_digests != hours:
            problems.append(f"team digests: {team_digests}, expected one per hour ({hours})")
        folded = one(
            "SELECT COUNT(*) FROM (SELECT i.event_id FROM digest_items i JOIN digests d "
            "ON d.id = i.digest_id WHERE d.scope LIKE 'flow:%' UNION SELECT event_id "
            "FROM deliveries WHERE source = 'flow' AND reason = 'digested')"
        )
        if folded != count:
            problems.append(f"events in flow digests: {folded}, expected {count}")
        opened = one("SELECT COUNT(*) FROM digests WHERE scope LIKE 'flow:%'")
        runs_waiting = one("SELECT COUNT(*) FROM flow_runs WHERE status = 'active'")
        runs_folded = one("SELECT COUNT(*) FROM flow_runs WHERE status = 'done'")
        per_contact = max(count // contacts, 1)
        if BATCH % per_contact == 0 and count % contacts == 0 and opened != contacts:
            # a contact's burst is accepted at one moment: one digest per contact
            problems.append(f"flow digests: {opened}, expected one per contact ({contacts})")
        if runs_waiting != opened or runs_waiting + runs_folded != count:
            problems.append(
                f"flow runs: {runs_waiting} waiting, {runs_folded} folded, {opened} digests"
            )
    return problems


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = child(Path(args.child[0]), Path(args.child[1]), args.events, args.contacts)
        print(json.dumps(figures))
        return 0
    with tempfile.TemporaryDirectory(prefix="clarion-pacing-") as scratch:
        root = Path(scratch)
        configs = {
            "paced": write_config(root / "paced", True),
            "plain": write_config(root / "plain", False),
        }
        best: dict[str, float] = {}
        best_cpu: dict[str, float] = {}
        problems: list[str] = []
        for run in range(args.runs):
            for name in ("paced", "plain") if run % 2 == 0 else ("plain", "paced"):
                store = root / f"{name}-{run}.db"
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--events",
                        str(args.events),
                        "--contacts",
                        str(args.contacts),
                        "--child",
                        str(configs[name]),
                        str(store),
                    ],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                )
                if done.returncode != 0:
                    print(done.stdout, done.stderr, file=sys.stderr)
                    return 1
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"  run {run + 1} {name:5}: {figures['rate']:8,.0f} events/s "
                    f"({figures['seconds']:.1f} s wall, {figures['cpu']:.1f} s CPU)",
                    flush=True,
                )
                best[name] = max(best.get(name, 0.0), figures["rate"])
                best_cpu[name] = max(best_cpu.get(name, 0.0), args.events / figures["cpu"])
                if name == "paced" and run == 0:
                    problems = check(store, args.events, args.contacts)
                store.unlink(missing_ok=True)
    paced, plain = best["paced"], best["plain"]
    overhead = plain / paced - 1
    cpu_overhead = best_cpu["plain"] / best_cpu["paced"] - 1
    print(f"{args.events:,} events for {args.contacts:,} contacts, best of {args.runs}:")
    print(
        f"  with pacing (throttle + team digest + flow digest): {paced:8,.0f} events/s "
        f"({best_cpu['paced']:,.0f} per CPU second)"
    )
    print(
        f"  reference, the same events without pacing:         {plain:8,.0f} events/s "
        f"({best_cpu['plain']:,.0f} per CPU second)"
    )
    for label, value in (("wall", overhead), ("CPU", cpu_overhead)):
        mark = "OK" if value < TARGET_OVERHEAD else "OVER"
        print(
            f"  overhead ({label} time): {value:.0%}, ratio paced / reference "
            f"{1 / (1 + value):.2f} (target < {TARGET_OVERHEAD:.0%}) [{mark}]"
        )
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    if not problems:
        print("checks: throttled counts, one team digest per hour, every flow run folded: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
