"""The event catalog for forms: each event's group, its sample data set, and the fields a
custom payload can map, with readable names ("Contact Email", "Campaign Name").

Derived from the event models and the seed samples, so the portal holds no copy of either.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from app.model.events import (
    EVENT_MODELS,
    ContactDataSet,
    EventBase,
    EventFamily,
    EventName,
)
from app.model.samples import sample_event

#: Names that read better than the key split into words.
_LABELS = {
    "account_id": "Account ID",
    "event": "Event Name",
    "event_id": "Event ID",
    "campaign_id": "Campaign ID",
    "campaign_name": "Campaign Name",
    "message_id": "Message ID",
    "message_uid": "Message UID",
    "name": "Message Name",
    "message": "Message Text",
    "click_url": "Clicked URL",
    "group_id": "Group ID",
    "groups_ids": "Group IDs",
    "groups_names": "Group Names",
    "msisdn": "Phone (MSISDN)",
    "ecom_email": "Email",
    "occurred_at": "Occurred At",
}
_ROUTING = ("account_id", "event_id", "occurred_at", "campaign_id", "campaign_name")


def _words(key: str) -> str:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).replace("_", " ")
    return " ".join(
        w.upper() if w in ("id", "url", "uid") else w.capitalize() for w in spaced.split()
    )


def label(path: str) -> str:
    """A readable name for a mapping path: ``contact.ecom_email`` -> ``Contact Email``."""
    *parents, key = path.split(".")
    name = _LABELS.get(key) or _words(key)
    return f"Contact {name}" if parents == ["contact"] else name


def group_of(name: EventName) -> str:
    if EVENT_MODELS[name].family is EventFamily.CONTACTS:
        return "contacts"
    return "WhatsApp" if name.value.startswith("whatsapp") else "email messages"


class FieldOut(BaseModel):
    path: str = Field(description="Dotted path into the event, for a custom payload mapping.")
    label: str


class EventOut(BaseModel):
    name: str
    group: str = Field(description="email messages, WhatsApp or contacts.")
    sample: dict[str, Any] = Field(description="The seed's sample data set of the event.")
    fields: list[FieldOut]


class PolicyOut(BaseModel):
    """What the workers' settings allow, so a page's hints say what holds here."""

    allow_http: bool = Field(description="Plain http:// webhook URLs are allowed.")
    allow_private_networks: bool = Field(description="Loopback and private addresses too.")


class CatalogOut(BaseModel):
    events: list[EventOut]
    policy: PolicyOut


def _fields(model: type[EventBase]) -> list[str]:
    if "contact" in model.model_fields:
        return ["event", *(f"contact.{k}" for k in ContactDataSet.model_fields), *_ROUTING]
    return [*model.payload_fields, *_ROUTING]


def catalog(account_id: str, policy: PolicyOut) -> CatalogOut:
    return CatalogOut(
        policy=policy,
        events=[
            EventOut(
                name=name.value,
                group=group_of(name),
                sample=sample_event(name, account_id),
                fields=[FieldOut(path=p, label=label(p)) for p in _fields(EVENT_MODELS[name])],
            )
            for name in EventName
        ],
    )
