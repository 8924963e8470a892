"""Run the job service for tests: real uvicorn on 127.0.0.1, an ephemeral port, in a thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from orchestrator.service.auth import ApiKey, new_key

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Keys:
    """One key per role: admin, writer (jobs:read+write), reader, invoker, a second writer."""

    admin: str
    writer: str
    reader: str
    invoker: str
    other: str
    configs: list[ApiKey]


def make_keys() -> Keys:
    roles = {
        "admin": {"admin"},
        "writer": {"jobs:read", "jobs:write"},
        "reader": {"jobs:read", "skills:read"},
        "invoker": {"graphs:invoke"},
        "other": {"jobs:read", "jobs:write"},
    }
    plain: dict[str, str] = {}
    configs = []
    for name, scopes in roles.items():
        key, digest = new_key()
        plain[name] = key
        configs.append(ApiKey(name=name, sha256=digest, scopes=frozenset(scopes)))
    return Keys(**plain, configs=configs)


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:<ephemeral>; yields the base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def client(base_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def wait_for(job_url: str, http: httpx.Client, *, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it ends (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = http.get(job_url).json()
        if view["status"] in ("succeeded", "failed", "cancelled"):
            return view
        time.sleep(0.05)
    raise AssertionError(f"{job_url} did not end in {timeout} s")


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service_process(config: Path, port: int, stderr_path: Path, env: dict[str, str]) -> Any:
    """``python -m orchestrator.cli.serve`` in its own session (so a test can SIGKILL the group),
    once ``/readyz`` answers 200 (bounded: 60 s)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "orchestrator.cli.serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr_path.open("ab"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, stderr_path.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("service did not become ready")
