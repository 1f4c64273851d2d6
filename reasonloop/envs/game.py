"""Tic-tac-toe against an opponent: a two-player, multi-turn environment (SPIRAL-style).

    env = TicTacToeEnv(opponent=RandomOpponent(seed=0))
    env.reset(problem)            # the empty board; the model plays X (or O: problem.meta["model_first"])
    env.step("I take the centre. Move: 5")
    # -> observation: the opponent's move and the board; reward +1 win, 0 draw, -1 loss at the end

SPIRAL (Liu et al. 2025, seed paper) trains reasoning through self-play on zero-sum games
(TicTacToe among them) against a copy of the policy. Here the opponent is anything with
`move(board, legal, mark) -> int`: `RandomOpponent`, `PerfectOpponent` (minimax) for tests and
evaluation, or a frozen copy of the policy (`reasonloop.rollout.multiturn.PolicyOpponent`,
which lives in the rollout layer because it samples): then only the model's seat is trained.

Self-play (`opponent=self`, SPIRAL's setting): `TicTacToeSelfPlay` is one game whose two seats
are both the current policy; `rollout.selfplay.SelfPlayRunner` samples the seat to move, and
each seat's conversation is its own token-exact trajectory (`Trajectory.role` = "X" or "O"),
both trained, with role-conditioned advantages (`algorithms/role_advantages.py`). In the test
split (evaluation) a self-play spec plays `eval_opponent` (default random) instead, as SPIRAL
evaluates against fixed opponents.

An illegal or unreadable move is data: the model is told why and moves again; after
`max_illegal` such turns it forfeits (reward -1).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache
from typing import ClassVar, Protocol

from reasonloop.envs.base import Message, Step
from reasonloop.tasks.base import ProceduralTask, Split, check_common_config
from reasonloop.types import Problem

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
_MOVE = re.compile(r"move\s*:?\s*([1-9])", re.IGNORECASE)


def winner(board: str) -> str | None:
    """"X", "O", "draw" or None (game on). `board` is 9 chars of "X", "O", ".", row by row."""
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return "draw" if "." not in board else None


def legal_moves(board: str) -> list[int]:
    """Cells 1-9 that are free."""
    return [i + 1 for i, c in enumerate(board) if c == "."]


def show(board: str) -> str:
    """The board as three rows, free cells shown by their number."""
    cells = [c if c != "." else str(i + 1) for i, c in enumerate(board)]
    return "\n".join(" ".join(cells[r * 3: r * 3 + 3]) for r in range(3))


def play(board: str, cell: int, mark: str) -> str:
    return board[: cell - 1] + mark + board[cell:]


class Opponent(Protocol):
    def move(self, board: str, legal: list[int], mark: str) -> int: ...


class RandomOpponent:
    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def move(self, board: str, legal: list[int], mark: str) -> int:
        return self.rng.choice(legal)


@cache
def _value(board: str, mark: str) -> int:
    """Minimax value for the player `mark` to move: +1 win, 0 draw, -1 loss."""
    result = winner(board)
    if result is not None:
        return 0 if result == "draw" else (1 if result == mark else -1)
    other = "O" if mark == "X" else "X"
    return max(-_value(play(board, m, mark), other) for m in legal_moves(board))


class PerfectOpponent:
    """Minimax: never loses; the lowest-numbered best move (deterministic)."""

    def move(self, board: str, legal: list[int], mark: str) -> int:
        other = "O" if mark == "X" else "X"
        return max(legal, key=lambda m: (-_value(play(board, m, mark), other), -m))


@dataclass
class TicTacToeConfig:
    split: Split = "train"
    size: int = 200
    seed: int = 0

    def __post_init__(self):
        check_common_config(self)


class TicTacToeTask(ProceduralTask):
    """Openings: 0-2 random pairs of moves already played; the model plays X (moves next) or O."""

    name = "tictactoe"
    description = "tic-tac-toe against an opponent (multi-turn game)"

    config_class = TicTacToeConfig
    config: TicTacToeConfig

    def _draw(self, rng: random.Random) -> Problem:
        board = "." * 9
        for _ in range(rng.randint(0, 2)):  # 0-2 random opening pairs (X then O); X moves next
            for mark in "XO":
                board = play(board, rng.choice(legal_moves(board)), mark)
        if winner(board):
            board = "." * 9
        model_first = rng.random() < 0.5
        mark = "X" if model_first else "O"
        prompt = (f"Tic-tac-toe. You play {mark}. Board (free cells numbered):\n{show(board)}\n"
                  f"Reply with your move as 'Move: <cell>'.")
        return Problem(id="", prompt=prompt, answer=None, meta={"board": board, "mark": mark,
                                                                 "model_first": model_first})

    def verify(self, problem: Problem, completion: str) -> float:
        """Single-turn use: 1.0 iff the completion's move is legal and minimax-optimal."""
        board, mark = problem.meta["board"], problem.meta["mark"]
        if not problem.meta["model_first"]:
            return 0.0  # the opponent moves first: a single turn cannot be graded alone
        found = _MOVE.findall(completion)
        if not found or int(found[-1]) not in legal_moves(board):
            return 0.0
        best = PerfectOpponent().move(board, legal_moves(board), mark)
        other = "O" if mark == "X" else "X"
        return float(_value(play(board, int(found[-1]), mark), other) == _value(play(board, best, mark), other))


