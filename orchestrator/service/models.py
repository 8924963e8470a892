"""The service's request and response bodies (pydantic), and the OpenAPI of the submit body.

``POST /v1/jobs`` is read by hand (JSON *or* a multipart JSONL upload), so its body is described
here in JSON Schema: exactly one of ``graph`` (an enum of the service's graphs) or ``task`` +
``fields``; the webhook URL pattern names the allowed hosts when a list is configured.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orchestrator.service.problems import PROBLEM

__all__ = [
    "FIELDS_TEXT",
    "GRAPH_NAME",
    "MALFORMED",
    "Health",
    "ItemLine",
    "JobErrorView",
    "JobRequest",
    "JobView",
    "Progress",
    "ResultsPage",
    "SkillVersionView",
    "SkillView",
    "TurnRequest",
    "submit_body",
    "webhook_pattern",
]

GRAPH_NAME = r"^[A-Za-z0-9_-]{1,100}$"
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
FieldType = Literal["str", "int", "float", "bool"]


class JobRequest(BaseModel):
    """A job: a checked-in graph (``graph``) or a task the planner turns into one (``task`` +
    ``fields``), and its items. Exactly one of ``graph`` and ``task``."""

    model_config = ConfigDict(extra="forbid")

    graph: str | None = Field(default=None, pattern=GRAPH_NAME, description="graphs/<graph>.yaml")
    task: str | None = Field(
        default=None, min_length=1, max_length=4000, description="what to do with each item"
    )
    fields: dict[FieldName, FieldType] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="with task: the items' input fields and their types",
    )
    items: list[Any] = Field(
        min_length=1, description="one JSON object per item, each with an 'id' and the inputs"
    )
    webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://[!-~]{1,2000}$",
        description="POSTed the job's final status when it ends",
    )


class TurnRequest(BaseModel):
    """One real-time turn: the graph's input fields, and an optional id echoed back."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(description="the graph's input fields, e.g. {'utterance': ...}")
    id: str | int | None = Field(default=None, description="echoed in the result")


class Progress(BaseModel):
    items_total: int
    items_done: int
    chunks_total: int
    chunks_done: int
    fraction: float


class JobErrorView(BaseModel):
    code: str
    message: str


class JobView(BaseModel):
    """A job's status, progress and ledger."""

    id: str
    graph: str
    task: str | None
    status: Literal["pending", "running", "interrupted", "succeeded", "failed", "cancelled"]
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: Progress
    ledger: dict[str, Any]
    accuracy: float | None
    labelled: int
    kept_accuracy: float | None
    error: JobErrorView | None


class ResultsPage(BaseModel):
    """Results in input order; pass ``next_cursor`` back as ``cursor`` for the next page."""

    job_id: str
    status: str
    results: list[dict[str, Any]] = Field(description="id + outputs + escalate, or id + error")
    next_cursor: int
    complete: bool = Field(description="true: the job ended and no result follows this page")


class ItemLine(BaseModel):
    """One item's result: ``id`` plus the graph's outputs and ``escalate``, or ``id`` + ``error``."""

    model_config = ConfigDict(extra="allow")

    id: Any = None
    escalate: bool | None = None
    error: JobErrorView | None = None


class SkillVersionView(BaseModel):
    version: str
    aliases: list[str]
    backend: str
    status: Literal["ready", "not built"]
    problem: str | None
    description: str
    metrics: dict[str, Any]


class SkillView(BaseModel):
    name: str
    versions: list[SkillVersionView]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# -- OpenAPI of the submit body --------------------------------------------------------------

FIELDS_TEXT = (
    r"^[A-Za-z_]\w{0,63}(:(str|int|float|bool))?(,[A-Za-z_]\w{0,63}(:(str|int|float|bool))?)*$"
)


def webhook_pattern(hosts: list[str]) -> str:
    """The regex a webhook URL must match: only the allowed hosts when they are all plain names
    or addresses (wildcards and networks: any host; the policy checks it on submission)."""
    if any("*" in h or "/" in h for h in hosts):
        names = r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]"
    else:
        names = "|".join(re.escape(h) for h in hosts) or "(?!)"
    return rf"^https?://({names})({_PORT})?(/[!-~]{{0,2000}})?$"


#: ``:1`` to ``:65535``: a URL the schema admits must also parse
_PORT = r":(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"


def submit_body(graphs: list[str], hooks: str) -> dict[str, Any]:
    """Exactly one of graph (one of ``graphs``) or task + fields, as JSON or as a JSONL upload."""
    props = JobRequest.model_json_schema()["properties"]
    items, task, fields = props["items"], props["task"], props["fields"]
    task = {k: v for k, v in task.get("anyOf", [task])[0].items()} | {"description": "the task"}
    fields = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 64,
        "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
        "additionalProperties": {"type": "string", "enum": ["str", "int", "float", "bool"]},
        "description": fields["description"],
    }
    graph = {"type": "string", "enum": graphs or ["-"], "description": "graphs/<graph>.yaml"}
    hook = {"type": "string", "pattern": hooks, "description": "POSTed the final job view"}
    file = {"type": "string", "format": "binary", "description": "JSONL: one item per line"}
    fields_text = {
        "type": "string",
        "pattern": FIELDS_TEXT,
        "description": "the items' fields, e.g. utterance,lead_score:float",
    }

    def variant(required: list[str], **properties: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "required": required,
            "properties": {**properties, "webhook_url": hook},
            "additionalProperties": False,
        }

    json_body = {
        "oneOf": [
            variant(["graph", "items"], graph=graph, items=items),
            variant(["task", "fields", "items"], task=task, fields=fields, items=items),
        ]
    }
    form_body = {
        "oneOf": [
            variant(["graph", "file"], graph=graph, file=file),
            variant(["task", "fields", "file"], task=task, fields=fields_text, file=file),
        ]
    }
    return {
        "required": True,
        "content": {
            "application/json": {"schema": json_body},
            "multipart/form-data": {"schema": form_body},
        },
    }


MALFORMED = {
    "description": "Malformed HTTP (a bad header, say): from the HTTP server or the app",
    "content": {
        PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}
