"""Rollout throughput: reasonloop's engine vs Hugging Face `model.generate`, same model and prompts.

    OMP_NUM_THREADS=1 .venv/bin/python bench/rollout.py    # CPU, tiny and 20m, ~12 min on a busy 2-core box
    .venv/bin/python bench/rollout.py --sizes tiny --reps 1
    .venv/bin/python bench/rollout.py --sizes quickstart      # the quickstart's 0.87 M model
    python bench/rollout.py --backend vllm --device cuda   # GPU: vLLM backend vs HF generate

Workload (the issue's): 64 prompts x 8 samples, temperature 1.0, full distribution
(top_k=0, top_p=1), EOS allowed, at most 64 new tokens.

Mixed lengths. A random-init model almost never emits EOS, so every completion would run
to 64 tokens and no engine could win by stopping rows. Real RL rollouts have mixed lengths,
so each model is first trained for a few seconds (AdamW, `--train-steps`) on
`prompt + random digits/operators of random length + EOS`, lengths drawn from a
geometric distribution (mean ~16) capped at 64. The bench prints the resulting length
distribution of both engines' completions (mean, median, share that hit 64).

Peer: one `model.generate(input_ids, attention_mask, do_sample=True, temperature=1.0,
top_k=0, top_p=1.0, max_new_tokens=64, num_return_sequences=8, pad_token_id=...)` call per
chunk of `prompts_per_call` left-padded prompts. Each call runs until its *last* row stops,
so smaller calls waste fewer steps but batch worse: the bench tries 64, 32, 16 and 8
prompts per call (512 to 64 rows) once on the first size and gives HF the fastest one for
every size.

tokens/s counts completion tokens up to and including EOS (what a trainer consumes), for
both engines. Ours and peer are measured alternately `--reps` times; medians reported.
Also alternated: the same TorchEngine forced through the HF modules (`decode="hf"`), so
the bare Llama forward's own gain is measured in the same run (`bare_forward_gain`), and
with one KV slot per row (`share_decode=False`, `share_decode_gain`: what sharing the slot
of rows with identical histories buys on this model's samples); and
one extra, untimed call of ours split into prefill / decode forward / row drops /
sampling / rest (`ours_split_s`). Threads: torch's default, or OMP_NUM_THREADS (use 1 on
a shared machine: 2 threads on 2 busy cores were measured several times slower).
FLOP/s of a decoder is ~2 x params x tokens/s (matmul FLOPs of the forward pass; attention
scores ignored): reported against the machine's peak fp32 matmul FLOP/s measured in the
same run (a 2048^3 matmul, best of 5).

LAST line of stdout: a JSON object {metric, ours, peer, ratio, ...}; ratio > 1 = reasonloop faster.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.models.tiny import TinyModelConfig, count_parameters, init_model
from reasonloop.rollout.sampler import SamplingParams

SIZES = {
    "quickstart": {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 384},
    "tiny": {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 768},
    "20m": {"hidden_size": 512, "num_layers": 6, "num_heads": 8, "num_kv_heads": 8, "intermediate_size": 1536},
}


def make_prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        terms = [str(rng.randint(1, 10 ** rng.randint(1, 3))) for _ in range(rng.randint(2, 5))]
        prompts.append("Compute: " + " + ".join(terms) + " =")
    return prompts


def train_mixed_lengths(model, tokenizer, prompts: list[str], steps: int, seed: int = 0) -> float:
    """A few AdamW steps on prompt + random text of geometric length + EOS; returns seconds."""
    rng = random.Random(seed)
    alphabet = "0123456789 +-*=\n"
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for _ in range(steps):
        seqs = []
        for _ in range(16):
            n = 1
            while n < 64 and rng.random() > 1 / 16:
                n += 1
            text = rng.choice(prompts) + "".join(rng.choice(alphabet) for _ in range(n))
            seqs.append(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tokenizer.pad_token_id)  # (B, T) right-padded
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.tensor(s)
        labels = ids.masked_fill(ids == tokenizer.pad_token_id, -100)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.requires_grad_(False)
    return time.perf_counter() - t0


def hf_generate(model, tokenizer, prompts, samples, max_new, prompts_per_call) -> tuple[int, float, list[int]]:
    """The peer: batched `model.generate`; returns (tokens up to EOS, seconds, per-row lengths)."""
    lengths = []
    t0 = time.perf_counter()
    for k in range(0, len(prompts), prompts_per_call):
        enc = tokenizer(prompts[k : k + prompts_per_call], return_tensors="pt", padding=True)  # left-padded
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=max_new, num_return_sequences=samples,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = out[:, enc["input_ids"].shape[1]:]  # (P * samples, <= max_new)
        for row in new.tolist():  # up to and including the first EOS; HF pads after it
            lengths.append(row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row))
    return sum(lengths), time.perf_counter() - t0, lengths


def ours_generate(engine, prompts, samples, params) -> tuple[int, float, list[int]]:
    t0 = time.perf_counter()
    groups = engine.generate(prompts, samples, params)
    seconds = time.perf_counter() - t0
    lengths = [s.num_tokens for g in groups for s in g]
    return sum(lengths), seconds, lengths


def peak_matmul_flops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def length_stats(lengths: list[int], max_new: int) -> dict:
    return {"mean": round(statistics.mean(lengths), 1), "median": statistics.median(lengths),
            "hit_max": round(sum(x >= max_new for x in lengths) / len(lengths), 3)}


class Split:
    """Seconds spent in each part of one `TorchEngine.generate` call (an extra, untimed run)."""

    def __enter__(self):
        from reasonloop.rollout import engine as eng

        self.eng, self.seconds, self.saved = eng, {}, []
        targets = [(eng._BareDecoder, "prefill", "prefill"), (eng._BareDecoder, "step", "decode forward"),
                   (eng._BareDecoder, "keep", "drop rows"), (eng._SharedDecoder, "prefill", "prefill"),
                   (eng._SharedDecoder, "step", "decode forward (with slot splits)"),
                   (eng._SharedDecoder, "keep", "drop rows"), (eng._HFDecoder, "prefill", "prefill"),
                   (eng._HFDecoder, "step", "decode forward"), (eng._HFDecoder, "keep", "drop rows"),
                   (eng, "pick_tokens", "sampling"), (eng, "row_uniforms", "sampling")]
        for owner, name, label in targets:
            fn = getattr(owner, name)
            self.saved.append((owner, name, fn))
            setattr(owner, name, self._timed(fn, label))
        return self

    def _timed(self, fn, label):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0
        return wrapper

    def __exit__(self, *exc):
        for owner, name, fn in self.saved:
            setattr(owner, name, fn)


def split_run(engine, prompts, samples, params) -> dict:
    """Where one generate call's time goes: prefill, decode forward, row drops, sampling, rest."""
    with Split() as split:
        t0 = time.perf_counter()
        engine.generate(prompts, samples, params)
        total = time.perf_counter() - t0
    parts = {k: round(v, 3) for k, v in split.seconds.items()}
    parts["rest (loop bookkeeping, EOS checks, detokenize)"] = round(total - sum(split.seconds.values()), 3)
    return {"total_s": round(total, 3), **parts}


