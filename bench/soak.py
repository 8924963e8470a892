"""Soak test of the job service (issue #16): 10x its configured capacity, two replicas, one store.

Starts replica A (``python -m orchestrator.cli.serve``, local executor, SQLite in a temp dir) on
127.0.0.1 with small, explicit limits (``CAPACITY`` below), then drives it for ``--duration-s``
with ten times what those limits admit, all at once and mixed:

- **submits**: ``10 x max_active_jobs`` clients submitting inline jobs (from several keys, so the
  per-key quota bites too); a share of them carries a ``webhook_url``;
- **invokes**: ``10 x max_concurrent_invokes`` clients sending real-time turns (on raw keep-alive
  connections, ``invoke_latency.Connection``: httpx would spend the 2 cores' CPU client-side);
- **SSE streams**: ``10 x max_event_streams_per_key`` clients per key following accepted jobs;
- **oversize bodies**: job bodies over ``max_request_bytes`` and turns over ``max_turn_bytes``;
- **slow webhooks**: a receiver on loopback that answers each delivery after ``--hook-delay-s``
  and records its ``X-Orchestrator-Delivery`` id.

At ``--replica-b-at`` of the run, replica B starts on the same SQLite file (same data dir, another
``replica_id`` and port) and takes half the traffic. Then a bounded drain: every accepted job must
end. Reported: requests by kind and status code, p50/p99 of invoke (also per phase: A alone, B
starting, both), RSS (VmRSS) of each service process when it became ready and at the end, **jobs lost** (accepted, not ended after the drain: must be 0),
**jobs run twice** (a chunk started more than once, from ``chunk_runs``: must be 0; a chunk run
by both replicas counts too), jobs split across replicas, and webhook deliveries (unique,
duplicates - at-least-once allows them - and missing).

Every loop is bounded by a count and by the wall clock; only 127.0.0.1 is contacted.

    .venv/bin/python bench/soak.py            # ~5 minutes on 2 cores
    .venv/bin/python bench/soak.py --quick    # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import platform
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))  # invoke_latency: its raw HTTP/1.1 connection
TERMINAL = ("succeeded", "failed", "cancelled")
from invoke_latency import UTTERANCES  # noqa: E402 (after the sys.path line): the same turns

#: the service's configured capacity; the load is ``--factor`` times this
CAPACITY: dict[str, Any] = {
    "max_active_jobs": 8,
    "max_active_jobs_per_key": 4,
    "max_running_jobs": 2,
    "max_concurrent_invokes": 8,
    "max_event_streams_per_key": 2,
    "webhook_concurrency": 2,
    "max_request_bytes": 256 * 1024,
    "max_turn_bytes": 4 * 1024,
}
WRITERS = 3  # keys that submit jobs


@dataclass
class Plan:
    """How much load, for how long (the CLI's flags)."""

    duration_s: float
    factor: int
    items_per_job: int
    max_jobs: int
    max_invokes: int
    max_streams: int
    max_oversize: int
    hook_every: int
    hook_delay_s: float
    replica_b_at: float
    drain_s: float
    graph: str
    chunk_size: int
    lease_s: float


@dataclass
class Tally:
    """What the clients saw."""

    codes: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    invoke_ms: list[float] = field(default_factory=list)
    invoke_at: list[float] = field(default_factory=list)  # when each ok invoke ended (monotonic)
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> owner key name
    hooked: set[str] = field(default_factory=set)  # accepted jobs that carry a webhook
    sse_done: int = 0
    counters: collections.Counter[str] = field(default_factory=collections.Counter)

    def count(self, kind: str, code: int | str) -> None:
        self.codes[(kind, str(code))] += 1


# --- the slow webhook receiver -------------------------------------------------------------------


class HookReceiver:
    """HTTP on 127.0.0.1 that answers each POST after ``delay_s`` (a slow endpoint) and records
    every delivery id with its job id, duplicates included."""

    def __init__(self, delay_s: float) -> None:
        self.received: list[tuple[str, str]] = []
        self.duplicate_at: list[float] = []  # when a delivery id arrived again (monotonic)
        lock = threading.Lock()
        received, duplicate_at = self.received, self.duplicate_at

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                time.sleep(delay_s)
                job_id = str(json.loads(body or b"{}").get("id"))
                with lock:
                    if any(d == self.headers.get("x-orchestrator-delivery") for d, _ in received):
                        duplicate_at.append(time.monotonic())
                    received.append((self.headers.get("x-orchestrator-delivery", ""), job_id))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the service processes -----------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    rss_start_kib: int
    rss_end_kib: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_config(data_dir: Path, plan: Plan, replica_id: str) -> tuple[Path, dict]:
    """The service YAML of one replica (JSON is YAML) and the plain keys, by name."""
    sys.path.insert(0, str(ROOT))
    from orchestrator.service.auth import new_key

    keys: dict[str, str] = {}
    configs = []
    roles = {f"writer{i}": ["jobs:read", "jobs:write"] for i in range(WRITERS)}
    roles["invoker"] = ["graphs:invoke"]
    roles["admin"] = ["admin"]
    for name, scopes in roles.items():
        key, digest = new_key()
        keys[name] = key
        configs.append({"name": name, "sha256": digest, "scopes": scopes})
    config = {
        "runtime": {
            "executor": "local",
            "data_dir": str(data_dir),
            "log_level": "WARNING",
            "chunk_size": plan.chunk_size,
        },
        "api_keys": configs,
        "warm_graphs": [plan.graph],
        "replica_id": replica_id,
        "job_lease_s": plan.lease_s,
        "job_lease_renew_s": plan.lease_s / 3,
        "webhook_hosts": ["127.0.0.1"],
        "webhook_timeout_s": max(5.0, plan.hook_delay_s * 3),
        "webhook_backoff_s": 1.0,
        **CAPACITY,
    }
    path = data_dir / f"{replica_id}.yaml"
    path.write_text(json.dumps(config, indent=1))
    return path, keys


def start_replica(name: str, config: Path, log_path: Path) -> Replica:
    """One ``orchestrator serve`` process, once ``/readyz`` answers 200 (bounded: 120 s)."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "orchestrator.cli.serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("ab"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"replica {name} exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Replica(name, process, url, rss_kib(process.pid))
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"replica {name} did not become ready in 120 s")


def stop_replicas(replicas: list[Replica]) -> dict[str, int | None]:
    """SIGTERM to every replica's process group at once, SIGKILL after 30 s; exit codes."""
    for replica in replicas:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGTERM)
    exits: dict[str, int | None] = {}
    for replica in replicas:
        try:
            exits[replica.name] = replica.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica.process.pid, signal.SIGKILL)
            exits[replica.name] = replica.process.wait(10)
    return exits


