"""RL with verifiable rewards: GRPO and its family, in one loop.

One step, as `main` reads: the batch source draws `prompts_per_step` problems, samples
`samples_per_prompt` completions each with the policy being trained, scores them (the task's
verifier, optional shaping and PRM terms, `grpo_rewards.py`), repairs and filters the groups
(`grpo_batches.py`); each sample becomes a typed `TrainRow` (`grpo_update.py`); the group's rewards become
advantages; `num_iterations x minibatches` clipped (`grpo_update.update_policy`) policy-gradient steps update the policy; then
metrics, health alarms, eval and a checkpoint. Each variant (curriculum, Guide, dynamic
sampling, difficulty band, overlapped sampling) is a part chosen at config load in
`grpo_batches.py`, not a branch in the loop.

Papers (the maths lives in `rl_maths.py`, the data choices in `curriculum.py`):
- GRPO: Shao et al. 2024, DeepSeekMath, arXiv:2402.03300 (group-normalised advantages,
  PPO clipping, k3 KL in the loss, seq-mean-token-mean aggregation).
- Dr.GRPO: Liu et al. 2025, arXiv:2503.20783 (no std normalisation, constant normaliser).
- DAPO: Yu et al. 2025, arXiv:2503.14476 (clip-higher eps_high=0.28, dynamic sampling,
  token-mean loss, overlong filtering, soft overlong punishment).
- RLOO: Ahmadian et al. 2024, arXiv:2402.14740. REINFORCE++: Hu 2025, arXiv:2501.03262.
- SPIRAL: Liu et al. 2025, arXiv:2506.24119 (two-seat self-play, role-conditioned advantages:
  `advantage=rae`, `role_advantages.py`).
- Dual-clip PPO: Ye et al. 2020, arXiv:1912.09729. GPPO: Klear-Reasoner, arXiv:2508.07629.
- Online difficulty filtering: Bae et al. 2025, arXiv:2504.03380. SEC: Chen et al. 2025,
  arXiv:2505.14970. Guide: Nath et al. 2025, arXiv:2506.13923 (hints for all-wrong groups).

Old logprobs: the sampler returns log softmax(logits / T) of each drawn token from the
very weights being trained, before any update of this batch, i.e. exactly pi_old. So by
default (`old_logprobs="sampler"`) no extra forward pass is made, whatever
`num_iterations`; the training forward uses the same temperature T. `"recompute"` runs a
no-grad teacher-forced pass instead (needed when the sampler's numerics differ from the
trainer's, e.g. a bf16 or vLLM sampler). With top-k/top-p the tokens are drawn from the
truncated distribution but the logprobs are untruncated (the sampler contract), which is
what TRL and verl do too.

Rows whose loss term is exactly zero (advantage 0 and no KL in the loss, or fully masked)
are not run (`skip_zero_advantage`): same update, tested, much less work when many groups
have zero reward variance. The G samples of a prompt share one forward (and backward) of
the prompt's tokens (`share_prefix`, Prefix Grouper, arXiv:2506.05433); for Llama-family
models the training pass runs packed, without padding, and shares every prefix the samples
have in common, not only the prompt (`train_forward`, `models/packed.py`): same maths, tested.

`overlap_sampling` samples step t+1's batch on a second thread while step t trains, one
update behind (`overlap.py`, with the papers). Deviation, by design: the ratio is pi_theta /
pi_behaviour with the behaviour policy one update old, so clipping acts from the first
iteration, and the bandit choosing step t+1's categories has seen steps up to t-1. Resume
stays exact (the batch in flight is checkpointed).

Deviations from the papers, all deliberate:
- Fresh procedural problems every step (the papers loop over a fixed dataset).
- Dynamic sampling / difficulty filtering refill at most `max_refill_rounds` times, and Guide
  trains hinted samples under the hint-free prompt with the hinted logprobs as pi_old (the
  paper's importance ratio, clipped like any other): both in `grpo_batches.py`.
- KL "in the reward" subtracts kl_coef x the sequence's summed estimator (with the
  sampling logprobs standing in for the policy) before the advantages, as in PPO-RLHF.

Rewards beyond the verifier (`rewards`, `process_reward`, `process_mode`) and the papers behind
them: `grpo_rewards.py`.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from reasonloop.algorithms.common import OptimConfig, make_optimizer, make_scheduler
from reasonloop.algorithms.curriculum import (
    CurriculumConfig,
    SelfEvolvingCurriculum,
    parse_category,
)
from reasonloop.algorithms.grpo_batches import (
    BatchRecipe,
    BatchSource,
    Rollouts,
    make_batch_source,
)
from reasonloop.algorithms.grpo_rewards import (
    EXACT_PROCESS_REWARD,
    RewardSources,
    shaping_reward_keys,
    step_validity_metrics,
    token_process_advantages,
)
from reasonloop.algorithms.grpo_update import (
    TrainRow,
    recompute_old_logprobs,
    rows_from_rollouts,
    sequence_kl,
    update_policy,
)
from reasonloop.algorithms.health import HealthConfig, HealthMonitor, stop_message
from reasonloop.algorithms.offpolicy import OffPolicyConfig
from reasonloop.algorithms.rl_maths import (
    ADVANTAGES,
)
from reasonloop.algorithms.role_advantages import rae_advantages
from reasonloop.algorithms.trajectory_sft import trajectory_metrics
from reasonloop.config import dump_config
from reasonloop.envs import EnvSpec, Limits
from reasonloop.evaluate.accuracy import held_out_accuracy
from reasonloop.models.lora import LoRAConfig, load_trainable, merged
from reasonloop.models.policy import ModelConfig, encode_context, load_model
from reasonloop.models.precision import autocast
from reasonloop.rollout.factory import SamplerConfig, make_sampler, sync_weights
from reasonloop.rollout.multiturn import evaluate_env
from reasonloop.rollout.multiturn_api import multiturn_runner
from reasonloop.rollout.sampler import Sampler, SamplingParams
from reasonloop.store.checkpoint import load_trainer_state, save_checkpoint, save_model
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig
from reasonloop.tasks.base import StepTask
from reasonloop.tasks.spec import TaskSpec
from reasonloop.utils import console, seed_everything
from reasonloop.verify import get_reward
from reasonloop.verify.aggregate import AGGREGATIONS


@dataclass
class GRPOConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskSpec = field(default_factory=TaskSpec)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    steps: int = 50
    prompts_per_step: int = 8
    samples_per_prompt: int = 8
    """group size G"""
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=1024))
    # --- the objective
    advantage: Literal["grpo", "drgrpo", "rloo", "reinforce_pp", "rae"] = "grpo"
    """group advantages (`rl_maths.ADVANTAGES`), or "rae": SPIRAL's per-role moving baseline for self-play
    (`role_advantages.py`; needs env.name)"""
    rae_decay: float = 0.95
    """advantage=rae: the role baselines' moving-average decay (SPIRAL: 0.95)"""
    clip: Literal["ppo", "dual_clip", "gppo"] = "ppo"
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    """> clip_eps_low is DAPO's clip-higher (paper: 0.28)"""
    dual_clip_c: float = 3.0
    loss_agg: Literal["token_mean", "seq_mean", "constant"] = "token_mean"
    """"constant" divides by num_sequences x sampling.max_new_tokens (Dr.GRPO)"""
    kl_coef: float = 0.0
    """0: no reference model is loaded"""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    kl_in: Literal["loss", "reward"] = "loss"
    num_iterations: int = 1
    """passes over each batch (PPO epochs, GRPO's mu)"""
    minibatches: int = 1
    """optimizer steps per pass (the batch is split into this many mini-batches of groups)"""
    micro_batch_size: int = 8
    """rows per forward/backward (gradients accumulate to the mini-batch)"""
    micro_batch_tokens: int = 0
    """> 0: a micro-batch also stops before rows x longest (context + completion) exceeds this many tokens"""
    old_logprobs: Literal["sampler", "recompute"] = "sampler"
    skip_zero_advantage: bool = True
    """don't run rows whose loss term is exactly 0 (advantage 0, no KL in the loss): same update, less work"""
    share_prefix: bool = True
    """run each prefix the rows share (the prompt; with the packed forward also the first tokens their
    completions have in common) once in training passes: same maths, less work"""
    max_staleness: int = 0
    """with Ray rollout workers (`cluster.workers`): batches for steps t+1..t+k are sampled while step t
    trains (`distributed/async_grpo.py`); 0 is synchronous. k > 0 needs old_logprobs=recompute"""
    offpolicy: OffPolicyConfig = field(default_factory=OffPolicyConfig)
    """with old_logprobs=recompute: correction of the sampler's (stale or mismatched) log-probs against
    pi_old (`offpolicy.py`); its diagnostics are logged every step"""
    overlap_sampling: bool = False
    """sample step t+1's batch on a second thread while step t trains (one-step off-policy: the batch comes
    from the weights before step t's update; see `overlap.py`); exact resume is kept"""
    train_forward: Literal["auto", "packed", "hf"] = "auto"
    """training passes: "packed" (no padding in the linear layers, `models/packed.py`; Llama family, no LoRA),
    "hf" (the model's own padded forward), "auto" (packed where supported): same maths"""
    # --- rewards
    format_weight: float = 0.0
    """weight of `verify.answer_format_reward`: 1 if a final answer can be extracted (and does not hedge)"""
    overlong_weight: float = 0.0
    """weight of DAPO's soft overlong punishment (0 down to -1 over the last `overlong_cache` tokens)"""
    overlong_cache: int = 16
    overlong_filter: bool = False
    """truncated completions (finish_reason "length") get no loss (DAPO)"""
    rewards: dict[str, float] = field(default_factory=dict)
    """extra rewards added to the total, name -> weight: a `verify.REWARDS` name or `package.module:function`"""
    process_reward: str = ""
    """a trained `reasonloop prm` directory whose step scores enter as `process_mode` says; "task": the
    task's exact `check_step` as the PRM; "": none"""
    process_mode: Literal["posterior", "additive", "step"] = "posterior"
    process_weight: float = 0.5
    process_aggregate: Literal["min", "last", "prod", "mean"] = "min"
    """how step scores become one score per rollout (posterior and additive modes)"""
    # --- data selection
    dynamic_sampling: bool = False
    """drop zero-variance groups and refill the batch (DAPO)"""
    difficulty_band: list[float] = field(default_factory=list)
    """[low, high]: keep groups whose pass rate lies in the band (online difficulty filtering)"""
    max_refill_rounds: int = 4
    guide: bool = False
    """Guide: hinted regeneration for all-wrong groups"""
    # --- multi-turn environments (`reasonloop.envs`)
    env: EnvSpec = field(default_factory=lambda: EnvSpec(name=""))
    """a multi-turn environment (name from `envs.ENVS`, or a task name with options.tools); "": the
    single-turn `task`. Rewards are the environment's; tokens it inserts get no loss"""
    turn_limits: Limits = field(default_factory=Limits)
    """per-trajectory limits (turns, tokens); `sampling.max_new_tokens` bounds each turn"""
    turn_reward_weight: float = 0.0
    """MatchTIR-style turn-level credit: + weight x the group-normalised return of each turn's rewards
    (that turn's and later ones) on the turn's tokens, over the trajectory's outcome advantage"""
    guide_hint_steps: int = 1
    guide_fraction: float = 0.5
    # --- everything else
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-6, schedule="constant", beta2=0.99))
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """who samples: "torch" (the policy module itself) or "vllm" (its own engine, weights copied in after every
    optimizer step); GRPO trains the sampled weights, so a served "openai" model cannot be used"""
    health: HealthConfig = field(default_factory=HealthConfig)
    eval_problems: int = 200
    eval_every: int = 0
    """held-out greedy eval every N steps (0: before training and at the end only)"""
    eval_max_new_tokens: int = 1024
    save_every: int = 10
    keep_last: int = 2
    """checkpoints kept (the newest, always including the latest); 0 keeps all"""
    time_budget_s: float = 0.0
    """stop after the first step that ends past this many seconds of training (0: no limit);
    the final eval and checkpoint still run (the bench uses it for equal-wall-time comparisons)"""
    run_name: str = "grpo"
    log: LogConfig = field(default_factory=LogConfig)
    """trackers (jsonl always; tensorboard, wandb, mlflow) and whether rollouts are kept"""
    output_dir: str = "runs"
    seed: int = 0
    resume: bool = False

    def __post_init__(self):
        if self.steps < 1 or self.prompts_per_step < 1 or self.micro_batch_size < 1:
            raise ValueError("steps, prompts_per_step and micro_batch_size must be >= 1")
        if self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be >= 2 for group advantages, got {self.samples_per_prompt}")
        if self.sampling.greedy:
            raise ValueError("sampling.temperature must be > 0: GRPO needs diverse samples")
        if not 0 <= self.clip_eps_low < 1 or self.clip_eps_high < 0 or self.dual_clip_c <= 1:
            raise ValueError("need 0 <= clip_eps_low < 1, clip_eps_high >= 0, dual_clip_c > 1")
        if self.num_iterations < 1 or self.minibatches < 1 or self.minibatches > self.prompts_per_step:
            raise ValueError("num_iterations >= 1 and 1 <= minibatches <= prompts_per_step")
        if self.kl_coef < 0 or self.format_weight < 0 or self.overlong_weight < 0:
            raise ValueError("kl_coef, format_weight and overlong_weight must be >= 0")
        if self.overlong_weight > 0 and not 0 < self.overlong_cache <= self.sampling.max_new_tokens:
            raise ValueError(f"overlong_cache must be in (0, sampling.max_new_tokens={self.sampling.max_new_tokens}]")
        if self.difficulty_band and (len(self.difficulty_band) != 2
                                     or not 0 <= self.difficulty_band[0] <= self.difficulty_band[1] <= 1):
            raise ValueError(f"difficulty_band must be [low, high] with 0 <= low <= high <= 1, got {self.difficulty_band}")
        if self.env.name and (self.guide or self.process_reward or self.rewards or self.format_weight
                              or self.overlong_weight or self.curriculum.categories):
            raise ValueError("env: rewards come from the environment; guide, process_reward, rewards, format_weight, "
                             "overlong_weight and curriculum.categories do not apply")
        if self.advantage == "rae" and (not self.env.name or not 0 <= self.rae_decay < 1 or self.turn_reward_weight):
            raise ValueError("advantage=rae needs env.name (roles come from an environment's seats), 0 <= rae_decay "
                             "< 1 and turn_reward_weight=0 (turn credit is normalised over a group's turns, which "
                             "would mix the seats again; not implemented per role)")
        if self.env.self_play and (self.advantage != "rae" or self.samples_per_prompt % 2):
            raise ValueError("env.options.opponent=self trains both seats: set advantage=rae (group means across "
                             "seats mix the roles) and an even samples_per_prompt (two trajectories per game)")
        if self.turn_reward_weight < 0 or (self.turn_reward_weight and not self.env.name):
            raise ValueError("turn_reward_weight must be >= 0 and needs env.name (turns come from an environment)")
        if self.guide and (self.guide_hint_steps < 1 or not 0 < self.guide_fraction <= 1):
            raise ValueError("guide needs guide_hint_steps >= 1 and 0 < guide_fraction <= 1")
        if self.max_refill_rounds >= 999:
            raise ValueError("max_refill_rounds must be < 999 (it indexes the per-step sampling seeds)")
        if self.time_budget_s < 0:
            raise ValueError("time_budget_s must be >= 0")
        if self.process_weight < 0:
            raise ValueError(f"process_weight must be >= 0, got {self.process_weight}")
        for name in self.rewards:
            if name in ("correct", "format", "length", "prm", "total"):
                raise ValueError(f"rewards.{name}: the name is taken by a built-in reward term; rename it")
            get_reward(name)  # KeyError naming the bad reward at config load, not at step 1
        if self.process_aggregate not in AGGREGATIONS:
            raise ValueError(f"process_aggregate {self.process_aggregate!r} not in {AGGREGATIONS}")
        if self.sampler.kind == "openai":
            raise ValueError("sampler.kind=openai: GRPO trains the weights it samples from; use torch or vllm")
        if self.sampler.kind == "vllm" and self.old_logprobs != "recompute":
            raise ValueError("sampler.kind=vllm needs old_logprobs=recompute: vLLM's log-probs come from other "
                             "kernels (and precision) than the trainer's, so they are not pi_old to the trainer")
        if self.sampler.kind == "vllm" and self.overlap_sampling:
            raise ValueError("overlap_sampling copies the policy into a second sampler; with sampler.kind=vllm that "
                             "is a second vLLM engine: turn one of them off")
        if self.overlap_sampling and self.old_logprobs != "sampler":
            raise ValueError("overlap_sampling needs old_logprobs='sampler': the batch comes from the weights before "
                             "the last update, and only the sampler's logprobs are that behaviour policy's")
        if self.max_staleness < 0:
            raise ValueError(f"max_staleness must be >= 0, got {self.max_staleness}")
        if self.max_staleness > 0 and (self.old_logprobs != "recompute" or self.overlap_sampling):
            raise ValueError("max_staleness > 0 needs old_logprobs=recompute (pi_old from the trainer; the stale "
                             "sampler log-probs are corrected by `offpolicy`) and overlap_sampling=false")
        if (self.save_every < 0 or self.keep_last < 0 or self.micro_batch_tokens < 0 or self.eval_every < 0
                or self.eval_problems < 0 or self.max_refill_rounds < 0):
            raise ValueError("save_every, keep_last, micro_batch_tokens, eval_every, eval_problems and "
                             "max_refill_rounds must be >= 0")

    @property
    def optimizer_steps(self) -> int:
        return self.steps * self.num_iterations * self.minibatches


