"""``orchestrator serve``: run the HTTP job service (FastAPI on uvicorn)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.errors import reports_errors
from orchestrator.errors import ConfigError
from orchestrator.service.settings import (
    ServiceSettings,
    ensure_admin_key,
    load_service_settings,
)

__all__ = ["checked_binding", "is_loopback", "serve"]


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="service YAML (keys, limits, runtime)")
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="'ray' (default), 'serve' or 'local'")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="store and plan cache folder")] = None,
    graphs_dir: Annotated[Path | None, typer.Option(help="folder of NAME.yaml graphs")] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="accept every request as admin (dev only)")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="uvicorn access log (no headers)")] = False,
) -> None:
    """Run the HTTP job service (FastAPI on uvicorn): jobs, real-time turns, metrics."""
    import uvicorn

    from orchestrator.service.app import create_app
    from orchestrator.telemetry.logs import configure_logging

    runtime_overrides = {
        k: v for k, v in {"executor": executor, "data_dir": data_dir}.items() if v is not None
    }
    settings = load_service_settings(
        config,
        runtime=runtime_overrides,
        graphs_dir=graphs_dir,
        auth=False if no_auth else None,
    )
    settings = checked_binding(settings, host)
    configure_logging(settings.runtime.log_format, settings.runtime.log_level)
    settings = ensure_admin_key(settings)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )


def checked_binding(settings: ServiceSettings, host: str) -> ServiceSettings:
    """Refuse auth off on an address beyond loopback (anyone who reaches it would be admin);
    trust the bound address as a Host header, next to the configured ``trusted_hosts``."""
    if not settings.auth and not is_loopback(host):
        raise ConfigError(
            f"--no-auth (auth: false) with --host {host} would make every caller who can reach "
            "that address an admin; bind 127.0.0.1 for development, or configure api_keys"
        )
    if host in settings.trusted_hosts or host in ("0.0.0.0", "::", ""):
        return settings  # a wildcard bind: clients name the service; trusted_hosts says how
    return settings.model_copy(update={"trusted_hosts": [*settings.trusted_hosts, host]})


def is_loopback(host: str) -> bool:
    """Whether a bind address is loopback only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":  # python -m orchestrator.cli.serve
    typer.run(serve)
