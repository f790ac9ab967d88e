"""Steering memory: each user's dictionary of steering vectors, stored in Chroma.

Retrieval is per user and per request and fails closed; forgetting and expiry are
verified on disk. See docs/memory.md.
"""

from memory.entry import MemoryEntry, MemoryInputError, digest_arguments, make_entry_id
from memory.governance import ForgetReport, expire, forget_user, parse_age
from memory.retrieval import Retrieval
from memory.store import (
    AddReport,
    MemoryStore,
    ModelMismatchError,
    StoreBusyError,
    StoreError,
)
from memory.transfer import export_user, import_user

__all__ = [
    "AddReport",
    "ForgetReport",
    "MemoryEntry",
    "MemoryInputError",
    "MemoryStore",
    "ModelMismatchError",
    "Retrieval",
    "StoreBusyError",
    "StoreError",
    "digest_arguments",
    "expire",
    "export_user",
    "forget_user",
    "import_user",
    "make_entry_id",
    "parse_age",
]
