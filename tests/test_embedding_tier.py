"""Two tiers from any CSV: the shared encoder, the embedding tier, the chain's calibration and
evaluation, and one encoder for every embedding skill (per process, and per Ray cluster)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer

from orchestrator.errors import DatasetError, SetupError

ROOT = Path(__file__).resolve().parent.parent
INTENTS = ["balance", "transfer", "pin_change", "freeze_account", "bill_due"]


def _write_csv(path: Path, split: str, per_label: int) -> Path:
    data = json.loads((ROOT / "skills/datasets/clinc150/data_full.json").read_text())
    rows: list[tuple[str, str]] = []
    for label in INTENTS:
        rows += [(t, label) for t, lab in data[split] if lab == label][:per_label]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["utterance", "intent"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """The repo's shared encoder (built by `skills build`; exported here if missing). conftest
    points every temporary skills folder at it."""
    from orchestrator.learning.encoder_export import ensure_encoder

    return ensure_encoder(ROOT / "skills")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, encoders):
    """Two CSV skills trained with the default tiers into one skills folder."""
    from orchestrator.learning.train import train_text_classifier

    base = tmp_path_factory.mktemp("two_tiers")
    skills = base / "skills"
    train_csv = _write_csv(base / "train.csv", "train", 60)
    reports = {
        name: train_text_classifier(
            train_csv,
            name=name,
            text_column="utterance",
            label_column="intent",
            skills_dir=skills,
            target_accuracy=0.85,
        )
        for name in ("banking", "banking_copy")
    }
    return base, skills, reports


def test_default_training_gives_a_calibrated_second_tier_sharing_the_encoder(trained, encoders):
    _, skills, reports = trained
    report = reports["banking"]
    assert report["second_tier"]["skill"] == "banking_minilm@1.0.0"
    assert report["second_tier"]["after"] == "banking@1.0.0"
    assert report["chain"]["after"] == "banking@1.0.0" and report["chain"]["reachable"]
    assert 0.0 <= report["second_tier"]["tfidf_weight"] <= 0.6
    config = json.loads((skills / "banking_minilm" / "skill.json").read_text())
    assert config["encoder"] == {"name": encoders.name, "sha256": encoders.sha256}
    assert config["label_set"] == "banking" and config["labels"] == sorted(INTENTS)
    assert config["pooling"] == "geometric"
    # the encoder is referenced, never copied: the tier's folder holds only the small head
    biggest = max(p.stat().st_size for p in (skills / "banking_minilm").rglob("*") if p.is_file())
    assert biggest < encoders.onnx_path.stat().st_size / 10
    # the rebuild commands retrain one tier each, the second after the first
    manifest = (skills / "banking_minilm" / "manifest.yaml").read_text()
    assert "--tiers minilm" in manifest and "- banking" in manifest
    assert "--tiers tfidf" in (skills / "banking" / "manifest.yaml").read_text()


def test_eval_reports_the_chain_as_a_whole_and_each_tier(trained):
    from orchestrator.learning.evaluate import evaluate

    base, skills, _ = trained
    test_csv = _write_csv(base / "test.csv", "test", 30)
    report = evaluate("banking", test_csv, skills_dir=skills, label_column="intent")
    assert report["chain"] == ["banking@1.0.0", "banking_minilm@1.0.0"]
    first, second = report["tiers"]
    assert first["seen"] == report["rows"] == 150
    assert second["seen"] == first["seen"] - first["kept"]
    assert report["kept"] == first["kept"] + second["kept"]
    assert report["escalated"] == report["rows"] - report["kept"]
    assert report["coverage"] == round(report["kept"] / report["rows"], 4)
    # the second tier keeps some of what the first passed on
    assert report["coverage"] >= report["single"]["coverage"]
    alone = evaluate("banking", test_csv, skills_dir=skills, label_column="intent", chain=False)
    assert "tiers" not in alone and alone["coverage"] == report["single"]["coverage"]

    # per label, the counts of what answered each row: with thresholds that pass some rows on
    # (this easy split keeps all at its own), they add up to the chain's figures
    from orchestrator.learning.calibrate import columns_for
    from orchestrator.learning.chain_eval import chain_report, find_chain
    from orchestrator.learning.evaluate import load_version

    first = load_version("banking", skills)
    found = find_chain(first, skills)
    assert found is not None
    with test_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    batch = columns_for(first.skill_cls, [r["utterance"] for r in rows])
    expected = [r["intent"] for r in rows]
    passed_on = chain_report(first, (found[0], 0.9, 0.6), batch, expected, per_label=True)
    assert passed_on["tiers"][1]["kept"] > 0 and passed_on["escalated"] > 0
    for whole in (passed_on, alone):
        counts = whole["per_label"].values()
        assert sum(c["rows"] for c in counts) == sum(c["predicted"] for c in counts) == 150
        assert sum(c["kept"] for c in counts) == whole["kept"]
        assert sum(c["correct"] for c in counts) == round(whole["accuracy"] * 150)
        kept_right = sum(c["kept_correct"] for c in counts)
        assert kept_right == round(whole["selective_accuracy"] * whole["kept"])


def test_eval_warns_of_labels_the_skill_does_not_know(trained):
    """A label only in the eval CSV: its rows count as wrong, and the command says which and
    what to do (the JSON counts them)."""
    from typer.testing import CliRunner

    from orchestrator.cli.skills import eval_command

    base, skills, _ = trained
    test_csv = _write_csv(base / "unseen.csv", "test", 4)
    with test_csv.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["fly me to the moon", "space_travel"]] * 2)
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # two commands: "eval" stays a subcommand
    args = ["eval", "banking", "--csv", str(test_csv), "--label-column", "intent"]
    result = CliRunner().invoke(app, [*args, "--skills-dir", str(skills), "--json"])
    assert result.exit_code == 0, result.output
    assert "labels banking@1.0.0 does not know count as wrong: space_travel (2)" in result.stderr
    report = json.loads(result.stdout)
    assert report["unseen_labels"] == {"space_travel": 2}
    assert report["per_label"]["space_travel"]["correct"] == 0 and report["rows"] == 22


@pytest.mark.parametrize("pooling", ["linear", "geometric"])
def test_the_onnx_head_pools_as_numpy_does(pooling):
    """The head's ONNX graph gives blend()'s probabilities, a class the TF-IDF tier gives zero
    included; geometric pooling drops a class one tier nearly rules out."""
    import numpy as np
    import onnxruntime as ort

    from orchestrator.learning.embedding_tier import blend, head_model

    rng = np.random.default_rng(0)
    coef, intercept = rng.normal(size=(5, 8)), rng.normal(size=5)
    embedding = rng.normal(size=(20, 8)).astype(np.float32)
    tfidf = rng.dirichlet(np.ones(5), size=20).astype(np.float32)
    tfidf[0] = [0.0, 0.5, 0.5, 0.0, 0.0]
    model = head_model(coef, intercept, 0.3, "t", pooling)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"embedding": embedding, "tfidf": tfidf})[0]
    scores = embedding.astype(np.float64) @ coef.T + intercept
    head = np.exp(scores - scores.max(1, keepdims=True))
    head /= head.sum(1, keepdims=True)
    want = blend(tfidf.astype(np.float64), head, 0.3, pooling)
    assert np.abs(got - want).max() < 1e-5 and np.allclose(got.sum(1), 1.0, atol=1e-5)
    # one tier sure of class 0, the other nearly ruling it out: linear follows the sure tier,
    # geometric takes the class neither rules out
    sure, other = np.array([[0.8, 0.15, 0.05]]), np.array([[0.05, 0.5, 0.45]])
    pooled = blend(sure, other, 0.5, pooling)
    assert pooled.argmax() == (0 if pooling == "linear" else 1)


def test_one_encoder_per_process_and_an_item_embedded_once(trained):
    from orchestrator.learning.evaluate import load_version

    _, skills, _ = trained
    a = load_version("banking_minilm", skills).create()
    b = load_version("banking_copy_minilm", skills).create()
    a.ensure_setup()
    b.ensure_setup()
    assert a.encoder is b.encoder
    texts = ["what's my balance right now zq", "move 40 dollars to savings zq"]
    before = dict(a.encoder.stats())
    a.predict({"utterance": texts})
    b.predict({"utterance": texts})
    after = a.encoder.stats()
    assert after["computed"] - before["computed"] == 2
    assert after["reused"] - before["reused"] == 2


def test_a_skill_refuses_an_encoder_it_was_not_trained_on(trained, encoders):
    from dataclasses import replace

    with pytest.raises(SetupError, match="retrain the skill"):
        replace(encoders, sha256="0" * 64).require(encoders.sha256, "banking_minilm")


def test_bad_tier_requests_are_clear_errors(trained):
    from orchestrator.learning.train import train_text_classifier

    base, skills, _ = trained
    with pytest.raises(DatasetError, match="choose among tfidf, minilm"):
        train_text_classifier(base / "train.csv", name="x", skills_dir=skills, tiers="bert")
    with pytest.raises(DatasetError, match="give --version"):
        train_text_classifier(
            base / "train.csv",
            name="banking",
            text_column="utterance",
            label_column="intent",
            skills_dir=skills,
            tiers="minilm",
        )


def test_label_shares_must_name_labels_of_the_csv(trained):
    from orchestrator.learning.train import train_text_classifier

    base, skills, _ = trained
    with pytest.raises(DatasetError, match="--label-share names oos"):
        train_text_classifier(
            base / "train.csv", name="shares", text_column="utterance", label_column="intent",
            skills_dir=skills, label_shares={"oos": 0.18},
        )  # fmt: skip
    assert not (skills / "shares").exists()


def test_ray_workers_share_one_encoder_actor(trained, ray_cluster, encoders):
    import asyncio

    from orchestrator.embedding.shared import actor_name
    from orchestrator.executors.ray import RayExecutor
    from orchestrator.learning.evaluate import load_version

    _, skills, _ = trained
    versions = [load_version(n, skills) for n in ("banking_minilm", "banking_copy_minilm")]
    texts = ["is my card frozen now qx", "when is the power bill due qx", "change my pin qx"]

    async def run() -> list[list[str]]:
        executor = RayExecutor()
        await executor.start(versions)
        try:
            out = []
            for v in versions:
                preds = await executor.predict(v.key, {"utterance": texts})
                out.append(list(preds.outputs["intent"]))
            return out
        finally:
            await executor.close()

    first, second = asyncio.run(run())
    assert set(first) <= set(INTENTS) and set(second) <= set(INTENTS)
    named = [a["name"] for a in ray_cluster.util.list_named_actors(all_namespaces=True)]
    assert named.count(actor_name(encoders)) == 1
    stats = ray_cluster.get(
        ray_cluster.get_actor(actor_name(encoders), namespace="orchestrator").stats.remote()
    )
    assert stats["computed"] >= 3 and stats["reused"] >= 3  # the second skill hit the cache


def test_a_new_version_trains_both_tiers_as_canaries_and_they_are_promoted_together(trained):
    from orchestrator.learning.evaluate import load_version
    from orchestrator.learning.train import train_text_classifier
    from orchestrator.registry.aliases import promote, rollback

    base, skills, _ = trained
    report = train_text_classifier(
        base / "train.csv", name="banking", text_column="utterance", label_column="intent",
        skills_dir=skills, target_accuracy=0.85, version="1.1.0",
    )  # fmt: skip
    assert report["aliases"] == ["canary"] and report["second_tier"]["aliases"] == ["canary"]
    moved = promote("banking", skills_dir=skills)
    assert moved["prod"] == "banking@1.1.0"
    assert [t["prod"] for t in moved["tiers"]] == ["banking_minilm@1.1.0"]
    assert load_version("banking_minilm@prod", skills).version == "1.1.0"
    back = rollback("banking", skills_dir=skills)
    assert [t["prod"] for t in back["tiers"]] == ["banking_minilm@1.0.0"]
