"""Stopping and back-pressure through `clarion serve`: SIGTERM during a burst to a slow sink, and
a store that cannot write. Real processes, real loopback sinks, a real file-size limit."""

from __future__ import annotations

import collections
import contextlib
import json
import resource
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.runtime.serving import Sidecar
from tests.runtime.test_serve import crash_config
from tests.sinks import HttpSink


def post(url: str, body: Any) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    """(status, body, headers); status 0 when the sidecar no longer listens."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, json.loads(response.read()), headers
    except urllib.error.HTTPError as error:
        headers = {k.lower(): v for k, v in error.headers.items()}
        return error.code, json.loads(error.read() or b"null"), headers
    except OSError:
        return 0, None, {}


def test_sigterm_during_a_burst_refuses_new_events_finishes_sends_and_exits_in_time(
    tmp_path: Path,
) -> None:
    with HttpSink(delay=1.0) as http:
        config = crash_config(tmp_path / "config", http)
        store = tmp_path / "store.db"
        args = ("--workers", "4", "--backoff", "0.05", "--shutdown-timeout", "6")
        sidecar = Sidecar(config, store, *args).start()
        try:
            events = [{"type": "tick", "id": f"b{i:04d}", "data": {}} for i in range(100)]
            status, body = sidecar.post("/v1/events:batch", {"events": events})
            assert status == 200 and body["accepted"] == 100
            http.wait_for(4, timeout=10)  # every worker is mid-send to the slow sink

            answers: list[tuple[str, int, dict[str, Any] | None, dict[str, str]]] = []
            ready: list[tuple[int, Any]] = []
            done = threading.Event()

            def keep_posting() -> None:
                n = 0
                while not done.is_set():
                    event_id = f"late{n:04d}"
                    answers.append((event_id, *post(f"{sidecar.url}/v1/events", {
                        "type": "tick", "id": event_id, "data": {}})))  # fmt: skip
                    with contextlib.suppress(OSError):
                        ready.append(sidecar.get("/readyz"))
                    n += 1
                    time.sleep(0.02)

            poster = threading.Thread(target=keep_posting)
            poster.start()
            time.sleep(0.3)
            assert sidecar.process is not None
            stopped_at = time.monotonic()
            sidecar.process.send_signal(signal.SIGTERM)
            code = sidecar.process.wait(20)
            took = time.monotonic() - stopped_at
            done.set()
            poster.join()
            assert code == 0
            assert took < 6 + 2, f"took {took:.1f} s to stop"

            refused = [(a[2], a[3]) for a in answers if a[1] == 503]
            assert refused, f"no 503 while draining: {[a[1] for a in answers]}"
            for body, headers in refused:
                assert body is not None and body["error"]["code"] == "shutting_down"
                assert headers.get("retry-after") == "1"
            assert any(
                status == 503 and "shutting down" in body["error"]["message"]
                for status, body in ready
            ), ready
            accepted = [a[0] for a in answers if a[1] == 202]
            assert {a[1] for a in answers} <= {202, 503, 0}
            in_flight = len(http)

            # Restart against a fast sink: what was sent is not sent again, nothing is lost.
            http.delay = 0.0
            sidecar.start()
            expected = {e["id"] for e in events} | set(accepted)
            deadline = time.monotonic() + 60
            while len({(r.message or "").strip() for r in http.received}) < len(expected):
                assert time.monotonic() < deadline, f"{len(http)} of {len(expected)} arrived"
                time.sleep(0.1)
            time.sleep(0.3)
            counts = collections.Counter((r.message or "").strip() for r in http.received)
            assert set(counts) == expected
            assert max(counts.values()) == 1, "a send finished at stop was sent again"
            # The sends in flight at SIGTERM finished (one attempt); none was given back as an
            # interrupted attempt, and those never begun carry no attempt.
            for event_id in sorted(expected):
                [delivery] = sidecar.event(event_id)["deliveries"]
                assert delivery["status"] == "sent", delivery
                assert [a["result"] for a in delivery["attempt_log"]] == ["sent"], delivery
            assert in_flight >= 4
        finally:
            sidecar.kill()


def test_a_store_that_cannot_write_answers_503_and_loses_no_accepted_event(
    tmp_path: Path,
) -> None:
    """A file-size limit on the sidecar (RLIMIT_FSIZE: what SQLite sees is a write that fails,
    as on a full disk): 503 `unavailable`, `/readyz` says why; lifted, it accepts again."""
    with HttpSink() as http:
        config = crash_config(tmp_path / "config", http)
        store = tmp_path / "store.db"
        sidecar = Sidecar(config, store, "--dry-run").start()
        try:
            assert sidecar.process is not None
            pid = sidecar.process.pid
            sizes = [p.stat().st_size for p in tmp_path.glob("*") if p.is_file()]
            limit = max(sizes) + 512 * 1024
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            pad = "x" * 4000
            accepted: list[str] = []
            refused: list[tuple[dict[str, Any] | None, dict[str, str]]] = []
            for n in range(400):
                event = {"type": "tick", "id": f"f{n:04d}", "data": {"pad": pad}}
                status, body, headers = post(f"{sidecar.url}/v1/events", event)
                assert status in (202, 503), (status, body)
                if status == 202:
                    accepted.append(event["id"])
                else:
                    refused.append((body, headers))
                    if len(refused) >= 5:
                        break
            assert refused, "the size limit was never reached"
            for body, headers in refused:
                assert body is not None and body["error"]["code"] == "unavailable"
                assert headers.get("retry-after") == "5"
            status, body = sidecar.get("/readyz")
            assert status == 503 and "cannot write" in body["error"]["message"], body

            resource.prlimit(
                pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )
            deadline = time.monotonic() + 10
            while sidecar.get("/readyz")[0] != 200:
                assert time.monotonic() < deadline, "never ready again"
                time.sleep(0.1)
            assert (
                post(f"{sidecar.url}/v1/events", {"type": "tick", "id": "after", "data": {}})[0]
                == 202
            )
            accepted.append("after")
            assert sidecar.stop() == 0
            sidecar.start()
            for event_id in accepted:  # every 202 was kept
                assert sidecar.get(f"/v1/events/{event_id}")[0] == 200, event_id
        finally:
            sidecar.kill()


def test_a_send_stuck_past_the_timeout_does_not_hold_the_exit(tmp_path: Path) -> None:
    """A provider that never answers: the sidecar exits within the bound anyway, and the next
    start queues the abandoned send again as interrupted (its outcome is unknown)."""
    with HttpSink(hang_rate=1.0, hang_seconds=60) as http:
        config = crash_config(tmp_path / "config", http)
        store = tmp_path / "store.db"
        sidecar = Sidecar(config, store, "--shutdown-timeout", "2").start()
        try:
            assert sidecar.post("/v1/events", {"type": "tick", "id": "stuck", "data": {}})[0] == 202
            http.wait_for(1, timeout=10)
            assert sidecar.process is not None
            stopped_at = time.monotonic()
            sidecar.process.send_signal(signal.SIGTERM)
            assert sidecar.process.wait(20) == 0
            took = time.monotonic() - stopped_at
            assert took < 2 + 2, f"took {took:.1f} s to stop"
            assert "sends still in flight at the deadline" in sidecar.log.read_text()
            http.hang_rate = 0.0
            sidecar.start()
            deadline = time.monotonic() + 20
            while True:
                [delivery] = sidecar.event("stuck")["deliveries"]
                if delivery["status"] == "sent":
                    break
                assert time.monotonic() < deadline, delivery
                time.sleep(0.05)
            results = [a["result"] for a in delivery["attempt_log"]]
            assert results == ["timeout", "sent"], delivery
        finally:
            sidecar.kill()
