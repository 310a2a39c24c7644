"""`clarion diff OLD NEW`: what changes for people between two configs, tables or git revisions.

Each side is a config directory (built as `compile` would), a compiled table file, or
`git:REV[:PATH]`, read from git's objects (`git cat-file`, `git archive`) without touching the
working tree. Two directories of a large config are built in two processes at once. The runtime is
never imported."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from clarion.cli import reporters
from clarion.cli.options import EnvironmentProblem, build_or_exit, settle_heap, source_line_of
from clarion.compile import RoutingTable, digest
from clarion.compile.diff import Item, Reach, Section, TableDiff, compact_events, diff_tables

FORMATS = ("text", "markdown", "json")
GIT_PREFIX = "git:"
# Above this many bytes of YAML on both sides, the two builds run in two processes at once.
PARALLEL_BYTES = 1_000_000
DETAILS_AFTER = 10  # markdown: longer lists go into a collapsed <details>


class SideFailed(Exception):
    """A side that does not compile: the report to print, then exit 1."""


@dataclass
class Side:
    label: str
    table: RoutingTable
    digest: str


@dataclass
class _Spec:
    label: str  # as given on the command line
    path: Path | None = None  # a directory or a table file
    blob: bytes | None = None  # a table read from git
    display_root: Path | None = None  # a temporary folder to show as `label` in diagnostics


@click.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit 1 when something changed (like git diff).")
def diff_command(old: str, new: str, fmt: str, exit_code: bool) -> None:
    """Show what changes for people between OLD and NEW.

    Each of OLD and NEW is a config directory, a compiled table (JSON), or git:REV[:PATH] (PATH
    relative to the current directory, default the current directory), read from the
    repository without a checkout."""
    with tempfile.TemporaryDirectory(prefix="clarion-diff-") as scratch:
        specs = [_spec(old, Path(scratch) / "old"), _spec(new, Path(scratch) / "new")]
        try:
            sides = _load(specs)
        except SideFailed as failed:
            click.echo(str(failed), err=True)
            raise SystemExit(1) from None
    settle_heap()
    before, after = sides
    result = (
        TableDiff() if before.digest == after.digest else diff_tables(before.table, after.table)
    )
    if fmt == "json":
        click.echo(json.dumps(as_json(result, before, after), indent=2, ensure_ascii=False))
    elif result.changed:
        text = (
            as_markdown(result, before, after)
            if fmt == "markdown"
            else as_text(result, before, after)
        )
        click.echo(text)
    raise SystemExit(1 if exit_code and result.changed else 0)


# ---------------------------------------------------------------------------------------------
# Reading the two sides
# ---------------------------------------------------------------------------------------------


def _spec(text: str, scratch: Path) -> _Spec:
    if text.startswith(GIT_PREFIX):
        return _git_spec(text, scratch)
    path = Path(text)
    if not path.exists():
        raise EnvironmentProblem(f"{text}: no such file or directory")
    return _Spec(text, path)


def _git(args: list[str], what: str, cwd: Path | None = None) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, cwd=cwd, check=False)
    except OSError as exc:
        raise EnvironmentProblem(f"{what}: cannot run git: {exc.strerror or exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = message[-1] if message else f"git {args[0]} failed"
        raise EnvironmentProblem(f"{what}: {reason.removeprefix('fatal: ')}")
    return done.stdout


def _git_spec(text: str, scratch: Path) -> _Spec:
    rev, _, path = text[len(GIT_PREFIX) :].partition(":")
    if not rev:
        raise click.BadParameter(
            f"{text!r}: expected git:REV or git:REV:PATH", param_hint="OLD/NEW"
        )
    prefix = _git(["rev-parse", "--show-prefix"], text).decode().strip()
    top = Path(_git(["rev-parse", "--show-toplevel"], text).decode().strip())
    _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], f"{text}: unknown revision")
    inside = os.path.normpath(os.path.join(prefix, path or "."))
    if inside == ".." or inside.startswith("../") or os.path.isabs(inside):
        raise EnvironmentProblem(f"{text}: {path} is outside the repository")
    obj = f"{rev}:" if inside == "." else f"{rev}:{inside}"
    kind = _git(["cat-file", "-t", obj], text, top).decode().strip()
    if kind == "blob":
        return _Spec(text, blob=_git(["cat-file", "blob", obj], text, top))
    if kind != "tree":
        raise EnvironmentProblem(f"{text}: not a directory or a file ({kind})")
    archive = _git(["archive", "--format=tar", obj], text, top)
    scratch.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(scratch, filter="data")
    return _Spec(text, scratch, display_root=scratch)


def _load(specs: list[_Spec]) -> list[Side]:
    dirs = [s for s in specs if s.path is not None and s.path.is_dir()]
    if len(dirs) == 2 and _parallel_ok(dirs):
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        try:
            future: Future[tuple[bytes | None, str]] = pool.submit(_build_bytes, specs[0])
            second = _side(specs[1])
            data, report = future.result()
        finally:
            pool.shutdown(wait=True)
        if data is None:
            raise SideFailed(report)
        first = _table_side(specs[0].label, data, from_build=True)
        return [first, second]
    return [_side(s) for s in specs]


def _parallel_ok(dirs: list[_Spec]) -> bool:
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) >= 2 and all(_yaml_bytes(s.path) >= PARALLEL_BYTES for s in dirs if s.path)


def _yaml_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith((".yaml", ".yml")):
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def _side(spec: _Spec) -> Side:
    if spec.blob is not None:
        return _table_side(spec.label, spec.blob)
    assert spec.path is not None
    if spec.path.is_file():
        try:
            raw = spec.path.read_bytes()
        except OSError as exc:
            raise EnvironmentProblem(f"{spec.label}: {exc.strerror or exc}") from None
        return _table_side(spec.label, raw)
    result = build_or_exit(spec.path, locations=False)
    if result.table is None or result.data is None:
        raise SideFailed(_failure_report(spec, result))
    return Side(spec.label, result.table, digest(result.data))


def _build_bytes(spec: _Spec) -> tuple[bytes | None, str]:
    """In a child process: the table's bytes, or the report of why there is none."""
    assert spec.path is not None
    try:
        # The other side builds at the same time: keep this one's garbage collected.
        result = build_or_exit(spec.path, locations=False, pause_gc=False)
    except EnvironmentProblem as exc:
        return None, f"Error: {exc.message}"
    if result.data is None:
        return None, _failure_report(spec, result)
    return result.data, ""


