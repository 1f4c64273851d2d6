"""Self-training on verified rationales: sample k per problem, keep what verifies, fine-tune,
repeat. One loop, four documented options that turn it into each member of the family.

Papers and the option that implements each:
- RFT (Yuan et al. 2023, arXiv:2308.01825) / ReST-EM (Singh et al. 2023, arXiv:2312.06585):
  the default loop. E-step: sample `samples_per_prompt` per problem and keep the
  verified-correct, distinct rationales (`max_kept_per_problem` caps them, RFT's dedup);
  M-step: fine-tune. `init_each_iteration="base"` is ReST-EM (every M-step starts from the
  base weights on the current data); "continue" keeps fine-tuning the latest model.
- STaR (Zelikman et al. 2022, arXiv:2203.14465), `rationalize=true`: for every problem with
  no correct sample, re-ask with the gold answer as a hint (`hint_template`), keep a
  rationale that reaches the gold answer, and store it with the *original* prompt, never
  the hint (rationales that quote the hint are dropped, see `leaks_hint`).
- B-STaR (Zeng et al. 2024, arXiv:2412.17256), `adapt="bstar"`: before each iteration, probe
  a small problem subset at every (temperature, k) in `bstar.temperatures x
  bstar.samples_per_prompt` and use the configuration with the best balance score
  (`balance_score`, the definition of the paper's Eq. 2 / its `determine_hyper.py`):
      bs = mean_i  min(n'_i / n*, 1) * n'_i / n_i
  n_i: distinct selected responses of query i, n'_i: those that are truly correct, n*: the
  number of correct responses wanted per query (`bstar.target_correct`).
  The paper's second knob, the reward-model threshold, is `bstar.reward_model` (a directory
  trained by `reasonloop prm`) with candidate `bstar.reward_thresholds`: a verifier-correct
  sample is then selected only if its aggregated step score is >= the threshold, and the probe
  searches (temperature, k, threshold) jointly.
- Partially-correct solutions (in the spirit of process supervision; no single paper),
  `partial_solutions=true`: for a problem with no correct sample on a task that checks steps
  (`check_step` / `first_error`), train on the longest prefix whose steps all verify, without
  an end-of-sequence token, so the model learns the right start without learning to stop.

On a multi-turn environment (`env`, `turn_limits`, the shape GRPO takes): the E-step samples
trajectories with the multi-turn runner (`rollout.multiturn_api.multiturn_runner`), keeps those
whose environment reward is >= 1 (distinct, capped like samples), and the M-step trains on their
exact token ids with the environment's tokens masked (`trajectory_sft.py`: nothing re-tokenized);
eval is `evaluate_env` (greedy accuracy, turns and tool calls per problem). STaR, B-STaR, partial
solutions and keep=steps read text prompts or step checks and are rejected with an environment.

Exploration and exploitation (B-STaR's monitoring) are logged at every iteration for every
variant: `explore/pass@k` (problems with >= 1 correct sample), `explore/distinct_correct`
(distinct correct rationales per problem), `exploit/kept_step_precision` (the kept set's
fraction whose every step verifies: how well the outcome verifier picks sound rationales)
and `bstar/balance_score`.

Deviations:
- Fresh problems are drawn each iteration (procedural tasks are unlimited; the papers reuse a
  fixed training set).
- B-STaR: "selected" = verifier-correct (and, with `bstar.reward_model`, scored >= the
  threshold, as the paper's math setting combines the answer check with a reward model);
  "truly correct" = every step verifies (`check_step`), or the verifier alone when the task
  cannot check steps (the precision term is then 1). The paper searches temperature and the
  reward threshold; its released code searches temperature and k; we search all three. Queries
  with nothing selected count 0 (the paper's code adds the gold solution to every query, so
  none is empty). Among configurations within `bstar.tolerance` of the best score we take
  the cheapest (fewest samples, then lowest temperature, then lowest reward threshold): the score alone always prefers
  the largest k.
- STaR's rationalization uses few-shot hints in the paper; ours appends a hint line to the
  prompt, which a model fine-tuned without hints may ignore; the log reports how often it helps.

Resume: each iteration records its phase in `state.json`; the B-STaR probe and the sampled
data are saved before training, so a killed run resumes in the same iteration and reuses them.
Training checkpoints every `train_save_every` optimizer steps (weights, optimizer, scheduler,
RNG; `sft.fit`'s exact-resume machinery: the data order is a pure function of seed and step),
so a run killed mid-training continues from its last step checkpoint with the same final
weights as an uninterrupted run (tested). Those checkpoints are deleted once the iteration ends.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reasonloop.algorithms.common import make_optimizer, make_scheduler
from reasonloop.algorithms.sft import Example, TrainConfig, encode_examples, fit, training_units
from reasonloop.algorithms.trajectory_sft import (
    evaluate_on_env,
    sample_trajectories,
    trajectory_example,
    trajectory_metrics,
)
from reasonloop.config import dump_config
from reasonloop.envs import EnvSpec, Limits
from reasonloop.evaluate.accuracy import held_out_accuracy
from reasonloop.evaluate.metrics import pass_at_k
from reasonloop.models.lora import LoRAConfig, load_trainable, merged
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.factory import SamplerConfig, make_sampler, sync_weights
from reasonloop.rollout.groups import sample_and_verify
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.atomic import atomic_write_json
from reasonloop.store.checkpoint import load_trainer_state, save_checkpoint, save_model
from reasonloop.store.jsonl import read_jsonl, write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.store.trackers import LogConfig
from reasonloop.tasks.base import StepTask, first_error, steps_all_verify
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Problem, Sample, split_steps
from reasonloop.utils import console, seed_everything


@dataclass
class BStarConfig:
    temperatures: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.9, 1.1])
    samples_per_prompt: list[int] = field(default_factory=lambda: [2, 4, 8])
    """candidate k; the probe samples max(k) once per temperature and scores each k on a prefix"""
    probe_problems: int = 32
    target_correct: int = 4
    """n* of the balance score: correct responses wanted per query"""
    tolerance: float = 0.01
    """configurations within this of the best score tie; the cheapest wins"""
    reward_model: str = ""
    """a reward model directory (`reasonloop prm`): with it, a verifier-correct sample is selected only
    if its aggregated step score is >= the threshold chosen from `reward_thresholds`. Empty: verifier only"""
    reward_thresholds: list[float] = field(default_factory=lambda: [0.0])
    """candidate thresholds in [0, 1] searched by the probe together with temperature and k"""
    reward_aggregate: Literal["min", "last", "prod", "mean"] = "min"
    """how step scores become one solution score (see `verify.aggregate`)"""

    def __post_init__(self):
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError("bstar.temperatures must be a non-empty list of positive temperatures")
        if not self.samples_per_prompt or min(self.samples_per_prompt) < 1:
            raise ValueError("bstar.samples_per_prompt must be a non-empty list of k >= 1")
        if self.probe_problems < 1 or self.target_correct < 1 or self.tolerance < 0:
            raise ValueError("bstar needs probe_problems >= 1, target_correct >= 1, tolerance >= 0")
        if not self.reward_thresholds or not all(0.0 <= t <= 1.0 for t in self.reward_thresholds):
            raise ValueError(f"bstar.reward_thresholds must be a non-empty list in [0, 1], got {self.reward_thresholds}")
        if not self.reward_model and self.reward_thresholds != [0.0]:
            raise ValueError("bstar.reward_thresholds needs bstar.reward_model (a directory from `reasonloop prm`)")


@dataclass
class SelfTrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """how the policy samples: torch (shares the trained module), or vllm (weights copied in after each M-step)"""
    task: TaskSpec = field(default_factory=TaskSpec)
    env: EnvSpec = field(default_factory=lambda: EnvSpec(name=""))
    """a multi-turn environment (as GRPO's): verified trajectories kept and trained on token-exact, the
    environment's tokens masked; "": the single-turn `task`"""
    turn_limits: Limits = field(default_factory=Limits)
    """per-trajectory limits (turns, tokens) with `env`; `sampling.max_new_tokens` bounds each turn"""
    iterations: int = 3
    problems_per_iteration: int = 256
    samples_per_prompt: int = 4
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=1024))
    max_kept_per_problem: int = 4
    """distinct correct rationales kept per problem"""
    keep: Literal["answer", "steps"] = "answer"
    """"answer": keep samples whose final answer verifies (the papers); "steps": also require every
    step to pass the task's `check_step`, dropping right-answer-wrong-reasoning rationales"""
    init_each_iteration: Literal["continue", "base"] = "continue"
    """"base": fine-tune from the base model every iteration (ReST-EM, STaR); "continue": from the latest"""
    rationalize: bool = False
    """STaR: re-ask unsolved problems with the gold answer as a hint; keep hint-free rationales"""
    hint_template: str = "{prompt}Hint: the answer is {answer}.\n"
    rationalization_samples: int = 1
    """samples drawn per unsolved problem with the hint"""
    partial_solutions: bool = False
    """unsolved problems: train on the longest fully verified step prefix (tasks with check_step)"""
    min_prefix_steps: int = 1
    adapt: Literal["none", "bstar"] = "none"
    """"bstar": choose temperature and k each iteration by the balance score on a probe set"""
    bstar: BStarConfig = field(default_factory=BStarConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, batch_size=32, micro_batch_size=4))
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """lora.r > 0: train LoRA adapters (checkpoints hold the adapter; the final model is merged)"""
    keep_last: int = 2
    """iteration checkpoints kept (the newest, always including the latest); 0 keeps all"""
    train_save_every: int = 50
    """optimizer steps between checkpoints inside an iteration's training, so a killed run resumes
    mid-training (0: only at iteration ends). Each holds weights and optimizer state: mind the disk on large models"""
    eval_problems: int = 200
    """held-out problems scored (greedy) after every iteration; 0 disables"""
    eval_max_new_tokens: int = 1024
    run_name: str = "selftrain"
    log: LogConfig = field(default_factory=LogConfig)
    """trackers (jsonl always; tensorboard, wandb, mlflow) and whether rollouts are kept"""
    output_dir: str = "runs"
    seed: int = 0
    resume: bool = False

    def __post_init__(self):
        if self.iterations < 1 or self.problems_per_iteration < 1 or self.samples_per_prompt < 1:
            raise ValueError("iterations, problems_per_iteration and samples_per_prompt must be >= 1")
        if self.max_kept_per_problem < 1:
            raise ValueError("max_kept_per_problem must be >= 1")
        if self.rationalize and ("{prompt}" not in self.hint_template or "{answer}" not in self.hint_template):
            raise ValueError("hint_template must contain {prompt} and {answer}")
        if self.rationalization_samples < 1 or self.min_prefix_steps < 1:
            raise ValueError("rationalization_samples and min_prefix_steps must be >= 1")
        if self.bstar.reward_model and self.adapt != "bstar":
            raise ValueError("bstar.reward_model is used by adapt=bstar only; set adapt=bstar or drop it")
        if self.keep_last < 0:
            raise ValueError(f"keep_last must be >= 0 (0 keeps all), got {self.keep_last}")
        if self.env.name and (self.rationalize or self.partial_solutions or self.adapt != "none"
                              or self.keep != "answer"):
            raise ValueError("env: rationalize, partial_solutions, adapt=bstar and keep=steps read text prompts or "
                             "step checks; they do not apply to environment trajectories")
        if self.train_save_every < 0:
            raise ValueError(f"train_save_every must be >= 0 (0: no mid-training checkpoints), got {self.train_save_every}")


