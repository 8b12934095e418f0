"""Our snapshots in LINSTOR: naming, readability on this host, rotation of old ones."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime

from drbdbackup.errors import EnvironmentFailure, SourceUnavailable
from drbdbackup.linstor.client import Controller

SNAPSHOT_PREFIX = "drbdbackup-"
log = logging.getLogger(__name__)


def snapshot_prefix(repository_id: str) -> str:
    """Snapshots a repository owns: `drbdbackup-<first 8 hex of the repository id>-`."""
    return f"{SNAPSHOT_PREFIX}{repository_id[:8]}-"


def snapshot_name(repository_id: str, ts: datetime | None = None) -> str:
    """A new, unique snapshot name for this repository."""
    ts = ts or datetime.now(UTC)
    return f"{snapshot_prefix(repository_id)}{ts.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def rotate_snapshots(ctl: Controller, rscs: list[str], prefix: str, needed: set[str], *,
                     may_delete: Callable[[str], bool] | None = None) -> None:
    """Delete every snapshot of `rscs` named with `prefix` that is not in `needed` (and that
    `may_delete` allows: in a cluster, another agent's snapshot may still be read).

    This also removes snapshots left by runs that failed (or whose controller died) before they
    could clean up, so leaked snapshots never accumulate. A failure is logged, not raised: the
    generations are complete and the next run removes what is left.
    """
    for rsc in rscs:
        try:
            for name in ctl.snapshot_names(rsc):
                if name.startswith(prefix) and name not in needed and (
                        may_delete is None or may_delete(name)):
                    _delete_if_there(ctl, rsc, name)
        except EnvironmentFailure as exc:
            log.warning("could not remove old snapshots of %s: %s", rsc, exc)


def _delete_if_there(ctl: Controller, rsc: str, name: str) -> None:
    """Delete a snapshot; one that another agent removed meanwhile is not an error."""
    try:
        ctl.delete_snapshot(rsc, name)
    except EnvironmentFailure:
        if ctl.snapshot(rsc, name) is not None:
            raise


def delete_quietly(ctl: Controller, rscs: list[str], name: str) -> None:
    """Best-effort removal of a snapshot a failed run made (the run's own error matters more)."""
    for rsc in rscs:
        try:
            ctl.delete_snapshot(rsc, name)
        except Exception as exc:  # noqa: BLE001 - best effort, reported only in the log
            log.debug("could not delete snapshot %s of %s: %s", name, rsc, exc)


def ensure_readable(kind: str, path: str) -> None:
    """Snapshot data must be readable here; LVM thin snapshots get activated (`lvchange -ay -K`)."""
    if os.path.exists(path):
        return
    if kind == "LVM_THIN":
        lv = path[len("/dev/") :]
        proc = subprocess.run(["lvchange", "-ay", "-K", lv], capture_output=True, text=True)
        if proc.returncode == 0 and os.path.exists(path):
            return
    raise SourceUnavailable(
        f"snapshot data {path} is not readable on this host (is the agent running on the node "
        "that holds the snapshot?)"
    )
