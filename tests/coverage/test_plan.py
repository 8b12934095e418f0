"""The verification planner against simulated weeks of backups, prunes and the verify runs it
plans (no I/O): every retained generation's oldest unverified chunk stays within N days when the
budget suffices, the report's coverage computation says the same as the planner at every step,
the work is spread over the days, and a budget that is too small shows as behind."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.report.coverage import Check, covered_at, volume_coverage
from drbdbackup.report.coverage_plan import Gen, Plan, Terms, generation_proofs, partition, plan

T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
MIB = 1 << 20


class World:
    """Retained generations and the checks drbdverify would record for the planned runs."""

    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        self.gens: list[Gen] = []
        self.checks: list[Check] = []
        self.of: dict[str, list[Check]] = {}  # generation -> its checks
        self.read_bytes: dict[str, int] = {}  # per day

    def backup(self, vol: str, now: datetime, size: int) -> None:
        self.gens.append(Gen(vol, f"{now:%Y%m%dT%H%M%S}-{vol}", now, size))
        mine = [g for g in self.gens if g.volume_id == vol]
        for g in mine[:-6]:  # keep_last 6
            self.gens.remove(g)

    def prune(self, rng: random.Random) -> None:
        for vol in {g.volume_id for g in self.gens}:
            mine = [g for g in self.gens if g.volume_id == vol]
            for g in mine[:-1]:
                if rng.random() < 0.3:
                    self.gens.remove(g)

    def run(self, now: datetime) -> Plan:
        p = plan(self.gens, self.checks, now, self.terms)
        for piece in p.run:  # `--generation all`: every generation retained when it runs
            sel = "full" if piece.t == 1 else f"subset {piece.subset}"
            for g in self.gens:
                if g.volume_id == piece.volume_id:
                    total = max(1, g.size_bytes // MIB)
                    done = total if piece.t == 1 else -(-total // piece.t)
                    self.add(Check(now, g.volume_id, g.generation, sel, "pass", done, total))
            day = now.date().isoformat()
            self.read_bytes[day] = self.read_bytes.get(day, 0) + piece.cost_bytes
        return p

    def add(self, c: Check) -> None:
        self.checks.append(c)
        self.of.setdefault(c.generation, []).append(c)

    def report_age_days(self, now: datetime) -> float:
        """The report's oldest unverified age (days, unrounded) over every volume."""
        worst = 0.0
        for g in self.gens:
            worst = max(worst, (now - (covered_at(self.of.get(g.generation, [])) or g.created)).total_seconds() / 86400)
        return worst

    def agree(self, now: datetime) -> None:
        """The report and the planner compute each generation's oldest proof alike."""
        for vol in {g.volume_id for g in self.gens}:
            mine = [g for g in self.gens if g.volume_id == vol]
            t = partition(max(g.size_bytes for g in mine), self.terms)
            for g in mine:
                cs = self.of.get(g.generation, [])
                proofs = generation_proofs(cs, t)
                planner = min(proofs) if all(p is not None for p in proofs) else None  # type: ignore[type-var]
                assert planner == covered_at(cs), (g, proofs)
            cov = volume_coverage([(g.generation, g.created) for g in mine],
                                  [c for g in mine for c in self.of.get(g.generation, [])], now,
                                  self.terms.days)
            assert cov["never_fully_verified"] == [
                g.generation for g in mine if covered_at(self.of.get(g.generation, [])) is None]


def simulate(world: World, rng: random.Random, days: int, tick: timedelta, vols: int,
             backup_p: float, sizes: list[int]) -> float:
    """Run the planner every `tick` for `days`; returns the worst age the report ever shows."""
    now, end, worst = T0, T0 + timedelta(days=days), 0.0
    size_of = {f"v{i}": rng.choice(sizes) for i in range(vols)}
    while now < end:
        for vol, size in size_of.items():
            if now == T0 or rng.random() < backup_p:
                world.backup(vol, now, size)
        if rng.random() < 0.1:
            world.prune(rng)
        world.run(now)
        world.agree(now)
        worst = max(worst, world.report_age_days(now + tick - timedelta(seconds=1)))
        now += tick
    return worst


