"""The default local Ray cluster keeps every port on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess

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


def test_actor_restarts_are_configurable_and_checked():
    from orchestrator import ConfigError, RayExecutor, Settings
    from orchestrator.executors import make_executor

    assert RayExecutor().max_restarts == 3
    assert make_executor("ray", max_restarts=-1).max_restarts == -1  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="max_restarts"):
        RayExecutor(max_restarts=-2)
    with pytest.raises(ValueError, match="actor_max_restarts"):
        Settings(actor_max_restarts=-2)
