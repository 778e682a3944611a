"""The caller's IP address: ``REMOTE_ADDR``, or ``X-Forwarded-For`` from a trusted proxy.

``X-Forwarded-For`` is only believed when the direct peer is in ``OPS_TRUSTED_PROXIES``. Each
proxy appends the address it received the request from, so the list is read from the right:
trusted hops are skipped and the first untrusted address is the client. Everything left of it
was written by the client (or by proxies we do not know) and is ignored — otherwise anyone could
choose the IP written into the audit log.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[::1]:1234"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "1.2.3.4:1234"
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _trusted(addr, proxies: Iterable[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in proxies)


def resolve_client_ip(
    remote_addr: str | None, forwarded_for: str | None, proxies: Sequence[Network]
) -> str | None:
    """The client address given the peer, its X-Forwarded-For header and the trusted CIDRs."""
    peer = _parse(remote_addr or "")
    if peer is None:
        return remote_addr or None
    if not forwarded_for or not _trusted(peer, proxies):
        return str(peer)
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        addr = _parse(hop)
        if addr is None:
            break  # garbage from the client side: the last trusted hop is all we know
        client = addr
        if not _trusted(addr, proxies):
            break
    return str(client)


_CACHED = "apiops.client_ip"


def client_ip(request) -> str | None:
    """The source IP of a Django or DRF request, as written into the audit log (worked out
    once per request: the throttle, the audit row and the access line all ask)."""
    meta = request.META
    if _CACHED in meta:
        return meta[_CACHED]
    address = resolve_client_ip(
        meta.get("REMOTE_ADDR"),
        meta.get("HTTP_X_FORWARDED_FOR"),
        settings.APIOPS["TRUSTED_PROXIES"],
    )
    meta[_CACHED] = address
    return address
