"""What every rule needs: the validated config, where its values are written, and the catalogue."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from clarion.check.models import AllExcept, Config, Selector
from clarion.check.templates import TemplateIndex
from clarion.diagnostics import Diagnostic, Location, Severity, did_you_mean
from clarion.load import Document, YamlPath


@dataclass
class CheckContext:
    document: Document
    config: Config
    templates: TemplateIndex
    # Lines that hold a literal credential: never echoed in output.
    redacted: set[tuple[str, int]] = field(default_factory=set)

    def at(self, path: YamlPath) -> Location | None:
        return self.document.locate(path)

    def key_at(self, path: YamlPath) -> Location | None:
        return self.document.locate_key(path)

    def error(self, code: str, message: str, path: YamlPath, **kw: Any) -> Diagnostic:
        return Diagnostic(code, message, self.at(path), path=path, **kw)

    def warn(self, code: str, message: str, path: YamlPath, **kw: Any) -> Diagnostic:
        return Diagnostic(code, message, self.at(path), path=path, severity=Severity.WARNING, **kw)

    @cached_property
    def categories(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, event in sorted(self.config.events.items()):
            if event.category:
                out.setdefault(event.category, []).append(name)
        return out

    @cached_property
    def event_names(self) -> list[str]:
        return sorted(self.config.events)

    def unknown_event(self, name: str, path: YamlPath, what: str = "event type") -> Diagnostic:
        return self.error(
            "CL201",
            f"unknown {what} {name!r}",
            path,
            hint=did_you_mean(name, self.event_names) or "add it to `events:` first",
        )

    def match_item(self, item: str) -> list[str]:
        """Events one selector item names: a category, an event, or a glob over event names."""
        if item in self.config.events:
            return [item]
        if item in self.categories:
            return self.categories[item]
        if any(ch in item for ch in "*?["):
            return [name for name in self.event_names if fnmatch.fnmatchcase(name, item)]
        return []

    def expand(self, selector: Selector) -> set[str]:
        """The set of event names a selector stands for."""
        if selector == "all":
            return set(self.config.events)
        if selector == "none":
            return set()
        if isinstance(selector, AllExcept):
            left_out = {name for item in selector.except_ for name in self.match_item(item)}
            return set(self.config.events) - left_out
        return {name for item in selector for name in self.match_item(item)}

    @cached_property
    def team_reach(self) -> dict[str, set[str]]:
        """Event -> channels on which some team address or route would deliver it."""
        expanded: dict[tuple[object, ...], set[str]] = {}
        reach: dict[str, set[str]] = {}
        groups: set[tuple[str, tuple[object, ...]]] = set()
        selectors: dict[tuple[object, ...], Selector] = {}
        for person in self.config.recipients.values():
            for channel, entries in person.addresses().items():
                for entry in entries:
                    if entry.enabled and channel in self.config.channels:
                        key = selector_key(entry.events)
                        selectors[key] = entry.events
                        groups.add((channel, key))
        for channel, key in groups:
            if key not in expanded:
                expanded[key] = self.expand(selectors[key])
            for event in expanded[key]:
                reach.setdefault(event, set()).add(channel)
        for route in self.config.routes:
            channels: set[str] = set()
            for who in route.to:
                routed = self.config.recipients.get(who)
                if routed is not None:
                    have = set(routed.addresses())
                    channels |= have & set(route.channels) if route.channels else have
            channels &= set(self.config.channels)
            for event in self.expand(route.events):
                reach.setdefault(event, set()).update(channels)
        return reach

    def selector_items(self, selector: Selector) -> Iterable[tuple[int, str, YamlPath]]:
        """Each written item of a selector with its index and its path below the selector."""
        if isinstance(selector, AllExcept):
            for index, item in enumerate(selector.except_):
                yield index, item, ("except", index)
        elif isinstance(selector, list):
            for index, item in enumerate(selector):
                yield index, item, (index,)


def selector_key(selector: Selector) -> tuple[object, ...]:
    """A hashable spelling of a selector, to expand each distinct one once."""
    if isinstance(selector, AllExcept):
        return ("except", *selector.except_)
    if isinstance(selector, list):
        return ("some", *selector)
    return (selector,)
