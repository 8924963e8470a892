"""Cluster scenarios that need a Ray of their own: run as ``python cluster_scenarios.py NAME``.

The test session shares one local Ray; these start their own (a two-node cluster, a cluster whose
workers get killed), so tests/test_cluster.py runs them in a subprocess. Each prints one JSON line
``RESULT {...}`` with what it measured and exits 0 only when every check held.

- ``two_node``: a head and a second raylet on 127.0.0.1 (``ray.cluster_utils.Cluster``), one CPU
  each; the call-turn graph's skills ask for 0.5 CPU each here (1.5 in all), so their actors
  cannot all fit on one node; a job over real CLINC150 turns runs and the actors' nodes are read
  back from Ray.
- ``chaos``: a local two-CPU cluster; 200 jobs of 20 turns while a thread SIGKILLs a skill actor's
  worker process every ~2 s (at most ``max_restarts`` times per actor, the restart budget the
  executor gives each one); every job completes with one result per item and the cluster's free
  CPU returns to its total.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "graphs" / "outbound_call_turn.yaml"

# Loopback only, no auth token in ~/.ray (see MACHINE_NOTES): set before Ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(ROOT))
# Worker processes of a cluster started here inherit this: `skills.*` imports on every node.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p
)


def _turns(count: int, step: int = 7) -> list[dict[str, Any]]:
    from skills.data import clinc150_eval

    turns = clinc150_eval("test")[::step][:count]
    return [{"id": n, "utterance": text, "label": label} for n, (text, label) in enumerate(turns)]


def _check_one_result_per_item(results: list[Any], items: list[dict[str, Any]]) -> None:
    ids = [r.id for r in results]
    assert sorted(ids) == sorted(i["id"] for i in items), "results do not match items one to one"
    failed = [r.to_dict() for r in results if not r.ok]
    assert not failed, f"{len(failed)} items failed, e.g. {failed[:2]}"


def _skill_actors() -> list[dict[str, Any]]:
    """The orchestrator's skill actors as GCS knows them (no dashboard needed)."""
    from orchestrator.cli.status import skill_actors

    return skill_actors()


