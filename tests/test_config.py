from dataclasses import dataclass, field
from typing import Literal

import pytest

from reasonloop.config import ConfigError, dump_config, load_config


@dataclass
class Optim:
    lr: float = 1e-3
    schedule: Literal["cosine", "constant"] = "cosine"


@dataclass
class Cfg:
    steps: int = 10
    name: str = "run"
    verbose: bool = False
    optim: Optim = field(default_factory=Optim)
    tags: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    limit: int | None = None

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_then_yaml_then_overrides(tmp_path):
    p = write(tmp_path, "steps: 5\noptim:\n  lr: 1e-4\n")
    cfg = load_config(Cfg, p, ["optim.lr=3e-3", "verbose=true", "tags=a,b"])
    assert cfg.steps == 5 and cfg.optim.lr == 3e-3 and cfg.verbose is True and cfg.tags == ["a", "b"]
    assert cfg.optim.schedule == "cosine" and cfg.name == "run"


def test_yaml_scientific_notation_string_is_coerced_to_float(tmp_path):
    # PyYAML reads "1e-3" (no dot) as a string
    cfg = load_config(Cfg, write(tmp_path, "optim:\n  lr: 1e-3\n"))
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1e-3


def test_unknown_key_suggests_the_close_one(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'stpes'.*did you mean 'steps'"):
        load_config(Cfg, None, ["stpes=3"])
    with pytest.raises(ConfigError, match=r"c.yaml.*unknown key optim.'learning_rate'"):
        load_config(Cfg, write(tmp_path, "optim:\n  learning_rate: 1\n"))


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        load_config(Cfg, None, ["steps=abc"])
    with pytest.raises(ConfigError, match=r"optim.schedule: 'cosin' is not one of.*did you mean 'cosine'"):
        load_config(Cfg, None, ["optim.schedule=cosin"])
    with pytest.raises(ConfigError, match="verbose: expected true/false"):
        load_config(Cfg, None, ["verbose=maybe"])
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        load_config(Cfg, None, ["steps=-1"])
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        load_config(Cfg, None, ["steps"])


def test_optional_dict_and_none(tmp_path):
    cfg = load_config(Cfg, write(tmp_path, "weights: {correct: 1, format: 0.5}\n"), ["limit=none"])
    assert cfg.weights == {"correct": 1.0, "format": 0.5} and cfg.limit is None
    assert load_config(Cfg, None, ["limit=7"]).limit == 7


def test_dict_keys_from_several_overrides_add_up(tmp_path):
    cfg = load_config(Cfg, write(tmp_path, "weights: {correct: 1}\n"), ["weights.format=0.5", "weights.length=0.1"])
    assert cfg.weights == {"correct": 1.0, "format": 0.5, "length": 0.1}
    assert load_config(Cfg, None, ["weights.a=1", "weights.a=2"]).weights == {"a": 2.0}  # the later one wins


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Cfg, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Cfg, write(tmp_path, "- 1\n- 2\n"))


def test_dump_round_trips(tmp_path):
    cfg = load_config(Cfg, None, ["steps=3", "optim.lr=0.5"])
    again = load_config(Cfg, write(tmp_path, dump_config(cfg)))
    assert again == cfg


def test_every_shipped_yaml_loads_into_its_command_config():
    import importlib
    from pathlib import Path

    from reasonloop.cli import COMMANDS

    root = Path(__file__).resolve().parents[1] / "configs"
    checked = 0
    for path in sorted(root.glob("*/*.yaml")):
        command = COMMANDS[path.parent.name]
        cls = getattr(importlib.import_module(command.module), command.config)
        load_config(cls, path)
        checked += 1
    assert checked >= 1


def test_a_partial_block_keeps_the_commands_own_defaults(tmp_path):
    """`train.epochs=1` on dpo changes the epochs only: DPO's lr (its default_factory) stays, it is not
    reset to TrainConfig's class default; the same through YAML."""
    from reasonloop.algorithms.dpo import DPOConfig

    default = DPOConfig()
    cfg = load_config(DPOConfig, None, ["train.epochs=1"])
    assert cfg.train.epochs == 1 and cfg.train.optim == default.train.optim
    assert cfg.train.batch_size == default.train.batch_size
    cfg = load_config(DPOConfig, None, ["train.optim.weight_decay=0.1"])
    assert cfg.train.optim.lr == default.train.optim.lr and cfg.train.optim.weight_decay == 0.1
    path = tmp_path / "dpo.yaml"
    path.write_text("train:\n  optim:\n    weight_decay: 0.2\n")
    cfg = load_config(DPOConfig, path)
    assert cfg.train.optim.lr == default.train.optim.lr and cfg.train.optim.weight_decay == 0.2
    assert cfg.train.epochs == default.train.epochs and cfg.train.micro_batch_size == default.train.micro_batch_size
