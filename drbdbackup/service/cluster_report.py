"""What a cluster agent tells the operator: its state in the controller's key-value store
(display only — the store is last-writer-wins, nothing ever decides from it), the LINSTOR API
calls it makes per cycle, and the test-only clock offset.

Published under instance `drbdbackup`, key `agent/<node>`, a JSON object:
`{"format": 1, "node", "instance", "cycle", "committed": [keys], "failed": {key: error},
"api_calls_last_cycle", "last_error", "skipped": {policy: reason}, "stopped", "time"}`
(`linstor key-value-store show drbdbackup`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import linstor

from drbdbackup.cluster.errors import DuplicateAgent
from drbdbackup.errors import UsageError, describe
from drbdbackup.linstor.client import Controller, ControllerError
from drbdbackup.service.store import JobStore

log = logging.getLogger("drbdbackup.service")
KV_INSTANCE = "drbdbackup"
# Test-only: shifts this agent's wall clock (display times and the no-mtime fallback of the
# cycle clock), to show that skewed agents agree on cycles. Never set it in production.
TEST_CLOCK_OFFSET_ENV = "DRBDBACKUP_TEST_CLOCK_OFFSET_S"
PUBLISH_BUSY_BEATS = 20  # a busy agent still publishes this often (in heartbeats)


def kv_key(node: str) -> str:
    return f"agent/{node}"


def clock_offset_for_tests() -> float:
    """The test-only wall-clock offset in seconds (0 when unset)."""
    raw = os.environ.get(TEST_CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"{TEST_CLOCK_OFFSET_ENV} must be a number of seconds, not {raw!r}") from None


class ApiCounter:
    """Counts LINSTOR API calls (and connections) through a Controller's `before_call` hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self._since = 0

    def counting(self, inner: Callable[[], None] | None) -> Callable[[], None]:
        """A `before_call` hook that counts, then runs `inner` (e.g. the API throttle)."""

        def hook() -> None:
            with self._lock:
                self.total += 1
                self._since += 1
            if inner is not None:
                inner()

        return hook

    def take(self) -> int:
        """Calls since the previous `take`."""
        with self._lock:
            n, self._since = self._since, 0
            return n


@dataclass
class AgentState:
    """This agent's newest cycle and what became of it (thread-safe; `dirty` = not published)."""

    node: str = ""
    instance: str = ""
    cycle: int | None = None
    committed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    api_calls_last_cycle: int | None = None
    last_error: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None
    dirty: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def new_cycle(self, cycle: int, api_calls: Callable[[], int]) -> bool:
        """Start `cycle` if it is newer; `api_calls()` says how many were made during the one
        before (called only then)."""
        with self._lock:
            if self.cycle is not None and cycle <= self.cycle:
                return False
            calls = api_calls()
            if self.cycle is not None:
                self.api_calls_last_cycle = calls
            self.cycle, self.committed, self.failed, self.dirty = cycle, [], {}, True
            return True

    def outcome(self, key: str, cycle: int, error: str | None) -> None:
        with self._lock:
            if error is not None:
                self.last_error = f"{key} cycle {cycle}: {error}"
            if cycle == self.cycle:
                if error is None:
                    self.committed.append(key)
                else:
                    self.failed[key] = error
            self.dirty = True

    def skip(self, policy: str, reason: str | None) -> None:
        with self._lock:
            if reason is None:
                if self.skipped.pop(policy, None) is not None:
                    self.dirty = True
                return
            if self.skipped.get(policy) != reason:
                self.skipped[policy] = reason
                self.last_error = f"policy {policy}: cycle skipped: {reason}"
                self.dirty = True

    def stop(self, why: str) -> None:
        with self._lock:
            self.stopped = self.last_error = why
            self.dirty = True

    def body(self, now: str) -> dict[str, Any]:
        """The published JSON object; clears `dirty`."""
        with self._lock:
            self.dirty = False
            return {"format": 1, "node": self.node, "instance": self.instance,
                    "cycle": self.cycle, "committed": sorted(self.committed),
                    "failed": dict(sorted(self.failed.items())),
                    "api_calls_last_cycle": self.api_calls_last_cycle,
                    "last_error": self.last_error, "skipped": dict(self.skipped),
                    "stopped": self.stopped, "time": now}


