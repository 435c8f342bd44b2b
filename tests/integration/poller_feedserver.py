"""A feed server on 127.0.0.1 for the poller's tests: real HTTP, scripted answers."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    gzip: bool = False
    delay: float = 0.0
    chunked_size: int | None = None
    """Stream the body in chunks of this size without Content-Length (for huge bodies)."""


@dataclass
class Request:
    path: str
    headers: dict[str, str]


class FeedServer:
    """`server.route("/feed.xml", Route(...))`, then fetch `server.url("/feed.xml")`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.bytes_sent = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self._httpd = ThreadingHTTPServer((host, 0), handler)
        self._httpd.daemon_threads = True
        self.host, self.port = host, self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_ref: FeedServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner = self.server_ref
        with owner.lock:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            self._answer(owner)
        finally:
            with owner.lock:
                owner.in_flight -= 1

    def _answer(self, owner: FeedServer) -> None:
        owner.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = owner.routes.get(self.path, Route(b"not found", status=404))
        if route.delay:
            time.sleep(route.delay)
        if route.etag and self.headers.get("If-None-Match") == route.etag:
            self._send(304, {"ETag": route.etag, **route.headers}, b"")
            return
        headers = dict(route.headers)
        if route.etag:
            headers["ETag"] = route.etag
        body = route.body
        if route.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if route.chunked_size:
            self._stream(route.status, headers, _pieces(body, route.chunked_size))
        else:
            self._send(route.status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server_ref.bytes_sent += len(body)

    def _stream(self, status: int, headers: dict[str, str], pieces: Iterator[bytes]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in pieces:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.server_ref.bytes_sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def rss(items: list[tuple[str, str]], *, title: str = "Test feed", ttl: int | None = None) -> bytes:
    """An RSS document of (title, link) items."""
    entries = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid></item>"
        for t, link in items
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://site.example/</link>{ttl_tag}{entries}</channel></rss>"
    ).encode()
