"""Data: datasets decoded once to uint8 and cached, and a device-resident loader that augments
whole batches (``TensorLoader``). One module per dataset (``cifar``)."""
from .cifar import (CIFAR10_MEAN, CIFAR10_STD, FORMATS, ImageSet, cifar10_loaders, find_format,
                    load_cifar10, pack_jpeg_npz)
from .loader import TensorLoader, augment, epoch_generator

__all__ = ["load_cifar10", "cifar10_loaders", "find_format", "pack_jpeg_npz", "ImageSet",
           "TensorLoader", "augment", "epoch_generator", "CIFAR10_MEAN", "CIFAR10_STD", "FORMATS"]
