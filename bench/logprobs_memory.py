"""Peak memory of token log-probs (forward + backward) at a real vocabulary: chunked head vs full logits.

    .venv/bin/python bench/logprobs_memory.py                 # V = 151,936 (Qwen2), ~1 min
    .venv/bin/python bench/logprobs_memory.py --tokens 512

Each case runs in a fresh subprocess, which reports its peak resident memory (ru_maxrss) minus
its resident memory just before the measured forward + backward (model, inputs and imports
excluded), so the number is what the log-prob computation itself adds.

Cases, all on the same locally built 2-layer Qwen2-architecture model (hidden 128, V = 151,936,
19.8 M parameters: the issue's model) with `--rows` completions of `--tokens` / `--rows` tokens
after a 16-token prompt:
- ours_packed / ours_hf: `models.logprobs.completion_logprobs` with entropy, through the packed
  trie forward and through the HF modules (shared prefix): lm_head in chunks, recomputed in the backward;
- peer: what the trainers did before, `model(...).logits.float()` then logsumexp + gather and
  entropy from a log_softmax (the float32 (rows, T, V) logits, kept for the backward).

LAST line of stdout: JSON {metric, ours, peer, ratio, ...}; ratio = peer peak / ours peak (> 1: we use less).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOCAB = 151_936


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_case(case: str, rows: int, tokens: int) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from reasonloop.models.logprobs import completion_logprobs

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=VOCAB, hidden_size=128, intermediate_size=352,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=1024, tie_word_embeddings=True)).train()
    per_row = tokens // rows
    contexts = [list(range(1, 17))] * rows
    completions = [torch.randint(0, VOCAB, (per_row,)).tolist() for _ in range(rows)]
    baseline = rss_mb()
    t0 = time.perf_counter()
    if case == "peer":  # the pre-chunking computation: full float32 logits, logsumexp + gather, log_softmax entropy
        ids = torch.tensor([c + x for c, x in zip(contexts, completions)])
        logits = model(input_ids=ids).logits[:, len(contexts[0]) - 1: -1].float()  # (R, T, V)
        targets = ids[:, len(contexts[0]):]
        logprobs = logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        with torch.no_grad():
            logp = torch.log_softmax(logits, -1)
            entropy = -(logp.exp() * logp).sum(-1)
            del logp
    else:
        logprobs, entropy = completion_logprobs(model, contexts, completions, pad_id=0,
                                                forward="packed" if case == "ours_packed" else "hf",
                                                with_entropy=True)
    logprobs.sum().backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    return {"case": case, "peak_added_mb": round(peak - baseline, 1), "seconds": round(seconds, 2),
            "logprob_sum": round(float(logprobs.sum()), 3), "entropy_mean": round(float(entropy.mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1024, help="completion tokens over all rows")
    parser.add_argument("--case", default="", help=argparse.SUPPRESS)  # internal: run one case here
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.rows, args.tokens)))
        return
    results = {}
    for case in ("ours_packed", "ours_hf", "peer"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--rows", str(args.rows),
                              "--tokens", str(args.tokens)], capture_output=True, text=True, check=True)
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(results[case]))
    ours = max(results["ours_packed"]["peak_added_mb"], results["ours_hf"]["peak_added_mb"])
    peer = results["peer"]["peak_added_mb"]
    print(json.dumps({
        "metric": f"peak RSS added by completion log-probs + entropy, forward + backward, MB ({args.rows} rows x "
                  f"{args.tokens // args.rows} tokens, V={VOCAB}; ours = the larger of the packed and HF paths)",
        "ours": ours, "peer": peer, "ratio": round(peer / max(ours, 1e-9), 2),
        "peer_call": "model(...).logits.float(), logsumexp + gather, log_softmax entropy",
        **{f"{k}_peak_mb": v["peak_added_mb"] for k, v in results.items()},
        **{f"{k}_s": v["seconds"] for k, v in results.items()},
    }))


if __name__ == "__main__":
    main()
