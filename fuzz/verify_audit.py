"""drbdverify's audit entry parser (verify/format.py), for the entry's own seq. Documented
error: FormatError.
"""

import re
import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import format as vformat
    from verify.errors import FormatError

import _common
import _revert_verify

SEQ = re.compile(rb'"seq":\s*(\d{1,9})')


def test_one_input(data: bytes) -> None:
    m = SEQ.search(data)
    seq = int(m.group(1)) if m else 1
    try:
        vformat.parse_audit_entry(data, seq)
    except FormatError as exc:
        _common.one_line_str(exc)


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_verify.revert)
    sys.exit(0)
