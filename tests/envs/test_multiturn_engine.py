"""The multi-turn torch engine: one turn is today's engine, the KV-cached and re-prefilled modes
agree, and the trained tokens are exactly the sampled ones in their exact context."""

from typing import ClassVar

import pytest
import torch

from reasonloop.envs import Limits, Step, TaskEnv, task_env
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.multiturn import ChatRenderer, MultiTurnEngine, fallback_text
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.tasks import make_task
from reasonloop.types import Problem


@pytest.fixture(scope="module")
def model_tok(tiny_model_dir):
    from reasonloop.models.policy import ModelConfig, load_model

    return load_model(ModelConfig(path=str(tiny_model_dir), device="cpu"))


class EchoEnv:
    """Deterministic multi-turn env: observation length depends on the turn's text; done after `turns`."""

    tools: ClassVar[list] = []

    def __init__(self, turns=3):
        self.turns, self.n = turns, 0

    def reset(self, problem):
        return [{"role": "user", "content": problem.prompt}]

    def step(self, text):
        self.n += 1
        if self.n >= self.turns:
            return Step(reward=1.0, done=True)
        return Step(observation=[{"role": "tool", "name": "echo", "content": "ok" * (1 + len(text) % 5)}],
                    reward=0.1, info={"tool_calls": 1})


PROBLEMS = [Problem(f"p{i}", f"Question {i}: what is {i} + {i}?") for i in range(5)]


@pytest.mark.parametrize("kv", ["cache", "reprefill"])
def test_one_turn_equals_the_single_turn_engine(model_tok, kv):
    model, tok = model_tok
    engine = TorchEngine(model, tok)
    task = make_task("arithmetic", split="test", size=4, seed=0)
    for params in (SamplingParams(temperature=1.0, max_new_tokens=24, seed=5),
                   SamplingParams(temperature=1.0, max_new_tokens=24, seed=6, stop=["1", "\n"])):
        ref = engine.generate([p.prompt for p in task], 3, params)
        got = MultiTurnEngine(engine, kv=kv).run(list(task), task_env(task), 3, params,
                                                 Limits(max_turns=1, max_tokens=1000))
        for problem, g_ref, g_got in zip(task, ref, got):
            for s, t in zip(g_ref, g_got):
                assert t.token_ids == s.token_ids and t.loss_mask == [1] * len(s.token_ids)
                assert t.logprobs == pytest.approx(s.logprobs, abs=1e-5)
                assert t.prompt_ids == engine.encode_context(s.prompt)
                assert t.num_turns == 1 and t.ending == "done"
                # the reward is the task's own verify on the same text
                assert t.messages[-1]["content"] == s.text
                assert t.turn_rewards == [task.verify(problem, s.text)]


def _run(model_tok, kv, batch, params, limits, turns=3):
    model, tok = model_tok
    engine = TorchEngine(model, tok, max_batch_size=batch)
    return MultiTurnEngine(engine, kv=kv).run(PROBLEMS, lambda: EchoEnv(turns), 3, params, limits)


@pytest.mark.parametrize("batch", [64, 4])  # 4 < 15 trajectories: slots are reused and compacted
def test_cached_and_reprefilled_trajectories_agree(model_tok, batch):
    params = SamplingParams(temperature=1.0, max_new_tokens=12, seed=11, stop=["7"])
    limits = Limits(max_turns=3, max_tokens=200)
    cached = _run(model_tok, "cache", batch, params, limits)
    again = _run(model_tok, "reprefill", 64, params, limits)
    endings, inserted = set(), 0
    for g1, g2 in zip(cached, again):
        for a, b in zip(g1, g2):
            assert a.token_ids == b.token_ids and a.loss_mask == b.loss_mask and a.turns == b.turns
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
            assert a.turn_rewards == b.turn_rewards and a.counts == b.counts
            endings.add(a.ending)
            inserted += a.loss_mask.count(0)
    assert inserted > 0 and "done" in endings


