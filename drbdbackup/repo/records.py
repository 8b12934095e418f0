"""Generation records (format.md section 9): naming, ids, serialization; and the bounded
loading every JSON object of the repository goes through (format.md section 17): a size cap per
object kind and a nesting-depth pre-scan before json.loads, so no object can make a reader
recurse or allocate without bound."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from drbdbackup.errors import UsageError

VOLUME_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RECORD_FORMAT = 2  # what this version writes
RECORD_FORMATS = (1, 2)  # what it reads
GENERATION_RE = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")

JSON_MAX_DEPTH = 32
JSON_MAX_BYTES = {  # plain JSON; a sealed object may be 28 bytes longer
    "config": 64 << 10,
    "key file": 64 << 10,
    "lock": 64 << 10,
    "quarantine record": 64 << 10,
    "generation record": 1 << 20,
    "audit entry": 16 << 20,
    "index file": 2 << 30,
}
MAX_CHUNK_COUNT = 1 << 32
_ESCAPED = re.compile(rb"\\[\s\S]")
_INNERMOST = re.compile(rb"\[\]|\{\}")
_OTHER_THAN_QUOTES_AND_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')


class JsonObjectError(ValueError):
    """A repository JSON object is too large, too deep, not JSON, or has a field of the wrong type."""


def _nests_at_most(data: bytes, depth: int) -> bool:
    """Linear pre-scan: does the JSON text nest arrays/objects at most `depth` levels?"""
    if b"\\" in data:
        data = _ESCAPED.sub(b"", data)  # \" and \\ inside strings no longer count as quotes
    quotes_and_brackets = data.translate(None, _OTHER_THAN_QUOTES_AND_BRACKETS).replace(b'""', b"")
    brackets = b"".join(quotes_and_brackets.split(b'"')[::2])  # drop what lies inside strings
    for _level in range(depth + 1):
        if not brackets:
            return True
        if _level == depth:
            return False
        shorter = _INNERMOST.sub(b"", brackets)
        if len(shorter) == len(brackets):
            return False  # unbalanced: json.loads would refuse it anyway
        brackets = shorter
    return False


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse one of the repository's JSON objects (`what` is a key of JSON_MAX_BYTES)."""
    cap = JSON_MAX_BYTES[what]
    if len(data) > cap:
        raise JsonObjectError(f"{what} is {len(data)} bytes, above the limit of {cap}")
    if not _nests_at_most(data, JSON_MAX_DEPTH):
        raise JsonObjectError(f"{what} nests deeper than {JSON_MAX_DEPTH} levels")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise JsonObjectError(f"{what} is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise JsonObjectError(f"{what} is not a JSON object")
    return doc


def field_of(doc: dict[str, Any], key: str, types: type | tuple[type, ...], what: str) -> Any:
    """`doc[key]` if it has one of `types` (bool is never an int here)."""
    value = doc.get(key)
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise JsonObjectError(f"{what}: {key} has the wrong type")
    if not isinstance(value, types):
        raise JsonObjectError(f"{what}: {key} has the wrong type")
    return value


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
    audit_prev: dict | None = None  # {"seq", "hash"}: the audit head when it was written

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GenerationRecord:
        """Parse a record; raises ValueError (JsonObjectError) for anything malformed."""
        doc = load_json_object(data, "generation record")
        if isinstance(doc.get("format"), bool) or doc.get("format") not in RECORD_FORMATS:
            raise JsonObjectError(f"unsupported generation record format {doc.get('format')!r}")
        _check_record_types(doc)
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in fields})


_NULLABLE_STR = (str, type(None))
_RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "repository_id": str, "volume_id": str, "generation": str, "created": str,
    "parent": _NULLABLE_STR, "mode": str, "tracker": str, "map_validity": str,
    "fallback_reason": _NULLABLE_STR, "size_bytes": int, "chunk_size": int, "chunk_count": int,
    "root": str, "tree_height": int,
}
_OPTIONAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "source": dict, "stats": dict, "tracker_reason": _NULLABLE_STR, "policy": _NULLABLE_STR,
    "selected_by": _NULLABLE_STR, "labels": dict, "linstor": (dict, type(None)),
    "group_members": (list, type(None)), "audit_prev": (dict, type(None)),
}


def _check_record_types(doc: dict[str, Any]) -> None:
    """Every field the reader uses has its documented type and range (format.md sections 9, 17)."""
    w = "generation record"
    for key, types in _RECORD_TYPES.items():
        if key not in doc:
            raise JsonObjectError(f"{w}: {key} is missing")
        field_of(doc, key, types, w)
    for key, types in _OPTIONAL_TYPES.items():
        if key in doc:
            field_of(doc, key, types, w)
    if not HEX64_RE.match(doc["repository_id"]) or not HEX64_RE.match(doc["root"]):
        raise JsonObjectError(f"{w}: repository_id and root must be 64 lower-case hex digits")
    if not VOLUME_ID_RE.match(doc["volume_id"]) or not GENERATION_RE.match(doc["generation"]):
        raise JsonObjectError(f"{w}: volume_id or generation is malformed")
    size, cs, count = doc["size_bytes"], doc["chunk_size"], doc["chunk_count"]
    if size < 0 or cs < 1 or cs & (cs - 1) or count != -(-size // cs) or count > MAX_CHUNK_COUNT:
        raise JsonObjectError(f"{w}: size_bytes {size}, chunk_size {cs} and chunk_count {count} "
                              f"disagree or exceed the limits")
    if not 1 <= doc["tree_height"] <= 64:
        raise JsonObjectError(f"{w}: tree_height {doc['tree_height']} out of range")
    stats = doc.get("stats", {})
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in stats.values()):
        raise JsonObjectError(f"{w}: stats values must be numbers")
    if not all(isinstance(v, str) for v in doc.get("labels", {}).values()):
        raise JsonObjectError(f"{w}: labels values must be strings")
    pin = doc.get("audit_prev")
    if pin is not None and not (
        isinstance(pin.get("seq"), int) and not isinstance(pin["seq"], bool) and pin["seq"] >= 0
        and isinstance(pin.get("hash"), str) and HEX64_RE.match(pin["hash"])
    ):
        raise JsonObjectError(f"{w}: audit_prev is not {{seq >= 0, hash: 64 hex}}")
