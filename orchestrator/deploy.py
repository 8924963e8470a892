"""``orchestrator deploy config``: a Ray Serve config YAML for the registered skills, to edit.

One Serve application (``orchestrator``), one deployment per skill version that has an alias
(``prod``, ``canary``, ``previous``...; ``--all-versions`` for every version), each with the
skill's CPU request, one replica, ``max_ongoing_requests`` set explicitly (Serve's default of 5
queues calls badly), batching knobs in ``user_config`` and a commented place for autoscaling.
``runtime_env.working_dir`` is where the cluster gets the code and artifacts from: a local folder
that ``serve deploy`` uploads, or a zip URL the cluster can reach.

The file is the operator's to edit and check into their deployment repo; the skill deployments
themselves (``import_path``) come with the Serve work of the scale-out issue, so today the file is
a starting point that ``serve deploy`` validates, not yet one it can run. The actor executor needs
no such file: ``orchestrator run`` against ``RAY_ADDRESS`` starts its own skill actors.

Example::

    orchestrator deploy config --output deploy/serve_config.yaml
    orchestrator deploy config --all-versions --working-dir https://example.com/orchestrator.zip
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from orchestrator.errors import OrchestratorError
from orchestrator.registry import Registry, SkillVersion

__all__ = ["DEFAULT_IMPORT_PATH", "deploy_config_command", "deployment_name", "serve_config"]

#: The Serve application the skill deployments will be built by (the Serve part of issue 6).
DEFAULT_IMPORT_PATH = "orchestrator.serve_app:build_app"

_HEADER = """\
# Ray Serve config for the orchestrator's skills, written by `orchestrator deploy config`.
# Edit freely, then `serve deploy THIS_FILE` (or paste `applications:` into a KubeRay RayService's
# spec.serveConfigV2). One deployment per skill version; `user_config.aliases` are the registry
# aliases it had when this file was written (`orchestrator skills promote/rollback` move them).
#
# Per deployment you can set:
#   num_replicas: N                  # fixed count, or instead:
#   autoscaling_config: {min_replicas: 1, max_replicas: 4, target_ongoing_requests: 32}
#   ray_actor_options: {num_cpus: ..., memory: BYTES, num_gpus: ...}
#   max_ongoing_requests: 100        # keep explicit: Serve's default (5) serialises batch calls
#   user_config.max_batch_size / batch_wait_timeout_s   # request batching per replica
"""


def deployment_name(version: SkillVersion) -> str:
    """A Serve-safe deployment name for a skill version: ``turn_intent--1_0_0``."""
    return f"{version.name}--{re.sub(r'[^A-Za-z0-9_]', '_', version.version)}"


def serve_config(
    registry: Registry,
    *,
    working_dir: str = ".",
    import_path: str = DEFAULT_IMPORT_PATH,
    all_versions: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> dict[str, Any]:
    """The Serve config (``ServeDeploySchema`` shape) for ``registry``'s skills, as a dict."""
    deployments = []
    for name in registry.names():
        aliases = registry.aliases(name)
        for version in registry.versions(name):
            tags = sorted(a for a, v in aliases.items() if v == version.version)
            if not tags and not all_versions:
                continue
            cls = version.skill_cls
            deployments.append(
                {
                    "name": deployment_name(version),
                    "num_replicas": 1,
                    "max_ongoing_requests": 100,
                    "ray_actor_options": {"num_cpus": float(cls.num_cpus)},
                    "user_config": {
                        "skill": version.name,
                        "version": version.version,
                        "aliases": tags,
                        "backend": cls.backend,
                        "max_batch_size": int(cls.max_batch or 256),
                        "batch_wait_timeout_s": 0.01,
                        "skill_entrypoint": f"{cls.__module__}:{cls.__qualname__}",
                    },
                }
            )
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": "orchestrator",
                "route_prefix": "/skills",
                "import_path": import_path,
                "runtime_env": {
                    "working_dir": working_dir,
                    "env_vars": {"ORCHESTRATOR_SKILLS_DIR": "skills"},
                },
                "deployments": deployments,
            }
        ],
    }


def deploy_config_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="where to write the YAML ('-' for stdout)")
    ] = Path("serve_config.yaml"),
    skills_dir: Annotated[
        Path | None,
        typer.Option(help="skills folder (default: ORCHESTRATOR_SKILLS_DIR or skills/)"),
    ] = None,
    working_dir: Annotated[
        str,
        typer.Option(
            help="runtime_env working_dir: the project folder or a zip URL the cluster reaches"
        ),
    ] = ".",
    import_path: Annotated[
        str, typer.Option(help="Serve application builder, module:attribute")
    ] = DEFAULT_IMPORT_PATH,
    all_versions: Annotated[
        bool, typer.Option(help="a deployment for every version, not only aliased ones")
    ] = False,
    force: Annotated[bool, typer.Option(help="overwrite OUTPUT if it exists")] = False,
) -> None:
    """Write a Ray Serve config YAML for the registered skills (a file to edit and deploy)."""
    from orchestrator.config import Settings

    try:
        registry = Registry.from_folder(skills_dir or Settings().skills_dir)
    except OrchestratorError as exc:
        typer.echo(f"error ({exc.code}): {exc}", err=True)
        raise typer.Exit(2) from None
    config = serve_config(
        registry, working_dir=working_dir, import_path=import_path, all_versions=all_versions
    )
    text = _HEADER + yaml.safe_dump(config, sort_keys=False)
    if str(output) == "-":
        typer.echo(text, nl=False)
        return
    if output.exists() and not force:
        typer.echo(f"error: {output} exists (pass --force to overwrite)", err=True)
        raise typer.Exit(2)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    count = len(config["applications"][0]["deployments"])
    typer.echo(f"wrote {output}: {count} skill deployments")
