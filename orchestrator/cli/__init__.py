"""The ``orchestrator`` command line (Typer): every command, and one way to end on an error.

Top layer: may import every layer below; nothing in the library imports it.
"""

from orchestrator.cli.commands import app, main

__all__ = ["app", "main"]
