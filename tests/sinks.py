"""Real loopback servers that Apprise can deliver to, for tests and benchmarks.

Nothing here mocks Apprise: each sink is a real server on 127.0.0.1 with a
port chosen by the OS, and Apprise talks to it over a real socket.

``HttpSink``
    A threaded HTTP server for Apprise's ``json://`` and ``form://`` plugins
    (and anything else that POSTs).  Every request is recorded as a
    :class:`Received`.  Knobs simulate a provider: ``delay``, ``fail_first``,
    ``fail_rate``, ``hang_rate``/``hang_seconds`` and ``status``.

``SmtpSink``
    An ``aiosmtpd`` server for Apprise's ``mailto://`` plugin.  Every message
    is recorded as a :class:`ReceivedMail`, parsed with the stdlib ``email``
    package.

Both are context managers, both have ``wait_for(count, timeout)``, and both
come as pytest fixtures (``http_sink``, ``smtp_sink``) at the bottom of this
module.

Usage::

    with HttpSink(delay=0.05) as sink:
        obj = apprise.Apprise.instantiate(sink.apprise_url("/hook"))
        obj.request_rate_per_sec = 0
        assert obj.notify(title="t", body="b")
        (got,) = sink.wait_for(1)
        assert got.json["message"] == "b"
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Literal, Self, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

__all__ = [
    "Attachment",
    "HttpSink",
    "Received",
    "ReceivedMail",
    "SinkTimeout",
    "SmtpSink",
    "http_sink",
    "smtp_sink",
]

LOOPBACK = "127.0.0.1"


class SinkTimeout(AssertionError):
    """``wait_for`` gave up: fewer requests or messages arrived than expected.

    An ``AssertionError`` so pytest shows it as a plain test failure.
    """


@dataclass(frozen=True)
class Attachment:
    """A file that arrived with a request or an email."""

    filename: str | None
    content_type: str
    data: bytes


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One HTTP request as the sink saw it.

    ``headers`` has lower-cased names.  ``json`` is the decoded body when the
    body is JSON (Apprise ``json://``: ``title``, ``message``, ``type``,
    ``version``, ``attachments``), else ``None``.  ``form`` holds the fields
    of an urlencoded or multipart body (Apprise ``form://``), else ``None``.
    ``attachments`` are decoded from either (JSON ``attachments`` entries are
    base64; multipart file parts are raw).  ``status`` is what the sink
    answered, ``None`` for a request it made hang; ``outcome`` is one of
    ``"ok"``, ``"fail"`` (answered 500 by ``fail_first``/``fail_rate``) or
    ``"hang"``.  ``at`` is ``time.monotonic()`` on arrival.
    """

    index: int
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any
    form: dict[str, str] | None
    attachments: tuple[Attachment, ...]
    status: int | None
    outcome: Literal["ok", "fail", "hang"]
    at: float

    @property
    def title(self) -> str | None:
        """``title`` from a JSON or form body (Apprise's field name)."""
        return self._field("title")

    @property
    def message(self) -> str | None:
        """``message`` from a JSON or form body (Apprise's field name)."""
        return self._field("message")

    def _field(self, name: str) -> str | None:
        if isinstance(self.json, dict):
            value = self.json.get(name)
            return value if isinstance(value, str) else None
        if self.form is not None:
            return self.form.get(name)
        return None


