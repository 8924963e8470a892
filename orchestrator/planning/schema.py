"""The JSON schemas a plan is asked in, built from the catalog so a bad answer cannot be spelled.

Planning asks at most two kinds of question, each with its own schema:

1. **what the job returns** (:func:`returns_schema`): a list drawn from the deliverables the
   registry can produce from the job's fields, or ``nothing_fits`` when the task asks for
   something none of them is;
2. **the real choices left** (:func:`choices_schema`): one entry per input with more than one
   source whose meaning fits, each answerable only with those sources.

A provider that enforces schemas (llama.cpp with a grammar, vLLM, OpenAI) can then only answer
with registered deliverables and fitting sources; every plan is still validated and dry-run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = ["NOTHING_FITS", "choices_schema", "returns_schema"]

#: The answer for a task none of the deliverables serves (→ ``plan_impossible``).
NOTHING_FITS = "nothing_fits"


def returns_schema(deliverables: Sequence[str]) -> type[BaseModel]:
    """``{"returns": [...]}``: which deliverables the job returns."""
    names = _enum([*deliverables, NOTHING_FITS])
    model: type[BaseModel] = create_model(
        "JobReturns",
        __config__=ConfigDict(extra="forbid"),
        returns=(list[names], Field(min_length=1, max_length=len(deliverables) + 1)),  # type: ignore[valid-type]
    )
    return model


def choices_schema(questions: Mapping[str, Sequence[str]]) -> type[BaseModel]:
    """``{"<step>.<input>": "<source>", ...}``: one fitting source per open question."""
    fields: dict[str, Any] = {
        key.replace(".", "__"): (_enum(list(options)), Field(alias=key))
        for key, options in questions.items()
    }
    model: type[BaseModel] = create_model(
        "WiringChoices", __config__=ConfigDict(extra="forbid", populate_by_name=True), **fields
    )
    return model


def _enum(values: list[str]) -> Any:
    """``Literal[values...]`` built at run time: an enum in the JSON schema providers enforce."""
    return Literal.__getitem__(tuple(values))
