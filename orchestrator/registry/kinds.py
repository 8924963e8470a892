"""Generic skill classes for skills trained from a CSV (``orchestrator skills train``).

A trained skill is a folder, like every skill::

    skills/tickets/
      manifest.yaml     name, version, aliases, the CSV pinned by sha256, calibration settings
      skill.json        the skill's configuration: kind, labels, input fields and their CSV columns
      skill.py          three generated lines: ``Tickets = load_skill_class(<skill.json>, ...)``
      artifacts/        model.onnx, val.csv, build.json (sha256s, metrics, the calibration)

The class is built from ``skill.json`` by :func:`load_skill_class`, on top of one of two generic
bases: :class:`TextClassifier` (one text field; TF-IDF + logistic regression in the ONNX graph) and
:class:`TabularClassifier` (numeric and categorical fields, one ONNX input each). Both output the
predicted label, typed as a ``Literal`` of the labels seen in training, so the contract (and the
big model's prompt, when an item escalates) names every allowed answer; the confidence is the
probability of that label.

Example::

    cls = load_skill_class("skills/tickets/skill.json", "skills.tickets.skill", "Tickets")
    skill = cls(artifacts_dir="skills/tickets/artifacts")
    skill.ensure_setup()
    skill.predict({"text": ["my card was charged twice"]}).outputs["label"]  # ['billing']
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, create_model

from orchestrator.errors import SkillDefinitionError
from orchestrator.ports import Meaning
from orchestrator.skill import RESERVED_OUTPUTS, Batch, OnnxClassifierSkill, Predictions

if TYPE_CHECKING:
    from orchestrator.embedding.shared import Embedder

__all__ = [
    "CONFIG_FILE",
    "KINDS",
    "EmbeddingClassifier",
    "TabularClassifier",
    "TextClassifier",
    "class_name",
    "field_name",
    "load_skill_class",
    "normalize_text",
]

#: The configuration file in a trained skill's folder.
CONFIG_FILE = "skill.json"

_WHITESPACE = re.compile(r"\s+")
_NOT_IDENTIFIER = re.compile(r"[^0-9a-z_]+")


def normalize_text(text: Any) -> str:
    """Lowercase and collapse whitespace runs (what the TF-IDF graph expects; ``None`` -> "").

    The same normalization as ``skills.turn_intent``: the scikit-learn char n-grams collapse
    whitespace runs and ONNX Runtime's tokenizer does not, so both sides get normalized text.
    """
    if text is None:
        return ""
    return _WHITESPACE.sub(" ", str(text).lower())


def field_name(column: str) -> str:
    """A CSV column name as a field name: lowercase snake_case identifier (``"Ticket Text"`` ->
    ``ticket_text``, ``"2nd"`` -> ``f_2nd``)."""
    name = _NOT_IDENTIFIER.sub("_", column.strip().lower()).strip("_") or "field"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"f_{name}"
    return name


def class_name(skill_name: str) -> str:
    """``support_tickets`` -> ``SupportTickets``."""
    return "".join(part.capitalize() for part in skill_name.split("_") if part) or "Skill"


class TextClassifier(OnnxClassifierSkill):
    """A text classifier from ``orchestrator skills train text-classifier``: one text field in, one
    label out; word 1-2 + char 2-5 TF-IDF and logistic regression, all inside the ONNX graph."""

    kind: ClassVar[str] = "text-classifier"
    #: The Input field holding the text.
    text_field: ClassVar[str] = "text"
    #: Every label the model can answer, in the model's class order.
    labels: ClassVar[tuple[str, ...]] = ()
    relative_cost: ClassVar[float] = 2.0

    def feed(self, batch: Batch) -> dict[str, Any]:
        texts = [normalize_text(text) for text in batch[self.text_field]]
        return {"text": np.array(texts, dtype=object).reshape(-1, 1)}

    def predict(self, batch: Batch) -> Predictions:
        if len(batch[self.text_field]) == 0:
            return Predictions({self.label_field: []}, np.zeros(0, dtype=np.float32))
        return super().predict(batch)


class EmbeddingClassifier(OnnxClassifierSkill):
    """The second tier ``skills train text-classifier`` adds: the shared sentence encoder's
    embedding of the text through a logistic-regression head, pooled with the first tier's
    TF-IDF probabilities (the two err on different texts): ``softmax(w * log(tfidf) + (1 - w) *
    log(head))`` (``pooling`` in ``skill.json``; a tier without it was trained with the linear
    ``w * tfidf + (1 - w) * head``, and its ``model.onnx`` computes that).

    ``model.onnx`` is the head (inputs ``embedding`` and ``tfidf``, output the blended
    probabilities), ``tfidf.onnx`` the first tier's model it was trained with. The encoder is not
    in the folder: the skill names it (``encoder``: name and sha256) and runs on the one shared
    instance (:func:`orchestrator.embedding.shared.shared_encoder`)."""

    kind: ClassVar[str] = "embedding-classifier"
    text_field: ClassVar[str] = "text"
    labels: ClassVar[tuple[str, ...]] = ()
    #: The encoder the head was trained on: its name and its ONNX file's sha256.
    encoder_name: ClassVar[str] = ""
    encoder_sha256: ClassVar[str] = ""
    relative_cost: ClassVar[float] = 20.0
    #: The encoder pads to the longest text of a call: bounded calls bound its activations.
    max_batch: ClassVar[int | None] = 256

    encoder: Embedder
    tfidf: Any

    def setup(self) -> None:
        """The head's session, the first tier's TF-IDF session, the shared encoder (checked)."""
        import onnxruntime as ort

        from orchestrator.embedding.shared import pinned_encoder

        super().setup()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        self.tfidf = ort.InferenceSession(
            str(self.artifact("tfidf.onnx")),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.encoder = pinned_encoder(
            self.artifact("tfidf.onnx").parent, self.encoder_name, self.encoder_sha256, self.name
        )

    def feed(self, batch: Batch) -> dict[str, Any]:
        texts = ["" if t is None else str(t) for t in batch[self.text_field]]
        normalized = np.array([normalize_text(t) for t in texts], dtype=object).reshape(-1, 1)
        tfidf = np.asarray(self.tfidf.run(None, {"text": normalized})[1], dtype=np.float32)
        return {"embedding": self.encoder.embed(texts), "tfidf": tfidf}

    def decode(self, outputs: list[Any], batch: Batch) -> Predictions:
        probabilities = np.asarray(outputs[0])
        labels = [self.labels[i] for i in probabilities.argmax(axis=1)]
        return Predictions({self.label_field: labels}, probabilities.max(axis=1))

    def predict(self, batch: Batch) -> Predictions:
        if len(batch[self.text_field]) == 0:
            return Predictions({self.label_field: []}, np.zeros(0, dtype=np.float32))
        return super().predict(batch)


class TabularClassifier(OnnxClassifierSkill):
    """A classifier of rows from ``orchestrator skills train tabular-classifier``: numeric and
    categorical fields in (one ONNX input each), one label out."""

    kind: ClassVar[str] = "tabular-classifier"
    #: Input fields in model order, each ``(field, "number" | "category")``.
    features: ClassVar[tuple[tuple[str, str], ...]] = ()
    labels: ClassVar[tuple[str, ...]] = ()
    relative_cost: ClassVar[float] = 2.0

    def feed(self, batch: Batch) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for field, kind in self.features:
            values = batch[field]
            if kind == "number":
                column = np.array([to_number(v) for v in values], dtype=np.float32)
            else:
                column = np.array([to_category(v) for v in values], dtype=object)
            columns[field] = column.reshape(-1, 1)
        return columns

    def predict(self, batch: Batch) -> Predictions:
        if not self.features or len(batch[self.features[0][0]]) == 0:
            return Predictions({self.label_field: []}, np.zeros(0, dtype=np.float32))
        return super().predict(batch)


def to_number(value: Any) -> float:
    """A cell as a float; empty or missing -> NaN (the model imputes the training median)."""
    if value is None:
        return float("nan")
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return float("nan")
    return float(value)


def to_category(value: Any) -> str:
    """A cell as a category; missing -> "" (its own category, as in training)."""
    return "" if value is None else str(value).strip()


#: kind -> base class.
KINDS: dict[str, type[OnnxClassifierSkill]] = {
    TextClassifier.kind: TextClassifier,
    TabularClassifier.kind: TabularClassifier,
    EmbeddingClassifier.kind: EmbeddingClassifier,
}


def load_skill_class(
    config_path: Path | str, module: str, qualname: str
) -> type[OnnxClassifierSkill]:
    """Build the skill class a trained skill's ``skill.json`` describes.

    ``module`` and ``qualname`` are where the class lives (the generated ``skill.py`` passes its
    ``__name__`` and the name it binds), so pickling, e.g. to a Ray worker, finds it by reference.
    """
    path = Path(config_path)
    return build_skill_class(read_skill_config(path), module, qualname, where=str(path))


def read_skill_config(path: Path) -> dict[str, Any]:
    """A generated skill's parsed ``skill.json`` (SkillDefinitionError when unreadable)."""
    try:
        config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SkillDefinitionError(f"cannot read skill configuration {path}: {exc}") from None
    return config


