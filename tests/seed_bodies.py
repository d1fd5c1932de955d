"""The seed bodies, verbatim from shared/seeds (002/003 for messages and mailing groups, 001 for
the contact data set), keyed by canonical event name. Tests send these (plus routing fields)
and expect exactly them back (the complaint name canonicalised to ASCII)."""

from __future__ import annotations

from typing import Any

_EMAIL = "[email protected]"

_MESSAGE = {
    "message_id": 4,
    "message_uid": "0123456789_012_012_01234",
    "sending_type": "instant",
}
_TEMPLATE = {
    "template_name": "template_example",
    "message_id": 123,
    "sending_type": "scenario",
    "from_number": "70000000000",
    "to_number": "71111111111",
}

#: Seed 001's data set with its sample values, in seed order.
CONTACT_DATA_SET: dict[str, Any] = {
    "msisdn": 5599999999999,
    "profileCreatedAt": "2022-11-24T09:59:41.163Z",
    "source": "form",
    "source_value": "onsite_campaign_id",
    "eshop_opt_in": True,
    "last_eshop_opt_in_date": "2023-11-16T11:33:29.485Z",
    "ecom_email": "test@gmail.com",
    "ecom_signups_count": 2,
    "ecom_device_type": "mobile",
    "ecom_browser_name": "Chrome",
    "ecom_locale": "pt-br",
    "ecom_timezone": "UTC-03:00",
    "ecom_os_name": "Android",
    "ecom_signup_domain": "www.websitedomain.com.br",
    "ecom_signup_path": "/lancamentos",
    "ecom_signup_referrer_url": "https://www.google.com",
    "last_order_date": "2024-09-26T00:08:18.161Z",
    "ecom_total_order_count": 6,
    "ecom_total_order_amount": 832,
    "last_click_date": "2023-10-03T07:58:18.893Z",
}

SEED_BODIES: dict[str, dict[str, Any]] = {
    "message sent": {
        "event": "message sent",
        **_MESSAGE,
        "name": "Sending message (test)",
        "from": _EMAIL,
        "to": _EMAIL,
    },
    "delivery bounce": {
        "event": "delivery bounce",
        **_MESSAGE,
        "name": "Error while sending message (test)",
        "from": _EMAIL,
        "to": _EMAIL,
        "error_message": "Some error message",
    },
    "message open": {
        "event": "message open",
        **_MESSAGE,
        "name": "Open message (test)",
        "from": _EMAIL,
        "to": _EMAIL,
    },
    "message clicked": {
        "event": "message clicked",
        **_MESSAGE,
        "name": "Click in message (test)",
        "from": _EMAIL,
        "to": _EMAIL,
        "click_url": "https://clicked.link/",
    },
    "complaint": {
        "event": "\u0441omplaint",
        **_MESSAGE,
        "name": "Complaint in message (test)",
        "from": _EMAIL,
        "to": _EMAIL,
    },
    "whatsapp template sent": {"event": "whatsapp template sent", **_TEMPLATE},
    "whatsapp template delivered": {"event": "whatsapp template delivered", **_TEMPLATE},
    "whatsapp template read": {"event": "whatsapp template read", **_TEMPLATE},
    "whatsapp inbox message received": {
        "event": "whatsapp inbox message received",
        "message": "some text",
        "from_number": "71111111111",
        "to_number": "70000000000",
    },
    "whatsapp template bounce": {
        "event": "whatsapp template bounce",
        **_TEMPLATE,
        "error_message": "Some error message",
    },
    "mailing group subscribe": {
        "event": "mailing group subscribe",
        "email": _EMAIL,
        "group_id": 4,
        "group_name": "Person subscribe (test)",
        "channel": "email",
    },
    "mailing group unsubscribe": {
        "event": "mailing group unsubscribe",
        "email": _EMAIL,
        "group_id": 4,
        "group_name": "Person unsubscribe (test)",
        "channel": "email",
    },
    "contact adding": {
        "event": "contact adding",
        "email": _EMAIL,
        "phone": "80123456789",
        "groups_names": ["test_group_0", "test_group_1"],
        "groups_ids": [0, 1],
    },
    "contact subscribes": {"event": "contact subscribes", **CONTACT_DATA_SET},
    "contact unsubscribes": {"event": "contact unsubscribes", **CONTACT_DATA_SET},
}

CONTACT_EVENTS = {
    "mailing group subscribe",
    "mailing group unsubscribe",
    "contact adding",
    "contact subscribes",
    "contact unsubscribes",
}


def input_event(name: str, account_id: str, **extra: Any) -> dict[str, Any]:
    """The input event for ``name``: the seed body plus routing fields."""
    body = dict(SEED_BODIES[name])
    if name in ("contact subscribes", "contact unsubscribes"):
        body = {"event": body["event"], "contact": dict(CONTACT_DATA_SET)}
    return {**body, "account_id": account_id, **extra}


def expected_payload(name: str) -> dict[str, Any]:
    """The standard payload for ``name``: the seed body, complaint spelled in ASCII."""
    body = dict(SEED_BODIES[name])
    body["event"] = name
    return body


def family_of(name: str) -> str:
    return "contacts" if name in CONTACT_EVENTS else "messages"
