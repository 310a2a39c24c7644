"""Benchmark: event acceptance by the sidecar (`POST /v1/events`, `POST /v1/events:batch`), against
bare SQLite inserts of the same rows.

    python benchmarks/ingest.py [--events N] [--batches N] [--connections N] [--deliveries K]

1. Generates a small config (one event type, `bench.accepted`, whose every event plans K push
   deliveries, default 1, to one team recipient) and starts `clarion serve` on it as a subprocess:
   127.0.0.1, a port the OS picks, a fresh SQLite store in a temporary directory, `--dry-run`
   (the planned deliveries are recorded as sent without being sent: the dispatcher's store writes
   still compete with ingest, the network does not).
2. Reference, in this process while the sidecar sits idle: inserts of the same rows (one `events`
   row and K `deliveries` rows per event, Clarion's own schema) into a fresh SQLite file in WAL
   mode with `synchronous=FULL`, one commit per event and one commit per 500 events.
3. Load from a separate process (this script with `--load`): N threads, each with one persistent
   `http.client` connection. (a) single events: events/s over a fixed count, p50/p99 latency of
   the 202; (b) batches of 500 events: events/s.
4. Checks: every event answered 202 (batches: `accepted` = 500), the store holds exactly the events
   sent, and a sample of ids reads back through `GET /v1/events/{id}`. Fails (exit 1) otherwise.

Targets printed beside the figures: >= 1,500 single events/s; >= 20,000 events/s in batches.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

TARGET_SINGLE = 1_500.0
TARGET_BATCH = 20_000.0
BATCH_SIZE = 500
EVENT_TYPE = "bench.accepted"
PHASE_TIME_LIMIT = 60.0  # seconds; a phase stops early (and says so) when over

CONFIG = """\
version: 1
defaults:
  timezone: Europe/Madrid
  locale: en
  allow_private_targets: true  # the sinks are on loopback
events:
  bench.accepted:
    category: bench
    description: One benchmark event.
    data:
      type: object
      required: [order_id, amount, currency]
      properties:
        order_id: {type: string, minLength: 1}
        amount: {type: integer, minimum: 0}
        currency: {type: string, pattern: "^[A-Z]{3}$"}
        note: {type: string}
    example: {order_id: ord_1, amount: 4999, currency: EUR, note: example}
channels:
  push:
    address: url
recipients:
  ops:
    push:
