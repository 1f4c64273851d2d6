"""Two-seat self-play: both seats of a game are the policy being sampled (SPIRAL, arXiv:2506.24119).

    runner = SelfPlayRunner(TorchEngine(model, tokenizer))      # or a VLLMEngine
    groups = runner.run(problems, SelfPlayGames(), samples_per_problem=4, params=..., limits=...)
    groups[i]   # [game 0 seat X, game 0 seat O, game 1 seat X, game 1 seat O]: Trajectory.role = the seat

Each seat's conversation is its own token-exact trajectory: its prompt is the seat's opening
(rendered with the chat template when the seat first moves, so a second seat's opening holds
the first seat's move), its drawn tokens carry loss mask 1, and the opponent's moves (and
illegal-move notices) are inserted as observation tokens with mask 0, exactly as
`MultiTurnEngine` does for one seat (`TurnLoop`'s rendering). Every round samples one turn for
the seat to move in each live game, all games in one `TorchEngine` batch over each mover's
whole history (the `kv="reprefill"` way: self-play is short games; kept KV caches across seats
are not implemented), or one vLLM batch with `prompt_token_ids` (vLLM's prefix cache keeps the
history's KV, as in `VLLMMultiTurn`). Random streams are keyed by (game, seat, turn) like the
other runners.

At the end of a game each seat's result (+1 win, -1 loss, 0 draw; a forfeit -1 for the
offender, 0 for the other) is added to that seat's last turn reward. A seat whose game ended
before it moved (its opponent won or forfeited at once) has a trajectory with its opening and
no turns: reward 0, nothing to train. Limits apply per seat: a seat reaching `max_turns` or
`max_tokens` ends the game for both without a result (ending "max_turns"/"max_tokens").
Torch engine or vLLM (an API server's trajectories are not token-exact: not for self-play).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from reasonloop.envs.base import Limits, Trajectory, add_counts
from reasonloop.models.llama import LlamaWeights
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.multiturn import TurnLoop, turn_key
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Problem


@dataclass
class _Seat:
    name: str
    key: int
    traj: Trajectory | None = None
    ended_with_eos: bool = True


@dataclass
class _Game:
    game: object
    problem: Problem
    seats: dict[str, _Seat] = field(default_factory=dict)


class SelfPlayRunner(TurnLoop):
    """Samples both seats of two-seat games with a `TorchEngine` or a `VLLMEngine`; see the module docstring."""

    def __init__(self, engine):
        if isinstance(engine, TorchEngine):
            super().__init__(engine.tokenizer, engine.eos_ids(), engine.use_chat_template, engine.system_prompt,
                             engine.model_id)
        else:  # a VLLMEngine: token-in/token-out like `VLLMMultiTurn`
            tok = engine.tokenizer
            super().__init__(tok, [tok.eos_token_id], engine.config.use_chat_template, engine.config.system_prompt,
                             engine.model_id)
        self.engine = engine

    def _open(self, g: _Game, seat: _Seat) -> None:
        opening = g.game.messages_for(seat.name)
        if self.system_prompt and not (opening and opening[0]["role"] == "system"):
            opening = [{"role": "system", "content": self.system_prompt}, *opening]
        seat.traj = Trajectory(g.problem.id, g.problem.prompt, prompt_ids=self.renderer.opening(opening, []),
                               messages=list(opening), model_id=self.model_id, role=seat.name)

    def _observe(self, g: _Game, seat: _Seat, limits: Limits) -> bool:
        """Append what the seat reads before its turn (mask 0); False when that would pass its token limit."""
        t = seat.traj
        messages = g.game.messages_for(seat.name)
        if t.num_turns == limits.max_turns - 1 and limits.last_turn_notice:
            messages.append({"role": "user", "content": limits.last_turn_notice})
            add_counts(t.counts, {"last_turn_notice": 1})
        ids = self.renderer.observation(messages, [], seat.ended_with_eos)
        if len(t.token_ids) + len(ids) >= limits.max_tokens:
            t.ending = "max_tokens"
            add_counts(t.counts, {"token_limit": 1})
            return False
        t.token_ids += ids
        t.loss_mask += [0] * len(ids)
        t.logprobs += [0.0] * len(ids)
        t.messages += messages
        return True

    @staticmethod
    def _end(g: _Game, ending: str | None = None) -> None:
        """Close both seats: their results on their last turns (no result when cut by a limit)."""
        for seat in g.seats.values():
            t = seat.traj
            if t is None:  # never moved: opened after the loop
                continue
            if ending is None and t.turn_rewards:
                t.turn_rewards[-1] += g.game.reward(seat.name) if seat.name != g.game.mover else 0.0
            if t.ending == "done" and ending is not None:
                t.ending = ending

    @torch.inference_mode()
    def run(self, problems: list[Problem], make_game, samples_per_problem: int = 2,
            params: SamplingParams | None = None, limits: Limits | None = None) -> list[list[Trajectory]]:
        params, limits = params or SamplingParams(), limits or Limits()
        if samples_per_problem < 2 or samples_per_problem % 2:
            raise ValueError(f"self-play: samples_per_problem must be even (two seats per game), got "
                             f"{samples_per_problem}")
        if params.stop and not params.include_stop_str:
            raise ValueError("multi-turn sampling keeps the stop string in the turn (include_stop_str=True)")
        per = samples_per_problem // 2
        games = []
        for i, problem in enumerate(problems):
            for j in range(per):
                game = make_game()
                game.reset(problem)
                seats = {name: _Seat(name, key=(i * per + j) * 2 + s) for s, name in enumerate(game.seats)}
                games.append(_Game(game, problem, seats))
        draw = self._torch_draw(params) if isinstance(self.engine, TorchEngine) else self._vllm_draw(params)
        model = self.engine.model if isinstance(self.engine, TorchEngine) else None
        was_training = model is not None and model.training
        if model is not None:
            model.eval()
        try:
            live = list(games)
            while live:
                movers = []
                for g in live:
                    seat = g.seats[g.game.mover]
                    if seat.traj is None:
                        self._open(g, seat)
                    elif not self._observe(g, seat, limits):
                        self._end(g, "max_tokens")
                        continue
                    movers.append((g, seat))
                self._sample(movers, params, limits, draw)
                live = [g for g, _ in movers if not self._after_turn(g, limits)]
        finally:
            if model is not None:
                model.train(was_training)
        for g in games:  # a seat whose game ended before it moved: its opening, no turns
            for seat in g.seats.values():
                if seat.traj is None:
                    self._open(g, seat)
        out = []
        for i in range(len(problems)):
            out.append([g.seats[name].traj for g in games[i * per: (i + 1) * per] for name in g.game.seats])
        for group in out:
            for t in group:
                t.check()
        return out

    def _torch_draw(self, params: SamplingParams):
        """contexts, random keys, per-row token budgets -> [(ids, logprobs)]: one `TorchEngine` batch per chunk."""
        engine = self.engine
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, ()).item())
        weights = LlamaWeights.from_model(engine.model, fuse=engine.fuse_projections) \
            if engine.decode_path() == "fast" else None

        def draw(contexts: list[list[int]], keys: list[int], budgets: list[int]) -> list[tuple[list, list]]:
            out = []
            for start in range(0, len(contexts), engine.max_batch_size):
                chunk = contexts[start: start + engine.max_batch_size]
                first = {tuple(c): n for n, c in reversed(list(enumerate(chunk)))}  # equal contexts prefill once
                turn_params = SamplingParams(**{**vars(params), "max_new_tokens": max(budgets[start:start + len(chunk)])})
                outs = engine._generate_batch(chunk, [first[tuple(c)] for c in chunk], keys[start: start + len(chunk)],
                                              turn_params, seed, weights)
                out += [(list(ids[:cap]), list(lps[:cap]))
                        for (ids, lps, _, _), cap in zip(outs, budgets[start: start + len(chunk)])]
            return out

        return draw

    def _vllm_draw(self, params: SamplingParams):
        """The same through vLLM: `prompt_token_ids` = each mover's whole context (its prefix cache keeps the KV)."""
        engine = self.engine

        def draw(contexts: list[list[int]], keys: list[int], budgets: list[int]) -> list[tuple[list, list]]:
            vparams = [engine._vllm_params(
                n=1, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k if params.top_k > 0 else -1,
                max_tokens=cap, stop=list(params.stop) or None, include_stop_str_in_output=True,
                seed=None if params.seed is None else params.seed + key, logprobs=0) for key, cap in zip(keys, budgets)]
            outs = engine.llm.generate([{"prompt_token_ids": c} for c in contexts], vparams, use_tqdm=False)
            result = []
            for out in outs:
                c = out.outputs[0]
                ids = list(c.token_ids)
                logps = [float(step[t].logprob) for t, step in zip(ids, c.logprobs or [])]
                if len(logps) != len(ids):
                    raise ValueError("vLLM returned no logprob for some drawn tokens (logprobs=0 was asked)")
                result.append((ids, logps))
            return result

        return draw

    def _sample(self, movers: list[tuple[_Game, _Seat]], params: SamplingParams, limits: Limits, draw) -> None:
        """One turn for every mover (one draw over all of them), recorded and played."""
        if not movers:
            return
        contexts = [s.traj.prompt_ids + s.traj.token_ids for _, s in movers]
        budgets = [max(1, min(params.max_new_tokens, limits.max_tokens - len(s.traj.token_ids))) for _, s in movers]
        keys = [turn_key(s.key, s.traj.num_turns) for _, s in movers]
        for (g, seat), (ids, logps) in zip(movers, draw(contexts, keys, budgets)):
            t = seat.traj
            text = self.tok.decode(ids, skip_special_tokens=True)
            start_at = len(t.token_ids)
            t.token_ids += ids
            t.loss_mask += [1] * len(ids)
            t.logprobs += logps
            t.turns.append((start_at, len(t.token_ids)))
            t.messages.append({"role": "assistant", "content": text})
            seat.ended_with_eos = bool(ids) and ids[-1] in self.eos_ids
            step = g.game.step(text)
            t.turn_rewards.append(float(step.reward))
            add_counts(t.counts, step.info)

    def _after_turn(self, g: _Game, limits: Limits) -> bool:
        """Is the game over (a result, or the seat to move is out of turns)? Closes it if so."""
        if g.game.done:
            self._end(g)
            return True
        seat = g.seats[g.game.mover]
        if seat.traj is not None and seat.traj.num_turns >= limits.max_turns:
            add_counts(seat.traj.counts, {"turn_limit": 1})
            self._end(g, "max_turns")
            return True
        return False

