"""Tampering with a repository's objects the way docs/format.md section 14 lists: a copy of a
repository (`Repo`) and one function per (object kind, mutation) that changes it and returns
the text the detecting tool must name (an object name or the message naming it)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Repo:
    """A fresh copy of a template, with helpers to name and change its objects."""

    path: Path
    password: str | None
    read_data: bool = False

    def names(self, prefix: str) -> list[str]:
        base = self.path / prefix
        return sorted(str(p.relative_to(self.path)) for p in base.rglob("*") if p.is_file())

    def records(self, vol: str = "a") -> list[str]:
        return self.names(f"generations/{vol}")

    def entries(self) -> list[str]:
        return self.names("audit")

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def write(self, name: str, data: bytes) -> None:
        (self.path / name).parent.mkdir(parents=True, exist_ok=True)
        (self.path / name).write_bytes(data)

    def flip(self, name: str, offset: int) -> None:
        data = bytearray(self.read(name))
        data[offset] ^= 0xFF
        self.write(name, bytes(data))

    def entry(self, name: str) -> dict:
        return json.loads(self.read(name))

    def rechain(self, entries: list[dict]) -> None:
        """Rewrite the whole log from these entries: seq 1.., each prev the previous hash."""
        for n in self.entries():
            (self.path / n).unlink()
        prev = "0" * 64
        for seq, e in enumerate(entries, 1):
            data = json.dumps({**e, "seq": seq, "prev": prev}, sort_keys=True).encode()
            self.write(f"audit/{seq:012d}", data)
            prev = hashlib.sha256(data).hexdigest()


Mutation = Callable[[Repo], str]  # changes the repository, returns the object name to be named


def _delete(r: Repo, name: str) -> str:
    (r.path / name).unlink()
    return name


def _truncate(r: Repo, name: str) -> str:
    r.write(name, r.read(name)[: len(r.read(name)) // 2])
    return name


def _forge_config(r: Repo) -> str:
    cfg = json.loads(r.read("config"))
    cfg["repository_id"] = "ab" * 32
    r.write("config", json.dumps(cfg).encode())
    return r.records()[0]


def _forge_key(r: Repo) -> str:
    from drbdbackup.repo.crypto import MasterKey, wrap_master_key

    for n in r.names("keys"):
        (r.path / n).unlink()
    kf = wrap_master_key(MasterKey.generate(), "attacker", "2026-12-03T00:00:00+00:00")
    r.write("keys/" + "ee" * 16, json.dumps(kf).encode())
    r.password = "attacker"
    return r.records()[0]


def _pack(r: Repo) -> str:
    return r.names("packs")[0]


def _pack_id(r: Repo) -> str:
    return _pack(r).rsplit("/", 1)[1]


def _first_gen(r: Repo) -> str:
    """Volume a's first generation id: its blobs are in the first pack and index file."""
    return r.records()[0].rsplit("/", 1)[1]


def _pack_data_byte(r: Repo) -> str:
    r.flip(_pack(r), 100)
    return _pack_id(r)


def _forge_pack(r: Repo) -> str:
    import blake3

    data = b"DRBDPACK" + bytes(8) + os.urandom(64)
    pid = blake3.blake3(data).hexdigest()
    name = f"packs/{pid[:2]}/{pid}"
    r.write(name, data)
    return pid


def _index(r: Repo) -> str:
    """The index file written by volume a's first backup (its blobs are listed nowhere else)."""
    return min(r.names("index"), key=lambda n: (r.path / n).stat().st_mtime_ns)


def _forge_index(r: Repo) -> str:
    import blake3

    name = _index(r)
    doc = json.loads(r.read(name))
    pack = doc["packs"][0]
    pack["blobs"][0]["offset"] += 1
    data = json.dumps(doc).encode()
    r.write(f"index/{blake3.blake3(data).hexdigest()}", data)
    return str(pack["id"])


def _delete_pack(r: Repo) -> str:
    pid = _pack_id(r)
    _delete(r, _pack(r))
    return pid


def _modify_index(r: Repo) -> str:
    name = _index(r)
    r.flip(name, 30)
    return name


def _modify_record(r: Repo) -> str:
    name = r.records()[1]
    doc = json.loads(r.read(name))
    doc["labels"] = {"vm": "edited"}
    r.write(name, json.dumps(doc, sort_keys=True, indent=1).encode())
    return name


def _roll_back_record(r: Repo) -> str:
    name, older = r.records()[2], json.loads(r.read(r.records()[1]))
    doc = json.loads(r.read(name))
    doc["audit_prev"], doc["created"] = older["audit_prev"], older["created"]
    r.write(name, json.dumps(doc, sort_keys=True, indent=1).encode())
    return name


def _swap_records(r: Repo) -> str:
    one, two = r.records()[0], r.records()[1]
    a, b = r.read(one), r.read(two)
    r.write(one, b)
    r.write(two, a)
    return one


def _forge_record(r: Repo, newest: bool) -> str:
    """A copy of a record under the id right after the first (or the newest) one; as the
    newest it pins the log's current head, as a crashed run's record would."""
    doc = json.loads(r.read(r.records()[0]))
    gens = [n.rsplit("/", 1)[1] for n in r.records()]
    gen = (gens[-1] if newest else gens[0])[:22] + "-ffffffff"
    assert (gen > gens[-1]) if newest else (gens[0] < gen < gens[1])
    doc["generation"] = gen
    if newest:
        last = r.entries()[-1]
        doc["audit_prev"] = {"seq": int(last.rsplit("/", 1)[1]),
                             "hash": hashlib.sha256(r.read(last)).hexdigest()}
    name = f"generations/a/{gen}"
    r.write(name, json.dumps(doc, sort_keys=True, indent=1).encode())
    return name


