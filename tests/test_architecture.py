"""Stages import only the stages before them: load -> check -> compile -> (runtime) -> cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src" / "clarion"
ORDER = ["diagnostics", "load", "check", "compile", "runtime", "cli"]


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "clarion" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ORDER else None


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "stage", [s for s in ORDER if (SRC / s).exists() or (SRC / f"{s}.py").exists()]
)
def test_stage_imports_only_earlier_stages(stage: str) -> None:
    allowed = set(ORDER[: ORDER.index(stage) + 1])
    files = (
        [SRC / f"{stage}.py"]
        if (SRC / f"{stage}.py").exists()
        else list((SRC / stage).rglob("*.py"))
    )
    for path in files:
        for module in imports(path):
            target = stage_of(module)
            assert target is None or target in allowed, f"{path.relative_to(ROOT)} imports {module}"


def test_diagnostics_imports_no_clarion_module() -> None:
    assert not [m for m in imports(SRC / "diagnostics.py") if m.startswith("clarion")]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2, "the quick start is exactly two commands"
    for command in commands:
        assert command in ci, f"CI does not run: {command}"
