"""Scale-out: Ray actors for rollouts, verification and evaluation; torch.distributed training ranks.

- `cluster`: `ClusterConfig` (the `cluster.*` keys of sample/eval/search/label/selftrain/grpo) and
  `ray_session`.
- `workers`: rollout and verifier workers as Ray actors, `RolloutPool` (a `Sampler`), weight sync.
- `commands`: runs a command with its sampling on a `RolloutPool`.
- `async_grpo`: GRPO's batches drawn on the workers up to `max_staleness` steps ahead.
- `training`: torchrun ranks for sft and prm (FSDP2 `fully_shard`, gloo on CPU, NCCL on GPU),
  distributed checkpoints (torch.distributed.checkpoint).

Nothing here imports Ray or starts a process group at import time. Commands and costs:
docs/scaling.md.
"""
