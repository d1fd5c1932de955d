"""Which webhook URLs and addresses hookstream may call (SSRF guard), as pure functions.

Checked twice: when a config is accepted (scheme, literal addresses, ``localhost``) and again at
send time on every address a hostname resolves to (see :mod:`app.http.client`), because DNS can
change between the two.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.model.errors import UrlRejectedError

#: Networks refused unless ``HOOKSTREAM_ALLOW_PRIVATE_NETWORKS`` is set. ``is_private`` and
#: friends cover most; CGNAT and the metadata address are named so the intent is explicit.
_EXTRA_FORBIDDEN = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("169.254.169.254/32"),  # cloud metadata
    ipaddress.ip_network("0.0.0.0/8"),
)

_LOCAL_HOSTNAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class UrlPolicy:
    """What the settings allow: plain HTTP, and private/loopback destinations."""

    allow_http: bool = False
    allow_private_networks: bool = False


def forbidden_address_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public destination, or ``None`` if it is."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return f"{address} is a loopback address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    if any(ip in net for net in _EXTRA_FORBIDDEN):
        return f"{address} is a reserved or metadata address"
    if ip.is_private:
        return f"{address} is a private-network address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{address} is not a unicast public address"
    return None


def _ip_literal(host: str) -> str | None:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return host


def check_url(url: str, policy: UrlPolicy) -> None:
    """Raise :class:`UrlRejectedError` with the reason when ``url`` may not be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise UrlRejectedError(f"URL scheme must be https (got {parts.scheme or 'none'!r})")
    if parts.scheme == "http" and not policy.allow_http:
        raise UrlRejectedError("URL must use https (plain http is not allowed by the settings)")
    if not parts.hostname:
        raise UrlRejectedError("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRejectedError("URL must not contain credentials; use basic auth instead")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise UrlRejectedError("URL has an invalid port") from None
    if policy.allow_private_networks:
        return
    host = parts.hostname.rstrip(".").lower()
    if host in _LOCAL_HOSTNAMES or host.endswith(".localhost"):
        raise UrlRejectedError(f"{host} is a loopback host")
    literal = _ip_literal(host)
    if literal is not None:
        reason = forbidden_address_reason(literal)
        if reason is not None:
            raise UrlRejectedError(reason)
