"""The sidecar's answers as pydantic models, for its OpenAPI document only.

The routes build their JSON by hand (a model per answer would cost a validation per request on the
ingest path); these models say what that JSON is, and tests/runtime/test_contract.py holds every
answer of every operation to them with schemathesis."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from clarion.runtime.envelope import EventIn


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable code: invalid_json, invalid_data, not_found, ...")
    message: str
    details: list[dict[str, Any]] = Field(description="Usually a JSON pointer and a message each.")


class ErrorBody(BaseModel):
    """Every error of the API."""

    error: ErrorDetail


_ERRORS: dict[int, str] = {
    400: "The body is not JSON (or not valid Unicode).",
    401: "Missing or wrong bearer token (only when the sidecar runs with CLARION_TOKEN).",
    403: "Forbidden.",
    404: "No such thing.",
    409: "duplicate_contact or idempotency_conflict.",
    413: "The body is over the size limit.",
    422: "The request is not valid (error code and JSON pointers in the body).",
    503: "unavailable (the store cannot take it now) or shutting_down; retry after Retry-After.",
}


def errors(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the one error body. 401 is always there: any
    route but the open ones answers it when a token is set."""
    wanted = sorted({401, *statuses})
    return {
        status: {
            "model": ErrorBody,
            "description": descriptions.get(f"e{status}", _ERRORS[status]),
        }
        for status in wanted
    }


class Accepted(BaseModel):
    id: str
    status: Literal["accepted"]


class BatchItem(BaseModel):
    http_status: int = Field(description="What this event alone would have been answered.")
    id: str | None = None
    status: Literal["accepted"] | None = None
    error: ErrorDetail | None = None


class BatchAnswer(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItem]


class Attempt(BaseModel):
    number: int
    at: str | None
    result: str
    elapsed: float | None
    error: str | None


class Delivery(BaseModel):
    id: int
    recipient: str
    channel: str
    to: str | None = Field(description="Email addresses and phone numbers masked.")
    template: str | None
    status: str
    reason: str | None
    detail: str | None
    source: str | None
    attempts: int
    last_error: str | None
    due_at: str | None
    created_at: str | None
    sent_at: str | None
    attempt_log: list[Attempt]


class FlowRun(BaseModel):
    flow: str
    key: str | None
    status: str
    next_step: int
    due_at: str | None
    reason: str | None
    created_at: str | None


class EventAnswer(BaseModel):
    id: str
    type: str
    received_at: str | None
    table_digest: str
    event: dict[str, Any] = Field(description="The envelope as accepted, the contact masked.")
    deliveries: list[Delivery]
    flows: list[FlowRun]


class InboxItem(BaseModel):
    id: int
    title: str | None
    body: str
    link: str | None
    event_type: str
    event_id: str
    created_at: str | None
    read_at: str | None


class InboxPage(BaseModel):
    items: list[InboxItem]
    unread: int
    next_cursor: int | None


class Marked(BaseModel):
    marked: int
    unread: int


class ConsentHistory(BaseModel):
    channel: str
    granted: bool
    at: str | None
    source: str


class ContactAnswer(BaseModel):
    id: str
    email: str | None
    phone: str | None
    locale: str | None
    timezone: str | None
    devices: list[str]
    consent: dict[str, bool]
    history: list[ConsentHistory]
    created_at: str | None
    updated_at: str | None


class ConsentAnswer(BaseModel):
    id: str
    consent: dict[str, bool]


class TableSummary(BaseModel):
    digest: str
    format: str
    events: int
    channels: list[str]
    recipients: int
    targets: int
    routes: int
    customer_messages: int
    flows: int


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    digest: str


class InboxCount(BaseModel):
    recipient: str
    unread: int


class Inboxes(BaseModel):
    inboxes: list[InboxCount]


# Request bodies: the routes read them themselves (a body that is not JSON is a 400 of ours, not
# FastAPI's 422), so they are declared here rather than as parameters.
class Batch(BaseModel):
    events: list[EventIn] = Field(max_length=1000)


class MarkRead(BaseModel):
    ids: list[int] | None = Field(None, max_length=1000)
    all: Literal[True] | None = None


class ConsentChangeIn(BaseModel):
    consent: dict[str, bool]
    source: str = Field("api", min_length=1, max_length=100)


def json_body(*models: type[BaseModel], array_of: type[BaseModel] | None = None) -> dict[str, Any]:
    """`openapi_extra=` declaring a JSON request body that is any one of `models` (or an array
    of `array_of`). The models' schemas go to components through `request_schemas`."""
    options: list[dict[str, Any]] = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    if array_of is not None:
        options.append(
            {"type": "array", "items": {"$ref": f"#/components/schemas/{array_of.__name__}"}}
        )
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def request_schemas() -> dict[str, Any]:
    """Components for the request bodies above (and the models they refer to)."""
    out: dict[str, Any] = {}
    for model in (EventIn, Batch, MarkRead, ConsentChangeIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out
