"""Knowledge bases (#18): build a versioned KB from a file, answer a batch from it, calibrate and
evaluate it, escalate its unsure questions grounded in their passages; bad input never moves
prod. Real encoder (the repo's, see conftest), real registry folders, the stub LLM server."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrator import GraphSpec, LocalExecutor, Registry, Runtime
from orchestrator.errors import ArtifactError, DatasetError, SetupError
from orchestrator.graph.grounding import UNKNOWN, grounded_request
from orchestrator.kb.build import KbBuild, build_kb
from orchestrator.kb.entries import read_entries
from orchestrator.kb.skill import build_retrieval_class
from orchestrator.llm.gateway import LLMGateway, Provider
from orchestrator.registry.calibrations import stored_threshold
from orchestrator.registry.folders import existing_versions
from orchestrator.testing import StubLLMServer

ROOT = Path(__file__).resolve().parent.parent
FAQ = ROOT / "examples" / "outbound_campaign" / "faq.csv"


@pytest.fixture(scope="module")
def faq_kb(tmp_path_factory):
    """The campaign's FAQ built once into a temporary skills folder: (skills dir, report)."""
    skills = tmp_path_factory.mktemp("kb") / "skills"
    report = build_kb(KbBuild(name="faq", source=FAQ, skills_dir=skills, target_accuracy=0.8))
    return skills, report


