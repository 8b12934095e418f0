"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return tmp_path / "repo"



@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under pytest-xdist (`tox` runs `-n 2`), the multi-agent cluster tests run one after
    another on one worker (each starts three agents and an emulator of its own, with timing
    bounds), while the other tests are spread one by one over the workers. (The xdist_group
    marker would say the same, but xdist 3.8 cannot tag node ids under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class AgentsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/agents/" if nodeid.startswith("tests/agents/") else nodeid

    return AgentsTogether(config, log)
