"""What every fuzz target shares: its budget, and a bound on the time and memory of one input.

CI runs each target for a few seconds (`FUZZ_SECONDS` worth of examples). A longer run is one
command (docs/security.md):

    CLARION_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/fuzz -p no:cacheprovider

Hypothesis's own `deadline` only reports a slow input after it has finished; a hang would never
finish, so each input runs under a real-time alarm that interrupts it instead."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, settings

# Enough for a few seconds per target on a shared 2-core machine.
DEFAULT_EXAMPLES = 60
# One input taking longer than this is a hang (the slowest legitimate one, a whole config
# checked and compiled, takes ~0.2 s).
SECONDS_PER_INPUT = float(os.environ.get("CLARION_FUZZ_SECONDS_PER_INPUT", "10"))
# One input making the process's peak resident size grow by more than this is unbounded memory.
MAX_GROWTH_BYTES = 256 * 1024 * 1024


def examples(default: int = DEFAULT_EXAMPLES) -> int:
    """The number of inputs per target: CLARION_FUZZ_EXAMPLES if set, else the CI budget."""
    given = os.environ.get("CLARION_FUZZ_EXAMPLES")
    return int(given) if given else default


def fuzz_settings(default: int = DEFAULT_EXAMPLES, **extra: Any) -> settings:
    return settings(
        max_examples=examples(default),
        deadline=None,  # the alarm below bounds an input; a deadline would flake on a busy CI
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
        print_blob=True,  # a failure prints the @reproduce_failure line for a regression test
        **extra,
    )


class Hang(AssertionError):
    """One input ran past SECONDS_PER_INPUT."""


def _peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@contextlib.contextmanager
def bounded(what: object = "input") -> Iterator[None]:
    """Run one input with a wall-clock alarm, and fail if it grew the peak memory too much."""

    def ring(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"{SECONDS_PER_INPUT:g} s were not enough for {what!r:.300}")

    before = _peak_bytes()
    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_INPUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    grown = _peak_bytes() - before
    assert grown < MAX_GROWTH_BYTES, f"{grown:,} bytes of peak memory for {what!r:.300}"
