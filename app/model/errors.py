"""The exception hierarchy of hookstream: one base, one class per declared failure path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


class HookstreamError(Exception):
    """Base of every error hookstream raises on purpose."""


class InvalidInputError(HookstreamError):
    """An event or config failed validation; it goes to ``events.invalid`` with this reason."""


class UrlRejectedError(HookstreamError, ValueError):
    """A webhook URL or the address it resolves to is not allowed (scheme or SSRF policy).

    A ``ValueError`` too, so pydantic reports it as a field error when a config is validated.
    """


#: pydantic's prefixes of a validator's own message: noise to a reader.
_NOISE = ("Value error, ", "Assertion failed, ")


def field_and_reason(error: Mapping[str, Any], skip: int = 0) -> tuple[str, str]:
    """The field and the reason of one pydantic error, said for a person.

    A check across fields (a model validator) has no field of its own in pydantic; its message
    names one as ``"<field>: <reason>"``, and that field is where the error belongs.
    """
    reason = str(error["msg"])
    for noise in _NOISE:
        if reason.startswith(noise):
            reason = reason[len(noise) :]
    field = ".".join(str(p) for p in tuple(error["loc"])[skip:])
    if not field:
        named, colon, rest = reason.partition(": ")
        if colon and named.replace("_", "").isalnum():
            field, reason = named, rest
    return field or "value", reason


def describe_validation_error(exc: ValidationError, skip: int = 0) -> str:
    """A one-line, specific reason (field: problem; ...), never echoing the input (secrets).

    ``skip`` drops leading location parts, e.g. the discriminator tag of a union.
    """
    errors = exc.errors(include_url=False, include_input=False)
    problems = [": ".join(field_and_reason(e, skip)) for e in errors[:5]]
    more = len(errors) - 5
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