# ---------------------------------------------------------------------------------------
# Loading the policy (optional LoRA, optional frozen reference)


def load_policy(cfg: GRPOConfig, checkpoint: Path | None):
    """(model, tokenizer) ready to train, from the checkpoint when resuming."""
    return load_trainable(cfg.model, cfg.lora, checkpoint)


# ---------------------------------------------------------------------------------------
# Advantages


def turn_token_advantages(rows: list[TrainRow], weight: float) -> list[list[float]]:
    """Per-token advantages of one group's multi-turn rows: the row's outcome advantage, plus on each
    assistant turn's tokens `weight` x that turn's return (its reward and every later turn's),
    normalised over all turns of the group (mean 0, std 1; std 0 -> only the mean removed).

    MatchTIR (turn-level credit for tool-integrated reasoning) assigns rewards per turn; this is the
    group-relative form of it. Tokens outside turns (environment tokens) get the outcome advantage,
    which the token mask then zeroes.

    >>> rows = [TrainRow(0, [], [], [1, 2, 3], [0.0] * 3, 1.0, advantage=0.5, token_mask=[1, 0, 1],
    ...                  turns=[(0, 1), (2, 3)], turn_rewards=[0.0, 1.0]),
    ...         TrainRow(0, [], [], [4], [0.0], 0.0, advantage=-0.5, token_mask=[1], turns=[(0, 1)],
    ...                  turn_rewards=[0.0])]
    >>> [[round(a, 3) for a in r] for r in turn_token_advantages(rows, 1.0)]  # returns 1, 1 | 0: mean 2/3, std 0.471
    [[1.207, 0.5, 1.207], [-1.914]]
    """
    returns = [[sum(r.turn_rewards[k:]) for k in range(len(r.turns))] for r in rows]
    flat = [x for xs in returns for x in xs]
    mean = sum(flat) / max(1, len(flat))
    std = (sum((x - mean) ** 2 for x in flat) / max(1, len(flat))) ** 0.5
    out = []
    for r, rets in zip(rows, returns):
        values = [r.advantage] * len(r.completion)
        for (a, b), ret in zip(r.turns, rets):
            bonus = weight * (ret - mean) / (std if std > 0 else 1.0)
            values[a:b] = [r.advantage + bonus] * (b - a)
        out.append(values)
    return out


