"""Reading a run's metrics.jsonl in tests (importable as `run_metrics`: tests/ is on sys.path)."""

import json


def metric_rows(path):
    """metrics.jsonl without the wall-time and peak-memory columns (the only ones two equal runs may differ in)."""
    return [{k: v for k, v in json.loads(line).items() if not k.startswith(("time", "mem/"))}
            for line in path.read_text().splitlines()]
