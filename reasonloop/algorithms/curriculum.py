"""Which problems to train on: online difficulty filtering and a self-evolving curriculum.

- **Online difficulty filtering** (Bae et al. 2025, "Online Difficulty Filtering for
  Reasoning Oriented RL"): keep a prompt only if the policy's pass rate on its group lies
  in a band [low, high]; intermediate accuracy maximises the variance of the reward and so
  the learning signal. DAPO's dynamic sampling is the special case (0, 1) exclusive: drop
  groups that are all right or all wrong. The loop refills the batch by sampling more
  prompts (`GRPOConfig.max_refill_rounds`).
- **Self-evolving curriculum, SEC** (Chen et al. 2025, arXiv:2505.14970): each category
  (a task, or a difficulty level of one task) is an arm of a non-stationary bandit. The
  reward of an arm at a step is the mean absolute advantage of its groups (a proxy for
  learning progress); its value is updated by TD(0), Q <- alpha * r + (1 - alpha) * Q,
  and categories are drawn with a Boltzmann policy softmax(Q / tau).

Deviations: SEC draws the categories of a whole batch from the policy; we draw one
category per prompt slot with a seeded `random.Random(seed, step)`, so a resumed run
draws the same categories. Arms never tried keep Q = 0 (the paper's initialisation).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from reasonloop.tasks.spec import TaskSpec


@dataclass
class CurriculumConfig:
    categories: list[str] = field(default_factory=list)
    """task categories as "task" or "task|key=value,key=value" (e.g. "arithmetic|max_ops=2");
    empty: train on `GRPOConfig.task` only"""
    strategy: str = "uniform"
    """"uniform" (each prompt slot picks a category uniformly) or "sec" (the bandit)"""
    alpha: float = 0.5
    """SEC TD(0) learning rate"""
    temperature: float = 0.2
    """SEC Boltzmann temperature tau (the paper uses 0.2 or 1.0 depending on the domain)"""

    def __post_init__(self):
        if self.strategy not in ("uniform", "sec"):
            raise ValueError(f"curriculum.strategy must be 'uniform' or 'sec', got {self.strategy!r}")
        if not 0 < self.alpha <= 1 or self.temperature <= 0:
            raise ValueError("curriculum.alpha must be in (0, 1] and curriculum.temperature > 0")
        for c in self.categories:
            parse_category(c)


def parse_category(text: str) -> TaskSpec:
    """'arithmetic|max_ops=2,min_ops=2' -> TaskSpec('arithmetic', {'max_ops': 2, 'min_ops': 2}).

    "|" separates the options because task names may contain ":" (reasoning_gym:chain_sum).
    """
    import yaml

    name, _, rest = text.partition("|")
    name = name.strip()
    options = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"curriculum category {text!r}: expected key=value, got {item!r}")
        options[key.strip()] = yaml.safe_load(value)
    if not name:
        raise ValueError(f"curriculum category {text!r}: no task name")
    return TaskSpec(name=name, options=options)


class SelfEvolvingCurriculum:
    """Boltzmann bandit over categories, updated by TD(0) on mean |advantage| (SEC)."""

    def __init__(self, num_arms: int, alpha: float = 0.5, temperature: float = 0.2):
        self.q = [0.0] * num_arms
        self.alpha, self.temperature = alpha, temperature

    def probabilities(self) -> list[float]:
        top = max(self.q)
        weights = [math.exp((q - top) / self.temperature) for q in self.q]
        total = sum(weights)
        return [w / total for w in weights]

    def choose(self, n: int, rng: random.Random) -> list[int]:
        return rng.choices(range(len(self.q)), weights=self.probabilities(), k=n)

    def update(self, arm_rewards: dict[int, float]) -> None:
        """arm -> this step's reward (mean |advantage| of its groups); arms not drawn keep Q."""
        for arm, r in arm_rewards.items():
            self.q[arm] = self.alpha * r + (1 - self.alpha) * self.q[arm]

    def state_dict(self) -> dict:
        return {"q": list(self.q)}

    def load_state_dict(self, state: dict) -> None:
        self.q = list(state["q"])


def choose_categories(num: int, num_arms: int, strategy: str, bandit: SelfEvolvingCurriculum | None,
                      rng: random.Random) -> list[int]:
    """One category index per prompt slot."""
    if num_arms == 1:
        return [0] * num
    if strategy == "sec":
        return bandit.choose(num, rng)
    return [rng.randrange(num_arms) for _ in range(num)]
