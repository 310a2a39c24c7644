"""Pacing inside flows: a send step's `throttle`, and the `digest` step.

A run that reaches a `digest` step adds its event to the open digest of (flow, step, key): the
first run opens it and waits out the window, the others end there, their later sends recorded as
skipped with the reason `digested`. When the window is over, the first run closes the digest and
takes the sends after it once, rendered with `events` (every folded run's event) and `count`.
"""

from __future__ import annotations

from typing import Any

from clarion.compile.table import Flow, FlowDigest, Send
from clarion.runtime.pacing import render_key, throttle, with_changes
from clarion.runtime.store.base import DigestFold, NewDelivery, RunRow, Tx


def _scope(run: RunRow, step: int) -> str:
    return f"flow:{run.flow}/{step}"


def collect(
    tx: Tx,
    spec: FlowDigest,
    run: RunRow,
    step: int,
    event_id: str,
    context: dict[str, Any],
    now: float,
) -> DigestFold:
    key = render_key(spec.key, context)
    due = now + max(spec.window_seconds, 0)
    return tx.digest_fold(_scope(run, step), key, event_id, due, spec.max, None, now)


def resume(tx: Tx, flow: Flow, run: RunRow, step: int, event_id: str, now: float) -> int | None:
    """The digest the run's sends from `step` on are rendered with: the one it opened at the
    last `digest` step before them (closed, so that later runs start another), or None. Sends
    after a `wait` or an `emit` that follows the digest get it too (the checker gives every
    send after a digest step `events` and `count`)."""
    earlier = [i for i in range(min(step, len(flow.steps))) if flow.steps[i].digest is not None]
    if not earlier:
        return None
    return tx.digest_close(_scope(run, earlier[-1]), event_id, now)


def paced_send(
    tx: Tx,
    send: Send,
    run: RunRow,
    step: int,
    context: dict[str, Any],
    rows: list[NewDelivery],
    digest_id: int | None,
    now: float,
) -> list[NewDelivery]:
    if digest_id is not None:
        rows = [with_changes(r, digest_id=digest_id) for r in rows]
    if send.throttle is None:
        return rows
    return throttle(tx, send.throttle, _scope(run, step), context, rows, now)
