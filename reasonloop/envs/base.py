"""The environment API: conversations, turns, rewards, and token-exact trajectories.

    env = make_env()                      # one fresh environment per trajectory
    messages = env.reset(problem)         # the opening conversation (system + user)
    step = env.step(assistant_text)       # the model's turn -> observation, reward, done
    while not step.done: ...

An environment answers each assistant turn with an observation (tool output, test feedback,
an opponent's move) as chat messages, a reward for that turn, and whether the episode is
over. Today's single-turn tasks are the one-turn case (`TaskEnv`): the first turn is graded
by `task.verify` and ends the episode, so their rewards are unchanged.

`Trajectory` is what a multi-turn sampler returns: the prompt's token ids, then every later
token in order, each marked as drawn by the sampler (`loss_mask` 1, with its logprob) or
inserted by the environment (observations and turn delimiters, `loss_mask` 0). Training reads
these ids; it never re-tokenizes the text (re-tokenizing can split differently and would
train on tokens the policy never drew).

Gymnasium's `reset/step` is the model for this API, but gymnasium itself is not used: its
spaces and vectorisation are built for array observations, not chat messages.
No torch here (layer 5).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypedDict, runtime_checkable

from reasonloop.types import Problem, Sample, split_steps

Role = Literal["system", "user", "assistant", "tool"]


class Message(TypedDict, total=False):
    """A chat message in the format `tokenizer.apply_chat_template` and OpenAI's API take."""

    role: Role
    content: str
    name: str  # a tool message: the tool that produced it
    tool_calls: list[dict]  # an assistant message: [{"type": "function", "function": {...}}]
    tool_call_id: str


@dataclass
class Step:
    """An environment's answer to one assistant turn."""

    observation: list[Message] = field(default_factory=list)
    """messages appended after the assistant's turn (empty when `done`, usually)"""
    reward: float = 0.0
    """this turn's reward (turn-level credit); the trajectory's reward is the sum over turns"""
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    """counts for logging: tool_calls, and error kinds (malformed_tool_call, unknown_tool, ...)"""


@runtime_checkable
class Environment(Protocol):
    """One episode's state. Build a fresh one per trajectory (`EnvFactory`)."""

    tools: list[dict]
    """JSON schemas of the tools the model may call (passed to the chat template); [] for none"""

    def reset(self, problem: Problem) -> list[Message]:
        """The opening conversation for `problem`."""
        ...

    def step(self, assistant: str) -> Step:
        """The model's turn (its text) -> observation, reward, done."""
        ...


EnvFactory = Callable[[], Environment]
"""A fresh environment per call: the unit samplers take (one call per trajectory)."""


@dataclass
class Limits:
    """Per-trajectory limits a multi-turn sampler enforces whatever the environment does."""

    max_turns: int = 4
    """assistant turns; a trajectory still running after this many ends with "max_turns\""""
    max_tokens: int = 1024
    """tokens after the prompt (sampled + inserted); the trajectory ends with "max_tokens\""""
    last_turn_notice: str = "This is your last turn: give your final answer now."
    """appended to the observation before the last allowed turn (counted as `last_turn_notice`);
    "" sends none. One assistant turn draws at most `SamplingParams.max_new_tokens`."""

    def __post_init__(self):
        if self.max_turns < 1 or self.max_tokens < 1:
            raise ValueError("Limits: max_turns and max_tokens must be >= 1")


Ending = Literal["done", "max_turns", "max_tokens"]


