"""The repository `config` object (format.md section 3): constants, parsing, validation."""

from __future__ import annotations

from typing import Any

from drbdbackup.errors import IntegrityError, UnsupportedFormat, UsageError
from drbdbackup.repo.records import HEX64_RE, JsonObjectError, load_json_object
from drbdbackup.repo.tree import DEFAULT_FANOUT, MAX_FANOUT

FORMAT_VERSION = 2  # what new repositories get (format.md section 3)
READABLE_FORMATS = (1, 2)
MIN_CHUNK, MAX_CHUNK, DEFAULT_CHUNK = 64 << 10, 4 << 20, 1 << 20
ENCRYPTIONS = ("none", "aes-256-gcm")


def validate_chunk_size(size: int) -> int:
    if size < MIN_CHUNK or size > MAX_CHUNK or size & (size - 1):
        raise UsageError(
            f"chunk size {size} out of range: a power of two from 64KiB to 4MiB is required"
        )
    return size


def parse_config(raw: bytes, location: str) -> dict[str, Any]:
    """The config's JSON, bounded and typed (format.md sections 3 and 17); an unknown format
    is UnsupportedFormat, anything else malformed IntegrityError."""
    try:
        config = load_json_object(raw, "config")
    except JsonObjectError as exc:
        raise IntegrityError(f"repository config at {location} is damaged: {exc}") from None
    fmt = config.get("format")
    if isinstance(fmt, bool) or fmt not in READABLE_FORMATS:
        raise UnsupportedFormat(
            f"repository format {fmt!r} is not supported (this build reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))})"
        )
    problem = _config_problem(config)
    if problem:
        raise IntegrityError(f"repository config at {location} is damaged: {problem}")
    for key, value in (("hash", "blake3"), ("compression", "zstd")):
        if config.get(key, value) != value:
            raise UnsupportedFormat(f"repository {key} {config.get(key)!r} is not supported")
    return config


def _int_in(value: object, low: int, high: int) -> bool:
    """An int (not a bool) in [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _config_problem(config: dict[str, Any]) -> str | None:
    """Why the config's fields are unusable, or None."""
    rid = config.get("repository_id")
    cs: Any = config.get("chunk_size")
    fanout: Any = config.get("tree_fanout", DEFAULT_FANOUT)
    if not isinstance(rid, str) or not HEX64_RE.match(rid):
        return "repository_id is not 64 hex digits"
    if not _int_in(cs, MIN_CHUNK, MAX_CHUNK) or cs & (cs - 1):
        return f"chunk_size {str(cs)[:40]} is not a power of two from 64KiB to 4MiB"
    if not _int_in(fanout, 2, MAX_FANOUT):
        return f"tree_fanout {str(fanout)[:40]} is outside [2, {MAX_FANOUT}] (the reader limit)"
    if config.get("encryption", "none") not in ENCRYPTIONS:
        return f"unknown encryption {config.get('encryption')!r}"
    return None
