"""drbdbackup's generation record parser (format.md sections 9 and 17). Documented error:
ValueError (JsonObjectError). Oracles: chunk_count <= 2^32, tree_height in [1, 64].
"""

import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import records

import _common
import _revert_product


def test_one_input(data: bytes) -> None:
    try:
        rec = records.GenerationRecord.from_json(data)
    except ValueError as exc:
        _common.one_line_str(exc)
        return
    _common.hold(rec.chunk_count, 1 << 32, "chunk_count")
    _common.hold(rec.tree_height, 64, "tree_height")
    if rec.tree_height < 1:
        raise _common.BoundBreach(f"tree_height {rec.tree_height} below 1 accepted")


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_product.revert)
    sys.exit(0)