def publish(ctl: Controller, node: str, body: dict[str, Any]) -> None:
    """Write `body` to the key-value store (the one place the agent uses it; display only)."""
    value = json.dumps(body, sort_keys=True)
    call = ctl._call  # noqa: SLF001 - throttled, counted and error-mapped like every other call
    replies = call("key-value store modify", ctl.api.keyvaluestore_modify, KV_INSTANCE,
                   property_dict={kv_key(node): value})
    for r in replies or []:
        if isinstance(r, linstor.ApiCallResponse) and r.is_error():
            raise ControllerError(f"key-value store modify: controller said: {r.message}")


async def publish_loop(state: AgentState, h: float, busy: Callable[[], bool],
                       publish_now: Callable[[], None]) -> None:
    """Every h: publish `state` when it changed and no backup runs (a cycle's results are
    complete), or every PUBLISH_BUSY_BEATS heartbeats when busy. Failures are logged once."""
    beats, failing = 0, ""
    while True:
        await asyncio.sleep(h)
        beats += 1
        if not state.dirty or (busy() and beats % PUBLISH_BUSY_BEATS):
            continue
        try:
            await asyncio.to_thread(publish_now)
            failing = ""
        except Exception as exc:  # noqa: BLE001 - display only: say so once, retry later
            why = describe(exc)[1]
            if why != failing:
                log.warning("could not publish the agent state: %s", why)
            failing = why


class Skips:
    """Cycles that could not be planned (controller or repository away, repository locked):
    logged and recorded as a failed job once per cycle and policy, not every poll."""

    def __init__(self, store: JobStore, state: AgentState) -> None:
        self.store, self.state, self.node = store, state, ""
        self._seen: dict[str, tuple[int | None, str]] = {}  # policy -> (cycle, why) now
        self._recorded: dict[str, tuple[int | None, str]] = {}  # policy -> last recorded

    async def note(self, policy: str, cycle: int | None, exc: BaseException) -> None:
        code, why = describe(exc)
        self._seen[policy] = (cycle, why)
        self.state.skip(policy, why)
        last = self._recorded.get(policy)
        if last is not None and last[0] == cycle and (cycle is not None or last[1] == why):
            return
        self._recorded[policy] = (cycle, why)
        log.warning("policy %s: cycle skipped: %s (cycle %s)", policy, why, cycle)
        try:
            job_id = await self.store.add(policy, "backup", f"policy {policy} cycle {cycle}")
            await self.store.finish(job_id, ok=False, exit_code=code,
                                    error=f"cycle {cycle} skipped: {why}",
                                    result={"cluster": {"cycle": cycle, "skipped": why,
                                                        "node": self.node}})
        except Exception as store_exc:  # noqa: BLE001 - the log line above still says it
            log.warning("could not record the skipped cycle: %s", describe(store_exc)[1])

    def cleared(self, policy: str) -> None:
        """The policy's cycle was planned again (the controller answered)."""
        seen = self._seen.pop(policy, None)
        if seen is not None:
            log.info("policy %s: planning again (cycle %s was skipped: %s)", policy, seen[0],
                     seen[1])
            self.state.skip(policy, None)


async def heartbeat_loop(agent: Any, prune_every: int) -> None:
    """Every h one heartbeat round of `agent` (a ClusterAgent), and every `prune_every` rounds a
    prune of old cycles' objects (any agent may). Two agents under one name: stop claiming.
    A failing round is logged once per reason; `agent._beat_error` tells the planner why."""
    assert agent.settings.cluster is not None
    h = agent.settings.cluster.heartbeat_s
    beats = 0
    while not agent.stopping:
        beats += 1
        try:
            await asyncio.to_thread(agent._coord, lambda c: c.heartbeat())
            if agent._beat_error:
                log.info("heartbeats work again")
            agent._observed_at, agent._beat_error = time.monotonic(), None
            if beats % prune_every == 0:
                await asyncio.to_thread(agent._coord, lambda c: c.prune())
        except DuplicateAgent as exc:
            agent.fatal = str(exc)
            agent.state.stop(agent.fatal)
            log.error("%s: this agent stops claiming", exc)
            agent.stopping = True
            return
        except Exception as exc:  # noqa: BLE001 - the repository may be away; keep trying
            why = describe(exc)[1]
            if why != agent._beat_error:  # once per reason, not every h
                log.warning("heartbeat failed: %s", why)
            agent._beat_error = why
        await asyncio.sleep(h)
