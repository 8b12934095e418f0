"""Bounded JSON: size and nesting depth checked before ``json.loads``, then typed field access.

The depth pre-scan is linear and runs at C speed: escape pairs are dropped, every byte but
quotes and brackets is deleted, adjacent quote pairs (empty strings, or the gap between two
strings) are removed, the rest is split at quotes so brackets inside strings fall away, and
innermost ``[]``/``{}`` pairs are removed once per allowed level. Anything left nests too deep
(or does not balance, which json.loads would refuse anyway).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import FormatError
from .limits import JSON_MAX_BYTES, JSON_MAX_DEPTH
from .names import HEX64_RE

_ESCAPE = re.compile(rb"\\[\s\S]")
_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_SKELETON = bytes(sorted(set(range(256)) - set(b'[]{}"')))


def nesting_within(data: bytes, max_depth: int) -> bool:
    """True when the JSON text nests arrays/objects at most ``max_depth`` deep."""
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    skeleton = data.translate(None, _NOT_SKELETON).replace(b'""', b"")
    brackets = b"".join(skeleton.split(b'"')[0::2])  # odd parts lie inside strings
    if not brackets[: max_depth + 1].translate(None, b"[{"):
        return len(brackets) <= max_depth  # opens more than max_depth levels at once
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets = _PAIR.sub(b"", brackets)
    return not brackets


def load_json_object(data: bytes, what: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Decode UTF-8 JSON that must be an object, within the size and depth limits of ``what``."""
    cap = max_bytes if max_bytes is not None else JSON_MAX_BYTES.get(what, JSON_MAX_BYTES["index"])
    if len(data) > cap:
        raise FormatError(f"{what}: {len(data)} bytes, above the reader limit of {cap}")
    if not nesting_within(data, JSON_MAX_DEPTH):
        raise FormatError(f"{what}: JSON nests deeper than {JSON_MAX_DEPTH} levels (or is unbalanced)")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{what}: not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: JSON is not an object")
    return obj


def req_int(obj: dict[str, Any], key: str, what: str, minimum: int = 0,
            maximum: int | None = None) -> int:
    """An integer field (not a bool) in ``[minimum, maximum]``."""
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise FormatError(f"{what}: {key!r} must be an integer >= {minimum}")
    if maximum is not None and v > maximum:
        raise FormatError(f"{what}: {key!r} is {v}, above the reader limit of {maximum}")
    return v


def req_hex64(obj: dict[str, Any], key: str, what: str) -> str:
    """A 64-lower-case-hex string field."""
    v = obj.get(key)
    if not isinstance(v, str) or not HEX64_RE.match(v):
        raise FormatError(f"{what}: {key!r} must be 64 lower-case hex characters")
    return v


def req_str(obj: dict[str, Any], key: str, what: str) -> str:
    """A string field."""
    v = obj.get(key)
    if not isinstance(v, str):
        raise FormatError(f"{what}: {key!r} must be a string")
    return v


def req_list(obj: dict[str, Any], key: str, what: str) -> list[Any]:
    """A list field."""
    v = obj.get(key)
    if not isinstance(v, list):
        raise FormatError(f"{what}: {key!r} must be a list")
    return v


def req_format(obj: dict[str, Any], allowed: tuple[int, ...], what: str) -> int:
    """The ``format`` field: an integer (not a bool) among ``allowed``."""
    v = obj.get("format")
    if isinstance(v, bool) or v not in allowed:
        known = " and ".join(map(str, allowed))
        raise FormatError(f"{what}: unsupported format {v!r} (this reader knows {known})")
    return int(v)
