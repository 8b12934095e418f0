"""Put drbdbackup's pre-fix behaviour back in this process (FUZZ_DISABLE_BOUNDS, tests only), so a
harness can show it re-finds the bugs of issue 20: `plain_length` no longer bounded by the chunk
size (and zstd decompressing whatever the frame claims); `depth`: JSON parsed with no size cap, no
nesting pre-scan and RecursionError not caught."""

from __future__ import annotations

import json
import sys
from typing import Any

import pyzstd

from drbdbackup.repo import blob, records

UNBOUNDED = 2**32 - 1


def _kind_only(kind: int, length: int, plain_length: int, *_a: Any, **_k: Any) -> str | None:
    return None if kind in (blob.KIND_DATA, blob.KIND_TREE) else f"unknown blob kind {kind}"


def _loads_unbounded(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise records.JsonObjectError(f"{what} is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise records.JsonObjectError(f"{what} is not a JSON object")
    return doc


def revert(names: set[str]) -> None:
    """Patch every loaded drbdbackup module that holds the bounded function."""
    entry_problem, max_plain, loader = blob.entry_problem, blob.max_plain_length, \
        records.load_json_object  # taken first: the loop patches the defining modules too
    mods = [m for n, m in sys.modules.items() if n.startswith("drbdbackup") and m is not None]
    for mod in mods:
        if "plain_length" in names:
            if getattr(mod, "entry_problem", None) is entry_problem:
                mod.entry_problem = _kind_only  # type: ignore[attr-defined]
            if getattr(mod, "max_plain_length", None) is max_plain:
                mod.max_plain_length = lambda *_a, **_k: UNBOUNDED  # type: ignore[attr-defined]
        if "depth" in names and getattr(mod, "load_json_object", None) is loader:
            mod.load_json_object = _loads_unbounded  # type: ignore[attr-defined]
    if "plain_length" in names:
        blob._decompress = lambda body, plain_length: pyzstd.decompress(body)
        blob.decode_blob.__kwdefaults__["limit"] = UNBOUNDED  # type: ignore[index]
