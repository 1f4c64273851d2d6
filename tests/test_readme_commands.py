"""The README's GSM8K commands run as written, at a tiny budget: the Hub model swapped for the local
Qwen2 + BPE + ChatML checkpoint and the Hub dataset for the GSM8K-format fixture, every other
setting (dtype, precision, LoRA, devices aside) kept, so a renamed key or a refused combination
in the README fails here."""

import re
import shlex
from pathlib import Path

import torch
from hf_models import build_chat_checkpoint

from reasonloop.cli import main

ROOT = Path(__file__).resolve().parent.parent
GSM8K = ROOT / "tests" / "fixtures" / "gsm8k.jsonl"
HUB_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
TINY = {
    "eval": ["num_problems=2", "samples_per_prompt=0", "max_new_tokens=6"],
    "grpo": ["steps=1", "prompts_per_step=2", "samples_per_prompt=2", "sampling.max_new_tokens=6",
             "micro_batch_size=4", "eval_problems=2", "eval_max_new_tokens=6"],
}


def readme_commands(section: str) -> list[list[str]]:
    """The `reasonloop ...` lines of the README section's bash blocks, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("reasonloop "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_gsm8k_commands_run_as_written(tmp_path, monkeypatch):
    commands = readme_commands("Real models: GSM8K with Qwen2.5-0.5B-Instruct")
    assert [c[0] for c in commands] == ["eval", "grpo", "eval", "eval", "grpo"]  # GPU: eval, train, eval; CPU
    chat = build_chat_checkpoint(tmp_path / "chat")
    monkeypatch.chdir(tmp_path)  # the second eval reads runs/<grpo run>/final, as written
    for args in commands:
        assert f"model.path={HUB_MODEL}" in args or "model.path=runs/" in args[1]
        local = [f"model.path={chat}"] if f"model.path={HUB_MODEL}" in args else []
        device = [] if torch.cuda.is_available() else ["model.device=cpu"]
        code = main([*args, *local, *device, f"task.source={GSM8K}", "task.split=train", *TINY[args[0]]])
        assert code == 0, args
    for run in ("eval-qwen-gsm8k", "grpo-qwen-gsm8k", "eval-grpo-gsm8k", "eval-qwen-gsm8k-cpu",
                "grpo-qwen-gsm8k-cpu"):
        assert (tmp_path / "runs" / run).is_dir()
    assert (tmp_path / "runs" / "grpo-qwen-gsm8k" / "final" / "config.json").exists()
