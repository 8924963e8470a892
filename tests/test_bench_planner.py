"""The planning benchmark's scoring (``bench/planner_scoring.py``) and wrong stub, on hand-made plans.

``bench/planner.py`` plans with the embedded model and trains two skills, which takes minutes;
these tests check what decides its figures without either: the task file is well formed, the
reference turn graph scores right, each kind of mistake is named, and the scripted wrong answers
are wrong in the way they claim.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.errors import PlanInvalid
from orchestrator.graph.spec import GraphSpec, load_graph

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@functools.cache
def _bench(name: str) -> ModuleType:
    """A module of bench/, loaded from its file (bench/ is not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # planner_stub imports planner_scoring by name
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tasks():
    return _bench("planner_scoring").load_tasks(BENCH / "planner_tasks.yaml")


def _task(tasks, task_id):
    return next(t for t in tasks.tasks if t.id == task_id)


def _turn_spec(**changes) -> GraphSpec:
    """graphs/outbound_call_turn.yaml with some parts replaced (a dict of GraphSpec fields)."""
    data = load_graph(ROOT / "graphs" / "outbound_call_turn.yaml").model_dump(
        mode="json", exclude_none=True
    )
    for step in data["steps"]:
        step["inputs"] = {k: f"{b['source']}.{b['field']}" for k, b in step["inputs"].items()}
    data["outputs"] = {k: f"{b['source']}.{b['field']}" for k, b in data["outputs"].items()}
    data.pop("evaluate", None)
    data.update(changes)
    return GraphSpec.from_dict(data, source="test")


def test_the_task_file_covers_what_the_issue_asks(tasks):
    assert len(tasks.tasks) >= 20
    assert sum(t.impossible for t in tasks.tasks) >= 3
    skills = {s for t in tasks.tasks for s in t.skills}
    assert {"banking_request", "contact_channel", "lead_score", "opt_out", "next_action"} <= skills
    first = _task(tasks, "issue_first_task")
    assert first.task.startswith("for each call turn, classify what the customer wants")
    # every field a run check fills from a dataset exists in some task
    named = {f for t in tasks.tasks for f in t.fields}
    assert set(tasks.samples["bank"]) <= named


def test_the_reference_turn_graph_is_right_for_the_issue_task(tasks):
    scoring = _bench("planner_scoring")
    task = _task(tasks, "issue_first_task")
    # the checked-in graph declares the optional lead_score field and binds it: the issue's task
    # has no such field, so it must stay unbound there
    spec = _turn_spec(inputs={"utterance": "str"})
    spec = spec.model_copy(
        update={
            "steps": [
                s.model_copy(
                    update={"inputs": {k: b for k, b in s.inputs.items() if k != "lead_score"}}
                )
                for s in spec.steps
            ]
        }
    )
    assert scoring.score_plan(task, spec) == []
    # with the lead score bound, only that binding is named
    with_score = _task(tasks, "next_move_with_known_score")
    full = _turn_spec(inputs={"utterance": "str", "lead_score": "float"})
    assert scoring.score_plan(with_score, full) == []
    assert scoring.score_plan(task, _turn_spec()) == [
        "next_action.lead_score <- input.lead_score (expected unbound)"
    ]


def test_each_kind_of_mistake_is_named(tasks):
    scoring = _bench("planner_scoring")
    task = _task(tasks, "next_move_with_known_score")
    two_intent_steps = _turn_spec(
        inputs={"utterance": "str", "lead_score": "float"},
        steps=[
            {"id": "intent", "skill": "turn_intent@prod", "inputs": {"text": "input.utterance"}},
            {"id": "tier2", "skill": "turn_intent_minilm", "inputs": {"text": "input.utterance"}},
            {"id": "opt", "skill": "opt_out", "inputs": {"text": "input.utterance"}},
            {
                "id": "act",
                "skill": "next_action",
                "inputs": {
                    "intent": "input.utterance",
                    "intent_confidence": "intent.confidence",
                    "opted_out": "opt.opted_out",
                },
            },
        ],
        outputs={"action": "act.action"},
    )
    misses = scoring.score_plan(task, two_intent_steps)
    assert misses == [
        "extra step(s): turn_intent_minilm",
        "turn_intent chain [] (expected ['turn_intent_minilm'])",
        "turn_intent threshold None (expected 'calibrated')",
        "next_action.intent <- input.utterance (expected turn_intent.intent)",
        "next_action.lead_score unbound (expected input.lead_score)",
        "output next_action.reason missing",
    ]


def test_errors_score_by_what_the_task_expects(tasks):
    scoring = _bench("planner_scoring")
    impossible = _task(tasks, "translate_to_french")
    possible = _task(tasks, "issue_first_task")

    class Impossible(PlanInvalid):
        pass

    refused = Impossible("translate", ["nothing translates"], 0)
    assert scoring.score_error(impossible, refused, Impossible) == []
    wrong_kind = scoring.score_error(impossible, PlanInvalid("t", ["bad"], 2), Impossible)
    assert len(wrong_kind) == 1 and wrong_kind[0].startswith(
        "raised PlanInvalid (expected Impossible): "
    )
    assert scoring.score_error(possible, refused, Impossible)[0].startswith("raised Impossible")
    assert scoring.score_plan(impossible, _turn_spec()) == [
        "planned an impossible task (expected PlanImpossible)"
    ]


def test_summary_counts_right_runs_and_caught():
    scoring = _bench("planner_scoring")
    outcome = scoring.Outcome
    outcomes = [
        outcome("a", "m", False, right=True, runs=True, calls=2, tokens=100, seconds=1.0),
        outcome("b", "m", False, right=True, runs=False, calls=2, tokens=100, seconds=3.0),
        outcome("c", "m", True, right=True, runs=None, error="PlanImpossible", refused=True),
        outcome("d", "m", False, right=False, runs=False, error="LLMOutputInvalid", refused=True),
    ]
    summary = scoring.summarize(outcomes)
    assert (summary["right"], summary["runs"], summary["right_and_runs"]) == (3, 1, 2)
    assert summary["right_and_runs_share"] == 0.5 and summary["caught"] == 3
    assert summary["calls_per_plan"] == 1.0 and summary["seconds_per_plan_median"] == 0.5


def test_a_task_file_with_a_dangling_binding_is_refused(tmp_path):
    scoring = _bench("planner_scoring")
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "tasks:\n- id: t\n  task: tag\n  fields: {text: str}\n  steps: [{skill: opt_out}]\n"
        "  bindings: {opt_out.text: input.utterance}\n  outputs: [opt_out.opted_out]\n"
    )
    with pytest.raises(ValueError, match="is not a job field"):
        scoring.load_tasks(path)


