"""The registry: versions, aliases, folders with manifests and checksums, the allow-list."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel
from toy_skills import Text, Verdict, shout

from orchestrator import (
    ArtifactError,
    Predictions,
    Registry,
    Skill,
    SkillVersion,
    UnknownSkillError,
)
from orchestrator.errors import SkillDefinitionError
from orchestrator.registry.build_record import record_build


def _version(n: str) -> type[Skill]:
    class Echo(Skill):
        name = "echo"
        version = n
        description = f"echo v{n}"
        Input = Text
        Output = Verdict

        def predict(self, batch):
            return Predictions({"verdict": list(batch["text"])}, [1.0] * len(batch["text"]))

    return Echo


def test_resolve_by_name_alias_and_version():
    registry = Registry()
    v1, v2, v10 = _version("1.0.0"), _version("2.0.0"), _version("10.0.0")
    registry.register(v1, aliases=["prod"])
    registry.register(v2, aliases=["canary"])
    registry.register(v10)
    assert registry.resolve("echo").skill_cls is v1  # prod wins over newest
    assert registry.resolve("echo@canary").skill_cls is v2
    assert registry.resolve("echo@10.0.0").key == "echo@10.0.0"
    registry.set_alias("echo", "prod", "2.0.0")  # promote
    assert registry.resolve("echo@prod").skill_cls is v2
    assert [v.version for v in registry.versions("echo")] == ["1.0.0", "2.0.0", "10.0.0"]


def test_without_prod_alias_the_newest_version_wins():
    registry = Registry()
    registry.register(_version("2.0.0"))
    registry.register(_version("10.0.0"))
    assert registry.resolve("echo").version == "10.0.0"


def test_only_registered_skills_resolve():
    registry = Registry()
    registry.register(shout)
    assert "shout" in registry and "shell" not in registry
    with pytest.raises(UnknownSkillError, match="unknown skill 'os_system'"):
        registry.resolve("os_system")
    with pytest.raises(UnknownSkillError, match="no such version"):
        registry.set_alias("shout", "prod", "9.9.9")


def test_same_version_twice_with_another_class_is_refused():
    registry = Registry()
    registry.register(_version("1.0.0"))
    with pytest.raises(SkillDefinitionError, match="bump the version"):
        registry.register(_version("1.0.0"))


def test_register_works_as_a_class_decorator():
    registry = Registry()

    @registry.register
    class Up(Skill):
        name = "up"
        description = "upper"
        Input = Text
        Output = Verdict

        def predict(self, batch):
            return Predictions({"verdict": [t.upper() for t in batch["text"]]}, [1.0])

    assert isinstance(registry.resolve("up"), SkillVersion)
    assert registry.resolve("up").card()["input_schema"]["properties"]["text"]["type"] == "string"


def test_contract_violations_are_named():
    class NoDescription(Skill):
        name = "nodesc"
        description = " "
        Input = Text
        Output = Verdict

        def predict(self, batch): ...

    class Reserved(BaseModel):
        confidence: float

    class ReservedOut(Skill):
        name = "reserved"
        description = "uses a reserved output"
        Input = Text
        Output = Reserved

        def predict(self, batch): ...

    class BadName(NoDescription):
        name = "Bad-Name"
        description = "x"

    registry = Registry()
    with pytest.raises(SkillDefinitionError, match="description is empty"):
        registry.register(NoDescription)
    with pytest.raises(SkillDefinitionError, match="reserved"):
        registry.register(ReservedOut)
    with pytest.raises(SkillDefinitionError, match="snake_case"):
        registry.register(BadName)


MODULE = """
from pydantic import BaseModel
from orchestrator import Predictions, Skill

class In(BaseModel):
    text: str

class Out(BaseModel):
    word: str

