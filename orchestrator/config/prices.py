"""Reference prices of big models: what a token costs, so savings read in dollars even offline.

A job's own big-model cost comes from its provider's ``price_per_1m_*`` fields (zero for the
embedded model and for self-hosted endpoints). To compare a job with its all-big-model baseline
(:mod:`orchestrator.graph.baseline`) in money anyway, both sides are priced with one *reference* model
from :data:`REFERENCE_PRICES`: list prices per million tokens, in USD, as published by the vendors
(:data:`PRICES_AS_OF`; they change, check before quoting them).

Pick one by name with ``ORCHESTRATOR_REPORT_PRICE_MODEL`` (default :data:`DEFAULT_PRICE_MODEL`),
or give your own as ``NAME=PROMPT/COMPLETION`` (USD per million tokens)::

    >>> price_of("gpt-4o-mini").cost_usd(1_000_000, 1_000_000)
    0.75
    >>> price_of("my-vllm=0.05/0.10")
    Price(model='my-vllm', prompt_per_1m=0.05, completion_per_1m=0.1, source='custom')
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PRICE_MODEL",
    "PRICES_AS_OF",
    "PRICE_MODEL_ENV",
    "REFERENCE_PRICES",
    "Price",
    "default_price",
    "price_of",
]

#: The environment variable naming the reference price (``Settings.report_price_model``).
PRICE_MODEL_ENV = "ORCHESTRATOR_REPORT_PRICE_MODEL"
#: A small, fast hosted model: the class of model a per-item LLM integration would use.
DEFAULT_PRICE_MODEL = "gpt-4o-mini"
#: When the list prices below were taken.
PRICES_AS_OF = "2025-06"


@dataclass(frozen=True)
class Price:
    """USD per million prompt and completion tokens of one model."""

    model: str
    prompt_per_1m: float
    completion_per_1m: float
    #: ``list price, 2025-06`` for the table's entries, ``custom`` for ``NAME=P/C``
    source: str = f"list price, {PRICES_AS_OF}"

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.prompt_per_1m + completion_tokens * self.completion_per_1m
        ) / 1e6

    def describe(self) -> str:
        """``gpt-4o-mini at $0.15 / $0.60 per 1M prompt / completion tokens (list price, ...)``."""
        return (
            f"{self.model} at {_dollars(self.prompt_per_1m)} / {_dollars(self.completion_per_1m)} "
            f"per 1M prompt / completion tokens ({self.source})"
        )


def _dollars(value: float) -> str:
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


REFERENCE_PRICES: dict[str, Price] = {
    p.model: p
    for p in (
        Price("gpt-4o-mini", 0.15, 0.60),
        Price("gpt-4.1-mini", 0.40, 1.60),
        Price("gpt-4.1-nano", 0.10, 0.40),
        Price("gpt-4o", 2.50, 10.00),
        Price("gpt-4.1", 2.00, 8.00),
        Price("claude-3-5-haiku", 0.80, 4.00),
        Price("claude-sonnet-4", 3.00, 15.00),
        Price("gemini-2.0-flash", 0.10, 0.40),
    )
}


@functools.lru_cache(maxsize=64)
def price_of(name: str) -> Price:
    """The reference price called ``name``, or a custom ``NAME=PROMPT/COMPLETION``.

    Raises ValueError naming the known models when ``name`` is neither.
    """
    model, sep, rates = name.partition("=")
    if sep:
        prompt, slash, completion = rates.partition("/")
        try:
            if not slash or not model.strip():
                raise ValueError
            return Price(model.strip(), float(prompt), float(completion), source="custom")
        except ValueError:
            raise ValueError(
                f"custom price {name!r} must look like NAME=PROMPT/COMPLETION "
                "(USD per million tokens), e.g. my-model=0.20/0.80"
            ) from None
    found = REFERENCE_PRICES.get(name.strip())
    if found is None:
        known = ", ".join(REFERENCE_PRICES)
        raise ValueError(
            f"no reference price for {name!r}; known: {known} (or NAME=PROMPT/COMPLETION)"
        )
    return found


def default_price() -> Price:
    """The price named by ``ORCHESTRATOR_REPORT_PRICE_MODEL`` (default ``gpt-4o-mini``).

    Read straight from the environment, not through :class:`~orchestrator.config.Settings`: the
    ledger asks for it on every chunk and real-time turn, and building Settings takes a millisecond.
    """
    return price_of(os.environ.get(PRICE_MODEL_ENV) or DEFAULT_PRICE_MODEL)
