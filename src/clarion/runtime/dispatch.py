"""Sending: workers claim due deliveries, render them, send through Apprise, record the outcome.

Shaped by measured Apprise facts (docs/design.md): one plugin object per target URL, built once
with `Apprise.instantiate` and cached, with Apprise's own pacing (`request_rate_per_sec`) and
retries switched off; a worker pool of our own sized for provider latency; retries with
exponential backoff and full jitter; `dead` after the last try; a timeout is an unknown outcome,
so phone channels (SMS, WhatsApp: a duplicate costs money and trust) are not retried at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from jinja2 import TemplateError

from clarion.check.addresses import mask
from clarion.check.rendering import Message, render
from clarion.check.secrets import PLACEHOLDER
from clarion.check.targets import guarded, not_public
from clarion.runtime import fallback, flows, pacing
from clarion.runtime.envelope import EventIn
from clarion.runtime.ingest import accept_raw
from clarion.runtime.planner import ContactState, template_context
from clarion.runtime.store.base import ClaimedDelivery, Outcome, RunRow, Store, Tx
from clarion.runtime.tableindex import TableIndex

log = logging.getLogger("clarion.dispatch")


@dataclass(frozen=True)
class Policy:
    workers: int = 64  # sends in flight; providers answer in 50-500 ms, so size for I/O
    batch: int = 64
    lease_seconds: float = 120.0
    max_attempts: int = 6
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    phone_hold_seconds: float = 900.0  # after an unknown outcome on SMS/WhatsApp
    rate_wait_seconds: float = 1.0  # a worker waits this long for a rate slot, no longer
    dry_run: bool = False
    pace: bool = True  # channel rates; `clarion test`'s simulated providers have none


# Paces for providers that limit sends and that Apprise does not pace for us (we switch its
# pacing off), per channel and scheme, as (count, seconds). Sources in docs/config.md; a
# channel's own `rate:` replaces these.
PROVIDER_RATES: dict[str, tuple[int, int]] = {
    "twilio": (1, 1),  # 1 message per second per long-code sender number
    "vonage": (30, 1),  # 30 API requests per second per account
    "nexmo": (30, 1),  # the same provider under its old scheme
    "whatsapp": (80, 1),  # Cloud API: 80 messages per second per business number
    "tgram": (30, 1),  # Telegram bots: about 30 messages per second
    "slack": (1, 1),  # incoming webhooks: 1 message per second
}


@dataclass(frozen=True)
class SendResult:
    result: str  # sent | failed | timeout | error | refused (a non-public address)
    error: str | None
    elapsed: float


class Sender(Protocol):
    """Hands one message to one provider URL: Apprise, or `clarion test`'s simulated providers."""

    def prepare(self, url: str, to: str | None) -> None:
        """Get ready to send to `url` (a paced send then leaves on its slot)."""

    def send(
        self,
        url: str,
        to: str | None,
        message: Message,
        attach: list[str],
        *,
        guard: bool = False,
    ) -> SendResult: ...


class Secrets:
    """`{secret:NAME}` resolved from the environment once, and redacted from any text."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self._redact = sorted((v for v in values.values() if len(v) >= 3), key=len, reverse=True)

    def fill(self, url: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.values.get(m.group(1), m.group(0)), url)

    def redact(self, text: str) -> str:
        for value in self._redact:
            text = text.replace(value, "<secret>")
            text = text.replace(quote(value, safe=""), "<secret>")
        return text


class _ThreadLog(logging.Handler):
    """Apprise reports why a send failed only in its log; collect it per sending thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(self.local, "lines", None)
        if lines is not None and len(lines) < 50:
            try:
                lines.append(record.getMessage())
            except Exception:
                lines.append(str(record.msg))


