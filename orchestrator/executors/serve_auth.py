"""Who may call the Serve application's HTTP ingress (``POST /skills/<name>@<version>``).

The job service reaches the skills through Serve handles, inside the cluster's token-authenticated
Ray; the HTTP ingress is a second door, opened only when an operator's Serve config starts a
proxy. It answers nobody until the Ray pods carry a shared secret in ``ORCHESTRATOR_SERVE_TOKEN``
(from a Kubernetes Secret, ``deploy/kuberay/rayservice.yaml``), and then only requests with
``Authorization: Bearer <that secret>``: a pod that can reach port 8000 past the NetworkPolicy
still cannot run the skills without it.

Kept apart from :mod:`orchestrator.executors.serve_app` so the check loads (and is tested)
without Ray Serve.

Example::

    refusal = ingress_refusal(request.headers.get("authorization"), os.environ.get(TOKEN_ENV))
    if refusal is not None:
        return 401, refusal
"""

from __future__ import annotations

import hmac

__all__ = ["TOKEN_ENV", "ingress_refusal"]

#: the environment variable holding the ingress's shared secret on the Ray pods
TOKEN_ENV = "ORCHESTRATOR_SERVE_TOKEN"


def ingress_refusal(authorization: str | None, token: str | None) -> str | None:
    """Why a request with this ``Authorization`` header is refused, or None when it may pass.

    With no token configured the ingress is closed (default deny); the comparison takes constant
    time."""
    if not token:
        return (
            f"the /skills HTTP ingress is closed: set {TOKEN_ENV} on the Ray pods (from a "
            "Secret) and send Authorization: Bearer <that secret>"
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return f"send Authorization: Bearer <the {TOKEN_ENV} secret>"
    return None
