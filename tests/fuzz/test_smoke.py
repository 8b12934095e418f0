"""A short run of every atheris harness in fuzz/ (about a second each, on seeds fuzz/seed.py
extracts from repositories the real tools write), and proof that the harnesses re-find the two
bugs of issue 20 within seconds once their fix is reverted (FUZZ_DISABLE_BOUNDS):
plain_length inflation (a decoded blob beyond the chunk size, the memory bound) in the blob
harnesses, and nested JSON (RecursionError) in the index harnesses. Skipped without atheris.

The long campaign is `tox -e fuzz` (python fuzz/run.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris (the coverage-guided fuzzer) is not installed")

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
_spec = importlib.util.spec_from_file_location("fuzz_run", FUZZ / "run.py")
assert _spec and _spec.loader
fuzz_run = importlib.util.module_from_spec(_spec)
sys.modules["fuzz_run"] = fuzz_run  # dataclasses look their module up
_spec.loader.exec_module(fuzz_run)

PARALLEL = 3


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seeds")
    env = {**os.environ, "TMPDIR": "/dev/shm" if os.path.isdir("/dev/shm") else str(out)}
    subprocess.run([sys.executable, str(FUZZ / "seed.py"), str(out)], check=True, timeout=120,
                   env=env, capture_output=True)
    return out


def test_seed_covers_every_harness(seeds: Path) -> None:
    missing = [h for h in fuzz_run.harnesses() if not any((seeds / h).glob("*"))]
    assert missing == []


def test_every_harness_runs_clean_for_a_second(seeds: Path, tmp_path: Path) -> None:
    names = fuzz_run.harnesses()
    assert len(names) >= 23

    def one(h: str) -> fuzz_run.Result:
        return fuzz_run.run_one(h, 1, tmp_path, seeds, ["-runs=3000"])  # 1 s or 3000 inputs

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(one, names))
    crashed = [f"{r.harness}:\n{r.tail}" for r in results if r.crashed]
    assert crashed == [], "\n\n".join(crashed)
    assert all(r.execs > 0 for r in results), [(r.harness, r.execs) for r in results]


@pytest.mark.parametrize("harness,bound,needle", [
    ("product_blob", "plain_length", "BoundBreach: decoded blob"),
    ("verify_blob", "plain_length", "BoundBreach: decoded blob"),
    ("product_index", "depth", "RecursionError"),
    ("verify_index", "depth", "RecursionError"),
])
def test_harness_refinds_the_bug_with_its_fix_reverted(seeds: Path, tmp_path: Path, harness: str,
                                                       bound: str, needle: str) -> None:
    res = fuzz_run.run_one(harness, 30, tmp_path, seeds, ["-seed=1"],
                           env={"FUZZ_DISABLE_BOUNDS": bound})
    assert res.crashed, f"{harness} did not re-find {bound} in 30 s"
    assert needle in res.tail, res.tail
    assert res.seconds < 30
