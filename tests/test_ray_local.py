"""The default local Ray cluster keeps every port on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def test_local_cluster_uses_loopback(ray_cluster):
    assert ray_cluster.util.get_node_ip_address() == "127.0.0.1"


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs `ss` (iproute2) to list sockets")
def test_ray_processes_listen_on_loopback_only(ray_cluster):
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = [
        line
        for line in out.splitlines()
        if any(tag in line for tag in ("raylet", "gcs_server", "ray::", f"pid={os.getpid()},"))
    ]
    assert ours, "expected Ray's listening sockets"
    for line in ours:
        local = line.split()[3]
        assert "127.0.0.1" in local, f"Ray listens beyond loopback: {line}"


_FRESH_LOCAL_START = """
import logging
import ray
from ray._raylet import AuthenticationMode, get_authentication_mode
from orchestrator.executors.ray import _RAY_AUTH_LOGGER, connect

connect(num_cpus=1)
print("TOKEN_AUTH", get_authentication_mode() == AuthenticationMode.TOKEN)
print("LOGGER_LEVEL", logging.getLogger(_RAY_AUTH_LOGGER).level)
ray.shutdown()
"""


def test_local_start_keeps_token_auth_on_without_a_notice(tmp_path):
    # The default path, as a newcomer gets it: RAY_AUTH_MODE unset (conftest sets it for the
    # session's own cluster), a home without a token yet. A fresh process: one Ray per process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(tmp_path), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    run = subprocess.run(
        [sys.executable, "-c", _FRESH_LOCAL_START],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "Token authentication" not in out and "RAY_AUTH_MODE" not in out, out
    assert "TOKEN_AUTH True" in run.stdout
    assert "LOGGER_LEVEL 0" in run.stdout  # Ray's logger is put back as it was
    token_file = tmp_path / ".ray" / "auth_token"
    assert token_file.stat().st_mode & 0o777 == 0o600  # Ray writes it with the umask


def test_actor_restarts_are_configurable_and_checked():
    from orchestrator import ConfigError, RayExecutor, Settings
    from orchestrator.executors import make_executor

    assert RayExecutor().max_restarts == 3
    assert make_executor("ray", max_restarts=-1).max_restarts == -1  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="max_restarts"):
        RayExecutor(max_restarts=-2)
    with pytest.raises(ValueError, match="actor_max_restarts"):
        Settings(actor_max_restarts=-2)
