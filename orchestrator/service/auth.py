"""API keys: bearer tokens with scopes, stored only as their SHA-256.

A key is 32 random bytes (``ork_`` + URL-safe base64, 256 bits of entropy). The service keeps only
``sha256(key)``: at that entropy a fast hash is enough (nothing to brute-force, unlike a password),
and it lets the lookup be one dictionary probe per request. Make a key with::

    python -m orchestrator.service.auth my-backend jobs:read jobs:write graphs:invoke

which prints the key (give it to the client, once) and the config entry holding its hash.

Scopes: ``jobs:read`` (status, results, events), ``jobs:write`` (submit, cancel),
``graphs:invoke`` (real-time turns), ``skills:read`` (list skills), ``reviews`` (the review
queue of the key's own jobs: list and answer), ``reviews:all`` (a cross-tenant reviewer: every
job's tickets), ``admin`` (everything).
No key gives 401, a key without the scope 403. Keys never reach a log line: the service logs
the key's *name*, never the header.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SCOPES", "ApiKey", "KeyRing", "Principal", "Scope", "hash_key", "new_key"]

Scope = Literal[
    "jobs:read", "jobs:write", "graphs:invoke", "skills:read", "reviews", "reviews:all", "admin"
]
SCOPES: tuple[Scope, ...] = (
    "jobs:read",
    "jobs:write",
    "graphs:invoke",
    "skills:read",
    "reviews",
    "reviews:all",
    "admin",
)
_PREFIX = "ork_"


class ApiKey(BaseModel):
    """One configured key: a name (for logs and job ownership), its hash and its scopes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="who holds the key; logged")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the key")
    scopes: frozenset[Scope] = Field(description="what the key may do")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the key's name and scopes."""

    name: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        if scope == "reviews" and "reviews:all" in self.scopes:
            return True
        return "admin" in self.scopes or scope in self.scopes

    @property
    def reviews_all(self) -> bool:
        """May review every job's tickets, not only its own jobs'."""
        return self.admin or "reviews:all" in self.scopes

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key, as stored in config."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its hash: ``(key, sha256)``."""
    key = _PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


class KeyRing:
    """The configured keys, looked up by hash."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_hash = {k.sha256: Principal(k.name, frozenset(k.scopes)) for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal for an ``Authorization: Bearer <key>`` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        # A dict probe on the hash: timing can at most reveal a prefix of sha256(key), which
        # says nothing about the key itself.
        return self._by_hash.get(hash_key(token.strip()))


def _main(argv: list[str]) -> int:
    if not argv or any(s not in SCOPES for s in argv[1:]):
        print(
            f"usage: python -m orchestrator.service.auth NAME [SCOPE...]  (scopes: {' '.join(SCOPES)})"
        )
        return 2
    key, digest = new_key()
    scopes = argv[1:] or ["jobs:read", "jobs:write"]
    print(f"key (give it to the client; it is not stored anywhere): {key}")
    print("config entry (service YAML, under api_keys:):")
    print(f"  - {{name: {argv[0]}, sha256: {digest}, scopes: [{', '.join(scopes)}]}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
