"""The ``orchestrator`` command line (Typer + Rich):

    orchestrator run GRAPH --input IN.jsonl --output OUT.jsonl [--json]
    orchestrator run --task "TASK" --fields utterance --input IN.jsonl --output OUT.jsonl
    orchestrator plan "TASK" --fields utterance,customer_id --output graph.yaml
    orchestrator validate GRAPH
    orchestrator skills list | build [NAME...]
    orchestrator providers eval SKILL --csv LABELLED.csv [--providers a,b]

Exit codes: 0 the job ran (per-item errors are in OUT and the summary), 1 no item succeeded,
2 setup error (bad graph, unknown skill, missing artifact): nothing ran.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.errors import fail_command, reports_errors
from orchestrator.config import Settings
from orchestrator.errors import OrchestratorError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Run graphs of small-model skills on Ray; list and build skills.",
)
skills_app = typer.Typer(no_args_is_help=True, help="List and build registered skills.")
app.add_typer(skills_app, name="skills")

err = Console(stderr=True, soft_wrap=True)  # no hard wraps: messages stay greppable


def main() -> None:
    """Entry point of the ``orchestrator`` script."""
    app()


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def run(
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="JSONL: one item per line, with 'id'")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSONL written: id + outputs per item")
    ],
    graph: Annotated[
        Path | None,
        typer.Argument(help="graph spec YAML, e.g. graphs/outbound_call_turn.yaml"),
    ] = None,
    json_summary: Annotated[
        bool, typer.Option("--json", help="print a one-line JSON summary last")
    ] = False,
    executor: Annotated[
        str | None, typer.Option(help="'ray' (default), 'serve' or 'local'")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="items per batch")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for a local Ray cluster")] = None,
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
    task: Annotated[
        str | None, typer.Option(help="plan the graph from this task instead of GRAPH (cached)")
    ] = None,
    escalate: Annotated[
        bool,
        typer.Option(help="send items under a step's threshold to the big model (else: flag them)"),
    ] = False,
    force_escalation: Annotated[
        bool,
        typer.Option(
            help="escalate (implies --escalate) even to providers measured worse than the small "
            "model on the skill's unsure items (`orchestrator providers eval`)"
        ),
    ] = False,
    fields: Annotated[
        str | None, typer.Option(help="with --task: the items' fields, e.g. utterance,score:float")
    ] = None,
) -> None:
    """Run GRAPH (or a planned --task) over --input; one result line per item to --output.

    The finished job (ledger, a sample of its items) is recorded in the job store, for
    `orchestrator report JOB_ID`, the API and dashboards.
    """
    from orchestrator.graph.intake import read_jsonl
    from orchestrator.runtime.run_record import ItemSample
    from orchestrator.runtime.runtime import Job, Runtime
    from orchestrator.telemetry.logs import configure_logging

    settings = _settings(
        executor=executor,
        chunk_size=chunk_size,
        num_cpus=num_cpus,
        skills_dir=skills_dir,
        escalate=escalate or force_escalation or None,
        force_escalation=force_escalation or None,
    )
    configure_logging(settings.log_format, settings.log_level)
    if (graph is None) == (task is None):
        err.print("[bold red]error[/]: give a GRAPH file or --task (with --fields), not both")
        raise typer.Exit(2)
    if not input_path.is_file():
        err.print(f"[bold red]error[/]: input file {input_path} does not exist")
        raise typer.Exit(2)
    total = sum(1 for line in input_path.open(encoding="utf-8") if line.strip())
    sample, started_at, job = ItemSample(), time.time(), None
    try:
        runtime = Runtime(settings=settings)
        with runtime:
            items = sample.wrap(read_jsonl(input_path))
            if task is not None:
                job = runtime.submit_task(task, items, fields=_parse_fields(fields))
            else:
                assert graph is not None
                # compile() fails here, before any worker starts, on a bad graph
                job = runtime.submit(runtime.compile(graph), items)
            if job.routes is not None and (warning := job.routes.warning()) is not None:
                err.print(f"[yellow]warning[/]: {warning}", highlight=False)
            with output.open("w", encoding="utf-8") as out, _progress(total) as advance:
                job.on_progress = advance
                for result in job:
                    out.write(json.dumps(result.to_dict(), default=str) + "\n")
    except OrchestratorError as exc:
        if job is not None:
            _record(settings, job, started_at, sample, exc)
        raise fail_command(exc) from None
    assert isinstance(job, Job)
    _record(settings, job, started_at, sample)
    summary = job.summary()
    if json_summary:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    if summary["items"] and not summary["succeeded"]:
        raise typer.Exit(1)


@app.command()
@reports_errors
def plan(
    task: Annotated[str, typer.Argument(help="what to do with each item, in plain words")],
    fields: Annotated[
        str, typer.Option(help="the items' input fields: name or name:type (str|int|float|bool)")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the graph YAML here")
    ] = None,
    name: Annotated[str, typer.Option(help="name of the planned graph")] = "planned",
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
    sample: Annotated[
        Path | None,
        typer.Option(help="JSONL items to dry-run the plan on (default: made up from the fields)"),
    ] = None,
) -> None:
    """Plan a graph over the registered skills: validated, dry-run on samples, cached, for review.

    With no provider configured (ORCHESTRATOR_LLM_PROVIDERS), the small embedded model plans:
    expect weak plans and review them before checking them into graphs/.
    """
    from orchestrator.runtime.runtime import Runtime
    from orchestrator.telemetry.logs import configure_logging

    settings = _settings(executor="local", skills_dir=skills_dir)
    configure_logging(settings.log_format, settings.log_level)
    with Runtime(settings=settings) as runtime:
        made = runtime.plan(task, _parse_fields(fields), sample=_read_sample(sample))
    spec = made.spec.model_copy(update={"name": name})
    text = spec.to_yaml()
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    source = "plan cache" if made.cached else f"{made.llm_calls} big-model call(s)"
    ran = "" if made.dry_run is None else f", ran on {made.dry_run.items} sample items"
    err.print(f"plan {made.key[:12]}: valid{ran}, from {source}, {made.tokens} tokens")
    for request in made.unmatched:
        err.print(f"[yellow]warning[/]: no registered skill matched {request!r}; left out")


def _read_sample(path: Path | None) -> list[dict[str, Any]] | None:
    """The dry run's sample items (the first 50 objects of a JSONL file)."""
    if path is None:
        return None
    items: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            value = json.loads(line)
            if not isinstance(value, dict):
                raise typer.BadParameter(
                    f"{path}:{number} is not a JSON object", param_hint="--sample"
                )
            items.append(value)
            if len(items) == 50:
                break
    return items


