"""Audit append: create-exclusive, retry with the next seq on collision, chain stays valid."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vhelpers import make_fixture

from verify.audit import append_entry, check_chain
from verify.store import LocalStore


class _Racing(LocalStore):
    """Another writer wins the first create-exclusive race."""

    raced = False

    def put_exclusive(self, name: str, data: bytes) -> bool:
        if not self.raced:
            self.raced = True
            _f, last, prev = check_chain(LocalStore(self.root))
            other = json.dumps({"seq": last + 1, "time": "t", "event": "backup", "prev": prev,
                                "details": {}}).encode()
            assert LocalStore(self.root).put_exclusive(name, other)
        return super().put_exclusive(name, data)


def test_append_retries_on_collision(tmp_path: Any) -> None:
    fx = make_fixture(tmp_path, False, n_chunks=2)
    store = _Racing(fx.path)
    name = append_entry(store, "verify", {"x": 1})
    assert name == "audit/000000000004"  # 3 was taken by the other writer
    findings, last, _prev = check_chain(store)
    assert findings == [] and last == 4
    third = Path(fx.path, "audit", "000000000003").read_bytes()
    fourth = json.loads(Path(fx.path, "audit", "000000000004").read_bytes())
    assert fourth["prev"] == hashlib.sha256(third).hexdigest()
    assert not [p for p in Path(fx.path, "audit").iterdir() if p.name.endswith(".tmp")]


def test_put_exclusive_never_overwrites(tmp_path: Any) -> None:
    store = LocalStore(str(tmp_path))
    assert store.put_exclusive("audit/000000000001", b"a")
    assert not store.put_exclusive("audit/000000000001", b"b")
    assert (tmp_path / "audit" / "000000000001").read_bytes() == b"a"


def test_lock_staleness_rules() -> None:
    import socket
    from datetime import UTC, datetime, timedelta

    from verify.lock import is_stale

    now = datetime.now(UTC)
    host = socket.gethostname()
    future = (now + timedelta(minutes=5)).isoformat()
    assert is_stale({"expires": (now - timedelta(seconds=1)).isoformat()}, now, "h")
    assert not is_stale({"expires": future, "hostname": "other", "pid": 1}, now, host)
    assert is_stale({"expires": future, "hostname": host, "pid": 2**22 + 12345}, now, host)
    assert not is_stale({"expires": "not a time", "hostname": "other"}, now, host)
    naive = (now + timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    assert not is_stale({"expires": naive}, now, host)
    assert not is_stale({"expires": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")},
                        now, host)
