"""Run the real `drbdbackup` command line with a scripted fault in its storage backend.

Test-only wrapper (not a test module). Environment:

DRBDBACKUP_TEST_FAULTS  JSON list of {"op", "pattern", "error", "message", "after", "repeat"}:
                        FaultyBackend faults; `error` names a class in drbdbackup.errors
                        (or a builtin such as KeyboardInterrupt).
DRBDBACKUP_TEST_KILL    JSON {"op", "pattern", "after", "when": "before"|"after"}: SIGKILL this
                        process right before / right after the (after+1)-th matching call
                        succeeds - a crash with no cleanup at an exact step (not combined with
                        DRBDBACKUP_TEST_FAULTS on the same calls: one fault fires per call).
DRBDBACKUP_TEST_PACK_BYTES  close packs at this many bytes (to get several packs cheaply).
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import sys
from pathlib import Path

import drbdbackup.repo.open as repo_open
import drbdbackup.repo.pack as pack
from drbdbackup import errors
from drbdbackup.cli import main
from drbdbackup.repo.backend import Backend

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: find tests/
from tests.doubles.faulty import FaultyBackend  # noqa: E402

FAULTS = json.loads(os.environ.get("DRBDBACKUP_TEST_FAULTS", "[]"))
KILL = json.loads(os.environ.get("DRBDBACKUP_TEST_KILL", "null"))
if os.environ.get("DRBDBACKUP_TEST_PACK_BYTES"):
    pack.TARGET_PACK_BYTES = int(os.environ["DRBDBACKUP_TEST_PACK_BYTES"])

_state = {"seen": 0}  # matching calls seen by the kill point, across every backend opened


def _kill_at_chosen_call() -> None:
    _state["seen"] += 1
    if _state["seen"] == KILL.get("after", 0) + 1:
        os.kill(os.getpid(), signal.SIGKILL)


_original_backend_for = repo_open.backend_for


def backend_for(location: str, *, create: bool = False) -> Backend:
    backend = FaultyBackend(_original_backend_for(location, create=create))
    if KILL:  # fires on every matching call; the hook counts them and kills at the chosen one
        kill = backend.add_fault(KILL["op"], KILL["pattern"]).times(-1)
        if KILL.get("when", "before") == "before":
            kill.on_call(_kill_at_chosen_call)
        else:
            kill.on_return(_kill_at_chosen_call)
    for f in FAULTS:
        cls = getattr(errors, f["error"], None) or getattr(builtins, f["error"])
        error = cls(f.get("message", f"injected {f['error']}"))
        backend.add_fault(f["op"], f["pattern"], error, f.get("repeat", 1), f.get("after", 0))
    return backend


repo_open.backend_for = backend_for

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
