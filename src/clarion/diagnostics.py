"""Every finding Clarion reports is one `Diagnostic`, named by a stable code.

Codes are a contract with users (they grep for them, silence them, link to them): one prefix per
stage, never renumbered. `CODES` is the registry; `docs/diagnostics.md` documents every entry and a
test keeps the two in step. This module imports no other Clarion module.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "CODES",
    "Diagnostic",
    "Location",
    "Severity",
    "did_you_mean",
    "sort_key",
]


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Location(NamedTuple):
    """A 1-based position in a file; `file` is relative to where the command runs when printed.

    A named tuple, not a dataclass: the loader makes one per value of a config, hundreds of
    thousands for a large one, and tuples are several times cheaper to create.
    """

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    location: Location | None = None
    hint: str | None = None
    # Other places the finding is about, e.g. the first of two definitions of one name.
    related: tuple[tuple[str, Location], ...] = ()
    # Where in the config, as keys: ("recipients", "owner", "email", "address").
    path: tuple[str | int, ...] = ()
    # False when the source line may hold a secret and must never be echoed.
    excerpt: bool = True
    severity: Severity = field(default=Severity.ERROR)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code}")

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def as_json(self) -> dict[str, object]:
        loc = self.location
        return {
            "code": self.code,
            "severity": self.severity.value,
            "file": loc.file if loc else None,
            "line": loc.line if loc and loc.line else None,
            "column": loc.column if loc and loc.column else None,
            "message": self.message,
            "hint": self.hint,
        }


def sort_key(d: Diagnostic) -> tuple[str, int, int, str, str]:
    loc = d.location or Location("")
    return (loc.file, loc.line, loc.column, d.code, d.message)


def did_you_mean(value: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest known choice, or None when nothing is close."""
    close = difflib.get_close_matches(value, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


# code -> (short name, what it means). Loading CL0xx, shape CL1xx, names CL2xx, addresses CL3xx,
# data and templates CL4xx, time CL5xx, channels and secrets CL6xx, scenario files CL7xx,
# lint warnings CL9xx.
CODES: dict[str, tuple[str, str]] = {
    "CL001": ("not-utf8", "a config file is not valid UTF-8"),
    "CL002": ("too-large", "a config file is larger, or nested deeper, than the loader accepts"),
    "CL003": ("yaml-syntax", "a config file is not valid YAML"),
    "CL004": ("duplicate-key", "a mapping has the same key twice"),
    "CL005": ("not-a-mapping", "a config file's top level is not a mapping"),
    "CL006": ("alias-limit", "YAML aliases expand past the limit, or refer to themselves"),
    "CL007": ("duplicate-definition", "the same name is defined twice"),
    "CL008": ("no-config", "the directory holds no config files"),
    "CL009": ("unsupported-tag", "a YAML tag other than the standard JSON-like ones"),
    "CL010": ("bad-key", "a mapping key is not a plain string"),
    "CL101": ("version-missing", "`version` is not given"),
    "CL102": ("version-unknown", "`version` is not a version this Clarion knows"),
    "CL103": ("unknown-key", "a key the language does not have"),
    "CL104": ("wrong-type", "a value of the wrong type or form"),
    "CL105": ("missing-key", "a required key is missing"),
    "CL201": ("unknown-event", "an event type that is not in the catalogue"),
    "CL202": ("unknown-category", "a category no event belongs to"),
    "CL203": ("unknown-recipient", "a recipient that is not defined"),
    "CL204": ("empty-selector", "an event selector that matches no event"),
    "CL205": ("unknown-channel", "a channel that is not defined"),
    "CL206": ("unknown-template", "a template that does not exist"),
    "CL207": ("wrong-address-kind", "an address that does not fit its channel"),
    "CL208": ("reserved-name", "a name the language keeps for itself"),
    "CL301": ("invalid-email", "an email address that is not valid"),
    "CL302": ("invalid-phone", "a phone number that cannot be read"),
    "CL303": ("duplicate-address", "the same address twice on one channel"),
    "CL304": ("invalid-url", "a value that is not an Apprise URL"),
    "CL305": ("duplicate-device", "two push devices with one name"),
    "CL306": (
        "private-target",
        "a webhook or push URL whose host is a loopback, private or metadata address",
    ),
    "CL401": ("invalid-data-schema", "an event's `data` is not a valid JSON Schema"),
    "CL402": ("invalid-example", "an event's `example` does not satisfy its `data` schema"),
    "CL403": ("template-syntax", "a template is not valid Jinja2"),
    "CL404": ("template-render", "a template fails to render against its event's example"),
    "CL405": (
        "expression-syntax",
        "a `when`, `unless`, `key` or `until` expression does not parse",
    ),
    "CL406": ("expression-name", "an expression uses a name other than data, contact and event"),
    "CL501": ("invalid-duration", "a duration or offset that does not parse"),
    "CL502": ("invalid-time", "a time of day that is not HH:MM"),
    "CL503": ("unknown-timezone", "a time zone that is not an IANA name"),
    "CL504": ("unknown-locale", "a locale Clarion cannot format for"),
    "CL505": ("unknown-region", "a phone region that is not an ISO 3166 code"),
    "CL506": ("invalid-rate", "a channel rate that is not N/s, N/m or N/h"),
    "CL507": ("flow-shape", "flow steps in an order that cannot run"),
    "CL508": ("cancel-without-key", "`cancel_on` without a `key` to match runs by"),
    "CL509": (
        "wait-field",
        "a `wait.until` field that the event's example does not give as a date",
    ),
    "CL510": ("quiet-hours", "quiet hours that end when they start"),
    "CL511": ("send-unless", "a send step's `unless` that is not `read`"),
    "CL512": ("unless-read", "`unless: read` with no in-app send before it in the flow"),
    # 52x: pacing (digests and throttles)
    "CL520": ("digest-timezone", "a digest `at` with no time zone to read it in"),
    "CL521": ("pacing-key", "a throttle or digest `key` that is not a template expression"),
    "CL522": ("pacing-limit", "a throttle `limit` or digest `max` below 1"),
    "CL523": ("digest-every", "a digest `every` that cannot meet its `at`"),
    "CL601": ("no-sender", "an email channel whose Apprise URL names no sender"),
    "CL602": ("literal-secret", "a credential written into a URL instead of {secret:NAME}"),
    "CL603": ("no-to-placeholder", "a channel URL without the {to} placeholder"),
    "CL604": ("channel-url", "a channel whose `apprise` does not fit its address kind"),
    "CL605": ("secret-name", "a {secret:NAME} placeholder with an unusable name"),
    "CL606": ("customer-channel", "a channel customers cannot be reached on"),
    "CL607": ("fallback", "a `fallback` channel that can never take another's place"),
    "CL608": ("duplicate-provider", "the same provider URL twice in a channel's `apprise` list"),
    "CL701": ("scenario-shape", "a scenario file that is not name, start and steps"),
    "CL702": ("scenario-time", "a scenario time or duration that does not parse"),
    "CL901": ("critical-coverage", "a critical event reaches people on fewer than two channels"),
    "CL902": ("recipient-silent", "a recipient whose every address is off"),
    "CL903": ("unused-template", "a template file nothing refers to"),
    "CL904": ("no-example", "an event with no `example`: its templates are not render-checked"),
}
