"""The hash-chained audit log (format.md section 12)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from drbdbackup.errors import IntegrityError, ObjectExists, ObjectNotFound
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.records import iso, now

GENESIS = "0" * 64
EVENTS = {"init", "backup", "restore", "verify", "prune", "check", "failure", "quarantine", "lock"}


def entry_name(seq: int) -> str:
    return f"audit/{seq:012d}"


def _entries(backend: Backend) -> list[str]:
    return [n for n in backend.list("audit/") if n[6:].isdigit() and len(n) == 18]


def append(backend: Backend, event: str, details: dict, *, attempts: int = 50) -> int:
    """Append one entry, create-exclusive; retries with the next seq on a race."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event}")
    for _ in range(attempts):
        names = _entries(backend)
        if names:
            last = names[-1]
            seq = int(last[6:]) + 1
            try:
                prev = hashlib.sha256(backend.get(last)).hexdigest()
            except ObjectNotFound:
                continue
        else:
            seq, prev = 1, GENESIS
        entry = {"seq": seq, "time": iso(now()), "event": event, "prev": prev, "details": details}
        try:
            backend.put(entry_name(seq), json.dumps(entry, sort_keys=True).encode(), exclusive=True)
            return seq
        except ObjectExists:
            continue
    raise IntegrityError("could not append to the audit log: too many concurrent writers")


def read_chain(backend: Backend) -> Iterator[dict]:
    """Yield entries in order, checking the chain; raises IntegrityError on a break."""
    prev = GENESIS
    for expected, name in enumerate(_entries(backend), start=1):
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
