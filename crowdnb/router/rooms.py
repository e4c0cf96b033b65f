"""Workers who share an assignment: the lobby, the conversation, partners who drop out, the notebook bot.

An assignment of a shared task has one unit (a *seat*) per worker, each with a role (``roles[unit_index]``).
Its *room* lives here, over the pages' sockets:

* the lobby: a worker who takes a seat waits until every seat is taken and every page is connected;
  the room then starts (everyone is told their role and whose turn it is). A worker who waits longer than
  ``Chat.lobby_timeout`` is released (the seat goes back on offer), told so, and paid
  ``Chat.waiting_bonus`` if there is one (once: a bonus key per agent);
* the conversation: a page sends ``{"type": "say", "id", "text"}``; the message is stored (once per id),
  then sent to every page of the room, the sender's included, as ``{"type": "message", …}``. With
  ``turns="alternate"`` the roles speak in the order of ``roles``; a message out of turn is refused;
* a partner whose last socket closes is *away*: the others are told, and a page that comes back within
  ``Chat.partner_grace`` seconds gets the whole history again. One who does not come back has *left*:
  their unit expires (unpaid), the others are told and the room ends; they submit and are paid as usual;
* with ``Chat.bot`` the last role is played by a procedure of the notebook: each message of the human is
  passed to it (``{"text", "role", "history"}``) through the same ``Calls`` as a page's own calls, and the
  ``text`` it returns is the bot's message.

Every message and event is a row (``store.rooms``), so the state of a room is rebuilt from the store when
the router starts again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, CrowdError, WorkerRefused
from ..providers import Provider
from ..store import lifecycle
from ..store import rooms as stored
from ..store import states as S
from ..store.db import Row, Store
from .calls import Calls
from .dispatch import Sockets

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")
TURNS = ("free", "alternate")
PARTNER_LEFT = "Your partner left the conversation. Please submit now: you are paid for your time as usual."


@dataclass(frozen=True)
class Chat:
    """How workers who share an assignment talk (``cn.Task(workers_per_assignment=2, chat=cn.Chat(…))``).

    ``turns``: "free" or "alternate" (the roles speak in turn, in the order of ``roles``).
    ``lobby_timeout``: seconds a worker waits for partners before being released; ``waiting_bonus``:
    dollars paid to a worker released that way. ``partner_grace``: seconds a partner whose page closed
    has to come back. ``bot``: the name of a procedure that plays the last role (a human + notebook bot).
    ``max_chars``: the longest message.
    """

    turns: str = "free"
    lobby_timeout: float = 300.0
    waiting_bonus: float = 0.0
    partner_grace: float = 30.0
    bot: str | None = None
    max_chars: int = 2000

    def __post_init__(self) -> None:
        if self.turns not in TURNS:
            raise ConfigError(f"turns={self.turns!r} is not one of {', '.join(TURNS)}")
        for name, low in (("lobby_timeout", 1.0), ("partner_grace", 0.0), ("waiting_bonus", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
                raise ConfigError(f"{name}={value!r} must be a number ≥ {low:g}")
        if self.bot is not None and (not isinstance(self.bot, str) or not self.bot):
            raise ConfigError(f"bot={self.bot!r} must be the name of a procedure of the task")
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise ConfigError(f"max_chars={self.max_chars!r} must be a whole number ≥ 1")

    def to_dict(self) -> dict[str, Any]:
        """What is stored with the task."""
        return asdict(self)


def seating(
    workers: int, roles: Sequence[str], chat: Chat | None, replicas: int
) -> tuple[int, tuple[str, ...], dict[str, Any] | None]:
    """A task's checked ``(workers_per_assignment, roles, chat)`` as stored; ``ConfigError`` names a bad one.

    A shared task has ``workers`` ≥ 2, or a ``Chat`` whose ``bot`` plays the last role beside one worker.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers_per_assignment={workers!r} must be a whole number ≥ 1")
    if chat is not None and not isinstance(chat, Chat):
        raise ConfigError(f"chat= takes a cn.Chat(...); got {type(chat).__name__}")
    if workers == 1 and (chat is None or chat.bot is None):
        if chat is not None or roles:
            raise ConfigError(
                "roles= and chat= are for shared tasks: set workers_per_assignment ≥ 2 or chat=cn.Chat(bot=…)"
            )
        return 1, (), None
    if replicas != 1:
        raise ConfigError(
            f"units_per_assignment={replicas} and workers_per_assignment={workers}: give one; units are replicas "
            "(different workers, apart), workers share one assignment live"
        )
    chat = chat or Chat()
    seats = workers + (1 if chat.bot else 0)
    if isinstance(roles, str) or not all(isinstance(r, str) and r.strip() for r in roles):
        raise ConfigError(f"roles= takes a list of role names; got {roles!r}")
    default = [f"worker {i + 1}" for i in range(workers)] + (["bot"] if chat.bot else [])
    names = tuple(r.strip() for r in roles) or tuple(default)
    if len(names) != seats or len(set(names)) != seats:
        bot = " and the bot's, last" if chat.bot else ""
        raise ConfigError(f"roles={list(names)!r}: give {seats} different role names (one per worker{bot})")
    return workers, names, chat.to_dict()


