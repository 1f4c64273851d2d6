"""Run-health alarms fire on synthetic metric streams exactly when their rule says."""

import math

from reasonloop.algorithms.health import HealthConfig, HealthMonitor, slope


def run(stream, **cfg):
    monitor = HealthMonitor(HealthConfig(**cfg))
    return [[a.name for a in monitor.update(step, m)] for step, m in enumerate(stream, 1)], monitor


HEALTHY = {"groups/zero_variance_frac": 0.3, "policy/entropy": 1.0, "policy/kl": 0.01, "policy/clip_frac": 0.05,
           "len/mean": 20.0, "reward/correct": 0.5, "reward/format": 0.9, "reward/length": 0.0}


def test_healthy_stream_raises_nothing():
    fired, monitor = run([dict(HEALTHY) for _ in range(30)])
    assert all(f == [] for f in fired)
    assert set(monitor.metrics().values()) == {0}


def test_zero_variance_needs_patience():
    stream = [dict(HEALTHY, **{"groups/zero_variance_frac": 0.95}) for _ in range(4)]
    fired, _ = run(stream, patience=3)
    assert ["zero_variance" in f for f in fired] == [False, False, True, True]
    fired, _ = run(stream[:2] + [dict(HEALTHY)] + stream[:2], patience=3)  # a healthy step resets the streak
    assert not any("zero_variance" in f for f in fired)


def test_entropy_collapse_against_baseline():
    values = [1.0, 1.0, 1.0, 0.5, 0.15]
    fired, monitor = run([dict(HEALTHY, **{"policy/entropy": v}) for v in values], baseline_steps=3)
    assert ["entropy_collapse" in f for f in fired] == [False, False, False, False, True]
    assert monitor.metrics()["health/entropy_collapse"] == 1


def test_kl_blowup_absolute_and_relative():
    fired, _ = run([dict(HEALTHY, **{"policy/kl": v}) for v in (0.01, 0.01, 0.01, 0.05, 0.5, 2.0)],
                   kl_max=1.0, kl_jump=10.0, baseline_steps=3)
    assert ["kl_blowup" in f for f in fired] == [False, False, False, False, True, True]


def test_clip_fraction_and_length_drift():
    fired, _ = run([dict(HEALTHY, **{"policy/clip_frac": 0.5}) for _ in range(3)], patience=2)
    assert ["clip_fraction" in f for f in fired] == [False, True, True]
    lengths = [20, 20, 20, 30, 36, 4]
    fired, _ = run([dict(HEALTHY, **{"len/mean": v}) for v in lengths], length_drift_ratio=0.75)
    assert ["length_drift" in f for f in fired] == [False, False, False, False, True, True]


def test_non_finite_fires_immediately():
    fired, _ = run([dict(HEALTHY), dict(HEALTHY, loss=float("nan")), dict(HEALTHY, **{"policy/kl": math.inf})])
    assert ["non_finite" in f for f in fired] == [False, True, True]


def test_reward_hacking_probe():
    w = 10
    hacking = [dict(HEALTHY, **{"reward/format": 0.5 + 0.04 * i, "reward/correct": 0.6 - 0.03 * i}) for i in range(w)]
    fired, _ = run(hacking, hack_window=w)
    assert ["reward_hacking" in f for f in fired] == [False] * (w - 1) + [True]
    both_rise = [dict(HEALTHY, **{"reward/format": 0.5 + 0.04 * i, "reward/correct": 0.3 + 0.03 * i}) for i in range(w)]
    fired, _ = run(both_rise, hack_window=w)
    assert not any("reward_hacking" in f for f in fired)


def test_slope_and_state_roundtrip():
    assert slope([1.0, 3.0, 5.0]) == 2.0 and slope([4.0]) == 0.0
    stream = [dict(HEALTHY, **{"groups/zero_variance_frac": 0.95}) for _ in range(4)]
    _, full = run(stream, patience=3)
    _, first = run(stream[:2], patience=3)
    resumed = HealthMonitor(HealthConfig(patience=3))
    resumed.load_state_dict(first.state_dict())
    assert [a.name for a in resumed.update(3, stream[2])] == ["zero_variance"]
    resumed.update(4, stream[3])
    assert resumed.state_dict() == full.state_dict()


