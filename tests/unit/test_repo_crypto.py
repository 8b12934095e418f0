"""drbdbackup/repo/crypto.py: keyed ids and passphrase-wrapped master keys."""

from __future__ import annotations

import pytest

from drbdbackup.repo.crypto import Hasher, MasterKey, OpenFailed, unwrap_master_key, wrap_master_key


def test_keyed_ids_differ_from_plain() -> None:
    key = MasterKey.generate()
    assert Hasher(key.id_key).id(b"x") != Hasher(None).id(b"x")

def test_key_wrap_wrong_passphrase() -> None:
    key = MasterKey.generate()
    kf = wrap_master_key(key, "right", "now")
    assert unwrap_master_key(kf, "right") == key
    with pytest.raises(OpenFailed):
        unwrap_master_key(kf, "wrong")
    assert "right" not in str(kf)
