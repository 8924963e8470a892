"""The dashboard at ``/ui``: its JSON (auth, owners, numbers equal to the stored ledger) and the
page itself, rendered by a real headless Chromium against the real service on loopback.

The browser is Debian's ``chromium`` + ``chromium-driver`` (``.ci/run`` installs them), driven by
Selenium with the driver path given and ``SE_OFFLINE=true``: Selenium Manager never downloads
anything, and the page loads nothing from the internet (Chart.js is vendored).
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from api_server import ROOT, client, make_keys, serve_app, wait_for

from orchestrator.config import Settings
from orchestrator.service.app import create_app
from orchestrator.service.auth import ApiKey, new_key
from orchestrator.service.routes.dashboard import STATIC_DIR
from orchestrator.service.savings import SAVINGS_FIELDS
from orchestrator.service.settings import ServiceSettings
from orchestrator.store.jobs import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BASELINE_FIELDS = tuple(baseline for _, _, baseline in SAVINGS_FIELDS)
#: the savings chart's series colours (app.js: SPENT_COLOR, BASELINE_COLOR)
SPENT_RGB = (0x25, 0x63, 0xEB)
BASELINE_RGB = (0xF5, 0x9E, 0x0B)
WAIT_S = 20


def _clinc_turns(count: int, offset: int) -> list[dict]:
    """Real CLINC150 test turns (in-scope and out-of-scope), spread over the set."""
    from skills.data import clinc150_eval

    pairs = clinc150_eval("test")
    step = len(pairs) // count
    picked = [pairs[(offset + i * step) % len(pairs)] for i in range(count)]
    return [
        {"id": f"c{offset}-{i}", "utterance": text, "label": intent}
        for i, (text, intent) in enumerate(picked)
    ]


@pytest.fixture(scope="module")
def keys():
    """The API tests' keys, plus the dashboard's user ``ops``: reads and submits jobs, reads the
    review queue (not an admin: it sees only its own jobs)."""
    base = make_keys()
    ops, digest = new_key()
    scopes = frozenset({"jobs:read", "jobs:write", "reviews"})
    return SimpleNamespace(
        ops=ops,
        admin=base.admin,
        other=base.other,
        invoker=base.invoker,
        configs=[*base.configs, ApiKey(name="ops", sha256=digest, scopes=scopes)],
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory, keys, builtin_registry):
    """The real service (local executor, chunks of 4) with four finished jobs: three of ``ops``
    (one on a copy of the turn graph that holds its least sure intents for review), one of
    another owner's."""
    data_dir = tmp_path_factory.mktemp("dashboard")
    graphs = data_dir / "graphs"
    graphs.mkdir()
    turn_graph = (ROOT / "graphs" / "outbound_call_turn.yaml").read_text(encoding="utf-8")
    (graphs / "outbound_call_turn.yaml").write_text(turn_graph, encoding="utf-8")
    reviewed = turn_graph.replace("name: outbound_call_turn", "name: call_turn_reviewed").replace(
        "escalation: {threshold: calibrated, chain: [turn_intent_minilm@prod]}",
        "escalation: {threshold: calibrated, chain: [turn_intent_minilm@prod], review_below: 0.3}",
    )
    assert "review_below" in reviewed
    (graphs / "call_turn_reviewed.yaml").write_text(reviewed, encoding="utf-8")
    settings = ServiceSettings(
        runtime=Settings(
            executor="local", chunk_size=4, data_dir=data_dir, skills_dir=ROOT / "skills"
        ),
        graphs_dir=graphs,
        api_keys=keys.configs,
    )
    with serve_app(create_app(settings)) as url:
        submitted = []
        for key, graph, items in (
            (keys.ops, "outbound_call_turn", _clinc_turns(12, 0)),
            (keys.ops, "outbound_call_turn", _clinc_turns(7, 50)),
            (keys.ops, "call_turn_reviewed", _clinc_turns(16, 200)),
            (keys.other, "outbound_call_turn", _clinc_turns(3, 100)),
        ):
            with client(url, key) as http:
                answer = http.post("/v1/jobs", json={"graph": graph, "items": items})
                assert answer.status_code == 202, answer.text
                submitted.append((key, answer.json()["id"]))
        for key, job_id in submitted:
            with client(url, key) as http:
                assert wait_for(f"/v1/jobs/{job_id}", http)["status"] == "succeeded"
        store = Store(settings.store_location)
        try:
            yield SimpleNamespace(
                url=url,
                store=store,
                mine=[job_id for key, job_id in submitted if key == keys.ops],
                theirs=[job_id for key, job_id in submitted if key == keys.other],
            )
        finally:
            store.close()


