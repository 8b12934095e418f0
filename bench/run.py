#!/usr/bin/env python3
"""drbdbackup benchmark: DESIGN section 10 targets, measured in one run on one image.

usage: python bench/run.py [--size-mib N] [--workdir DIR] [--peers] [--json FILE]
                           [--keep] [--no-drop-caches] [--no-check-restore]

Steps (caches dropped before every timed step when running as root, as peers.sh does):
  1. mixed image, same generator as ../shared/bench/peers.sh (seed 7; per MiB i: i % 4 ->
     random, zero, text, text)
  2. dd if=img of=/dev/null bs=4M iflag=direct                        (read limit)
  3. drbdbackup init + full backup                                     -> ratio to dd read
  4. [--peers] restic, borg (fixed 4 MiB lz4), borg (fixed 1 MiB zstd,1) full backups
  5. 1% churn: rewrite 1% of 64 KiB blocks at random offsets (seed 11, as peers.sh)
  6. drbdbackup checksum incremental                                   -> ratio to dd read
  7. [--peers] restic / borg incrementals, repository growth
  8. dd if=/dev/zero of=out bs=4M count=N oflag=direct                 (write limit)
  9. drbdbackup restore of the incremental to a file                   -> throughput vs dd write
 10. drbdverify --sample 0.05 (skipped with a note if `python -m verify --help` fails)
 11. a second dd read (noise indicator only)

Output: a table, then one "name value" line per metric, then one "target_<x> PASS|MISS ..." line
per target.  A missed target never fails the run: the exit status is 0 unless a drbdbackup /
drbdverify / dd command failed or the restored image differs from the source (1), or the
arguments are wrong (2).  A failing peer tool (restic, borg) is reported as a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

MIB = 1 << 20

# Targets (DESIGN.md section 10).  kind: "max" = value must be <= limit, "min" = >= limit.
TARGETS = [
    ("full", "drbd_full_ratio", "max", 1.25, "full backup time / dd read time"),
    ("incr", "drbd_incr_ratio", "max", 1.15, "checksum incremental time / dd read time"),
    ("restore", "drbd_restore_ratio", "min", 0.80, "restore throughput / dd write throughput"),
    ("verify", "drbd_verify_ratio", "max", 0.10, "5% sample verify time / dd read time"),
    (
        "rss",
        "drbd_peak_rss_mib",
        "max",
        300.0,
        "peak RSS of any drbdbackup/drbdverify command (MiB)",
    ),
]


class BenchError(Exception):
    """A measured command failed: the benchmark cannot report meaningful numbers."""


@dataclass
class Run:
    cmd: list[str]
    wall_s: float
    rss_mib: float
    cpu_s: float
    rc: int
    stdout: str
    stderr: str


@dataclass
class Bench:
    workdir: str
    size_mib: int
    drop: bool
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def put(self, name: str, value: float) -> None:
        self.metrics[name] = value
        print(f"  {name} {_fmt(value)}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", file=sys.stderr, flush=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.workdir, *parts)


def _fmt(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 100:
        return str(int(v))
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


# ---------------------------------------------------------------- running commands


def run(
    cmd: list[str],
    *,
    stdin_path: str | None = None,
    cwd: str | None = None,
    env: dict | None = None,
    check: bool = True,
) -> Run:
    """Run `cmd`; return wall time and the child's own peak RSS (wait4 rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, cwd=cwd, env=env)
            _pid, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if stdin_path:
                stdin.close()
        out.seek(0)
        err.seek(0)
        r = Run(
            cmd,
            wall,
            ru.ru_maxrss / 1024.0,
            ru.ru_utime + ru.ru_stime,
            p.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    if check and r.rc != 0:
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-15:])
        raise BenchError(f"command failed (exit {r.rc}): {' '.join(cmd)}\n{tail}")
    return r


def drop_caches(b: Bench) -> None:
    os.sync()
    if not b.drop:
        return
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        b.drop = False
        b.note("cannot drop the page cache (not root?): timings may be cache-warm")


