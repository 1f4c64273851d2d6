"""Scale-out: Ray actors for rollouts, verification and evaluation; torch.distributed training ranks.

- `cluster`: `ClusterConfig` (the `cluster.*` keys of sample/eval/search/label) and `ray_session`.
- `workers`: rollout and verifier workers as Ray actors, `RolloutPool` (a `Sampler`), weight sync.
- `commands`: runs a sampling command data-parallel over a `RolloutPool`.
- `training`: torchrun ranks for sft/dpo/prm (FSDP2 `fully_shard`, gloo on CPU, NCCL on GPU),
  distributed checkpoints (torch.distributed.checkpoint).

Nothing here imports Ray or starts a process group at import time. Commands and costs:
docs/scaling.md.
"""