"""


def write_config(root: Path, deliveries: int) -> None:
    """One event type; K push devices (never contacted: the sidecar runs with --dry-run)."""
    (root / "templates").mkdir(parents=True)
    devices = "".join(
        f'      - device: dev{i}\n        url: "json://127.0.0.1:9/dev{i}"\n'
        for i in range(deliveries)
    )
    if deliveries == 0:  # one device that takes no events: the event plans nothing
        devices = '      - device: dev0\n        url: "json://127.0.0.1:9/dev0"\n'
        devices += "        events: none\n"
    (root / "clarion.yaml").write_text(CONFIG + devices, encoding="utf-8")
    (root / "templates" / "bench.accepted.push.j2").write_text(
        "Subject: order {{ data.order_id }}\n{{ data.amount }} {{ data.currency }}\n",
        encoding="utf-8",
    )


def event(prefix: str, i: int) -> dict[str, Any]:
    return {
        "type": EVENT_TYPE,
        "id": f"{prefix}-{i:07d}",
        "data": {
            "order_id": f"ord_{i:07d}",
            "amount": 100 + i % 90_000,
            "currency": "EUR",
            "note": "benchmark event with a few dozen bytes of payload text",
        },
    }


# --------------------------------------------------------------------------------------------
# The sidecar
# --------------------------------------------------------------------------------------------


class Sidecar:
    """`clarion serve` in a subprocess on 127.0.0.1, on a port the OS picks (`--port 0`)."""

    def __init__(self, config: Path, store: Path | str, extra: list[str], log: Path) -> None:
        """`store`: a SQLite file, or a store URL."""
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        url = store if isinstance(store, str) else f"sqlite:///{store}"
        argv = [sys.executable, "-m", "clarion", "serve", str(config)]
        argv += ["--store", url, "--host", "127.0.0.1", "--port", "0"]
        argv += ["--log-format", "json", "--no-watch", *extra]
        self.proc = subprocess.Popen(
            argv, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=REPO
        )
        self.port = self._wait_for_port(timeout=60)

    def _wait_for_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"clarion serve exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            for line in self.log.read_text(errors="replace").splitlines():
                if '"serving"' in line:
                    url = json.loads(line)["url"]
                    port = int(url.rsplit(":", 1)[1])
                    self._wait_ready(port, deadline)
                    return port
            time.sleep(0.05)
        raise RuntimeError(f"clarion serve did not start within {timeout:g} s")

    def _wait_ready(self, port: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("clarion serve never became ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


# --------------------------------------------------------------------------------------------
# Load generator (a separate process: this script with --load)
# --------------------------------------------------------------------------------------------


def load_main(port: int, mode: str, count: int, connections: int, prefix: str) -> None:
    """Send `count` events (`mode` single) or `count` batches of BATCH_SIZE (`mode` batch) over
    `connections` persistent connections; print one JSON line of results."""
    if mode == "single":
        bodies = [json.dumps(event(prefix, i)).encode() for i in range(count)]
        path = "/v1/events"
    else:
        bodies = [
            json.dumps(
                {"events": [event(prefix, b * BATCH_SIZE + j) for j in range(BATCH_SIZE)]}
            ).encode()
            for b in range(count)
        ]
        path = "/v1/events:batch"
    latencies: list[list[float]] = [[] for _ in range(connections)]
    accepted = [0] * connections
    failures: list[str] = []
    sent = [0] * connections
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    start_gate = threading.Barrier(connections + 1)
    deadline = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        start_gate.wait()
        while time.perf_counter() < deadline[0]:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            body = bodies[i]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            latencies[k].append(time.perf_counter() - t0)
            sent[k] += 1 if mode == "single" else BATCH_SIZE
            if mode == "single":
                if response.status == 202:
                    accepted[k] += 1
                elif len(failures) < 20:
                    failures.append(f"{response.status}: {answer[:200]!r}")
            else:
                result = json.loads(answer) if response.status == 200 else {}
                accepted[k] += int(result.get("accepted", 0))
                if result.get("accepted") != BATCH_SIZE and len(failures) < 20:
                    failures.append(f"{response.status}: {answer[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline[0] = start + PHASE_TIME_LIMIT
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = sorted(x for per in latencies for x in per)
    print(
        json.dumps(
            {
                "elapsed": elapsed,
                "requests": len(flat),
                "sent": sum(sent),
                "accepted": sum(accepted),
                "failures": failures[:20],
                "p50": flat[len(flat) // 2] if flat else None,
                "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] if flat else None,
                "max": flat[-1] if flat else None,
                "timed_out": elapsed >= PHASE_TIME_LIMIT,
            }
        )
    )


def run_load(port: int, mode: str, count: int, connections: int, prefix: str) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--load", str(port), mode, str(count), str(connections)]
    proc = subprocess.run(
        [*argv, prefix], capture_output=True, text=True, timeout=PHASE_TIME_LIMIT + 60, check=False
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"load generator failed (exit {proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# Reference: bare SQLite inserts of the same rows
# --------------------------------------------------------------------------------------------


def sqlite_reference(path: Path, events: int, per_commit: int, deliveries: int) -> float:
    """Events/s inserting `events` events (one events row + `deliveries` deliveries rows each,
    Clarion's schema) with one commit per `per_commit` events, WAL, synchronous=FULL."""
    from clarion.runtime.store.sqlite import MIGRATIONS

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    envelopes = [json.dumps(event("ref", i), sort_keys=True) for i in range(events)]
    start = time.perf_counter()
    deadline = start + PHASE_TIME_LIMIT
    done = 0
    while done < events and time.perf_counter() < deadline:
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        for i in range(done, min(events, done + per_commit)):
            event_id = f"ref-{i:07d}"
            conn.execute(
                "INSERT INTO events (id, type, body_hash, envelope, contact_id, table_digest, "
                "received_at, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_id,
                    EVENT_TYPE,
                    "0" * 64,
                    envelopes[i],
                    None,
                    "sha256:" + "0" * 64,
                    now,
                    json.dumps({"id": event_id, "status": "accepted"}),
                ),
            )
            conn.executemany(
                "INSERT INTO deliveries (event_id, event_type, recipient, channel, kind, target, "
                "address, url, template, locale, timezone, source, status, due_at, created_at, "
                "updated_at) VALUES (?, ?, 'ops', 'push', 'url', ?, NULL, ?, NULL, 'en', "
                "'Europe/Madrid', 'recipient', 'pending', ?, ?, ?)",
                [
                    (event_id, EVENT_TYPE, f"dev{d}", f"json://127.0.0.1:9/dev{d}", now, now, now)
                    for d in range(deliveries)
                ],
            )
        conn.execute("COMMIT")
        done = min(events, done + per_commit)
    elapsed = time.perf_counter() - start
    conn.close()
    return done / elapsed


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def count_events(store: Path, prefix: str) -> int:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM events WHERE id LIKE ?", (f"{prefix}-%",)
            ).fetchone()[0]
        )
    finally:
        conn.close()


