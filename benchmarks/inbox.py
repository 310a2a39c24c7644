"""Benchmark: fan-out of the in-app inbox stream (`GET /v1/inbox/{recipient}/stream`) to 1,000
live subscribers, against a minimal stdlib asyncio SSE server doing the same fan-out.

    python benchmarks/inbox.py [--streams N] [--events N]

1. Starts `clarion serve examples/config --dry-run --no-watch` as a subprocess (127.0.0.1, a free
   port, a fresh SQLite store in a temporary directory) and posts one warm-up event.
2. A separate process (this script with `--client`, on asyncio, raw sockets) opens N streams to
   `owner`'s inbox and waits until every one has had its first `unread` message (subscribed).
   RSS of the server (VmRSS) is read before the streams open and once all are open:
   (after - before) / N is the memory per open stream.
3. The client then posts E `dispute.created` events (it reaches `owner`'s in-app inbox), one at a
   time: for each, the time from the 202 (the status line read by the client) to the `item`
   message carrying that event's id on each of the N streams. Figures over all (event, stream)
   pairs: p50, p99, max; and per event the time until the last stream had it.
4. Reference, in the same run: the same client against a minimal SSE server (this script with
   `--reference`, stdlib asyncio only: no store, no thread pool, one write per stream per event).
   It shows the floor set by the client, the loopback and Python itself.

Targets printed beside the figures: p99 < 1 s from 202 to every stream; < 50 KB per open stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "config"
TARGET_P99 = 1.0  # seconds
TARGET_PER_STREAM = 50 * 1024  # bytes
RECIPIENT = "owner"


def raise_file_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def event_body(number: int, run: str) -> dict[str, Any]:
    return {
        "type": "dispute.created",
        "id": f"evt_bench_{run}_{number}",
        "data": {
            "dispute_id": f"dp_{run}_{number}",
            "payment_id": "pay_7HsK2mWq",
            "amount": 4999,
            "currency": "EUR",
            "reason": "product_not_received",
            "respond_by": "2026-12-04",
        },
    }


# ---------------------------------------------------------------------------------------------
# The client (a separate process): N streams, then E events, timing each item on each stream.


class Stream:
    def __init__(self, index: int) -> None:
        self.index = index
        self.subscribed = asyncio.Event()
        self.arrived: dict[str, float] = {}


async def _read_stream(host: str, port: int, path: str, stream: Stream, waiters: Any) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream {stream.index}: {status!r}")
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
            chunked = True
    buffer = b""
    while True:
        if chunked:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                return
            data = await reader.readexactly(size + 2)
            buffer += data[:-2]
        else:
            data = await reader.read(65536)
            if not data:
                return
            buffer += data
        while b"\n\n" in buffer:
            message, buffer = buffer.split(b"\n\n", 1)
            kind, payload = b"message", b""
            for field in message.split(b"\n"):
                if field.startswith(b"event: "):
                    kind = field[7:]
                elif field.startswith(b"data: "):
                    payload = field[6:]
            if kind == b"unread":
                stream.subscribed.set()
            elif kind == b"item":
                now = time.monotonic()
                event_id = json.loads(payload)["event_id"]
                stream.arrived[event_id] = now
                waiter = waiters.get(event_id)
                if waiter is not None:
                    waiter[0] -= 1
                    if waiter[0] == 0:
                        waiter[1].set()


async def _post(host: str, port: int, path: str, body: dict[str, Any]) -> float:
    reader, writer = await asyncio.open_connection(host, port)
    raw = json.dumps(body).encode()
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + raw
    )
    status = await reader.readline()
    accepted = time.monotonic()
    if b" 202 " not in status:
        raise RuntimeError(f"POST {path}: {status!r} {await reader.read()!r}")
    await reader.read()
    writer.close()
    return accepted


async def client(host: str, port: int, streams: int, events: int, run: str) -> dict[str, Any]:
    path = f"/v1/inbox/{RECIPIENT}/stream"
    waiters: dict[str, list[Any]] = {}
    subscribers = [Stream(i) for i in range(streams)]
    tasks = []
    opened = time.monotonic()
    for start in range(0, streams, 100):  # 100 connects at a time, each waits to be subscribed
        batch = subscribers[start : start + 100]
        for stream in batch:
            tasks.append(asyncio.create_task(_read_stream(host, port, path, stream, waiters)))
        await asyncio.wait_for(asyncio.gather(*(s.subscribed.wait() for s in batch)), 60)
    open_seconds = time.monotonic() - opened
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the RSS read
    per_event: list[dict[str, Any]] = []
    latencies: list[float] = []
    early = 0
    for number in range(events):
        body = event_body(number, run)
        done = asyncio.Event()
        waiters[body["id"]] = [streams, done]
        accepted = await _post(host, port, "/v1/events", body)
        await asyncio.wait_for(done.wait(), 60)
        times = [s.arrived[body["id"]] - accepted for s in subscribers]
        early += sum(1 for t in times if t < 0)
        latencies.extend(max(t, 0.0) for t in times)
        per_event.append({"last": max(times), "first": min(times)})
        await asyncio.sleep(0.3)
    for task in tasks:
        task.cancel()
    return {
        "open_seconds": open_seconds,
        "latencies": latencies,
        "per_event": per_event,
        "early": early,
    }


def run_client(args: argparse.Namespace) -> None:
    raise_file_limit(args.streams + 256)
    try:
        import uvloop  # the same fast loop for both servers: the client must not be the floor

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(client(args.host, args.port, args.streams, args.events, args.run))
    Path(args.out).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# The reference: a minimal SSE fan-out server on stdlib asyncio.


class Reference:
    def __init__(self) -> None:
        self.streams: set[asyncio.StreamWriter] = set()
        self.next_id = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if request.startswith(b"GET ") and b"/stream" in request:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b'\r\nretry: 2000\nevent: unread\ndata: {"unread": 0}\n\n'
            )
            self.streams.add(writer)
            try:
                await reader.read()  # until the client goes
            finally:
                self.streams.discard(writer)
            return
        if request.startswith(b"POST "):
            body = json.loads(await reader.readexactly(length))
            writer.write(
                b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                b"Connection: close\r\n\r\n{}"
            )
            await writer.drain()
            writer.close()
            self.next_id += 1
            item = {"id": self.next_id, "title": body["type"], "event_id": body["id"]}
            message = f"id: {self.next_id}\nevent: item\ndata: {json.dumps(item)}\n\n".encode()
            for stream in list(self.streams):
                stream.write(message)
            return
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        writer.close()


def run_reference(args: argparse.Namespace) -> None:
    raise_file_limit(args.streams + 256)

    async def main() -> None:
        server = await asyncio.start_server(
            Reference().handle, "127.0.0.1", args.port, backlog=2048
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# The driver.


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server did not become ready:\n{log.read_text()}")


def measure(
    name: str, server: subprocess.Popen[bytes], port: int, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    time.sleep(0.5)
    before = rss(server.pid)
    client_process = subprocess.Popen(
        [
            sys.executable, __file__, "--client", "--port", str(port),
            "--streams", str(args.streams), "--events", str(args.events),
            "--run", name, "--out", str(out),
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert client_process.stdin is not None and client_process.stdout is not None
    line = client_process.stdout.readline()
    if line.strip() != "READY":
        client_process.kill()
        raise SystemExit(f"{name}: the client failed before READY: {line!r}")
    time.sleep(1.0)
    after = rss(server.pid)
    client_process.stdin.write("GO\n")
    client_process.stdin.flush()
    if client_process.wait(300) != 0:
        raise SystemExit(f"{name}: the client failed")
    result: dict[str, Any] = json.loads(out.read_text())
    result["rss_before"], result["rss_after"] = before, after
    result["per_stream"] = (after - before) / args.streams
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, result: dict[str, Any], streams: int, targets: bool) -> None:
    lat = result["latencies"]
    p50, p99, worst = pct(lat, 0.50), pct(lat, 0.99), max(lat)
    lasts = [e["last"] for e in result["per_event"]]
    firsts = [e["first"] for e in result["per_event"]]

    def mark(ok: bool) -> str:
        return (" [OK]" if ok else " [OVER]") if targets else ""

    print(f"\n{name}")
    print(f"  {streams:,} streams opened and subscribed in {result['open_seconds']:.2f} s")
    print(
        f"  202 -> item on a stream, over {len(result['per_event'])} events x {streams:,} streams:"
        f" p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms{mark(p99 < TARGET_P99)},"
        f" max {worst * 1000:.0f} ms"
    )
    print(
        f"  per event: first stream {statistics.median(firsts) * 1000:.0f} ms (median),"
        f" last stream {statistics.median(lasts) * 1000:.0f} ms (median),"
        f" {max(lasts) * 1000:.0f} ms (worst)"
    )
    if result["early"]:
        print(f"  ({result['early']} items arrived before the client read the 202: counted as 0)")
    per = result["per_stream"]
    print(
        f"  server RSS {result['rss_before'] / 2**20:.1f} MiB -> {result['rss_after'] / 2**20:.1f}"
        f" MiB with the streams open: {per / 1024:.1f} KB per stream"
        f"{mark(per < TARGET_PER_STREAM)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--run", default="x", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return run_client(args)
    if args.reference:
        return run_reference(args)

    raise_file_limit(args.streams + 256)  # inherited by both servers
    print(
        f"inbox stream fan-out: {args.streams:,} streams, {args.events} events,"
        f" {os.cpu_count()} CPUs"
    )
    folder = Path(tempfile.mkdtemp(prefix="clarion-inbox-bench-"))
    try:
        port = free_port()
        log = folder / "serve.log"
        command = [
            sys.executable, "-m", "clarion", "serve", str(EXAMPLES), "--dry-run", "--no-watch",
            "--port", str(port), "--store", f"sqlite:///{folder / 'store.db'}",
            "--log-format", "json",
        ]  # fmt: skip
        with log.open("wb") as out:
            server = subprocess.Popen(command, stdout=out, stderr=out)
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", server, log)
            warm = event_body(0, "warmup")
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/events", json.dumps(warm).encode(), method="POST"
            )
            urllib.request.urlopen(request, timeout=10).close()
            clarion = measure("clarion", server, port, args, folder / "clarion.json")
        finally:
            server.terminate()
            server.wait(30)
        report(
            "clarion serve --dry-run (uvicorn, FastAPI, SQLite store)", clarion, args.streams, True
        )

        port = free_port()
        reference = subprocess.Popen(
            [
                sys.executable, __file__, "--reference",
                "--port", str(port), "--streams", str(args.streams),
            ]
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            floor = measure("reference", reference, port, args, folder / "reference.json")
        finally:
            reference.terminate()
            reference.wait(30)
        report(
            "reference: minimal stdlib asyncio SSE server (no store)", floor, args.streams, False
        )
        ratio = pct(clarion["latencies"], 0.99) / max(pct(floor["latencies"], 0.99), 1e-6)
        print(f"\np99 clarion / reference: {ratio:.1f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
