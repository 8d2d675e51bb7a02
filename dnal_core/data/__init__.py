"""Data: datasets decoded once to uint8 and cached, and a device-resident loader that augments
whole batches (``TensorLoader``). One module per dataset (``cifar``, ``imagenet``: an
ImageFolder through a DataLoader with workers)."""
from .cifar import (CIFAR10_MEAN, CIFAR10_STD, FORMATS, ImageSet, cifar10_loaders, find_format,
                    load_cifar10, pack_jpeg_npz)
from .imagenet import (IMAGENET_MEAN, IMAGENET_STD, ImageNetLoader, imagenet_folder, imagenet_loaders,
                       imagenet_transforms)
from .loader import TensorLoader, augment, epoch_generator

__all__ = ["load_cifar10", "cifar10_loaders", "find_format", "pack_jpeg_npz", "ImageSet",
           "TensorLoader", "augment", "epoch_generator", "CIFAR10_MEAN", "CIFAR10_STD", "FORMATS",
           "imagenet_loaders", "imagenet_folder", "imagenet_transforms", "ImageNetLoader", "IMAGENET_MEAN",
           "IMAGENET_STD"]