def check_phase(
    name: str, sidecar: Sidecar, store: Path, prefix: str, result: dict[str, Any], deliveries: int
) -> list[str]:
    problems = []
    if result["failures"]:
        problems.append(
            f"{name}: {len(result['failures'])}+ failed requests, e.g. {result['failures'][:3]}"
        )
    if result["accepted"] != result["sent"]:
        problems.append(f"{name}: accepted {result['accepted']} of {result['sent']} sent")
    stored = count_events(store, prefix)
    if stored != result["sent"]:
        problems.append(f"{name}: the store holds {stored} events, {result['sent']} were sent")
    rng = random.Random(7)
    sample = rng.sample(range(result["sent"]), min(50, result["sent"]))
    for i in sample:
        status, body = get_json(f"{sidecar.url}/v1/events/{prefix}-{i:07d}")
        if (
            status != 200
            or body.get("id") != f"{prefix}-{i:07d}"
            or body.get("type") != EVENT_TYPE
            or sum(d["status"] != "skipped" for d in body.get("deliveries", [])) != deliveries
        ):
            problems.append(
                f"{name}: GET /v1/events/{prefix}-{i:07d} -> {status} {str(body)[:200]}"
            )
            break
    print(
        f"  check: {result['accepted']:,} accepted of {result['sent']:,} sent, {stored:,} in the "
        f"store, {len(sample)} sampled ids read back with {deliveries} planned delivery(ies) each"
        + ("" if not problems else "  [FAILED]")
    )
    return problems


