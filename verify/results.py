"""Results model: findings, per-generation checks, and the run verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS = "pass"
FAIL = "fail"
UNVERIFIABLE = "unverifiable"
NOTE = "note"  # reported, never changes a verdict (e.g. a stale lock)
EMPTY = "empty"  # the repository holds no generations: nothing to verify (exit 0)
EMPTY_MESSAGE = "repository holds no generations: nothing to verify"


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and coalesce ``[start, end)`` byte ranges."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


class PositionSet:
    """Chunk positions as ``[start, end)`` ranges: a root covering 2^32 positions costs one range."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int]] = []
        self._merged = True

    def add(self, pos: int) -> None:
        self.add_range(pos, pos + 1)

    def add_range(self, start: int, end: int) -> None:
        if end > start:
            self._ranges.append((start, end))
            self._merged = False

    def update(self, positions: list[int]) -> None:
        for p in positions:
            self.add(p)

    def ranges(self) -> list[tuple[int, int]]:
        if not self._merged:
            self._ranges = merge_ranges(self._ranges)
            self._merged = True
        return self._ranges

    def __len__(self) -> int:
        return sum(e - s for s, e in self.ranges())

    def __bool__(self) -> bool:
        return bool(self._ranges)


@dataclass
class Finding:
    """One problem, naming exactly what is damaged."""

    kind: str
    message: str
    object: str | None = None
    volume_id: str | None = None
    generation: str | None = None
    chunk_id: str | None = None
    byte_ranges: list[tuple[int, int]] = field(default_factory=list)
    severity: str = FAIL  # FAIL, UNVERIFIABLE or NOTE

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "object": self.object,
            "volume_id": self.volume_id,
            "generation": self.generation,
            "chunk_id": self.chunk_id,
            "byte_ranges": [list(r) for r in merge_ranges(self.byte_ranges)],
        }

    def line(self) -> str:
        where = []
        if self.object:
            where.append(f"object {self.object}")
        if self.chunk_id:
            where.append(f"id {self.chunk_id}")
        rs = merge_ranges(self.byte_ranges)
        if rs:
            shown = ", ".join(f"{s}..{e}" for s, e in rs[:4])
            more = f" (+{len(rs) - 4} more)" if len(rs) > 4 else ""
            where.append(f"volume bytes {shown}{more}")
        suffix = f" [{'; '.join(where)}]" if where else ""
        return f"{self.severity.upper()} {self.kind}: {self.message}{suffix}"


@dataclass
class CheckResult:
    """The check of one generation of one volume."""

    volume_id: str
    generation: str
    mode: str = "sample"
    chunks_total: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    failed_positions: PositionSet = field(default_factory=PositionSet)
    tree_nodes_checked: int = 0
    bytes_compared_with_source: int = 0
    source: str | None = None
    source_status: str | None = None  # None (no --source), PASS, FAIL, UNVERIFIABLE
    structure_checked: bool = False
    confidence: str = ""
    miss_probability: dict[str, float] | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def chunks_failed(self) -> int:
        return len(self.failed_positions)

    @property
    def verdict(self) -> str:
        if any(f.severity == FAIL for f in self.findings) or self.failed_positions:
            return FAIL
        if not self.structure_checked:
            return UNVERIFIABLE
        if any(f.severity == UNVERIFIABLE for f in self.findings):
            return UNVERIFIABLE
        return PASS

    @property
    def name(self) -> str:
        return f"{self.volume_id}/{self.generation}"

    def summary(self) -> str:
        return (
            f"checked {self.chunks_checked} of {self.chunks_total} chunks "
            f"({self.bytes_checked} bytes), {self.tree_nodes_checked} tree nodes"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.verdict == PASS,
            "verdict": self.verdict,
            "volume_id": self.volume_id,
            "generation": self.generation,
            "mode": self.mode,
            "chunks_total": self.chunks_total,
            "chunks_checked": self.chunks_checked,
            "chunks_failed": self.chunks_failed,
            "bytes_checked": self.bytes_checked,
            "tree_nodes_checked": self.tree_nodes_checked,
            "bytes_compared_with_source": self.bytes_compared_with_source,
            "source": self.source,
            "source_verdict": self.source_status,
            "confidence": self.confidence,
            "miss_probability": self.miss_probability,
            "summary": self.summary(),
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass
class RunResult:
    """Everything one drbdverify run found."""

    repository: str
    selection: str
    seed: int
    checks: list[CheckResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # repository-wide (packs, audit, index)
    quarantined: list[str] = field(default_factory=list)
    audit_entry: str | None = None
    empty: bool = False  # no generations at all: only the repository-wide checks ran

    @property
    def ok(self) -> bool:
        return self.verdict in (PASS, EMPTY)

    @property
    def verdict(self) -> str:
        verdicts = [c.verdict for c in self.checks]
        if FAIL in verdicts or any(f.severity == FAIL for f in self.findings):
            return FAIL
        if self.empty and not self.checks and not any(
                f.severity == UNVERIFIABLE for f in self.findings):
            return EMPTY
        if not self.checks or UNVERIFIABLE in verdicts:
            return UNVERIFIABLE
        if any(f.severity == UNVERIFIABLE for f in self.findings):
            return UNVERIFIABLE
        return PASS

    def all_findings(self) -> list[Finding]:
        out = list(self.findings)
        for c in self.checks:
            out.extend(c.findings)
        return out
