"""Admin API rules that need no broker: the token check, secret merging, replay selection,
and feedback tokens."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app.api import common
from app.api.models import WebhookOut, merge_patch, merge_put
from app.records import DeadLetter, DeliveryJob, SourceRef
from app.replay import select
from app.settings import Settings
from app.tracking import TokenError, TrackingClaims, issue_token, message_of, verify_token
from app.webhook_config import WebhookConfig

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
