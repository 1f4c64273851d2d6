"""bench/label_cost.py: the equal-F1 cost comparison by hand, and one end-to-end run on a tiny policy."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.label_cost import bisection_probes, equal_f1_cost, oracle_estimates, same_n, score_variants


def entry(method, n, f1, rollouts, located, tokens=0):
    return {"method": method, "n": n, "f1": f1, "rollouts": rollouts, "tokens": tokens, "located_errors": located,
            "rollouts_per_located_error": rollouts / located}


def test_equal_f1_cost_picks_each_methods_cheapest_n_reaching_the_common_target():
    table = [entry("binary_search", 1, 0.80, 10, 8, 100), entry("binary_search", 2, 0.90, 20, 9, 200),
             entry("mc", 1, 0.70, 30, 7, 300), entry("mc", 2, 0.86, 60, 8, 600), entry("mc", 4, 0.88, 120, 8, 1200)]
    # target = min(0.90, 0.88) - 0.02 = 0.86: binary search needs N=2 (20/9), MC N=2 (60/8)
    got = equal_f1_cost(table, "binary_search", "mc", tolerance=0.02)
    assert (got["ours_n"], got["peer_n"], got["target_f1"]) == (2, 2, 0.86)
    assert got["ours"] == round(20 / 9, 2) and got["peer"] == 7.5
    assert got["ratio"] == round(7.5 / (20 / 9), 3) and got["token_ratio"] == round(75 / (200 / 9), 3)


def test_same_n_lines_both_methods_up_at_every_n():
    table = [entry("adaptive_search", 1, 0.73, 18, 10), entry("mc_sequential", 1, 0.725, 19, 10),
             entry("adaptive_search", 2, 0.75, 40, 10), entry("mc_sequential", 2, 0.751, 41, 10)]
    assert same_n(table, "adaptive_search", "mc_sequential") == [
        {"n": 1, "ours": 1.8, "peer": 1.9, "ratio": round(1.9 / 1.8, 3), "ours_f1": 0.73, "peer_f1": 0.725},
        {"n": 2, "ours": 4.0, "peer": 4.1, "ratio": 1.025, "ours_f1": 0.75, "peer_f1": 0.751}]


@pytest.mark.parametrize("error, probes", [(0, 2), (1, 2), (2, 2), (3, 3), (4, 3)])
def test_bisection_probes_match_binary_search_labels(error, probes):
    # the same (error, probes) table as test_step_labels.py's run of binary_search_labels on 5 steps
    assert bisection_probes(5, error) == probes


def test_oracle_estimates_by_hand():
    truth = [{"completions": ["a", "b", "c", "d"], "outcome": False, "true_first_error": 0},
             {"completions": ["a", "b", "c"], "outcome": False, "true_first_error": 2},
             {"completions": ["a", "b", "c"], "outcome": True, "true_first_error": None}]
    # bisection: 4 steps, error 0 -> probes 2, 1 (2); 3 steps, error 2 -> probes 1, 2 (2)
    # MC: 3 + 2 + 2; MC skipping the verified one: 3 + 2; sequential: 1 + 2
    # adaptive: row 1 bisects (no history: 2 probes); row 2 has seen an error at step 0, weights [4, 1, 1]:
    # probes prefix 1 (good), then 2 (good): 2 probes
    assert oracle_estimates(truth) == {"adaptive_search": 4, "binary_search": 4, "mc": 7, "mc_outcome": 5,
                                       "mc_sequential": 3}
    # a wrong answer whose steps all pass check_step (a truncated solution): its last step is the error
    cut = {"completions": ["a", "b", "c"], "outcome": False, "true_first_error": None}
    assert oracle_estimates([cut])["binary_search"] == 2 and oracle_estimates([cut])["mc_sequential"] == 2


def test_score_variants_adds_soft_and_free_hnc_rows():
    rows = [{"prompt": "q", "completions": ["a", "b", "c"], "labels": [True, False, False],
             "soft_labels": [0.25, 0.0, 0.0], "true_first_error": 1, "rollouts": 6, "tokens": 60},
            {"prompt": "q", "completions": ["a", "b"], "labels": [True, True], "soft_labels": [1.0, 1.0],
             "true_first_error": None, "rollouts": 0, "tokens": 0}]
    mc, soft, hnc = score_variants("mc", 4, rows)
    assert [v["method"] for v in (mc, soft, hnc)] == ["mc", "mc soft", "mc + HNC"]
    assert mc["f1"] == 1.0 and soft["acc_error"] == 0.0  # 0.25 < 0.5: soft labels flag step 0
    assert hnc["rollouts"] == 6 and hnc["rollouts_per_solution"] == mc["rollouts_per_solution"] == 3.0
    assert math.isnan(hnc["rollouts_per_located_error"]) and hnc["n_error"] == 2  # the merged copy is scored
    assert [v["method"] for v in score_variants("mc_sequential", 4, rows)] == ["mc_sequential"]


@pytest.mark.slow
def test_bench_end_to_end_on_a_tiny_policy(tiny_model_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "label_cost.py"), "--policy", str(tiny_model_dir), "--problems", "2",
         "--samples", "1", "--ns", "1,2", "--max-new-tokens", "12", "--out", str(tmp_path / "rows")],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"metric", "ours", "peer", "ratio", "adaptive_search_vs_mc_sequential", "binary_search_vs_mc",
            "beats_every_mc_variant", "oracle_ratio"} <= set(result)
    peers = ("mc", "mc_outcome", "mc_sequential")
    assert result["ratio"] == min(result[f"adaptive_search_vs_{p}"]["ratio"] for p in peers)  # the strongest peer
    assert result["peer_name"] in peers and result["ours_name"] == "adaptive_search"
    assert [r["n"] for r in result["same_n_vs_strongest"]] == [1, 2]
    table = json.loads((tmp_path / "rows" / "table.json").read_text())
    methods = {r["method"] for r in table}
    assert methods == {"adaptive_search", "binary_search", "binary_search + HNC", "mc", "mc soft", "mc + HNC", "mc_outcome",
                       "mc_sequential"}
    # Math-Shepherd MC probes every proper prefix of every solution: N x (steps - 1) rollouts each
    truth = [json.loads(x) for x in (tmp_path / "rows" / "ground_truth.jsonl").read_text().splitlines()]
    mc2 = next(r for r in table if r["method"] == "mc" and r["n"] == 2)
    assert mc2["rollouts"] == sum(2 * (len(r["completions"]) - 1) for r in truth)
    assert {r["source"] for r in truth} <= {"corrupt", "reference", "policy"}


if __name__ == "__main__":
    pytest.main([__file__])
