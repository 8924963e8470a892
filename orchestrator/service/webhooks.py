"""Webhooks: a job's final view, POSTed to the URL its submitter gave, signed when configured.

A delivery gets 3 tries, 0.5 s then 1 s apart (a connection error, a timeout or a status of 300
or more counts as a failure); each failure is logged (``webhook_failed``), then the service gives
up: the job's status stays readable at ``GET /v1/jobs/{id}``. With a secret, the body's
HMAC-SHA256 goes in ``X-Orchestrator-Signature: sha256=<hex>``.

Example::

    await deliver_webhook(job.webhook_url, job_view(job), secret="s3cret", timeout_s=5.0)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import tenacity

from orchestrator.telemetry.logs import get_logger

__all__ = ["WEBHOOK_TRIES", "deliver_webhook"]

log = get_logger(__name__)

WEBHOOK_TRIES = 3


class _Refused(Exception):
    """The webhook answered with a status of 300 or more."""


async def deliver_webhook(
    url: str, view: dict[str, Any], *, secret: str | None, timeout_s: float
) -> bool:
    """POST ``view`` as JSON to ``url``, with retries; ``True`` once it was accepted."""
    import httpx

    body = json.dumps(view).encode()
    headers = {"content-type": "application/json", "user-agent": "orchestrator-webhook"}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["x-orchestrator-signature"] = f"sha256={digest}"
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type((httpx.HTTPError, _Refused)),
        wait=tenacity.wait_exponential(multiplier=0.5),  # 0.5 s, then 1 s
        stop=tenacity.stop_after_attempt(WEBHOOK_TRIES),
        after=_log_failure,
        reraise=True,
    )
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            async for attempt in retrying:
                with attempt:
                    response = await client.post(url, content=body, headers=headers)
                    if response.status_code >= 300:
                        raise _Refused(f"HTTP {response.status_code}")
        except (httpx.HTTPError, _Refused):
            return False  # every try is logged: give up, the job's status stays readable
    log.info("webhook_delivered", status=response.status_code)
    return True


def _log_failure(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    why = str(exc) if isinstance(exc, _Refused) else type(exc).__name__
    log.warning("webhook_failed", attempt=state.attempt_number, error=why)
