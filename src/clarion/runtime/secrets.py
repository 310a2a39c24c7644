"""Which `{secret:NAME}` a table needs, and their values from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from clarion.check.secrets import secret_names
from clarion.compile.table import RoutingTable


class MissingSecret(Exception):
    """A secret the table needs is not set; the message names the variable, never a value."""


def needed(table: RoutingTable) -> dict[str, str]:
    """NAME -> where it is used (a channel or a device), for messages."""
    out: dict[str, str] = {}
    for name, channel in sorted(table.channels.items()):
        for url in channel.apprise:
            for secret in secret_names(url):
                out.setdefault(secret, f"channel {name!r}")
    for target in table.targets:
        for secret in secret_names(target.url or ""):
            out.setdefault(secret, f"device {target.id!r}")
    return out


def resolve(table: RoutingTable, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    missing: list[str] = []
    for secret, where in needed(table).items():
        value = env.get(secret)
        if value:
            values[secret] = value
        else:
            missing.append(f"{secret} (for {where})")
    if missing:
        raise MissingSecret(
            "environment variable"
            + ("s " if len(missing) > 1 else " ")
            + ", ".join(missing)
            + (" are" if len(missing) > 1 else " is")
            + " not set"
        )
    return values
