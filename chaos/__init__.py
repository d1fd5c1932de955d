"""``make chaos``: a seeded chaos run that proves at-least-once delivery by counting.

Workers of one consumer group are SIGKILLed, joined, stopped and (on Apache Kafka) their
broker is SIGKILLed, at moments drawn from a seed, while events fan out to a fast, a slow and
a flaky loopback endpoint; then every event is counted at each endpoint. The README's
"At least once" promise and the house style's "prove it by killing things" are what it checks.
"""
