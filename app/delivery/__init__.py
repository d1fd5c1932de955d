"""When each job is sent: per-endpoint isolation (bulkhead, circuit breaker), per-webhook rate
limits, and the failure streaks that auto-disable a webhook.

Decisions about timing and capacity, separate from how a request is made (:mod:`app.http`)
and from Kafka. May import :mod:`app.model` and :mod:`app.flow`; no Faust, no aiohttp.
"""
