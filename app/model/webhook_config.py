"""The webhook config: the value of the ``webhooks`` topic (key = webhook id, null = deleted).

Settings follow seed 004 (URL, JSON/form, POST/GET, basic auth on POST only, secret, log
response body, active, events, custom payload mappings) and seed 002/003 (a URL per event).
Validation that depends on the deployment (https required, private addresses refused) reads
a :class:`~app.model.url_policy.UrlPolicy` from the validation context; without one the strict
default applies.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.model.errors import InvalidInputError, describe_validation_error
from app.model.events import EventName, canonical_event_name
from app.model.url_policy import UrlPolicy, check_url

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: Where a config holds secrets, each as a path of keys: the signing secret, the previous one
#: (during a rotation) and the basic-auth password. Written to the webhooks topic only; the API
#: never returns them, a rejected config is reported with them masked, and a blank one on PUT
#: or PATCH keeps the stored value. The one list of them.
SECRET_PATHS: tuple[tuple[str, ...], ...] = (
    ("secret",),
    ("previous_secret",),
    ("auth", "password"),
)
#: Their key names, masked at any depth in a config reported as invalid.
SECRET_KEYS = frozenset(path[-1] for path in SECRET_PATHS)
#: Standard Webhooks recommends 24 to 64 random bytes for a signing key.
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 24, 64
_WEBHOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class ContentType(StrEnum):
    JSON = "json"
    FORM = "form"


class HttpMethod(StrEnum):
    POST = "POST"
    GET = "GET"


class BasicAuth(BaseModel):
    """HTTP basic authentication (seed 004: available with POST only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretStr


class PathMapping(BaseModel):
    """A payload field pulled from the event by a dotted path (``contact.ecom_email``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1, description="Name of the field in the custom payload.")
    path: str = Field(min_length=1, description="Dotted path into the event; missing gives null.")

    @field_validator("path")
    @classmethod
    def _path_segments(cls, value: str) -> str:
        if any(not seg for seg in value.split(".")):
            raise ValueError(f"mapping path {value!r} has an empty segment")
        return value


class StaticMapping(BaseModel):
    """A payload field with a fixed value (seed 004's "Custom Value")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1, description="Name of the field in the custom payload.")
    value: Any = Field(description="Static JSON value sent as is.")


Mapping = Annotated[PathMapping | StaticMapping, Field(union_mode="left_to_right")]


class Ordering(StrEnum):
    NONE = "none"
    KEY = "key"


class BatchConfig(BaseModel):
    """Batched delivery: up to ``max_events`` payloads per request, as a JSON array."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_events: int = Field(ge=1, le=1000, description="Payloads in one request at most.")
    max_wait_ms: int = Field(
        ge=0, le=60_000, description="Longest the oldest payload waits for the batch to fill."
    )


def validation_context(policy: UrlPolicy, tracking: bool = True) -> dict[str, Any]:
    """What a config is validated against on this deployment: its URL policy, and whether
    feedback tokens can be issued (``tracking: true`` cannot work without a tracking secret)."""
    return {"url_policy": policy, "tracking": tracking}


def _validate_url(value: str, info: ValidationInfo) -> str:
    policy = (info.context or {}).get("url_policy", UrlPolicy())
    check_url(value, policy)
    return value


class WebhookConfig(BaseModel):
    """One webhook of one account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Webhook id; also the Kafka key on the webhooks topic.")
    account_id: str = Field(min_length=1)
    name: str = Field("", max_length=200, description="For people; not sent.")
    url: str | None = Field(None, description="Where events are sent unless event_urls says else.")
    event_urls: dict[EventName, str] = Field(
        default_factory=dict, description="Event name -> URL; overrides url for that event."
    )
    events: list[EventName] = Field(
        default_factory=list, description="Subscribed event names; empty means all."
    )
    campaign_id: str | int | None = Field(None, description="Only events of this campaign.")
    content_type: ContentType = ContentType.JSON
    method: HttpMethod = HttpMethod.POST
    auth: BasicAuth | None = None
    secret: SecretStr | None = Field(None, description="whsec_ + base64 signing key; write-only.")
    log_response_body: bool = False
    active: bool = True
    custom_payload: list[Mapping] | None = Field(
        None, description="Mappings that replace the standard payload; null for standard."
    )
    tracking: bool = Field(False, description="Send a signed x-hookstream-token header.")
    max_retries: int | None = Field(
        None, ge=0, le=10, description="Fewer retries than the tiers allow; null = all tiers."
    )
    rate_limit_per_second: float | None = Field(
        None, gt=0, le=10000, description="At most this many requests per second; bursts wait."
    )
    timeout_seconds: float | None = Field(
        None, gt=0, le=120, description="This webhook's request timeout; null = the setting."
    )
    previous_secret: SecretStr | None = Field(
        None, description="The replaced secret, still signing until previous_secret_expires_at."
    )
    previous_secret_expires_at: float | None = Field(
        None, description="Unix time the previous secret stops signing."
    )
    disabled_reason: str | None = Field(
        None, description="Why hookstream set active to false (e.g. the endpoint said 410 Gone)."
    )
    ordering: Ordering = Field(
        Ordering.NONE,
        description="key: events with the same input record key are delivered in the order they "
        "were produced; a failing one holds the later ones of its key through its retries.",
    )
    batch: BatchConfig | None = Field(
        None, description="Gather deliveries into one JSON-array request (JSON POST only)."
    )

    @field_validator("id")
    @classmethod
    def _id_format(cls, value: str) -> str:
        if not _WEBHOOK_ID.match(value):
            raise ValueError("id must be 1-128 characters of letters, digits, _ . : - ")
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _canonical_events(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [canonical_event_name(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("event_urls", mode="before")
    @classmethod
    def _canonical_event_url_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                canonical_event_name(k) if isinstance(k, str) else k: v for k, v in value.items()
            }
        return value

    @field_validator("url")
    @classmethod
    def _url_allowed(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _validate_url(value, info)

    @field_validator("event_urls")
    @classmethod
    def _event_urls_allowed(
        cls, value: dict[EventName, str], info: ValidationInfo
    ) -> dict[EventName, str]:
        for event, url in value.items():
            try:
                _validate_url(url, info)
            except ValueError as exc:
                raise ValueError(f"event_urls[{event.value!r}]: {exc}") from None
        return value

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value)
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> WebhookConfig:
        if self.tracking and not (info.context or {}).get("tracking", True):
            raise ValueError(
                "tracking: needs HOOKSTREAM_TRACKING_SECRET on the workers: without it no "
                "feedback token can be sent"
            )
        if self.auth is not None and self.method is HttpMethod.GET:
            raise ValueError("auth: basic auth is available with POST only")
        if self.batch is not None and (
            self.method is not HttpMethod.POST or self.content_type is not ContentType.JSON
        ):
            raise ValueError("batch: batch delivery is available with JSON POST only")
        if self.url is None:
            uncovered = [e for e in (self.events or list(EventName)) if e not in self.event_urls]
            if uncovered and not self.event_urls:
                raise ValueError("url: Field required")
            if uncovered:
                names = ", ".join(e.value for e in uncovered[:3])
                more = f" and {len(uncovered) - 3} more" if len(uncovered) > 3 else ""
                raise ValueError(f"url: required: no event_urls entry for {names}{more}")
        if self.custom_payload is not None:
            fields = [m.field for m in self.custom_payload]
            if not fields:
                raise ValueError("custom_payload: needs at least one mapping (or null)")
            duplicates = sorted({f for f in fields if fields.count(f) > 1})
            if duplicates:
                raise ValueError(f"custom_payload: maps field {duplicates[0]!r} twice")
        return self

    def signing_secrets(self, now: float) -> list[SecretStr]:
        """The secrets that sign a request now: the current one, and the previous one during
        its grace period (Standard Webhooks: space-separated signatures, either verifies)."""
        secrets = [self.secret] if self.secret is not None else []
        if self.previous_secret is not None and (self.previous_secret_expires_at or 0) > now:
            secrets.append(self.previous_secret)
        return secrets

    def subscribes_to(self, event: EventName) -> bool:
        return not self.events or event in self.events

    def url_for(self, event: EventName) -> str | None:
        return self.event_urls.get(event, self.url)

    def to_wire(self) -> dict[str, Any]:
        """The JSON value for the webhooks topic, secrets included (the topic is their store)."""
        data = self.model_dump(mode="json", exclude_none=False)
        for path in SECRET_PATHS:
            value = secret_at(self, path)
            if value is not None:
                _set_path(data, path, value.get_secret_value())
        return data


def secret_at(config: WebhookConfig, path: tuple[str, ...]) -> SecretStr | None:
    """The secret at ``path`` (one of :data:`SECRET_PATHS`) of ``config``, if it has one."""
    node: Any = config
    for key in path:
        node = getattr(node, key, None)
        if node is None:
            return None
    return node if isinstance(node, SecretStr) else None


def _set_path(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    *parents, last = path
    for key in parents:
        document = document[key]
    document[last] = value


def signing_key(secret: SecretStr) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ``ValueError`` says what is wrong with it."""
    return _decode_secret(secret.get_secret_value())


@lru_cache(maxsize=4096)
def _decode_secret(raw: str) -> bytes:
    if not raw.startswith(SECRET_PREFIX):
        raise ValueError(f"secret must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(raw[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret is not valid base64 after the whsec_ prefix") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"secret must decode to {SECRET_MIN_BYTES}-{SECRET_MAX_BYTES} bytes, got {len(key)}"
        )
    return key


REDACTED = "***"


def _redact(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: REDACTED if key in SECRET_KEYS and value not in (None, "") else _redact(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_redact(item) for item in node]
    if isinstance(node, str) and node.startswith(SECRET_PREFIX):
        return REDACTED  # a signing secret wherever it stands, keyed or not
    return node


def redact_config_bytes(raw: bytes) -> bytes:
    """A config record with every secret replaced by ``***``, for reporting it as invalid.

    The webhooks topic is the one place secrets are stored; a rejected config is reported
    elsewhere, so its secret keys are masked there at any depth, in objects and in lists (a
    rejected record need not have the shape of a config), and so is any ``whsec_`` string.
    Bytes that are not JSON cannot be searched for secrets and are replaced whole.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return b'"*** not JSON: withheld, it may hold secrets ***"'
    return orjson.dumps(_redact(document))


def parse_config_record(
    key: bytes | None, value: bytes, policy: UrlPolicy, tracking: bool = True
) -> WebhookConfig:
    """Validate a record of the webhooks topic; :class:`InvalidInputError` says why it is bad."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"webhook config is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInputError("webhook config must be a JSON object")
    try:
        config = WebhookConfig.model_validate(
            document, context=validation_context(policy, tracking)
        )
    except ValidationError as exc:
        raise InvalidInputError(f"webhook config: {describe_validation_error(exc)}") from None
    if key is not None and key.decode("utf-8", "replace") != config.id:
        raise InvalidInputError(f"record key {key!r} does not match webhook id {config.id!r}")
    return config