def _record(
    settings: Settings, job: Any, started_at: float, sample: Any, error: Any = None
) -> None:
    """Record the finished job in the store; a store problem is a warning, not a failed run."""
    import sqlite3

    from orchestrator.runtime.run_record import record_run

    try:
        record_run(settings, job, started_at=started_at, sample=sample, error=error)
    except (sqlite3.Error, OSError) as exc:
        err.print(f"[yellow]warning[/]: job {job.id} not recorded in the store: {exc}")
        return
    where = settings.store_location
    err.print(f"job {job.id} recorded in {where}: `orchestrator report {job.id}`", highlight=False)


def _parse_fields(text: str | None) -> dict[str, str]:
    if not text:
        raise typer.BadParameter("give the items' fields, e.g. --fields utterance,score:float")
    fields: dict[str, str] = {}
    for part in text.split(","):
        field_name, _, type_name = part.strip().partition(":")
        fields[field_name.strip()] = type_name.strip() or "str"
    return fields


@app.command()
@reports_errors
def validate(
    graph: Annotated[Path, typer.Argument(help="graph spec YAML")],
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
) -> None:
    """Check GRAPH against the registry without running anything."""
    from orchestrator.graph.compiler import compile_graph
    from orchestrator.graph.spec import load_graph
    from orchestrator.registry.registry import Registry

    settings = _settings(skills_dir=skills_dir)
    compiled = compile_graph(load_graph(graph), Registry.from_folder(settings.skills_dir))
    steps = ", ".join(f"{s.id}={s.skill.key}" for s in compiled.resolved.steps)
    print(f"{graph}: ok ({steps})")


