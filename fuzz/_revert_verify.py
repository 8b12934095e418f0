"""Put drbdverify's pre-fix behaviour back in this process (FUZZ_DISABLE_BOUNDS, tests only); the
verify harnesses use this instead of _revert_product, so they never import drbdbackup."""

from __future__ import annotations

import json
import sys
from typing import Any

import zstandard

from verify import binary, jsonobj, limits
from verify.errors import FormatError

UNBOUNDED = 2**32 - 1


def _kind_only(self: limits.BlobLimits, kind: int, stored_length: int,
               plain_length: int) -> str | None:
    return None if kind in (limits.KIND_CHUNK, limits.KIND_NODE) else f"unknown blob kind {kind}"


def _unzstd_unbounded(body: bytes, plain_length: int) -> bytes:
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    except zstandard.ZstdError as e:
        raise FormatError(f"blob: zstd frame does not decode ({e})") from None


def _loads_unbounded(data: bytes, what: str, max_bytes: int | None = None) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{what}: not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: JSON is not an object")
    return obj


def revert(names: set[str]) -> None:
    """Patch the limits (plain_length) or the JSON loader in every verify module using it."""
    if "plain_length" in names:
        limits.BlobLimits.max_plain = lambda self, kind: UNBOUNDED  # type: ignore[method-assign]
        limits.BlobLimits.problem = _kind_only  # type: ignore[method-assign]
        binary._unzstd = _unzstd_unbounded
        binary.decode_blob.__defaults__ = (UNBOUNDED,)
    if "depth" in names:
        loader = jsonobj.load_json_object  # taken first: the loop patches jsonobj too
        for name, mod in list(sys.modules.items()):
            if name.startswith("verify") and getattr(mod, "load_json_object", None) is loader:
                mod.load_json_object = _loads_unbounded  # type: ignore[attr-defined]
