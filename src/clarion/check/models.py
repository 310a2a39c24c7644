"""The config language as pydantic models: the single source of its JSON Schema.

`clarion schema` prints `Config.model_json_schema()`; `schemas/clarion.schema.json` is that output,
committed (a test keeps them equal). Models describe shape only: cross-references, formats and
every other rule live in `check.rules`, where they can report all findings with locations.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

SelectorWord = Literal["all", "none"]


def _refuse_nulls(data: Any) -> Any:
    # An empty YAML value (`category:`) is null; the schema says "give a value or leave the key
    # out", and the models must agree with it (tests/check/test_schema_agreement.py).
    if isinstance(data, dict):
        for key, value in data.items():
            if value is None:
                raise ValueError(f"{key} is null")
    return data


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _no_nulls = model_validator(mode="before")(_refuse_nulls)


class AllExcept(_Model):
    """Every event but some: `{all: true, except: [refunds, payout.on_hold]}`."""

    all: Literal[True] = Field(description="Must be true: start from every event.")
    except_: list[str] = Field(
        default_factory=list,
        alias="except",
        description="Categories, event names or globs to leave out.",
        examples=[["refunds", "payout.*"]],
    )


Selector = SelectorWord | list[str] | AllExcept
SELECTOR_DESCRIPTION = (
    "Which events: `all` (Enable All), `none` (Disable All), a list of category names, event "
    "names or globs (`dispute.*`), or `{all: true, except: [...]}`."
)


class Defaults(_Model):
    """Settings used where nothing more specific is given."""

    timezone: str = Field(
        "UTC",
        description="IANA time zone used where a contact or recipient gives none.",
        examples=["Europe/Madrid"],
    )
    locale: str = Field(
        "en", description="Template fallback locale (a Babel locale name).", examples=["en", "es"]
    )
    phone_region: str | None = Field(
        None,
        description="ISO 3166 region for phone numbers written without a leading +.",
        examples=["ES", "ID"],
    )
    inbox_keep: int = Field(
        200,
        ge=1,
        le=100_000,
        description="In-app inbox items kept per recipient; older ones are deleted.",
        examples=[200],
    )
    catch_up: str = Field(
        "1h",
        description="How late a flow step that fell due while the runtime was down is still sent.",
        examples=["1h", "30m"],
    )


class Event(_Model):
    """One event type of the catalogue."""

    category: str | None = Field(
        None,
        description="Category name; also usable as an event selector.",
        examples=["payments"],
    )
    description: str | None = Field(
        None, description="What happened, in words for people.", examples=["A payment failed."]
    )
    critical: bool = Field(
        False, description="Time-sensitive: should reach people on at least two channels."
    )
    data: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema (draft 2020-12) of the event's `data`.",
    )
    example: dict[str, Any] | None = Field(
        None,
        description="A `data` value that satisfies `data`; templates are render-checked with it.",
    )
    template: str | None = Field(
        None,
        description="Template for team messages; defaults to the event's name, then a built-in.",
    )
    batch: bool = Field(
        True, description="False refuses this event type in batch requests (one at a time)."
    )


class Channel(_Model):
    """How a message leaves: an Apprise URL with `{to}` for the address."""

    address: Literal["email", "phone", "url", "inbox"] = Field(
        description="What an address on this channel is: an email address, a phone number, an "
        "Apprise URL per device, or the in-app inbox."
    )
    apprise: str | list[str] | None = Field(
        None,
        description="Apprise URL with `{to}` and `{secret:NAME}` placeholders; a list is tried "
        "in order when one provider fails.",
        examples=[
            "mailtos://{secret:SMTP_USER}:{secret:SMTP_PASSWORD}@smtp.example.com/"
            "?from=billing@example.com&to={to}"
        ],
    )
    rate: str | None = Field(
        None, description="Pace of sends on this channel: `N/s`, `N/m` or `N/h`.", examples=["20/s"]
    )


class AddressEntry(_Model):
    """One address (or push device, or inbox) of a recipient, with its own event toggles."""

    address: str | None = Field(
        None,
        description="Email address or phone number (email and phone channels).",
        examples=["finance@yourcompany.com"],
    )
    device: str | None = Field(
        None, description="Device name (push channels).", examples=["owner-phone"]
    )
    url: str | None = Field(
        None,
        description="The device's Apprise URL (push channels).",
        examples=["ntfy://ntfy.example.com/{secret:OWNER_NTFY_TOPIC}"],
    )
    events: Selector = Field("all", description=SELECTOR_DESCRIPTION)
    enabled: bool = Field(True, description="False switches this address or device off.")


class Recipient(BaseModel):
    """A team member or role: channel name -> address entry (or a list of them)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    _no_nulls = model_validator(mode="before")(_refuse_nulls)
    __pydantic_extra__: dict[str, AddressEntry | list[AddressEntry]] = Field(init=False)

    timezone: str | None = Field(
        None, description="IANA time zone of this recipient.", examples=["Europe/Madrid"]
    )
    locale: str | None = Field(None, description="Locale of this recipient's messages.")

    def addresses(self) -> dict[str, list[AddressEntry]]:
        extra = self.__pydantic_extra__ or {}
        return {
            channel: value if isinstance(value, list) else [value]
            for channel, value in extra.items()
        }


