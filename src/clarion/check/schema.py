"""Shape checking with the JSON Schema, each error mapped back to the node that caused it."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from clarion.check.models import json_schema
from clarion.diagnostics import Diagnostic, did_you_mean
from clarion.load import Document, YamlPath


@functools.cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(json_schema())


def check_shape(document: Document) -> list[Diagnostic]:
    """Every shape error of the document, at most one per offending node."""
    found: dict[tuple[YamlPath, str], Diagnostic] = {}
    for error in validator().iter_errors(document.data):
        for diagnostic in _translate(error, document):
            found.setdefault((diagnostic.path, diagnostic.code), diagnostic)
    return list(found.values())


def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _where(path: YamlPath) -> str:
    return f" in {dotted(path)}" if path else ""


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _describe(schema: dict[str, Any]) -> str:
    schema = _resolve(schema)
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " or ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = list(schema.get("properties", {}))
        required = schema.get("required", [])
        if len(props) == 1 or required:
            keys = required or props
            return "a mapping with " + " and ".join(f"`{k}`" for k in keys)
        return "a mapping"
    if kind == "array":
        return "a list"
    names = {"string": "a string", "integer": "an integer", "number": "a number"}
    return names.get(str(kind), "a boolean" if kind == "boolean" else str(kind))


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = json_schema()["$defs"][ref.removeprefix("#/$defs/")]
        return resolved
    return schema


def _type_matches(value: Any, schema: dict[str, Any]) -> bool:
    schema = _resolve(schema)
    kind = schema.get("type")
    if "const" in schema:
        return bool(value == schema["const"])
    if "enum" in schema:
        return value in schema["enum"]
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
    }.get(str(kind), False)


def _translate(error: ValidationError, document: Document) -> Iterator[Diagnostic]:
    path: YamlPath = tuple(error.absolute_path)
    validator_name = error.validator
    expected_value: Any = error.validator_value
    instance: Any = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}

    if validator_name in ("anyOf", "oneOf"):
        branches = [b for b in error.context or [] if isinstance(b, ValidationError)]
        options: list[dict[str, Any]] = list(expected_value)
        matching = [i for i, option in enumerate(options) if _type_matches(instance, option)]
        if len(matching) == 1:
            inner = [b for b in branches if b.relative_schema_path[0] == matching[0]]
            if inner:
                for sub in inner:
                    yield from _translate(sub, document)
                return
        # A step of a flow is told apart by its only key.
        if isinstance(instance, dict) and all(
            len(_resolve(o).get("required", [])) == 1 for o in options
        ):
            keys = [_resolve(o)["required"][0] for o in options]
            present = [k for k in instance if k in keys]
            if len(present) == 1:
                inner = [
                    b
                    for b in branches
                    if keys[b.relative_schema_path[0]] == present[0]  # type: ignore[index]
                ]
                for sub in inner:
                    yield from _translate(sub, document)
                return
            unknown = [k for k in instance if k not in keys]
            hint = did_you_mean(unknown[0], keys) if unknown else None
            yield Diagnostic(
                "CL104",
                f"expected exactly one of {', '.join(f'`{k}`' for k in keys)}{_where(path)}",
                document.locate(path),
                hint=hint,
                path=path,
            )
            return
        expected = ", or ".join(dict.fromkeys(_describe(o) for o in options))
        yield Diagnostic(
            "CL104",
            f"expected {expected}{_where(path)}, got {_kind(instance)}",
            document.locate(path),
            hint=_type_hint(instance),
            path=path,
        )
        return

    if validator_name == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        for key in instance:
            if key in known:
                continue
            key_path = (*path, key)
            where = "at the top level" if not path else f"in {dotted(path)}"
            yield Diagnostic(
                "CL103",
                f"unknown key {key!r} {where}",
                document.locate_key(key_path),
                hint=did_you_mean(key, known)
                or ("known keys: " + ", ".join(known) if known else None),
                path=key_path,
            )
        return

    if validator_name == "required":
        missing = [k for k in expected_value if k not in instance]
        for key in missing:
            yield Diagnostic(
                "CL105",
                f"missing required key {key!r}{_where(path)}",
                document.locate_key(path),
                path=(*path, key),
            )
        return

    if path == ("version",) and validator_name in ("const", "enum", "type"):
        yield Diagnostic(
            "CL102",
            f"unknown config version {instance!r}",
            document.locate(path),
            hint="this Clarion reads `version: 1`",
            path=path,
        )
        return

    if validator_name in ("const", "enum"):
        allowed = expected_value if validator_name == "enum" else [expected_value]
        choices = [str(a) for a in allowed]
        yield Diagnostic(
            "CL104",
            f"{_kind(instance)} is not allowed{_where(path)}; expected "
            + " or ".join(repr(a) for a in allowed),
            document.locate(path),
            hint=did_you_mean(str(instance), choices) if isinstance(instance, str) else None,
            path=path,
        )
        return

    if validator_name == "type":
        expected = _describe({"type": expected_value})
        yield Diagnostic(
            "CL104",
            f"expected {expected}{_where(path)}, got {_kind(instance)}",
            document.locate(path),
            hint=_type_hint(instance, expected_value),
            path=path,
        )
        return

    if validator_name == "minItems":
        yield Diagnostic(
            "CL104",
            f"the list{_where(path)} must not be empty",
            document.locate(path),
            path=path,
        )
        return

    yield Diagnostic(
        "CL104",
        f"{error.message}{_where(path)}",
        document.locate(path),
        path=path,
    )


def _type_hint(instance: Any, expected: object = None) -> str | None:
    if (
        expected == "string"
        and isinstance(instance, int | float)
        and not isinstance(instance, bool)
    ):
        return "quote it: YAML reads an unquoted number as a number (and drops leading zeros)"
    if expected == "string" and isinstance(instance, bool):
        return "quote it: YAML reads true/false as a boolean"
    if instance is None:
        return "give a value, or remove the key"
    return None
