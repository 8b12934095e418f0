"""The verification planner (pure, no I/O): which drbdverify runs are due now so that every chunk
of every retained generation is proven at least every N days (`verify_coverage_days`), judged by
the one definition of a proof in `coverage` (the report's).

Model. A volume's generations are verified together with one partition t: the run
`drbdverify --volume-id V --generation all --subset n/t` proves piece n/t of each of them and
reads a chunk that several share once. t = N * 2^k, the smallest for which the largest retained
generation / t fits the per-run budget (k <= MAX_DOUBLINGS), so a day's work is about t/N pieces
= 1/N of the data; doubling t keeps every proof (piece n/t is pieces n/2t and n+t/2t).

Deadlines. Piece n of generation g was last proven at max(covered_at(g), the newest check that
proves n/t); it is due again N days later. A piece never proven: the generation's creation + N
days, except when no generation of the volume has piece n proven (a new volume, or a new t):
creation + N*n/t, so the first rotation is spread over N days. A generation with no check at
all (just backed up) pulls the volume's earliest piece to its creation: verify-new. A volume's
piece is due at the earliest of its generations' deadlines.

A run at `now`, followed by the next within `horizon`, runs every piece due before now +
horizon, earliest first, while the bytes stay within the budget (the first piece runs even when
it alone exceeds it: progress over a stall); the rest is deferred and coverage is behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drbdbackup.report.coverage import Check, covered_at, piece_proofs

MAX_DOUBLINGS = 12
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Gen:
    """A retained generation as the planner needs it."""

    volume_id: str
    generation: str
    created: datetime
    size_bytes: int


@dataclass(frozen=True)
class Terms:
    """N days, the longest time until the next run, and the per-run budget (None: no cap)."""

    days: int
    horizon: timedelta
    budget_bytes: int | None = None


@dataclass(frozen=True)
class Piece:
    """One drbdverify run: subset n/t of every retained generation of a volume."""

    volume_id: str
    n: int
    t: int
    deadline: datetime
    cost_bytes: int
    generations: tuple[str, ...]

    @property
    def subset(self) -> str:
        return f"{self.n}/{self.t}"


@dataclass
class Plan:
    run: list[Piece] = field(default_factory=list)
    deferred: list[Piece] = field(default_factory=list)

    @property
    def behind(self) -> bool:
        """A due piece does not fit this run: some chunk may go unproven for more than N days."""
        return bool(self.deferred)


def partition(size_bytes: int, terms: Terms) -> int:
    """t = N * 2^k: the smallest whose pieces fit the budget (at most MAX_DOUBLINGS doublings)."""
    t = terms.days
    if terms.budget_bytes:
        for _ in range(MAX_DOUBLINGS):
            if -(-size_bytes // t) <= terms.budget_bytes:
                break
            t *= 2
    return t


def generation_proofs(checks: list[Check], t: int) -> list[datetime | None]:
    """Each piece n/t's last proof: its own checks or the generation's latest complete read."""
    whole = covered_at(checks)
    out = piece_proofs(checks, t)
    if whole is not None:
        out = [whole if p is None or p < whole else p for p in out]
    return out


def _volume_pieces(gens: list[Gen], checks: dict[str, list[Check]], terms: Terms) -> list[Piece]:
    n_days = timedelta(days=terms.days)
    size = max(g.size_bytes for g in gens)
    t = partition(size, terms)
    proofs = {g.generation: generation_proofs(checks.get(g.generation, []), t) for g in gens}
    deadlines: list[datetime] = []
    for i in range(t):
        if any(p[i] is not None for p in proofs.values()):
            dl = [(proofs[g.generation][i] or g.created) + n_days for g in gens]
        else:
            dl = [g.created + n_days * (i + 1) / t for g in gens]
        deadlines.append(min(dl))
    for g in gens:
        if not checks.get(g.generation):  # verify-new: start its rotation now
            first = min(range(t), key=lambda i: deadlines[i])
            deadlines[first] = min(deadlines[first], g.created)
    cost = -(-size // t)
    names = tuple(g.generation for g in gens)
    return [Piece(gens[0].volume_id, i + 1, t, deadlines[i], cost, names) for i in range(t)]


def plan(gens: list[Gen], checks: list[Check], now: datetime, terms: Terms) -> Plan:
    """The runs due now (`checks`: every verify check of these volumes, any order)."""
    by_vol: dict[str, list[Gen]] = {}
    for g in sorted(gens, key=lambda g: (g.created, g.generation)):
        by_vol.setdefault(g.volume_id, []).append(g)
    by_gen: dict[tuple[str, str], list[Check]] = {}
    for c in checks:
        by_gen.setdefault((c.volume_id, c.generation), []).append(c)
    due: list[Piece] = []
    for vol, mine in by_vol.items():
        vchecks = {g.generation: by_gen.get((vol, g.generation), []) for g in mine}
        due += [p for p in _volume_pieces(mine, vchecks, terms) if p.deadline <= now + terms.horizon]
    due.sort(key=lambda p: (p.deadline, p.volume_id, p.n))
    out, spent = Plan(), 0
    for p in due:
        fits = terms.budget_bytes is None or spent + p.cost_bytes <= terms.budget_bytes
        if fits or not out.run:
            out.run.append(p)
            spent += p.cost_bytes
        else:
            out.deferred.append(p)
    return out
