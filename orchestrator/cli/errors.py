"""How every command ends on an error: one line on stderr naming the error's code, then exit 2 for
a setup error (fix the graph, skill, input or config) or 1 for a run error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from orchestrator.errors import OrchestratorError, SetupError

__all__ = ["fail_command", "reports_errors"]

P = ParamSpec("P")
R = TypeVar("R")


def fail_command(exc: OrchestratorError) -> typer.Exit:
    """Print ``error (<code>): <message>`` on stderr; the ``typer.Exit`` to raise."""
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)  # soft wrap: a long message stays one line
    console.print(f"[bold red]error[/] ({exc.code}): {exc}", highlight=False)
    return typer.Exit(2 if isinstance(exc, SetupError) else 1)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command so that an :class:`OrchestratorError` ends it as :func:`fail_command`
    says. Typer reads the command's options through ``functools.wraps``."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except OrchestratorError as exc:
            raise fail_command(exc) from None

    return run
