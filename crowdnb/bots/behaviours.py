"""How simulated workers behave, so that a study and its rules can be rehearsed before people come.

``cn.simulate(run, workers=10, behaviour={"careful": 0.7, "speeder": 0.2, "spammer": 0.1}, seed=1)``
gives 7 careful bots, 2 speeders and 1 spammer (shares are rounded to whole bots, largest remainders
first), in an order drawn from ``seed``. Each behaviour has a person's think time per unit in seconds;
``pace`` scales it: the default, 0.05, turns a careful worker's 20-40 s into 1-2 s, which keeps a speeder's
units under a quarter of the median even with a request's own time added; 1.0 is a person's speed.

========================  ==========================================================================
``careful``               right answers where they are known (a gold unit's, a template's example,
                          ``answer=``), the rest within the rules; 20-40 s a unit
``speeder``               random answers within the rules, 0.5-2 s a unit: always faster than a quarter
                          of the others' median
``spammer``               the same answers to every unit, 4-8 s a unit
``absent_minded``         careful, but leaves one unit in four midway (its page closes: the unit goes
                          back to ``launched`` once the run's ``disconnect_grace`` has passed) and
                          answers half of its gold units wrong; 15-45 s a unit
========================  ==========================================================================

Without ``behaviour``, bots answer with ``answer=`` (or at random within the rules) at once, as before.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .answers import Filled, Filler, field_of

Answer = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Behaviour:
    """A kind of worker: how long a unit takes them, what they answer, what they forget."""

    name: str
    think: tuple[float, float]  # a person's seconds per unit, before ``pace``
    answers: str  # "right": known answers first; "random": within the rules; "same": one answer for all
    abandon: float = 0.0  # chance of leaving a unit midway
    wrong_gold: float = 0.0  # chance of answering a gold unit wrong


BEHAVIOURS = {
    b.name: b
    for b in (
        Behaviour("careful", (20.0, 40.0), "right"),
        Behaviour("speeder", (0.5, 2.0), "random"),
        Behaviour("spammer", (4.0, 8.0), "same"),
        Behaviour("absent_minded", (15.0, 45.0), "right", abandon=0.25, wrong_gold=0.5),
    )
}
DEFAULT = Behaviour("default", (0.0, 0.0), "given")  # answer= if given, else within the rules; no thinking


def assign(behaviour: str | Mapping[str, float] | None, workers: int, seed: int | None) -> list[Behaviour]:
    """One behaviour per bot: a name for all, or shares rounded to whole bots, in an order drawn from ``seed``."""
    if behaviour is None:
        return [DEFAULT] * workers
    shares = {behaviour: 1.0} if isinstance(behaviour, str) else dict(behaviour)
    unknown = sorted(set(shares) - set(BEHAVIOURS))
    if unknown or not shares:
        raise ConfigError(
            f"behaviour {unknown[0] if unknown else behaviour!r} is not one of {', '.join(BEHAVIOURS)}; "
            'give a name or shares like {"careful": 0.8, "speeder": 0.2}'
        )
    bad = {k: v for k, v in shares.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
    if bad or sum(shares.values()) <= 0:
        raise ConfigError(f"behaviour shares must be numbers ≥ 0 with a sum above 0; got {shares!r}")
    total = sum(shares.values())
    exact = {name: workers * share / total for name, share in shares.items()}
    counts = {name: int(x) for name, x in exact.items()}
    for name in sorted(exact, key=lambda n: counts[n] - exact[n])[: workers - sum(counts.values())]:
        counts[name] += 1  # largest remainders first (sorted() is stable: ties go to the first named)
    chosen = [BEHAVIOURS[name] for name, n in counts.items() for _ in range(n)]
    random.Random(seed).shuffle(chosen)
    return chosen


class Golds:
    """The known answers of a run's gold units, found by a unit's input (what a bot is shown)."""

    def __init__(self, spec_gold: Mapping[str, Any] | None) -> None:
        rows = (spec_gold or {}).get("rows") or []
        self._answers = {_key({k: v for k, v in r.items() if k != "answers"}): dict(r["answers"]) for r in rows}

    def answers(self, unit_input: Mapping[str, Any]) -> dict[str, Any] | None:
        """The right answers when ``unit_input`` is a gold unit's."""
        return self._answers.get(_key(unit_input)) if self._answers else None


def _key(row: Mapping[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


@dataclass
class Responder:
    """What one bot submits for a unit, by its behaviour (the parts shared by a simulation's bots)."""

    filler: Filler
    golds: Golds
    answer: Answer | None
    example: Mapping[str, Any]

    def respond(
        self, behaviour: Behaviour, unit_input: dict[str, Any], fields: Sequence[Mapping[str, Any]], rng: random.Random,
        spam_seed: int,
    ) -> Filled:  # fmt: skip
        """Answers and files for one unit."""
        if behaviour.answers == "same":  # the same draw every time: same fields, same answers
            return self.filler.fill(fields, random.Random(spam_seed))
        filled = self.filler.fill(fields, rng)
        filled.answers = {**self.example, **filled.answers}
        if behaviour.answers == "random":
            return filled
        if self.answer is not None:
            filled.answers = dict(self.answer(unit_input))  # the caller's answers, as given; files stay
        right = self.golds.answers(unit_input) if behaviour.answers == "right" else None
        if right:
            filled.answers.update(right)
            if rng.random() < behaviour.wrong_gold:
                by_name = {f.name: f for f in map(field_of, fields)}
                for name, value in right.items():
                    wrong = self.filler.wrong(by_name[name], value, rng) if name in by_name else None
                    filled.answers[name] = wrong if wrong is not None else f"not {value}"
        return filled
