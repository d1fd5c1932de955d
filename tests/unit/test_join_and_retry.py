"""The join (matching, delivery ids) and the retry schedule."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.flow.join import delivery_id, jobs_for_event, parse_event
from app.flow.retry_policy import next_step, parse_retry_after
from app.model.errors import InvalidInputError
from app.model.events import EventFamily
from app.model.records import SourceRef
from app.model.webhook_config import WebhookConfig
from tests.seed_bodies import input_event

SOURCE = SourceRef(topic="t", partition=0, offset=5)


def hook(hook_id: str, **fields: Any) -> WebhookConfig:
    return WebhookConfig.model_validate(
        {"id": hook_id, "account_id": "a", "url": "https://h.example/x", **fields}
    )


def parsed(**extra: Any) -> tuple[Any, dict[str, Any]]:
    return parse_event(
        orjson.dumps(input_event("message sent", "a", **extra)), EventFamily.MESSAGES
    )


def test_delivery_id_is_stable_and_distinct_per_webhook() -> None:
    event, _ = parsed(event_id="e1")
    first = delivery_id(event, "wh_1", SOURCE)
    assert first == delivery_id(event, "wh_1", SourceRef(topic="t", partition=3, offset=9))
    assert first != delivery_id(event, "wh_2", SOURCE)
    assert first.startswith("msg_")


def test_delivery_id_without_event_id_comes_from_the_record_position() -> None:
    event, _ = parsed()
    assert delivery_id(event, "wh_1", SOURCE) == delivery_id(event, "wh_1", SOURCE)
    assert delivery_id(event, "wh_1", SOURCE) != delivery_id(
        event, "wh_1", SourceRef(topic="t", partition=0, offset=6)
    )


def test_jobs_only_for_active_subscribed_in_scope_webhooks_of_the_account() -> None:
    event, document = parsed(campaign_id=42)
    hooks = [
        hook("all"),
        hook("scoped", campaign_id="42"),
        hook("other_scope", campaign_id="7"),
        hook("opens", events=["message open"]),
        hook("off", active=False),
        WebhookConfig.model_validate({"id": "elsewhere", "account_id": "b", "url": "https://h/x"}),
    ]
    jobs = jobs_for_event(event, document, hooks, SOURCE, 0.0)
    assert [j.webhook_id for j in jobs] == ["all", "scoped"]


def test_events_without_a_campaign_skip_campaign_scoped_webhooks() -> None:
    event, document = parsed()
    assert jobs_for_event(event, document, [hook("scoped", campaign_id="1")], SOURCE, 0.0) == []


def test_optional_routing_fields_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="occurred_at"):
        parsed(occurred_at="yesterday")
    with pytest.raises(InvalidInputError, match="account_id"):
        parse_event(
            orjson.dumps({**input_event("message sent", "a"), "account_id": ""}),
            EventFamily.MESSAGES,
        )


@pytest.mark.parametrize("raw", [None, b"", b"\xff\xfe", b"null", b'"string"', b'{"event": 5}'])
def test_garbage_is_refused_with_a_reason(raw: bytes | None) -> None:
    with pytest.raises(InvalidInputError):
        parse_event(raw, EventFamily.MESSAGES)


def test_retry_schedule_is_one_tier_per_delay_then_failure() -> None:
    delays = (10.0, 60.0, 300.0)
    assert next_step(1, delays, 100.0).tier == 1 and next_step(1, delays, 100.0).due_at == 110.0
    assert next_step(3, delays, 100.0).tier == 3 and next_step(3, delays, 100.0).due_at == 400.0
    assert next_step(4, delays, 100.0).tier is None
    assert next_step(1, (), 0.0).tier is None
    with pytest.raises(ValueError):
        next_step(0, delays, 0.0)


def test_which_failures_retry_is_explicit() -> None:
    from app.flow.retry_policy import is_retryable

    for status in (None, 500, 503, 408, 429):
        assert is_retryable(status, retry_all_non_2xx=False)
    assert not is_retryable(400, retry_all_non_2xx=False)
    assert is_retryable(400, retry_all_non_2xx=True)  # seed 001: any non-200 retries
    assert not is_retryable(410, retry_all_non_2xx=True)  # gone: the webhook is disabled


def test_non_retryable_statuses_fail_at_once_with_the_reason() -> None:
    step = next_step(1, (10.0,), 0.0, status=404, retry_all_non_2xx=False)
    assert step.tier is None and step.reason == "HTTP 404 is not retried"


def test_retry_after_is_honoured_within_the_tier_range() -> None:
    from app.flow.retry_policy import parse_retry_after

    delays = (10.0, 60.0, 300.0)
    assert next_step(1, delays, 0.0, status=429, retry_after=30).due_at == 30.0
    assert next_step(1, delays, 0.0, status=503, retry_after=1).due_at == 10.0  # not below
    assert next_step(1, delays, 0.0, status=429, retry_after=9999).due_at == 300.0  # nor above
    assert next_step(1, delays, 0.0, status=500, retry_after=30).due_at == 10.0  # 500: ignored
    assert parse_retry_after("120", 0.0) == 120.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", 60.0) == 60.0
    assert parse_retry_after("soon", 0.0) is None


def test_jitter_and_per_webhook_max_retries() -> None:
    import random

    delays = (10.0, 60.0)
    due = [next_step(1, delays, 0.0, jitter=0.2, rng=random.Random(n)).due_at for n in range(50)]  # noqa: S311
    assert all(d is not None and 10.0 <= d <= 12.0 for d in due) and len(set(due)) > 1
    assert next_step(1, delays, 0.0, max_retries=0).tier is None
    assert next_step(2, delays, 0.0, max_retries=5).tier == 2
    assert next_step(3, delays, 0.0, max_retries=5).tier is None  # never beyond the tiers


def test_a_webhook_is_disabled_only_after_failing_for_the_whole_period() -> None:
    from app.delivery.failure_streaks import FailureStreaks

    streaks = FailureStreaks(disable_after=86400)
    assert not streaks.failed("w", now=100)
    assert not streaks.failed("w", now=86_000)  # the streak began at 100
    assert streaks.failed("w", now=86_500)
    streaks.delivered("w")  # one success resets it
    assert not streaks.failed("w", now=90_100)
    assert not FailureStreaks(disable_after=0).failed("w", now=10**9)


def test_one_failure_of_a_replayed_old_dead_letter_does_not_disable_its_webhook() -> None:
    """The streak starts at this worker's first failed delivery, not at the job's creation
    (a replay keeps its event's ``created_at``)."""
    from app.delivery.failure_streaks import FailureStreaks

    week_old_job_created_at = 1_000_000.0
    now = week_old_job_created_at + 7 * 86400
    streaks = FailureStreaks(disable_after=86400)
    assert not streaks.failed("w", now=now)
    assert not streaks.failed("w", now=now + 60)


@settings(max_examples=3000, derandomize=True, database=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.from_regex(r"[A-Za-z]{3}, \d{1,2} [A-Za-z]{3} \d{1,6} \d{1,2}:\d{1,2}:\d{1,2}( GMT)?"),
        st.integers(min_value=0, max_value=10**400).map(str),
    )
)
def test_retry_after_parsing_never_raises_and_reads_only_ascii_digits(value: str) -> None:
    parsed = parse_retry_after(value, 1_700_000_000.0)
    assert parsed is None or parsed >= 0
    if parsed is not None and value.strip().isdigit():
        assert value.strip().isascii()


@pytest.mark.parametrize("value", ["²", "٣", "1²", "Mon, 99 Foo 99999 99:99:99 GMT", "  "])
def test_unreadable_retry_after_headers_are_ignored(value: str) -> None:
    assert parse_retry_after(value, 1_700_000_000.0) is None


def test_the_rate_limiter_reserves_slots_and_spaces_starts() -> None:
    from app.delivery.rate_limit import RateLimiter

    limiter = RateLimiter(max_wait=1.0)
    starts = [limiter.reserve("w", rate=4, now=10.0) for _ in range(6)]
    assert starts == [10.0, 10.25, 10.5, 10.75, 11.0, 11.25]
    assert limiter.reserve("other", rate=4, now=10.0) == 10.0
    assert limiter.reserve("w", rate=4, now=20.0) == 20.0  # idle time is not saved up
    assert limiter.start_after("w") == 0.0
    limiter.started("w", rate=4, now=20.0)
    assert limiter.start_after("w") == 20.25