# --- the load ------------------------------------------------------------------------------------


class Load:
    """The mixed clients, against whichever replicas are up (``targets`` grows when B starts)."""

    def __init__(self, plan: Plan, keys: dict[str, str], hook_url: str) -> None:
        self.plan, self.keys, self.hook_url = plan, keys, hook_url
        self.targets: list[httpx.AsyncClient] = []
        self.tally = Tally()
        self.deadline = 0.0
        self._ids = itertools.count()
        self._rr = itertools.count()
        self.phases: dict[str, float] = {"a_only": 0.0}  # phase -> when it began (monotonic)

    def add_target(self, url: str) -> None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self.targets.append(httpx.AsyncClient(base_url=url, timeout=60, limits=limits))

    def _http(self) -> httpx.AsyncClient:
        return self.targets[next(self._rr) % len(self.targets)]

    def _live(self) -> bool:
        return time.monotonic() < self.deadline

    def _auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    async def submitter(self, budget: Iterator[int]) -> None:
        plan = self.plan
        while self._live() and next(budget, None) is not None:
            owner = f"writer{random.randrange(WRITERS)}"
            n = next(self._ids)
            body: dict[str, Any] = {
                "graph": plan.graph,
                "items": [
                    {"id": f"j{n}-{i}", "utterance": UTTERANCES[(n + i) % len(UTTERANCES)]}
                    for i in range(plan.items_per_job)
                ],
            }
            hooked = plan.hook_every > 0 and n % plan.hook_every == 0
            if hooked:
                body["webhook_url"] = self.hook_url
            code = await self._post("submit", "/v1/jobs", body, owner)
            if isinstance(code, dict):
                self.tally.accepted[code["id"]] = owner
                if hooked:
                    self.tally.hooked.add(code["id"])
            else:
                await asyncio.sleep(0.2 + random.random() * 0.3)  # a 429: back off a little

    async def _post(self, kind: str, path: str, body: Any, key: str) -> dict[str, Any] | None:
        try:
            response = await self._http().post(path, json=body, headers=self._auth(key))
        except httpx.HTTPError as exc:
            self.tally.count(kind, type(exc).__name__)
            return None
        self.tally.count(kind, response.status_code)
        return response.json() if response.status_code in (200, 202) else None

    async def invoker(self, budget: Iterator[int]) -> None:
        """Turns on raw keep-alive connections (``invoke_latency.Connection``, one per replica):
        httpx costs the client ~10 ms of CPU a request here, which would be measured as the
        service's latency on a 2-core machine."""
        from invoke_latency import Connection

        path = f"/v1/graphs/{self.plan.graph}/invoke"
        conns: dict[str, Connection] = {}
        try:
            while self._live() and (n := next(budget, None)) is not None:
                url = str(self._http().base_url)
                body = json.dumps(
                    {"input": {"utterance": UTTERANCES[n % len(UTTERANCES)]}, "id": n}
                )
                status = await self._turn(conns, url, path, body.encode())
                if status != 200:
                    await asyncio.sleep(0.05)  # 429 overloaded: Retry-After is 1 s; come sooner
        finally:
            for conn in conns.values():
                await conn.close()

    async def _turn(self, conns: dict[str, Any], url: str, path: str, body: bytes) -> int:
        from invoke_latency import Connection

        try:
            if url not in conns:
                host, port = url.removeprefix("http://").rstrip("/").split(":")
                conns[url] = Connection(host, int(port), self.keys["invoker"])
                await conns[url].open()
            status, seconds = await conns[url].post(path, body)
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError) as exc:
            conns.pop(url, None)  # the server closed it: open another next time
            closed = isinstance(exc, (IndexError, asyncio.IncompleteReadError))  # EOF mid-answer
            self.tally.count("invoke", "closed" if closed else type(exc).__name__)
            return 0
        self.tally.count("invoke", status)
        if status == 200:
            self.tally.invoke_ms.append(seconds * 1000)
            self.tally.invoke_at.append(time.monotonic())
        return status

    async def streamer(self, owner: str, budget: Iterator[int]) -> None:
        while self._live():
            mine = [j for j, o in self.tally.accepted.items() if o == owner]
            if not mine:  # nothing to follow yet: wait, without spending the budget
                await asyncio.sleep(0.2)
                continue
            if next(budget, None) is None:
                return
            job_id = random.choice(mine[-20:])  # recent jobs: most are still running
            try:
                await asyncio.wait_for(self._follow(owner, job_id), timeout=30)
            except (httpx.HTTPError, TimeoutError) as exc:
                self.tally.count("sse", type(exc).__name__)

    async def _follow(self, owner: str, job_id: str) -> None:
        http = self._http()
        async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=self._auth(owner)) as r:
            self.tally.count("sse", r.status_code)
            if r.status_code != 200:
                await asyncio.sleep(0.2 + random.random() * 0.3)
                return
            async for line in r.aiter_lines():
                if line.strip() in ("event: done", "event: expired"):
                    self.tally.sse_done += line.strip() == "event: done"
                    return

    async def oversize(self, budget: Iterator[int]) -> None:
        big_job = b'{"graph": "x", "items": ["' + b"a" * CAPACITY["max_request_bytes"] + b'"]}'
        utterance = "a" * CAPACITY["max_turn_bytes"]
        big_turn = json.dumps({"input": {"utterance": utterance}}).encode()
        while self._live() and (n := next(budget, None)) is not None:
            if n % 2:
                path, body, key, kind = "/v1/jobs", big_job, "writer0", "oversize_submit"
            else:
                path, body, key = f"/v1/graphs/{self.plan.graph}/invoke", big_turn, "invoker"
                kind = "oversize_invoke"
            headers = {**self._auth(key), "Content-Type": "application/json"}
            try:
                response = await self._http().post(path, content=body, headers=headers)
                self.tally.count(kind, response.status_code)
            except httpx.HTTPError as exc:  # refused unread: the server may close mid-body
                self.tally.count(kind, type(exc).__name__)
            await asyncio.sleep(0.05)