class _AddressGuard:
    """Refuses non-public addresses to a guarded send, at the moment it connects.

    Apprise's HTTP plugins go through requests and urllib3, which resolve every host (the URL's,
    a redirect's, literal addresses too) with `socket.getaddrinfo` right before connecting to
    exactly the addresses it returns. Checking those addresses, not a lookup of our own done
    earlier, leaves a DNS-rebinding answer nothing to slip between the check and the connect.
    The check is switched on per sending thread, for guarded sends only: email to a local relay
    and the API's own lookups are untouched."""

    def __init__(self) -> None:
        self.local = threading.local()
        self._original = socket.getaddrinfo

    def install(self) -> None:
        if getattr(socket.getaddrinfo, "__self__", None) is not self:
            socket.getaddrinfo = self.getaddrinfo

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        results = self._original(host, port, *args, **kwargs)
        if getattr(self.local, "on", False):
            for *_, sockaddr in results:
                try:
                    address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
                except ValueError:
                    continue
                kind = not_public(address)
                if kind is not None:
                    self.local.refused = (
                        f"refused: {host} is {address}, a {kind} address "
                        "(set defaults.allow_private_targets: true to allow)"
                    )
                    raise socket.gaierror(socket.EAI_NONAME, self.local.refused)
        return results


_GUARD = _AddressGuard()


class AppriseSender:
    def __init__(self, secrets: Secrets) -> None:
        import apprise

        self._apprise = apprise
        self.secrets = secrets
        self._objects: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._capture = _ThreadLog()
        logger = logging.getLogger("apprise")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(self._capture)

    def _object(self, url: str) -> Any:
        found = self._objects.get(url)
        if found is None:
            with self._lock:
                found = self._objects.get(url)
                if found is None:
                    found = self._apprise.Apprise.instantiate(url, suppress_exceptions=True)
                    if found is None:
                        raise ValueError("Apprise cannot use this URL")
                    found.request_rate_per_sec = 0  # our workers pace; Apprise would wait 5.5 s
                    self._objects[url] = found
        return found

    def _resolve(self, url: str, to: str | None) -> str:
        resolved = self.secrets.fill(url)
        if to is not None:
            resolved = resolved.replace("{to}", quote(to, safe="@+"))
        return resolved

    def prepare(self, url: str, to: str | None) -> None:
        """Build the target's plugin object now, so that a paced send leaves on its slot and
        not a plugin discovery later. A URL Apprise refuses is reported by `send`."""
        with contextlib.suppress(Exception):
            self._object(self._resolve(url, to))

    def send(
        self,
        url: str,
        to: str | None,
        message: Message,
        attach: list[str],
        *,
        guard: bool = False,
    ) -> SendResult:
        """`guard`: refuse to connect to non-public addresses (see _AddressGuard)."""
        start = time.perf_counter()
        resolved = self._resolve(url, to)
        self._capture.local.lines = []
        if guard:
            _GUARD.install()
        _GUARD.local.on = guard
        _GUARD.local.refused = None
        try:
            target = self._object(resolved)
            kwargs: dict[str, Any] = {"body": message.body or " "}
            if message.subject:
                kwargs["title"] = message.subject
            if message.body.lstrip().startswith("<"):
                kwargs["body_format"] = self._apprise.NotifyFormat.HTML
            if attach:
                kwargs["attach"] = self._apprise.AppriseAttachment(attach)
            ok = bool(target.notify(**kwargs))
        except Exception as exc:
            return SendResult("error", self._why([str(exc)]), time.perf_counter() - start)
        finally:
            _GUARD.local.on = False
            lines: list[str] = getattr(self._capture.local, "lines", [])
            self._capture.local.lines = None
        elapsed = time.perf_counter() - start
        refused: str | None = _GUARD.local.refused
        if refused is not None:
            return SendResult("refused", self.secrets.redact(refused), elapsed)
        if ok:
            return SendResult("sent", None, elapsed)
        text = " ".join(lines).lower()
        result = "timeout" if ("timed out" in text or "timeout" in text) else "failed"
        return SendResult(result, self._why(lines), elapsed)

    def _why(self, lines: list[str]) -> str:
        useful = [line for line in lines if line and not line.startswith("Notification ")]
        return self.secrets.redact(" | ".join(useful[-3:]))[:500] or "the provider refused"


