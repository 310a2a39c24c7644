"""Scenario tests (design/scenarios.md): stories told to the real planner, scheduler and store on
a simulated clock, with every delivery recorded instead of sent."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clarion.check.addresses import AddressError, normalize_email, normalize_phone
from clarion.check.rendering import Message
from clarion.check.schema import dotted
from clarion.check.timing import parse_duration
from clarion.diagnostics import Diagnostic, Location, did_you_mean
from clarion.load import Document
from clarion.load.reader import read_file
from clarion.runtime.dispatch import Policy, SendResult
from clarion.runtime.schedule import iso
from clarion.runtime.service import Runtime
from clarion.runtime.store.base import Tx
from clarion.runtime.store.sqlite import SQLiteStore
from clarion.runtime.tableindex import TableIndex

RECORD_FIELDS = (
    "event",
    "event_id",
    "recipient",
    "channel",
    "to",
    "template",
    "at",
    "status",
    "reason",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expected(_Model):
    """A delivery as a scenario expects it; fields left out are not compared."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    event: str | None = None
    event_id: str | None = None
    recipient: str | None = None
    channel: str | None = None
    to: str | None = None
    template: str | None = None
    at: str | None = None
    status: str | None = None
    reason: str | None = None


class Rejected(_Model):
    code: str


ProviderState = Literal["up", "down"]


class Step(_Model):
    event: dict[str, Any] | None = None
    advance: str | None = None
    expect: list[Expected] | None = None
    expect_skipped: list[Expected] | None = None
    expect_rejected: Rejected | None = None
    # Mark every in-app item of this team recipient read, now (escalations: `unless: read`).
    read: str | None = None
    # Channel -> `down`/`up` for all its providers, or one state per provider URL, in order.
    providers: dict[str, ProviderState | list[ProviderState]] | None = None


class ScenarioSpec(_Model):
    name: str = Field(min_length=1)
    start: str
    steps: list[Step] = Field(min_length=1)


@dataclass
class Scenario:
    file: str
    spec: ScenarioSpec
    document: Document

    def where(self, *path: str | int) -> Location | None:
        return self.document.locate(path)


@dataclass
class Failure:
    step: int  # 1-based
    kind: str
    message: str
    location: Location | None
    expected: list[dict[str, Any]] = field(default_factory=list)
    actual: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Result:
    file: str
    name: str
    failures: list[Failure]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.failures


def load_scenario(path: Path, display: str) -> Scenario | list[Diagnostic]:
    """A scenario file, or located diagnostics for what is wrong with it."""
    loaded = read_file(path.read_bytes(), display)
    if loaded.diagnostics:
        return loaded.diagnostics
    document = Document(root=path.parent, data=loaded.data, values=loaded.values, keys=loaded.keys)
    document.files.append(display)
    document.lines[display] = loaded.lines
    try:
        spec = ScenarioSpec.model_validate(loaded.data)
    except ValidationError as exc:
        return [_shape_problem(document, error) for error in exc.errors(include_url=False)]
    problems: list[Diagnostic] = []
    if parse_instant(spec.start) is None:
        problems.append(
            Diagnostic(
                "CL702",
                f"start {spec.start!r} is not an ISO 8601 date-time",
                document.locate(("start",)),
                hint="e.g. start: 2026-03-01T08:00:00Z",
            )
        )
    for index, step in enumerate(spec.steps):
        given = [k for k in Step.model_fields if getattr(step, k) is not None]
        if len(given) != 1:
            problems.append(
                Diagnostic(
                    "CL701",
                    f"step {index + 1} must have exactly one of " + ", ".join(_STEP_KINDS),
                    document.locate(("steps", index)),
                )
            )
        if step.advance is not None and parse_advance(step.advance) is None:
            problems.append(
                Diagnostic(
                    "CL702",
                    f"advance {step.advance!r} is neither a duration nor a time",
                    document.locate(("steps", index, "advance")),
                    hint="a duration (30s, 15m, 2h, 10d) or an ISO 8601 date-time",
                )
            )
        for kind in ("expect", "expect_skipped"):
            for item_index, item in enumerate(getattr(step, kind) or []):
                if item.at is not None and parse_instant(item.at) is None:
                    problems.append(
                        Diagnostic(
                            "CL702",
                            f"at {item.at!r} is not an ISO 8601 date-time",
                            document.locate(("steps", index, kind, item_index, "at")),
                        )
                    )
    if problems:
        return problems
    return Scenario(display, spec, document)


