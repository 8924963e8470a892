"""``orchestrator deploy config``: a Ray Serve config YAML for the registered skills, to edit.

One Serve application (``orchestrator``), one deployment per skill version that has an alias
(``prod``, ``canary``, ``previous``...; ``--all-versions`` for every version), each with the
options the ``serve`` executor would give it (:class:`~orchestrator.executors.serve.ServeOptions`
from the skill and the ``ORCHESTRATOR_SERVE_*`` settings): CPU request, replicas or
``autoscaling_config``, ``max_ongoing_requests`` set explicitly (Serve's default of 5 queues calls
badly), request batching in ``user_config``. ``runtime_env.working_dir`` is where the cluster gets
the code and artifacts from: a local folder that ``serve deploy`` uploads, or a zip URL the cluster
can reach.

The file runs as it is: ``import_path`` names :func:`orchestrator.executors.serve_app.build_app`, which
builds a deployment per skill version listed in ``args.skills`` (names from
:func:`deployment_name`, so the ``deployments:`` entries override their options) behind a small
ingress. ``serve deploy serve_config.yaml`` (or ``serve run``) starts it; drivers then call it with
``ORCHESTRATOR_EXECUTOR=serve ORCHESTRATOR_SERVE_APP=orchestrator``. The HTTP proxy stays on
127.0.0.1 unless the operator changes ``http_options``.

Example::

    orchestrator deploy config --output deploy/serve_config.yaml
    orchestrator deploy config --all-versions --working-dir https://example.com/orchestrator.zip
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from orchestrator.errors import OrchestratorError
from orchestrator.executors.serve_options import ServeOptions, deployment_name, serve_options
from orchestrator.registry.registry import Registry

#: Re-exported: deployment names are shared with the serve executor.
__all__ = ["DEFAULT_IMPORT_PATH", "deploy_config_command", "deployment_name", "serve_config"]

#: The Serve application builder of the skill deployments.
DEFAULT_IMPORT_PATH = "orchestrator.executors.serve_app:build_app"

_HEADER = """\
# Ray Serve config for the orchestrator's skills, written by `orchestrator deploy config`.
# Edit freely, then `serve deploy THIS_FILE` (or `serve run THIS_FILE`, or paste `applications:`
# into a KubeRay RayService's spec.serveConfigV2). One deployment per skill version listed in
# `args.skills` (a deployment below must name one of them); `user_config.aliases` are the
# registry aliases it had when this file was written (`orchestrator skills promote/rollback`
# move them). Serve accepts only URIs in runtime_env.working_dir: a zip URL, or
# local:///path for a folder with the project and built artifacts on every node.
#
# Per deployment you can set:
#   num_replicas: N                  # fixed count, or instead:
#   autoscaling_config: {min_replicas: 1, max_replicas: 4, target_ongoing_requests: 2}
#   ray_actor_options: {num_cpus: ..., memory: BYTES, num_gpus: ...}
#   max_ongoing_requests: 100        # keep explicit: Serve's default (5) serialises batch calls
#   user_config.max_batch_size / batch_wait_timeout_s   # request batching per replica: calls
#                                    # under max_batch_size items that arrive together share a
#                                    # model call (1 turns it off); changes need no restart
"""


def serve_config(
    registry: Registry,
    *,
    working_dir: str = ".",
    import_path: str = DEFAULT_IMPORT_PATH,
    all_versions: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
    defaults: ServeOptions | None = None,
) -> dict[str, Any]:
    """The Serve config (``ServeDeploySchema`` shape) for ``registry``'s skills, as a dict.

    ``defaults``: options for skills that declare none (default: the ``ORCHESTRATOR_SERVE_*``
    settings).
    """
    if defaults is None:
        from orchestrator.config import Settings

        defaults = ServeOptions.from_settings(Settings())
    deployments = []
    keys = []
    for name in registry.names():
        aliases = registry.aliases(name)
        for version in registry.versions(name):
            tags = sorted(a for a, v in aliases.items() if v == version.version)
            if not tags and not all_versions:
                continue
            cls = version.skill_cls
            options = serve_options(version, defaults).deployment_options(version)
            options.pop("health_check_period_s")  # Serve's default (10 s) unless edited
            user_config = {
                "skill": version.name,
                "version": version.version,
                "aliases": tags,
                "backend": cls.backend,
                **options.pop("user_config"),
                "skill_entrypoint": f"{cls.__module__}:{cls.__qualname__}",
            }
            deployments.append(
                {"name": deployment_name(version), **options, "user_config": user_config}
            )
            keys.append(version.key)
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": "orchestrator",
                "route_prefix": "/skills",
                "import_path": import_path,
                "args": {"skills": keys},
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
        str | None,
        typer.Option(
            help="runtime_env working_dir: a zip URL the cluster reaches, or local:///abs/path "
            "of the project (with built artifacts) on every node; default: local:// + this "
            "folder (right for a single machine or a shared filesystem)"
        ),
    ] = None,
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
    working_dir = working_dir or f"local://{Path.cwd().resolve()}"
    config = serve_config(
        registry, working_dir=working_dir, import_path=import_path, all_versions=all_versions
    )
    if "://" not in working_dir:
        typer.echo(
            f"note: working_dir {working_dir!r} is a plain path; `serve deploy` accepts only URIs "
            "there (a zip URL, or local:///abs/path present on every node): pass --working-dir",
            err=True,
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
