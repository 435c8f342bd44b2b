"""The pure parts of the safe fetcher: address rules, Retry-After, bounded decompression."""

from __future__ import annotations

import gzip
import ipaddress
import zlib
from datetime import UTC, datetime

import pytest

from pipeline.errors import FetchError, FetchRefused, ResponseTooLarge
from pipeline.http import (
    Validators,
    _BoundedDecoder,
    _checked_host,
    check_addresses,
    is_public_address,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("127.9.9.9", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_one_private_record_refuses_the_host() -> None:
    with pytest.raises(FetchRefused, match=r"10\.0\.0\.1"):
        check_addresses("mixed.example", ["93.184.216.34", "10.0.0.1"])
    assert check_addresses("ok.example", ["93.184.216.34"]) == ["93.184.216.34"]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x", "javascript:alert(1)", "//x"]
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(FetchRefused):
        _checked_host(url)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Tue, 02 Jan 2024 10:01:00 GMT", 60.0),
        ("Tue, 02 Jan 2024 09:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == seconds


def test_validators_become_conditional_headers() -> None:
    assert Validators().request_headers() == {}
    assert Validators('"abc"', "Tue, 02 Jan 2024 10:00:00 GMT").request_headers() == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": "Tue, 02 Jan 2024 10:00:00 GMT",
    }


def _chunks(data: bytes, size: int = 16_384) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, no zlib header
        ("identity", lambda b: b),
        ("", lambda b: b),
    ],
)
def test_decoder_round_trips(encoding: str, compress: object) -> None:
    body = b"<rss>" + b"story " * 50_000 + b"</rss>"
    decoder = _BoundedDecoder(encoding, limit=len(body))
    assert callable(compress)
    assert b"".join(decoder.decode(c) for c in _chunks(compress(body))) == body


def test_decoder_reads_concatenated_gzip_members() -> None:
    decoder = _BoundedDecoder("gzip", limit=100)
    assert decoder.decode(gzip.compress(b"one ") + gzip.compress(b"two")) == b"one two"


def test_a_compression_bomb_is_stopped_without_inflating_it() -> None:
    """50 MB of zeros gzip to ~50 KB; the decoder must give up after the limit, not at 50 MB."""
    bomb = gzip.compress(b"\0" * 50_000_000)
    decoder = _BoundedDecoder("gzip", limit=1_000_000)
    produced = 0
    with pytest.raises(ResponseTooLarge):
        for chunk in _chunks(bomb):
            produced += len(decoder.decode(chunk))
    assert produced <= 1_000_000


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
def test_unasked_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(FetchError) as caught:
        _BoundedDecoder(encoding, limit=10)
    assert caught.value.reason == "encoding"


def test_corrupt_gzip_is_a_fetch_error() -> None:
    with pytest.raises(FetchError) as caught:
        _BoundedDecoder("gzip", limit=1000).decode(b"definitely not gzip")
    assert caught.value.reason == "encoding"
