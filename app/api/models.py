"""Bodies of the admin API (``XIn`` / ``XOut``) and the write-only-secret merge rules (pure).

Secrets are write-only: an ``Out`` model never carries ``secret`` or the basic-auth password,
only whether one is set. On PUT and PATCH an absent or blank ``secret`` keeps the current one
(seed 004: "leave this field blank to keep the current secret unchanged"); an explicit
``null`` removes it. Likewise an ``auth`` object without ``password`` keeps the current one.
Two changes need the secrets given again instead: moving a webhook to another account (its
secrets stay with their account), and, for the basic-auth password, a URL on a host the
password was not sent to before (it would follow the webhook to a new server).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from app.model.events import EventName
from app.model.records import AttemptRecord, DeadLetter
from app.model.webhook_config import SECRET_PATHS, WebhookConfig, secret_at


class BasicAuthOut(BaseModel):
    type: Literal["basic"] = "basic"
    username: str
    password_set: bool


class WebhookOut(BaseModel):
    """A webhook as the API shows it: everything but the secrets."""

    id: str
    account_id: str
    name: str
    url: str | None
    event_urls: dict[str, str]
    events: list[str]
    campaign_id: str | int | None
    content_type: str
    method: str
    auth: BasicAuthOut | None
    secret_set: bool
    log_response_body: bool
    active: bool
    custom_payload: list[dict[str, Any]] | None
    tracking: bool
    max_retries: int | None
    timeout_seconds: float | None
    rate_limit_per_second: float | None
    previous_secret_expires_at: float | None = Field(
        description="While in the future, the replaced secret still signs too."
    )
    disabled_reason: str | None
    ordering: str = Field("none", description="none, or key: in order per input record key.")
    batch: dict[str, int] | None = Field(None, description="max_events and max_wait_ms.")

    @classmethod
    def of(cls, config: WebhookConfig) -> WebhookOut:
        # Every field that holds a secret (or, for auth, contains one) is left out and shown
        # as "set" instead.
        data = config.model_dump(mode="json", exclude={path[0] for path in SECRET_PATHS})
        auth = None
        if config.auth is not None:
            auth = BasicAuthOut(username=config.auth.username, password_set=True)
        return cls(**data, auth=auth, secret_set=config.secret is not None)


class SecretRequiredError(ValueError):
    """A change that must not carry the stored secrets over: they have to be given again."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


#: The secrets a caller writes (``previous_secret`` is managed by the rotation rule below).
_WRITTEN_SECRETS = tuple(path for path in SECRET_PATHS if path != ("previous_secret",))
_MISSING = object()


def _endpoints(document: dict[str, Any]) -> set[tuple[str | None, int | None]]:
    """(host, port) of every URL of a config document: where its credentials would go."""
    urls = [document.get("url"), *(document.get("event_urls") or {}).values()]
    found = set()
    for url in urls:
        if isinstance(url, str):
            parts = urlsplit(url)
            try:
                found.add((parts.hostname, parts.port))
            except ValueError:
                found.add((parts.hostname, None))  # a bad port: validation will say so
    return found


def _keep_blank_secrets(document: dict[str, Any], current: WebhookConfig | None) -> dict[str, Any]:
    """Blank (absent or ``""``) secrets keep the stored ones, unless the change moves the
    webhook to another account, or (for the password) sends it to a host it did not go to."""
    merged = dict(document)
    if isinstance(merged.get("auth"), dict):
        merged["auth"] = dict(merged["auth"])
    moved = (
        current is not None and merged.get("account_id", current.account_id) != current.account_id
    )
    new_hosts = bool(_endpoints(merged) - _endpoints(current.to_wire())) if current else False
    required: list[dict[str, str]] = []
    for path in _WRITTEN_SECRETS:
        *parents, key = path
        holder: Any = merged
        for name in parents:
            holder = holder.get(name) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue  # e.g. no auth object: nothing to keep
        given = holder.get(key, _MISSING)
        if given is not _MISSING and given != "":
            continue
        stored = secret_at(current, path) if current is not None else None
        field = ".".join(path)
        if stored is None:
            holder.pop(key, None)  # nothing to keep; validation says if one is required
        elif moved:
            required.append(
                {
                    "field": field,
                    "reason": "give it again to move the webhook to "
                    "another account (stored secrets stay with their account)",
                }
            )
        elif path == ("auth", "password") and new_hosts:
            required.append(
                {
                    "field": field,
                    "reason": "give it again: the webhook now sends "
                    "to a host the stored password was not sent to",
                }
            )
        else:
            holder[key] = stored.get_secret_value()
    if required:
        raise SecretRequiredError(required)
    return merged


def _rotate(
    merged: dict[str, Any], current: WebhookConfig | None, now: float, grace: float
) -> dict[str, Any]:
    """A new secret replaces the current one; the old one keeps signing for ``grace`` seconds.

    ``previous_secret`` is managed here only: a caller cannot set it, and it never follows a
    webhook to another account.
    """
    merged = {k: v for k, v in merged.items() if k not in ("previous_secret",)}
    if current is not None and merged.get("account_id", current.account_id) != current.account_id:
        current = None
    old = current.secret.get_secret_value() if current and current.secret else None
    previous = current.previous_secret if current else None
    new = merged.get("secret")
    if old and new and new != old and grace > 0:
        merged["previous_secret"], merged["previous_secret_expires_at"] = old, now + grace
    elif previous is not None and current is not None and new == old:
        merged["previous_secret"] = previous.get_secret_value()
        merged["previous_secret_expires_at"] = current.previous_secret_expires_at
    else:
        merged.pop("previous_secret_expires_at", None)
    return merged


