"""ci.restore_drill failure paths, with stand-in commands instead of the product."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ci.restore_drill import main as drill

FAKE = '''
import json, sys
args = sys.argv[1:]
mode = {mode!r}
if mode == "warnings":  # a warning {{"like": "json"}} on stderr must not break the parse
    sys.stderr.write('warning: {{"not": "the result"}}\\n')
if args[0] == "list":
    print(json.dumps({{"generations": [
        {{"volume_id": "a", "generation": "20260101T000000000000Z-00000001"}},
        {{"volume_id": "a", "generation": "20260102T000000000000Z-00000002"}},
        {{"volume_id": "b", "generation": "20260101T000000000000Z-00000003"}}]}}))
elif args[0] == "restore":
    target = args[args.index("--target") + 1]
    gen = args[args.index("--generation") + 1]
    if mode == "restore-fails":
        sys.exit("boom")
    open(target, "w").write(gen)
else:  # drbdverify
    ok = mode != "verify-fails"
    print(json.dumps({{"ok": ok, "chunks_checked": 3, "chunks_failed": 0 if ok else 1,
                      "bytes_compared_with_source": 10}}))
    sys.exit(0 if ok else 1)
'''


def _fake(tmp: Path, mode: str) -> str:
    path = tmp / f"fake_{mode}.py"
    path.write_text(FAKE.format(mode=mode))
    return f"{sys.executable} {path}"


@pytest.mark.parametrize("mode,rc", [("ok", 0), ("warnings", 0), ("restore-fails", 1),
                                     ("verify-fails", 1)])
def test_drill_outcomes(tmp_path: Path, mode: str, rc: int,
                        capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake(tmp_path, mode)
    junit = tmp_path / "j.xml"
    hook_log = tmp_path / "hook.log"
    code = drill(["--repo", str(tmp_path), "--drbdbackup", fake, "--drbdverify", fake,
                  "--scratch", str(tmp_path), "--junit", str(junit), "--json",
                  "--hook", f"cat {{target}} >> {hook_log}; echo >> {hook_log}"])
    assert code == rc
    out = json.loads(capsys.readouterr().out)
    steps = {(s["volume_id"], s["step"]): s["status"] for s in out["steps"]}
    assert len(steps) == 6
    if mode in ("ok", "warnings"):
        assert set(steps.values()) == {"pass"}
        # the latest generation is pinned and passed to restore (and to the hook's image)
        assert hook_log.read_text().split() == ["20260102T000000000000Z-00000002",
                                                "20260101T000000000000Z-00000003"]
    elif mode == "restore-fails":
        assert steps[("a", "restore")] == "fail" and steps[("a", "verify")] == "skipped"
    else:
        assert steps[("a", "verify")] == "fail"
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(Path(__file__).with_name("junit.xsd"))).validate(str(junit))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("drill-")] == []


def test_drill_usage(tmp_path: Path) -> None:
    fake = _fake(tmp_path, "ok")
    assert drill([]) == 2
    assert drill(["--repo", "x", "--drbdbackup", fake, "--volume-id", "zzz",
                  "--scratch", str(tmp_path)]) == 2
    assert drill(["--repo", "x", "--drbdbackup", f"{sys.executable} -c 'raise SystemExit(3)'",
                  "--scratch", str(tmp_path)]) == 3
