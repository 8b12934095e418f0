"""Run the real `drbdbackup` command line with a scripted fault in its storage backend.

Test-only wrapper (not a test module). Environment:

DRBDBACKUP_TEST_FAULTS  JSON list of {"op", "pattern", "error", "message", "after", "repeat"}:
                        FaultyBackend faults; `error` names a class in drbdbackup.errors
                        (or a builtin such as KeyboardInterrupt).
DRBDBACKUP_TEST_KILL    JSON {"op", "pattern", "after", "when": "before"|"after"}: SIGKILL this
                        process right before / right after the (after+1)-th matching call
                        succeeds - a crash with no cleanup at an exact step.
DRBDBACKUP_TEST_PACK_BYTES  close packs at this many bytes (to get several packs cheaply).
"""

from __future__ import annotations

import builtins
import json
import os
import re
import signal
import sys

import drbdbackup.repo.open as repo_open
import drbdbackup.repo.pack as pack
from drbdbackup import errors
from drbdbackup.cli import main
from drbdbackup.repo.faulty import FaultyBackend

FAULTS = json.loads(os.environ.get("DRBDBACKUP_TEST_FAULTS", "[]"))
KILL = json.loads(os.environ.get("DRBDBACKUP_TEST_KILL", "null"))
if os.environ.get("DRBDBACKUP_TEST_PACK_BYTES"):
    pack.TARGET_PACK_BYTES = int(os.environ["DRBDBACKUP_TEST_PACK_BYTES"])

_state = {"seen": 0}


class KillingBackend(FaultyBackend):
    """FaultyBackend that can also SIGKILL the process around one chosen call."""

    def _kill_point(self, op: str, name: str) -> bool:
        if not KILL or KILL["op"] != op or not re.search(KILL["pattern"], name):
            return False
        _state["seen"] += 1
        return _state["seen"] == KILL.get("after", 0) + 1

    def _around(self, op: str, name: str, call):
        hit = self._kill_point(op, name)
        if hit and KILL.get("when", "before") == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = call()
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        self._around("put", name, lambda: super(KillingBackend, self).put(name, data, exclusive=exclusive))

    def put_file(self, name: str, path: str) -> None:
        self._around("put", name, lambda: super(KillingBackend, self).put_file(name, path))

    def delete(self, name: str) -> None:
        self._around("delete", name, lambda: super(KillingBackend, self).delete(name))

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()


_original_backend_for = repo_open.backend_for


def backend_for(location: str, *, create: bool = False):
    backend = KillingBackend(_original_backend_for(location, create=create))
    for f in FAULTS:
        cls = getattr(errors, f["error"], None) or getattr(builtins, f["error"])
        error = cls(f.get("message", f"injected {f['error']}"))
        backend.add_fault(f["op"], f["pattern"], error, f.get("repeat", 1), f.get("after", 0))
    return backend


repo_open.backend_for = backend_for

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
