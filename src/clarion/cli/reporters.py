"""Diagnostics as text (like a compiler), JSON (stable for CI), GitHub workflow commands, SARIF."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import click

from clarion import __version__
from clarion.diagnostics import CODES, Diagnostic

SourceLine = Callable[[Diagnostic], str | None]


def summary(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    parts = [f"{errors} error{'s' * (errors != 1)}"] if errors else []
    if warnings:
        parts.append(f"{warnings} warning{'s' * (warnings != 1)}")
    return ", ".join(parts)


def text(diagnostics: Sequence[Diagnostic], source_line: SourceLine, color: bool) -> str:
    blocks = []
    for d in diagnostics:
        severity = d.severity.value
        label = (
            click.style(f"{severity}[{d.code}]", fg="red" if d.is_error else "yellow", bold=True)
            if color
            else f"{severity}[{d.code}]"
        )
        where = f"{d.location}: " if d.location else ""
        lines = [f"{where}{label} {d.message}"]
        line = source_line(d)
        if line is not None and d.location and d.location.line:
            number = str(d.location.line)
            pad = " " * len(number)
            lines.append(f" {number} | {line.rstrip()}")
            if d.location.column:
                caret_at = _display_width(line[: d.location.column - 1])
                caret = "^"
                lines.append(
                    f" {pad} | {' ' * caret_at}"
                    + (click.style(caret, fg="red", bold=True) if color else caret)
                )
        for note, location in d.related:
            lines.append(f"note: {note}: {location}")
        if d.hint:
            lines.append(("hint: " if not color else click.style("hint: ", fg="cyan")) + d.hint)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _display_width(prefix: str) -> int:
    return len(prefix.expandtabs(1))


def as_json(ok: bool, table_digest: str | None, diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps(
        {
            "ok": ok,
            "digest": table_digest,
            "diagnostics": [d.as_json() for d in diagnostics],
        },
        indent=2,
        ensure_ascii=False,
    )


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands: annotations on the pull request's lines."""
    out = []
    for d in diagnostics:
        props = []
        if d.location:
            props.append(f"file={_escape_property(d.location.file)}")
            if d.location.line:
                props.append(f"line={d.location.line}")
            if d.location.column:
                props.append(f"col={d.location.column}")
        props.append(f"title={_escape_property(d.code)}")
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        kind = "error" if d.is_error else "warning"
        out.append(f"::{kind} {','.join(props)}::{_escape_data(message)}")
    return "\n".join(out)


def sarif(diagnostics: Sequence[Diagnostic]) -> str:
    """SARIF 2.1.0, for code-scanning uploads."""
    used = sorted({d.code for d in diagnostics})
    index = {code: i for i, code in enumerate(used)}
    rules = [
        {
            "id": code,
            "name": CODES[code][0],
            "shortDescription": {"text": CODES[code][1]},
            "help": {"text": f"See docs/diagnostics.md, section {code}."},
        }
        for code in used
    ]
    results = []
    for d in diagnostics:
        result: dict[str, object] = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": "error" if d.is_error else "warning",
            "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
        }
        if d.location:
            physical: dict[str, object] = {
                "artifactLocation": {"uri": d.location.file.replace("\\", "/")}
            }
            if d.location.line:
                region: dict[str, int] = {"startLine": d.location.line}
                if d.location.column:
                    region["startColumn"] = d.location.column
                physical["region"] = region
            result["locations"] = [{"physicalLocation": physical}]
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "clarion",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)