# --- selection and measurement: pure functions -----------------------------------------


def select_correct(samples: list[Sample], max_per_problem: int) -> list[Sample]:
    """Verified-correct samples, distinct texts only, at most `max_per_problem` per problem."""
    kept, seen, per_problem = [], set(), {}
    for s in samples:
        key = (s.problem_id, s.text.strip())
        if not s.correct or key in seen or per_problem.get(s.problem_id, 0) >= max_per_problem:
            continue
        seen.add(key)
        per_problem[s.problem_id] = per_problem.get(s.problem_id, 0) + 1
        kept.append(s)
    return kept


def passing_keep_rule(task, problems: list[Problem], samples: list[Sample], keep: str) -> list[Sample]:
    """The samples eligible for training under `keep` ("answer": all; "steps": only those whose
    every step passes `check_step`, since a verified answer can be reached through wrong steps)."""
    if keep == "answer":
        return samples
    by_id = {p.id: p for p in problems}
    return [s for s in samples if steps_all_verify(task, by_id[s.problem_id], s.text)]


def above_threshold(samples: list[Sample], threshold: float) -> list[Sample]:
    """The samples whose reward-model score (`rewards["reward_model"]`) is >= `threshold`; samples
    without a score (none was computed: no reward model, or an incorrect sample) pass unchanged.

    >>> s = [Sample("p", "Q", t, rewards={"correct": 1.0, "reward_model": r}) for t, r in (("a", 0.2), ("b", 0.7))]
    >>> [x.text for x in above_threshold(s, 0.5)]
    ['b']
    """
    return [s for s in samples if s.rewards.get("reward_model", 1.0) >= threshold]


