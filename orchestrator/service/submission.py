"""Reading a job submission (``POST /v1/jobs``): JSON with the items inline, or a JSONL upload.

The route reads the body by hand (its OpenAPI is :func:`orchestrator.service.models.submit_body`),
so the checks live here: the body's size was bounded while it streamed
(:mod:`orchestrator.service.gate`: ``max_request_bytes``, ``max_upload_bytes`` for an upload);
inline items are counted and measured before the JSON is parsed (``max_inline_items``,
``max_item_bytes``: 413), a JSONL line is cut at ``max_item_bytes`` as it is read. A malformed
body gets 400; one that breaks a rule 422 with ``errors`` naming each field (``body.graph``,
``body.fields``, ``body.file``). The request's SHA-256 goes with the job, so a reused
``Idempotency-Key`` with another body is a 409.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from orchestrator.errors import WebhookRefused
from orchestrator.service.auth import Principal
from orchestrator.service.gate import BodyTooLarge
from orchestrator.service.inline_items import check_inline_items
from orchestrator.service.jobs import inline_items, jsonl_items
from orchestrator.service.models import FIELDS_TEXT, JobRequest
from orchestrator.service.problems import ApiError, field_errors, invalid_fields
from orchestrator.service.service import Service
from orchestrator.service.settings import ServiceSettings
from orchestrator.service.webhook_policy import WebhookPolicy
from orchestrator.store.item import Item
from orchestrator.store.jobs import JobRecord

__all__ = ["submit_json", "submit_upload"]

_FORM_FIELDS = ("graph", "task", "fields", "webhook_url")


async def submit_json(
    request: Request, service: Service, principal: Principal, key: str | None
) -> tuple[JobRecord, bool]:
    """Submit the job an ``application/json`` body describes: ``(job, created)``."""
    body = await request.body()  # bounded by the gate: at most max_request_bytes
    settings = service.settings
    await run_in_threadpool(
        check_inline_items,
        body,
        max_items=min(settings.max_inline_items, settings.max_items_per_job),
        max_item_bytes=settings.max_item_bytes,
    )
    try:
        job = JobRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = field_errors(exc, prefix="body.")
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise ApiError(
                400, "invalid_json", "the body is not valid JSON", errors=errors
            ) from None
        raise invalid_fields(errors) from None
    _check_job_request(job, service.settings)
    digest = hashlib.sha256(body).hexdigest()
    return await _submit(service, principal, key, job, inline_items(job.items), digest)


async def submit_upload(
    request: Request, service: Service, principal: Principal, key: str | None
) -> tuple[JobRecord, bool]:
    """Submit the job a ``multipart/form-data`` body describes (a JSONL ``file``, spooled to
    disk, and the job's fields): ``(job, created)``."""
    try:  # the gate counts the bytes as they stream: past max_upload_bytes, BodyTooLarge
        form = await request.form(max_files=1, max_fields=8)
    except BodyTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed multipart raises many kinds
        raise ApiError(400, "invalid_multipart", f"could not parse the form: {exc}") from None
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(form.close)
        upload = _upload_file(form)
        values = _form_values(form)
        try:
            checked = JobRequest.model_validate({**values, "items": [None]})
        except ValidationError as exc:
            raise invalid_fields(field_errors(exc, prefix="body.")) from None
        _check_job_request(checked, service.settings)
        digest = await run_in_threadpool(_hash_upload, upload.file, values)
        lines = jsonl_items(upload.file, max_line_bytes=service.settings.max_item_bytes)
        return await _submit(service, principal, key, checked, lines, digest)
    raise AssertionError("unreachable")  # pragma: no cover


async def _submit(
    service: Service,
    principal: Principal,
    key: str | None,
    job: JobRequest,
    items: Iterator[Item],
    digest: str,
) -> tuple[JobRecord, bool]:
    """Hand the checked request and its items to the job manager (on a worker thread: it
    writes the items to the store)."""
    return await run_in_threadpool(
        service.jobs.submit,
        owner=principal.name,
        items=items,
        graph=job.graph,
        task=job.task,
        fields=dict(job.fields) if job.fields else None,
        idempotency_key=key,
        request_sha256=digest,
        webhook_url=job.webhook_url,
    )


def _check_job_request(job: JobRequest, settings: ServiceSettings) -> None:
    """The cross-field rules the JSON schema states with oneOf, with errors naming the field."""

    def reject(field: str, message: str) -> ApiError:
        return invalid_fields([{"field": field, "message": message}])

    if (job.graph is None) == (job.task is None):
        field = "body.graph" if job.graph is None else "body.task"
        raise reject(field, "give exactly one of 'graph' (a checked-in graph) or 'task' (to plan)")
    if job.task is not None and not job.fields:
        raise reject("body.fields", "a task needs 'fields': the items' fields and their types")
    if job.graph is not None and job.fields is not None:
        raise reject("body.fields", "'fields' goes with 'task'; a graph declares its own inputs")
    if job.webhook_url:
        try:
            WebhookPolicy(settings.webhook_hosts).check_url(job.webhook_url)
        except WebhookRefused as exc:
            raise reject("body.webhook_url", str(exc)) from None


def _upload_file(form: FormData) -> UploadFile:
    """The form's ``file`` part (422 without one)."""
    upload = form.get("file")
    if isinstance(upload, str):  # a part without a filename arrives as text (bounded: 1 MiB)
        upload = UploadFile(io.BytesIO(upload.encode()), filename="file")
    if not isinstance(upload, UploadFile):
        message = "attach the items as a JSONL file in the form field 'file'"
        raise ApiError(
            422, "invalid_request", message, errors=[{"field": "body.file", "message": message}]
        )
    return upload


def _form_values(form: FormData) -> dict[str, Any]:
    """The job's fields from the form (``fields`` as ``name:type,...`` text); 422 for a field
    the form should not have."""
    unknown = sorted(set(form.keys()) - {"file", *_FORM_FIELDS})
    if unknown:
        message = f"unknown form field(s): {', '.join(unknown)}"
        errors = [{"field": f"body.{u}", "message": "not a known field"} for u in unknown]
        raise ApiError(422, "invalid_request", message, errors=errors)
    values: dict[str, Any] = {}
    for name in _FORM_FIELDS:
        value = form.get(name)
        if isinstance(value, str):
            values[name] = value
    if "fields" in values:
        values["fields"] = _parse_fields_text(values["fields"])
    return values


def _parse_fields_text(text: str) -> dict[str, str]:
    """``utterance,lead_score:float`` -> ``{"utterance": "str", "lead_score": "float"}``."""
    if not re.match(FIELDS_TEXT, text):
        raise ApiError(
            422,
            "invalid_request",
            "fields: name or name:type, comma-separated (types: str, int, float, bool)",
            errors=[{"field": "body.fields", "message": "e.g. utterance,lead_score:float"}],
        )
    pairs = (part.partition(":") for part in text.split(","))
    return {name: kind or "str" for name, _, kind in pairs}


def _hash_upload(file: Any, values: dict[str, Any]) -> str:
    """SHA-256 over the form's fields and the uploaded file (rewound for reading after)."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode())
    file.seek(0)
    while block := file.read(2**20):
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()
