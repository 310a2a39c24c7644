"""Benchmark: validate + compile a large, valid config, against plain YAML parsing of it.

    python benchmarks/compile_large.py [--runs N] [--keep DIR] [--profile N]

1. Generates (fixed seeds: the same bytes every run) a config of 5,000 recipients (email,
   in-app inbox and two push devices each, one device in ten switched off), 500 event types in
   20 categories, 300 routes, 50 flows, 60 customer messages and 200 templates in two locales,
   split over 38 YAML files and 908 template files.
2. Runs `clarion.compile.build()` on it in a fresh subprocess, N times (default 3): time spent in
   build(), the whole process's wall time and its peak RSS. Fails (exit 1) if the build reports any
   error or warning, or if the table's digest differs between runs.
3. Runs the reference in a fresh subprocess: only `yaml.load(..., Loader=yaml.CSafeLoader)` of the
   same YAML files, and prints build / reference ratios.
4. Times `clarion validate examples/config` as a whole process (what a pre-commit hook pays) against
   `python -c "import yaml"`.

Targets printed beside the figures: build() <= 3 s and <= 400 MB on the large config;
`clarion validate examples/config` <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "config"

TARGET_BUILD_S = 3.0
TARGET_BUILD_MB = 400.0
TARGET_VALIDATE_S = 0.5

N_RECIPIENTS = 5_000
RECIPIENTS_PER_FILE = 500
N_CATEGORIES = 20
EVENTS_PER_CATEGORY = 25  # 500 event types
N_ROUTES = 300
ROUTES_PER_FILE = 100
N_FLOWS = 50
N_CUSTOMER_MESSAGES = 60
TEAM_TEMPLATES_PER_CATEGORY = 5  # 100 team templates (email, push, in_app)
N_FLOW_TEMPLATES = 40  # 100 + 60 + 40 = 200 template names

CATEGORIES = [
    ("payments", "payment"),
    ("payouts", "payout"),
    ("refunds", "refund"),
    ("disputes", "dispute"),
    ("orders", "order"),
    ("shipping", "shipment"),
    ("subscriptions", "subscription"),
    ("invoices", "invoice"),
    ("customers", "customer"),
    ("licenses", "license"),
    ("inventory", "stock"),
    ("security", "login"),
    ("accounts", "account"),
    ("support", "ticket"),
    ("reviews", "review"),
    ("marketing", "campaign"),
    ("fraud", "risk"),
    ("compliance", "kyc"),
    ("billing", "charge"),
    ("integrations", "webhook"),
]
ACTIONS = [
    "created",
    "updated",
    "deleted",
    "failed",
    "succeeded",
    "pending",
    "approved",
    "rejected",
    "expired",
    "renewed",
    "canceled",
    "paused",
    "resumed",
    "scheduled",
    "completed",
    "escalated",
    "opened",
    "closed",
    "reopened",
    "flagged",
    "verified",
    "archived",
    "restored",
    "overdue",
    "reminded",
]
REASONS = [
    "card_declined",
    "insufficient_funds",
    "expired",
    "manual_review",
    "customer_request",
    "duplicate",
    "fraudulent",
    "technical_error",
]
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "SEK", "PLN", "IDR"]
TIMEZONES = [
    "Europe/Madrid",
    "Europe/London",
    "America/New_York",
    "Asia/Jakarta",
    "Europe/Warsaw",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Australia/Sydney",
]
TEAM_CHANNELS = ("email", "push", "in_app")
CUSTOMER_CHANNEL_SETS = [
    ["email"],
    ["email", "sms"],
    ["whatsapp"],
    ["email", "push"],
    ["sms"],
    ["whatsapp", "email"],
    ["push"],
]
FLOW_CONTACT_CHANNEL_SETS = [
    ["email"],
    ["email", "sms"],
    ["whatsapp"],
    ["email", "push"],
    ["sms", "push"],
]
FLOW_TEAM_CHANNELS = ["email", "in_app"]


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def dump(path: Path, value: Any, header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(
        value,
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
        width=100,
    )
    path.write_text(f"# {header}\n\n{text}", encoding="utf-8")


class Catalog:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.by_category: dict[str, list[str]] = {}
        self.prefix: dict[str, str] = {}  # category -> event-name prefix
        self.category_of: dict[str, str] = {}
        self.events: dict[str, dict[str, Any]] = {}  # name -> definition
        self.team_template: dict[str, str | None] = {}  # event -> team template name
        for category, prefix in CATEGORIES[:N_CATEGORIES]:
            self.prefix[category] = prefix
            names = []
            for k, action in enumerate(ACTIONS[:EVENTS_PER_CATEGORY]):
                name = f"{prefix}.{action}"
                names.append(name)
                self.category_of[name] = category
                self.events[name] = self._event(category, prefix, action, k)
            self.by_category[category] = names

    def _event(self, category: str, prefix: str, action: str, k: int) -> dict[str, Any]:
        rng = self.rng
        id_field = f"{prefix}_id"
        properties: dict[str, Any] = {
            "reference": {"type": "string", "minLength": 1},
            id_field: {"type": "string", "pattern": f"^{prefix[:3]}_[A-Za-z0-9]+$"},
            "amount": {"type": "integer", "minimum": 0, "description": "minor units"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "due_date": {"type": "string", "format": "date"},
        }
        required = ["reference", id_field, "amount", "currency", "due_date"]
        example: dict[str, Any] = {
            "reference": f"REF-{rng.randrange(10**6):06d}",
            id_field: f"{prefix[:3]}_{rng.randrange(16**8):08x}",
            "amount": rng.choice([0, 999, 4999, 15990, 125000, 842000]),
            "currency": rng.choice(CURRENCIES),
            "due_date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }
        if rng.random() < 0.5:
            properties["reason"] = {"type": "string", "enum": list(REASONS)}
            example["reason"] = rng.choice(REASONS)
            if rng.random() < 0.5:
                required.append("reason")
        if rng.random() < 0.4:
            properties["attempts"] = {"type": "integer", "minimum": 1, "maximum": 10}
            example["attempts"] = rng.randint(1, 10)
        if rng.random() < 0.4:
            properties["document_url"] = {"type": "string", "format": "uri"}
            example["document_url"] = f"https://docs.example.com/{category}/{example[id_field]}.pdf"
        if rng.random() < 0.3:
            properties["customer_email"] = {"type": "string", "format": "email"}
            example["customer_email"] = f"customer{rng.randrange(1000)}@example.com"
        event: dict[str, Any] = {
            "category": category,
            "description": f"{prefix.capitalize()} {action.replace('_', ' ')}.",
        }
        if action in ("failed", "escalated", "flagged", "overdue") or rng.random() < 0.05:
            event["critical"] = True
        if rng.random() < 0.03:
            event["batch"] = False
        # 4 events in 5 name a shared team template; the others use the built-in messages.
        template = None
        if k % 5 != 4:
            template = f"team_{category}_{(k - k // 5) % TEAM_TEMPLATES_PER_CATEGORY}"
            event["template"] = template
        event["data"] = {"type": "object", "required": required, "properties": properties}
        event["example"] = example
        self.team_template[f"{prefix}.{action}"] = template
        return event

    @property
    def names(self) -> list[str]:
        return list(self.events)

    def glob_items(self) -> list[str]:
        return (
            [f"{self.prefix[c]}.*" for c in self.by_category]
            + [f"*.{a}" for a in ACTIONS[:EVENTS_PER_CATEGORY]]
            + [f"{self.prefix[c]}.?e*" for c in list(self.by_category)[:5]]
        )


def selector(rng: random.Random, cat: Catalog, allow_none: bool = True) -> Any:
    """A realistic per-address toggle: all / none / categories / events / globs / all-except."""
    categories = list(cat.by_category)
    roll = rng.random()
    if roll < 0.15:
        return "all"
    if roll < 0.20 and allow_none:
        return "none"
    if roll < 0.45:
        return rng.sample(categories, rng.randint(1, 4))
    if roll < 0.60:
        return rng.sample(cat.names, rng.randint(1, 6))
    if roll < 0.85:
        items = rng.sample(categories, rng.randint(0, 2)) + rng.sample(cat.names, rng.randint(0, 3))
        items += rng.sample(cat.glob_items(), rng.randint(1, 2))
        return items
    except_ = rng.sample(categories, rng.randint(1, 3)) + rng.sample(cat.glob_items(), 1)
    if rng.random() < 0.5:
        except_ += rng.sample(cat.names, 2)
    return {"all": True, "except": except_}


def team_template_text(category: str, prefix: str, channel: str, es: bool) -> str:
    id_field = f"data.{prefix}_id"
    if channel == "email":
        if es:
            return (
                f"Subject: [{category}] {{{{ event.description }}}} "
                "({{ data.amount | money(data.currency) }})\n"
                "Hola, {{ recipient }}:\n\n"
                "{{ event.description }}\n\n"
                "  Referencia: {{ data.reference }}\n"
                f"  Identificador: {{{{ {id_field} }}}}\n"
                "  Importe: {{ data.amount | money(data.currency) }}\n"
                "  Vencimiento: {{ data.due_date | date }}\n"
                "{% if data.reason is defined %}  Motivo: {{ data.reason }}\n{% endif %}"
                "  Cuándo: {{ event.occurred_at | datetime }}\n\n"
                f"https://dashboard.yourcompany.com/{category}/{{{{ {id_field} }}}}\n"
            )
        return (
            f"Subject: [{category}] {{{{ event.description }}}} "
            "({{ data.amount | money(data.currency) }})\n"
            "Hi {{ recipient }},\n\n"
            "{{ event.description }}\n\n"
            "  Reference: {{ data.reference }}\n"
            f"  Id: {{{{ {id_field} }}}}\n"
            "  Amount: {{ data.amount | money(data.currency) }}\n"
            "  Due: {{ data.due_date | date }}\n"
            "{% if data.reason is defined %}  Reason: {{ data.reason }}\n{% endif %}"
            "{% if data.attempts is defined %}  Attempts: {{ data.attempts }}\n{% endif %}"
            "  When: {{ event.occurred_at | datetime }}\n\n"
            f"https://dashboard.yourcompany.com/{category}/{{{{ {id_field} }}}}\n"
        )
    if channel == "push":
        word = "Importe" if es else "Amount"
        return (
            "Subject: {{ event.type }}\n"
            f"{word}: {{{{ data.amount | money(data.currency) }}}}, {{{{ data.reference }}}}\n"
        )
    link = f"Link: https://dashboard.yourcompany.com/{category}/{{{{ {id_field} }}}}\n"
    return (
        "Subject: {{ event.description }}\n"
        + link
        + ("Vence el {{ data.due_date | date }}" if es else "Due {{ data.due_date | date }}")
        + " · {{ data.amount | money(data.currency) }}\n"
    )


def customer_template_text(channel: str, example: dict[str, Any], es: bool) -> str:
    extra = ""
    if "document_url" in example:
        extra = ("Documento" if es else "Document") + ": {{ data.document_url }}\n"
    if "reason" in example:
        extra += ("Motivo" if es else "Reason") + ": {{ data.reason }}\n"
    hello = '{{ contact.name | default("") }}'
    if channel == "email":
        if es:
            return (
                "Subject: {{ event.description }} {{ data.reference }}\n"
                f"Hola {hello}:\n\n"
                "Importe: {{ data.amount | money(data.currency) }}\n"
                "Fecha: {{ data.due_date | date(format='long') }}\n" + extra + "\nGracias.\n"
            )
        return (
            "Subject: {{ event.description }} {{ data.reference }}\n"
            f"Hi {hello},\n\n"
            "Amount: {{ data.amount | money(data.currency) }}\n"
            "Date: {{ data.due_date | date(format='long') }}\n" + extra + "\nThank you.\n"
        )
    if es:
        return (
            f"Hola {hello}: {{{{ event.description }}}} {{{{ data.reference }}}}, "
            "{{ data.amount | money(data.currency) }}.\n" + extra
        )
    return (
        f"Hi {hello}: {{{{ event.description }}}} {{{{ data.reference }}}}, "
        "{{ data.amount | money(data.currency) }}.\n" + extra
    )


def flow_template_text(channel: str, es: bool) -> str:
    # Flow templates are rendered against the example of every flow that sends them: only the
    # fields every event has.
    if channel == "email":
        if es:
            return (
                "Subject: Recordatorio: {{ data.reference }}\n"
                "Hola{% if contact.name is defined %}, {{ contact.name }}{% endif %}:\n\n"
                "Te recordamos {{ event.type }} por {{ data.amount | money(data.currency) }}, "
                "con fecha {{ data.due_date | date }}.\n"
            )
        return (
            "Subject: Reminder: {{ data.reference }}\n"
            "Hi{% if contact.name is defined %} {{ contact.name }}{% endif %},\n\n"
            "A reminder about {{ event.type }} for {{ data.amount | money(data.currency) }}, "
            "due {{ data.due_date | date }}.\n"
        )
    if channel == "in_app":
        return (
            "Subject: {{ event.type }} {{ data.reference }}\n"
            "Link: https://dashboard.yourcompany.com/flows/{{ data.reference }}\n"
            "{{ data.amount | money(data.currency) }} · {{ data.due_date | date }}\n"
        )
    word = "Recordatorio" if es else "Reminder"
    return (
        f"{word}: {{{{ data.reference }}}}, {{{{ data.amount | money(data.currency) }}}} "
        "({{ data.due_date | date(format='short') }})\n"
    )


def generate(root: Path, seed: int = 20261124) -> dict[str, int]:
    """Write the config under root (which must be empty or absent). Returns counts."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    cat = Catalog(random.Random(seed + 1))
    counts = {"yaml_files": 0, "template_files": 0}

    def write(rel: str, value: Any, header: str) -> None:
        dump(root / rel, value, header)
        counts["yaml_files"] += 1

    def template(rel: str, text: str) -> None:
        path = root / "templates" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        counts["template_files"] += 1

    # -- settings and channels ---------------------------------------------------------------
    write(
        "clarion.yaml",
        {
            "version": 1,
            "defaults": {
                "timezone": "Europe/Madrid",
                "locale": "en",
                "phone_region": "ES",
                "catch_up": "1h",
            },
            "consent": {"default": {"email": True, "sms": True, "whatsapp": True, "push": True}},
            "contacts": {"unique": ["phone", "email"]},
            "templates": {"dir": "templates"},
        },
        "Generated by benchmarks/compile_large.py: settings.",
    )
    write(
        "channels.yaml",
        {
            "channels": {
                "email": {
                    "address": "email",
                    "apprise": "mailtos://{secret:SMTP_USER}:{secret:SMTP_PASSWORD}"
                    "@smtp.example.com/?from=alerts@yourcompany.com&to={to}",
                },
                "sms": {
                    "address": "phone",
                    "apprise": [
                        "twilio://{secret:TWILIO_SID}:{secret:TWILIO_TOKEN}@15551234567/{to}",
                        "vonage://{secret:VONAGE_KEY}:{secret:VONAGE_SECRET}@15551234567/{to}",
                    ],
                },
                "whatsapp": {
                    "address": "phone",
                    "apprise": "whatsapp://{secret:WHATSAPP_TOKEN}@{secret:WHATSAPP_FROM_ID}/{to}",
                },
                "push": {"address": "url", "rate": "20/s"},
                "in_app": {"address": "inbox"},
            }
        },
        "Generated: channels.",
    )

    # -- catalogue: one file per category -----------------------------------------------------
    for category, names in cat.by_category.items():
        write(
            f"catalog/{category}.yaml",
            {"events": {n: cat.events[n] for n in names}},
            f"Generated: the {category} events.",
        )

    # -- recipients: one file per 500 -----------------------------------------------------------
    recipient_names = [f"user{i:05d}" for i in range(N_RECIPIENTS)]
    device_counter = 0
    for start in range(0, N_RECIPIENTS, RECIPIENTS_PER_FILE):
        chunk: dict[str, Any] = {}
        for name in recipient_names[start : start + RECIPIENTS_PER_FILE]:
            person: dict[str, Any] = {}
            if rng.random() < 0.3:
                person["timezone"] = rng.choice(TIMEZONES)
            if rng.random() < 0.2:
                person["locale"] = rng.choice(["es", "en"])
            email_sel = selector(rng, cat)
            person["email"] = {"address": f"{name}@yourcompany.com", "events": email_sel}
            inbox_sel = selector(rng, cat, allow_none=False)
            person["in_app"] = {"events": inbox_sel} if rng.random() < 0.9 else {}
            devices = []
            for device in ("phone", "tablet"):
                entry: dict[str, Any] = {
                    "device": f"{name}-{device}",
                    "url": f"ntfy://ntfy.example.com/{{secret:NTFY_{name.upper()}_{device.upper()}}}",
                    "events": selector(rng, cat),
                }
                if device_counter % 10 == 9:
                    entry["enabled"] = False
                device_counter += 1
                devices.append(entry)
            person["push"] = devices
            chunk[name] = person
        write(
            f"team/recipients-{start // RECIPIENTS_PER_FILE + 1:02d}.yaml",
            {"recipients": chunk},
            f"Generated: recipients {start}..{start + len(chunk) - 1}.",
        )

    # -- routes ----------------------------------------------------------------------------------
    whens = [
        "data.amount >= 100000",
        "data.amount >= 50000 and data.currency in ['EUR', 'USD']",
        "data.currency == 'EUR'",
        "data.reason is defined and data.reason == 'fraudulent'",
        "contact.email is defined",
        "event.category == 'payments' or data.amount > 1000000",
        None,
    ]
    routes = []
    for i in range(N_ROUTES):
        route: dict[str, Any] = {"name": f"route-{i:03d}"}
        roll = rng.random()
        if roll < 0.35:
            route["events"] = rng.sample(list(cat.by_category), rng.randint(1, 2))
        elif roll < 0.7:
            route["events"] = rng.sample(cat.names, rng.randint(1, 4))
        else:
            route["events"] = rng.sample(cat.glob_items(), 1) + rng.sample(cat.names, 1)
        when = rng.choice(whens)
        if when:
            route["when"] = when
        route["to"] = rng.sample(recipient_names, rng.randint(1, 5))
        if rng.random() < 0.7:
            route["channels"] = sorted(rng.sample(TEAM_CHANNELS, rng.randint(1, 3)))
        routes.append(route)
    for start in range(0, N_ROUTES, ROUTES_PER_FILE):
        write(
            f"routes/routes-{start // ROUTES_PER_FILE + 1}.yaml",
            {"routes": routes[start : start + ROUTES_PER_FILE]},
            "Generated: routes.",
        )

    # -- team templates ----------------------------------------------------------------------
    for category, prefix in CATEGORIES[:N_CATEGORIES]:
        for k in range(TEAM_TEMPLATES_PER_CATEGORY):
            for channel in TEAM_CHANNELS:
                name = f"team_{category}_{k}.{channel}.j2"
                template(name, team_template_text(category, prefix, channel, es=False))
                template(f"es/{name}", team_template_text(category, prefix, channel, es=True))

    # -- customer messages -----------------------------------------------------------------------
    customer: dict[str, Any] = {}
    for i, event in enumerate(sorted(rng.sample(cat.names, N_CUSTOMER_MESSAGES))):
        channels = CUSTOMER_CHANNEL_SETS[i % len(CUSTOMER_CHANNEL_SETS)]
        name = f"customer_{event.replace('.', '_')}"
        message: dict[str, Any] = {"channels": list(channels), "template": name}
        example = cat.events[event]["example"]
        if "document_url" in example and "email" in channels:
            message["attach"] = "{{ data.document_url }}"
        if i % 7 == 3:
            message["enabled"] = False
        customer[event] = message
        for channel in channels:
            template(f"{name}.{channel}.j2", customer_template_text(channel, example, es=False))
            template(f"es/{name}.{channel}.j2", customer_template_text(channel, example, es=True))
    write("customer.yaml", {"customer_messages": customer}, "Generated: customer messages.")

    # -- flows -------------------------------------------------------------------------------
    # 40 flow templates: 28 to the contact, 12 to team recipients; each one used by some flow.
    contact_templates = [
        (f"flow_contact_{i:02d}", FLOW_CONTACT_CHANNEL_SETS[i % 5]) for i in range(28)
    ]
    team_templates = [
        (f"flow_team_{i:02d}", FLOW_TEAM_CHANNELS) for i in range(N_FLOW_TEMPLATES - 28)
    ]
    for name, channels in contact_templates + team_templates:
        for channel in channels:
            template(f"{name}.{channel}.j2", flow_template_text(channel, es=False))
            template(f"es/{name}.{channel}.j2", flow_template_text(channel, es=True))
    flows: dict[str, Any] = {}
    starts = rng.sample(cat.names, N_FLOWS)
    for i, on in enumerate(starts):
        prefix = on.split(".")[0]
        others = [n for n in cat.by_category[cat.category_of[on]] if n != on]
        flow: dict[str, Any] = {"description": f"Journey {i} after {on}.", "on": on}
        if i % 3 == 0:
            flow["when"] = "data.amount > 0"
        if i % 4 == 1:
            flow["unless"] = "data.reason is defined and data.reason == 'customer_request'"
        if i % 5 != 4:
            flow["key"] = f"{{{{ data.{prefix}_id }}}}"
            flow["cancel_on"] = rng.sample(others, rng.randint(1, 3))
        contact_name, contact_channels = contact_templates[i % len(contact_templates)]
        steps: list[dict[str, Any]] = []
        if i % 2 == 0:
            steps.append(
                {
                    "wait": {
                        "until": "data.due_date",
                        "offset": rng.choice(["-2d", "-1d", "-12h"]),
                        "at": rng.choice(["09:00", "10:30", "18:00"]),
                        "late": "skip",
                    }
                }
            )
        else:
            steps.append({"wait": {"for": rng.choice(["15m", "1h", "1h30m", "2d"])}})
        steps.append(
            {
                "send": {
                    "to": "contact",
                    "channels": list(contact_channels),
                    "template": contact_name,
                }
            }
        )
        if i % 3 == 1:
            steps.append({"emit": rng.choice(others)})
        steps.append({"wait": {"for": rng.choice(["1d", "3d", "1w"])}})
        if i % 2 == 1 or i < 24:
            team_name, _ = team_templates[i % len(team_templates)]
            steps.append(
                {
                    "send": {
                        "to": rng.sample(recipient_names, rng.randint(1, 3)),
                        "channels": list(FLOW_TEAM_CHANNELS),
                        "template": team_name,
                    }
                }
            )
        if i % 6 == 5:
            steps.append({"wait": {"until": "data.due_date", "at": "09:00"}})
            nxt, nxt_channels = contact_templates[(i + 7) % len(contact_templates)]
            steps.append(
                {"send": {"to": "contact", "channels": list(nxt_channels), "template": nxt}}
            )
        flow["steps"] = steps
        flows[f"journey_{i:02d}_{on.replace('.', '_')}"] = flow
    names = list(flows)
    write("flows/flows-1.yaml", {"flows": {n: flows[n] for n in names[:25]}}, "Generated: flows.")
    write("flows/flows-2.yaml", {"flows": {n: flows[n] for n in names[25:]}}, "Generated: flows.")
    counts["yaml_bytes"] = sum(p.stat().st_size for p in yaml_files(root))
    return counts


def yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------

BUILD_CHILD = r"""
import json, sys, time
from pathlib import Path
t_import = time.perf_counter()
from clarion.compile import build
t0 = time.perf_counter()
result = build(Path(sys.argv[1]))
t1 = time.perf_counter()
print(json.dumps({
    "seconds": t1 - t0,
    "import_seconds": t0 - t_import,
    "ok": result.ok,
    "digest": result.digest,
    "size": len(result.data) if result.data is not None else None,
    "diagnostics": [
        f"{d.severity.value} {d.code} {d.location}: {d.message}" for d in result.diagnostics
    ],
}))
"""

PROFILE_CHILD = r"""
import cProfile, io, pstats, sys
from pathlib import Path
from clarion.compile import build
profiler = cProfile.Profile()
profiler.enable()
build(Path(sys.argv[1]))
profiler.disable()
out = io.StringIO()
stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
stats.print_stats("clarion", int(sys.argv[2]))
print(out.getvalue())
"""

PARSE_CHILD = r"""
import json, sys, time
import yaml
paths = sys.argv[1:]
t0 = time.perf_counter()
for p in paths:
    with open(p, "rb") as f:
        yaml.load(f.read().decode("utf-8"), Loader=yaml.CSafeLoader)
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0}))
"""


def run_child(argv: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MB, exit status, stdout) of one fresh process."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        code = proc.returncode
        if code not in (0, 1):
            err.seek(0)
            sys.stderr.write(err.read().decode("utf-8", "replace"))
    rss_kb = usage.ru_maxrss  # kilobytes on Linux
    if sys.platform == "darwin":
        rss_kb //= 1024  # bytes on macOS
    return wall, rss_kb / 1024, code, out.decode("utf-8", "replace")


