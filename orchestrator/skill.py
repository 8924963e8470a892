"""The skill contract: what every small model, rule set or legacy model looks like to the runtime.

A skill has a ``name``, a ``version``, a ``description`` (the planner reads it), a pydantic ``Input``
and ``Output`` model, and a *batched* :meth:`Skill.predict` that takes columns and returns one output
per item plus a confidence in ``[0, 1]``. Models load late, in :meth:`Skill.setup`, which runs once on
the worker that hosts the skill, so importing a skill module needs no model and no cluster.

Batches are columns, not rows: ``{"text": ["hi", "stop calling me"]}``. A Ray call costs about a
millisecond and a small model microseconds per item, so the runtime always sends whole columns.

Example::

    class Greeting(BaseModel):
        text: str

    class IsGreeting(BaseModel):
        greeting: bool

    @skill(name="is_greeting", version="1.0.0", description="True when the turn is a greeting.")
    def is_greeting(item: Greeting) -> IsGreeting:
        return IsGreeting(greeting=item.text.lower().startswith(("hi", "hello")))
"""

from __future__ import annotations

import inspect
import re
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from orchestrator.errors import ArtifactError, SkillDefinitionError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "RESERVED_OUTPUTS",
    "Batch",
    "OnnxClassifierSkill",
    "OnnxSkill",
    "Predictions",
    "Skill",
    "SklearnSkill",
    "skill",
]

#: Columns of a batch: field name -> one value per item, all of the same length.
Batch = Mapping[str, Sequence[Any]]

#: Output names the runtime adds to every step; a skill's Output model may not use them.
RESERVED_OUTPUTS = frozenset({"confidence", "escalate", "error", "answered_by", "degraded"})

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")


@dataclass(frozen=True, slots=True)
class Predictions:
    """What a skill returns for one batch.

    ``outputs`` maps each field of the skill's ``Output`` model to one value per item; ``confidence``
    holds one float in ``[0, 1]`` per item (a list or a numpy array). ``errors``, when given, holds
    ``None`` for items that succeeded and a message for items that failed alone (their outputs and
    confidence are ignored), so one bad item never sinks its batch.
    """

    outputs: Mapping[str, Sequence[Any]]
    confidence: Sequence[float] | np.ndarray
    errors: Sequence[str | None] | None = None

    def __len__(self) -> int:
        return len(self.confidence)


