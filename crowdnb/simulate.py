"""Simulated workers: bots that take units through the real HTTP path (dry runs, demos, rehearsals, benchmarks).

A bot asks for a unit as a worker's browser does, answers every field within its rules
(``bots.answers``: options, numbers, text its pattern finds, files of an accepted type) and submits:
JSON, or multipart when it uploads files. How it works — how long it thinks, what it answers, whether
it leaves a unit midway — is its behaviour (``bots.behaviours``); ``Simulation.behaviours`` records which
bot had which, so rules can be checked against them.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests
import simple_websocket

from .bot import Bot
from .bots.answers import Filler
from .bots.behaviours import Answer, Behaviour, Golds, Responder, assign
from .errors import ConfigError, CrowdError
from .service import TICK_SECONDS

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)

Play = Callable[[Bot], dict[str, Any]]

PATIENCE = 3.0  # seconds a bot keeps asking while units wait to be launched
_STOP_REASONS = {"no_work", "finished", "max_reached", "not_qualified"}


@dataclass
class Simulation:
    """Bots at work on a run; ``wait()`` for them or ``stop()`` them, read ``submitted`` and ``errors``.

    ``behaviours`` maps each bot's worker name to its behaviour; ``abandoned`` counts the units bots left
    midway.
    """

    run_url: str
    workers: int
    submitted: int = 0
    errors: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    behaviours: dict[str, str] = field(default_factory=dict)
    abandoned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _last_abandon: float = float("-inf")  # time.monotonic() of the latest unit left midway
    _bar: Any = None

    def wait(self, timeout: float | None = None) -> Simulation:
        """Block until every bot has stopped (no work left) or ``timeout`` seconds pass."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        if self.done and self._bar is not None:
            self._bar.close()
        return self

    def stop(self, timeout: float = 30.0) -> Simulation:
        """Stop every bot and wait for its thread; a unit a bot held stays with it, like a closed tab's."""
        self._stopping.set()
        self.wait(timeout)
        if not self.done:
            log.warning("%d bots did not stop within %g s", sum(t.is_alive() for t in self.threads), timeout)
        return self

    @property
    def done(self) -> bool:
        """Whether every bot has stopped."""
        return not any(t.is_alive() for t in self.threads)

    def bots(self, behaviour: str) -> list[str]:
        """The worker names of the bots with ``behaviour`` (``sim.bots("speeder")``)."""
        return [name for name, b in self.behaviours.items() if b == behaviour]


