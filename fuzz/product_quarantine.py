"""drbdbackup's quarantine records (format.md section 11): their names as a listing yields them
(the product reads names only) and the bounded loader for their bodies.

Input: the object name, a newline, the body. Documented error: ValueError (JsonObjectError).
"""

import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import records, repository

import _common
import _revert_product


def test_one_input(data: bytes) -> None:
    name, _, body = data.partition(b"\n")
    text = name.decode("utf-8", "replace")
    m = repository.QUARANTINE_RE.match(text.rsplit("/", 1)[-1])
    if m:
        bytes.fromhex(m.group("blob"))
        bytes.fromhex(m.group("pack"))
    try:
        records.load_json_object(body, "quarantine record")
    except ValueError as exc:
        _common.one_line_str(exc)


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_product.revert)
    sys.exit(0)
