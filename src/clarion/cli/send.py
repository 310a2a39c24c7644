"""`clarion send [FILE|-]`: post one event, or a JSON-lines file of events, to a running sidecar.

One JSON value -> POST /v1/events. Anything else is read as JSON lines, streamed, and posted to
POST /v1/events:batch in batches; a line that is not JSON is counted as rejected, never sent.
Only the standard library speaks HTTP here."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from clarion.cli.options import EnvironmentProblem

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

DEFAULT_URL = "http://127.0.0.1:8425"
MAX_BATCH = 1000  # the sidecar's limit (api.MAX_BATCH_EVENTS)
BATCH_BYTES = 15 * 1024 * 1024  # under the sidecar's 16 MiB limit of a batch body
EVENT_BYTES = 256 * 1024  # the sidecar's limit of one event (api.MAX_EVENT_BYTES)
PEEK = 1024 * 1024  # input this small may be one (pretty-printed) event
CHUNK = 1024 * 1024
SHOWN = 10  # rejections listed in the summary
TIMEOUT = 120.0
RETRIES = 5  # tries of a request the sidecar answers 503 (its store is busy or away)
OK = (200, 202)


@dataclass
class Answer:
    status: int
    body: Any  # parsed JSON, or None when the body is not JSON


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (line, code, message)

    def reject(self, line: int, code: str, message: str) -> None:
        self.rejected += 1
        if len(self.problems) < SHOWN:
            self.problems.append((line, code, message))


class Sidecar:
    """POSTs JSON to the sidecar; an answer it cannot be talking to a sidecar, one line, exit 2."""

    def __init__(self, url: str, token: str | None) -> None:
        import urllib.request

        self.url = url.rstrip("/")
        self.token = token
        host = urlsplit(self.url).hostname or ""
        # A sidecar on this machine is never behind the environment's HTTP proxy.
        local = host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")
        handlers = [urllib.request.ProxyHandler({})] if local else []
        self._opener = urllib.request.build_opener(*handlers)

    def post(self, path: str, body: bytes) -> Answer:
        import http.client
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in range(RETRIES):
            request = urllib.request.Request(
                self.url + path, data=body, headers=headers, method="POST"
            )
            try:
                with self._opener.open(request, timeout=TIMEOUT) as response:
                    status, raw, retry_after = response.status, response.read(), None
            except urllib.error.HTTPError as exc:
                status, raw, retry_after = exc.code, exc.read(), exc.headers.get("Retry-After")
            except urllib.error.URLError as exc:
                raise EnvironmentProblem(self._unreachable(exc.reason)) from None
            except (OSError, http.client.HTTPException) as exc:
                raise EnvironmentProblem(self._unreachable(exc)) from None
            if status == 401:
                raise EnvironmentProblem(
                    f"the sidecar at {self.url} refused the request (401): "
                    + ("CLARION_TOKEN is wrong" if self.token else "set CLARION_TOKEN")
                )
            if status == 503 and attempt + 1 < RETRIES:
                time.sleep(_delay(retry_after, attempt))
                continue
            break
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if status == 503:
            raise EnvironmentProblem(
                f"the sidecar at {self.url} cannot keep events now (503); retry later"
            )
        if not isinstance(parsed, dict) or status in (404, 405):
            raise EnvironmentProblem(
                f"{self.url}{path} answered HTTP {status}: is this a Clarion sidecar?"
            )
        return Answer(status, parsed)

    def _unreachable(self, reason: object) -> str:
        if isinstance(reason, OSError) and reason.strerror:
            reason = reason.strerror
        return f"cannot reach the sidecar at {self.url}: {reason}"


def _delay(retry_after: str | None, attempt: int) -> float:
    if retry_after is not None and retry_after.strip().isdigit():
        return float(min(int(retry_after), 30))
    return float(min(2**attempt, 30))


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value


@click.command("send")
@click.argument("source", required=False, default="-", metavar="[FILE|-]")
@click.option(
    "--url",
    envvar="CLARION_URL",
    default=DEFAULT_URL,
    show_default=True,
    callback=_check_url,
    help="The sidecar (env CLARION_URL). The bearer token comes from CLARION_TOKEN.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=500,
    show_default=True,
    help="Events per batch request, for JSON lines.",
)
def send_command(source: str, url: str, batch_size: int) -> None:
    """Post one event (a JSON object) or a JSON-lines file of events to a running sidecar.

    FILE defaults to standard input (-)."""
    sidecar = Sidecar(url, os.environ.get("CLARION_TOKEN") or None)
    stream, size = _open(source)
    with stream:
        try:
            head = stream.read(PEEK)
        except OSError as exc:
            raise EnvironmentProblem(f"{_label(source)}: {exc.strerror or exc}") from None
        if len(head) < PEEK:
            body = head.strip().removeprefix(b"\xef\xbb\xbf").strip()
            if not body:
                click.echo(f"{_label(source)}: no events; nothing sent", err=True)
                raise SystemExit(0)
            if _is_json(body):
                raise SystemExit(_send_one(sidecar, body))
        tally = _send_lines(sidecar, _lines(head, stream), batch_size, size, source)
    _summary(tally)
    raise SystemExit(1 if tally.rejected else 0)


def _label(source: str) -> str:
    return "standard input" if source == "-" else source


def _open(source: str) -> tuple[IO[bytes], int | None]:
    if source == "-":
        return sys.stdin.buffer, None
    try:
        stream = open(source, "rb")  # noqa: SIM115 - closed by the caller's `with`
        size = os.fstat(stream.fileno()).st_size
    except IsADirectoryError:
        raise EnvironmentProblem(f"{source}: is a directory") from None
    except OSError as exc:
        raise EnvironmentProblem(f"{source}: {exc.strerror or exc}") from None
    return stream, size or None


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return True


def _send_one(sidecar: Sidecar, body: bytes) -> int:
    answer = sidecar.post("/v1/events", body)
    if answer.status in OK:
        click.echo(json.dumps(answer.body, ensure_ascii=False))
        return 0
    code, message, details = _error(answer.body)
    click.echo(f"error[{code}] {message} (HTTP {answer.status})", err=True)
    for detail in details:
        if isinstance(detail, dict):
            where = detail.get("pointer") or "/"
            click.echo(f"  at {where}: {detail.get('message', '')}", err=True)
    return 1


def _error(body: Any) -> tuple[str, str, list[Any]]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "unknown", json.dumps(body)[:200], []
    details = error.get("details")
    return (
        str(error.get("code", "unknown")),
        str(error.get("message", "")),
        details if isinstance(details, list) else [],
    )


def _lines(head: bytes, stream: IO[bytes]) -> Iterator[tuple[bytes | None, int]]:
    """Each line of the input without its newline, and the bytes it took. A line longer than an
    event may be comes back as None, and is skipped over without being held in memory."""
    read = getattr(stream, "read1", stream.read)
    chunks = iter(lambda: read(CHUNK), b"")
    pending = bytearray()
    too_long = False
    taken = 0
    chunk = head
    while chunk:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            taken += len(piece)
            if not too_long:
                pending += piece
                if len(pending) > EVENT_BYTES:
                    too_long = True
                    pending.clear()
            if end < 0:
                break
            yield (None if too_long else bytes(pending)), taken + 1
            pending.clear()
            too_long, taken, start = False, 0, end + 1
        chunk = next(chunks, b"")
    if pending or too_long:
        yield (None if too_long else bytes(pending)), taken


class _Progress:
    """A rich progress bar on a terminal's stderr; nothing otherwise."""

    def __init__(self, size: int | None) -> None:
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task("sending", total=size)
        self._bar.start()

    def update(self, done: int, tally: Tally) -> None:
        if self._bar is not None and self._task is not None:
            description = f"accepted {tally.accepted:,}, rejected {tally.rejected:,}"
            self._bar.update(self._task, completed=done, description=description)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _send_lines(
    sidecar: Sidecar,
    lines: Iterator[tuple[bytes | None, int]],
    batch_size: int,
    size: int | None,
    source: str,
) -> Tally:
    tally = Tally()
    progress = _Progress(size)
    batch: list[tuple[int, bytes]] = []
    batch_bytes = 0
    done = 0
    try:
        for number, (line, taken) in enumerate(_numbered(lines, source), start=1):
            done += taken
            if line is None:
                tally.reject(number, "too_large", f"over the {EVENT_BYTES:,}-byte event limit")
                continue
            text = line.strip()
            if number == 1:
                text = text.removeprefix(b"\xef\xbb\xbf").strip()
            if not text:
                continue
            problem = _not_json(text)
            if problem is not None:
                tally.reject(number, "invalid_json", f"not JSON: {problem}")
                continue
            if batch and batch_bytes + len(text) + 1 > BATCH_BYTES:
                _post_batch(sidecar, batch, tally)
                batch, batch_bytes = [], 0
            batch.append((number, text))
            batch_bytes += len(text) + 1
            if len(batch) >= batch_size:
                _post_batch(sidecar, batch, tally)
                batch, batch_bytes = [], 0
                progress.update(done, tally)
        if batch:
            _post_batch(sidecar, batch, tally)
        progress.update(done, tally)
    except EnvironmentProblem as exc:
        so_far = f" (after {tally.accepted:,} accepted, {tally.rejected:,} rejected)"
        raise EnvironmentProblem(exc.message + so_far) from None
    finally:
        progress.stop()
    return tally