FailFirstBy = Literal["request", "path"]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog (5) drops connections under a burst.
    request_queue_size = 1024
    sink: HttpSink

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up (hang_rate) makes the answer
        # fail with a broken pipe; that is expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _QuietServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        status, wait = self.server.sink._record(self, body)
        if wait > 0 and self.server.sink._stopping.wait(wait):
            self.close_connection = True
            return
        if status is None:  # a hang that outlived the client; nothing to say
            self.close_connection = True
            return
        payload = b'{"ok": true}' if status < 400 else b'{"ok": false}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def _parse_body(
    content_type: str, body: bytes
) -> tuple[Any, dict[str, str] | None, tuple[Attachment, ...]]:
    """(json, form, attachments) for a request body."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return None, {k: v[-1] for k, v in fields.items()}, ()
    if ctype.startswith("multipart/"):
        return None, *_parse_multipart(content_type, body)
    if ctype == "application/json" or ctype.endswith("+json") or body[:1] in (b"{", b"["):
        try:
            data = json.loads(body)
        except ValueError:
            return None, None, ()
        return data, None, _json_attachments(data)
    return None, None, ()


def _json_attachments(data: Any) -> tuple[Attachment, ...]:
    if not isinstance(data, dict) or not isinstance(data.get("attachments"), list):
        return ()
    found: list[Attachment] = []
    for item in data["attachments"]:
        if not isinstance(item, dict):
            continue
        try:
            raw = base64.b64decode(item.get("base64") or "", validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        found.append(
            Attachment(
                filename=item.get("filename"),
                content_type=item.get("mimetype") or "application/octet-stream",
                data=raw,
            )
        )
    return tuple(found)


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], tuple[Attachment, ...]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.message_from_bytes(head + body, policy=email.policy.default)
    fields: dict[str, str] = {}
    files: list[Attachment] = []
    for part in msg.iter_parts() if isinstance(msg, EmailMessage) else ():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        data = part.get_payload(decode=True)
        raw = data if isinstance(data, bytes) else b""
        if filename is not None:
            files.append(Attachment(filename, part.get_content_type(), raw))
        elif isinstance(name, str):
            fields[name] = raw.decode(part.get_content_charset() or "utf-8", "replace")
    return fields, tuple(files)


R = TypeVar("R")


class _Recorder(Generic[R]):
    """What both sinks share: a list of what arrived, under a condition to wait on."""

    default_key = "path"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._received: list[R] = []

    @property
    def received(self) -> list[R]:
        """A snapshot (a new list) of everything so far, in arrival order."""
        with self._cond:
            return list(self._received)

    def __len__(self) -> int:
        with self._cond:
            return len(self._received)

    def __iter__(self) -> Iterator[R]:
        return iter(self.received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[R]:
        """Block until at least ``count`` arrived; return them all. Raises
        :class:`SinkTimeout` (an ``AssertionError``) after ``timeout`` seconds, saying what came."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout):
                raise SinkTimeout(self._timeout_message(count, timeout))
            return list(self._received)

    def count_by(self, key: str | Callable[[R], Hashable] | None = None) -> Counter[Hashable]:
        """Count by an attribute name or by a function of what arrived."""
        name = key or self.default_key
        get: Callable[[R], Hashable] = name if callable(name) else (lambda r: getattr(r, name))
        return Counter(get(r) for r in self.received)

    def _timeout_message(self, count: int, timeout: float) -> str:
        raise NotImplementedError


