"""Webhooks on the wire: one signed POST of a job's final view, and how a receiver checks it.

Every delivery carries three headers:

- ``X-Orchestrator-Delivery``: the delivery's id. A delivery is retried until it is accepted
  (at least once, :mod:`orchestrator.service.webhook_queue`), so a receiver may see one id more
  than once: it acts on the first and acknowledges the rest.
- ``X-Orchestrator-Timestamp``: when this attempt was signed (Unix seconds).
- ``X-Orchestrator-Signature: sha256=<hex>`` (with ``webhook_secret_env`` set): HMAC-SHA256 of
  ``"{timestamp}.{body}"`` under the secret. Signing the timestamp with the body lets a receiver
  refuse a replayed old delivery: :func:`verify_signature` checks both, with a tolerance.

An attempt connects to the address the policy checked (:class:`WebhookTarget`), never follows a
redirect and ignores proxy variables (either would send it somewhere unchecked). A status of 2xx
accepts the delivery; anything else, a timeout or a connection error is a failed attempt.

Example (a receiver)::

    if not verify_signature(secret, body, headers["x-orchestrator-timestamp"],
                            headers["x-orchestrator-signature"], tolerance_s=300):
        return 401
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from orchestrator.service.webhook_policy import WebhookTarget

__all__ = ["deliver_once", "sign", "verify_signature", "webhook_client"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"{timestamp}.{body}"`` under ``secret``."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` under ``secret``, and the timestamp is
    within ``tolerance_s`` of ``now`` (a receiver's check; constant-time comparison)."""
    try:
        signed_at = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - signed_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_client(timeout_s: float) -> httpx.AsyncClient:
    """The HTTP client deliveries share: no proxy from the environment (it would route a request
    past the address check), no redirects (they would lead to an unchecked address)."""
    import httpx

    return httpx.AsyncClient(timeout=timeout_s, trust_env=False, follow_redirects=False)


async def deliver_once(
    client: httpx.AsyncClient,
    target: WebhookTarget,
    body: bytes,
    *,
    delivery_id: str,
    secret: str | None,
) -> int:
    """One POST of ``body`` to ``target`` with ``client`` (:func:`webhook_client`); the HTTP
    status (raises ``httpx.HTTPError`` when no answer came in time)."""
    timestamp = str(int(time.time()))
    headers = {
        "host": target.host_header,
        "content-type": "application/json",
        "user-agent": "orchestrator-webhook",
        "x-orchestrator-delivery": delivery_id,
        "x-orchestrator-timestamp": timestamp,
    }
    if secret:
        headers["x-orchestrator-signature"] = sign(secret, timestamp, body)
    extensions = {"sni_hostname": target.tls_name} if target.tls_name else None
    response = await client.post(target.url, content=body, headers=headers, extensions=extensions)
    return response.status_code
