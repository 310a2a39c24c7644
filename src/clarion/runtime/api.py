"""The sidecar's HTTP API (docs/http-api.md): JSON over HTTP, errors as
`{"error": {"code", "message", "details"}}`, never a 500 for bad input."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from clarion import __version__
from clarion.check.addresses import mask
from clarion.runtime import contract as c
from clarion.runtime.answers import error, iso, read_json
from clarion.runtime.envelope import EventIn, Rejection
from clarion.runtime.pages import add_pages
from clarion.runtime.people import add_people_routes
from clarion.runtime.service import Runtime
from clarion.runtime.store.sqlite import StoreError

log = logging.getLogger("clarion.api")

MAX_EVENT_BYTES = 256 * 1024
MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_BATCH_EVENTS = 1000
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/events"})
# The pages hold no data (their scripts read the API, which asks for the token): a browser can
# load them, and `?token=` makes their requests carry it.
OPEN_PREFIXES = ("/inbox/", "/events/", "/assets/")


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class BearerToken:
    """Plain ASGI, not BaseHTTPMiddleware: the check costs microseconds, not a task per request."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and path not in OPEN_PATHS
            and not path.startswith(OPEN_PREFIXES)
        ):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await error(401, "unauthorized", "a bearer token is required")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(runtime: Runtime, token: str | None = None, heartbeat: float = 15.0) -> FastAPI:
    app = FastAPI(
        title="Clarion sidecar",
        version=__version__,
        description="Accepts events, plans who gets what, dispatches through Apprise.",
    )
    _declare_request_bodies(app)

    if token is not None:
        app.add_middleware(BearerToken, token=token)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid_request", "the request is not valid", list(exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", "an internal error; it has been logged")

    async def accept_one(raw: Any) -> JSONResponse:
        if runtime.stopping:
            return _shutting_down()
        try:
            checked = runtime.check(raw)
        except Rejection as rejection:
            return JSONResponse(rejection.as_json(), rejection.status)
        try:
            status, answer = await asyncio.wrap_future(runtime.submit(checked))
        except Rejection as rejection:
            runtime.rejected(checked.event.type)
            return JSONResponse(rejection.as_json(), rejection.status)
        except StoreError as exc:
            log.error("store unavailable: event not accepted", extra={"reason": str(exc)})
            return _unavailable()
        runtime.accepted(checked, status)
        return JSONResponse(answer, status)

    @app.post(
        "/v1/events",
        status_code=202,
        summary="Accept one event",
        response_model=c.Accepted,
        responses={
            200: {"model": c.Accepted, "description": "The same event again: the first answer."},
            **c.errors(
                400,
                409,
                413,
                422,
                503,
                e422="unknown_event_type, invalid_data, invalid_event or batch_not_allowed.",
            ),
        },
        openapi_extra=c.json_body(EventIn),
    )
    async def post_event(request: Request) -> JSONResponse:
        try:
            raw = read_json(await _body(request, MAX_EVENT_BYTES))
        except _TooLarge:
            runtime.rejected(None)
            return error(413, "too_large", f"an event is at most {MAX_EVENT_BYTES:,} bytes")
        except ValueError as exc:
            runtime.rejected(None)
            return error(400, "invalid_json", f"the body is not JSON: {exc}")
        return await accept_one(raw)

    @app.post(
        "/v1/events:batch",
        summary="Accept up to 1000 events",
        response_model=c.BatchAnswer,
        responses=c.errors(400, 413, 422, 503, e422="The body is not a list of events."),
        openapi_extra=c.json_body(c.Batch, array_of=EventIn),
    )
    async def post_batch(request: Request) -> JSONResponse:
        if runtime.stopping:
            return _shutting_down()
        try:
            raw = read_json(await _body(request, MAX_BATCH_BYTES))
        except _TooLarge:
            return error(413, "too_large", f"a batch is at most {MAX_BATCH_BYTES:,} bytes")
        except ValueError as exc:
            return error(400, "invalid_json", f"the body is not JSON: {exc}")
        items = raw.get("events") if isinstance(raw, dict) else raw
        prefix: tuple[str, ...] = ("events",) if isinstance(raw, dict) else ()
        if not isinstance(items, list):
            return error(
                422, "invalid_event", 'a batch is {"events": [...]} or a JSON array of events'
            )
        if len(items) > MAX_BATCH_EVENTS:
            return error(413, "too_large", f"a batch holds at most {MAX_BATCH_EVENTS} events")
        results: list[dict[str, Any] | None] = [None] * len(items)
        checked_items = []
        for index, item in enumerate(items):
            try:
                checked = runtime.check(item, batch=True, prefix=(*prefix, index))
            except Rejection as rejection:
                results[index] = {"http_status": rejection.status, **rejection.as_json()}
                continue
            checked_items.append((index, checked))
        if checked_items:
            # One store job, one commit: each event in its own savepoint inside it.
            try:
                answers = await asyncio.wrap_future(
                    runtime.submit_many([checked for _, checked in checked_items])
                )
            except StoreError as exc:
                log.error("store unavailable: batch not accepted", extra={"reason": str(exc)})
                return _unavailable()
            for (index, checked), answer in zip(checked_items, answers, strict=True):
                if isinstance(answer, Rejection):
                    runtime.rejected(checked.event.type)
                    results[index] = {"http_status": answer.status, **answer.as_json()}
                else:
                    status, body = answer
                    runtime.accepted(checked, status)
                    results[index] = {"http_status": status, **body}
        accepted = sum(1 for r in results if r and r["http_status"] in (200, 202))
        return JSONResponse(
            {"accepted": accepted, "rejected": len(items) - accepted, "results": results}, 200
        )

    @app.get(
        "/v1/events/{event_id:path}",
        summary="An event and its deliveries",
        response_model=c.EventAnswer,
        responses=c.errors(404, 422),
    )
    async def get_event(event_id: str) -> JSONResponse:
        record = await asyncio.to_thread(runtime.store.event, event_id)
        if record is None:
            return error(404, "not_found", f"no event {event_id!r}")
        deliveries = [_public(d) for d in record.deliveries]
        envelope = dict(record.envelope)
        if isinstance(envelope.get("contact"), dict):
            envelope["contact"] = _masked_contact(envelope["contact"])
        return JSONResponse(
            {
                "id": record.id,
                "type": record.type,
                "received_at": iso(record.received_at),
                "table_digest": record.table_digest,
                "event": envelope,
                "deliveries": deliveries,
                "flows": [
                    {**run, "due_at": iso(run["due_at"]), "created_at": iso(run["created_at"])}
                    for run in record.runs
                ],
            }
        )

    add_people_routes(app, runtime, token, heartbeat)
    add_pages(app, runtime)

    @app.get(
        "/v1/table",
        summary="The routing table being served",
        response_model=c.TableSummary,
        responses=c.errors(),
    )
    async def get_table() -> JSONResponse:
        return JSONResponse(runtime.table().summary())

    @app.get("/healthz", summary="Liveness", response_model=c.Health)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        summary="Readiness",
        response_model=c.Ready,
        responses={503: {"model": c.ErrorBody, "description": "Not ready."}},
    )
    async def readyz() -> JSONResponse:
        if runtime.stopping:
            return error(503, "not_ready", "shutting down: new events are refused")
        try:
            await asyncio.to_thread(runtime.store.ping)
        except StoreError as exc:
            return error(503, "not_ready", f"the store is not reachable: {exc}")
        try:
            await asyncio.to_thread(runtime.store.check_writable)
        except StoreError as exc:
            return error(503, "not_ready", f"the store cannot write: {exc}")
        if not runtime.started:
            return error(503, "not_ready", "the dispatcher has not started")
        return JSONResponse({"status": "ready", "digest": runtime.table().digest})

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "The Prometheus text format.",
                "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            },
            **c.errors(),
        },
    )
    async def metrics() -> Response:
        data = await asyncio.to_thread(generate_latest, runtime.metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return app


def _declare_request_bodies(app: FastAPI) -> None:
    """The routes read their bodies themselves; their OpenAPI document still says what they take."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(
                c.request_schemas()
            )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _unavailable() -> JSONResponse:
    response = error(503, "unavailable", "the store cannot keep the event now; retry")
    response.headers["Retry-After"] = "5"
    return response


def _shutting_down() -> JSONResponse:
    response = error(
        503,
        "shutting_down",
        "the sidecar is stopping; send the event again (same id) after Retry-After",
    )
    response.headers["Retry-After"] = "1"
    return response


def _public(row: dict[str, Any]) -> dict[str, Any]:
    to = row["address"]
    if to is not None and row["kind"] in ("email", "phone"):
        to = mask(to)
    status = "planned" if row["status"] == "pending" else row["status"]
    if row["status"] == "pending" and row["reason"] == "quiet_hours":
        status = "scheduled"  # held for the end of quiet hours
    return {
        "id": row["id"],
        "recipient": row["recipient"],
        "channel": row["channel"],
        "to": to,
        "template": row["template"],
        "status": status,
        "reason": row["reason"],
        "detail": row["detail"],
        "source": row["source"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "due_at": iso(row["due_at"]),
        "created_at": iso(row["created_at"]),
        "sent_at": iso(row["sent_at"]),
        "attempt_log": [{**a, "at": iso(a["at"])} for a in row.get("attempt_log", [])],
        # a digest message, or a delivery folded into one (`digested`): the digest's id
        **({"digest_id": row["digest_id"]} if row.get("digest_id") is not None else {}),
    }


def _masked_contact(contact: dict[str, Any]) -> dict[str, Any]:
    out = dict(contact)
    for key in ("email", "phone"):
        if isinstance(out.get(key), str):
            out[key] = mask(out[key])
    if "devices" in out:
        out["devices"] = [
            {"device": d.get("device")} for d in out["devices"] if isinstance(d, dict)
        ]
    return out
