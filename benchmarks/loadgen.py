"""The load generator of the benchmarks: simulated crowd workers in a separate process.

Stdlib asyncio over raw sockets (HTTP/1.1 keep-alive and RFC 6455 websocket frames), so it stays far
cheaper than the router it drives. Each simulated worker loops: GET a unit (JSON) → optionally open the
unit's websocket and send one heartbeat → optionally think (its page open) → POST the answers, until
refused with no work.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# =============================================================================================

REQUEST_TIMEOUT = 30.0
MAX_FAILURES = 5  # consecutive failures after which a simulated worker gives up
STOP_REASONS = frozenset({"no_work", "finished"})
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
HEARTBEAT = b'{"type": "heartbeat"}'
PAGE_HEARTBEAT_S = 5.0  # how often an open page sends one (crowd.js)
# what Chromium and Firefox send on every `new WebSocket(url)`
BROWSER_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


class LoadError(Exception):
    """The router answered something a worker cannot go on with."""


@dataclass(frozen=True)
class LoadConfig:
    """Where the load process sends its workers and how they behave."""

    url: str
    workers: int
    heartbeats: bool
    think_s: float = 0.0  # mean seconds a worker spends on a unit before submitting (exponential); 0: none


@dataclass
class LoadResult:
    """What the load process measured (sent back to the router process as a plain dict)."""

    submitted: int = 0
    errors: list[str] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    heartbeat_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    acked: dict[int, float] = field(default_factory=dict)  # unit's item -> time.time() of its 200
    wall_s: float = 0.0
    cpu_s: float = 0.0


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status code and (lower-cased) headers of an HTTP response."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """An HTTP response body framed by Content-Length, chunked encoding or the end of the connection."""
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return b"".join(parts)
    return await reader.read()


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that reopens itself after the server or an error closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request and return the status and body of its response.

        A kept-alive connection the server closed while it sat idle (its keep-alive timeout) fails before
        any answer: the request is sent again once on a new connection, as browsers do.
        """
        reused = self._streams is not None
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: application/json\r\n"
        if method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        try:
            status, headers = await read_head(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.close()
            if reused and not getattr(exc, "partial", b""):
                return await self.request(method, path, body)
            raise
        except BaseException:
            self.close()
            raise
        try:
            payload = await read_body(reader, headers)
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, payload

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


class WebSocket:
    """A minimal RFC 6455 client: masked frames out, unmasked frames in, pings answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deflate: str | None = None) -> None:
        self._reader, self._writer = reader, writer
        self.deflate = deflate  # the permessage-deflate parameters the server accepted, if any
        self._compress: Any = None
        self._inflate: Any = None
        if deflate is not None:
            self._compress = zlib.compressobj(wbits=-window_bits(deflate, "client_max_window_bits"))
            self._inflate = zlib.decompressobj(-window_bits(deflate, "server_max_window_bits"))

    @classmethod
    async def connect(cls, host: str, port: int, path: str, deflate: bool = False) -> WebSocket:
        """Open a connection and do the upgrade handshake; ``deflate`` offers permessage-deflate as browsers do."""
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".encode()
            + b"Sec-WebSocket-Key: "
            + key
            + b"\r\nSec-WebSocket-Version: 13\r\n"
            + (BROWSER_OFFER if deflate else b"")
            + b"\r\n"
        )
        status, headers = await read_head(reader)
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        if status != 101 or headers.get("sec-websocket-accept") != accept:
            writer.close()
            raise LoadError(f"websocket handshake answered {status}")
        accepted = headers.get("sec-websocket-extensions", "")
        return cls(reader, writer, accepted if accepted.startswith("permessage-deflate") else None)

    def send(self, opcode: int, payload: bytes) -> None:
        """Queue one final, masked frame (payloads under 64 KiB); text is compressed where deflate was agreed."""
        first = 0x80 | opcode
        if self._compress is not None and opcode == OP_TEXT:
            payload = (self._compress.compress(payload) + self._compress.flush(zlib.Z_SYNC_FLUSH))[:-4]
            first |= 0x40  # RSV1: this message is compressed
        size = len(payload)
        length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
        mask = os.urandom(4)
        stream = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
        self._writer.write(bytes([first]) + length + mask + masked)

    async def receive(self) -> bytes | None:
        """The next data message; None once the server sends its close frame."""
        while True:
            first, second = await self._reader.readexactly(2)
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(await self._reader.readexactly(2 if size == 126 else 8), "big")
            payload = await self._reader.readexactly(size)
            if first & 0x40 and self._inflate is not None:  # a compressed message (RFC 7692 §7.2.2)
                payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
            opcode = first & 0x0F
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                return None
            elif opcode != OP_PONG:
                return payload

    def abort(self) -> None:
        """Drop the connection without the closing handshake."""
        self._writer.close()

    async def close(self) -> None:
        """Send a close frame, wait briefly for the server's, then drop the connection."""
        try:
            self.send(OP_CLOSE, (1000).to_bytes(2, "big"))
            async with asyncio.timeout(2):
                while await self.receive() is not None:
                    pass
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self.abort()


def window_bits(accepted: str, name: str) -> int:
    """A ``*_max_window_bits`` value of an accepted permessage-deflate header (15 when absent)."""
    for part in accepted.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return int(value)
    return 15


def answers_for(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid answer for every field the page declares: its first option, else a short text."""
    return {f["name"]: (f["options"][0] if f.get("options") else "looks fine") for f in fields if f["kind"] != "file"}


def elapsed_ms(started: float) -> float:
    """Milliseconds since a ``time.perf_counter()`` reading."""
    return (time.perf_counter() - started) * 1000


class SimulatedWorker:
    """One crowd worker of the load process: takes units until the router says there is no work."""

    def __init__(self, name: str, config: LoadConfig, result: LoadResult, closing: set[asyncio.Task[None]]) -> None:
        url = urlsplit(config.url)
        self.name, self.config, self.result, self.closing = name, config, result, closing
        self.host, self.port, self.base = url.hostname or "127.0.0.1", url.port or 80, url.path or "/"
        self.http = HttpConnection(self.host, self.port)
        self.phase = "GET"  # what the worker is doing, to tell where an error happened

    async def run(self) -> None:
        """Work until refused with no work, or until too many failures in a row."""
        failures = 0
        if self.config.think_s:  # arrive spread over one think time, not all in the first millisecond
            await asyncio.sleep(random.uniform(0, self.config.think_s))
        try:
            while failures < MAX_FAILURES:
                try:
                    if await self.one_unit():
                        return
                    failures = 0
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, KeyError, LoadError) as exc:
                    self.result.errors.append(f"{self.phase}: {type(exc).__name__}: {exc}"[:300])
                    self.http.close()
                    failures += 1
                    await asyncio.sleep(0.05)
            self.result.errors.append(f"{self.name} gave up after {MAX_FAILURES} failures in a row")
        finally:
            self.http.close()

    async def one_unit(self) -> bool:
        """GET a unit, heartbeat, submit; True when there is no work left."""
        self.phase, started = "GET", time.perf_counter()
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, raw = await self.http.request("GET", f"{self.base}?worker_id={self.name}")
        self.result.get_ms.append(elapsed_ms(started))
        unit = json.loads(raw)
        if status != 200:
            if unit.get("reason") in STOP_REASONS:
                return True
            raise LoadError(f"GET answered {status} {unit.get('reason')}")
        socket = await self.heartbeat(unit["token"]) if self.config.heartbeats else None
        try:
            if self.config.think_s:
                await self.think(socket)
            await self.submit(unit)
        finally:
            if socket is not None:
                task = asyncio.create_task(socket.close())
                self.closing.add(task)
                task.add_done_callback(self.closing.discard)
        return False

    async def heartbeat(self, token: str) -> WebSocket:
        """Open the unit's websocket and send one heartbeat; returns the open socket."""
        self.phase, started = "websocket", time.perf_counter()
        async with asyncio.timeout(REQUEST_TIMEOUT):
            socket = await WebSocket.connect(self.host, self.port, f"{self.base}ws?token={quote(token)}")
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                socket.send(OP_TEXT, HEARTBEAT)
                reply = await socket.receive()
            if reply is None or json.loads(reply).get("type") != "status":
                raise LoadError(f"heartbeat answered {reply!r}")
        except BaseException:
            socket.abort()
            raise
        self.result.heartbeat_ms.append(elapsed_ms(started))
        return socket

    async def think(self, socket: WebSocket | None) -> None:
        """Spend a random while on the unit; an open page keeps heartbeating and answering pings as
        crowd.js and the browser do (unanswered pings would get it disconnected and its unit re-offered)."""
        loop = asyncio.get_running_loop()
        mean = self.config.think_s  # exponential, capped at 3× the mean so a run's tail stays short
        deadline = loop.time() + min(random.expovariate(1 / mean), 3 * mean)
        if socket is None:
            await asyncio.sleep(deadline - loop.time())
            return
        while (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(min(left, PAGE_HEARTBEAT_S)):
                    while await socket.receive() is not None:  # status replies; pings are answered inside
                        pass
                    return  # the router closed the page's socket
            except TimeoutError:
                if deadline > loop.time():
                    socket.send(OP_TEXT, HEARTBEAT)

    async def submit(self, unit: dict[str, Any]) -> None:
        """POST the answers; counts the submission when the router says it is saved."""
        body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": answers_for(unit["fields"])}
        self.phase, started = "POST", time.perf_counter()
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, raw = await self.http.request("POST", f"{self.base}submit", json.dumps(body).encode())
        acknowledged = time.time()
        self.result.submit_ms.append(elapsed_ms(started))
        if status != 200 or json.loads(raw).get("status") != "saved":
            raise LoadError(f"submit answered {status}: {raw[:200]!r}")
        self.result.submitted += 1
        self.result.acked[int(unit["input"]["item"])] = acknowledged


async def drive(config: LoadConfig) -> LoadResult:
    """Run every simulated worker to the end; the wall time stops at the last answer."""
    result = LoadResult()
    closing: set[asyncio.Task[None]] = set()
    cpu, started = time.process_time(), time.perf_counter()
    workers = [SimulatedWorker(f"bench-{n + 1}", config, result, closing) for n in range(config.workers)]
    await asyncio.gather(*(worker.run() for worker in workers))
    result.wall_s = time.perf_counter() - started
    await asyncio.gather(*list(closing), return_exceptions=True)
    result.cpu_s = time.process_time() - cpu
    return result


def load_process(config: LoadConfig, conn: Connection) -> None:
    """Entry point of the spawned load process: say ready, wait for go, drive, send the result back."""
    conn.send("ready")
    conn.recv()
    conn.send(asdict(asyncio.run(drive(config))))
    conn.close()


# =============================================================================================
