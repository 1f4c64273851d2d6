"""Training ranks under `torchrun`: FSDP2 `fully_shard`, gloo on CPU / NCCL on GPU, distributed checkpoints.

    torchrun --nproc-per-node 2 -m reasonloop sft model.path=... data=... train.batch_size=32

The CLI sees torchrun's environment (`WORLD_SIZE` > 1) and runs sft, dpo or prm with a
`TorchRanks` (the `algorithms.ranks.Ranks` interface). What each piece does:

- **Process group**: `init_process_group` ("cpu:gloo,cuda:nccl" with CUDA, "gloo" without) with `timeout_s` (env
  `REASONLOOP_DIST_TIMEOUT_S`, default 300): a collective that waits longer raises instead of
  hanging.
- **Sharding**: every decoder layer, then the whole model, is `fully_shard`ed (FSDP2; each rank
  holds 1/world of every parameter and of the AdamW state).
- **The gradient is the global-batch mean.** Each rank weights its micro-batches' losses by their
  share of the global token count, so the ranks' gradients must be *summed*:
  `set_gradient_divide_factor(1.0)` with `set_force_sum_reduction_for_comms` makes FSDP's
  reduce-scatter a plain SUM (gloo has no PREMUL_SUM). Relying on FSDP's
  default averaging would be right only if every rank's loss were its own mean, and on gloo it has
  been silently wrong (pytorch#162338: AVG summed). tests/distributed/test_training.py checks 2
  ranks against 1 rank at the same global batch, weights allclose.
- **Checkpoints**: `torch.distributed.checkpoint` writes each rank's shards of model and optimizer
  (`get_state_dict`/`set_state_dict`), the main rank adds scheduler, RNG and loop state, and the
  directory is renamed into place once every rank has written (a kill leaves the previous one).
  The final model is gathered (`full_state_dict`) into a plain Hugging Face directory.
- **A lost rank** makes the survivors' next collective fail (or time out); `torchrun_ranks`
  turns that into one line naming the rank and how to resume, and exit status 1.

LoRA (sft): the peft model is sharded as it is (FSDP2 takes frozen base weights and trainable
adapters in one unit; only the adapters get gradients and AdamW state), and `final/` is the merged
model. Not done: LoRA for dpo and prm under torchrun, the padding-free packed forward under FSDP (it
reads parameters outside the module call; `train.forward=hf` is used), tensor/sequence parallelism.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from reasonloop.store.atomic import atomic_replace_dir
from reasonloop.store.checkpoint import rng_state, set_rng_state
from reasonloop.store.runs import RunDir


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class TorchRanks:
    """`Ranks` over the default torch.distributed process group (see the module docstring)."""

    def __init__(self):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        from torch.distributed.fsdp import FSDPModule, fully_shard

        # each decoder layer is its own FSDP unit (a causal LM's model.layers, a reward model's backbone.layers)
        for name, module in model.named_modules():
            if name.split(".")[-1] == "layers" and isinstance(module, torch.nn.ModuleList):
                for layer in module:
                    fully_shard(layer)
        # the root too is resharded after every forward: FSDP2 keeps a root's gathered parameters after a
        # forward by default, and after a no-grad forward (DPO's reference pass, an evaluation) no backward
        # reshards them, so the next forward ran on the gathered copy from before the optimizer step
        fully_shard(model, reshard_after_forward=True)
        # every rank's loss is already its share of the global mean: plain SUM reductions, no AVG or
        # PREMUL_SUM (gloo has no PREMUL_SUM, and its AVG has summed silently: pytorch#162338)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(1.0)
                module.set_force_sum_reduction_for_comms(True)
        return model

    def shard(self, items: list) -> list:
        return items[self.rank :: self.world]

    def sum(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def sum_tensor(self, value: torch.Tensor) -> torch.Tensor:
        out = value.detach().to("cpu", torch.float64).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)  # the gloo group of "cpu:gloo,cuda:nccl" takes CPU tensors
        return out.to(value.dtype)

    def clip_grad_norm(self, parameters, max_norm: float) -> float:
        norm = torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def _broadcast_error(self, error: BaseException | None) -> None:
        box = [None if error is None else f"{type(error).__name__}: {error}"]
        dist.broadcast_object_list(box, src=0)
        if box[0] is not None:
            if error is not None:
                raise error
            raise RuntimeError(f"the main rank failed: {box[0]}")

    def open_run(self, root, config_yaml: str, resume: bool, log=None) -> RunDir:
        run, error = None, None
        if self.is_main:
            try:
                run = RunDir.create(root, config_yaml, resume=resume, log=log)
            except Exception as e:  # noqa: BLE001 - re-raised on every rank after the broadcast
                error = e
        self._broadcast_error(error)
        return run if run is not None else RunDir(Path(root))

    def save(self, path: Path, model, tokenizer, optimizer, scheduler, extra: dict[str, Any]) -> Path:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        model_state, optim_state = get_state_dict(model, optimizer)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp))
        if self.is_main:
            torch.save({"scheduler": scheduler.state_dict(), "rng": rng_state(), "extra": extra,
                        "world": self.world}, tmp / "trainer_state.pt")
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
        dist.barrier()  # every shard is on disk before the directory counts as a checkpoint
        if self.is_main:
            atomic_replace_dir(tmp, path)
        dist.barrier()
        return path

    def load(self, path: Path, model, optimizer, scheduler) -> dict[str, Any]:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        path = Path(path)
        if not (path / "trainer_state.pt").exists() or not (path / ".metadata").exists():
            raise FileNotFoundError(f"{path} is not a distributed checkpoint (no .metadata / trainer_state.pt): "
                                    "a run started in one process resumes in one process")
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, checkpoint_id=str(path))  # resharded if the world size changed
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        trainer = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
        scheduler.load_state_dict(trainer["scheduler"])
        set_rng_state(trainer["rng"])
        return trainer["extra"]

    def full_state_dict(self, model) -> dict | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return full if self.is_main else None

    def save_final(self, path: Path, model, tokenizer, base, lora=None) -> None:
        from reasonloop.models.lora import load_trainable, merged
        from reasonloop.models.policy import load_model
        from reasonloop.store.checkpoint import save_model

        full = self.full_state_dict(model)
        if self.is_main:
            if lora is not None and lora.r > 0:  # the peft model's names; merged into a plain model after loading
                plain, _ = load_trainable(base, lora, None)
                plain.load_state_dict(full)
                plain = merged(plain)
            else:
                plain, _ = load_model(base, for_training=False)
                plain.load_state_dict(full)
            save_model(path, plain.to("cpu"), tokenizer)
        dist.barrier()


@contextmanager
def torchrun_ranks(command: str):
    """The process group for one command under torchrun; a lost peer becomes one message and exit 1."""
    timeout = float(os.environ.get("REASONLOOP_DIST_TIMEOUT_S", "300"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    ranks = TorchRanks()
    try:
        yield ranks
    except (dist.DistBackendError, dist.DistNetworkError, RuntimeError) as e:
        if not _is_peer_loss(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        print(f"reasonloop {command}: rank {ranks.rank} of {ranks.world} lost another training rank ({first}); "
              "the run stopped. Continue it from its last checkpoint with the same command and --resume.",
              file=sys.stderr)
        os._exit(1)  # the process group cannot be torn down cleanly without its peers
    dist.destroy_process_group()


def _is_peer_loss(e: BaseException) -> bool:
    if isinstance(e, (dist.DistBackendError, dist.DistNetworkError)):
        return True
    text = str(e).lower()
    return any(k in text for k in ("connection closed", "connection reset", "connection refused", "timed out",
                                   "broken pipe", "peer"))
