"""Stage 4: the sidecar. Plans deliveries from the compiled table alone, keeps state in a
store, dispatches through Apprise. It never reads YAML."""

from clarion.runtime.dispatch import Policy
from clarion.runtime.service import Runtime
from clarion.runtime.store.sqlite import SQLiteStore, StoreError
from clarion.runtime.tableindex import TableError, TableIndex

__all__ = ["Policy", "Runtime", "SQLiteStore", "StoreError", "TableError", "TableIndex"]
