"""The claim state machine of one (key, cycle), as one observer sees the store. Pure.

Attempts n = 0, 1, ... are create-exclusive claims `<k>.<n>`; at most one agent creates each.
Anyone may create `<k>.<n+1>` when no commit exists for k and the holder of the highest claim
`<k>.<n>` released it or is dead. Only a commit (create-exclusive `commits/<key>/<k>`) ends a
cycle; liveness judgements only decide when the next attempt starts, never whether two commit.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from drbdbackup.cluster.names import SnapshotTag


@dataclass(frozen=True)
class Holder:
    """Who created a claim: a node name and the agent's instance id."""

    node: str
    instance: str


@dataclass(frozen=True)
class AttemptState:
    """One attempt `<k>.<n>`: its holder (None if the claim body is missing or unreadable)."""

    attempt: int
    holder: Holder | None
    snapshot: str | None
    released: bool


@dataclass(frozen=True)
class CommitInfo:
    attempt: int
    holder: Holder


@dataclass(frozen=True)
class CycleView:
    """Everything stored about one (key, cycle)."""

    cycle: int
    attempts: tuple[AttemptState, ...]
    commit: CommitInfo | None
    floor: int | None = None

    def attempt(self, n: int) -> AttemptState | None:
        return next((a for a in self.attempts if a.attempt == n), None)

    @property
    def last(self) -> AttemptState | None:
        return max(self.attempts, key=lambda a: a.attempt) if self.attempts else None


class Step(enum.Enum):
    PRUNED = "pruned"  # the cycle is below the floor: nothing may happen in it
    COMMITTED = "committed"
    HELD = "held"  # the highest attempt's holder is alive and has not released
    CLAIMABLE = "claimable"  # attempt `attempt` may be created now


@dataclass(frozen=True)
class Decision:
    step: Step
    attempt: int | None = None  # CLAIMABLE: the attempt to create; HELD: the held one
    holder: Holder | None = None


IsDead = Callable[[Holder], bool]


def next_attempt(attempts: Iterable[AttemptState], is_dead: IsDead) -> Decision:
    """Claimable attempt number, or who holds the highest attempt."""
    items = list(attempts)
    if not items:
        return Decision(Step.CLAIMABLE, 0)
    last = max(items, key=lambda a: a.attempt)
    if last.released or last.holder is None or is_dead(last.holder):
        return Decision(Step.CLAIMABLE, last.attempt + 1, last.holder)
    return Decision(Step.HELD, last.attempt, last.holder)


def decide(view: CycleView, is_dead: IsDead) -> Decision:
    """What may happen next in this cycle."""
    if view.floor is not None and view.cycle < view.floor:
        return Decision(Step.PRUNED)
    if view.commit is not None:
        return Decision(Step.COMMITTED, view.commit.attempt, view.commit.holder)
    return next_attempt(view.attempts, is_dead)


def failed_nodes(attempts: Iterable[AttemptState], is_dead: IsDead) -> tuple[str, ...]:
    """Nodes that gave up or died holding an attempt (once per failure), for ranking."""
    return tuple(a.holder.node for a in sorted(attempts, key=lambda a: a.attempt)
                 if a.holder is not None and (a.released or is_dead(a.holder)))


def commit_refusal(view: CycleView, attempt: int) -> str | None:
    """Why attempt `attempt` must not commit (None: it may try the fence)."""
    if view.floor is not None and view.cycle < view.floor:
        return f"cycle {view.cycle} was pruned (floor {view.floor})"
    if view.commit is not None:
        by = view.commit
        return f"cycle {view.cycle} was already committed by {by.holder.node} (attempt {by.attempt})"
    mine = view.attempt(attempt)
    if mine is not None and mine.released:
        return f"claim {view.cycle}.{attempt} was released"
    last = view.last
    if last is not None and last.attempt > attempt:
        who = last.holder.node if last.holder else "an unknown agent"
        return f"claim {view.cycle}.{attempt} was taken over by {who} (attempt {last.attempt})"
    return None


# --- prune --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunePlan:
    """Write floor `floor` (if set) first, then delete the objects of `remove`."""

    floor: int | None
    remove: tuple[int, ...]


def prune_plan(cycles: Iterable[int], committed: Iterable[int], keep: int,
               current: int | None = None, old_floor: int | None = None) -> PrunePlan:
    """Keep the newest `keep` cycles, the newest committed one and the current one."""
    if keep < 1:
        raise ValueError("keep at least one cycle")
    known = sorted(set(cycles))
    if not known:
        return PrunePlan(None, ())
    kept = set(known[-keep:])
    done = sorted(set(committed))
    if done:
        kept.add(done[-1])
    if current is not None:
        kept.add(current)
    floor = min(kept)
    remove = tuple(c for c in known if c < floor)
    new_floor = floor if remove and (old_floor is None or floor > old_floor) else None
    return PrunePlan(new_floor, remove)


# --- snapshots ----------------------------------------------------------------------------


class Disposition(enum.Enum):
    FOREIGN = "foreign"  # another repository's snapshot: leave it alone
    KEEP_ACTIVE = "keep-active"  # its claim is held by a live agent
    KEEP_BASE = "keep-base"  # the newest committed snapshot: the next map's base
    DELETE = "delete"  # released, dead, fenced off or superseded: anyone may delete it
    UNKNOWN = "unknown"  # no claim found and nothing newer committed: keep, look again later


def snapshot_disposition(tag: SnapshotTag, name: str, repo8: str, view: CycleView | None,
                         latest_committed: int | None, is_dead: IsDead) -> Disposition:
    """What may be done with snapshot `name` (tag = its parsed name) of a key."""
    if tag.repo8 != repo8[:8].lower():
        return Disposition.FOREIGN
    newer_committed = latest_committed is not None and latest_committed > tag.cycle
    state = view.attempt(tag.attempt) if view is not None else None
    if view is None or state is None:
        return Disposition.DELETE if newer_committed else Disposition.UNKNOWN
    if state.snapshot is not None and state.snapshot != name:
        return Disposition.DELETE  # not the snapshot its claim names
    if view.commit is not None:
        if view.commit.attempt != tag.attempt or newer_committed:
            return Disposition.DELETE
        return Disposition.KEEP_BASE
    if state.released or state.holder is None or is_dead(state.holder):
        return Disposition.DELETE
    return Disposition.KEEP_ACTIVE
