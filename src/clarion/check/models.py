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

    all: Literal[True] = Field(description="Must be true: start from every event.", examples=[True])
    except_: list[str] = Field(
        default_factory=list,
        alias="except",
        description="Categories, event names or globs to leave out.",
        examples=[["refunds", "payout.*"]],
    )


Selector = SelectorWord | list[str] | AllExcept
SELECTOR_EXAMPLES: list[Any] = [
    "all",
    ["payments", "dispute.*"],
    {"all": True, "except": ["refunds"]},
]
SELECTOR_DESCRIPTION = (
    "Which events: `all` (Enable All), `none` (Disable All), a list of category names, event "
    "names or globs (`dispute.*`), or `{all: true, except: [...]}`."
)


class QuietHours(_Model):
    """A daily window in which messages wait: `{from: "21:00", to: "08:00"}`, local time."""

    from_: str = Field(
        alias="from",
        description="Local time (HH:MM) the window starts; it may end the next morning.",
        examples=["21:00"],
    )
    to: str = Field(
        description="Local time (HH:MM) the window ends: held messages go at this time.",
        examples=["08:00"],
    )


QUIET_HOURS_EXAMPLES: list[Any] = [{"from": "21:00", "to": "08:00"}]


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
    quiet_hours: QuietHours | None = Field(
        None,
        title="Quiet hours",
        description="Messages planned inside this window wait for it to end, in the contact's "
        "(or recipient's) time zone; `critical` events and the in-app inbox do not wait.",
        examples=QUIET_HOURS_EXAMPLES,
    )
    allow_private_targets: bool = Field(
        False,
        title="Allow private targets",
        description="True lets webhook (json://, form://, xml://) and push URLs reach loopback, "
        "private, link-local and cloud metadata addresses; by default such sends are refused "
        "(CL306 at validate, a dead letter at run time).",
        examples=[True],
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
        False,
        description="Time-sensitive: should reach people on at least two channels.",
        examples=[True],
    )
    data: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema (draft 2020-12) of the event's `data`.",
        examples=[
            {
                "type": "object",
                "required": ["payment_id", "amount"],
                "properties": {
                    "payment_id": {"type": "string", "description": "The payment's id."},
                    "amount": {"type": "integer", "description": "In minor units (cents)."},
                },
            }
        ],
    )
    example: dict[str, Any] | None = Field(
        None,
        description="A `data` value that satisfies `data`; templates are render-checked with it.",
        examples=[{"payment_id": "pay_123", "amount": 4999, "currency": "EUR"}],
    )
    template: str | None = Field(
        None,
        description="Template for team messages; defaults to the event's name, then a built-in.",
        examples=["payment_failed"],
    )
    batch: bool = Field(
        True,
        description="False refuses this event type in batch requests (one at a time).",
        examples=[False],
    )