def balance_score(selected: list[int], truly_correct: list[int], target_correct: int) -> float:
    """B-STaR's balance score: mean over queries of min(n'/n*, 1) * n'/n (0 where n = 0).

    >>> balance_score(selected=[4, 2, 0], truly_correct=[4, 1, 0], target_correct=4)  # (1 + 1/4*1/2 + 0) / 3
    0.375
    """
    if len(selected) != len(truly_correct) or not selected:
        raise ValueError("need one (selected, truly_correct) count per query, and at least one query")
    scores = [min(c / target_correct, 1.0) * c / n if n else 0.0 for n, c in zip(selected, truly_correct)]
    return sum(scores) / len(scores)


def leaks_hint(text: str, hint_line: str) -> bool:
    """Does a rationale quote the hint (so that training on it would teach copying a hint)?"""
    return bool(hint_line.strip()) and hint_line.strip().lower() in text.lower()


def longest_verified_prefix(task: StepTask, problem: Problem, steps: list[str]) -> list[str]:
    """The steps before the first one that fails `check_step` (all of them if none fails)."""
    error = first_error(task, problem, steps)
    return steps if error is None else steps[:error]


def explore_exploit(task, problems: list[Problem], samples: list[Sample], kept: list[Sample], k: int,
                    target_correct: int) -> dict:
    """B-STaR's monitoring metrics for one round of sampling (`k` samples per problem)."""
    by_id = {p.id: p for p in problems}
    correct_n: dict[str, int] = {}
    distinct: dict[str, set] = {}
    for s in samples:
        correct_n[s.problem_id] = correct_n.get(s.problem_id, 0) + s.correct
        if s.correct:
            distinct.setdefault(s.problem_id, set()).add(s.text.strip())
    sound = {id(s): steps_all_verify(task, by_id[s.problem_id], s.text) for s in kept}
    selected_n = [sum(s.problem_id == p.id for s in kept) for p in problems]
    truly_n = [sum(s.problem_id == p.id and sound[id(s)] is not False for s in kept) for p in problems]
    checkable = [v for v in sound.values() if v is not None]
    # the same precision before any keep rule: how often the outcome verifier alone accepts wrong steps
    verified = [steps_all_verify(task, by_id[s.problem_id], s.text) for s in samples if s.correct]
    verified = [v for v in verified if v is not None]
    return {
        "explore/pass@1": sum(correct_n.values()) / max(1, len(samples)),
        f"explore/pass@{k}": sum(pass_at_k(k, correct_n.get(p.id, 0), k) for p in problems) / len(problems),
        "explore/distinct_correct": sum(len(v) for v in distinct.values()) / len(problems),
        "exploit/kept_step_precision": sum(checkable) / len(checkable) if checkable else None,
        "exploit/correct_step_precision": sum(verified) / len(verified) if verified else None,
        "bstar/balance_score": balance_score(selected_n, truly_n, target_correct),
    }