class TicTacToeEnv:
    """The model's seat in a game against `opponent`; see the module docstring."""

    tools: ClassVar[list[dict]] = []

    def __init__(self, opponent: Opponent, max_illegal: int = 2, system: str = ""):
        self.opponent, self.max_illegal, self.system = opponent, max_illegal, system
        self.board, self.mark, self.illegal = "." * 9, "X", 0

    def reset(self, problem: Problem) -> list[Message]:
        self.board, self.mark, self.illegal = problem.meta["board"], problem.meta["mark"], 0
        text = problem.prompt
        if not problem.meta["model_first"]:
            text += f"\nOpponent plays {self._opponent_moves()}.\n{show(self.board)}\nYour move."
        opening: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return opening + [{"role": "user", "content": text}]

    @property
    def other(self) -> str:
        return "O" if self.mark == "X" else "X"

    def _opponent_moves(self) -> int:
        cell = self.opponent.move(self.board, legal_moves(self.board), self.other)
        if cell not in legal_moves(self.board):  # a broken opponent must not corrupt the game
            raise ValueError(f"opponent chose illegal cell {cell} on {self.board}")
        self.board = play(self.board, cell, self.other)
        return cell

    def _end(self, info: dict) -> Step:
        result = winner(self.board)
        reward = 0.0 if result == "draw" else (1.0 if result == self.mark else -1.0)
        return Step(reward=reward, done=True, info=info)

    def step(self, assistant: str) -> Step:
        if winner(self.board):  # the opponent's opening move already ended it
            return self._end({})
        found = _MOVE.findall(assistant)
        cell = int(found[-1]) if found else None
        if cell not in legal_moves(self.board):
            self.illegal += 1
            info = {"illegal_move": 1}
            if self.illegal > self.max_illegal:
                return Step(reward=-1.0, done=True, info={**info, "forfeit": 1})
            why = "no 'Move: <cell>' found" if cell is None else f"cell {cell} is taken"
            return Step(observation=[{"role": "user", "content": f"Illegal move ({why}). Free cells: "
                                      f"{legal_moves(self.board)}. Reply 'Move: <cell>'."}], info=info)
        self.board = play(self.board, cell, self.mark)
        if winner(self.board):
            return self._end({"moves": 1})
        reply = self._opponent_moves()
        if winner(self.board):
            return self._end({"moves": 1})
        return Step(observation=[{"role": "user", "content": f"Opponent plays {reply}.\n{show(self.board)}\n"
                                  f"Your move."}], info={"moves": 1})


def seat_intro(board: str, mark: str) -> str:
    return (f"Tic-tac-toe. You play {mark}. Board (free cells numbered):\n{show(board)}\n"
            f"Reply with your move as 'Move: <cell>'.")


