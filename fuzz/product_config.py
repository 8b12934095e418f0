"""drbdbackup's repository config parser (format.md sections 3 and 17). Documented errors:
IntegrityError, UnsupportedFormat. Oracle: an accepted config's chunk size and fanout lie within
the format's limits.
"""

import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.errors import IntegrityError, UnsupportedFormat
    from drbdbackup.repo import config

import _common
import _revert_product


def test_one_input(data: bytes) -> None:
    try:
        cfg = config.parse_config(data, "fuzz")
    except (IntegrityError, UnsupportedFormat) as exc:
        _common.one_line_str(exc)
        return
    cs, fanout = cfg["chunk_size"], cfg.get("tree_fanout", 4096)
    if not (65536 <= cs <= 4 << 20 and cs & (cs - 1) == 0 and 2 <= fanout <= 65536):
        raise _common.BoundBreach(f"config accepted with chunk_size {cs} fanout {fanout}")


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_product.revert)
    sys.exit(0)
