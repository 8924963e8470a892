"""The serve executor on the session's real Ray: replicas that come back, request batching,
multiplexed versions, and the Serve config of ``orchestrator deploy config`` as a running app.

(The executor conformance suite runs on it too: tests/test_executor_conformance.py.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from orchestrator import ConfigError, Predictions, Registry, Runtime, skill
from orchestrator.executors import ServeExecutor, make_executor
from orchestrator.executors.serve_options import ServeOptions, deployment_name, serve_options

ROOT = Path(__file__).resolve().parent.parent
TURN_GRAPH = ROOT / "graphs" / "outbound_call_turn.yaml"


class Text(BaseModel):
    text: str


class Seen(BaseModel):
    seen: int


@skill(
    name="batch_seen",
    version="1.0.0",
    description="Each item's output is the size of the model call that answered it.",
    batched=True,
    input=Text,
    output=Seen,
)
def batch_seen(batch: dict[str, list[str]]) -> Predictions:
    size = len(batch["text"])
    return Predictions({"seen": [size] * size}, [1.0] * size)


class Version(BaseModel):
    version: str


def _versioned(number: str) -> type:
    @skill(
        name="which_version",
        version=number,
        description="Answers with its own version.",
        batched=True,
        input=Text,
        output=Version,
    )
    def which_version(batch: dict[str, list[str]]) -> Predictions:
        return Predictions({"version": [number] * len(batch["text"])}, [1.0] * len(batch["text"]))

    return which_version


#: two versions of one skill, defined at import so replicas can import them by name
WHICH_V1, WHICH_V2 = _versioned("1.0.0"), _versioned("2.0.0")


@pytest.fixture(scope="module")
def serve_instance(ray_cluster):
    from ray import serve

    yield serve
    serve.shutdown()


def _run(coro):
    return asyncio.run(coro)


def test_options_come_from_settings_and_the_skill():
    from orchestrator import Settings

    executor = make_executor(
        "serve", settings=Settings(serve_min_replicas=2, serve_max_replicas=4, serve_app="x")
    )
    assert isinstance(executor, ServeExecutor) and executor.app == "x"
    assert executor.defaults.autoscaling
    registry = Registry()
    registry.register(batch_seen)
    version = registry.resolve("batch_seen")
    options = serve_options(version, executor.defaults).deployment_options(version)
    assert options["autoscaling_config"]["max_replicas"] == 4
    assert options["max_ongoing_requests"] == 100
    assert options["ray_actor_options"] == {"num_cpus": 0.25}
    batch_seen.serve_options = {"min_replicas": 3, "max_batch_size": 8}  # type: ignore[attr-defined]
    try:
        mine = serve_options(version, executor.defaults)
        assert (mine.min_replicas, mine.max_replicas, mine.max_batch_size) == (3, 4, 8)
        batch_seen.serve_options = {"replicas": 3}  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="unknown serve_options"):
            serve_options(version, executor.defaults)
    finally:
        del batch_seen.serve_options  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="below min_replicas"):
        ServeOptions(min_replicas=3, max_replicas=2)


def test_small_calls_are_batched_big_ones_go_straight_to_the_model(serve_instance):
    registry = Registry()
    registry.register(batch_seen)
    version = registry.resolve("batch_seen")
    executor = ServeExecutor(defaults=ServeOptions(max_batch_size=16, batch_wait_timeout_s=0.05))

    async def scenario():
        await executor.start([version])
        try:
            singles = await asyncio.gather(
                *(executor.predict(version.key, {"text": [f"t{i}"]}) for i in range(12))
            )
            big = await executor.predict(version.key, {"text": ["x"] * 40})
        finally:
            await executor.close()
        return singles, big

    singles, big = _run(scenario())
    seen = [p.outputs["seen"][0] for p in singles]
    assert all(len(p) == 1 for p in singles)
    assert max(seen) > 1, f"no two concurrent calls shared a model call: {seen}"
    assert list(big.outputs["seen"]) == [40] * 40  # over max_batch_size: not batched


def test_killed_replica_is_replaced_reloads_its_model_and_the_job_completes(
    serve_instance, builtin_registry
):
    import ray
    from ray import serve

    from skills.data import clinc150_eval

    turns = clinc150_eval("test")[::11][:240]
    items = [{"id": n, "utterance": text} for n, (text, _) in enumerate(turns)]
    intent = builtin_registry.resolve("turn_intent@prod")
    name = deployment_name(intent)
    executor = ServeExecutor(defaults=ServeOptions(health_check_period_s=1.0))
    with Runtime(registry=builtin_registry, executor=executor) as runtime:
        runtime.settings = runtime.settings.model_copy(
            update={"chunk_size": 40, "max_inflight_chunks": 1}
        )
        runtime.run(TURN_GRAPH, items[:2])  # deploys the three skills
        handle = serve.get_deployment_handle(name, name)
        before = handle.describe.remote().result(timeout_s=30)
        assert before["loaded"]
        killed = []

        def kill_after_first_chunk(done: int) -> None:
            if not killed:
                ray.kill(ray.get_actor(before["actor_name"], namespace="serve"), no_restart=True)
                killed.append(done)

        job = runtime.submit(TURN_GRAPH, items, on_progress=kill_after_first_chunk)
        results = list(job)
        after = handle.describe.remote().result(timeout_s=60)
    assert killed, "the replica was never killed"
    assert sorted(r.id for r in results) == [i["id"] for i in items]
    assert all(r.ok for r in results), [r.to_dict() for r in results if not r.ok][:2]
    assert after["pid"] != before["pid"] and after["replica"] != before["replica"]
    assert after["loaded"]


def test_versions_of_one_skill_share_a_multiplexed_deployment(serve_instance):
    from ray import serve

    registry = Registry()
    registry.register(WHICH_V1)
    registry.register(WHICH_V2)
    v1, v2 = registry.resolve("which_version@1.0.0"), registry.resolve("which_version@2.0.0")
    executor = ServeExecutor(multiplex=True)

    async def scenario():
        await executor.start([v1, v2])
        try:
            answers = [
                (await executor.predict(v.key, {"text": ["a", "b"]})).outputs["version"]
                for v in (v1, v2, v1)
            ]
            return answers, set(serve.status().applications)
        finally:
            await executor.close()

    answers, apps = _run(scenario())
    assert answers == [["1.0.0"] * 2, ["2.0.0"] * 2, ["1.0.0"] * 2]
    assert "which_version--versions" in apps and "which_version--2_0_0" not in apps


def test_deploy_config_yaml_runs_as_a_serve_app_and_the_executor_attaches(
    serve_instance, builtin_registry
):
    import yaml
    from ray import serve
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    from orchestrator.cli.deploy import serve_config

    text = yaml.safe_dump(serve_config(builtin_registry, working_dir=f"local://{ROOT}"))
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    assert config.http_options.host == "127.0.0.1"
    (app_config,) = config.applications
    # What `serve run THIS_FILE` does (`serve deploy` hands the same to the controller over REST):
    # the controller imports build_app, calls it with `args`, and applies the `deployments:` list.
    serve_start(proxy_location="Disabled")  # keep the test cluster's Serve without a proxy
    serve.run  # noqa: B018 - the public module is loaded, as the CLI does
    client = serve_instance.api._get_global_client()
    client.deploy_apps(config, _blocking=True)
    try:
        deployed = serve.status().applications[app_config.name].deployments
        assert {d.name for d in app_config.deployments} <= set(deployed)
        handle = serve.get_app_handle(app_config.name)
        answer = handle.predict.remote("opt_out@1.0.0", {"text": ["stop calling me"]})
        assert answer.result(timeout_s=60).outputs["opted_out"] == [True]
        # A driver attaches to the deployments of that app instead of deploying its own.
        executor = ServeExecutor(app=app_config.name)
        with Runtime(registry=builtin_registry, executor=executor) as runtime:
            result = runtime.run(TURN_GRAPH, [{"id": 1, "utterance": "please stop calling me"}])
        assert result.results[0].ok and result.results[0].outputs["opted_out"] is True
        assert app_config.name in serve.status().applications  # attached apps are left running
    finally:
        serve.delete(app_config.name)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs `ss` (iproute2) to list sockets")
def test_serve_listens_on_loopback_only(serve_instance):
    from ray import serve

    serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = [
        line
        for line in out.splitlines()
        if any(tag in line for tag in ("ray::", "raylet", "gcs_server", f"pid={os.getpid()},"))
    ]
    assert ours
    assert all("127.0.0.1" in line.split()[3] for line in ours), ours
    assert not serve.status().proxies  # no HTTP proxy unless an operator's config asks for one
