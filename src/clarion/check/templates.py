"""Finding templates: `<dir>/<locale>/<name>.<channel>.j2`, `<dir>/<name>.<channel>.j2`."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from clarion.load import display_path

SUFFIX = ".j2"
ADDRESS_KINDS = ("email", "phone", "url", "inbox")
MAX_TEMPLATE_BYTES = 256 * 1024


@dataclass(frozen=True)
class TemplateFile:
    name: str
    channel: str
    locale: str | None  # None: the folder's root, used for any locale
    display: str  # path as shown to users
    source: str


@dataclass
class TemplateIndex:
    folder: Path | None
    # (name, channel) -> {locale or None: file}
    files: dict[tuple[str, str], dict[str | None, TemplateFile]] = field(default_factory=dict)
    # (display, why, line): files that exist but cannot be used; they still "exist" for lookups
    unreadable: list[tuple[str, str, int]] = field(default_factory=list)
    broken: set[tuple[str, str]] = field(default_factory=set)
    stray: list[str] = field(default_factory=list)  # files whose names do not read

    def variants(self, name: str, channel: str) -> dict[str | None, TemplateFile]:
        return self.files.get((name, channel), {})

    def names(self) -> list[str]:
        return sorted({name for name, _ in self.files})

    def resolve(
        self, name: str, channel: str, locale: str, default_locale: str
    ) -> TemplateFile | None:
        """The file used for a reader in `locale`: theirs, the root's, then the default locale's."""
        found = self.variants(name, channel)
        for key in (locale, None, default_locale):
            if key in found:
                return found[key]
        return None


def discover(root: Path, folder_setting: str) -> TemplateIndex:
    folder = Path(folder_setting)
    folder = folder if folder.is_absolute() else root / folder
    index = TemplateIndex(folder=folder if folder.is_dir() else None)
    if index.folder is None:
        return index
    for path in sorted(index.folder.rglob(f"*{SUFFIX}")):
        relative = path.relative_to(index.folder)
        display = display_path(path)
        if len(relative.parts) > 2 or path.name.startswith("."):
            index.stray.append(display)
            continue
        locale = relative.parts[0] if len(relative.parts) == 2 else None
        stem = path.name[: -len(SUFFIX)]
        name, dot, channel = stem.rpartition(".")
        if not dot or not name or not channel:
            index.stray.append(display)
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            index.unreadable.append((display, exc.strerror or str(exc), 0))
            index.broken.add((name, channel))
            continue
        if len(raw) > MAX_TEMPLATE_BYTES:
            index.unreadable.append((display, f"larger than {MAX_TEMPLATE_BYTES:,} bytes", 0))
            index.broken.add((name, channel))
            continue
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            index.unreadable.append(
                (display, f"byte 0x{raw[exc.start]:02x} is not valid UTF-8", line)
            )
            index.broken.add((name, channel))
            continue
        index.files.setdefault((name, channel), {})[locale] = TemplateFile(
            name, channel, locale, display, source
        )
    return index


def builtin_source(kind: str) -> str:
    """Clarion's own message for a channel of this address kind, used when a team gives none."""
    return (resources.files("clarion") / "templates" / f"{kind}{SUFFIX}").read_text("utf-8")


def builtin_display(kind: str) -> str:
    return f"<built-in {kind} template>"
