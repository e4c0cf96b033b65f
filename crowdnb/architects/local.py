"""The local architect: the router runs in a daemon thread of this process (werkzeug, threaded)."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from ..errors import ArchitectError, ConfigError
from .guard import HEADER_SECONDS, PER_ADDRESS, PROXIES, READ_SECONDS, AddressCap, ClientLimits, Deadlines, refuse

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


BACKLOG = 4096  # pending connections (the kernel caps it at net.core.somaxconn)


def listen(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A TCP socket listening on ``host:port`` (0: a free port); ``OSError`` when it cannot.

    Bound here rather than by werkzeug, which prints to stderr and exits when the port is taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a stopped run left in TIME_WAIT
        sock.bind((host, port))
        # a crowd arriving at once (a study going live) overflows werkzeug's backlog of 128: dropped
        # SYNs are retried by the client after 1, 3, 7 … s, which a worker sees as a page that hangs
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def unavailable(host: str, port: int, exc: OSError, hint: str) -> str:
    """One line on why ``host:port`` cannot be listened on, ending with ``hint`` (how to pick a free port)."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; {hint}"
    return f"cannot listen on {host}:{port} ({exc.strerror or exc}); check the address, or {hint}"


class LocalArchitect:
    """Serve the router from a background thread of this process (``architect_options={...}``).

    Args:
        host: the address to listen on; 0.0.0.0 lets other machines reach it
        port: the port to listen on; 0 picks a free one
        public_url: what workers open when the router sits behind a proxy or tunnel (https://…)
        resume: set by run.resume(): serve on a free port when the stored one is taken
        header_seconds: how long a client has to send its request line and headers (idle keep-alive included)
        read_seconds: how long each read of a request body may wait
        per_address: connections one client address may hold (0: no cap); behind a proxy every worker shares one
        proxies: networks not capped, where a tunnel, proxy or load balancer connects from (crowdnb.architects.guard)
    """

    name = "local"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        resume: bool = False,
        header_seconds: float = HEADER_SECONDS,
        read_seconds: float = READ_SECONDS,
        per_address: int = PER_ADDRESS,
        proxies: Sequence[str] = PROXIES,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port {port!r} is not a port number (0–65535; 0 picks a free one)")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise ConfigError(f"public_url {public_url!r} must start with http:// or https://")
        self.host, self.port, self.public_url, self.resume = host, port, public_url, resume
        if isinstance(proxies, str):
            raise ConfigError(f"proxies={proxies!r} must be a list of networks, e.g. ['10.0.0.0/8']")
        self.limits = ClientLimits(header_seconds, read_seconds, per_address, tuple(proxies))
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._deadlines: Deadlines | None = None

    def deploy(self, app: Flask) -> str:
        """Start serving; the URL ends with "/"."""
        self._deadlines = self._deadlines or Deadlines()
        try:
            sock = listen(self.host, self.port)
        except OSError as exc:
            if self.resume and self.port:
                log.warning("port %d is taken; serving the resumed run on a free port", self.port)
                self.port = 0
                return self.deploy(app)
            hint = "launch with port=0 to take a free one: task.launch(port=0), %crowd launch --port 0"
            raise ArchitectError(unavailable(self.host, self.port, exc, hint)) from None
        with sock:  # werkzeug serves a duplicate of it
            self._server = _server(self.host, self.port, app, self.limits, self._deadlines, sock.fileno())
        self.port = self._server.port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"crowdnb-router-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("router listening on http://%s:%d/", self.host, self.port)
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/") + "/"

    def shutdown(self) -> None:
        """Stop accepting connections and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._deadlines is not None:
            self._deadlines.stop()
            self._deadlines = None

    def options(self) -> dict[str, object]:
        """Host, the port actually used (a resume tries it again), the public URL and the client bounds."""
        return {
            "host": self.host,
            "port": self.port,
            "public_url": self.public_url,
            "header_seconds": self.limits.header_seconds,
            "read_seconds": self.limits.read_seconds,
            "per_address": self.limits.per_address,
            "proxies": list(self.limits.proxies),
        }


def _server(host: str, port: int, app: Flask, limits: ClientLimits, deadlines: Deadlines, fd: int) -> BaseWSGIServer:
    """werkzeug's threaded server, bounding each client: a thread per connection is what a slow client holds."""
    cap = AddressCap(limits)
    counted: dict[Any, str] = {}  # the connections counted against their address, until closed

    class Handler(WSGIRequestHandler):
        timeout = limits.read_seconds  # socket.settimeout: each read waits this long for data

        def handle_one_request(self) -> None:
            deadlines.arm(self.connection, limits.header_seconds)  # the request line and headers, in total
            try:
                super().handle_one_request()
            finally:
                deadlines.disarm(self.connection)

        def log_error(self, format: str, *args: Any) -> None:
            # a client timed out or sent a bad request line: theirs to fix, not an error of the router
            log.debug("router: " + format, *args)

        def parse_request(self) -> bool:
            parsed = super().parse_request()
            if not deadlines.disarm(self.connection):  # cut off mid-headers: what was read is not a request
                self.close_connection = True
                return False
            return parsed

    class Server(ThreadedWSGIServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            address = str(client_address[0]) if isinstance(client_address, tuple) else str(client_address)
            if not cap.enter(address):
                refuse(request, address)
                return False
            counted[request] = address
            return True

        def shutdown_request(self, request: Any) -> None:
            address = counted.pop(request, None)
            if address is not None:
                cap.leave(address)
            super().shutdown_request(request)

    return Server(host, port, app, Handler, fd=fd)