class Route(_Model):
    """Policy on top of personal toggles: these events also go to these recipients."""

    name: str = Field(description="Unique name of the route.", examples=["big-failed-payments"])
    events: Selector = Field(description=SELECTOR_DESCRIPTION)
    when: str | None = Field(
        None, description="Jinja2 expression over the event.", examples=["data.amount >= 100000"]
    )
    to: list[str] = Field(min_length=1, description="Recipient names.")
    channels: list[str] | None = Field(
        None, description="Channels to use; defaults to every channel the recipient has."
    )


class CustomerMessage(_Model):
    """A message to the customer named in the event; on unless `enabled: false`."""

    channels: list[str] = Field(min_length=1, description="Channels to send on.")
    template: str = Field(description="Template name.", examples=["receipt"])
    enabled: bool = Field(True, description="False switches this customer message off.")
    attach: str | None = Field(
        None,
        description="Template string giving the URL of a file to attach.",
        examples=["{{ data.receipt_url }}"],
    )


class WaitSpec(_Model):
    """Wait a duration (`for`), or until a moment taken from the event (`until`)."""

    for_: str | None = Field(None, alias="for", description="A duration.", examples=["2h", "3d"])
    until: str | None = Field(
        None, description="Expression giving a date or time.", examples=["data.due_date"]
    )
    offset: str | None = Field(
        None, description="Signed duration added to `until`.", examples=["-2d"]
    )
    at: str | None = Field(
        None,
        description="Local time of day (HH:MM) in the contact's time zone.",
        examples=["09:00"],
    )
    late: Literal["skip", "send"] = Field(
        "send", description="`skip`: never send when the moment had passed at planning time."
    )


class WaitStep(_Model):
    wait: WaitSpec = Field(description="Pause the run.")


class SendSpec(_Model):
    """Send a message to the contact or to team recipients."""

    to: Literal["contact"] | list[str] = Field(
        description="`contact`, or a list of recipient names."
    )
    channels: list[str] = Field(min_length=1, description="Channels to send on.")
    template: str = Field(description="Template name.")


class SendStep(_Model):
    send: SendSpec = Field(description="Send a message.")


class EmitStep(_Model):
    emit: str = Field(
        description="Event type to emit once the send before it succeeded.",
        examples=["order.followup_delivered"],
    )


Step = WaitStep | SendStep | EmitStep


class Flow(_Model):
    """A multi-step, possibly scheduled, customer journey."""

    description: str | None = Field(None, description="What the journey is for.")
    on: str = Field(description="Event type that starts a run.")
    when: str | None = Field(None, description="Start a run only when this expression is true.")
    unless: str | None = Field(None, description="Do not start a run when this is true.")
    key: str | None = Field(
        None,
        description="Template string naming the run; a newer run with the same key replaces a "
        "pending one.",
        examples=["{{ data.subscription_id }}"],
    )
    cancel_on: list[str] = Field(
        default_factory=list,
        description="Event types that cancel the pending run with the same key.",
    )
    steps: list[Step] = Field(
        min_length=1, description="`wait`, `send` and `emit` steps, in order."
    )


class Consent(_Model):
    """Customer consent."""

    default: dict[str, bool] = Field(
        default_factory=dict,
        description="Consent per channel given to a new customer when first seen.",
        examples=[{"email": True, "sms": True, "whatsapp": True, "viber": False}],
    )


class Contacts(_Model):
    """How customers are kept."""

    unique: list[Literal["phone", "email"]] = Field(
        default_factory=list,
        description="Refuse a new contact whose phone or email belongs to another.",
    )


class Templates(_Model):
    """Where templates live."""

    dir: str = Field("templates", description="Template folder, relative to the config directory.")


class Config(_Model):
    """A Clarion config: one directory of YAML files, merged."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="Clarion configuration",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://clarion.dev/schemas/clarion.schema.json",
        },
    )

    # Optional in the schema so that an editor can check each file of a config on its own;
    # that it is given once across the files is the checker's CL101.
    version: Literal[1] | None = Field(
        None, description="Version of the config language. Write `version: 1` in one file."
    )
    defaults: Defaults = Field(default_factory=Defaults, description=Defaults.__doc__)
    events: dict[str, Event] = Field(
        default_factory=dict, description="The event catalogue: the only event types that exist."
    )
    channels: dict[str, Channel] = Field(
        default_factory=dict, description="How messages leave, by channel name."
    )
    recipients: dict[str, Recipient] = Field(
        default_factory=dict,
        description="The team: who, where, and which events each address wants.",
    )
    routes: list[Route] = Field(default_factory=list, description="Routing rules, additive.")
    customer_messages: dict[str, CustomerMessage] = Field(
        default_factory=dict,
        description="Messages to the customer named in an event, by event type.",
    )
    flows: dict[str, Flow] = Field(default_factory=dict, description="Customer journeys.")
    consent: Consent = Field(default_factory=Consent, description=Consent.__doc__)
    contacts: Contacts = Field(default_factory=Contacts, description=Contacts.__doc__)
    templates: Templates = Field(default_factory=Templates, description=Templates.__doc__)


SECTIONS = tuple(Config.model_fields)


class _SchemaGenerator(GenerateJsonSchema):
    """Optional keys are left out, never written as null: no `anyOf: [..., {type: null}]`."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config language, as `clarion schema` prints it."""
    return Config.model_json_schema(by_alias=True, schema_generator=_SchemaGenerator)
