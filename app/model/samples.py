"""Sample events for "test connection" (seeds 001/002/003: a sample data set the user can edit).

The values are the seeds' own sample values.
"""

from __future__ import annotations

from typing import Any

from app.model.events import EventName

_MESSAGE = {
    "message_id": 4,
    "message_uid": "0123456789_012_012_01234",
    "sending_type": "instant",
    "from": "sender@example.com",
    "to": "recipient@example.com",
}
_TEMPLATE = {
    "template_name": "template_example",
    "message_id": 123,
    "sending_type": "scenario",
    "from_number": "70000000000",
    "to_number": "71111111111",
}
_CONTACT = {
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

_SAMPLES: dict[EventName, dict[str, Any]] = {
    EventName.MESSAGE_SENT: {**_MESSAGE, "name": "Sending message (test)"},
    EventName.DELIVERY_BOUNCE: {
        **_MESSAGE,
        "name": "Error while sending message (test)",
        "error_message": "Some error message",
    },
    EventName.MESSAGE_OPEN: {**_MESSAGE, "name": "Open message (test)"},
    EventName.MESSAGE_CLICKED: {
        **_MESSAGE,
        "name": "Click in message (test)",
        "click_url": "https://clicked.link/",
    },
    EventName.COMPLAINT: {**_MESSAGE, "name": "Complaint in message (test)"},
    EventName.WHATSAPP_TEMPLATE_SENT: dict(_TEMPLATE),
    EventName.WHATSAPP_TEMPLATE_DELIVERED: dict(_TEMPLATE),
    EventName.WHATSAPP_TEMPLATE_READ: dict(_TEMPLATE),
    EventName.WHATSAPP_TEMPLATE_BOUNCE: {**_TEMPLATE, "error_message": "Some error message"},
    EventName.WHATSAPP_INBOX_MESSAGE_RECEIVED: {
        "message": "some text",
        "from_number": "71111111111",
        "to_number": "70000000000",
    },
    EventName.MAILING_GROUP_SUBSCRIBE: {
        "email": "person@example.com",
        "group_id": 4,
        "group_name": "Person subscribe (test)",
        "channel": "email",
    },
    EventName.MAILING_GROUP_UNSUBSCRIBE: {
        "email": "person@example.com",
        "group_id": 4,
        "group_name": "Person unsubscribe (test)",
        "channel": "email",
    },
    EventName.CONTACT_ADDING: {
        "email": "person@example.com",
        "phone": "80123456789",
        "groups_names": ["test_group_0", "test_group_1"],
        "groups_ids": [0, 1],
    },
    EventName.CONTACT_SUBSCRIBES: {"contact": _CONTACT},
    EventName.CONTACT_UNSUBSCRIBES: {"contact": _CONTACT},
}


def sample_event(name: EventName, account_id: str) -> dict[str, Any]:
    """An input event document of type ``name`` for ``account_id``, with sample values."""
    return {"event": name.value, **_SAMPLES[name], "account_id": account_id}
