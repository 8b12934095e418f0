"""The issue's done-when: a few simulated days (a test clock), a missed day, a verification
failure that heals, a restore drill and a prune; then `report` as JSON, HTML and PDF, signed.
The HTML is rendered by real headless Chromium (DOM text and the missed day's colour), the PDF is
read with pdftotext, all three verify with `verify-report` and with openssl, and one edited
byte fails each. Runs in-process where it can (the verifier, the drill and Chromium are real
processes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ci import restore_drill
from drbdbackup import cli
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.maintenance import InitRequest, PruneRequest, init, list_volumes, prune
from drbdbackup.ops.reporting import ReportRequest, policy_terms, report, verify_report
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.repo import records
from drbdbackup.report.signing import InvalidReport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_tools = pytest.mark.skipif(
    not (CHROMIUM and shutil.which("pdftotext") and shutil.which("openssl")),
    reason="needs chromium, pdftotext (poppler-utils) and openssl; .ci/run installs them")
CHUNK = 64 * 1024
TIMEOUT = 60


class _Clock(datetime):
    """records.now() reads `datetime.now`: a fixed time while `at` is set (test-only clock)."""

    at: datetime | None = None

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return cls.at if cls.at is not None else datetime.now(tz)


def _touch(img: Path, seed: int) -> None:
    with open(img, "r+b") as f:
        f.seek((seed * 3 % 8) * CHUNK)
        f.write(os.urandom(4096))


def _verify(repo: Path, *args: str) -> int:
    cmd = [sys.executable, "-m", "verify", "--repo", str(repo), "--full", "--json", *args]
    return subprocess.run(cmd, capture_output=True, timeout=TIMEOUT).returncode


def _flip_newest_pack(repo: Path) -> None:
    pack = max((p for p in (repo / "packs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Six days: vm and db backed up daily at 02:00, db missed three days ago; today db's
    newest data is found damaged, healed by a backup, verified, drilled; then a prune."""
    tmp = tmp_path_factory.mktemp("history")
    repo, ref = tmp / "repo", RepositoryRef.of(str(tmp / "repo"))
    imgs = {v: tmp / f"{v}.img" for v in ("vm", "db")}
    for img in imgs.values():
        img.write_bytes(os.urandom(8 * CHUNK))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    mp = pytest.MonkeyPatch()
    mp.setattr(records, "datetime", _Clock)
    try:
        _Clock.at = today - timedelta(days=6)
        init(ref, InitRequest(chunk_size=CHUNK))
        for ago in (5, 4, 3, 2, 1):
            _Clock.at = today - timedelta(days=ago) + timedelta(hours=2)
            for vol in ("vm", "db"):
                if vol == "db" and ago == 3:
                    continue  # the missed day
                _touch(imgs[vol], ago)
                back_up_file(ref, FileBackup(str(imgs[vol]), vol, policy="db" if vol == "db" else None),
                             BackupOptions())
    finally:
        _Clock.at = None
        mp.undo()
    damaged_gen = list_volumes(ref, "db")[-1]["generation"]
    _flip_newest_pack(repo)
    assert _verify(repo, "--volume-id", "db") == 1  # found, quarantined
    back_up_file(ref, FileBackup(str(imgs["db"]), "db", policy="db"), BackupOptions.parse("full"))
    assert _verify(repo, "--volume-id", "db", "--generation", damaged_gen) == 0  # healed
    drill = ["--repo", str(repo), "--volume-id", "db", "--scratch", str(tmp), "--timeout", str(TIMEOUT),
             "--drbdbackup", f"{sys.executable} -m drbdbackup", "--drbdverify", f"{sys.executable} -m verify"]
    assert restore_drill.main(drill) == 0
    prune(ref, PruneRequest(keep_last=3))
    cfg = tmp / "service.toml"
    cfg.write_text(f'[service]\ntoken_file = "t"\nstate_db = "s"\n\n[repository]\nlocation = "{repo}"\n\n'
                   f'[[policy]]\nname = "db"\nfiles = [{{ path = "{imgs["db"]}", volume_id = "db" }}]\n'
                   'schedule = "0 2 * * *"\nkeep_last = 3\nrpo = "24h"\nverify_coverage_days = 2\n')
    assert cli.main(["report", "keygen", "--output-dir", str(tmp / "keys")]) == 0
    return {"tmp": tmp, "repo": repo, "ref": ref, "cfg": cfg, "today": today, "damaged": damaged_gen,
            "key": tmp / "keys" / "report-signing.key", "pub": tmp / "keys" / "report-signing.pub"}


