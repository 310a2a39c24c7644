"""The sidecar's own web pages (docs/inbox.md): a recipient's in-app inbox, an event's deliveries
with why each skipped one was not sent, and an index linking them.

The pages are static files from `clarion/runtime/web/`: the routes here only serve them; the
recipient or event id comes from the URL and the page's JavaScript reads the JSON API
(`/v1/inbox/...`, `/v1/events/...`). The one JSON route added here, `GET /v1/inboxes`, lists the
recipients that have an in-app inbox, which the index needs and `/v1/table` does not say."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from clarion.runtime import contract as c
from clarion.runtime.answers import error
from clarion.runtime.service import Runtime

WEB = Path(str(files("clarion.runtime").joinpath("web")))

# Served as they are; nothing else under web/ (or outside it) is reachable.
ASSETS: dict[str, str] = {
    "app.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "index.js": "text/javascript; charset=utf-8",
    "inbox.js": "text/javascript; charset=utf-8",
    "event.js": "text/javascript; charset=utf-8",
}

# Same-origin only: no CDN, no fonts, no inline script; `data:` for the empty favicon.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a ?token= in the URL must not leak through links
    "Cache-Control": "no-cache",
}


def _page(name: str) -> Response:
    return FileResponse(WEB / name, media_type="text/html; charset=utf-8", headers=HEADERS)


def add_pages(app: FastAPI, runtime: Runtime) -> None:
    """Add `/`, `/inbox/{recipient}`, `/events/{id}`, their assets and `GET /v1/inboxes`."""

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return _page("index.html")

    @app.get("/inbox/{recipient}", include_in_schema=False)
    async def inbox_page(recipient: str) -> Response:
        return _page("inbox.html")

    @app.get("/events", include_in_schema=False)
    async def find_event(id: str = "") -> Response:
        """The index's look-up form (works without JavaScript): `?id=X` -> `/events/X`."""
        wanted = id.strip()
        if not wanted:
            return RedirectResponse("/", status_code=303)
        return RedirectResponse(f"/events/{quote(wanted, safe='')}", status_code=303)

    @app.get("/events/{event_id:path}", include_in_schema=False)
    async def event_page(event_id: str) -> Response:
        return _page("event.html")

    @app.get("/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media = ASSETS.get(name)
        if media is None:
            return error(404, "not_found", "no such asset")
        return FileResponse(WEB / name, media_type=media, headers=HEADERS)

    @app.get(
        "/v1/inboxes",
        summary="The recipients with an in-app inbox, with unread counts",
        response_model=c.Inboxes,
        responses=c.errors(),
    )
    async def inboxes() -> JSONResponse:
        names = sorted(runtime.table().inbox_recipients)
        counts = await asyncio.to_thread(
            lambda: [runtime.store.unread_count(name) for name in names]
        )
        return JSONResponse(
            {
                "inboxes": [
                    {"recipient": name, "unread": count}
                    for name, count in zip(names, counts, strict=True)
                ]
            }
        )
