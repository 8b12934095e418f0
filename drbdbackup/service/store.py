"""Job state in SQLite (stdlib sqlite3, one connection, every call in a worker thread).

Timestamps are Unix epoch seconds (REAL). A job is queued -> running -> succeeded|failed.
`open()` marks jobs a crashed process left `running` as failed; `queued` jobs survive a restart
and are run again by the scheduler.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from typing import Any

KINDS = ("backup", "verify", "prune")
STATES = ("queued", "running", "succeeded", "failed")
CRASHED = "service stopped while running"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('backup', 'verify', 'prune')),
    target TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    exit_code INTEGER,
    error TEXT,
    result_json TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    seen REAL NOT NULL,
    regression TEXT
);
"""


def _row(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    d["result"] = json.loads(d.pop("result_json")) if d.get("result_json") else None
    return d


class JobStore:
    """Async facade over a sqlite3 connection; safe to call from the event loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def _run(self, sql: str, args: tuple = (), *, many: bool = True) -> list[dict[str, Any]]:
        def go() -> list[dict[str, Any]]:
            assert self._db is not None, "store is not open"
            with self._lock, self._db:
                cur = self._db.execute(sql, args)
                return [_row(r) for r in cur.fetchall()] if many else [{"id": cur.lastrowid}]

        return await asyncio.to_thread(go)

    async def open(self) -> int:
        """Create the schema; fail jobs a crash left running. Returns how many were failed."""

        def go() -> None:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            self._db = db

        await asyncio.to_thread(go)
        rows = await self._run(
            "UPDATE jobs SET state='failed', finished=?, error=?, exit_code=3 "
            "WHERE state='running' RETURNING id", (time.time(), CRASHED))
        return len(rows)

    async def close(self) -> None:
        def go() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(go)

    async def add(self, policy: str, kind: str, target: str) -> int:
        rows = await self._run(
            "INSERT INTO jobs (policy, kind, target, state, created) VALUES (?, ?, ?, 'queued', ?)",
            (policy, kind, target, time.time()), many=False)
        return int(rows[0]["id"])

    async def mark_running(self, job_id: int) -> None:
        await self._run("UPDATE jobs SET state='running', started=? WHERE id=?", (time.time(), job_id))

    async def finish(self, job_id: int, *, ok: bool, exit_code: int, error: str | None,
                     result: dict[str, Any] | None) -> None:
        await self._run(
            "UPDATE jobs SET state=?, finished=?, exit_code=?, error=?, result_json=? WHERE id=?",
            ("succeeded" if ok else "failed", time.time(), exit_code, error,
             json.dumps(result, sort_keys=True) if result is not None else None, job_id))

    async def get(self, job_id: int) -> dict[str, Any] | None:
        rows = await self._run("SELECT * FROM jobs WHERE id=?", (job_id,))
        return rows[0] if rows else None

    async def list_jobs(self, state: str | None = None, limit: int = 50, kind: str | None = None,
                   oldest_first: bool = False) -> list[dict[str, Any]]:
        where, args = [], []
        if state:
            where.append("state=?")
            args.append(state)
        if kind:
            where.append("kind=?")
            args.append(kind)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY id {'ASC' if oldest_first else 'DESC'} LIMIT ?"
        return await self._run(sql, (*args, limit))

    async def counts(self) -> dict[str, int]:
        rows = await self._run("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        out = dict.fromkeys(STATES, 0)
        out.update({r["state"]: r["n"] for r in rows})
        return out

    async def pending(self, policy: str, kind: str) -> bool:
        """Whether a job of this policy and kind is queued or running."""
        rows = await self._run(
            "SELECT id FROM jobs WHERE policy=? AND kind=? AND state IN ('queued', 'running') LIMIT 1",
            (policy, kind))
        return bool(rows)

    async def finished_jobs(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every finished job (oldest first), for metrics."""
        sql = "SELECT * FROM jobs WHERE state IN ('succeeded', 'failed')"
        args: tuple = ()
        if kind:
            sql += " AND kind=?"
            args = (kind,)
        return await self._run(sql + " ORDER BY id ASC", args)

    async def anchor(self) -> dict[str, Any] | None:
        """The audit head this service last saw in the repository (format.md section 12.1)
        and the regression alarm (None: none), or None before the first sighting."""
        rows = await self._run("SELECT seq, hash, seen, regression FROM audit_anchor WHERE id=1")
        return rows[0] if rows else None

    async def advance_anchor(self, seq: int, digest: str) -> None:
        """The head seen now contains the last one: remember it and clear the alarm."""
        await self._run(
            "INSERT INTO audit_anchor (id, seq, hash, seen, regression) VALUES (1, ?, ?, ?, NULL) "
            "ON CONFLICT (id) DO UPDATE SET seq=excluded.seq, hash=excluded.hash, "
            "seen=excluded.seen, regression=NULL", (seq, digest, time.time()))

    async def raise_regression(self, message: str) -> None:
        """The last head seen is gone from the chain: keep it (the alarm stays until it is
        back, or an operator resets the state) and record why."""
        await self._run("UPDATE audit_anchor SET regression=? WHERE id=1", (message,))
