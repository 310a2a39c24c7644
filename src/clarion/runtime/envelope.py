"""The event envelope of `POST /v1/events`, and the rejection codes of scenarios.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

MAX_ID = 200


def _no_nul(value: str) -> str:
    # Ids and contact fields are stored as text, and PostgreSQL's text cannot hold U+0000: it is
    # refused here, on every store alike, rather than failing at the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(_Model):
    device: Text = Field(min_length=1, max_length=MAX_ID, description="Device name.")
    url: Text = Field(min_length=1, max_length=2000, description="The device's Apprise URL.")


_HHMM = r"^([01]?\d|2[0-3]):[0-5]\d$"


class QuietHoursIn(_Model):
    """A contact's own quiet hours, local times in their time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: str = Field(alias="from", pattern=_HHMM, description="HH:MM the window opens.")
    to: str = Field(pattern=_HHMM, description="HH:MM the window closes.")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursIn:
        if _minutes(self.from_) == _minutes(self.to):
            raise ValueError("quiet hours must end at another time than they start")
        return self


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class ContactIn(_Model):
    """The customer an event is about."""

    id: Text = Field(min_length=1, max_length=MAX_ID)
    email: Text | None = Field(None, max_length=320)
    phone: Text | None = Field(None, max_length=40)
    name: Text | None = Field(None, max_length=200)
    locale: Text | None = Field(None, max_length=35)
    timezone: Text | None = Field(None, max_length=64)
    consent: dict[str, bool] | None = Field(None, description="Consent changes, by channel.")
    devices: list[Device] | None = Field(None, max_length=20, description="Push devices.")
    quiet_hours: QuietHoursIn | Literal[False] | None = Field(
        None,
        description="The contact's own quiet hours (`{from, to}`), or false for none; "
        "replaces `defaults.quiet_hours` for them from this event on.",
    )


class EventIn(_Model):
    """One event: `id` is the idempotency key."""

    type: Text = Field(min_length=1, max_length=MAX_ID)
    id: Text = Field(min_length=1, max_length=MAX_ID)
    occurred_at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    contact: ContactIn | None = None


@dataclass
class Rejection(Exception):
    """An event refused with a fixed code: unknown_event_type, invalid_data, duplicate_contact,
    batch_not_allowed, invalid_event, idempotency_conflict."""

    code: str
    message: str
    status: int = 422
    details: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def pointer(path: tuple[Any, ...] | list[Any]) -> str:
    """RFC 6901 JSON pointer."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def parse_event(raw: Any, prefix: tuple[Any, ...] = ()) -> EventIn:
    """A validated envelope, or a Rejection naming the JSON pointer of each bad field."""
    if not isinstance(raw, dict):
        raise Rejection(
            "invalid_event",
            "an event is a JSON object",
            details=[{"pointer": pointer(prefix), "message": "expected an object"}],
        )
    try:
        return EventIn.model_validate(raw)
    except ValidationError as exc:
        details = [
            {"pointer": pointer((*prefix, *error["loc"])), "message": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        first = details[0]
        raise Rejection(
            "invalid_event",
            f"{first['pointer'] or '/'}: {first['message']}",
            details=details,
        ) from None