# --- sampling phases ------------------------------------------------------------------------


def rationalize(sampler, task, problems: list[Problem], cfg: SelfTrainConfig, params: SamplingParams) -> list[Sample]:
    """STaR rationalization: hinted re-asks of `problems`; returns verified samples stored hint-free."""
    hints = [cfg.hint_template.format(prompt=p.prompt, answer=p.answer) for p in problems]
    out = []
    for p, hinted, s in zip(
        [p for p in problems for _ in range(cfg.rationalization_samples)],
        [h for h in hints for _ in range(cfg.rationalization_samples)],
        sample_and_verify(sampler, task, problems, cfg.rationalization_samples, params, prompts=hints),
    ):
        hint_line = hinted.removeprefix(p.prompt)
        s.prompt = p.prompt  # stored as an answer to the *original* question: the hint never reaches training
        s.meta = {**s.meta, "rationalized": True, "hint_leak": leaks_hint(s.text, hint_line)}
        out.append(s)
    return out


Scorer = Callable[[list[str], list[str]], list[float]]
"""(prompts, completions) -> one reward-model score per completion"""


def reward_model_scorer(path: str, aggregate: str) -> Scorer:
    """Score completions with a trained reward model: its step scores, aggregated (`verify.aggregate`)."""
    from reasonloop.models.reward_model import RewardModel
    from reasonloop.verify.aggregate import aggregate as aggregate_steps

    rm = RewardModel.from_pretrained(path, device="cpu")

    def score(prompts: list[str], completions: list[str]) -> list[float]:
        steps = [split_steps(c, rm.spec.step_separator) for c in completions]
        return [aggregate_steps(s, aggregate) for s in rm.score_batch(prompts, steps)]

    return score