@dataclass
class Trajectory:
    """One multi-turn episode, token-exact.

    `token_ids` are the ids after the prompt, in order, `loss_mask[i]` is 1 when the sampler
    drew `token_ids[i]` (then `logprobs[i]` is its sampling logprob, the `Sample` contract)
    and 0 when the environment or the chat template inserted it (logprob 0.0). `turns[k]` is
    the (start, end) span of assistant turn k in `token_ids`, `turn_rewards[k]` its reward.
    `messages` is the conversation as text, for reading and for API backends.
    """

    problem_id: str
    prompt: str
    prompt_ids: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[tuple[int, int]] = field(default_factory=list)
    turn_rewards: list[float] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    ending: Ending = "done"
    counts: dict[str, int] = field(default_factory=dict)
    """tool_calls and error counts summed over turns (see `Step.info`)"""
    model_id: str = ""
    role: str = ""
    """the seat this trajectory played in a two-seat game ("X", "O"); "" for one-seat environments"""
    token_exact: bool = True
    """False when a backend could not return the exact ids (an API server without token ids):
    then only `messages` and `turn_rewards` are filled, and the trajectory cannot be trained on"""

    @property
    def reward(self) -> float:
        return float(sum(self.turn_rewards))

    @property
    def num_turns(self) -> int:
        return len(self.turn_rewards)

    @property
    def sampled_tokens(self) -> int:
        return sum(self.loss_mask)

    def assistant_texts(self) -> list[str]:
        return [m.get("content", "") for m in self.messages if m.get("role") == "assistant"]

    def check(self) -> None:
        """Raise ValueError when the parallel lists disagree (a sampler bug, not bad model output)."""
        n = len(self.token_ids)
        if len(self.loss_mask) != n or len(self.logprobs) != n:
            raise ValueError(f"trajectory {self.problem_id}: {n} tokens, {len(self.loss_mask)} mask entries, "
                             f"{len(self.logprobs)} logprobs")
        if any(not (0 <= a <= b <= n) for a, b in self.turns) or len(self.turn_rewards) != len(self.turns):
            raise ValueError(f"trajectory {self.problem_id}: turn spans {self.turns} / rewards {self.turn_rewards}")

    def to_sample(self, step_separator: str = "\n") -> Sample:
        """The trajectory as a `Sample` (the format every command reads).

        `token_ids`/`logprobs` are the trajectory's (environment tokens included); the mask,
        turn spans, turn rewards, prompt ids, ending and counts are in `meta`, so a trainer can
        train on exactly the drawn tokens. `rewards["correct"]` is 1.0 iff the reward is >= 1.
        """
        text = "\n".join(self.assistant_texts())
        return Sample(
            problem_id=self.problem_id, prompt=self.prompt, text=text, token_ids=list(self.token_ids),
            logprobs=list(self.logprobs), finish_reason="eos" if self.ending == "done" else "length",
            steps=split_steps(text, step_separator), rewards={"reward": self.reward,
                                                               "correct": float(self.reward >= 1.0)},
            model_id=self.model_id,
            meta={"loss_mask": list(self.loss_mask), "prompt_ids": list(self.prompt_ids),
                  "turns": [list(t) for t in self.turns], "turn_rewards": list(self.turn_rewards),
                  "ending": self.ending, "counts": dict(self.counts), "messages": list(self.messages),
                  **({"role": self.role} if self.role else {})},
        )


def add_counts(total: dict[str, int], info: dict[str, Any]) -> None:
    """Add a step's integer counts into a trajectory's `counts`."""
    for key, value in info.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def summarize(trajectories: list[Trajectory]) -> dict[str, float]:
    """Per-problem means for logs and eval: turns, tool calls, error counts, endings, reward."""
    n = max(len(trajectories), 1)
    counts: Counter[str] = Counter()
    for t in trajectories:
        counts.update(t.counts)
    out = {"trajectories": float(len(trajectories)),
           "reward": sum(t.reward for t in trajectories) / n,
           "turns": sum(t.num_turns for t in trajectories) / n,
           "sampled_tokens": sum(t.sampled_tokens for t in trajectories) / n,
           "inserted_tokens": sum(len(t.token_ids) - t.sampled_tokens for t in trajectories) / n}
    out.update({f"{k}_per_trajectory": v / n for k, v in sorted(counts.items())})
    for ending in ("max_turns", "max_tokens"):
        out[f"ended_{ending}"] = float(sum(t.ending == ending for t in trajectories))
    return out


class TaskEnv:
    """A single-turn task as an environment: one user message, one graded turn, done.

    The reward is `task.verify(problem, text)`, so results are the task's own. `system` is an
    optional system message.
    """

    tools: ClassVar[list[dict]] = []

    def __init__(self, task, system: str = ""):
        self.task, self.system = task, system
        self.problem: Problem | None = None

    def reset(self, problem: Problem) -> list[Message]:
        self.problem = problem
        opening: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return opening + [{"role": "user", "content": problem.prompt}]

    def step(self, assistant: str) -> Step:
        if self.problem is None:
            raise RuntimeError("TaskEnv.step before reset")
        return Step(reward=float(self.task.verify(self.problem, assistant)), done=True)


def task_env(task, system: str = "") -> EnvFactory:
    """The `EnvFactory` of a single-turn task."""
    return lambda: TaskEnv(task, system)