class Channel(_Model):
    """How a message leaves: an Apprise URL with `{to}` for the address."""

    address: Literal["email", "phone", "url", "inbox"] = Field(
        description="What an address on this channel is: an email address, a phone number, an "
        "Apprise URL per device, or the in-app inbox.",
        examples=["email", "phone", "url", "inbox"],
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


class Throttle(_Model):
    """At most `limit` messages per `per` for each value of `key`; the rest are skipped with the
    reason `throttled`. Counted in the store, so the limit holds across workers and sidecars."""

    limit: int = Field(description="Messages allowed per window (at least 1).", examples=[3])
    per: str = Field(description="The window: a duration.", examples=["1h", "1d"])
    key: str = Field(
        description="Template string naming whose messages are counted together.",
        examples=["{{ contact.id }}"],
    )


class Digest(_Model):
    """Collect this address's events and send one message listing them, on a schedule."""

    every: str = Field(
        description="How often a digest is sent: a duration (whole days when `at` is given).",
        examples=["1d", "1h"],
    )
    at: str | None = Field(
        None,
        description="Local time of day (HH:MM) in the recipient's (or the default) time zone.",
        examples=["09:00"],
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
    events: Selector = Field("all", description=SELECTOR_DESCRIPTION, examples=SELECTOR_EXAMPLES)
    enabled: bool = Field(
        True, description="False switches this address or device off.", examples=[False]
    )
    quiet_hours: QuietHours | Literal[False] | None = Field(
        None,
        title="Quiet hours",
        description="This address's own quiet hours, or `false` for none; defaults to "
        "`defaults.quiet_hours`.",
        examples=[*QUIET_HOURS_EXAMPLES, False],
    )
    digest: Digest | None = Field(
        None,
        title="Digest",
        description="One message per period listing the events collected since the last one; "
        "none when there were none.",
        examples=[{"every": "1d", "at": "09:00"}],
    )


class Recipient(BaseModel):
    """A team member or role: channel name -> address entry (or a list of them)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    _no_nulls = model_validator(mode="before")(_refuse_nulls)
    __pydantic_extra__: dict[str, AddressEntry | list[AddressEntry]] = Field(init=False)

    timezone: str | None = Field(
        None, description="IANA time zone of this recipient.", examples=["Europe/Madrid"]
    )
    locale: str | None = Field(
        None, description="Locale of this recipient's messages.", examples=["es"]
    )

    def addresses(self) -> dict[str, list[AddressEntry]]:
        extra = self.__pydantic_extra__ or {}
        return {
            channel: value if isinstance(value, list) else [value]
            for channel, value in extra.items()
        }


class Route(_Model):
    """Policy on top of personal toggles: these events also go to these recipients."""

    name: str = Field(description="Unique name of the route.", examples=["big-failed-payments"])
    events: Selector = Field(description=SELECTOR_DESCRIPTION, examples=SELECTOR_EXAMPLES)
    when: str | None = Field(
        None, description="Jinja2 expression over the event.", examples=["data.amount >= 100000"]
    )
    to: list[str] = Field(
        min_length=1, description="Recipient names.", examples=[["finance", "owner"]]
    )
    channels: list[str] | None = Field(
        None,
        description="Channels to use; defaults to every channel the recipient has.",
        examples=[["email", "sms"]],
    )
    throttle: Throttle | None = Field(
        None,
        title="Throttle",
        description="At most `limit` messages per `per` for each `key`; over it: `throttled`.",
        examples=[{"limit": 3, "per": "1h", "key": "{{ contact.id }}"}],
    )


class CustomerMessage(_Model):
    """A message to the customer named in the event; on unless `enabled: false`."""

    channels: list[str] = Field(
        min_length=1, description="Channels to send on.", examples=[["email"], ["whatsapp"]]
    )
    template: str = Field(description="Template name.", examples=["receipt"])
    enabled: bool = Field(
        True, description="False switches this customer message off.", examples=[False]
    )
    attach: str | None = Field(
        None,
        description="Template string giving the URL of a file to attach.",
        examples=["{{ data.receipt_url }}"],
    )
    fallback: list[str] = Field(
        default_factory=list,
        description="Channels tried in order when a channel of `channels` cannot be used (no "
        "consent, no address) or is dead-lettered.",
        examples=[["sms"]],
    )
    throttle: Throttle | None = Field(
        None,
        title="Throttle",
        description="At most `limit` messages per `per` for each `key`; over it: `throttled`.",
        examples=[{"limit": 3, "per": "1h", "key": "{{ contact.id }}"}],
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
        "send",
        description="`skip`: never send when the moment had passed at planning time.",
        examples=["skip"],
    )


class WaitStep(_Model):
    wait: WaitSpec = Field(
        title="Wait",
        description="Pause the run.",
        examples=[{"for": "2h"}, {"until": "data.due_date", "offset": "-2d", "at": "09:00"}],
    )


class SendSpec(_Model):
    """Send a message to the contact or to team recipients."""

    to: Literal["contact"] | list[str] = Field(
        description="`contact`, or a list of recipient names.", examples=["contact", ["owner"]]
    )
    channels: list[str] = Field(
        min_length=1, description="Channels to send on.", examples=[["email", "sms"]]
    )
    template: str = Field(description="Template name.", examples=["payment_reminder"])
    fallback: list[str] = Field(
        default_factory=list,
        description="With `to: contact`: channels tried in order when a channel of `channels` "
        "cannot be used (no consent, no address) or is dead-lettered.",
        examples=[["sms"]],
    )
    unless: str | None = Field(
        None,
        description="`read`: skip this send when an in-app item an earlier step of the run sent "
        "was read (escalate only if nobody read it).",
        examples=["read"],
    )
    throttle: Throttle | None = Field(
        None,
        title="Throttle",
        description="At most `limit` messages per `per` for each `key`; over it: `throttled`.",
        examples=[{"limit": 3, "per": "1h", "key": "{{ contact.id }}"}],
    )


class SendStep(_Model):
    send: SendSpec = Field(
        title="Send",
        description="Send a message.",
        examples=[{"to": "contact", "channels": ["email"], "template": "payment_reminder"}],
    )


class EmitStep(_Model):
    emit: str = Field(
        description="Event type to emit once the send before it succeeded.",
        examples=["order.followup_delivered"],
    )


class DigestSpec(_Model):
    """Runs with the same key within the window become one: the first waits out the window,
    then the sends after this step go once, listing every run's event."""

    window: str = Field(description="How long to collect: a duration.", examples=["10m"])
    key: str = Field(
        description="Template string naming which runs are collected together.",
        examples=["{{ contact.id }}"],
    )
    max: int | None = Field(
        None,
        description="At most this many events in one digest; the next one starts another.",
        examples=[50],
    )


class DigestStep(_Model):
    digest: DigestSpec = Field(
        title="Digest",
        description="Collect the events of runs with the same key for the sends after it.",
        examples=[{"window": "10m", "key": "{{ contact.id }}"}],
    )


Step = WaitStep | SendStep | EmitStep | DigestStep


class Flow(_Model):
    """A multi-step, possibly scheduled, customer journey."""

    description: str | None = Field(
        None,
        description="What the journey is for.",
        examples=["Remind the member two days before a renewal is charged."],
    )
    on: str = Field(
        description="Event type that starts a run.", examples=["subscription.renewal_scheduled"]
    )
    when: str | None = Field(
        None,
        description="Start a run only when this expression is true.",
        examples=["data.amount > 0"],
    )
    unless: str | None = Field(
        None, description="Do not start a run when this is true.", examples=["data.first_purchase"]
    )
    key: str | None = Field(
        None,
        description="Template string naming the run; a newer run with the same key replaces a "
        "pending one.",
        examples=["{{ data.subscription_id }}"],
    )
    cancel_on: list[str] = Field(
        default_factory=list,
        description="Event types that cancel the pending run with the same key.",
        examples=[["payment.succeeded", "subscription.canceled"]],
    )
    steps: list[Step] = Field(
        min_length=1,
        description="`wait`, `send`, `emit` and `digest` steps, in order.",
        examples=[
            [
                {"wait": {"until": "data.due_date", "offset": "-2d", "at": "09:00"}},
                {"send": {"to": "contact", "channels": ["email"], "template": "payment_reminder"}},
            ]
        ],
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
        examples=[["phone", "email"]],
    )


class Templates(_Model):
    """Where templates live."""

    dir: str = Field(
        "templates",
        description="Template folder, relative to the config directory.",
        examples=["templates"],
    )


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
        None,
        description="Version of the config language. Write `version: 1` in one file.",
        examples=[1],
    )
    defaults: Defaults = Field(
        default_factory=Defaults,
        title="Default settings",
        description="Time zone, locale and other settings used where nothing more specific "
        "is given.",
        examples=[{"timezone": "Europe/Madrid", "locale": "en", "phone_region": "ES"}],
    )
    events: dict[str, Event] = Field(
        default_factory=dict,
        description="The event catalogue: the only event types that exist.",
        examples=[
            {
                "payment.failed": {
                    "category": "payments",
                    "critical": True,
                    "data": {"type": "object", "required": ["payment_id"]},
                    "example": {"payment_id": "pay_123"},
                }
            }
        ],
    )
    channels: dict[str, Channel] = Field(
        default_factory=dict,
        description="How messages leave, by channel name.",
        examples=[
            {
                "email": {
                    "address": "email",
                    "apprise": "mailtos://{secret:SMTP_USER}:{secret:SMTP_PASSWORD}"
                    "@smtp.example.com/?to={to}",
                },
                "in_app": {"address": "inbox"},
            }
        ],
    )
    recipients: dict[str, Recipient] = Field(
        default_factory=dict,
        description="The team: who, where, and which events each address wants.",
        examples=[{"owner": {"email": {"address": "owner@example.com", "events": "all"}}}],
    )
    routes: list[Route] = Field(
        default_factory=list,
        description="Routing rules, additive.",
        examples=[
            [
                {
                    "name": "big-failed-payments",
                    "events": ["payment.failed"],
                    "when": "data.amount >= 100000",
                    "to": ["finance"],
                }
            ]
        ],
    )
    customer_messages: dict[str, CustomerMessage] = Field(
        default_factory=dict,
        description="Messages to the customer named in an event, by event type.",
        examples=[{"payment.succeeded": {"channels": ["email"], "template": "receipt"}}],
    )
    flows: dict[str, Flow] = Field(
        default_factory=dict,
        description="Customer journeys.",
        examples=[
            {
                "welcome": {
                    "on": "contact.created",
                    "steps": [
                        {"wait": {"for": "1h"}},
                        {"send": {"to": "contact", "channels": ["email"], "template": "welcome"}},
                    ],
                }
            }
        ],
    )
    consent: Consent = Field(
        default_factory=Consent,
        title="Customer consent",
        description="Consent per channel that a new customer starts with.",
        examples=[{"default": {"email": True, "sms": False}}],
    )
    contacts: Contacts = Field(
        default_factory=Contacts,
        title="Contact rules",
        description="How customers are kept: which of their addresses must be unique.",
        examples=[{"unique": ["phone", "email"]}],
    )
    templates: Templates = Field(
        default_factory=Templates,
        title="Template folder",
        description="Where template files live.",
        examples=[{"dir": "templates"}],
    )


SECTIONS = tuple(Config.model_fields)


class _SchemaGenerator(GenerateJsonSchema):
    """Optional keys are left out, never written as null: no `anyOf: [..., {type: null}]`."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config language, as `clarion schema` prints it."""
    schema = Config.model_json_schema(by_alias=True, schema_generator=_SchemaGenerator)
    # An optional section (`throttle`, `digest`) is a bare $ref once null is left out, and
    # pydantic gives a $ref no title: it takes its model's, as the required sections have theirs.
    definitions = schema.get("$defs", {})
    for definition in definitions.values():
        for spec in definition.get("properties", {}).values():
            ref = spec.get("$ref", "")
            if ref and "title" not in spec:
                spec["title"] = definitions[ref.rsplit("/", 1)[-1]].get("title")
    return schema
