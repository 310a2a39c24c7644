"""Accepting events: the stored envelope is canonical JSON, with the moment it came in."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clarion.runtime import Runtime
from clarion.runtime.tableindex import TableIndex
from tests.runtime.conftest import example

KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_\"', :{}", min_size=1, max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(extra=st.dictionaries(KEYS, VALUES, max_size=4))
def test_the_stored_envelope_is_the_canonical_event_with_its_moment(
    runtime: Runtime, examples_table: TableIndex, extra: dict[str, object]
) -> None:
    data = {**example(examples_table, "payment.failed"), **{f"x{k}": v for k, v in extra.items()}}
    event_id = f"e{abs(hash(json.dumps(extra, sort_keys=True)))}"
    contact = {"id": "c1", "name": 'a "type": b'}
    [answer] = runtime.ingest(
        [{"type": "payment.failed", "id": event_id, "data": data, "contact": contact}]
    )
    assert answer.status in (200, 202)
    record = runtime.store.event(event_id)
    assert record is not None
    stored = record.envelope
    moment = stored.pop("occurred_at")
    assert moment.endswith("Z")
    assert stored == {"type": "payment.failed", "id": event_id, "data": data, "contact": contact}
