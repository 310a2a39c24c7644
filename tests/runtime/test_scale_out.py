"""Several `clarion serve` processes on one PostgreSQL store, counted at a loopback sink: work is
shared, nothing is sent twice or lost, a killed sidecar's leases go to the others, and dropped
database connections come back. (Skipped, with a message, without CLARION_TEST_POSTGRES_URL.)"""

from __future__ import annotations

import collections
import itertools
import re
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.serving import Sidecar, only_timeouts_twice
from tests.runtime.test_serve import crash_config
from tests.sinks import HttpSink


def ticks(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"type": "tick", "id": f"{prefix}{i:05d}", "data": {}} for i in range(count)]


def post_all(fleet: list[Sidecar], events: list[dict[str, Any]], batch: int = 200) -> None:
    """Batches to the sidecars in turn; a 503 (the store briefly unreachable) is retried, as a
    client is told to."""
    turn = itertools.cycle(fleet)
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = next(turn).post("/v1/events:batch", {"events": chunk})
            except OSError:
                status, body = 0, None
            if status == 200:
                assert body["accepted"] == len(chunk), body
                break
            assert status in (0, 503), (status, body)
            assert time.monotonic() < deadline, "the fleet kept refusing a batch"
            time.sleep(0.2)


def arrivals(http: HttpSink, expected: int, timeout: float) -> collections.Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        counts = collections.Counter(
            (r.message or "").strip() for r in http.received if r.outcome == "ok"
        )
        if len(counts) >= expected:
            time.sleep(0.5)  # anything sent twice would arrive now
            return collections.Counter(
                (r.message or "").strip() for r in http.received if r.outcome == "ok"
            )
        assert time.monotonic() < deadline, f"only {len(counts)} of {expected} events arrived"
        time.sleep(0.1)


def delivered_by(sidecar: Sidecar) -> float:
    with urllib.request.urlopen(sidecar.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.findall(r'^clarion_deliveries_total\{[^}]*status="sent"[^}]*\} (\S+)$', text, re.M)
    return sum(float(value) for value in found)


@pytest.mark.parametrize("size", [2, 4])
def test_a_fleet_delivers_every_event_exactly_once(
    size: int, tmp_path: Path, postgres_url: str
) -> None:
    total = 1200
    with HttpSink(delay=0.005) as http:
        config = crash_config(tmp_path / "config", http)
        fleet = [Sidecar(config, postgres_url, "--workers", "8") for _ in range(size)]
        try:
            for sidecar in fleet:
                sidecar.start()
            events = ticks("f", total)
            post_all(fleet, events)
            counts = arrivals(http, total, timeout=120)
            assert set(counts) == {e["id"] for e in events}
            assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:10]
            shares = [delivered_by(sidecar) for sidecar in fleet]
            assert sum(shares) == total
            assert all(share > 0 for share in shares), f"a sidecar did no work: {shares}"
        finally:
            for sidecar in fleet:
                sidecar.kill()


def test_a_killed_sidecars_leased_work_is_done_by_the_others(
    tmp_path: Path, postgres_url: str
) -> None:
    total = 600
    # 600 sends of 50 ms over 2 x 8 workers take about 2 s: the kill lands mid-burst.
    with HttpSink(delay=0.05) as http:
        config = crash_config(tmp_path / "config", http)
        args = ("--workers", "8", "--lease", "3", "--backoff", "0.05")
        victim, survivor = (Sidecar(config, postgres_url, *args) for _ in range(2))
        try:
            victim.start()
            survivor.start()
            events = ticks("k", total)
            post_all([victim], events)
            deadline = time.monotonic() + 30
            while len(http) < total // 5:
                assert time.monotonic() < deadline, "dispatch never got going"
                time.sleep(0.01)
            victim.kill()  # SIGKILL: its claimed sends are leased, not released
            assert len(http) < total, "the burst finished before the kill; nothing was tested"
            counts = arrivals(http, total, timeout=90)
            assert set(counts) == {e["id"] for e in events}
            only_timeouts_twice(survivor, counts)
            released = survivor_timeouts(survivor, events)
            assert released, "no leased send of the killed sidecar was taken over"
        finally:
            victim.kill()
            survivor.kill()


def survivor_timeouts(sidecar: Sidecar, events: list[dict[str, Any]]) -> list[str]:
    """Events whose delivery was leased by a sidecar that died, then released and sent."""
    found = []
    for event in events:
        [delivery] = sidecar.event(event["id"])["deliveries"]
        assert delivery["status"] == "sent", delivery
        if any(a["result"] == "timeout" for a in delivery["attempt_log"]):
            found.append(event["id"])
    return found


def test_sidecars_come_back_when_the_database_drops_their_connections(
    tmp_path: Path, postgres_url: str
) -> None:
    import psycopg

    total = 1500
    application = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(postgres_url).query))[
        "application_name"
    ]
    with HttpSink(delay=0.01) as http:
        config = crash_config(tmp_path / "config", http)
        args = ("--workers", "8", "--lease", "3", "--backoff", "0.05")
        fleet = [Sidecar(config, postgres_url, *args) for _ in range(2)]
        terminated: list[int] = []
        stop = threading.Event()

        def terminate_backends() -> None:
            # As a database restart or failover does: every connection the sidecars hold dies.
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                while not stop.wait(0.7):
                    rows = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = %s AND pid <> pg_backend_pid()",
                        (application,),
                    ).fetchall()
                    terminated.append(len(rows))

        try:
            for sidecar in fleet:
                sidecar.start()
            killer = threading.Thread(target=terminate_backends)
            killer.start()
            events = ticks("p", total)
            try:
                post_all(fleet, events, batch=50)
                time.sleep(1.5)  # and a few more while sending
            finally:
                stop.set()
                killer.join()
            assert sum(terminated) >= 4, f"too few connections were dropped: {terminated}"
            counts = arrivals(http, total, timeout=120)
            assert set(counts) == {e["id"] for e in events}
            only_timeouts_twice(fleet[-1], counts)
            for sidecar in fleet:
                assert sidecar.get("/readyz")[0] == 200
        finally:
            for sidecar in fleet:
                sidecar.kill()


def test_one_event_posted_to_two_sidecars_at_once_is_planned_once(
    tmp_path: Path, postgres_url: str
) -> None:
    events = ticks("same", 30)
    with HttpSink() as http:
        config = crash_config(tmp_path / "config", http)
        pair = [Sidecar(config, postgres_url, "--workers", "4") for _ in range(2)]
        try:
            for sidecar in pair:
                sidecar.start()
            statuses: dict[str, list[int]] = collections.defaultdict(list)
            for event in events:
                gate = threading.Barrier(4)

                def post(
                    sidecar: Sidecar,
                    event: dict[str, Any] = event,
                    gate: threading.Barrier = gate,
                ) -> None:
                    gate.wait()
                    statuses[event["id"]].append(sidecar.post("/v1/events", event)[0])

                posts = [threading.Thread(target=post, args=(s,)) for s in pair + pair]
                for thread in posts:
                    thread.start()
                for thread in posts:
                    thread.join(30)
            for event in events:
                assert sorted(statuses[event["id"]]) == [200, 200, 200, 202], event["id"]
                assert len(pair[0].event(event["id"])["deliveries"]) == 1
            counts = arrivals(http, len(events), timeout=30)
            assert set(counts) == {e["id"] for e in events}
            assert max(counts.values()) == 1
        finally:
            for sidecar in pair:
                sidecar.kill()
