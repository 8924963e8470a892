"""Human review: the review desk that holds and finishes items, and its queue of tickets.

Imports planning, graph and below; the runtime imports it.
"""

from typing import Any

__all__ = ["HeldItem", "ReviewDesk"]


def __getattr__(name: str) -> Any:
    # lazily, so importing the queue alone does not load the desk (and LangGraph)
    if name in __all__:
        from orchestrator.review import desk

        return getattr(desk, name)
    raise AttributeError(f"module 'orchestrator.review' has no attribute {name!r}")
