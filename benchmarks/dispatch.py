"""Benchmark: deliveries per second through the sidecar's dispatcher (render + Apprise `json://`)
to a loopback HTTP sink, against plain `requests.post` of the same bodies at the same concurrency.

    python benchmarks/dispatch.py [--deliveries N] [--slow-deliveries N] [--workers N]

1. Starts an `HttpSink` (tests/sinks.py) on 127.0.0.1 in this process and generates a config whose
   one event type, `bench.dispatched`, reaches one team recipient on a `push` channel
   (`address: url`) with 10 devices, `json://127.0.0.1:PORT/dev0` ... `/dev9`, and nothing else:
   every event plans 10 deliveries.
2. Starts `clarion serve` on it (subprocess, 127.0.0.1, a port the OS picks, a fresh SQLite store
   in a temporary directory, `--workers N`, default 64) and posts N / 10 events in batches of 500
   as fast as it accepts them; the dispatcher starts sending at once. The rate is measured at the
   sink, from the first arrival to the last (the window in which the queue was not empty).
3. Checks: N requests reached the sink, none twice (device path + event id), every delivery is
   `sent` in the store with one attempt. Fails (exit 1) otherwise.
4. Reference: a separate process that `requests.post`s the very bodies the sink received (same
   paths, same headers) from a thread pool of the same size as the dispatcher's workers, measured
   the same way at the sink.
5. The same again with the sink answering after 200 ms (`HttpSink(delay=0.2)`).

Targets printed beside the figures: >= 1,000 deliveries/s and >= 60 % of the plain-requests rate
with an instant sink; >= 150 deliveries/s with the 200 ms sink.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ingest import Sidecar  # noqa: E402

TARGET_RATE = 1_000.0
TARGET_SHARE = 0.60
TARGET_SLOW_RATE = 150.0
DEVICES = 10
BATCH_SIZE = 500
WAIT_LIMIT = 90.0  # seconds for all deliveries of a scenario to arrive

CONFIG = """\
version: 1
defaults:
  timezone: Europe/Madrid
  locale: en
  allow_private_targets: true  # the sinks are on loopback
events:
  bench.dispatched:
    category: bench
    description: One benchmark event.
    data:
      type: object
      required: [n, amount, currency]
      properties:
        n: {type: integer, minimum: 0}
        amount: {type: integer, minimum: 0}
        currency: {type: string, pattern: "^[A-Z]{3}$"}
    example: {n: 1, amount: 4999, currency: EUR}
channels:
  push:
    address: url
recipients:
  ops:
    push:
