"""Training precision, one setting for every trainer: `model.precision`.

- "fp32": float32 weights, gradients, AdamW state and maths.
- "mixed_bf16": float32 *master* weights, gradients and AdamW state; the forward and backward
  run under `torch.autocast(dtype=bfloat16)` (matmuls in bf16, reductions and norms in
  float32, as autocast chooses). Log-probabilities are taken from float32 logits
  (`.float()` on the autocast output). On CUDA always; on CPU only where the CPU has native
  bf16 (AVX512-BF16 / AMX, `torch.ops.mkldnn._is_mkldnn_bf16_supported()`): there it is
  faster than float32 (docs/precision.md), elsewhere bf16 is emulated and much slower, so
  training falls back to float32 maths and says so once.
- "pure_bf16": weights, gradients *and AdamW state* in bfloat16, no master copy: half the
  memory of the weights and optimizer, but small updates are lost to bf16 rounding (an
  update below ~1/256 of a weight vanishes). Stated as such; use it only when memory forces it.

The model loaded for training carries its precision (`set_precision`), so the hand-written
forwards (the packed trainer pass) and the Hugging Face forward run under the same
`autocast(model)` context that each trainer enters around its forward and backward.
Inference-only loads (sampling, eval, frozen references) use `model.dtype` instead.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Literal

import torch

Precision = Literal["fp32", "mixed_bf16", "pure_bf16"]
PRECISIONS = ("fp32", "mixed_bf16", "pure_bf16")
_ATTR = "_reasonloop_precision"


def weights_dtype(precision: str) -> torch.dtype:
    """The dtype trainable weights (and so AdamW's state) are held in."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} not in {PRECISIONS}")
    return torch.bfloat16 if precision == "pure_bf16" else torch.float32


@functools.cache
def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without mkldnn: no native bf16 kernels
        return False


def autocast_enabled(precision: str, device_type: str) -> bool:
    """Whether `precision` runs the forward under bf16 autocast on this device type."""
    if precision != "mixed_bf16":
        return False
    return device_type == "cuda" or (device_type == "cpu" and cpu_has_native_bf16())


def set_precision(model, precision: str) -> None:
    """Record the training precision on the model (read by `autocast`)."""
    weights_dtype(precision)  # validates
    setattr(model, _ATTR, precision)
    if precision == "mixed_bf16" and not autocast_enabled(precision, next(model.parameters()).device.type):
        from reasonloop.utils import console

        console.print("[yellow]precision=mixed_bf16: this CPU has no native bf16, so the maths stays float32 "
                      "(emulated bf16 is slower)[/yellow]")


def precision_of(model) -> str:
    """The precision `set_precision` recorded (through peft and reward-model wrappers), or "fp32"."""
    for m in (model, getattr(model, "backbone", None)):  # peft forwards attribute reads to its base model
        if m is not None and isinstance(getattr(m, _ATTR, None), str):
            return getattr(m, _ATTR)
    return "fp32"


def autocast(model) -> contextlib.AbstractContextManager:
    """The autocast context for a training forward and backward of `model` (a no-op unless mixed_bf16)."""
    device_type = next(model.parameters()).device.type
    if not autocast_enabled(precision_of(model), device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
