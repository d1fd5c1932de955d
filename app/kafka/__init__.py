"""The Kafka edge: the topic catalog, Faust's transport as hookstream tunes it, the batch writer,
the config view, topic creation, TLS/SASL options, log scans, replay, and the embedded broker.

May import :mod:`app.model`, :mod:`app.flow` and :mod:`app.settings`; never the Faust app
(:mod:`app.main`), which builds on this folder, nor the agents or API.
"""
