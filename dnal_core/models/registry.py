"""Models by name: ``build("vgg16-cifar", widths=..., placement=...)``, ``list_models()``.

Every registered model has the same interface:
  - ``model.name``: its registry name; ``model.input_size``: (C, H, W) of one input;
  - ``model.arch()``: a JSON-able dict such that ``build(**model.arch())`` rebuilds the same
    architecture (``widths`` holds one width per SS gate, in ``dnal_core.gates`` order);
  - ``model.default_widths``: the widths of the dense network.
"""
from __future__ import annotations

import json
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
    return _REGISTRY[model](**kwargs)


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
