"""Telemetry: structured logs (structlog). Bottom layer: imports nothing else of the package."""

from orchestrator.telemetry.logs import configure_logging, get_logger

__all__ = ["configure_logging", "get_logger"]
