"""Cluster mode on one machine: a real two-node Ray cluster, and jobs surviving killed workers.

Both start a Ray of their own, so they run tests/cluster_scenarios.py in a subprocess: the test
session's shared Ray (conftest's ``ray_cluster``) is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def _scenario(name: str, timeout_s: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # always a cluster of the scenario's own
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled")
    proc = subprocess.run(
        [sys.executable, str(HERE / "cluster_scenarios.py"), name],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"scenario {name} exited {proc.returncode}\n"
        f"--- stdout (tail)\n{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-5000:]}"
    )
    outcome: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return outcome


def test_job_runs_on_a_two_node_cluster_with_skill_actors_on_both_nodes():
    outcome = _scenario("two_node", timeout_s=240)
    assert outcome["items"] == 300
    assert outcome["nodes"] == 2
    # four skill actors (one per skill version) spread over both nodes
    assert len(outcome["actor_nodes"]) == 4
    assert len(set(outcome["actor_nodes"].values())) == 2


@pytest.mark.slow
def test_200_jobs_complete_while_skill_workers_are_killed():
    outcome = _scenario("chaos", timeout_s=240)
    assert outcome["jobs"] == 200 and outcome["items"] == 200 * 20
    assert outcome["kills"] >= 3 and outcome["restarts"] >= outcome["kills"]
    free, total = outcome["cpu"]
    assert free == total


def test_deploy_config_writes_one_serve_deployment_per_aliased_skill_version(tmp_path):
    import typer
    import yaml
    from typer.testing import CliRunner

    from orchestrator.cli.deploy import deploy_config_command

    app = typer.Typer()
    app.command("config")(deploy_config_command)
    app.command("unused")(lambda: None)  # two commands: Typer keeps "config" as a subcommand
    out = tmp_path / "serve_config.yaml"
    runner = CliRunner()
    result = runner.invoke(app, ["config", "--output", str(out)])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(out.read_text())
    (application,) = config["applications"]
    deployments = {d["name"]: d for d in application["deployments"]}
    assert set(deployments) == {
        "lead_score--1_0_0",
        "next_action--1_0_0",
        "opt_out--1_0_0",
        "outbound_faq--1_0_0",
        "turn_intent--1_0_0",
        "turn_intent_minilm--1_0_0",
    }
    turn = deployments["turn_intent--1_0_0"]
    assert turn["ray_actor_options"] == {"num_cpus": 0.25}
    assert turn["user_config"]["aliases"] == ["prod"]
    # a URI Serve accepts: this folder, for one machine or a shared filesystem
    assert application["runtime_env"]["working_dir"] == f"local://{Path.cwd().resolve()}"
    # an existing file is kept unless --force
    assert runner.invoke(app, ["config", "--output", str(out)]).exit_code == 2
    assert runner.invoke(app, ["config", "--output", str(out), "--force"]).exit_code == 0


def test_status_shows_resources_nodes_and_skill_actors(ray_cluster, builtin_registry):
    from orchestrator import RayExecutor, Runtime
    from orchestrator.cli.status import cluster_snapshot, render

    graph = HERE.parent / "graphs" / "outbound_call_turn.yaml"
    with Runtime(registry=builtin_registry, executor=RayExecutor()) as runtime:
        runtime.run(graph, [{"id": 1, "utterance": "please stop calling me"}])
        mine = {handle._actor_id.hex() for handle in runtime.executor._actors.values()}
        snapshot = cluster_snapshot()
    assert snapshot["resources"]["CPU"] == 2.0
    assert [n["address"] for n in snapshot["nodes"] if n["alive"]] == ["127.0.0.1"]
    listed = {a["actor_id"]: a for a in snapshot["skill_actors"]}
    assert mine <= set(listed)
    assert all(listed[a]["state"] == "ALIVE" and listed[a]["pid"] > 0 for a in mine)
    text = render(snapshot)
    assert "resources (free / total):" in text and "skill actors" in text
