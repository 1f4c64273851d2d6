"""Ordering puzzles: recover a total order from comparisons, with a checkable proof.

    prompt:    "Facts: Cora is taller than Abe. Abe is taller than Eli. ... List everyone from
                tallest to shortest. ..."
    solution:  "Cora > Abe (given)
                Abe > Eli (given)
                Cora > Eli (from Cora > Abe and Abe > Eli)
                ...
                Answer: Cora, Abe, Eli, Dan"

Steps are facts in a tiny proof system, so each one is exactly checkable:
- `X > Y (given)` is correct iff "X is <relation> than Y" is among the stated facts;
- `X > Z (from X > Y and Y > Z)` is correct iff both premises are stated facts or were
  established by earlier steps, and the conclusion is their transitive composition.
A true fact presented as "given" when it was not stated is a wrong step (a hallucinated
premise), as is a reversed conclusion. The `Answer:` line is correct iff it lists everyone
in the right order (names separated by commas or `>`).

The stated facts always include every adjacent pair of the hidden order (otherwise the order
would not be determined) plus `distractors` true facts about non-adjacent pairs, all shuffled.

Difficulty knobs: number of people, number of distractor facts.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from reasonloop.tasks.base import ProceduralTask, Split, check_common_config
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer

NAMES = ["Abe", "Bea", "Cora", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena", "Milo", "Nora", "Otto", "Pia", "Quin", "Rosa", "Sam", "Tess", "Uma", "Vic", "Wes", "Xena", "Yuri", "Zoe"]
RELATIONS = (("taller", "tallest", "shortest"), ("older", "oldest", "youngest"),
             ("faster", "fastest", "slowest"), ("heavier", "heaviest", "lightest"))
_GIVEN = re.compile(r"^\s*(\w+)\s*>\s*(\w+)\s*\(\s*given\s*\)\s*\.?\s*$", re.IGNORECASE)
_DERIVED = re.compile(
    r"^\s*(\w+)\s*>\s*(\w+)\s*\(\s*from\s+(\w+)\s*>\s*(\w+)\s+and\s+(\w+)\s*>\s*(\w+)\s*\)\s*\.?\s*$", re.IGNORECASE
)


@dataclass
class OrderingConfig:
    size: int = 1000
    seed: int = 0
    split: Split = "train"
    min_people: int = 3
    max_people: int = 5
    distractors: int = 1
    """true facts about non-adjacent pairs added to the adjacent ones"""

    def __post_init__(self):
        check_common_config(self)
        if not 3 <= self.min_people <= self.max_people <= 10:
            raise ValueError(f"need 3 <= min_people <= max_people <= 10, got {self.min_people}..{self.max_people}")
        if not 0 <= self.distractors <= 10:
            raise ValueError(f"distractors must be 0-10, got {self.distractors}")


class OrderingTask(ProceduralTask):
    """Order people from shuffled pairwise comparisons; steps are checked proof lines."""

    name = "ordering"
    description = "order 3-10 people from shuffled comparisons; steps are transitivity proof lines"

    config_class = OrderingConfig
    config: OrderingConfig

    def _draw(self, rng: random.Random) -> Problem:
        c = self.config
        n = rng.randint(c.min_people, c.max_people)
        order = rng.sample(NAMES, n)
        relation, top_word, bottom_word = rng.choice(RELATIONS)
        facts = [(order[i], order[i + 1]) for i in range(n - 1)]
        others = [(order[i], order[j]) for i in range(n) for j in range(i + 2, n)]
        facts += rng.sample(others, min(c.distractors, len(others)))
        rng.shuffle(facts)
        # proof: walk down the chain, showing the first person beats everyone
        steps = [f"{order[0]} > {order[1]} (given)"]
        for k in range(1, n - 1):
            steps.append(f"{order[k]} > {order[k + 1]} (given)")
            steps.append(f"{order[0]} > {order[k + 1]} (from {order[0]} > {order[k]} and {order[k]} > {order[k + 1]})")
        answer = ", ".join(order)
        stated = " ".join(f"{a} is {relation} than {b}." for a, b in facts)
        return Problem(
            id="",
            prompt=(
                f"Facts: {stated} List everyone from {top_word} to {bottom_word}. Reason one fact per "
                f"line, writing `X > Y` for 'X is {relation} than Y', as either `X > Y (given)` for a "
                "stated fact or `X > Z (from X > Y and Y > Z)`; then a final line "
                "`Answer: <names separated by commas>`.\n"
            ),
            answer=answer,
            steps=steps,
            meta={"order": order, "facts": [list(f) for f in facts], "relation": relation,
                  "solution": "\n".join(steps + [f"Answer: {answer}"]), "difficulty": n},
        )

    # --- verification ---
    def verify(self, problem: Problem, completion: str) -> float:
        """1.0 iff the final answer lists everyone in the right order.

        >>> t = OrderingTask(); p = t[0]
        >>> t.verify(p, p.meta["solution"]), t.verify(p, "Answer: " + ", ".join(reversed(p.meta["order"])))
        (1.0, 0.0)
        """
        extraction = extract_answer(completion)
        if extraction.answer is None or extraction.hedged:
            return 0.0
        names = [n.strip().lower() for n in re.split(r"[,>]|\band\b", extraction.answer) if n.strip()]
        return float(names == [n.lower() for n in problem.meta["order"]])

    def check_step(self, problem: Problem, previous_steps: list[str], step: str) -> bool:
        if step.strip().lower().startswith("answer"):
            return self.verify(problem, step) == 1.0
        given = {(a.lower(), b.lower()) for a, b in problem.meta["facts"]}
        established = set(given)
        for earlier in previous_steps:
            fact = _conclusion(earlier)
            if fact:
                established.add(fact)
        if m := _GIVEN.match(step):
            return (m.group(1).lower(), m.group(2).lower()) in given
        if m := _DERIVED.match(step):
            x, z, p1, p2, q1, q2 = (g.lower() for g in m.groups())
            return (p1, p2) in established and (q1, q2) in established and p2 == q1 and (x, z) == (p1, q2)
        return False

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[str], int]:
        """A proof whose first wrong line is a reversed conclusion or an unstated "given"."""
        steps = list(problem.steps)
        order = problem.meta["order"]
        stated = {tuple(f) for f in problem.meta["facts"]}
        bad = rng.randrange(len(steps))
        m = _DERIVED.match(steps[bad])
        unstated = [(order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))
                    if (order[i], order[j]) not in stated]
        if m and rng.random() < 0.5:  # the transitive step drawn the wrong way round
            x, z = m.group(1), m.group(2)
            steps[bad] = f"{z} > {x} (from {m.group(3)} > {m.group(4)} and {m.group(5)} > {m.group(6)})"
        elif unstated and rng.random() < 0.5:  # a true fact claimed as given: a hallucinated premise
            a, b = rng.choice(unstated)
            steps[bad] = f"{a} > {b} (given)"
        else:  # a stated fact read backwards
            a, b = _conclusion(steps[bad])
            steps[bad] = f"{_name(order, b)} > {_name(order, a)} (given)"
        wrong_order = list(order)
        i = rng.randrange(len(order) - 1)
        wrong_order[i], wrong_order[i + 1] = wrong_order[i + 1], wrong_order[i]
        return steps + [f"Answer: {', '.join(wrong_order)}"], bad


def _conclusion(step: str) -> tuple[str, str] | None:
    m = _GIVEN.match(step) or _DERIVED.match(step)
    return (m.group(1).lower(), m.group(2).lower()) if m else None


def _name(order: list[str], lowered: str) -> str:
    return next(n for n in order if n.lower() == lowered)