_STEP_KINDS = tuple(Step.model_fields)


def _shape_problem(document: Document, error: Any) -> Diagnostic:
    loc = tuple(error["loc"])
    where = dotted(loc[:-1]) if loc else "the top level"
    hint = "a scenario has name, start and steps: " + ", ".join(_STEP_KINDS)
    if error["type"] == "extra_forbidden" and loc:
        key = str(loc[-1])
        known = (
            _STEP_KINDS
            if len(loc) == 3 and loc[0] == "steps"
            else [*ScenarioSpec.model_fields, *Expected.model_fields]
        )
        return Diagnostic(
            "CL701",
            f"unknown key {key!r} in {where}",
            document.locate_key(loc),
            hint=did_you_mean(key, known) or hint,
        )
    if error["type"] == "missing" and loc:
        return Diagnostic(
            "CL701", f"missing key {loc[-1]!r} in {where}", document.locate(loc[:-1]), hint=hint
        )
    return Diagnostic("CL701", f"{error['msg']} at {dotted(loc)}", document.locate(loc), hint=hint)


def parse_instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_advance(text: str) -> Callable[[datetime], datetime] | None:
    seconds = parse_duration(text)
    if seconds is not None:
        return lambda now: now + timedelta(seconds=seconds)
    moment = parse_instant(text)
    if moment is not None:
        return lambda now: max(now, moment)
    return None


class SimulatedProviders:
    """The scenario's providers: every send succeeds unless a `providers` step took the
    channel's provider (by its index in the channel's `apprise` list) down. Nothing leaves."""

    def __init__(self, table: TableIndex) -> None:
        self.where: dict[str, tuple[str, int]] = {}
        for name, channel in sorted(table.table.channels.items()):
            for index, url in enumerate(channel.apprise):
                self.where.setdefault(url, (name, index))
        self.down: set[tuple[str, int]] = set()

    def set(self, channel: str, states: ProviderState | list[ProviderState], count: int) -> None:
        given = states if isinstance(states, list) else [states] * max(count, 1)
        for index, state in enumerate(given):
            (self.down.add if state == "down" else self.down.discard)((channel, index))

    def prepare(self, url: str, to: str | None) -> None:
        """Nothing to prepare: no provider is reached."""

    def send(
        self,
        url: str,
        to: str | None,
        message: Message,
        attach: list[str],
        *,
        guard: bool = False,
    ) -> SendResult:
        if self.where.get(url) in self.down:
            return SendResult("failed", "the provider is down (scenario)", 0.0)
        return SendResult("sent", None, 0.0)


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.moment = start.timestamp()

    def __call__(self) -> float:
        return self.moment


def run_scenario(table: TableIndex, scenario: Scenario, store: SQLiteStore | None = None) -> Result:
    """`store`: a fresh one to tell the story to (default: a throwaway SQLite file)."""
    import time as _time

    began = _time.perf_counter()
    spec = scenario.spec
    start = parse_instant(spec.start)
    assert start is not None
    clock = SimulatedClock(start)
    store = store if store is not None else SQLiteStore(None)
    providers = SimulatedProviders(table)
    runtime = Runtime(table, store, Policy(workers=1, pace=False), clock=clock, sender=providers)
    failures: list[Failure] = []
    seen_sent: set[int] = set()
    seen_skipped: set[int] = set()
    last_answer: tuple[int, dict[str, Any]] | None = None
    try:
        runtime.dispatcher.run_pending()
        for index, step in enumerate(spec.steps):
            where = scenario.where("steps", index)
            if step.event is not None:
                [answer] = runtime.ingest([step.event])
                last_answer = (answer.status, answer.body)
                runtime.dispatcher.run_pending()
            elif step.advance is not None:
                move = parse_advance(step.advance)
                assert move is not None
                _advance(
                    runtime, store, clock, move(datetime.fromtimestamp(clock(), UTC)).timestamp()
                )
            elif step.read is not None:
                store.write(functools.partial(_mark_read, recipient=step.read, now=clock()))
                runtime.dispatcher.run_pending()
            elif step.providers is not None:
                for name, states in step.providers.items():
                    channel = table.table.channels.get(name)
                    if channel is None:
                        failures.append(
                            Failure(index + 1, "providers", f"unknown channel {name!r}", where)
                        )
                        continue
                    providers.set(name, states, len(channel.apprise))
            elif step.expect is not None:
                actual = [
                    r for r in _records(store) if r["status"] == "sent" and r["id"] not in seen_sent
                ]
                seen_sent.update(r["id"] for r in actual)
                failure = _match_exact(step.expect, actual, index, where)
                if failure:
                    failures.append(failure)
            elif step.expect_skipped is not None:
                actual = [
                    r
                    for r in _records(store)
                    if r["status"] == "skipped" and r["id"] not in seen_skipped
                ]
                seen_skipped.update(r["id"] for r in actual)
                failure = _match_among(step.expect_skipped, actual, index, where)
                if failure:
                    failures.append(failure)
            elif step.expect_rejected is not None:
                code = (last_answer[1].get("error") or {}).get("code") if last_answer else None
                if code != step.expect_rejected.code:
                    what = f"rejected with {code!r}" if code else "accepted"
                    failures.append(
                        Failure(
                            index + 1,
                            "expect_rejected",
                            f"expected the previous event to be rejected with "
                            f"{step.expect_rejected.code!r}, but it was {what}",
                            where,
                        )
                    )
    finally:
        runtime.stop(timeout=5)
    return Result(scenario.file, spec.name, failures, _time.perf_counter() - began)