def _report(h: dict[str, Any], fmt: str) -> Path:
    out = h["tmp"] / f"report.{fmt}"
    if not out.exists():
        since = (h["today"] - timedelta(days=6)).date().isoformat()
        code = cli.main(["report", "--repo", str(h["repo"]), "--config", str(h["cfg"]), "--since", since,
                         "--format", fmt, "--output", str(out), "--sign-key", str(h["key"]), "--json"])
        assert code == 0 and out.exists()
    return out


def day(h: dict[str, Any], ago: int) -> str:
    return (h["today"] - timedelta(days=ago)).date().isoformat()


def test_json_report_judges_the_history(history: dict[str, Any]) -> None:
    rep = json.loads(_report(history, "json").read_bytes())
    s = {v["volume_id"]: v for v in rep["summary"]}
    db, vm = s["db"], s["vm"]
    assert db["failing_days"][0] == day(history, 3) and db["rpo"]["verdict"] == "fail"
    assert db["rpo"]["source"] == "policy db" and vm["rpo"]["source"] == "default (24h)"
    assert day(history, 3) not in vm["failing_days"]
    (heal,) = db["healing"]
    assert heal["generation"] == history["damaged"] and heal["healed_at"]
    assert db["last_verified_restore"]["verified_by"]
    assert db["coverage"]["target_days"] == 2 and db["coverage"]["verdict"] in ("pass", "fail")
    assert db["retention"]["verdict"] == "pass"
    (p,) = rep["prunes"]
    assert {r["volume_id"]: r["verdict"] for r in p["volumes"]} == {"db": "compliant", "vm": "no-policy"}
    assert rep["audit_chain_ok"] and rep["signer"]["algorithm"] == "Ed25519"
    text = json.dumps(rep)
    assert "password" not in text.lower() and "PRIVATE KEY" not in text


@needs_tools
def test_html_in_chromium_and_pdf_text(history: dict[str, Any]) -> None:
    html = _report(history, "html")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={history['tmp'] / 'chromium'}", "--dump-dom", html.as_uri()],
                         capture_output=True, text=True, timeout=TIMEOUT).stdout
    missed = re.search(rf"<div class=\"day d-missed\" data-day=\"{day(history, 3)}\"[^>]*>", dom)
    assert missed and "background-color:#c62828" in missed.group(0).replace(" ", "")
    assert re.search(rf"data-day=\"{day(history, 3)}\"[^>]*>.*?missed", dom)
    for text in ("Volume db", "Volume vm", "RPO 24h (policy db): FAIL", "coverage: oldest unverified chunk",
                 "healed at", "verified against drbdverify (drill)", "SOC 2 A1.3", "DORA Art. 11",
                 "prune removed", 'id="drbdbackup-signed"', "samples never count"):
        assert text in dom, text
    pdf = _report(history, "pdf")
    txt = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                         timeout=TIMEOUT).stdout
    for text in ("drbdbackup compliance report", "Volume db", "Volume vm", day(history, 3), "missed",
                 "FAIL", "oldest unverified chunk", "Control families", "ISO 27001"):
        assert text in txt, text


