"""A small run directory with every kind of thing the viewer shows (importable as `viewer_run`)."""

import math

from reasonloop.store.jsonl import write_jsonl
from reasonloop.store.runs import RunDir
from reasonloop.types import EvalRecord, Sample


def make_run(root):
    run = RunDir.create(root, "task: {name: arithmetic}\nsteps: 3\n")
    for step in range(4):
        run.log({"step": step, "reward/mean": 0.1 * step, "reward/correct": 0.3 - 0.05 * step,
                 "policy/kl": math.nan if step == 1 else 0.01 * step, "health/reward_hacking": int(step == 3)})
    good = Sample("p1", "Compute 1 + 2\n", "1 + 2 = 3\nAnswer: 3", rewards={"correct": 1.0, "format": 1.0, "total": 1.0},
                  finish_reason="eos", meta={"step_verdicts": [True, True], "steps_valid": True})
    lucky = Sample("p2", "Compute 2 + 2\n", "2 + 2 = 5\nAnswer: 4", rewards={"correct": 1.0, "total": 1.0},
                   meta={"step_verdicts": [False, True], "steps_valid": False})
    rewarded_wrong = Sample("p3", "Compute 3 + 3\n", "3 + 3 = 7\nAnswer: 7</script><b>x",
                            rewards={"correct": 0.0, "format": 1.0, "prm": 0.2, "total": 1.2},
                            meta={"step_scores": [0.9, 0.1], "turns": [{"tool": "python", "output": "6"}]})
    for step in (1, 2, 3):
        run.write_rollouts(step, [good, lucky, rewarded_wrong])
    tree = {"step": "", "children": [
        {"step": "1 + 2 = 3\n", "score": 0.9, "visits": 3, "children": [
            {"step": "Answer: 3", "score": 0.95, "finished": True, "chosen": True, "children": []}]},
        {"step": "1 + 2 = 4\n", "score": 0.2, "visits": 1, "children": []}]}
    write_jsonl(root / "records.jsonl", [EvalRecord("p1", "arithmetic", "mcts", "3", "3", True, meta={"tree": tree})])
    return run
