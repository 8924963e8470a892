"""The reply schema of one batched big-model call: ``{"answers": {"<index>": item, ...}}``.

Shared by the cascade's label-fenced answers and the grounded KB answers
(:mod:`orchestrator.graph.cascade`, :mod:`orchestrator.graph.grounding`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

__all__ = ["answers_envelope"]


def answers_envelope(
    name: str, keys: dict[str, Any], by_index_name: str | None = None
) -> type[BaseModel]:
    """``{"answers": {"<index>": item, ...}}``: the reply schema of one batched call, from its
    per-item fields (``item_<i>``, aliased to the item's index)."""
    by_index: Any = create_model(
        by_index_name or f"{name}_by_index",
        __config__=ConfigDict(extra="forbid", populate_by_name=True),
        **keys,
    )
    model: type[BaseModel] = create_model(
        name, __config__=ConfigDict(extra="forbid"), answers=(by_index, ...)
    )
    return model
