"""Benchmark: what sharing one PostgreSQL store costs and gives: 1, 2 and 4 sidecars on
PostgreSQL and 1 on SQLite, in the same run.

    python benchmarks/scale_out.py [--postgres URL] [--slow-deliveries N] [--deliveries N]

Needs a PostgreSQL server: `--postgres`, else CLARION_TEST_POSTGRES_URL, else
postgresql://postgres@127.0.0.1:5432/test. Every setup gets a fresh schema, dropped afterwards.

1. **Fleets.** For each setup, `clarion serve` processes on one store (the dispatch benchmark's
   config: one event type, 10 push devices `json://` to a loopback sink, so one event is 10
   deliveries). Events are posted in batches of 500, spread over the sidecars, one client thread
   per sidecar: the ingest rate is events / wall time of that posting. The dispatch rate is
   arrivals at the sink from the first to the last. Two sinks:
   (a) answering after 50 ms, as a real provider does, `--workers 8` per sidecar: the rate is
       bound by workers x latency, so 2 sidecars should deliver about twice what 1 does;
   (b) answering at once, `--workers 32` per sidecar: bound by CPU (this machine has 2 cores, so
       more sidecars do not add CPU; the figure shows what sharing costs).
   Every arrival is keyed by (device, event id): any key seen twice is a duplicate.
2. **The store's own path.** Claim-and-complete on PostgreSQL without HTTP or Apprise, as the
   dispatcher does it (claim a batch in one job, record outcomes as sends finish, which join
   into shared writes), with 4 claiming threads, over 30,000 pending deliveries. Reference, in
   the same run: bare psycopg doing the least a claim-and-complete can (UPDATE ... SKIP LOCKED
   RETURNING, then one UPDATE per row, pipelined, one commit per batch), same threads and rows.
3. **Reference for (b)**: plain `requests.post` of the same bodies to the same sink, 32 threads.

Targets: (a) 2 sidecars deliver >= 1.8x one; (b) the PostgreSQL path sustains >= 3,000
deliveries/s; (c) nothing is delivered twice, in any run. A duplicate or a lost delivery fails
the run (exit 1); a figure under its target is marked [UNDER].
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from dispatch import DEVICES, arrival_rate, run_reference, write_config  # noqa: E402
from ingest import Sidecar  # noqa: E402

TARGET_SPEEDUP = 1.8
TARGET_PATH = 3_000.0
BATCH = 500
WAIT_LIMIT = 180.0
SETUPS = [("SQLite", 1), ("PostgreSQL", 1), ("PostgreSQL", 2), ("PostgreSQL", 4)]


def schema(server: str) -> Any:
    """A store URL on a fresh schema of `server`, dropped afterwards."""
    from tests.postgres import private_schema

    return private_schema(server, prefix="clarion_bench")


def in_threads(target: Any, count: int) -> float:
    """Run `target` in `count` threads at once; seconds until the last one ends."""
    start = time.perf_counter()
    pool = [threading.Thread(target=target) for _ in range(count)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - start


def post(port: int, events: list[dict[str, Any]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for first in range(0, len(events), BATCH):
        batch = events[first : first + BATCH]
        conn.request(
            "POST", "/v1/events:batch", json.dumps({"events": batch}),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200 or answer.get("accepted") != len(batch):
            raise RuntimeError(f"batch refused: {response.status} {str(answer)[:300]}")
    conn.close()


def fleet_run(
    store: str, size: int, delay: float, deliveries: int, workers: int, work: Path, name: str
) -> dict[str, Any]:
    from tests.sinks import HttpSink

    events = [
        {
            "type": "bench.dispatched",
            "id": f"{name}-{i:06d}",
            "data": {"n": i, "amount": 1000 + i, "currency": "EUR"},
        }
        for i in range(max(1, deliveries // DEVICES))
    ]
    expected = len(events) * DEVICES
    with HttpSink(delay=delay) as sink:
        config = work / name / "config"
        write_config(config, sink.apprise_url)
        fleet = [
            Sidecar(config, store, ["--workers", str(workers)], work / name / f"serve-{n}.log")
            for n in range(size)
        ]
        try:
            shares = [events[n::size] for n in range(size)]
            start = time.perf_counter()
            threads = [
                threading.Thread(target=post, args=(sidecar.port, share))
                for sidecar, share in zip(fleet, shares, strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            posted = time.perf_counter() - start
            try:
                received = sink.wait_for(expected, timeout=WAIT_LIMIT)
            except AssertionError:
                received = sink.received
            time.sleep(1.0)  # anything sent twice arrives now
            received_all = list(sink.received)
        finally:
            for sidecar in fleet:
                sidecar.stop()
        keys = collections.Counter((r.path, (r.json or {}).get("message")) for r in received_all)
        rate, span = arrival_rate(received)
        reference = None
        if delay == 0.0 and size == 1:
            reference = run_reference(sink, received, workers, work)["rate"]
    return {
        "ingest": len(events) / posted,
        "rate": rate,
        "span": span,
        "arrived": len(keys),
        "expected": expected,
        "twice": sum(n - 1 for n in keys.values() if n > 1),
        "reference": reference,
    }


def path_run(url: str, rows: int, threads: int) -> float:
    """Claim-and-complete through Clarion's store and the dispatcher's outcome recorder."""
    from clarion.runtime.dispatch import _Outcomes
    from clarion.runtime.store import open_store
    from clarion.runtime.store.base import Outcome

    store = open_store(url)
    fill(store, rows)
    recorder = _Outcomes(store, time.time, lambda: None)

    def worker() -> None:
        while True:
            claimed = store.write(lambda tx: tx.claim_due(time.time(), 64, 60.0), durable=False)
            if not claimed:
                return
            outcomes = [
                recorder.record(Outcome(c.id, "sent", "sent", None, 0.001, claimed_attempts=0), c)
                for c in claimed
            ]
            for future in outcomes:
                future.result()

    elapsed = in_threads(worker, threads)
    left = store.stats(time.time() + 3600)["queue_depth"]
    store.close()
    if left:
        raise RuntimeError(f"{left:.0f} deliveries were not completed")
    return rows / elapsed


def fill(store: Any, rows: int) -> None:
    from clarion.runtime.store.base import NewDelivery

    row = NewDelivery(
        "ops", "push", "url", None, None, "pending", None, "ops.push", "json://x", "en", "UTC",
        "route:bench", 0.0,
    )  # fmt: skip

    def job(tx: Any) -> None:
        tx.insert_events([(f"e{i}", "t", "h", "{}", None, "d", 0.0, {}) for i in range(rows)])
        tx.insert_delivery_rows([(f"e{i}", "t", row) for i in range(rows)], 0.0)

    store.write(job)


def bare_run(url: str, rows: int, threads: int) -> float:
    """The least a claim-and-complete can do on PostgreSQL, in plain psycopg."""
    import psycopg

    from clarion.runtime.store import open_store

    store = open_store(url)  # the same schema and rows
    fill(store, rows)
    store.close()

    def worker() -> None:
        with psycopg.connect(url) as conn:
            while True:
                with conn.transaction():
                    ids = conn.execute(
                        "UPDATE deliveries SET status = 'sending' WHERE id IN (SELECT id FROM "
                        "deliveries WHERE status = 'pending' ORDER BY id LIMIT 64 "
                        "FOR UPDATE SKIP LOCKED) RETURNING id"
                    ).fetchall()
                if not ids:
                    return
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(
                        "UPDATE deliveries SET status = 'sent', attempts = attempts + 1 "
                        "WHERE id = %s",
                        ids,
                    )

    return rows / in_threads(worker, threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL")
    parser.add_argument("--slow-deliveries", type=int, default=2_000, help="(a), default 2000")
    parser.add_argument("--deliveries", type=int, default=6_000, help="(b), default 6000")
    parser.add_argument("--path-rows", type=int, default=30_000, help="2., default 30000")
    args = parser.parse_args()
    server = (
        args.postgres
        or os.environ.get("CLARION_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="clarion-bench-scale-"))
    problems: list[str] = []
    results: dict[tuple[str, float], dict[str, Any]] = {}
    try:
        for delay, deliveries, workers in (
            (0.05, args.slow_deliveries, 8),
            (0.0, args.deliveries, 32),
        ):
            for backend, size in SETUPS:
                name = f"{backend.lower()}-{size}-{int(delay * 1000)}ms"
                if backend == "SQLite":
                    store_cm: Any = _sqlite(work / name)
                else:
                    store_cm = schema(server)
                with store_cm as store:
                    result = fleet_run(store, size, delay, deliveries, workers, work, name)
                results[(f"{size} x {backend}", delay)] = result
                if result["twice"] or result["arrived"] != result["expected"]:
                    problems.append(
                        f"{name}: {result['arrived']} of {result['expected']} arrived, "
                        f"{result['twice']} twice"
                    )
        with schema(server) as url:
            path = path_run(url, args.path_rows, 4)
        with schema(server) as url:
            bare = bare_run(url, args.path_rows, 4)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{os.cpu_count()} cores; every setup on a fresh store; rates in per second")
    print()
    header = f"{'setup':<16}{'ingest ev/s':>12}  {'(a) 50 ms sink':>15}  {'(b) instant':>12}"
    print(header + f"  {'twice':>6}")
    print("-" * (len(header) + 8))
    for backend, size in SETUPS:
        label = f"{size} x {backend}"
        slow, fast = results[(label, 0.05)], results[(label, 0.0)]
        print(
            f"{label:<16}{fast['ingest']:>12,.0f}  {slow['rate']:>15,.0f}  {fast['rate']:>12,.0f}"
            f"  {slow['twice'] + fast['twice']:>6}"
        )
    reference = results[("1 x PostgreSQL", 0.0)]["reference"] or float("nan")
    print(f"{'requests.post':<16}{'':>12}  {'':>15}  {reference:>12,.0f}  (reference for (b))")
    print()
    one, two = results[("1 x PostgreSQL", 0.05)]["rate"], results[("2 x PostgreSQL", 0.05)]["rate"]
    speedup = two / one
    print(
        f"(a) 2 sidecars / 1, 50 ms sink, 8 workers each: {speedup:.2f}x   target >= "
        f"{TARGET_SPEEDUP}x   [{'OK' if speedup >= TARGET_SPEEDUP else 'UNDER'}]"
        f"   (ceiling per sidecar: 8 / 0.05 s = 160/s)"
    )
    print(
        f"(b) PostgreSQL claim-and-complete, 4 threads: {path:,.0f} deliveries/s   target >= "
        f"{TARGET_PATH:,.0f}   [{'OK' if path >= TARGET_PATH else 'UNDER'}]"
    )
    print(f"    reference, bare psycopg: {bare:,.0f}/s   ratio {path / bare:.2f}")
    for (label, _delay), result in results.items():
        if result["reference"]:
            print(
                f"    full stack, instant sink, {label}: {result['rate']:,.0f}/s against plain "
                f"requests.post {result['reference']:,.0f}/s (ratio "
                f"{result['rate'] / result['reference']:.2f})"
            )
    twice = sum(r["twice"] for r in results.values())
    print(f"(c) delivered twice, all runs: {twice}   [{'OK' if not twice else 'FAILED'}]")
    for problem in problems:
        print("PROBLEM: " + problem)
    print(f"total benchmark time {time.perf_counter() - began:.0f} s")
    return 1 if problems else 0


@contextmanager
def _sqlite(folder: Path) -> Iterator[str]:
    folder.mkdir(parents=True, exist_ok=True)
    yield f"sqlite:///{folder / 'store.db'}"


if __name__ == "__main__":
    sys.exit(main())
