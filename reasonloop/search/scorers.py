"""Scorers: what ranks candidate solutions for best-of-N and guides step-level search.

    scorer.score(problems, solutions) -> one list of scores per (problem, solution steps)

A *process* scorer (PRM) returns one score in [0, 1] per step, so it can score partial
solutions and guide beam search, DVTS and MCTS. An *outcome* scorer (verifier, ORM)
returns a single score for a finished solution (a list of length 1) and can only rank
finished candidates (best-of-N, weighted best-of-N).

Built-in scorers (`SCORERS`, chosen by `ScorerConfig.kind`):

- `verifier`: the task's own answer check. An *oracle* outcome scorer: it knows the gold
  answer, so best-of-N with it measures pass@N, an upper bound, not a deployable method.
- `oracle_step`: the task's `check_step` ground truth. An *oracle PRM* (1 for each step
  up to the first error, 0 from it on): the upper bound of what a perfect PRM can give
  search. `flip_prob` flips each step label with that probability (a deterministic hash
  of problem, step index and text), to simulate an imperfect PRM of known error rate.
- `code`: a model-free, gold-free tool check (CoSC-style, Gao et al. 2024 "Embedding
  Self-Correction as an Inherent Ability"): every step of the form `<expression> =
  <value>` is executed in the `reasonloop.verify.code` sandbox and scores 1 iff Python
  evaluates the expression to the value; steps without an equation score 1 (nothing to
  check). It catches calculation slips, not a wrong choice of operands.
- `prm` / `orm`: a trained reward model (`reasonloop.models.reward_model.RewardModel`,
  trained by `reasonloop prm`); `orm` keeps only the last step's score.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from reasonloop.types import Problem

ScorerKind = Literal["outcome", "process"]


@runtime_checkable
class Scorer(Protocol):
    name: str
    kind: ScorerKind

    def score(self, problems: list[Problem], solutions: list[list[str]]) -> list[list[float]]:
        """Per-step scores (process) or a one-element list (outcome) for each solution."""
        ...


# ---------------------------------------------------------------------------------------
# Ground-truth scorers (oracles: they read the gold answer / the task's step checker)

class VerifierScorer:
    """Oracle outcome scorer: 1.0 iff the task's verifier accepts the solution."""

    kind: ScorerKind = "outcome"

    def __init__(self, task):
        self.task, self.name = task, "verifier"

    def score(self, problems, solutions):
        return [[float(self.task.verify(p, "\n".join(steps)))] for p, steps in zip(problems, solutions)]


def _flip(problem_id: str, index: int, step: str, prob: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}/{problem_id}/{index}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < prob


class OracleStepScorer:
    """Oracle PRM from the task's `check_step`: 1 for each step before the first error, then 0."""

    kind: ScorerKind = "process"

    def __init__(self, task, flip_prob: float = 0.0, seed: int = 0):
        if not hasattr(task, "check_step"):
            raise ValueError(f"task {task.name!r} has no check_step: the oracle step scorer needs step ground truth")
        if not 0 <= flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.task, self.flip_prob, self.seed = task, flip_prob, seed
        self.name = "oracle_step" if flip_prob == 0 else f"oracle_step(flip={flip_prob})"

    def score(self, problems, solutions):
        out = []
        for problem, steps in zip(problems, solutions):
            scores, ok = [], True
            for i, step in enumerate(steps):
                ok = ok and self.task.check_step(problem, steps[:i], step)
                label = ok != _flip(problem.id, i, step, self.flip_prob, self.seed) if self.flip_prob else ok
                scores.append(float(label))
            out.append(scores)
        return out


# ---------------------------------------------------------------------------------------
# Tool scorer: execute each step's arithmetic in the sandbox (no gold answer, no model)

_EQUATION = re.compile(r"^\s*([-+*/%()\d\s.]+?)\s*=\s*(-?\d+(?:\.\d+)?)\s*$")


def equation_checks(steps: list[str]) -> list[tuple[int, str, str]]:
    """(step index, expression, claimed value) of each step written `expr = value`.

    >>> equation_checks(["3 + 4 = 7", "Answer: 7", "7 * 2 = 15"])
    [(0, '3 + 4', '7'), (2, '7 * 2', '15')]
    """
    found = []
    for i, step in enumerate(steps):
        m = _EQUATION.match(step)
        if m and re.search(r"\d", m.group(1)):
            found.append((i, m.group(1), m.group(2)))
    return found


