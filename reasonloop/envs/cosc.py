"""Chain of Self-Correction (CoSC) as an environment: write a program, read its output, verify, revise.

    env = CoSCEnv(task.verify, max_rounds=3)
    env.reset(problem)                       # system: the CoSC protocol; user: the problem
    env.step("...\\n```python\\nprint(12*34)\\n```")
    # -> observation: "```output\\n408\\n```" and the request to verify it; the episode goes on
    env.step("The output is right. Answer: 408")   # no program: the final answer -> done, graded

Paper: Gao et al. 2024, "Embedding Self-Correction as an Inherent Ability in Large Language
Models for Enhanced Mathematical Reasoning" (CoSC, seed paper [000]). Each stage the model
generates a program, the program is executed, the model verifies the output against the
problem and either starts another correction stage or gives the final answer.

Here a stage is a turn of a conversation: a turn with a ```python block is a program (its last
block runs in the code sandbox, `envs.tools.PythonTool`: time, memory, process and output limits)
and the output comes back as the next user message, in CoSC's ```output block, with the request
to verify it; a turn without a program is the final answer (graded by `verify`, when given), and
so is any turn once `max_rounds` programs have run (that turn's program does not run; counted
as `round_limit`). The observation before that turn says no program will run any more.

Deviations from the paper: (1) the stages are chat turns (the output is a user message the
chat template renders) where CoSC writes program, output and verification into one generated
sequence with the output spliced in; (2) each program runs in a fresh interpreter (CoSC's
programs are self-contained); (3) the model is not fine-tuned on CoSC trajectories here (the
paper's two-phase GPT-4-seeded then self-generated fine-tuning): this is the inference
protocol, usable by any instruction model, by `search strategy=cosc`, `eval` and GRPO.
No torch here (layer 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from reasonloop.envs.base import Message, Step
from reasonloop.envs.tools import PythonTool, parse_tool_calls
from reasonloop.types import Problem

COSC_SYSTEM = ("Solve the problem with a Python program: write it in a ```python block and it will be run; "
               "its output comes back to you. Check the output against the problem. If it is wrong, write a "
               "corrected program; if it is right, give the final answer as 'Answer: <answer>' without a program.")
VERIFY_REQUEST = ("Verify this output against the problem. If it is right, give the final answer as "
                  "'Answer: <answer>' without a program; otherwise write a corrected program.")
LAST_ROUND = "No more programs will be run: give your final answer now as 'Answer: <answer>'."


def last_program(text: str) -> str | None:
    """The source of the turn's last ```python block, or None when the turn has none."""
    calls, _ = parse_tool_calls(text, python_blocks=True)
    programs = [c.arguments["code"] for c in calls if c.name == "python" and "code" in c.arguments]
    return programs[-1] if programs else None


class CoSCEnv:
    """One CoSC episode; see the module docstring.

    Args:
        verify: `(problem, final_text) -> reward` for the final answer (a task's `verify`); None gives
            reward 0 (a search strategy grades the selected answer itself).
        max_rounds: programs executed per episode (CoSC's correction stages).
        system: the system message stating the protocol.
        timeout: seconds per program in the sandbox.
        max_output_chars: program output shown to the model (the rest is cut, and the cut is said).
    """

    tools: ClassVar[list[dict]] = []

    def __init__(self, verify: Callable[[Problem, str], float] | None = None, max_rounds: int = 3,
                 system: str = COSC_SYSTEM, timeout: float = 5.0, max_output_chars: int = 1000):
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self.verify, self.max_rounds, self.system = verify, max_rounds, system
        self.timeout, self.max_output_chars = timeout, max_output_chars
        self.problem: Problem | None = None
        self.rounds = 0

    def reset(self, problem: Problem) -> list[Message]:
        self.problem, self.rounds = problem, 0
        opening: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return opening + [{"role": "user", "content": problem.prompt}]

    def _final(self, text: str, info: dict) -> Step:
        assert self.problem is not None
        reward = float(self.verify(self.problem, text)) if self.verify is not None else 0.0
        return Step(reward=reward, done=True, info=info)

    def step(self, assistant: str) -> Step:
        if self.problem is None:
            raise RuntimeError("CoSCEnv.step before reset")
        program = last_program(assistant)
        if program is None:
            return self._final(assistant, {})
        if self.rounds >= self.max_rounds:
            return self._final(assistant, {"round_limit": 1})
        self.rounds += 1
        result = PythonTool(self.timeout, max_output_chars=self.max_output_chars).run(program)
        info = {"code_runs": 1, **({result.error: 1} if result.error else {})}
        request = LAST_ROUND if self.rounds >= self.max_rounds else VERIFY_REQUEST
        output = f"```output\n{result.content.rstrip()}\n```\n{request}"
        return Step(observation=[{"role": "user", "content": output}], info=info)