def build_skill_class(
    config: dict[str, Any], module: str, qualname: str, *, where: str = "skill.json"
) -> type[OnnxClassifierSkill]:
    """The skill class for a parsed ``skill.json`` (see :func:`load_skill_class`)."""
    try:
        base = KINDS[config["kind"]]
        labels = tuple(str(label) for label in config["labels"])
        label_field = str(config["label_field"])
        inputs = [(str(f["field"]), str(f["type"])) for f in config["inputs"]]
        name, version = str(config["name"]), str(config["version"])
        description = str(config["description"])
    except (KeyError, TypeError) as exc:
        raise SkillDefinitionError(
            f"{where}: missing or malformed key {exc}; retrain the skill to rewrite it"
        ) from None
    if len(labels) < 2:
        raise SkillDefinitionError(f"{where}: a classifier needs at least 2 labels")
    if label_field in RESERVED_OUTPUTS:
        raise SkillDefinitionError(f"{where}: label field {label_field!r} is reserved")
    input_model = _input_model(inputs, config, module, f"{qualname}.Input")
    # a later tier answers in the first tier's label set, so the two fold into one producer
    label_set = str(config.get("label_set", name))
    output_model = _output_model(label_set, label_field, labels, module, f"{qualname}.Output")
    attrs: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": description,
        "Input": input_model,
        "Output": output_model,
        "label_field": label_field,
        "labels": labels,
        "__module__": module,
        "__qualname__": qualname,
        "__doc__": description,
    }
    if base is TextClassifier or base is EmbeddingClassifier:
        if len(inputs) != 1:
            raise SkillDefinitionError(f"{where}: a text classifier has exactly one input field")
        attrs["text_field"] = inputs[0][0]
    if base is EmbeddingClassifier:
        try:
            attrs["encoder_name"] = str(config["encoder"]["name"])
            attrs["encoder_sha256"] = str(config["encoder"]["sha256"])
        except (KeyError, TypeError):
            raise SkillDefinitionError(
                f"{where}: an embedding classifier names its encoder (name, sha256); retrain it"
            ) from None
    elif base is TabularClassifier:
        attrs["features"] = tuple(inputs)
    cls: type[OnnxClassifierSkill] = type(qualname.rpartition(".")[2], (base,), attrs)
    cls.check_definition()
    return cls