async def drive(load: Load, plan: Plan, start_b: Any) -> dict[str, float]:
    """Run every client until the deadline or the budgets are spent; start B on the way."""
    factor = plan.factor
    load.deadline = time.monotonic() + plan.duration_s
    jobs, invokes = iter(range(plan.max_jobs)), iter(range(plan.max_invokes))
    streams, oversize = iter(range(plan.max_streams)), iter(range(plan.max_oversize))
    per_key = factor * CAPACITY["max_event_streams_per_key"]
    clients = [
        *(load.submitter(jobs) for _ in range(factor * CAPACITY["max_active_jobs"])),
        *(load.invoker(invokes) for _ in range(factor * CAPACITY["max_concurrent_invokes"])),
        *(load.streamer(f"writer{k}", streams) for k in range(WRITERS) for _ in range(per_key)),
        *(load.oversize(oversize) for _ in range(max(1, factor // 2))),
    ]
    started = time.monotonic()
    tasks = [asyncio.create_task(c) for c in clients]
    await asyncio.sleep(plan.duration_s * plan.replica_b_at)
    load.phases["b_starting"] = time.monotonic()
    b_at = time.monotonic() - started
    url = await asyncio.to_thread(start_b)
    load.add_target(url)
    load.phases["both"] = time.monotonic()
    b_ready = time.monotonic() - started
    await asyncio.gather(*tasks)
    return {
        "clients": len(clients),
        "load_s": round(time.monotonic() - started, 1),
        "replica_b_started_at_s": round(b_at, 1),
        "replica_b_ready_at_s": round(b_ready, 1),
    }


async def drain(load: Load, plan: Plan, admin: str) -> dict[str, str]:
    """Poll every accepted job until it ends (bounded: ``drain_s``): id -> last status seen."""
    status: dict[str, str] = {}
    deadline = time.monotonic() + plan.drain_s
    http = load.targets[0]
    headers = {"Authorization": f"Bearer {admin}"}
    pending = list(load.tally.accepted)
    while pending and time.monotonic() < deadline:
        for job_id in pending:
            try:
                response = await http.get(f"/v1/jobs/{job_id}", headers=headers)
                status[job_id] = (
                    response.json()["status"] if response.status_code == 200 else "missing"
                )
            except httpx.HTTPError as exc:
                status[job_id] = type(exc).__name__
        pending = [j for j in pending if status[j] not in TERMINAL]
        if pending:
            await asyncio.sleep(0.5)
    return status


async def wait_hooks(receiver: HookReceiver, hooked: set[str], limit_s: float) -> None:
    """Until every hooked job's delivery arrived at least once (bounded)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if hooked <= {job for _, job in receiver.received}:
            return
        await asyncio.sleep(0.25)


# --- what the store says -------------------------------------------------------------------------


def store_facts(db_path: Path, pids: dict[int, str], accepted: set[str]) -> dict[str, Any]:
    """Jobs and chunk runs as committed: final states, chunks started twice, jobs split across
    replicas, result rows against items (read after both replicas stopped)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        jobs = dict(db.execute("SELECT id, status FROM jobs").fetchall())
        twice = {
            job
            for job, _, n in db.execute(
                "SELECT job_id, chunk_index, COUNT(*) FROM chunk_runs GROUP BY job_id, chunk_index"
            )
            if n > 1
        }
        owners: dict[str, set[str]] = collections.defaultdict(set)
        for job, pid in db.execute("SELECT DISTINCT job_id, pid FROM chunk_runs"):
            owners[job].add(pids.get(pid, f"pid {pid}"))
        short = [
            job
            for job, total, results in db.execute(
                "SELECT j.id, j.items_total, (SELECT COUNT(*) FROM job_results r"
                " WHERE r.job_id = j.id) FROM jobs j WHERE j.status = 'succeeded'"
            )
            if total != results
        ]
        hooks = dict(
            db.execute(
                "SELECT CASE WHEN delivered_at IS NOT NULL THEN 'delivered' WHEN gave_up_at IS"
                " NOT NULL THEN 'gave_up' ELSE 'owed' END, COUNT(*) FROM webhook_deliveries"
                " GROUP BY 1"
            ).fetchall()
        )
    finally:
        db.close()
    final = collections.Counter(jobs.get(j, "missing") for j in accepted)
    return {
        "final_status": dict(final),
        "jobs_lost": sum(n for s, n in final.items() if s not in TERMINAL),
        "jobs_run_twice": len(twice & accepted),
        "jobs_split_across_replicas": sum(len(o) > 1 for j, o in owners.items() if j in accepted),
        "jobs_by_replica": dict(
            collections.Counter("+".join(sorted(o)) for j, o in owners.items() if j in accepted)
        ),
        "succeeded_with_missing_results": len(short),
        # jobs the store holds that no client saw accepted (a reply lost to a dropped connection)
        "jobs_unacknowledged": len(set(jobs) - accepted),
        "store_webhooks": hooks,
    }


# --- the run -------------------------------------------------------------------------------------


def percentile(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return round(values[0], 1) if values else None
    return round(statistics.quantiles(values, n=100)[q - 1], 1)


def soak(plan: Plan) -> dict[str, Any]:
    """Start A, load it, start B mid-run, drain, stop both, read the store: the report."""
    receiver = HookReceiver(plan.hook_delay_s)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        data = Path(tmp)
        config_a, keys = write_config(data, plan, "replica-a")
        config_b = data / "replica-b.yaml"
        config_b.write_text(config_a.read_text().replace('"replica-a"', '"replica-b"'))
        replicas = [start_replica("a", config_a, data / "a.log")]
        load = Load(plan, keys, receiver.url)
        load.add_target(replicas[0].url)

        def start_b() -> str:
            replicas.append(start_replica("b", config_b, data / "b.log"))
            return replicas[-1].url

        try:
            report = asyncio.run(_run(load, plan, keys, receiver, start_b))
        finally:
            for replica in replicas:
                replica.rss_end_kib = rss_kib(replica.process.pid)
            exits = stop_replicas(replicas)
            receiver.close()
        pids = {r.process.pid: r.name for r in replicas}
        report.update(store_facts(data / "orchestrator.db", pids, set(load.tally.accepted)))
        report["exit_codes"] = exits
        report["rss_kib"] = {
            r.name: {"start": r.rss_start_kib, "end": r.rss_end_kib} for r in replicas
        }
        report["errors_logged"] = {r.name: _log_errors(data / f"{r.name}.log") for r in replicas}
    return report


async def _run(
    load: Load, plan: Plan, keys: dict[str, str], receiver: HookReceiver, start_b: Any
) -> dict[str, Any]:
    tally = load.tally
    timing = await drive(load, plan, start_b)
    drained = time.monotonic()
    await drain(load, plan, keys["admin"])
    await wait_hooks(receiver, tally.hooked, max(5.0, plan.drain_s - (time.monotonic() - drained)))
    timing["drain_s"] = round(time.monotonic() - drained, 1)
    for client in load.targets:
        await client.aclose()
    ids = [d for d, _ in receiver.received]
    seen = {job for _, job in receiver.received}
    return {
        "timing": timing,
        "requests": {f"{k} {c}": n for (k, c), n in sorted(tally.codes.items())},
        "invoke_ok": len(tally.invoke_ms),
        "invoke_p50_ms": percentile(tally.invoke_ms, 50),
        "invoke_p99_ms": percentile(tally.invoke_ms, 99),
        "invoke_by_phase": invoke_phases(tally, load.phases),
        "jobs_accepted": len(tally.accepted),
        "sse_done_events": tally.sse_done,
        "webhooks": {
            "expected": len(tally.hooked),
            "received": len(ids),
            "unique": len(set(ids)),
            "duplicates": len(ids) - len(set(ids)),
            "missing": len(tally.hooked - seen),
            "duplicates_before_b": sum(
                at < load.phases.get("b_starting", float("inf")) for at in receiver.duplicate_at
            ),
        },
    }


def invoke_phases(tally: Tally, phases: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Invoke latency while A alone serves, while B starts (its imports and warm-up take CPU from
    A on a small machine), and once both serve."""
    starts = sorted(phases.items(), key=lambda kv: kv[1])
    out: dict[str, dict[str, Any]] = {}
    for i, (name, begin) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else float("inf")
        ms = [
            m for m, at in zip(tally.invoke_ms, tally.invoke_at, strict=True) if begin <= at < end
        ]
        out[name] = {"ok": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}
    return out


def _log_errors(path: Path) -> dict[str, Any]:
    """Lines of a replica's log at error level or with a traceback: how many, and the first few
    (the temp dir, logs included, is gone after the run)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = [
        line
        for line in text.splitlines()
        if "Traceback" in line or '"error"' in line or "ERROR" in line or "Error" in line
    ]
    return {"count": len(lines), "first": [line[:300] for line in lines[:3]]}


def print_table(report: dict[str, Any], plan: Plan) -> None:
    out = sys.stdout
    out.write(f"soak: {plan.duration_s:g} s at {plan.factor}x capacity {CAPACITY}\n")
    out.write(f"{'requests':<32}{'count':>8}\n")
    for name, n in report["requests"].items():
        out.write(f"  {name:<30}{n:>8}\n")
    rows = [
        ("invoke ok", report["invoke_ok"]),
        ("invoke p50 / p99 ms", f"{report['invoke_p50_ms']} / {report['invoke_p99_ms']}"),
        ("invoke by phase", report["invoke_by_phase"]),
        ("jobs accepted", report["jobs_accepted"]),
        ("final status", report["final_status"]),
        ("jobs lost (must be 0)", report["jobs_lost"]),
        ("jobs run twice (must be 0)", report["jobs_run_twice"]),
        ("jobs split across replicas", report["jobs_split_across_replicas"]),
        ("jobs stored, never acknowledged", report["jobs_unacknowledged"]),
        ("jobs by replica", report["jobs_by_replica"]),
        ("webhooks", report["webhooks"]),
        ("webhook rows in store", report["store_webhooks"]),
        ("SSE streams to done", report["sse_done_events"]),
        ("RSS KiB start -> end", report["rss_kib"]),
        ("timing", report["timing"]),
        ("exit codes / error lines", (report["exit_codes"], report["errors_logged"])),
    ]
    for name, value in rows:
        out.write(f"{name:<32}{value}\n")


def parse(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~1 minute instead of ~5")
    parser.add_argument("--duration-s", type=float, help="load phase (default 200, quick 40)")
    parser.add_argument("--factor", type=int, default=10, help="load as a multiple of capacity")
    parser.add_argument("--items-per-job", type=int, default=20)
    parser.add_argument("--max-jobs", type=int, help="submit budget (default 4000, quick 600)")
    parser.add_argument("--max-invokes", type=int, help="invoke budget (default 60000, quick 8000)")
    parser.add_argument("--max-streams", type=int, help="SSE budget (default 3000, quick 400)")
    parser.add_argument(
        "--max-oversize", type=int, help="oversize budget (default 2000, quick 200)"
    )
    parser.add_argument("--hook-every", type=int, default=4, help="every Nth job has a webhook")
    parser.add_argument("--hook-delay-s", type=float, default=1.5)
    parser.add_argument(
        "--replica-b-at", type=float, help="B starts at this fraction (default 0.3, quick 0.15)"
    )
    parser.add_argument("--drain-s", type=float, help="bound on the drain (default 120, quick 60)")
    parser.add_argument("--graph", default="outbound_call_turn")
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--lease-s", type=float, default=6.0, help="job_lease_s (renew: a third)")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: Any, default: Any, short: Any) -> Any:
        return value if value is not None else (short if quick else default)

    return Plan(
        duration_s=pick(args.duration_s, 200.0, 40.0),
        factor=args.factor,
        items_per_job=args.items_per_job,
        max_jobs=pick(args.max_jobs, 4000, 600),
        max_invokes=pick(args.max_invokes, 60_000, 8000),
        max_streams=pick(args.max_streams, 3000, 400),
        max_oversize=pick(args.max_oversize, 2000, 200),
        hook_every=args.hook_every,
        hook_delay_s=args.hook_delay_s,
        replica_b_at=pick(args.replica_b_at, 0.3, 0.15),
        drain_s=pick(args.drain_s, 120.0, 60.0),
        graph=args.graph,
        chunk_size=args.chunk_size,
        lease_s=args.lease_s,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    plan = parse(argv)
    started = time.monotonic()
    report = soak(plan)
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print_table(report, plan)
    print(json.dumps({"bench": "soak", "plan": plan.__dict__, **report}, default=str))
    return report


if __name__ == "__main__":
    main()
