"""The ``orchestrator distill`` and ``orchestrator skills promote|rollback`` commands (Typer).

Each prints its JSON report on stdout; an error ends it with one line on stderr
(:func:`~orchestrator.cli.errors.reports_errors`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.errors import reports_errors
from orchestrator.cli.skills import SkillsDirOption
from orchestrator.learning.distill import distill, promote, rollback

__all__ = ["distill_command", "promote_command", "rollback_command"]


@reports_errors
def distill_command(
    skill: Annotated[str, typer.Argument(help="skill to retrain, e.g. tickets")],
    base_csv: Annotated[
        Path | None,
        typer.Option(help="original training data (default: what the skill's manifest declares)"),
    ] = None,
    eval_csv: Annotated[
        Path | None,
        typer.Option(help="held-out labelled rows for the shadow comparison with prod"),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="version of the new canary (default: next minor)")
    ] = None,
    target_accuracy: Annotated[
        float | None, typer.Option(help="calibration target (default: prod's, else 0.97)")
    ] = None,
    examples_db: Annotated[
        Path | None, typer.Option(help="examples SQLite file (default: the data dir's)")
    ] = None,
    jobs_db: Annotated[
        Path | None,
        typer.Option(help="job store SQLite file whose ledgers give escalation per version"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON report only")] = False,
    skills_dir: SkillsDirOption = None,
) -> None:
    """Retrain SKILL on its original data + the big model's and reviewers' answers, register it
    as canary, and compare it with prod on held-out data."""
    from orchestrator.config.locations import default_db_path
    from orchestrator.store.examples import ExampleStore

    with ExampleStore(examples_db) as store:
        report = distill(
            skill,
            examples=store,
            skills_dir=skills_dir,
            base_csv=base_csv,
            new_version=version,
            target_accuracy=target_accuracy,
            eval_csv=eval_csv,
            jobs_db=jobs_db if jobs_db is not None else default_db_path(),
        )
    if not json_out:
        print(report.render())
    print(json.dumps(report.to_dict()))


@reports_errors
def promote_command(
    skill: Annotated[str, typer.Argument(help="skill whose canary becomes prod")],
    skills_dir: SkillsDirOption = None,
) -> None:
    """Move prod to the canary version (the old prod stays as 'previous' for rollback)."""
    print(json.dumps(promote(skill, skills_dir=skills_dir)))


@reports_errors
def rollback_command(
    skill: Annotated[str, typer.Argument(help="skill whose prod goes back to 'previous'")],
    skills_dir: SkillsDirOption = None,
) -> None:
    """Move prod back to the version it had before the last promotion."""
    print(json.dumps(rollback(skill, skills_dir=skills_dir)))