def assign_advantages(cfg: GRPOConfig, rows: list[TrainRow], rollouts: Rollouts, sources: RewardSources,
                      decode, state: dict | None = None) -> torch.Tensor:
    """Group advantages into each row (and per-token process advantages in "step" mode); returns (P, G).

    `advantage=rae` reads and updates the role baselines in `state["role_baselines"]` (checkpointed)."""
    group_rewards = torch.tensor([r.reward for r in rows]).view(len(rollouts.groups), cfg.samples_per_prompt)
    if cfg.advantage == "rae":
        roles = [s.meta.get("role", "") for g in rollouts.groups for s in g.samples]
        played = torch.tensor([not r.masked for r in rows])
        state = state if state is not None else {}
        flat, state["role_baselines"] = rae_advantages(group_rewards.flatten(), roles, played,
                                                       state.get("role_baselines", {}), cfg.rae_decay)
        advantages = flat.view_as(group_rewards)
    else:
        advantages = ADVANTAGES[cfg.advantage](group_rewards)  # (P, G)
    for r, a in zip(rows, advantages.flatten().tolist()):
        r.advantage = a
    if cfg.turn_reward_weight > 0:
        G = cfg.samples_per_prompt
        for g in range(len(rollouts.groups)):
            for r, values in zip(rows[g * G: (g + 1) * G], turn_token_advantages(rows[g * G: (g + 1) * G],
                                                                                cfg.turn_reward_weight)):
                r.token_advantages = values
    if sources.has_process and cfg.process_mode == "step":
        G = cfg.samples_per_prompt
        for g, group in enumerate(rollouts.groups):
            chunk = rows[g * G: (g + 1) * G]
            per_token = token_process_advantages(cfg, group.samples, [r.advantage for r in chunk], decode,
                                                 sources.step_separator)
            for r, values in zip(chunk, per_token):
                r.token_advantages = values
    return advantages