_TYPES: dict[str, type] = {"text": str, "number": float, "category": str}


def _input_model(
    inputs: Sequence[tuple[str, str]], config: dict[str, Any], module: str, qualname: str
) -> type[BaseModel]:
    columns = {str(f["field"]): str(f.get("column", f["field"])) for f in config["inputs"]}
    fields: dict[str, Any] = {}
    for field, kind in inputs:
        if kind not in _TYPES:
            raise SkillDefinitionError(f"input field {field!r} has unknown type {kind!r}")
        what = {
            "text": "the text to classify",
            "number": "a number (missing: the training median is used)",
            "category": "a category (a value never seen in training counts as none of them)",
        }[kind]
        annotation: Any = Annotated[str, Meaning.text()] if kind == "text" else _TYPES[kind]
        fields[field] = (annotation, Field(description=f"{what}; CSV column {columns[field]!r}"))
    model: type[BaseModel] = create_model(
        qualname.rpartition(".")[2] or "Input", __module__=module, **fields
    )
    model.__qualname__ = qualname
    return model


def _output_model(
    skill_name: str, label_field: str, labels: tuple[str, ...], module: str, qualname: str
) -> type[BaseModel]:
    """One label out, of the label set named after the skill: its labels feed only inputs that
    take that set (or a superset declared so), never an input that takes another model's labels."""
    shown = ", ".join(labels[:20]) + (f", ... ({len(labels)} labels)" if len(labels) > 20 else "")
    annotation: Any = Annotated[Literal[labels], Meaning.labels(skill_name, labels)]
    fields: dict[str, Any] = {
        label_field: (annotation, Field(description=f"the predicted label: one of {shown}"))
    }
    model: type[BaseModel] = create_model("Output", __module__=module, **fields)
    model.__qualname__ = qualname
    return model
