"""Tool-integrated reasoning: a task answered over several turns, with tools in between.

    env = ToolEnv(task, tools=[calculator_tool(), PythonTool().as_tool()])
    env.reset(problem)
    env.step('<tool_call>{"name": "calculator", "arguments": {"expression": "12*34"}}</tool_call>')
    # -> Step(observation=[{"role": "tool", "name": "calculator", "content": "408"}], done=False)
    env.step("Answer: 408")   # no call: the final answer, graded by task.verify -> done

Each turn either calls tools (every call in the turn runs, in order; results come back as
`tool` messages) or answers (no call: graded by `task.verify`, episode over). Bad model
output is data: a malformed call, an unknown tool, wrong arguments, a tool error or timeout,
or calls beyond the tool budget each become a message the model reads next turn and a count
in `Step.info`, never an exception.

Turn-level credit (MatchTIR, seed paper: rewards per tool-calling turn, not only for the
outcome) is optional: `call_reward` is added for a turn whose calls all succeeded and
`error_penalty` subtracted per error; both default to 0 (outcome reward only).

`LongArithmeticTask`: products and sums of numbers too long to compute reliably token by
token (default 6-10 digits); with the python or calculator tool the answer is exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from reasonloop.envs.base import Message, Step
from reasonloop.envs.tools import Tool, parse_tool_calls, run_call
from reasonloop.tasks.base import ProceduralTask, Split, check_common_config
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer, parse_int

TOOL_INSTRUCTIONS = ('To call a tool write <tool_call>{"name": NAME, "arguments": {...}}</tool_call>; '
                     "the result comes back in the next message.")


class ToolEnv:
    """A task answered with tools over several turns; see the module docstring.

    Args:
        task: anything with `verify(problem, completion) -> float` (the final turn's reward).
        tools: the tools the model may call.
        python_blocks: also treat fenced ```python blocks as calls of the `python` tool.
        max_tool_calls: calls allowed per trajectory; later calls are refused with a message.
        system: system message (default: the tools' names and the call format).
    """

    def __init__(self, task, tools: list[Tool], python_blocks: bool = False, max_tool_calls: int = 8,
                 system: str | None = None, call_reward: float = 0.0, error_penalty: float = 0.0,
                 max_output_chars: int = 2000):
        self.task, self.by_name = task, {t.name: t for t in tools}
        self.tools = [t.schema for t in tools]
        self.python_blocks, self.max_tool_calls = python_blocks, max_tool_calls
        self.call_reward, self.error_penalty, self.max_output_chars = call_reward, error_penalty, max_output_chars
        names = ", ".join(sorted(self.by_name))
        self.system = system if system is not None else f"Tools: {names}. {TOOL_INSTRUCTIONS}"
        self.problem: Problem | None = None
        self.calls_made = 0

    def reset(self, problem: Problem) -> list[Message]:
        self.problem, self.calls_made = problem, 0
        opening: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return opening + [{"role": "user", "content": problem.prompt}]

    def step(self, assistant: str) -> Step:
        if self.problem is None:
            raise RuntimeError("ToolEnv.step before reset")
        calls, errors = parse_tool_calls(assistant, python_blocks=self.python_blocks and "python" in self.by_name)
        if not calls and not errors:  # the final answer
            return Step(reward=float(self.task.verify(self.problem, assistant)), done=True, info={})
        info: dict[str, int] = {"tool_calls": 0}
        observation: list[Message] = []
        for error in errors:
            info[error.kind] = info.get(error.kind, 0) + 1
            observation.append({"role": "user", "content": f"Error: {error.message}. {TOOL_INSTRUCTIONS}"})
        for call in calls:
            if self.calls_made >= self.max_tool_calls:
                info["tool_budget_exceeded"] = info.get("tool_budget_exceeded", 0) + 1
                observation.append({"role": "user", "content": f"Tool budget of {self.max_tool_calls} calls used "
                                                               f"up: give your final answer now."})
                break
            self.calls_made += 1
            info["tool_calls"] += 1
            result = run_call(self.by_name, call, self.max_output_chars)
            if result.error:
                info[result.error] = info.get(result.error, 0) + 1
            observation.append({"role": "tool", "name": call.name, "content": result.content})
        n_errors = sum(v for k, v in info.items() if k != "tool_calls")
        reward = (self.call_reward if n_errors == 0 else 0.0) - self.error_penalty * n_errors
        return Step(observation=observation, reward=reward, done=False, info=info)


# ---------------------------------------------------------------------------------------
# Long-number arithmetic

@dataclass
class LongArithmeticConfig:
    split: Split = "train"
    size: int = 1000
    seed: int = 0
    min_digits: int = 6
    max_digits: int = 10
    operations: str = "*+"
    """which of + - * to draw (a * b, a + b, a - b; with "*+" also a * b + c)"""

    def __post_init__(self):
        check_common_config(self)
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}")
        if not self.operations or set(self.operations) - set("+-*"):
            raise ValueError(f"operations must be a non-empty string of + - *, got {self.operations!r}")


class LongArithmeticTask(ProceduralTask):
    """`a op b` (and `a * b + c`) on numbers of `min_digits`..`max_digits` digits; answer exact."""

    name = "long_arithmetic"
    description = "exact arithmetic on 6-10 digit numbers (tool use makes it reliable)"

    config_class = LongArithmeticConfig
    config: LongArithmeticConfig

    def _number(self, rng: random.Random) -> int:
        digits = rng.randint(self.config.min_digits, self.config.max_digits)
        return rng.randint(10 ** (digits - 1), 10**digits - 1)

    def _draw(self, rng: random.Random) -> Problem:
        ops = self.config.operations
        op = rng.choice(ops + ("^" if "*" in ops and "+" in ops else ""))  # ^ = a * b + c
        a, b = self._number(rng), self._number(rng)
        if op == "^":
            c = self._number(rng)
            expression, value = f"{a} * {b} + {c}", a * b + c
        else:
            expression, value = f"{a} {op} {b}", {"+": a + b, "-": a - b, "*": a * b}[op]
        prompt = f"Compute {expression} exactly. End with 'Answer: <number>'."
        return Problem(id="", prompt=prompt, answer=str(value), meta={"expression": expression,
                                                                       "solution": f"Answer: {value}"})

    def verify(self, problem: Problem, completion: str) -> float:
        """1.0 iff the final answer is the exact value.

        >>> t = LongArithmeticTask(); p = t[0]
        >>> t.verify(p, p.meta["solution"]), t.verify(p, "Answer: 1")
        (1.0, 0.0)
        """
        extraction = extract_answer(completion)
        if extraction.answer is None or extraction.hedged:
            return 0.0
        return float(parse_int(extraction.answer) == int(problem.answer))
