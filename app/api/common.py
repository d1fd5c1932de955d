"""Shared plumbing of the API views: bearer-token check, JSON bodies, specific 4xx errors."""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError

from app.model.errors import HookstreamError
from app.settings import get_settings

settings = get_settings()

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Awaitable[Response]]


class ApiError(HookstreamError):
    """A request the API refuses: HTTP status, message, and optional per-field details."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Per-field reasons of a validation error, never echoing the input (it may hold secrets)."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def unprocessable(exc: ValidationError) -> ApiError:
    errors = field_errors(exc)
    summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:3])
    return ApiError(422, f"invalid: {summary}", errors)


def check_admin(request: Request) -> None:
    """Raise 401/403 unless the request carries the configured admin bearer token."""
    if settings.admin_token is None:
        raise ApiError(403, "the admin API is disabled: set HOOKSTREAM_ADMIN_TOKEN to enable it")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)")
    expected = settings.admin_token.get_secret_value().encode()
    if not hmac.compare_digest(given.strip().encode(), expected):
        raise ApiError(401, "invalid bearer token")


async def json_body(request: Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from None


async def parse_body(request: Request, model: type[M]) -> M:
    document = await json_body(request)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise unprocessable(exc) from None


def error_response(view: View, exc: ApiError) -> Response:
    body: dict[str, Any] = {"error": exc.message}
    if exc.errors is not None:
        body["errors"] = exc.errors
    return view.json(body, status=exc.status)


def api(admin: bool = True) -> Callable[[Handler], Handler]:
    """Decorate a view method: admin check (optional) and ApiError -> JSON error response."""

    def decorate(method: Handler) -> Handler:
        @functools.wraps(method)
        async def wrapper(view: View, request: Request, **kwargs: Any) -> Response:
            try:
                if admin:
                    check_admin(request)
                return await method(view, request, **kwargs)
            except ApiError as exc:
                return error_response(view, exc)
            except Exception:
                log.exception("%s %s failed", request.method, request.url)
                return error_response(view, ApiError(500, "internal error; see the worker log"))

        return wrapper

    return decorate
