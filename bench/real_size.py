"""Memory and speed at a real vocabulary: reasonloop vs TRL, GRPO and SFT, one run, same settings.

    .venv/bin/python bench/real_size.py                  # full size: 8 prompts x 8 samples, 256 new tokens
    .venv/bin/python bench/real_size.py --max-new-tokens 32 --steps 1   # a quick look

The model is built here (never downloaded): a Qwen2-architecture causal LM with Qwen's vocabulary
size, V = 151,936, hidden 128, 2 layers, 4 query / 2 KV heads, MLP 384, tied embeddings: 19.8 M
parameters, 98% of them in the embedding, so the (tokens x V) logits are what a step's memory is
about. The tokenizer is a byte-level BPE built with `tokenizers`: trained on arithmetic text, then
extended with further byte-pair merges until it has exactly 151,936 tokens, so every id the
untrained model samples decodes to text (as every id of a real Qwen tokenizer does).

GRPO, both sides: `arithmetic` prompts (problems 0.. of the train split, in order, raw text),
8 prompts x 8 samples per optimizer step, temperature 1.0, completions of up to `--max-new-tokens`
(an untrained model over 151,936 tokens almost never samples EOS: every completion is full length),
8 rows per forward/backward (TRL: `per_device_train_batch_size=8`, `gradient_accumulation_steps=8`;
reasonloop: `micro_batch_size=8`), one PPO iteration, clip 0.2, token-mean loss, beta 0 (no
reference), AdamW lr 1e-6 constant, fp32, 1 torch thread each. The reward is a pseudo-random
function of the completion text (`pseudo_reward`, crc32): every group has reward variance, so both
sides run the full update on every row (a verifier would score 0 everywhere on an untrained
model, and reasonloop would skip those zero-advantage rows: the bench would measure skipping).

SFT, both sides: prompt-completion pairs (the arithmetic prompt; a completion of several worked
solutions, ~`--sft-length` tokens), loss on completion tokens only, 16 sequences per optimizer
step in micro-batches of 8, AdamW lr 1e-5, fp32, no packing.

Each side runs in its own subprocess (so peaks do not mix): peak resident memory is the child's
peak resident set (Linux VmHWM, `utils.peak_rss_gb`) after `--steps` optimizer steps (model, optimizer, sampling and the steps; the first
step is the largest), seconds per step the median over the steps. TRL runs first, then reasonloop.
Last line: JSON, metric = GRPO peak RSS, `ratio` = TRL peak / ours, with the GRPO time ratio
(TRL s/step / ours) and the same two figures for SFT beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

from lib import trl_common

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 151_936
P, G, MICRO = 8, 8, 8
SFT_BATCH, SFT_MICRO = 16, 8
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def pseudo_reward(problem, completion: str) -> float:
    """A deterministic reward in [0, 1) that differs between completions (bench only: no learning signal)."""
    return (zlib.crc32(completion.encode("utf-8", "replace")) % 1000) / 1000


def corpus(n: int) -> list[str]:
    from reasonloop.tasks import make_task

    task = make_task("arithmetic", split="train", size=n, seed=1)
    return [p.prompt + "\n" + p.reference_solution for p in task]


def build_tokenizer():
    """Byte-level BPE: merges trained on arithmetic text, then more byte-pair merges up to exactly VOCAB tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(4000), trainers.BpeTrainer(
        vocab_size=4000, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    want = VOCAB - len(SPECIALS)  # the specials are in `vocab` too; the added-token entries reuse their ids
    grow = [(a, b) for a in alphabet for b in alphabet] + [(a + b, c) for a in alphabet[:160] for b in alphabet
                                                        for c in alphabet]
    for a, b in grow:
        if len(vocab) >= VOCAB:
            break
        if a + b not in vocab and a in vocab and b in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    assert len(vocab) == VOCAB, (len(vocab), want)
    full = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    full.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    full.decoder = decoders.ByteLevel()
    full.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=full, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   padding_side="left", model_max_length=32768)