def simulate(
    run: Run,
    workers: int = 5,
    answer: Answer | None = None,
    *,
    behaviour: str | Mapping[str, float] | None = None,
    pace: float = 0.05,
    units: int | None = None,
    think: tuple[float, float] | None = None,
    wait: bool = True,
    progress: bool = False,
    prefix: str = "bot",
    seed: int | None = None,
    onboarding_answer: Answer | None = None,
    play: Play | None = None,
) -> Simulation:
    """Start ``workers`` bots on ``run``; each takes units until none are left (or ``units`` each).

    ``answer(input_row) -> dict`` decides what a bot submits (default: random values within the rules;
    file fields always get a generated file). ``behaviour`` is ``"careful"``, ``"speeder"``,
    ``"spammer"``, ``"absent_minded"`` or shares of them (``{"careful": 0.8, "speeder": 0.2}``; see
    ``crowdnb.bots.behaviours``); ``pace`` scales their think times (1.0: a person's). ``think=(lo, hi)``
    seconds per unit replace every behaviour's. ``seed`` makes bots, behaviours and answers repeatable.
    With ``wait=False`` this returns at once. ``onboarding_answer(data) -> dict`` answers the task's
    onboarding test, if it has one. ``play(bot) -> dict`` works a unit of a live task instead of
    ``answer``: ``bot.input`` is the row, ``bot.call(name, args)`` calls a procedure over the page's
    socket, and in a shared task ``bot.join()``, ``bot.say(text)``, ``bot.wait_for(n)``, ``bot.role`` and
    ``bot.messages`` hold the conversation; it returns the answers. Without ``play``, a bot in a shared
    task joins its room and submits once the conversation has started.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be a whole number ≥ 1")
    if isinstance(pace, bool) or not isinstance(pace, (int, float)) or pace < 0:
        raise ConfigError(f"pace={pace!r} must be a number ≥ 0 (1.0: a person's speed)")
    if play is not None and answer is not None:
        raise ConfigError("give answer= (answers from the input row) or play= (a bot working the page), not both")
    if not run.serving:
        raise ConfigError(f"run {run.id} is not being served; resume() it first")
    chosen = assign(behaviour, workers, seed)
    sim = Simulation(run.url, workers)
    master = random.Random(seed)
    example = _example_answers(run) if answer is None else {}
    responder = Responder(Filler(master.randrange(2**32)), Golds(run.spec.gold), answer, example)
    sim._bar = _progress_bar(run) if progress else None
    for number, kind in enumerate(chosen):
        name = f"{prefix}-{number + 1}"
        sim.behaviours[name] = kind.name
        rng = random.Random(None if seed is None else seed + number)
        bot = _Bot(sim, run, name, kind, responder, rng, (units, think, pace, onboarding_answer, play))
        thread = threading.Thread(target=bot.work, name=f"crowdnb-bot-{number + 1}", daemon=True)
        sim.threads.append(thread)
        thread.start()
    if wait:
        sim.wait()
    return sim


def _example_answers(run: Run) -> dict[str, Any]:
    """A gallery template's example answers: a bot cannot draw a box or mark a span, so the fields a
    template's script fills (hidden JSON) take the example's values; the others stay random."""
    from .pages.gallery import describe

    try:
        return describe(run.spec.source).example_answers
    except CrowdError:  # html=, a form, a JS task, or a template without a header comment
        return {}


def _progress_bar(run: Run) -> Any:
    from tqdm.auto import tqdm

    counts = run.counts
    total = sum(counts.values()) - counts["expired"]
    return tqdm(total=total, desc=f"units of {run.task_name}", unit="unit")


class _Bot:
    """One simulated worker: a session of its own, asking for units until there are none."""

    def __init__(
        self,
        sim: Simulation,
        run: Run,
        name: str,
        behaviour: Behaviour,
        responder: Responder,
        rng: random.Random,
        options: tuple[int | None, tuple[float, float] | None, float, Answer | None, Play | None],
    ) -> None:
        self.sim, self.run, self.name, self.behaviour, self.responder, self.rng = (
            sim, run, name, behaviour, responder, rng)  # fmt: skip
        self.units, self.think, self.pace, self.onboarding_answer, self.play = options
        self.spam_seed = rng.randrange(2**32)  # a spammer's one answer
        # a unit left midway is offered again after the run's grace and the monitor's next tick
        self.release = run.spec.disconnect_grace + 2 * TICK_SECONDS
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"

    def work(self) -> None:
        try:
            self._work()
        except (requests.RequestException, simple_websocket.ConnectionError, ValueError, CrowdError) as exc:
            self._error(str(exc))
        finally:
            self.session.close()

    def _work(self) -> None:
        sim, url = self.sim, self.run.worker_url(self.name)
        done, idle_since = 0, None
        while (self.units is None or done < self.units) and not sim._stopping.is_set():
            reply = self.session.get(url, timeout=30)
            body = reply.json()
            if reply.status_code != 200:
                idle_since = idle_since or time.monotonic()
                if self._gives_up(body.get("reason"), idle_since) or sim._stopping.wait(0.2):
                    return
                continue
            idle_since = None
            seconds = self._think_time()
            if body["status"] == "onboarding":
                if not self._onboard(body, seconds):
                    return
                continue
            if not body.get("resumed") and self.rng.random() < self.behaviour.abandon:
                self._leave(body["token"], seconds * self.rng.uniform(0.2, 0.8))
                if sim._stopping.wait(self.release):
                    return
                continue
            if sim._stopping.wait(seconds):
                return
            filled = self.responder.respond(self.behaviour, body["input"], body["fields"], self.rng, self.spam_seed)
            # a page of its own: to play, or to join a shared assignment's room before submitting
            shared = self.run.spec.shared
            bot = Bot(self.name, self.run.url, body) if self.play is not None or shared else None
            try:
                if bot is not None and self.play is not None:
                    filled.answers = self.play(bot)
                elif bot is not None:
                    bot.join(timeout=float((self.run.spec.chat or {}).get("lobby_timeout", 60)) + 5)
                saved = self._submit(body["token"], filled.answers, filled.files)
            finally:
                if bot is not None:
                    bot.close()
            if saved.status_code != 200:
                self._error(f"submit answered {saved.status_code}: {saved.text[:200]}")
                return
            done += 1
            with sim._lock:
                sim.submitted += 1
            if sim._bar is not None:
                sim._bar.update(1)

    def _gives_up(self, reason: str | None, idle_since: float) -> bool:
        """Whether to stop asking. A throttled run launches more units as others finish, and a unit left
        midway comes back: a patient worker waits for those; units held back by a budget never come."""
        if reason not in _STOP_REASONS:
            return False
        now = time.monotonic()
        returning = now - self.sim._last_abandon < self.release + PATIENCE
        patient = reason == "no_work" and (returning or self.run.counts["created"] > 0)
        return not (patient and (returning or now - idle_since < PATIENCE))

    def _think_time(self) -> float:
        low, high = self.think if self.think is not None else (x * self.pace for x in self.behaviour.think)
        return self.rng.uniform(low, high) if high else 0.0

    def _onboard(self, body: dict[str, Any], seconds: float) -> bool:
        """Take the onboarding test; whether it passed (a failed one is refused, like a person's)."""
        if self.sim._stopping.wait(seconds):
            return False
        if self.onboarding_answer is not None:
            answers, files = self.onboarding_answer(body["input"]), {}
        else:
            filled = self.responder.filler.fill(body["fields"], self.rng)
            answers, files = filled.answers, filled.files
        return self._submit(body["token"], answers, files).status_code == 200

    def _leave(self, token: str, seconds: float) -> None:
        """Open the unit's page (its socket), stay ``seconds``, then close it without submitting."""
        ws = simple_websocket.Client.connect(
            self.run.url.replace("http", "ws", 1) + "ws?" + urlencode({"token": token})
        )
        try:
            ws.send(json.dumps({"type": "heartbeat"}))
            ws.receive(timeout=10)
            self.sim._stopping.wait(seconds)
        finally:
            ws.close()
        with self.sim._lock:
            self.sim.abandoned += 1
            self.sim._last_abandon = time.monotonic()

    def _submit(self, token: str, answers: dict[str, Any], files: Mapping[str, list[Any]]) -> requests.Response:
        submission_id = uuid.uuid4().hex
        if not files:
            payload = {"token": token, "submission_id": submission_id, "answers": answers}
            return self.session.post(self.run.url + "submit", json=payload, timeout=30)
        # with files: multipart, as a browser sends them; the answers as JSON keep their types
        form = {"_crowd_token": token, "_crowd_submission_id": submission_id, "_crowd_answers": json.dumps(answers)}
        parts = [(name, sample) for name, samples in files.items() for sample in samples]
        return self.session.post(self.run.url + "submit", data=form, files=parts, timeout=30)

    def _error(self, message: str) -> None:
        with self.sim._lock:
            self.sim.errors.append(f"{self.name}: {message}")
