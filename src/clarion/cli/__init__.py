"""Stage 5: the `clarion` command. One thin module per command; exit codes are a contract:
0 success, 1 the input has errors, 2 usage or environment problems."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from clarion import __version__
from clarion.cli.compile import compile_command
from clarion.cli.diff import diff_command
from clarion.cli.docs import docs_command
from clarion.cli.explain import explain_command
from clarion.cli.render import render_command
from clarion.cli.schema import schema_command
from clarion.cli.send import send_command
from clarion.cli.serve import serve_command
from clarion.cli.test import test_command
from clarion.cli.validate import validate_command

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clarion")
@click.option("--debug", is_flag=True, help="Show a traceback on internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Clarion: notifications as code. Validate, compile and (soon) serve a config directory."""
    ctx.obj = {"debug": debug}


cli.add_command(validate_command)
cli.add_command(compile_command)
cli.add_command(diff_command)
cli.add_command(render_command)
cli.add_command(docs_command)
cli.add_command(schema_command)
cli.add_command(serve_command)
cli.add_command(test_command)
cli.add_command(explain_command)
cli.add_command(send_command)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: never a traceback for bad input, one line and exit 2 for a bug."""
    console = argv is None
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="clarion", standalone_mode=True)
    except SystemExit as exc:
        if console:
            _exit_now(exc.code)
        raise
    except Exception as exc:
        if "--debug" in args:
            raise
        click.echo(
            f"clarion: internal error: {type(exc).__name__}: {exc}\n"
            "hint: rerun with --debug for a traceback, and report it",
            err=True,
        )
        sys.exit(2)


def _exit_now(code: object) -> None:
    # The output is written; tearing down a large config's objects one by one would add a
    # third of a second to a command whose answer is already out. Only for the console script:
    # callers of main(argv) (tests, embedding) get SystemExit as usual.
    status = code if isinstance(code, int) else (0 if code is None else 1)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        status = status or 2
    os._exit(status)


if __name__ == "__main__":
    main()
