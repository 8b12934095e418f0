"""verify/ and ci/ never import drbdbackup; CI templates are valid YAML."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["verify", "ci"])
def test_no_drbdbackup_imports(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            assert not any(n == "drbdbackup" or n.startswith("drbdbackup.") for n in names), (
                f"{path} imports {names}")


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_templates_are_yaml(name: str) -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((ROOT / "ci" / "templates" / name).read_text())
    text = (ROOT / "ci" / "templates" / name).read_text()
    assert isinstance(doc, dict) and "ci.restore_drill" in text and "--junit" in text
