"""Delivering the queued documents (host_tools.dcc.queue) to each User's receive URL: POST as
application/xml, over TLS with the front's infrastructure certificate (the DCC User Interface's
parameters: host_tools.dcc.tls), or plain HTTP to a loopback address when the front was told it
may; a 2xx removes the delivery, anything else (or no answer) tries again after the backoff."""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from host_tools.dcc.queue import Delivery, DeliveryQueue
from host_tools.dcc.tls import DccTlsError, is_loopback

Post = Callable[[str, bytes], int]
Note = Callable[[str], None]


def http_poster(context: ssl.SSLContext | None, *, allow_http: bool = False, timeout: float = 10.0) -> Post:
    """post(url, body) -> HTTP status, with `context` for https:// URLs; an http:// URL only to a
    loopback host and only if allow_http. OSError (or ssl.SSLError) when it cannot be sent."""

    def post(url: str, body: bytes) -> int:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        if parts.scheme == "https":
            if context is None:
                raise DccTlsError("no client certificate to dial {} with (--cert)".format(url))
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        elif parts.scheme == "http" and allow_http and is_loopback(host):
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        else:
            raise DccTlsError("{}: only https://, or http:// to loopback with --insecure-http".format(url))
        try:
            path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            conn.request("POST", path, body=body, headers={"Content-Type": "application/xml"})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    return post


class Deliverer:
    """Sends what is due, one delivery at a time, oldest first; `run` until `stop` is set."""

    def __init__(self, queue: DeliveryQueue, post: Post, note: Note | None = None):
        self.queue = queue
        self.post = post
        self.note = note or (lambda _m: None)
        self.delivered = 0
        self.failures = 0

    def attempt(self, d: Delivery) -> bool:
        try:
            status = self.post(d.url, d.xml.encode("utf-8"))
        except (OSError, ssl.SSLError, DccTlsError, http.client.HTTPException) as e:
            status, why = None, "{}: {}".format(type(e).__name__, e)
        else:
            why = "HTTP {}".format(status)
        if status is not None and 200 <= status < 300:
            self.queue.done(d)
            self.delivered += 1
            self.note("delivered {} to {} ({})".format(d.response_id, d.url, why))
            return True
        d = self.queue.failed(d, why)
        self.failures += 1
        self.note(
            "not delivered {} to {}: {} (try {}, next in {:g} s)".format(
                d.response_id, d.url, why, d.attempts + 1, self.queue.backoff(d.attempts)
            )
        )
        return False

    def run_once(self, now: float | None = None) -> int:
        """Try every delivery due at `now`; how many were delivered. A URL that failed is not
        tried again in this round (its later deliveries wait for the next)."""
        failed_urls: set[str] = set()
        sent = 0
        for d in self.queue.due(now):
            if d.url in failed_urls:
                continue
            if self.attempt(d):
                sent += 1
            else:
                failed_urls.add(d.url)
        return sent

    def run(self, stop: threading.Event, idle: float = 1.0) -> None:
        while not stop.is_set():
            self.queue.added.clear()
            try:
                self.run_once()
                nxt = self.queue.next_due()
            except OSError as e:  # the queue's folder: said, and tried again (nothing is removed)
                self.note("delivery queue {}: {}".format(self.queue.dir, e))
                nxt = None
            wait = idle if nxt is None else max(0.0, min(idle, nxt - self.queue.clock()))
            if wait > 0:
                self.queue.added.wait(wait)
