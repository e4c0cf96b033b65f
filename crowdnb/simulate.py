"""Simulated workers: bots that take units through the real HTTP path (dry runs, demos, benchmarks)."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from .bot import Bot
from .errors import ConfigError, CrowdError

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)

Answer = Callable[[dict[str, Any]], dict[str, Any]]
Play = Callable[[Bot], dict[str, Any]]
PATIENCE = 3.0  # seconds a bot keeps asking while units wait to be launched
_STOP_REASONS = {"no_work", "finished", "max_reached", "not_qualified"}


def random_answer(fields: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """A plausible answer within each field's rules: options, a number in range, text of a fitting length."""
    answers: dict[str, Any] = {}
    for f in fields:
        if f["kind"] in ("file", "hidden") or (f.get("pattern") and not f["required"]):
            continue  # nothing to upload; a pattern a bot cannot guess is better left empty when it may be
        low, high = f.get("min_length"), f.get("max_length")
        if f["options"]:
            choices = [o for o in f["options"] if o != ""] or list(f["options"])
            if f["multiple"]:
                most = min(high if high is not None else len(choices), len(choices))
                answers[f["name"]] = rng.sample(choices, rng.randint(min(max(low or 1, 1), most), most))
            else:
                answers[f["name"]] = rng.choice(choices)
        elif f["kind"] in ("number", "range"):
            bottom = math.ceil(f["minimum"]) if f.get("minimum") is not None else 1
            top = math.floor(f["maximum"]) if f.get("maximum") is not None else bottom + 9
            answers[f["name"]] = str(rng.randint(bottom, max(bottom, top)))
        elif f["kind"] == "email":
            answers[f["name"]] = f"bot{rng.randint(1, 999)}@example.org"
        else:
            text = rng.choice(["looks fine", "not sure", "ok"])
            text = text + " ok" * max(0, -(-((low or 0) - len(text)) // 3))  # long enough for minlength
            answers[f["name"]] = text[:high] if high is not None else text
    return answers


@dataclass
class Simulation:
    """Bots at work on a run; ``wait()`` for them, read ``submitted`` and ``errors``."""

    run_url: str
    workers: int
    submitted: int = 0
    errors: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, timeout: float | None = None) -> Simulation:
        """Block until every bot has stopped (no work left) or ``timeout`` seconds pass."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        return self

    @property
    def done(self) -> bool:
        """Whether every bot has stopped."""
        return not any(t.is_alive() for t in self.threads)


def simulate(
    run: Run,
    workers: int = 5,
    answer: Answer | None = None,
    *,
    units: int | None = None,
    think: tuple[float, float] = (0.0, 0.0),
    wait: bool = True,
    progress: bool = False,
    prefix: str = "bot",
    seed: int | None = None,
    onboarding_answer: Answer | None = None,
    play: Play | None = None,
) -> Simulation:
    """Start ``workers`` bots on ``run``; each takes units until none are left (or ``units`` each).

    ``answer(input_row) -> dict`` decides what a bot submits (default: random valid values).
    ``think=(lo, hi)`` seconds are spent on each unit. With ``wait=False`` this returns at once.
    ``onboarding_answer(data) -> dict`` answers the task's onboarding test, if it has one.
    ``play(bot) -> dict`` works a unit of a live task instead of ``answer``: ``bot.input`` is the row,
    ``bot.call(name, args)`` calls a procedure over the page's socket; it returns the answers.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be a whole number ≥ 1")
    if play is not None and answer is not None:
        raise ConfigError("give answer= (answers from the input row) or play= (a bot working the page), not both")
    if not run.serving:
        raise ConfigError(f"run {run.id} is not being served; resume() it first")
    sim = Simulation(run.url, workers)
    example = _example_answers(run) if answer is None else {}
    bar = _progress_bar(run) if progress else None
    for number in range(workers):
        rng = random.Random(None if seed is None else seed + number)
        bot = threading.Thread(
            target=_work,
            args=(
                sim,
                run,
                f"{prefix}-{number + 1}",
                (answer, onboarding_answer, example, play),
                units,
                think,
                rng,
                bar,
            ),
            name=f"crowdnb-bot-{number + 1}",
            daemon=True,
        )
        sim.threads.append(bot)
        bot.start()
    if wait:
        sim.wait()
        if bar is not None:
            bar.close()
    return sim


def _example_answers(run: Run) -> dict[str, Any]:
    """A gallery template's example answers: a bot cannot draw a box or mark a span, so the fields a
    template's script fills (hidden JSON) take the example's values; the others stay random."""
    from .pages.gallery import describe

    try:
        return describe(run.spec.source).example_answers
    except CrowdError:  # html=, a form, a JS task, or a template without a header comment
        return {}


def _played(play: Play, bot: Bot) -> dict[str, Any]:
    """The answers a bot's play gives; its socket is closed whatever happens."""
    try:
        return play(bot)
    finally:
        bot.close()


def _progress_bar(run: Run) -> Any:
    from tqdm.auto import tqdm

    counts = run.counts
    total = sum(counts.values()) - counts["expired"]
    return tqdm(total=total, desc=f"units of {run.task_name}", unit="unit")


def _work(
    sim: Simulation,
    run: Run,
    name: str,
    answers_by: tuple[Answer | None, Answer | None, dict[str, Any], Play | None],
    units: int | None,
    think: tuple[float, float],
    rng: random.Random,
    bar: Any,
) -> None:
    answer, onboarding_answer, example, play = answers_by
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    url, submit_url = run.worker_url(name), run.url + "submit"
    done, idle_since = 0, None
    while units is None or done < units:
        try:
            reply = session.get(url, timeout=30)
            body = reply.json()
            if reply.status_code != 200:
                # a throttled run launches more units as others finish: a patient worker comes back for a
                # while; units held back by a budget never come, so patience runs out
                idle_since = idle_since or time.monotonic()
                patient = body.get("reason") == "no_work" and run.counts["created"] > 0
                if body.get("reason") in _STOP_REASONS and not (patient and time.monotonic() - idle_since < PATIENCE):
                    return
                time.sleep(0.2)
                continue
            idle_since = None
            if think[1]:
                time.sleep(rng.uniform(*think))
            onboarding = body["status"] == "onboarding"
            respond = onboarding_answer if onboarding else answer
            if play is not None and not onboarding:
                answers = _played(play, Bot(name, run.url, body))
            elif respond is not None:
                answers = respond(body["input"])
            else:
                answers = {**example, **random_answer(body["fields"], rng)}
            payload = {"token": body["token"], "submission_id": uuid.uuid4().hex, "answers": answers}
            saved = session.post(submit_url, json=payload, timeout=30)
            if onboarding:  # passed: back for a unit; failed: refused, like a person who failed the test
                if saved.status_code == 200:
                    continue
                return
            if saved.status_code != 200:
                with sim._lock:
                    sim.errors.append(f"{name}: submit answered {saved.status_code}: {saved.text[:200]}")
                return
        except (requests.RequestException, ValueError, CrowdError) as exc:
            with sim._lock:
                sim.errors.append(f"{name}: {exc}")
            return
        done += 1
        with sim._lock:
            sim.submitted += 1
        if bar is not None:
            bar.update(1)
