"""`clarion compile [DIR] [-o FILE]`: write the routing table as canonical JSON."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from clarion.cli import reporters
from clarion.cli.options import (
    EnvironmentProblem,
    build_or_exit,
    config_dir,
    settle_heap,
    source_line_of,
)


@click.command("compile")
@config_dir
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the table here instead of standard output.",
)
def compile_command(directory: Path, output: Path | None) -> None:
    """Compile a config directory into one immutable routing table (canonical JSON)."""
    result = build_or_exit(directory)
    settle_heap()
    if result.diagnostics:
        color = sys.stderr.isatty()
        click.echo(reporters.text(result.diagnostics, source_line_of(result), color), err=True)
    if result.data is None:
        click.echo(
            f"{directory}: {reporters.summary(result.diagnostics)}; nothing written", err=True
        )
        raise SystemExit(1)
    if output is None:
        sys.stdout.buffer.write(result.data)
        sys.stdout.flush()
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_name(output.name + ".partial")
            partial.write_bytes(result.data)
            partial.replace(output)  # never leave a half-written table behind
        except OSError as exc:
            raise EnvironmentProblem(f"{output}: {exc.strerror or exc}") from None
    click.echo(result.digest, err=True)
