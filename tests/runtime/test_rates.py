"""Per-channel rates: sends wait for a slot shared by every worker (and, through the store, every
sidecar), none is dropped. Counted on arrival at a real loopback sink."""

from __future__ import annotations

import collections
import functools
import math
import threading
from pathlib import Path

from clarion.runtime.store import open_store
from clarion.runtime.store.base import Store, Tx
from tests.runtime.serving import Sidecar
from tests.runtime.test_serve import crash_config
from tests.sinks import HttpSink


def test_a_channel_rate_paces_every_worker_and_drops_nothing(tmp_path: Path) -> None:
    total, rate = 60, 20
    with HttpSink() as http:
        config = crash_config(tmp_path / "config", http, f"{rate}/s")
        with Sidecar(config, tmp_path / "store.db", "--workers", "16") as sidecar:
            events = [{"type": "tick", "id": f"r{i:03d}", "data": {}} for i in range(total)]
            status, body = sidecar.post("/v1/events:batch", {"events": events})
            assert status == 200 and body["accepted"] == total
            arrivals = http.wait_for(total, timeout=30)
            start = arrivals[0].at
            per_second = collections.Counter(math.floor(r.at - start) for r in arrivals)
            # Slots are 50 ms apart: 20 in any second. Slots are kept, arrivals are not: on a
            # loaded machine a send that scheduling delays lands beside the next ones (seen once
            # in a full run: 22), so two more are allowed; unpaced, all 60 land in one second.
            assert max(per_second.values()) <= rate + 2, per_second
            span = arrivals[-1].at - start
            assert span >= (total - 1) / rate * 0.95, f"{total} sends in {span:.2f} s"
            assert sorted((r.message or "").strip() for r in arrivals) == sorted(
                e["id"] for e in events
            )
            # Waiting for a slot is not an attempt.
            for event in events[::10]:
                [delivery] = sidecar.event(event["id"])["deliveries"]
                assert delivery["status"] == "sent" and delivery["attempts"] == 1, delivery


def _slot(tx: Tx, key: str, now: float) -> float:
    return tx.take_slot(key, 10, 1.0, now, horizon=60.0)


def _slow(tx: Tx, now: float) -> float:
    return tx.take_slot("slow", 1, 60.0, now, horizon=1.0)


def test_slots_are_spaced_across_concurrent_takers_and_not_saved_up(store_url: str) -> None:
    """Four takers on two store objects (two sidecars) of each backend."""
    store, other = open_store(store_url), open_store(store_url)
    try:
        slots: list[float] = []
        lock = threading.Lock()

        def take(taker: Store) -> None:
            for _ in range(10):
                slot = taker.write(functools.partial(_slot, key="sms", now=1000.0))
                with lock:
                    slots.append(slot)

        threads = [threading.Thread(target=take, args=(s,)) for s in (store, other) * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        slots.sort()
        assert all(abs(a - (1000.0 + n * 0.1)) < 1e-9 for n, a in enumerate(slots)), slots
        # An hour idle: the next slot is now, and the one after is one spacing later (no burst).
        later = 1000.0 + 3600
        assert store.write(functools.partial(_slot, key="sms", now=later)) == later
        assert abs(store.write(functools.partial(_slot, key="sms", now=later)) - later - 0.1) < 1e-9
        # Beyond the horizon nothing is reserved: asking again gives the same time.
        assert store.write(functools.partial(_slow, now=later)) == later  # reserved
        assert store.write(functools.partial(_slow, now=later)) == later + 60.0  # not reserved
        assert store.write(functools.partial(_slow, now=later + 1)) == later + 60.0
        # Another key has its own pace.
        assert store.write(functools.partial(_slot, key="email", now=1000.0)) == 1000.0
    finally:
        store.close()
        other.close()


def test_a_rate_holds_across_sidecars_sharing_a_postgresql_store(
    tmp_path: Path, postgres_url: str
) -> None:
    total, rate = 60, 20
    with HttpSink() as http:
        config = crash_config(tmp_path / "config", http, f"{rate}/s")
        pair = [Sidecar(config, postgres_url, "--workers", "8") for _ in range(2)]
        try:
            for sidecar in pair:
                sidecar.start()
            events = [{"type": "tick", "id": f"p{i:03d}", "data": {}} for i in range(total)]
            for n, sidecar in enumerate(pair):
                status, body = sidecar.post("/v1/events:batch", {"events": events[n::2]})
                assert status == 200 and body["accepted"] == total // 2
            arrivals = http.wait_for(total, timeout=30)
            start = arrivals[0].at
            per_second = collections.Counter(math.floor(r.at - start) for r in arrivals)
            assert max(per_second.values()) <= rate + 1, per_second
            assert sorted((r.message or "").strip() for r in arrivals) == sorted(
                e["id"] for e in events
            )
        finally:
            for sidecar in pair:
                sidecar.kill()
