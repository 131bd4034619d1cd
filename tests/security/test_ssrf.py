"""Issue 17, point 5: outbound calls refuse every special-purpose address, decided by an explicit deny list
(not by ``ipaddress.is_private``, which on Python 3.11 passes carrier-grade NAT and 6to4), checked on every
address a name resolves to, and connected to by the address that was checked."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brickyard.core.addresses import refusal
from brickyard.core.errors import InvalidParameterValue
from brickyard.models._openai import check_url

REFUSED = [
    "100.100.100.200",  # a cloud metadata service inside carrier-grade NAT space
    "100.64.0.1", "100.127.255.254", "169.254.169.254", "127.0.0.1", "127.1.2.3", "0.0.0.0", "0.1.2.3",
    "10.1.2.3", "172.31.0.1", "192.168.1.1", "192.0.0.170", "192.0.2.5", "198.18.0.1", "198.51.100.1",
    "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.88.99.1",
    "::", "::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::10.0.0.1",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::", "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "fec0::1", "ff02::1", "ff0e::1",
    "100::1", "3fff::1", "5f00::1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "151.101.1.69", "2606:4700:4700::1111", "2a00:1450:4001::1"]


@pytest.mark.parametrize("address", REFUSED)
def test_special_purpose_addresses_are_refused(address: str) -> None:
    assert refusal(address) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_ordinary_global_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_nothing_python_calls_non_global_slips_through(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    if not ip.is_global or ip.is_multicast or ip.is_private or ip.is_reserved or ip.is_loopback or ip.is_link_local:
        assert refusal(ip) is not None, ip


@pytest.mark.parametrize("url", [
    "http://100.100.100.200/latest/meta-data/", "http://[2002:7f00:1::]:8080/v1", "http://[64:ff9b::7f00:1]/v1",
    "http://[::ffff:127.0.0.1]/v1", "http://0x7f.1/v1", "http://2130706433/v1", "http://[fe80::1%25eth0]/v1",
])
def test_model_urls_that_resolve_to_special_addresses_are_refused(url: str) -> None:
    with pytest.raises(InvalidParameterValue, match="address|resolve"):
        check_url(url, frozenset())


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v1", "http://127.0.0.1:-1/v1", "http://127.0.0.1:x/v1",
                                 "ftp://example.com/", "http://user:pw@example.com/", "http://[::1/v1"])
def test_malformed_model_urls_are_a_clear_400(url: str) -> None:
    with pytest.raises(InvalidParameterValue):
        check_url(url, frozenset())


def test_an_allowed_host_is_reached_at_the_checked_address_only() -> None:
    """The MCP proxy's client connects to the address check_url approved, and to no other host."""
    import httpcore

    from brickyard.models._openai import pinned_http_client

    client = pinned_http_client("http://127.0.0.1:9/mcp", frozenset({"127.0.0.1:9"}), timeout=2)
    try:
        with pytest.raises(Exception) as raised:  # nothing listens on port 9: a connect error, not a 200
            client.get("http://127.0.0.1:9/mcp")
        assert "refusing" not in str(raised.value)
        import httpx

        with pytest.raises(httpx.ConnectError, match="only '127.0.0.1' was checked"):
            client.get("http://localhost:9/mcp")
    finally:
        client.close()
    assert httpcore  # imported to show the backend the client is built on
