"""Fixtures for the cluster tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import MtimeLocalBackend


@pytest.fixture
def local(tmp_path: Path) -> MtimeLocalBackend:
    return MtimeLocalBackend(str(tmp_path / "repo"), durable=False)
