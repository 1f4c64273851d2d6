"""sft under `torchrun --nproc-per-node 2` (FSDP2 on gloo) against the one-process run; a lost rank; exact resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasonloop.cli import main

STEPS = 16


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("sft") / "pairs.jsonl"
    rows = [{"prompt": f"{a} + {b} =", "completion": f"{a} + {b} = {a + b}"} for a in range(4) for b in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft_args(model_dir, data, out, name, *extra):
    return ["sft", f"model.path={model_dir}", "model.device=cpu", f"data={data}", f"train.max_steps={STEPS}",
            "train.batch_size=8", "train.micro_batch_size=2", "train.optim.lr=5e-3", "train.optim.grad_clip=100",
            "train.forward=hf", f"output_dir={out}", f"run_name={name}", "save_every=2", *extra]


def torchrun(args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REASONLOOP_DIST_TIMEOUT_S": "120"}
    # a slow monitor: the surviving rank reports the lost one itself before torchrun stops it
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--monitor-interval", "3", "-m", "reasonloop", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The worker process torchrun started for `rank` (found by its LOCAL_RANK)."""
    for child in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True,
                                check=False).stdout.split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"LOCAL_RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no rank {rank} under torchrun {launcher.pid}")


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_metrics(ma, mb):
    assert [m["step"] for m in ma] == [m["step"] for m in mb]
    for x, y in zip(ma, mb):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4)
        # the global gradient norm: a summed (x2) or doubly averaged (x1/2) gradient shows here
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)


