"""The paper copy of the master key (repo/keyfiles.py, format.md section 4.1): pure, no I/O."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drbdbackup.errors import UsageError
from drbdbackup.repo.crypto import MasterKey
from drbdbackup.repo.keyfiles import paper_copy, parse_paper

keys = st.binary(min_size=64, max_size=64).map(lambda b: MasterKey(b[:32], b[32:]))
repo_ids = st.binary(min_size=32, max_size=32).map(bytes.hex)


@settings(max_examples=100, deadline=None)
@given(keys, repo_ids)
def test_round_trip_with_the_layout_of_the_format(master: MasterKey, repo_id: str) -> None:
    text = paper_copy(repo_id, master)
    assert parse_paper(text) == (repo_id, master)
    assert parse_paper(text.upper().replace("  ", "   ")) == (repo_id, master)  # retyped loosely
    lines = text.splitlines()
    assert lines[1] == f"repository {repo_id}" and len(lines) == 7
    for n, line in enumerate(lines[2:6], start=1):  # as section 4.1 says, computed apart
        data = master.raw()[16 * (n - 1):16 * n]
        assert line == f"{n}: {' '.join(data[i:i + 2].hex() for i in range(0, 16, 2))}  " \
                       f"{hashlib.sha256(bytes([n]) + data).hexdigest()[:4]}"
    assert lines[6] == f"check {hashlib.sha256(repo_id.encode() + master.raw()).hexdigest()[:16]}"


@settings(max_examples=100, deadline=None)
@given(keys, repo_ids, st.integers(0, 3), st.integers(0, 31), st.integers(1, 15))
def test_any_mistyped_digit_is_found(master: MasterKey, repo_id: str, line: int, digit: int,
                                     delta: int) -> None:
    lines = paper_copy(repo_id, master).splitlines()
    hexpos = [i for i, c in enumerate(lines[2 + line]) if c in "0123456789abcdef"][1:33]  # skip "n"
    pos = hexpos[digit]
    old = lines[2 + line][pos]
    lines[2 + line] = lines[2 + line][:pos] + f"{(int(old, 16) + delta) % 16:x}" + lines[2 + line][pos + 1:]
    with pytest.raises(UsageError):
        parse_paper("\n".join(lines))


def test_incomplete_or_reordered_copies_are_refused() -> None:
    text = paper_copy("ab" * 32, MasterKey(bytes(32), bytes(range(32))))
    lines = text.splitlines()
    for broken in (lines[:5] + lines[6:], lines[:2] + [lines[3], lines[2]] + lines[4:], lines[:6]):
        with pytest.raises(UsageError):
            parse_paper("\n".join(broken))
