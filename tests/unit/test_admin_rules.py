"""Admin API rules that need no broker: the token check, secret merging, replay selection,
and feedback tokens."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app.api import common
from app.api.models import WebhookOut, merge_patch, merge_put
from app.flow.tracking import TokenError, TrackingClaims, issue_token, message_of, verify_token
from app.kafka.replay import select
from app.model.records import DeadLetter, DeliveryJob, SourceRef
from app.model.webhook_config import WebhookConfig
from app.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"m" * 32).decode()


class FakeRequest:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def test_admin_api_refuses_everything_without_a_configured_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common, "settings", Settings(admin_token=None))
    with pytest.raises(common.ApiError) as info:
        common.check_admin(FakeRequest({"Authorization": "Bearer anything"}))  # type: ignore[arg-type]
    assert info.value.status == 403 and "HOOKSTREAM_ADMIN_TOKEN" in info.value.message


def test_token_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "settings", Settings(admin_token="t0ken"))  # type: ignore[arg-type]
    common.check_admin(FakeRequest({"Authorization": "Bearer t0ken"}))  # type: ignore[arg-type]
    for header in ({}, {"Authorization": "Basic t0ken"}, {"Authorization": "Bearer nope"}):
        with pytest.raises(common.ApiError) as info:
            common.check_admin(FakeRequest(header))  # type: ignore[arg-type]
        assert info.value.status == 401


def current() -> WebhookConfig:
    return WebhookConfig.model_validate(
        {
            "id": "w",
            "account_id": "a",
            "url": "https://h.example/x",
            "secret": SECRET,
            "auth": {"type": "basic", "username": "u", "password": "pw"},
        }
    )


def test_out_model_never_carries_secrets() -> None:
    shown = WebhookOut.of(current()).model_dump_json()
    assert SECRET not in shown and '"pw"' not in shown
    assert '"secret_set":true' in shown and '"password_set":true' in shown


@pytest.mark.parametrize("blank", [{}, {"secret": ""}])
def test_put_with_a_blank_secret_keeps_the_current_one(blank: dict[str, Any]) -> None:
    merged = merge_put({"account_id": "a", "url": "https://h.example/y", **blank}, current())
    assert merged["secret"] == SECRET


def test_put_with_null_secret_removes_it_and_patch_keeps_the_password() -> None:
    assert merge_put({"secret": None}, current())["secret"] is None
    patched = merge_patch({"auth": {"type": "basic", "username": "v"}}, current())
    assert patched["auth"] == {"type": "basic", "username": "v", "password": "pw"}
    assert patched["secret"] == SECRET and patched["url"] == "https://h.example/x"


def letter(delivery_id: str, webhook_id: str, failed_at: float) -> DeadLetter:
    job = DeliveryJob(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        account_id="a",
        event="message sent",  # type: ignore[arg-type]
        payload={},
        created_at=0,
        source=SourceRef(topic="t", partition=0, offset=0),
    )
    return DeadLetter(job=job, history=[], reason="r", stage="retry.3", failed_at=failed_at)


def test_replay_selection_by_id_webhook_and_time_one_per_delivery() -> None:
    letters = [letter("d1", "w1", 10), letter("d1", "w1", 20), letter("d2", "w2", 30)]
    assert [x.failed_at for x in select(letters, ["d1"], None, None, None)] == [20]
    assert [x.job.delivery_id for x in select(letters, None, "w2", None, None)] == ["d2"]
    assert [x.job.delivery_id for x in select(letters, None, None, 15, 31)] == ["d1", "d2"]
    assert select(letters, None, None, 25, 30) == []


def claims(exp: float) -> TrackingClaims:
    message = message_of(
        {
            "message_id": 4,
            "message_uid": "u",
            "sending_type": "s",
            "name": "n",
            "from": "f",
            "to": "t",
        }
    )
    assert message is not None
    return TrackingClaims(account_id="a", webhook_id="w", delivery_id="d", message=message, exp=exp)


def test_feedback_tokens_verify_and_refuse_tampering_expiry_and_other_keys() -> None:
    token = issue_token(b"key", claims(exp=100.0))
    assert verify_token(b"key", token, now=99.0).account_id == "a"
    with pytest.raises(TokenError, match="expired"):
        verify_token(b"key", token, now=101.0)
    with pytest.raises(TokenError, match="does not match"):
        verify_token(b"other", token, now=0.0)
    body, _, signature = token.partition(".")
    forged = issue_token(b"key", claims(exp=1e12)).partition(".")[0]
    with pytest.raises(TokenError, match="does not match"):
        verify_token(b"key", f"{forged}.{signature}", now=0.0)
    for bad in ("", "abc", f"{body}.", f"{body}.!!!"):
        with pytest.raises(TokenError):
            verify_token(b"key", bad, now=0.0)


def test_only_email_messages_carry_a_message_for_tokens() -> None:
    assert message_of({"template_name": "t", "message_id": 1}) is None


NEW_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()


def test_a_new_secret_rotates_the_old_one_into_a_grace_period() -> None:
    merged = merge_patch({"secret": NEW_SECRET}, current(), now=1000.0, grace=86400.0)
    rotated = WebhookConfig.model_validate(merged)
    assert rotated.secret is not None and rotated.secret.get_secret_value() == NEW_SECRET
    assert rotated.previous_secret is not None
    assert rotated.previous_secret.get_secret_value() == SECRET
    assert rotated.previous_secret_expires_at == 87400.0
    assert [s.get_secret_value() for s in rotated.signing_secrets(now=2000.0)] == [
        NEW_SECRET,
        SECRET,
    ]
    assert [s.get_secret_value() for s in rotated.signing_secrets(now=90000.0)] == [NEW_SECRET]
    # An unrelated edit keeps the grace period; a caller cannot set previous_secret itself.
    again = merge_patch(
        {"name": "x", "previous_secret": NEW_SECRET}, rotated, now=3000.0, grace=86400.0
    )
    assert again["previous_secret"] == SECRET and again["previous_secret_expires_at"] == 87400.0
    shown = WebhookOut.of(rotated).model_dump_json()
    assert SECRET not in shown and NEW_SECRET not in shown


def test_both_signatures_verify_with_the_official_library_during_rotation() -> None:
    import time

    from standardwebhooks import Webhook

    from app.http.client import RequestPlan
    from app.model.events import EventName

    rotated = WebhookConfig.model_validate(
        merge_patch({"secret": NEW_SECRET}, current(), now=time.time(), grace=60.0)
    )
    plan = RequestPlan.of(rotated, EventName.MESSAGE_SENT)
    request, headers = plan.build({"a": 1}, "msg_1", 1, int(time.time()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, NEW_SECRET):
        assert Webhook(secret).verify(request.body or b"", headers) == {"a": 1}