def _mark_read(tx: Tx, recipient: str, now: float) -> int:
    return tx.mark_read(recipient, None, now)


def _advance(runtime: Runtime, store: SQLiteStore, clock: SimulatedClock, target: float) -> None:
    """Move the clock to `target`, stopping at each due time on the way so that everything
    happens at its own moment."""
    while True:
        due = store.next_due_at()
        if due is None or due > target:
            break
        clock.moment = max(clock.moment, due)
        if not runtime.dispatcher.run_pending():
            # due but not claimable yet (a lease): step past it rather than spin
            clock.moment = max(clock.moment, due + 1)
    clock.moment = target
    runtime.dispatcher.run_pending()


def _records(store: SQLiteStore) -> list[dict[str, Any]]:
    rows = store.records()
    out = []
    for row in rows:
        moment = row["sent_at"] if row["status"] == "sent" else row["created_at"]
        out.append(
            {
                "id": row["id"],
                "event": row["event_type"],
                "event_id": row["event_id"],
                "recipient": row["recipient"],
                "channel": row["channel"],
                "to": row["address"],
                "template": row["template"],
                "at": iso(moment),
                "status": row["status"],
                "reason": row["reason"],
            }
        )
    return out


def _normal_to(value: str) -> str:
    if "@" in value:
        try:
            return normalize_email(value).lower()
        except AddressError:
            return value
    if re.fullmatch(r"[+\d][\d\s().-]{5,}", value):
        try:
            return normalize_phone(value, None)
        except AddressError:
            return value
    return value


def _matches(expected: Expected, record: dict[str, Any]) -> bool:
    for key in RECORD_FIELDS:
        want = getattr(expected, key)
        if want is None:
            continue
        have = record.get(key)
        if key == "at":
            a, b = parse_instant(want), parse_instant(have) if have else None
            if a is None or b is None or a != b:
                return False
        elif key == "to":
            if have is None or _normal_to(want) != _normal_to(have):
                return False
        elif want != have:
            return False
    return True


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in RECORD_FIELDS if record.get(k) is not None}


def _given(expected: Expected) -> dict[str, Any]:
    return expected.model_dump(exclude_none=True)


def _match_exact(
    expected: list[Expected], actual: list[dict[str, Any]], index: int, where: Location | None
) -> Failure | None:
    left = list(actual)
    missing = []
    for item in expected:
        found = next((r for r in left if _matches(item, r)), None)
        if found is None:
            missing.append(item)
        else:
            left.remove(found)
    if not missing and not left:
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} expected delivery(ies) not sent")
    if left:
        parts.append(f"{len(left)} unexpected delivery(ies) sent")
    return Failure(
        index + 1,
        "expect",
        "; ".join(parts),
        where,
        [_given(e) for e in expected],
        [_shown(r) for r in actual],
    )


def _match_among(
    expected: list[Expected], actual: list[dict[str, Any]], index: int, where: Location | None
) -> Failure | None:
    missing = [item for item in expected if not any(_matches(item, r) for r in actual)]
    if not missing:
        return None
    return Failure(
        index + 1,
        "expect_skipped",
        f"{len(missing)} expected skipped delivery(ies) not recorded",
        where,
        [_given(e) for e in missing],
        [_shown(r) for r in actual],
    )
