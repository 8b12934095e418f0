"""What every harness shares (standard library and atheris only, so verify harnesses stay free of
drbdbackup): the structure-aware mutator, the format's bounds the oracles hold results against,
and the entry point.

A harness calls `run(test_one_input, kind, revert)`: `kind` ("json" or "binary") picks the
structural mutations mixed into libFuzzer's own; `revert(names)` is called with the bounds named
in FUZZ_DISABLE_BOUNDS (test-only: `plain_length`, `depth`) to put the pre-fix behaviour back in
this process, so a test can show the harness re-finds the bug the bound fixed.
"""

from __future__ import annotations

import json
import os
import random
import struct
import sys
from collections.abc import Callable
from typing import Any

ENV_DISABLE = "FUZZ_DISABLE_BOUNDS"
MIB = 1 << 20


class BoundBreach(AssertionError):
    """A reader produced or accepted more than the format's limits allow (a memory bug)."""


def config_of(selector: int) -> tuple[int, int]:
    """(chunk_size, tree_fanout) of a repository, from one input byte (seeds carry their own)."""
    return 1 << (16 + selector % 7), (2, 4, 16, 4096, 1 << 16)[(selector // 7) % 5]


def selector_of(chunk_size: int, fanout: int) -> int:
    """The byte config_of maps to (chunk_size, fanout)."""
    return (chunk_size.bit_length() - 17) + 7 * (2, 4, 16, 4096, 1 << 16).index(fanout)


def format_max_plain(kind: int, chunk_size: int, fanout: int) -> int:
    """docs/format.md section 17, written here from the document: a data blob holds at most one
    chunk, a tree blob at most one full node."""
    return chunk_size if kind == 0 else 12 + 32 * fanout


def hold(produced: int, limit: int, what: str) -> None:
    """The memory oracle: raise BoundBreach when a reader produced more than `limit` bytes."""
    if produced > limit:
        raise BoundBreach(f"{what}: {produced} bytes, above the format's bound of {limit}")


# ---- structure-aware mutations -------------------------------------------------------------

_WRONG: list[Any] = [None, True, False, 0, -1, 1.5, 2**31, 2**32, 2**64, -(2**63), "", "x" * 70,
                     "..", "a/b", "\u0000", [], {}, [1], {"a": 1}, "0" * 64, 4_000_000_000]


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(doc, dict):
        for k, v in list(doc.items())[:64]:
            out += _paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:64]):
            out += _paths(v, (*path, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return doc


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


_HOLE = "\u0000fuzz-nest\u0000"


def mutate_json(doc: Any, rnd: random.Random) -> bytes:
    """One structural change, serialized: wrong type, nest (sometimes thousands deep, spliced in
    as text so no encoder recurses), inflate a number, drop or duplicate a member, swap values."""
    path = rnd.choice(_paths(doc))
    value = _get(doc, path)
    op = rnd.randrange(7)
    if op == 1:
        depth = rnd.choice((1, 2, 8, 33, 40, 3000, 20000))
        inner = json.dumps(value)
        text = json.dumps(_replace(doc, path, _HOLE))
        return text.replace(json.dumps(_HOLE), "[" * depth + inner + "]" * depth, 1).encode()
    if op == 2 and isinstance(value, int) and not isinstance(value, bool):
        doc = _replace(doc, path, rnd.choice((value * 2**20, value + 1, value - 1, -value,
                                               2**32 - 1, 2**32, 2**63)))
    elif op == 3 and path:
        del _get(doc, path[:-1])[path[-1]]
    elif op == 4 and isinstance(value, list) and value:
        value.append(rnd.choice(value))
    elif op == 5:
        other = _get(doc, rnd.choice(_paths(doc)))
        doc = _replace(doc, path, json.loads(json.dumps(other)) if other is not doc else value)
    elif op == 6 and isinstance(value, dict):
        value[rnd.choice(("extra", "format", "id", "seq", "kind"))] = rnd.choice(_WRONG)
    else:
        doc = _replace(doc, path, rnd.choice(_WRONG))
    return json.dumps(doc).encode()


_INTERESTING = (0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 4_000_000_000, 49,
                12, 16, 4096, 65536)


def mutate_binary(data: bytes, rnd: random.Random) -> bytes:
    """Overwrite a little-endian u8/u32/u64 with an interesting value (lengths, counts, offsets),
    truncate, or duplicate a range."""
    buf = bytearray(data)
    if not buf:
        return bytes(rnd.randrange(256) for _ in range(16))
    op = rnd.randrange(4)
    pos = rnd.randrange(len(buf))
    if op == 0:
        fmt = rnd.choice(("<B", "<I", "<Q"))
        width = struct.calcsize(fmt)
        value = rnd.choice(_INTERESTING) % (1 << (8 * width))
        buf[pos : pos + width] = struct.pack(fmt, value)
    elif op == 1:
        del buf[pos:]
    elif op == 2:
        end = min(len(buf), pos + rnd.randrange(1, 128))
        buf[pos:pos] = buf[pos:end]
    else:
        buf[pos] ^= 1 << rnd.randrange(8)
    return bytes(buf)


def _custom_mutator(kind: str, header: int) -> Callable[[bytes, int, int], bytes]:
    import atheris

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rnd = random.Random(seed)
        if rnd.random() < 0.3:
            out = None
            if kind == "json":
                try:
                    out = mutate_json(json.loads(data), rnd)
                except (ValueError, RecursionError, TypeError, IndexError, KeyError):
                    out = None
            elif header and len(data) >= header and rnd.random() < 0.5:
                pos = rnd.randrange(header)  # a field the harness reads as the repository's
                out = data[:pos] + bytes([rnd.randrange(256)]) + data[pos + 1 :]
            else:
                out = mutate_binary(data, rnd)
            if out is not None and len(out) <= max_size:
                return out
        return atheris.Mutate(data, max_size)

    return mutator


def run(test_one_input: Callable[[bytes], None], kind: str,
        revert: Callable[[set[str]], None] | None = None, *, header: int = 0) -> None:
    """Revert the bounds named in FUZZ_DISABLE_BOUNDS (tests only), then fuzz with sys.argv.

    `header`: how many leading bytes of a binary input are fields the harness prepends (the
    repository's config selector, a TOC entry's kind and lengths); the structural mutator
    rewrites them often, as a hostile writer would."""
    import atheris

    disabled = {b for b in os.environ.get(ENV_DISABLE, "").split(",") if b}
    if disabled and revert is not None:
        revert(disabled)
    sys.setrecursionlimit(1000)
    atheris.Setup(sys.argv, test_one_input, custom_mutator=_custom_mutator(kind, header))
    atheris.Fuzz()


def one_line_str(value: Any) -> None:
    """An error message must be one line (the tools print it as their error line), no longer
    than the largest small object it may quote (64 KiB: config, key file, lock)."""
    text = str(value)
    if "\n" in text or len(text) > 70_000:
        raise AssertionError(f"error message is not one short line: {text[:200]!r}")
