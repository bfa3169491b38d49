"""JSON errors: every failure, FastAPI's own included, leaves as `ErrorOut` JSON.

FastAPI answers invalid input with 422 and `{"detail": …}`, and unknown paths with
Starlette's plain 404/405; the handlers here turn all of them into the one body shape
clients and the README know, with the parameter named.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from schemas.api import ErrorOut

log = logging.getLogger(__name__)

ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "required": True, "schema": {"type": "integer", "minimum": 1}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A parameter or the body is invalid; "
          "`parameter` names it."},
    401: {"model": ErrorOut, "description": "Missing or invalid key."},
    403: {"model": ErrorOut, "description": "The endpoint needs the admin key."},
    404: {"model": ErrorOut, "description": "Not found, or another API owner's."},
    429: {"model": ErrorOut, "description": "Rate limit reached.", "headers": RETRY_AFTER},
    503: {"model": ErrorOut, "description": "Partitions are moving between workers or "
          "recovering; retry shortly.", "headers": RETRY_AFTER},
}


class ApiError(Exception):
    """Raised anywhere below a route; becomes a JSON response with `status`."""

    def __init__(
        self, status: int, error: str, message: str, parameter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorOut(error=error, message=message, parameter=parameter)
        self.headers = headers or {}


def bad_parameter(parameter: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, parameter)


def not_found(what: str) -> ApiError:
    """Also what another owner's resources look like: their existence is not revealed."""
    return ApiError(404, "not_found", f"{what} not found")


def from_validation(errors: list[dict[str, Any]]) -> ApiError:
    """The first problem, named by the parameter or body field the client sent."""
    err = errors[0]
    where, *rest = [str(part) for part in err["loc"]] or ["body"]
    name = rest[0] if rest and err["type"] != "json_invalid" else where
    return bad_parameter(name, f"{where} {name}: {err['msg']}")


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body.model_dump(), status_code=exc.status, headers=exc.headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(from_validation(list(exc.errors())))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """404 for unknown paths, 405 (with Allow) for unknown methods."""
    assert isinstance(exc, HTTPException)
    error = ERROR_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request, headers.get("Allow", ""))
    return error_response(ApiError(exc.status_code, error, str(exc.detail), headers=headers))


def _allowed(request: Request, starlettes: str) -> str:
    """The methods the API documents for the path's template: Starlette's Allow names only
    the first matching route's, though a template may have a route per method (GET and
    POST /webhooks)."""
    template = getattr(request.scope.get("route"), "path_format", None)  # no ":path"
    operations = request.app.openapi()["paths"].get(template, {})
    documented = [m for m in METHODS if m.lower() in operations]
    return ", ".join(documented) if documented else starlettes


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError(500, "internal_error", "unexpected error"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