class CodeStepScorer:
    """Process scorer that executes every `expression = value` step in the code sandbox.

    One sandboxed interpreter per `score` call evaluates all equations of all solutions
    (a process start costs ~50 ms; one per step would dominate search time).
    """

    kind: ScorerKind = "process"
    name = "code"

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout

    def score(self, problems, solutions):
        from reasonloop.verify.code import SandboxLimits, run_python

        checks = [equation_checks(steps) for steps in solutions]
        jobs = [(expr, value) for found in checks for _, expr, value in found]
        verdicts: list[bool] = []
        if jobs:
            # one character per equation ("1" holds, "0" does not): output stays within the limit
            program = (
                "import json, sys\njobs = json.loads(sys.stdin.read())\nout = []\n"
                "for expr, value in jobs:\n"
                "    try:\n        out.append(abs(eval(expr, {'__builtins__': {}}) - float(value)) < 1e-9)\n"
                "    except Exception:\n        out.append(False)\n"
                "print(''.join('1' if ok else '0' for ok in out))\n"
            )
            limits = SandboxLimits(timeout=self.timeout, max_output_chars=len(jobs) + 1000)
            result = run_python(program, stdin=json.dumps(jobs), limits=limits)
            if result.verdict != "passed":
                raise RuntimeError(f"code scorer: sandbox run {result.verdict}: {result.stderr[-500:]}")
            verdicts = [c == "1" for c in result.stdout.strip()]
            if len(verdicts) != len(jobs):
                raise RuntimeError(f"code scorer: {len(verdicts)} verdicts for {len(jobs)} equations")
        out, at = [], 0
        for steps, found in zip(solutions, checks):
            scores = [1.0] * len(steps)
            for i, _, _ in found:
                scores[i] = float(verdicts[at])
                at += 1
            out.append(scores)
        return out


# ---------------------------------------------------------------------------------------
# Trained reward models

class RewardModelScorer:
    """A trained PRM (`kind="process"`) or ORM (`"outcome"`: the last step score only).

    `model` is anything with `score_steps(problem, steps) -> list[float]` (one score per
    step); when it also has `score_batch(prompts, steps)` (`models.reward_model.RewardModel`)
    all solutions of a call are scored in batched forward passes.
    """

    def __init__(self, model, kind: ScorerKind, name: str):
        if not hasattr(model, "score_steps"):
            raise TypeError(f"{type(model).__name__} has no score_steps(problem, steps)")
        self.model, self.kind, self.name = model, kind, name

    def score(self, problems, solutions):
        if hasattr(self.model, "score_batch"):
            raw = self.model.score_batch([p.prompt for p in problems], [list(s) for s in solutions])
        else:
            raw = [self.model.score_steps(p, s) if s else [] for p, s in zip(problems, solutions)]
        out = []
        for steps, scores in zip(solutions, raw):
            scores = [float(x) for x in scores] if steps else []
            out.append(scores if self.kind == "process" else scores[-1:] or [0.0])
        return out


# ---------------------------------------------------------------------------------------
# Config -> scorer

@dataclass
class ScorerConfig:
    kind: Literal["none", "verifier", "oracle_step", "code", "prm", "orm"] = "none"
    path: str = ""
    """reward-model directory for prm / orm"""
    flip_prob: float = 0.0
    """oracle_step only: probability of flipping each step label (a noisy oracle)"""
    seed: int = 0

    def __post_init__(self):
        if self.kind in ("prm", "orm") and not self.path:
            raise ValueError(f"scorer kind {self.kind!r} needs scorer.path (a trained reward model)")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if self.flip_prob and self.kind != "oracle_step":
            raise ValueError("flip_prob applies to kind=oracle_step only")


def make_scorer(cfg: ScorerConfig, task) -> Scorer | None:
    if cfg.kind == "none":
        return None
    if cfg.kind == "verifier":
        return VerifierScorer(task)
    if cfg.kind == "oracle_step":
        return OracleStepScorer(task, cfg.flip_prob, cfg.seed)
    if cfg.kind == "code":
        return CodeStepScorer()
    from reasonloop.models.reward_model import RewardModel

    model = RewardModel.from_pretrained(cfg.path, device="cpu")
    return RewardModelScorer(model, "process" if cfg.kind == "prm" else "outcome", f"{cfg.kind}:{cfg.path}")
