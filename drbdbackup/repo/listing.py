"""Generation listings with a status per generation (ok / damaged / unreadable)."""

from __future__ import annotations

from drbdbackup.errors import IntegrityError
from drbdbackup.repo.records import check_volume_id
from drbdbackup.repo.repository import Repository


def list_generations(repo: Repository, volume_id: str | None = None) -> list[dict]:
    """Oldest first. `damaged` when a referenced blob has no good (non-quarantined) copy, or
    no readable index file lists it while one is unreadable (that file is named, and warned
    about once)."""
    if volume_id is not None:
        check_volume_id(volume_id)
    repo.load_index(warn=True)
    volumes = [volume_id] if volume_id else repo.volumes()
    out: list[dict] = []
    for vol in volumes:
        for gen in repo.generation_ids(vol):
            try:
                rec = repo.read_record(vol, gen)
            except IntegrityError as exc:
                out.append({"volume_id": vol, "generation": gen, "created": None, "mode": None,
                            "tracker": None, "size_bytes": 0, "status": "unreadable", "problem": str(exc)})
                continue
            status, problem = "ok", None
            try:
                ids = repo.chunk_ids(rec)
                bad = repo.index.unavailable_positions(ids)
                if bad:
                    status = "damaged"
                    problem = f"{len(bad)} chunk(s) have no good copy, first at byte {bad[0] * rec.chunk_size}"
            except IntegrityError as exc:
                status, problem = "damaged", str(exc)
            row: dict = {
                "volume_id": vol,
                "generation": gen,
                "created": rec.created,
                "mode": rec.mode,
                "tracker": rec.tracker,
                "size_bytes": rec.size_bytes,
                "parent": rec.parent,
                "fallback_reason": rec.fallback_reason,
                "node": rec.source.get("node"),
                "resource": rec.source.get("resource"),
                "tracker_reason": rec.tracker_reason,
                "policy": rec.policy,
                "labels": rec.labels,
                "snapshot": rec.source.get("snapshot"),
                "group_members": rec.group_members,
                "status": status,
            }
            if problem:
                row["problem"] = problem
            out.append(row)
    out.sort(key=lambda r: (r["created"] or "", r["generation"]))
    return out
