"""Run harnesses for a set time each and print coverage and executions per harness.

    python fuzz/run.py [--seconds 60] [--jobs 2] [--work DIR] [--seeds DIR] [harness ...]

Seeds come from fuzz/seed.py (made into WORK/seeds unless --seeds is given); each harness fuzzes
a copy of its seeds in WORK/corpus/<harness> (kept between runs, so a campaign resumes). A crash
leaves its input in WORK/artifacts and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RSS_LIMIT_MB = 400  # the interpreter with drbdbackup imported is ~60-110 MiB of it


def harnesses() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem.startswith(("product_", "verify_")))


@dataclass
class Result:
    harness: str
    seconds: float
    crashed: bool
    execs: int = 0
    execs_per_s: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    peak_rss_mb: int = 0
    artifact: str = ""
    tail: str = ""


_DONE = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)")


def parse(harness: str, seconds: float, rc: int, out: str, artifacts: Path) -> Result:
    """libFuzzer's last status line and -print_final_stats lines."""
    res = Result(harness, round(seconds, 1), rc != 0)
    for m in _DONE.finditer(out):
        res.execs, res.cov, res.ft, res.corpus = (int(x) for x in m.groups())
    stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", out))
    res.execs = int(stats.get("number_of_executed_units", res.execs))
    res.execs_per_s = int(stats.get("average_exec_per_sec", 0))
    res.peak_rss_mb = int(stats.get("peak_rss_mb", 0))
    if res.crashed:
        found = sorted(artifacts.glob(f"{harness}-*"), key=lambda p: p.stat().st_mtime)
        res.artifact = str(found[-1]) if found else ""
        res.tail = "\n".join(out.splitlines()[-25:])
    return res


def run_one(harness: str, seconds: int, work: Path, seeds: Path, extra: list[str],
            env: dict[str, str] | None = None) -> Result:
    """One bounded libFuzzer run of `harness` (killed 60 s after its own time limit)."""
    corpus = work / "corpus" / harness
    corpus.mkdir(parents=True, exist_ok=True)
    if (seeds / harness).is_dir():
        for seed in (seeds / harness).iterdir():
            shutil.copy(seed, corpus / seed.name)
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, str(HERE / f"{harness}.py"), f"-max_total_time={seconds}",
            "-print_final_stats=1", f"-rss_limit_mb={RSS_LIMIT_MB}", "-timeout=10",
            "-max_len=131072", "-len_control=0", "-keep_seed=1", f"-artifact_prefix={artifacts}/{harness}-",
            *extra, str(corpus)]
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
    text = out.decode("utf-8", "replace")
    return parse(harness, time.monotonic() - start, proc.returncode, text, artifacts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path(".fuzz"))
    p.add_argument("--seeds", type=Path)
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    p.add_argument("names", nargs="*", help="harnesses (default: all)")
    args = p.parse_args(argv)
    names = args.names or harnesses()
    seeds = args.seeds or args.work / "seeds"
    if args.seeds is None and not seeds.is_dir():
        subprocess.run([sys.executable, str(HERE / "seed.py"), str(seeds)], check=True,
                       timeout=300)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda h: run_one(h, args.seconds, args.work, seeds, []), names))
    print(f"{'harness':26} {'s':>6} {'execs':>10} {'exec/s':>7} {'cov':>5} {'ft':>6} "
          f"{'corp':>5} {'rss':>5}  result")
    for r in results:
        print(f"{r.harness:26} {r.seconds:6.0f} {r.execs:10d} {r.execs_per_s:7d} {r.cov:5d} "
              f"{r.ft:6d} {r.corpus:5d} {r.peak_rss_mb:5d}  "
              f"{'CRASH ' + r.artifact if r.crashed else 'ok'}")
    for r in results:
        if r.crashed:
            print(f"\n== {r.harness}\n{r.tail}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 1 if any(r.crashed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
