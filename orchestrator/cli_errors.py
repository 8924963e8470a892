"""How every command ends on an error: one line on stderr naming the error's code, then exit 2 for
a setup error (fix the graph, skill, input or config) or 1 for a run error."""

from __future__ import annotations

import typer

from orchestrator.errors import OrchestratorError, SetupError

__all__ = ["fail_command"]


def fail_command(exc: OrchestratorError) -> typer.Exit:
    """Print ``error (<code>): <message>`` on stderr; the ``typer.Exit`` to raise."""
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)  # soft wrap: a long message stays one line
    console.print(f"[bold red]error[/] ({exc.code}): {exc}", highlight=False)
    return typer.Exit(2 if isinstance(exc, SetupError) else 1)