# ---------------------------------------------------------------------------------------
# The loop


@dataclass
class Trainer:
    """Everything a run holds across steps (built once by `setup`)."""

    run: RunDir
    model: torch.nn.Module
    tokenizer: object
    ref_model: torch.nn.Module | None
    sampler: Sampler
    optimizer: torch.optim.Optimizer
    scheduler: object
    sources: RewardSources
    tasks: list
    bandit: SelfEvolvingCurriculum
    monitor: HealthMonitor
    eval_task: object
    batches: BatchSource
    state: dict
    """step, cursors (one per category), train_seconds: what a checkpoint restores"""
    model_config: ModelConfig

    def encode(self, prompt: str) -> list[int]:
        """A prompt's token ids as the sampler formats them (the one encoding, `models.policy.encode_context`)."""
        return encode_context(self.tokenizer, prompt, use_chat_template=self.model_config.use_chat_template,
                              system_prompt=self.model_config.system_prompt)

    eval_env: object = None
    """the environment factory of `eval_task` (multi-turn runs), else None"""

    def evaluate(self, cfg: GRPOConfig) -> dict:
        if self.eval_env is not None:  # greedy trajectories: accuracy, turns and tool calls per problem
            return evaluate_env(multiturn_runner(self.sampler, self.eval_env), list(self.eval_task), self.eval_env,
                                cfg.turn_limits, cfg.eval_max_new_tokens)[0]
        return held_out_accuracy(self.sampler, self.eval_task, cfg.eval_max_new_tokens)


