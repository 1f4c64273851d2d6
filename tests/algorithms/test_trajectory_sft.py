"""SFT on multi-turn trajectories: the trained ids are the sampled ids, environment tokens get no loss,
and a demonstration renders to exactly the ids the multi-turn sampler would have built."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from reasonloop.algorithms import sft
from reasonloop.algorithms.sft import TrainConfig, completion_mask, fit
from reasonloop.algorithms.trajectory_sft import (
    demonstration_examples,
    eos_ids,
    render_demonstration,
    sample_trajectories,
    trajectory_example,
)
from reasonloop.envs import EnvSpec, Limits
from reasonloop.envs.demonstrations import Demonstration, load_demonstrations
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.multiturn import ChatRenderer, TurnLoop
from reasonloop.rollout.sampler import SamplingParams


@pytest.fixture(scope="module")
def model_tok(tiny_model_dir):
    from reasonloop.models.policy import ModelConfig, load_model

    return load_model(ModelConfig(path=str(tiny_model_dir), device="cpu"), for_training=True)


@pytest.fixture(scope="module")
def chat_model_tok(tmp_path_factory):
    from reasonloop.models.policy import ModelConfig, load_model
    from tests.hf_models import build_chat_checkpoint

    path = build_chat_checkpoint(tmp_path_factory.mktemp("chat") / "m")
    return load_model(ModelConfig(path=str(path), device="cpu"))


def game_trajectories(model, tok):
    """Sampled multi-turn trajectories: a random model's illegal moves are answered, then it forfeits."""
    task, make_env = EnvSpec("tictactoe", {"max_illegal": 1}).build("train", 3, seed=0)
    params = SamplingParams(temperature=1.0, max_new_tokens=10, seed=3)
    return sample_trajectories(TorchEngine(model, tok), list(task), 2, params, make_env,
                               Limits(max_turns=3, max_tokens=300))


@pytest.mark.parametrize("forward", ["packed", "hf"])
def test_the_trained_ids_are_the_sampled_ids(model_tok, monkeypatch, forward):
    model, tok = model_tok
    samples = game_trajectories(model, tok)
    assert all(len(s.meta["turns"]) == 2 and 0 in s.meta["loss_mask"] for s in samples)  # env tokens inside
    examples = [trajectory_example(s) for s in samples]
    seen = []  # (full sequence, trained-token flags) of every row the training forward saw

    real_completion, real_token = sft.completion_logprobs, sft.token_logprobs

    def spy_completion(model, contexts, completions, pad_id, **kw):
        seen.extend((c + x, None) for c, x in zip(contexts, completions))
        return real_completion(model, contexts, completions, pad_id, **kw)

    def spy_token(model, input_ids, attention_mask, **kw):
        for row, att in zip(input_ids.tolist(), attention_mask.tolist()):
            seen.append((row[: sum(att)], None))
        return real_token(model, input_ids, attention_mask, **kw)

    losses = []
    real_loss = sft.sft_loss

    def spy_loss(logprobs, loss_mask):
        losses.append(loss_mask.detach().clone())
        return real_loss(logprobs, loss_mask)

    monkeypatch.setattr(sft, "completion_logprobs", spy_completion)
    monkeypatch.setattr(sft, "token_logprobs", spy_token)
    monkeypatch.setattr(sft, "sft_loss", spy_loss)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(max_steps=1, batch_size=len(examples), micro_batch_size=len(examples), forward=forward,
                      max_length=1000)
    summary = fit(model, tok, [], cfg, examples=examples)
    sampled = sorted((s.meta["prompt_ids"] + s.token_ids) for s in samples)
    assert sorted(seq for seq, _ in seen) == sampled  # token for token, nothing re-tokenized
    # the loss counts exactly the drawn tokens: the trajectories' loss masks, environment tokens 0
    assert summary["train_tokens"] == sum(sum(s.meta["loss_mask"]) for s in samples)
    if forward == "packed":  # (b, Tc): aligned to the completion, padded with 0
        width = max(len(s.token_ids) for s in samples)
        want = sorted(list(map(float, s.meta["loss_mask"])) + [0.0] * (width - len(s.token_ids)) for s in samples)
        assert sorted(losses[0].tolist()) == want
    else:  # (b, T-1): position t predicts token t+1
        rows = losses[0].tolist()
        by_len = sorted(samples, key=lambda s: len(s.meta["prompt_ids"]) + len(s.token_ids))
        got = sorted(tuple(r[: len(s.meta["prompt_ids"]) + len(s.token_ids) - 1]) for r, s in zip(rows, by_len))
        want = sorted(tuple([0.0] * (len(s.meta["prompt_ids"]) - 1) + list(map(float, s.meta["loss_mask"])))
                      for s in samples)
        assert got == want
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_masked_examples_train_like_the_drawn_tokens_alone(model_tok):
    """A mask is loss weights: packed and padded forwards agree on the same masked examples."""
    model, tok = model_tok
    examples = [([1, 5, 6], [7, 8, 9, 10], [1, 0, 0, 1]), ([1, 5], [11, 12, 13], [1, 1, 0])]
    assert completion_mask(examples[0]) == [1, 0, 0, 1] and completion_mask(([1], [2, 3])) == [1, 1]
    grads = {}
    for forward in ("packed", "hf"):
        m = type(model)(model.config)
        m.load_state_dict(model.state_dict())
        fit(m, tok, [], TrainConfig(max_steps=1, batch_size=2, micro_batch_size=2, forward=forward,
                                    optim=sft.OptimConfig(lr=1e-2, schedule="constant", warmup_steps=0)),
            examples=examples)
        grads[forward] = [p.detach() for p in m.parameters()]
    for a, b in zip(grads["packed"], grads["hf"]):
        assert torch.allclose(a, b, atol=1e-5)


