"""Turning a payload into the bytes of a request (pure): JSON or form body, or a GET query.

Form and query encoding of non-string values (the seeds only show JSON): numbers as decimal
text, booleans as ``true``/``false``, null as an empty value, a list of scalars as the key
repeated once per item (``groups_ids=0&groups_ids=1``), and any object or nested list as its
compact JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from app.model.webhook_config import ContentType, HttpMethod

JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class EncodedRequest:
    """Method, full URL, body and content type of one delivery; ``signed`` is what is signed."""

    method: str
    url: str
    body: bytes | None
    content_type: str | None
    signed: bytes


def _form_scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def form_pairs(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The (key, value) pairs of the form/query encoding of ``payload``."""
    pairs: list[tuple[str, str]] = []
    for key, value in payload.items():
        if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
            pairs.extend((key, _form_scalar(v)) for v in value)
        else:
            pairs.append((key, _form_scalar(value)))
    return pairs


def encode_request(
    payload: dict[str, Any] | list[dict[str, Any]],
    url: str,
    method: HttpMethod,
    content_type: ContentType,
) -> EncodedRequest:
    """Encode ``payload`` for ``url`` (a list: a batch, JSON POST only).

    GET sends the payload as query parameters (after any the URL already has) and no body; it
    signs the request's whole query string (the bytes after ``?``), since a signature over an
    empty body would protect nothing. The URL must then be sent exactly as built.
    """
    if isinstance(payload, list):
        if method is not HttpMethod.POST or content_type is not ContentType.JSON:
            raise ValueError("a batch is sent as a JSON POST only")
        body = orjson.dumps(payload)
        return EncodedRequest("POST", url, body, JSON_CONTENT_TYPE, body)
    if method is HttpMethod.GET:
        query = urlencode(form_pairs(payload))
        parts = urlsplit(url)
        full_query = f"{parts.query}&{query}" if parts.query and query else parts.query or query
        return EncodedRequest(
            method="GET",
            url=urlunsplit(parts._replace(query=full_query)),
            body=None,
            content_type=None,
            signed=full_query.encode(),
        )
    if content_type is ContentType.FORM:
        body = urlencode(form_pairs(payload)).encode()
        return EncodedRequest("POST", url, body, FORM_CONTENT_TYPE, body)
    body = orjson.dumps(payload)
    return EncodedRequest("POST", url, body, JSON_CONTENT_TYPE, body)
