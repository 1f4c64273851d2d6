"""The math verifier against the labelled corpus (tests/data/verify_corpus.jsonl)."""

import importlib.util
import json
from collections import Counter
from pathlib import Path

from reasonloop.types import Problem
from reasonloop.verify import score_all
from reasonloop.verify.math import math_reward

DATA = Path(__file__).parent.parent / "data"
ROWS = [json.loads(line) for line in (DATA / "verify_corpus.jsonl").read_text().splitlines()]


def test_the_corpus_is_large_covers_every_source_and_is_what_the_generator_writes(tmp_path, monkeypatch):
    sources = Counter(r["source"] for r in ROWS)
    assert len(ROWS) >= 500 and set(sources) == {"gsm8k", "math", "aime", "adversarial", "heldout"}
    assert sources["heldout"] >= 150 and all(r.get("reason") for r in ROWS if r["source"] == "heldout")
    kinds = {r["kind"] for r in ROWS if r["source"] == "adversarial"}
    assert {"hedge", "rounded_decimal", "scientific_notation", "nested_grouping", "units", "percent",
            "pathological"} <= kinds
    assert len({(r["gold"], r["completion"], r.get("tolerance"), r.get("percent")) for r in ROWS}) == len(ROWS)
    spec = importlib.util.spec_from_file_location("make_verify_corpus", DATA / "make_verify_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "corpus.jsonl")
    module.rows.clear()
    module.main()
    assert (tmp_path / "corpus.jsonl").read_text() == (DATA / "verify_corpus.jsonl").read_text()


def test_every_label_of_the_corpus_is_reproduced():
    problems = [Problem(r["id"], "?", answer=r["gold"], meta={k: r[k] for k in ("tolerance", "percent") if k in r})
                for r in ROWS]
    scores = score_all({"math": math_reward}, problems, [r["completion"] for r in ROWS], workers=2, timeout=10.0)
    assert not any(scores.timed_out)
    verdicts = [v == 1.0 for v in scores["math"]]
    false_positives = [r["id"] for r, v in zip(ROWS, verdicts) if v and not r["correct"]]
    false_negatives = [r["id"] for r, v in zip(ROWS, verdicts) if r["correct"] and not v]
    assert false_positives == [] and false_negatives == []