def merge_put(
    document: dict[str, Any], current: WebhookConfig | None, now: float = 0.0, grace: float = 0.0
) -> dict[str, Any]:
    """A full replacement; blank secrets keep the current ones; a new secret rotates."""
    return _rotate(_keep_blank_secrets(document, current), current, now, grace)


def merge_patch(
    document: dict[str, Any], current: WebhookConfig, now: float = 0.0, grace: float = 0.0
) -> dict[str, Any]:
    """Top-level fields of ``document`` replace the current ones (``auth`` is merged field by
    field); blank secrets are kept by the same rule as a PUT."""
    public = current.model_dump(mode="json", exclude={path[0] for path in SECRET_PATHS})
    patched = {**public, **document}
    auth = current.auth.model_dump(mode="json", exclude={"password"}) if current.auth else None
    if "auth" not in document:
        patched["auth"] = auth
    elif isinstance(document["auth"], dict) and auth is not None:
        patched["auth"] = {**auth, **document["auth"]}
    return _rotate(_keep_blank_secrets(patched, current), current, now, grace)


class ValidateIn(BaseModel):
    """``POST /api/webhooks/validate``: is this config one that Save would take?"""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(description="The config as a form holds it.")
    webhook_id: str | None = Field(
        None, description="The webhook it edits: blank secrets are then kept, as on PUT."
    )


class ValidOut(BaseModel):
    valid: bool = Field(description="Always true: an invalid config is a 422 with its fields.")


class TestIn(BaseModel):
    """``POST /api/webhooks/test`` and ``/api/webhooks/{id}/test``."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(None, description="Unsaved config (test before saving).")
    event: EventName = Field(EventName.MESSAGE_SENT, description="Sample event type.")
    sample: dict[str, Any] | None = Field(
        None, description="An edited sample event; defaults to the seed sample of `event`."
    )
    timeout: float | None = Field(None, gt=0, description="Seconds; at most the request timeout.")


class TestOut(BaseModel):
    ok: bool
    status: int | None
    error: str | None
    duration_ms: float
    url: str
    request: dict[str, Any] = Field(description="Method, headers (no credentials) and body sent.")
    response_headers: dict[str, str]
    response_body: str | None


class ReplayIn(BaseModel):
    """Which dead letters to replay: by delivery ids, or all of a webhook, or a time range."""

    model_config = ConfigDict(extra="forbid")

    delivery_ids: list[str] | None = None
    webhook_id: str | None = None
    since: float | None = Field(None, description="Unix time; dead letters failed at or after.")
    until: float | None = Field(None, description="Unix time; dead letters failed before.")


class ReplayOut(BaseModel):
    replayed: list[str] = Field(description="Delivery ids put back on deliveries.")
    truncated: bool = Field(
        False,
        description="The dead-letter scan ran out of time: older matching letters may remain.",
    )


class TrackIn(BaseModel):
    """``POST /track/{account_id}``: a receiver reports an open or a click (seed 000)."""

    token: str = Field(min_length=1)
    action: Literal["open", "click"]
    url: str | None = Field(None, description="The clicked URL, for clicks.")


class PortalLinkIn(BaseModel):
    """``POST /api/portal-links``: a portal link for one account."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1)
    ttl_seconds: float = Field(3600.0, gt=0, le=30 * 86400, description="Seconds it stays valid.")


class PortalLinkOut(BaseModel):
    url: str = Field(description="The portal page; the account's token is in its fragment.")
    expires_at: float


class WebhookStats(BaseModel):
    """What the portal's list shows of a webhook's recent deliveries."""

    last_status: int | None = Field(None, description="HTTP status of the last real attempt.")
    last_error: str | None = Field(None, description="Why the last real attempt got no answer.")
    last_outcome: str | None = None
    last_at: float | None = Field(None, description="When the last real attempt was made.")
    failures_24h: int = Field(
        0,
        description="Deliveries of the last 24 hours that failed (dead-lettered: all their tries "
        "failed) and were not delivered since.",
    )


class StatsOut(BaseModel):
    stats: dict[str, WebhookStats] = Field(description="By webhook id.")
    truncated: bool = False


# -- envelopes of the list and status answers (so the OpenAPI document can name them) ------
class WebhookListOut(BaseModel):
    webhooks: list[WebhookOut]


class AttemptsOut(BaseModel):
    attempts: list[AttemptRecord] = Field(description="Newest first.")
    truncated: bool = Field(description="The scan stopped before the start of the log.")


class FailedOut(BaseModel):
    failed: list[DeadLetter] = Field(
        description="Dead letters not delivered since (a replay that went through is left out)."
    )
    truncated: bool = Field(description="The scan stopped before the start of the topic.")
    resolved: int = Field(0, description="Dead letters left out: delivered after a replay.")


class InvalidEntry(BaseModel):
    """One refused record of ``events.invalid`` (its raw value is not listed)."""

    at: float = Field(description="Unix time it was refused.")
    topic: str = Field(description="The topic it was read from.")
    partition: int
    offset: int
    stage: str = Field(description="Which stage refused it: ingest, webhooks, ...")
    reason: str = Field(description="What is wrong, specifically.")


class InvalidOut(BaseModel):
    invalid: list[InvalidEntry]
    truncated: bool = Field(description="The scan stopped before the start of the topic.")


class DeletedOut(BaseModel):
    deleted: str = Field(description="The id of the deleted webhook.")


class AcceptedOut(BaseModel):
    accepted: Literal[True] = True
    event_id: str = Field(description="The id of the event made from the report.")


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. auth.password.")
    reason: str


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer of the API."""

    error: str
    errors: list[FieldErrorOut] | None = Field(None, description="Per field, on a 422.")
