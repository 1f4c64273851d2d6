"""`ProblemCursor`: endless, resumable iteration over a task, by epochs.

    cursor = ProblemCursor(task, seed=0)      # shuffles a finite dataset, walks a procedural task in order
    batch = cursor.take(8)                     # the next 8 problems, crossing epoch boundaries
    state = cursor.state_dict()                # {"size", "seed", "shuffle", "epoch", "position"}: JSON-ready
    cursor = ProblemCursor(task, seed=0); cursor.load_state_dict(state)   # resume: the same next problems

Epoch `e` visits every index of the task once, in the order `epoch_order(e)`: a permutation
that is a pure function of (seed, e, size), so a cursor restored from `state_dict()` draws
exactly the problems the original would have drawn next, and no order has to be saved.

Whether to shuffle: a finite dataset (a task with `finite = True`, e.g. every dataset task)
is shuffled each epoch, the usual training order; a procedural task is not, because its
item `i` is already an independent random draw, and walking it in order keeps the items a
run sees identical to `task[0], task[1], ...` (so a procedural training run is unchanged
by the cursor). Pass `shuffle=` to override.

One-pass commands (eval, sample, label) use `epoch_order(0)` through `subset_indices` to
choose a seeded subset of a dataset; training loops keep a cursor per task and store its
`state_dict()` in their run state.
"""

from __future__ import annotations

import random
from typing import Any

from reasonloop.config import ConfigError


class CursorStateError(ConfigError):
    """A saved cursor state that does not fit this task (the dataset changed since it was saved)."""


def epoch_order(size: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The visiting order of epoch `epoch`: a seeded permutation of range(size) (identity without shuffle).

    >>> epoch_order(5, seed=0, epoch=0, shuffle=False)
    [0, 1, 2, 3, 4]
    >>> sorted(epoch_order(5, seed=0, epoch=1)) == [0, 1, 2, 3, 4]
    True
    """
    order = list(range(size))
    if shuffle:
        # a string seed is hashed with SHA-512 by `random`: stable across processes and Python versions
        random.Random(f"reasonloop-epoch/{seed}/{epoch}").shuffle(order)
    return order


def subset_indices(size: int, n: int | None, seed: int, shuffle: bool = True) -> list[int]:
    """`n` distinct indices of range(size) for a one-pass command, in ascending order.

    All of them when `n` is None or >= size; otherwise the first `n` of epoch 0's order, so
    the subset is a seeded sample (not the file's first rows, which are often sorted by
    subject or difficulty).

    >>> subset_indices(10, None, seed=0) == list(range(10)), subset_indices(10, 3, seed=0, shuffle=False)
    (True, [0, 1, 2])
    """
    if n is None or n >= size:
        return list(range(size))
    return sorted(epoch_order(size, seed, 0, shuffle)[:n])


class ProblemCursor:
    """The next problems of a task, epoch after epoch, with an exact `state_dict()`.

    Attributes: `epoch` (epochs completed), `position` (index into the current epoch's
    order), `consumed` (problems drawn in total), `epochs` (fractional epochs drawn).
    """

    def __init__(self, task, seed: int = 0, shuffle: bool | None = None):
        self.task = task
        self.size = len(task)
        if self.size < 1:
            raise ValueError(f"task {getattr(task, 'name', task)!r} has no problems to iterate")
        self.seed = seed
        self.shuffle = bool(getattr(task, "finite", False)) if shuffle is None else shuffle
        self.epoch = 0
        self.position = 0
        self._order: list[int] | None = None  # epoch_order(self.epoch), built on first use

    # --- drawing ---
    def next_index(self) -> int:
        if self.position == self.size:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        if not self.shuffle:  # no permutation to materialise (procedural tasks can have 10^7 items)
            index = self.position
        else:
            if self._order is None:
                self._order = epoch_order(self.size, self.seed, self.epoch)
            index = self._order[self.position]
        self.position += 1
        return index

    def take_indices(self, n: int) -> list[int]:
        return [self.next_index() for _ in range(n)]

    def take(self, n: int) -> list:
        """The next `n` problems (an epoch boundary inside the batch starts the next epoch's order)."""
        return [self.task[i] for i in self.take_indices(n)]

    def __next__(self):
        return self.task[self.next_index()]

    def __iter__(self):
        return self

    def seek(self, consumed: int) -> None:
        """Stand where a cursor is after drawing `consumed` problems (loops whose rounds take a fixed
        number of problems need no saved state: round r starts at r x per_round)."""
        if consumed < 0:
            raise ValueError(f"consumed must be >= 0, got {consumed}")
        epoch, position = divmod(consumed, self.size)
        if consumed and not position:  # the end of an epoch, as drawing leaves it (the next draw turns the page)
            epoch, position = epoch - 1, self.size
        self.epoch, self.position, self._order = epoch, position, None

    @property
    def consumed(self) -> int:
        return self.epoch * self.size + self.position

    @property
    def epochs(self) -> float:
        return self.consumed / self.size

    # --- resume ---
    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "seed": self.seed, "shuffle": self.shuffle, "epoch": self.epoch,
                "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; raises CursorStateError if it was saved for a different task or seed."""
        name = getattr(self.task, "name", "task")
        missing = [k for k in ("size", "seed", "shuffle", "epoch", "position") if k not in state]
        if missing:
            raise CursorStateError(f"{name}: saved cursor state lacks {missing}")
        if state["size"] != self.size:
            raise CursorStateError(f"{name}: the saved cursor walked {state['size']} problems but the task now has "
                                   f"{self.size}; the dataset changed since the run was saved")
        if state["seed"] != self.seed or bool(state["shuffle"]) != self.shuffle:
            raise CursorStateError(f"{name}: the saved cursor used seed={state['seed']} shuffle={state['shuffle']}, "
                                   f"this one seed={self.seed} shuffle={self.shuffle}")
        if not 0 <= state["position"] <= self.size or state["epoch"] < 0:
            raise CursorStateError(f"{name}: saved cursor position {state['epoch']}:{state['position']} is out of range")
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None

    @classmethod
    def from_state(cls, task, state: dict[str, Any]) -> ProblemCursor:
        cursor = cls(task, seed=state.get("seed", 0), shuffle=state.get("shuffle"))
        cursor.load_state_dict(state)
        return cursor

    def __repr__(self) -> str:
        return (f"ProblemCursor({getattr(self.task, 'name', '?')}, size={self.size}, seed={self.seed}, "
                f"shuffle={self.shuffle}, epoch={self.epoch}, position={self.position})")
