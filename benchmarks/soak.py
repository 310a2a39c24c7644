"""Soak: the sidecar under steady load for minutes, against a sink that fails and times out; nothing
may be lost and memory must stay flat.

    python benchmarks/soak.py [--minutes 10] [--rate N] [--workers 64] [--connections 4]

1. Starts an `HttpSink` (tests/sinks.py) on 127.0.0.1 in this process that answers 500 to 5 % of
   requests and never answers 1 % (held 3 s, past the URL's 1 s read timeout: Apprise reports a
   timeout, an unknown outcome), and `clarion serve` (subprocess, not dry-run, fresh SQLite
   store, `--backoff 0.5`) on a config whose one event type plans one push delivery to it.
2. Capacity, unless `--rate` is given: 15 s of `POST /v1/events` as fast as `--connections`
   keep-alive connections go (the dispatcher sending meanwhile, as in the soak itself); the soak
   rate is half the events/s measured.
3. Soak: `--minutes` of `POST /v1/events` at that rate, paced per connection on a fixed schedule.
   The sidecar's RSS (/proc) is sampled every 10 s; "start" is the sample after the first tenth
   of the run (at least 20 s: imports, caches and SQLite's page cache settle first), "end" the
   last sample under load.
4. Drain: waits (up to 3 minutes) until no delivery is pending, failed-and-due or sending.
5. Figures, from the store (read-only) and the sink: accepted (202s), delivered (`sent`),
   retried (deliveries that took more than one attempt), dead, lost: accepted events missing
   from the store, plus deliveries not `sent` or `dead` after the drain, plus `sent` deliveries
   whose event never reached the sink with a 200. Fails (exit 1) if lost > 0 or if RSS grew more
   than 10 % from start to end.

Reference printed beside the figures: the drift targets (lost = 0, RSS within 10 %), the sink's
own counts (requests answered 200 / 500 / held), and the capacity the rate was derived from.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ingest import Sidecar  # noqa: E402

FAIL_RATE = 0.05
HANG_RATE = 0.01
RSS_DRIFT = 0.10
CAPACITY_SECONDS = 15.0
DRAIN_LIMIT = 180.0
EVENT_ID = re.compile(r"\((soak-\d+)\)")

CONFIG = """\
version: 1
defaults:
  timezone: Europe/Madrid
  locale: en
  allow_private_targets: true  # the sink is on loopback
events:
  soak.tick:
    category: soak
    description: One soak event.
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
      - device: pager