def scripted_trajectory(loop: TurnLoop, tok, make_env, problem, texts: list[str], end_id: int, limits: Limits):
    """Drive the sampler's own turn logic (`TurnLoop.start` / `end_turns`) with scripted turns."""
    rows = loop.start([problem], make_env, 1, SamplingParams())
    row = rows[0]
    with ThreadPoolExecutor(1) as pool:
        for text in texts:
            row.turn_ids = tok(text, add_special_tokens=False)["input_ids"] + [end_id]
            row.turn_logps = [0.0] * len(row.turn_ids)
            if not loop.end_turns([(row, "eos")], limits, pool):
                break
    return row.traj


@pytest.mark.parametrize("which", ["char", "chat"])
def test_a_demonstration_renders_as_the_sampler_builds_its_trajectory(model_tok, chat_model_tok, which):
    model, tok = model_tok if which == "char" else chat_model_tok
    task, make_env = EnvSpec("long_arithmetic", {"tools": ["calculator"], "max_digits": 6}).build("test", 1, seed=0)
    problem = task[0]
    call = json.dumps({"name": "calculator", "arguments": {"expression": problem.meta["expression"]}})
    texts = [f"Let me compute.\n<tool_call>{call}</tool_call>", f"Answer: {problem.answer}"]
    renderer = ChatRenderer(tok, eos_ids(model, tok), use_chat_template=True)
    end = next(t for t in renderer.ids(ChatRenderer._PROBE, [], False)[::-1] if t in renderer.eos_ids)
    limits = Limits(max_turns=4, max_tokens=2000)
    traj = scripted_trajectory(TurnLoop(tok, eos_ids(model, tok)), tok, make_env, problem, texts, end, limits)
    assert traj.num_turns == 2 and traj.reward == 1.0 and traj.counts["tool_calls"] == 1
    # the demonstration: the same conversation, the call as a structured tool_call
    messages = [dict(m) for m in traj.messages]
    messages[len(messages) - 3] = {"role": "assistant", "content": "Let me compute.", "tool_calls": [
        {"type": "function", "function": {"name": "calculator",
                                          "arguments": json.dumps({"expression": problem.meta["expression"]})}}]}
    demo = Demonstration(load_rows([{"messages": messages, "tools": ["calculator"]}])[0].messages,
                         make_env().tools)
    context, completion, mask = render_demonstration(renderer, demo)
    assert context == traj.prompt_ids and completion == traj.token_ids and mask == traj.loss_mask
    assert (context, completion, mask) == demonstration_examples(model, tok, [demo])[0]


def load_rows(rows):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="reasonloop-demos-")) / "demos.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_demonstrations(path)


@pytest.mark.parametrize(("row", "error"), [
    ({"messages": []}, "field 'messages'"),
    ({"messages": [{"role": "user", "content": "q"}]}, "no assistant message"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]}, r"messages\[1\].role"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}]},
     r"messages\[1\].content: must be a string"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"function": {"name": "python", "arguments": "{not json"}}]}]}, r"tool_calls\[0\].arguments: not JSON"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                   {"role": "tool", "content": "r"}]}, "must end with an assistant turn"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": ["shell"]},
     r"tools\[0\]: unknown tool 'shell'"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "extra": 1},
     "unknown field"),
])
def test_bad_demonstration_rows_name_the_row_and_field(row, error):
    with pytest.raises(ValueError, match=r"demos\.jsonl:2: .*" + error):
        load_rows([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, row])


def test_sft_command_trains_on_demonstrations_and_rejects_bad_rows(tiny_model_dir, tmp_path):
    good = {"messages": [{"role": "user", "content": "Compute 123456 * 654321 exactly."},
                         {"role": "assistant", "tool_calls": [{"function": {"name": "calculator", "arguments": {
                             "expression": "123456 * 654321"}}}]},
                         {"role": "tool", "name": "calculator", "content": str(123456 * 654321)},
                         {"role": "assistant", "content": f"Answer: {123456 * 654321}"}], "tools": ["calculator"]}
    data = tmp_path / "demos.jsonl"
    data.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    args = [f"model.path={tiny_model_dir}", f"data={data}", "train.max_steps=2", "train.batch_size=2",
            f"output_dir={tmp_path}", "run_name=demo"]
    done = subprocess.run([sys.executable, "-m", "reasonloop", "sft", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["examples"] == 2
    # trained tokens per step = the two assistant turns' tokens (+ their end-of-turn token), twice
    turns = len(good["messages"][3]["content"]) + len('<tool_call>{"name": "calculator", "arguments": '
                                                      '{"expression": "123456 * 654321"}}</tool_call>') + 2
    assert summary["train_tokens"] == 2 * 2 * turns
    bad = dict(good, messages=good["messages"][:3])
    data.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    done = subprocess.run([sys.executable, "-m", "reasonloop", "sft", *args[:-1], "run_name=bad"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert f"{data}:2: messages[2]: the conversation must end with an assistant turn" in done.stderr
    assert not (tmp_path / "bad").exists()  # rejected before the run directory is written