@settings(max_examples=40, deadline=None)
@given(n_days=st.integers(1, 5), tick_h=st.sampled_from([2, 5, 8, 24]), vols=st.integers(1, 3),
       backup_p=st.sampled_from([0.0, 0.1, 0.5, 1.0]), huge_budget=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_oldest_unverified_never_exceeds_n_days(n_days: int, tick_h: int, vols: int, backup_p: float,
                                               huge_budget: bool, seed: int) -> None:
    tick = timedelta(hours=tick_h)
    sizes = [0, 3 * MIB, 64 * MIB]
    budget = vols * max(sizes) if huge_budget else None  # everything fits every run
    world = World(Terms(n_days, tick, budget))
    worst = simulate(world, random.Random(seed), 3 * n_days + 2, tick, vols, backup_p, sizes)
    assert worst <= n_days


def test_work_is_spread_over_the_days() -> None:
    """One 70 MiB volume backed up daily, N = 7, hourly runs: after the first rotation each day
    reads about 1/N of it (never the whole volume at once, never more than 2/N a day)."""
    size = 70 * MIB
    world = World(Terms(7, timedelta(hours=1)))
    now = T0
    for hour in range(24 * 35):
        if hour % 24 == 0:
            world.backup("v", now, size)
        world.run(now)
        now += timedelta(hours=1)
    steady = [b for d, b in sorted(world.read_bytes.items())[10:34]]
    assert max(steady) <= 2 * size // 7, steady
    assert sum(steady) / len(steady) <= 1.3 * size / 7, steady
    assert world.report_age_days(now) <= 7


def test_new_generation_starts_its_rotation_at_once() -> None:
    world = World(Terms(7, timedelta(hours=1)))
    world.backup("v", T0, 7 * MIB)
    p = world.run(T0 + timedelta(minutes=5))
    assert [x.subset for x in p.run] == ["1/7"] and p.run[0].generations == (world.gens[0].generation,)
    # a week of hourly runs completes it well before N days, one piece a day
    for h in range(1, 24 * 7):
        world.run(T0 + timedelta(hours=h, minutes=5))
    sels = sorted({c.selection for c in world.checks})
    assert sels == [f"subset {n}/7" for n in range(1, 8)]
    assert covered_at(world.checks) is not None


def test_budget_too_small_is_behind_and_the_report_fails() -> None:
    """Two 64 MiB volumes, N = 1, a 16 MiB budget per daily run: t grows to fit the budget, but
    the day's work (128 MiB) cannot be done, so pieces are deferred and ages exceed N."""
    terms = Terms(1, timedelta(days=1), 16 * MIB)
    assert partition(64 * MIB, terms) == 4
    world = World(terms)
    now, behind = T0, []
    for _ in range(4):
        for v in ("a", "b"):
            world.backup(v, now, 64 * MIB)
        p = world.run(now)
        behind.append(p.behind)
        assert sum(x.cost_bytes for x in p.run) <= 16 * MIB
        now += timedelta(days=1)
    assert all(behind)
    cov = volume_coverage([(g.generation, g.created) for g in world.gens if g.volume_id == "a"],
                          world.checks, now, 1)
    assert cov["verdict"] == "fail" and cov["oldest_unverified_age_days"] > 1


def test_doubling_t_keeps_the_proofs() -> None:
    """Subset checks of t prove the pieces of 2t they contain (bucket = id % t)."""
    cs = [Check(T0 + timedelta(hours=i), "v", "g", f"subset {i + 1}/2", "pass", 1, 2) for i in range(2)]
    assert generation_proofs(cs, 4) == [T0, T0 + timedelta(hours=1), T0, T0 + timedelta(hours=1)]
    assert covered_at(cs) == T0
    mixed = [Check(T0, "v", "g", "subset 1/2", "pass", 1, 2),
             Check(T0 + timedelta(hours=1), "v", "g", "subset 2/4", "pass", 1, 4),
             Check(T0 + timedelta(hours=2), "v", "g", "subset 4/4", "pass", 1, 4)]
    assert covered_at(mixed) == T0  # 1/2 = pieces 1/4 and 3/4
    assert covered_at(mixed[:2]) is None
    # a sample never proves anything; a failure voids earlier passes
    assert generation_proofs([Check(T0, "v", "g", "sample 0.5 (seed 1)", "pass", 1, 2)], 1) == [None]
    failed = [*cs, Check(T0 + timedelta(hours=3), "v", "g", "subset 1/2", "fail", 1, 2)]
    assert covered_at(failed) is None and generation_proofs(failed, 2) == [None, None]


def test_failed_generation_is_reverified_and_heals() -> None:
    """A failing check voids a generation's proofs: the next run re-reads its pieces."""
    world = World(Terms(2, timedelta(hours=6)))
    world.backup("v", T0, 4 * MIB)
    for h in range(0, 48, 6):
        world.run(T0 + timedelta(hours=h))
    gen = world.gens[0].generation
    assert covered_at(world.checks) is not None
    when = T0 + timedelta(hours=49)
    world.add(Check(when, "v", gen, "subset 1/2", "fail", 1, 4))
    assert covered_at(world.checks) is None
    world.run(when + timedelta(hours=1))
    assert covered_at(world.checks) == when + timedelta(hours=1)