def test_the_wrong_stub_crosses_wires_and_breaks_schemas(tasks):
    stub = _bench("planner_stub")
    task = _task(tasks, "next_move_with_known_score")
    skills = ["turn_intent", "opt_out", "next_action", "lead_score"]
    meanings = {"clinc150_intent": ["turn_intent.intent"], "opted_out": ["opt_out.opted_out"]}
    returns = {
        "type": "object",
        "properties": {
            "returns": {
                "type": "array",
                "items": {"enum": ["clinc150_intent", "opted_out", "next_action.action", "x"]},
                "minItems": 1,
            }
        },
        "required": ["returns"],
    }
    choices = {
        "type": "object",
        "properties": {
            "next_action.lead_score": {"enum": ["input.lead_score", "opt_out.confidence"]},
            "next_action.intent": {"enum": ["turn_intent.intent", "input.utterance"]},
        },
        "required": ["next_action.lead_score", "next_action.intent"],
    }

    def answer(schema, fault):
        return stub.wrong_answer(schema, task, fault, skills, meanings)

    # it asks for what the task asks for, then wires every open choice wrongly
    assert answer(returns, "crossed_wires") == {"returns": ["next_action.action"]}
    assert answer(choices, "crossed_wires") == {
        "next_action.lead_score": "opt_out.confidence",
        "next_action.intent": "input.utterance",
    }
    # a near-tie offering nothing the task asks for: the way out, not a wrong deliverable
    tie = {
        "type": "object",
        "properties": {
            "returns": {
                "type": "array",
                "items": {"enum": ["clinc150_intent", "lead_score.will_subscribe", "nothing_fits"]},
            }
        },
    }
    assert answer(tie, "crossed_wires") == {"returns": ["nothing_fits"]}
    first = _task(tasks, "issue_first_task")  # it asks for the intent
    assert stub.wrong_answer(tie, first, "crossed_wires", skills, meanings) == {
        "returns": ["clinc150_intent"]
    }
    # an impossible task claims something registered instead
    french = _task(tasks, "translate_to_french")
    assert stub.wrong_answer(tie, french, "crossed_wires", skills, meanings) == {
        "returns": ["clinc150_intent"]
    }
    assert answer(choices, "incomplete") == {"next_action.intent": "turn_intent.intent"}
    assert answer(choices, "off_schema")["next_action.intent"] == "shell_exec.output"
    prose = stub.wrong_responder(task, "prose", skills)({"response_format": {}})
    assert isinstance(prose, str) and not prose.lstrip().startswith("{")
