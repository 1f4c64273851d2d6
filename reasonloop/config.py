"""Typed configs: dataclass defaults, then a YAML file, then `a.b=value` overrides.

    cfg = load_config(SFTConfig, "configs/sft/tiny_cpu.yaml", ["optim.lr=1e-3", "steps=20"])

- Unknown keys are errors with a did-you-mean, naming where the key came from.
- Values are coerced from the field annotations (`1e-3` is a float even though PyYAML
  reads it as a string; `true`/`1`/`yes` are bools; `a,b` is a list of str).
- `Literal[...]` fields are checked, so a misspelt variant fails at load time.
- Validation lives in each dataclass's `__post_init__` (no I/O there).

Hand-written (~200 lines) instead of tyro/OmegaConf: we need exactly these rules and the
errors that name the YAML file or the override, with no extra dependency.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class UserError(Exception):
    """Input a person can fix: a config key, a file, a dataset row, a model or task name.

    The message is one line naming what and where (`file:line: field 'x': ...`). The CLI
    prints it without a traceback and exits with status 2 (`--debug` shows the traceback).
    Raise it (or a subclass) for anything the user wrote; never for a bug of ours.
    """


class ConfigError(UserError, ValueError):
    """A config value or key that cannot be used; the message says which and where from."""


def load_config(cls: type[T], yaml_path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build `cls` from its defaults, then the YAML file, then the overrides (in that order)."""
    tree: dict[str, Any] = {}
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
        _merge(cls, tree, loaded, source=str(path), prefix="")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        value = yaml.safe_load(raw) if raw.strip() else ""
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _merge(cls, tree, nested, source=f"override {item!r}", prefix="")
    return build(cls, tree)


def build(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Construct dataclass `cls` from a (partial) nested dict, coercing every value."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            value = values[f.name]
            if isinstance(value, dict) and _dataclass_in(hints[f.name]) is not None:
                # a partial block overlays the command's own default for it (e.g. DPO's lr in `train`),
                # not the nested class's defaults: `train.epochs=1` must not reset `train.optim.lr`
                value = _deep_merge(_default_tree(f), value)
            kwargs[f.name] = coerce(value, hints[f.name], f"{prefix}{f.name}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        where = f" ({prefix.rstrip('.')})" if prefix else ""
        raise ConfigError(f"invalid {cls.__name__}{where}: {e}") from None


def _default_tree(f: dataclasses.Field) -> dict[str, Any]:
    """A dataclass field's default value as a nested dict ({} when it has no dataclass default)."""
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    elif f.default is not dataclasses.MISSING:
        default = f.default
    else:
        return {}
    return dataclasses.asdict(default) if dataclasses.is_dataclass(default) else {}


def _deep_merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise ConfigError naming `key`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for h in (a for a in args if a is not type(None)):
            try:
                return coerce(value, h, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value in args:
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint_txt = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key}: {value!r} is not one of {list(args)}{hint_txt}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {hint.__name__}, got {value!r}")
        _check_keys(hint, value, source="config", prefix=f"{key}.")
        return build(hint, value, prefix=f"{key}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
            except ValueError:
                f = None
            if f is not None and f.is_integer():
                return int(f)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_hint = args[0] if args else Any
        items = [coerce(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        key_hint, val_hint = args if args else (Any, Any)
        return {coerce(k, key_hint, key): coerce(v, val_hint, f"{key}.{k}") for k, v in value.items()}
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Any) -> str:
    """The resolved config as YAML (what `--print-config` shows and runs save)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)


def _merge(cls: type, tree: dict, new: dict, source: str, prefix: str) -> None:
    """Deep-merge `new` into `tree`, rejecting keys that `cls` does not have."""
    _check_keys(cls, new, source, prefix)
    hints = typing.get_type_hints(cls)
    for k, v in new.items():
        sub = _dataclass_in(hints[k])
        if sub is not None and isinstance(v, dict):
            _merge(sub, tree.setdefault(k, {}), v, source, f"{prefix}{k}.")
        elif isinstance(v, dict) and isinstance(tree.get(k), dict):  # a dict field (options): keys add up, so
            tree[k] = _deep_merge(tree[k], v)  # `env.options.a=1 env.options.b=2` keeps both
        else:
            tree[k] = v


def _check_keys(cls: type, new: dict, source: str, prefix: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    for k in new:
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1, cutoff=0.6)
            hint = f"; did you mean {prefix}{close[0]!r}?" if close else f" (valid keys: {', '.join(names)})"
            raise ConfigError(f"{source}: unknown key {prefix}{k!r} for {cls.__name__}{hint}")


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    for a in typing.get_args(hint):
        if dataclasses.is_dataclass(a):
            return a
    return None


# --- help text: every key with its type, default and docstring --------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal under each field), read from its source."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed([c for c in cls.__mro__ if dataclasses.is_dataclass(c)]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (frozen app, REPL): help without docs
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, after in zip(body, body[1:] + [None]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def type_name(hint: Any) -> str:
    """A short readable form of a field annotation: `a|b` for Literals, `int|None`, `list[str]`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return "|".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if inner else origin.__name__
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))


def describe_config(cls: type, value: Any = None, prefix: str = "") -> list[str]:
    """Help lines for every key of `cls`: `key: type = default` and its docstring, nested keys dotted."""
    if value is None:
        try:
            value = cls()
        except Exception:  # noqa: BLE001 - a config without usable defaults still gets its keys listed
            value = None
    hints, docs, lines = typing.get_type_hints(cls), field_docs(cls), []
    for f in dataclasses.fields(cls):
        key, hint = f"{prefix}{f.name}", hints[f.name]
        current = getattr(value, f.name, None) if value is not None else None
        if dataclasses.is_dataclass(hint):
            lines += describe_config(hint, current, prefix=f"{key}.")
            continue
        default = "" if value is None else f" = {yaml.safe_dump(_plain(current), default_flow_style=True).strip()}"
        default = default.removesuffix("\n...").removesuffix(" ...")
        lines.append(f"  {key}: {type_name(hint)}{default}")
        if f.name in docs:
            lines += [f"      {line}" for line in docs[f.name].splitlines()]
    return lines


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
