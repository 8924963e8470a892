"""``orchestrator kb build|eval``: knowledge bases (:mod:`orchestrator.kb`).

    orchestrator kb build NAME --from FAQ.csv [--val QUESTIONS.csv] [--answer-on LABEL]
    orchestrator kb eval NAME --csv QUESTIONS.csv --question-column Q --id-column ID --json

A built base is a skill folder in the skills folder (``NAME@prod`` in a graph): a rebuild is a
new version (the canary), ``orchestrator skills promote`` / ``rollback`` move its aliases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.errors import reports_errors

__all__ = ["kb_app"]

kb_app = typer.Typer(
    no_args_is_help=True,
    help="Knowledge bases: answers retrieved by sentence embedding, versioned like skills.",
)


@kb_app.command("build")
@reports_errors
def build_command(
    name: Annotated[str, typer.Argument(help="the base's name (a skill name: snake_case)")],
    source: Annotated[
        Path,
        typer.Option(
            "--from", help="CSV or JSONL: id, question, answer (entries) or id, text (passages)"
        ),
    ],
    val: Annotated[
        Path | None,
        typer.Option(help="labelled questions to calibrate on (default: held out from entries)"),
    ] = None,
    val_question_column: Annotated[str, typer.Option(help="question column of --val")] = (
        "question"
    ),
    val_id_column: Annotated[str, typer.Option(help="answer-id column of --val")] = "id",
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="share of each id's questions held out")
    ] = 0.2,
    target_accuracy: Annotated[
        float,
        typer.Option(
            min=0.5,
            max=0.999,
            help="top-1 accuracy the kept answers reach (held out from FILE: aims 0.015 higher)",
        ),
    ] = 0.95,
    confidence_level: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Wilson margin under the target (0.5: none)")
    ] = 0.9,
    top_k: Annotated[int, typer.Option(min=1, max=20, help="passages a grounded call shows")] = 5,
    index: Annotated[str, typer.Option(help="auto, exact or hnsw")] = "auto",
    answer_on: Annotated[
        list[str] | None,
        typer.Option(help="answer only items whose 'when' input is this label (repeatable)"),
    ] = None,
    version: Annotated[str | None, typer.Option(help="default: the next minor version")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing version")] = False,
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
) -> None:
    """Build a new version of knowledge base NAME from FILE: embed, index, calibrate, install.

    The first version becomes prod, later ones canary. A bad file (empty, a missing column, an
    id with two answers) stops the build before anything is written: prod stays as it was.
    """
    from orchestrator.kb.build import KbBuild, build_kb
    from orchestrator.registry.folders import resolve_skills_dir

    report = build_kb(
        KbBuild(
            name=name,
            source=source,
            skills_dir=resolve_skills_dir(skills_dir),
            version=version,
            force=force,
            val=val,
            val_question_column=val_question_column,
            val_id_column=val_id_column,
            val_fraction=val_fraction,
            target_accuracy=target_accuracy,
            confidence_level=confidence_level,
            top_k=top_k,
            index=index,
            answer_on=tuple(answer_on or ()),
        )
    )
    typer.echo(json.dumps(report, indent=2))


@kb_app.command("eval")
@reports_errors
def eval_command(
    name: Annotated[str, typer.Argument(help="NAME, NAME@alias or NAME@version")],
    csv_path: Annotated[Path, typer.Option("--csv", help="labelled questions (CSV or JSONL)")],
    question_column: Annotated[str, typer.Option(help="the question column")] = "question",
    id_column: Annotated[str, typer.Option(help="the right answer id's column")] = "id",
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="default: the calibrated one")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
) -> None:
    """Top-1/top-5 accuracy, coverage and selective accuracy at the threshold, seconds per 1,000
    questions, on labelled questions the base was not built from."""
    from orchestrator.kb.entries import read_questions
    from orchestrator.kb.evaluate import evaluate_kb
    from orchestrator.registry.folders import resolve_skills_dir
    from orchestrator.registry.registry import Registry

    registry = Registry.from_folder(resolve_skills_dir(skills_dir))
    questions = read_questions(csv_path, question_column, id_column)
    report = evaluate_kb(registry.resolve(name), questions, threshold)
    if json_out:
        typer.echo(json.dumps(report))
        return
    for key, value in report.items():
        typer.echo(f"{key:>20}: {value}")


if __name__ == "__main__":  # `python -m orchestrator.cli.kb build ...` (a manifest's rebuild)
    kb_app()
