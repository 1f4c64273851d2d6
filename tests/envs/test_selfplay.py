"""Two-seat self-play (SPIRAL): the game, the runner (both seats token-exact), RAE, GRPO on both seats."""

import json
import re

import pytest
import torch

from reasonloop.algorithms.grpo import GRPOConfig, main
from reasonloop.algorithms.grpo_batches import DrawStats, Rollouts
from reasonloop.algorithms.grpo_update import make_batch, rows_from_rollouts
from reasonloop.algorithms.role_advantages import rae_advantages
from reasonloop.envs import EnvSpec, Limits, SelfPlayGames, TicTacToeEnv, TicTacToeSelfPlay, two_seat
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.multiturn import MultiTurnEngine, sample_env_groups
from reasonloop.rollout.multiturn_api import multiturn_runner
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.rollout.selfplay import SelfPlayRunner
from reasonloop.types import Problem

EMPTY = Problem("g", "tic-tac-toe", meta={"board": "." * 9, "mark": "X", "model_first": True})
BOARD = re.compile(r"([1-9XO]) ([1-9XO]) ([1-9XO])\n([1-9XO]) ([1-9XO]) ([1-9XO])\n([1-9XO]) ([1-9XO]) ([1-9XO])")


def test_the_game_gives_each_seat_its_view_and_result():
    game = TicTacToeSelfPlay(max_illegal=1)
    game.reset(EMPTY)
    assert game.mover == "X" and "You play X" in game.messages_for("X")[0]["content"]
    assert game.step("Move: 5").info == {"moves": 1} and game.mover == "O"
    (opening,) = game.messages_for("O")  # O's opening holds X's move and the board after it
    assert "You play O" in opening["content"] and "Opponent plays 5." in opening["content"]
    illegal = game.step("Move: 5")  # taken: told to O, who moves again
    assert illegal.info == {"illegal_move": 1} and game.mover == "O" and not game.done
    assert "cell 5 is taken" in game.messages_for("O")[0]["content"]
    for move in ("Move: 1", "Move: 4", "Move: 2", "Move: 6"):  # O 1, X 4, O 2, X 6: X has 4 5 6
        step = game.step(move)
    assert step.done and step.reward == 1.0 and game.reward("X") == 1.0 and game.reward("O") == -1.0
    game.reset(EMPTY)
    game.step("no move")
    forfeit = game.step("still none")
    assert forfeit.done and forfeit.info == {"illegal_move": 1, "forfeit": 1}
    assert (game.reward("X"), game.reward("O")) == (-1.0, 0.0)  # a forfeit is not a win for the other seat


def test_spec_builds_self_play_for_training_and_a_fixed_opponent_for_evaluation():
    spec = EnvSpec("tictactoe", {"opponent": "self", "eval_opponent": "perfect"})
    assert spec.self_play
    _, train = spec.build("train", 2, 0)
    _, test = spec.build("test", 2, 0)
    assert isinstance(train, SelfPlayGames) and two_seat(train) and isinstance(train(), TicTacToeSelfPlay)
    assert not two_seat(test) and isinstance(test(), TicTacToeEnv)
    with pytest.raises(ValueError, match="opponent"):
        EnvSpec("tictactoe", {"opponent": "me"}).build("train", 2, 0)
    with pytest.raises(ValueError, match="eval_opponent"):  # it would be ignored: refused
        EnvSpec("tictactoe", {"opponent": "random", "eval_opponent": "perfect"}).build("test", 2, 0)


def test_rae_maths_by_hand():
    rewards = torch.tensor([1.0, -1.0, 1.0, 0.0, -1.0, 0.0])
    roles = ["X", "O", "X", "O", "X", "O"]
    played = torch.tensor([True, True, True, True, True, False])  # the last O never moved
    a, b = rae_advantages(rewards, roles, played, {"X": 0.5, "O": -0.2}, 0.8)
    # X: mean(1, 1, -1) = 1/3, b = 0.8 * 0.5 + 0.2 / 3 = 0.46667; O: mean(-1, 0) = -0.5, b = 0.8 * -0.2 - 0.1 = -0.26
    assert b == pytest.approx({"X": 0.4 + 0.2 / 3, "O": -0.26})
    assert a.tolist() == pytest.approx([1 - 0.46667, -1 + 0.26, 1 - 0.46667, 0.26, -1 - 0.46667, 0.0], abs=1e-5)
    a2, b2 = rae_advantages(torch.tensor([1.0, -1.0]), ["X", "O"], torch.tensor([True, True]), b, 0.8)
    assert b2 == pytest.approx({"X": 0.8 * (0.4 + 0.2 / 3) + 0.2, "O": 0.8 * -0.26 - 0.2})  # a moving average
    assert a2.tolist() == pytest.approx([1 - b2["X"], -1 - b2["O"]])
    with pytest.raises(ValueError, match="decay"):
        rae_advantages(rewards, roles, played, {}, 1.0)


