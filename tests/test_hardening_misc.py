"""Safe defaults: no auth only on loopback, the Host header checked, docs and metrics behind a key
when asked, finite big-model budgets. Issue #16, "Bounded inputs" and "Misc"."""

from __future__ import annotations

import httpx
import pytest
from api_server import make_keys, serve_app
from hardening_support import bearer, toy_app, toy_settings
from starlette.testclient import TestClient
from typer.testing import CliRunner

from orchestrator import Runtime
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.llm.providers import Provider, chat_request
from orchestrator.service.settings import ServiceSettings


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_no_auth_is_refused_beyond_loopback(monkeypatch, host, tmp_path):
    import uvicorn

    from orchestrator.cli.commands import app

    def never(*args, **kwargs):  # the service must not start at all
        raise AssertionError("uvicorn.run was called")

    monkeypatch.setattr(uvicorn, "run", never)
    result = CliRunner().invoke(
        app, ["serve", "--no-auth", "--host", host, "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "--no-auth" in result.output and "config_error" in result.output


def test_no_auth_on_loopback_still_works_and_the_bound_host_is_trusted():
    from orchestrator.cli.serve import checked_binding

    dev = ServiceSettings(auth=False)
    assert checked_binding(dev, "127.0.0.1") == dev
    keyed = checked_binding(ServiceSettings(), "10.0.0.5")
    assert keyed.trusted_hosts[-1] == "10.0.0.5"
    with pytest.raises(ConfigError):
        checked_binding(dev, "10.0.0.5")


def test_the_host_header_must_be_trusted(tmp_path):
    settings = toy_settings(tmp_path)
    with toy_app(settings) as app, serve_app(app) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200  # 127.0.0.1:<port>
        rebound = httpx.get(f"{url}/healthz", headers={"Host": "attacker.example:80"})
        assert rebound.status_code == 400 and rebound.json()["code"] == "untrusted_host"
        localhost = httpx.get(f"{url}/healthz", headers={"Host": "localhost"})
        assert localhost.status_code == 200


def test_docs_and_metrics_can_be_put_behind_a_key(tmp_path):
    keys = make_keys()
    open_settings = toy_settings(tmp_path / "open", keys)
    with toy_app(open_settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        assert http.get("/openapi.json").status_code == 200  # the default: open (see settings)
        assert http.get("/metrics").status_code == 200
    closed = toy_settings(tmp_path / "closed", keys, docs_public=False, metrics_public=False)
    with toy_app(closed) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert http.get(path).status_code == 401, path
        assert http.get("/openapi.json", headers=bearer(keys.reader)).status_code == 200
        assert http.get("/metrics", headers=bearer(keys.reader)).status_code == 401
        assert http.get("/metrics", headers=bearer(keys.admin)).status_code == 200


def test_big_model_budgets_are_finite_by_default_and_overridable(tmp_path):
    from orchestrator.llm.gateway import DEFAULT_MAX_OUTPUT_TOKENS, LLMGateway

    settings = Settings(executor="local", data_dir=tmp_path)
    with Runtime(executor="local", settings=settings) as runtime:
        budget = runtime.new_budget()
    assert budget.max_calls == settings.llm_max_calls and budget.max_calls is not None
    assert budget.max_tokens == settings.llm_max_tokens and budget.max_tokens is not None
    unlimited = Settings(executor="local", data_dir=tmp_path, llm_max_calls=None)
    assert unlimited.llm_max_calls is None  # explicitly, not by default

    plain = Provider(name="p", base_url="http://127.0.0.1:9/v1", model="m")
    capped = Provider(name="q", base_url="http://127.0.0.1:9/v1", model="m", max_output_tokens=64)
    gateway = LLMGateway([plain, capped])
    sent = [chat_request(p, [], None).get("max_tokens") for p in gateway.providers]
    assert sent == [DEFAULT_MAX_OUTPUT_TOKENS, 64]
