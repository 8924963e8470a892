"""Test doubles for the edges the runtime does not own.

:class:`StubLLMServer` is an OpenAI-compatible HTTP server on loopback, scripted with
:class:`Reply` behaviours (answers, errors, hangs, rate limits, malformed bodies) and recording
every request it receives.
"""

from __future__ import annotations

from orchestrator.testing.stub_llm import RecordedRequest, Reply, StubLLMServer

__all__ = ["RecordedRequest", "Reply", "StubLLMServer"]