class Dispatcher:
    def __init__(
        self,
        store: Store,
        table: Callable[[], TableIndex],
        sender: Sender | None,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.time,
        on_outcome: Callable[[ClaimedDelivery, Outcome], None] | None = None,
    ) -> None:
        self.store = store
        self.table = table
        self.sender = sender
        self.policy = policy
        self.clock = clock
        self.on_outcome = on_outcome
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._inflight = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(policy.workers, thread_name_prefix="clarion-send")
        self._thread = threading.Thread(target=self._loop, name="clarion-dispatch", daemon=True)
        self._random = random.Random()
        self._outcomes = _Outcomes(store, clock, table)
        self.released = 0  # claimed deliveries given back unsent at stop

    def start(self) -> None:
        if self.store.single_process:
            now = self.clock()
            released = self.store.write(
                functools.partial(
                    _release_all, now=now, phone_due=now + self.policy.phone_hold_seconds
                )
            )
            if released:
                log.warning(
                    "sends interrupted by the last stop are queued again (outcome unknown)",
                    extra={"count": len(released)},
                )
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop claiming; let sends in flight finish and be recorded, within `timeout`. A claimed
        delivery whose send has not begun is given back unsent (no attempt counted). Returns
        False when sends were still in flight at the deadline: their outcome is unknown, and
        the next start queues them again as interrupted."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        while not self.idle and time.monotonic() < deadline:
            time.sleep(0.02)
        # Not wait=True: a send stuck past the deadline must not hold the process.
        self._pool.shutdown(wait=False, cancel_futures=True)
        return self.idle

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._inflight == 0

    def _loop(self) -> None:
        next_release = 0.0
        while not self._stopping.is_set():
            now = self.clock()
            try:
                if now >= next_release:
                    hold = now + self.policy.phone_hold_seconds
                    self.store.write(functools.partial(_release, now=now, phone_due=hold))
                    next_release = now + self.policy.lease_seconds / 4
                self.fire_due_runs(now)
                with self._lock:
                    free = self.policy.workers - self._inflight
                if free == 0:
                    # Every worker is busy: nothing to claim until one finishes (it wakes us).
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                limit = min(free, self.policy.batch)
                claimed = self.store.write(
                    functools.partial(
                        _claim, now=now, limit=limit, lease=self.policy.lease_seconds
                    ),
                    durable=False,
                )
                for delivery in claimed:
                    with self._lock:
                        self._inflight += 1
                    self._pool.submit(self._deliver, delivery)
                if len(claimed) == limit:
                    continue  # more may be due right now
                due = self.store.next_due_at()
            except Exception:
                log.exception("dispatch loop: store unavailable, retrying in 1 s")
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            # Nothing more is due now: sleep until the next due time or a wake (a new row, a
            # finished send). No polling.
            wait = 5.0 if due is None else max(0.0, min(5.0, due - self.clock()))
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    def fire_due_runs(self, now: float) -> int:
        """Advance every flow run whose next step is due (the scheduler's half of the loop)."""
        fired = 0
        while self.store.runs_due(now):
            runs = self.store.write(
                functools.partial(
                    _claim_runs, now=now, limit=self.policy.batch, lease=self.policy.lease_seconds
                ),
                durable=False,
            )
            # Every claimed run in its own job, all submitted at once: they share commits. A
            # step that is lost to a power cut is taken again when its lease runs out.
            table, moment = self.table(), self.clock()
            pending = [
                (
                    run,
                    self.store.submit(
                        functools.partial(_advance, table=table, run=run, now=moment), durable=False
                    ),
                )
                for run in runs
            ]
            for run, future in pending:
                try:
                    future.result()
                except Exception:  # its lease runs out and it is tried again
                    log.exception("flow run %s: a step failed", run.id, extra={"run_id": run.id})
            fired += len(runs)
            if len(runs) < self.policy.batch:
                break
        return fired

    def run_pending(self) -> int:
        """Synchronously, in this thread: fire due runs and send every due delivery, until
        nothing more is due at the clock's time. What `clarion test` drives its clock with."""
        done = 0
        while True:
            now = self.clock()
            fired = self.fire_due_runs(now)
            claimed = self.store.write(
                functools.partial(_claim, now=now, limit=self.policy.batch, lease=60.0),
                durable=False,
            )
            for delivery in claimed:
                with self._lock:
                    self._inflight += 1
                recorded = self._deliver(delivery)
                if recorded is not None:
                    # In order: what the next step looks at (an emit, a digest) is committed.
                    with contextlib.suppress(Exception):
                        recorded.result()
            done += fired + len(claimed)
            if not fired and not claimed:
                return done

    def _deliver(self, delivery: ClaimedDelivery) -> Future[None] | None:
        """Send, and have the outcome recorded. The worker is free as soon as the send is done:
        the delivery stays leased until its outcome commits, so no one else takes it, and
        waiting for that commit would only idle the worker. Returns the recording."""
        recorded: Future[None] | None = None
        try:
            if self._stopping.is_set():
                self._give_back(delivery)  # claimed as the stop came: never begun
                return None
            attempted = self._attempt(delivery)
            if attempted is None:
                return None  # given back unsent (see _wait_for_slot)
            outcome = dataclasses.replace(attempted, claimed_attempts=delivery.attempts)
            recorded = self._outcomes.record(outcome, delivery)
            recorded.add_done_callback(functools.partial(self._recorded, delivery, outcome))
        except Exception:
            log.exception("delivery %s: could not record the outcome", delivery.id)
        finally:
            with self._lock:
                self._inflight -= 1
            self._wake.set()
        return recorded

    def _recorded(self, delivery: ClaimedDelivery, outcome: Outcome, done: Future[None]) -> None:
        if done.exception() is not None:
            # Its lease runs out and it is released as a timeout: sent again, never lost.
            log.error(
                "delivery %s: could not record the outcome",
                delivery.id,
                extra={"error": str(done.exception())},
            )
        elif self.on_outcome is not None:
            self.on_outcome(delivery, outcome)

    def _wait_for_slot(self, delivery: ClaimedDelivery) -> bool:
        """Hold the send until its channel's rate allows it. True: send now. False: it was
        given back (stopping, or no slot within `rate_wait_seconds`: due again at the slot)."""
        rate = self._rate(delivery)
        if rate is None:
            return True
        key, count, per = rate
        now = self.clock()
        slot = self.store.write(
            functools.partial(
                _take_slot,
                key=key,
                count=count,
                per=per,
                now=now,
                horizon=self.policy.rate_wait_seconds,
            ),
            durable=False,
        )
        if slot - now > self.policy.rate_wait_seconds:
            self._give_back(delivery, due_at=slot)
            return False
        if slot > now and self._stopping.wait(slot - now):
            self._give_back(delivery)
            return False
        return True

    def _give_back(self, delivery: ClaimedDelivery, due_at: float | None = None) -> None:
        job = functools.partial(_unclaim, ids=[delivery.id], now=self.clock(), due_at=due_at)
        self.store.write(job, durable=False)
        if due_at is None:
            with self._lock:
                self.released += 1

    def _rate(self, delivery: ClaimedDelivery) -> tuple[str, int, float] | None:
        if delivery.kind == "inbox" or self.policy.dry_run or not self.policy.pace:
            return None
        if self.sender is None:
            return None
        channel = self.table().table.channels.get(delivery.channel)
        if channel is None:
            return None
        if channel.rate is not None:
            return f"channel:{delivery.channel}", channel.rate.count, channel.rate.per_seconds
        url = delivery.url or (channel.apprise[0] if channel.apprise else "")
        scheme = url.split("://", 1)[0].lower()
        default = PROVIDER_RATES.get(scheme)
        if default is None:
            return None
        return f"channel:{delivery.channel}:{scheme}", default[0], default[1]

    def _attempt(self, delivery: ClaimedDelivery) -> Outcome | None:
        policy = self.policy
        if delivery.attempts >= policy.max_attempts:
            return Outcome(delivery.id, "dead", "error", "no attempts left", 0.0)
        table = self.table()
        try:
            message = self._render(table, delivery)
        except (TemplateError, KeyError, ValueError) as exc:
            detail = f"render failed: {getattr(exc, 'message', None) or exc}"
            return Outcome(delivery.id, "dead", "error", detail[:500], 0.0)
        if delivery.kind == "inbox":
            inbox = {
                "title": message.subject,
                "body": message.body,
                "link": message.link,
                "keep": table.table.defaults.inbox_keep,
            }
            return Outcome(delivery.id, "sent", "sent", None, 0.0, inbox=inbox)
        if policy.dry_run or self.sender is None:
            return Outcome(delivery.id, "sent", "dry-run", None, 0.0)
        channel = table.table.channels.get(delivery.channel)
        urls = channel.apprise if channel is not None else []
        providers = [delivery.url] if delivery.url else list(urls)
        if not providers:
            return Outcome(delivery.id, "dead", "error", "the channel has no Apprise URL", 0.0)
        attach = self._attachments(table, delivery)
        self.sender.prepare(providers[0], delivery.to)
        if not self._wait_for_slot(delivery):
            return None
        result, provider, failovers = self._failover(table, delivery, providers, message, attach)
        where = None if delivery.url else provider
        if result.result == "sent":
            return Outcome(
                delivery.id,
                "sent",
                "sent",
                None,
                result.elapsed,
                provider=where,
                failovers=failovers,
            )
        if result.result == "refused":  # the same address next time: no point retrying
            return Outcome(
                delivery.id,
                "dead",
                "refused",
                result.error,
                result.elapsed,
                provider=where,
                failovers=failovers,
            )
        attempt = delivery.attempts + 1
        if attempt >= policy.max_attempts:
            return Outcome(
                delivery.id,
                "dead",
                result.result,
                result.error,
                result.elapsed,
                provider=where,
                failovers=failovers,
            )
        delay = self._random.uniform(0, min(policy.backoff_cap, policy.backoff_base * 2**attempt))
        if result.result == "timeout" and delivery.kind == "phone":
            delay = max(delay, policy.phone_hold_seconds)
        return Outcome(
            delivery.id,
            "failed",
            result.result,
            result.error,
            result.elapsed,
            next_due_at=self.clock() + delay,
            provider=where,
            failovers=failovers,
        )

    def _failover(
        self,
        table: TableIndex,
        delivery: ClaimedDelivery,
        providers: list[str],
        message: Message,
        attach: list[str],
    ) -> tuple[SendResult, int, int]:
        """Each provider URL in order until one takes the message: (last result, index of the
        provider that gave it, how many times the next provider was tried). A timeout on a
        phone channel stops there: the message may be on its way, and SMS costs twice."""
        assert self.sender is not None
        errors: list[str] = []
        elapsed = 0.0
        index = 0
        private_ok = table.table.defaults.allow_private_targets
        for index, url in enumerate(providers):
            guard = not private_ok and guarded(url, delivery.kind)
            result = self.sender.send(url, delivery.to, message, attach, guard=guard)
            elapsed += result.elapsed
            error = result.error
            if error and delivery.to and delivery.kind in ("email", "phone"):
                # Provider errors often quote the address; logs and the API show it masked.
                error = error.replace(delivery.to, mask(delivery.to))
            if result.result == "sent":
                return SendResult("sent", None, elapsed), index, index
            errors.append(f"provider {index}: {error}" if len(providers) > 1 else str(error))
            if result.result == "timeout" and delivery.kind == "phone":
                break
        return SendResult(result.result, "; ".join(errors)[:1000], elapsed), index, index

    def _context(self, table: TableIndex, delivery: ClaimedDelivery) -> dict[str, Any]:
        context = dict(_event_context(table, delivery.envelope))
        if not delivery.recipient.startswith("contact"):
            context["recipient"] = delivery.recipient
        return context

    def _render(self, table: TableIndex, delivery: ClaimedDelivery) -> Message:
        name = delivery.template or delivery.event_type
        context = self._context(table, delivery)
        if delivery.digest_id is not None:
            source, locale = pacing.template_source(table, name, delivery.channel, delivery.locale)
            events = pacing.items(table, self.store.digest_events(delivery.digest_id))
            context = {**context, "events": events, "count": len(events)}
        else:
            source, locale = table.template_source(name, delivery.channel, delivery.locale)
        return render(source, context, locale=locale, timezone_name=delivery.timezone)

    def _attachments(self, table: TableIndex, delivery: ClaimedDelivery) -> list[str]:
        message = table.table.customer_messages.get(delivery.event_type)
        if not delivery.recipient.startswith("contact") or message is None or not message.attach:
            return []
        rendered = render(
            message.attach,
            self._context(table, delivery),
            locale=delivery.locale,
            timezone_name=delivery.timezone,
        ).body.strip()
        return [rendered] if rendered else []


