"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return tmp_path / "repo"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`tox` runs `-n 2 --dist loadgroup`), the multi-agent cluster tests run
    one after another on one worker: each starts three agents and an emulator of its own."""
    for item in items:
        if item.nodeid.startswith("tests/agents/"):
            item.add_marker(pytest.mark.xdist_group("agents"))
