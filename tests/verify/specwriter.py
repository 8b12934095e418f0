"""A tiny test-only repository writer, written from docs/format.md (not from verify/).

It writes config, key files, packs, index files, tree nodes, generation records and audit
entries, so the verifier can be tested before (and independently of) the product's writer.
It shares no code with ``verify`` on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

ZERO = bytes(32)


def _seal(key: bytes, plain: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plain, aad)


@dataclass
class Written:
    """What one backup wrote (for tests that corrupt specific objects)."""

    volume_id: str
    generation: str
    size: int
    chunk_ids: list[bytes]
    root: bytes
    node_ids: list[list[bytes]]  # per level, leaves first
    packs: list[str] = field(default_factory=list)
    index: str = ""


class SpecRepo:
    """Write a format-1 repository into ``path``."""

    def __init__(
        self,
        path: str,
        *,
        encrypted: bool = False,
        passphrase: str = "correct horse",
        chunk_size: int = 65536,
        fanout: int = 4096,
        pack_target: int = 200_000,
        scrypt_n: int = 1024,
    ) -> None:
        self.path = path
        self.encrypted = encrypted
        self.chunk_size = chunk_size
        self.fanout = fanout
        self.pack_target = pack_target
        self.repository_id = os.urandom(32).hex()
        self.master = os.urandom(64) if encrypted else b""
        self.known: set[bytes] = set()
        self.locations: dict[bytes, list[tuple[str, int, int]]] = {}
        self.audit_seq = 0
        self.audit_prev = "0" * 64
        self._clock = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
        os.makedirs(path, exist_ok=True)
        self._put("config", json.dumps({
            "format": 1, "repository_id": self.repository_id,
            "created": self._clock.isoformat(), "chunk_size": chunk_size,
            "tree_fanout": fanout, "hash": "blake3", "compression": "zstd",
            "encryption": "aes-256-gcm" if encrypted else "none",
        }).encode())
        if encrypted:
            self.add_key(passphrase, scrypt_n)
        self.audit("init", {"repository_id": self.repository_id})

    # ---------------------------------------------------------------- primitives

    def _put(self, name: str, data: bytes) -> None:
        p = os.path.join(self.path, *name.split("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = f"{p}.{os.urandom(4).hex()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)

    def obj(self, name: str) -> str:
        """Filesystem path of an object."""
        return os.path.join(self.path, *name.split("/"))

    def id(self, data: bytes) -> bytes:
        if self.encrypted:
            return blake3.blake3(data, key=self.master[32:]).digest()
        return blake3.blake3(data).digest()

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        return _seal(self.master[:32], plain, aad) if self.encrypted else plain

    def add_key(self, passphrase: str, n: int = 1024) -> str:
        salt = os.urandom(16)
        kek = Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())
        keyid = os.urandom(16).hex()
        self._put(f"keys/{keyid}", json.dumps({
            "kdf": "scrypt", "n": n, "r": 8, "p": 1,
            "salt": base64.b64encode(salt).decode(),
            "data": base64.b64encode(_seal(kek, self.master, b"drbdbackup-key-v1")).decode(),
            "created": self._clock.isoformat(),
        }).encode())
        return keyid

    def audit(self, event: str, details: dict[str, Any]) -> str:
        self.audit_seq += 1
        data = json.dumps({"seq": self.audit_seq, "time": self._clock.isoformat(), "event": event,
                           "prev": self.audit_prev, "details": details}).encode()
        name = f"audit/{self.audit_seq:012d}"
        self._put(name, data)
        self.audit_prev = hashlib.sha256(data).hexdigest()
        return name

    def stored_blob(self, plain: bytes, bid: bytes) -> bytes:
        z = zstandard.ZstdCompressor(level=3).compress(plain)
        encoded = b"\x01" + z if len(z) < len(plain) else b"\x00" + plain
        return _seal(self.master[:32], encoded, bid) if self.encrypted else encoded

    # ---------------------------------------------------------------- packs & index

    def write_packs(self, blobs: list[tuple[int, bytes, bytes]]) -> tuple[list[str], dict[str, Any]]:
        """blobs = (kind, id, plaintext); returns (pack ids, index JSON object)."""
        packs: list[str] = []
        index: dict[str, Any] = {"format": 1, "packs": []}
        cur: list[tuple[int, bytes, bytes, int]] = []
        size = 0

        def close() -> None:
            nonlocal cur, size
            if not cur:
                return
            body = bytearray(b"DRBDPACK" + bytes([1]) + bytes(7))
            entries = []
            for kind, bid, stored, plen in cur:
                entries.append(struct.pack("<B32sQII", kind, bid, len(body), len(stored), plen))
                body += stored
            toc = struct.pack("<I", len(entries)) + b"".join(entries)
            tocs = self.seal(toc, b"drbdbackup-toc-v1")
            body += tocs + struct.pack("<I", len(tocs)) + b"DRBDTOC1"
            pid = blake3.blake3(bytes(body)).hexdigest()
            self._put(f"packs/{pid[:2]}/{pid}", bytes(body))
            packs.append(pid)
            blobs_json = []
            off = 16
            for kind, bid, stored, plen in cur:
                blobs_json.append({"id": bid.hex(), "kind": kind, "offset": off,
                                   "length": len(stored), "plain_length": plen})
                self.locations.setdefault(bid, []).append((pid, off, len(stored)))
                off += len(stored)
            index["packs"].append({"id": pid, "blobs": blobs_json})
            cur, size = [], 0

        for kind, bid, plain in blobs:
            stored = self.stored_blob(plain, bid)
            cur.append((kind, bid, stored, len(plain)))
            size += len(stored)
            if size >= self.pack_target:
                close()
        close()
        return packs, index

    def locate(self, bid: bytes, copy: int = 0) -> tuple[str, int, int]:
        """(pack file path, offset, stored length) of one stored copy of a blob."""
        pid, off, ln = self.locations[bid][copy]
        return self.obj(f"packs/{pid[:2]}/{pid}"), off, ln

    def write_index(self, index: dict[str, Any]) -> str:
        stored = self.seal(json.dumps(index).encode(), b"drbdbackup-index-v1")
        iid = blake3.blake3(stored).hexdigest()
        self._put(f"index/{iid}", stored)
        return iid

    # ---------------------------------------------------------------- backup

    def node(self, level: int, ids: list[bytes]) -> bytes:
        return b"DRBT" + bytes([level]) + bytes(3) + struct.pack("<I", len(ids)) + b"".join(ids)

    def backup(self, volume_id: str, data: bytes, *, mode: str = "full",
               parent: str | None = None,
               tamper: Callable[[list[bytes]], list[bytes]] | None = None) -> Written:
        """Back up ``data`` as a new generation of ``volume_id``.

        ``tamper`` may rewrite the chunk-id list before the tree is built (to build
        well-formed trees with wrong content for tests).
        """
        cs = self.chunk_size
        n = -(-len(data) // cs)
        new: list[tuple[int, bytes, bytes]] = []
        chunk_ids = []
        for i in range(n):
            piece = data[i * cs : (i + 1) * cs]
            if piece.count(0) == len(piece):
                chunk_ids.append(ZERO)
                continue
            cid = self.id(piece)
            chunk_ids.append(cid)
            if cid not in self.known:
                self.known.add(cid)
                new.append((0, cid, piece))
        if tamper is not None:
            chunk_ids = tamper(chunk_ids)
        levels: list[list[bytes]] = []
        ids = chunk_ids
        level = 0
        while True:
            groups = [ids[i : i + self.fanout] for i in range(0, len(ids), self.fanout)] or [[]]
            lvl_ids = []
            for g in groups:
                nb = self.node(level, g)
                nid = self.id(nb)
                lvl_ids.append(nid)
                if nid not in self.known:
                    self.known.add(nid)
                    new.append((1, nid, nb))
            levels.append(lvl_ids)
            if len(lvl_ids) == 1:
                break
            ids, level = lvl_ids, level + 1
        packs, index = self.write_packs(new)
        iid = self.write_index(index) if packs else ""
        self._clock += timedelta(seconds=1)
        gen = self._clock.strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(4).hex()
        rec = {
            "format": 1, "repository_id": self.repository_id, "volume_id": volume_id,
            "generation": gen, "created": self._clock.isoformat(), "parent": parent,
            "mode": mode, "tracker": "checksum", "map_validity": "no-parent",
            "fallback_reason": None, "size_bytes": len(data), "chunk_size": cs,
            "chunk_count": n, "root": levels[-1][0].hex(), "tree_height": len(levels),
            "source": {"kind": "file", "path": "/dev/null"},
            "stats": {"read_bytes": len(data), "changed_bytes": len(data), "stored_bytes": 0,
                      "new_chunks": len(new), "zero_chunks": chunk_ids.count(ZERO),
                      "duration_s": 0.0},
        }
        self._put(f"generations/{volume_id}/{gen}",
                  self.seal(json.dumps(rec).encode(), b"drbdbackup-generation-v1"))
        self.audit("backup", {"volume_id": volume_id, "generation": gen})
        return Written(volume_id, gen, len(data), chunk_ids, levels[-1][0], levels, packs, iid)


def volume_bytes(n_chunks: int, chunk_size: int = 65536, seed: int = 1,
                 zero_every: int = 5, partial: int = 1000) -> bytes:
    """Deterministic test data: distinct compressible-ish chunks, some all-zero, a short tail."""
    import random

    rng = random.Random(seed)
    out = bytearray()
    for i in range(n_chunks):
        if zero_every and i % zero_every == zero_every - 1:
            out += bytes(chunk_size)
        elif i % 3 == 0:
            out += rng.randbytes(chunk_size)
        else:
            out += (f"chunk {i} seed {seed} " * (chunk_size // 8)).encode()[:chunk_size]
    out += rng.randbytes(partial)
    return bytes(out)