def lowest_free_cell(engine):
    """A scripted policy over the real tokenizer: reads the last board in its context, plays the lowest free cell."""
    tok = engine.tokenizer
    eos = engine.eos_ids()[0]

    def generate_batch(contexts, prompt_ids, keys, params, seed, weights):
        out = []
        for c in contexts:
            cells = BOARD.findall(tok.decode(c, skip_special_tokens=True))[-1]
            move = next(x for x in cells if x.isdigit())
            ids = tok(f"Move: {move}", add_special_tokens=False)["input_ids"] + [eos]
            out.append((ids, [-0.5] * len(ids), "eos", ""))
        return out

    return generate_batch


@pytest.fixture()
def scripted(tiny_model_dir, monkeypatch):
    engine = TorchEngine.from_config(ModelConfig(path=str(tiny_model_dir)))
    monkeypatch.setattr(engine, "_generate_batch", lowest_free_cell(engine))
    return engine


def test_both_seats_are_token_exact_trajectories_and_the_trained_tokens(scripted):
    games = SelfPlayGames()
    groups = sample_env_groups(multiturn_runner(scripted, games), [EMPTY], 2, SamplingParams(max_new_tokens=16),
                               games, Limits(max_turns=6))
    x, o = groups[0].samples
    assert (x.meta["role"], o.meta["role"]) == ("X", "O")
    # lowest free cell from the empty board: X1 O2 X3 O4 X5 O6 X7 -> X wins on 3-5-7 after 4 turns, O had 3
    assert (len(x.meta["turns"]), len(o.meta["turns"])) == (4, 3)
    assert (x.rewards["total"], o.rewards["total"]) == (1.0, -1.0) and x.meta["turn_rewards"][-1] == 1.0
    assert o.meta["turn_rewards"] == [0.0, 0.0, -1.0]  # O's result lands on its last turn
    tok = scripted.tokenizer
    assert "Opponent plays 1." in tok.decode(o.meta["prompt_ids"])  # O's prompt opens with X's first move
    drawn_o = [t for t, m in zip(o.token_ids, o.meta["loss_mask"]) if m]
    assert tok.decode(drawn_o, skip_special_tokens=True) == "Move: 2Move: 4Move: 6"
    inserted = [t for t, m in zip(x.token_ids, x.meta["loss_mask"]) if not m]
    assert "Opponent plays 2." in tok.decode(inserted)  # the other seat's moves are context, mask 0
    rollouts = Rollouts(groups, [0], [x, o], DrawStats(), [], 0.0)
    rows = rows_from_rollouts(rollouts, lambda p: pytest.fail("trajectories are never re-encoded"), False)
    batch = make_batch(rows, "cpu")
    for row, s, mask in zip(rows, (x, o), batch.train_mask.tolist()):
        assert row.context == s.meta["prompt_ids"] and row.completion == s.token_ids  # the sampled ids themselves
        trained = [t for t, m in zip(row.completion, mask) if m]
        assert trained == [t for t, m in zip(s.token_ids, s.meta["loss_mask"]) if m] and trained


