"""A backup whose audit append fails reports that the generation itself is stored."""

from __future__ import annotations

import os

import pytest

from drbdbackup.engine.pipeline import ReadOptions
from drbdbackup.errors import DiskFull
from drbdbackup.ops.backup import BackupOptions, FileBackup, back_up_file
from drbdbackup.ops.session import RepositoryRef
from drbdbackup.repo.repository import Repository
from tests.doubles.faulty import FaultyBackend
from tests.doubles.memory import MemoryBackend


def test_audit_failure_names_the_stored_generation(tmp_path) -> None:
    src = tmp_path / "v.img"
    src.write_bytes(os.urandom(3 << 20))
    backend = FaultyBackend(MemoryBackend())
    repo = Repository.init(backend, chunk_size=1 << 20)
    backend.add_fault("put", r"^audit/", DiskFull("no space left in the repository"), repeat=1)
    with pytest.raises(DiskFull, match=r"generation \S+ of v is stored, but its audit entry"):
        back_up_file(RepositoryRef.of(backend), FileBackup(str(src), "v"),
                     BackupOptions(read=ReadOptions(progress=False)))
    assert len(repo.generation_ids("v")) == 1  # the generation exists: its record was written
