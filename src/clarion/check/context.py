"""What every rule needs: the validated config, where its values are written, and the catalogue."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from clarion.check.models import AddressEntry, AllExcept, Config, Selector
from clarion.check.templates import TemplateIndex
from clarion.diagnostics import Diagnostic, Location, Severity, did_you_mean
from clarion.load import Document, YamlPath


@dataclass(frozen=True)
class Entry:
    """One address, device or inbox entry of a recipient, with the path it is written at."""

    recipient: str
    channel: str
    entry: AddressEntry
    path: YamlPath  # ("recipients", name, channel) or (..., channel, index) when a list


@dataclass
class CheckContext:
    document: Document
    config: Config
    templates: TemplateIndex
    # Lines that hold a literal credential: never echoed in output.
    redacted: set[tuple[str, int]] = field(default_factory=set)
    # Selector items and whole selectors recur across thousands of addresses: resolve each once.
    _items: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _expanded: dict[tuple[object, ...], frozenset[str]] = field(default_factory=dict, repr=False)

    def at(self, path: YamlPath) -> Location | None:
        return self.document.locate(path)

    def key_at(self, path: YamlPath) -> Location | None:
        return self.document.locate_key(path)

    def error(self, code: str, message: str, path: YamlPath, **kw: Any) -> Diagnostic:
        return Diagnostic(code, message, self.at(path), path=path, **kw)

    def warn(self, code: str, message: str, path: YamlPath, **kw: Any) -> Diagnostic:
        return Diagnostic(code, message, self.at(path), path=path, severity=Severity.WARNING, **kw)

    def twice(
        self, code: str, message: str, path: YamlPath, first_path: YamlPath, hint: str
    ) -> Diagnostic:
        """A name or address given a second time, citing where it was first given."""
        first = self.at(first_path)
        return self.error(
            code,
            message + (f" (first at {first})" if first else ""),
            path,
            hint=hint,
            related=(("first given here", first),) if first else (),
        )

    @cached_property
    def categories(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, event in sorted(self.config.events.items()):
            if event.category:
                out.setdefault(event.category, []).append(name)
        return out

    @cached_property
    def entries(self) -> list[Entry]:
        """Every recipient entry, in config order, whether or not its channel exists."""
        out: list[Entry] = []
        for name, person in self.config.recipients.items():
            written = person.__pydantic_extra__ or {}
            for channel, entries in person.addresses().items():
                base: YamlPath = ("recipients", name, channel)
                listed = isinstance(written[channel], list)
                out.extend(
                    Entry(name, channel, entry, (*base, index) if listed else base)
                    for index, entry in enumerate(entries)
                )
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

    def match_item(self, item: str) -> tuple[str, ...]:
        """Events one selector item names: a category, an event, or a glob over event names."""
        found = self._items.get(item)
        if found is None:
            if item in self.config.events:
                found = (item,)
            elif item in self.categories:
                found = tuple(self.categories[item])
            elif any(ch in item for ch in "*?["):
                found = tuple(n for n in self.event_names if fnmatch.fnmatchcase(n, item))
            else:
                found = ()
            self._items[item] = found
        return found

    def expand(self, selector: Selector) -> frozenset[str]:
        """The set of event names a selector stands for."""
        key = selector_key(selector)
        found = self._expanded.get(key)
        if found is None:
            if selector == "all":
                found = frozenset(self.config.events)
            elif selector == "none":
                found = frozenset()
            elif isinstance(selector, AllExcept):
                left_out = {name for item in selector.except_ for name in self.match_item(item)}
                found = frozenset(self.config.events) - left_out
            else:
                found = frozenset(name for item in selector for name in self.match_item(item))
            self._expanded[key] = found
        return found

    @cached_property
    def team_reach(self) -> dict[str, set[str]]:
        """Event -> channels on which some team address or route would deliver it."""
        # Union per channel first (set operations run in C), then invert once: a large team has
        # thousands of distinct selectors but only a handful of channels.
        selectors: dict[str, dict[tuple[object, ...], Selector]] = {}
        for person in self.config.recipients.values():
            for channel, entries in person.addresses().items():
                if channel not in self.config.channels:
                    continue
                for entry in entries:
                    if entry.enabled:
                        selectors.setdefault(channel, {})[selector_key(entry.events)] = entry.events
        by_channel: dict[str, set[str]] = {
            channel: set().union(*(self.expand(s) for s in group.values()))
            for channel, group in selectors.items()
        }
        for route in self.config.routes:
            channels: set[str] = set()
            for who in route.to:
                routed = self.config.recipients.get(who)
                if routed is not None:
                    have = set(routed.addresses())
                    channels |= have & set(route.channels) if route.channels else have
            for channel in channels & set(self.config.channels):
                by_channel.setdefault(channel, set()).update(self.expand(route.events))
        reach: dict[str, set[str]] = {}
        for channel, events in by_channel.items():
            for event in events:
                reach.setdefault(event, set()).add(channel)
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
