"""Two-tier calibration (a cheap skill, then a dearer one on what it is unsure of), and the margin
of a reweighted split."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from orchestrator.graph.thresholds import step_thresholds
from orchestrator.learning.calibrate import choose_threshold, selective_curve
from orchestrator.learning.chain_calibrate import calibrate_after, choose_chain_thresholds
from orchestrator.registry.calibrations import stored_chain_thresholds
from orchestrator.registry.registry import Registry, SkillVersion

ROOT = Path(__file__).resolve().parent.parent


def _tiers(n: int = 6000, seed: int = 1):
    """Tier 1 is sure and right on easy items, unsure on hard ones; tier 2 is better on hard ones,
    but its confidence means less there than it does on the whole split."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.4
    c1 = np.where(hard, rng.beta(2, 3, n), rng.beta(8, 1, n))
    r1 = rng.random(n) < np.where(hard, c1 * 0.7, c1)
    c2 = np.where(hard, rng.beta(4, 2, n), rng.beta(9, 1, n))
    r2 = rng.random(n) < np.where(hard, c2 * 0.95, np.minimum(1.0, c2 + 0.02))
    return c1, r1, c2, r2


def _union(c1, r1, c2, r2, t1, t2):
    first = c1 >= t1
    kept = first | (c2 >= t2)
    right = np.where(first, r1, r2)
    return kept, right


def test_chain_thresholds_reach_the_target_on_the_items_as_the_chain_routes_them() -> None:
    c1, r1, c2, r2 = _tiers()
    pair = choose_chain_thresholds(c1, r1, c2, r2, 0.95, after="first@1", confidence_level=None)
    assert pair.reachable and pair.after == "first@1"
    kept, right = _union(c1, r1, c2, r2, pair.first_threshold, pair.threshold)
    assert right[kept].mean() >= 0.95
    assert kept.mean() == pytest.approx(pair.coverage)
    assert (c1 < pair.first_threshold).mean() == pytest.approx(pair.second_share)
    # the chain keeps more than the first tier alone at the same target...
    alone = choose_threshold(c1, r1, 0.95)
    assert pair.coverage > alone.coverage + 0.05
    # ...and more safely than each tier's own threshold: the second tier sees the hard items
    own2 = choose_threshold(c2, r2, 0.95).threshold
    kept_own, right_own = _union(c1, r1, c2, r2, alone.threshold, own2)
    assert right_own[kept_own].mean() < 0.95


def test_an_unreachable_chain_escalates_everything() -> None:
    c1, _, c2, _ = _tiers(500)
    wrong = np.zeros(500, dtype=bool)
    pair = choose_chain_thresholds(c1, wrong, c2, wrong, 0.9, after="a@1")
    assert not pair.reachable and pair.first_threshold == pair.threshold == 1.0


def test_mismatched_lengths_are_refused() -> None:
    from orchestrator.learning.calibrate import CalibrationError

    with pytest.raises(CalibrationError, match="both tiers' answers for every item"):
        choose_chain_thresholds([0.5], [True], [0.5, 0.6], [True, True], 0.9, after="a@1")


def test_a_rare_label_reweighted_widens_the_margin() -> None:
    """100 items standing for 18 % of the traffic are a small sample: when the errors sit among
    them, the effective size of the kept set is far under Kish's, and never above it."""
    n_common, n_rare = 3000, 100
    right = np.r_[np.ones(n_common, dtype=bool), np.arange(n_rare) >= 30]  # 30 rare errors
    weights = np.r_[np.full(n_common, 0.82 / n_common), np.full(n_rare, 0.18 / n_rare)]
    curve = selective_curve(np.ones(n_common + n_rare), right, weights)
    kish = weights.sum() ** 2 / (weights**2).sum()
    p = 0.82 + 0.18 * 0.7
    variance = (weights**2 * (right - p) ** 2).sum() / weights.sum() ** 2
    assert curve.effective_kept[-1] == pytest.approx(p * (1 - p) / variance)  # ~579
    assert curve.effective_kept[-1] < kish / 3  # Kish: ~1,824
    plain = selective_curve(np.ones(n_common + n_rare), right)
    assert plain.effective_kept[-1] == pytest.approx(n_common + n_rare)  # unweighted: the count


# ---------------------------------------------------------------- stored with the built skills


@pytest.fixture(scope="module")
def tiers(builtin_registry):
    return builtin_registry.resolve("turn_intent"), builtin_registry.resolve("turn_intent_minilm")