def _stored_ledger(service, job_id: str) -> dict:
    job = service.store.get(job_id)
    assert job is not None and job.ledger is not None
    missing = [name for name in BASELINE_FIELDS if name not in job.ledger]
    assert not missing, (
        f"job {job_id}'s stored ledger lacks {missing}: the all-big-model baseline "
        "(Ledger.baseline_*) has not landed yet, so the savings chart has nothing to compare"
    )
    return job.ledger


# -- the JSON, without a browser ---------------------------------------------------------------

ENDPOINTS = ("/v1/dashboard/jobs", "/v1/dashboard/escalation", "/v1/dashboard/jobs/{job}")


def test_json_needs_a_key_with_jobs_read(service, keys):
    paths = [p.format(job=service.mine[0]) for p in ENDPOINTS]
    with client(service.url, None) as anonymous:
        for path in paths:
            answer = anonymous.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["code"] == "unauthorized"
        page = anonymous.get("/ui")  # the page itself is open: the data behind it is not
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert anonymous.get("/ui/static/app.js").status_code == 200
        missing = anonymous.get("/ui/static/nope.js")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    with client(service.url, "ork_not-a-key") as wrong:
        assert wrong.get(paths[0]).status_code == 401
    with client(service.url, keys.invoker) as invoker:  # graphs:invoke only
        denied = invoker.get(paths[0])
        assert denied.status_code == 403 and "jobs:read" in denied.json()["detail"]


def test_json_shows_only_the_callers_jobs_but_all_to_an_admin(service, keys):
    with client(service.url, keys.ops) as ops:
        listed = [row["id"] for row in ops.get("/v1/dashboard/jobs").json()["jobs"]]
        assert listed == service.mine[::-1]  # newest first
        theirs = ops.get(f"/v1/dashboard/jobs/{service.theirs[0]}")
        assert theirs.status_code == 404 and theirs.json()["code"] == "job_not_found"
        bad = ops.get("/v1/dashboard/jobs", params={"limit": 0})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.limit"
    with client(service.url, keys.admin) as admin:
        rows = admin.get("/v1/dashboard/jobs").json()["jobs"]
        assert {row["id"] for row in rows} == {*service.mine, *service.theirs}
        assert {row["owner"] for row in rows} == {"ops", "other"}
        assert admin.get(f"/v1/dashboard/jobs/{service.theirs[0]}").status_code == 200


