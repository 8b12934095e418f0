"""The hash-chained audit log (format.md section 12): names and reading. Appending lives in
`audit_writer`, which only the ops layer uses; the ties between entries and generation records
(section 12.1) are checked in `evidence`.

Entries are read within the limits of format.md section 17 (16 MiB, nesting depth 32, typed
fields). An entry beyond them is an integrity failure of the chain named by its object, and its
hash is still taken over its bytes (streamed) so the rest of the chain is checked."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from drbdbackup.errors import IntegrityError, ObjectNotFound
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.capped import cap_of, read_capped, sha256_streamed
from drbdbackup.repo.crypto import OpenFailed, open_sealed
from drbdbackup.repo.records import HEX64_RE, JsonObjectError, load_json_object

GENESIS = "0" * 64
AUDIT_AAD = b"drbdbackup-audit-v1"
EVENTS = {"init", "backup", "restore", "verify", "prune", "check", "failure", "quarantine", "lock",
          "key"}
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
    _check_ties(entry)
    return entry


def _check_ties(entry: dict[str, Any]) -> None:
    """The optional clear fields of version 2 (`record`, `removed`, `sealed`) have their types."""
    rec = entry.get("record")
    if rec is not None and not (
        isinstance(rec, dict) and isinstance(rec.get("volume_id"), str)
        and isinstance(rec.get("generation"), str) and isinstance(rec.get("sha256"), str)
        and HEX64_RE.match(rec["sha256"])
    ):
        raise JsonObjectError("record is not {volume_id, generation, sha256}")
    removed = entry.get("removed")
    if removed is not None and not (isinstance(removed, list)
                                    and all(isinstance(r, str) for r in removed)):
        raise JsonObjectError("removed is not a list of strings")
    if not isinstance(entry.get("sealed", ""), str):
        raise JsonObjectError("sealed is not a string")


def open_details(entry: dict[str, Any], enc_key: bytes | None) -> dict[str, Any] | None:
    """An entry's details: plain, or opened from `sealed` with the key; None when sealed
    details do not open (or there is no key to open them)."""
    if "sealed" not in entry:
        return entry.get("details", {})
    if enc_key is None:
        return None
    try:
        plain = open_sealed(enc_key, base64.b64decode(entry["sealed"], validate=True), AUDIT_AAD)
        details = json.loads(plain.decode("utf-8"))
    except (OpenFailed, binascii.Error, ValueError):
        return None
    return details if isinstance(details, dict) else None


@dataclass(frozen=True)
class Head:
    """The log's newest entry: its seq and the SHA-256 of its stored bytes (0, GENESIS: empty)."""

    seq: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


def head(backend: Backend) -> Head:
    """The current head (read before a generation record is written: its `audit_prev`)."""
    for _ in range(5):
        names = entries(backend)
        if not names:
            return Head(0, GENESIS)
        try:
            return Head(int(names[-1][6:]), entry_hash(backend, names[-1]))
        except ObjectNotFound:
            continue  # deleted between the listing and the read: list again
    raise IntegrityError("the audit log's newest entry keeps disappearing")


def entry_hash(backend: Backend, name: str) -> str:
    """Hex SHA-256 of an entry's stored bytes (streamed when it is beyond the size limit)."""
    size = backend.size(name)
    if size > cap_of("audit entry"):
        return sha256_streamed(backend, name, size)
    return hashlib.sha256(backend.get(name)).hexdigest()


@dataclass(frozen=True)
class Walked:
    """One entry as the chain walk saw it: its object, hash, entry (None: unreadable), problem."""

    name: str
    seq: int
    hash: str
    entry: dict[str, Any] | None
    problem: str | None


def walk(backend: Backend) -> Iterator[Walked]:
    """Every entry in order, the chain checked; the hash of a bad entry's bytes is still taken,
    so one bad entry breaks nothing after it."""
    prev, expected = GENESIS, 1
    for name in entries(backend):
        seq = int(name[6:])
        gap = f"audit log chain broken at {name}: expected seq {expected}" if seq != expected else None
        try:
            raw = read_capped(backend, name, "audit entry")
        except ObjectNotFound:
            continue  # the gap is reported at the next entry
        except JsonObjectError as exc:
            prev, expected = entry_hash(backend, name), seq + 1
            yield Walked(name, seq, prev, None, gap or f"audit entry {name} is damaged: {exc}")
            continue
        entry, problem = None, gap
        try:
            entry = parse_entry(raw, seq)
            if gap is None and entry["prev"] != prev:
                problem = f"audit log chain broken at {name}: prev hash mismatch"
        except JsonObjectError as exc:
            problem = problem or f"audit entry {name} is damaged: {exc}"
        prev, expected = hashlib.sha256(raw).hexdigest(), seq + 1
        yield Walked(name, seq, prev, entry, problem)


def names_record(backend: Backend, after: int, volume_id: str, generation: str) -> bool:
    """Does a backup entry with seq > `after` name this record? (Entries that do not read
    name nothing.)"""
    for name in entries(backend):
        seq = int(name[6:])
        if seq <= after:
            continue
        try:
            rec = parse_entry(read_capped(backend, name, "audit entry"), seq).get("record")
        except (ObjectNotFound, JsonObjectError):
            continue
        if rec and rec["volume_id"] == volume_id and rec["generation"] == generation:
            return True
    return False


def read_chain(backend: Backend, enc_key: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Yield entries in order, checking the chain; raises IntegrityError on the first break.
    Sealed details are opened with `enc_key` (`{}` when they cannot be)."""
    for w in walk(backend):
        if w.problem is not None or w.entry is None:
            raise IntegrityError(w.problem or "audit log chain broken")
        if "sealed" in w.entry:
            w.entry["details"] = open_details(w.entry, enc_key) or {}
        yield w.entry


def check_chain(backend: Backend) -> list[str]:
    """Every problem of the chain, one line each naming its entry; empty when it is intact."""
    return [w.problem for w in walk(backend) if w.problem is not None]
