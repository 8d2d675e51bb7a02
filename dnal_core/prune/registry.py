"""Which family prunes a model: the registry of model classes the pruner knows
(``register_family``) and the lookup (``family_of``). Networks gated by ``attach_gates`` fall
back to ``generic``'s family, whatever their class.
"""
from __future__ import annotations

from torch import nn

from . import cifar as _cifar
from . import generic as _generic
from . import imagenet as _imagenet
from .coupling import Family

_FAMILIES: list[tuple[type, Family]] = []


def register_family(cls: type, structure, surgery, cost=None) -> None:
    """Teach the pruner a model class: its coupling ``structure`` and its ``surgery``, and, for
    cost-aware search and budgets (``dnal_core.budget``), the widths its surgery leaves."""
    _FAMILIES.append((cls, Family(structure, surgery, cost)))


register_family(_cifar.VGGCifar, _cifar.vgg_structure, _cifar.vgg_surgery, _cifar.vgg_cost)
register_family(_cifar.ResNetCifar, _cifar.resnet_structure, _cifar.resnet_surgery, _cifar.resnet_cost)
register_family(_cifar.MobileNetV2Cifar, _cifar.mbv2_structure, _cifar.mbv2_surgery,  # + ImageNet's
                _cifar.mbv2_cost)
register_family(_imagenet.VGGImageNet, _imagenet.vgg_structure, _imagenet.vgg_surgery)
register_family(_imagenet.ResNet50ImageNet, _imagenet.resnet50_structure, _imagenet.resnet50_surgery)
register_family(_imagenet.ProxylessSupernet, _imagenet.supernet_structure, _imagenet.supernet_surgery)


def family_of(model: nn.Module) -> Family:
    for cls, fam in reversed(_FAMILIES):
        if isinstance(model, cls):
            return fam
    if getattr(model, "dnal_groups", None) is not None:  # any class gated by attach_gates
        return _generic.FAMILY  # Torch-Pruning's surgery
    known = ", ".join(c.__name__ for c, _ in _FAMILIES)
    raise ValueError(f"no pruner for {type(model).__name__}; known: {known}")
