"""The ``orchestrator redact`` command (Typer): the PII guard applied to a JSONL file, so users can
check it on their own data. The work is :func:`orchestrator.llm.privacy.redact_file`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.errors import reports_errors
from orchestrator.llm.pii import PIIGuard, default_guard
from orchestrator.llm.privacy import redact_file

__all__ = ["redact_command"]


@reports_errors
def redact_command(
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="JSONL: one object per line", show_default=False)
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSONL written: the lines, field redacted")
    ],
    field: Annotated[str, typer.Option(help="the text field to redact")] = "text",
    known: Annotated[
        str | None,
        typer.Option(
            help="fields holding values known about the customer, e.g. name,phone,email,address "
            "(or FIELD=KIND, KIND one of name/phone/email/address/other)"
        ),
    ] = None,
    ner: Annotated[
        bool,
        typer.Option(
            help="also find names and organisations with the NER model (--no-ner: patterns, cue "
            "words and --known values only; faster)"
        ),
    ] = True,
) -> None:
    """Redact PII from each line's --field (placeholders like <PERSON_1>); prints a JSON summary
    with the counts per entity type (spans replaced, lines holding one)."""
    guard = default_guard() if ner else PIIGuard(ner=False)
    summary = redact_file(input_path, output, field, [known] if known else [], guard=guard)
    sys.stdout.write(json.dumps(summary) + "\n")
    if summary["lines"] and not summary["redacted"]:
        raise typer.Exit(1)
