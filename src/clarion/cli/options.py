"""Pieces several commands share: the config-directory argument, builds, exit code 2."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path

import click

from clarion.check.secrets import line_may_hold_secret
from clarion.cli import reporters
from clarion.compile import Build, RoutingTable, build
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


def table_or_exit(source: Path, *, nothing: str = "") -> tuple[RoutingTable, bytes]:
    """The routing table of a config directory (built; its findings printed) or of a compiled
    table file, with its canonical bytes. A broken config or a file that is not a table exits 1
    (`nothing` is added to the summary line, e.g. "; nothing written"); no such path exits 2."""
    if not source.exists():
        raise EnvironmentProblem(f"{source}: no such file or directory")
    if source.is_file():
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise EnvironmentProblem(f"{source}: {exc.strerror or exc}") from None
        try:
            return RoutingTable.model_validate_json(raw), raw
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            click.echo(
                f"{source}: not a config directory or a Clarion routing table ({first})", err=True
            )
            raise SystemExit(1) from None
    result = build_or_exit(source)
    settle_heap()
    if result.diagnostics:
        color = sys.stderr.isatty()
        click.echo(reporters.text(result.diagnostics, source_line_of(result), color), err=True)
    if result.table is None or result.data is None:
        click.echo(f"{source}: {reporters.summary(result.diagnostics)}{nothing}", err=True)
        raise SystemExit(1)
    return result.table, result.data


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
