"""JSON errors: every failure, including unexpected ones, leaves as `ErrorOut` JSON."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import ValidationError

from schemas.api import ErrorOut
from schemas.codec import dumps

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised anywhere below a view; becomes a JSON response with `status`."""

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


def from_validation(exc: ValidationError, where: str) -> ApiError:
    """The first problem, named by the parameter or body field the client sent."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else where
    return bad_parameter(name, f"{where} {name}: {err['msg']}")


def error_response(exc: ApiError) -> web.Response:
    return web.Response(
        body=dumps(exc.body.model_dump()), status=exc.status, content_type="application/json",
        headers=exc.headers,
    )


def middleware(api_paths: Callable[[web.Request], bool]) -> Middleware:
    """Unknown paths (Faust's own /table and /router views too) are 404; nothing is a bare 500."""

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not api_paths(request):
                raise not_found(f"path {request.path}")
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(ApiError(exc.status, "http_error", exc.reason))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_response(ApiError(500, "internal_error", "unexpected error"))

    return json_errors
