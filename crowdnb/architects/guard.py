"""Slow and greedy clients: what both routers (werkzeug in the kernel, gunicorn + gevent for ``crowdnb
serve``) do about a client that holds connections without finishing its requests.

- A request's line and headers must arrive within ``header_seconds`` of the server starting to wait for
  them (a keep-alive connection idle that long is closed; browsers open a new one).
- Once the headers are in, each read of the body may wait ``read_seconds`` for data.
- One client address holds at most ``per_address`` connections; beyond it a connection is answered 503
  at once and closed. Addresses in ``proxies`` are not capped: a tunnel, jupyter-server-proxy, a reverse
  proxy or a load balancer stands for many workers, and reaches the router from a loopback or private
  address (the default networks); ``proxies=()`` caps every address, ``per_address=0`` none.

A websocket (the page's heartbeat) is idle between beats by design: flask-sock reads it only when the
selector says data is there (its server pings every 25 s find a page that went away), so the read timeout
never cuts it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError

log = logging.getLogger(__name__)

HEADER_SECONDS = 20.0
READ_SECONDS = 20.0
PER_ADDRESS = 500
# loopback and private networks: where a proxy in front of many workers connects from
PROXIES = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: 51\r\n\r\nToo many connections from your address; try again.\n"
)


@dataclass(frozen=True)
class ClientLimits:
    """The bounds a server puts on each client (see the module's docstring)."""

    header_seconds: float = HEADER_SECONDS
    read_seconds: float = READ_SECONDS
    per_address: int = PER_ADDRESS
    proxies: tuple[str, ...] = PROXIES

    def __post_init__(self) -> None:
        for name in ("header_seconds", "read_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name}={value!r} must be a number of seconds above 0")
        if isinstance(self.per_address, bool) or not isinstance(self.per_address, int) or self.per_address < 0:
            raise ConfigError(f"per_address={self.per_address!r} must be a whole number of connections (0: no cap)")
        networks(self.proxies)  # each one a network, or a ConfigError naming it


def networks(given: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks ``given`` as CIDR text ("10.0.0.0/8", or one address)."""
    if isinstance(given, str):
        raise ConfigError(f"proxies={given!r} must be a list of networks, e.g. ['10.0.0.0/8']")
    found = []
    for text in given:
        try:
            found.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError as exc:
            raise ConfigError(f"proxies: {text!r} is not a network (e.g. '10.0.0.0/8' or '203.0.113.7')") from exc
    return found


class AddressCap:
    """Open connections per client address, at most ``limits.per_address`` each (0: no cap) but for the
    addresses of ``limits.proxies``."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limit = limits.per_address
        self._proxies = networks(limits.proxies)
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._capped: dict[str, bool] = {}  # by address: not a proxy's

    def enter(self, address: str) -> bool:
        """Count a new connection from ``address``; False (and not counted) when it already holds ``limit``."""
        with self._lock:
            held = self._open.get(address, 0)
            if self.limit and held >= self.limit and self._is_capped(address):
                return False
            self._open[address] = held + 1
            return True

    def _is_capped(self, address: str) -> bool:
        capped = self._capped.get(address)
        if capped is None:
            try:
                parsed = ipaddress.ip_address(address.removeprefix("::ffff:"))
            except ValueError:  # not an IP address (a Unix socket): nothing to count by
                parsed = None
            capped = parsed is not None and not any(parsed in network for network in self._proxies)
            if len(self._capped) > 100_000:  # addresses seen: bounded
                self._capped.clear()
            self._capped[address] = capped
        return capped

    def leave(self, address: str) -> None:
        """A counted connection from ``address`` closed."""
        with self._lock:
            held = self._open.get(address, 0) - 1
            if held > 0:
                self._open[address] = held
            else:
                self._open.pop(address, None)

    def held(self, address: str) -> int:
        """How many connections ``address`` holds now."""
        with self._lock:
            return self._open.get(address, 0)


def refuse(client: socket.socket, address: str) -> None:
    """Answer a connection over its address's cap with a 503 and close it (it sent nothing we read)."""
    log.debug("refused a connection from %s: too many at once", address)
    try:
        client.settimeout(1.0)
        client.sendall(BUSY)
    except OSError:
        pass
    finally:
        client.close()


class Deadlines:
    """Sockets that must have sent their headers by a time: one thread shuts down those that have not
    (a blocked read then returns, and the server's thread is free again)."""

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick
        self._lock = threading.Lock()
        self._due: dict[socket.socket, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, seconds: float) -> None:
        """``sock`` must be disarmed within ``seconds``."""
        with self._lock:
            self._due[sock] = time.monotonic() + seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="crowdnb-header-deadlines", daemon=True)
                self._thread.start()

    def disarm(self, sock: socket.socket) -> bool:
        """``sock`` sent its headers; False when it was too late (its deadline had already closed it)."""
        with self._lock:
            return self._due.pop(sock, None) is not None

    def stop(self) -> None:
        """End the watching thread (the server is shutting down)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            with self._lock:
                late = [sock for sock, due in self._due.items() if due <= now]
                for sock in late:
                    del self._due[sock]
            for sock in late:
                with contextlib.suppress(OSError):  # closed meanwhile
                    sock.shutdown(socket.SHUT_RDWR)
            if late:
                log.debug("closed %d connections that did not send their headers in time", len(late))