def test_json_numbers_equal_the_stored_ledger(service, keys):
    with client(service.url, keys.ops) as ops:
        page = ops.get("/v1/dashboard/jobs").json()
        rows = {row["id"]: row for row in page["jobs"]}
        escalation = ops.get("/v1/dashboard/escalation", params={"hours": 1}).json()
        details = {job_id: ops.get(f"/v1/dashboard/jobs/{job_id}").json() for job_id in rows}
        api_views = {job_id: ops.get(f"/v1/jobs/{job_id}").json() for job_id in rows}

    stored = {job_id: _stored_ledger(service, job_id) for job_id in service.mine}
    for job_id, ledger in stored.items():
        row, detail = rows[job_id], details[job_id]
        assert row["status"] == "succeeded" and row["items_done"] == row["items_total"] > 0
        for name in ("items", "succeeded", "failed", "escalated", "degraded"):
            assert row["ledger"][name] == ledger[name], name
        assert row["ledger"]["escalation_rate"] == api_views[job_id]["ledger"]["escalation_rate"]
        for entry, spent, baseline in SAVINGS_FIELDS:
            numbers = row["savings"][entry]
            assert numbers["spent"] == pytest.approx(ledger[spent]), spent
            assert numbers["baseline"] == pytest.approx(ledger[baseline]), baseline
            assert numbers["saved"] == pytest.approx(ledger[baseline] - ledger[spent])
            assert detail["ledger"][baseline] == pytest.approx(ledger[baseline])
        assert row["savings"]["baseline_recorded"] is True
        assert ledger["baseline_llm_calls"] > 0, "every item sent to the big model costs calls"
        assert {s["key"]: s["items"] for s in detail["skills"]} == ledger["skill_items"]
        assert {s["key"]: s["escalated"] for s in detail["skills"]} == ledger["skill_escalated"]
        assert detail["job"] == row
    for entry, _, baseline in SAVINGS_FIELDS:
        assert page["totals"][entry]["baseline"] == pytest.approx(
            sum(ledger[baseline] for ledger in stored.values())
        )

    # escalation per skill version: the caller's finished jobs, summed over the buckets
    items: dict[str, int] = {}
    escalated: dict[str, int] = {}
    for ledger in stored.values():
        for key, n in ledger["skill_items"].items():
            items[key] = items.get(key, 0) + n
            escalated[key] = escalated.get(key, 0) + ledger["skill_escalated"].get(key, 0)
    series = {s["key"]: s for s in escalation["series"]}
    assert set(series) == set(items) and "turn_intent@1.0.0" in series
    assert escalation["bucket_s"] == 60  # one hour in at most 60 buckets
    for key, s in series.items():
        assert sum(p["items"] for p in s["points"]) == items[key]
        assert sum(p["escalated"] for p in s["points"]) == escalated[key]
        for p in s["points"]:
            assert p["rate"] == pytest.approx(p["escalated"] / p["items"], abs=1e-4)
            assert escalation["since"] - 60 <= p["t"] <= escalation["until"]
    assert sum(escalated.values()) > 0, "the CLINC turns should include unsure ones"


