"""TLS/SASL settings map to the same security on Faust and on aiokafka clients."""

from __future__ import annotations

import faust

from app.kafka.security import client_options, faust_credentials, security_protocol
from app.settings import Settings


def test_plaintext_by_default_and_a_list_of_bootstrap_servers() -> None:
    settings = Settings(broker="kafka://k1:9092,kafka://k2:9092,k3:9093")
    assert settings.bootstrap_servers == ["k1:9092", "k2:9092", "k3:9093"]
    assert client_options(settings) == {
        "bootstrap_servers": ["k1:9092", "k2:9092", "k3:9093"],
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings) is None


def test_sasl_scram_over_tls() -> None:
    settings = Settings(
        ssl=True,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="hookstream",
        sasl_password="pw",  # type: ignore[arg-type]
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "hookstream"
    assert options["sasl_plain_password"] == "pw"
    assert options["ssl_context"] is not None
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert "pw" not in repr(settings)


def test_sasl_plain_without_tls_and_tls_without_sasl() -> None:
    assert security_protocol(Settings(sasl_mechanism="PLAIN")) == "SASL_PLAINTEXT"
    assert security_protocol(Settings(ssl=True)) == "SSL"
    assert isinstance(faust_credentials(Settings(ssl=True)), faust.SSLCredentials)
