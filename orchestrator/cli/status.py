"""``orchestrator status``: the Ray cluster's resources, its nodes and the orchestrator's skill actors.

It joins the cluster at ``--address`` / ``RAY_ADDRESS`` (or starts a local one on loopback, which
then shows an empty cluster of this machine). Actors are read from Ray's control store (GCS)
directly, so it works without the Ray dashboard: skill actors are those of class
``_SkillWorker`` (one per skill version per runtime), with their state, restarts, node and pid.

Example::

    RAY_ADDRESS=127.0.0.1:6379 orchestrator status
    orchestrator status --json
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

__all__ = ["SKILL_ACTOR_CLASS", "cluster_snapshot", "skill_actors", "status_command"]

#: The class name Ray records for the executor's skill actors (orchestrator.executors.ray).
SKILL_ACTOR_CLASS = "_SkillWorker"


def skill_actors(include_dead: bool = False) -> list[dict[str, Any]]:
    """The orchestrator's skill actors on the connected cluster (needs ``ray.init`` first).

    Each: ``actor_id``, ``skill`` (``name@version`` when the actor names itself, else ""),
    ``state`` (ALIVE, RESTARTING, PENDING_CREATION, DEAD...), ``restarts``, ``node_id``, ``pid``,
    ``num_cpus`` and ``job_id`` (the Ray driver that owns it).
    """
    from ray._private.state import state
    from ray.core.generated import gcs_pb2 as _gcs_pb2

    gcs_pb2: Any = _gcs_pb2  # generated protobuf module: no stubs

    accessor = state._connect_and_get_accessor()
    found = []
    for raw in accessor.get_actor_table(None, None):
        data = gcs_pb2.ActorTableData.FromString(raw)
        if data.class_name != SKILL_ACTOR_CLASS:
            continue
        actor_state = gcs_pb2.ActorTableData.ActorState.Name(data.state)
        if actor_state == "DEAD" and not include_dead:
            continue
        found.append(
            {
                "actor_id": data.actor_id.hex(),
                "skill": _skill_key(data.repr_name),
                "state": actor_state,
                "restarts": data.num_restarts,
                "node_id": (data.address.node_id or data.node_id).hex(),
                "pid": data.pid,
                "num_cpus": data.required_resources.get("CPU", 0.0),
                "job_id": data.job_id.hex(),
            }
        )
    return sorted(found, key=lambda a: (a["skill"], a["actor_id"]))


def _skill_key(repr_name: str) -> str:
    # `_SkillWorker(turn_intent@1.0.0)` when the worker defines __repr__; "" otherwise
    if "(" in repr_name and repr_name.endswith(")"):
        return repr_name[repr_name.index("(") + 1 : -1]
    return ""


def cluster_snapshot() -> dict[str, Any]:
    """Resources (total and free), live and dead nodes, and the skill actors, as one dict."""
    import ray

    nodes = [
        {
            "node_id": n["NodeID"],
            "address": n["NodeManagerAddress"],
            "alive": bool(n["Alive"]),
            "head": "node:__internal_head__" in n.get("Resources", {}),
            "resources": {
                k: v for k, v in n.get("Resources", {}).items() if not k.startswith("node:")
            },
        }
        for n in ray.nodes()
    ]
    return {
        "resources": _plain(ray.cluster_resources()),
        "available": _plain(ray.available_resources()),
        "nodes": nodes,
        "skill_actors": skill_actors(),
    }


def _plain(resources: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in sorted(resources.items()) if not k.startswith("node:")}


def render(snapshot: dict[str, Any]) -> str:
    """The snapshot as the plain text ``orchestrator status`` prints."""
    lines = ["resources (free / total):"]
    for name, total in snapshot["resources"].items():
        free = snapshot["available"].get(name, 0.0)
        if "memory" in name:  # bytes
            lines.append(f"  {name:<24} {free / 2**30:.1f} / {total / 2**30:.1f} GiB")
        else:
            lines.append(f"  {name:<24} {free:g} / {total:g}")
    lines.append(f"nodes ({sum(n['alive'] for n in snapshot['nodes'])} alive):")
    for node in snapshot["nodes"]:
        role = "head" if node["head"] else "worker"
        status = "alive" if node["alive"] else "dead"
        cpus = node["resources"].get("CPU", 0.0)
        lines.append(
            f"  {node['node_id'][:12]}  {node['address']:<15} {role:<6} {status}  CPU {cpus:g}"
        )
    actors = snapshot["skill_actors"]
    lines.append(f"skill actors ({len(actors)}):")
    if not actors:
        lines.append("  none (workers start with a job and stop when its runtime closes)")
    for actor in actors:
        lines.append(
            f"  {actor['skill'] or actor['actor_id'][:12]:<28} {actor['state']:<17} "
            f"node {actor['node_id'][:12]}  pid {actor['pid']}  restarts {actor['restarts']}  "
            f"CPU {actor['num_cpus']:g}"
        )
    return "\n".join(lines)


def status_command(
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to inspect (default: RAY_ADDRESS, else a local start)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Show the Ray cluster's resources, nodes and the orchestrator's skill actors."""
    from orchestrator.executors.ray import connect

    try:
        connect(address)
    except Exception as exc:  # Ray raises many kinds here; all mean "no cluster"
        typer.echo(f"error: could not start or reach Ray: {exc}", err=True)
        raise typer.Exit(1) from exc
    snapshot = cluster_snapshot()
    typer.echo(json.dumps(snapshot) if as_json else render(snapshot))
