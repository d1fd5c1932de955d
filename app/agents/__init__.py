"""Faust agents, one module per stage: ingest (validate + join + deliver), deliver (replays and
the retry tiers), webhooks (reports invalid configs); reporting writes ``events.invalid``.

Wiring only: they connect the pure layers to Kafka and HTTP through :mod:`app.runtime`, and may
import anything below them, never the API. :mod:`app.worker` imports them so they register.
"""