def _keys(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "artifacts" / "keys.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_built_base_is_a_prod_skill_that_answers_a_whole_batch(faq_kb):
    skills, report = faq_kb
    entries = read_entries(FAQ)
    assert report["kb"] == "faq@1.0.0" and report["aliases"] == ["prod"]
    assert report["answers"] == len(entries.answers)
    # held out per id: every id keeps at least one question in the index
    assert report["indexed_texts"] + report["val_questions"] == len(entries.keys)
    keys = _keys(skills / "faq")
    assert {k["id"] for k in keys} == set(entries.answers)
    skill = Registry.from_folder(skills).resolve("faq@prod").create()
    skill.ensure_setup()
    asked = keys[:20]
    got = skill.predict({"text": [k["text"] for k in asked]})
    # a question the base holds finds its own answer, with its own text
    assert got.outputs["answer_id"] == [k["id"] for k in asked]
    assert got.outputs["answer"] == [entries.answers[k["id"]] for k in asked]
    assert all(
        len(c) == 5 and c[0] == k["id"]
        for c, k in zip(got.outputs["candidates"], asked, strict=True)
    )
    assert np.all((np.asarray(got.confidence) > 0) & (np.asarray(got.confidence) <= 1))
    # a far-off question is answered with less confidence than the base's own questions
    far = skill.predict({"text": ["what's the capital of mongolia"]})
    assert far.confidence[0] < min(got.confidence)


def test_the_calibrated_threshold_is_what_eval_reproduces_on_the_held_out_questions(faq_kb):
    from orchestrator.cli.commands import app

    skills, report = faq_kb
    version = Registry.from_folder(skills).resolve("faq@prod")
    assert stored_threshold(version) == pytest.approx(report["threshold"])
    val = skills / "faq" / "artifacts" / "val.csv"
    result = CliRunner().invoke(
        app,
        ["kb", "eval", "faq", "--csv", str(val), "--question-column", "text", "--id-column",
         "id", "--json", "--skills-dir", str(skills)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["questions"] == report["val_items"]
    assert got["coverage"] == pytest.approx(report["val_coverage"], abs=1e-4)
    assert got["top1_accuracy"] == pytest.approx(report["val_accuracy"], abs=1e-4)
    assert got["top5_accuracy"] >= got["top1_accuracy"] and got["seconds_per_1000"] > 0
    if report["reachable"]:
        assert got["selective_accuracy"] == pytest.approx(report["val_selective_accuracy"], 1e-3)


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


BAD = {
    "empty": ([["id", "question", "answer"]], "holds no rows"),
    "no-question-column": ([["id", "answer"], ["a", "yes"]], "no 'question' column"),
    "two-answers": (
        [["id", "question", "answer"], ["a", "q1", "yes"], ["a", "q2", "no"]],
        "two different answers",
    ),
    "reserved-id": ([["id", "question", "answer"], [UNKNOWN, "q", "a"]], "reserved"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_a_clear_error_and_prod_stays(faq_kb, tmp_path, case):
    skills, _ = faq_kb
    rows, message = BAD[case]
    before = {v: m.aliases for v, (_, m) in existing_versions(skills, "faq").items()}
    with pytest.raises(DatasetError, match=message):
        build_kb(
            KbBuild(name="faq", source=_write_csv(tmp_path / "bad.csv", rows), skills_dir=skills)
        )
    after = {v: m.aliases for v, (_, m) in existing_versions(skills, "faq").items()}
    assert after == before and not list(skills.glob(".*.training"))


def test_a_rebuild_is_a_new_canary_version_and_prod_stays(tmp_path):
    skills = tmp_path / "skills"
    small = _write_csv(
        tmp_path / "small.csv",
        [["id", "question", "answer"], ["fees", "any fees?", "None."],
         ["fees", "what does it cost", ""], ["rate", "what's the rate", "3.1%"],
         ["rate", "how much interest", ""]],
    )  # fmt: skip
    first = build_kb(KbBuild(name="tiny", source=small, skills_dir=skills))
    second = build_kb(KbBuild(name="tiny", source=small, skills_dir=skills))
    assert (first["aliases"], second["aliases"]) == (["prod"], ["canary"])
    registry = Registry.from_folder(skills)
    assert registry.resolve("tiny@prod").version == "1.0.0"
    assert registry.resolve("tiny@canary").version == second["kb"].split("@")[1] != "1.0.0"


def test_passages_from_jsonl_and_a_base_built_on_another_encoder_is_refused(tmp_path):
    skills = tmp_path / "skills"
    source = tmp_path / "passages.jsonl"
    texts = {"p1": "Opening hours are 8am to 8pm.", "p2": "Deposits are guaranteed to 100k."}
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in texts.items()))
    report = build_kb(KbBuild(name="docs", source=source, skills_dir=skills))
    assert report["kind"] == "passages" and report["threshold"] is None  # nothing to calibrate on
    folder = skills / "docs"
    config = json.loads((folder / "skill.json").read_text())
    skill = Registry.from_folder(skills).resolve("docs").create()
    skill.ensure_setup()
    assert skill.predict({"text": ["when are you open"]}).outputs["answer"] == [texts["p1"]]
    # as if embedded by an encoder since replaced (another export, another machine's bytes)
    (folder / "artifacts" / "kb.json").write_text(json.dumps({"encoder_sha256": "0" * 64}))
    other = build_retrieval_class(config, "kb_test_other", "Docs")(folder / "artifacts")
    with pytest.raises(SetupError, match=r"on encoder .* vectors would not match; rebuild it"):
        other.ensure_setup()
    with pytest.raises(ArtifactError):  # and the registry refuses the altered artifact anyway
        Registry.from_folder(skills).resolve("docs").verify()


def test_a_labelled_question_set_is_a_base_and_calibrates_on_another_file(tmp_path):
    skills = tmp_path / "skills"
    rows = [["id", "question"], ["hours", "when are you open"], ["hours", "opening times"]]
    rows += [["fees", "what does it cost"], ["fees", "any charges"]]
    source = _write_csv(tmp_path / "labelled.csv", rows)
    val = [["q", "label"], ["are you open on sunday", "hours"], ["is it free", "fees"]]
    val += [["what's the weather", UNKNOWN]]  # no answer in the base: answering it is wrong
    val_path = _write_csv(tmp_path / "val.csv", val)
    options = {"name": "labelled", "source": source, "skills_dir": skills, "val": val_path}
    report = build_kb(KbBuild(**options, val_question_column="q", val_id_column="label"))
    assert report["answers"] == 2 and report["val_questions"] == 3
    assert report["target_accuracy"] == report["requested_target_accuracy"]  # new questions
    skill = Registry.from_folder(skills).resolve("labelled").create()
    skill.ensure_setup()
    assert skill.predict({"text": ["when do you open"]}).outputs["answer"] == ["hours"]
    bad = _write_csv(tmp_path / "bad_val.csv", [["q", "label"], ["hi", "no_such_id"]])
    with pytest.raises(DatasetError, match="no_such_id"):
        build_kb(KbBuild(**{**options, "val": bad}, val_question_column="q", val_id_column="label"))


def test_a_gated_base_answers_only_the_items_its_label_opens(tmp_path):
    skills = tmp_path / "skills"
    build_kb(KbBuild(name="gated", source=FAQ, skills_dir=skills, answer_on=("answer_question",)))
    skill = Registry.from_folder(skills).resolve("gated").create()
    skill.ensure_setup()
    got = skill.predict(
        {"text": ["how did you get my number", "yes please"], "when": ["answer_question", "x"]}
    )
    assert got.outputs["answer_id"][1] == "" and got.confidence[1] == 1.0
    assert got.outputs["answer_id"][0] == "number_source"


def test_an_hnsw_index_finds_what_the_exact_search_finds(tmp_path):
    pytest.importorskip("faiss")
    skills = tmp_path / "skills"
    build_kb(KbBuild(name="ann", source=FAQ, skills_dir=skills, index="hnsw", val_fraction=0))
    registry = Registry.from_folder(skills)
    skill = registry.resolve("ann").create()
    skill.ensure_setup()
    assert skill.index_method == "hnsw" and (skills / "ann" / "artifacts" / "index.faiss").is_file()
    keys = _keys(skills / "ann")
    assert skill.predict({"text": [k["text"] for k in keys]}).outputs["answer_id"] == [
        k["id"] for k in keys
    ]


# ---------------------------------------------------------------------------------------------
# Grounded escalation, through the runtime's cascade and the PII guard, against the stub LLM


#: A small base in lower case: the PII guard's patterns run on its prompts, and no capitalised
#: word wakes its name finder (spaCy, seconds to load), so these tests stay fast.
SMALL_FAQ = [
    ["id", "question", "answer"],
    ["number_source", "how did you get my number", "you gave it to us as a customer."],
    ["number_source", "where did you find my phone number", ""],
    ["rate", "what is the interest rate", "a fixed 3.1 % a year on 12 months."],
    ["rate", "how much interest do i earn", ""],
    ["fees", "are there any fees", "no fees to open, hold or close it."],
    ["safety", "is my money safe", "deposits are guaranteed up to 100,000 euros."],
    ["opt_out", "please stop calling me", "we mark you do-not-call now."],
    ["hours", "when are you open", "8am to 8pm, monday to saturday."],
]


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory):
    """The small base above, built once: its skills folder."""
    folder = tmp_path_factory.mktemp("small_kb")
    skills = folder / "skills"
    source = _write_csv(folder / "small.csv", SMALL_FAQ)
    build_kb(KbBuild(name="faq", source=source, skills_dir=skills, val_fraction=0, top_k=3))
    return skills


def _graph(threshold: float) -> GraphSpec:
    return GraphSpec.from_dict(
        {
            "name": "faq_turn",
            "inputs": {"question": "str"},
            "steps": [
                {
                    "id": "faq",
                    "skill": "faq@prod",
                    "inputs": {"text": "input.question"},
                    "escalation": {"threshold": threshold, "items_per_call": 10},
                }
            ],
            "outputs": {
                "answer_id": "faq.answer_id",
                "reply": "faq.answer",
                "by": "faq.answered_by",
                "degraded": "faq.degraded",
            },
        }
    )


def _run(skills: Path, stub: StubLLMServer, items: list[dict]):
    spec = {"name": "stub", "base_url": stub.base_url, "model": "m", "max_attempts": 1}
    registry = Registry.from_folder(skills)
    with Runtime(
        registry=registry, executor=LocalExecutor(), gateway=LLMGateway([Provider(**spec)])
    ) as runtime:
        # redact even for the loopback stub (a local provider gets text as is by default)
        update = {"escalate": True, "privacy": "redact"}
        runtime.settings = runtime.settings.model_copy(update=update)
        return runtime.run(_graph(1.0), items)


def _shown(request) -> list[dict]:
    prompt = request["messages"][-1]["content"]
    return json.loads(prompt.split("Items:\n", 1)[1])


def test_unsure_questions_reach_the_big_model_with_their_passages_and_cite_them(small_kb):
    skills = small_kb

    def reader(request):
        """A careful model: cites the first passage of item 0, says unknown for the others."""
        items = _shown(request)
        return {
            "answers": {
                str(it["index"]): (
                    {"answer_id": it["passages"][0]["id"], "answer": "From the passage."}
                    if it["index"] == 0
                    else {"answer_id": UNKNOWN, "answer": "I don't know."}
                )
                for it in items
            }
        }

    items = [
        {"id": 0, "question": "how did you get my number? mail me at jane.roe@example.com"},
        {"id": 1, "question": "can i pay for pizza with it"},
    ]
    with StubLLMServer(default=reader) as stub:
        result = _run(skills, stub, items)
        sent = stub.chat_requests
    assert len(sent) == 1  # one grounded call for both unsure items
    body = sent[0].body.decode()
    assert "jane.roe@example.com" not in body  # the PII guard ran around the call
    shown = _shown(sent[0].json)
    assert [len(it["passages"]) for it in shown] == [3, 3]  # top_k
    assert "only from the passages" in sent[0].json["messages"][0]["content"]
    by_id = {r.id: r.outputs for r in result.results}
    assert by_id[0]["by"] == "llm:stub" and by_id[0]["reply"] == "From the passage."
    assert by_id[0]["answer_id"] == shown[0]["passages"][0]["id"]
    assert by_id[1]["answer_id"] == UNKNOWN and not by_id[1]["degraded"]


def test_a_big_model_citing_a_passage_it_was_not_shown_is_refused(small_kb):
    skills = small_kb

    def inventor(request):
        return {
            "answers": {
                str(it["index"]): {"answer_id": "made_up_id", "answer": "Trust me."}
                for it in _shown(request)
            }
        }

    with StubLLMServer(default=inventor) as stub:
        result = _run(skills, stub, [{"id": 0, "question": "is my money safe with you"}])
    out = result.results[0].outputs
    # the schema admits only the item's passage ids or "unknown": the KB's own answer stands
    assert out["degraded"] and out["answer_id"] != "made_up_id" and out["reply"] != "Trust me."


def test_the_grounded_schema_enumerates_each_items_own_passages(small_kb):
    skills = small_kb
    version = Registry.from_folder(skills).resolve("faq@prod")

    class Step:  # the two attributes grounding reads from a resolved step
        skill = version

    batch = {"text": ["a", "b"], "candidates": [["rate", "fees"], ["hours"]]}
    request = grounded_request(Step, batch, [0, 1])
    assert request is not None
    schema = request.schema.model_json_schema()
    enums = sorted(
        sorted(d["properties"]["answer_id"]["enum"]) for d in schema["$defs"].values()
        if "answer_id" in d.get("properties", {})
    )  # fmt: skip
    assert enums == [["fees", "rate", UNKNOWN], ["hours", UNKNOWN]]
