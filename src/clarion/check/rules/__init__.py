"""Semantic rules, one concern per module; each yields every finding it has, located."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from clarion.check.context import CheckContext
from clarion.check.rules import (
    addresses,
    channels,
    digests_and_throttles,
    events,
    expressions,
    flows,
    lint,
    pacing,
    references,
    selectors,
    settings,
    templates,
)
from clarion.diagnostics import Diagnostic

Rule = Callable[[CheckContext], Iterator[Diagnostic]]

RULES: tuple[Rule, ...] = (
    settings.check,
    references.check,
    selectors.check,
    addresses.check,
    channels.check,
    events.check,
    expressions.check,
    flows.check,
    pacing.check,
    digests_and_throttles.check,
    templates.check,
    lint.check,
)

__all__ = ["RULES", "Rule"]
