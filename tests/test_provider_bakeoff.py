"""The provider bake-off and escalation only where it pays (#15, points 3 and 4).

A tiny CSV-trained skill is unsure of the items that mix two intents. The stub server plays two
providers: ``good`` answers the true label (a lookup), ``bad`` a wrong one. ``providers eval``
says which pays and stores it; a job that escalates then keeps the small answers instead of
asking ``bad`` (flagged, with the reason), unless escalation is forced. Reviewers' answers on held
items a provider had answered measure it the same way, without a bake-off.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator import GraphSpec, LocalExecutor, Registry, Runtime
from orchestrator.accounting.escalation_value import PairedScore, verdict
from orchestrator.cli.commands import app
from orchestrator.config import Settings
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.store.measurements import MeasurementStore
from orchestrator.testing import StubLLMServer

KEYS = {
    "billing": ["invoice", "charge", "bill", "payment", "receipt"],
    "cancel": ["cancel", "terminate", "stop", "end", "quit"],
    "schedule": ["tomorrow", "appointment", "calendar", "slot", "reschedule"],
}
FILLER = ["please", "my", "the", "about", "i", "want", "need", "help", "with", "a", "now"]
LABELS = sorted(KEYS)


def _rows(seed: int, clean: int, mixed: int, *, noisy: bool) -> list[tuple[str, str]]:
    """Sentences with two keywords of one label (clean), or one of each of two labels (mixed:
    labelled at random in training, so the small model cannot be sure of them)."""
    rng = random.Random(seed)
    rows = []
    for i in range(clean):
        label = LABELS[i % 3]
        words = rng.sample(KEYS[label], 2) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    for i in range(mixed):
        label, other = LABELS[i % 3], LABELS[(i + 1) % 3]
        words = [rng.choice(KEYS[label]), rng.choice(KEYS[other]), *rng.sample(FILLER, 3)]
        rng.shuffle(words)
        truth = other if noisy and rng.random() < 0.5 else label
        rows.append((" ".join(words), truth))
    return rows


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


EVAL_ROWS = _rows(2, 20, 60, noisy=False)
TRUTH = dict(EVAL_ROWS)


def _items(request: dict) -> list[dict]:
    prompt = request["messages"][-1]["content"]
    return json.loads(prompt.split("Items:\n", 1)[1])


def good(request: dict) -> dict:
    """A provider that knows the answers."""
    return {"answers": {str(i["index"]): {"label": TRUTH[i["text"]]} for i in _items(request)}}


def bad(request: dict) -> dict:
    """A provider that is always wrong (but answers in the schema)."""
    wrong = {label: LABELS[(LABELS.index(label) + 1) % 3] for label in LABELS}
    return {
        "answers": {str(i["index"]): {"label": wrong[TRUTH[i["text"]]]} for i in _items(request)}
    }


@pytest.fixture(scope="module")
def skills_dir(tmp_path_factory) -> Path:
    """A CSV-trained text classifier (TF-IDF tier only), calibrated to 90 %."""
    from orchestrator.learning.train import train_text_classifier

    root = tmp_path_factory.mktemp("bakeoff")
    data = _write(root / "train.csv", _rows(1, 180, 120, noisy=True))
    report = train_text_classifier(
        data,
        name="calls",
        skills_dir=root / "skills",
        target_accuracy=0.9,
        confidence_level=None,
        tiers=("tfidf",),  # sub-second; the embedding tier is not what this tests
    )
    assert report["reachable"] and 0 < report["threshold"] < 1
    return root / "skills"


@pytest.fixture
def stubs():
    with StubLLMServer(default=good) as g, StubLLMServer(default=bad) as b:
        yield {"good": g, "bad": b}


def _provider(name: str, stub: StubLLMServer, **extra) -> Provider:
    return Provider(
        name=name, base_url=stub.base_url, model=f"{name}-model", max_attempts=1, **extra
    )


@pytest.fixture
def env(tmp_path, monkeypatch, stubs):
    """The CLI's configuration: a fresh store, both stub providers (good priced, bad free)."""
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path / "data"))
    providers = [
        _provider("bad", stubs["bad"]).model_dump(),
        _provider("good", stubs["good"], price_per_1m_prompt_tokens=1.0).model_dump(),
    ]
    monkeypatch.setenv("ORCHESTRATOR_LLM_PROVIDERS", json.dumps(providers))
    return tmp_path


def _eval(skills_dir: Path, csv_path: Path, *args: str):
    return CliRunner().invoke(
        app,
        [
            "providers",
            "eval",
            "calls",
            "--csv",
            str(csv_path),
            "--skills-dir",
            str(skills_dir),
            *args,
        ],
    )


