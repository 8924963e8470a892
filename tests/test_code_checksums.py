"""A build record covers the skill's code as well as its artifacts (issue #16): a skill.py changed
after the build fails verification, naming the command that rebuilds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import ArtifactError
from orchestrator.learning.build import is_current
from orchestrator.registry.build_record import (
    BUILD_RECORD_FILENAME,
    code_files,
    load_build_record,
    record_build,
    verify_artifacts,
)
from orchestrator.registry.manifest import load_manifest

SKILL_PY = "class Tickets:\n    name = 'tickets'\n    version = '1.0.0'\n"


def make_skill(root: Path, *, code: list[str] | None = None) -> Path:
    """``<root>/myskills/tickets``: a manifest, its module, a helper, one built artifact."""
    folder = root / "myskills" / "tickets"
    (folder / "artifacts").mkdir(parents=True)
    (folder / "skill.py").write_text(SKILL_PY)
    (folder / "features.py").write_text("WORDS = 2\n")
    (folder / "artifacts" / "model.bin").write_bytes(b"weights")
    manifest = {
        "name": "tickets",
        "version": "1.0.0",
        "entrypoint": "myskills.tickets.skill:Tickets",
        "aliases": ["prod"],
        "train": "python -m myskills.tickets.train",
        "inputs": {"code": code if code is not None else ["myskills/tickets/features.py"]},
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    record_build(folder, ["model.bin"], {"accuracy": 0.9})
    return folder


def _verify(folder: Path) -> None:
    manifest = load_manifest(folder)
    verify_artifacts(folder, manifest, load_build_record(folder, manifest))


def test_the_record_holds_the_entrypoint_module_and_the_code_list(tmp_path):
    folder = make_skill(tmp_path)
    record = load_build_record(folder)
    assert set(record.code) == {"skill.py", "features.py"}  # from the folder: renames keep them
    files = code_files(folder, load_manifest(folder))
    assert files == ["myskills/tickets/features.py", "myskills/tickets/skill.py"]
    _verify(folder)  # nothing changed: fine


def test_a_changed_skill_py_fails_verify_and_says_to_rebuild(tmp_path):
    folder = make_skill(tmp_path, code=[])  # skill.py is not even in the manifest's code list
    (folder / "skill.py").write_text(SKILL_PY + "    threshold = 0.1\n")
    with pytest.raises(ArtifactError) as caught:
        _verify(folder)
    message = str(caught.value)
    assert "myskills/tickets/skill.py changed since it was built" in message
    assert "orchestrator skills build tickets" in message
    assert "changed since it was built" in (is_current(folder, load_manifest(folder)) or "")


def test_a_changed_or_missing_file_of_the_code_list_fails_verify(tmp_path):
    folder = make_skill(tmp_path)
    (folder / "features.py").write_text("WORDS = 3\n")
    with pytest.raises(ArtifactError, match=r"features\.py changed"):
        _verify(folder)
    (folder / "features.py").unlink()
    with pytest.raises(ArtifactError, match=r"features\.py is missing"):
        _verify(folder)


def test_a_record_from_before_code_checksums_is_checked_against_its_inputs(tmp_path):
    folder = make_skill(tmp_path, code=["myskills/tickets/skill.py"])
    path = folder / "artifacts" / BUILD_RECORD_FILENAME
    raw = json.loads(path.read_text())
    del raw["code"]  # what an older build wrote: the code's sha256 only under inputs.code
    path.write_text(json.dumps(raw))
    _verify(folder)
    (folder / "skill.py").write_text(SKILL_PY + "# edited\n")
    with pytest.raises(ArtifactError, match=r"skill\.py changed since it was built"):
        _verify(folder)
