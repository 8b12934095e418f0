"""Fixtures for the verifier tests."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from vhelpers import Fixture, make_fixture  # noqa: E402


@pytest.fixture(params=[False, True], ids=["plain", "encrypted"])
def fx(request: pytest.FixtureRequest, tmp_path: Any) -> Fixture:
    return make_fixture(tmp_path, request.param)


@pytest.fixture
def plain_fx(tmp_path: Any) -> Fixture:
    return make_fixture(tmp_path, False)