def setup(cfg: GRPOConfig, make_source=None) -> Trainer:
    """Load the policy (from the latest checkpoint when resuming), rewards, tasks and the batch source.

    `make_source(recipe) -> BatchSource` replaces the in-process sources (Ray rollout workers)."""
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume, log=cfg.log)
    seed_everything(cfg.seed)
    latest = run.latest_checkpoint() if cfg.resume else None
    model, tokenizer = load_policy(cfg, latest)
    device = next(model.parameters()).device
    ref_model = None
    if cfg.kl_coef > 0 and cfg.lora.r == 0:  # always the *base* weights, also when resuming
        ref_model, _ = load_model(cfg.model, for_training=False)

    def sampler_over(policy) -> Sampler:
        return make_sampler(cfg.sampler, cfg.model, policy=policy, tokenizer=tokenizer)

    sampler = sampler_over(model)
    sources = RewardSources.load(cfg, device=str(device))
    optimizer = make_optimizer(model.parameters(), cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.optimizer_steps)
    specs = [parse_category(c) for c in cfg.curriculum.categories] or [cfg.task]
    # size=None: a dataset task whole (walked by epochs), a procedural task as an unbounded stream
    tasks = [spec.build(split="train", size=None, seed=cfg.seed + k) for k, spec in enumerate(specs)] \
        if not cfg.env.name else []
    make_env = eval_task = eval_env = None
    if cfg.env.name:
        task, make_env = cfg.env.build(split="train", size=None, seed=cfg.seed)
        tasks = [task]
        if cfg.eval_problems:
            eval_task, eval_env = cfg.env.build(split="test", size=cfg.eval_problems, seed=cfg.seed)
    elif cfg.eval_problems:
        eval_task = cfg.task.build(split="test", size=cfg.eval_problems, seed=cfg.seed)
    if sources.exact_steps and not all(isinstance(t, StepTask) for t in tasks):
        raise ValueError(f"process_reward={EXACT_PROCESS_REWARD!r} needs tasks that check steps (check_step); "
                         f"{[s.name for s, t in zip(specs, tasks) if not isinstance(t, StepTask)]} cannot")
    recipe = BatchRecipe.from_config(cfg, tasks, sources, make_env)
    trainer = Trainer(
        run, model, tokenizer, ref_model, sampler, optimizer, scheduler, sources, tasks,
        bandit=SelfEvolvingCurriculum(len(tasks), cfg.curriculum.alpha, cfg.curriculum.temperature),
        monitor=HealthMonitor(cfg.health, shaping_keys=shaping_reward_keys(cfg)),
        eval_task=eval_task,
        batches=make_source(recipe) if make_source else make_batch_source(cfg, recipe, sampler, model, sampler_over),
        state={"step": 0, "cursors": recipe.start_cursors()}, model_config=cfg.model, eval_env=eval_env)
    if latest is not None:
        trainer.state = load_trainer_state(latest, optimizer, scheduler)
        trainer.bandit.load_state_dict(trainer.state.pop("bandit"))
        trainer.monitor.load_state_dict(trainer.state.pop("health"))
        trainer.batches.resume(trainer.state.pop("pending_batch", None))
        run.truncate_metrics(lambda r: r.get("step", 0) <= trainer.state["step"])
        console.print(f"grpo: resuming {run.root} from step {trainer.state['step']}")
    return trainer


