"""TLS and SASL settings, mapped once for Faust and for every aiokafka client hookstream makes.

The config view, admin client, log scans and CLI producers all connect with
:func:`client_options`, the Faust app with :func:`faust_credentials`, so a cluster that needs
TLS or SASL works everywhere or nowhere.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from app.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.uses_tls:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.ssl_ca_file,
        certfile=settings.ssl_cert_file,
        keyfile=settings.ssl_key_file,
    )
    return context


def security_protocol(settings: Settings) -> str:
    sasl = settings.sasl_mechanism is not None
    if settings.uses_tls:
        return "SASL_SSL" if sasl else "SSL"
    return "SASL_PLAINTEXT" if sasl else "PLAINTEXT"


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaConsumer/Producer/AdminClient."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": security_protocol(settings),
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


def faust_credentials(settings: Settings) -> Any:
    """The ``broker_credentials`` of the Faust app, or None for a plaintext cluster."""
    context = ssl_context(settings)
    if settings.sasl_mechanism is not None:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
