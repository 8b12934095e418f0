"""An S3 endpoint without create-exclusive: a proxy in front of moto that drops
`If-None-Match` (a conditional PUT overwrites) and answers 404 to HEAD of `cluster/probe/`
objects (a listing/HEAD that lags behind writes), as some S3-compatible stores do."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DROPPED = {"if-none-match", "host", "connection", "expect", "content-length"}
HOP = {"transfer-encoding", "connection", "content-length"}


def _handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    class Lying(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.command == "HEAD" and "/cluster/probe/" in self.path:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in DROPPED}
            conn = http.client.HTTPConnection(upstream, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    return Lying


@contextmanager
def lying_s3(endpoint: str) -> Iterator[str]:
    """Serve the lying proxy in front of `endpoint` (http://host:port); yield its URL."""
    upstream = endpoint.split("://", 1)[1].rstrip("/")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