def make_engine(args, model, tokenizer, path, decode="auto", share_decode=True):
    if args.backend == "vllm":
        from reasonloop.rollout.vllm_backend import VLLMEngine

        engine = VLLMEngine(ModelConfig(path=str(path), device=args.device, use_chat_template=False))
        engine.load_weights(model)  # the briefly trained weights
        return engine
    from reasonloop.rollout.engine import TorchEngine

    return TorchEngine(model, tokenizer, model_id=str(path), use_chat_template=False, decode=decode,
                       share_decode=share_decode)


def bench_size(args, size: str, workdir: Path) -> dict:
    path = init_model(TinyModelConfig(path=str(workdir / size), **SIZES[size]))
    model, tokenizer = load_model(ModelConfig(path=str(path), device=args.device), for_training=True)
    params_count = count_parameters(model)
    prompts = make_prompts(args.prompts)
    steps = args.train_steps if size == "tiny" else max(1, args.train_steps * 2 // 3)
    train_s = train_mixed_lengths(model, tokenizer, prompts, steps)
    engine = make_engine(args, model, tokenizer, path)
    # the same engine through the HF modules: the bare forward's own gain, measured in the same run
    hf_path = make_engine(args, model, tokenizer, path, decode="hf") if args.backend == "torch" else None
    # and with one KV slot per row (no shared decode slots): what sharing identical histories buys here
    unshared = make_engine(args, model, tokenizer, path, share_decode=False) if args.backend == "torch" else None
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    spp, max_new = args.samples, args.max_new_tokens
    ours_generate(engine, prompts[:4], 2, params)  # warm-up
    if hf_path is not None:
        ours_generate(hf_path, prompts[:4], 2, params)

    # HF's best chunk size, one try each (first size only; later sizes reuse the winner)
    tries = {}
    for ppc in args.hf_prompts_per_call if not args.hf_best else [args.hf_best]:
        tokens, seconds, _ = hf_generate(model, tokenizer, prompts, spp, max_new, ppc)
        tries[ppc] = tokens / seconds
    ppc = args.hf_best = max(tries, key=tries.get)
    print(f"[{size}] HF generate tok/s by prompts per call: "
          + ", ".join(f"{k}x{spp}={v:,.0f}" for k, v in tries.items()) + f" -> using {ppc}", flush=True)

    ours, peer, hf_path_runs, unshared_runs, ours_len, peer_len = [], [], [], [], [], []
    for rep in range(args.reps):
        tokens, seconds, lengths = ours_generate(engine, prompts, spp, params)
        ours.append(tokens / seconds)
        ours_len += lengths
        if hf_path is not None:
            tokens, seconds, _ = ours_generate(hf_path, prompts, spp, params)
            hf_path_runs.append(tokens / seconds)
            tokens, seconds, _ = ours_generate(unshared, prompts, spp, params)
            unshared_runs.append(tokens / seconds)
        tokens, seconds, lengths = hf_generate(model, tokenizer, prompts, spp, max_new, ppc)
        peer.append(tokens / seconds)
        peer_len += lengths
        print(f"[{size}] rep {rep}: ours {ours[-1]:,.0f} tok/s"
              + (f" (HF-module path {hf_path_runs[-1]:,.0f})" if hf_path_runs else "")
              + f", HF generate {peer[-1]:,.0f} tok/s", flush=True)
    split = split_run(engine, prompts, spp, params) if args.backend == "torch" else None
    result = {
        "params": params_count, "train_steps": steps, "train_s": round(train_s, 1),
        "ours_tok_s": round(statistics.median(ours)), "peer_tok_s": round(statistics.median(peer)),
        "ratio": round(statistics.median(ours) / statistics.median(peer), 2),
        "ours_runs": [round(x) for x in ours], "peer_runs": [round(x) for x in peer],
        "hf_prompts_per_call": ppc, "hf_tries": {k: round(v) for k, v in tries.items()},
        "ours_lengths": length_stats(ours_len, max_new), "peer_lengths": length_stats(peer_len, max_new),
        "ours_flops": 2 * params_count * statistics.median(ours),
        "decode_path": engine.decode_path() if hf_path is not None else args.backend,
    }
    if hf_path is not None:
        result["ours_hf_path_tok_s"] = round(statistics.median(hf_path_runs))
        result["bare_forward_gain"] = round(statistics.median(ours) / statistics.median(hf_path_runs), 2)
        result["ours_unshared_slots_tok_s"] = round(statistics.median(unshared_runs))
        result["share_decode_gain"] = round(statistics.median(ours) / statistics.median(unshared_runs), 2)
        result["ours_split_s"] = split
    print(f"[{size}] {json.dumps(result)}", flush=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="tiny,20m")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--hf-prompts-per-call", type=lambda s: [int(x) for x in s.split(",")], default=[64, 32, 16, 8])
    ap.add_argument("--backend", choices=["torch", "vllm"], default="torch")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    args.hf_best = None
    torch.manual_seed(0)

    t0 = time.perf_counter()
    peak = peak_matmul_flops() if args.device == "cpu" else float("nan")
    print(f"peak fp32 matmul: {peak / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = {size: bench_size(args, size, Path(tmp)) for size in args.sizes.split(",")}
    for r in results.values():
        r["ours_flops_fraction_of_peak"] = round(r["ours_flops"] / peak, 3)
        r["ours_flops"] = round(r["ours_flops"] / 1e9, 2)
    first = results[args.sizes.split(",")[0]]
    print(json.dumps({
        "metric": f"rollout tokens/s, {args.prompts} prompts x {args.samples} samples, T=1.0, EOS allowed, "
                  f"<= {args.max_new_tokens} new tokens ({args.sizes.split(',')[0]} model; all sizes in 'sizes')",
        "ours": first["ours_tok_s"], "peer": first["peer_tok_s"], "ratio": first["ratio"],
        "peer_call": "model.generate(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=64, "
                     "num_return_sequences=8), best prompts-per-call",
        "backend": args.backend, "device": args.device, "threads": torch.get_num_threads(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "peak_matmul_gflops": round(peak / 1e9, 1),
        "flops_formula": "2 * params * tokens/s",
        "sizes": results, "wall_s": round(time.perf_counter() - t0),
    }))


if __name__ == "__main__":
    main()
