"""`clarion render`: placeholder, being written."""

import click


@click.command("render")
def render_command() -> None:
    """Not ready yet."""
    raise click.UsageError("clarion render is not ready yet")
