"""Multi-turn environments and tools (layer 5: no torch, no transformers at import).

`ENVS` is the registry: name -> builder `(spec options) -> (task, EnvFactory)`. Any registered
single-turn task name also works (the one-turn `TaskEnv`), and `tools=[python, calculator]` on
it gives a `ToolEnv` over that task.

    spec = EnvSpec("long_arithmetic", {"tools": ["python"]})
    task, make_env = spec.build(split="test", size=50, seed=0)
    env = make_env(); messages = env.reset(task[0]); step = env.step("...")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from reasonloop.envs.base import (
    EnvFactory,
    Environment,
    Limits,
    Message,
    Step,
    TaskEnv,
    Trajectory,
    add_counts,
    summarize,
    task_env,
)
from reasonloop.envs.code_repair import CodeRepairConfig, CodeRepairEnv, CodeRepairTask
from reasonloop.envs.cosc import CoSCEnv
from reasonloop.envs.game import (
    PerfectOpponent,
    RandomOpponent,
    SelfPlayGames,
    TicTacToeConfig,
    TicTacToeEnv,
    TicTacToeSelfPlay,
    TicTacToeTask,
    two_seat,
)
from reasonloop.envs.tool_env import LongArithmeticConfig, LongArithmeticTask, ToolEnv
from reasonloop.envs.tools import PythonTool, Tool, calculator_tool, parse_tool_calls, run_call

BUILTIN_TOOLS = {"python": lambda: PythonTool().as_tool(), "calculator": calculator_tool}
"""tool name -> a fresh tool (a PythonTool keeps per-trajectory state, so one per environment)"""

OPPONENTS = {"random": RandomOpponent, "perfect": PerfectOpponent}


def _split_options(options: dict[str, Any], config_cls: type, env_keys: set[str], name: str):
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - known - env_keys)
    if unknown:
        raise ValueError(f"env {name!r} has no option(s) {unknown}; valid: {sorted(known | env_keys)}")
    return ({k: v for k, v in options.items() if k in known}, {k: v for k, v in options.items() if k in env_keys})


def _tools(names: list[str]) -> list[Tool]:
    unknown = sorted(set(names) - set(BUILTIN_TOOLS))
    if unknown:
        raise ValueError(f"unknown tool(s) {unknown}; built-in tools: {sorted(BUILTIN_TOOLS)}")
    return [BUILTIN_TOOLS[n]() for n in names]


def _tool_env_factory(task, opts: dict[str, Any]) -> EnvFactory:
    names = list(opts.get("tools", []))
    _tools(names)  # validate now, not in the first rollout
    rest = {k: v for k, v in opts.items() if k != "tools"}
    if not names:
        return task_env(task, rest.get("system", ""))
    return lambda: ToolEnv(task, _tools(names), **rest)


def _long_arithmetic(options):
    config, opts = _split_options(options, LongArithmeticConfig, {"tools", "python_blocks", "max_tool_calls",
                                                                 "system", "call_reward", "error_penalty"},
                                  "long_arithmetic")
    task = LongArithmeticTask(LongArithmeticConfig(**config))
    return task, _tool_env_factory(task, opts)


def _code_repair(options):
    config, opts = _split_options(options, CodeRepairConfig, {"max_attempts", "system"}, "code_repair")
    task = CodeRepairTask(CodeRepairConfig(**config))
    return task, lambda: CodeRepairEnv(task, **opts)


def _tictactoe(options):
    config, opts = _split_options(options, TicTacToeConfig, {"opponent", "opponent_seed", "max_illegal", "system",
                                                              "eval_opponent"}, "tictactoe")
    kind = opts.pop("opponent", "random")
    if "eval_opponent" in opts and kind != "self":
        raise ValueError("eval_opponent is the opponent evaluation plays when opponent=self; with a fixed "
                         f"opponent ({kind!r}) evaluation plays that one")
    eval_kind = opts.pop("eval_opponent", "random")
    if kind not in {*OPPONENTS, "self"} or eval_kind not in OPPONENTS:
        raise ValueError(f"unknown opponent {kind!r} / eval_opponent {eval_kind!r}; opponent: {sorted(OPPONENTS)} or "
                         f"'self' (both seats are the policy), eval_opponent: {sorted(OPPONENTS)} (a frozen policy "
                         f"copy is built in code: rollout.multiturn.PolicyOpponent)")
    seed = opts.pop("opponent_seed", 0)
    task = TicTacToeTask(TicTacToeConfig(**config))
    if kind == "self":
        if config.get("split", "train") == "train":
            return task, SelfPlayGames(**opts)
        kind = eval_kind  # evaluation plays a fixed opponent (SPIRAL evaluates so)
    counter = iter(range(1 << 62))  # each environment's random opponent gets its own stream
    return task, lambda: TicTacToeEnv(RandomOpponent(seed + next(counter)) if kind == "random"
                                      else PerfectOpponent(), **opts)


def _cosc(options):
    """CoSC over any task: `task` (a task name), `task_options`, then the environment's own options."""
    from reasonloop.tasks.spec import UNBOUNDED, TaskSpec

    env_keys = {"max_rounds", "system", "timeout", "max_output_chars"}
    unknown = sorted(set(options) - env_keys - {"task", "task_options", "split", "size", "seed"})
    if unknown:
        raise ValueError(f"env 'cosc' has no option(s) {unknown}; valid: {sorted(env_keys | {'task', 'task_options'})}")
    size = None if options["size"] == UNBOUNDED else options["size"]
    name = options.get("task", "long_arithmetic")
    if name == "long_arithmetic":
        task = LongArithmeticTask(LongArithmeticConfig(**{**options.get("task_options", {}), "split": options["split"],
                                                          "size": options["size"], "seed": options["seed"]}))
    elif name in ENVS:
        raise ValueError(f"env 'cosc': task {name!r} is an environment of its own; name a task")
    else:
        task = TaskSpec(name=name, options=dict(options.get("task_options", {}))).build(
            split=options["split"], size=size, seed=options["seed"])
    opts = {k: v for k, v in options.items() if k in env_keys}
    CoSCEnv(**opts)  # validate now, not in the first rollout
    return task, lambda: CoSCEnv(task.verify, **opts)


