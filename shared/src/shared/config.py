"""Dataclass configs loaded from YAML with dotted ``key=value`` overrides.

Every package describes its experiment as (nested) dataclasses. ``load_config`` fills them from a YAML file, applies
command-line overrides such as ``train.lr=3e-5`` or ``stop=[a,b]`` (values parsed as YAML, then coerced to the
annotated type), and rejects unknown keys by their dotted name and the file they came from, so a typo never passes
silently. ``get_key``/``set_key`` read and set one dotted key of a loaded config (``set_key`` coerces like an
override: the command line's ``--seed`` and ``--out`` go through it). ``save_config`` writes the resolved config beside the outputs; ``claim_run_dir`` does the same for a run
that resumes from its output folder and refuses a folder holding a run with another config.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that cannot be turned into the config dataclass."""


def _where(source: str) -> str:
    return f" (in {source})" if source else ""


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``key`` when impossible."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as err:
                errors.append(str(err))
        if len(errors) == 1:  # `Section | None`: the section's own error names the inner key
            raise ConfigError(errors[0])
        raise ConfigError(f"key '{key}'{_where(source)}: value {value!r} matches none of {tp}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"key '{key}'{_where(source)}: value {value!r} is not one of {list(args)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}'{_where(source)}: expected a mapping for section, got {value!r}")
        return _build(tp, value, key, source)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str | int | float | bool):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"key '{key}'{_where(source)}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"key '{key}'{_where(source)}: expected {len(args)} items, got {len(value)}")
            items = [_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}'{_where(source)}: expected a mapping, got {value!r}")
        if args:
            return {_coerce(k, args[0], key, source): _coerce(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"key '{key}'{_where(source)}: expected a bool, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"key '{key}'{_where(source)}: expected an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"key '{key}'{_where(source)}: expected an int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"key '{key}'{_where(source)}: expected a float, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):  # YAML reads "3e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"key '{key}'{_where(source)}: expected a float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float | bool):
            return str(value)
        raise ConfigError(f"key '{key}'{_where(source)}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"key '{key}'{_where(source)}: expected a path, got {value!r}")
    return value


def _build(cls: type[T], data: dict, prefix: str, source: str) -> T:
    """Instantiate dataclass ``cls`` from a mapping, coercing each field; unknown keys are errors."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError as err:  # string annotations naming a type not visible at module level
        raise ConfigError(f"cannot resolve the field types of {cls.__name__}: {err}; define the config dataclasses "
                          "at module level") from err
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        dotted = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{dotted}'{_where(source)}; known keys here: {known}")
        kwargs[name] = _coerce(value, hints[name], dotted, source)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field without default was not given
        raise ConfigError(f"cannot build {cls.__name__}{_where(source)}: {err}") from err


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=value`` into the dotted key and the YAML-parsed value (``[a,b]`` gives a list)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not valid YAML (e.g. "a: b: c"): keep the literal string
    return key, value


def read_config_file(path: str | Path) -> dict:
    """The top-level mapping of a YAML config file; ConfigError naming the file (and line) when it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" if not path.exists() else f"config {path} is not a file")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = ": ".join(filter(None, (getattr(err, "context", None), getattr(err, "problem", None))))
        raise ConfigError(f"malformed YAML in {path}{where}: {problem or err}") from err
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(loaded).__name__}")
    return loaded


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Build config dataclass ``cls`` from a YAML file (optional) plus dotted overrides."""
    data: dict = {}
    source = ""
    if path is not None:
        source = str(path)
        data = read_config_file(path)
    base = config_to_dict(_build(cls, data, "", source))
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(base, key, value)
    return _build(cls, base, "", f"{source} + overrides" if source and overrides else (source or "overrides"))


def config_file_overrides(path: str | Path) -> list[str]:
    """A YAML config file as dotted ``key=value`` overrides (leaves only; values JSON-encoded, which YAML reads
    back unchanged), for commands whose config is built from presets plus overrides: the file's keys then replace
    the presets' and the user's overrides still come last. Errors name the file like ``load_config``."""
    import json

    return [f"{key}={json.dumps(value)}" for key, value in _flat(read_config_file(path)).items()]


def get_key(cfg: Any, dotted: str) -> Any:
    """The value at a dotted key of a (nested) config dataclass; ConfigError naming the key when it is absent."""
    node = cfg
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node) or not any(f.name == part for f in dataclasses.fields(node)):
            raise ConfigError(f"unknown config key '{dotted}'")
        node = getattr(node, part)
    return node


def set_key(cfg: Any, dotted: str, value: Any, source: str = "") -> None:
    """Set a dotted key of a (nested) config dataclass, coerced to the field's annotated type like an override."""
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = get_key(node, part)
    if not dataclasses.is_dataclass(node) or not any(f.name == last for f in dataclasses.fields(node)):
        raise ConfigError(f"unknown config key '{dotted}'{_where(source)}")
    hints = typing.get_type_hints(type(node))
    setattr(node, last, _coerce(value, hints[last], dotted, source))


def config_to_dict(cfg: Any) -> Any:
    """Plain dict/list/scalars for a (nested) config dataclass, safe for YAML and JSON."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, list | tuple):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def save_config(cfg: Any, out_dir: str | Path) -> Path:
    """Write the resolved config to ``out_dir/config.yaml`` (atomically) and return the path."""
    from shared.atomic import write_text

    path = Path(out_dir) / "config.yaml"
    return write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True))


RUN_IGNORED = ("threads", "progress", "out_dir", "output_dir")  # keys that never change what a run computes


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def config_differences(old: Any, new: Any, ignore: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two configs (dataclasses or dicts), as `key: old -> new`; a key
    is skipped when its dotted name or its last part is in `ignore`."""
    a, b = _flat(config_to_dict(old)), _flat(config_to_dict(new))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or key.rsplit(".", 1)[-1] in ignore:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return diffs


def claim_run_dir(cfg: Any, out_dir: str | Path, ignore: tuple[str, ...] | list[str] = ()) -> Path:
    """Save the config of a run that resumes from the finished parts it finds in ``out_dir``.

    A folder whose ``config.yaml`` differs from ``cfg`` (outside ``RUN_IGNORED`` and ``ignore``) is refused with a
    ConfigError naming the folder and the differing keys: its finished parts were computed with the other config
    and would be silently reused. Returns the path of the written ``config.yaml``."""
    path = Path(out_dir) / "config.yaml"
    if path.is_file():
        try:
            saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: unreadable config of an earlier run ({err}); remove the folder") from err
        diffs = config_differences(saved, cfg, (*RUN_IGNORED, *ignore))
        if diffs:
            shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
            raise ConfigError(f"{out_dir} holds a run with another config ({shown}); its finished parts would be "
                              f"reused: pick another output folder or remove this one")
    return save_config(cfg, out_dir)