def score_correct(scorer: Scorer | None, samples: list[Sample]) -> None:
    """Write the reward-model score of every verifier-correct sample into `rewards["reward_model"]`
    (incorrect ones are never selected, so they are not scored)."""
    correct = [s for s in samples if s.correct]
    if scorer is None or not correct:
        return
    for s, r in zip(correct, scorer([s.prompt for s in correct], [s.text for s in correct])):
        s.rewards["reward_model"] = float(r)


def bstar_probe(sampler, task, problems: list[Problem], cfg: SelfTrainConfig, seed: int,
                scorer: Scorer | None = None) -> dict:
    """Score every (temperature, k, reward threshold) on the probe problems; return the grid and the choice."""
    b, k_max, grid = cfg.bstar, max(cfg.bstar.samples_per_prompt), []
    tokens = 0
    for t in b.temperatures:
        params = SamplingParams(**{**vars(cfg.sampling), "temperature": t, "seed": seed})
        samples = sample_and_verify(sampler, task, problems, k_max, params)
        score_correct(scorer, samples)
        tokens += sum(s.num_tokens for s in samples)
        for k in b.samples_per_prompt:
            first_k = [s for i, s in enumerate(samples) if i % k_max < k]  # samples come grouped per problem
            for threshold in b.reward_thresholds:
                kept = select_correct(above_threshold(first_k, threshold), cfg.max_kept_per_problem)
                m = explore_exploit(task, problems, first_k, kept, k, b.target_correct)
                grid.append({"temperature": t, "k": k, "threshold": threshold,
                             "balance_score": m["bstar/balance_score"]})
    best = max(g["balance_score"] for g in grid)
    near = [g for g in grid if g["balance_score"] >= best - b.tolerance]
    # cheapest first: fewest samples, lowest temperature, then the least filtering
    choice = min(near, key=lambda g: (g["k"], g["temperature"], g["threshold"]))
    return {"grid": grid, "choice": choice, "tokens": tokens}


# --- the loop ---------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where a run is, saved in `state.json` after every phase so a killed run resumes in place.

    `iteration` iterations are finished; `phase` says how far the next one got: "start" (nothing
    saved yet), "sampled" (its B-STaR probe and samples are on disk), "training" (also a step
    checkpoint, `checkpoint`, after `step` optimizer steps); "done" marks iteration `iteration` finished.
    """

    iteration: int = 0
    phase: Literal["start", "sampled", "training", "done"] = "start"
    step: int = 0
    checkpoint: str = ""

    @classmethod
    def load(cls, run: RunDir) -> Progress:
        return cls(**(run.load_state() or {}))

    def save(self, run: RunDir) -> None:
        run.save_state({k: v for k, v in vars(self).items() if v or k in ("iteration", "phase")})

    def sampled(self, it: int) -> bool:
        """Iteration `it`'s samples were saved before the run stopped."""
        return self.iteration == it - 1 and self.phase in ("sampled", "training")

    def mid_training(self, it: int) -> Progress | None:
        """This progress if the run stopped inside iteration `it`'s training (a step checkpoint holds it)."""
        return self if self.iteration == it - 1 and self.phase == "training" else None


@dataclass
class SamplingChoice:
    """How an iteration samples: the config's settings, or B-STaR's probe choice."""

    temperature: float
    k: int
    threshold: float = 0.0
    probe: dict | None = None


@dataclass
class Selection:
    """What an iteration learns from: kept own samples, kept rationales and partial prefixes, as SFT pairs."""

    kept: list[Sample]
    rationales: list[Sample]
    prefixes: list[tuple[str, str]]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(s.prompt, s.text) for s in self.kept + self.rationales] + self.prefixes

    @property
    def eos(self) -> list[bool]:
        """Full solutions end with end-of-sequence; partial prefixes do not (the model should go on)."""
        return [True] * (len(self.kept) + len(self.rationales)) + [False] * len(self.prefixes)


