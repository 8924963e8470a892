"""Reviews: a reviewer sees its own jobs' tickets (or all, with an explicit cross-tenant scope);
an answer closes the ticket and replaces the result in one transaction; two concurrent answers
cannot both resume the item. Issue #16, "Webhooks, reviews, skills"."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from api_server import make_keys, wait_for
from hardening_support import bearer, toy_app, toy_settings
from starlette.testclient import TestClient

from orchestrator.errors import ReviewError
from orchestrator.service.auth import ApiKey, new_key

ITEMS = [{"id": f"t{i}", "utterance": u} for i, u in enumerate(["hello there", "hi", "yo"])]


class _Http:
    def __init__(self, http, headers):
        self.http, self.headers = http, headers

    def get(self, url):
        return self.http.get(url, headers=self.headers)


def _reviewer(name: str, *scopes: str) -> tuple[str, ApiKey]:
    plain, digest = new_key()
    return plain, ApiKey(name=name, sha256=digest, scopes=frozenset(scopes))


@pytest.fixture
def held(tmp_path):
    """A service whose writer ran a job with two items held for review; the keys."""
    keys = make_keys()
    own, own_cfg = _reviewer("writer2", "reviews", "jobs:read", "jobs:write")
    stranger, stranger_cfg = _reviewer("stranger", "reviews")
    desk, desk_cfg = _reviewer("desk", "reviews:all")
    settings = toy_settings(tmp_path, keys)
    settings = settings.model_copy(
        update={"api_keys": [*settings.api_keys, own_cfg, stranger_cfg, desk_cfg]}
    )
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        body = {"graph": "toy_review", "items": ITEMS}
        job = http.post("/v1/jobs", json=body, headers=bearer(own)).json()
        assert wait_for(f"/v1/jobs/{job['id']}", _Http(http, bearer(own)))["status"] == "succeeded"
        yield http, app.state.service, job["id"], {"own": own, "stranger": stranger, "desk": desk}


def test_a_reviewer_sees_only_its_own_jobs_tickets_unless_it_reviews_for_all(held):
    http, _, job_id, keys = held
    mine = http.get("/v1/reviews", headers=bearer(keys["own"])).json()
    assert [t["item_id"] for t in mine] == ["t1", "t2"] and {t["job_id"] for t in mine} == {job_id}
    assert http.get("/v1/reviews", headers=bearer(keys["stranger"])).json() == []
    ticket = mine[0]["id"]
    assert http.get(f"/v1/reviews/{ticket}", headers=bearer(keys["stranger"])).status_code == 404
    answer = {"answer": {"length": 2}}
    refused = http.post(
        f"/v1/reviews/{ticket}/answer", json=answer, headers=bearer(keys["stranger"])
    )
    assert refused.status_code == 404
    assert len(http.get("/v1/reviews", headers=bearer(keys["desk"])).json()) == 2
    done = http.post(f"/v1/reviews/{ticket}/answer", json=answer, headers=bearer(keys["desk"]))
    assert done.status_code == 200 and done.json()["reviewer"] == "desk"


def test_answering_closes_the_ticket_and_replaces_the_result_together(held):
    http, service, job_id, keys = held
    desk = service.runtime.reviews
    ticket = desk.queue.list(job_id=job_id)[0]

    def broken(run, ticket, result):  # the job store's half fails inside the transaction
        run("UPDATE no_such_table SET x = 1")

    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(desk.answer(ticket.id, {"length": 2}, reviewer="desk", also=broken))
    assert desk.queue.get(ticket.id).status == "waiting"  # nothing half-done; answer again
    done = http.post(
        f"/v1/reviews/{ticket.id}/answer",
        json={"answer": {"length": 2}},
        headers=bearer(keys["own"]),
    )
    assert done.status_code == 200, done.text
    results = http.get(f"/v1/jobs/{job_id}/results", headers=bearer(keys["own"])).json()["results"]
    line = next(r for r in results if r["id"] == ticket.item_id)
    assert line["review"]["status"] == "answered" and line["length"] == 2


def test_two_concurrent_answers_resume_the_item_once(held):
    _, service, job_id, _ = held
    desk = service.runtime.reviews
    ticket = desk.queue.list(job_id=job_id)[0]
    resumed: list[str] = []
    resume = desk._resume

    async def counted(ticket, answer, reviewer):  # a spy: counts, then resumes for real
        resumed.append(reviewer)
        return await resume(ticket, answer, reviewer)

    desk._resume = counted

    async def both():
        return await asyncio.gather(
            desk.answer(ticket.id, {"length": 2}, reviewer="ana"),
            desk.answer(ticket.id, {"length": 5}, reviewer="bo"),
            return_exceptions=True,
        )

    outcomes = asyncio.run(both())
    errors = [o for o in outcomes if isinstance(o, ReviewError)]
    assert len(errors) == 1 and errors[0].code == "review_already_answered"
    assert len(resumed) == 1  # the loser never resumed the item
    closed = desk.queue.get(ticket.id)
    assert closed.status == "answered" and closed.reviewer == resumed[0]
