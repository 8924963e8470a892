"""``orchestrator report JOB_ID``: a job's cost report (Markdown, JSON, PNG charts) from the store.

The work is :mod:`orchestrator.runtime.report`; this module only parses options and prints what it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.errors import reports_errors
from orchestrator.errors import OrchestratorError

__all__ = ["report_command"]


@reports_errors
def report_command(
    job_id: Annotated[
        str, typer.Argument(help="a job id (from `orchestrator run` or the service)")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="folder written; default reports/<JOB_ID>/"),
    ] = None,
    measure_sample: Annotated[
        int,
        typer.Option(
            min=0,
            max=1000,
            help="send N of the job's items to the configured big model the baseline's way and "
            "measure tokens and seconds per call (0: count only)",
        ),
    ] = 20,
    price_model: Annotated[
        str | None,
        typer.Option(
            help="reference price: a model of orchestrator.config.prices (gpt-4o-mini, gpt-4o, ...) or "
            "NAME=PROMPT/COMPLETION in USD per 1M tokens; default ORCHESTRATOR_REPORT_PRICE_MODEL"
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="store folder (default ORCHESTRATOR_DATA_DIR)")
    ] = None,
) -> None:
    """Write JOB_ID's cost report: big-model calls, tokens and cost next to the all-big-model
    baseline, small-model work, escalation per skill version; charts as PNG."""
    from orchestrator.config import Settings
    from orchestrator.config.prices import price_of
    from orchestrator.runtime.report import build_report, load_job, measure_job, usd, write_report
    from orchestrator.store.location import open_store
    from orchestrator.telemetry.logs import configure_logging

    try:
        overrides: dict[str, Any] = {"data_dir": data_dir, "report_price_model": price_model}
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:  # pydantic's ValidationError: an unknown price model
        typer.echo(f"error (config_error): {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, "WARNING")
    price = price_of(settings.report_price_model)
    with open_store(settings.store_location) as store:
        job = load_job(store, job_id)
        try:
            measured, note = measure_job(store, job, measure_sample, settings)
        except OrchestratorError as exc:  # no big model to measure with: report the counts
            measured, note = None, f"nothing measured ({exc.code}): {exc}"
            typer.echo(f"warning: {note}", err=True)
    report = build_report(job, price, [measured] if measured else [], [note] if note else [])
    written = write_report(report, output or Path("reports") / job_id)
    figures = report.to_dict()
    saved = figures["saved"]
    typer.echo(
        f"job {job_id}: {figures['runtime']['llm_calls']:,} big-model calls instead of "
        f"{figures['baseline']['llm_calls']:,} ({saved['llm_calls_fraction']:.1%} saved), "
        f"{usd(report.runtime_cost)} instead of {usd(report.baseline_cost)} at "
        f"{price.model} prices",
        err=True,
    )
    for path in written:
        typer.echo(str(path))