def build_model(out: Path) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if (out / "config.json").exists():
        return out
    tok = build_tokenizer()
    assert len(tok) == VOCAB, len(tok)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def sft_pairs(n: int, length: int, tokenizer) -> list[tuple[str, str]]:
    """(prompt, completion) with completions of about `length` tokens: worked solutions, back to back."""
    texts = corpus(n * 40)
    pairs, k = [], 0
    for _ in range(n):
        prompt, completion = texts[k].split("\n", 1)
        k += 1
        while len(tokenizer(completion)["input_ids"]) < length:
            completion += "\n" + texts[k]
            k += 1
        pairs.append((prompt, completion))
    return pairs


# --- the four children ------------------------------------------------------------------------------


def child_grpo_trl(model_dir: Path, args, out: Path) -> list[float]:
    from datasets import Dataset
    from trl import GRPOTrainer

    from reasonloop.models.policy import load_tokenizer
    from reasonloop.tasks import make_task
    from reasonloop.tasks.spec import UNBOUNDED as TASK_SIZE

    task = make_task("arithmetic", split="train", size=TASK_SIZE, seed=0)
    data = Dataset.from_list([{"prompt": task[i].prompt} for i in range(args.steps * P)])
    times: list[float] = []

    def reward(prompts, completions, **kwargs):
        return [pseudo_reward(None, c) for c in completions]

    cfg = trl_common.grpo_config(out, steps=args.steps, rows_per_forward=MICRO, accumulation=P * G // MICRO, group=G,
                                 max_new_tokens=args.max_new_tokens, lr=1e-6)
    trainer = GRPOTrainer(model=trl_common.load_model(model_dir), reward_funcs=reward, args=cfg, train_dataset=data,
                          processing_class=load_tokenizer(model_dir), callbacks=[trl_common.step_timer(times)])
    trainer.train()
    return times


def child_grpo_ours(model_dir: Path, args, out: Path) -> list[float]:
    from reasonloop.algorithms.common import OptimConfig
    from reasonloop.algorithms.grpo import GRPOConfig, main
    from reasonloop.models.policy import ModelConfig
    from reasonloop.rollout.sampler import SamplingParams
    from reasonloop.tasks.spec import TaskSpec

    cfg = GRPOConfig(
        model=ModelConfig(path=str(model_dir)), task=TaskSpec("arithmetic", {}), steps=args.steps,
        prompts_per_step=P, samples_per_prompt=G, sampling=SamplingParams(temperature=1.0,
                                                                          max_new_tokens=args.max_new_tokens),
        rewards={"real_size:pseudo_reward": 1.0}, micro_batch_size=MICRO, clip_eps_low=0.2, clip_eps_high=0.2,
        loss_agg="token_mean", kl_coef=0.0,
        optim=OptimConfig(lr=1e-6, schedule="constant", beta1=0.9, beta2=0.999, weight_decay=0.0, grad_clip=1.0),
        eval_problems=0, save_every=0, output_dir=str(out), run_name="ours", seed=0, overlap_sampling=False)
    main(cfg)
    rows = [json.loads(line) for line in (out / "ours" / "metrics.jsonl").read_text().splitlines()]
    return [r["time/step"] for r in rows if "time/step" in r]


def child_sft_trl(model_dir: Path, args, out: Path) -> list[float]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from reasonloop.models.policy import load_tokenizer

    tok = load_tokenizer(model_dir)
    tok.padding_side = "right"
    pairs = sft_pairs(args.steps * SFT_BATCH, args.sft_length, tok)
    data = Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs])
    times: list[float] = []
    cfg = SFTConfig(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=SFT_MICRO,
        gradient_accumulation_steps=SFT_BATCH // SFT_MICRO, learning_rate=1e-5, max_length=args.sft_length + 64,
        packing=False, completion_only_loss=True, shuffle_dataset=False, **trl_common.OPTIM, **trl_common.CPU_FP32)
    trainer = SFTTrainer(model=trl_common.load_model(model_dir), args=cfg, train_dataset=data, processing_class=tok,
                         callbacks=[trl_common.step_timer(times)])
    trainer.train()
    return times


def child_sft_ours(model_dir: Path, args, out: Path) -> list[float]:
    from reasonloop.algorithms.common import OptimConfig
    from reasonloop.algorithms.sft import TrainConfig, fit
    from reasonloop.models.policy import ModelConfig, load_model

    model, tok = load_model(ModelConfig(path=str(model_dir)), for_training=True)
    pairs = sft_pairs(args.steps * SFT_BATCH, args.sft_length, tok)
    times, last = [], [time.perf_counter()]

    def on_step(step, metrics):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    cfg = TrainConfig(max_steps=args.steps, batch_size=SFT_BATCH, micro_batch_size=SFT_MICRO,
                      max_length=args.sft_length + 64,
                      optim=OptimConfig(lr=1e-5, schedule="constant", beta1=0.9, beta2=0.999, grad_clip=1.0))
    last[0] = time.perf_counter()
    fit(model, tok, pairs, cfg, on_step=on_step)
    return times


