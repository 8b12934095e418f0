"""drbdverify's lock reader (verify/lock.py): read_lock on one stored object, then is_stale.
Documented errors: FormatError (ObjectTooLarge is one).
"""

import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import lock
    from verify.errors import FormatError

import _common
import _revert_verify

NOW = datetime(2026, 12, 3, tzinfo=UTC)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def pread(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass


class OneObject:
    """The Store calls read_lock makes, over one stored object."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def open(self, name: str) -> Reader:
        return Reader(self.data)

    def get(self, name: str) -> bytes:
        return self.data


def test_one_input(data: bytes) -> None:
    try:
        body = lock.read_lock(OneObject(data), "locks/" + "ab" * 16)  # type: ignore[arg-type]
    except FormatError as exc:
        _common.one_line_str(exc)
        return
    lock.is_stale(body, NOW, "fuzzhost")


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_verify.revert)
    sys.exit(0)