def test_trained_tokens_are_the_sampled_ones_in_their_context(model_tok):
    """Teacher-forcing prompt_ids + token_ids reproduces every sampled token's logprob: the stored
    ids are exactly the context each token was drawn in (no re-tokenization anywhere)."""
    model, tok = model_tok
    params = SamplingParams(temperature=1.0, max_new_tokens=10, seed=2)
    groups = _run(model_tok, "cache", 64, params, Limits(max_turns=3, max_tokens=300))
    checked = 0
    for t in (t for g in groups for t in g):
        ids = torch.tensor([t.prompt_ids + t.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].float(), -1)
        p = len(t.prompt_ids)
        for i, (tok_id, m, lp) in enumerate(zip(t.token_ids, t.loss_mask, t.logprobs)):
            if m:
                assert logp[p + i - 1, tok_id].item() == pytest.approx(lp, abs=1e-4)
                checked += 1
            else:
                assert lp == 0.0
        # the assistant messages are the decoded sampled spans
        for (a, b), text in zip(t.turns, t.assistant_texts()):
            assert all(t.loss_mask[a:b]) and tok.decode(t.token_ids[a:b], skip_special_tokens=True) == text
    assert checked > 100


def test_limits_end_trajectories_with_a_count(model_tok):
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=3)
    capped = _run(model_tok, "cache", 64, params, Limits(max_turns=2, max_tokens=500), turns=5)
    for t in (t for g in capped for t in g):
        assert t.ending == "max_turns" and t.num_turns == 2 and t.counts["turn_limit"] == 1
        assert t.counts["last_turn_notice"] == 1 and "last turn" in t.messages[-2]["content"]
    short = _run(model_tok, "cache", 64, params, Limits(max_turns=5, max_tokens=30), turns=5)
    for t in (t for g in short for t in g):
        assert t.ending == "max_tokens" and len(t.token_ids) <= 30 and t.counts["token_limit"] == 1


def test_observation_ids_follow_the_chat_template(model_tok):
    import copy

    tok = copy.deepcopy(model_tok[1])
    tok.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    renderer = ChatRenderer(tok, [tok.eos_token_id])
    obs = [{"role": "tool", "content": "42"}]
    expect = tok("\n<tool>42</s>\n<assistant>", add_special_tokens=False)["input_ids"]
    assert renderer.observation(obs, [], ended_with_eos=True) == expect
    assert renderer.observation(obs, [], ended_with_eos=False) == [tok.eos_token_id] + expect
    assert renderer.opening([{"role": "user", "content": "hi"}], []) == tok("<user>hi</s>\n<assistant>",
                                                                            add_special_tokens=False)["input_ids"]
    plain = ChatRenderer(tok, [tok.eos_token_id], use_chat_template=False)
    assert plain.observation(obs, [], True) == tok("\ntool: 42\n", add_special_tokens=False)["input_ids"]


def test_fallback_text_matches_the_single_turn_format():
    from reasonloop.models.policy import format_prompt
    from reasonloop.models.tiny import build_tokenizer

    tok = build_tokenizer("char")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert fallback_text(msgs, "</s>", True) == format_prompt(tok, "2+2?", True, "Be brief.")


def test_kv_cache_needs_the_bare_forward(model_tok):
    model, tok = model_tok
    with pytest.raises(ValueError, match="bare Llama forward"):
        MultiTurnEngine(TorchEngine(model, tok, decode="hf"), kv="cache")
    assert MultiTurnEngine(TorchEngine(model, tok, decode="hf")).kv == "reprefill"
    with pytest.raises(ValueError, match="include_stop_str"):
        MultiTurnEngine(TorchEngine(model, tok)).run(PROBLEMS[:1], lambda: TaskEnv(None), 1,
                                                     SamplingParams(stop=["x"], include_stop_str=False))
