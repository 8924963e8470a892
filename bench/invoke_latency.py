"""Latency of real-time turns: ``POST /v1/graphs/outbound_call_turn/invoke`` under concurrent load.

Starts the job service (``python -m orchestrator.service.settings``, local executor, SQLite in a temp dir) on
127.0.0.1, then drives it from this process with N concurrent clients, each on its own
keep-alive connection, through a minimal HTTP/1.1 client on raw asyncio streams (a full HTTP
client library would eat the CPU the server needs: the machine has 2 cores). Two phases:

- **closed loop** (the issue's setting): N clients send back-to-back; latency includes queueing
  behind the other N-1 clients, so p50 ~= N / throughput;
- **open loop**: requests are started at a fixed rate (``--rate``, spread over the same N
  connections), the way independent calls arrive; this is the latency one call turn sees at
  that load.

Every loop is bounded in requests and in time. Only loopback is contacted.

    .venv/bin/python bench/invoke_latency.py --clients 50 --requests 10000 --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UTTERANCES = [
    "yes",
    "no thanks",
    "stop calling me",
    "what is my account balance",
    "can you repeat that",
    "i want to book a flight to paris",
    "maybe later",
    "how do i get to the airport from here",
]


class Connection:
    """One keep-alive HTTP/1.1 connection: send a POST, read the response, measure it."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def post(self, path: str, body: bytes) -> tuple[int, float]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1]), time.perf_counter() - started

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _body(i: int) -> bytes:
    return json.dumps({"input": {"utterance": UTTERANCES[i % len(UTTERANCES)]}, "id": i}).encode()


async def closed_loop(conns: list[Connection], path: str, total: int, limit_s: float) -> dict:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    deadline = time.perf_counter() + limit_s

    async def client(conn: Connection) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:
                return
            status, seconds = await conn.post(path, _body(i))
            latencies.append(seconds)
            errors += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    return _summary("closed loop", latencies, errors, time.perf_counter() - started, len(conns))


async def open_loop(
    conns: list[Connection], path: str, total: int, rate: float, limit_s: float
) -> dict:
    """Start requests every 1/rate s on the next free connection; latency from the intended start
    (so a backlog counts against the server, no coordinated omission)."""
    latencies: list[float] = []
    errors = 0
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)

    async def one(i: int, intended: float) -> None:
        nonlocal errors
        conn = await free.get()
        try:
            status, _ = await conn.post(path, _body(i))
        finally:
            free.put_nowait(conn)
        latencies.append(time.perf_counter() - intended)
        errors += status != 200

    started = time.perf_counter()
    tasks = []
    for i in range(total):
        intended = started + i / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.perf_counter() - started > limit_s:
            break
        tasks.append(asyncio.create_task(one(i, intended)))
    await asyncio.gather(*tasks)
    summary = _summary(
        f"open loop @ {rate:g}/s", latencies, errors, time.perf_counter() - started, len(conns)
    )
    return summary


def _summary(name: str, latencies: list[float], errors: int, wall: float, clients: int) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) >= 100 else [float("nan")] * 99
    return {
        "phase": name,
        "clients": clients,
        "requests": len(ms),
        "errors": errors,
        "requests_per_s": round(len(ms) / wall, 1),
        "p50_ms": round(q[49], 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(ms[-1], 2) if ms else None,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    sys.path.insert(0, str(ROOT))
    from orchestrator.service.auth import new_key

    key, digest = new_key()
    config = data_dir / "service.yaml"
    config.write_text(
        json.dumps(
            {
                "runtime": {"executor": "local", "data_dir": str(data_dir), "log_level": "WARNING"},
                "api_keys": [{"name": "bench", "sha256": digest, "scopes": ["graphs:invoke"]}],
                "warm_graphs": ["outbound_call_turn"],
            }
        )
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.service.settings",
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir / "service.log").open("wb"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((data_dir / "service.log").read_text()[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return process, key
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the service did not start")


async def run(
    port: int,
    key: str,
    *,
    graph: str,
    clients: int,
    requests: int,
    rates: list[float],
    limit_s: float,
) -> list[dict]:
    """Warm-up, then the closed loop and one open loop per rate, on ``clients`` connections."""
    path = f"/v1/graphs/{graph}/invoke"
    conns = [Connection("127.0.0.1", port, key) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in conns))
    try:
        await closed_loop(conns, path, min(500, requests), limit_s)  # warm-up
        results = [await closed_loop(conns, path, requests, limit_s)]
        for rate in rates:
            results.append(await open_loop(conns, path, requests, rate, limit_s))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return results


def measure(
    *,
    clients: int,
    requests: int,
    rates: list[float],
    limit_s: float,
    graph: str = "outbound_call_turn",
) -> list[dict]:
    """Start the service, run every phase against it, stop it: one summary per phase."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        process, key = start_service(Path(tmp), port)
        try:
            return asyncio.run(
                run(
                    port,
                    key,
                    graph=graph,
                    clients=clients,
                    requests=requests,
                    rates=rates,
                    limit_s=limit_s,
                )
            )
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10_000, help="per phase (bounded)")
    parser.add_argument("--rate", type=float, nargs="*", default=[250.0, 1000.0])
    parser.add_argument("--limit-s", type=float, default=60.0, help="time bound per phase")
    parser.add_argument("--graph", default="outbound_call_turn")
    args = parser.parse_args()
    results = measure(
        clients=args.clients,
        requests=args.requests,
        rates=args.rate,
        limit_s=args.limit_s,
        graph=args.graph,
    )
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
