"""One conformance suite, run against every executor: local (in-process), ray (actors on a real
cluster) and serve (Ray Serve deployments on the same cluster)."""

from __future__ import annotations

import pytest
from toy_skills import TOY_GRAPH

from orchestrator import (
    ExecutorError,
    GraphSpec,
    LocalExecutor,
    OrchestratorError,
    RayExecutor,
    Runtime,
    SetupError,
)
from orchestrator.executors import ServeExecutor
from orchestrator.executors.serve_options import ServeOptions


@pytest.fixture(scope="module")
def serve_instance(ray_cluster):
    """Serve on the session's Ray; shut down after this module (before Ray itself)."""
    from ray import serve

    yield serve
    serve.shutdown()


@pytest.fixture(params=["local", "ray", "serve"])
def runtime(request, toy_registry):
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
        executor = RayExecutor()
    elif request.param == "serve":
        request.getfixturevalue("serve_instance")
        # Deployments stay up from test to test (each is deployed once per module), on a sliver
        # of CPU each so the ray executor's actors still find room on the 2-CPU test cluster.
        executor = ServeExecutor(leave_running=True, defaults=ServeOptions(num_cpus=0.01))
    else:
        executor = LocalExecutor()
    with Runtime(registry=toy_registry, executor=executor) as rt:
        yield rt


def _graph(**changes):
    return GraphSpec.from_dict({**TOY_GRAPH, **changes})


def _single_step(skill: str) -> GraphSpec:
    return _graph(
        steps=[{"id": "only", "skill": skill, "inputs": {"text": "input.utterance"}}],
        outputs={"verdict": "only.verdict"},
        evaluate=None,
    )


def test_outputs_follow_the_bindings_in_input_order(runtime):
    items = [{"id": i, "utterance": "HEY" if i % 2 else "quiet please"} for i in range(7)]
    result = runtime.run(_graph(), items)
    assert [r.id for r in result.results] == list(range(7))
    assert result.results[0].outputs == {"length": 12, "verdict": "calm-12", "conf": 1.0}
    assert result.results[1].outputs == {
        "length": 3,
        "verdict": "loud-3",
        "conf": pytest.approx(0.3),
    }


def test_confidence_under_threshold_is_flagged_escalate(runtime):
    result = runtime.run(
        _graph(), [{"id": "a", "utterance": "hi"}, {"id": "b", "utterance": "hello world"}]
    )
    assert [r.escalate for r in result.results] == [True, False]
    assert result.ledger.escalated == 1
    assert result.ledger.skill_escalated["length@1.0.0"] == 1


def test_bad_items_get_their_own_errors_and_the_rest_complete(runtime):
    items = [
        {"id": 1, "utterance": "fine"},
        {"id": 2},
        {"utterance": "no id"},
        {"id": 4, "utterance": 42},
        {"id": 5, "utterance": "boom"},
        {"id": 6, "utterance": "also fine"},
    ]
    result = runtime.run(_graph(), items)
    by_id = {r.id: r for r in result.results}
    assert by_id[1].ok and by_id[6].ok
    assert by_id[2].error.code == "invalid_item" and "'utterance'" in by_id[2].error.message
    assert result.results[2].error.code == "invalid_item"
    assert "missing 'id'" in result.results[2].error.message
    assert by_id[4].error.code == "invalid_item"
    assert by_id[5].error.code == "skill_failed" and "boom is not a word" in by_id[5].error.message
    assert (result.ledger.succeeded, result.ledger.failed) == (2, 4)
    # the item that failed in `len` never reached `dec`
    assert result.ledger.skill_items["decide@1.0.0"] == 2


def test_many_chunks_keep_order_and_count_every_item(runtime):
    runtime.settings = runtime.settings.model_copy(
        update={"chunk_size": 16, "max_inflight_chunks": 3}
    )
    items = [{"id": i, "utterance": "x" * (i % 13 + 1)} for i in range(200)]
    result = runtime.run(_graph(), items)
    assert [r.id for r in result.results] == list(range(200))
    assert all(r.outputs["length"] == i % 13 + 1 for i, r in enumerate(result.results))
    assert result.ledger.chunks == 13
    assert result.ledger.skill_calls["length@1.0.0"] == 13
    assert result.ledger.items == 200


def test_batched_function_skill(runtime):
    result = runtime.run(_single_step("upper"), [{"id": 1, "utterance": "abc"}])
    assert result.results[0].outputs == {"verdict": "ABC"}


def test_setup_failure_fails_the_job_before_any_item(runtime):
    with pytest.raises(OrchestratorError, match="model file corrupt"):
        runtime.run(_single_step("broken_setup"), [{"id": 1, "utterance": "abc"}])


def test_contract_breaking_output_fails_its_chunk_with_a_clear_error(runtime):
    result = runtime.run(
        _single_step("wrong_length"), [{"id": 1, "utterance": "a"}, {"id": 2, "utterance": "b"}]
    )
    assert {r.error.code for r in result.results} == {"skill_failed"}
    assert "returned lengths" in result.results[0].error.message


def test_skill_crash_fails_its_chunk_not_the_job(runtime):
    result = runtime.run(_single_step("crashes"), [{"id": 1, "utterance": "a"}])
    assert result.results[0].error.code == "skill_failed"
    assert "division by zero in legacy model" in result.results[0].error.message


def test_empty_job(runtime):
    result = runtime.run(_graph(), [])
    assert result.results == [] and result.ledger.items == 0


def test_unknown_worker_is_an_executor_error(runtime):
    import asyncio

    with pytest.raises(ExecutorError, match="no worker"):
        asyncio.run(runtime.executor.predict("nope@1", {"text": ["a"]}))


def test_setup_errors_are_setup_errors():
    assert issubclass(ExecutorError, OrchestratorError)
    assert not issubclass(ExecutorError, SetupError)


def test_max_batch_splits_a_step_into_slices(runtime):
    import toy_skills

    toy_skills.length.max_batch = 4
    try:
        items = [{"id": i, "utterance": "y" * (i + 1)} for i in range(10)]
        items.insert(5, {"id": "bad", "utterance": "boom"})
        result = runtime.run(_graph(), items)
    finally:
        toy_skills.length.max_batch = None
    assert result.ledger.skill_calls["length@1.0.0"] == 3  # 11 items in slices of 4
    assert result.ledger.skill_calls["shout@1.0.0"] == 1
    good = [r for r in result.results if r.ok]
    assert [r.outputs["length"] for r in good] == list(range(1, 11))
    assert next(r for r in result.results if r.id == "bad").error.code == "skill_failed"