def verdict(value: float, target: float) -> str:
    return "OK" if value >= target else "UNDER"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="single events (default 20000)")
    parser.add_argument(
        "--batches", type=int, default=100, help=f"batches of {BATCH_SIZE} (default 100)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="client threads/connections (default 32)"
    )
    parser.add_argument(
        "--deliveries", type=int, default=1, help="deliveries each event plans (default 1)"
    )
    parser.add_argument(
        "--keep-log", action="store_true", help="print the sidecar's log at the end"
    )
    args = parser.parse_args()
    total_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="clarion-bench-ingest-"))
    problems: list[str] = []
    sidecar = None
    try:
        config = tmp / "config"
        write_config(config, args.deliveries)
        store = tmp / "store.db"
        sidecar = Sidecar(config, store, ["--dry-run"], tmp / "serve.log")
        plans = f"{args.deliveries} push deliver{'y' if args.deliveries == 1 else 'ies'}"
        print(
            f"clarion serve --dry-run on {sidecar.url} (pid {sidecar.proc.pid}), store {store}; "
            f"each event plans {plans} (recorded as sent, not sent)"
        )
        print(f"load: a separate process, {args.connections} threads x 1 persistent connection")
        print()

        # -- reference first, the sidecar idle ------------------------------------------------
        ref_path = tmp / "reference.db"
        ref_single = sqlite_reference(ref_path, min(args.events, 10_000), 1, args.deliveries)
        ref_batch = sqlite_reference(
            ref_path, args.batches * BATCH_SIZE, BATCH_SIZE, args.deliveries
        )

        # -- warm-up (not counted) -------------------------------------------------------------
        warm = run_load(sidecar.port, "single", 300, args.connections, "warm")
        problems += [] if warm["accepted"] == 300 else [f"warm-up: {warm['failures'][:3]}"]

        # -- (a) single events ---------------------------------------------------------------
        single = run_load(sidecar.port, "single", args.events, args.connections, "one")
        single_rate = single["accepted"] / single["elapsed"]
        print(f"(a) POST /v1/events, {single['requests']:,} events:")
        print(
            f"  clarion      {single_rate:9,.0f} events/s   target >= {TARGET_SINGLE:,.0f}"
            f"   [{verdict(single_rate, TARGET_SINGLE)}]"
            + ("   (stopped at the time limit)" if single["timed_out"] else "")
        )
        print(
            f"  latency      p50 {single['p50'] * 1e3:.1f} ms, p99 {single['p99'] * 1e3:.1f} ms, "
            f"max {single['max'] * 1e3:.1f} ms ({args.connections} in flight)"
        )
        print(
            f"  reference    {ref_single:9,.0f} events/s   bare SQLite, one commit per event "
            f"(synchronous=FULL)"
        )
        print(f"  ratio        clarion / reference = {single_rate / ref_single:.2f}")
        problems += check_phase("single", sidecar, store, "one", single, args.deliveries)
        print()

        # -- (b) batches ---------------------------------------------------------------------
        batch = run_load(sidecar.port, "batch", args.batches, args.connections, "bat")
        batch_rate = batch["accepted"] / batch["elapsed"]
        print(f"(b) POST /v1/events:batch, {batch['requests']:,} batches of {BATCH_SIZE}:")
        print(
            f"  clarion      {batch_rate:9,.0f} events/s   target >= {TARGET_BATCH:,.0f}"
            f"   [{verdict(batch_rate, TARGET_BATCH)}]"
            + ("   (stopped at the time limit)" if batch["timed_out"] else "")
        )
        print(
            f"  latency      p50 {batch['p50'] * 1e3:.0f} ms, p99 {batch['p99'] * 1e3:.0f} ms "
            f"per batch ({args.connections} in flight)"
        )
        print(
            f"  reference    {ref_batch:9,.0f} events/s   bare SQLite, one commit per "
            f"{BATCH_SIZE} events"
        )
        print(f"  ratio        clarion / reference = {batch_rate / ref_batch:.3f}")
        problems += check_phase("batch", sidecar, store, "bat", batch, args.deliveries)
        print()
    finally:
        if sidecar is not None:
            sidecar.stop()
            if sidecar.proc.returncode not in (0, -15):
                problems.append(f"clarion serve exited {sidecar.proc.returncode}")
            if args.keep_log or problems:
                print("--- clarion serve log (last 3000 characters) ---")
                print(sidecar.log.read_text(errors="replace")[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    for problem in problems:
        print("PROBLEM: " + problem)
    print(f"total benchmark time {time.perf_counter() - total_start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        sys.exit(0)
    sys.exit(main())
