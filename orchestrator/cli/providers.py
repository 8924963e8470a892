"""``orchestrator providers``: measure the big-model providers against the small models.

    orchestrator providers eval SKILL --csv LABELLED.csv [--providers a,b] [--margin 0.05]
    orchestrator providers measurements [SKILL]

``eval`` is the bake-off (:mod:`orchestrator.learning.bakeoff`): the CSV rows the skill's small
tiers are unsure of go to each provider the cascade's way, and the table shows them side by side
with the small model. Measurements are stored; jobs that escalate read them (a provider measured
worse gets none of the skill's unsure items), and so does the dashboard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.accounting.escalation_value import DEFAULT_MARGIN
from orchestrator.cli.errors import reports_errors
from orchestrator.config import Settings

__all__ = ["providers_app"]

providers_app = typer.Typer(
    no_args_is_help=True,
    help="Measure big-model providers against the small models (is escalation worth it?).",
)

err = Console(stderr=True, soft_wrap=True)


@providers_app.command("eval")
@reports_errors
def eval_command(
    skill: Annotated[str, typer.Argument(help="skill, skill@alias or skill@version")],
    csv_path: Annotated[
        Path, typer.Option("--csv", help="labelled CSV: the skill's input column(s) and 'label'")
    ],
    providers: Annotated[
        str | None,
        typer.Option(help="providers to measure, comma-separated (default: every configured one)"),
    ] = None,
    margin: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.99, help="accuracy gain over the small model a provider must show"
        ),
    ] = DEFAULT_MARGIN,
    label_column: Annotated[str, typer.Option(help="column holding the true label")] = "label",
    text_column: Annotated[
        str | None, typer.Option(help="text column, for one-field skills (default: as trained)")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="the skill's threshold (default: the calibrated one)"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="at most this many unsure items (a seeded sample)")
    ] = None,
    items_per_call: Annotated[int, typer.Option(min=1, max=200, help="items per call")] = 10,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="calls at once")] = 4,
    timeout_s: Annotated[float, typer.Option(min=0.1, help="bound on one call")] = 60.0,
    store: Annotated[
        bool, typer.Option(help="keep the measurements (jobs and the dashboard read them)")
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
) -> None:
    """Bake-off: SKILL's unsure CSV rows sent to each provider, side by side with the small model.

    Recommends the cheapest provider whose accuracy on those items beats the small model's by at
    least --margin (and significantly: a one-sided sign test at 5 %). A provider measured worse
    gets none of the skill's unsure items in jobs that escalate (`run --force-escalation` sends
    them anyway).
    """
    from orchestrator.learning.bakeoff import BakeOffOptions, run_bakeoff
    from orchestrator.telemetry.logs import configure_logging

    settings = Settings() if skills_dir is None else Settings(skills_dir=skills_dir)
    configure_logging(settings.log_format, "WARNING")
    names = [n.strip() for n in providers.split(",") if n.strip()] if providers else None
    options = BakeOffOptions(
        margin=margin,
        label_column=label_column,
        text_column=text_column,
        threshold=threshold,
        limit=limit,
        items_per_call=items_per_call,
        max_concurrency=concurrency,
        timeout_s=timeout_s,
        store=store,
    )
    report = run_bakeoff(skill, csv_path, providers=names, options=options, settings=settings)
    if json_out:
        print(json.dumps(report.to_dict()))
        return
    _print_report(report.to_dict())


@providers_app.command("measurements")
@reports_errors
def measurements_command(
    skill: Annotated[
        str | None, typer.Argument(help="only this skill (name or name@version)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="newest rows")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """The stored provider measurements, newest first (what jobs that escalate read): bake-offs,
    and what reviewers' answers say of each provider (source ``review``)."""
    from orchestrator.runtime.runtime import Runtime

    with Runtime(executor="local", settings=Settings()) as runtime:
        rows = [m.to_dict() for m in runtime.provider_measurements(limit, skill)]
    if json_out:
        print(json.dumps(rows))
        return
    table = Table(title="provider measurements (newest first)")
    for column in ("skill", "provider", "verdict", "items", "small", "provider acc", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["skill"],
            row["provider"],
            row["verdict"],
            str(row["items"]),
            _pct(row["small_accuracy"]),
            _pct(row["provider_accuracy"]),
            row["source"],
        )
    Console().print(table)


def _print_report(report: dict[str, Any]) -> None:
    small = report["small"]
    title = (
        f"{report['skill']}: {small['items']} unsure items of {report['rows']} rows "
        f"(tiers {' -> '.join(small['tiers'])}, thresholds "
        f"{', '.join(f'{t:.3f}' for t in small['thresholds'])})"
    )
    table = Table(title=title)
    columns = ("answered by", "accuracy", "correct", "failures", "calls", "tokens", "cost")
    for column in (*columns, "p50 s/call", "p95 s/call", "verdict"):
        table.add_column(
            column, justify="left" if column in ("answered by", "verdict") else "right"
        )
    table.add_row(
        "small model",
        _pct(small["accuracy"]),
        f"{small['correct']}/{small['items']}",
        "0",
        "0",
        "0",
        "$0",
        _secs(small["latency_p50_s"]),
        _secs(small["latency_p95_s"]),
        "",
    )
    for row in report["providers"]:
        table.add_row(
            f"{row['provider']} ({row['model']})",
            _pct(row["provider_accuracy"]),
            f"{row['provider_correct']}/{row['items']}",
            str(row["failures"]),
            str(row["calls"]),
            f"{row['prompt_tokens'] + row['completion_tokens']:,}",
            f"${row['cost_usd']:.4f}",
            _secs(row["latency_p50_s"]),
            _secs(row["latency_p95_s"]),
            f"{row['verdict']} ({row['gain']:+.1%}, p={row['p_value']:.3g})",
        )
    Console().print(table)
    _print_verdicts(report)


def _print_verdicts(report: dict[str, Any]) -> None:
    margin = report["margin"]
    if report["left_out_labels"]:
        left = ", ".join(f"{k} ({v})" for k, v in report["left_out_labels"].items())
        err.print(
            f"[yellow]warning[/]: rows with labels the skill does not know were left out: {left}"
        )
    if not report["small"]["items"]:
        err.print("no unsure items in this CSV: nothing to measure (the small tiers are sure)")
    for row in report["providers"]:
        if row["verdict"] == "worse":
            print(
                f"{row['provider']}: measured worse than the small model on these items "
                f"({row['provider_accuracy']:.1%} vs {row['small_accuracy']:.1%}): jobs that "
                "escalate keep the small answers (flagged, escalation_held) instead of asking it; "
                "`orchestrator run --force-escalation` asks anyway"
            )
    if report["recommended"]:
        print(
            f"recommended: {report['recommended']} (the cheapest provider that beats the small "
            f"model by at least {margin:.0%} on its unsure items, sign test p <= 0.05)"
        )
    else:
        print(
            f"recommended: none (no provider beats the small model by {margin:.0%} on these items)"
        )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