def main(cfg: GRPOConfig, make_source=None) -> dict:
    """`make_source(recipe) -> BatchSource`: batches from elsewhere (`distributed.async_grpo`, `cluster.*`)."""
    if cfg.max_staleness > 0 and make_source is None:
        raise ValueError("max_staleness > 0 needs Ray rollout workers: set cluster.workers >= 1")
    t = setup(cfg, make_source)
    device = next(t.model.parameters()).device
    pad_id = t.tokenizer.pad_token_id
    history = t.run.read_metrics()
    if t.state["step"] == 0:
        history = [{"step": 0, **t.evaluate(cfg)}]
        t.run.log(history[0])
    for step in range(t.state["step"] + 1, cfg.steps + 1):
        t_step = time.perf_counter()
        rng = random.Random(f"{cfg.seed}/{step}")  # all randomness of a step is a function of (seed, step)

        # --- draw, sample, score, filter (or take the batch sampled during the last step)
        rollouts, waited = t.batches.next(step, t.bandit, t.state["cursors"], rng, t.model)
        t.state["cursors"] = rollouts.cursors
        rows = rows_from_rollouts(rollouts, t.encode, cfg.overlong_filter)
        metrics: dict = {"step": step}
        if rows:
            # --- pi_old, KL-shaped rewards, advantages
            if cfg.old_logprobs == "recompute":
                versions = [s.meta.get("policy_version", step) for g in rollouts.groups for s in g.samples]
                metrics.update(recompute_old_logprobs(cfg, t.model, rows, pad_id, device, versions, step))
            if cfg.kl_coef > 0 and cfg.kl_in == "reward":
                for r, kl in zip(rows, sequence_kl(cfg, t.model, t.ref_model, rows, pad_id, device)):
                    r.reward -= cfg.kl_coef * kl
            advantages = assign_advantages(cfg, rows, rollouts, t.sources,
                                           lambda token: t.tokenizer.decode([token], skip_special_tokens=True),
                                           t.state)
            t.bandit.update(mean_abs_advantage_per_arm(rollouts.arms, advantages))

            # --- policy update: num_iterations passes x minibatches optimizer steps
            t_train = time.perf_counter()
            with autocast(t.model):  # model.precision: bf16 maths over float32 master weights when mixed_bf16
                metrics.update(update_policy(cfg, t.model, t.ref_model, t.optimizer, t.scheduler, rows,
                                             len(rollouts.groups), pad_id, device, rng))
            metrics["time/train"] = time.perf_counter() - t_train
            sync_weights(t.sampler, t.model)  # a sampler with its own copy (vLLM) takes the new weights
        else:
            console.print(f"[yellow]grpo step {step}: no usable group after filtering; no update[/yellow]")

        # --- metrics, health alarms, eval, checkpoint
        metrics.update(step_metrics(cfg, rollouts, t))
        metrics["time/sample_wait"] = waited  # how long the step waited for its batch
        metrics["time/step"] = time.perf_counter() - t_step  # training only: eval time is logged apart
        t.state["train_seconds"] = t.state.get("train_seconds", 0.0) + metrics["time/step"]
        last = step == cfg.steps or bool(cfg.time_budget_s and t.state["train_seconds"] >= cfg.time_budget_s)
        if last or (cfg.eval_every and step % cfg.eval_every == 0):
            t_eval = time.perf_counter()
            metrics.update(t.evaluate(cfg))
            metrics["time/eval"] = time.perf_counter() - t_eval
        for alarm in t.monitor.update(step, metrics):
            console.print(f"[yellow]grpo step {step}: health alarm {alarm.name}: {alarm.message}[/yellow]")
        metrics.update(t.monitor.metrics())
        stop = t.monitor.should_stop()  # an alarm in health.stop_on: checkpoint, then end the run
        last = last or stop is not None
        t.run.log(metrics)
        t.run.write_rollouts(step, rollouts.all_samples)
        history.append(metrics)
        console.print(f"grpo step {step}/{cfg.steps}: reward {metrics['reward/mean']:.3f} "
                      f"correct {metrics['reward/correct']:.3f} len {metrics['len/mean']:.1f} "
                      f"({metrics['time/step']:.2f}s)", highlight=False)
        t.state["step"] = step
        if last or (cfg.save_every and step % cfg.save_every == 0):
            save(cfg, t, step, last)
        if stop is not None:
            t.state["stopped"] = stop_message(stop, str(t.run.checkpoint_path(step)))
            console.print(f"[red]grpo: {t.state['stopped']}[/red]")
        if last:
            break
    t.batches.close()
    return finish(cfg, t, history)


