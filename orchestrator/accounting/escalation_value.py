"""Whether escalating a skill's unsure items to a provider pays: the rule, on paired answers.

A bake-off (``orchestrator providers eval``) gives the small model and a provider the same labelled
items (those the small tiers are unsure of) and counts, per item, who got it right. On those
paired answers:

- **pays**: the provider's accuracy exceeds the small model's by at least ``margin`` *and* a
  one-sided exact sign test (McNemar's exact test on the items where exactly one of the two is
  right) rejects "the provider is no better" at ``alpha`` (default 0.05). The margin alone is not
  enough: on 20 items one lucky answer is 5 points;
- **worse**: the provider's accuracy is *not above* the small model's (equal counts as worse:
  a call that changes nothing is pure cost). The cascade then keeps the small answers, flagged,
  unless escalation is forced;
- **unproven**: above, but not by the margin or not significantly. The cascade escalates as it
  always did; the bake-off does not recommend the provider.

An item the provider did not answer (error, time-out, budget) counts as wrong for the provider:
a provider that fails is not worth its calls, whatever it would have said.

Example::

    >>> score = PairedScore(items=40, small_correct=10, provider_correct=24,
    ...                     provider_only=16, small_only=2)
    >>> verdict(score, margin=0.05), round(score.gain, 3), round(score.p_value, 4)
    ('pays', 0.35, 0.0007)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MARGIN",
    "HELD_REASON",
    "PairedScore",
    "Verdict",
    "verdict",
]

Verdict = Literal["pays", "unproven", "worse"]

#: the accuracy gain a provider must show over the small model to be recommended
DEFAULT_MARGIN = 0.05
#: the sign test's level: the chance of calling a no-better provider "pays" is at most this
DEFAULT_ALPHA = 0.05
#: why an unsure item kept the small answer although the job escalates (results, ledger)
HELD_REASON = "provider_measured_worse"


@dataclass(frozen=True)
class PairedScore:
    """Who got which of the same ``items`` right: the small model, the provider, or both."""

    items: int
    small_correct: int
    provider_correct: int
    #: items only the provider got right
    provider_only: int
    #: items only the small model got right
    small_only: int

    def __post_init__(self) -> None:
        if self.provider_correct - self.small_correct != self.provider_only - self.small_only:
            raise ValueError(
                "inconsistent paired counts: the discordant items must explain the gap"
            )

    def __add__(self, other: PairedScore) -> PairedScore:
        """Both samples' paired answers pooled (a bake-off's and the reviewers', say)."""
        return PairedScore(
            self.items + other.items,
            self.small_correct + other.small_correct,
            self.provider_correct + other.provider_correct,
            self.provider_only + other.provider_only,
            self.small_only + other.small_only,
        )

    @classmethod
    def of(cls, pairs: Iterable[tuple[bool, bool]]) -> PairedScore:
        """Counted from ``(small right, provider right)`` per item."""
        pairs = list(pairs)
        return cls(
            len(pairs),
            sum(s for s, _ in pairs),
            sum(p for _, p in pairs),
            sum(p and not s for s, p in pairs),
            sum(s and not p for s, p in pairs),
        )

    @property
    def small_accuracy(self) -> float:
        return self.small_correct / self.items if self.items else 0.0

    @property
    def provider_accuracy(self) -> float:
        return self.provider_correct / self.items if self.items else 0.0

    @property
    def gain(self) -> float:
        """Provider accuracy minus small-model accuracy on the same items."""
        return self.provider_accuracy - self.small_accuracy

    @property
    def p_value(self) -> float:
        """One-sided exact sign test: P(at least ``provider_only`` of the discordant items go the
        provider's way | both equally good). 1.0 when no item is discordant."""
        n = self.provider_only + self.small_only
        if n == 0:
            return 1.0
        tail = sum(math.comb(n, k) for k in range(self.provider_only, n + 1))
        return float(tail / 2**n)


def verdict(
    score: PairedScore, margin: float = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA
) -> Verdict:
    """``pays``, ``unproven`` or ``worse`` (see the module docstring for the rule)."""
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if score.items == 0:
        return "unproven"  # nothing measured: no evidence either way
    if score.provider_only <= score.small_only:
        return "worse"
    # compare counts, not floats: a gain of exactly the margin counts as reaching it
    reaches = score.provider_only - score.small_only >= margin * score.items - 1e-9
    return "pays" if reaches and score.p_value <= alpha else "unproven"
