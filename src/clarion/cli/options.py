"""Pieces several commands share: the config-directory argument, builds, exit code 2."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import click

from clarion.check.secrets import line_may_hold_secret
from clarion.compile import Build, build
from clarion.diagnostics import Diagnostic
from clarion.load import LoadError

SourceLine = Callable[[Diagnostic], str | None]

config_dir = click.argument(
    "directory",
    required=False,
    default=".",
    type=click.Path(path_type=Path),
)


class EnvironmentProblem(click.ClickException):
    """Missing directory, unreadable file, port in use: one line, exit 2."""

    exit_code = 2


def build_or_exit(directory: Path, *, locations: bool = True, pause_gc: bool = True) -> Build:
    try:
        return build(directory, locations=locations, pause_gc=pause_gc)
    except LoadError as exc:
        raise EnvironmentProblem(str(exc)) from None


def settle_heap() -> None:
    """The command ends soon after the build: its objects will live until exit, so the cyclic
    collector should never walk them again (a full pass over a large config costs ~0.2 s)."""
    gc.freeze()


def source_line_of(result: Build) -> SourceLine:
    """The source line a diagnostic points at, unless it may hold a secret."""

    def source_line(d: Diagnostic) -> str | None:
        if not d.excerpt or result.document is None or d.location is None:
            return None
        if (d.location.file, d.location.line) in result.redacted:
            return None
        line = result.document.source_line(d.location)
        # Checked again here, whatever the stage that found the problem: a file that fails to
        # load or to match the schema has not been through the secrets rule.
        if line is None or line_may_hold_secret(line):
            return None
        return line

    return source_line