def mean_abs_advantage_per_arm(arms: list[int], advantages: torch.Tensor) -> dict[int, float]:
    """SEC's learning-progress signal: each category's mean |advantage| over its groups this step."""
    per_arm: dict[int, list[float]] = {}
    for arm, value in zip(arms, advantages.abs().mean(1).tolist()):
        per_arm.setdefault(arm, []).append(value)
    return {arm: sum(v) / len(v) for arm, v in per_arm.items()}


def step_metrics(cfg: GRPOConfig, rollouts: Rollouts, t: Trainer) -> dict:
    """Rewards, group statistics, lengths and curriculum values of one step's samples."""
    samples, stats = rollouts.all_samples, rollouts.stats
    n = max(1, len(samples))
    lengths = [s.num_tokens for s in samples]
    metrics = {
        "reward/mean": sum(s.rewards["total"] for s in samples) / n,
        "reward/correct": sum(s.rewards["correct"] for s in samples) / n,
        "reward/format": sum(s.rewards["format"] for s in samples) / n,
        "reward/length": sum(s.rewards["length"] for s in samples) / n,
        **{f"reward/{name}": sum(s.rewards[name] for s in samples) / n
           for name in [*t.sources.extra, *(["prm"] if t.sources.has_process else [])]},
        "groups/sampled": stats.sampled, "groups/kept": len(rollouts.groups), "groups/rounds": stats.rounds,
        "groups/zero_variance_frac": stats.zero_variance / max(1, stats.sampled),
        "groups/guided": stats.guided,
        "len/mean": sum(lengths) / n, "len/max": max(lengths, default=0),
        "len/truncated_frac": sum(s.finish_reason == "length" for s in samples) / n,
        "tokens/generated": sum(lengths),
        **({f"curriculum/q{k}": q for k, q in enumerate(t.bandit.q)} if len(t.tasks) > 1 else {}),
        **epochs_drawn(rollouts.cursors, t.tasks),
        **step_validity_metrics(samples),
        "time/sample": rollouts.seconds,  # sampling + rewards, on the overlap thread when overlapping
        **(env_metrics(samples) if cfg.env.name else {}),
        **{f"rae/baseline/{role}": b for role, b in t.state.get("role_baselines", {}).items()},
    }
    return metrics


