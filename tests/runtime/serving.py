"""Run `clarion serve` as a real process, as a user would, for end-to-end tests."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sidecar:
    def __init__(
        self, source: Path, store: Path | str, *args: str, env: dict[str, str] | None = None
    ):
        """`store`: a SQLite file, or a store URL (its log then goes beside the config)."""
        self.source = source
        self.store_url = store if isinstance(store, str) else f"sqlite:///{store}"
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        logs = store.parent if isinstance(store, Path) else source.parent
        self.log = logs / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Sidecar:
        self.port = free_port()
        command = [
            sys.executable, "-m", "clarion", "serve", str(self.source),
            "--store", self.store_url, "--port", str(self.port),
            "--log-format", "json", *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"clarion serve exited early:\n{self.log.read_text()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"clarion serve did not become ready:\n{self.log.read_text()}")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.request("POST", path, body)

    def event(self, event_id: str) -> dict[str, Any]:
        status, body = self.get(f"/v1/events/{event_id}")
        assert status == 200, body
        result: dict[str, Any] = body
        return result

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        return int(self.process.returncode)

    def __enter__(self) -> Sidecar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def only_timeouts_twice(sidecar: Sidecar, counts: collections.Counter[str]) -> None:
    """Of events whose one delivery arrived `counts[id]` times at a sink: those that arrived
    more than once had a send whose outcome was unknown (a `timeout`: a crash, a lease that ran
    out), the only way at least once may send twice."""
    for event_id in [event_id for event_id, n in counts.items() if n > 1]:
        [delivery] = sidecar.event(event_id)["deliveries"]
        results = [a["result"] for a in delivery["attempt_log"]]
        assert "timeout" in results, (event_id, delivery)
