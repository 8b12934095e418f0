"""drbdbackup/repo/pack.py: pack files round-trip and reject damage."""

from __future__ import annotations

import pytest

from drbdbackup.repo.crypto import MasterKey
from drbdbackup.repo.pack import PackFormatError, PackWriter, split_pack


@pytest.mark.parametrize("encrypted", [False, True])
def test_pack_roundtrip_and_damage(tmp_path, encrypted: bool) -> None:
    key = MasterKey.generate().enc_key if encrypted else None
    w = PackWriter(str(tmp_path), key)
    blobs = [(bytes([i]) * 32, bytes([i]) * (100 + i)) for i in range(5)]
    for bid, data in blobs:
        w.add(0, bid, data, len(data))
    _pid, path, entries = w.finish()
    with open(path, "rb") as f:
        raw = f.read()
    assert split_pack(raw, key) == entries
    for e, (bid, data) in zip(entries, blobs, strict=True):
        assert raw[e.offset : e.offset + e.length] == data and e.id == bid
    with pytest.raises(PackFormatError):
        split_pack(raw[:-3], key)
    if encrypted:
        bad = bytearray(raw)
        bad[-20] ^= 0xFF  # inside the sealed TOC
        with pytest.raises(PackFormatError):
            split_pack(bytes(bad), key)
