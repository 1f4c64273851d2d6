"""Which forward runs a model: the bare Llama-family maths (`models/llama.py`) or its own HF modules.

One place decides, for the sampler's decode (`decode_path`) and for the training passes
(`training_path`: completion log-probs, SFT), so the reasons are the same everywhere:

- "auto" takes the bare path where `llama.unsupported_reason` (for training,
  `packed.packed_unsupported_reason`) and `llama.window_reason` (a sliding window shorter
  than the sequences) find nothing against it, and the HF path otherwise; the first fallback
  of a model class for each reason prints one line, once per process, with that reason;
- a forced bare path ("fast" / "packed") raises ValueError naming the reason;
- "hf" always takes the HF modules.

The check runs per call (it is cheap next to a forward), so a hook or a LoRA wrapper added
later sends the model back to the HF path.
"""

from __future__ import annotations

from typing import Literal

from reasonloop.models.llama import unsupported_reason, window_reason
from reasonloop.models.packed import packed_unsupported_reason
from reasonloop.utils import console

_logged: set[tuple[str, str]] = set()


def _fallback(model, reason: str) -> None:
    """One line per model class and reason, for the whole process (every call re-checks)."""
    key = (type(model).__name__, reason)
    if key not in _logged:
        _logged.add(key)
        console.print(f"{type(model).__name__} runs through its Hugging Face modules, not the bare Llama-family "
                      f"forward: {reason}", style="yellow", markup=False, highlight=False, soft_wrap=True)


def _choose(model, requested: str, bare: str, what: str, reason: str | None) -> str:
    if requested == "hf":
        return "hf"
    if reason is None:
        return bare
    if requested == bare:
        raise ValueError(f"{what}={bare!r} is not available for this model: {reason}")
    _fallback(model, reason)
    return "hf"


def decode_path(model, requested: Literal["auto", "fast", "hf"] = "auto", what: str = "decode",
                length: int | None = None) -> Literal["fast", "hf"]:
    """The sampler's decode path for `model`: "fast" (bare, KV cache) or "hf". `length`: the most
    cache columns a row will use (prompt width + new tokens), checked against a sliding window
    (None: lengths aside, for checks before any call); `what` names the option in messages."""
    if requested == "hf":
        return "hf"
    reason = unsupported_reason(model)
    if reason is None and length is not None:
        reason = window_reason(model.config, length)
    return _choose(model, requested, "fast", what, reason)


def training_path(model, requested: Literal["auto", "packed", "hf"] = "auto", what: str = "forward",
                  length: int | None = None) -> Literal["packed", "hf"]:
    """The training forward for `model`: "packed" (bare, padding-free trie) or "hf". `length`: the
    longest input sequence (context + completion), checked against a sliding window (None: lengths
    aside, for checks before any call); `what` names the option in messages."""
    if requested == "hf":
        return "hf"
    reason = packed_unsupported_reason(model)
    if reason is None and length is not None:
        reason = window_reason(model.config, length)
    return _choose(model, requested, "packed", what, reason)
