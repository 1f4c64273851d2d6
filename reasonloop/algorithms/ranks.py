"""`Ranks`: what a training loop needs to know when it is one of several data-parallel ranks.

A loop that takes `ranks` (sft, dpo, prm under `torchrun`) keeps its maths: it computes the
global batch, takes this rank's share (`shard`), weights each micro-batch's loss by its share of
the *global* token or example count, and lets the gradient reduction sum the ranks' gradients,
so the update is the global-batch mean whatever the world size (the implementation, FSDP2 on
gloo or NCCL, is `reasonloop.distributed.training.TorchRanks`). Checkpoints go through `save`
and `load`, which are collective (every rank calls them). `None` means one process: the loops'
own code paths, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Ranks(Protocol):
    rank: int
    world: int

    @property
    def is_main(self) -> bool: ...

    def wrap(self, model):
        """Shard `model` over the ranks (before its optimizer is made); returns the model to train."""
        ...

    def shard(self, items: list[T]) -> list[T]:
        """This rank's share of a global batch (every rank gets a disjoint part; together all of it)."""
        ...

    def sum(self, value: float) -> float:
        """`value` summed over the ranks (logged losses)."""
        ...

    def sum_tensor(self, value):
        """A CPU tensor summed elementwise over the ranks (each rank fills its own entries, zeros elsewhere)."""
        ...

    def clip_grad_norm(self, parameters, max_norm: float) -> float:
        """Clip the global gradient norm; returns it before clipping."""
        ...

    def open_run(self, root: str | Path, config_yaml: str, resume: bool, log=None):
        """The run directory: created (and checked) by the main rank, then opened by the others (which do not
        log; `log` is the main rank's tracker config)."""
        ...

    def save(self, path: Path, model, tokenizer, optimizer, scheduler, extra: dict[str, Any]) -> Path:
        """A resumable checkpoint of every rank's shard, written atomically (collective)."""
        ...

    def load(self, path: Path, model, optimizer, scheduler) -> dict[str, Any]:
        """Restore what `save` wrote; returns its `extra` (collective)."""
        ...

    def full_state_dict(self, model) -> dict | None:
        """The whole model's weights, gathered on the main rank (None on the others; collective)."""
        ...

    def save_final(self, path: Path, model, tokenizer, base, lora=None) -> None:
        """The trained weights gathered into one Hugging Face directory; `base` is the ModelConfig the run
        started from (its architecture is rebuilt on the main rank to hold the full weights), `lora` the
        run's LoRAConfig when the model is a peft model (the adapters are merged in)."""
        ...


def rank_micro_batches(items: list[T], cut: Callable[[list[T]], list[list[T]]],
                       ranks: Ranks | None) -> list[tuple[list[T], float]]:
    """(micro-batch, weight) for each forward this rank runs on a global batch `items`.

    One process: `cut(items)`, each with weight 1. Ranks: this rank's share, `items[rank::world]` (the split
    `TorchRanks.shard` makes), cut the same way, then weight-0 repeats up to the most forwards any rank
    runs. Every rank must run the same number of forwards and backwards, because FSDP's gathers and
    gradient reductions pair up across the ranks one by one; uneven counts (a batch that does not
    divide evenly, micro-batches cut by tokens) otherwise hang until the process-group timeout.

    >>> rank_micro_batches([1, 2, 3, 4, 5], lambda xs: [xs[i:i + 2] for i in range(0, len(xs), 2)], None)
    [([1, 2], 1.0), ([3, 4], 1.0), ([5], 1.0)]
    """
    if ranks is None:
        return [(m, 1.0) for m in cut(items)]
    shares = [cut(items[r:: ranks.world]) for r in range(ranks.world)]
    mine = shares[ranks.rank]
    filler = mine[0] if mine else items[:1]
    return [(m, 1.0) for m in mine] + [(filler, 0.0)] * (max(map(len, shares)) - len(mine))
