"""Stage 2: is the config right? Shape (JSON Schema), then models, then every semantic rule."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from clarion.check.context import CheckContext
from clarion.check.models import Config, json_schema
from clarion.check.rules import RULES
from clarion.check.schema import check_shape, dotted
from clarion.check.templates import TemplateIndex, discover
from clarion.diagnostics import Diagnostic, Location, sort_key
from clarion.load import Document

__all__ = ["CheckResult", "Config", "check", "json_schema"]


@dataclass
class CheckResult:
    config: Config | None
    diagnostics: list[Diagnostic]
    templates: TemplateIndex | None = None
    context: CheckContext | None = None
    # (file, line) pairs whose source holds a literal credential: never echo them.
    redacted: set[tuple[str, int]] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.config is not None and not any(d.is_error for d in self.diagnostics)


def check(document: Document) -> CheckResult:
    config = _models(document)
    if isinstance(config, list):
        return CheckResult(None, sorted(config, key=sort_key))
    templates = discover(document.root, config.templates.dir)
    for variants in templates.files.values():
        for file in variants.values():
            document.lines[file.display] = file.source.splitlines()
    context = CheckContext(document, config, templates)
    diagnostics: list[Diagnostic] = []
    if config.version is None:
        first = document.files[0] if document.files else str(document.root)
        diagnostics.append(
            Diagnostic(
                "CL101",
                "`version` is not given",
                Location(first, 1, 1),
                hint="add `version: 1` to one config file",
                path=("version",),
            )
        )
    for rule in RULES:
        diagnostics.extend(rule(context))
    return CheckResult(
        config,
        sorted(diagnostics, key=sort_key),
        templates,
        context,
        redacted=context.redacted,
    )


def _models(document: Document) -> Config | list[Diagnostic]:
    # pydantic in strict mode accepts exactly what the generated JSON Schema accepts (a test holds
    # them to it), and is ~15x faster than jsonschema on a large config: the schema walk, which
    # gives the located messages, only runs when there is something to say.
    try:
        return Config.model_validate(document.data, strict=True)
    except ValidationError as exc:
        problems = check_shape(document)
        if problems:
            return problems
        return [
            Diagnostic(
                "CL104",
                f"{error['msg']} in {dotted(error['loc'])}",
                document.locate(tuple(error["loc"])),
                path=tuple(error["loc"]),
            )
            for error in exc.errors()
        ]
