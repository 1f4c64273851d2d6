"""`reasonloop <command> [ARG] [--config FILE] [key.sub=value ...] [--print-config] [--resume] [--debug]`.

Every command is a Python function `main(cfg)` taking one typed config dataclass; the CLI
only resolves the config (defaults -> YAML -> overrides, see `reasonloop.config`) and
calls it. `COMMANDS` is the whole registry. Modules are imported only for the command
that runs, so `reasonloop --help` and `reasonloop list` start without torch.

Errors a person can fix (`reasonloop.config.UserError`: config, model, task, dataset row;
and missing or existing files) print one line naming what and where, exit status 2;
`--debug` re-raises them with the traceback. `reasonloop CMD --help` lists every config
key with its type, default and docstring (stdout, exit 0).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str
    config: str
    """name of the config dataclass in `module`"""
    help: str
    function: str = "main"
    positional: str | None = None
    """config field filled by bare positional arguments (e.g. `init-model DIR`; several fill a list field)"""
    distributed: bool = False
    """the config gets `cluster.*` keys: with `cluster.workers > 0` it runs on Ray workers (reasonloop.distributed)"""
    ranks: bool = False
    """`main` takes `ranks`: under torchrun (WORLD_SIZE > 1) it runs as one of several training ranks"""


COMMANDS: dict[str, Command] = {
    "init-model": Command("reasonloop.models.tiny", "TinyModelConfig", "write a tiny Llama model + local tokenizer",
                          function="main", positional="path"),
    "pretrain": Command("reasonloop.algorithms.pretrain", "PretrainConfig",
                        "teach a model a task's format from procedural solutions (some flawed)"),
    "sample": Command("reasonloop.rollout.sample", "SampleConfig", "sample and verify completions into a JSONL file",
                      distributed=True),
    "sft": Command("reasonloop.algorithms.sft", "SFTConfig", "fine-tune on a samples JSONL (completion-only loss)",
                   ranks=True),
    "selftrain": Command("reasonloop.algorithms.selftrain", "SelfTrainConfig",
                         "rejection-sampling self-training (STaR / ReST-EM / RFT)", distributed=True),
    "eval": Command("reasonloop.evaluate.run", "EvalConfig", "greedy accuracy, maj@k and pass@k on held-out problems",
                    distributed=True),
    # registered ahead of their modules so each is a one-line concern of its own file
    "distill": Command("reasonloop.algorithms.distill", "DistillConfig",
                       "generate rationales with a teacher sampler, keep the verified ones, fine-tune a student"),
    "dpo": Command("reasonloop.algorithms.dpo", "DPOConfig", "direct preference optimisation on correct/incorrect pairs",
                   ranks=True),
    "grpo": Command("reasonloop.algorithms.grpo", "GRPOConfig", "RL with verifiable rewards: the GRPO family",
                    distributed=True),
    "label": Command("reasonloop.algorithms.step_labels", "LabelConfig",
                     "automatic step labels: Monte-Carlo, binary search, node compression", distributed=True),
    "prm": Command("reasonloop.algorithms.prm", "PRMConfig", "train a process / outcome / value reward model",
                   ranks=True),
    "view": Command("reasonloop.view", "ViewConfig", "write one offline HTML page of a run: curves, samples, trees",
                    positional="run"),
    "compare": Command("reasonloop.evaluate.compare", "CompareConfig",
                       "does eval run B beat run A on the same problems (paired bootstrap)", positional="runs"),
    "search": Command("reasonloop.evaluate.search", "SearchConfig",
                      "test-time compute: majority, best-of-N, beam, DVTS, MCTS, self-correction", distributed=True),
}

LISTS = {"tasks", "commands"}

USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, FileExistsError, IsADirectoryError,
                                                 NotADirectoryError, PermissionError)
"""OS errors about the user's files; `reasonloop.config.UserError` (config, model, task, dataset row) is added
when the CLI runs a command. Each is printed as one line with exit status 2; anything else is a bug of ours
and keeps its traceback."""


def usage() -> str:
    lines = [
        "usage: reasonloop <command> [ARG] [--config FILE.yaml] [key.sub=value ...] [--print-config] [--resume] "
        + "[--debug]",
        "       reasonloop <command> --help     (every config key with its default and meaning)",
        "       reasonloop list {tasks,commands}",
        "",
        "commands:",
    ]
    lines += [f"  {name:<12} {c.help}" for name, c in COMMANDS.items()]
    lines += ["  list         list tasks or commands", "",
              "Bad input (config, file, dataset row, model or task name) is reported in one line, exit status 2;",
              "--debug shows the Python traceback instead."]
    return "\n".join(lines)


def command_help(name: str, command: Command, config_cls: type) -> str:
    from reasonloop.config import describe_config

    arg = f" [{command.positional.upper()}]" if command.positional else ""
    return "\n".join([
        f"usage: reasonloop {name}{arg} [--config FILE.yaml] [key.sub=value ...] [--print-config] [--resume] [--debug]",
        "", command.help, "",
        f"config keys ({config_cls.__name__}; defaults, then the YAML file, then key=value overrides):",
        *describe_config(config_cls),
    ])


def list_things(what: str) -> None:
    from reasonloop.config import ConfigError

    if what == "commands":
        for name, c in COMMANDS.items():
            print(f"{name:<12} {c.help}")
    elif what == "tasks":
        from reasonloop.tasks import describe_tasks

        for name, description in describe_tasks():
            print(f"{name:<24} {description}")
    else:
        raise ConfigError(f"expected one of {sorted(LISTS)}, got {what!r}")


def parse_args(argv: list[str], command: Command) -> tuple[str | None, list[str], bool, bool, bool]:
    """-> (yaml path, overrides, print_config, resume, help)"""
    from reasonloop.config import ConfigError

    yaml_path, overrides, print_config, resume, want_help = None, [], False, False, False
    bare: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            yaml_path = next(it, None)
            if yaml_path is None:
                raise ConfigError("--config needs a file path")
        elif arg.startswith("--config="):
            yaml_path = arg.split("=", 1)[1]
        elif arg == "--print-config":
            print_config = True
        elif arg == "--resume":
            resume = True
        elif arg in ("-h", "--help"):
            want_help = True
        elif "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        elif command.positional and not arg.startswith("-"):
            bare.append(arg)
        else:
            raise ConfigError(f"unrecognised argument {arg!r} (overrides are written key.sub=value; see --help)")
    if len(bare) == 1:
        overrides.insert(0, f"{command.positional}={bare[0]}")
    elif bare:  # several: a YAML list of quoted strings
        overrides.insert(0, f"{command.positional}=[{', '.join(json.dumps(b) for b in bare)}]")
    return yaml_path, overrides, print_config, resume, want_help


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `reasonloop grpo --help | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS and name != "list":
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS) + ["list"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"reasonloop: unknown command {name!r}{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    from reasonloop.config import UserError

    try:
        return run_command(name, rest)
    except (UserError, *USER_ERRORS) as e:
        if debug:
            raise
        print(f"reasonloop {name}: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"reasonloop {name}: interrupted", file=sys.stderr)
        return 130


def one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename and error.strerror:  # "[Errno 2] ..." -> "what: file"
        return f"{error.strerror}: {error.filename}"
    text = str(error).strip() or type(error).__name__
    return " ".join(part.strip() for part in text.splitlines())


def run_command(name: str, rest: list[str]) -> int:
    if name == "list":
        list_things(rest[0] if rest else "commands")
        return 0
    command = COMMANDS[name]
    yaml_path, overrides, print_config, resume, want_help = parse_args(rest, command)

    from reasonloop.config import dump_config, load_config

    module = importlib.import_module(command.module)
    config_cls = getattr(module, command.config)
    function = getattr(module, command.function)
    if command.distributed:
        from reasonloop.distributed import commands as distributed

        config_cls = distributed.with_cluster(config_cls)
        function = functools.partial(distributed.run, function)
    if want_help:
        print(command_help(name, command, config_cls))
        return 0
    if resume:
        overrides.append("resume=true")
    cfg = load_config(config_cls, yaml_path, overrides)
    if print_config:
        print(dump_config(cfg), end="")
        return 0
    from reasonloop.utils import quiet_hf

    quiet_hf()
    if command.ranks and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from reasonloop.distributed.training import torchrun_ranks

        with torchrun_ranks(name) as ranks:
            function(cfg, ranks=ranks)
        return 0
    function(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