class HttpSink(_Recorder[Received]):
    """A threaded HTTP server on 127.0.0.1 that records what it receives.

    Every knob can be given to the constructor or assigned later (between
    or even during sends; each request reads the current values):

    ``delay``
        Seconds to wait before answering every request.
    ``status``
        The status of a normal answer (default 200).
    ``fail_first``
        Answer 500 to the first N requests of each identity.  With
        ``fail_first_by="request"`` (the default) the identity is
        method + path + body, so every distinct notification fails N times
        and then succeeds, whatever order concurrent sends arrive in: what
        retry tests need.  With ``fail_first_by="path"`` it is the path
        alone: the first N requests to each path fail.
    ``fail_rate``
        Fraction of the remaining requests answered 500, drawn from a
        ``random.Random(seed)``.
    ``hang_rate``, ``hang_seconds``
        Fraction of requests that get no answer for ``hang_seconds`` (make it
        longer than the client's read timeout, e.g. Apprise's ``?rto=``), then
        the connection is dropped.  ``stop()`` releases hung requests at once.

    A request is recorded when it arrives, before any delay, so
    ``wait_for(n)`` returns once n requests have been seen.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        status: int = 200,
        fail_first: int = 0,
        fail_first_by: FailFirstBy = "request",
        fail_rate: float = 0.0,
        hang_rate: float = 0.0,
        hang_seconds: float = 5.0,
        seed: int = 0,
    ) -> None:
        self.delay = delay
        self.status = status
        self.fail_first = fail_first
        self.fail_first_by: FailFirstBy = fail_first_by
        self.fail_rate = fail_rate
        self.hang_rate = hang_rate
        self.hang_seconds = hang_seconds
        self._rng = random.Random(seed)
        super().__init__()
        self._seen: Counter[Hashable] = Counter()
        self._stopping = threading.Event()
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("HttpSink is already running")
        self._stopping.clear()
        server = _QuietServer((LOOPBACK, 0), _Handler)
        server.sink = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"HttpSink:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes delayed and hung handlers
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("HttpSink is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{LOOPBACK}:{self.port}"

    def apprise_url(self, path: str = "/hook", scheme: str = "json", **params: object) -> str:
        """An Apprise URL for this sink, e.g. ``json://127.0.0.1:PORT/hook``.

        ``scheme`` is an Apprise plugin that speaks plain HTTP (``json``,
        ``form``, ``xml``).  ``params`` become the query string, e.g.
        ``rto=0.2`` (read timeout) or ``method="PUT"``.
        """
        if not path.startswith("/"):
            path = "/" + path
        query = f"?{urlencode({k: str(v) for k, v in params.items()})}" if params else ""
        return f"{scheme}://{LOOPBACK}:{self.port}{path}{query}"

    # -- what arrived ------------------------------------------------------

    def _timeout_message(self, count: int, timeout: float) -> str:
        paths = Counter(r.path for r in self._received)
        return (
            f"HttpSink at {self.url}: expected {count} request(s) within "
            f"{timeout:g}s, got {len(self._received)}"
            + (f" (by path: {dict(paths)})" if paths else "")
        )

    def clear(self) -> None:
        """Forget what arrived, and the ``fail_first`` counts."""
        with self._cond:
            self._received.clear()
            self._seen.clear()

    # -- internals ---------------------------------------------------------

    def _record(self, handler: _Handler, body: bytes) -> tuple[int | None, float]:
        """Record a request; return (status to answer or None, seconds to wait)."""
        now = time.monotonic()
        split = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        parsed_json, form, attachments = _parse_body(headers.get("content-type", ""), body)
        identity: Hashable = (
            split.path if self.fail_first_by == "path" else (handler.command, split.path, body)
        )
        with self._cond:
            self._seen[identity] += 1
            outcome: Literal["ok", "fail", "hang"] = "ok"
            if self._seen[identity] <= self.fail_first:
                outcome = "fail"
            elif self.hang_rate and self._rng.random() < self.hang_rate:
                outcome = "hang"
            elif self.fail_rate and self._rng.random() < self.fail_rate:
                outcome = "fail"
            status = {"ok": self.status, "fail": 500, "hang": None}[outcome]
            wait = self.hang_seconds if outcome == "hang" else self.delay
            self._received.append(
                Received(
                    index=len(self._received),
                    method=handler.command,
                    path=split.path,
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers=headers,
                    body=body,
                    json=parsed_json,
                    form=form,
                    attachments=attachments,
                    status=status,
                    outcome=outcome,
                    at=now,
                )
            )
            self._cond.notify_all()
        return status, wait


# ---------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP sink saw it.

    ``mail_from``/``rcpt_tos`` are the SMTP envelope; ``message`` is the
    parsed ``EmailMessage`` (``email.policy.default``) for anything else,
    e.g. ``mail.message["From"]``.
    """

    index: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    subject: str
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    accepted: bool
    at: float = field(compare=False)


def _parse_mail(
    raw: bytes,
) -> tuple[EmailMessage, str | None, str | None, tuple[Attachment, ...]]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text = html = None
    part = msg.get_body(preferencelist=("plain",))
    if part is not None:
        text = str(part.get_content())
    part = msg.get_body(preferencelist=("html",))
    if part is not None:
        html = str(part.get_content())
    files: list[Attachment] = []
    for att in msg.iter_attachments():
        data = att.get_payload(decode=True)
        files.append(
            Attachment(
                filename=att.get_filename(),
                content_type=att.get_content_type(),
                data=data if isinstance(data, bytes) else b"",
            )
        )
    return msg, text, html, tuple(files)


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay > 0:
            await asyncio.sleep(self.sink.delay)
        return self.sink._record(envelope)


