"""Faust agents, one module per stage: ingest (join), deliver (+ retry tiers), webhooks."""
