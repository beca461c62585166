"""testtime.store: atomic result files and the resumable run store."""

from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.store.resume import resumable_map
from testtime.store.runstore import (
    RunConfigMismatch,
    RunStore,
    StoreCorruption,
    StoreError,
    fingerprint,
    item_key,
)

__all__ = [
    "RunConfigMismatch",
    "RunStore",
    "StoreCorruption",
    "StoreError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fingerprint",
    "item_key",
    "resumable_map",
]
