"""A config directory read into one merged mapping, with the source location of every value."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarion.diagnostics import Diagnostic, Location
from clarion.load.reader import FileResult, YamlPath, read_file

# Sections whose entries are named: two files may each hold some, one name may appear once.
NAMED_SECTIONS = (
    "events",
    "channels",
    "recipients",
    "customer_messages",
    "flows",
    "defaults",
    "consent",
    "contacts",
    "templates",
)
LIST_SECTIONS = ("routes",)
# Folders under the config directory that hold other things than config.
SKIPPED_DIRS = ("tests",)
MAX_FILES = 10_000


class LoadError(Exception):
    """The directory itself cannot be read (missing, not a directory): an environment problem."""


@dataclass
class Document:
    root: Path
    data: dict[str, Any] = field(default_factory=dict)
    values: dict[YamlPath, Location] = field(default_factory=dict)
    keys: dict[YamlPath, Location] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    lines: dict[str, list[str]] = field(default_factory=dict)

    def locate(self, path: YamlPath) -> Location | None:
        """Where the value at `path` starts, or its nearest enclosing value's start."""
        probe = tuple(path)
        while True:
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def locate_key(self, path: YamlPath) -> Location | None:
        """Where the key naming the value at `path` is written (for unknown keys and names)."""
        return self.keys.get(tuple(path)) or self.locate(path)

    def source_line(self, location: Location) -> str | None:
        lines = self.lines.get(location.file)
        if lines is None or not 0 < location.line <= len(lines):
            return None
        return lines[location.line - 1]


@dataclass
class LoadResult:
    document: Document | None
    diagnostics: list[Diagnostic]


def display_path(path: Path) -> str:
    """A path as users should see it: relative to the current directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def config_files(root: Path) -> Iterator[Path]:
    """Every *.yaml/*.yml below root in sorted path order, skipping hidden and test folders."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and not (here == root and d in SKIPPED_DIRS)
        )
        for name in filenames:
            if name.endswith((".yaml", ".yml")) and not name.startswith("."):
                found.append(here / name)
    return iter(sorted(found, key=lambda p: p.relative_to(root).as_posix()))


def load_directory(root: Path, *, locations: bool = True) -> LoadResult:
    """Read and merge every config file under `root`. Raises LoadError if root is unusable.
    `locations=False` keeps no positions (see reader.read_file)."""
    if not root.exists():
        raise LoadError(f"{display_path(root)}: no such directory")
    if not root.is_dir():
        raise LoadError(f"{display_path(root)}: not a directory")
    document = Document(root=root)
    diagnostics: list[Diagnostic] = []
    files = list(config_files(root))
    if len(files) > MAX_FILES:
        raise LoadError(f"{display_path(root)}: more than {MAX_FILES:,} config files")
    if not files:
        diagnostics.append(
            Diagnostic(
                "CL008",
                "no *.yaml or *.yml files in this directory",
                Location(display_path(root)),
                hint="point Clarion at the directory that holds your config",
            )
        )
        return LoadResult(None, diagnostics)
    for path in files:
        display = display_path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise LoadError(f"{display}: {exc.strerror or exc}") from exc
        result = read_file(raw, display, track=locations)
        document.files.append(display)
        document.lines[display] = result.lines
        diagnostics.extend(result.diagnostics)
        if result.data is not None:
            _merge(document, result, diagnostics)
    return LoadResult(document, diagnostics)


def load_text(text: str, name: str = "config.yaml") -> LoadResult:
    """Load a single in-memory file (tests, fuzzing): the same rules as a directory of one file."""
    document = Document(root=Path("."))
    result = read_file(text.encode("utf-8"), name)
    document.files.append(name)
    document.lines[name] = result.lines
    diagnostics = list(result.diagnostics)
    if result.data is not None:
        _merge(document, result, diagnostics)
    return LoadResult(document, diagnostics)


def _duplicate(label: str, second: Location | None, first: Location | None) -> Diagnostic:
    where = f" (first defined at {first})" if first else ""
    return Diagnostic(
        "CL007",
        f"{label} is defined twice{where}",
        second,
        hint="keep one definition; sections merge across files, names may not repeat",
        related=(("first defined here", first),) if first else (),
    )


def _merge(document: Document, result: FileResult, diagnostics: list[Diagnostic]) -> None:
    data: dict[str, Any] = result.data
    rejected: set[YamlPath] = set()
    shifts: dict[str, int] = {}
    for section, value in data.items():
        top = (section,)
        if section not in document.data:
            document.data[section] = value
            continue
        existing = document.data[section]
        if section in LIST_SECTIONS and isinstance(existing, list) and isinstance(value, list):
            shifts[section] = len(existing)
            existing.extend(value)
            continue
        if isinstance(existing, dict) and isinstance(value, dict):
            for name, entry in value.items():
                path = (section, name)
                if name in existing:
                    rejected.add(path)
                    diagnostics.append(
                        _duplicate(
                            _label(section, name),
                            result.keys.get(path),
                            document.keys.get(path),
                        )
                    )
                else:
                    existing[name] = entry
            continue
        rejected.add(top)
        diagnostics.append(
            _duplicate(f"section {section!r}", result.keys.get(top), document.keys.get(top))
        )
    tables = ((result.values, document.values), (result.keys, document.keys))
    if not rejected and not shifts:
        # The common case, in bulk: only the root and the section keys can already be known, and
        # for those the first file's position stands.
        overlap: list[YamlPath] = [(), *((section,) for section in data)]
        for table, into in tables:
            keep: dict[YamlPath, Location] = {p: into[p] for p in overlap if p in into}
            into.update(table)
            into.update(keep)
        return
    # Otherwise one pass over this file's locations: paths stay as they are, except list
    # sections, whose indexes move past the entries earlier files gave.
    for table, into in tables:
        for where, loc in table.items():
            if where[:1] in rejected or where[:2] in rejected:
                continue
            shift = shifts.get(str(where[0])) if where else None
            if shift is not None:
                if len(where) < 2:
                    continue
                index = where[1]
                assert isinstance(index, int)
                where = (where[0], index + shift, *where[2:])
            into.setdefault(where, loc)


_SINGULAR = {
    "events": "event",
    "channels": "channel",
    "recipients": "recipient",
    "customer_messages": "customer message",
    "flows": "flow",
}


def _label(section: str, name: str) -> str:
    if section in _SINGULAR:
        return f"{_SINGULAR[section]} {name!r}"
    return f"setting {section}.{name}"
