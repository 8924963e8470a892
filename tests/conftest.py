"""Shared fixtures: one real local Ray cluster for the whole session, on loopback."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Keep Ray on 127.0.0.1 and out of ~/.ray (see MACHINE_NOTES): set before Ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("ORCHESTRATOR_LOG_FORMAT", "json")
# The store (audit, plan cache, examples) goes to a throwaway folder, never the user's data dir.
os.environ.setdefault("ORCHESTRATOR_DATA_DIR", tempfile.mkdtemp(prefix="orchestrator-tests-"))
# Skills trained into temporary folders use the repo's shared encoder (built once by `make
# skills`), as a project's skills share theirs: no test exports its own copy.
os.environ.setdefault("ORCHESTRATOR_ENCODERS_DIR", str(ROOT / "skills" / "_encoders"))


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster shared by every test that needs one (started once: ~5 s)."""
    import ray

    from orchestrator.executors.ray import connect

    connect(num_cpus=2)  # the runtime's own local start: loopback, driver's sys.path on workers
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def builtin_registry():
    """The registry of the built-in skills, their artifacts built if missing (seconds)."""
    from orchestrator import Registry
    from orchestrator.learning.build import build_skills

    build_skills(ROOT / "skills")
    return Registry.from_folder(ROOT / "skills")


@pytest.fixture
def toy_registry():
    from toy_skills import toy_registry

    return toy_registry()


@pytest.fixture(autouse=True)
def _logging_config_restored():
    """Commands run in-process (CliRunner) configure structlog for the whole process, e.g.
    `orchestrator report` at WARNING: put the configuration back so the next test sees its own."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
