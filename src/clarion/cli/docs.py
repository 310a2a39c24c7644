"""`clarion docs`: placeholder, being written."""

import click


@click.command("docs")
def docs_command() -> None:
    """Not ready yet."""
    raise click.UsageError("clarion docs is not ready yet")