def main(cfg: SelfTrainConfig, sampler_factory=None) -> dict:
    """`sampler_factory(cfg.sampler, model, policy=, tokenizer=)`: `make_sampler`, or Ray rollout workers."""
    run = RunDir.create(Path(cfg.output_dir) / cfg.run_name, dump_config(cfg), resume=cfg.resume, log=cfg.log)
    progress = Progress.load(run) if cfg.resume else Progress()
    seed_everything(cfg.seed)
    start_path = run.latest_checkpoint() if progress.iteration > 0 else None
    if progress.phase == "training":  # killed mid-training: continue from the last step checkpoint
        start_path = run.checkpoints_dir / progress.checkpoint
    model, tokenizer = load_trainable(cfg.model, cfg.lora, start_path)
    sampler = (sampler_factory or make_sampler)(cfg.sampler, cfg.model, policy=model, tokenizer=tokenizer)
    eval_task = eval_env = None
    if cfg.eval_problems and cfg.env.name:
        eval_task, eval_env = cfg.env.build(split="test", size=cfg.eval_problems, seed=cfg.seed)
    elif cfg.eval_problems:
        eval_task = cfg.task.build(split="test", size=cfg.eval_problems, seed=cfg.seed)
    use_rm = cfg.adapt == "bstar" and bool(cfg.bstar.reward_model)
    scorer = reward_model_scorer(cfg.bstar.reward_model, cfg.bstar.reward_aggregate) if use_rm else None
    if not cfg.env.name and cfg.keep == "steps" and not isinstance(cfg.task.build(split="train", size=1, seed=cfg.seed), StepTask):
        raise ValueError(f"keep=steps needs a task that checks steps; {cfg.task.name!r} does not")

    def evaluate() -> dict:
        if eval_env is not None:  # greedy trajectories: accuracy, turns and tool calls per problem
            return evaluate_on_env(sampler, list(eval_task), eval_env, cfg.turn_limits, cfg.eval_max_new_tokens)
        return held_out_accuracy(sampler, eval_task, cfg.eval_max_new_tokens)

    history = [r for r in run.read_metrics() if r.get("iteration", 10**9) <= progress.iteration]
    if progress.iteration == 0 and progress.phase == "start":
        base = {"iteration": 0, **evaluate()}
        run.log(base)
        history = [base]
        console.print(f"selftrain: base accuracy {base.get('eval/greedy_accuracy', float('nan')):.3f}")

    for it in range(progress.iteration + 1, cfg.iterations + 1):
        t_iter, timing = time.perf_counter(), {}
        seed = cfg.seed * 1000 + it
        # fresh procedural problems, or the next slice of a dataset walked by epochs (TaskSpec.round_problems)
        make_env = None
        if cfg.env.name:
            task, make_env = cfg.env.build(split="train", size=cfg.problems_per_iteration, seed=seed)
            problems = list(task)
        else:
            task, problems = cfg.task.round_problems("train", it - 1, cfg.problems_per_iteration, cfg.seed, seed)
        # --- choose how to sample (B-STaR), sample and verify (E-step), select what to learn from
        choice = choose_sampling(cfg, run, sampler, scorer, it, seed)
        samples, seconds = explore(cfg, run, progress, sampler, scorer, task, problems, choice, it, seed, make_env)
        if seconds is not None:
            timing["time/sample"] = seconds
            progress = Progress(iteration=it - 1, phase="sampled")
            progress.save(run)
        selection = select(cfg, task, problems, samples, choice.threshold)
        if make_env is not None:  # the kept trajectories, token ids and masks included: what trains
            examples = [trajectory_example(s) for s in selection.kept]
            write_jsonl(run.samples_dir / f"iter_{it:03d}_train.jsonl", selection.kept)
        else:
            examples = encode_examples(tokenizer, selection.pairs, use_chat_template=cfg.model.use_chat_template,
                                       system_prompt=cfg.model.system_prompt, eos=selection.eos)
            write_jsonl(run.samples_dir / f"iter_{it:03d}_train.jsonl",
                        [{"prompt": p, "completion": c, "eos": e} for (p, c), e in zip(selection.pairs, selection.eos)])
        # --- learn (M-step; a run killed mid-training has the step checkpoint's weights loaded already)
        mid_training = progress.mid_training(it)
        if cfg.init_each_iteration == "base" and it > 1 and mid_training is None:
            fresh, _ = load_trainable(cfg.model, cfg.lora)  # with LoRA: fresh adapters on the base
            model.load_state_dict(fresh.state_dict())
        summary = {}
        if examples:
            summary = learn(run, model, tokenizer, examples, cfg, it, mid_training)
        else:
            console.print(f"[yellow]iteration {it}: no correct samples; nothing to learn from[/yellow]")
        sync_weights(sampler, model)  # a vLLM sampler holds its own copy (also needed after a reset to the base)
        # --- evaluate, checkpoint, log
        t0 = time.perf_counter()
        metrics = iteration_metrics(cfg, it, task, problems, samples, selection, choice, summary)
        if make_env is not None:
            metrics.update(trajectory_metrics(samples), tokens_generated=sum(sum(s.meta["loss_mask"]) for s in samples))
        metrics.update(evaluate())
        timing["time/eval"] = time.perf_counter() - t0
        timing["time/iteration"] = time.perf_counter() - t_iter  # this process only (a resumed phase is not re-timed)
        metrics.update(timing)
        run.mark_latest(save_model(run.checkpoint_path(it), model, tokenizer), cfg.keep_last)
        run.log(metrics)
        progress = Progress(iteration=it, phase="done")
        progress.save(run)
        for path in run.checkpoints_dir.glob(f"iter-{it:03d}-step-*"):  # the iteration is done: no resume needs them
            shutil.rmtree(path, ignore_errors=True)
        history.append(metrics)
        console.print(
            f"selftrain iter {it}: T={choice.temperature} k={choice.k}, sample acc {metrics['sample_accuracy']:.3f}, "
            f"kept {len(selection.kept)} (+{len(selection.rationales)} rationalized, "
            f"+{len(selection.prefixes)} prefixes), eval acc {metrics.get('eval/greedy_accuracy', float('nan')):.3f}"
        )
    save_model(run.root / "final", merged(model), tokenizer)  # LoRA: merged into a plain HF model
    result = {"iterations": history, "final_model": str(run.root / "final")}
    run.write_json("summary.json", result)
    return result