class TicTacToeSelfPlay:
    """Both seats of one game, each played by the current policy (SPIRAL self-play).

    The runner asks `mover`, gives it `messages_for(mover)` (its opening the first time: the
    starting board, and the opponent's move if it came first; later the opponent's move or why
    its own move was illegal), samples its turn and passes the text to `step`. `step` returns
    the mover's `Step` (done, the mover's reward when done, counts); `reward(seat)` is each
    seat's result once `done`: +1 win, -1 loss, 0 draw. An illegal move is told to the mover,
    who moves again; after `max_illegal` of them it forfeits: -1 for it, 0 for the other seat
    (a forfeit is not a win the other seat earned).
    """

    seats: ClassVar[tuple[str, str]] = ("X", "O")
    tools: ClassVar[list[dict]] = []

    def __init__(self, max_illegal: int = 2, system: str = ""):
        self.max_illegal, self.system = max_illegal, system
        self.board, self.mover, self.done = "." * 9, "X", False
        self.results = {"X": 0.0, "O": 0.0}

    def reset(self, problem: Problem) -> None:
        """Start from the problem's opening; X moves next (openings are whole pairs of moves)."""
        self.start = self.board = problem.meta["board"]
        self.mover, self.done = "X", False
        self.illegal = {"X": 0, "O": 0}
        self.results = {"X": 0.0, "O": 0.0}
        self.pending: dict[str, list[str]] = {"X": [], "O": []}
        self.opened: set[str] = set()
        if winner(self.board):  # a finished opening cannot be played: start from the empty board
            self.start = self.board = "." * 9

    def messages_for(self, seat: str) -> list[Message]:
        """What `seat` reads before its next turn (its opening the first time); clears its queue."""
        texts, self.pending[seat] = self.pending[seat], []
        if seat in self.opened:
            return [{"role": "user", "content": t} for t in texts]
        self.opened.add(seat)
        opening: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return opening + [{"role": "user", "content": "\n".join([seat_intro(self.start, seat), *texts])}]

    def reward(self, seat: str) -> float:
        return self.results[seat]

    def _finish(self, results: dict[str, float], info: dict) -> Step:
        self.done, self.results = True, results
        return Step(reward=results[self.mover], done=True, info=info)

    def step(self, assistant: str) -> Step:
        if self.done:
            raise RuntimeError("TicTacToeSelfPlay.step after the game ended")
        mover = self.mover
        other = "O" if mover == "X" else "X"
        found = _MOVE.findall(assistant)
        cell = int(found[-1]) if found else None
        if cell not in legal_moves(self.board):
            self.illegal[mover] += 1
            if self.illegal[mover] > self.max_illegal:
                return self._finish({mover: -1.0, other: 0.0}, {"illegal_move": 1, "forfeit": 1})
            why = "no 'Move: <cell>' found" if cell is None else f"cell {cell} is taken"
            self.pending[mover].append(f"Illegal move ({why}). Free cells: {legal_moves(self.board)}. "
                                       f"Reply 'Move: <cell>'.")
            return Step(info={"illegal_move": 1})
        self.board = play(self.board, cell, mover)
        result = winner(self.board)
        if result is not None:
            draw = result == "draw"
            return self._finish({mover: 0.0 if draw else 1.0, other: 0.0 if draw else -1.0}, {"moves": 1})
        self.pending[other].append(f"Opponent plays {cell}.\n{show(self.board)}\nYour move.")
        self.mover = other
        return Step(info={"moves": 1})


class SelfPlayGames:
    """The factory of `TicTacToeSelfPlay` games: what `EnvSpec("tictactoe", {"opponent": "self"})` builds
    for training. `seats` tells the samplers it is a two-seat game (`rollout.multiturn_api.multiturn_runner`
    then picks `rollout.selfplay.SelfPlayRunner`)."""

    seats: ClassVar[tuple[str, str]] = TicTacToeSelfPlay.seats

    def __init__(self, max_illegal: int = 2, system: str = ""):
        self.max_illegal, self.system = max_illegal, system

    def __call__(self) -> TicTacToeSelfPlay:
        return TicTacToeSelfPlay(self.max_illegal, self.system)


def two_seat(make_env) -> bool:
    """Is `make_env` a factory of two-seat games (both seats played by the sampled policy)?"""
    return isinstance(getattr(make_env, "seats", None), tuple)