@dataclass
class _Room:
    assignment: Row
    started: bool = False
    ended: bool = False
    spoken: int = 0  # messages so far (whose turn it is)
    waiting: dict[int, float] = field(default_factory=dict)  # agent → when they joined the lobby
    away: dict[int, float] = field(default_factory=dict)  # agent → when their last page closed
    members: set[int] = field(default_factory=set)  # agents whose pages hear the room (no query per message)
    lock: threading.RLock = field(default_factory=threading.RLock)


class Rooms:
    """The rooms of one run's shared assignments (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        sockets: Sockets,
        provider: Provider,
        roles: Sequence[str],
        seats: int,
        chat: Chat,
        calls: Calls | None = None,
    ) -> None:
        self.store, self.sockets, self.provider = store, sockets, provider
        self.roles, self.seats, self.chat, self.calls = tuple(roles), seats, chat, calls
        self._rooms: dict[int, _Room] = {}
        self._members: dict[int, int] = {}  # agent → assignment, for every page that connected
        self._lock = threading.Lock()

    # --- what the pages do ---------------------------------------------------------------------
    def role(self, agent: Row) -> str:
        """The role of an agent's seat."""
        index = int(agent.get("unit_index", 0) or 0)
        return self.roles[index] if 0 <= index < len(self.roles) else f"worker {index + 1}"

    def connected(self, agent: Row) -> None:
        """A page of ``agent`` opened its socket: the lobby, the start, or the history again."""
        room = self._room(int(agent["assignment_id"]))
        agent_id = int(agent["id"])
        with self._lock:
            self._members[agent_id] = int(agent["assignment_id"])
        with room.lock:
            room.members.add(agent_id)
            if room.ended:
                self._tell(agent_id, self._state(room, agent))
            elif room.started:
                if room.away.pop(agent_id, None) is not None:
                    self._event(room, "back", agent, f"{self.role(agent)} is back.")
                self._tell(agent_id, self._state(room, agent))
            else:
                if agent_id not in room.waiting:
                    room.waiting[agent_id] = time.monotonic()
                    self._event(room, "joined", agent, f"{self.role(agent)} joined.")
                self._start_if_full(room)

    def closed(self, agent: Row) -> None:
        """A page of ``agent`` closed its socket; if it was their last, they are away."""
        agent_id = int(agent["id"])
        if self.sockets.is_open(agent_id):
            return
        room = self._room(int(agent["assignment_id"]))
        with room.lock:
            if room.started and not room.ended and self.store.agent_status(agent_id) in S.AGENT_LIVE:
                room.away[agent_id] = time.monotonic()
                self._event(room, "away", agent, f"{self.role(agent)} lost their connection; waiting for them.")

    def say(self, agent: Row, body: dict[str, Any]) -> dict[str, Any] | None:
        """A message from ``agent``'s page: stored and sent to the room; a refusal for the sender, or None."""
        message_id, text = body.get("id"), body.get("text")
        if not isinstance(message_id, str) or not _ID.match(message_id):
            return _refused(message_id, "The message's id is missing or malformed; reload the page.")
        if not isinstance(text, str) or not text.strip():
            return _refused(message_id, "Write something first.")
        if len(text) > self.chat.max_chars:
            return _refused(message_id, f"Please keep a message under {self.chat.max_chars} characters.")
        room = self._room(int(agent["assignment_id"]))
        role = self.role(agent)
        with room.lock:
            if not room.started:
                return _refused(message_id, "Your partner has not arrived yet.")
            if room.ended:
                return _refused(message_id, "This conversation has ended; please submit.")
            turn = self._turn(room)
            if turn is not None and turn != role:
                return _refused(message_id, f"It is {turn}'s turn; wait for their message.")
            row, new = stored.post(
                self.store, room.assignment, stored.MESSAGE, text.strip(), role=role, agent=agent, client_id=message_id
            )
            if new:
                room.spoken += 1
            self._broadcast(room, _wire(row, self._turn(room)))
        if new and self.chat.bot is not None:
            self._bot_replies(room, agent)
        return None

    def check_submit(self, agent: Row) -> None:
        """``WorkerRefused`` while the worker is still in the lobby (there is nothing to submit yet)."""
        room = self._room(int(agent["assignment_id"]))
        if not room.started and not room.ended:
            raise WorkerRefused("bad_submission", "Please wait for your partner: the conversation has not started.")

    def submitted(self, agent: Row) -> None:
        """A worker of the room submitted: the others are told; the room ends when everyone has."""
        room = self._room(int(agent["assignment_id"]))
        with room.lock:
            self._event(room, "submitted", agent, f"{self.role(agent)} submitted.")
            room.away.pop(int(agent["id"]), None)
            if not room.ended and not any(s["agent_status"] in S.AGENT_LIVE for s in self._seats(room)):
                self._end(room, "done", "Everyone has submitted. Thank you!")

    def holds(self, agent_id: int) -> bool:
        """Whether a room decides what happens to ``agent_id`` when their page closes (a started room gives
        them ``partner_grace``; the lobby, and a room that ended, leave them to the usual disconnect)."""
        with self._lock:
            room = self._rooms.get(self._members.get(agent_id, 0))
        return room is not None and room.started and not room.ended

    # --- the monitor ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Release workers who waited too long, end rooms whose partner did not come back."""
        with self._lock:
            rooms = list(self._rooms.values())
        now = time.monotonic()
        for room in rooms:
            with room.lock:
                if room.ended:
                    self._forget_if_closed(room)
                    continue
                if room.started:
                    gone = [a for a, at in room.away.items() if now - at > self.chat.partner_grace]
                    if gone:
                        self._left(room, gone)
                    continue
                for agent_id, since in list(room.waiting.items()):
                    if self.store.agent_status(agent_id) not in S.AGENT_LIVE:
                        del room.waiting[agent_id]  # closed the page and was released as usual
                    elif now - since > self.chat.lobby_timeout:
                        self._release(room, agent_id)

    def _forget_if_closed(self, room: _Room) -> None:
        """Drop an ended room whose pages have all closed (rebuilt from the store if one comes back)."""
        if not any(self.sockets.is_open(agent_id) for agent_id in room.members):
            with self._lock:
                self._rooms.pop(int(room.assignment["id"]), None)
                for agent_id in room.members:
                    self._members.pop(agent_id, None)

    # --- inside a room (its lock held) ---------------------------------------------------------
    def _room(self, assignment_id: int) -> _Room:
        with self._lock:
            room = self._rooms.get(assignment_id)
            if room is None:
                room = self._rooms[assignment_id] = self._rebuilt(assignment_id)
            return room

    def _rebuilt(self, assignment_id: int) -> _Room:
        """A room as the store has it (after a restart, the pages reconnect to the same conversation)."""
        room = _Room(stored.assignment(self.store, assignment_id))
        happened = {
            json.loads(r["data"]).get("event") for r in stored.events(self.store, assignment_id, "started", "ended")
        }
        room.started, room.ended = "started" in happened, "ended" in happened
        room.spoken = sum(1 for r in stored.history(self.store, assignment_id) if r["kind"] == stored.MESSAGE)
        return room

    def _seats(self, room: _Room) -> list[Row]:
        return stored.seats(self.store, int(room.assignment["id"]))

    def _start_if_full(self, room: _Room) -> None:
        seats = self._seats(room)
        held = [s for s in seats if s["agent_id"] is not None and s["agent_status"] in S.AGENT_LIVE]
        here = [s for s in held if self.sockets.is_open(int(s["agent_id"]))]
        if len(here) < self.seats:
            for seat in here:
                self._tell(int(seat["agent_id"]), self._lobby(room, seat, len(here)))
            return
        room.started, room.waiting = True, {}
        self._event(room, "started", None, "Everyone is here: the conversation starts.")
        for seat in here:
            self._tell(int(seat["agent_id"]), self._state(room, {"unit_index": seat["unit_index"]}))

    def _lobby(self, room: _Room, seat: Row, here: int) -> dict[str, Any]:
        return {
            "type": "lobby",
            "role": self.role({"unit_index": seat["unit_index"]}),
            "roles": list(self.roles),
            "here": here,
            "of": self.seats,
            "timeout": self.chat.lobby_timeout,
        }

    def _state(self, room: _Room, agent: Row) -> dict[str, Any]:
        """Everything a page needs on (re)connecting to a started or ended room: its role and the history."""
        history = [_wire(r) for r in stored.history(self.store, int(room.assignment["id"]))]
        return {
            "type": "room",
            "state": "ended" if room.ended else "started",
            "role": self.role(agent),
            "roles": list(self.roles),
            "turn": self._turn(room),
            "history": history,
        }

    def _turn(self, room: _Room) -> str | None:
        if self.chat.turns != "alternate" or room.ended:
            return None
        return self.roles[room.spoken % len(self.roles)]

    def _event(self, room: _Room, name: str, agent: Row | None, text: str, **data: Any) -> None:
        role = self.role(agent) if agent is not None else None
        row, _ = stored.post(
            self.store, room.assignment, stored.EVENT, text, role=role, agent=agent, data={"event": name, **data}
        )
        self._broadcast(room, _wire(row, self._turn(room)))

    def _broadcast(self, room: _Room, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for agent_id in list(room.members):
            self.sockets.send(agent_id, text)

    def _tell(self, agent_id: int, message: dict[str, Any]) -> None:
        self.sockets.send(agent_id, json.dumps(message))

    def _end(self, room: _Room, reason: str, message: str) -> None:
        self._event(room, "ended", None, message, reason=reason)
        room.ended = True
        self._broadcast(room, {"type": "ended", "reason": reason, "message": message})

    def _left(self, room: _Room, gone: list[int]) -> None:
        for agent_id in gone:
            del room.away[agent_id]
            room.members.discard(agent_id)
            agent = self.store.get_agent(agent_id)
            if stored.leave(self.store, agent_id):
                self._event(room, "left", agent, f"{self.role(agent)} did not come back.")
        self._end(room, "partner_left", PARTNER_LEFT)

    def _release(self, room: _Room, agent_id: int) -> None:
        del room.waiting[agent_id]
        room.members.discard(agent_id)
        agent = self.store.get_agent(agent_id)
        if not stored.release(self.store, agent_id):
            return
        minutes = self.chat.lobby_timeout / 60
        text = f"No partner arrived within {minutes:g} minute{'s' if minutes != 1 else ''}, so you were released from this task."
        paid = self.chat.waiting_bonus
        if paid:
            try:
                self._pay_waiting(agent, paid)
                text += f" You are paid a ${paid:.2f} bonus for waiting."
            except CrowdError:  # recorded before it is sent: the provider's next sync sends it
                log.exception("waiting bonus of agent %s not sent now", agent_id)
                text += f" A ${paid:.2f} bonus for waiting is on its way."
        self._event(room, "released", agent, text, bonus=paid)
        self._tell(agent_id, {"type": "released", "message": text})

    def _pay_waiting(self, agent: Row, amount: float) -> None:
        """The waiting bonus, once per agent, counted in the run's spend (recorded before it is sent)."""
        worker = self.store.worker_name(int(agent["worker_id"]))
        unit = self.store.get_unit(int(agent["unit_id"]))
        reason = "Thank you for waiting for a partner; nobody arrived in time."
        key = f"lobby-wait:{agent['id']}"
        if lifecycle.record_bonus(self.store, int(agent["worker_id"]), amount, reason, key, "crowdnb", unit):
            self.provider.bonus(worker, amount, reason, key)

    def _bot_replies(self, room: _Room, human: Row) -> None:
        """The notebook's bot answers the human's message (outside the room's lock: it may take seconds)."""
        assert self.calls is not None and self.chat.bot is not None
        bot_role = self.roles[-1]
        history = [
            {"role": r["role"], "text": r["text"]}
            for r in stored.history(self.store, int(room.assignment["id"]))
            if r["kind"] == stored.MESSAGE
        ]
        args = {"text": history[-1]["text"], "role": bot_role, "history": history}
        call_id = f"bot:{room.assignment['id']}:{len(history)}"
        try:
            reply = self.calls.answer(human, {"id": call_id, "name": self.chat.bot, "args": args})
        except WorkerRefused as exc:
            reply = {"ok": False, "message": exc.message}
        with room.lock:
            text = str((reply.get("result") or {}).get("text") or "").strip() if reply.get("ok") else ""
            if text and not room.ended:
                row, _ = stored.post(
                    self.store, room.assignment, stored.MESSAGE, text[: self.chat.max_chars], role=bot_role
                )
                room.spoken += 1
                self._broadcast(room, _wire(row, self._turn(room)))
            elif not reply.get("ok"):
                self._event(room, "bot_failed", None, str(reply.get("message") or "The bot could not answer."))


def _wire(row: Row, turn: str | None = None) -> dict[str, Any]:
    """A stored message or event as a page receives it."""
    out: dict[str, Any] = {"seq": row["seq"], "role": row["role"], "text": row["text"], "at": row["at"]}
    if row["kind"] == stored.MESSAGE:
        out.update(type="message", id=row["client_id"])
    else:
        out.update(type="event", event=json.loads(row["data"]).get("event"))
    if turn is not None:
        out["turn"] = turn
    return out


def _refused(message_id: Any, text: str) -> dict[str, Any]:
    return {"type": "refused", "id": message_id, "message": text}