def env_metrics(samples: list) -> dict[str, float]:
    """Multi-turn batches: `trajectory_metrics` (turns, tokens, every count per trajectory), and in
    two-seat games each seat's mean reward."""
    seats: dict[str, list[float]] = {}
    for s in samples:
        if s.meta.get("role"):
            seats.setdefault(s.meta["role"], []).append(s.rewards["total"])
    return {**trajectory_metrics(samples),
            **{f"env/reward/{role}": sum(v) / len(v) for role, v in sorted(seats.items())}}


def epochs_drawn(cursors: list[dict], tasks: list) -> dict[str, float]:
    """Epochs drawn so far from each finite dataset (`data/epochs`, or `data/epochs/<category>`)."""
    return {("data/epochs" if len(tasks) == 1 else f"data/epochs/{k}"):
            (c["epoch"] * c["size"] + c["position"]) / c["size"]
            for k, (c, task) in enumerate(zip(cursors, tasks)) if getattr(task, "finite", False)}


def save(cfg: GRPOConfig, t: Trainer, step: int, last: bool) -> None:
    """A resumable checkpoint: weights, optimizer, scheduler, RNG, loop state (and the batch in flight)."""
    extra = {**t.state, "bandit": t.bandit.state_dict(), "health": t.monitor.state_dict()}
    if not last:
        pending = t.batches.in_flight(step, t.bandit, t.state["cursors"])
        if pending is not None:
            extra["pending_batch"] = pending
    path = save_checkpoint(t.run.checkpoint_path(step), t.model, t.tokenizer, t.optimizer, t.scheduler, extra)
    t.run.mark_latest(path, cfg.keep_last)


def finish(cfg: GRPOConfig, t: Trainer, history: list[dict]) -> dict:
    """Save the final model (adapters merged) and the run's summary."""
    final = merged(t.model)
    save_model(t.run.root / "final", final, t.tokenizer)
    steps = [h for h in history if "reward/mean" in h]
    accuracies = [h["eval/greedy_accuracy"] for h in history if "eval/greedy_accuracy" in h]
    summary = {
        "steps": t.state["step"],
        "train_seconds": t.state.get("train_seconds", 0.0),
        "base_accuracy": history[0].get("eval/greedy_accuracy") if history else None,
        "final_accuracy": accuracies[-1] if accuracies else None,
        "reward_first": steps[0]["reward/mean"] if steps else None,
        "reward_last10": sum(h["reward/mean"] for h in steps[-10:]) / max(1, len(steps[-10:])),
        "seconds_per_step_median": statistics.median(h["time/step"] for h in steps) if steps else None,
        "final_model": str(t.run.root / "final"),
        "stopped": t.state.get("stopped"),
    }
    t.run.write_json("summary.json", summary)
    accuracy = (f"accuracy {summary['base_accuracy']} -> {summary['final_accuracy']}; "
                if summary["final_accuracy"] is not None else f"{summary['steps']} steps; ")
    console.print(f"grpo: {accuracy}model in {summary['final_model']}")
    return summary


run_grpo = main
"""`run_grpo(cfg) -> summary` for callers that read better with a verb (the quickstart)."""
