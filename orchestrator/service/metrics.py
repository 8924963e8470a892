"""Prometheus metrics of the job service (``GET /metrics``).

Each service instance owns a :class:`ServiceMetrics` with its own ``CollectorRegistry``, so two
apps in one process (tests) never share counters. prometheus-client is thread-safe: the API's
event loop and the job runner's thread update the same objects.

Names (all prefixed ``orchestrator_``): ``jobs_submitted_total``, ``jobs_finished_total``,
``jobs_active``, ``items_pending``, ``items_total`` (by outcome), ``chunk_seconds``,
``invoke_seconds``, ``http_requests_total``, ``http_request_seconds``, ``escalations_total``,
``llm_calls_total``, ``llm_tokens_total`` (by kind), ``rejected_total`` (back-pressure 429s),
``refused_total`` (every request refused before it ran, by reason: ``host`` 400, ``key`` 401,
``size`` 413, ``limit`` 429; counted by the request gate, whoever answered),
``webhooks_total`` (webhook attempts by outcome: ``delivered``, ``failed``, ``gave_up``).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from orchestrator.accounting.ledger import Ledger

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Real-time turns live in milliseconds; chunks in (tens of) seconds.
_FAST = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class ServiceMetrics:
    """Every metric the service exports, registered in one private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = "orchestrator_"
        self.jobs_submitted = Counter(p + "jobs_submitted", "Jobs accepted", ["graph"], registry=r)
        self.jobs_finished = Counter(
            p + "jobs_finished", "Jobs that ended", ["graph", "status"], registry=r
        )
        self.jobs_active = Gauge(p + "jobs_active", "Jobs pending or running", registry=r)
        self.items_pending = Gauge(
            p + "items_pending", "Items of active jobs without a result yet", registry=r
        )
        self.items = Counter(p + "items", "Items processed", ["graph", "outcome"], registry=r)
        self.chunk_seconds = Histogram(
            p + "chunk_seconds", "Time to run one chunk", ["graph"], buckets=_SLOW, registry=r
        )
        self.invoke_seconds = Histogram(
            p + "invoke_seconds",
            "Real-time turn latency inside the service",
            ["graph"],
            buckets=_FAST,
            registry=r,
        )
        self.http_requests = Counter(
            p + "http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.http_seconds = Histogram(
            p + "http_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=(*_FAST, 2.5, 10.0),
            registry=r,
        )
        self.escalations = Counter(
            p + "escalations", "Items flagged for the big model", ["graph"], registry=r
        )
        self.llm_calls = Counter(p + "llm_calls", "Big-model calls answered", ["graph"], registry=r)
        self.llm_tokens = Counter(
            p + "llm_tokens", "Big-model tokens", ["graph", "kind"], registry=r
        )
        self.rejected = Counter(
            p + "rejected", "Requests refused by back-pressure (429)", ["reason"], registry=r
        )
        self.refused = Counter(
            p + "refused",
            "Requests refused before they ran: untrusted Host, no valid key, too large, over a "
            "limit or quota",
            ["reason"],
            registry=r,
        )
        self.webhooks = Counter(
            p + "webhooks", "Webhook attempts by outcome", ["outcome"], registry=r
        )

    def add_ledger(self, graph: str, ledger: Ledger) -> None:
        """Fold one chunk's (or one turn's) ledger into the counters."""
        self.items.labels(graph, "succeeded").inc(ledger.succeeded)
        self.items.labels(graph, "failed").inc(ledger.failed)
        self.escalations.labels(graph).inc(ledger.escalated)
        self.llm_calls.labels(graph).inc(ledger.llm_calls)
        self.llm_tokens.labels(graph, "prompt").inc(ledger.llm_prompt_tokens)
        self.llm_tokens.labels(graph, "completion").inc(ledger.llm_completion_tokens)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