def choose_sampling(cfg: SelfTrainConfig, run: RunDir, sampler, scorer, it: int, seed: int) -> SamplingChoice:
    """The config's temperature and k, or B-STaR's probe choice (saved, so a resume reuses it)."""
    if cfg.adapt != "bstar":
        return SamplingChoice(cfg.sampling.temperature, cfg.samples_per_prompt)
    probe_path = run.samples_dir / f"iter_{it:03d}_bstar.json"
    if probe_path.exists():
        probe = json.loads(probe_path.read_text())
    else:
        t0 = time.perf_counter()
        probe_task = cfg.task.build(split="train", size=cfg.bstar.probe_problems, seed=seed + 500_000)
        probe = bstar_probe(sampler, probe_task, list(probe_task), cfg, seed, scorer)
        probe["seconds"] = time.perf_counter() - t0
        atomic_write_json(probe_path, probe)
    choice = probe["choice"]
    return SamplingChoice(choice["temperature"], choice["k"], choice.get("threshold", 0.0), probe)


def explore(cfg: SelfTrainConfig, run: RunDir, progress: Progress, sampler, scorer, task, problems: list[Problem],
            choice: SamplingChoice, it: int, seed: int, make_env=None) -> tuple[list[Sample], float | None]:
    """The E-step: k verified samples per problem (+ STaR rationalizations), saved before training;
    with `make_env`, k trajectories per problem scored by the environment.

    Returns (samples, seconds spent sampling), seconds None when a resumed run reused the saved samples.
    """
    samples_path = run.samples_dir / f"iter_{it:03d}.jsonl"
    if progress.sampled(it) and samples_path.exists():
        return read_jsonl(samples_path, Sample), None
    t0 = time.perf_counter()
    params = SamplingParams(**{**vars(cfg.sampling), "temperature": choice.temperature, "seed": seed})
    if make_env is not None:
        samples = sample_trajectories(sampler, problems, choice.k, params, make_env, cfg.turn_limits)
    else:
        samples = sample_and_verify(sampler, task, problems, choice.k, params)
    if cfg.rationalize:
        solved = {s.problem_id for s in samples if s.correct}
        samples += rationalize(sampler, task, [p for p in problems if p.id not in solved], cfg, params)
    score_correct(scorer, samples)
    write_jsonl(samples_path, samples)
    return samples, time.perf_counter() - t0


def select(cfg: SelfTrainConfig, task, problems: list[Problem], samples: list[Sample], threshold: float) -> Selection:
    """The keep rules: verified own samples (capped, distinct), rationales for problems still unsolved,
    and the longest verified prefixes of problems nothing solved (`partial_solutions`)."""
    own = [s for s in samples if not s.meta.get("rationalized")]
    rationales = [s for s in samples if s.meta.get("rationalized") and not s.meta.get("hint_leak")]
    rationales = above_threshold(passing_keep_rule(task, problems, rationales, cfg.keep), threshold)
    kept = select_correct(above_threshold(passing_keep_rule(task, problems, own, cfg.keep), threshold),
                          cfg.max_kept_per_problem)
    solved = {s.problem_id for s in kept}
    kept_rationales = select_correct([s for s in rationales if s.problem_id not in solved], 1)
    prefixes: list[tuple[str, str]] = []
    if cfg.partial_solutions and isinstance(task, StepTask):
        prefixes = partial_prefixes(task, problems, own, solved | {s.problem_id for s in kept_rationales},
                                    cfg.min_prefix_steps)
    return Selection(kept, kept_rationales, prefixes)


