"""Model builders by name. Importing this package registers every model family."""
from . import cifar  # noqa: F401  (registers the CIFAR models)
from . import imagenet  # noqa: F401  (registers the ImageNet models)
from . import proxyless  # noqa: F401  (registers the ProxylessNAS supernet)
from .layers import DEFAULT_PLACEMENT, PLACEMENTS, ConvUnit, Place
from .registry import build, build_from_arch, list_models, load_arch, register_model

__all__ = ["build", "build_from_arch", "list_models", "load_arch", "register_model",
           "PLACEMENTS", "DEFAULT_PLACEMENT", "ConvUnit", "Place"]
