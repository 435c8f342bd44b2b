"""The one safe HTTP fetcher, for feeds (the poller) and article pages (the extractor).

Every response is bounded in size (counted after decompression, while
streaming) and in time; only http/https is fetched; redirects are followed by
hand so each hop is checked again; and the SSRF guard runs on the address that
is actually connected to: aiohttp's connector resolves through
`_GuardedResolver`, which refuses the lot if any resolved address is private,
loopback, link-local, multicast, reserved or unspecified, and connects only to
the checked addresses while TLS still verifies (and SNI still names) the
original host. An address written in the URL is checked before connecting.

aiohttp rather than httpx here: a fetch costs about a quarter of the CPU
(bench/poller_cycle.py), and the poller is CPU-bound.

Errors raised, with their fixed `reason` (safe as metric labels):
`FetchRefused` (refused), `ResponseTooLarge` (too_large), `FetchTimeout`
(timeout), `Retryable` (throttled: 429/503 with `retry_after`; network),
`FetchError` (http_4xx, http_5xx, redirects, encoding, protocol, dns).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult

from pipeline.config import HttpSettings
from pipeline.errors import FetchError, FetchRefused, FetchTimeout, ResponseTooLarge, Retryable
from pipeline.metrics import Metrics

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
THROTTLED = frozenset({429, 503})
KEEPALIVE_SECONDS = 30.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]


@dataclass(frozen=True)
class Validators:
    """What a server gave us to ask 'has it changed?' next time."""

    etag: str | None = None
    last_modified: str | None = None

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    validators: Validators
    elapsed: float

    @property
    def not_modified(self) -> bool:
        return self.status == 304


# --- the SSRF guard ---------------------------------------------------------------


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast; IPv4 embedded in IPv6 is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)  # the connection goes over IPv4
        embedded = address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None and not is_public_address(embedded):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_addresses(
    host: str, addresses: Iterable[str], allowed: AddressPolicy = is_public_address
) -> list[str]:
    """Every address must be allowed, or the host is refused (one bad record spoils the lot)."""
    checked = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not allowed(address):
            raise FetchRefused(f"{host} resolves to non-public address {address}")
        checked.append(str(address))
    return checked


async def resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {host}: {exc}", reason="dns") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _GuardedResolver(AbstractResolver):
    """Resolve, and refuse the host if any address is not allowed. aiohttp connects only to
    the addresses this returns (and, for TLS, still verifies and names the original host)."""

    def __init__(self, allowed: AddressPolicy | None) -> None:
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve(host, port)
        if self._allowed is not None:
            addresses = check_addresses(host, addresses, self._allowed)
        return [_resolved(host, address, port) for address in addresses]

    async def close(self) -> None:
        """Nothing is held."""


def _resolved(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=host, host=address, port=port, family=family, proto=0,
        flags=socket.AI_NUMERICHOST,
    )  # fmt: skip


def _check_literal(host: str, allowed: AddressPolicy | None) -> None:
    """An IP address in the URL is never resolved, so it is checked here."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return
    if allowed is not None and not allowed(address):
        raise FetchRefused(f"{host} is a non-public address")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle takes ~0.1 s: once per process, not once per fetcher."""
    return ssl.create_default_context(cafile=certifi.where())


# --- bounded decompression ----------------------------------------------------------


class _BoundedDecoder:
    """Decompress chunk by chunk, never holding more than `limit` + 1 bytes of output."""

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise FetchError(f"unsupported content-encoding {encoding!r}", reason="encoding")
        self._encoding = encoding
        self._limit = limit
        self._size = 0
        self._inflater = self._new_inflater()

    def _new_inflater(self) -> zlib._Decompress | None:
        if self._encoding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._encoding == "deflate":
            return zlib.decompressobj(zlib.MAX_WBITS)
        return None

    def decode(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            inflater = self._inflater
            if inflater is None:
                return self._count(chunk)
            try:
                piece = inflater.decompress(chunk, self._limit - self._size + 1)
            except zlib.error as exc:
                chunk = self._retry_raw_deflate(chunk, exc)
                continue
            out.append(self._count(piece))
            chunk = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data:
                chunk = inflater.unused_data  # another gzip member follows
                self._inflater = self._new_inflater()
        return b"".join(out)

    def _retry_raw_deflate(self, chunk: bytes, exc: zlib.error) -> bytes:
        """Some servers send raw deflate without the zlib header."""
        if self._encoding != "deflate" or self._size:
            raise FetchError(f"corrupt {self._encoding} body: {exc}", reason="encoding") from exc
        self._encoding = "raw-deflate"
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        return chunk

    def _count(self, piece: bytes) -> bytes:
        self._size += len(piece)
        if self._size > self._limit:
            raise ResponseTooLarge(f"body exceeds {self._limit} bytes")
        return piece


# --- limits ----------------------------------------------------------------------------


class _HostLimiter:
    """One semaphore per host, dropped when nobody holds or waits for it."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}

    def hold(self, host: str) -> _HostSlot:
        return _HostSlot(self, host)

    async def acquire(self, host: str) -> None:
        semaphore, users = self._hosts.get(host, (asyncio.Semaphore(self._per_host), 0))
        self._hosts[host] = (semaphore, users + 1)
        try:
            await semaphore.acquire()
        except BaseException:
            self._forget(host)
            raise

    def release(self, host: str) -> None:
        self._hosts[host][0].release()
        self._forget(host)

    def _forget(self, host: str) -> None:
        semaphore, users = self._hosts[host]
        if users <= 1:
            del self._hosts[host]
        else:
            self._hosts[host] = (semaphore, users - 1)


