"""The loopback check the client (plain http) and the emulator (--host) share."""

from __future__ import annotations

from revoker.net import is_loopback


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.1.2.3")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback("example.com")
    assert is_loopback("[::1]")  # as a URL writes it
