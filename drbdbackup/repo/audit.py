"""The hash-chained audit log (format.md section 12): names and reading. Appending lives in
`audit_writer`, which only the ops layer uses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from drbdbackup.errors import IntegrityError
from drbdbackup.repo.backend import Backend

GENESIS = "0" * 64
EVENTS = {"init", "backup", "restore", "verify", "prune", "check", "failure", "quarantine", "lock"}


def entry_name(seq: int) -> str:
    return f"audit/{seq:012d}"


def entries(backend: Backend) -> list[str]:
    return [n for n in backend.list("audit/") if n[6:].isdigit() and len(n) == 18]


def read_chain(backend: Backend) -> Iterator[dict]:
    """Yield entries in order, checking the chain; raises IntegrityError on a break."""
    prev = GENESIS
    for expected, name in enumerate(entries(backend), start=1):
        raw = backend.get(name)
        try:
            entry = json.loads(raw)
        except ValueError:
            raise IntegrityError(f"audit entry {name} is not valid JSON") from None
        if entry.get("seq") != expected or int(name[6:]) != expected:
            raise IntegrityError(f"audit log chain broken at {name}: expected seq {expected}")
        if entry.get("prev") != prev:
            raise IntegrityError(f"audit log chain broken at {name}: prev hash mismatch")
        prev = hashlib.sha256(raw).hexdigest()
        yield entry