CHILDREN = {"grpo-trl": child_grpo_trl, "grpo-ours": child_grpo_ours, "sft-trl": child_sft_trl,
            "sft-ours": child_sft_ours}


def run_child(name: str, model_dir: Path, args) -> dict:
    """One side in a fresh interpreter: its own peak RSS, nothing shared with the other side."""
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)  # a previous run's directory (a GRPO run refuses to start over one)
    cmd = [sys.executable, __file__, "--child", name, "--model", str(model_dir), "--steps", str(args.steps),
           "--max-new-tokens", str(args.max_new_tokens), "--sft-length", str(args.sft_length), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": str(args.threads), "REASONLOOP_QUIET": "1",
                               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {"error": f"exit {proc.returncode} (a negative code is a signal: -9 = killed, e.g. out of memory)",
                "stderr_tail": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per side")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--sft-length", type=int, default=256, help="approximate completion tokens per SFT row")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="grpo,sft", help="which benches: grpo, sft or both")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_real_size")
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        from reasonloop.utils import quiet_hf

        quiet_hf()
        times = CHILDREN[args.child](args.model, args, args.out)
        from reasonloop.utils import peak_rss_gb

        print(json.dumps({"step_seconds": times, "peak_rss_gb": round(peak_rss_gb(), 3)}))
        return
    model_dir = build_model(args.out / "model")
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(str(model_dir)).parameters())
    results, load = {}, [os.getloadavg()[0]]
    for bench in args.only.split(","):
        for side in ("trl", "ours"):
            results[f"{bench}-{side}"] = run_child(f"{bench}-{side}", model_dir, args)
            load.append(os.getloadavg()[0])
            r = results[f"{bench}-{side}"]
            print(f"{bench} {side}: " + (f"peak RSS {r['peak_rss_gb']:.2f} GB, s/step {r['step_seconds']}"
                                          if "error" not in r else f"FAILED {r['error']}\n{r['stderr_tail']}"),
                  flush=True)

    def figures(bench: str) -> dict:
        ours, trl = results.get(f"{bench}-ours", {}), results.get(f"{bench}-trl", {})
        out = {}
        for side, r in (("ours", ours), ("trl", trl)):
            out[f"{side}_peak_rss_gb"] = r.get("peak_rss_gb")
            out[f"{side}_s_per_step"] = round(statistics.median(r["step_seconds"]), 3) if r.get("step_seconds") else None
            if "error" in r:
                out[f"{side}_error"] = r["error"]
        if out["ours_peak_rss_gb"] and out["trl_peak_rss_gb"]:
            out["memory_ratio"] = round(out["trl_peak_rss_gb"] / out["ours_peak_rss_gb"], 3)
        if out["ours_s_per_step"] and out["trl_s_per_step"]:
            out["time_ratio"] = round(out["trl_s_per_step"] / out["ours_s_per_step"], 3)
        return out

    grpo, sft = figures("grpo"), figures("sft")
    print(json.dumps({
        "metric": "grpo_step_peak_rss_gb", "ours": grpo["ours_peak_rss_gb"], "peer": grpo["trl_peak_rss_gb"],
        "ratio": grpo.get("memory_ratio"), "time_ratio": grpo.get("time_ratio"),
        "peer_name": "trl.GRPOTrainer / trl.SFTTrainer", "grpo": grpo, "sft": sft,
        "settings": {"vocab": VOCAB, "parameters": n_params, "prompts_per_step": P, "group": G,
                     "max_new_tokens": args.max_new_tokens, "micro_batch_rows": MICRO, "steps": args.steps,
                     "sft_batch": SFT_BATCH, "sft_micro": SFT_MICRO, "sft_length": args.sft_length,
                     "threads": args.threads, "precision": "fp32"},
        "loadavg": load,
    }))


if __name__ == "__main__":
    main()
