"""A build that differs from this machine's plain build (another seed shuffles turn_intent's
training rows: the same model up to rounding, other bytes, as another CPU gives) still runs the
shipped graphs at calibrated thresholds, and leaves nothing for git to see.

It works on a copy of the checkout (the files git sees, plus the built artifacts), so this
checkout's own build is untouched; ~1.5 min (turn_intent retrained, the chain recalibrated).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

from skills.data import bank_marketing, clinc150_eval

ROOT = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=120
    ).stdout


def _copy_checkout(target: Path) -> None:
    """The files git sees and the built skills (bench/cascade.py's copy, which its perturbed-build
    benchmark uses too), committed in a new repository."""
    spec = importlib.util.spec_from_file_location("bench_cascade", ROOT / "bench" / "cascade.py")
    assert spec is not None and spec.loader is not None
    cascade = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):  # the bench sets its log level in the environment
        spec.loader.exec_module(cascade)
    cascade.copy_checkout(target)
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "copy")


def _orchestrator(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "ORCHESTRATOR_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-c", "from orchestrator.cli.commands import main; main()", *args],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )


def _record(root: Path, skill: str) -> dict:
    return json.loads((root / "skills" / skill / "artifacts" / "build.json").read_text())


def test_a_perturbed_build_runs_the_shipped_graphs_and_leaves_the_tree_clean(
    tmp_path, builtin_registry
):
    copy = tmp_path / "checkout"
    _copy_checkout(copy)
    built = _orchestrator(copy, "skills", "build", "turn_intent", "--seed", "7")
    assert built.returncode == 0, built.stderr[-3000:]
    assert "turn_intent: built" in built.stderr and "(seed 7)" in built.stderr

    plain, perturbed = _record(ROOT, "turn_intent"), _record(copy, "turn_intent")
    assert perturbed["inputs"]["seed"] == 7
    assert (
        perturbed["artifacts"]["model.onnx"]["sha256"] != plain["artifacts"]["model.onnx"]["sha256"]
    )
    # both calibrations were measured again, on the new bytes (the numbers may coincide: the
    # model moved by rounding only)
    fingerprint = perturbed["calibration"]["artifacts_fingerprint"]
    assert fingerprint != plain["calibration"]["artifacts_fingerprint"]
    assert perturbed["calibration"]["by"] == "build"
    chain = _record(copy, "turn_intent_minilm")["calibration_after"]["turn_intent@1.0.0"]
    assert chain["after_fingerprint"] == fingerprint and chain["by"] == "build"
    assert chain["reachable"]

    turns = [
        {"id": n, "utterance": t, "label": y}
        for n, (t, y) in enumerate(clinc150_eval("test")[::25])
    ]
    leads = [
        {"id": n, **{k: v for k, v in row.items() if k != "subscribed"}}
        for n, row in enumerate(bank_marketing()[::400])
    ]
    for graph, rows in (("outbound_call_turn", turns), ("lead_scoring", leads)):
        given = tmp_path / f"{graph}.jsonl"
        given.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = tmp_path / f"{graph}.out.jsonl"
        ran = _orchestrator(
            copy, "run", f"graphs/{graph}.yaml", "--input", str(given), "--output", str(out),
            "--executor", "local", "--json",
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr[-3000:]
        summary = json.loads(ran.stdout.strip().splitlines()[-1])
        assert summary["items"] == summary["succeeded"] == len(rows)
    assert _git(copy, "status", "--porcelain") == ""