def iteration_metrics(cfg: SelfTrainConfig, it: int, task, problems: list[Problem], samples: list[Sample],
                      selection: Selection, choice: SamplingChoice, summary: dict) -> dict:
    own = [s for s in samples if not s.meta.get("rationalized")]
    hinted = [s for s in samples if s.meta.get("rationalized")]
    metrics = {
        "iteration": it,
        "temperature": choice.temperature,
        "samples_per_prompt": choice.k,
        "samples": len(own),
        "sample_accuracy": sum(s.correct for s in own) / len(own),
        "problems_solved": len({s.problem_id for s in selection.kept}) / len(problems),
        "kept": len(selection.kept),
        "rationalized/tried": len({s.problem_id for s in hinted}),
        "rationalized/kept": len(selection.rationales),
        "rationalized/hint_leaks": sum(bool(s.meta.get("hint_leak")) for s in hinted),
        "partial/prefixes": len(selection.prefixes),
        **explore_exploit(task, problems, own, selection.kept, choice.k, cfg.bstar.target_correct),
        "tokens_generated": sum(s.num_tokens for s in samples) + (choice.probe["tokens"] if choice.probe else 0),
        "train/loss": summary.get("loss_last"),
        "train/tokens": summary.get("train_tokens", 0),
        "time/train": summary.get("train_seconds", 0.0),
    }
    if choice.probe:
        metrics["bstar/probe_tokens"] = choice.probe["tokens"]
        metrics["bstar/chosen_score"] = choice.probe["choice"]["balance_score"]
        metrics["bstar/threshold"] = choice.threshold
        metrics["bstar/below_threshold"] = sum(s.correct and s.rewards.get("reward_model", 1.0) < choice.threshold
                                               for s in own)
    return metrics


def learn(run: RunDir, model, tokenizer, examples: list[Example], cfg: SelfTrainConfig, it: int,
          mid_training: Progress | None) -> dict:
    """One iteration's M-step on tokenised `examples` through `sft.fit`, checkpointed every
    `cfg.train_save_every` steps.

    `mid_training` is the saved state of a run killed in this phase ({"step", "checkpoint"}); the
    model already holds that checkpoint's weights, and optimizer, scheduler and RNG are restored
    from it, so the remaining steps are exactly those an uninterrupted run would take.
    """
    total = cfg.train.total_steps(len(training_units(examples, cfg.train)))
    optimizer = make_optimizer(model.parameters(), cfg.train.optim)
    scheduler = make_scheduler(optimizer, cfg.train.optim, total)
    start_step = 0
    if mid_training is not None:
        start_step = load_trainer_state(run.checkpoints_dir / mid_training.checkpoint, optimizer, scheduler)["step"]
        console.print(f"selftrain iter {it}: resuming training at step {start_step}/{total}")

    def on_step(step: int, _metrics: dict) -> None:
        if not cfg.train_save_every or step % cfg.train_save_every or step == total:
            return  # the end of training is saved as the iteration's checkpoint
        name = f"iter-{it:03d}-step-{step:06d}"
        save_checkpoint(run.checkpoints_dir / name, model, tokenizer, optimizer, scheduler,
                        extra={"iteration": it, "step": step})
        Progress(iteration=it - 1, phase="training", step=step, checkpoint=name).save(run)
        for old in run.checkpoints_dir.glob(f"iter-{it:03d}-step-*"):  # only after the state points past them
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    return fit(model, tokenizer, [], cfg.train, description=f"selftrain iter {it}", on_step=on_step,
               start_step=start_step, optimizer=optimizer, scheduler=scheduler, examples=examples)


def partial_prefixes(task: StepTask, problems: list[Problem], samples: list[Sample], skip: set[str],
                     min_steps: int) -> list[tuple[str, str]]:
    """One (prompt, verified prefix + newline) per unsolved problem: the longest over its samples."""
    by_id = {p.id: p for p in problems}
    best: dict[str, list[str]] = {}
    for s in samples:
        if s.problem_id in skip or s.correct:
            continue
        prefix = longest_verified_prefix(task, by_id[s.problem_id], split_steps(s.text))
        if len(prefix) >= min_steps and len(prefix) > len(best.get(s.problem_id, [])):
            best[s.problem_id] = prefix
    # the trailing newline makes the model continue with a next step, not stop or glue text
    return [(by_id[pid].prompt, "\n".join(steps) + "\n") for pid, steps in best.items()]

