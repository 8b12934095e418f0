"""Generation records (format.md section 9): naming, ids, serialization."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from drbdbackup.errors import UsageError

VOLUME_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RECORD_FORMAT = 2  # what this version writes
RECORD_FORMATS = (1, 2)  # what it reads
GENERATION_RE = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}$")


def now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.isoformat()


def new_generation_id(ts: datetime) -> str:
    return ts.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(4)


def check_volume_id(volume_id: str) -> str:
    if not VOLUME_ID_RE.match(volume_id):
        raise UsageError(
            f"invalid volume id {volume_id!r}: use 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)"
        )
    return volume_id


def record_name(volume_id: str, generation: str) -> str:
    return f"generations/{volume_id}/{generation}"


@dataclass
class GenerationRecord:
    """What a generation is; written last, atomically."""

    repository_id: str
    volume_id: str
    generation: str
    created: str
    parent: str | None
    mode: str
    tracker: str
    map_validity: str
    fallback_reason: str | None
    size_bytes: int
    chunk_size: int
    chunk_count: int
    root: str
    tree_height: int
    source: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    format: int = RECORD_FORMAT
    # format 2 (format.md section 9): optional, absent in version-1 records
    tracker_reason: str | None = None
    policy: str | None = None
    selected_by: str | None = None
    labels: dict = field(default_factory=dict)
    linstor: dict | None = None
    group_members: list | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GenerationRecord:
        doc = json.loads(data)
        if doc.get("format") not in RECORD_FORMATS:
            raise ValueError(f"unsupported generation record format {doc.get('format')!r}")
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in fields})
