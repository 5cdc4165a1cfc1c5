"""What a leaderboard entry is: one method with one resolved config, trained for one number of steps.

A result records the method's full resolved config (`config`), its hash (`config_hash`) and the settings that
differ from the method's defaults (`config_changed`, which also lists a batch size other than the task's).
The leaderboard groups runs by (name, method, config hash, training steps, batch size), so runs that trained
differently never merge. The readable name is the `--name` given at run or score time, else the method
(`repfair`) for its default config, else the method and what changed (`repfair[clip_norm=10]`). A result
with no training record (an image set) is named after its submission.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from fairbench.errors import FairbenchError

# Names go into Markdown tables, CSV cells, HTML and file listings: no spaces, pipes or control characters.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,:@()\[\]-]{0,79}")


def check_name(name: str) -> str:
    """A user-given entry name, or a one-line FairbenchError saying what a name may hold."""
    if not _NAME.fullmatch(name):
        raise FairbenchError(
            f"--name {name!r}: use 1 to 80 letters, digits and . _ + = , : @ ( ) [ ] -, starting with a letter or digit"
        )
    return name


def _canonical_value(value: Any) -> Any:
    """Numerically equal settings hash alike: `--set clip_norm=10` and `clip_norm=10.0` are one config."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    return value


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the config's canonical JSON (sorted keys, integral floats as integers)."""
    text = json.dumps(_canonical_value(dict(config)), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def default_config(method: str) -> dict[str, Any] | None:
    """The registered method's default config as a dict; None when the method is not registered here."""
    from fairbench.methods import METHODS
    from fairbench.plugins import load_plugins

    load_plugins()
    if method not in METHODS.names():
        return None
    return dataclasses.asdict(METHODS.get(method).config_cls())


def config_changes(
    config: Mapping[str, Any],
    defaults: Mapping[str, Any] | None,
    batch_size: int | None = None,
    default_batch_size: int | None = None,
) -> dict[str, Any] | None:
    """The settings that differ from the defaults (sorted by key); None when the defaults are unknown."""
    if defaults is None:
        return None
    changed = {
        key: config[key]
        for key in sorted(config)
        if key not in defaults or _canonical_value(config[key]) != _canonical_value(defaults[key])
    }
    if batch_size is not None and default_batch_size is not None and batch_size != default_batch_size:
        changed["batch_size"] = batch_size
    return changed


def format_setting(value: Any) -> str:
    """`10.0` -> `10`, `1e-4` -> `0.0001`, True -> `true`, None -> `none`: as a user would type it in --set."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(format_setting(v) for v in value) + ")"
    return str(value)


def qualified(base: str, settings: Mapping[str, Any]) -> str:
    """`repfair` + {clip_norm: 10.0} -> `repfair[clip_norm=10]`; no settings, no brackets. Appends to a name that
    already has brackets (`repfair[clip_norm=10]` + steps -> `repfair[clip_norm=10,steps=200]`)."""
    if not settings:
        return base
    extra = ",".join(f"{k}={format_setting(v)}" for k, v in settings.items())
    if base.endswith("]") and "[" in base:
        return f"{base[:-1]},{extra}]"
    return f"{base}[{extra}]"


def derived_name(method: str, changed: Mapping[str, Any] | None, config_digest: str | None) -> str:
    """The readable name of a method's entry: what changed from the defaults, or the config hash when the
    defaults were unknown at scoring time."""
    if changed is None:
        return method if config_digest is None else qualified(method, {"config": config_digest[:8]})
    return qualified(method, changed)


def checkpoint_changes(
    method: str, config: Mapping[str, Any], train: Mapping[str, Any] | None, default_batch_size: int | None
) -> dict[str, Any] | None:
    """What a checkpoint's training config changed from its method's defaults, its batch size included."""
    train = train or {}
    batch_size = train.get("batch_size") if isinstance(train.get("batch_size"), int) else None
    return config_changes(config, default_config(method), batch_size, default_batch_size)


def checkpoint_entry_name(
    method: str, config: Mapping[str, Any], train: Mapping[str, Any] | None, default_batch_size: int | None
) -> str:
    """The entry a checkpoint's result will be listed under: the --name given at training, else derived."""
    given = (train or {}).get("name")
    if given is not None:
        return check_name(str(given))
    return derived_name(method, checkpoint_changes(method, config, train, default_batch_size), config_hash(config))