def _numbered(
    lines: Iterator[tuple[bytes | None, int]], source: str
) -> Iterator[tuple[bytes | None, int]]:
    try:
        yield from lines
    except OSError as exc:
        raise EnvironmentProblem(f"{_label(source)}: {exc.strerror or exc}") from None


def _not_json(text: bytes) -> str | None:
    try:
        json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8"
    except RecursionError:
        return "nested too deeply"
    except ValueError as exc:
        return str(exc)
    return None


def _post_batch(sidecar: Sidecar, batch: list[tuple[int, bytes]], tally: Tally) -> None:
    body = b'{"events":[' + b",".join(text for _, text in batch) + b"]}"
    answer = sidecar.post("/v1/events:batch", body)
    results = answer.body.get("results") if answer.status == 200 else None
    if not isinstance(results, list) or len(results) != len(batch):
        # The whole batch was refused (too large, not JSON...): every event in it is rejected.
        code, message, _ = _error(answer.body)
        for number, _text in batch:
            tally.reject(number, code, message)
        return
    for index, ((number, _text), result) in enumerate(zip(batch, results, strict=True)):
        if isinstance(result, dict) and result.get("http_status") in OK:
            tally.accepted += 1
            continue
        code, message, _ = _error(result)
        # The sidecar points into the batch (/events/<index>/data/...); a line is its own document.
        tally.reject(number, code, message.replace(f"/events/{index}/", "/", 1))


def _summary(tally: Tally) -> None:
    click.echo(f"accepted {tally.accepted}, rejected {tally.rejected}")
    for number, code, message in tally.problems:
        click.echo(f"line {number}: error[{code}] {message}")
    if tally.rejected > len(tally.problems):
        click.echo(f"... and {tally.rejected - len(tally.problems):,} more rejected")
    if any(code == "batch_not_allowed" for _, code, _ in tally.problems):
        click.echo("hint: events refused in a batch must be sent one at a time, one file each")
