"""Promote and rollback (issue #16): atomic under a lock, and never to a version that is not built
or does not match its build record."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import ArtifactError
from orchestrator.registry.aliases import (
    JOURNAL_FILENAME,
    alias_lock,
    promote,
    rollback,
)
from orchestrator.registry.build_record import record_build
from orchestrator.registry.manifest import load_manifest


def add_version(skills: Path, folder_name: str, version: str, aliases: list[str], built: bool):
    folder = skills / folder_name
    (folder / "artifacts").mkdir(parents=True)
    (folder / "skill.py").write_text(f"VERSION = {version!r}\n")
    (folder / "artifacts" / "model.bin").write_bytes(version.encode())
    manifest = {
        "name": "tickets",
        "version": version,
        "entrypoint": f"skills.{folder_name}.skill:Tickets",
        "aliases": aliases,
        "train": f"python -m skills.{folder_name}.train",
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    if built:
        record_build(folder, ["model.bin"], {})
    return folder


@pytest.fixture
def skills(tmp_path) -> Path:
    root = tmp_path / "skills"
    add_version(root, "tickets", "1.0.0", ["prod"], built=True)
    return root


def _aliases(skills: Path) -> dict[str, list[str]]:
    return {f.name: load_manifest(f).aliases for f in sorted(skills.iterdir()) if f.is_dir()}


def test_a_canary_that_is_not_built_is_refused(skills):
    add_version(skills, "tickets_v1_1_0", "1.1.0", ["canary"], built=False)
    before = _aliases(skills)
    with pytest.raises(ArtifactError) as caught:
        promote("tickets", skills_dir=skills)
    assert "tickets@1.1.0 is not built" in str(caught.value)
    assert "orchestrator skills build tickets" in str(caught.value)
    assert _aliases(skills) == before  # nothing moved


def test_a_canary_whose_artifact_changed_is_refused(skills):
    canary = add_version(skills, "tickets_v1_1_0", "1.1.0", ["canary"], built=True)
    (canary / "artifacts" / "model.bin").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match=r"cannot take .prod.*skills build tickets"):
        promote("tickets", skills_dir=skills)
    assert _aliases(skills)["tickets"] == ["prod"]


def test_promote_then_rollback(skills):
    add_version(skills, "tickets_v1_1_0", "1.1.0", ["canary"], built=True)
    assert promote("tickets", skills_dir=skills)["prod"] == "tickets@1.1.0"
    assert _aliases(skills) == {"tickets": ["previous"], "tickets_v1_1_0": ["prod"]}
    assert rollback("tickets", skills_dir=skills)["prod"] == "tickets@1.0.0"
    assert _aliases(skills) == {"tickets": ["prod"], "tickets_v1_1_0": []}
    assert not (skills / JOURNAL_FILENAME).exists()
    assert not list(skills.glob("*/.manifest.yaml.*"))  # no temporary file left behind


def test_a_move_waits_for_the_lock(skills):
    """Two moves never interleave: a promotion waits while another process holds the lock."""
    add_version(skills, "tickets_v1_1_0", "1.1.0", ["canary"], built=True)
    done: list[dict] = []
    with alias_lock(skills):
        mover = threading.Thread(target=lambda: done.append(promote("tickets", skills_dir=skills)))
        mover.start()
        time.sleep(0.3)
        assert not done and _aliases(skills)["tickets"] == ["prod"]  # waiting
    mover.join(10)
    assert done and done[0]["prod"] == "tickets@1.1.0"


def test_concurrent_promotions_leave_one_prod(skills):
    add_version(skills, "tickets_v1_1_0", "1.1.0", ["canary"], built=True)
    outcomes: list[str] = []

    def move() -> None:
        try:
            outcomes.append(promote("tickets", skills_dir=skills)["prod"])
        except Exception as exc:  # noqa: BLE001 - the loser finds no canary
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=move) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["DistillError"] * 3 + ["tickets@1.1.0"]
    prods = [name for name, aliases in _aliases(skills).items() if "prod" in aliases]
    assert prods == ["tickets_v1_1_0"]


def test_a_move_cut_short_is_finished_by_the_next_lock(skills):
    """A crash between two manifests leaves the journal: whoever takes the lock next applies it."""
    canary = add_version(skills, "tickets_v1_1_0", "1.1.0", ["canary"], built=True)
    journal = {str((skills / "tickets").resolve()): ["previous"], str(canary.resolve()): ["prod"]}
    (skills / JOURNAL_FILENAME).write_text(json.dumps(journal))
    with alias_lock(skills):
        pass
    assert _aliases(skills) == {"tickets": ["previous"], "tickets_v1_1_0": ["prod"]}
    assert not (skills / JOURNAL_FILENAME).exists()