@skills_app.command("list")
@reports_errors
def skills_list(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
) -> None:
    """Show every registered skill version with its aliases, backend, status and metrics."""
    from orchestrator.registry.registry import Registry

    settings = _settings(skills_dir=skills_dir)
    registry = Registry.from_folder(settings.skills_dir)
    rows: list[dict[str, Any]] = []
    for version in registry:
        aliases = [a for a, v in registry.aliases(version.name).items() if v == version.version]
        problem = version.problem()
        rows.append(
            {
                "name": version.name,
                "version": version.version,
                "aliases": aliases,
                "backend": version.skill_cls.backend,
                "status": "ready" if problem is None else "not built",
                "problem": problem,
                "metrics": version.build.metrics if version.build else {},
                "description": version.skill_cls.description,
            }
        )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"skills in {settings.skills_dir}")
    for column in ("name", "version", "aliases", "backend", "status", "metrics"):
        table.add_column(column)
    for row in rows:
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in list(row["metrics"].items())[:4])
        status = "[green]ready[/]" if row["problem"] is None else "[red]not built[/]"
        table.add_row(
            row["name"], row["version"], ",".join(row["aliases"]), row["backend"], status, metrics
        )
    Console().print(table)


@skills_app.command("build")
@reports_errors
def skills_build(
    names: Annotated[
        list[str] | None, typer.Argument(help="skills to build (default: all)")
    ] = None,
    force: Annotated[bool, typer.Option(help="rebuild even if the build is current")] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            help="train the named skills with this seed instead of the manifest's (a perturbed "
            "build, e.g. to see how much the results move; the next plain build replaces it)"
        ),
    ] = None,
    skills_dir: Annotated[Path | None, typer.Option(help="skills folder")] = None,
    graphs_dir: Annotated[
        Path | None,
        typer.Option(help="graphs whose calibrated thresholds to compute (default: graphs/)"),
    ] = None,
) -> None:
    """Train and export skill artifacts that are missing or stale, then calibrate every threshold
    the manifests and graphs ask for. Writes only under skills/*/artifacts/ (never a tracked file)."""
    from orchestrator.learning.build import build_skills

    settings = _settings(skills_dir=skills_dir)
    outcomes = build_skills(
        settings.skills_dir, names or None, force=force, seed=seed, graphs_dir=graphs_dir
    )
    for outcome in outcomes:
        took = f" in {outcome.seconds:.1f}s ({outcome.reason})" if outcome.status == "built" else ""
        err.print(f"{outcome.name}: {outcome.status}{took}")
        for note in outcome.calibrations:
            err.print(f"  {note}")


def _register_plugins() -> None:
    """Commands defined next to the concept they serve (importing them loads nothing heavy)."""
    from orchestrator.cli.deploy import deploy_config_command
    from orchestrator.cli.distill import distill_command, promote_command, rollback_command
    from orchestrator.cli.kb import kb_app
    from orchestrator.cli.providers import providers_app
    from orchestrator.cli.redact import redact_command
    from orchestrator.cli.report import report_command
    from orchestrator.cli.review import review_app
    from orchestrator.cli.serve import serve
    from orchestrator.cli.skills import calibrate_command, eval_command, train_app
    from orchestrator.cli.status import status_command

    app.command("redact")(redact_command)
    app.command("report")(report_command)
    app.add_typer(review_app, name="review")
    app.add_typer(providers_app, name="providers")
    app.add_typer(kb_app, name="kb")
    app.command("serve")(serve)
    app.command("status")(status_command)
    deploy_app = typer.Typer(no_args_is_help=True, help="Deployment files for a Ray cluster.")
    deploy_app.command("config")(deploy_config_command)
    app.add_typer(deploy_app, name="deploy")
    skills_app.add_typer(train_app, name="train")
    skills_app.command("eval")(eval_command)
    skills_app.command("calibrate")(calibrate_command)
    app.command("distill")(distill_command)
    skills_app.command("promote")(promote_command)
    skills_app.command("rollback")(rollback_command)


_register_plugins()


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"job {summary['job_id']} ({summary['graph']})", show_header=False)
    for key, value in summary.items():
        if key not in {"job_id", "graph"} and value is not None:
            table.add_row(key, _fmt(value))
    Console().print(table)


class _progress:
    """A Rich progress bar on stderr when it is a terminal; a no-op otherwise (CI, pipes)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return lambda n: None
        from rich.progress import Progress

        self.bar = Progress(console=err, transient=True)
        self.bar.start()
        task = self.bar.add_task("items", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
