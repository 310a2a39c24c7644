"""Each event's `data` is a valid JSON Schema and its `example` satisfies it."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from clarion.check.context import CheckContext
from clarion.diagnostics import Diagnostic, did_you_mean
from clarion.load import YamlPath

RESERVED_CATEGORIES = frozenset({"all", "none"})


Problem = tuple[str, tuple[str | int, ...]]


def schema_problem(schema: Any) -> Problem | None:
    """Why `schema` is not a valid draft 2020-12 schema (message, path), or None.

    Checking against the metaschema costs over a millisecond per schema, and catalogues repeat
    the same property schemas (`amount`, `currency`) across hundreds of events. The metaschema
    checks each value of `properties` on its own, against itself, so each distinct property
    schema is checked once and the rest of the schema with `{}` in their places.
    """
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict) and properties:
        for name, sub in properties.items():
            problem = schema_problem(sub)
            if problem is not None:
                return problem[0], ("properties", name, *problem[1])
        schema = {**schema, "properties": {key: {} for key in properties}}
    return _checked(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=8192)
def _checked(canonical: str) -> Problem | None:
    try:
        Draft202012Validator.check_schema(json.loads(canonical))
    except SchemaError as exc:
        return exc.message, tuple(exc.absolute_path)
    return None


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    for name, event in ctx.config.events.items():
        base: YamlPath = ("events", name)
        if event.category in RESERVED_CATEGORIES or event.category in ctx.config.events:
            yield ctx.error(
                "CL208",
                f"category {event.category!r} would be ambiguous in an event selector",
                (*base, "category"),
                hint="`all` and `none` are selector words, and a category cannot share an "
                "event's name",
            )
        problem = schema_problem(event.data)
        if problem is not None:
            message, where = problem
            yield ctx.error(
                "CL401",
                f"event {name!r}: `data` is not a valid JSON Schema: {message}",
                (*base, "data", *where),
                hint="`data` is a JSON Schema (draft 2020-12): {type: object, properties: ...}",
            )
            continue
        if event.example is None:
            yield ctx.warn(
                "CL904",
                f"event {name!r} has no `example`, so its templates are not render-checked",
                base,
                hint="add `example:` with a typical `data` value",
            )
            continue
        validator = Draft202012Validator(event.data)
        for error in sorted(validator.iter_errors(event.example), key=lambda e: list(e.path)):
            where = tuple(error.absolute_path)
            pointer = "/" + "/".join(str(p) for p in where)
            hint = None
            if error.validator == "required":
                missing = [k for k in error.validator_value if k not in error.instance]
                hint = f"add {', '.join(missing)} to the example" if missing else None
            elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
                known = (
                    list(error.schema.get("properties", {}))
                    if isinstance(error.schema, dict)
                    else []
                )
                extra = [k for k in error.instance if k not in known]
                hint = did_you_mean(extra[0], known) if extra else None
            yield ctx.error(
                "CL402",
                f"event {name!r}: the example does not satisfy `data` at {pointer}: "
                f"{error.message}",
                (*base, "example", *where),
                hint=hint,
            )