ENVS = {"long_arithmetic": _long_arithmetic, "code_repair": _code_repair, "tictactoe": _tictactoe, "cosc": _cosc}


@dataclass
class EnvSpec:
    name: str = "long_arithmetic"
    """an environment from `ENVS`, or any task name (single-turn; with `tools` a ToolEnv)"""
    options: dict[str, Any] = field(default_factory=dict)
    """the task's config fields plus the environment's (tools, max_attempts, opponent, ...)"""

    @property
    def self_play(self) -> bool:
        """Both seats of a game are the policy (`tictactoe` with opponent=self)."""
        return self.options.get("opponent") == "self"

    def build(self, split: str, size: int | None, seed: int):
        """(task, EnvFactory) for `size` problems of `split` (None: a procedural stream, a dataset whole)."""
        from reasonloop.tasks.spec import UNBOUNDED, TaskSpec

        if self.name in ENVS:
            return ENVS[self.name]({**self.options, "split": split, "size": UNBOUNDED if size is None else size,
                                    "seed": seed})
        env_keys = {"tools", "python_blocks", "max_tool_calls", "system", "call_reward", "error_penalty"}
        task = TaskSpec(name=self.name, options={k: v for k, v in self.options.items() if k not in env_keys}).build(
            split=split, size=size, seed=seed)
        return task, _tool_env_factory(task, {k: v for k, v in self.options.items() if k in env_keys})


def build_env(spec: EnvSpec, split: str, size: int | None, seed: int):
    """`spec.build(...)` for a command: a bad name or option is the user's error (one line, exit status 2)."""
    from reasonloop.config import ConfigError

    try:
        return spec.build(split, size, seed)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"env (name {spec.name!r}): {str(e).strip(chr(39))}") from e


__all__ = [
    "BUILTIN_TOOLS",
    "ENVS",
    "CoSCEnv",
    "CodeRepairEnv",
    "CodeRepairTask",
    "EnvFactory",
    "EnvSpec",
    "Environment",
    "Limits",
    "LongArithmeticTask",
    "Message",
    "PerfectOpponent",
    "PythonTool",
    "RandomOpponent",
    "SelfPlayGames",
    "Step",
    "TaskEnv",
    "TicTacToeEnv",
    "TicTacToeSelfPlay",
    "TicTacToeTask",
    "Tool",
    "ToolEnv",
    "Trajectory",
    "add_counts",
    "build_env",
    "calculator_tool",
    "parse_tool_calls",
    "run_call",
    "summarize",
    "task_env",
    "two_seat",
]
