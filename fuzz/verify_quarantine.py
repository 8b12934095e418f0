"""drbdverify's quarantine records (verify/names.py, verify/jsonobj.py): the name parser and the
bounded loader for a record's body. Input: the object name, a newline, the body. Documented
error: FormatError.
"""

import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import jsonobj, names
    from verify.errors import FormatError

import _common
import _revert_verify


def test_one_input(data: bytes) -> None:
    name, _, body = data.partition(b"\n")
    parsed = names.parse_quarantine_name(name.decode("utf-8", "replace"))
    if parsed is not None:
        bytes.fromhex(parsed[0])
        bytes.fromhex(parsed[1])
    try:
        jsonobj.load_json_object(body, "quarantine record")
    except FormatError as exc:
        _common.one_line_str(exc)


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_verify.revert)
    sys.exit(0)
