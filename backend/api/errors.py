"""One error shape for everything the API refuses: `{"error": {type, code, message, param}}`.

Codes are stable (clients branch on them): service errors and ledger errors bring their own,
pydantic validation errors are mapped here, and Starlette's 404/405 get route codes. A 5xx is
a bug; its body names no internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.services.common import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    ServiceError,
)
from backend.services.journal import UnbalancedPosting
from ledger import errors as ledger_errors

log = logging.getLogger("tally.api")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        description="invalid_request_error | authentication_error | permission_error | idempotency_error | api_error",
        examples=["invalid_request_error"],
    )
    code: str = Field(description="Stable, machine-readable reason.", examples=["parameter_invalid"])
    message: str = Field(description="Human-readable explanation.")
    param: str | None = Field(default=None, description="The offending parameter, if any.")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "parameter_invalid",
                        "message": "lines.0.unit_amount_minor: Input should be a valid integer",
                        "param": "lines.0.unit_amount_minor",
                    }
                }
            ]
        },
    )
    error: ErrorBody


class ApiError(Exception):
    """An HTTP-level refusal raised by the API layer itself (auth, idempotency, body size)."""

    def __init__(self, status: int, type_: str, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.type, self.code, self.message, self.param = (
            status,
            type_,
            code,
            message,
            param,
        )


def error_json(
    status: int, type_: str, code: str, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": type_, "code": code, "message": message, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


# Ledger errors that mean "the resource's state forbids this" rather than "bad input".
_LEDGER_CONFLICTS: tuple[type[ledger_errors.LedgerError], ...] = (
    ledger_errors.IllegalTransition,
    ledger_errors.CreditExceedsBalance,
    ledger_errors.ReversalExceedsPayments,
)
# Ledger errors that are never the caller's fault: an invariant broke.
_LEDGER_INTERNAL: tuple[type[ledger_errors.LedgerError], ...] = (
    ledger_errors.LogCorrupted,
    ledger_errors.NodeMissing,
    UnbalancedPosting,
)

_SERVICE_STATUS: tuple[tuple[type[ServiceError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (PermissionDenied, 403),
    (AuthenticationFailed, 401),
)


def service_status(error: ServiceError) -> int:
    for kind, status in _SERVICE_STATUS:
        if isinstance(error, kind):
            return status
    return 400


def _param_of(location: tuple[Any, ...]) -> str | None:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


_PYDANTIC_CODES = {
    "missing": "parameter_missing",
    "extra_forbidden": "parameter_unknown",
    "json_invalid": "body_invalid_json",
    "model_attributes_type": "body_invalid",
    "dict_type": "parameter_invalid",
    "less_than_equal": "parameter_out_of_range",
    "greater_than_equal": "parameter_out_of_range",
    "less_than": "parameter_out_of_range",
    "greater_than": "parameter_out_of_range",
    "int_type": "parameter_invalid_integer",
    "int_parsing": "parameter_invalid_integer",
    "int_from_float": "parameter_invalid_integer",
}


def validation_error_body(error: RequestValidationError) -> tuple[str, str, str | None]:
    """(code, message, param) of the first validation error."""
    problems = error.errors()
    if not problems:
        return "parameter_invalid", "invalid request", None
    first = problems[0]
    location = tuple(first.get("loc", ()))
    param = _param_of(location)
    kind = str(first.get("type", ""))
    code = _PYDANTIC_CODES.get(kind, "parameter_invalid")
    if kind == "value_error" and isinstance(first.get("ctx", {}).get("error"), ledger_errors.LedgerError):
        code = first["ctx"]["error"].code
    if location and location[0] == "body" and len(location) == 1 and kind in ("missing", "model_attributes_type"):
        code, param = "body_invalid", None
    message = str(first.get("msg", "invalid"))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return code, f"{param + ': ' if param else ''}{message}{more}", param


async def _on_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    code, message, param = validation_error_body(error)
    content_type = request.headers.get("content-type", "")
    if code == "body_invalid" and content_type and "json" not in content_type:
        # FastAPI reads a body it cannot take as JSON as no object at all; say why (`curl -d` sends
        # application/x-www-form-urlencoded).
        message = f"the request body must be JSON (Content-Type: application/json), not {content_type.split(';')[0]}"
    return error_json(400, "invalid_request_error", code, message, param)


async def _on_service(_: Request, error: ServiceError) -> JSONResponse:
    return error_json(service_status(error), error.type, error.code, error.message, error.param)


async def _on_api(_: Request, error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return error_json(error.status, error.type, error.code, error.message, error.param, headers)


async def _on_ledger(_: Request, error: ledger_errors.LedgerError) -> JSONResponse:
    if isinstance(error, _LEDGER_INTERNAL):
        log.error("ledger invariant failed: %s", error)
        return error_json(500, "api_error", error.code, "a ledger invariant failed; see the server log")
    status = 409 if isinstance(error, _LEDGER_CONFLICTS) else 400
    return error_json(status, "invalid_request_error", error.code, error.message, error.param)


_HTTP_CODES = {404: "route_not_found", 405: "method_not_allowed", 413: "body_too_large"}


async def _on_http(_: Request, error: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(error.status_code, "http_error")
    type_ = "invalid_request_error" if error.status_code < 500 else "api_error"
    return error_json(
        error.status_code, type_, code, str(error.detail), None, dict(error.headers) if error.headers else None
    )


async def _on_unexpected(_: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=error)
    return error_json(500, "api_error", "internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ServiceError, _on_service)
    app.add_exception_handler(ApiError, _on_api)
    app.add_exception_handler(ledger_errors.LedgerError, _on_ledger)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Invalid request (validation, unknown field, bad amount, ledger rule)."),
        (401, "Missing, unknown or revoked API key."),
        (403, "The key's role may not do this."),
        (404, "No such resource (or not visible to this key)."),
        (409, "The resource's state forbids this, or an idempotent request is in flight."),
        (413, "Request body too large."),
    )
}