@needs_tools
def test_all_formats_verify_with_the_key_and_openssl(history: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    other = history["tmp"] / "other"
    assert cli.main(["report", "keygen", "--output-dir", str(other)]) == 0
    assert (history["key"].stat().st_mode & 0o777) == 0o600
    for fmt in ("json", "html", "pdf"):
        path = _report(history, fmt)
        out = history["tmp"] / f"extract-{fmt}"
        assert cli.main(["verify-report", str(path), "--public-key", str(history["pub"]),
                         "--extract", str(out)]) == 0
        for part in ("report", "document") if fmt != "json" else ("report",):
            proc = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(history["pub"]),
                                   "-rawin", "-in", str(out / f"{part}.payload"), "-sigfile",
                                   str(out / f"{part}.sig")], capture_output=True, text=True, timeout=TIMEOUT)
            assert proc.returncode == 0 and "Signature Verified Successfully" in proc.stdout, (fmt, part)
        capsys.readouterr()
        assert cli.main(["verify-report", str(path), "--public-key", str(other / "report-signing.pub")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another key" in err[0]
        raw = path.read_bytes()
        for pos in (0, len(raw) // 3, len(raw) // 2, len(raw) - 2):
            bad = bytearray(raw)
            bad[pos] ^= 0xFF
            edited = history["tmp"] / f"edited.{fmt}"
            edited.write_bytes(bytes(bad))
            with pytest.raises(InvalidReport):
                verify_report(str(edited), str(history["pub"]))
        assert cli.main(["verify-report", str(edited), "--public-key", str(history["pub"])]) == 1


def test_bad_input_is_one_line(history: dict[str, Any], capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["report", "--repo", str(history["repo"]), "--format", "json", "--output",
            str(history["tmp"] / "x.json")]
    cases = [(["--since", "2026-02-30"], 2, "invalid --since date"),
             (["--until", "tomorrow"], 2, "invalid --until date"),
             (["--since", "2026-12-05", "--until", "2026-12-01"], 2, "is before --since"),
             (["--volume-id", "nope"], 2, "no volume nope"),
             (["--rpo", "soon"], 2, "invalid duration"),
             (["--sign-key", str(history["pub"])], 2, "not an unencrypted PEM private key")]
    capsys.readouterr()
    assert cli.main(["report", "--format", "json", "--output", "x"]) == 2
    assert "report needs --repo REPO (or --config FILE)" in capsys.readouterr().err
    for extra, code, needle in cases:
        capsys.readouterr()
        assert cli.main([*base, *extra]) == code, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], (extra, err)
    monkeypatch.setenv("DRBDBACKUP_CHROMIUM", "/nonexistent/chromium")
    pdf = [*base[:3], "--format", "pdf", "--output", str(history["tmp"] / "x.pdf")]
    assert cli.main(pdf) == 3
    assert "needs Chromium" in capsys.readouterr().err
    assert cli.main(["report", "keygen", "--output-dir", str(history["key"].parent)]) == 2  # never overwrites


def test_report_of_one_volume_in_process(history: dict[str, Any]) -> None:
    """The ops call the service would make; a policy object from the config shape."""
    from drbdbackup.service.config import load_config

    pol = load_config(str(history["cfg"])).policy
    out = history["tmp"] / "db-only.json"
    s = report(history["ref"], ReportRequest("json", str(out), volume_id="db", rpo="7d",
                                             policies=[policy_terms(p) for p in pol]))
    assert list(s["volumes"]) == ["db"] and s["signed_by"] is None
    rep = json.loads(out.read_bytes())
    assert rep["summary"][0]["rpo"]["source"] == "--rpo" and "signature" not in rep
    with pytest.raises(InvalidReport, match="not signed"):
        verify_report(str(out), str(history["pub"]))
    # the repository named by the config (no --repo)
    assert cli.main(["report", "--config", str(history["cfg"]), "--format", "json", "--output", str(out)]) == 0
    assert json.loads(out.read_bytes())["summary"][0]["rpo"]["source"] == "policy db"
