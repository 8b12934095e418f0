"""Any single flipped byte anywhere in the repository is reported (exit 1), never a crash."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from vhelpers import flip, make_fixture, run_verify


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_random_single_byte_flips(tmp_path: Any, encrypted: bool) -> None:
    fx = make_fixture(tmp_path / "tpl", encrypted, n_chunks=12, pack_target=300_000)
    objects = sorted(p for p in Path(fx.path).rglob("*") if p.is_file())
    rng = random.Random(20261125 + encrypted)
    for trial in range(30):
        obj = objects[trial % len(objects)]
        work = tmp_path / f"t{trial}"
        shutil.copytree(fx.path, work)
        target = work / obj.relative_to(fx.path)
        offset = rng.randrange(target.stat().st_size)
        flip(str(target), offset)
        r = run_verify("--repo", str(work), "--full", "--no-audit", "--no-quarantine")
        where = f"{obj.relative_to(fx.path)} @ {offset}"
        assert r.rc == 1, f"{where}: rc {r.rc} {r.err}{r.out}"
        assert "internal error" not in r.err and "Traceback" not in r.err, where
        shutil.rmtree(work)
