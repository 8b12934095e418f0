"""The service as an external anchor of the audit log (format.md section 12.1): after each
job it checks that the head it saw last is still in the repository's chain, remembers the new
head, and raises an alarm (log line, metric `drbdbackup_audit_regression`, /v1/status) when
the head regresses (the repository or its log was rolled back or rewritten)."""

from __future__ import annotations

import asyncio
import logging

from drbdbackup.ops.evidence import check_head
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.service.store import JobStore

log = logging.getLogger("drbdbackup.service")


async def observe(store: JobStore, ref: RepositoryRef) -> str | None:
    """Check and advance the anchor; returns the alarm's message (None: no regression)."""
    last = await store.anchor()
    found = await asyncio.to_thread(check_head, ref, last["seq"] if last else None,
                                    last["hash"] if last else None)
    if last is not None and not found.anchor_found:
        message = (f"audit head regression: audit/{last['seq']:012d} ({last['hash']}) seen "
                   f"before is not in the repository's audit chain (it now ends at "
                   f"audit/{found.head_seq:012d}): the repository or its log was rolled back "
                   f"or rewritten")
        if last.get("regression") != message:
            log.error("%s", message)
        await store.raise_regression(message)
        return message
    await store.advance_anchor(found.head_seq, found.head)
    return None


async def observe_quietly(store: JobStore, ref: RepositoryRef) -> None:
    """`observe` for the scheduler: a repository that cannot be read now is not an alarm."""
    try:
        await observe(store, ref)
    except Exception as exc:  # noqa: BLE001 - the next job checks again
        log.warning("could not check the audit head: %s", exc)
