"""One error tree for the whole runtime.

Every error the runtime raises on purpose derives from :class:`OrchestratorError`, in two families:

    OrchestratorError
    ├── SetupError                 the job never started: fix the graph, the skill or the config
    │   ├── ConfigError            a setting is missing or malformed
    │   ├── SkillDefinitionError   a skill class or manifest breaks the skill contract
    │   ├── ArtifactError          not built, or an artifact does not match its build record
    │   ├── UnknownSkillError      a graph names a skill (alias, version) that is not registered
    │   ├── GraphValidationError   a graph spec is malformed: carries one issue per bad step
    │   ├── PlanInvalid            the planner's graph stayed invalid after its repair rounds
    │   │   └── PlanImpossible     the registry cannot serve the task: it names what is missing
    │   ├── CalibrationError       no threshold reaches the target, or unusable calibration data
    │   ├── DatasetError           a training or evaluation CSV cannot be used as given
    │   ├── DistillError           distillation, promotion or rollback cannot proceed
    │   ├── ReviewError            a review answer cannot be taken (unknown ticket, bad answer)
    │   ├── UnknownJob             no job of that id in the store
    │   ├── GraphNotFound          the service has no graph of that name
    │   ├── TooManyItems           a job carries more items than one job may
    │   ├── ItemTooLarge           one item (a JSONL line, an inline item) is over the byte limit
    │   ├── UnknownProvider        a provider list names a provider that is not configured
    │   ├── IdempotencyConflict    an Idempotency-Key was reused with a different request
    │   └── WebhookRefused         a webhook URL's host or address is not allowed (webhook_hosts)
    ├── RunError                   the job started and something failed while it ran
    │   ├── SkillRunError          a skill raised, or returned outputs that break its contract
    │   ├── ExecutorError          a worker could not be started or reached
    │   ├── LLMUnavailable         no big-model provider answered (each one's reason attached)
    │   ├── LLMRequestRejected     a provider refused the request itself (400/413/422)
    │   ├── LLMOutputInvalid       the big model's answer broke its schema, even after a re-ask
    │   ├── BudgetExceeded         the job's big-model budget (calls or tokens) is spent
    │   ├── PrivacyViolation       the privacy policy forbids sending this text anywhere configured
│   ├── LeaseLost              another replica took over a job this one was running (or receiving)
│   ├── StoreUnavailable       the store's database stopped answering (a failover, a restart)
│   ├── JobCrashLoop           a job crashed the service too often while running: failed, not rerun
    │   └── Overloaded             back-pressure: too much in flight; retry after ``retry_after``
    │       └── QuotaExceeded      one API key's share is spent (jobs in flight, items per minute)
    └── ServiceError               the job service answered with an error (the Python client)

Setup errors are raised before any worker starts, so a bad graph costs nothing. Every message says
what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArtifactError",
    "BudgetExceeded",
    "CalibrationError",
    "ConfigError",
    "DatasetError",
    "DistillError",
    "ExecutorError",
    "GraphIssue",
    "GraphNotFound",
    "GraphValidationError",
    "IdempotencyConflict",
    "ItemTooLarge",
    "JobCrashLoop",
    "LLMOutputInvalid",
    "LLMRequestRejected",
    "LLMUnavailable",
    "LeaseLost",
    "OrchestratorError",
    "Overloaded",
    "PlanInvalid",
    "PlanImpossible",
    "PrivacyViolation",
    "QuotaExceeded",
    "ReviewError",
    "RunError",
    "ServiceError",
    "SetupError",
    "SkillDefinitionError",
    "SkillRunError",
    "StoreUnavailable",
    "TooManyItems",
    "UnknownJob",
    "UnknownProvider",
    "UnknownSkillError",
    "WebhookRefused",
]


class OrchestratorError(Exception):
    """Base of every error the runtime raises on purpose."""

    #: A stable, machine-readable code (APIs and JSON summaries carry it).
    code: str = "orchestrator_error"


class SetupError(OrchestratorError):
    """The job could not start: something in the graph, a skill or the configuration is wrong."""

    code = "setup_error"


class ConfigError(SetupError):
    """A setting is missing or malformed."""

    code = "config_error"


class SkillDefinitionError(SetupError):
    """A skill class or a skill manifest breaks the skill contract."""

    code = "skill_definition_error"


class ArtifactError(SetupError):
    """A skill is not built, or an artifact file is missing or does not match its build record."""

    code = "artifact_error"


class UnknownSkillError(SetupError):
    """A reference names a skill, alias or version that is not in the registry."""

    code = "unknown_skill"


@dataclass(frozen=True)
class GraphIssue:
    """One problem found in a graph spec, located at a step (or at the graph's inputs/outputs)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class GraphValidationError(SetupError):
    """A graph spec failed validation; ``issues`` lists every problem found, each naming its step."""

    code = "graph_invalid"

    def __init__(self, graph: str, issues: list[GraphIssue]) -> None:
        self.graph = graph
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"graph {graph!r} is invalid ({len(self.issues)} problem(s)):\n{lines}")


class RunError(OrchestratorError):
    """The job started and something failed while it ran."""

    code = "run_error"


class SkillRunError(RunError):
    """A skill raised while predicting, or returned outputs that break its contract."""

    code = "skill_failed"


class ExecutorError(RunError):
    """A worker could not be started or reached."""

    code = "executor_error"


class LLMUnavailable(RunError):
    """Every provider failed (or was skipped by its circuit breaker); ``errors`` maps each to why."""

    code = "llm_unavailable"

    def __init__(self, errors: Mapping[str, str], *, purpose: str) -> None:
        self.errors = dict(errors)
        detail = "; ".join(f"{name}: {why}" for name, why in self.errors.items())
        super().__init__(
            f"no LLM provider answered ({purpose}): {detail}. Check that the endpoints are up "
            "and their keys are set, or add a fallback provider."
        )