def test_the_page_loads_nothing_from_elsewhere():
    for name in ("index.html", "app.js", "app.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text) is None, name
    assert (STATIC_DIR / "vendor" / "chart.umd.min.js").stat().st_size > 100_000
    assert (STATIC_DIR / "vendor" / "LICENSE.md").is_file()


# -- the page, in a real browser ---------------------------------------------------------------


@pytest.fixture
def browser(monkeypatch):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            "needs Debian's chromium and chromium-driver at /usr/bin "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1440,1400",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()


def _errors(driver) -> list[dict]:
    """Severe console entries (and clears them), apart from the review queue's 404 while the
    service has no ``/v1/reviews`` (the page then says "review queue unavailable")."""
    return [
        entry
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
        and not (
            entry["source"] == "network"
            and "/v1/reviews" in entry["message"]
            and " 404 " in entry["message"]
        )
    ]


def _colour_pixels(image, box: tuple[int, int, int, int], rgb: tuple[int, int, int]) -> int:
    """Pixels of ``image`` inside ``box`` within a small distance of ``rgb``."""
    region = image.crop(box)
    return sum(
        n
        for n, pixel in region.getcolors(maxcolors=region.width * region.height)
        if max(abs(a - b) for a, b in zip(pixel[:3], rgb, strict=True)) <= 8
    )


@pytest.mark.timeout(120)
def test_dashboard_in_a_browser(service, keys, browser, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(f"{service.url}/ui")

    # a wrong key is turned away with a message, and the form comes back
    key_field = wait.until(ec.visibility_of_element_located((By.ID, "api-key")))
    key_field.send_keys("ork_not-a-key")
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    rejected = wait.until(ec.visibility_of_element_located((By.ID, "login-error")))
    assert "did not accept" in rejected.text
    turned_away = browser.get_log("browser")  # (and clears them)
    assert all(" 401 " in e["message"] for e in turned_away), turned_away

    # the ops key: the jobs table lists their jobs, not the other owner's
    browser.find_element(By.ID, "api-key").send_keys(keys.ops)
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()

    def listed(driver) -> dict[str, str] | None:
        rows = driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
        found = {row.get_attribute("data-job"): row.text for row in rows}
        return found if set(service.mine) <= set(found) else None

    rows = wait.until(listed)
    assert set(rows) == set(service.mine)
    assert all("succeeded" in text and "call_turn" in text for text in rows.values())

    # open a job: its ledger, per skill version, and the savings chart drawn for it
    job_id = service.mine[0]
    browser.find_element(By.CSS_SELECTOR, f'#jobs tr[data-job="{job_id}"]').click()
    canvas = wait.until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, f'#savings-chart[data-rendered="{job_id}"]')
        )
    )
    ledger_text = browser.find_element(By.ID, "ledger").text
    savings_text = browser.find_element(By.ID, "savings-table").text
    assert f"items {len(_clinc_turns(12, 0))}" in ledger_text
    assert "turn_intent@1.0.0" in browser.find_element(By.ID, "skills").text
    versions = {key for job in service.mine for key in service.store.get(job).ledger["skill_items"]}
    wait.until(  # one line per skill version, drawn
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, f'#escalation-chart[data-series="{len(versions)}"]')
        )
    )

    # the review queue: the items the reviewed job held, or "unavailable" without /v1/reviews
    with client(service.url, keys.ops) as http:
        answer = http.get("/v1/reviews", params={"status": "waiting"})
    if answer.status_code == 404:
        wait.until(ec.text_to_be_present_in_element((By.ID, "reviews-status"), "unavailable"))
    else:
        tickets = answer.json()
        assert tickets, "the reviewed job should hold its least sure intents for a person"
        wait.until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#reviews tbody tr")) == len(tickets)
        )
        lines = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#reviews tbody tr")]
        for ticket, line in zip(tickets, lines, strict=True):
            assert ticket["job_id"] in line and ticket["skill"] in line
            assert ticket["inputs"]["text"][:20] in line

    # the screenshot: the savings chart's region holds both series' colours, with bars drawn
    browser.execute_script("window.scrollTo(0, 0)")
    viewport = browser.execute_script("return [innerWidth, innerHeight, devicePixelRatio]")
    rect = canvas.rect
    assert rect["y"] + rect["height"] <= viewport[1], "the savings chart is below the fold"
    png = browser.get_screenshot_as_png()
    path = tmp_path / "dashboard.png"
    path.write_bytes(png)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(path, ROOT / "docs" / "img" / "dashboard.png")
    assert _errors(browser) == []

    # what the chart must show: the stored baseline (checked after the screenshot is saved)
    ledger = _stored_ledger(service, job_id)
    assert f"calls {ledger['llm_calls']:,} {ledger['baseline_llm_calls']:,}" in savings_text
    image = Image.open(io.BytesIO(png)).convert("RGB")
    scale = viewport[2]
    box = tuple(
        round(v * scale)
        for v in (rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"])
    )
    legend_box = 40 * 12  # Chart.js draws each legend entry as a 40 x 12 px swatch
    assert _colour_pixels(image, box, SPENT_RGB) > legend_box // 2, "no runtime series drawn"
    baseline = _colour_pixels(image, box, BASELINE_RGB)
    assert baseline > 4 * legend_box, f"the baseline bars are missing ({baseline} px)"


def test_savings_price_both_sides_alike():
    """The embedded model costs $0 itself; the saving compares tokens at the baseline's price."""
    from orchestrator.service.savings import savings

    ledger = {
        "llm_prompt_tokens": 1_000_000,
        "llm_completion_tokens": 0,
        "llm_cost_usd": 0.0,
        "baseline_cost_usd": 1.5,
        "baseline_price_model": "gpt-4o-mini",
    }
    cost = savings(ledger)["cost_usd"]
    assert cost["spent"] == pytest.approx(0.15) and cost["saved"] == pytest.approx(1.35)
