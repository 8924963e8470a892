"""Where webhooks may go (issue #16): nothing by default, private addresses only when listed,
every resolved address checked and the connection pinned to it."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.errors import WebhookRefused
from orchestrator.service.settings import ServiceSettings
from orchestrator.service.webhook_policy import WebhookPolicy, public_address


def test_webhooks_are_off_until_hosts_are_listed():
    assert ServiceSettings().webhook_hosts == []
    with pytest.raises(WebhookRefused, match="webhook_hosts") as caught:
        WebhookPolicy([]).check_url("https://hooks.example.com/done")
    assert "webhooks are off" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",  # loopback
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",  # loopback behind an IPv4-mapped IPv6 address
        "http://10.0.0.5/x",  # private
        "http://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "http://224.0.0.1/x",  # multicast
        "http://0.0.0.0/x",  # unspecified
    ],
)
def test_a_wildcard_never_reaches_a_private_address(url):
    with pytest.raises(WebhookRefused):
        WebhookPolicy(["*"]).check_url(url)


def test_private_addresses_only_when_listed_explicitly():
    WebhookPolicy(["127.0.0.1"]).check_url("http://127.0.0.1:9/x")
    WebhookPolicy(["10.0.0.0/24"]).check_url("http://10.0.0.5/x")
    with pytest.raises(WebhookRefused):
        WebhookPolicy(["10.0.0.0/24"]).check_url("http://10.0.1.5/x")
    WebhookPolicy(["*"]).check_url("https://93.184.215.14/x")  # a public address: fine


def test_names_exact_or_by_suffix():
    policy = WebhookPolicy(["*.example.com", "hooks.internal"])
    policy.check_url("https://a.example.com/x")
    policy.check_url("http://hooks.internal:8080/x")
    for url in ("https://example.org/x", "https://evilexample.com/x", "ftp://a.example.com/x"):
        with pytest.raises(WebhookRefused):
            policy.check_url(url)
    with pytest.raises(WebhookRefused, match="credentials"):
        policy.check_url("https://user:pw@a.example.com/x")


def test_a_bad_entry_is_a_setting_error():
    with pytest.raises(ValueError, match="webhook_hosts entry"):
        ServiceSettings(webhook_hosts=["http://bad/"])


def test_resolved_addresses_are_checked_and_the_connection_pinned():
    # "localhost" resolves to loopback: a wildcard never reaches it, its exact name does
    with pytest.raises(WebhookRefused, match="resolves to"):
        asyncio.run(WebhookPolicy(["*"]).resolve("http://localhost:8123/done?x=1"))
    target = asyncio.run(WebhookPolicy(["localhost"]).resolve("http://localhost:8123/done?x=1"))
    assert not public_address(target.address) and target.address.is_loopback
    host = f"[{target.address}]" if target.address.version == 6 else str(target.address)
    assert target.url == f"http://{host}:8123/done?x=1"  # the checked address, not the name
    assert target.host_header == "localhost:8123" and target.tls_name is None
    https = asyncio.run(WebhookPolicy(["localhost"]).resolve("https://localhost/done"))
    assert https.tls_name == "localhost"  # SNI and the certificate check keep the name
