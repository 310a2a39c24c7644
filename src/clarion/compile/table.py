"""The routing table: everything the runtime needs, resolved, and nothing it must not hold.

Frozen models, so the table has a committed JSON Schema (`schemas/routing-table.schema.json`) like
dbt's manifest, and the runtime can load one with validation. No file paths, no times, no secrets:
`{secret:NAME}` stays a placeholder, so the same config gives the same bytes anywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

TABLE_FORMAT = "clarion.routing-table/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(_Model):
    """Which events, resolved against the catalogue: globs expanded to event types, categories
    kept by name (so a table stays the size of its config, not of addresses times events)."""

    all: bool = Field(False, description="Every event (Enable All), minus the exceptions.")
    categories: list[str] = Field(default_factory=list, description="Whole categories.")
    events: list[str] = Field(default_factory=list, description="Single event types.")
    except_categories: list[str] = Field(
        default_factory=list, description="With `all`: categories left out."
    )
    except_events: list[str] = Field(
        default_factory=list, description="With `all`: event types left out."
    )

    def matches(self, event: str, category: str | None) -> bool:
        if self.all:
            return event not in self.except_events and (
                category is None or category not in self.except_categories
            )
        return event in self.events or (category is not None and category in self.categories)


class Defaults(_Model):
    timezone: str
    locale: str
    phone_region: str | None
    catch_up_seconds: int
    inbox_keep: int = 200
    allow_private_targets: bool = False

    @model_serializer(mode="wrap")
    def _omit_when_off(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Absent means false: a config that does not set it keeps the digest it had before the
        # key existed, so upgrading Clarion does not look like a change of config.
        data: dict[str, Any] = handler(self)
        if not data.get("allow_private_targets"):
            data.pop("allow_private_targets", None)
        return data


class Rate(_Model):
    count: int
    per_seconds: int


class Channel(_Model):
    address: Literal["email", "phone", "url", "inbox"]
    apprise: list[str] = Field(
        description="Provider URLs in failover order; secrets as placeholders."
    )
    rate: Rate | None = None


class Event(_Model):
    category: str | None
    description: str | None
    critical: bool
    batch: bool
    template: str = Field(description="Template name of team messages.")
    data_schema: dict[str, Any]
    example: dict[str, Any] | None


class Target(_Model):
    """One team address, push device or inbox, with its own event toggles."""

    id: str = Field(description="`recipient/channel` or `recipient/channel/device-or-index`.")
    recipient: str
    channel: str
    kind: Literal["email", "phone", "url", "inbox"]
    address: str | None = Field(description="Normalised email or E.164 phone; None for push/inbox.")
    device: str | None
    url: str | None
    enabled: bool
    events: Selector


class Recipient(_Model):
    timezone: str | None
    locale: str | None


class Route(_Model):
    name: str
    events: Selector
    when: str | None
    to: list[str]
    channels: list[str] | None


class CustomerMessage(_Model):
    channels: list[str]
    template: str
    enabled: bool
    attach: str | None


class Wait(_Model):
    kind: Literal["for", "until"]
    seconds: int | None = Field(None, description="`for`: the delay.")
    until: str | None = Field(None, description="`until`: expression giving the moment.")
    offset_seconds: int = 0
    at: str | None = Field(None, description="Local HH:MM in the contact's time zone.")
    late: Literal["skip", "send"] = "send"


class Send(_Model):
    to: Literal["contact"] | list[str]
    channels: list[str]
    template: str


class Step(_Model):
    wait: Wait | None = None
    send: Send | None = None
    emit: str | None = None


class Flow(_Model):
    on: str
    when: str | None
    unless: str | None
    key: str | None
    cancel_on: list[str]
    steps: list[Step]


class RoutingTable(_Model):
    format: Literal["clarion.routing-table/1"] = "clarion.routing-table/1"
    defaults: Defaults
    channels: dict[str, Channel]
    events: dict[str, Event]
    recipients: dict[str, Recipient]
    targets: list[Target]
    routes: list[Route]
    customer_messages: dict[str, CustomerMessage]
    flows: dict[str, Flow]
    consent_default: dict[str, bool]
    unique_contact_fields: list[Literal["phone", "email"]]
    templates: dict[str, dict[str, str]] = Field(
        description="`<name>.<channel>` -> locale (`` for the folder's root) -> template source."
    )
    builtin_templates: dict[str, str] = Field(
        description="Address kind -> Clarion's fallback message source."
    )


def table_json_schema() -> dict[str, Any]:
    schema = RoutingTable.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Clarion routing table"
    return schema
