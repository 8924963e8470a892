"""The package layout: the layer contract catches what it is meant to, and moved modules keep
importing under their old names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "orchestrator", tmp_path / "orchestrator")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + "\n\n" + code + "\n")


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")
def test_the_tree_keeps_the_layer_contract(package_copy: Path):
    result = _lint_imports(package_copy)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")
def test_an_upward_import_inside_a_function_breaks_the_contract(package_copy: Path):
    # the store reaching up to the runtime, hidden in a function body
    _append(
        package_copy / "orchestrator" / "store" / "item.py",
        "def _peek() -> object:\n"
        "    from orchestrator.runtime.runtime import Runtime\n\n"
        "    return Runtime",
    )
    result = _lint_imports(package_copy)
    assert result.returncode != 0
    assert "orchestrator.store.item -> orchestrator.runtime.runtime" in result.stdout


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")
def test_a_cycle_under_type_checking_and_a_framework_import_break_it(package_copy: Path):
    # graph.compiler -> graph.spec already holds; the reverse arrow closes a cycle
    _append(
        package_copy / "orchestrator" / "graph" / "spec.py",
        "from typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n"
        "    from orchestrator.graph.compiler import CompiledGraph  # noqa: F401",
    )
    _append(package_copy / "orchestrator" / "llm" / "pii.py", "import typer  # noqa: F401")
    result = _lint_imports(package_copy)
    assert result.returncode != 0
    out = result.stdout
    assert "No cycles are allowed in orchestrator.graph" in out
    assert "orchestrator.llm is not allowed to import typer" in out


def test_a_moved_module_imports_under_its_old_name_with_a_warning():
    from orchestrator.registry import kinds

    sys.modules.pop("orchestrator.skill_kinds", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import orchestrator.skill_kinds as old
    assert old is kinds  # the same module, so classes stay the same classes
    assert any(
        issubclass(w.category, DeprecationWarning)
        and "orchestrator.registry.kinds" in str(w.message)
        for w in caught
    )


def test_old_module_paths_still_run_as_commands():
    # skill folders trained before the split name `python -m orchestrator.training_cli` in their
    # manifests' train command
    for module in ("orchestrator.training_cli", "orchestrator.cli"):
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-m", module, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "Usage" in out.stdout