def _release(tx: Tx, now: float, phone_due: float) -> list[tuple[int, str]]:
    return tx.release_expired(now, phone_due)


def _release_all(tx: Tx, now: float, phone_due: float) -> list[tuple[int, str]]:
    return tx.release_expired(now, phone_due, everything=True)


def _claim(tx: Tx, now: float, limit: int, lease: float) -> list[ClaimedDelivery]:
    return tx.claim_due(now, limit, lease)


class _Outcomes:
    """Outcomes recorded together: those that finish while a write is waiting join it, so a
    burst of sends costs a few store jobs, not one each (on PostgreSQL, a few round trips)."""

    def __init__(
        self, store: Store, clock: Callable[[], float], table: Callable[[], TableIndex]
    ) -> None:
        self._store = store
        self._clock = clock
        self._table = table
        self._lock = threading.Lock()
        self._pending: list[tuple[Outcome, ClaimedDelivery]] = []
        self._future: Future[None] | None = None

    def record(self, outcome: Outcome, delivery: ClaimedDelivery) -> Future[None]:
        """Resolves once the outcome is committed (with whatever joined it)."""
        with self._lock:
            if self._future is not None and self._future.done():
                # Its job never ran (the store failed the write before it could, e.g. the
                # database was unreachable), so it never closed its batch: those outcomes were
                # failed with it; later ones need a write of their own.
                self._pending, self._future = [], None
            self._pending.append((outcome, delivery))
            if self._future is None:
                job = functools.partial(self._write, batch=self._pending)
                self._future = self._store.submit(job, durable=False)
            return self._future

    def _write(self, tx: Tx, batch: list[tuple[Outcome, ClaimedDelivery]]) -> None:
        with self._lock:
            if self._pending is batch:  # closed to newcomers; a store that reruns the job
                self._pending, self._future = [], None  # (PostgreSQL) writes the same batch
        now = self._clock()
        recorded = set(tx.complete([outcome for outcome, _ in batch], now))
        for outcome, delivery in batch:
            if outcome.status == "dead" and delivery.fallback and outcome.delivery_id in recorded:
                try:
                    with tx.savepoint():  # one fallback that fails leaves the others' outcomes
                        fallback.after_dead(tx, self._table(), delivery, now)
                except Exception:
                    log.exception("delivery %s: its fallback could not be planned", delivery.id)