class _HostSlot:
    def __init__(self, limiter: _HostLimiter, host: str) -> None:
        self._limiter = limiter
        self._host = host

    async def __aenter__(self) -> None:
        await self._limiter.acquire(self._host)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._limiter.release(self._host)


# --- Retry-After -------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After: 120` or `Retry-After: <HTTP-date>`; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- the fetcher ---------------------------------------------------------------------------


class SafeFetcher:
    """Fetch URLs under the limits of `HttpSettings`; one instance per event loop."""

    def __init__(
        self,
        settings: HttpSettings,
        *,
        max_bytes: int | None = None,
        metrics: Metrics | None = None,
        kind: str = "feed",
        address_allowed: AddressPolicy | None = None,
    ) -> None:
        """`address_allowed` replaces the public-address rule (tests, special deployments)."""
        if settings.allow_private_networks:
            address_allowed = None
        elif address_allowed is None:
            address_allowed = is_public_address
        self._settings = settings
        self._max_bytes = max_bytes or settings.max_bytes
        self._metrics = metrics
        self._kind = kind
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._hosts = _HostLimiter(settings.max_per_host)
        self._allowed = address_allowed
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        """Opened on first use, inside the event loop that will run it."""
        if self._session is None:
            settings = self._settings
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(self._allowed),
                ssl=_ssl_context(),
                limit=settings.max_connections,
                limit_per_host=settings.max_per_host,
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=settings.connect_timeout_seconds,
                    sock_read=settings.timeout_seconds,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # _BoundedDecoder counts what it inflates
                trust_env=False,
            )
        return self._session

    async def __aenter__(self) -> SafeFetcher:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self,
        url: str,
        *,
        validators: Validators | None = None,
        accept: str = FEED_ACCEPT,
        max_bytes: int | None = None,
        timeout: float | None = None,
        wanted: Callable[[str], bool] | None = None,
    ) -> Fetched:
        """GET `url` (conditionally when `validators` are given); the time limit covers all hops.

        Waiting for a free connection slot does not count against the time limit. A body
        whose Content-Type `wanted` refuses is not downloaded (FetchError "unwanted_type").
        """
        host = _checked_host(url)
        async with self._slots, self._hosts.hold(host):
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout or self._settings.timeout_seconds):
                    return await self._follow(
                        url,
                        validators or Validators(),
                        accept,
                        max_bytes or self._max_bytes,
                        wanted,
                    )
            except TimeoutError as exc:
                raise FetchTimeout(f"no complete answer from {host} in time") from exc
            finally:
                if self._metrics is not None:
                    self._metrics.fetch_seconds.labels(self._kind).observe(
                        time.monotonic() - started
                    )

    async def _follow(
        self,
        url: str,
        validators: Validators,
        accept: str,
        limit: int,
        wanted: Callable[[str], bool] | None = None,
    ) -> Fetched:
        started = time.monotonic()
        headers = {"Accept": accept, **validators.request_headers()}
        for _hop in range(self._settings.max_redirects + 1):
            _check_literal(_checked_host(url), self._allowed)
            response = await self._send(url, headers)
            try:
                location = response.headers.get("location")
                if response.status in REDIRECTS and location:
                    url = urljoin(url, location)
                    _checked_host(url)
                    log.debug("redirected to %s", url)
                    continue
                _refuse_unwanted(response, wanted)
                body = await self._read(response, limit)
            finally:
                response.release()
            return _fetched(url, response, body, validators, time.monotonic() - started)
        raise FetchError(f"more than {self._settings.max_redirects} redirects", reason="redirects")

    async def _send(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        try:
            return await self._open_session().get(url, headers=headers, allow_redirects=False)
        except aiohttp.ServerTimeoutError as exc:
            raise FetchTimeout(f"{type(exc).__name__} for {url}") from exc
        except aiohttp.InvalidURL as exc:
            raise FetchRefused(f"invalid URL: {exc}") from exc
        except aiohttp.ClientResponseError as exc:
            raise FetchError(f"protocol error: {exc.message}", reason="protocol") from exc
        except aiohttp.ClientError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}", reason="network") from exc

    async def _read(self, response: aiohttp.ClientResponse, limit: int) -> bytes:
        _raise_for_status(response)
        if response.status == 304:
            return b""
        encoding = response.headers.get("content-encoding", "")
        declared = response.headers.get("content-length", "")
        if encoding in ("", "identity") and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(f"declared length {declared} exceeds {limit} bytes")
        decoder = _BoundedDecoder(encoding, limit)
        chunks = []
        try:
            async for raw in response.content.iter_any():
                chunks.append(decoder.decode(raw))
        except aiohttp.ServerTimeoutError as exc:
            raise FetchTimeout(f"body read timed out: {exc}") from exc
        except aiohttp.ClientPayloadError as exc:
            raise FetchError(f"protocol error: {exc}", reason="protocol") from exc
        except aiohttp.ClientError as exc:
            raise Retryable(f"body read failed: {exc}", reason="network") from exc
        return b"".join(chunks)


