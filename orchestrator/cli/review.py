"""``orchestrator review list|show|answer``: the review queue from a terminal.

Answering finishes the held item (its dependent steps run in this process, on the skills' local
models), stores the result with the ticket — and in the job store, for jobs the service ran — and
keeps the answer as a labelled example for distillation.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.cli.errors import fail_command, reports_errors
from orchestrator.errors import OrchestratorError, SetupError

if TYPE_CHECKING:
    from orchestrator.review.queue import ReviewQueue

__all__ = ["review_app"]

review_app = typer.Typer(no_args_is_help=True, help="Items held for a person: list and answer.")

DataDir = Annotated[Path | None, typer.Option(help="store folder (ORCHESTRATOR_DATA_DIR)")]


@review_app.command("list")
def list_command(
    status: Annotated[str, typer.Option(help="waiting, answered or all")] = "waiting",
    job: Annotated[str | None, typer.Option(help="only this job's tickets")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    data_dir: DataDir = None,
) -> None:
    """Tickets oldest first: id, job, item, step, proposed answer, confidence."""
    from rich.console import Console
    from rich.table import Table

    if status not in ("waiting", "answered", "all"):
        raise typer.BadParameter("choose waiting, answered or all", param_hint="--status")
    with _queue(data_dir) as queue:
        tickets = queue.list(
            status=None if status == "all" else status,  # type: ignore[arg-type]
            job_id=job,
            limit=limit,
        )
    if json_out:
        for ticket in tickets:
            print(json.dumps(ticket.to_dict(), default=str))
        return
    table = Table("id", "job", "item", "step", "inputs", "proposed", "conf", "status")
    for t in tickets:
        table.add_row(
            str(t.id),
            t.job_id,
            str(t.item_id),
            t.step,
            _short(t.inputs),
            _short(t.proposed),
            f"{t.confidence:.3f}",
            t.status if t.status == "waiting" else f"{t.status} by {t.reviewer}",
        )
    Console().print(table)
    if not tickets:
        Console(stderr=True).print(f"no {status} tickets")


@review_app.command("show")
def show_command(
    ticket: Annotated[int, typer.Argument(help="ticket id")], data_dir: DataDir = None
) -> None:
    """One ticket as JSON, with the labels its answer must come from."""
    from orchestrator.registry.registry import Registry

    with _queue(data_dir) as queue:
        found = queue.get(ticket)
    if found is None:
        message = f"no review ticket {ticket}; `orchestrator review list` shows them"
        raise fail_command(SetupError(message))
    view: dict[str, Any] = found.to_dict()
    try:
        skill = Registry.from_folder(_settings(data_dir).skills_dir).resolve(found.skill)
        view["allowed"] = {k: list(v) for k, v in skill.skill_cls.output_labels().items()}
    except OrchestratorError:
        view["allowed"] = None  # the skill version is gone; the answer is checked on submit
    print(json.dumps(view, indent=2, default=str))


@review_app.command("answer")
@reports_errors
def answer_command(
    ticket: Annotated[int, typer.Argument(help="ticket id")],
    values: Annotated[
        list[str],
        typer.Option("--set", help="FIELD=VALUE for each output of the skill, e.g. intent=balance"),
    ],
    reviewer: Annotated[str, typer.Option(help="who answers (kept with the example)")] = "cli",
    data_dir: DataDir = None,
) -> None:
    """Answer a ticket: the held item finishes with your answer; prints its result line.

    Like ``POST /v1/reviews/{id}/answer``: the ticket closes and the job's stored result is
    replaced in one transaction (the queue and the jobs share the store), or neither happens.
    """
    from orchestrator.runtime.runtime import Runtime
    from orchestrator.store.jobs import replace_result_in
    from orchestrator.store.location import open_store

    answer = _parse_values(values)
    settings = _settings(data_dir)
    with open_store(settings.store_location):
        pass  # the job store's tables exist before the transaction that updates them

    def also(run: Any, ticket: Any, result: dict[str, Any]) -> None:
        replace_result_in(run, ticket.job_id, ticket.item_idx, result)

    with Runtime(executor="local", settings=settings) as runtime:
        done = runtime.answer_review(ticket, answer, reviewer=reviewer, also=also)
    assert done.result is not None
    print(json.dumps(done.result, default=str))


def _parse_values(values: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for text in values:
        name, sep, raw = text.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{text!r}: write FIELD=VALUE", param_hint="--set")
        try:  # numbers and booleans as JSON; anything else is a string label
            answer[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            answer[name.strip()] = raw
    return answer


def _settings(data_dir: Path | None) -> Any:
    from orchestrator.config import Settings

    overrides: dict[str, Any] = {"data_dir": data_dir} if data_dir is not None else {}
    return Settings(**overrides)


def _queue(data_dir: Path | None) -> contextlib.closing[ReviewQueue]:
    from orchestrator.review.queue import ReviewQueue

    return contextlib.closing(ReviewQueue(_settings(data_dir).store_location))


def _short(value: Any, width: int = 48) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