def _middle_entry(r: Repo) -> str:
    return r.entries()[3]


def _modify_entry(r: Repo) -> str:
    name = _middle_entry(r)
    e = r.entry(name)
    e["time"] = "2020-01-01T00:00:00+00:00"
    r.write(name, json.dumps(e, sort_keys=True).encode())
    return r.entries()[4]


def _modify_newest(r: Repo) -> str:
    name = r.entries()[-1]
    e = r.entry(name)
    e["time"] = "2020-01-01T00:00:00+00:00"
    r.write(name, json.dumps(e, sort_keys=True).encode())
    return "audit/"


def _truncate_log(r: Repo) -> str:
    for n in r.entries()[-3:]:
        (r.path / n).unlink()
    return r.records("b")[-1]


def _rechain(r: Repo) -> str:
    entries = [r.entry(n) for n in r.entries()]
    del entries[2]  # the backup entry of a's first generation
    r.rechain(entries)
    return "generations/"


def _forge_entry(r: Repo) -> str:
    last = r.entries()[-1]
    seq = int(last.rsplit("/", 1)[1]) + 1
    gen = "20991231T000000000000Z-00000000"
    e = {"seq": seq, "time": "2099-12-31T00:00:00+00:00", "event": "backup",
         "prev": hashlib.sha256(r.read(last)).hexdigest(), "details": {},
         "record": {"volume_id": "a", "generation": gen, "sha256": "00" * 32}}
    r.write(f"audit/{seq:012d}", json.dumps(e, sort_keys=True).encode())
    return f"generations/a/{gen}"


def _roll_back_log(r: Repo) -> str:
    (r.path / r.entries()[-1]).unlink()  # the check entry: nothing pins it
    return "audit/"


def _forge_lock(r: Repo) -> str:
    lock = {"exclusive": True, "operation": "prune", "hostname": socket.gethostname(),
            "pid": os.getpid(), "owner": "attacker@host", "created": "2026-12-03T00:00:00+00:00",
            "expires": "2999-01-01T00:00:00+00:00"}
    name = "locks/" + "cd" * 16
    r.write(name, json.dumps(lock).encode())
    return "attacker@host"


def _forge_quarantine(r: Repo) -> str:
    doc = json.loads(r.read(_index(r)))
    pack = doc["packs"][0]
    for blob in pack["blobs"]:
        r.write(f"quarantine/{blob['id']}-{pack['id']}", json.dumps(
            {"id": blob["id"], "pack": pack["id"], "reason": "forged", "found_by": "attacker",
             "time": "2026-12-03T00:00:00+00:00"}).encode())
    return _first_gen(r)


def roll_back_repository(r: Repo, before: Path) -> str:
    shutil.rmtree(r.path)
    shutil.copytree(before, r.path)
    return "audit/"


MUTATIONS: dict[tuple[str, str], Mutation] = {
    ("config", "delete"): lambda r: (_delete(r, "config"), "not a drbdbackup repository")[1],
    ("config", "truncate"): lambda r: _truncate(r, "config"),
    ("config", "modify"): lambda r: (r.flip("config", 20), "config")[1],
    ("config", "forge"): _forge_config,
    ("keys", "delete"): lambda r: (_delete(r, r.names("keys")[0]), "key")[1],
    ("keys", "truncate"): lambda r: (_truncate(r, r.names("keys")[0]), "key")[1],
    ("keys", "modify"): lambda r: _key_modify(r),
    ("keys", "forge"): _forge_key,
    ("packs", "delete"): _delete_pack,
    ("packs", "truncate"): lambda r: (_truncate(r, _pack(r)), _pack_id(r))[1],
    ("packs", "modify"): _pack_data_byte,
    ("packs", "forge"): _forge_pack,
    ("index", "delete"): lambda r: (_delete(r, _index(r)), _first_gen(r))[1],
    ("index", "truncate"): lambda r: _truncate(r, _index(r)),
    ("index", "modify"): _modify_index,
    ("index", "forge"): _forge_index,
    ("generation records", "delete"): lambda r: _delete(r, r.records()[1]),
    ("generation records", "truncate"): lambda r: _truncate(r, r.records()[1]),
    ("generation records", "modify"): _modify_record,
    ("generation records", "roll back"): _roll_back_record,
    ("generation records", "re-chain"): _swap_records,
    ("generation records", "forge"): lambda r: _forge_record(r, newest=False),
    ("generation records", "forge newest"): lambda r: _forge_record(r, newest=True),
    ("audit entries", "delete"): lambda r: (_delete(r, _middle_entry(r)), r.entries()[3])[1],
    ("audit entries", "delete newest"): _roll_back_log,
    ("audit entries", "truncate"): _truncate_log,
    ("audit entries", "modify"): _modify_entry,
    ("audit entries", "modify newest"): _modify_newest,
    ("audit entries", "re-chain"): _rechain,
    ("audit entries", "forge"): _forge_entry,
    ("audit entries", "roll back"): _roll_back_log,
    ("locks", "forge"): _forge_lock,
    ("quarantine", "forge"): _forge_quarantine,
}


def _key_modify(r: Repo) -> str:
    name = r.names("keys")[0]
    kf = json.loads(r.read(name))
    data = bytearray(base64.b64decode(kf["data"]))
    data[-1] ^= 0xFF
    kf["data"] = base64.b64encode(bytes(data)).decode()
    r.write(name, json.dumps(kf).encode())
    return "wrong passphrase"  # a key file that does not open is one of another passphrase
