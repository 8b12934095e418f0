"""drbdbackup's index file parser (format.md sections 8 and 17), for a repository of 1 MiB
chunks and fanout 4096. Documented error: ValueError (JsonObjectError). Oracle: every accepted
entry within the format's bounds.
"""

import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import index

import _common
import _revert_product

CHUNK, FANOUT = 1 << 20, 4096


def test_one_input(data: bytes) -> None:
    try:
        packs = index.decode_index(data, chunk_size=CHUNK, fanout=FANOUT)
    except ValueError as exc:
        _common.one_line_str(exc)
        return
    for entries in packs.values():
        for e in entries:
            bound = _common.format_max_plain(e.kind, CHUNK, FANOUT)
            _common.hold(e.plain_length, bound, "index plain_length")
            _common.hold(e.length, e.plain_length + 29, "index stored length")


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_product.revert)
    sys.exit(0)
