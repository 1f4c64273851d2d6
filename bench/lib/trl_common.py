"""What the TRL side of the GRPO/SFT benches shares: the step timer, the CPU fp32 settings and TRL's GRPO config.

`bench/real_size.py` (memory and speed at V = 151,936) and `bench/grpo_vs_trl.py` (learning from the
quickstart's base) run TRL with the same objective as reasonloop's `grpo`: group-std advantages,
PPO clip eps 0.2, token-mean loss (TRL's `loss_type="dapo"`), beta 0 (no reference model), one
iteration per batch, temperature 1.0 with no top-k/p, AdamW (0.9, 0.999) at a constant lr with no
weight decay and grad-clip 1.0; fp32 on the CPU without gradient checkpointing (docs cpu-baselines §4).
Only the batch shape, the completion length and the lr differ between the two benches.
"""

from __future__ import annotations

import time
from pathlib import Path

# CPU fp32, no checkpointing, nothing saved or reported during training: the same for GRPO and SFT
CPU_FP32 = {"bf16": False, "fp16": False, "use_cpu": True, "gradient_checkpointing": False, "logging_steps": 1,
            "report_to": "none", "save_strategy": "no", "dataloader_num_workers": 0, "seed": 0, "disable_tqdm": True}
# AdamW at a constant lr, as reasonloop's OptimConfig(schedule="constant", weight_decay=0.0, grad_clip=1.0)
OPTIM = {"lr_scheduler_type": "constant", "warmup_steps": 0, "weight_decay": 0.0, "adam_beta1": 0.9,
         "adam_beta2": 0.999, "max_grad_norm": 1.0}


def step_timer(times: list[float]):
    """A TrainerCallback appending each optimizer step's seconds to `times`."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    return StepTimer()


def grpo_config(out: Path, *, steps: int, rows_per_forward: int, accumulation: int, group: int,
                max_new_tokens: int, lr: float):
    """TRL's GRPOConfig for reasonloop's objective (module docstring); `rows_per_forward` x `accumulation` rows a step."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=rows_per_forward,
        gradient_accumulation_steps=accumulation, num_generations=group, max_completion_length=max_new_tokens,
        learning_rate=lr, beta=0.0, epsilon=0.2, num_iterations=1, loss_type="dapo", scale_rewards="group",
        temperature=1.0, top_p=1.0, top_k=0, use_vllm=False, shuffle_dataset=False, log_completions=False,
        **OPTIM, **CPU_FP32)


def load_model(path: Path):
    """The model both TRL trainers take: float32, from the local directory only."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)
