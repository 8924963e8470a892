"""Errors as RFC 9457 problem details (``application/problem+json``), with a stable ``code``.

Every error the service answers goes through :func:`problem_response`; a bad payload lists each
bad field in ``errors`` (``body.items``, ``query.limit``, ``input.utterance``). The runtime's
error tree maps to statuses here: setup errors 422, back-pressure 429 with ``Retry-After``, a
reused idempotency key 409, run errors 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import GraphValidationError, ItemTooLarge, OrchestratorError, SetupError
from orchestrator.service.jobs import GraphNotFound, IdempotencyConflict, Overloaded, TooManyItems
from orchestrator.telemetry.logs import get_logger

__all__ = [
    "PROBLEM",
    "ApiError",
    "FieldProblem",
    "Problem",
    "field_errors",
    "install_error_handlers",
    "invalid_fields",
    "problem_body",
    "problem_response",
    "problem_responses",
]

log = get_logger(__name__)

PROBLEM = "application/problem+json"


class FieldProblem(BaseModel):
    field: str = Field(description="where: body.items, query.limit, input.utterance, ...")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="stable machine-readable code")
    instance: str | None = None
    errors: list[FieldProblem] | None = None


class ApiError(Exception):
    """An HTTP error with a problem body."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.errors, self.headers = errors, headers


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_body(
    status: int, code: str, detail: str, instance: str | None = None
) -> dict[str, Any]:
    """The RFC 9457 body of a problem (the app's handlers and the request gate alike)."""
    body: dict[str, Any] = {
        "type": f"urn:orchestrator:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    return body


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = problem_body(status, code, detail, request.url.path if request is not None else None)
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"model": Problem, "content": {PROBLEM: {}}, "description": _TITLES[s]} for s in statuses
    }


def field_errors(exc: ValidationError | RequestValidationError, prefix: str = "") -> list[dict]:
    found = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        found.append({"field": (prefix + loc).strip(".") or "body", "message": e.get("msg", "")})
    return found


def invalid_fields(errors: list[dict[str, str]], code: str = "invalid_request") -> ApiError:
    """A 422 listing ``errors`` (``{"field", "message"}``); the detail names the first five."""
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return ApiError(422, code, detail, errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error the app raises as a problem (an unexpected one as a logged 500)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.code, exc.detail, errors=exc.errors, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = invalid_fields(field_errors(exc))
        return problem_response(request, 422, error.code, error.detail, errors=error.errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _TITLES.get(exc.status_code, "error").lower().replace(" ", "_")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        headers = dict(exc.headers or {})
        return problem_response(request, exc.status_code, code, detail, headers=headers)

    @app.exception_handler(OrchestratorError)
    async def orchestrator_error(request: Request, exc: OrchestratorError) -> JSONResponse:
        return _orchestrator_problem(request, exc)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request_crashed", path=request.url.path)
        return problem_response(request, 500, "internal_error", "the service hit an internal error")


def _orchestrator_problem(request: Request, exc: OrchestratorError) -> JSONResponse:
    if isinstance(exc, Overloaded):
        headers = {"Retry-After": str(exc.retry_after)}
        return problem_response(request, 429, exc.code, str(exc), headers=headers)
    if isinstance(exc, ItemTooLarge):
        errors = [{"field": "body.items", "message": str(exc)}]
        return problem_response(request, 413, exc.code, str(exc), errors=errors)
    if isinstance(exc, TooManyItems):
        status = 413 if "at most" in str(exc) else 422
        return problem_response(
            request,
            status,
            exc.code,
            str(exc),
            errors=[{"field": "body.items", "message": str(exc)}],
        )
    if isinstance(exc, IdempotencyConflict):
        return problem_response(request, 409, exc.code, str(exc))
    if isinstance(exc, GraphNotFound):
        errors = [{"field": "body.graph", "message": str(exc)}]
        return problem_response(request, 422, exc.code, str(exc), errors=errors)
    if isinstance(exc, GraphValidationError):
        errors = [{"field": issue.where, "message": issue.message} for issue in exc.issues]
        return problem_response(request, 422, exc.code, str(exc), errors=errors)
    if isinstance(exc, SetupError):
        return problem_response(request, 422, exc.code, str(exc))
    log.error("request_failed", code=exc.code, error=str(exc))
    return problem_response(request, 503, exc.code, str(exc))
