"""The HTTP edge: the delivery client that sends one attempt (aiohttp), with the SSRF guard
applied to every address a hostname resolves to.

May import :mod:`app.model` and :mod:`app.flow`; never Faust or Kafka.
"""
