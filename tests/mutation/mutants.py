"""Structure-aware mutations of a whole repository directory (what a hostile or broken writer
leaves behind): flip, truncate, delete, duplicate, swap two objects, replay an older copy,
inflate lengths and counts, nest, wrong types. Pure functions of (repository, op); no tool runs
here."""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("flip", "truncate", "delete", "duplicate", "swap", "replay", "inflate", "nest",
         "wrong_type")
INFLATED = (4_000_000_000, 2**32 - 1, 2**63, -1, 0, 2**31)
WRONG: tuple[Any, ...] = (None, True, "x", 1.5, [], {}, -1, "0" * 64, [1, 2], {"a": None})
NEST_DEPTHS = (33, 1000, 200_000)
_TOC_ENTRY = struct.Struct("<B32sQII")


@dataclass(frozen=True)
class Op:
    kind: str
    a: int  # which object
    b: int  # a second object, a bit, a choice
    pos: int  # a position or a choice


def objects(repo: Path) -> list[Path]:
    """Every object of the repository, in a stable order."""
    return sorted(p for p in repo.rglob("*") if p.is_file())


def _json(data: bytes) -> Any | None:
    if not data.startswith(b"{"):
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: an earlier op nested it deeply
        return None


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every value below the top object."""
    out: list[tuple[Any, ...]] = [path] if path else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _leaves(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:16]):
            out += _leaves(v, (*path, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _flip(data: bytes, op: Op) -> bytes:
    if not data:
        return b"\x00"
    buf = bytearray(data)
    buf[op.pos % len(buf)] ^= 1 << (op.b % 8)
    return bytes(buf)


def _json_op(doc: Any, op: Op) -> bytes:
    paths = _leaves(doc)
    if op.kind == "inflate":
        ints = [p for p in paths if isinstance(_get(doc, p), int) and not isinstance(_get(doc, p), bool)]
        if ints:
            path = ints[op.pos % len(ints)]
            _set(doc, path, INFLATED[op.b % len(INFLATED)])
        return json.dumps(doc).encode()
    if not paths:
        return json.dumps(doc).encode()
    path = paths[op.pos % len(paths)]
    if op.kind == "wrong_type":
        _set(doc, path, WRONG[op.b % len(WRONG)])
        return json.dumps(doc).encode()
    depth = NEST_DEPTHS[op.b % len(NEST_DEPTHS)]  # nest: spliced in as text
    inner = json.dumps(_get(doc, path))
    _set(doc, path, "\u0000hole\u0000")
    text = json.dumps(doc).replace(json.dumps("\u0000hole\u0000"), "[" * depth + inner + "]" * depth, 1)
    return text.encode()


def _inflate_pack(data: bytes, op: Op) -> bytes | None:
    """Inflate the TOC's count or one entry's length, offset or plain length (unsealed TOC)."""
    if len(data) < 28 or data[-8:] != b"DRBDTOC1":
        return None
    (toc_len,) = struct.unpack_from("<I", data, len(data) - 12)
    start = len(data) - 12 - toc_len
    if start < 16 or (toc_len - 4) % _TOC_ENTRY.size:
        return None  # sealed
    buf = bytearray(data)
    count = (toc_len - 4) // _TOC_ENTRY.size
    value = INFLATED[op.b % len(INFLATED)] % 2**32
    field = op.pos % 4
    if field == 0 or count == 0:
        struct.pack_into("<I", buf, start, value)
        return bytes(buf)
    entry = start + 4 + _TOC_ENTRY.size * ((op.pos // 4) % count)
    offset = {1: 33, 2: 41, 3: 45}[field]  # offset (u64, written as its low half), length, plain
    struct.pack_into("<I", buf, entry + offset, value)
    return bytes(buf)


def _renamed(path: Path, op: Op) -> Path:
    """A sibling name that still matches the format's pattern for hex and digit names."""
    name = path.name
    last = name[-1]
    if last in "0123456789abcdef":
        alphabet = "0123456789" if name.isdigit() else "0123456789abcdef"
        new = alphabet[(alphabet.index(last) + 1 + op.b % (len(alphabet) - 1)) % len(alphabet)]
        return path.with_name(name[:-1] + new)
    return path.with_name(name + "x")


def apply(repo: Path, older: Path, op: Op) -> str:
    """Apply one op to the repository directory; returns a description for failure reports."""
    objs = objects(repo)
    if not objs:
        return f"{op.kind}: nothing to mutate"
    target = objs[op.a % len(objs)]
    rel = target.relative_to(repo)
    data = target.read_bytes()
    if op.kind == "delete":
        target.unlink()
    elif op.kind == "truncate":
        target.write_bytes(data[: op.pos % max(1, len(data))])
    elif op.kind == "duplicate":
        _renamed(target, op).write_bytes(data)
    elif op.kind == "swap":
        other = objs[op.b % len(objs)]
        other_data = other.read_bytes()
        other.write_bytes(data)
        target.write_bytes(other_data)
        return f"swap {rel} <-> {other.relative_to(repo)}"
    elif op.kind == "replay":
        old = objects(older)
        src = old[op.b % len(old)]
        target.write_bytes(src.read_bytes())
        return f"replay older {src.relative_to(older)} over {rel}"
    elif op.kind in ("inflate", "nest", "wrong_type"):
        doc = _json(data)
        new = _json_op(doc, op) if doc is not None else None
        if new is None and op.kind == "inflate":
            new = _inflate_pack(data, op)
        target.write_bytes(new if new is not None else _flip(data, op))
    else:
        target.write_bytes(_flip(data, op))
    return f"{op.kind} {rel} (b={op.b}, pos={op.pos})"


def copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
