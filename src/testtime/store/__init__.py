"""testtime.store: atomic result files and the resumable run store."""

from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.store.runstore import (
    RunConfigMismatch,
    RunStore,
    fingerprint,
    item_key,
    resumable_map,
)

__all__ = [
    "RunConfigMismatch",
    "RunStore",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fingerprint",
    "item_key",
    "resumable_map",
]
