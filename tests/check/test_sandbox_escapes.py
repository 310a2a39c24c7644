"""Known sandbox escapes and resource bombs (sandbox_escapes.yaml): a located CL404 at validate,
a dead letter with the reason at run time; never a traceback, never a hang."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from clarion.compile import build
from clarion.runtime import Policy, Runtime, SQLiteStore, TableIndex

PAYLOADS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "sandbox_escapes.yaml").read_text()
)
RENDERED = [p for p in PAYLOADS if not p.get("static")]


def write_config(folder: Path, *, guarded: bool) -> Path:
    """One event type per payload, each with its own in-app template. `guarded` wraps the
    payload in `{% if data.evil %}` so that validate (whose example is harmless) passes and the
    payload runs only at run time."""
    folder.mkdir(parents=True)
    payloads = RENDERED if guarded else PAYLOADS
    events = {
        f"p.{p['name']}": {"data": {"type": "object"}, "example": {"evil": not guarded}}
        for p in payloads
    }
    config = {
        "version": 1,
        "events": events,
        "channels": {"in_app": {"address": "inbox"}},
        "recipients": {"ops": {"in_app": {"events": "all"}}},
    }
    (folder / "c.yaml").write_text(json.dumps(config))
    templates = folder / "templates"
    templates.mkdir()
    for p in payloads:
        body = p["template"].rstrip("\n")
        if guarded:
            body = "{% if data.evil %}" + body + "{% endif %}"
        (templates / f"p.{p['name']}.in_app.j2").write_text("Subject: x\n" + body + "\n")
    return folder


def test_every_payload_is_a_located_diagnostic_at_validate(tmp_path: Path) -> None:
    started = time.monotonic()
    result = build(write_config(tmp_path / "config", guarded=False))
    took = time.monotonic() - started
    assert result.table is None
    found: dict[str, Any] = {}
    for diagnostic in result.diagnostics:
        assert diagnostic.code == "CL404", diagnostic
        assert diagnostic.location is not None
        name = Path(diagnostic.location.file).name.split(".")[1]
        found[name] = diagnostic
    assert sorted(found) == sorted(p["name"] for p in PAYLOADS)
    for p in PAYLOADS:
        diagnostic = found[p["name"]]
        assert p["expect"] in diagnostic.message, (p["name"], diagnostic.message)
        assert diagnostic.location.file.endswith(f"p.{p['name']}.in_app.j2")
        if p["name"] != "long_output":  # the whole output is at fault: the file, no line
            assert diagnostic.location.line >= 2, (p["name"], diagnostic.location)
    # Two payloads spin until the 1 s cap; the rest fail at once.
    assert took < 15, f"validate took {took:.1f} s"


@pytest.fixture
def guarded_table(tmp_path: Path) -> TableIndex:
    result = build(write_config(tmp_path / "config", guarded=True))
    assert result.table is not None and result.data is not None, result.diagnostics
    return TableIndex.from_table(result.table, result.data)


def test_every_payload_is_a_dead_letter_with_its_reason_at_run_time(
    guarded_table: TableIndex,
) -> None:
    runtime = Runtime(guarded_table, SQLiteStore(None), Policy(dry_run=True, workers=4))
    try:
        events = [
            {"type": f"p.{p['name']}", "id": f"evt_{p['name']}", "data": {"evil": True}}
            for p in RENDERED
        ]
        answers = runtime.ingest(events)
        assert [a.status for a in answers] == [202] * len(events)
        runtime.dispatcher.run_pending()
        for p in RENDERED:
            record = runtime.store.event(f"evt_{p['name']}")
            assert record is not None
            [delivery] = record.deliveries
            assert delivery["status"] == "dead", (p["name"], delivery)
            assert delivery["last_error"].startswith("render failed: "), delivery
            assert p["expect"] in delivery["last_error"], (p["name"], delivery["last_error"])
    finally:
        runtime.stop(timeout=5)
