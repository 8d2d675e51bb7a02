"""Models by name: ``build("vgg16-cifar", widths=..., placement=...)``, ``list_models()``.

Every registered model has the same interface:
  - ``model.name``: its registry name; ``model.input_size``: (C, H, W) of one input;
  - ``model.arch()``: a JSON-able dict such that ``build(**model.arch())`` rebuilds the same
    architecture (``widths`` holds one width per SS gate, in ``dnal_core.gates`` order);
  - ``model.default_widths``: the widths of the dense network.
"""
from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Decorator: make a builder (or a model class) available as ``build(name, ...)``."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def build(model: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown names raise ValueError naming the valid ones."""
    if model not in _REGISTRY:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(list_models())}")
    keys = arch_keys(model)
    if keys is not None and set(kwargs) - keys:
        raise ValueError(f"{model}: unknown architecture key {sorted(set(kwargs) - keys)[0]!r}; "
                         f"valid: {', '.join(sorted(keys))}")
    # the keys every family shares, checked here once (a negative width or class count would
    # otherwise reach torch as a traceback, and width_mult <= 0 silently builds 1-channel layers)
    n = kwargs.get("num_classes", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{model}: num_classes must be an integer >= 1, got {n!r}")
    w = kwargs.get("width_mult", 1.0)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w > 0):
        raise ValueError(f"{model}: width_mult must be a finite number > 0, got {w!r}")
    return _REGISTRY[model](**kwargs)


def arch_keys(model: str) -> set[str] | None:
    """The keyword arguments ``build(model, ...)`` takes (an arch file's keys besides "model"):
    those with a default of the class its builder returns (builders pass ``**kw`` on to it; a
    class that passes ``**kw`` on to its base adds the base's). None where they cannot be read."""
    fn = _REGISTRY[model]
    try:
        target = inspect.signature(fn, eval_str=True).return_annotation
        if target is inspect.Signature.empty:  # no annotation: the builder's own keywords
            target = fn
        keys = set()
        for c in target.__mro__ if isinstance(target, type) else [fn]:
            params = inspect.signature(c).parameters.values()
            keys |= {p.name for p in params if p.default is not p.empty and p.kind is not p.VAR_KEYWORD}
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                return keys
    except (TypeError, ValueError, NameError):
        pass
    return None


def build_from_arch(arch: dict) -> nn.Module:
    """Rebuild a model from ``model.arch()`` (a dict, or a path to a JSON file holding one)."""
    if isinstance(arch, (str, Path)):
        arch = load_arch(arch)
    arch = dict(arch)
    if "model" not in arch:
        raise ValueError("an architecture needs a 'model' key naming a registered model")
    return build(arch.pop("model"), **arch)


def load_arch(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"architecture file not found: {path}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read architecture file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'model' and 'widths'")
    return data
