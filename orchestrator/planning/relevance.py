"""Which deliverables a task asks for, read by a sentence encoder: one request at a time.

A tiny embedded model cannot be trusted to pick the outputs a task asks for (SmolLM2-135M answered
"nothing fits" for plain tasks and picked an intent for "translate each turn to French"). A
sentence encoder can match requests to what the registry returns: the task is split into its
requests ("classify what the customer wants", "detect opt-out requests", "decide the next
action"), each request is compared with each deliverable's card (its name, the output's
description, the skill's first sentence), and a request takes the deliverable it matches best when
the match is clear. Two deliverables matching one request almost equally is a real choice: the
planner asks the model between them. A task none of whose requests matches anything is one the
registry cannot serve.

The thresholds were chosen on the planning benchmark's tasks (``bench/planner.py``), not on the
hidden ones; they are cosine similarities of all-MiniLM-L6-v2 embeddings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.planning.catalog import Deliverable

#: texts -> unit vectors, one row each (:class:`orchestrator.llm.encoder.SentenceEncoder`)
Encode = Callable[[Sequence[str]], Any]

__all__ = ["Selection", "pick_fields", "requests_of", "select"]

#: a request's best match at or above this is taken
MATCH = 0.45
#: a second deliverable within this of the best makes the request a real choice
MARGIN = 0.06
_SPLIT = re.compile(
    r"[,;:.!?]|\band then\b|\bthen\b|\band\b|\balso\b|\bplus\b|\bas well as\b"
    r"|\bso that\b|\bso we\b|\bin order to\b|\bbecause\b"
)
#: leading phrases that say where the work runs, not what it returns ("for each call turn")
_SCOPE = re.compile(
    r"^(?:for|on|in|over|across)\s+(?:each|every|all|the)\b|^per\b|^each\b"
    r"|^(?:during|given|using|based on|from)\b"
)


@dataclass
class Selection:
    """The deliverables a task asks for, the near-ties left to the model, the requests unmatched."""

    chosen: list[str] = field(default_factory=list)
    #: request -> the deliverable ids it matches almost equally (ask the model)
    ties: dict[str, list[str]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


def requests_of(task: str) -> list[str]:
    """The task's requests: clauses with a scope phrase ("for each turn") dropped."""
    clauses = [c.strip() for c in _SPLIT.split(task.lower())]
    return [c for c in clauses if len(c.split()) >= 2 and not _SCOPE.match(c)] or [task.lower()]


def select(task: str, deliverables: Sequence[Deliverable], encode: Encode) -> Selection:
    """Match each request of ``task`` with the deliverables (see the module docstring)."""
    import numpy as np

    cards = [_card_texts(d) for d in deliverables]
    owner = np.repeat(np.arange(len(deliverables)), [len(c) for c in cards])
    card_vectors = encode([text for texts in cards for text in texts])
    requests = requests_of(task)
    scores = encode(requests) @ card_vectors.T
    selection = Selection()
    for request, row in zip(requests, scores, strict=True):
        best = np.array([row[owner == i].max() for i in range(len(deliverables))])
        order = np.argsort(-best)
        top = order[0]
        if best[top] < MATCH:
            selection.unmatched.append(request)
            continue
        close = [i for i in order if best[top] - best[i] <= MARGIN and best[i] >= MATCH]
        if len({deliverables[i].producer.name for i in close}) == 1:
            close = [top]  # two outputs of one step: not a choice of what runs
        if len(close) > 1:
            selection.ties[request] = [deliverables[i].id for i in close]
        elif deliverables[top].id not in selection.chosen:
            selection.chosen.append(deliverables[top].id)
    return selection


def _card_texts(deliverable: Deliverable) -> list[str]:
    """What a deliverable is called and does, as short texts (a request matches its best one)."""
    skill = deliverable.producer.skill.skill_cls
    # what the skill makes, before it says what from (its inputs are not what a job returns)
    first = re.split(r"(?<=[.;])\s|\s\(|,? from ", skill.description.strip(), maxsplit=1)[0]
    words = deliverable.id.replace("_", " ").replace(".", " ")
    parts = [p for p in re.split(r"[:;]\s|\s\(", deliverable.description) if len(p.split()) >= 3]
    texts = [words, deliverable.description, *parts[:2], first]
    if deliverable.meaning.members:
        texts.append(f"{words}: {', '.join(deliverable.meaning.members[:30])}")
    return [t for t in texts if t.strip()]


#: a field name matching an input this much better than every other candidate settles the choice
FIELD_MARGIN = 0.15


def pick_fields(
    questions: Mapping[str, Sequence[str]],
    inputs: Mapping[str, str],
    fields: Mapping[str, str],
    encode: Encode,
) -> dict[str, str]:
    """Settle wiring questions whose candidates are all job fields by their names: the field whose
    name (and description) reads most like the input (``customer_line`` for "what the customer
    said", not ``agent_name``), when it leads every other by :data:`FIELD_MARGIN`.

    ``inputs``: question key -> the input's name and description; ``fields``: field -> its name
    and description. Questions left open go to the model.
    """
    import numpy as np

    settled: dict[str, str] = {}
    for key, options in questions.items():
        names = [o.partition(".")[2] for o in options]
        if not all(o.startswith("input.") for o in options) or len(options) < 2:
            continue
        vectors = encode([inputs[key], *(fields[n] for n in names)])
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores)
        if scores[order[0]] - scores[order[1]] >= FIELD_MARGIN:
            settled[key] = options[int(order[0])]
    return settled
