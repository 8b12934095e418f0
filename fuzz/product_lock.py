"""drbdbackup's lock reader (format.md sections 10 and 17): the input is the body of one lock
object; list_locks reads it (an unreadable lock is reported, never raised) and is_stale judges it.
Documented errors: none (list_locks turns every bad lock into an UnreadableLock).
"""

import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import locks

import _common
import _revert_product

NAME = "locks/" + "ab" * 16


class OneObject:
    """The Backend calls list_locks makes, over one stored object."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def list(self, prefix: str) -> list[str]:
        return [NAME, "locks/not-a-lock"]

    def size(self, name: str) -> int:
        return len(self.data)

    def get(self, name: str) -> bytes:
        return self.data


def test_one_input(data: bytes) -> None:
    for _name, lock in locks.list_locks(OneObject(data)):  # type: ignore[arg-type]
        locks.is_stale(lock, "fuzzhost")
        if isinstance(lock, locks.UnreadableLock):
            _common.one_line_str(lock["problem"])


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_product.revert)
    sys.exit(0)