def test_reward_hacking_probe_watches_process_and_custom_rewards_but_not_the_total():
    w = 10
    for key in ("reward/prm", "reward/my_rewards:short"):
        hacking = [dict(HEALTHY, **{key: 0.2 + 0.05 * i, "reward/correct": 0.6 - 0.03 * i}) for i in range(w)]
        fired, _ = run(hacking, hack_window=w)
        assert fired[-1] == ["reward_hacking"], key
    total_rises = [dict(HEALTHY, **{"reward/mean": 0.2 + 0.05 * i, "reward/correct": 0.6 - 0.03 * i}) for i in range(w)]
    fired, _ = run(total_rises, hack_window=w)
    assert not any("reward_hacking" in f for f in fired)


def test_reward_hacking_probe_ignores_terms_outside_the_reward():
    """A trainer names the terms in its reward; a logged-only term (weight 0) cannot be hacked."""
    w = 10
    stream = [dict(HEALTHY, **{"reward/length": -0.5 + 0.05 * i, "reward/correct": 0.6 - 0.03 * i}) for i in range(w)]
    monitor = HealthMonitor(HealthConfig(hack_window=w), shaping_keys=["reward/format"])
    assert not any(a.name == "reward_hacking" for step, m in enumerate(stream, 1) for a in monitor.update(step, m))
    monitor = HealthMonitor(HealthConfig(hack_window=w), shaping_keys=["reward/length"])
    fired = [[a.name for a in monitor.update(step, m)] for step, m in enumerate(stream, 1)]
    assert fired[-1] == ["reward_hacking"]


def test_grpo_watches_only_weighted_reward_terms():
    from reasonloop.algorithms.grpo import GRPOConfig, shaping_reward_keys

    assert shaping_reward_keys(GRPOConfig()) == []
    assert shaping_reward_keys(GRPOConfig(format_weight=0.1, rewards={"format_think": 0.2})) == [
        "reward/format", "reward/format_think"]


def test_reward_hacking_probe_needs_a_significant_fall_in_accuracy():
    """One bad 8-prompt step in a window of 10 is noise, not a trend (a false alarm seen in real runs)."""
    w = 10
    accuracy = [0.64, 0.77, 0.73, 0.28, 0.53, 0.48, 0.47, 0.64, 0.55, 0.60]  # a dip, not a trend
    noisy = [dict(HEALTHY, **{"reward/prm": 0.6 + 0.01 * i, "reward/correct": a}) for i, a in enumerate(accuracy)]
    fired, _ = run(noisy, hack_window=w)
    assert not any("reward_hacking" in f for f in fired)
    fired, _ = run(noisy, hack_window=w, hack_z=0.0)  # the slope alone reads the dip as a fall
    assert fired[-1] == ["reward_hacking"]
    falling = [dict(HEALTHY, **{"reward/prm": 0.6 + 0.01 * i, "reward/correct": 0.6 - 0.04 * i + 0.02 * (-1) ** i})
               for i in range(w)]
    fired, _ = run(falling, hack_window=w)
    assert fired[-1] == ["reward_hacking"]


def test_every_alarm_warns_and_only_those_in_stop_on_stop_the_run():
    import pytest

    from reasonloop.algorithms.health import ALARMS, stop_message

    kl = [dict(HEALTHY, **{"policy/kl": v}) for v in (0.01, 0.01, 0.01, 2.0)]
    nan = dict(HEALTHY, loss=float("nan"))
    warn_only = HealthMonitor(HealthConfig())
    for step, m in enumerate(kl + [nan], 1):
        assert warn_only.update(step, m) == [] or warn_only.should_stop() is None
    stopper = HealthMonitor(HealthConfig(stop_on=["kl_blowup"]))
    stops = []
    for step, m in enumerate(kl + [nan, dict(HEALTHY)], 1):
        stopper.update(step, m)
        stops.append(stopper.should_stop())
    assert [s.name if s else None for s in stops] == [None, None, None, "kl_blowup", None, None]  # nan only warns
    assert stop_message(stops[3], "ckpt").startswith("stopped at step 4 by health alarm kl_blowup (health.stop_on): KL 2")
    with pytest.raises(ValueError, match=r"health.stop_on: unknown alarm\(s\) \['kl'\]"):
        HealthConfig(stop_on=["kl"])
    assert set(HealthMonitor().metrics()) == {f"health/{a}" for a in ALARMS}


def test_stop_on_is_a_config_key_with_a_clear_error():
    import pytest

    from reasonloop.algorithms.grpo import GRPOConfig
    from reasonloop.config import ConfigError, load_config

    assert load_config(GRPOConfig, overrides=["health.stop_on=kl_blowup,non_finite"]).health.stop_on == [
        "kl_blowup", "non_finite"]
    with pytest.raises(ConfigError, match="health.stop_on: unknown alarm"):
        load_config(GRPOConfig, overrides=["health.stop_on=kl_blowp"])