def test_a_seat_that_never_moved_has_no_turns_and_trains_nothing(tiny_model_dir):
    engine = TorchEngine.from_config(ModelConfig(path=str(tiny_model_dir)))
    # a random tiny model names no cell: X forfeits after max_illegal + 1 turns, O never moves
    [[x, o]] = SelfPlayRunner(engine).run([EMPTY], SelfPlayGames(max_illegal=1), 2, SamplingParams(max_new_tokens=6,
                                                                                                   seed=0),
                                          Limits(max_turns=4))
    assert x.role == "X" and x.num_turns == 2 and x.reward == -1.0 and x.counts["forfeit"] == 1
    assert o.role == "O" and o.num_turns == 0 and o.token_ids == [] and o.prompt_ids
    rollouts = Rollouts([type("G", (), {"problem": EMPTY, "samples": [x.to_sample(), o.to_sample()]})()], [0],
                        [], DrawStats(), [], 0.0)
    for s in rollouts.groups[0].samples:
        s.rewards["total"] = s.rewards["reward"]
    rows = rows_from_rollouts(rollouts, None, False)
    assert not rows[0].masked and rows[1].masked and make_batch(rows, "cpu").train_mask[1].sum() == 0
    with pytest.raises(ValueError, match="even"):
        SelfPlayRunner(engine).run([EMPTY], SelfPlayGames(), 3)
    with pytest.raises(ValueError, match="SelfPlayRunner"):  # the one-seat runner refuses a two-seat game
        MultiTurnEngine(engine).run([EMPTY], SelfPlayGames(), 2)


def self_play_config(tiny_model_dir, tmp_path, **kw):
    kw = {"steps": 2, "eval_problems": 2, "save_every": 0, **kw}
    return GRPOConfig(model=ModelConfig(path=str(tiny_model_dir)), prompts_per_step=2, samples_per_prompt=2,
                      sampling=SamplingParams(temperature=1.0, max_new_tokens=8), eval_max_new_tokens=8,
                      output_dir=str(tmp_path), run_name="sp",
                      env=EnvSpec("tictactoe", {"opponent": "self", "max_illegal": 1}),
                      turn_limits=Limits(max_turns=6, max_tokens=400), advantage="rae", rae_decay=0.5, **kw)


def test_config_requires_rae_and_even_groups_for_self_play(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="advantage=rae"):
        GRPOConfig(env=EnvSpec("tictactoe", {"opponent": "self"}))
    with pytest.raises(ValueError, match="even"):
        GRPOConfig(env=EnvSpec("tictactoe", {"opponent": "self"}), advantage="rae", samples_per_prompt=3)
    with pytest.raises(ValueError, match="needs env.name"):
        GRPOConfig(advantage="rae")
    with pytest.raises(ValueError, match="turn_reward_weight"):
        GRPOConfig(env=EnvSpec("tictactoe", {"opponent": "self"}), advantage="rae", turn_reward_weight=0.5)


def metrics(tmp_path):
    return [json.loads(line) for line in (tmp_path / "sp" / "metrics.jsonl").read_text().splitlines()]


def test_grpo_self_play_trains_both_seats_and_logs_each_seats_reward(tiny_model_dir, tmp_path, monkeypatch):
    # both seats play legal moves (the scripted policy over the real model's tokenizer); pi_old is recomputed
    # by the trainer, so the update is the real one on the sampled ids
    monkeypatch.setattr(TorchEngine, "_generate_batch", lambda self, *a: lowest_free_cell(self)(*a))
    summary = main(self_play_config(tiny_model_dir, tmp_path, old_logprobs="recompute"))
    steps = [r for r in metrics(tmp_path) if "reward/mean" in r]
    assert summary["steps"] == 2 and len(steps) == 2
    for r in steps:
        assert r["env/reward/X"] + r["env/reward/O"] == pytest.approx(0.0)  # zero-sum, no forfeits
        assert r["env/moves"] > 2 and "rae/baseline/X" in r and "rae/baseline/O" in r
        assert r["policy/rows_trained_frac"] == 1.0  # every row of both seats has a non-zero advantage


def test_grpo_self_play_on_the_tiny_model_completes(tiny_model_dir, tmp_path):
    summary = main(self_play_config(tiny_model_dir, tmp_path))
    rows = metrics(tmp_path)
    steps = [r for r in rows if "reward/mean" in r]
    assert summary["steps"] == 2
    for r in steps:  # X forfeits (a random model names no cell), O never moves: -1 and 0
        assert r["env/reward/X"] == -1.0 and r["env/reward/O"] == 0.0 and r["env/forfeit"] == 0.5
        assert r["rae/baseline/X"] < 0 and "rae/baseline/O" not in r  # O never played: no baseline yet
    assert "eval/greedy_accuracy" in rows[0]  # evaluation plays the eval opponent, one seat


