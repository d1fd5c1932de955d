"""Which webhook URLs and addresses hookstream may call (SSRF guard), as pure functions.

Checked twice: when a config is accepted (scheme, literal addresses, ``localhost``) and again at
send time on the URL and on every address a hostname resolves to (see :mod:`app.http.client`),
because DNS can change between the two.

Hosts are read the way browsers and ``inet_aton`` read them, so that no spelling of a forbidden
address slips through: ``2130706433``, ``127.1``, ``0177.0.0.1``, ``0x7f000001`` and ``0`` are
all IPv4 addresses. A host written in such a non-standard form is refused even when it names a
public address (HTTP clients disagree on them: aiohttp takes some for hostnames), with the
standard spelling in the reason. IPv6 addresses that carry an IPv4 address (IPv4-mapped and
-compatible, 6to4, NAT64, Teredo) are judged by the address they carry.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.model.errors import UrlRejectedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Networks refused unless ``HOOKSTREAM_ALLOW_PRIVATE_NETWORKS`` is set. ``is_private`` and
#: friends cover most; these are named so the intent is explicit.
_EXTRA_FORBIDDEN = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("169.254.169.254/32"),  # cloud metadata
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("fec0::/10"),  # IPv6 site-local (deprecated, still routed inside)
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

_LOCAL_HOSTNAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_DECIMAL = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"0[0-7]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]*")


@dataclass(frozen=True)
class UrlPolicy:
    """What the settings allow: plain HTTP, and private/loopback destinations."""

    allow_http: bool = False
    allow_private_networks: bool = False


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, Teredo, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _reason(ip: IPAddress, shown: str) -> str | None:
    if ip.is_loopback:
        return f"{shown} is a loopback address"
    if ip.is_link_local:
        return f"{shown} is a link-local address"
    if any(ip.version == net.version and ip in net for net in _EXTRA_FORBIDDEN):
        return f"{shown} is a reserved or metadata address"
    if ip.is_private:
        return f"{shown} is a private-network address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{shown} is not a unicast public address"
    return None


def forbidden_address_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public destination, or ``None`` if it is."""
    ip: IPAddress = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = _embedded_ipv4(ip)
        if carried is not None:
            reason = _reason(carried, f"{address} (carrying {carried})")
            if reason is not None:
                return reason
    return _reason(ip, address)


def _ipv4_part(part: str) -> int | None:
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part) and not (len(part) > 1 and part.startswith("0")):
        return int(part)
    return None  # not a number, or a leading-zero part with a digit 8 or 9


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host names in any numeric spelling (WHATWG URL / ``inet_aton``), or
    ``None`` for a hostname; :class:`UrlRejectedError` for a host that ends in a number but is
    no valid address (``1.2.3.999``, ``0x1.0x1.0x1.0x1.0x1``, ``08``)."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not (_DECIMAL.fullmatch(parts[-1]) or _HEX.fullmatch(parts[-1])):
        return None  # does not end in a number: a hostname
    numbers = [_ipv4_part(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise UrlRejectedError(f"host {host!r} is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    *front, last = values
    if any(n > 255 for n in front) or last >= 256 ** (5 - len(values)):
        raise UrlRejectedError(f"host {host!r} is not a valid IPv4 address")
    address = last + sum(n * 256 ** (3 - i) for i, n in enumerate(front))
    return ipaddress.IPv4Address(address)


def check_url(url: str, policy: UrlPolicy) -> None:
    """Raise :class:`UrlRejectedError` with the reason when ``url`` may not be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        allowed = "http or https" if policy.allow_http else "https"
        raise UrlRejectedError(f"URL scheme must be {allowed} (got {parts.scheme or 'none'!r})")
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
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal (urlsplit removed the brackets)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            raise UrlRejectedError(f"host {host!r} is not a valid IPv6 address") from None
    else:
        literal = numeric_ipv4(host)
        if literal is not None and str(literal) != host:
            reason = forbidden_address_reason(str(literal))
            if reason is not None and not policy.allow_private_networks:
                raise UrlRejectedError(f"{reason} (written {host!r})")
            raise UrlRejectedError(
                f"host {host!r} is the IPv4 address {literal} in a non-standard form; "
                f"write {literal}"
            )
    if policy.allow_private_networks:
        return
    name = host.rstrip(".")
    if name in _LOCAL_HOSTNAMES or name.endswith(".localhost"):
        raise UrlRejectedError(f"{name} is a loopback host")
    if literal is not None:
        reason = forbidden_address_reason(str(literal))
        if reason is not None:
            raise UrlRejectedError(reason)