def stats(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def verdict(value: float, target: float) -> str:
    return "OK" if value <= target else "OVER"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="build/parse repetitions (default 3)")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        help="generate the config into DIR (must not exist or be empty) and keep it",
    )
    parser.add_argument(
        "--validate-runs",
        type=int,
        default=5,
        help="`clarion validate examples/config` repetitions (default 5)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="also run one build under cProfile and print its top N clarion "
        "functions by cumulative time (cProfile roughly doubles the time)",
    )
    args = parser.parse_args()
    py = sys.executable
    total_start = time.perf_counter()

    if args.keep:
        root = args.keep.resolve()
        if root.exists() and any(root.iterdir()):
            parser.error(f"{root} is not empty")
        cleanup = None
    else:
        cleanup = tempfile.mkdtemp(prefix="clarion-bench-")
        root = Path(cleanup) / "config"
    try:
        t0 = time.perf_counter()
        counts = generate(root)
        files = yaml_files(root)
        print(
            f"Generated config in {root} ({time.perf_counter() - t0:.1f} s): "
            f"{counts['yaml_files']} YAML files ({counts['yaml_bytes'] / 1e6:.1f} MB), "
            f"{counts['template_files']} template files"
        )
        print(
            f"  {N_RECIPIENTS:,} recipients x (email + in_app + 2 push), "
            f"{N_CATEGORIES * EVENTS_PER_CATEGORY} events / {N_CATEGORIES} categories, "
            f"{N_ROUTES} routes, {N_FLOWS} flows, {N_CUSTOMER_MESSAGES} customer messages, "
            f"200 template names x 2 locales"
        )
        print()

        # -- build() in fresh processes --------------------------------------------------------
        build_s, build_wall, build_rss, digests = [], [], [], set()
        failed = False
        for i in range(args.runs):
            wall, rss, code, out = run_child([py, "-c", BUILD_CHILD, str(root)])
            if code != 0 or not out.strip():
                print(f"build subprocess failed (exit {code})")
                return 1
            result = json.loads(out)
            if result["diagnostics"] or not result["ok"]:
                print("The build reported diagnostics on the generated config:")
                for line in result["diagnostics"][:50]:
                    print("  " + line)
                if len(result["diagnostics"]) > 50:
                    print(f"  ... and {len(result['diagnostics']) - 50} more")
                failed = True
                break
            # The whole-process figure is what a user pays: the `clarion validate` command
            # (it compiles too, for the digest it prints), imports and exit included.
            wall, rss, code, out = run_child(
                [py, "-m", "clarion", "validate", str(root), "--format", "json"]
            )
            cli = json.loads(out) if out.strip() else {}
            if code != 0 or not cli.get("ok") or cli.get("digest") != result["digest"]:
                print(f"`clarion validate` failed or disagreed (exit {code}): {out[:500]}")
                return 1
            build_s.append(result["seconds"])
            build_wall.append(wall)
            build_rss.append(rss)
            digests.add(result["digest"])
            size = result["size"]
            print(
                f"  build run {i + 1}: build() {result['seconds']:.2f} s; "
                f"`clarion validate` process {wall:.2f} s, peak RSS {rss:.0f} MB"
            )
        if failed:
            return 1
        if len(digests) != 1:
            print(f"DIGEST DIFFERS between runs: {sorted(digests)}")
            return 1

        # -- reference: plain CSafeLoader parse ----------------------------------------------
        ref_s, ref_wall, ref_rss = [], [], []
        for i in range(args.runs):
            wall, rss, code, out = run_child([py, "-c", PARSE_CHILD, *map(str, files)])
            if code != 0:
                print(f"reference subprocess failed (exit {code})")
                return 1
            ref_s.append(json.loads(out)["seconds"])
            ref_wall.append(wall)
            ref_rss.append(rss)
            print(
                f"  parse run {i + 1}: yaml.load {ref_s[-1]:.2f} s, "
                f"process {wall:.2f} s, peak RSS {rss:.0f} MB"
            )
        print()

        b_min, b_med, _ = stats(build_s)
        w_min, w_med, _ = stats(build_wall)
        r_min, r_med, r_max = stats(build_rss)
        p_min, p_med, _ = stats(ref_s)
        pw_min, pw_med, _ = stats(ref_wall)
        pr_min, pr_med, _ = stats(ref_rss)
        print(f"validate+compile of the large config ({args.runs} runs, min / median):")
        print(
            f"  build()           {b_min:6.2f} / {b_med:6.2f} s    target <= {TARGET_BUILD_S:.0f} s"
            f"   [{verdict(b_med, TARGET_BUILD_S)}]"
        )
        print(
            f"  clarion validate  {w_min:6.2f} / {w_med:6.2f} s    "
            f"whole process, target <= {TARGET_BUILD_S:.0f} s"
            f"   [{verdict(w_med, TARGET_BUILD_S)}]"
        )
        print(
            f"  peak RSS          {r_min:6.0f} / {r_med:6.0f} MB   "
            f"target <= {TARGET_BUILD_MB:.0f} MB"
            f" [{verdict(r_max, TARGET_BUILD_MB)}]"
        )
        print(f"  table             {size:,} bytes, {digests.pop()} (identical in every run)")
        print(
            "reference: yaml.load(CSafeLoader) of the same YAML files, fresh process "
            "(min / median):"
        )
        print(f"  parse             {p_min:6.2f} / {p_med:6.2f} s")
        print(f"  whole process     {pw_min:6.2f} / {pw_med:6.2f} s")
        print(f"  peak RSS          {pr_min:6.0f} / {pr_med:6.0f} MB")
        print("ratio build / reference (medians):")
        print(
            f"  time x{b_med / p_med:.1f} (in-process), x{w_med / pw_med:.1f} (whole process); "
            f"peak RSS x{r_med / pr_med:.1f}"
        )
        print()
        if args.profile:
            print(
                f"cProfile of one build, top {args.profile} clarion functions by cumulative time:"
            )
            proc = subprocess.run(
                [py, "-c", PROFILE_CHILD, str(root), str(args.profile)],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=False,
            )
            text = proc.stdout.replace(str(REPO / "src") + os.sep, "")
            print(text[text.find("   ncalls") :] if "   ncalls" in text else text + proc.stderr)
    finally:
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)

    # -- clarion validate examples/config as a whole process ----------------------------------
    script = Path(py).with_name("clarion")
    cmd = [str(script)] if script.exists() else [py, "-m", "clarion"]
    cmd += ["validate", "examples/config"]
    val, ref = [], []
    for _ in range(args.validate_runs):
        wall, _, code, _ = run_child(cmd)
        if code != 0:
            print(f"`{' '.join(cmd)}` exited {code}")
            return 1
        val.append(wall)
        wall, _, _, _ = run_child([py, "-c", "import yaml"])
        ref.append(wall)
    v_min, v_med, v_max = stats(val)
    i_min, i_med, i_max = stats(ref)
    print(
        f"`clarion validate examples/config`, whole process ({args.validate_runs} runs, "
        "min / median / max):"
    )
    print(
        f"  clarion validate  {v_min:6.2f} / {v_med:6.2f} / {v_max:6.2f} s   "
        f"target <= {TARGET_VALIDATE_S} s  [{verdict(v_med, TARGET_VALIDATE_S)}]"
    )
    print(
        f"  python -c 'import yaml' {i_min:.3f} / {i_med:.3f} / {i_max:.3f} s  "
        f"(ratio x{v_med / i_med:.1f})"
    )
    print(f"\ntotal benchmark time {time.perf_counter() - total_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
