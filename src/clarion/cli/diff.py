"""`clarion diff`: placeholder, being written."""

import click


@click.command("diff")
def diff_command() -> None:
    """Not ready yet."""
    raise click.UsageError("clarion diff is not ready yet")