def _controller_class() -> type[Any]:
    from aiosmtpd.controller import Controller

    class _PortZeroController(Controller):
        """Binds to port 0 and learns the port the OS chose (no race).

        aiosmtpd 1.4 cannot do this itself (its start-up probe would connect
        to port 0), so this overrides its ``_create_server`` hook.
        """

        def _create_server(self) -> Any:
            async def bind() -> asyncio.AbstractServer:
                server = await self.loop.create_server(
                    self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
                )
                self.port = server.sockets[0].getsockname()[1]
                return server

            return bind()

    return _PortZeroController


class SmtpSink(_Recorder[ReceivedMail]):
    """An ``aiosmtpd`` SMTP server on 127.0.0.1 (no TLS, no auth).

    ``fail_first``: the first N messages are refused with ``451`` (a
    temporary failure; Apprise's ``notify()`` then returns ``False``).
    ``delay``: seconds to wait before accepting each message.  Both can be
    assigned at run time.
    """

    default_key = "subject"

    def __init__(self, *, fail_first: int = 0, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.delay = delay
        super().__init__()
        self._controller: Any = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        if self._controller is not None:
            raise RuntimeError("SmtpSink is already running")
        controller = _controller_class()(
            _SmtpHandler(self), hostname=LOOPBACK, port=0, ready_timeout=5.0
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("SmtpSink is not running")
        return int(self._controller.port)

    @property
    def host(self) -> str:
        return LOOPBACK

    def apprise_url(self, sender: str = "billing@example.com", **params: object) -> str:
        """A ``mailto://`` URL that makes Apprise send here in plain SMTP.

        ``mailto://127.0.0.1:PORT?from=billing%40example.com&to={to}``: the
        ``mailto`` scheme (not ``mailtos``) defaults to ``mode=insecure``
        (no TLS), and without a user and password Apprise does not log in.
        ``{to}`` is left for the caller: ``url.format(to="ann@example.com")``
        (several: comma-separated).  ``params`` add query items, e.g.
        ``format="text"`` for a plain-text-only email.
        """
        query = urlencode(
            {"from": sender, "mode": "insecure", **{k: str(v) for k, v in params.items()}}
        )
        return f"mailto://{LOOPBACK}:{self.port}?{query}&to={{to}}"

    # -- what arrived ------------------------------------------------------

    def _timeout_message(self, count: int, timeout: float) -> str:
        # Refused messages (``fail_first``) count too: check ``accepted``.
        return (
            f"SmtpSink at {LOOPBACK}:{self.port}: expected {count} message(s) "
            f"within {timeout:g}s, got {len(self._received)}"
            + (f" (to: {[m.rcpt_tos for m in self._received]})" if self._received else "")
        )

    def clear(self) -> None:
        with self._cond:
            self._received.clear()

    # -- internals ---------------------------------------------------------

    def _record(self, envelope: Any) -> str:
        raw = envelope.original_content or b""
        message, text, html, attachments = _parse_mail(raw)
        with self._cond:
            accepted = len(self._received) >= self.fail_first
            self._received.append(
                ReceivedMail(
                    index=len(self._received),
                    mail_from=str(envelope.mail_from or ""),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    raw=raw,
                    message=message,
                    subject=str(message.get("Subject", "")),
                    text=text,
                    html=html,
                    attachments=attachments,
                    accepted=accepted,
                    at=time.monotonic(),
                )
            )
            self._cond.notify_all()
        return "250 OK" if accepted else "451 4.3.0 Try again later (SmtpSink.fail_first)"


# ---------------------------------------------------------------------------
# pytest fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """A running :class:`HttpSink` with default knobs; set them in the test."""
    with HttpSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running :class:`SmtpSink`."""
    with SmtpSink() as sink:
        yield sink