def _unclaim(tx: Tx, ids: list[int], now: float, due_at: float | None) -> int:
    return tx.unclaim(ids, now, due_at)


def _take_slot(tx: Tx, key: str, count: int, per: float, now: float, horizon: float) -> float:
    return tx.take_slot(key, count, per, now, horizon)


def _claim_runs(tx: Tx, now: float, limit: int, lease: float) -> list[RunRow]:
    return tx.claim_due_runs(now, limit, lease)


def _advance(tx: Tx, table: TableIndex, run: RunRow, now: float) -> None:
    # Read again (and, on PostgreSQL, locked): a run another worker advanced since the claim,
    # after its lease ran out, has moved on and must not take the same step twice.
    current = tx.run(run.id)
    if current is None or (current.status, current.step, current.due_at) != (
        run.status,
        run.step,
        run.due_at,
    ):
        return
    flows.advance(tx, table, current, now, accept_raw)


@functools.lru_cache(maxsize=256)
def _event_context(table: TableIndex, envelope: str) -> dict[str, Any]:
    # An event fans out to many deliveries, usually sent within moments of each other: parse it
    # once. (The context is only read by templates: the sandbox is immutable.)
    event = EventIn.model_validate(json.loads(envelope))
    contact = None
    if event.contact is not None:
        c = event.contact
        contact = ContactState(
            id=c.id,
            email=c.email,
            phone=c.phone,
            name=c.name,
            locale=c.locale,
            timezone=c.timezone,
        )
    return template_context(event, table, contact)
