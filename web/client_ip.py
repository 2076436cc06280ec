"""The client's IP address behind trusted reverse proxies (``PULPIT_TRUSTED_PROXIES``).

``X-Forwarded-For`` is believed only when the direct peer is a trusted proxy, and then only
as far as the chain of trusted proxies goes: walking from the right (the entry our own proxy
added), the first address that is not a trusted proxy is the client. Everything to its left
was written by the client or by proxies we do not know, so it may be forged. With no trusted
proxies (the default) the peer's address is the client's, whatever the headers say.

Pure functions: no request objects, so the rules are unit-tested directly
(``tests/unit/test_client_ip.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8, ::1"`` as networks; a bare address is a /32 (or /128).

    Raises ValueError naming the entry that is neither an address nor a network.
    """
    entries = value.split(",") if isinstance(value, str) else list(value)
    networks: list[Network] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is no IP address or network (CIDR)") from None
    return tuple(networks)


@lru_cache(maxsize=8)
def networks_of(setting: str) -> tuple[Network, ...]:
    """:func:`parse_networks` of the setting's string, parsed once (asked on every login)."""
    return parse_networks(setting)


def _address(value: str | None) -> Address | None:
    """An address from a peer or a header entry; None for anything else (names, garbage)."""
    if not value:
        return None
    text = value.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:4711"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:4711"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # ::ffff:203.0.113.7 is 203.0.113.7 (a dual-stack socket reports IPv4 peers this way).
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(
    peer: str | None, forwarded_for: Sequence[str] | str | None, proxies: Sequence[Network]
) -> str | None:
    """The client's address: ``peer`` unless it is a trusted proxy, then from X-Forwarded-For.

    ``forwarded_for`` is the header's value, or its values when it came more than once (they
    are one list, in order, RFC 7230 3.2.2). When every address in the chain is a trusted
    proxy, the left-most one is the client (a request from inside our own network); an entry
    that is no IP address stops the walk there, and the last trusted hop is returned rather
    than something a client may have made up.
    """
    peer_address = _address(peer)
    if peer_address is None:
        return peer or None
    if not proxies or not _trusted(peer_address, proxies):
        return str(peer_address)
    if forwarded_for is None:
        return str(peer_address)
    values = [forwarded_for] if isinstance(forwarded_for, str) else list(forwarded_for)
    hops = [part.strip() for value in values for part in value.split(",") if part.strip()]
    client = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)
