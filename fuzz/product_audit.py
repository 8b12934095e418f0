"""drbdbackup's audit entry parser (format.md sections 12 and 17), for the entry's own seq.
Documented error: ValueError (JsonObjectError).
"""

import re
import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import audit

import _common
import _revert_product

SEQ = re.compile(rb'"seq":\s*(\d{1,9})')


def test_one_input(data: bytes) -> None:
    m = SEQ.search(data)
    seq = int(m.group(1)) if m else 1
    try:
        audit.parse_entry(data, seq)
    except ValueError as exc:
        _common.one_line_str(exc)


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_product.revert)
    sys.exit(0)
