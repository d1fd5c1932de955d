"""Event names and the typed input events (the seed bodies plus routing fields).

Each event model lists the seed body's fields *in the seed's order*; that order is the order
of the standard payload (see :mod:`app.flow.payload`). Input events may carry extra keys: they are
kept for custom payload mappings but never appear in a standard payload.

Choices where the seeds are vague (also in the README):
- The complaint seed spells its event with a Cyrillic es (U+0441) for the "c"; we accept both and
  emit the ASCII ``complaint``, which is what a receiver matching on the name expects.
- The WhatsApp seed lists "whatsapp template delivered" twice; the second is the read receipt,
  ``whatsapp template read``, with the same body.
- ``contact subscribes`` / ``contact unsubscribes`` carry the seed-001 data set under
  ``contact``. Only ``msisdn`` is required: the platform does not know every attribute of every
  contact, and an unknown attribute is sent as ``null`` under its exact key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class EventName(StrEnum):
    """Every event hookstream knows, by its public name."""

    MESSAGE_SENT = "message sent"
    DELIVERY_BOUNCE = "delivery bounce"
    MESSAGE_OPEN = "message open"
    MESSAGE_CLICKED = "message clicked"
    COMPLAINT = "complaint"
    WHATSAPP_TEMPLATE_SENT = "whatsapp template sent"
    WHATSAPP_TEMPLATE_DELIVERED = "whatsapp template delivered"
    WHATSAPP_TEMPLATE_READ = "whatsapp template read"
    WHATSAPP_TEMPLATE_BOUNCE = "whatsapp template bounce"
    WHATSAPP_INBOX_MESSAGE_RECEIVED = "whatsapp inbox message received"
    MAILING_GROUP_SUBSCRIBE = "mailing group subscribe"
    MAILING_GROUP_UNSUBSCRIBE = "mailing group unsubscribe"
    CONTACT_ADDING = "contact adding"
    CONTACT_SUBSCRIBES = "contact subscribes"
    CONTACT_UNSUBSCRIBES = "contact unsubscribes"


class EventFamily(StrEnum):
    """Which input topic an event belongs on."""

    MESSAGES = "messages"
    CONTACTS = "contacts"


#: Other spellings accepted on input, mapped to the canonical name.
EVENT_NAME_ALIASES: dict[str, EventName] = {
    "\u0441omplaint": EventName.COMPLAINT,  # the seed's spelling, with a Cyrillic es
}


def canonical_event_name(raw: str) -> EventName:
    """The canonical :class:`EventName` for ``raw``; ``ValueError`` names the unknown name."""
    alias = EVENT_NAME_ALIASES.get(raw)
    if alias is not None:
        return alias
    try:
        return EventName(raw)
    except ValueError:
        raise ValueError(f"unknown event name {raw!r}") from None


def _iso_timestamp(value: str) -> str:
    """Validate an ISO-8601 timestamp but keep the producer's exact text for the payload."""
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
    return value


Timestamp = Annotated[str, AfterValidator(_iso_timestamp)]


