"""testtime.store: atomic result files and the resumable run store."""

from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.store.identity import component_identity, weights_hash
from testtime.store.resultset import read_result_set, result_set
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
    "component_identity",
    "fingerprint",
    "item_key",
    "read_result_set",
    "result_set",
    "resumable_map",
    "weights_hash",
]
