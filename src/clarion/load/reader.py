"""Read one YAML file into plain values and a map from each value's path to its file:line:col.

Safe loading only, with the YAML 1.2 core schema: `on`, `yes` and `off` stay strings (a flow's `on:`
key must not turn into `True`), `09:00` stays a string (not sexagesimal 540), dates stay strings.
Everything absurd is refused with a located diagnostic: bytes that are not UTF-8, files past a size
limit, nesting past a depth limit, aliases that expand past a budget (billion laughs) or into
themselves, duplicate keys, tags other than the JSON-like ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from clarion.diagnostics import Diagnostic, Location

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100
# Nodes that aliases may add on top of what the file spells out; legitimate anchors (a shared
# toggle list) reuse a few hundred nodes at most.
MAX_ALIAS_NODES = 100_000

YamlPath = tuple[str | int, ...]

_T = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {f"{_T}{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}


class _CoreResolver(BaseResolver):
    """YAML 1.2 core schema: the resolution a JSON-minded reader expects."""


_CoreResolver.add_implicit_resolver(
    f"{_T}bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreResolver.add_implicit_resolver(
    f"{_T}int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_CoreResolver.add_implicit_resolver(
    f"{_T}float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_CoreResolver.add_implicit_resolver(
    f"{_T}null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_CoreResolver.add_implicit_resolver(f"{_T}merge", re.compile(r"^(?:<<)$"), ["<"])

try:
    from yaml import _yaml as _libyaml  # libyaml: about ten times faster than pure Python

    _CParser: Any = _libyaml.CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _CParser = None

if _CParser is not None:

    class _Loader(_CParser, SafeConstructor, _CoreResolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            _CoreResolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        yaml.composer.Composer,
        SafeConstructor,
        _CoreResolver,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            SafeConstructor.__init__(self)
            _CoreResolver.__init__(self)


@dataclass
class FileResult:
    """One file's values; `values`/`keys` map a path to where its value/its key starts."""

    data: Any = None
    values: dict[YamlPath, Location] = field(default_factory=dict)
    keys: dict[YamlPath, Location] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _Refused(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def read_file(raw: bytes, display: str, track: bool = True) -> FileResult:
    """Parse bytes that came from the file shown to users as `display`. With `track=False` no
    positions are kept (a third of the time and memory of a large config): for builds that only
    want the table, and build again with positions when there is something to report."""
    result = FileResult()
    if len(raw) > MAX_FILE_BYTES:
        result.diagnostics.append(
            Diagnostic(
                "CL002",
                f"file is {len(raw):,} bytes; the limit is {MAX_FILE_BYTES:,}",
                Location(display),
                hint="split the config over several files",
            )
        )
        return result
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        result.diagnostics.append(
            Diagnostic(
                "CL001",
                f"byte 0x{raw[exc.start]:02x} is not valid UTF-8",
                Location(display, line, column),
                hint="save the file as UTF-8",
                excerpt=False,
            )
        )
        return result
    result.lines = text.splitlines()
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        result.diagnostics.append(_syntax_diagnostic(exc, display, text))
        return result
    except yaml.YAMLError as exc:
        result.diagnostics.append(_reader_diagnostic(exc, display, text))
        return result
    if node is None:  # an empty file, or one of comments only
        result.data = {}
        return result
    if not isinstance(node, MappingNode):
        kind = "a list" if isinstance(node, SequenceNode) else "a single value"
        result.diagnostics.append(
            Diagnostic(
                "CL005",
                f"the top level of a config file must be a mapping of sections, not {kind}",
                _loc(display, node),
                hint="start the file with `version: 1` or a section name such as `events:`",
            )
        )
        return result
    builder = _Builder(display, result, track)
    try:
        result.data = builder.build(node, (), 0)
    except _Refused as refused:
        result.diagnostics.append(refused.diagnostic)
        result.data = None
    return result


def _loc(display: str, node: Node) -> Location:
    mark = node.start_mark
    return Location(display, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, display: str, result: FileResult, track: bool = True) -> None:
        self.display = display
        self.result = result
        self.track = track
        self.visited: set[int] = set()
        self.active: set[int] = set()
        self.alias_nodes = 0

    def build(self, node: Node, path: YamlPath, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _Refused(
                Diagnostic(
                    "CL002",
                    f"values are nested more than {MAX_DEPTH} levels deep",
                    _loc(self.display, node),
                )
            )
        ident = id(node)
        if ident in self.active:
            raise _Refused(
                Diagnostic(
                    "CL006",
                    "an alias refers to the node that contains it",
                    _loc(self.display, node),
                    hint="an anchor cannot be used inside its own value",
                )
            )
        if ident in self.visited:
            # A second visit is an alias being expanded: count it against the budget.
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _Refused(
                    Diagnostic(
                        "CL006",
                        f"aliases expand to more than {MAX_ALIAS_NODES:,} values",
                        _loc(self.display, node),
                        hint="this looks like an alias bomb; write the values out instead",
                    )
                )
        self.visited.add(ident)
        if self.track:
            self.result.values.setdefault(path, _loc(self.display, node))
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        self.active.add(ident)
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node)
                return [
                    self.build(item, (*path, index), depth + 1)
                    for index, item in enumerate(node.value)
                ]
            assert isinstance(node, MappingNode)
            self._check_tag(node)
            return self._mapping(node, path, depth)
        finally:
            self.active.discard(ident)

    def _mapping(self, node: MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == f"{_T}merge":
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise _Refused(
                    Diagnostic(
                        "CL010",
                        "a mapping key must be a plain name, not a list or a mapping",
                        _loc(self.display, key_node),
                    )
                )
            self._check_tag(key_node)
            key = str(key_node.value)
            key_loc = _loc(self.display, key_node)
            if key in out:
                first = self.result.keys.get((*path, key)) or key_loc
                raise _Refused(
                    Diagnostic(
                        "CL004",
                        f"duplicate key {key!r}; it was first given at line {first.line}",
                        key_loc,
                        hint="YAML keeps only one of them; remove or merge the other",
                        related=(("first given here", first),),
                    )
                )
            if self.track:
                self.result.keys[(*path, key)] = key_loc
            out[key] = self.build(value_node, (*path, key), depth + 1)
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise _Refused(
                        Diagnostic(
                            "CL104",
                            "a `<<` merge key takes a mapping or a list of mappings",
                            _loc(self.display, source),
                        )
                    )
                merged = self.build(source, path, depth + 1)
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out

    def _check_tag(self, node: Node) -> None:
        if node.tag not in _ALLOWED_TAGS:
            raise _Refused(
                Diagnostic(
                    "CL009",
                    f"the YAML tag {node.tag!r} is not allowed",
                    _loc(self.display, node),
                    hint="Clarion configs use plain strings, numbers, booleans, lists and maps",
                )
            )

    def _scalar(self, node: ScalarNode) -> Any:
        tag, value = node.tag, str(node.value)
        self._check_tag(node)
        if tag == f"{_T}str":
            return value
        if tag == f"{_T}null":
            return None
        if tag == f"{_T}bool":
            return value.lower() == "true"
        if tag == f"{_T}int":
            try:
                return int(value, 0) if value.startswith(("0o", "0x")) else int(value, 10)
            except ValueError:
                raise _Refused(
                    Diagnostic("CL104", f"{value!r} is not an integer", _loc(self.display, node))
                ) from None
        if tag == f"{_T}float":
            number = float(value) if value[-1:].isdigit() or value.endswith(".") else math.nan
            if math.isnan(number) or math.isinf(number):
                raise _Refused(
                    Diagnostic(
                        "CL104",
                        f"{value!r} is not a number JSON can hold",
                        _loc(self.display, node),
                        hint="quote it if you meant a string",
                    )
                )
            return number
        return value  # pragma: no cover - tags are checked above


_TAB_HINT = "YAML indents with spaces; replace the tab with spaces"


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, display: str, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or "invalid YAML").strip()
    context = (exc.context or "").strip()
    lines = text.splitlines()
    if "exceeded maximum nesting depth" in problem:
        return Diagnostic(
            "CL002",
            "values are nested too deeply",
            Location(display, mark.line + 1, mark.column + 1) if mark else Location(display),
        )
    # libyaml reports an unclosed quote or bracket at the end of the file; the place to look is
    # where the unfinished thing started.
    if exc.context_mark is not None and (
        "end of stream" in problem or (mark is not None and mark.line >= len(lines))
    ):
        mark = exc.context_mark
    at = ""
    if mark is not None and mark.line < len(lines):
        at = lines[mark.line][mark.column : mark.column + 1]
    message = f"{context}: {problem}" if context else problem
    hint = None
    if at == "\t" or "'\\t'" in problem:
        message = "a tab character cannot indent YAML"
        hint = _TAB_HINT
    elif "mapping values are not allowed" in problem:
        hint = "check the indentation, or quote a value that contains ': '"
    elif any(
        phrase in problem
        for phrase in ("did not find expected key", "expected <block end>", "expected ':'")
    ):
        hint = "check the indentation of this line against the lines above"
    elif "duplicate anchor" in problem:
        hint = "give each anchor its own name"
    elif "undefined alias" in problem:
        hint = "an alias (*name) must come after its anchor (&name) in the same file"
    elif "end of stream" in problem and "quoted" in context:
        hint = "close the quote"
    location = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
    return Diagnostic("CL003", message, location, hint=hint)


def _reader_diagnostic(exc: yaml.YAMLError, display: str, text: str) -> Diagnostic:
    position = getattr(exc, "position", None)
    location = Location(display)
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        location = Location(display, line, column)
    reason = getattr(exc, "reason", None) or "the file cannot be read as YAML"
    return Diagnostic(
        "CL003",
        str(reason),
        location,
        hint="remove control characters from the file",
        excerpt=False,
    )
