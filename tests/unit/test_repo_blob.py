"""drbdbackup/repo/blob.py: blob encoding (compression, encryption) and the incompressibility probe."""

from __future__ import annotations

import pytest

from drbdbackup.repo.blob import BlobError, decode_blob, encode_blob
from drbdbackup.repo.crypto import Hasher, MasterKey


@pytest.mark.parametrize("encrypted", [False, True])
def test_blob_roundtrip_and_tamper(encrypted: bool) -> None:
    key = MasterKey.generate() if encrypted else None
    h = Hasher(key.id_key if key else None)
    for plain in (b"a" * 100000, bytes(range(256)) * 10, b""):
        bid = h.id(plain)
        stored = encode_blob(plain, bid, key.enc_key if key else None)
        assert decode_blob(stored, bid, key.enc_key if key else None, len(plain)) == plain
    plain = b"compressible " * 1000
    bid = h.id(plain)
    stored = bytearray(encode_blob(plain, bid, key.enc_key if key else None))
    assert len(stored) < len(plain)
    stored[len(stored) // 2] ^= 0xFF
    try:
        out = decode_blob(bytes(stored), bid, key.enc_key if key else None, len(plain))
    except BlobError:
        return
    assert h.id(out) != bid  # unencrypted raw tamper is caught by the id check

def test_incompressible_probe() -> None:
    import random

    from drbdbackup.repo.blob import looks_incompressible

    rnd = random.Random(1)
    noise = rnd.randbytes(1 << 20)
    text = (b"lorem ipsum dolor sit amet " * 40000)[: 1 << 20]
    assert looks_incompressible(noise)
    assert not looks_incompressible(text)
    mixed = bytearray(text)
    mixed[len(mixed) // 2 - 32768 : len(mixed) // 2 + 32768] = rnd.randbytes(65536)
    assert not looks_incompressible(bytes(mixed))  # mostly text: still compressed
    assert not looks_incompressible(noise[:4096])  # small blobs are always tried
