"""Webhooks through the job service (issue #16): refused at submission unless configured, and a
slow endpoint never holds a running-job slot."""

from __future__ import annotations

import time

import httpx
from api_server import make_keys, serve_app
from hardening_support import bearer, toy_app, toy_settings
from test_webhooks_queue import Receiver

from orchestrator.service.webhooks import verify_signature


def _job(url: str, key: str, hook: str | None = None) -> dict:
    body: dict = {"graph": "toy", "items": [{"id": i, "utterance": "hello"} for i in range(3)]}
    if hook:
        body["webhook_url"] = hook
    response = httpx.post(f"{url}/v1/jobs", json=body, headers=bearer(key), timeout=30)
    assert response.status_code in (201, 202, 422), response.text
    return {"status": response.status_code, **response.json()}


def _wait_done(url: str, key: str, job_id: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=bearer(key), timeout=30).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def test_a_webhook_is_refused_at_submission_unless_its_host_is_allowed(tmp_path):
    keys = make_keys()
    with toy_app(toy_settings(tmp_path, keys)) as app, serve_app(app) as url:
        refused = _job(url, keys.writer, "http://127.0.0.1:9/done")
        metadata = _job(url, keys.writer, "http://169.254.169.254/latest/meta-data")
    assert refused["status"] == 422 and refused["errors"][0]["field"] == "body.webhook_url"
    assert "webhook_hosts" in refused["errors"][0]["message"]
    assert metadata["status"] == 422


def test_a_slow_webhook_does_not_hold_a_job_slot(tmp_path, monkeypatch):
    """One job runs at a time; the first job's endpoint takes 1 s to answer. The second job
    runs meanwhile: its delivery waits in the webhook queue, not in the job's slot."""
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    keys = make_keys()
    slow = Receiver(delay_s=1.0)
    settings = toy_settings(
        tmp_path,
        keys,
        max_running_jobs=1,
        webhook_hosts=["127.0.0.1"],
        webhook_secret_env="HOOK_SECRET",
    )
    try:
        with toy_app(settings) as app, serve_app(app) as url:
            first = _job(url, keys.writer, slow.url)
            done_first = _wait_done(url, keys.writer, first["id"])
            second = _job(url, keys.writer)
            done_second = _wait_done(url, keys.writer, second["id"])
            queue = app.state.service.jobs.webhooks
            deadline = time.monotonic() + 10
            while queue.get(first["id"]).delivered_at is None:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        slow.close()
    assert done_first["status"] == done_second["status"] == "succeeded"
    gap = _seconds(done_second["finished_at"]) - _seconds(done_first["finished_at"])
    assert gap < 0.5, gap  # not 1 s (or ~18 s with retries) behind the first job's webhook
    [got] = slow.received
    headers = got["headers"]
    assert verify_signature(
        "s3cret",
        got["body"],
        headers["x-orchestrator-timestamp"],
        headers["x-orchestrator-signature"],
    )
    assert headers["x-orchestrator-delivery"]


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
