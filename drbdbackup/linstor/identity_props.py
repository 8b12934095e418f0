"""Properties that carry another resource's identity: never copied onto a restored resource
(`restore --like-original`), so a restored copy cannot impersonate its original.

Documented in README ("Restore into the platform's shape"); fnmatch patterns, case-sensitive.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

IDENTITY_PATTERNS = (
    "Aux/drbdbackup/*",  # our own opt-in / opt-out markers
    "Aux/csi*", "Aux/*/csi*", "Aux/*csi-volume*",  # LINSTOR CSI / Piraeus volume identity
    "Aux/pm/*", "Aux/*vmid*",  # Proxmox VE: VM ids and disk names
    "Aux/cs/*", "Aux/*cloudstack*",  # CloudStack volume uuids
    "Aux/incus/*", "Aux/*volatile*",  # Incus
    "*uuid*", "*UUID*", "*Uuid*",
)


def is_identity(key: str) -> bool:
    return any(fnmatchcase(key, pat) for pat in IDENTITY_PATTERNS)


def without_identity(props: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(properties safe to copy, keys left out)."""
    kept = {k: v for k, v in props.items() if not is_identity(k)}
    return kept, sorted(k for k in props if k not in kept)
