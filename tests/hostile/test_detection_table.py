"""docs/format.md section 14, walked: every row of the detection table is performed on a small
repository (two volumes, three generations each, ending with a `check` entry; key rows on an
encrypted one) and each tool the table names must detect it as the table says, naming the
object. The table is parsed from the document, so the two cannot drift apart.

The mutations are in `tamper.py`. Tools run in-process: `ops.maintenance.check`, `verify.cli.main` (`drbdverify --full`),
`ops.evidence.audit_findings` (what the report includes) and `drbdverify --audit-head`."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from drbdbackup.errors import describe
from drbdbackup.ops import backup, evidence, maintenance
from drbdbackup.ops.session import RepositoryRef
from tests.hostile.tamper import MUTATIONS, Repo, roll_back_repository
from verify import cli as verify_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"
PASSWORD = "table-test-passphrase"
TOOLS = ("check", "drbdverify", "report", "anchor")
KINDS = {"config", "keys", "packs", "index", "generation records", "audit entries", "locks",
         "quarantine", "cluster objects", "whole repository"}


def table_rows() -> list[tuple[str, str, dict[str, str], str]]:
    """(object, mutation, {tool: cell}, why) for every row and every mutation it lists."""
    text = DOC.read_text()
    section = text[text.index("## 14. Threat model"):text.index("## 15. Changes per version")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or cells[0] in ("object", "---") or set(cells[0]) <= {"-"}:
            continue
        obj, mutations, *verdicts, why = cells
        for mutation in (m.strip() for m in mutations.split("/")):
            rows.append((obj, mutation, dict(zip(TOOLS, verdicts, strict=True)), why))
    return rows


ROWS = table_rows()


def test_the_table_covers_every_object_kind_and_mutation() -> None:
    seen = {(o, m) for o, m, _v, _w in ROWS}
    assert {o for o, _m in seen} == KINDS
    for kind in KINDS - {"whole repository"}:
        for mutation in ("delete", "truncate", "modify", "roll back", "re-chain", "forge"):
            assert (kind, mutation) in seen, (kind, mutation)
    for _o, _m, verdicts, _w in ROWS:
        assert set(verdicts.values()) <= {"fail", "fail (--read-data)", "warn", "refuse", "—"}


# ---------------------------------------------------------------- the repositories


def _image(path: Path, seed: int) -> None:
    path.write_bytes(hashlib.shake_256(str(seed).encode()).digest(1 << 20))


def _change(path: Path, i: int) -> None:
    with open(path, "r+b") as f:
        f.seek(i * 65536)
        f.write(hashlib.shake_256(f"change {i}".encode()).digest(65536))


def _make(root: Path, password: str | None) -> Path:
    repo = root / ("enc" if password else "plain")
    ref = RepositoryRef.of(str(repo), password)
    maintenance.init(ref, maintenance.InitRequest(chunk_size=65536,
                                                  encryption="aes-256-gcm" if password else "none"))
    for v in ("a", "b"):
        _image(root / f"{v}.img", hash(v) & 0xFF)
    for i in range(3):
        for v in ("a", "b"):
            _change(root / f"{v}.img", i)
            backup.back_up_file(ref, backup.FileBackup(str(root / f"{v}.img"), v),
                                backup.BackupOptions())
    assert maintenance.check(ref).ok
    return repo


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("table")
    return {"plain": _make(root, None), "enc": _make(root, PASSWORD)}


# ---------------------------------------------------------------- the tools


@dataclass
class Outcome:
    code: int
    text: str
    warned: bool


def run_check(r: Repo) -> Outcome:
    ref = RepositoryRef.of(str(r.path), r.password)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    logging.getLogger("drbdbackup").addHandler(handler)
    try:
        rep = maintenance.check(ref, read_data=r.read_data)
    except Exception as exc:  # noqa: BLE001 - the exit code is the verdict
        code, msg = describe(exc)
        return Outcome(code, msg, False)
    finally:
        logging.getLogger("drbdbackup").removeHandler(handler)
    text = "\n".join(rep.errors + rep.notes) + logs.getvalue()
    return Outcome(0 if rep.ok else 1, text, bool(rep.notes or logs.getvalue()))


def run_verify(r: Repo, *extra: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    env_before = os.environ.get("DRBDBACKUP_PASSWORD")
    if r.password:
        os.environ["DRBDBACKUP_PASSWORD"] = r.password
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = verify_cli.main(["--repo", str(r.path), "--full", "--no-audit",
                                    "--no-quarantine", "--seed", "1", *extra])
    finally:
        if env_before is None:
            os.environ.pop("DRBDBACKUP_PASSWORD", None)
        else:
            os.environ["DRBDBACKUP_PASSWORD"] = env_before
    text = out.getvalue() + err.getvalue()
    return Outcome(code, text, "note" in text.lower() or "NOTE" in text)


def run_report(r: Repo) -> Outcome:
    try:
        found = evidence.audit_findings(RepositoryRef.of(str(r.path), r.password))
    except Exception as exc:  # noqa: BLE001 - the exit code is the verdict
        code, msg = describe(exc)
        return Outcome(code, msg, False)
    return Outcome(1 if found.problems else 0, "\n".join(found.problems + found.warnings),
                   bool(found.warnings))


def judge(tool: str, verdict: str, o: Outcome, named: str) -> None:
    where = f"{tool}: exit {o.code}: {o.text[-2000:]}"
    if verdict.startswith("fail"):
        assert o.code == 1 and named in o.text, where
    elif verdict == "refuse":
        assert o.code in (2, 4) and named in o.text, where
    elif verdict == "warn":
        assert o.code == 0 and o.warned and named in o.text, where
    else:
        assert o.code == 0 or tool == "anchor", where


TESTED = [(o, m, v, w) for o, m, v, w in ROWS if (o, m) in MUTATIONS or o == "whole repository"]


def test_every_detected_row_has_a_mutation() -> None:
    missing = [(o, m) for o, m, v, _w in ROWS
               if any(c != "—" for c in v.values()) and (o, m) not in MUTATIONS
               and o != "whole repository"]
    assert not missing


@pytest.mark.parametrize(("obj", "mutation", "verdicts", "why"), TESTED,
                         ids=[f"{o}-{m}" for o, m, _v, _w in TESTED])
def test_row(templates: dict[str, Path], tmp_path: Path, obj: str, mutation: str,
             verdicts: dict[str, str], why: str) -> None:
    enc = obj == "keys"
    template = templates["enc" if enc else "plain"]
    r = Repo(tmp_path / "repo", PASSWORD if enc else None)
    shutil.copytree(template, r.path)
    head = hashlib.sha256((r.path / r.entries()[-1]).read_bytes()).hexdigest()
    if obj == "whole repository":
        before = tmp_path / "before"
        shutil.copytree(r.path, before)
        backup.back_up_file(RepositoryRef.of(str(r.path)), backup.FileBackup(
            str(template.parent / "a.img"), "a"), backup.BackupOptions())
        head = hashlib.sha256((r.path / r.entries()[-1]).read_bytes()).hexdigest()
        named = roll_back_repository(r, before)
    else:
        named = MUTATIONS[(obj, mutation)](r)
    r.read_data = verdicts["check"] == "fail (--read-data)"
    judge("report", verdicts["report"], run_report(r), named)  # these two write nothing
    judge("drbdverify", verdicts["drbdverify"], run_verify(r), named)
    if verdicts["anchor"] == "fail":
        judge("anchor", "fail", run_verify(r, "--audit-head", head), "audit/")
    judge("check", verdicts["check"], run_check(r), named)  # appends its audit entry
