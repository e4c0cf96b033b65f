"""Two-person chats: the in-kernel router relaying messages between partners, beside a bare flask-sock relay.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/chat.py                          # 100 chats, 10 messages each, one per 0.5 s
    .venv/bin/python benchmarks/chat.py --chats 200 --messages 20 --interval 0.25

Each target runs in a freshly spawned process, as a notebook kernel: ``crowdnb`` launches a two-seat chat
task (``workers_per_assignment=2``, free turns) on the mock crowd and the local architect, with one
assignment per chat; ``floor`` is a bare Flask + flask-sock app on the same threaded werkzeug server that
sends each message to the other socket of its room and back to its sender, and nothing else
(live_load.py). Here, every chat's two pages take their seats (crowdnb: GET a unit as JSON, in pairs, so
partners share an assignment), open their sockets and, on crowdnb, wait until their room has started.
Then the partners take turns: each message is sent ``--interval`` seconds after the one before it in the
same chat, and its latency is from the send to the partner reading it. crowdnb stores every message
durably before relaying it; the floor stores nothing. Figures: messages/s, latency p50/p99/max, errors,
the target's CPU per message. Target: partners see a message within 100 ms on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from typing import TYPE_CHECKING, Any

from live_load import enter, environment, percentiles, serve_floor, socket_url, start, stop, write

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

WAIT = 60.0  # seconds a page waits for its room or a message before the chat counts as failed


def serve_crowdnb(conn: Connection, chats: int, home: str) -> None:
    """Child process: a two-seat chat task with one assignment per chat, served in-kernel."""
    import crowdnb as cn

    task = cn.Task(
        "chat-bench",
        title="Chat",
        reward=0.01,
        html='<input name="x">',
        data=[{}] * chats,
        project=home,
        workers_per_assignment=2,
        chat=cn.Chat(lobby_timeout=600),
        assignment_duration=3600,
    )
    run = task.launch()
    conn.send(run.url)
    conn.recv()
    said = int((run.messages_df["kind"] == "message").sum())
    run.stop()
    conn.send({"messages": said})


async def chat(url: str, tokens: tuple[str, str], settings: dict[str, Any], out: dict[str, Any]) -> None:
    import websockets

    sockets = [await websockets.connect(socket_url(url, t), compression=None, max_queue=None) for t in tokens]
    try:
        if settings["wait_start"]:
            for ws in sockets:
                while json.loads(await asyncio.wait_for(ws.recv(), WAIT)).get("type") != "room":
                    pass
        await asyncio.sleep(settings["interval"] * (hash(tokens[0]) % 1000) / 1000)  # spread the chats' phases
        for number in range(settings["messages"]):
            speaker, partner = sockets[number % 2], sockets[(number + 1) % 2]
            message_id = uuid.uuid4().hex
            sent = time.perf_counter()
            await speaker.send(json.dumps({"type": "say", "id": message_id, "text": f"message {number}"}))
            while True:
                got = json.loads(await asyncio.wait_for(partner.recv(), WAIT))
                if got.get("type") == "message" and got.get("id") == message_id:
                    break
                if got.get("type") == "refused":
                    out["errors"] += 1
                    break
            out["latency"].append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(max(0.0, settings["interval"] - (time.perf_counter() - sent)))
    finally:
        for ws in sockets:
            await ws.close()


async def load(url: str, pairs: list[tuple[str, str]], settings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": [], "errors": 0}
    began = time.perf_counter()
    results = await asyncio.gather(*(chat(url, pair, settings, out) for pair in pairs), return_exceptions=True)
    elapsed = time.perf_counter() - began
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    return {
        "messages": len(out["latency"]),
        "messages_per_s": round(len(out["latency"]) / elapsed, 1),
        "latency_ms": percentiles(out["latency"]),
        "errors": out["errors"] + len(failures),
        "failures": failures[:5],
    }


def measure(name: str, chats: int, settings: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        if name == "crowdnb":
            process, conn, url = start(serve_crowdnb, chats, home)
            # in pairs: the second worker takes the other seat of the first one's assignment
            pairs = [(enter(url, f"chat{i}-a")["token"], enter(url, f"chat{i}-b")["token"]) for i in range(chats)]
        else:
            process, conn, url = start(serve_floor)
            pairs = [(f"chat{i}-a", f"chat{i}-b") for i in range(chats)]
        figures = asyncio.run(load(url, pairs, {**settings, "wait_start": name == "crowdnb"}))
        if name == "crowdnb":
            conn.send("stop")
            figures["stored"] = conn.recv()
        cpu = stop(process, conn)
    figures["target"] = name
    figures["cpu_ms_per_message"] = round(cpu * 1000 / max(figures["messages"], 1), 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=100, help="two-person chats at once (default 100)")
    parser.add_argument("--messages", type=int, default=10, help="messages per chat, the partners in turn")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between a chat's messages")
    parser.add_argument("--targets", default="crowdnb,floor", help="crowdnb, floor or both (comma-separated)")
    parser.add_argument("--output", help="JSON file for the figures (default benchmarks/results/chat.json)")
    options = parser.parse_args()
    settings = {"messages": options.messages, "interval": options.interval}
    scenarios = [measure(t, options.chats, settings) for t in options.targets.split(",")]
    figures = {"settings": {"chats": options.chats, **settings}, "environment": environment(), "scenarios": scenarios}
    path = write(figures, options.output, "chat.json")
    offered = options.chats / options.interval
    print(f"{options.chats} two-person chats, {options.messages} messages each, ≈{offered:g} messages/s offered")
    print("(target: a partner sees a message within 100 ms on loopback)")
    print(f"{'target':<10}{'msgs/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}{'CPU ms/msg':>12}")
    for s in scenarios:
        lat = s["latency_ms"]
        cells = [s["messages_per_s"], lat["p50"], lat["p99"], lat["max"]]
        row = "".join(f"{c if c is not None else '-':>10}" for c in cells)
        print(f"{s['target']:<10}{row}{s['errors']:>8}{s['cpu_ms_per_message']:>12}")
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