"""

TEMPLATE = (
    "Subject: Order {{ data.n }} paid\n"
    "{{ data.amount | money(data.currency) }} received for order {{ data.n }} "
    "({{ event.id }}).\n"
)


def write_config(root: Path, sink_url: Any) -> None:
    (root / "templates").mkdir(parents=True)
    devices = "".join(
        f'      - device: dev{i}\n        url: "{sink_url(f"/dev{i}")}"\n' for i in range(DEVICES)
    )
    (root / "clarion.yaml").write_text(CONFIG + devices, encoding="utf-8")
    (root / "templates" / "bench.dispatched.push.j2").write_text(TEMPLATE, encoding="utf-8")


def post_events(port: int, prefix: str, events: int) -> float:
    """Post `events` events in batches; seconds it took."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    for first in range(0, events, BATCH_SIZE):
        batch = [
            {
                "type": "bench.dispatched",
                "id": f"{prefix}-{i:06d}",
                "data": {"n": i, "amount": 1000 + i, "currency": "EUR"},
            }
            for i in range(first, min(events, first + BATCH_SIZE))
        ]
        conn.request(
            "POST",
            "/v1/events:batch",
            json.dumps({"events": batch}),
            {"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200 or answer.get("accepted") != len(batch):
            raise RuntimeError(f"batch refused: {response.status} {str(answer)[:300]}")
    conn.close()
    return time.perf_counter() - start


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (all threads) or of `pid` (Linux /proc)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def arrival_rate(received: list[Any]) -> tuple[float, float]:
    """(deliveries/s from the first arrival to the last, that window in seconds)."""
    times = sorted(r.at for r in received)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return ((len(times) - 1) / span if span > 0 else float("inf")), span


def store_statuses(store: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return dict(
            conn.execute(
                "SELECT status || CASE WHEN attempts = 1 THEN '' ELSE ' (attempts ' || "
                "attempts || ')' END, COUNT(*) FROM deliveries GROUP BY 1"
            ).fetchall()
        )
    finally:
        conn.close()


def wait_store(store: Path, expected: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = store_statuses(store)
        if statuses.get("sent", 0) >= expected or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Reference: plain requests.post from a thread pool, in a separate process (this script with
# --reference FILE WORKERS), the bodies read from FILE as JSON lines [url, content-type, body].
# --------------------------------------------------------------------------------------------


def reference_main(path: str, workers: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import requests

    jobs = [json.loads(line) for line in Path(path).read_text().splitlines()]

    def post(job: list[str]) -> int:
        url, content_type, body = job
        return requests.post(
            url, data=body.encode(), headers={"Content-Type": content_type}, timeout=30
        ).status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        statuses = collections.Counter(pool.map(post, jobs))
    cpu = os.times()
    print(
        json.dumps(
            {
                "elapsed": time.perf_counter() - start,
                "statuses": statuses,
                "cpu": cpu.user + cpu.system,
            }
        )
    )


def run_reference(sink: Any, bodies: list[Any], workers: int, tmp: Path) -> dict[str, Any]:
    jobs = tmp / "reference.jsonl"
    with jobs.open("w") as f:
        for r in bodies:
            f.write(
                json.dumps([sink.url + r.path, r.headers.get("content-type", ""), r.body.decode()])
                + "\n"
            )
    sink.clear()
    sink_cpu = cpu_seconds()
    proc = subprocess.run(
        [sys.executable, __file__, "--reference", str(jobs), str(workers)],
        capture_output=True,
        text=True,
        timeout=WAIT_LIMIT + 60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference process failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    received = sink.wait_for(len(bodies), timeout=10)
    result["sink_cpu"] = cpu_seconds() - sink_cpu
    result["rate"], result["span"] = arrival_rate(received)
    return result


# --------------------------------------------------------------------------------------------


def scenario(
    name: str, delay: float, deliveries: int, workers: int, tmp: Path, keep_log: bool
) -> tuple[float, float, list[str]]:
    from tests.sinks import HttpSink

    problems: list[str] = []
    events = max(1, deliveries // DEVICES)
    expected = events * DEVICES
    work = tmp / name
    with HttpSink(delay=delay) as sink:
        write_config(work / "config", sink.apprise_url)
        store = work / "store.db"
        sidecar = Sidecar(work / "config", store, ["--workers", str(workers)], work / "serve.log")
        try:
            print(
                f"{name}: sink {sink.url} answering after {delay * 1e3:.0f} ms; clarion serve on "
                f"{sidecar.url} (pid {sidecar.proc.pid}), --workers {workers}"
            )
            sink_cpu, serve_cpu = cpu_seconds(), cpu_seconds(sidecar.proc.pid)
            posted = post_events(sidecar.port, name, events)
            try:
                received = sink.wait_for(expected, timeout=WAIT_LIMIT)
                sink_cpu = cpu_seconds() - sink_cpu
                serve_cpu = cpu_seconds(sidecar.proc.pid) - serve_cpu
            except AssertionError as exc:
                problems.append(f"{name}: {exc}")
                received = sink.received
            statuses = wait_store(store, expected, timeout=30)
        finally:
            sidecar.stop()
            if keep_log or problems:
                print(sidecar.log.read_text(errors="replace")[-3000:])
        time.sleep(0.5)
        extra = len(sink) - len(received)
        rate, span = arrival_rate(received)
        keys = collections.Counter((r.path, (r.json or {}).get("message")) for r in received)
        twice = sum(c - 1 for c in keys.values() if c > 1)
        if twice or extra:
            problems.append(f"{name}: {twice} duplicate arrivals, {extra} after the count")
        if statuses.get("sent") != expected or len(statuses) != 1:
            problems.append(f"{name}: store statuses {statuses}, expected {expected} sent")
        print(
            f"  {events:,} events posted in {posted:.2f} s ({events / posted:,.0f} events/s); "
            f"{len(received):,} arrivals in {span:.2f} s, first to last"
        )
        print(
            f"  check: {len(received):,} arrivals of {expected:,} expected, {twice} twice; "
            f"store {statuses}" + ("  [FAILED]" if problems else "")
        )
        ref = run_reference(sink, received, workers, tmp)
        print(
            f"  CPU: clarion serve {serve_cpu:.1f} s ({serve_cpu / span * 100:.0f}% of one core "
            f"over the window), sink {sink_cpu:.1f} s; reference: client {ref['cpu']:.1f} s, "
            f"sink {ref['sink_cpu']:.1f} s over {ref['span']:.2f} s ({os.cpu_count()} cores)"
        )
        if set(ref["statuses"]) != {"200"}:
            problems.append(f"{name} reference: sink statuses {ref['statuses']}")
    return rate, ref["rate"], problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--deliveries", type=int, default=10_000, help="deliveries, instant sink (default 10000)"
    )
    parser.add_argument(
        "--slow-deliveries",
        type=int,
        default=3_000,
        help="deliveries, sink answering after 200 ms (default 3000)",
    )
    parser.add_argument("--workers", type=int, default=64, help="dispatcher workers (default 64)")
    parser.add_argument("--keep-log", action="store_true", help="print the sidecars' logs")
    args = parser.parse_args()
    total_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="clarion-bench-dispatch-"))
    problems: list[str] = []
    try:
        rate, ref, found = scenario("fast", 0.0, args.deliveries, args.workers, tmp, args.keep_log)
        problems += found
        share = rate / ref
        print(f"deliveries/s, sink answering at once ({args.workers} workers / threads):")
        print(
            f"  clarion       {rate:8,.0f}/s   target >= {TARGET_RATE:,.0f}"
            f"   [{'OK' if rate >= TARGET_RATE else 'UNDER'}]"
        )
        print(f"  reference     {ref:8,.0f}/s   plain requests.post, same bodies, same sink")
        print(
            f"  ratio         clarion / reference = {share:.2f}   target >= {TARGET_SHARE:.2f}"
            f"   [{'OK' if share >= TARGET_SHARE else 'UNDER'}]"
        )
        print()
        rate, ref, found = scenario(
            "slow", 0.2, args.slow_deliveries, args.workers, tmp, args.keep_log
        )
        problems += found
        print(f"deliveries/s, sink answering after 200 ms ({args.workers} workers / threads):")
        print(
            f"  clarion       {rate:8,.0f}/s   target >= {TARGET_SLOW_RATE:,.0f}"
            f"   [{'OK' if rate >= TARGET_SLOW_RATE else 'UNDER'}]"
            f"   (ceiling {args.workers / 0.2:,.0f}/s: workers / delay)"
        )
        print(f"  reference     {ref:8,.0f}/s   plain requests.post, same bodies, same sink")
        print(f"  ratio         clarion / reference = {rate / ref:.2f}")
        print()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for problem in problems:
        print("PROBLEM: " + problem)
    print(f"total benchmark time {time.perf_counter() - total_start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--reference":
        reference_main(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
