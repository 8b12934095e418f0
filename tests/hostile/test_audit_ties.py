"""Tamper evidence (format.md 12.1-13): the tie rules as pure functions, the same verdicts from
drbdbackup (`repo.evidence`) and the independent reader (`verify.evidence`); and what the
writers do: a crashed run's record is a warning until the next backup writes its late entry,
prune entries list what they removed, encrypted repositories seal details, the service alarms
when the head it saw regresses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from drbdbackup.ops import backup, evidence, maintenance
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.render import list_text
from drbdbackup.repo import audit
from drbdbackup.repo import evidence as product
from drbdbackup.service import anchor
from drbdbackup.service.metrics import render
from drbdbackup.service.store import JobStore
from verify import audit as v_audit
from verify import evidence as v_evidence


def h(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


G1, G2, G3 = "20261201T000000000000Z-00000001", "20261202T000000000000Z-00000002", \
    "20261203T000000000000Z-00000003"
BASE = {  # a consistent world: entry seq -> (event, record named, removed)
    1: ("init", None, None),
    2: ("backup", ("a", G1), None),
    3: ("backup", ("b", G1), None),
    4: ("backup", ("a", G2), None),
    5: ("check", None, None),
}
RECORDS = {("a", G1): 1, ("b", G1): 2, ("a", G2): 3}  # record -> the seq it pins


def world(entries: dict, records: dict, *, sha: dict | None = None, pins: dict | None = None,
          hashes: dict | None = None) -> tuple[list, dict, v_audit.Chain, list]:
    """The same world for both implementations."""
    sha, pins, hashes = sha or {}, pins or {}, hashes or {}
    walked, chain = [], v_audit.Chain()
    for seq, (event, rec, removed) in sorted(entries.items()):
        e: dict = {"seq": seq, "event": event}
        if rec is not None:
            e["record"] = {"volume_id": rec[0], "generation": rec[1], "sha256": h(f"rec {rec}")}
        if removed is not None:
            e["removed"] = removed
        digest = hashes.get(seq, h(f"entry {seq}"))
        walked.append(audit.Walked(audit.entry_name(seq), seq, digest, e, None))
        chain.hashes[seq], chain.entries[seq] = digest, e
    facts, ties = {}, []
    for key, pin_seq in records.items():
        digest = sha.get(key, h(f"rec {key}"))
        pin = pins.get(key, (pin_seq, h(f"entry {pin_seq}")) if pin_seq is not None else None)
        facts[key] = product.RecordFact(digest, audit.Head(*pin) if pin else None)
        ties.append(v_evidence.RecordTie(key[0], key[1], digest, pin))
    return walked, facts, chain, ties


def verdicts(entries: dict, records: dict, **kw: dict) -> tuple[list[str], list[str], list[str]]:
    """(product errors, product warnings, verify FAIL messages with their objects)."""
    walked, facts, chain, ties = world(entries, records, **kw)
    ev = product.tie_findings(walked, facts)
    found = v_evidence.tie_findings(chain, ties)
    fails = [f"{f.object}: {f.message}" for f in found if f.severity == "fail"]
    return ev.errors, ev.warnings, fails


def with_(base: dict, **changes: tuple) -> dict:
    out = dict(base)
    for k, v in changes.items():
        seq = int(k[1:])
        if v is None:
            out.pop(seq)
        else:
            out[seq] = v
    return out


CASES = [  # (name, entries, records, kwargs, errors naming, warning)
    ("clean", BASE, RECORDS, {}, None, False),
    ("record deleted", BASE, {k: v for k, v in RECORDS.items() if k != ("a", G2)}, {},
     f"generations/a/{G2}", False),
    ("record removed by a later prune", with_(BASE, s6=("prune", None, [f"a/{G1}"])),
     {k: v for k, v in RECORDS.items() if k != ("a", G1)}, {}, None, False),
    ("prune before the entry naming it", with_(BASE, s1=("prune", None, [f"a/{G2}"])),
     {k: v for k, v in RECORDS.items() if k != ("a", G2)}, {}, f"generations/a/{G2}", False),
    ("record rewritten", BASE, RECORDS, {"sha": {("b", G1): h("other")}},
     f"generations/b/{G1}", False),
    ("log truncated", BASE, RECORDS, {"pins": {("a", G2): (9, h("entry 9"))}},
     f"generations/a/{G2}", False),
    ("log re-chained", BASE, RECORDS, {"hashes": {3: h("rechained")}},
     f"generations/a/{G2}", False),
    ("pinned entry missing", with_(BASE, s3=None), RECORDS, {}, f"generations/a/{G2}", True),
    ("crashed run at the tip", BASE, {**RECORDS, ("b", G3): 5}, {}, None, True),
    ("record with no entry, not the newest", BASE, {**RECORDS, ("a", "20261201T000000000000Z-0000000f"): 1},
     {}, "generations/a/20261201T000000000000Z-0000000f", False),
    ("no entry but a later backup of its volume", with_(BASE, s6=("backup", ("b", G3), None)),
     {**RECORDS, ("b", G2): 5, ("b", G3): 5}, {}, f"generations/b/{G2}", False),
    ("untied record after tied ones", BASE, {**RECORDS, ("a", G3): None}, {},
     f"generations/a/{G3}", False),
    ("records of an older writer", {1: ("init", None, None)}, {("a", G1): None, ("a", G2): None},
     {}, None, True),
]


@pytest.mark.parametrize(("name", "entries", "records", "kw", "named", "warned"), CASES,
                         ids=[c[0] for c in CASES])
def test_both_readers_apply_the_same_rules(name: str, entries: dict, records: dict, kw: dict,
                                           named: str | None, warned: bool) -> None:
    errors, warnings, fails = verdicts(entries, records, **kw)
    if named is None:
        assert errors == [] and fails == [], (errors, fails)
    else:
        assert errors and named in errors[0], errors
        assert fails and named in fails[0], fails
    assert bool(warnings) == warned, warnings


# ---------------------------------------------------------------- the writers


def _image(path: Path, seed: int) -> None:
    path.write_bytes(hashlib.shake_256(str(seed).encode()).digest(512 << 10))


def _backup(ref: RepositoryRef, img: Path, vol: str) -> backup.BackupResult:
    return backup.back_up_file(ref, backup.FileBackup(str(img), vol), backup.BackupOptions())


def test_crashed_run_then_late_entry_then_prune(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ref = RepositoryRef.of(str(repo))
    maintenance.init(ref, maintenance.InitRequest(chunk_size=65536))
    img = tmp_path / "a.img"
    _image(img, 1)
    _backup(ref, img, "a")
    _image(img, 2)
    crashed = _backup(ref, img, "a")
    newest = sorted((repo / "audit").iterdir())[-1]
    assert json.loads(newest.read_bytes())["record"]["generation"] == crashed.generation
    newest.unlink()  # as if the run had stopped between its record and its entry
    rep = maintenance.check(ref)
    assert rep.ok and any(crashed.generation in n and "no audit entry" in n for n in rep.notes)
    assert evidence.audit_findings(ref).warnings
    _image(img, 3)
    _backup(ref, img, "a")  # writes the late entry for the crashed run's record first
    late = [json.loads(p.read_bytes()) for p in sorted((repo / "audit").iterdir())]
    late = [e for e in late if e.get("details", {}).get("late")]
    assert [e["record"]["generation"] for e in late] == [crashed.generation]
    found = evidence.audit_findings(ref)
    assert found.problems == [] and found.warnings == []
    pruned = maintenance.prune(ref, maintenance.PruneRequest(keep_last=1))
    assert len(pruned.removed_generations) == 2
    rep = maintenance.check(ref)
    assert rep.ok and rep.notes == [], rep.to_dict()
    before_check = sorted((repo / "audit").iterdir())[-2]  # the head check saw, then its entry
    assert rep.audit_head["hash"] == hashlib.sha256(before_check.read_bytes()).hexdigest()


def test_encrypted_details_are_sealed_and_the_chain_verifies_without_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    ref = RepositoryRef.of(str(repo), "pw-sealed")
    maintenance.init(ref, maintenance.InitRequest(chunk_size=65536, encryption="aes-256-gcm"))
    img = tmp_path / "a.img"
    _image(img, 4)
    result = _backup(ref, img, "vm-1")
    raw = sorted((repo / "audit").iterdir())[-1].read_bytes()
    entry = json.loads(raw)
    assert "details" not in entry and "sealed" in entry
    assert b"size_bytes" not in raw and str(result.stored_bytes).encode() not in raw
    assert entry["record"]["volume_id"] == "vm-1"  # in clear, as in the record's name
    from drbdbackup.repo.local import LocalBackend

    backend = LocalBackend(str(repo))
    assert audit.check_chain(backend) == []  # no key needed
    details = [e["details"] for e in audit.read_chain(backend)]
    assert details[-1] == {}  # without the key: nothing
    assert maintenance.check(ref).ok
    monkeypatch.setenv("DRBDBACKUP_PASSWORD", "pw-sealed")
    from verify import cli as verify_cli

    assert verify_cli.main(["--repo", str(repo), "--full", "--seed", "1"]) == 0
    last = json.loads(sorted((repo / "audit").iterdir())[-1].read_bytes())
    assert last["event"] == "verify" and "sealed" in last and "details" not in last
    assert evidence.audit_findings(ref).problems == []


def test_list_names_a_record_that_does_not_open(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ref = RepositoryRef.of(str(repo))
    maintenance.init(ref, maintenance.InitRequest(chunk_size=65536))
    img = tmp_path / "a.img"
    _image(img, 5)
    gen = _backup(ref, img, "a").generation
    (repo / "generations" / "a" / gen).write_bytes(b'{"format": 2, "volume_id": 5, "size_bytes": []}')
    text = list_text(maintenance.list_volumes(ref))
    assert "unreadable" in text and gen in text
    assert any(gen in p for p in evidence.audit_findings(ref).problems)
    from verify import cli as verify_cli

    assert verify_cli.main(["--repo", str(repo), "--audit-head", "xyz", "--no-audit"]) == 2


def test_service_alarms_when_the_head_it_saw_regresses(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ref = RepositoryRef.of(str(repo))
    maintenance.init(ref, maintenance.InitRequest(chunk_size=65536))
    img = tmp_path / "a.img"
    _image(img, 6)
    before = tmp_path / "before"
    shutil.copytree(repo, before)  # the repository as it was
    _backup(ref, img, "a")

    async def go() -> tuple[str | None, str | None, dict, str]:
        store = JobStore(str(tmp_path / "state.db"))
        await store.open()
        try:
            first = await anchor.observe(store, ref)
            shutil.rmtree(repo)  # the whole repository rolled back
            shutil.copytree(before, repo)
            second = await anchor.observe(store, ref)
            state = await store.anchor()
            text = render([], await store.counts(), None, state)
        finally:
            await store.close()
        return first, second, state or {}, text

    first, second, state, text = asyncio.run(go())
    assert first is None
    assert second is not None and "regression" in second and state["regression"] == second
    assert "drbdbackup_audit_regression 1" in text