def test_two_gloo_ranks_make_the_one_rank_update_survive_a_lost_rank_and_resume_exactly(
        tiny_model_dir, pairs, tmp_path):
    assert main(sft_args(tiny_model_dir, pairs, tmp_path, "one")) == 0
    one = metrics(tmp_path / "one")

    # 2 ranks; rank 1 is SIGKILLed after the first distributed checkpoint
    run = torchrun(sft_args(tiny_model_dir, pairs, tmp_path, "two"))
    latest = tmp_path / "two/checkpoints/latest"
    deadline = time.time() + 240
    while not latest.exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(rank_pid(run, 1), signal.SIGKILL)
    _, err = run.communicate(timeout=120)
    done = int(latest.read_text().strip().split("-")[1])
    assert run.returncode != 0 and done < STEPS, "the run finished before a rank could be killed"
    assert "rank 0 of 2 lost another training rank" in err and "--resume" in err
    ckpt = tmp_path / "two/checkpoints" / latest.read_text().strip()
    assert (ckpt / ".metadata").exists() and (ckpt / "trainer_state.pt").exists()  # torch.distributed.checkpoint
    # the steps the 2 ranks made before the kill are the one-rank steps (global-batch mean gradient)
    assert_same_metrics(metrics(tmp_path / "two")[:done], one[:done])

    resumed = torchrun([*sft_args(tiny_model_dir, pairs, tmp_path, "two"), "--resume"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert_same_metrics(metrics(tmp_path / "two"), one)
    wa, wb = load_file(tmp_path / "one/final/model.safetensors"), load_file(tmp_path / "two/final/model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    init = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(init[k], v) for k, v in wb.items() if k in init)


def test_lora_sft_on_two_gloo_ranks_makes_the_one_rank_update(tiny_model_dir, pairs, tmp_path):
    """peft adapters under FSDP2: the same steps as one process, and final/ is the same merged model."""
    lora = ("lora.r=4", "lora.alpha=16", "train.optim.lr=2e-2", "save_every=0", f"train.max_steps={STEPS // 2}")
    assert main(sft_args(tiny_model_dir, pairs, tmp_path, "one", *lora)) == 0
    run = torchrun(sft_args(tiny_model_dir, pairs, tmp_path, "two", *lora))
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert_same_metrics(metrics(tmp_path / "two"), metrics(tmp_path / "one"))
    wa, wb = load_file(tmp_path / "one/final/model.safetensors"), load_file(tmp_path / "two/final/model.safetensors")
    init = load_file(tiny_model_dir / "model.safetensors")
    assert wa.keys() == wb.keys() == init.keys()  # merged: the plain model's names, no adapters
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    assert not torch.equal(init["model.layers.0.self_attn.q_proj.weight"], wb["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(init["model.layers.0.mlp.up_proj.weight"], wb["model.layers.0.mlp.up_proj.weight"])


@pytest.mark.slow
def test_prm_on_two_gloo_ranks_makes_the_one_rank_update(tiny_model_dir, tmp_path):
    rows = []
    for i in range(16):
        error = i % 4 if i % 4 < 3 else None
        steps = [f"{k} {'bad' if error is not None and k >= error else 'ok'}" for k in range(3 + i % 2)]
        rows.append({"prompt": f"q{i}\n", "completions": steps,
                     "labels": [error is None or k < error for k in range(len(steps))]})
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # 7 rows a step: shares of 4 and 3 rows, in micro-batches of 3: 2 and 1, so the rank with one
    # runs a weight-0 second forward (FSDP's forwards pair up across ranks: `rank_micro_batches`)
    args = ["prm", f"backbone={tiny_model_dir}", f"data={data}", "device=cpu", "epochs=2", "batch_size=7",
            "micro_batch_size=3", "optim.lr=3e-3", "optim.grad_clip=100", f"output_dir={tmp_path}", "save_every=1"]
    assert main([*args, "run_name=one"]) == 0
    run = torchrun([*args, "run_name=two"])
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert_same_metrics(metrics(tmp_path / "two"), metrics(tmp_path / "one"))
    wa = load_file(tmp_path / "one/final/model.safetensors")
    wb = load_file(tmp_path / "two/final/model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    ha, hb = load_file(tmp_path / "one/final/reward_head.safetensors"), load_file(tmp_path / "two/final/reward_head.safetensors")
    for k in ha:
        torch.testing.assert_close(ha[k], hb[k], rtol=1e-4, atol=1e-5)


def test_dpo_on_two_gloo_ranks_makes_the_one_rank_update(tiny_model_dir, tmp_path):
    """dpo data=... under torchrun: the reference pass and every step split over 2 ranks, weights as 1 rank's."""
    rows = []
    for i in range(10):
        prompt = f"{i} + {i % 3} ="
        for k, text in enumerate([f" {2 * i + i % 3}", f" {i}{i}", f" {i + i % 3}", f" {i + 1} x"]):
            rows.append({"problem_id": f"p{i}", "prompt": prompt, "text": text,
                         "rewards": {"correct": 1.0 if k in (0, 2) else 0.0}})
    data = tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # 20 pairs, batches of 6 (3 pairs a rank: uneven micro-batch counts with 2 pairs per forward)
    args = ["dpo", f"model.path={tiny_model_dir}", "model.device=cpu", f"data={data}", "eval_problems=0",
            "train.epochs=2", "train.batch_size=6", "train.micro_batch_size=2", "train.optim.lr=5e-3",
            "train.optim.grad_clip=100", "beta=0.5", "sft_weight=0.5", f"output_dir={tmp_path}"]
    assert main([*args, "run_name=one"]) == 0
    run = torchrun([*args, "run_name=two"])
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    one, two = metrics(tmp_path / "one")[-1], metrics(tmp_path / "two")[-1]
    assert one["pairs"] == two["pairs"] == 20 and one["steps"] == two["steps"]
    for key in [k for k in one if k.startswith("train/")]:
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key
    wa, wb = load_file(tmp_path / "one/final/model.safetensors"), load_file(tmp_path / "two/final/model.safetensors")
    init = load_file(tiny_model_dir / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(init[k], v) for k, v in wb.items() if k in init)


def test_dpo_under_torchrun_refuses_sampling_with_one_line(tiny_model_dir, tmp_path):
    from reasonloop.algorithms import dpo
    from reasonloop.config import ConfigError, load_config

    class TwoRanks:  # the check comes before any collective
        rank, world, is_main = 0, 2, True

    cfg = load_config(dpo.DPOConfig, None, [f"model.path={tiny_model_dir}", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="dpo under torchrun trains a fixed set of pairs"):
        dpo.main(cfg, ranks=TwoRanks())


def test_sft_ranks_with_uneven_shares_stay_in_step(tiny_model_dir, pairs, tmp_path):
    """A global batch of 5 on 2 ranks: 3 and 2 examples, 2 and 1 micro-batches of 2. The rank with fewer runs
    a weight-0 repeat (without it the ranks' collectives fall out of step and the run hangs until the timeout)."""
    uneven = ("train.batch_size=5", "save_every=0", "train.max_steps=4")
    assert main(sft_args(tiny_model_dir, pairs, tmp_path, "one", *uneven)) == 0
    run = torchrun(sft_args(tiny_model_dir, pairs, tmp_path, "two", *uneven))
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert_same_metrics(metrics(tmp_path / "two"), metrics(tmp_path / "one"))
