"""Appending to the audit log (format.md section 12). Only the ops layer writes audit entries.

In an encrypted repository (`enc_key` given) the `details` are sealed; the ties that readers
check without the key (`record` of a backup, `removed` of a prune) stay in clear."""

from __future__ import annotations

import base64
import json
from typing import Any

from drbdbackup.errors import IntegrityError, ObjectExists, ObjectNotFound
from drbdbackup.repo.audit import AUDIT_AAD, EVENTS, GENESIS, entries, entry_hash, entry_name
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.crypto import seal
from drbdbackup.repo.records import iso, now


def _body(event: str, details: dict, enc_key: bytes | None, ties: dict[str, Any]) -> dict[str, Any]:
    """The entry without seq and prev: details plain or sealed, plus the clear ties."""
    body: dict[str, Any] = {"time": iso(now()), "event": event, **ties}
    if enc_key is None:
        body["details"] = details
    else:
        plain = json.dumps(details, sort_keys=True).encode()
        body["sealed"] = base64.b64encode(seal(enc_key, plain, AUDIT_AAD)).decode()
    return body


def append(backend: Backend, event: str, details: dict, *, attempts: int = 50,
           enc_key: bytes | None = None, record: dict[str, str] | None = None,
           removed: list[str] | None = None) -> int:
    """Append one entry, create-exclusive; retries with the next seq on a race. `record` (a
    backup's record: volume_id, generation, sha256 of its stored bytes) and `removed` (a
    prune's deleted records, "volume/generation") are the clear ties of section 12."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event}")
    ties: dict[str, Any] = {}
    if record is not None:
        ties["record"] = record
    if removed is not None:
        ties["removed"] = removed
    body = _body(event, details, enc_key, ties)
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
        entry = {"seq": seq, "prev": prev, **body}
        try:
            backend.put(entry_name(seq), json.dumps(entry, sort_keys=True).encode(), exclusive=True)
            return seq
        except ObjectExists:
            continue
    raise IntegrityError("could not append to the audit log: too many concurrent writers")
