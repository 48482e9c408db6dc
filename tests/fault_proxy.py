"""An HTTP proxy on localhost that makes a store misbehave: transient faults, or a 403.

Put in front of the GCS emulator (STORAGE_EMULATOR_HOST points at the proxy), it forwards
every request and answers some of the object reads itself, the way a throttled or
misconfigured bucket does, so the real client stack (google-cloud-storage, Beam's GcsIO)
sees real HTTP errors and dropped connections.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import struct
import threading
from urllib.parse import unquote, urlsplit

# The faults a busy bucket gives, in turn: throttling, server errors, a reset connection.
TRANSIENT_FAULTS = (503, 429, 500, "reset", 502, 504)


class FaultProxy:
    """Forwards to `upstream` ("127.0.0.1:port").

    Attributes:
      fail_every: every n-th read of an object under `prefix` gets a transient fault (0: none).
      deny_prefix: reads of objects under this prefix are answered 403 Forbidden.
      reads, faults, denied: counts of object reads under `prefix`, of faults injected, of 403s.
    """

    def __init__(self, upstream: str, prefix: str):
        self.upstream = upstream
        self.prefix = prefix
        self.fail_every = 0
        self.deny_prefix: str | None = None
        self.reads = self.faults = self.denied = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _object_read(self, handler) -> str | None:
        """The object name of a metadata or media GET, None for anything else."""
        if handler.command != "GET":
            return None
        path = unquote(urlsplit(handler.path).path)
        for marker in ("/o/",):
            if marker in path and "/b/" in path:
                return path.split(marker, 1)[1]
        return None

    def _fault(self, handler) -> object:
        name = self._object_read(handler)
        if name is None or not name.startswith(self.prefix):
            return None
        with self._lock:
            self.reads += 1
            if self.deny_prefix is not None and name.startswith(self.deny_prefix):
                self.denied += 1
                return 403
            if self.fail_every and self.reads % self.fail_every == 0:
                fault = TRANSIENT_FAULTS[self.faults % len(TRANSIENT_FAULTS)]
                self.faults += 1
                return fault
        return None

    def _handle(self, handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        fault = self._fault(handler)
        if fault == "reset":  # RST instead of an answer, as a dropped connection gives
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.close_connection = True
            return
        if fault is not None:
            reason = {403: "Forbidden", 429: "Too Many Requests"}.get(fault, "Server Error")
            payload = b'{"error": {"code": %d, "message": "%s (injected)"}}' % (
                fault,
                reason.encode(),
            )
            handler.send_response(fault)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        for attempt in range(3):  # the emulator's small listen backlog drops some connections
            upstream = http.client.HTTPConnection(self.upstream, timeout=60)
            try:
                upstream.request(handler.command, handler.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                break
            except ConnectionError:
                if attempt == 2:
                    raise
            finally:
                upstream.close()
        handler.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
