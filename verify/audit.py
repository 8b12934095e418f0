"""Audit log: verify the hash chain and append entries (section 12)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import EnvironmentFailure
from .format import AUDIT_SEQ_RE, FormatError, audit_name, parse_audit_entry
from .keys import Crypto, seal
from .limits import JSON_MAX_BYTES
from .results import Finding
from .store import ObjectMissing, Store, get_capped, iter_stream

GENESIS = "0" * 64
AAD_AUDIT = b"drbdbackup-audit-v1"


def _sha256_streamed(store: Store, name: str) -> str:
    """SHA-256 of an object read in 1 MiB pieces (for entries too large to hold)."""
    h = hashlib.sha256()
    reader = store.open(name)
    try:
        for _off, block in iter_stream(reader):
            h.update(block)
    finally:
        reader.close()
    return h.hexdigest()


@dataclass
class Chain:
    """The walked log: findings, and per seq the entry's hash and parsed entry (None: bad)."""

    findings: list[Finding] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)
    entries: dict[int, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def last(self) -> int:
        return max(self.hashes, default=0)

    @property
    def head(self) -> str:
        return self.hashes[self.last] if self.hashes else GENESIS


def check_chain(store: Store) -> tuple[list[Finding], int, str]:
    """Check every entry; return (findings, last seq, sha256 hex of the last entry's bytes)."""
    chain = walk_chain(store)
    return chain.findings, chain.last, chain.head


def walk_chain(store: Store) -> Chain:
    """Read and check every entry in seq order, keeping each one's hash (section 12)."""
    chain = Chain()
    findings = chain.findings
    seqs = sorted(
        int(n[len("audit/") :]) for n in store.list("audit") if AUDIT_SEQ_RE.match(n[len("audit/") :])
    )
    prev_hash, expected = GENESIS, 1
    for seq in seqs:
        name = audit_name(seq)
        if seq != expected:
            findings.append(
                Finding("audit-chain", f"audit entries {expected}..{seq - 1} are missing", object=name)
            )
        try:
            data = get_capped(store, name, JSON_MAX_BYTES["audit entry"])
        except ObjectMissing:
            continue
        except FormatError as e:  # too large to parse: a finding, but the chain goes on
            findings.append(Finding("audit-chain", str(e), object=name))
            prev_hash, expected = _sha256_streamed(store, name), seq + 1
            chain.hashes[seq], chain.entries[seq] = prev_hash, None
            continue
        entry = None
        try:
            entry = parse_audit_entry(data, seq)
            if seq == expected and entry["prev"] != prev_hash:
                findings.append(
                    Finding("audit-chain", "'prev' is not the SHA-256 of the previous entry", object=name)
                )
        except FormatError as e:
            findings.append(Finding("audit-chain", str(e), object=name))
        prev_hash, expected = hashlib.sha256(data).hexdigest(), seq + 1
        chain.hashes[seq], chain.entries[seq] = prev_hash, entry
    return chain


def append_entry(store: Store, event: str, details: dict[str, Any], max_tries: int = 100,
                 crypto: Crypto | None = None) -> str:
    """Append one entry create-exclusive; on collision re-read the winner and take the next seq.
    In an encrypted repository the details are sealed (section 12)."""
    _f, last, prev = check_chain(store)
    body: dict[str, Any] = {"time": datetime.now(UTC).isoformat(), "event": event}
    if crypto is not None and crypto.encrypted:
        plain = json.dumps(details, sort_keys=True).encode("utf-8")
        body["sealed"] = base64.b64encode(seal(crypto.enc_key, plain, AAD_AUDIT)).decode("ascii")
    else:
        body["details"] = details
    for _ in range(max_tries):
        seq = last + 1
        entry = {"seq": seq, "prev": prev, **body}
        data = json.dumps(entry, sort_keys=True).encode("utf-8")
        name = audit_name(seq)
        if store.put_exclusive(name, data):
            return name
        try:
            prev = hashlib.sha256(store.get(name)).hexdigest()
        except ObjectMissing:
            continue
        last = seq
    raise EnvironmentFailure("could not append to the audit log (too many concurrent writers)")
