"""`clarion validate [DIR]`: load, check, render-check templates; print every finding."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from clarion.cli import reporters
from clarion.cli.options import build_or_exit, config_dir, settle_heap, source_line_of

FORMATS = ("text", "json", "github", "sarif")


@click.command("validate")
@config_dir
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format. Default: text, or github when GITHUB_ACTIONS=true.",
)
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
def validate_command(directory: Path, fmt: str | None, strict: bool) -> None:
    """Check a config directory (default: the current one) and print every problem."""
    if fmt is None:
        fmt = "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"
    result = build_or_exit(directory)
    settle_heap()
    diagnostics = result.diagnostics
    failed = not result.ok or (strict and bool(diagnostics))
    if fmt == "json":
        click.echo(reporters.as_json(not failed, result.digest, diagnostics))
    elif fmt == "github":
        if diagnostics:
            click.echo(reporters.github(diagnostics))
    elif fmt == "sarif":
        click.echo(reporters.sarif(diagnostics))
    else:
        color = sys.stdout.isatty()
        if diagnostics:
            click.echo(reporters.text(diagnostics, source_line_of(result), color))
            click.echo()
        if failed:
            click.echo(f"{directory}: {reporters.summary(diagnostics)}", err=True)
        else:
            tail = f" ({reporters.summary(diagnostics)})" if diagnostics else ""
            click.echo(f"{directory}: valid{tail}, {result.digest}", err=True)
    raise SystemExit(1 if failed else 0)
