"""Admin API rules that need no broker: the token check, secret merging, replay selection,
and feedback tokens."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from app.api import common
from app.api.models import SecretRequiredError, WebhookOut, merge_patch, merge_put
from app.flow.tracking import TokenError, TrackingClaims, issue_token, message_of, verify_token
from app.http.client import AttemptOutcome, DeliveryClient, RequestPlan, masked_headers
from app.kafka.replay import select
from app.model.events import EventName
from app.model.records import AttemptResult, DeadLetter, DeliveryJob, SourceRef
from app.model.url_policy import UrlPolicy
from app.model.webhook_config import SECRET_PATHS, WebhookConfig, redact_config_bytes, secret_at
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


# -- secrets that must not follow a webhook ---------------------------------------------------
@pytest.mark.parametrize("merge", [merge_put, merge_patch])
def test_moving_a_webhook_to_another_account_needs_its_secrets_again(merge: Any) -> None:
    document = {
        "account_id": "b",
        "url": "https://h.example/x",
        "auth": {"type": "basic", "username": "u"},
    }
    with pytest.raises(SecretRequiredError) as info:
        merge(document, current())
    assert {e["field"] for e in info.value.errors} == {"secret", "auth.password"}
    given = {
        **document,
        "secret": SECRET,
        "auth": {"type": "basic", "username": "u", "password": "p2"},
    }
    merged = merge(given, current())
    assert merged["account_id"] == "b" and merged["auth"]["password"] == "p2"
    assert "previous_secret" not in merged  # no old secret signs for the new account


@pytest.mark.parametrize("merge", [merge_put, merge_patch])
@pytest.mark.parametrize(
    "change",
    [
        {"url": "https://elsewhere.example/x"},
        {"url": "https://h.example:8443/x"},
        {"event_urls": {"message sent": "https://other.example/m"}},
    ],
)
def test_a_url_on_a_new_host_needs_the_basic_auth_password_again(
    merge: Any, change: dict[str, Any]
) -> None:
    document = {"account_id": "a", "url": "https://h.example/x", **change}
    document["auth"] = {"type": "basic", "username": "u"}
    with pytest.raises(SecretRequiredError) as info:
        merge(document, current())
    assert [e["field"] for e in info.value.errors] == ["auth.password"]
    # The signing secret is no credential for the host (only a signature goes there): kept.
    merged = merge({**document, "auth": {**document["auth"], "password": "new"}}, current())
    assert merged["secret"] == SECRET and merged["auth"]["password"] == "new"


def test_a_new_path_on_the_same_host_keeps_the_password() -> None:
    merged = merge_patch({"url": "https://h.example/other/path"}, current())
    assert merged["auth"]["password"] == "pw" and merged["secret"] == SECRET


def test_patch_without_auth_keeps_auth_and_patch_with_null_auth_removes_it() -> None:
    assert merge_patch({"name": "n"}, current())["auth"] == {
        "type": "basic",
        "username": "u",
        "password": "pw",
    }
    assert merge_patch({"auth": None}, current())["auth"] is None


# -- redaction and reprs ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        [{"secret": SECRET}],
        {"nested": {"deeper": [{"previous_secret": SECRET, "password": "pw-deep"}]}},
        {"auth": {"type": "basic", "username": "u", "password": "pw-deep"}, "secret": SECRET},
        SECRET,
        {"notes": ["see", SECRET]},
    ],
)
def test_redaction_masks_secrets_at_any_depth_and_shape(raw: Any) -> None:
    redacted = redact_config_bytes(orjson.dumps(raw))
    assert SECRET.encode() not in redacted and SECRET[6:].encode() not in redacted
    assert b"pw-deep" not in redacted
    assert redact_config_bytes(b"\xff" + SECRET.encode()) == (
        b'"*** not JSON: withheld, it may hold secrets ***"'
    )


def test_the_secret_fields_are_listed_once_and_to_wire_writes_each() -> None:
    config = current().model_copy(update={"previous_secret": SecretStr(SECRET)})
    wire = config.to_wire()
    assert wire["secret"] == SECRET and wire["previous_secret"] == SECRET
    assert wire["auth"]["password"] == "pw"
    for path in SECRET_PATHS:
        assert secret_at(config, path) is not None, path


def test_objects_that_hold_credentials_have_safe_reprs() -> None:
    hook = current()
    basic = base64.b64encode(b"u:pw").decode()
    plan = RequestPlan.of(hook, EventName.MESSAGE_SENT)
    request, headers = plan.build({"a": 1}, "msg_1", 1, 1_700_000_000, tracking_token="tok-123")
    result = AttemptResult(attempt=1, url=hook.url or "", status=200, duration_ms=1.0, at=1.0)
    outcome = AttemptOutcome(result, None, {}, request, headers)
    client = DeliveryClient(UrlPolicy(), 1.0, tracking_key=b"tracking-key-bytes")
    settings = Settings(admin_token="adm1n", tracking_secret="track1ng", sasl_password="sasl-pw")  # type: ignore[arg-type]
    for obj in (hook, hook.auth, plan, outcome, client, settings):
        shown = repr(obj) + str(obj)
        for secret in (SECRET, SECRET[6:], "pw'", basic, "tok-123", "tracking-key-bytes"):
            assert secret not in shown, (type(obj).__name__, secret)
        for secret in ("adm1n", "track1ng", "sasl-pw"):
            assert secret not in shown, (type(obj).__name__, secret)
    assert masked_headers(headers)["authorization"] == "***"
    assert masked_headers(headers)["x-hookstream-token"] == "***"