def _failure_report(spec: _Spec, result: Any) -> str:
    color = sys.stderr.isatty()
    text = reporters.text(result.diagnostics, source_line_of(result), color)
    summary = f"{spec.label}: {reporters.summary(result.diagnostics)}"
    if spec.display_root is not None:
        # Diagnostics of a git side name the files as git:REV:PATH/..., not a temporary folder.
        for shown in {str(spec.display_root), os.path.relpath(spec.display_root)}:
            text = text.replace(shown + os.sep, spec.label.rstrip("/") + "/")
            text = text.replace(shown, spec.label)
    return f"{text}\n\n{summary}" if text else summary


def _table_side(label: str, raw: bytes, from_build: bool = False) -> Side:
    try:
        table = RoutingTable.model_validate_json(raw)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise SideFailed(
            f"{label}: not a config directory or a Clarion routing table ({first})"
        ) from None
    return Side(label, table, digest(raw))


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def summary_line(diff: TableDiff) -> str:
    parts: list[str] = []
    counts = diff.counts()
    if counts["starts"]:
        parts.append(
            _count(counts["starts"], "address starts", "addresses start") + " getting events"
        )
    if counts["stops"]:
        parts.append(_count(counts["stops"], "address stops", "addresses stop") + " getting events")
    if counts["conditions"]:
        parts.append(
            _count(counts["conditions"], "address has", "addresses have") + " new conditions"
        )
    for label, section in (
        ("address or device", diff.addresses),
        ("recipient", diff.recipients),
        ("customer message", diff.customer_messages),
        ("route", diff.routes),
        ("flow", diff.flows),
        ("event type", diff.events),
        ("channel", diff.channels),
    ):
        bits = []
        for verb, items in (
            ("added", section.added),
            ("removed", section.removed),
            ("changed", section.changed),
        ):
            if items:
                bits.append(f"{len(items)} {verb}")
        if bits:
            parts.append(
                f"{label}s: " + ", ".join(bits)
                if label != "address or device"
                else "addresses and devices: " + ", ".join(bits)
            )
    if diff.consent:
        parts.append(_count(len(diff.consent), "consent default", "consent defaults") + " changed")
    if diff.templates:
        parts.append(_count(len(diff.templates), "message", "messages") + " read differently")
    if diff.settings:
        parts.append(_count(len(diff.settings), "setting", "settings") + " changed")
    return "; ".join(parts) if parts else "no change for anyone"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def as_json(diff: TableDiff, old: Side, new: Side) -> dict[str, Any]:
    return {
        "old": {"source": old.label, "digest": old.digest},
        "new": {"source": new.label, "digest": new.digest},
        "summary": summary_line(diff),
        **diff.as_json(),
    }


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def _reach_lines(diff: TableDiff, reach: Reach, indent: str) -> list[str]:
    lines = []
    if reach.starts:
        lines.append(
            f"{indent}+ starts: {', '.join(compact_events(reach.starts, diff.new_catalog))}"
        )
    if reach.stops:
        lines.append(
            f"{indent}- stops:  {', '.join(compact_events(reach.stops, diff.old_catalog))}"
        )
    for change in reach.conditions:
        lines.append(f"{indent}~ {change.event}: {_state(change.before)} → {_state(change.after)}")
    return lines