def test_role_baselines_resume_exactly(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(TorchEngine, "_generate_batch", lambda self, *a: lowest_free_cell(self)(*a))
    whole = tmp_path / "whole"
    main(self_play_config(tiny_model_dir, whole, old_logprobs="recompute", steps=2, eval_problems=0))
    cut = tmp_path / "cut"
    main(self_play_config(tiny_model_dir, cut, old_logprobs="recompute", steps=1, eval_problems=0, save_every=1))
    main(self_play_config(tiny_model_dir, cut, old_logprobs="recompute", steps=2, eval_problems=0, save_every=1,
                          resume=True))
    keys = ("rae/baseline/X", "rae/baseline/O", "env/reward/X", "env/reward/O")
    a = [{k: r[k] for k in keys} for r in metrics(whole) if "reward/mean" in r]
    b = [{k: r[k] for k in keys} for r in metrics(cut) if "reward/mean" in r]
    assert len(a) == 2 and a == b
    assert a[0]["rae/baseline/X"] != a[1]["rae/baseline/X"]  # the baselines moved: a resume restarting them differs


def test_self_play_through_vllm_is_token_in_token_out(tiny_model_dir, monkeypatch):
    from fake_servers import CompletionOutput, Logprob, RequestOutput, install_vllm

    from reasonloop.rollout.vllm_backend import VLLMEngine

    calls = []

    class MoveLLM:
        """vLLM's `LLM` playing the lowest free cell of the last board in each request's ids."""

        def __init__(self, **kwargs):
            pass

        def generate(self, requests, params, use_tqdm=True):
            calls.append([r["prompt_token_ids"] for r in requests])
            outs = []
            for r in requests:
                cells = BOARD.findall(tok.decode(r["prompt_token_ids"], skip_special_tokens=True))[-1]
                ids = tok(f"Move: {next(x for x in cells if x.isdigit())}", add_special_tokens=False)["input_ids"]
                ids = ids + [tok.eos_token_id]
                outs.append(RequestOutput([CompletionOutput(ids, [{t: Logprob(-0.5)} for t in ids], "stop")]))
            return outs

    install_vllm(monkeypatch, MoveLLM)
    engine = VLLMEngine(ModelConfig(path=str(tiny_model_dir)))
    tok = engine.tokenizer
    games = SelfPlayGames()
    [[x, o]] = multiturn_runner(engine, games).run([EMPTY], games, 2, SamplingParams(max_new_tokens=16),
                                                   Limits(max_turns=6))
    assert (x.role, x.num_turns, x.reward, o.role, o.num_turns, o.reward) == ("X", 4, 1.0, "O", 3, -1.0)
    assert len(calls) == 7  # one vLLM batch per move (one live game)
    for t in (x, o):  # each request was the seat's own prompt + everything before that turn: no re-tokenization
        for a, _ in t.turns:
            assert any(c == [t.prompt_ids + t.token_ids[:a]] for c in calls)
        assert [lp for lp, m in zip(t.logprobs, t.loss_mask) if m] == [-0.5] * t.sampled_tokens


def test_self_play_through_the_cli(tiny_model_dir, tmp_path):
    from reasonloop.cli import main as cli

    args = ["grpo", f"model.path={tiny_model_dir}", "env.name=tictactoe", "env.options.opponent=self",
            "env.options.eval_opponent=perfect", "advantage=rae", "rae_decay=0.9", "steps=1", "prompts_per_step=1",
            "samples_per_prompt=2", "sampling.max_new_tokens=6", "eval_problems=1", "eval_max_new_tokens=6",
            "save_every=0", f"output_dir={tmp_path}", "run_name=sp"]
    assert cli(args) == 0
    [step] = [r for r in metrics(tmp_path) if "reward/mean" in r]
    assert step["env/reward/X"] == -1.0 and step["rae/baseline/X"] == pytest.approx(-0.1)  # 0.9 * 0 + 0.1 * -1
    assert cli([*args[:-1], "run_name=bad", "advantage=grpo"]) == 2  # self-play without RAE: one line, status 2


def test_sample_writes_both_seats_of_each_game(tiny_model_dir, tmp_path, capsys):
    from reasonloop.cli import main as cli

    out = tmp_path / "sp.jsonl"
    args = ["sample", f"model.path={tiny_model_dir}", "env.name=tictactoe", "env.options.opponent=self",
            "num_problems=2", "sampling.max_new_tokens=6", f"output={out}"]
    assert cli([*args, "samples_per_prompt=2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["meta"]["role"] for r in rows] == ["X", "O", "X", "O"]
    assert cli([*args, "samples_per_prompt=3"]) == 2 and "must be even" in capsys.readouterr().err