def test_the_shipped_turn_graph_uses_the_pair_calibrated_together(builtin_registry, tiers) -> None:
    from orchestrator import compile_graph, load_graph

    first, second = tiers
    pair = stored_chain_thresholds(second, first)
    assert pair is not None
    graph = compile_graph(load_graph(ROOT / "graphs" / "outbound_call_turn.yaml"), builtin_registry)
    step = next(s for s in graph.resolved.steps if s.id == "intent")
    assert (step.threshold, *step.chain_thresholds) == pair
    # the pair differs from each skill's own threshold: it was chosen for the chain
    from orchestrator.registry.calibrations import stored_threshold

    assert pair != (stored_threshold(first), stored_threshold(second))


def _folder_copy(version: SkillVersion, target: Path) -> Path:
    """A skill folder beside ``version``'s: its manifest, its artifacts linked, and a copy of its
    build record (which the test may change without touching the real one)."""
    assert version.folder is not None
    (target / "artifacts").mkdir(parents=True)
    shutil.copy(version.folder / "manifest.yaml", target / "manifest.yaml")
    for path in (version.folder / "artifacts").iterdir():
        if path.name == "build.json":
            shutil.copy(path, target / "artifacts" / path.name)
        else:
            (target / "artifacts" / path.name).symlink_to(path)
    assert version.build is not None
    for relative in version.build.code:  # the code the build record pins, where it expects it
        link = target / relative
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((version.folder / relative).resolve())
    return target


def test_a_changed_first_skill_falls_back_to_each_skills_own_threshold(tmp_path, tiers) -> None:
    from orchestrator.graph.spec import Step
    from orchestrator.registry.build_record import update_build_record
    from orchestrator.registry.calibrations import stored_threshold

    first, second = tiers
    folder = _folder_copy(first, tmp_path / "turn_intent")
    build = first.build
    assert build is not None
    artifacts = dict(build.artifacts)
    artifacts["model.onnx"] = artifacts["model.onnx"].model_copy(update={"sha256": "0" * 64})
    update_build_record(folder, artifacts=artifacts)
    retrained = SkillVersion(first.skill_cls, folder, first.manifest)
    assert stored_chain_thresholds(second, retrained) is None
    step = Step.model_validate(
        {
            "id": "intent",
            "skill": "turn_intent",
            "inputs": {"text": "input.utterance"},
            "escalation": {"threshold": "calibrated", "chain": ["turn_intent_minilm"]},
        }
    )
    threshold, chain, problems = step_thresholds(step, retrained, (second,))
    assert problems == [
        "threshold 'calibrated' but turn_intent@1.0.0 has no calibration for its current "
        "artifacts; run `orchestrator skills build` (it calibrates what the manifests and graphs/ "
        "ask for), `orchestrator skills calibrate turn_intent`, or give a number"
    ]
    threshold, chain, problems = step_thresholds(step, first, (second,))
    assert (threshold, *chain) == stored_chain_thresholds(second, first) and not problems
    numeric = step.model_copy(
        update={"escalation": step.escalation.model_copy(update={"threshold": 0.5})}
    )
    assert step_thresholds(numeric, first, (second,)) == (0.5, (0.5,), [])
    assert stored_threshold(second) is not None


def test_calibrate_after_stores_the_pair_keyed_by_the_first_version(tmp_path, tiers) -> None:
    from skills.data import clinc150_eval

    first, second = tiers
    folder = _folder_copy(second, tmp_path / "turn_intent_minilm")
    copy = SkillVersion(second.skill_cls, folder, second.manifest)
    pairs = clinc150_eval("val")[::8]  # 388 items, both tiers run on all of them
    result = calibrate_after(
        copy, first, [t for t, _ in pairs], [y for _, y in pairs], 0.9, source="val / 8"
    )
    stored = copy.build
    assert stored is not None
    record = stored.calibration_after[first.key]
    assert record["first_threshold"] == result.first_threshold and record["by"] == "hand"
    assert record["threshold"] == result.threshold and record["source"] == "val / 8"
    # everything else in the build record is as it was
    before = second.build
    assert before is not None
    assert stored.model_copy(update={"calibration_after": {}}) == before.model_copy(
        update={"calibration_after": {}}
    )
    reloaded = Registry.from_folder(tmp_path).resolve("turn_intent_minilm")
    assert stored_chain_thresholds(reloaded, first) == (result.first_threshold, result.threshold)
