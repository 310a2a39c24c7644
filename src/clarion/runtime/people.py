"""The API for people: the team's in-app inbox (list, mark read, live stream) and customers'
consent (read with its history, change channel by channel)."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from clarion.check.addresses import mask
from clarion.runtime import contract as c
from clarion.runtime import quiet
from clarion.runtime.answers import error, iso, read_json
from clarion.runtime.service import Runtime
from clarion.runtime.store.base import ConsentChange, Tx

PAGE = 50
MAX_IDS = 1000


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "body": row["body"],
        "link": row["link"],
        "event_type": row["event_type"],
        "event_id": row["event_id"],
        "created_at": iso(row["created_at"]),
        "read_at": iso(row["read_at"]),
    }


def add_people_routes(
    app: FastAPI, runtime: Runtime, token: str | None, heartbeat: float = 15.0
) -> None:
    def has_inbox(recipient: str) -> bool:
        return recipient in runtime.table().inbox_recipients

    def unknown(recipient: str) -> JSONResponse:
        return error(404, "not_found", f"no in-app inbox for recipient {recipient!r}")

    @app.get(
        "/v1/inbox/{recipient}",
        summary="A recipient's in-app inbox, newest first",
        response_model=c.InboxPage,
        responses=c.errors(404, 422),
    )
    async def inbox(
        recipient: str,
        unread: bool = False,
        cursor: int | None = Query(None, ge=1, description="`next_cursor` of the previous page"),
        limit: int = Query(PAGE, ge=1, le=200),
    ) -> JSONResponse:
        if not has_inbox(recipient):
            return unknown(recipient)
        store = runtime.store
        rows = await asyncio.to_thread(
            functools.partial(
                store.inbox, recipient, unread=unread, before=cursor, after=None, limit=limit + 1
            )
        )
        more = len(rows) > limit
        rows = rows[:limit]
        count = await asyncio.to_thread(store.unread_count, recipient)
        return JSONResponse(
            {
                "items": [_item(r) for r in rows],
                "unread": count,
                "next_cursor": rows[-1]["id"] if more and rows else None,
            }
        )

    @app.post(
        "/v1/inbox/{recipient}/read",
        summary="Mark items read: ids, or all",
        response_model=c.Marked,
        responses=c.errors(400, 404, 422),
        openapi_extra=c.json_body(c.MarkRead),
    )
    async def mark_read(recipient: str, request: Request) -> JSONResponse:
        if not has_inbox(recipient):
            return unknown(recipient)
        try:
            body = read_json(await request.body())
        except ValueError:
            return error(400, "invalid_json", "the body is not JSON")
        ids: list[int] | None
        if isinstance(body, dict) and body.get("all") is True and set(body) == {"all"}:
            ids = None
        elif (
            isinstance(body, dict)
            and set(body) == {"ids"}
            and isinstance(body["ids"], list)
            and len(body["ids"]) <= MAX_IDS
            and all(_an_id(i) for i in body["ids"])
        ):
            ids = body["ids"]
        else:
            return error(
                422,
                "invalid_request",
                'send {"ids": [1, 2]} (at most 1000) or {"all": true}',
                [{"pointer": "", "message": "expected ids or all"}],
            )
        now = runtime.clock()
        marked = await asyncio.wrap_future(
            runtime.store.submit(functools.partial(_mark, recipient=recipient, ids=ids, now=now))
        )
        runtime.inbox.publish(recipient)
        count = await asyncio.to_thread(runtime.store.unread_count, recipient)
        return JSONResponse({"marked": marked, "unread": count})

    @app.get(
        "/v1/inbox/{recipient}/stream",
        summary="Server-Sent Events: new items and the unread count, live",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "An endless stream: `item` and `unread` events, heartbeats.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **c.errors(404, 422),
        },
    )
    async def stream(recipient: str, request: Request, after: int | None = None) -> Any:
        if not has_inbox(recipient):
            return unknown(recipient)
        given = request.headers.get("last-event-id") or after
        try:
            last = int(given) if given is not None else None
        except ValueError:
            return error(422, "invalid_request", "Last-Event-ID must be an item id")
        if last is None:  # a new stream starts after what is there now
            newest = await asyncio.to_thread(
                functools.partial(
                    runtime.store.inbox, recipient, unread=False, before=None, after=None, limit=1
                )
            )
            last = newest[0]["id"] if newest else 0
        return StreamingResponse(
            _events(runtime, recipient, last, request, heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/v1/contacts/{contact_id}",
        summary="A customer's consent, with its history",
        response_model=c.ContactAnswer,
        responses=c.errors(
            403, 404, 422, e403="`reveal=true` without the token: addresses stay masked."
        ),
    )
    async def contact(contact_id: str, request: Request, reveal: bool = False) -> JSONResponse:
        if reveal:
            given = request.headers.get("authorization", "").encode()
            if token is None or not hmac.compare_digest(given, f"Bearer {token}".encode()):
                return error(
                    403, "forbidden", "addresses are shown only to requests with CLARION_TOKEN"
                )
        found = await asyncio.to_thread(runtime.store.contact, contact_id)
        if found is None:
            return error(404, "not_found", f"no contact {contact_id!r}")
        row, history = found
        show = (lambda v: v) if reveal else mask
        return JSONResponse(
            {
                "id": row.id,
                "email": show(row.email) if row.email else None,
                "phone": show(row.phone_norm or row.phone) if row.phone else None,
                "locale": row.locale,
                "timezone": row.timezone,
                "quiet_hours": quiet.shown(row.quiet_hours),
                "devices": [name for name, _ in row.devices],
                "consent": dict(sorted(row.consent.items())),
                "history": [
                    {
                        "channel": c.channel,
                        "granted": c.granted,
                        "at": iso(c.at),
                        "source": c.source,
                    }
                    for c in history
                ],
                "created_at": iso(row.created_at),
                "updated_at": iso(row.updated_at),
            }
        )

    @app.put(
        "/v1/contacts/{contact_id}/consent",
        summary="Change consent, channel by channel",
        response_model=c.ConsentAnswer,
        responses=c.errors(400, 404, 422),
        openapi_extra=c.json_body(c.ConsentChangeIn),
    )
    async def change_consent(contact_id: str, request: Request) -> JSONResponse:
        try:
            body = read_json(await request.body())
        except ValueError:
            return error(400, "invalid_json", "the body is not JSON")
        if not isinstance(body, dict):
            return error(
                422, "invalid_request", 'send {"consent": {"sms": false}, "source": "..."}'
            )
        if "consent" in body:
            wanted, source = body.get("consent"), body.get("source", "api")
            extra = sorted(set(body) - {"consent", "source"})
            prefix = "/consent"
        else:
            wanted, source, extra, prefix = body, "api", [], ""
        problems = [{"pointer": f"/{k}", "message": "unknown key"} for k in extra]
        if not isinstance(wanted, dict) or not wanted:
            problems.append({"pointer": prefix or "/", "message": "expected channel: true|false"})
        elif not isinstance(source, str) or not 0 < len(source) <= 100:
            problems.append({"pointer": "/source", "message": "a string of 1 to 100 characters"})
        else:
            channels = runtime.table().table.channels
            for channel, granted in wanted.items():
                if channel not in channels:
                    problems.append(
                        {"pointer": f"{prefix}/{channel}", "message": "unknown channel"}
                    )
                elif not isinstance(granted, bool):
                    problems.append({"pointer": f"{prefix}/{channel}", "message": "true or false"})
        if problems:
            return error(422, "invalid_request", problems[0]["message"], problems)
        assert isinstance(wanted, dict)
        now = runtime.clock()
        changes = [
            ConsentChange(c, bool(g), now, f"api:{source}") for c, g in sorted(wanted.items())
        ]
        done = await asyncio.wrap_future(
            runtime.store.submit(
                functools.partial(_consent, contact_id=contact_id, changes=changes)
            )
        )
        if done is None:
            return error(404, "not_found", f"no contact {contact_id!r}")
        return JSONResponse({"id": contact_id, "consent": dict(sorted(done.items()))})


def _mark(tx: Tx, recipient: str, ids: list[int] | None, now: float) -> int:
    return tx.mark_read(recipient, ids, now)


def _consent(tx: Tx, contact_id: str, changes: list[ConsentChange]) -> dict[str, bool] | None:
    stored = tx.contact(contact_id)
    if stored is None:
        return None
    effective = [c for c in changes if stored.consent.get(c.channel) != c.granted]
    tx.change_consent(contact_id, effective)
    return {**stored.consent, **{c.channel: c.granted for c in changes}}


async def _events(
    runtime: Runtime, recipient: str, last: int, request: Request, heartbeat: float
) -> AsyncIterator[str]:
    subscription = runtime.inbox.subscribe(recipient)
    store = runtime.store
    try:
        count = await asyncio.to_thread(store.unread_count, recipient)
        yield f"retry: 2000\nevent: unread\ndata: {json.dumps({'unread': count})}\n\n"
        while True:
            subscription.changed.clear()
            rows = await asyncio.to_thread(
                functools.partial(
                    store.inbox, recipient, unread=False, before=None, after=last, limit=100
                )
            )
            for row in rows:
                last = row["id"]
                yield f"id: {last}\nevent: item\ndata: {json.dumps(_item(row))}\n\n"
            fresh = await asyncio.to_thread(store.unread_count, recipient)
            if fresh != count or rows:
                count = fresh
                yield f"event: unread\ndata: {json.dumps({'unread': count})}\n\n"
            if len(rows) == 100:
                continue
            try:
                await asyncio.wait_for(subscription.changed.wait(), timeout=heartbeat)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": heartbeat\n\n"
    finally:
        runtime.inbox.unsubscribe(subscription)


def _an_id(value: object) -> bool:
    """An inbox item id: a positive integer that fits a 64-bit column on every store."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63