def _state(value: str | list[str]) -> str:
    return value if isinstance(value, str) else " or ".join(value)


def _who(reach: Reach) -> str:
    return f"{reach.recipient}, {reach.channel} {reach.to}"


def _item_line(mark: str, item: Item) -> str:
    return f"{mark} {item.name}" + (f": {'; '.join(item.details)}" if item.details else "")


def _section_lines(section: Section, indent: str) -> list[str]:
    lines = [indent + _item_line("+", i) for i in section.added]
    lines += [indent + _item_line("-", i) for i in section.removed]
    lines += [indent + _item_line("~", i) for i in section.changed]
    return lines


def _sections(diff: TableDiff) -> list[tuple[str, list[Item] | Section]]:
    return [
        ("Addresses and devices", diff.addresses),
        ("Recipients", diff.recipients),
        ("Customer messages", diff.customer_messages),
        ("Routes", diff.routes),
        ("Flows", diff.flows),
        ("Consent defaults", diff.consent),
        ("Event types", diff.events),
        ("Channels", diff.channels),
        ("Settings", diff.settings),
    ]


def as_text(diff: TableDiff, old: Side, new: Side) -> str:
    lines = [
        f"--- {old.label} ({old.digest})",
        f"+++ {new.label} ({new.digest})",
        summary_line(diff),
    ]
    if diff.reach:
        lines += ["", "Who gets what"]
        for reach in diff.reach:
            lines.append(f"  {_who(reach)}")
            lines += _reach_lines(diff, reach, "    ")
    for title, section in _sections(diff):
        if not section:
            continue
        lines += ["", title]
        if isinstance(section, Section):
            lines += _section_lines(section, "  ")
        else:
            lines += [f"  ~ {i.name}: {'; '.join(i.details)}" for i in section]
    if diff.templates:
        lines += ["", "Messages (rendered against the event's example)"]
        for change in diff.templates:
            lines.append(f"  {_template_title(change.template, change.locale, change.events)}")
            lines += ["    " + line for line in change.diff.splitlines()]
    return "\n".join(lines)


def _template_title(template: str, locale: str, events: list[str]) -> str:
    return f"{template} ({locale}) for {', '.join(events)}"


# ---------------------------------------------------------------------------------------------
# Markdown (a pull-request comment)
# ---------------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _details(lines: list[str], label: str) -> list[str]:
    return [f"<details><summary>{label}</summary>", "", *lines, "", "</details>"]


def _md_reach(diff: TableDiff, reach: Reach) -> list[str]:
    rows = [f"- **{_md(reach.recipient)}**, {_md(reach.channel)} `{_md(reach.to)}`"]
    if reach.starts:
        rows.append(f"  - starts: {_md(', '.join(compact_events(reach.starts, diff.new_catalog)))}")
    if reach.stops:
        rows.append(f"  - stops: {_md(', '.join(compact_events(reach.stops, diff.old_catalog)))}")
    for change in reach.conditions:
        rows.append(
            f"  - `{_md(change.event)}`: {_md(_state(change.before))} → {_md(_state(change.after))}"
        )
    return rows


def _md_items(section: list[Item] | Section) -> list[str]:
    if not isinstance(section, Section):
        return [f"- {_md(i.name)}: {_md('; '.join(i.details))}" for i in section]
    rows = []
    for verb, items in (
        ("added", section.added),
        ("removed", section.removed),
        ("changed", section.changed),
    ):
        for i in items:
            details = f": {_md('; '.join(i.details))}" if i.details else ""
            rows.append(f"- {verb} `{_md(i.name)}`{details}")
    return rows


def as_markdown(diff: TableDiff, old: Side, new: Side) -> str:
    out = [
        f"**Clarion:** {_md(summary_line(diff))}",
        "",
        f"`{_md(old.label)}` `{old.digest}` → `{_md(new.label)}` `{new.digest}`",
    ]
    if diff.reach:
        rows = [row for reach in diff.reach for row in _md_reach(diff, reach)]
        count = len(diff.reach)
        out += ["", "#### Who gets what", ""]
        out += rows if count <= DETAILS_AFTER else _details(rows, f"{count} addresses")
    for title, section in _sections(diff):
        if not section:
            continue
        rows = _md_items(section)
        out += ["", f"#### {title}", ""]
        out += rows if len(rows) <= DETAILS_AFTER else _details(rows, f"{len(rows)} changes")
    if diff.templates:
        out += ["", "#### Messages (rendered against the event's example)"]
        for change in diff.templates:
            title = _md(_template_title(change.template, change.locale, change.events))
            out += ["", *_details(["```diff", change.diff, "```"], title)]
    return "\n".join(out)
