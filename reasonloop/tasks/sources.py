"""Where dataset rows come from: local files, a `save_to_disk` folder, or the Hugging Face Hub.

    rows = read_source("data/gsm8k/test.jsonl", split="test")          # (where, row) pairs
    rows = read_source("data/gsm8k/{split}.parquet", split="train")     # {split} picks the file
    rows = read_source("data/gsm8k_dict", split="test")                 # DatasetDict.save_to_disk folder
    rows = read_source("openai/gsm8k", split="test", config="main")     # datasets.load_dataset

`where` names the place of a row in every error: `path:LINE` for JSONL (the line number a
text editor shows), `path:row N` (0-based, as pandas shows it) for Parquet, CSV and JSON
arrays, `source[split]:row N` for the `datasets` library's folders and the Hub.

Local sources, by kind:
- a file: `.jsonl` / `.ndjson` (one JSON object per line), `.json` (JSON lines, or one JSON
  array of objects), `.parquet`, `.csv` / `.tsv`. A file has no splits: it is used for
  whatever split the command asks for (say `{split}` in the path to pick a file per split);
- a folder written by `Dataset.save_to_disk` (one split) or `DatasetDict.save_to_disk`
  (the command's split is taken from it);
- any other folder: the file named after the split (`test.jsonl`, `train.parquet`,
  `test-00000-of-00001.parquet` ...), the layout of a downloaded Hub dataset.
Anything else that does not exist locally is a Hub dataset id, loaded with
`datasets.load_dataset(id, config, split=..., revision=...)`: its cache, `HF_TOKEN`,
`HF_DATASETS_OFFLINE` / `HF_HUB_OFFLINE` and `HF_DATASETS_CACHE` work as in any Hugging
Face tool. `datasets` and `pyarrow` are imported only when a source needs them.

JSONL and CSV are read here rather than through `datasets` so that errors can name the line
of the file, and so that a bad line is one error instead of a failed Arrow conversion.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from reasonloop.config import ConfigError

FILE_KINDS = (".jsonl", ".ndjson", ".json", ".parquet", ".csv", ".tsv")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class DatasetError(ConfigError):
    """A source or row that cannot be used; the message names the file, row and field."""


Rows = Iterator[tuple[str, "dict[str, Any] | DatasetError"]]
"""(where, row); a row that cannot even be read (bad JSON, extra CSV cells) comes as its DatasetError,
so that the caller can count or skip it like any other bad row"""


def read_source(source: str, *, split: str, config: str = "", revision: str = "") -> tuple[str, Rows]:
    """-> (a description of what was opened, an iterator of (where, row)).

    Raises DatasetError for a missing file, an unknown split or a Hub dataset that cannot be
    loaded; rows themselves are checked by the caller.
    """
    if not source:
        raise DatasetError("no dataset source: set task.source to a file, a folder or a Hub dataset id")
    path = os.path.expanduser(source.replace("{split}", split))
    if os.path.isfile(path):
        return path, read_file(path)
    if os.path.isdir(path):
        return _read_folder(path, split)
    if "{split}" in source or path.lower().endswith(FILE_KINDS) or path.startswith((".", "/", "~")) \
            or not _HUB_ID.match(source):
        raise DatasetError(f"dataset file {path} does not exist")
    return f"{source}[{split}]", _read_hub(source, split, config, revision)


def read_file(path: str) -> Rows:
    lower = path.lower()
    if lower.endswith(".parquet"):
        return _read_parquet(path)
    if lower.endswith((".csv", ".tsv")):
        return _read_csv(path, "\t" if lower.endswith(".tsv") else ",")
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return _read_json(path)
    raise DatasetError(f"{path}: unknown file kind; use one of {', '.join(FILE_KINDS)}")


def _read_json(path: str) -> Rows:
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if path.lower().endswith(".json") and head.startswith("["):
        yield from _read_json_array(path)
        return
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield where, DatasetError(f"{where}: not valid JSON ({e.msg})")
                continue
            if not isinstance(row, dict):
                row = DatasetError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def _read_json_array(path: str) -> Rows:
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(rows, list):
        raise DatasetError(f"{path}: expected a JSON array of objects, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            row = DatasetError(f"{path}:row {i}: expected a JSON object, got {type(row).__name__}")
        yield f"{path}:row {i}", row


def _read_parquet(path: str) -> Rows:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 -- pyarrow raises several types for a corrupt file
        raise DatasetError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    i = 0
    for batch in table.to_batches():  # batch by batch: one Python copy of a batch at a time
        for row in batch.to_pylist():
            yield f"{path}:row {i}", row
            i += 1


def _read_csv(path: str, delimiter: str) -> Rows:
    """CSV cells are strings; fields that must hold a list or an object are parsed later (`parse_cell`)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames:
            raise DatasetError(f"{path}: empty CSV file (no header row)")
        for i, row in enumerate(reader):
            if None in row:
                yield f"{path}:row {i}", DatasetError(f"{path}:row {i}: more cells than the header's "
                                                      f"{len(reader.fieldnames)} columns")
                continue
            yield f"{path}:row {i}", {k: (None if v == "" else v) for k, v in row.items()}


def _is_saved_dataset(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "state.json")) and os.path.isfile(os.path.join(path, "dataset_info.json"))


def _read_folder(path: str, split: str) -> tuple[str, Rows]:
    if os.path.isfile(os.path.join(path, "dataset_dict.json")):
        from datasets import load_from_disk

        splits = load_from_disk(path)
        if split not in splits:
            raise DatasetError(f"{path}: no split {split!r}; its splits are {', '.join(splits)} (set task.split)")
        return f"{path}[{split}]", _rows_of(splits[split], f"{path}[{split}]")
    if _is_saved_dataset(path):
        from datasets import load_from_disk

        return path, _rows_of(load_from_disk(path), path)
    candidates = sorted(
        p for kind in FILE_KINDS
        for p in glob.glob(os.path.join(glob.escape(path), f"{glob.escape(split)}{kind}"))
        + glob.glob(os.path.join(glob.escape(path), "**", f"{glob.escape(split)}-*{kind}"), recursive=True)
    )
    if not candidates:
        present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(path), "*")))[:8]
        raise DatasetError(f"{path}: no data for split {split!r} (looked for {split}.jsonl/.parquet/.csv/.json and "
                           f"{split}-*.parquet; the folder has {', '.join(present) or 'nothing'})")
    return path, _chain(candidates)


def _chain(paths: list[str]) -> Rows:
    for p in paths:
        yield from read_file(p)


def _rows_of(dataset, where: str) -> Rows:
    for i, row in enumerate(dataset):
        yield f"{where}:row {i}", row


def _read_hub(name: str, split: str, config: str, revision: str) -> Rows:
    try:
        import datasets
    except ImportError:
        raise DatasetError(f"{name}: loading a Hub dataset needs the `datasets` package") from None
    try:
        dataset = datasets.load_dataset(name, config or None, split=split, revision=revision or None)
    except ValueError as e:  # unknown split or config: datasets says which exist
        raise DatasetError(f"{name}: {_first_line(e)} (set task.split / task.config)") from None
    except Exception as e:  # noqa: BLE001 -- network, auth, missing repo, offline without a cache: one line
        offline = any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
                      for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))
        hint = " (offline mode is on and it is not in the cache)" if offline else " (no such local path either)"
        raise DatasetError(f"Hub dataset {name!r} could not be loaded{hint}: {type(e).__name__}: "
                           f"{_first_line(e)}") from None
    yield from _rows_of(dataset, f"{name}[{split}]")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
