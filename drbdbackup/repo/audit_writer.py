"""Appending to the audit log (format.md section 12). Only the ops layer writes audit entries."""

from __future__ import annotations

import json

from drbdbackup.errors import IntegrityError, ObjectExists, ObjectNotFound
from drbdbackup.repo.audit import EVENTS, GENESIS, entries, entry_hash, entry_name
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.records import iso, now


def append(backend: Backend, event: str, details: dict, *, attempts: int = 50) -> int:
    """Append one entry, create-exclusive; retries with the next seq on a race."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event}")
    for _ in range(attempts):
        names = entries(backend)
        if names:
            last = names[-1]
            seq = int(last[6:]) + 1
            try:
                prev = entry_hash(backend, last)
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
