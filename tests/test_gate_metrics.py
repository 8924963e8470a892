"""Requests refused before they ran are counted in ``/metrics`` (issue #16): an untrusted Host, no
key, a body too large, a quota spent."""

from __future__ import annotations

import re

import httpx
from api_server import make_keys, serve_app
from hardening_support import bearer, toy_app, toy_settings


def _refused(text: str) -> dict[str, float]:
    found = re.findall(r'^orchestrator_refused_total\{reason="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


def test_refusals_are_counted_by_reason(tmp_path):
    keys = make_keys()
    settings = toy_settings(tmp_path, keys, max_items_per_minute_per_key=2)
    job = {"graph": "toy", "items": [{"id": i, "utterance": "hi"} for i in range(3)]}
    with toy_app(settings) as app, serve_app(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/healthz", headers={"host": "evil.example"}).status_code == 400
        assert http.post("/v1/jobs", json=job).status_code == 401  # the gate: no key
        assert http.get("/v1/jobs/x", headers=bearer("nope")).status_code == 401  # a route
        too_big = http.post(
            "/v1/jobs",
            content=b"x" * (settings.max_request_bytes + 1),
            headers={**bearer(keys.writer), "content-type": "application/json"},
        )
        assert too_big.status_code == 413
        assert http.post("/v1/jobs", json=job, headers=bearer(keys.writer)).status_code == 202
        over_quota = http.post("/v1/jobs", json=job, headers=bearer(keys.writer))
        assert over_quota.status_code == 429  # items per minute: a route's refusal
        text = http.get("/metrics").text
    assert _refused(text) == {"host": 1.0, "key": 2.0, "size": 1.0, "limit": 1.0}
