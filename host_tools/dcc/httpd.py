"""A small HTTPS (or loopback HTTP) server for DUIS documents, as the DCC front and a User's
receiving endpoint both need: each connection gets its own thread, in which the TLS handshake is
made (a client that stalls or fails it holds up no other), and each POST is handed whole to a
function that returns the answer."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from host_tools.dcc.tls import loopback_only

MAX_BODY = 4 * 1024 * 1024  # a DUIS document is far smaller


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/xml"


@dataclass
class Posted:
    path: str
    content_type: str
    body: bytes
    peer: str  # the client certificate's CN, or the address on plain HTTP


Handle = Callable[[Posted], Answer]


class _Handler(BaseHTTPRequestHandler):
    server: DuisHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the name BaseHTTPRequestHandler gives it
        pass

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        if answer.body:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def do_POST(self):  # noqa: N802 - the name http.server looks for
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            return self._send(Answer(411 if length < 0 else 413, b"a Content-Length up to 4 MiB\n", "text/plain"))
        body = self.rfile.read(length)
        peer = self.client_address[0]
        if isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert() or {}
            peer = next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), peer)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            answer = self.server.handle(Posted(self.path, ctype, body, peer))
        except Exception as e:  # the server goes on; the client hears why
            self.server.errors.append(e)
            answer = Answer(500, "{}: {}\n".format(type(e).__name__, e).encode(), "text/plain")
        self._send(answer)

    def do_GET(self):  # noqa: N802
        self._send(Answer(405, b"POST DUIS XML (application/xml)\n", "text/plain"))


class DuisHttpServer(ThreadingHTTPServer):
    """Serves `handle` on (host, port), over TLS with `context`, or plain HTTP (context None: on a
    loopback address only)."""

    daemon_threads = True
    handshake_timeout = 10.0

    def __init__(self, host: str, port: int, handle: Handle, context: ssl.SSLContext | None):
        if context is None:
            loopback_only(host, "--insecure-http")
        self.handle = handle
        self.context = context
        self.errors: list[Exception] = []
        self.refused: list[str] = []  # why handshakes failed, newest last (a few kept)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.address_family = family
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def finish_request(self, request, client_address):
        # runs in the connection's own thread: the handshake happens here
        if self.context is not None:
            request.settimeout(self.handshake_timeout)
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.refused = (self.refused + ["{}: {}".format(client_address[0], e)])[-20:]
                return
            request.settimeout(None)
        try:
            super().finish_request(request, client_address)
        finally:
            if self.context is not None:
                request.close()

    def start(self) -> threading.Thread:
        """Serve in a background thread (stop with shutdown() and server_close())."""
        t = threading.Thread(target=self.serve_forever, name="duis-http", daemon=True)
        t.start()
        return t