GRAPH = {
    "name": "calls_graph",
    "inputs": {"text": "str"},
    "steps": [
        {
            "id": "intent",
            "skill": "calls",
            "inputs": {"text": "input.text"},
            "escalation": {"threshold": "calibrated", "items_per_call": 8},
        }
    ],
    "outputs": {"label": "intent.label", "by": "intent.answered_by"},
}


ITEMS = [{"id": i, "text": text} for i, (text, _) in enumerate(EVAL_ROWS)]


def _runtime(skills_dir: Path, data_dir: Path, providers: list[Provider], **settings) -> Runtime:
    """A local runtime that escalates to ``providers``, its store in ``data_dir``."""
    config = Settings(data_dir=data_dir, skills_dir=skills_dir, escalate=True, **settings)
    return Runtime(
        registry=Registry.from_folder(skills_dir),
        executor=LocalExecutor(),
        gateway=LLMGateway(providers),
        settings=config,
    )


def _run(skills_dir: Path, data_dir: Path, providers: list[Provider], **settings):
    with _runtime(skills_dir, data_dir, providers, **settings) as runtime:
        return runtime.run(GraphSpec.from_dict(GRAPH), ITEMS)


def test_the_bake_off_says_which_provider_pays_and_the_run_holds_back_the_worse(
    skills_dir, env, stubs
):
    csv_path = _write(env / "eval.csv", [*EVAL_ROWS, ("where is my refund", "refund")])
    done = _eval(skills_dir, csv_path, "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    by_name = {p["provider"]: p for p in report["providers"]}
    unsure = report["small"]["items"]
    assert unsure == report["unsure"] and 8 <= unsure < len(EVAL_ROWS)
    assert report["left_out_labels"] == {"refund": 1}  # reported, never sent
    assert by_name["good"]["verdict"] == "pays" and by_name["good"]["provider_accuracy"] == 1.0
    assert by_name["bad"]["verdict"] == "worse" and by_name["bad"]["provider_accuracy"] == 0.0
    assert by_name["good"]["small_accuracy"] == report["small"]["accuracy"] < 1.0
    assert report["recommended"] == "good"
    assert by_name["good"]["cost_usd"] > 0 == by_name["bad"]["cost_usd"]
    assert by_name["good"]["calls"] == -(-unsure // 10) and by_name["bad"]["failures"] == 0
    assert by_name["good"]["latency_p95_s"] >= by_name["good"]["latency_p50_s"] > 0
    sent = " ".join(r.body.decode() for r in stubs["bad"].chat_requests)
    assert "refund" not in sent

    stored = CliRunner().invoke(app, ["providers", "measurements", "calls", "--json"])
    assert stored.exit_code == 0, stored.output
    assert sorted((m["provider"], m["verdict"]) for m in json.loads(stored.stdout)) == [
        ("bad", "worse"),
        ("good", "pays"),
    ]

    # the table says the same in words
    table = _eval(skills_dir, csv_path, "--no-store")
    assert table.exit_code == 0, table.output
    assert "recommended: good" in table.stdout
    assert "bad: measured worse than the small model" in table.stdout

    # a run escalating to `bad` alone: its unsure items keep the small answers, flagged
    before = len(stubs["bad"].chat_requests)
    held = _run(skills_dir, env / "data", [_provider("bad", stubs["bad"])])
    assert len(stubs["bad"].chat_requests) == before  # nothing sent
    flagged = [r for r in held.results if r.escalate]
    assert len(flagged) == unsure
    assert all(r.escalation_held == "provider_measured_worse" for r in flagged)
    assert all(r.outputs["by"] == "calls@1.0.0" for r in flagged)
    assert flagged[0].to_dict()["escalation_held"] == "provider_measured_worse"
    assert held.ledger.answered["held_back"] == unsure and held.ledger.llm_calls == 0
    assert held.summary()["escalation_held"] == unsure

    # with both configured, the unsure items go to `good` only
    both = _run(
        skills_dir, env / "data", [_provider("bad", stubs["bad"]), _provider("good", stubs["good"])]
    )
    assert len(stubs["bad"].chat_requests) == before
    assert {r.outputs["by"] for r in both.results if r.escalate} == {"llm:good"}
    assert all(r.escalation_held is None for r in both.results)

    # forced: `bad` is asked after all
    forced = _run(skills_dir, env / "data", [_provider("bad", stubs["bad"])], force_escalation=True)
    assert len(stubs["bad"].chat_requests) > before
    assert {r.outputs["by"] for r in forced.results if r.escalate} == {"llm:bad"}
    assert forced.ledger.answered.get("held_back", 0) == 0


def test_a_graph_step_can_force_escalation(skills_dir, tmp_path, stubs):
    score = PairedScore(
        items=20, small_correct=10, provider_correct=2, provider_only=0, small_only=8
    )
    from orchestrator.graph.tiers_key import step_fingerprint
    from orchestrator.store.measurements import ProviderMeasurement

    registry = Registry.from_folder(skills_dir)
    spec = json.loads(json.dumps(GRAPH))
    spec["steps"][0]["escalation"]["force"] = True
    graph = Runtime(registry=registry, executor=LocalExecutor()).compile(GraphSpec.from_dict(spec))
    with MeasurementStore(tmp_path / "data" / "orchestrator.db") as store:
        store.add(
            ProviderMeasurement(
                skill="calls@1.0.0",
                fingerprint=step_fingerprint(graph.resolved.steps[0]),
                provider="bad",
                model="bad-model",
                score=score,
                verdict=verdict(score),
                margin=0.05,
            )
        )
    with _runtime(skills_dir, tmp_path / "data", [_provider("bad", stubs["bad"])]) as runtime:
        unforced = runtime.run(GraphSpec.from_dict(GRAPH), ITEMS)
        forced = runtime.run(graph, ITEMS)
    assert unforced.ledger.answered["held_back"] > 0 and unforced.ledger.llm_calls == 0
    assert forced.ledger.llm_calls > 0 and "held_back" not in forced.ledger.answered


def test_escalating_without_a_measurement_warns_in_one_line(skills_dir, env, stubs):
    graph = env / "graph.json"
    graph.write_text(json.dumps(GRAPH))
    items = env / "in.jsonl"
    items.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, (t, _) in enumerate(EVAL_ROWS[:40]))
    )
    done = CliRunner().invoke(
        app,
        [
            "run", str(graph), "--input", str(items), "--output", str(env / "out.jsonl"),
            "--executor", "local", "--skills-dir", str(skills_dir), "--escalate", "--json",
        ],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "escalating without a measurement (calls@1.0.0 -> bad/good)" in warnings[0]
    assert "orchestrator providers eval calls --csv" in warnings[0]


def test_unknown_providers_and_bad_input_get_clear_errors(skills_dir, env, stubs):
    csv_path = _write(env / "eval.csv", EVAL_ROWS)
    done = _eval(skills_dir, csv_path, "--providers", "good,nope")
    assert done.exit_code == 2
    assert (
        "error (unknown_provider): unknown provider(s) nope: configured are bad, good"
        in done.output
    )
    assert not stubs["good"].chat_requests and not stubs["bad"].chat_requests
    missing = _eval(skills_dir, env / "missing.csv")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    no_label = _eval(skills_dir, csv_path, "--label-column", "intent")
    assert no_label.exit_code == 2 and "intent" in no_label.output


def test_the_rule_needs_the_margin_and_a_significant_gain():
    def score(items, small, provider, provider_only):
        return PairedScore(
            items, small, provider, provider_only, provider_only - (provider - small)
        )

    assert verdict(score(100, 50, 50, 10)) == "worse"  # equal: a call that changes nothing
    assert verdict(score(100, 50, 53, 3)) == "unproven"  # above, under the margin
    assert verdict(score(20, 10, 12, 2)) == "unproven"  # 10 points, but 2 of 2 is chance
    assert verdict(score(100, 50, 60, 10)) == "pays"
    assert verdict(score(100, 50, 60, 10), margin=0.2) == "unproven"
    with pytest.raises(ValueError, match="inconsistent"):
        PairedScore(10, 5, 6, 0, 0)


def test_the_dashboard_lists_the_measurements(tmp_path, skills_dir):
    from api_server import client, make_keys, serve_app

    from orchestrator.service.app import create_app
    from orchestrator.service.routes.dashboard import STATIC_DIR
    from orchestrator.service.settings import ServiceSettings
    from orchestrator.store.measurements import ProviderMeasurement

    score = PairedScore(
        items=30, small_correct=12, provider_correct=27, provider_only=15, small_only=0
    )
    with MeasurementStore(tmp_path / "orchestrator.db") as store:
        store.add(
            ProviderMeasurement(
                skill="calls@1.0.0", fingerprint="f", provider="good", model="g", score=score,
                verdict=verdict(score), margin=0.05, calls=3, cost_usd=0.002, source="bakeoff:x.csv",
            )
        )  # fmt: skip
    keys = make_keys()
    runtime = Settings(executor="local", data_dir=tmp_path, skills_dir=skills_dir)
    app = create_app(ServiceSettings(runtime=runtime, api_keys=keys.configs))
    with serve_app(app) as url, client(url, keys.reader) as http, client(url, None) as anonymous:
        [row] = http.get("/v1/dashboard/providers").json()["measurements"]
        assert anonymous.get("/v1/dashboard/providers").status_code == 401
    assert (row["provider"], row["verdict"], row["items"]) == ("good", "pays", 30)
    assert (row["small_accuracy"], row["provider_accuracy"]) == (0.4, 0.9)
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert 'id="providers-panel"' in page
    assert "v1/dashboard/providers" in (STATIC_DIR / "app.js").read_text(encoding="utf-8")


def test_reviewers_answers_measure_the_provider_without_a_bake_off(skills_dir, env, stubs):
    """No bake-off: the items ``bad`` answered are held for review; people's answers score it
    against the small tiers, and from REVIEW_MIN_ITEMS answers on the next run holds it back."""
    from orchestrator.store.measurements import REVIEW_MIN_ITEMS

    spec = json.loads(json.dumps(GRAPH))
    with _runtime(skills_dir, env / "data", [_provider("bad", stubs["bad"])]) as runtime:
        threshold = runtime.compile(GraphSpec.from_dict(spec)).resolved.steps[0].threshold
        spec["steps"][0]["escalation"]["review_below"] = threshold  # every unsure item is held
        graph = GraphSpec.from_dict(spec)
        first = runtime.run(graph, ITEMS)
        assert first.ledger.llm_calls > 0
        tickets = runtime.reviews.queue.list(limit=1000)
        assert len(tickets) >= REVIEW_MIN_ITEMS + 1
        assert all(t.answered_by == "llm:bad" and t.model == "bad-model" for t in tickets)
        assert all(t.proposed["label"] != TRUTH[t.inputs["text"]] for t in tickets)  # bad's
        assert all(set(t.small or {}) == {"label"} for t in tickets)  # what the small tiers said
        assert runtime.escalation_routes(graph).steps["intent"].unmeasured == ("bad",)

        for n, ticket in enumerate(tickets[:REVIEW_MIN_ITEMS]):
            truth = TRUTH[ticket.inputs["text"]]
            done = runtime.answer_review(ticket.id, {"label": truth}, reviewer="ana")
            assert done.provider_right is False  # `bad` is always wrong
            assert done.small_right is (ticket.small["label"] == truth)
            route = runtime.escalation_routes(graph).steps["intent"]
            if n < REVIEW_MIN_ITEMS - 1:  # too few answers: still unmeasured, still asked
                assert route.unmeasured == ("bad",) and route.held is None
        assert route.held == "provider_measured_worse" and route.verdicts == {"bad": "worse"}
        (row,) = runtime.provider_measurements(skill="calls")
        assert (row.source, row.provider, row.model) == ("review", "bad", "bad-model")
        assert row.score.items == REVIEW_MIN_ITEMS and row.score.provider_correct == 0
        assert row.score.small_correct == sum(t.small_right for t in _answered(runtime))

        before = len(stubs["bad"].chat_requests)
        second = runtime.run(graph, ITEMS)
    assert len(stubs["bad"].chat_requests) == before  # measured worse by people: not asked
    flagged = [r for r in second.results if r.escalate]
    assert flagged and all(r.escalation_held == "provider_measured_worse" for r in flagged)
    assert second.ledger.llm_calls == 0

    listed = CliRunner().invoke(app, ["providers", "measurements", "calls", "--json"])
    assert listed.exit_code == 0, listed.output
    (shown,) = json.loads(listed.stdout)
    assert (shown["source"], shown["verdict"], shown["items"]) == ("review", "worse", 20)


def _answered(runtime: Runtime) -> list:
    return runtime.reviews.queue.list(status="answered", limit=1000)


def test_a_bake_off_and_reviews_pool_their_paired_answers():
    from orchestrator.store.measurements import REVIEW_MIN_ITEMS, ProviderMeasurement, pooled

    def measurement(source: str, score: PairedScore) -> ProviderMeasurement:
        return ProviderMeasurement(
            skill="calls@1.0.0",
            fingerprint="f",
            provider="p",
            model="m",
            score=score,
            verdict=verdict(score) if source != "review" else "unproven",
            margin=0.05,
            source=source,
        )

    bakeoff = measurement("bakeoff:eval.csv", PairedScore(40, 20, 30, 12, 2))
    few = measurement("review", PairedScore(REVIEW_MIN_ITEMS - 1, 10, 2, 0, 8))
    assert bakeoff.verdict == "pays"
    assert pooled(None, few) is None  # a handful of answers alone decides nothing
    assert pooled(bakeoff, None) is bakeoff
    both = pooled(bakeoff, few)
    assert both is not None and both.score == PairedScore(59, 30, 32, 12, 10)
    assert both.verdict == "unproven" and both.source == "bakeoff:eval.csv + review"
    many = measurement("review", PairedScore(REVIEW_MIN_ITEMS, 10, 2, 0, 8))
    assert pooled(None, many) is many
