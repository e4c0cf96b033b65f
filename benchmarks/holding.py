"""The load side of connected_workers.py: N simulated workers that open their task page and keep it open.

A separate, spawned process (stdlib asyncio over raw sockets, reusing loadgen's HTTP and websocket
clients). Each worker GETs a unit as JSON on a connection of its own and closes it, opens the unit's
websocket (offering permessage-deflate as browsers do, unless told not to) and sends a heartbeat, then
keeps the socket open and sends a heartbeat every 5 s, as crowd.js does, timing each status reply (the
first one at a random point of the period: a real crowd's pages open at scattered moments).
The parent says when to start, hears when all are connected, and says when to leave.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from loadgen import HEARTBEAT, OP_TEXT, REQUEST_TIMEOUT, HttpConnection, LoadError, WebSocket, elapsed_ms

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

HEARTBEAT_SECONDS = 5.0  # crowd.js: setInterval(heartbeat, 5000)


@dataclass(frozen=True)
class HoldConfig:
    """Where the workers go and how they arrive."""

    url: str
    workers: int
    arriving: int  # at most this many workers are between their GET and their first status reply at once
    deflate: bool  # offer permessage-deflate on the websocket, as a browser does


@dataclass
class HoldResult:
    """What the load process measured (sent to the parent as plain dicts)."""

    connected: int = 0
    connect_s: float = 0.0  # from the first GET to the last first status reply
    connect_ms: list[float] = field(default_factory=list)  # per worker: GET + handshake + first heartbeat
    heartbeat_ms: list[float] = field(default_factory=list)  # round trips while all were connected
    deflate: int = 0  # sockets on which the server agreed to permessage-deflate
    errors: list[str] = field(default_factory=list)
    dropped: int = 0  # sockets the server closed during the hold
    cpu_s: float = 0.0


class HoldingWorker:
    """One simulated worker with its task page open."""

    def __init__(self, number: int, config: HoldConfig, result: HoldResult) -> None:
        url = urlsplit(config.url)
        self.name, self.config, self.result = f"hold-{number}", config, result
        self.host, self.port, self.base = url.hostname or "127.0.0.1", url.port or 80, url.path or "/"
        self.socket: WebSocket | None = None

    async def arrive(self, gate: asyncio.Semaphore) -> None:
        """GET a unit, open its websocket and get the first status reply; errors are counted, not raised."""
        async with gate:
            phase, started = "GET", time.perf_counter()
            http = HttpConnection(self.host, self.port)
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, raw = await http.request("GET", f"{self.base}?worker_id={self.name}")
                    http.close()  # the page is loaded; only its websocket stays
                    unit = json.loads(raw)
                    if status != 200 or "token" not in unit:
                        raise LoadError(f"GET answered {status} {unit.get('reason')}")
                    phase = "websocket"
                    path = f"{self.base}ws?token={quote(unit['token'])}"
                    self.socket = await WebSocket.connect(self.host, self.port, path, deflate=self.config.deflate)
                    await self.round_trip()
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, LoadError) as exc:
                self.result.errors.append(f"{phase}: {type(exc).__name__}: {exc}"[:300])
                http.close()
                self.leave_now()
                return
        self.result.connect_ms.append(elapsed_ms(started))
        self.result.connected += 1
        self.result.deflate += self.socket.deflate is not None

    async def round_trip(self) -> float:
        """Send a heartbeat and wait for the status reply; returns the milliseconds it took."""
        assert self.socket is not None
        started = time.perf_counter()
        self.socket.send(OP_TEXT, HEARTBEAT)
        reply = await self.socket.receive()
        if reply is None or json.loads(reply).get("type") != "status":
            raise LoadError(f"heartbeat answered {reply!r}")
        return elapsed_ms(started)

    async def keep_open(self, gate: asyncio.Semaphore, arrived: asyncio.Queue[None], measuring: asyncio.Event) -> None:
        """Arrive, then heartbeat every 5 s until cancelled, as an open page does."""
        try:
            await self.arrive(gate)
        finally:
            arrived.put_nowait(None)
        # pages of a real crowd open at scattered moments, so their beats are spread over the period
        pause = random.uniform(0, HEARTBEAT_SECONDS)
        while self.socket is not None:
            await asyncio.sleep(pause)
            pause = HEARTBEAT_SECONDS
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    took = await self.round_trip()
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, LoadError) as exc:
                self.result.errors.append(f"hold: {type(exc).__name__}: {exc}"[:300])
                self.result.dropped += 1
                self.leave_now()
                return
            if measuring.is_set():
                self.result.heartbeat_ms.append(took)

    def leave_now(self) -> None:
        """Drop the socket without the closing handshake."""
        if self.socket is not None:
            self.socket.abort()
            self.socket = None

    async def leave(self) -> None:
        """Close the page: the websocket's closing handshake."""
        if self.socket is not None:
            await self.socket.close()
            self.socket = None


async def drive(config: HoldConfig, conn: Connection) -> HoldResult:
    """Connect every worker, tell the parent, heartbeat until the parent says leave, then close all."""
    result = HoldResult()
    cpu = time.process_time()
    workers = [HoldingWorker(n + 1, config, result) for n in range(config.workers)]
    gate = asyncio.Semaphore(config.arriving)
    measuring = asyncio.Event()
    arrived: asyncio.Queue[None] = asyncio.Queue()
    started = time.perf_counter()
    pages = [asyncio.create_task(worker.keep_open(gate, arrived, measuring)) for worker in workers]
    for _ in workers:
        await arrived.get()
    result.connect_s = time.perf_counter() - started
    measuring.set()  # from now on every heartbeat is one taken with all N connected
    conn.send({"connected": result.connected, "connect_s": result.connect_s, "errors": len(result.errors)})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "leave"
    measuring.clear()
    for page in pages:
        page.cancel()
    await asyncio.gather(*pages, return_exceptions=True)
    await asyncio.gather(*(worker.leave() for worker in workers), return_exceptions=True)
    result.cpu_s = time.process_time() - cpu
    return result


def hold_process(config: HoldConfig, conn: Connection) -> None:
    """Entry point of the spawned load process: ready → go → connected → leave → result."""
    conn.send("ready")
    conn.recv()
    conn.send(asdict(asyncio.run(drive(config, conn))))
    conn.close()
