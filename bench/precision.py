"""Is bf16 mixed precision worth it on this CPU? fp32 vs `model.precision=mixed_bf16`, one SFT step, side by side.

    .venv/bin/python bench/precision.py

`models/precision.py` runs mixed_bf16 under autocast on a CPU only where the CPU has native bf16
(AVX512-BF16 / AMX); this bench measures what that buys there. Two Qwen2-architecture models built
here (a 4-layer hidden-256 one like the quickstart's, a 1-layer slice at Qwen2-0.5B's width:
hidden 896, MLP 4864, 14/2 heads, V 8192), `sft.fit` steps of 8 rows x 128 tokens through the padded
HF forward, 1 torch thread, fp32 and mixed_bf16 alternated `--reps` times; median seconds per step.
Last line: JSON, metric = median s/step at the 0.5B width, ours = mixed_bf16, peer = fp32,
`ratio` = fp32 / mixed (> 1: bf16 is faster), and the same for the small model beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

SHAPES = {"small": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
                    "num_key_value_heads": 4},
          "qwen2_0.5b_width": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 1,
                               "num_attention_heads": 14, "num_key_value_heads": 2}}


def build(root: Path, name: str) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from reasonloop.models.tiny import build_tokenizer

    tok = build_tokenizer("byte")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=8192, max_position_embeddings=512, tie_word_embeddings=True,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                         bos_token_id=tok.bos_token_id, **SHAPES[name]))
    model.save_pretrained(root / name)
    tok.save_pretrained(root / name)
    return root / name


def step_seconds(path: Path, precision: str, steps: int) -> list[float]:
    from reasonloop.algorithms.common import OptimConfig
    from reasonloop.algorithms.sft import TrainConfig, fit
    from reasonloop.models.policy import ModelConfig, load_model

    model, tok = load_model(ModelConfig(path=str(path), precision=precision, use_chat_template=False),
                            for_training=True)
    pairs = [("x" * 16, "y" * 112)] * (8 * (steps + 1))
    times, last = [], [0.0]

    def on_step(step, metrics):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    cfg = TrainConfig(max_steps=steps + 1, batch_size=8, micro_batch_size=8, forward="hf",
                      optim=OptimConfig(lr=1e-5, schedule="constant"))
    last[0] = time.perf_counter()
    fit(model, tok, pairs, cfg, use_chat_template=False, on_step=on_step)
    return times[1:]  # the first step pays one-off costs (allocations, kernel selection)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    import os

    os.environ.setdefault("REASONLOOP_QUIET", "1")
    import torch

    torch.set_num_threads(1)
    from reasonloop.models.precision import cpu_has_native_bf16
    from reasonloop.utils import quiet_hf

    quiet_hf()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHAPES:
            path = build(Path(tmp), name)
            times: dict[str, list[float]] = {"fp32": [], "mixed_bf16": []}
            for _ in range(args.reps):
                for precision in times:
                    times[precision] += step_seconds(path, precision, args.steps)
            fp32, mixed = statistics.median(times["fp32"]), statistics.median(times["mixed_bf16"])
            out[name] = {"fp32": round(fp32, 4), "mixed_bf16": round(mixed, 4), "ratio": round(fp32 / mixed, 3)}
            print(f"{name}: fp32 {fp32:.3f} s/step, mixed_bf16 {mixed:.3f} s/step", flush=True)
    big = out["qwen2_0.5b_width"]
    print(json.dumps({"metric": "sft_seconds_per_step_qwen2_0.5b_width", "ours": big["mixed_bf16"],
                      "peer": big["fp32"], "ratio": big["ratio"], "peer_name": "fp32 (same code)",
                      "small": out["small"], "cpu_native_bf16": cpu_has_native_bf16(),
                      "cpu": torch.backends.cpu.get_cpu_capability(), "loadavg": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
