"""A network ``dnal_core`` does not know, as a user would bring it: the constructor of the
chapter "Prune your own network" (``dnal run dnal_core.examples:cifar_resnet18 ...``), which
the chapter prints (its lines fit the page's 88 characters).

  ``cifar_resnet18``  torchvision's ResNet18 for 32x32 images (3x3 stem of stride 1, no
                      max-pool), every width times ``width``
"""
from __future__ import annotations

from torch import nn


def cifar_resnet18(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """torchvision's ResNet18 adapted to CIFAR-10 the usual way: a 3x3 stem of stride
    1 and no max-pool; every width (64, 128, 256, 512) times ``width`` (at least one
    channel), the 3 input channels and the ``num_classes`` outputs kept."""
    import torchvision

    net = torchvision.models.resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()

    def scaled(c: int) -> int:
        return c if c == 3 else max(1, round(c * width))

    for name, m in list(net.named_modules()):
        if isinstance(m, nn.Conv2d):
            new = nn.Conv2d(scaled(m.in_channels), scaled(m.out_channels),
                            m.kernel_size, m.stride, m.padding, bias=False)
        elif isinstance(m, nn.BatchNorm2d):
            new = nn.BatchNorm2d(scaled(m.num_features))
        elif isinstance(m, nn.Linear):
            new = nn.Linear(scaled(m.in_features), m.out_features)
        else:
            continue
        parent, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, child, new)
    return net