def _refuse_unwanted(
    response: aiohttp.ClientResponse, wanted: Callable[[str], bool] | None
) -> None:
    content_type = response.headers.get("content-type", "")
    if wanted is not None and response.status == 200 and not wanted(content_type):
        raise FetchError(f"content type {content_type!r} not wanted", reason="unwanted_type")


def _checked_host(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"scheme {parts.scheme!r} is not fetched (http/https only)")
    if not parts.hostname:
        raise FetchRefused("URL has no host")
    return parts.hostname


def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    status = response.status
    if status in THROTTLED:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise Retryable(f"HTTP {status}", reason="throttled", retry_after=retry_after)
    if 400 <= status < 500:
        raise FetchError(f"HTTP {status}", reason="http_4xx")
    if status >= 500 or (status >= 300 and status != 304):
        raise FetchError(f"HTTP {status}", reason="http_5xx" if status >= 500 else "http_3xx")


def _fetched(
    url: str, response: aiohttp.ClientResponse, body: bytes, sent: Validators, elapsed: float
) -> Fetched:
    etag = response.headers.get("etag")
    last_modified = response.headers.get("last-modified")
    if response.status == 304:
        validators = Validators(etag or sent.etag, last_modified or sent.last_modified)
    else:
        validators = Validators(etag, last_modified)
    headers = {k.lower(): v for k, v in response.headers.items()}
    return Fetched(url, response.status, body, headers, validators, elapsed)
