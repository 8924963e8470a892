"""A bad graph fails at compile time, naming the step and what to fix, before any worker starts."""

from __future__ import annotations

import copy

import pytest
from toy_skills import TOY_GRAPH

from orchestrator import GraphSpec, GraphValidationError, SetupError, compile_graph, load_graph


def _graph(mutate) -> dict:
    data = copy.deepcopy(TOY_GRAPH)
    mutate(data)
    return data


def _issues(data, registry) -> list[str]:
    with pytest.raises(GraphValidationError) as info:
        compile_graph(GraphSpec.from_dict(data), registry)
    assert isinstance(info.value, SetupError)
    return [str(i) for i in info.value.issues]


def test_valid_graph_compiles_with_steps_in_dependency_order(toy_registry):
    compiled = compile_graph(GraphSpec.from_dict(TOY_GRAPH), toy_registry)
    order = [s.id for s in compiled.resolved.steps]
    assert order.index("dec") > order.index("len") and order.index("dec") > order.index("sh")
    assert {s.key for s in compiled.resolved.skills} == {
        "length@1.0.0",
        "shout@1.0.0",
        "decide@1.0.0",
    }


def test_unknown_skill_names_the_step_and_suggests(toy_registry):
    issues = _issues(_graph(lambda d: d["steps"][1].update(skill="shoutt")), toy_registry)
    assert issues == [
        "step 'sh': unknown skill 'shoutt'; did you mean 'shout'? Registered skills: "
        "broken_setup, crashes, decide, length, shout, upper, wrong_length"
    ]


def test_unknown_alias(toy_registry):
    issues = _issues(_graph(lambda d: d["steps"][0].update(skill="length@canary")), toy_registry)
    assert issues == [
        "step 'len': skill 'length' has no version or alias 'canary'; known: 1.0.0, prod"
    ]


def test_cycle_is_named(toy_registry):
    def make_cycle(d):
        d["steps"][0]["inputs"] = {"text": "dec.verdict"}

    issues = _issues(_graph(make_cycle), toy_registry)
    assert len(issues) == 1 and "cycle" in issues[0]
    assert "len" in issues[0] and "dec" in issues[0]


def test_binding_to_unknown_step_field_and_input(toy_registry):
    def break_bindings(d):
        d["steps"][2]["inputs"] = {"length": "lenn.length", "verdict": "sh.verdikt"}
        d["steps"][1]["inputs"] = {"text": "input.utterence"}

    issues = _issues(_graph(break_bindings), toy_registry)
    assert "step 'dec': lenn.length names unknown step 'lenn' (steps: len, sh, dec)" in issues
    assert any(
        i.startswith("step 'dec': sh.verdikt: step 'sh' has no output 'verdikt'") for i in issues
    )
    assert any(i.startswith("step 'sh': input.utterence is not a job input") for i in issues)


def test_type_mismatch(toy_registry):
    issues = _issues(
        _graph(lambda d: d["steps"][2]["inputs"].update(length="sh.verdict")), toy_registry
    )
    assert issues == ["step 'dec': input 'length' expects int but sh.verdict is str"]


def test_optional_job_field_cannot_feed_a_required_input(toy_registry):
    issues = _issues(
        _graph(lambda d: d["inputs"].update(utterance={"type": "str", "required": False})),
        toy_registry,
    )
    assert any("expects str but input.utterance is None | str" in i for i in issues)


def test_unbound_and_unknown_skill_inputs(toy_registry):
    issues = _issues(
        _graph(
            lambda d: d["steps"][2].update(inputs={"lenght": "len.length", "verdict": "sh.verdict"})
        ),
        toy_registry,
    )
    assert any("needs input 'length' but it is not bound" in i for i in issues)
    assert any("has no input 'lenght'; its inputs are: length, verdict" in i for i in issues)


def test_duplicate_step_id(toy_registry):
    issues = _issues(_graph(lambda d: d["steps"][1].update(id="len")), toy_registry)
    assert "step 'len': duplicate step id; give each step its own id" in issues


def test_every_problem_is_reported_at_once(toy_registry):
    def many(d):
        d["steps"][0]["skill"] = "nope"
        d["steps"][1]["id"] = "dec"
        d["outputs"]["x"] = "input.missing"

    assert len(_issues(_graph(many), toy_registry)) >= 3


def test_structural_errors_name_the_step():
    data = _graph(lambda d: d["steps"][1].update(inputs={"text": "not a binding"}, extra_key=1))
    with pytest.raises(GraphValidationError) as info:
        GraphSpec.from_dict(data)
    text = str(info.value)
    assert "step 'sh'" in text
    assert "must look like 'input.<field>' or '<step_id>.<field>'" in text
    assert "extra_key" in text


def test_reserved_names_are_rejected():
    with pytest.raises(GraphValidationError, match="'id' or 'label'"):
        GraphSpec.from_dict(_graph(lambda d: d["inputs"].update(label="str")))


def test_evaluate_must_name_an_output(toy_registry):
    issues = _issues(_graph(lambda d: d.update(evaluate={"output": "nope"})), toy_registry)
    assert issues == ["evaluate: output 'nope' is not one of the outputs"]


def test_yaml_round_trip(tmp_path, toy_registry):
    spec = GraphSpec.from_dict(TOY_GRAPH)
    path = tmp_path / "toy.yaml"
    path.write_text(spec.to_yaml())
    assert load_graph(path) == spec


def test_load_graph_file_errors(tmp_path):
    with pytest.raises(GraphValidationError, match="no such file"):
        load_graph(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [")
    with pytest.raises(GraphValidationError, match="not valid YAML"):
        load_graph(bad)


def test_checked_in_graphs_are_valid(builtin_registry):
    from pathlib import Path

    graphs = sorted((Path(__file__).parent.parent / "graphs").glob("*.yaml"))
    assert graphs
    for path in graphs:
        compile_graph(load_graph(path), builtin_registry)


def test_calibrated_threshold_needs_a_calibration(toy_registry):
    issues = _issues(
        _graph(lambda d: d["steps"][0].update(escalation={"threshold": "calibrated"})), toy_registry
    )
    assert issues == [
        "step 'len': threshold 'calibrated' but length@1.0.0 has no calibration for its current "
        "artifacts; run `orchestrator skills build` (it calibrates what the manifests and graphs/ "
        "ask for), `orchestrator skills calibrate length`, or give a number"
    ]


def test_threshold_range():
    with pytest.raises(GraphValidationError, match="between 0 and 1"):
        GraphSpec.from_dict(_graph(lambda d: d["steps"][0].update(escalation={"threshold": 1.5})))
