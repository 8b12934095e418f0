"""Cluster objects in the repository backend: reads, create-exclusive writes, views.

Uses only the `Backend` protocol (get, put, put exclusive, list, delete, exists) plus an
optional `mtime(name) -> float` (epoch seconds as the store reports them) for the store clock.
Claim, commit and member bodies are immutable once created, so they are cached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from drbdbackup.cluster import names as N
from drbdbackup.cluster.claims import AttemptState, CommitInfo, CycleView, Holder
from drbdbackup.cluster.errors import BadClusterObject, ExclusiveCreateUnsupported
from drbdbackup.cluster.groups import MemberView, ReadyInfo
from drbdbackup.cluster.names import ClusterKey
from drbdbackup.cluster.schema import (
    Alarm,
    ClaimRecord,
    CommitRecord,
    FloorRecord,
    Heartbeat,
    MemberClaimRecord,
    MemberReady,
    ReleaseRecord,
)
from drbdbackup.errors import ObjectExists, ObjectNotFound
from drbdbackup.repo.backend import Backend

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClusterStore:
    """Typed access to `cluster/` objects of one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._cache: dict[str, object] = {}
        self._lock = threading.Lock()

    # --- generic ---------------------------------------------------------------------

    def _leaves(self, prefix: str) -> list[str]:
        """Names directly below `prefix` (which ends with '/')."""
        return [n[len(prefix):] for n in self.backend.list(prefix) if "/" not in n[len(prefix):]]

    def _read(self, name: str, parse: Callable[[bytes], T], *, cache: bool) -> T | None:
        if cache:
            with self._lock:
                hit = self._cache.get(name)
            if hit is not None:
                return hit  # type: ignore[return-value]
        try:
            obj = parse(self.backend.get(name))
        except ObjectNotFound:
            return None
        if cache:
            with self._lock:
                self._cache[name] = obj
        return obj

    def _create(self, name: str, data: bytes) -> bool:
        """Create-exclusive; False when the name exists."""
        try:
            self.backend.put(name, data, exclusive=True)
        except ObjectExists:
            return False
        return True

    def mtime(self, name: str) -> float | None:
        """The store's modification time of `name`, if the backend can tell."""
        reader = getattr(self.backend, "mtime", None)
        if reader is None:
            return None
        try:
            return float(reader(name))
        except ObjectNotFound:
            return None

    def check_exclusive_create(self) -> None:
        """Refuse a backend whose exclusive put does not refuse an existing name."""
        declared = getattr(self.backend, "exclusive_create", None)
        if declared is False:
            raise ExclusiveCreateUnsupported(
                f"cluster mode needs exclusive create; {self.backend.location} does not support it")
        name = N.probe_name()
        try:
            self.backend.put(name, b"1", exclusive=True)
            try:
                self.backend.put(name, b"2", exclusive=True)
            except ObjectExists:
                return
            raise ExclusiveCreateUnsupported(
                f"cluster mode needs exclusive create; {self.backend.location} overwrote an "
                "existing object on a create-exclusive put")
        finally:
            self.backend.delete(name)

    # --- agents ----------------------------------------------------------------------

    def read_heartbeat(self, node: str) -> Heartbeat | None:
        return self._read(N.agent_name(node), Heartbeat.from_bytes, cache=False)

    def write_heartbeat(self, hb: Heartbeat) -> None:
        self.backend.put(N.agent_name(hb.node), hb.to_bytes())

    def heartbeats(self) -> list[Heartbeat]:
        out = []
        for leaf in self._leaves(N.ROOT + "agents/"):
            try:
                hb = self._read(N.ROOT + "agents/" + leaf, Heartbeat.from_bytes, cache=False)
            except BadClusterObject as exc:
                log.warning("%s", exc)
                continue
            if hb is not None:
                out.append(hb)
        return out

    def read_alarm(self, node: str) -> Alarm | None:
        try:
            return self._read(N.alarm_name(node), Alarm.from_bytes, cache=False)
        except BadClusterObject:
            return None

    def alarms(self) -> list[Alarm]:
        out = []
        for leaf in self._leaves(N.ROOT + "alarms/"):
            try:
                alarm = self._read(N.ROOT + "alarms/" + leaf, Alarm.from_bytes, cache=False)
            except BadClusterObject:
                continue
            if alarm is not None:
                out.append(alarm)
        return out

    def write_alarm(self, alarm: Alarm) -> None:
        self.backend.put(N.alarm_name(alarm.node), alarm.to_bytes())

    # --- claims and commits ------------------------------------------------------------

    def create_claim(self, rec: ClaimRecord) -> bool:
        name = N.claim_name(rec.key, rec.cycle, rec.attempt)
        won = self._create(name, rec.to_bytes())
        if won:
            with self._lock:
                self._cache[name] = rec
        return won

    def release(self, key: ClusterKey, cycle: int, attempt: int, rec: ReleaseRecord) -> None:
        self._create(N.release_name(key, cycle, attempt), rec.to_bytes())

    def create_commit(self, rec: CommitRecord) -> bool:
        return self._create(N.commit_name(rec.key, rec.cycle), rec.to_bytes())

    def read_commit(self, key: ClusterKey, cycle: int) -> CommitRecord | None:
        return self._read(N.commit_name(key, cycle), CommitRecord.from_bytes, cache=True)

    def delete_commit(self, key: ClusterKey, cycle: int) -> None:
        name = N.commit_name(key, cycle)
        self.backend.delete(name)
        with self._lock:
            self._cache.pop(name, None)

    def read_claim(self, key: ClusterKey, cycle: int, attempt: int) -> ClaimRecord | None:
        try:
            return self._read(N.claim_name(key, cycle, attempt), ClaimRecord.from_bytes, cache=True)
        except BadClusterObject as exc:
            log.warning("%s", exc)
            return None

    def claim_entries(self, key: ClusterKey) -> list[N.AttemptEntry]:
        entries = (N.parse_attempt(leaf) for leaf in self._leaves(N.claims_prefix(key)))
        return sorted(e for e in entries if e is not None)

    def committed_cycles(self, key: ClusterKey) -> list[int]:
        found = (N.parse_cycle(leaf) for leaf in self._leaves(N.commits_prefix(key)))
        return sorted(c for c in found if c is not None)

    def latest_commits(self) -> list[tuple[ClusterKey, int]]:
        """Every key's newest committed cycle, from one listing of `cluster/commits/`."""
        out: dict[ClusterKey, int] = {}
        base = N.ROOT + "commits/"
        for name in self.backend.list(base):
            seg, _, leaf = name[len(base):].partition("/")
            key, cycle = N.key_from_segment(seg), N.parse_cycle(leaf)
            if key is not None and cycle is not None and cycle > out.get(key, -1):
                out[key] = cycle
        return sorted(out.items())

    def floor(self, key: ClusterKey) -> int | None:
        found = [c for c in (N.parse_cycle(x) for x in self._leaves(N.floors_prefix(key)))
                 if c is not None]
        return max(found) if found else None

    def cycle_view(self, key: ClusterKey, cycle: int, *, with_floor: bool = True) -> CycleView:
        """Claims, releases, commit (and floor) of one cycle."""
        entries = [e for e in self.claim_entries(key) if e.cycle == cycle]
        released = {e.attempt for e in entries if e.released}
        attempts = []
        for n in sorted({e.attempt for e in entries}):
            rec = self.read_claim(key, cycle, n)
            holder = Holder(rec.node, rec.instance) if rec else None
            attempts.append(AttemptState(n, holder, rec.snapshot if rec else None, n in released))
        commit = None
        try:
            c = self.read_commit(key, cycle)
        except BadClusterObject:
            c = CommitRecord(key, cycle, -1, "?", "?", "", None, "")  # a commit exists: closed
        if c is not None:
            commit = CommitInfo(c.attempt, Holder(c.node, c.instance))
        return CycleView(cycle, tuple(attempts), commit, self.floor(key) if with_floor else None)

    def all_keys(self) -> list[ClusterKey]:
        """Every key with claims or commits."""
        out: set[ClusterKey] = set()
        for area in ("claims/", "commits/"):
            for name in self.backend.list(N.ROOT + area):
                seg = name[len(N.ROOT + area):].split("/", 1)[0]
                key = N.key_from_segment(seg)
                if key is not None:
                    out.add(key)
        return sorted(out)

    # --- prune -----------------------------------------------------------------------

    def write_floor(self, key: ClusterKey, rec: FloorRecord) -> None:
        self._create(N.floor_name(key, rec.cycle), rec.to_bytes())

    def remove_cycles(self, key: ClusterKey, cycles: set[int], floor: int) -> int:
        """Delete every object of `cycles` (and floor objects below `floor`); returns a count."""
        doomed: list[str] = []
        for e in self.claim_entries(key):
            if e.cycle in cycles:
                doomed.append(N.claim_name(key, e.cycle, e.attempt) + (".released" if e.released else ""))
        doomed += [N.commit_name(key, c) for c in self.committed_cycles(key) if c in cycles]
        prefix = N.members_prefix(key)
        for name in self.backend.list(prefix):
            k = N.parse_attempt(name[len(prefix):].split("/", 1)[0])
            if k is not None and k.cycle in cycles:
                doomed.append(name)
        for leaf in self._leaves(N.floors_prefix(key)):
            c = N.parse_cycle(leaf)
            if c is not None and c < floor:
                doomed.append(N.floors_prefix(key) + leaf)
        for name in doomed:
            self.backend.delete(name)
            with self._lock:
                self._cache.pop(name, None)
        return len(doomed)

    # --- consistency-group members -----------------------------------------------------

    def create_member_claim(self, group: ClusterKey, cycle: int, attempt: int,
                            rec: MemberClaimRecord) -> bool:
        return self._create(N.member_claim_name(group, cycle, attempt, rec.member, rec.sub),
                            rec.to_bytes())

    def release_member(self, group: ClusterKey, cycle: int, attempt: int, member: str, sub: int,
                       rec: ReleaseRecord) -> None:
        self._create(N.member_release_name(group, cycle, attempt, member, sub), rec.to_bytes())

    def create_member_ready(self, group: ClusterKey, cycle: int, attempt: int,
                            rec: MemberReady) -> bool:
        return self._create(N.member_ready_name(group, cycle, attempt, rec.member), rec.to_bytes())

    def read_member_ready(self, group: ClusterKey, cycle: int, attempt: int,
                          member: str) -> MemberReady | None:
        return self._read(N.member_ready_name(group, cycle, attempt, member),
                          MemberReady.from_bytes, cache=True)

    def member_view(self, group: ClusterKey, cycle: int, attempt: int, member: str) -> MemberView:
        prefix = N.member_prefix(group, cycle, attempt, member)
        leaves = self._leaves(prefix)
        parsed = [p for p in (N.parse_sub(x) for x in leaves) if p is not None]
        released = {j for j, rel in parsed if rel}
        subs = []
        for j in sorted({j for j, _ in parsed}):
            try:
                rec = self._read(prefix + str(j), MemberClaimRecord.from_bytes, cache=True)
            except BadClusterObject:
                rec = None
            holder = Holder(rec.node, rec.instance) if rec else None
            subs.append(AttemptState(j, holder, None, j in released))
        ready = None
        if "ready" in leaves:
            try:
                r = self.read_member_ready(group, cycle, attempt, member)
            except BadClusterObject:
                r = MemberReady(member, -1, "?", "?", "", b"", "")
            if r is not None:
                ready = ReadyInfo(r.sub, r.node, r.generation)
        return MemberView(member, tuple(subs), ready)
