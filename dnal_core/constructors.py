"""A network's constructor as a reference another process can import: ``"module:qualname"`` and
JSON-able keyword arguments (what ``attach_gates`` records in ``arch()`` and what
``dnal run module:function`` names)."""
from __future__ import annotations

import functools
import importlib
import json

from torch import nn


def constructor_ref(constructor) -> tuple[str | None, dict]:
    """("module:qualname", JSON-able kwargs) of a constructor, or (None, {})."""
    if constructor is None:
        return None, {}
    kwargs = {}
    if isinstance(constructor, functools.partial):
        if constructor.args:
            raise ValueError("constructor: a functools.partial with keyword arguments only")
        kwargs, constructor = dict(constructor.keywords), constructor.func
    if isinstance(constructor, str):
        ref = constructor
    elif callable(constructor):
        ref = f"{constructor.__module__}:{constructor.__qualname__}"
    else:
        raise ValueError(f"constructor must be a callable or 'module:name', got {constructor!r}")
    if ":" not in ref or "<" in ref:
        raise ValueError(f"constructor {ref!r}: give an importable 'module:name' (a function defined "
                         "at module level)")
    try:
        json.dumps(kwargs)
    except TypeError as e:
        raise ValueError(f"constructor keyword arguments must be JSON-able: {e}") from None
    return ref, kwargs


def resolve(ref: str):
    module, _, qualname = ref.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import the constructor {ref!r}: {e}") from None
    return obj


def check_constructor(model: nn.Module, ref: str, kwargs: dict) -> None:
    """The constructor must build ``model``'s architecture: same state_dict keys and shapes."""
    got = {k: tuple(v.shape) for k, v in resolve(ref)(**kwargs).state_dict().items()}
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if got != want:
        key = next((k for k in want if got.get(k) != want[k]), None) or next(k for k in got if k not in want)
        raise ValueError(f"constructor {ref!r}({kwargs}) builds another network than the model "
                         f"given: {key!r} is {got.get(key)} there, {want.get(key)} here")