class LLMRequestRejected(RunError):
    """A provider refused the request itself (400/413/422): retrying or falling back won't help."""

    code = "llm_request_rejected"

    def __init__(self, provider: str, status: int, detail: str) -> None:
        self.provider, self.status = provider, status
        super().__init__(
            f"provider {provider!r} rejected the request (HTTP {status}: {detail}). Fix the "
            "request, or the provider's config (e.g. json_schema: false if it does not support "
            "response_format json_schema)."
        )


class LLMOutputInvalid(RunError):
    """The answer did not validate against the schema, even after one re-ask."""

    code = "llm_output_invalid"

    def __init__(self, provider: str, schema: str, problem: str, text: str | None) -> None:
        self.provider, self.schema, self.problem = provider, schema, problem
        #: the last answer's raw text (not in the message: it may hold job data)
        self.text = text
        super().__init__(
            f"{provider!r} answered twice without matching schema {schema}: {problem}. A larger "
            "model, a clearer prompt or a simpler schema usually helps."
        )


class BudgetExceeded(RunError):
    """A job's big-model budget (calls or tokens) is spent."""

    code = "budget_exceeded"


class PlanInvalid(SetupError):
    """The planner could not produce a valid graph within its repair budget; nothing ran."""

    code = "plan_invalid"

    def __init__(self, task: str, problems: list[str], repairs: int) -> None:
        self.task, self.problems = task, list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"no valid plan after {repairs} repair(s) for task {task[:80]!r}:\n{lines}\n"
            "Rephrase the task, point the planner at a stronger model, or write the graph by hand."
        )


class PlanImpossible(PlanInvalid):
    """The registry cannot serve the task: what it asks for (or what a needed skill needs) is not
    produced by any registered skill from the job's fields. The message names what is missing."""

    code = "plan_impossible"

    def __init__(self, task: str, missing: list[str]) -> None:
        self.task, self.problems, self.missing = task, list(missing), list(missing)
        lines = "\n".join(f"  - {m}" for m in self.missing)
        SetupError.__init__(
            self,
            f"the registered skills cannot do task {task[:80]!r}:\n{lines}\n"
            "Register or train a skill that produces it (`orchestrator skills train ...`), give "
            "the job the fields it needs, or write the graph by hand.",
        )


class PrivacyViolation(RunError):
    """The privacy policy forbids sending this text to any configured provider; nothing was sent."""

    code = "privacy_blocked"


class ReviewError(SetupError):
    """A review answer cannot be taken: unknown ticket, already answered, or an answer that breaks
    the skill's output contract. Nothing changed; the message says what to fix."""

    code = "review_invalid"

    def __init__(self, message: str, *, code: str = "review_invalid") -> None:
        super().__init__(message)
        self.code = code


# --- errors of one command or surface, here so the tree is whole -----------------------------


class CalibrationError(SetupError):
    """No threshold reaches the target accuracy, or the calibration data are unusable."""

    code = "calibration_error"


class DatasetError(SetupError):
    """A training or evaluation CSV cannot be used as given; the message says what to fix."""

    code = "dataset_error"


class DistillError(SetupError):
    """Distillation, promotion or rollback cannot proceed; the message says why and what to do."""

    code = "distill_error"


class UnknownJob(SetupError):
    """No job of that id in the store."""

    code = "unknown_job"


class UnknownProvider(SetupError):
    """A provider list (``--providers``) names a provider the gateway configuration lacks."""

    code = "unknown_provider"


class TooManyItems(SetupError):
    """A job carries more items than one job may (split it)."""

    code = "too_many_items"


class ItemTooLarge(SetupError):
    """One item (an inline item, a line of a JSONL upload) is larger than the service takes."""

    code = "item_too_large"


class GraphNotFound(SetupError):
    """No graph of that name in the service's graphs folder."""

    code = "unknown_graph"


class IdempotencyConflict(SetupError):
    """An Idempotency-Key was reused with a different request."""

    code = "idempotency_conflict"


class WebhookRefused(SetupError):
    """A webhook URL's host, or an address it resolves to, is not allowed: the service's
    ``webhook_hosts`` setting lists what is (nothing by default; private addresses only
    explicitly)."""

    code = "webhook_refused"


class LeaseLost(RunError):
    """This replica's lease on a job expired and another replica took the job over: this one
    stops, and its late writes (a chunk's results, the final status) are refused."""

    code = "lease_lost"


class StoreUnavailable(RunError):
    """The store's database dropped the connection (a failover, a restart) and did not answer
    again: the statement may not have run. The next call reconnects; a job caught by it is
    parked and resumes."""

    code = "store_unavailable"


class JobCrashLoop(RunError):
    """A job's chunk was started ``max_chunk_starts`` times and the service died each time: the
    job is failed instead of crashing every restart. The message names the chunk's items."""

    code = "crash_loop"


class Overloaded(RunError):
    """Back-pressure: too many jobs or items in flight; retry after ``retry_after`` seconds."""

    code = "overloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(Overloaded):
    """One API key's share of the service is spent (jobs in flight, items per minute), while
    the service as a whole may have room; retry after ``retry_after`` seconds."""

    code = "quota_exceeded"


class ServiceError(OrchestratorError):
    """The service answered with an error (an RFC 9457 problem)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code") or f"http_{status}")
        self.errors: list[dict[str, str]] = list(problem.get("errors") or [])
        self.retry_after: float | None = None
        super().__init__(f"HTTP {status} {self.code}: {problem.get('detail', '')}")
