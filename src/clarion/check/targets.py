"""Where a webhook or push may point: not at the sidecar's own network.

A `json://`, `form://` or `xml://` URL, or a push device URL (which may come with a customer's
event), makes the sidecar send an HTTP request wherever the URL says. Pointed at loopback, a
private network, or a cloud metadata service (169.254.169.254, fd00:ec2::254), that is a way
into what the sidecar can reach and its callers cannot (SSRF). Such addresses are refused
unless `defaults.allow_private_targets` is true. The validator refuses hosts written as such
addresses; the runtime checks every address a send actually connects to (see runtime/dispatch).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from clarion.check.secrets import PLACEHOLDER

GUARDED_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def guarded(url: str, kind: str) -> bool:
    """Whether sends to this URL are checked: webhooks, and every push device URL."""
    return kind == "url" or url.split("://", 1)[0].lower() in GUARDED_SCHEMES


def not_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_global:
        return None
    if address.is_loopback:
        return "loopback"
    if address.is_link_local or address in _METADATA:
        return "link-local (cloud metadata)"
    if address.is_private:
        return "private"
    return "non-public"


_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


def literal_private_host(url: str) -> tuple[str, str] | None:
    """(host, kind) when the URL's host is written as a non-public address or `localhost`."""
    try:
        host = urlsplit(PLACEHOLDER.sub("secret", url)).hostname
    except ValueError:
        return None
    if host is None:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return host, "loopback"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    kind = not_public(address)
    return (host, kind) if kind else None
