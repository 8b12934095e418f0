"""The hash-chained audit log (format.md section 12): names and reading. Appending lives in
`audit_writer`, which only the ops layer uses.

Entries are read within the limits of format.md section 17 (16 MiB, nesting depth 32, typed
fields). An entry beyond them is an integrity failure of the chain named by its object, and its
hash is still taken over its bytes (streamed) so the rest of the chain is checked."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

from drbdbackup.errors import IntegrityError, ObjectNotFound
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.capped import cap_of, read_capped, sha256_streamed
from drbdbackup.repo.records import HEX64_RE, JsonObjectError, load_json_object

GENESIS = "0" * 64
EVENTS = {"init", "backup", "restore", "verify", "prune", "check", "failure", "quarantine", "lock"}
ENTRY_NAME_RE = re.compile(r"^audit/[0-9]{12}$")


def entry_name(seq: int) -> str:
    return f"audit/{seq:012d}"


def entries(backend: Backend) -> list[str]:
    """Names of the audit entries, in order (other names under audit/ are not entries)."""
    return [n for n in backend.list("audit/") if ENTRY_NAME_RE.match(n)]


def parse_entry(raw: bytes, seq: int) -> dict[str, Any]:
    """One entry's JSON, bounded, with its own fields checked (not the chain); raises
    JsonObjectError."""
    entry = load_json_object(raw, "audit entry")
    if isinstance(entry.get("seq"), bool) or entry.get("seq") != seq:
        raise JsonObjectError(f"seq is {str(entry.get('seq'))[:40]!r}, expected {seq}")
    prev, event = entry.get("prev"), entry.get("event")
    if not isinstance(prev, str) or not HEX64_RE.match(prev):
        raise JsonObjectError("prev is not 64 hex digits")
    if not isinstance(entry.get("time"), str):
        raise JsonObjectError("time is not a string")
    if not isinstance(event, str) or event not in EVENTS:
        raise JsonObjectError(f"unknown event {str(event)[:40]!r}")
    if not isinstance(entry.get("details", {}), dict):
        raise JsonObjectError("details is not an object")
    return entry


def entry_hash(backend: Backend, name: str) -> str:
    """Hex SHA-256 of an entry's stored bytes (streamed when it is beyond the size limit)."""
    size = backend.size(name)
    if size > cap_of("audit entry"):
        return sha256_streamed(backend, name, size)
    return hashlib.sha256(backend.get(name)).hexdigest()


def _walk(backend: Backend) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(name, entry or None, problem or None) for every entry in order, the chain checked; the
    hash of a bad entry's bytes is still taken, so one bad entry breaks nothing after it."""
    prev, expected = GENESIS, 1
    for name in entries(backend):
        seq = int(name[6:])
        gap = f"audit log chain broken at {name}: expected seq {expected}" if seq != expected else None
        try:
            raw = read_capped(backend, name, "audit entry")
        except ObjectNotFound:
            continue  # the gap is reported at the next entry
        except JsonObjectError as exc:
            yield name, None, gap or f"audit entry {name} is damaged: {exc}"
            prev, expected = entry_hash(backend, name), seq + 1
            continue
        entry, problem = None, gap
        try:
            entry = parse_entry(raw, seq)
            if gap is None and entry["prev"] != prev:
                problem = f"audit log chain broken at {name}: prev hash mismatch"
        except JsonObjectError as exc:
            problem = problem or f"audit entry {name} is damaged: {exc}"
        prev, expected = hashlib.sha256(raw).hexdigest(), seq + 1
        yield name, entry, problem


def read_chain(backend: Backend) -> Iterator[dict[str, Any]]:
    """Yield entries in order, checking the chain; raises IntegrityError on the first break."""
    for _name, entry, problem in _walk(backend):
        if problem is not None or entry is None:
            raise IntegrityError(problem or "audit log chain broken")
        yield entry


def check_chain(backend: Backend) -> list[str]:
    """Every problem of the chain, one line each naming its entry; empty when it is intact."""
    return [problem for _name, _entry, problem in _walk(backend) if problem is not None]
