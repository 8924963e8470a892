"""``orchestrator serve``: run the HTTP job service (FastAPI on uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.service.settings import ensure_admin_key, load_service_settings

__all__ = ["serve"]


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


if __name__ == "__main__":  # python -m orchestrator.cli.serve
    typer.run(serve)