class Skill(ABC):
    """Base class of every skill. Subclass it, or use a backend below, or the :func:`skill` decorator.

    Class attributes declare the contract; instances hold loaded models. The registry creates one
    instance per worker and calls :meth:`setup` once before the first :meth:`predict`.
    """

    #: Registry name, lowercase snake_case; graphs refer to the skill by it.
    name: ClassVar[str]
    #: Version string of this implementation and its artifacts (e.g. ``"1.0.0"``).
    version: ClassVar[str] = "0.1.0"
    #: What the skill does, in one or two sentences; the planner reads it to choose skills.
    description: ClassVar[str]
    #: Pydantic model of one input item; its fields are the columns :meth:`predict` receives.
    Input: ClassVar[type[BaseModel]]
    #: Pydantic model of one output item; its fields are the columns :meth:`predict` returns.
    Output: ClassVar[type[BaseModel]]
    #: Which kind of model runs inside (``"onnx"``, ``"sklearn"``, ``"python"``); shown to operators.
    backend: ClassVar[str] = "python"
    #: CPUs a worker hosting this skill reserves on the cluster (fractions share a core).
    num_cpus: ClassVar[float] = 0.25
    #: Relative cost of one item, for the planner (1 = a rule; a big model is about 10,000).
    relative_cost: ClassVar[float] = 1.0
    #: Most items per predict call; bigger step batches are split (bounds a model's working
    #: memory: an ONNX session keeps buffers sized for the largest batch it has seen). None: no cap.
    max_batch: ClassVar[int | None] = None

    def __init__(self, artifacts_dir: Path | str | None = None) -> None:
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self._is_set_up = False

    def setup(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Load models and other heavy state. Runs once per worker, before the first predict."""

    @abstractmethod
    def predict(self, batch: Batch) -> Predictions:
        """Predict one output and a confidence for every item of ``batch`` (columns of ``Input``)."""

    @classmethod
    def output_labels(cls) -> dict[str, list[str]]:
        """The closed set of values of each categorical output, e.g. ``{"intent": [...]}``.

        The big model is asked to choose among them when it answers for this skill. The default
        reads ``Literal`` annotations; classifiers whose labels live in data override it.
        """
        found: dict[str, list[str]] = {}
        for name, info in cls.Output.model_fields.items():
            if typing.get_origin(info.annotation) is typing.Literal:
                found[name] = [str(v) for v in typing.get_args(info.annotation)]
        return found

    def ensure_setup(self) -> None:
        """Call :meth:`setup` if it has not run yet on this instance."""
        if not self._is_set_up:
            self.setup()
            self._is_set_up = True

    def artifact(self, filename: str) -> Path:
        """Path of one of this skill's artifact files; raises ArtifactError if it is not there."""
        if self.artifacts_dir is None:
            raise ArtifactError(
                f"skill {self.name!r} needs artifact {filename!r} but has no artifacts folder; "
                "register it from its skills/<name>/ folder or pass artifacts_dir"
            )
        path = self.artifacts_dir / filename
        if not path.is_file():
            raise ArtifactError(
                f"skill {self.name!r} artifact {path} is missing; "
                f"build it with `orchestrator skills build {self.name}`"
            )
        return path

    @classmethod
    def check_definition(cls) -> None:
        """Raise SkillDefinitionError if the class does not honour the skill contract."""
        where = f"skill class {cls.__qualname__}"
        for attr in ("name", "description", "Input", "Output"):
            if not hasattr(cls, attr):
                raise SkillDefinitionError(
                    f"{where} has no {attr!r}; declare it as a class attribute"
                )
        if not _NAME.match(cls.name):
            raise SkillDefinitionError(
                f"{where}: name {cls.name!r} must be lowercase snake_case (e.g. 'turn_intent')"
            )
        if not _VERSION.match(cls.version):
            raise SkillDefinitionError(f"{where}: version {cls.version!r} is not a version string")
        if not cls.description.strip():
            raise SkillDefinitionError(f"{where}: description is empty; the planner needs one")
        for attr in ("Input", "Output"):
            model = getattr(cls, attr)
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise SkillDefinitionError(f"{where}: {attr} must be a pydantic BaseModel subclass")
        clash = RESERVED_OUTPUTS & set(cls.Output.model_fields)
        if clash:
            raise SkillDefinitionError(
                f"{where}: Output fields {sorted(clash)} are reserved by the runtime; rename them"
            )
        if not cls.Output.model_fields:
            raise SkillDefinitionError(f"{where}: Output has no fields")


class OnnxSkill(Skill):
    """A skill backed by an ONNX Runtime session opened from an artifact in :meth:`setup`.

    Subclasses say how to turn columns into ONNX inputs (:meth:`feed`) and ONNX outputs into
    :class:`Predictions` (:meth:`decode`). A CUDA provider is used when onnxruntime offers one.
    """

    backend: ClassVar[str] = "onnx"
    #: Artifact file holding the ONNX model.
    model_file: ClassVar[str] = "model.onnx"
    #: Threads per session; 1 keeps several skills on a small machine from fighting over cores.
    intra_op_threads: ClassVar[int] = 1

    session: Any

    def setup(self) -> None:
        """Open the ONNX Runtime session (late, on the worker)."""
        import onnxruntime as ort  # heavy: imported on the worker only

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(
            str(self.artifact(self.model_file)), sess_options=options, providers=providers
        )

    @abstractmethod
    def feed(self, batch: Batch) -> dict[str, Any]:
        """ONNX input name -> numpy array, built from the batch's columns."""

    @abstractmethod
    def decode(self, outputs: list[Any], batch: Batch) -> Predictions:
        """Turn the session's outputs (in graph output order) into predictions."""

    def predict(self, batch: Batch) -> Predictions:
        return self.decode(self.session.run(None, self.feed(batch)), batch)


class OnnxClassifierSkill(OnnxSkill):
    """An skl2onnx-exported classifier (``zipmap`` off): outputs are labels and class probabilities.

    The predicted class goes to the Output field named by ``label_field``; the confidence is the
    probability of that class.
    """

    #: Output field that receives the predicted class.
    label_field: ClassVar[str] = "label"

    def decode(self, outputs: list[Any], batch: Batch) -> Predictions:
        labels, probabilities = outputs[0], outputs[1]
        return Predictions({self.label_field: labels.tolist()}, probabilities.max(axis=1))


class SklearnSkill(Skill):
    """A skill backed by a fitted scikit-learn classifier saved with joblib.

    The artifact is checked against its manifest's sha256 before it is loaded (joblib files are
    pickles: only load files you trust). By default the features are the Input fields as columns.
    """

    backend: ClassVar[str] = "sklearn"
    #: Artifact file holding the joblib-dumped estimator.
    model_file: ClassVar[str] = "model.joblib"
    #: Output field that receives the predicted class.
    label_field: ClassVar[str] = "label"

    model: Any

    def setup(self) -> None:
        """Load the estimator (late, on the worker)."""
        import joblib

        self.model = joblib.load(self.artifact(self.model_file))

    def features(self, batch: Batch) -> Any:
        """The estimator's input for a batch: the single column, or a 2-D array of all columns."""
        fields = list(self.Input.model_fields)
        if len(fields) == 1:
            return list(batch[fields[0]])
        import numpy as np

        return np.column_stack([np.asarray(batch[f]) for f in fields])

    def predict(self, batch: Batch) -> Predictions:
        probabilities = self.model.predict_proba(self.features(batch))
        best = probabilities.argmax(axis=1)
        labels = self.model.classes_[best].tolist()
        return Predictions({self.label_field: labels}, probabilities.max(axis=1))


def skill(
    *,
    name: str | None = None,
    version: str = "0.1.0",
    description: str | None = None,
    batched: bool = False,
    input: type[BaseModel] | None = None,  # noqa: A002 - mirrors the contract's wording
    output: type[BaseModel] | None = None,
    num_cpus: float = 0.25,
    relative_cost: float = 1.0,
) -> Callable[[Callable[..., Any]], type[Skill]]:
    """Turn a plain function (rules, or a wrapper around a legacy model) into a Skill class.

    Per item (default): ``fn(item: Input) -> Output`` or ``-> tuple[Output, float]``; the types come
    from the annotations and the confidence is 1.0 unless returned. An exception in one item becomes
    that item's error and the rest of the batch goes on.

    Batched (``batched=True``): ``fn(batch: Batch) -> Predictions`` with ``input`` and ``output``
    given explicitly; use it on hot paths, where per-item pydantic objects would cost more than the
    model.
    """

    def wrap(fn: Callable[..., Any]) -> type[Skill]:
        in_model, out_model = input, output
        if not batched:
            in_model, out_model = _models_from_annotations(fn, in_model, out_model)
        if in_model is None or out_model is None:
            raise SkillDefinitionError(
                f"batched skill function {fn.__qualname__} needs input= and output= models"
            )
        attrs: dict[str, Any] = {
            "name": name or fn.__name__,
            "version": version,
            "description": description or inspect.getdoc(fn) or "",
            "Input": in_model,
            "Output": out_model,
            "num_cpus": num_cpus,
            "relative_cost": relative_cost,
            "function": staticmethod(fn),
            "__module__": fn.__module__,
            "__qualname__": fn.__qualname__,
            "__doc__": inspect.getdoc(fn),
        }
        base = _BatchedFunctionSkill if batched else _ItemFunctionSkill
        cls: type[Skill] = type(fn.__name__, (base,), attrs)
        cls.check_definition()
        return cls

    return wrap


class _BatchedFunctionSkill(Skill):
    function: ClassVar[Callable[[Batch], Predictions]]

    def predict(self, batch: Batch) -> Predictions:
        return type(self).function(batch)


class _ItemFunctionSkill(Skill):
    function: ClassVar[Callable[[BaseModel], Any]]

    def predict(self, batch: Batch) -> Predictions:
        fields = list(self.Input.model_fields)
        out_fields = list(self.Output.model_fields)
        size = len(batch[fields[0]]) if fields else 0
        outputs: dict[str, list[Any]] = {f: [None] * size for f in out_fields}
        confidence = [0.0] * size
        errors: list[str | None] = [None] * size
        for i in range(size):
            try:
                item = self.Input.model_validate({f: batch[f][i] for f in fields})
                result, conf = _split_result(type(self).function(item))
                if not isinstance(result, self.Output):
                    result = self.Output.model_validate(result)
            except Exception as exc:  # noqa: BLE001 - one bad item must not sink the batch
                errors[i] = f"{type(exc).__name__}: {exc}"
                continue
            for f in out_fields:
                outputs[f][i] = getattr(result, f)
            confidence[i] = conf
        return Predictions(outputs, confidence, errors if any(errors) else None)


def _split_result(result: Any) -> tuple[Any, float]:
    if isinstance(result, tuple):
        value, confidence = result
        return value, float(confidence)
    return result, 1.0


def _models_from_annotations(
    fn: Callable[..., Any], in_model: type[BaseModel] | None, out_model: type[BaseModel] | None
) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    hints = typing.get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters if p != "return"]
    if in_model is None and params:
        in_model = hints.get(params[0])
    if out_model is None:
        ret = hints.get("return")
        if typing.get_origin(ret) is tuple:
            ret = typing.get_args(ret)[0]
        out_model = ret
    if not (isinstance(in_model, type) and issubclass(in_model, BaseModel)):
        raise SkillDefinitionError(
            f"skill function {fn.__qualname__}: annotate its one parameter with a pydantic model"
        )
    if not (isinstance(out_model, type) and issubclass(out_model, BaseModel)):
        raise SkillDefinitionError(
            f"skill function {fn.__qualname__}: annotate its return as a pydantic model "
            "(or tuple[Model, float] to return a confidence)"
        )
    return in_model, out_model
