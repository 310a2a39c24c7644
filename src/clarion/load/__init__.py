"""Stage 1: read a config directory into a Document that remembers where every value came from."""

from clarion.load.document import (
    Document,
    LoadError,
    LoadResult,
    config_files,
    display_path,
    load_directory,
    load_text,
)
from clarion.load.reader import MAX_ALIAS_NODES, MAX_DEPTH, MAX_FILE_BYTES, YamlPath

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Document",
    "LoadError",
    "LoadResult",
    "YamlPath",
    "config_files",
    "display_path",
    "load_directory",
    "load_text",
]