class FirstWord(Skill):
    name = "first_word"
    version = "0.2.0"
    description = "First word of the text, read from a vocabulary artifact."
    Input = In
    Output = Out

    def setup(self):
        self.vocab = set(self.artifact("vocab.txt").read_text().split())

    def predict(self, batch):
        words = [t.split()[0] if t.split() else "" for t in batch["text"]]
        return Predictions({"word": words}, [1.0 if w in self.vocab else 0.1 for w in words])
"""


@pytest.fixture
def skill_folder(tmp_path):
    root = tmp_path / "myskills"
    folder = root / "first_word"
    (folder / "artifacts").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    (folder / "skill.py").write_text(MODULE)
    (folder / "manifest.yaml").write_text(
        textwrap.dedent(
            """\
            name: first_word
            version: 0.2.0
            entrypoint: myskills.first_word.skill:FirstWord
            aliases: [prod]
            """
        )
    )
    (folder / "artifacts" / "vocab.txt").write_text("hello stop")
    record_build(folder, ["vocab.txt"], {"vocab_size": 2})
    return root


def test_folder_skill_loads_with_checksummed_artifacts(skill_folder):
    registry = Registry.from_folder(skill_folder)
    version = registry.resolve("first_word@prod")
    assert version.build.metrics == {"vocab_size": 2}
    assert version.problem() is None
    skill = version.create()
    skill.ensure_setup()
    preds = skill.predict({"text": ["hello there", "why"]})
    assert list(preds.outputs["word"]) == ["hello", "why"]
    assert list(preds.confidence) == [1.0, 0.1]


def test_staging_and_hidden_folders_are_never_skills(skill_folder):
    """A training run stages its skill in a hidden folder; half-written or left by a crash, it
    must not break the registry (or the build, or `skills list`)."""
    from orchestrator.learning.build import build_skills

    for leftover in (".first_word.training", "__pycache__", ".git"):
        (skill_folder / leftover).mkdir()
        (skill_folder / leftover / "manifest.yaml").write_text("name: [half written\n")
    registry = Registry.from_folder(skill_folder)
    assert registry.names() == ["first_word"]
    outcomes = build_skills(skill_folder, ["first_word"], graphs_dir=skill_folder / "none")
    assert [o.name for o in outcomes] == ["first_word"]


def test_altered_artifact_is_refused(skill_folder):
    (skill_folder / "first_word" / "artifacts" / "vocab.txt").write_text("tampered")
    version = Registry.from_folder(skill_folder).resolve("first_word")
    with pytest.raises(ArtifactError, match=r"sha256 .* its build record says"):
        version.verify()


def test_missing_artifact_says_how_to_build(skill_folder):
    (skill_folder / "first_word" / "artifacts" / "vocab.txt").unlink()
    problem = Registry.from_folder(skill_folder).resolve("first_word").problem()
    assert "orchestrator skills build first_word" in problem


def test_manifest_must_agree_with_the_class(skill_folder):
    manifest = skill_folder / "first_word" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 0.2.0", "version: 0.3.0"))
    with pytest.raises(SkillDefinitionError, match="make them agree"):
        Registry.from_folder(skill_folder)


def test_malformed_manifest(skill_folder):
    (skill_folder / "first_word" / "manifest.yaml").write_text("name: first_word\n")
    with pytest.raises(SkillDefinitionError, match="malformed"):
        Registry.from_folder(skill_folder)


def test_a_rebuild_keeps_a_calibration_only_while_the_artifacts_are_the_same(skill_folder):
    from orchestrator.registry.build_record import artifacts_fingerprint, update_build_record

    folder = skill_folder / "first_word"
    record = record_build(folder, ["vocab.txt"], {"vocab_size": 2})
    calibration = {"threshold": 0.7, "artifacts_fingerprint": artifacts_fingerprint(record)}
    update_build_record(folder, calibration=calibration)
    assert record_build(folder, ["vocab.txt"], {"vocab_size": 2}).calibration == calibration
    (folder / "artifacts" / "vocab.txt").write_text("hello stop please")
    assert record_build(folder, ["vocab.txt"], {"vocab_size": 3}).calibration is None