class EventBase(BaseModel):
    """Routing fields every input event carries besides its seed body."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    #: Names of the seed body fields, in seed order; set by each subclass.
    payload_fields: ClassVar[tuple[str, ...]]
    family: ClassVar[EventFamily]

    account_id: str = Field(min_length=1, description="Account the event belongs to (required).")
    event_id: str | None = Field(
        None, min_length=1, description="Producer's unique id; makes the delivery id stable."
    )
    occurred_at: Timestamp | None = Field(None, description="When it happened (ISO-8601).")
    campaign_id: str | int | None = Field(None, description="Campaign, for campaign-scoped hooks.")
    campaign_name: str | None = Field(None, description="Campaign name, for custom payloads.")

    @property
    def event_name(self) -> EventName:
        """The canonical name of this event (aliases resolved)."""
        return canonical_event_name(self.event)  # type: ignore[attr-defined]


class _MessageEmail(EventBase):
    family = EventFamily.MESSAGES
    payload_fields: ClassVar[tuple[str, ...]] = (
        "event",
        "message_id",
        "message_uid",
        "sending_type",
        "name",
        "from",
        "to",
    )

    message_id: int
    message_uid: str
    sending_type: str
    name_: str = Field(alias="name")
    from_: str = Field(alias="from")
    to: str


class MessageSent(_MessageEmail):
    event: Literal["message sent"]


class DeliveryBounce(_MessageEmail):
    payload_fields = (*_MessageEmail.payload_fields, "error_message")
    event: Literal["delivery bounce"]
    error_message: str


class MessageOpen(_MessageEmail):
    event: Literal["message open"]


class MessageClicked(_MessageEmail):
    payload_fields = (*_MessageEmail.payload_fields, "click_url")
    event: Literal["message clicked"]
    click_url: str


class Complaint(_MessageEmail):
    event: Literal["complaint", "\u0441omplaint"]


class _WhatsappTemplate(EventBase):
    family = EventFamily.MESSAGES
    payload_fields: ClassVar[tuple[str, ...]] = (
        "event",
        "template_name",
        "message_id",
        "sending_type",
        "from_number",
        "to_number",
    )

    template_name: str
    message_id: int
    sending_type: str
    from_number: str
    to_number: str


class WhatsappTemplateSent(_WhatsappTemplate):
    event: Literal["whatsapp template sent"]


class WhatsappTemplateDelivered(_WhatsappTemplate):
    event: Literal["whatsapp template delivered"]


class WhatsappTemplateRead(_WhatsappTemplate):
    event: Literal["whatsapp template read"]


class WhatsappTemplateBounce(_WhatsappTemplate):
    payload_fields = (*_WhatsappTemplate.payload_fields, "error_message")
    event: Literal["whatsapp template bounce"]
    error_message: str


class WhatsappInboxMessageReceived(EventBase):
    family = EventFamily.MESSAGES
    payload_fields = ("event", "message", "from_number", "to_number")

    event: Literal["whatsapp inbox message received"]
    message: str
    from_number: str
    to_number: str


class _MailingGroup(EventBase):
    family = EventFamily.CONTACTS
    payload_fields = ("event", "email", "group_id", "group_name", "channel")

    email: str
    group_id: int
    group_name: str
    channel: str


class MailingGroupSubscribe(_MailingGroup):
    event: Literal["mailing group subscribe"]


class MailingGroupUnsubscribe(_MailingGroup):
    event: Literal["mailing group unsubscribe"]


class ContactAdding(EventBase):
    family = EventFamily.CONTACTS
    payload_fields = ("event", "email", "phone", "groups_names", "groups_ids")

    event: Literal["contact adding"]
    email: str
    phone: str
    groups_names: list[str]
    groups_ids: list[int]


class ContactDataSet(BaseModel):
    """The seed-001 data set, with its exact attribute keys and types, in seed order."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    msisdn: int = Field(description="Phone number (LONG).")
    profileCreatedAt: Timestamp | None = None
    source: str | None = Field(None, description="form, keyword, mobile_identity, import")
    source_value: str | None = None
    eshop_opt_in: bool | None = None
    last_eshop_opt_in_date: Timestamp | None = None
    ecom_email: str | None = None
    ecom_signups_count: int | None = None
    ecom_device_type: str | None = None
    ecom_browser_name: str | None = None
    ecom_locale: str | None = None
    ecom_timezone: str | None = None
    ecom_os_name: str | None = None
    ecom_signup_domain: str | None = None
    ecom_signup_path: str | None = None
    ecom_signup_referrer_url: str | None = None
    last_order_date: Timestamp | None = None
    ecom_total_order_count: int | None = None
    ecom_total_order_amount: int | None = None
    last_click_date: Timestamp | None = None


class _ContactDataSetEvent(EventBase):
    family = EventFamily.CONTACTS
    payload_fields = ("event", *ContactDataSet.model_fields)

    contact: ContactDataSet


class ContactSubscribes(_ContactDataSetEvent):
    event: Literal["contact subscribes"]


class ContactUnsubscribes(_ContactDataSetEvent):
    event: Literal["contact unsubscribes"]


#: Every input event model, by canonical event name (derived from each model's ``event``).
EVENT_MODELS: dict[EventName, type[EventBase]] = {
    canonical_event_name(literal): model
    for model in (
        MessageSent,
        DeliveryBounce,
        MessageOpen,
        MessageClicked,
        Complaint,
        WhatsappTemplateSent,
        WhatsappTemplateDelivered,
        WhatsappTemplateRead,
        WhatsappTemplateBounce,
        WhatsappInboxMessageReceived,
        MailingGroupSubscribe,
        MailingGroupUnsubscribe,
        ContactAdding,
        ContactSubscribes,
        ContactUnsubscribes,
    )
    for literal in get_args(model.model_fields["event"].annotation)
}
