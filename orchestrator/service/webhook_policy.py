"""Where webhooks may go: the ``webhook_hosts`` allow list, and the addresses a host resolves to.

A webhook makes the service send a request to a URL a client chose, from inside the operator's
network: without a fence, a job could make it probe ``http://169.254.169.254/`` (cloud metadata)
or an admin port on loopback (server-side request forgery). So:

- **Nothing is allowed by default.** ``webhook_hosts`` lists what is: an exact host name
  (``hooks.example.com``), any subdomain (``*.example.com``), any host (``*``), an address
  (``10.0.0.7``) or a network (``10.0.0.0/24``). A URL whose host matches no entry is refused
  when the job is submitted (422, naming the setting).
- **Private, loopback, link-local, multicast and reserved addresses are refused** unless allowed
  explicitly: by an exact host name entry or an address/network entry that contains them. A
  wildcard (``*``, ``*.example.com``) reaches public addresses only.
- **The host is resolved when the webhook is sent**, every resolved address is checked, and the
  request goes to the checked address (the URL's host stays in ``Host`` and, for https, in SNI
  and certificate checks): a DNS answer cannot change between the check and the connection.

Example::

    policy = WebhookPolicy(["*.example.com", "10.0.0.0/24"])
    policy.check_url("https://hooks.example.com/done")      # fine
    target = await policy.resolve("https://hooks.example.com/done")   # a checked address
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from orchestrator.errors import ConfigError, WebhookRefused

__all__ = ["Address", "WebhookPolicy", "WebhookTarget", "public_address"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAME = re.compile(r"^(\*|(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*)$")
_SETTING = "webhook_hosts"


def public_address(address: Address) -> bool:
    """Whether an address is on the public internet (not private, loopback, link-local,
    multicast, reserved or unspecified); an IPv4-mapped IPv6 address counts as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


@dataclass(frozen=True)
class WebhookTarget:
    """Where one delivery goes: the URL to connect to (the checked address in place of the
    host), the ``Host`` header, and the name for TLS (SNI and the certificate check)."""

    url: str
    host_header: str
    tls_name: str | None
    address: Address


class WebhookPolicy:
    """The ``webhook_hosts`` allow list, parsed once; raises ConfigError for a bad entry."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = list(allowed)
        self._names: set[str] = set()
        self._suffixes: list[str] = []  # ".example.com" for "*.example.com"; "" for "*"
        self._networks: list[_Network] = []
        for entry in allowed:
            text = entry.strip().lower()
            try:
                self._networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _NAME.match(text):
                raise ConfigError(
                    f"webhook_hosts entry {entry!r} is neither a host name ('hooks.example.com', "
                    "'*.example.com', '*'), an address nor a network ('10.0.0.0/24')"
                )
            if text == "*" or text.startswith("*."):
                self._suffixes.append(text[1:])
            else:
                self._names.add(text)

    def check_url(self, url: str) -> SplitResult:
        """The parsed URL if its scheme and host may be used; else WebhookRefused saying why
        (checked at submission, without a DNS lookup)."""
        parts = _split(url)
        host = (parts.hostname or "").lower()
        literal = _literal(host)
        if literal is not None:
            if not (self._in_networks(literal) or ("" in self._suffixes and _ok(literal))):
                raise WebhookRefused(_refusal(host, self.allowed, "address"))
            return parts
        if host not in self._names and not self._suffix_match(host):
            raise WebhookRefused(_refusal(host, self.allowed, "host"))
        return parts

    async def resolve(self, url: str) -> WebhookTarget:
        """Resolve the URL's host and check every address it has (WebhookRefused when one is
        not allowed): the target to connect to."""
        parts = self.check_url(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise WebhookRefused(f"webhook host {host!r} does not resolve: {exc}") from None
            addresses = list(
                dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
            )
        for address in addresses:
            if not self._address_allowed(host, address):
                raise WebhookRefused(
                    f"webhook host {host!r} resolves to {address}, a private, loopback, "
                    f"link-local or reserved address; list the host or the address in the "
                    f"{_SETTING} setting to allow it"
                )
        address = addresses[0]
        shown = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{shown}:{port}"
        target = parts._replace(netloc=netloc).geturl()
        host_header = parts.netloc.rpartition("@")[2]
        tls_name = host if parts.scheme == "https" and literal is None else None
        return WebhookTarget(target, host_header, tls_name, address)

    def _address_allowed(self, host: str, address: Address) -> bool:
        if self._in_networks(address) or host in self._names:
            return True  # allowed explicitly
        return _ok(address)

    def _in_networks(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def _suffix_match(self, host: str) -> bool:
        return any(suffix == "" or host.endswith(suffix) for suffix in self._suffixes)


def _ok(address: Address) -> bool:
    return public_address(address)


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise WebhookRefused(f"webhook URL {url[:200]!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook URL {url[:200]!r} must be http:// or https:// with a host")
    if "@" in parts.netloc:
        raise WebhookRefused("a webhook URL must not carry credentials (user@host)")
    return parts


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _refusal(host: str, allowed: list[str], what: str) -> str:
    now = ", ".join(repr(a) for a in allowed) if allowed else "empty: webhooks are off"
    return (
        f"webhook {what} {host!r} is not allowed by the {_SETTING} setting ({now}); an operator "
        "adds the host ('hooks.example.com', '*.example.com'), or for a private address the "
        "address or network ('10.0.0.0/24')"
    )
