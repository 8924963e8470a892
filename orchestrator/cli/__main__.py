"""``python -m orchestrator.cli``: the same as the ``orchestrator`` command."""

from orchestrator.cli.commands import main

main()
