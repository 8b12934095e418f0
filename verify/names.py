"""Object names and the patterns a listed name must match before it is used (section 2)."""

from __future__ import annotations

import re

HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")
VOLUME_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
GENERATION_RE = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}$")
AUDIT_SEQ_RE = re.compile(r"^\d{12}$")


def is_pack_name(name: str) -> bool:
    """``packs/<id[0:2]>/<packid>``."""
    parts = name.split("/")
    return (
        len(parts) == 3
        and parts[0] == "packs"
        and bool(HEX64_RE.match(parts[2]))
        and parts[1] == parts[2][:2]
    )


def pack_name(packid: str) -> str:
    """Object name of a pack."""
    return f"packs/{packid[:2]}/{packid}"


def generation_name(volume_id: str, gen: str) -> str:
    """Object name of a generation record."""
    return f"generations/{volume_id}/{gen}"


def audit_name(seq: int) -> str:
    """Object name of audit entry ``seq``."""
    return f"audit/{seq:012d}"


def quarantine_name(chunk_id: str, packid: str) -> str:
    """Object name of a quarantine record."""
    return f"quarantine/{chunk_id}-{packid}"


def parse_quarantine_name(name: str) -> tuple[str, str] | None:
    """``quarantine/<id>-<packid>`` -> (id, packid), or None if not such a name."""
    if not name.startswith("quarantine/"):
        return None
    rest = name[len("quarantine/") :]
    if len(rest) != 129 or rest[64] != "-":
        return None
    cid, pid = rest[:64], rest[65:]
    if HEX64_RE.match(cid) and HEX64_RE.match(pid):
        return cid, pid
    return None
