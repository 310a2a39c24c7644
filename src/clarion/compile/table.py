"""The routing table: everything the runtime needs, resolved, and nothing it must not hold.

Frozen models, so the table has a committed JSON Schema (`schemas/routing-table.schema.json`) like
dbt's manifest, and the runtime can load one with validation. No file paths, no times, no secrets:
`{secret:NAME}` stays a placeholder, so the same config gives the same bytes anywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

TABLE_FORMAT = "clarion.routing-table/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys added after the first release, left out of the JSON while unused (None, false, []): a
    # config that does not use a feature compiles to the same bytes (and digest) as before.
    _omit_unused: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self._omit_unused and isinstance(data, dict):
            for key in self._omit_unused:
                if key in data and (data[key] is None or data[key] is False or data[key] == []):
                    del data[key]
        return data


class QuietHours(_Model):
    """A daily window, local times: deliveries planned inside it wait until `end`."""

    start: str = Field(description="HH:MM the window opens (the config's `from`).")
    end: str = Field(description="HH:MM the window closes (the config's `to`).")


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
    quiet_hours: QuietHours | None = None
    allow_private_targets: bool = False

    _omit_unused = ("quiet_hours", "allow_private_targets")


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


def _absent() -> Any:
    """An optional pacing setting, left out of the table when not given: a config without pacing
    compiles to the same bytes (and digest) as before pacing existed."""
    return Field(None, exclude_if=lambda value: value is None)


class Throttle(_Model):
    """At most `limit` messages per window of `per_seconds` for each rendered `key`."""

    limit: int
    per_seconds: int
    key: str = Field(description="Template string; its rendering names one counter.")


class Digest(_Model):
    """A team address's digest: one message per period listing the events it collected."""

    every_seconds: int
    at: str | None = Field(None, description="Local HH:MM in the recipient's time zone.")


class FlowDigest(_Model):
    window_seconds: int
    key: str
    max: int | None = None


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
    quiet_hours: QuietHours | Literal["off"] | None = Field(
        None, description="This address's own quiet hours, `off`, or None: the defaults'."
    )

    digest: Digest | None = _absent()

    _omit_unused = ("quiet_hours",)


class Recipient(_Model):
    timezone: str | None
    locale: str | None


class Route(_Model):
    name: str
    events: Selector
    when: str | None
    to: list[str]
    channels: list[str] | None
    throttle: Throttle | None = _absent()


class CustomerMessage(_Model):
    channels: list[str]
    template: str
    enabled: bool
    attach: str | None
    fallback: list[str] = Field(
        default_factory=list, description="Channels tried in order when one fails or is unusable."
    )

    throttle: Throttle | None = _absent()

    _omit_unused = ("fallback",)


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
    fallback: list[str] = Field(default_factory=list)
    unless: Literal["read"] | None = Field(
        None, description="`read`: skipped when an in-app item the run sent was read."
    )

    throttle: Throttle | None = _absent()

    _omit_unused = ("fallback", "unless")


class Step(_Model):
    wait: Wait | None = None
    send: Send | None = None
    emit: str | None = None
    digest: FlowDigest | None = _absent()


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