def du_mib(path: str) -> float:
    """Disk usage (allocated blocks, like du) of a tree, in MiB."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total / MIB


def tool(name: str) -> str | None:
    """Prefer the script next to this interpreter (the venv / tox env), then $PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(here, os.X_OK):
        return here
    return shutil.which(name)


# ---------------------------------------------------------------- data (as peers.sh)


def make_image(path: str, size_mib: int) -> None:
    """Byte-identical to the generator in ../shared/bench/peers.sh."""
    size = size_mib << 20
    rnd = random.Random(7)
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
    text = b" ".join(rnd.choice(words) for _ in range(400000))
    with open(path, "wb") as f:
        blk = 1 << 20
        for i in range(size // blk):
            kind = i % 4
            if kind == 0:
                f.write(rnd.randbytes(blk))
            elif kind == 1:
                f.write(b"\0" * blk)
            else:
                o = rnd.randrange(len(text) - blk)
                f.write(text[o : o + blk])
        f.flush()
        os.fsync(f.fileno())


def churn(path: str) -> int:
    """1% churn exactly as peers.sh: rewrite 1% of 64 KiB blocks at random offsets, seed 11."""
    f = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(f).st_size
        rnd = random.Random(11)
        n = size // 65536 // 100
        for _ in range(n):
            os.pwrite(f, rnd.randbytes(65536), rnd.randrange(size // 65536) * 65536)
        os.fsync(f)
    finally:
        os.close(f)
    return n


# ---------------------------------------------------------------- steps


def dd_read(b: Bench, img: str) -> float:
    drop_caches(b)
    return run(["dd", f"if={img}", "of=/dev/null", "bs=4M", "iflag=direct"]).wall_s


def dd_write(b: Bench, out: str) -> float:
    count = max(1, (b.size_mib + 3) // 4)
    drop_caches(b)
    r = run(["dd", "if=/dev/zero", f"of={out}", "bs=4M", f"count={count}", "oflag=direct"])
    os.unlink(out)
    return r.wall_s


def drbd(b: Bench, exe: str, args: list[str]) -> tuple[Run, dict]:
    drop_caches(b)
    r = run([exe, *args, "--json"], cwd=b.workdir)
    try:
        obj = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(
            f"{' '.join(args[:1])}: --json output is not JSON: {r.stdout[:300]!r}"
        ) from None
    return r, obj


class Peers:
    """restic and borg, invoked exactly as ../shared/bench/peers.sh does."""

    def __init__(self, b: Bench) -> None:
        self.b = b
        self.env = dict(
            os.environ,
            RESTIC_PASSWORD="x",
            BORG_PASSPHRASE="x",
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
            RESTIC_CACHE_DIR=b.path("restic-cache"),
            BORG_BASE_DIR=b.path("borg-base"),
        )
        self.restic = tool("restic")
        self.borg = tool("borg")
        self.active: dict[str, bool] = {}
        self.size0: dict[str, float] = {}
        if not self.restic:
            b.note("restic not found on PATH: restic peer skipped")
        if not self.borg:
            b.note("borg not found on PATH: borg peers skipped")

    def _try(self, name: str, cmd: list[str], stdin_path: str | None = None) -> Run | None:
        r = run(cmd, stdin_path=stdin_path, cwd=self.b.workdir, env=self.env, check=False)
        if r.rc != 0:
            self.active[name] = False
            self.b.note(
                f"{name} failed (exit {r.rc}): {r.stderr.strip().splitlines()[-1:]}; skipped"
            )
            return None
        return r

    def init(self) -> None:
        for d in ("restic", "borg", "borg1m"):
            shutil.rmtree(self.b.path(d), ignore_errors=True)
        if self.restic:
            self.active["restic"] = True
            self._try("restic", [self.restic, "init", "--repo", "restic"])
            self.b.info["restic_version"] = run(
                [self.restic, "version"], check=False
            ).stdout.strip()
        if self.borg:
            self.active["borg4m"] = self.active["borg1m"] = True
            self._try("borg4m", [self.borg, "init", "-e", "none", "borg"])
            self._try("borg1m", [self.borg, "init", "-e", "none", "borg1m"])
            self.b.info["borg_version"] = run([self.borg, "--version"], check=False).stdout.strip()

    def backup(self, phase: str, archive: str) -> None:
        b = self.b
        jobs = [
            (
                "restic",
                "restic",
                [
                    self.restic,
                    "backup",
                    "--repo",
                    "restic",
                    "--stdin",
                    "--stdin-filename",
                    "disk.img",
                ],
                "img",
            ),
            (
                "borg4m",
                "borg",
                [
                    self.borg,
                    "create",
                    "--chunker-params",
                    "fixed,4194304",
                    "-C",
                    "lz4",
                    f"borg::{archive}",
                    "img",
                ],
                None,
            ),
            (
                "borg1m",
                "borg1m",
                [
                    self.borg,
                    "create",
                    "--chunker-params",
                    "fixed,1048576",
                    "-C",
                    "zstd,1",
                    f"borg1m::{archive}",
                    "img",
                ],
                None,
            ),
        ]
        for name, repo, cmd, stdin in jobs:
            if not self.active.get(name):
                continue
            drop_caches(b)
            r = self._try(name, cmd, stdin_path=b.path(stdin) if stdin else None)
            if r is None:
                continue
            b.put(f"{name}_{phase}_s", r.wall_s)
            b.put(f"{name}_{phase}_ratio", r.wall_s / b.metrics["dd_direct_read_s"])
            b.put(f"{name}_{phase}_rss_mib", r.rss_mib)
            b.put(f"{name}_{phase}_cpu_s", r.cpu_s)
            size = du_mib(b.path(repo))
            if phase == "full":
                self.size0[name] = size
                b.put(f"{name}_full_mib", size)
            else:
                b.put(f"{name}_incr_growth_mib", size - self.size0[name])


def bench(b: Bench, peers: bool, check_restore: bool) -> None:
    exe = tool("drbdbackup")
    if not exe:
        raise BenchError("drbdbackup console script not found (is the package installed?)")
    os.makedirs(b.workdir, exist_ok=True)
    for d in ("R", "restic", "borg", "borg1m", "out", "ddw"):
        p = b.path(d)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.unlink(p)
    img = b.path("img")

    print(f"[1/11] generating a {b.size_mib} MiB mixed image", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    make_image(img, b.size_mib)
    b.info["image_gen_s"] = round(time.perf_counter() - t0, 2)

    print("[2/11] dd read", file=sys.stderr, flush=True)
    b.put("dd_direct_read_s", dd_read(b, img))
    ddr = b.metrics["dd_direct_read_s"]
    b.put("dd_direct_read_mib_s", b.size_mib / ddr)

    print("[3/11] drbdbackup full backup", file=sys.stderr, flush=True)
    run([exe, "init", "--repo", "R", "--json"], cwd=b.workdir)
    r, obj = drbd(b, exe, ["backup", "--repo", "R", "--file", "img", "--volume-id", "bench"])
    if obj.get("mode") != "full":
        b.note(f"first backup ran in mode {obj.get('mode')!r}, expected full")
    b.put("drbd_full_s", r.wall_s)
    b.put("drbd_full_inner_s", float(obj.get("duration_s", 0.0)))
    b.put("drbd_full_ratio", r.wall_s / ddr)
    b.put("drbd_full_rss_mib", r.rss_mib)
    b.put("drbd_full_cpu_s", r.cpu_s)
    b.put("drbd_full_repo_mib", du_mib(b.path("R")))
    b.put("drbd_full_stored_mib", obj.get("stored_bytes", 0) / MIB)
    repo0 = b.metrics["drbd_full_repo_mib"]

    pr = None
    if peers:
        print("[4/11] peers: full backups", file=sys.stderr, flush=True)
        pr = Peers(b)
        pr.init()
        pr.backup("full", "g1")

    print("[5/11] 1% churn", file=sys.stderr, flush=True)
    blocks = churn(img)
    b.info["churn_blocks_64k"] = blocks

    print("[6/11] drbdbackup checksum incremental", file=sys.stderr, flush=True)
    r, obj = drbd(
        b,
        exe,
        ["backup", "--repo", "R", "--file", "img", "--volume-id", "bench", "--tracker", "checksum"],
    )
    if obj.get("mode") != "incremental" or obj.get("tracker") != "checksum":
        b.note(
            f"incremental ran as mode={obj.get('mode')!r} tracker={obj.get('tracker')!r} "
            f"({obj.get('fallback_reason')})"
        )
    b.put("drbd_incr_s", r.wall_s)
    b.put("drbd_incr_inner_s", float(obj.get("duration_s", 0.0)))
    b.put("drbd_incr_ratio", r.wall_s / ddr)
    b.put("drbd_incr_rss_mib", r.rss_mib)
    b.put("drbd_incr_cpu_s", r.cpu_s)
    b.put("drbd_incr_changed_mib", obj.get("changed_bytes", 0) / MIB)
    b.put("drbd_incr_growth_mib", du_mib(b.path("R")) - repo0)

    if pr is not None:
        print("[7/11] peers: incremental backups", file=sys.stderr, flush=True)
        pr.backup("incr", "g2")

    print("[8/11] dd write", file=sys.stderr, flush=True)
    ddw = dd_write(b, b.path("ddw"))
    b.put("dd_direct_write_s", ddw)
    b.put("dd_direct_write_mib_s", (max(1, (b.size_mib + 3) // 4) * 4) / ddw)

    print("[9/11] drbdbackup restore", file=sys.stderr, flush=True)
    r, obj = drbd(
        b, exe, ["restore", "--repo", "R", "--volume-id", "bench", "--target", "out", "--force"]
    )
    b.put("drbd_restore_s", r.wall_s)
    b.put("drbd_restore_inner_s", float(obj.get("duration_s", 0.0)))
    b.put("drbd_restore_mib_s", b.size_mib / r.wall_s)
    b.put(
        "drbd_restore_ratio", b.metrics["drbd_restore_mib_s"] / b.metrics["dd_direct_write_mib_s"]
    )
    b.put("drbd_restore_rss_mib", r.rss_mib)
    b.put("drbd_restore_cpu_s", r.cpu_s)
    if check_restore:
        same = run(["cmp", "-s", img, b.path("out")], check=False).rc == 0
        b.info["restore_identical"] = same
        if not same:
            raise BenchError("the restored image differs from the source image")
    os.unlink(b.path("out"))

    print("[10/11] drbdverify --sample 0.05", file=sys.stderr, flush=True)
    probe = run([sys.executable, "-m", "verify", "--help"], cwd=b.workdir, check=False)
    if probe.rc != 0:
        b.note("verify/ is not available (`python -m verify --help` failed): verify step skipped")
    else:
        drop_caches(b)
        r = run(
            [
                sys.executable,
                "-m",
                "verify",
                "--repo",
                "R",
                "--sample",
                "0.05",
                "--seed",
                "1",
                "--json",
            ],
            cwd=b.workdir,
        )
        b.put("drbd_verify_s", r.wall_s)
        b.put("drbd_verify_ratio", r.wall_s / ddr)
        b.put("drbd_verify_rss_mib", r.rss_mib)
        b.put("drbd_verify_cpu_s", r.cpu_s)
        try:
            vobj = json.loads(r.stdout)
            b.info["verify_chunks_checked"] = vobj.get("chunks_checked")
            b.info["verify_verdict"] = vobj.get("verdict")
        except ValueError:
            pass

    rss = [
        b.metrics[k]
        for k in (
            "drbd_full_rss_mib",
            "drbd_incr_rss_mib",
            "drbd_restore_rss_mib",
            "drbd_verify_rss_mib",
        )
        if k in b.metrics
    ]
    b.put("drbd_peak_rss_mib", max(rss))

    print("[11/11] dd read again (noise check)", file=sys.stderr, flush=True)
    b.put("dd_direct_read2_s", dd_read(b, img))
    d1, d2 = b.metrics["dd_direct_read_s"], b.metrics["dd_direct_read2_s"]
    if max(d1, d2) > 1.25 * min(d1, d2):
        b.note(
            f"the two dd reads differ ({d1:.2f} s vs {d2:.2f} s): the machine is noisy "
            f"(load average {os.getloadavg()[0]:.1f} at the end), ratios to dd are unreliable; "
            "compare the CPU s column too"
        )


# ---------------------------------------------------------------- reporting


def verdicts(b: Bench, peers: bool) -> list[tuple[str, str, str]]:
    """[(target name, PASS|MISS|SKIP, detail)]"""
    out = []
    for name, metric, kind, limit, what in TARGETS:
        v = b.metrics.get(metric)
        if v is None:
            out.append((name, "SKIP", f"{what}: not measured"))
            continue
        ok = v <= limit if kind == "max" else v >= limit
        op = "<=" if kind == "max" else ">="
        out.append((name, "PASS" if ok else "MISS", f"{what} = {v:.3f} (target {op} {limit})"))
    growth = b.metrics.get("drbd_incr_growth_mib")
    peer = {
        k: b.metrics[f"{k}_incr_growth_mib"]
        for k in ("restic", "borg4m", "borg1m")
        if f"{k}_incr_growth_mib" in b.metrics
    }
    if growth is None or not peer:
        why = "run with --peers" if not peers else "no peer measured"
        out.append(("growth", "SKIP", f"incremental repo growth vs borg/restic: {why}"))
    else:
        best = min(peer.values())
        detail = ", ".join(f"{k} {v:.2f}" for k, v in peer.items())
        out.append(
            (
                "growth",
                "PASS" if growth <= best else "MISS",
                f"incremental repo growth = {growth:.2f} MiB, {growth - best:+.2f} MiB vs the best peer "
                f"(target <= min of peers: {detail})",
            )
        )
    return out


def table(b: Bench) -> str:
    m = b.metrics

    def row(label: str, secs: str, rel: str, cpu: str, rss: str, repo: str) -> str:
        return f"{label:<28} {secs:>9} {rel:>9} {cpu:>9} {rss:>9} {repo:>12}"

    def g(k: str, f: str = "{:.2f}") -> str:
        return f.format(m[k]) if k in m else "-"

    def step(label: str, key: str, repo: str = "", rel: str = "") -> str:
        return row(
            label,
            g(f"{key}_s"),
            rel or g(f"{key}_ratio"),
            g(f"{key}_cpu_s", "{:.1f}"),
            g(f"{key}_rss_mib", "{:.0f}"),
            repo,
        )

    lines = [
        f"drbdbackup benchmark: {b.size_mib} MiB mixed image (random/zero/text/text per MiB), "
        f"{os.cpu_count()} CPUs, {platform.machine()}",
        f"dd iflag=direct read: {g('dd_direct_read_s')} s "
        f"({g('dd_direct_read_mib_s', '{:.0f}')} MiB/s); "
        f"dd oflag=direct write: {g('dd_direct_write_s')} s "
        f"({g('dd_direct_write_mib_s', '{:.0f}')} MiB/s); "
        f"second dd read: {g('dd_direct_read2_s')} s",
        "",
        row("step", "time s", "x dd", "CPU s", "RSS MiB", "repo MiB"),
        row("-" * 28, "-" * 9, "-" * 9, "-" * 9, "-" * 9, "-" * 12),
        step("drbdbackup full", "drbd_full", g("drbd_full_repo_mib", "{:.1f}")),
        step("drbdbackup incr (checksum)", "drbd_incr", "+" + g("drbd_incr_growth_mib", "{:.1f}")),
    ]
    for p in ("restic", "borg4m", "borg1m"):
        if f"{p}_full_s" in m:
            lines.append(step(f"{p} full", f"{p}_full", g(f"{p}_full_mib", "{:.1f}")))
        if f"{p}_incr_s" in m:
            lines.append(step(f"{p} incr", f"{p}_incr", "+" + g(f"{p}_incr_growth_mib", "{:.1f}")))
    rel = g("drbd_restore_ratio") + "w" if "drbd_restore_ratio" in m else "-"
    lines.append(step("drbdbackup restore", "drbd_restore", "", rel))
    lines.append(
        step("drbdverify --sample 0.05", "drbd_verify", "", g("drbd_verify_ratio", "{:.3f}"))
    )
    lines.append(
        "(x dd = time / dd read time; restore 'w' = throughput / dd write throughput; CPU s = "
        "user+sys of the command; borg4m = fixed 4 MiB lz4, borg1m = fixed 1 MiB zstd,1; "
        "repo MiB = allocated blocks)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=4096, help="image size (default 4096)")
    ap.add_argument(
        "--workdir", default=None, help="scratch directory (default: a new one in $TMPDIR)"
    )
    ap.add_argument(
        "--peers", action="store_true", help="also measure restic and borg as peers.sh does"
    )
    ap.add_argument("--json", metavar="FILE", help="also write metrics, targets and notes here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--no-drop-caches",
        action="store_true",
        help="never drop the page cache (results will be cache-warm)",
    )
    ap.add_argument(
        "--no-check-restore",
        action="store_true",
        help="skip comparing the restored image with the source (untimed)",
    )
    args = ap.parse_args(argv)
    if args.size_mib < 4:
        ap.error("--size-mib must be at least 4")

    created = args.workdir is None
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="drbdbench-"))
    pre_existing = os.path.isdir(workdir) and bool(os.listdir(workdir))
    need = args.size_mib * MIB * (5 if args.peers else 3)
    os.makedirs(workdir, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    if free < need:
        print(
            f"bench: {workdir} has {free / MIB:.0f} MiB free; about {need / MIB:.0f} MiB needed",
            file=sys.stderr,
        )
        return 2
    b = Bench(workdir=workdir, size_mib=args.size_mib, drop=not args.no_drop_caches)
    if not args.no_drop_caches and os.geteuid() != 0:
        b.drop = False
        b.note("not root: the page cache is not dropped between steps (timings may be cache-warm)")
    b.info["loadavg_start"] = round(os.getloadavg()[0], 2)
    b.info.update(
        python=platform.python_version(),
        cpus=os.cpu_count(),
        workdir=workdir,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    rc = 0
    try:
        bench(b, args.peers, not args.no_check_restore)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        rc = 1
    finally:
        if not args.keep:
            if created or not pre_existing:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                for d in (
                    "img",
                    "R",
                    "restic",
                    "borg",
                    "borg1m",
                    "out",
                    "ddw",
                    "restic-cache",
                    "borg-base",
                    "out.drbdbackup-partial",
                ):
                    p = os.path.join(workdir, d)
                    if os.path.isdir(p):
                        shutil.rmtree(p, ignore_errors=True)
                    elif os.path.exists(p):
                        os.unlink(p)

    results = verdicts(b, args.peers)
    print(table(b))
    print()
    for k, v in b.metrics.items():
        print(f"{k} {_fmt(v)}")
    for name, verdict, detail in results:
        print(f"target_{name} {verdict} {detail}")
    for n in b.notes:
        print(f"# note: {n}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "size_mib": b.size_mib,
                    "metrics": b.metrics,
                    "info": b.info,
                    "notes": b.notes,
                    "targets": [{"name": n, "verdict": v, "detail": d} for n, v, d in results],
                    "exit_status": rc,
                },
                f,
                indent=2,
                sort_keys=True,
            )
            f.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
