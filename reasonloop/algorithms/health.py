"""Run-health alarms for RL: catch a dying run from its metric stream, step by step.

    monitor = HealthMonitor(HealthConfig(stop_on=["kl_blowup"]))
    for step ...:
        alarms = monitor.update(step, metrics)   # list[Alarm]; printed as warnings by the loop
        metrics.update(monitor.metrics())        # health/* flags logged with the step
        stop = monitor.should_stop()             # an Alarm named in `stop_on`, or None
        if stop: save a checkpoint, print stop_message(stop, checkpoint), end the run

Every alarm warns; those named in `health.stop_on` also stop the run (the loop saves a
checkpoint first, so the run can be inspected, fixed and resumed with `--resume`).

Each alarm is a small pure rule over the stream of per-step metrics (keys below), so it
can be unit-tested on synthetic streams. The monitor's state is a JSON-able dict
(`state_dict` / `load_state_dict`), saved in checkpoints so a resumed run alarms exactly
as an uninterrupted one.

| alarm | fires when | metric read |
|---|---|---|
| zero_variance | fraction of groups with identical rewards >= `zero_var_max` for `patience` steps | `groups/zero_variance_frac` |
| entropy_collapse | token entropy < `entropy_collapse_ratio` x its baseline (mean of the first `baseline_steps`) | `policy/entropy` |
| kl_blowup | KL to the reference > `kl_max`, or > `kl_jump` x its running median | `policy/kl` |
| clip_fraction | fraction of clipped tokens > `clip_frac_max` | `policy/clip_frac` |
| length_drift | mean response length moved more than `length_drift_ratio` from its baseline (either way) | `len/mean` |
| non_finite | any logged number is NaN or inf | all |
| reward_hacking | over the last `hack_window` steps a shaping reward's slope > `hack_slope` while accuracy's slope < -`hack_slope` and at least `hack_z` standard errors below 0 | the reward terms that enter the total (`shaping_keys`; default every `reward/*` but `reward/mean`) against `reward/correct` |
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

NOT_SHAPING = ("reward/correct", "reward/mean")
ALARMS = ("non_finite", "zero_variance", "entropy_collapse", "kl_blowup", "clip_fraction", "length_drift",
          "reward_hacking")


@dataclass
class HealthConfig:
    zero_var_max: float = 0.9
    patience: int = 3
    """consecutive steps a condition must hold (zero_variance, clip_fraction)"""
    baseline_steps: int = 3
    entropy_collapse_ratio: float = 0.2
    kl_max: float = 1.0
    kl_jump: float = 10.0
    clip_frac_max: float = 0.3
    length_drift_ratio: float = 0.75
    hack_window: int = 10
    hack_slope: float = 0.005
    """per-step slope of a reward mean that counts as rising (and, negated, as falling)"""
    hack_z: float = 2.0
    """and accuracy's fall must be at least this many standard errors (0: no test). Per-step sampled
    accuracy from 8 prompts swings by +-0.2, so without the test one bad step in a window of 10
    reads as a falling trend (replayed on this project's runs: it removed 4 false alarms and kept
    the one real hack, docs/grpo.md)"""
    stop_on: list[str] = field(default_factory=list)
    """alarms that stop the run (after a checkpoint) instead of only warning; any of ALARMS"""

    def __post_init__(self):
        unknown = [a for a in self.stop_on if a not in ALARMS]
        if unknown:
            raise ValueError(f"health.stop_on: unknown alarm(s) {unknown}; choose from {', '.join(ALARMS)}")
        if not 0 < self.zero_var_max <= 1 or not 0 < self.entropy_collapse_ratio < 1:
            raise ValueError("zero_var_max must be in (0, 1] and entropy_collapse_ratio in (0, 1)")
        if self.patience < 1 or self.baseline_steps < 1 or self.hack_window < 3:
            raise ValueError("patience and baseline_steps must be >= 1, hack_window >= 3")
        if self.hack_z < 0:
            raise ValueError(f"hack_z must be >= 0, got {self.hack_z}")


def slope_z(values: list[float]) -> float:
    """The least-squares slope divided by its standard error (inf for a perfect fit, 0 for < 3 points).

    >>> round(slope_z([0.0, 1.0, 2.0, 3.5]), 2), slope_z([1.0, 2.0, 3.0])
    (13.28, inf)
    """
    n = len(values)
    if n < 3:
        return 0.0
    b = slope(values)
    mx, my = (n - 1) / 2, sum(values) / n
    residual = sum((v - (my + b * (i - mx))) ** 2 for i, v in enumerate(values))
    spread = sum((i - mx) ** 2 for i in range(n))
    stderr = math.sqrt(residual / (n - 2) / spread)
    if stderr == 0:
        return math.copysign(math.inf, b) if b else 0.0
    return b / stderr


@dataclass
class Alarm:
    name: str
    step: int
    message: str


def stop_message(alarm: Alarm, checkpoint: str | None = None) -> str:
    """The one line a run prints when an alarm in `health.stop_on` ends it.

    >>> stop_message(Alarm("kl_blowup", 7, "KL 3.2 (max 1.0)"), "runs/g/checkpoints/step-000007")
    'stopped at step 7 by health alarm kl_blowup (health.stop_on): KL 3.2 (max 1.0); checkpoint runs/g/checkpoints/step-000007 (resume with --resume after changing the config)'
    """
    where = f"; checkpoint {checkpoint} (resume with --resume after changing the config)" if checkpoint else ""
    return f"stopped at step {alarm.step} by health alarm {alarm.name} (health.stop_on): {alarm.message}{where}"


def slope(values: list[float]) -> float:
    """Least-squares slope of values against 0, 1, 2, ... (0 for fewer than 2 points)."""
    n = len(values)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(values) / n
    num = sum((i - mx) * (v - my) for i, v in enumerate(values))
    return num / sum((i - mx) ** 2 for i in range(n))


@dataclass
class HealthMonitor:
    cfg: HealthConfig = field(default_factory=HealthConfig)
    history: dict[str, list[float]] = field(default_factory=dict)
    streaks: dict[str, int] = field(default_factory=dict)
    last: list[str] = field(default_factory=list)
    fired: list[Alarm] = field(default_factory=list)
    """the alarms of the last update"""
    shaping_keys: list[str] | None = None
    """reward terms the reward-hacking probe watches; None: every `reward/*` but correct and mean.
    A trainer passes the terms that actually enter its reward (a term logged with weight 0
    cannot be hacked, and its noise would only raise false alarms)."""

    def update(self, step: int, metrics: dict) -> list[Alarm]:
        """Record one step's metrics and return the alarms that fire at this step."""
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.history.setdefault(key, []).append(float(value))
        c, alarms = self.cfg, []

        def fire(name: str, message: str) -> None:
            alarms.append(Alarm(name, step, message))

        bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
        if bad:
            fire("non_finite", f"non-finite values in {bad}")
        if self._streak("zero_variance", metrics.get("groups/zero_variance_frac", 0.0) >= c.zero_var_max):
            fire("zero_variance", f"{metrics['groups/zero_variance_frac']:.0%} of groups have zero reward variance "
                                  f"for {c.patience} steps: no learning signal (too easy/hard? enable dynamic sampling)")
        base = self._baseline("policy/entropy")
        ent = metrics.get("policy/entropy")
        if base and ent is not None and ent < c.entropy_collapse_ratio * base:
            fire("entropy_collapse", f"entropy {ent:.3f} < {c.entropy_collapse_ratio} x baseline {base:.3f}")
        kl = metrics.get("policy/kl")
        if kl is not None and math.isfinite(kl):
            past = self.history.get("policy/kl", [])[:-1]
            median = statistics.median(past) if len(past) >= c.baseline_steps else None
            if kl > c.kl_max or (median and median > 1e-6 and kl > c.kl_jump * median):
                fire("kl_blowup", f"KL {kl:.4f} (max {c.kl_max}, running median {median})")
        if self._streak("clip_fraction", metrics.get("policy/clip_frac", 0.0) > c.clip_frac_max):
            fire("clip_fraction", f"clip fraction {metrics['policy/clip_frac']:.2f} > {c.clip_frac_max} "
                                  f"for {c.patience} steps: updates too large (lower lr or num_iterations)")
        base_len, length = self._baseline("len/mean"), metrics.get("len/mean")
        if base_len and length is not None and abs(length - base_len) > c.length_drift_ratio * base_len:
            fire("length_drift", f"mean length {length:.1f} drifted from baseline {base_len:.1f}")
        alarms += self._reward_hacking(step)
        self.last, self.fired = [a.name for a in alarms], list(alarms)
        return alarms

    def metrics(self) -> dict[str, int]:
        """The alarms of the last update as 0/1 metrics (health/<name>)."""
        return {f"health/{n}": int(n in self.last) for n in ALARMS}

    def should_stop(self) -> Alarm | None:
        """The first alarm of the last update that `cfg.stop_on` names (None: keep going)."""
        return next((a for a in self.fired if a.name in self.cfg.stop_on), None)

    def _streak(self, name: str, condition: bool) -> bool:
        self.streaks[name] = self.streaks.get(name, 0) + 1 if condition else 0
        return self.streaks[name] >= self.cfg.patience

    def _baseline(self, key: str) -> float | None:
        """Mean of the first `baseline_steps` values, once that many exist (and the current one after)."""
        values = self.history.get(key, [])
        if len(values) <= self.cfg.baseline_steps:
            return None
        return sum(values[: self.cfg.baseline_steps]) / self.cfg.baseline_steps

    def _reward_hacking(self, step: int) -> list[Alarm]:
        w, c = self.cfg.hack_window, self.cfg
        accuracy = self.history.get("reward/correct", [])[-w:]
        if len(accuracy) < w:
            return []
        acc_slope = slope(accuracy)
        if acc_slope >= -c.hack_slope or -slope_z(accuracy) < c.hack_z:
            return []  # accuracy is not clearly falling
        alarms = []
        # every logged reward term except the verifier's and the total: format, length, prm, custom
        shaping_keys = (self.shaping_keys if self.shaping_keys is not None else
                        sorted(k for k in self.history if k.startswith("reward/") and k not in NOT_SHAPING))
        for key in shaping_keys:
            shaping = self.history.get(key, [])[-w:]
            if len(shaping) == w and slope(shaping) > c.hack_slope:
                alarms.append(Alarm("reward_hacking", step, f"{key} rising ({slope(shaping):+.4f}/step) while "
                                                            f"verified accuracy falls ({acc_slope:+.4f}/step)"))
        return alarms

    def state_dict(self) -> dict:
        return {"history": self.history, "streaks": self.streaks, "last": self.last}

    def load_state_dict(self, state: dict) -> None:
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.streaks, self.last = dict(state["streaks"]), list(state["last"])
        self.fired = []
