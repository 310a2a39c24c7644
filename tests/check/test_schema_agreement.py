"""The JSON Schema and the pydantic models accept exactly the same documents.

The checker trusts pydantic (strict) as a fast path and only walks the JSON Schema for located
messages when pydantic refuses; these properties are what make that safe.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clarion.check.models import Config
from clarion.check.schema import validator
from clarion.load import load_directory
from tests.conftest import EXAMPLES

BASE: dict[str, Any] = load_directory(EXAMPLES).document.data  # type: ignore[union-attr]

REPLACEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(["", "all", "none", "contact", "email", "skip", "x.y", "09:00", "2h"]),
    st.just([]),
    st.just(["all"]),
    st.just({}),
    st.just({"all": True}),
    st.just({"unexpected": 1}),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(paths(item, (*prefix, index)))
    return out


ALL_PATHS = [p for p in paths(BASE) if p]


def mutate(doc: dict[str, Any], path: tuple[Any, ...], action: str, new: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = new
    else:
        parent[last] = new
    return doc


def accepted_by_pydantic(doc: dict[str, Any]) -> bool:
    try:
        Config.model_validate(doc, strict=True)
    except ValidationError:
        return False
    return True


def accepted_by_schema(doc: dict[str, Any]) -> bool:
    return not any(True for _ in validator().iter_errors(doc))


def test_the_examples_are_accepted_by_both() -> None:
    assert accepted_by_pydantic(BASE)
    assert accepted_by_schema(BASE)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(ALL_PATHS),
            st.sampled_from(["delete", "replace", "add"]),
            REPLACEMENTS,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_schema_and_models_agree(mutations: list[tuple[tuple[Any, ...], str, Any]]) -> None:
    doc = BASE
    for path, action, new in mutations:
        try:
            doc = mutate(doc, path, action, new)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the path
    assert accepted_by_pydantic(doc) == accepted_by_schema(doc)
