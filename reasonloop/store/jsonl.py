"""One JSONL format for problems, samples and evaluation records.

Every row is `{"schema": 1, "kind": "sample", ...fields of the dataclass...}`. Readers
check the schema version, the kind, required fields, unknown fields and field types, and
report the problem as `path:line: field 'x': ...` so a bad row in a million-line file is
found at once. Writers are atomic (temp file + rename): a killed process never leaves a
half-written file behind.

Hand-written rather than `datasets`/pydantic: the validation is ~60 lines, and these
readers run inside reward workers that must not pay for heavy imports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from reasonloop.config import UserError
from reasonloop.store.atomic import atomic_write_text
from reasonloop.types import RECORD_TYPES, SCHEMA_VERSION, to_record

T = TypeVar("T")


class RecordError(UserError, ValueError):
    """A malformed JSONL row; the message starts with `path:line`."""


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Atomically write dataclass records (or plain dicts) to `path`; returns the row count."""
    lines = [json.dumps(_as_row(r), ensure_ascii=False) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def append_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Append rows and fsync. Used for logs (metrics.jsonl) where a torn last line is
    tolerated by `read_jsonl(..., skip_torn_tail=True)` after a crash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(_as_row(r), ensure_ascii=False) + "\n" for r in records)
        f.flush()
        os.fsync(f.fileno())


def iter_jsonl(path: str | Path, skip_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line number, parsed dict) for each non-empty line; bad JSON is a RecordError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if skip_torn_tail and i == len(lines) and not line.endswith("\n"):
                return  # the last append of a killed process; everything before it is intact
            raise RecordError(f"{path}:{i}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise RecordError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
        yield i, row


def read_jsonl(path: str | Path, cls: type[T] | None = None) -> list[T]:
    """Read typed records. With `cls=None` the row's `kind` picks the dataclass."""
    out = []
    for lineno, row in iter_jsonl(path):
        out.append(from_row(row, cls, where=f"{path}:{lineno}"))
    return out


def from_row(row: dict, cls: type[T] | None = None, where: str = "<row>") -> T:
    """Validate one row and build its dataclass; errors name `where` and the field."""
    schema = row.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise RecordError(f"{where}: schema version {schema!r} is not supported (expected {SCHEMA_VERSION})")
    kind = row.get("kind")
    if cls is None:
        if kind not in RECORD_TYPES:
            raise RecordError(f"{where}: field 'kind': {kind!r} is not one of {sorted(RECORD_TYPES)}")
        cls = RECORD_TYPES[kind]
    elif kind is not None and RECORD_TYPES.get(kind) is not cls:
        raise RecordError(f"{where}: field 'kind': expected {cls.__name__.lower()!r} rows, got {kind!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in row.items():
        if key in ("schema", "kind"):
            continue
        if key not in fields:
            raise RecordError(f"{where}: unknown field {key!r} for {cls.__name__} (known: {', '.join(fields)})")
        if not _type_ok(value, hints[key]):
            raise RecordError(
                f"{where}: field {key!r}: expected {_type_name(hints[key])}, got {type(value).__name__} {value!r:.60}"
            )
        values[key] = value
    missing = [
        n for n, f in fields.items()
        if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecordError(f"{where}: missing required field(s) {', '.join(map(repr, missing))} for {cls.__name__}")
    return cls(**values)


def _as_row(r: Any) -> dict:
    if dataclasses.is_dataclass(r) and type(r) in RECORD_TYPES.values():
        return to_record(r)
    if isinstance(r, dict):
        return r
    raise TypeError(f"cannot write {type(r).__name__} as a JSONL record")


def _type_ok(value: Any, hint: Any) -> bool:
    """Shallow structural check of a JSON value against a type annotation."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        _key_t, val_t = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(_type_ok(v, val_t) for v in value.values())
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
