"""Shared plumbing of the API views: bearer-token check, JSON bodies, specific 4xx errors."""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError

from app.flow.portal import verify_portal_token
from app.flow.signed_tokens import TokenError
from app.model.errors import HookstreamError, field_and_reason
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
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        field, reason = field_and_reason(error)
        found.append({"field": "body" if field == "value" else field, "reason": reason})
    return found


def unprocessable(exc: ValidationError) -> ApiError:
    errors = field_errors(exc)
    summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:3])
    return ApiError(422, f"invalid: {summary}", errors)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the admin (every account), or a portal link's one account."""

    account_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.account_id is None

    def may_see(self, account_id: str) -> bool:
        return self.account_id is None or self.account_id == account_id


ADMIN = Caller()
_caller: ContextVar[Caller] = ContextVar("hookstream_api_caller", default=ADMIN)


def current_caller() -> Caller:
    """The caller of the request being handled (set by :func:`api`)."""
    return _caller.get()


def authorize(request: Request, accounts: bool) -> Caller:
    """The caller of ``request``: the admin bearer token, or (where ``accounts``) a portal
    token, which scopes every read and write to its account. 401 for a missing, wrong, forged
    or expired token; 403 while no way to call is configured."""
    portal = settings.portal_secret if accounts else None
    if settings.admin_token is None and portal is None:
        raise ApiError(403, "the admin API is disabled: set HOOKSTREAM_ADMIN_TOKEN to enable it")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)")
    if settings.admin_token is not None and hmac.compare_digest(
        given.encode(), settings.admin_token.get_secret_value().encode()
    ):
        return ADMIN
    if portal is not None and "." in given:
        try:
            claims = verify_portal_token(portal.get_secret_value().encode(), given, time.time())
        except TokenError as exc:
            raise ApiError(401, f"portal token refused: {exc}") from None
        return Caller(claims.account_id)
    raise ApiError(401, "invalid bearer token")


def check_admin(request: Request) -> None:
    """Raise 401/403 unless the request carries the configured admin bearer token."""
    authorize(request, accounts=False)


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


def api(admin: bool = True, accounts: bool = False) -> Callable[[Handler], Handler]:
    """Decorate a view method: the caller check (admin token; with ``accounts`` a portal token
    too, see :func:`current_caller`), and ApiError -> JSON error response."""

    def decorate(method: Handler) -> Handler:
        @functools.wraps(method)
        async def wrapper(view: View, request: Request, **kwargs: Any) -> Response:
            try:
                if admin or accounts:
                    _caller.set(authorize(request, accounts))
                return await method(view, request, **kwargs)
            except ApiError as exc:
                return error_response(view, exc)
            except Exception:
                log.exception("%s %s failed", request.method, request.url)
                return error_response(view, ApiError(500, "internal error; see the worker log"))

        return wrapper

    return decorate