"""

TEMPLATE = (
    "Subject: Order {{ data.n }} paid\n"
    "{{ data.amount | money(data.currency) }} received for order {{ data.n }} ({{ event.id }}).\n"
)


def write_config(root: Path, url: str) -> None:
    (root / "templates").mkdir(parents=True)
    (root / "clarion.yaml").write_text(CONFIG + f'        url: "{url}"\n', encoding="utf-8")
    (root / "templates" / "soak.tick.push.j2").write_text(TEMPLATE, encoding="utf-8")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Load:
    """`connections` threads posting single events, each on one keep-alive connection."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.connections = connections
        self.accepted: list[str] = []
        self.other: collections.Counter[int] = collections.Counter()
        self._lock = threading.Lock()
        self._n = 0

    def _next(self) -> int:
        with self._lock:
            self._n += 1
            return self._n

    def run(self, seconds: float, rate: float | None) -> float:
        """Post for `seconds`, at `rate` events/s overall (None: as fast as it goes); events/s."""
        stop_at = time.monotonic() + seconds
        before = len(self.accepted)
        start = time.monotonic()
        threads = [
            threading.Thread(target=self._post, args=(stop_at, rate, k))
            for k in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (len(self.accepted) - before) / (time.monotonic() - start)

    def _post(self, stop_at: float, rate: float | None, k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        interval = self.connections / rate if rate else 0.0
        due = time.monotonic() + (interval * k / self.connections)
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            if interval:
                if due > now:
                    time.sleep(due - now)
                due += interval
            n = self._next()
            body = json.dumps(
                {
                    "type": "soak.tick",
                    "id": f"soak-{n:08d}",
                    "data": {"n": n, "amount": 100 + n % 90_000, "currency": "EUR"},
                }
            )
            try:
                conn.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status = 0
            with self._lock:
                if status == 202:
                    self.accepted.append(f"soak-{n:08d}")
                else:
                    self.other[status] += 1
        conn.close()


def store_figures(store: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        statuses = dict(
            conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
        )
        retried = conn.execute("SELECT COUNT(*) FROM deliveries WHERE attempts > 1").fetchone()[0]
        attempts = conn.execute("SELECT COALESCE(SUM(attempts), 0) FROM deliveries").fetchone()[0]
        events = {row[0] for row in conn.execute("SELECT id FROM events")}
        sent_events = {
            row[0] for row in conn.execute("SELECT event_id FROM deliveries WHERE status = 'sent'")
        }
        return {
            "statuses": statuses,
            "retried": retried,
            "attempts": attempts,
            "events": events,
            "sent_events": sent_events,
        }
    finally:
        conn.close()


def open_count(store: Path) -> int:
    figures = store_figures(store)["statuses"]
    return sum(n for status, n in figures.items() if status in ("pending", "failed", "sending"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    parser.add_argument("--rate", type=float, help="events/s (default: half the measured capacity)")
    parser.add_argument("--workers", type=int, default=64, help="dispatcher workers (default 64)")
    parser.add_argument("--connections", type=int, default=4, help="load connections (default 4)")
    parser.add_argument("--keep-log", action="store_true", help="print the sidecar's log")
    args = parser.parse_args()

    from tests.sinks import HttpSink

    tmp = Path(tempfile.mkdtemp(prefix="clarion-bench-soak-"))
    problems: list[str] = []
    sink = HttpSink(fail_rate=FAIL_RATE, hang_rate=HANG_RATE, hang_seconds=3.0, seed=7).start()
    sidecar = None
    try:
        write_config(tmp / "config", sink.apprise_url("/pager", rto=1, cto=1))
        store = tmp / "store.db"
        extra = ["--workers", str(args.workers), "--backoff", "0.5", "--max-attempts", "6"]
        extra += ["--lease", "30"]
        sidecar = Sidecar(tmp / "config", store, extra, tmp / "serve.log")
        pid = sidecar.proc.pid
        load = Load(sidecar.port, args.connections)

        capacity = None
        rate = args.rate
        if rate is None:
            capacity = load.run(CAPACITY_SECONDS, None)
            rate = capacity / 2
        seconds = args.minutes * 60
        settle = max(20.0, seconds / 10)
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            began = time.monotonic()
            while not done.wait(10.0):
                samples.append((time.monotonic() - began, rss_mib(pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        soak_start = time.monotonic()
        achieved = load.run(seconds, rate)
        soaked = time.monotonic() - soak_start
        done.set()
        sampler.join()
        under_load = [s for s in samples if s[0] <= soaked]
        start_rss = next((r for t, r in under_load if t >= settle), float("nan"))
        end_rss = under_load[-1][1] if under_load else float("nan")

        drain_start = time.monotonic()
        while open_count(store) and time.monotonic() - drain_start < DRAIN_LIMIT:
            time.sleep(1.0)
        drained = time.monotonic() - drain_start
        time.sleep(1.0)  # outcomes of the last sends
        figures = store_figures(store)
        statuses = figures["statuses"]
        accepted = load.accepted
        missing = [e for e in accepted if e not in figures["events"]]
        unfinished = sum(
            n for status, n in statuses.items() if status not in ("sent", "dead", "skipped")
        )
        arrived_ok = {
            found.group(1)
            for r in sink.received
            if r.outcome == "ok" and (found := EVENT_ID.search(r.message or ""))
        }
        never_arrived = [e for e in figures["sent_events"] if e not in arrived_ok]
        lost = len(missing) + unfinished + len(never_arrived)
        outcomes = collections.Counter(r.outcome for r in sink.received)

        print(f"soak: {args.minutes:g} min at {rate:,.0f} events/s, {args.workers} workers")
        if capacity is not None:
            print(
                f"  capacity       {capacity:8,.0f} events/s   ({CAPACITY_SECONDS:g} s of "
                f"POST /v1/events on {args.connections} connections, dispatcher sending)"
            )
        print(f"  achieved       {achieved:8,.0f} events/s   (target {rate:,.0f})")
        print(
            f"  accepted       {len(accepted):8,}   (202s, the capacity phase included; other "
            f"answers: {dict(load.other)})"
        )
        print(f"  delivered      {statuses.get('sent', 0):8,}")
        print(
            f"  retried        {figures['retried']:8,}   ({figures['attempts']:,} attempts in all)"
        )
        print(f"  dead           {statuses.get('dead', 0):8,}")
        print(
            f"  lost           {lost:8,}   target 0   [{'OK' if lost == 0 else 'LOST'}]   "
            f"(missing {len(missing)}, unfinished {unfinished}, sent but never arrived "
            f"{len(never_arrived)})"
        )
        drift = (end_rss - start_rss) / start_rss if start_rss == start_rss else float("nan")
        flat = abs(drift) <= RSS_DRIFT
        print(
            f"  RSS            {start_rss:8.1f} MiB at {settle:.0f} s -> {end_rss:.1f} MiB at "
            f"{soaked:.0f} s ({drift:+.1%})   target within {RSS_DRIFT:.0%}   "
            f"[{'OK' if flat else 'GREW'}]"
        )
        print(f"  RSS samples    {', '.join(f'{r:.0f}' for _, r in samples)} MiB (every 10 s)")
        print(
            f"  sink           {outcomes['ok']:,} answered 200, {outcomes['fail']:,} answered 500, "
            f"{outcomes['hang']:,} held past the timeout   (reference: {FAIL_RATE:.0%} / "
            f"{HANG_RATE:.0%} of requests)"
        )
        print(f"  drain          {drained:.1f} s after the load stopped")
        if lost:
            problems.append(f"{lost} lost")
        if not flat:
            problems.append(f"RSS drifted {drift:+.1%}")
    finally:
        if sidecar is not None:
            sidecar.stop()
            if args.keep_log or problems:
                print(sidecar.log.read_text()[-5000:])
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
