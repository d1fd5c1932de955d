"""The exception hierarchy of hookstream: one base, one class per declared failure path."""

from __future__ import annotations

from pydantic import ValidationError


class HookstreamError(Exception):
    """Base of every error hookstream raises on purpose."""


class InvalidInputError(HookstreamError):
    """An event or config failed validation; it goes to ``events.invalid`` with this reason."""


class UrlRejectedError(HookstreamError, ValueError):
    """A webhook URL or the address it resolves to is not allowed (scheme or SSRF policy).

    A ``ValueError`` too, so pydantic reports it as a field error when a config is validated.
    """


def describe_validation_error(exc: ValidationError, skip: int = 0) -> str:
    """A one-line, specific reason (field: problem; ...), never echoing the input (secrets).

    ``skip`` drops leading location parts, e.g. the discriminator tag of a union.
    """
    errors = exc.errors(include_url=False, include_input=False)
    problems = [
        f"{'.'.join(str(p) for p in e['loc'][skip:]) or 'value'}: {e['msg']}" for e in errors[:5]
    ]
    more = len(errors) - 5
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
