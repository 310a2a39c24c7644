"""`clarion schema`: the JSON Schema of the config language (or of the routing table)."""

from __future__ import annotations

import json
from typing import Any

import click


def render_schema(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


@click.command("schema")
@click.option("--table", is_flag=True, help="Print the routing table's schema instead.")
def schema_command(table: bool) -> None:
    """Print the JSON Schema of the config language (editors, check-jsonschema)."""
    if table:
        from clarion.compile import table_json_schema

        click.echo(render_schema(table_json_schema()), nl=False)
    else:
        from clarion.check import json_schema

        click.echo(render_schema(json_schema()), nl=False)
