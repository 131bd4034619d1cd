"""Which IP addresses an outbound call (an external model, an MCP server, a webhook) may reach.

The standard library's ``is_private``/``is_global`` answers changed between Python versions and miss
ranges that matter here (on 3.11, 100.64.0.0/10 and 2002::/16 are not "private"). So the decision is an
explicit deny list: every block of the IANA IPv4 and IPv6 Special-Purpose Address Registries, multicast
and the reserved class E, plus every IPv6 form that carries an IPv4 address (IPv4-mapped, IPv4-compatible,
NAT64, 6to4, Teredo), which are refused outright rather than decoded. IPv6 outside global unicast
(2000::/3) is refused too: the rest of that space is reserved, local or multicast. :func:`refusal` names the
block an address falls in, or None for an ordinary global unicast address.
"""

from __future__ import annotations

import ipaddress

__all__ = ["SPECIAL_PURPOSE", "refusal"]

#: (block, what it is). Order does not matter: an address is refused if any block holds it.
SPECIAL_PURPOSE: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(block), name) for block, name in (
        # IPv4 (RFC 6890 and the registry's later entries)
        ("0.0.0.0/8", "'this network'"),
        ("10.0.0.0/8", "private-use"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT, cloud metadata services)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata services)"),
        ("172.16.0.0/12", "private-use"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("192.31.196.0/24", "AS112-v4"),
        ("192.52.193.0/24", "AMT"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
        ("192.168.0.0/16", "private-use"),
        ("192.175.48.0/24", "direct delegation AS112 service"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("255.255.255.255/32", "limited broadcast"),
        # IPv6
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("::ffff:0:0/96", "IPv4-mapped"),
        ("64:ff9b::/96", "NAT64 (IPv4-embedded)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("100:0:0:1::/64", "dummy IPv6 prefix"),
        ("2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)"),
        ("2001::/32", "Teredo (IPv4-embedded)"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4 (IPv4-embedded)"),
        ("2620:4f:8000::/48", "direct delegation AS112 service"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing (SRv6) SIDs"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    ))


def refusal(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an outbound connection to ``address`` is refused (the special-purpose block it is in), or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return "not an IP address"
    for block, name in SPECIAL_PURPOSE:
        if ip.version == block.version and ip in block:
            return name
    if ip.version == 6 and ip not in _GLOBAL_UNICAST_V6:
        return "outside IPv6 global unicast (2000::/3)"
    return None


_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