def two_node() -> dict[str, Any]:
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    from orchestrator import RayExecutor, Registry, Runtime

    ray_constants.ENABLE_RAY_CLUSTER = False  # read at import; keep everything on 127.0.0.1
    started = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1, resources={"node2": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        assert len(nodes) == 2, f"expected 2 live nodes, got {len(nodes)}"
        assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())

        # The built-in skills, each asking for half a CPU: 1.5 CPU does not fit on a 1-CPU node.
        builtin = Registry.from_folder(ROOT / "skills")
        registry = Registry()
        for name in builtin.names():
            for version in builtin.versions(name):
                heavier = type(version.skill_cls.__name__, (version.skill_cls,), {"num_cpus": 0.5})
                aliases = [a for a, v in builtin.aliases(name).items() if v == version.version]
                registry.register(
                    heavier, aliases=aliases, folder=version.folder, manifest=version.manifest
                )
        items = _turns(300)
        with Runtime(registry=registry, executor=RayExecutor()) as runtime:
            runtime.settings = runtime.settings.model_copy(update={"chunk_size": 64})
            job_started = time.perf_counter()
            result = runtime.run(GRAPH, items)
            job_s = time.perf_counter() - job_started
            actors = [a for a in _skill_actors() if a["state"] == "ALIVE"]
            keys = {h._actor_id.hex(): k for k, h in runtime.executor._actors.items()}
        _check_one_result_per_item(result.results, items)
        actor_nodes = sorted({a["node_id"] for a in actors})
        # turn_intent, its second tier turn_intent_minilm, opt_out, next_action
        assert len(actors) == 4, f"expected 4 skill actors, got {actors}"
        assert set(actor_nodes) == set(nodes), f"actors on {actor_nodes}, nodes {nodes}"
        return {
            "items": len(result.results),
            "nodes": len(nodes),
            "actor_nodes": {
                keys.get(a["actor_id"], a["actor_id"]): a["node_id"][:12] for a in actors
            },
            "job_s": round(job_s, 2),
            "total_s": round(time.perf_counter() - started, 2),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


def chaos(jobs: int = 200, per_job: int = 20, every_s: float = 2.0) -> dict[str, Any]:
    import ray

    from orchestrator import RayExecutor, Registry, Runtime
    from orchestrator.executors.ray import DEFAULT_MAX_RESTARTS, connect

    started = time.perf_counter()
    connect(num_cpus=2)
    registry = Registry.from_folder(ROOT / "skills")
    pool = _turns(per_job * 50, step=3)
    done = threading.Event()
    kills: list[str] = []
    kill_errors: list[str] = []
    kills_per_actor: dict[str, int] = {}

    def killer() -> None:
        rng = random.Random(6)
        deadline = time.monotonic() + 150  # bounded in time and in count
        while not done.wait(every_s) and time.monotonic() < deadline:
            # only live actors with restarts left: Ray restarts each one at most DEFAULT_MAX_RESTARTS
            alive = [
                a
                for a in _skill_actors()
                if a["state"] == "ALIVE"
                and a["pid"]
                and max(a["restarts"], kills_per_actor.get(a["actor_id"], 0)) < DEFAULT_MAX_RESTARTS
            ]
            if not alive:
                continue
            victim = rng.choice(alive)
            try:
                os.kill(victim["pid"], signal.SIGKILL)
            except ProcessLookupError as exc:
                kill_errors.append(str(exc))
                continue
            kills_per_actor[victim["actor_id"]] = kills_per_actor.get(victim["actor_id"], 0) + 1
            kills.append(keys.get(victim["actor_id"], victim["actor_id"][:12]))

    completed = 0
    items_total = 0
    with Runtime(registry=registry, executor=RayExecutor()) as runtime:
        runtime.settings = runtime.settings.model_copy(update={"chunk_size": 10})
        runtime.run(GRAPH, pool[:per_job])  # warm the workers before the killing starts
        keys = {h._actor_id.hex(): k for k, h in runtime.executor._actors.items()}
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        run_started = time.perf_counter()
        try:
            for n in range(jobs):
                offset = (n * per_job) % (len(pool) - per_job)
                items = [dict(i, id=f"{n}-{i['id']}") for i in pool[offset : offset + per_job]]
                result = runtime.run(GRAPH, items, job_id=f"chaos-{n}")
                _check_one_result_per_item(result.results, items)
                completed += 1
                items_total += len(result.results)
        finally:
            done.set()
            thread.join(timeout=30)
        run_s = time.perf_counter() - run_started
        # every killed actor came back (Ray restarts it in the background; allow a few seconds)
        recover_until = time.monotonic() + 30
        while time.monotonic() < recover_until:
            states = [a["state"] for a in _skill_actors()]
            if states.count("ALIVE") == len(keys):
                break
            time.sleep(0.25)
        assert states.count("ALIVE") == len(keys), f"skill actors after the run: {states}"
        restarts = sum(a["restarts"] for a in _skill_actors())
    # the executor killed its actors on close: every CPU comes back
    settle_started = time.perf_counter()
    free, total = 0.0, -1.0
    while time.perf_counter() - settle_started < 20:
        free = ray.available_resources().get("CPU", 0.0)
        total = ray.cluster_resources().get("CPU", 0.0)
        if free == total:
            break
        time.sleep(0.25)
    assert free == total, f"free CPU {free} != total {total} after the run"
    assert completed == jobs
    assert len(kills) >= 3, f"only {len(kills)} kills happened: the run was too short to test"
    ray.shutdown()
    return {
        "jobs": completed,
        "items": items_total,
        "kills": len(kills),
        "killed": sorted(set(kills)),
        "kill_misses": len(kill_errors),
        "restarts": restarts,
        "run_s": round(run_s, 2),
        "settle_s": round(time.perf_counter() - settle_started, 2),
        "cpu": [free, total],
        "total_s": round(time.perf_counter() - started, 2),
    }


SCENARIOS = {"two_node": two_node, "chaos": chaos}


if __name__ == "__main__":
    outcome = SCENARIOS[sys.argv[1]]()
    print("RESULT " + json.dumps(outcome), flush=True)
