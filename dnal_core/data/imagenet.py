"""ImageNet-1K as an ImageFolder (``DIR/train/<wnid>/*.JPEG``, ``DIR/val/<wnid>/*.JPEG``),
loaded by a torch DataLoader with worker processes.

Augmentation (Section V-C follows the standard ImageNet recipe of the networks it prunes):
training RandomResizedCrop(224) + horizontal flip; test Resize(256) + CenterCrop(224); both
normalised with the ImageNet mean/std. Sizes come from the recipe (smoke runs use 64/72).

Determinism: the training order is a ``DistributedSampler`` (also with one process) seeded by
the run's seed and reshuffled by ``set_epoch``; the augmentation draws of the worker processes
are seeded from a generator of (seed, epoch, rank), so an epoch is the same whether the run
was resumed or not, for a given number of workers. Under torch.distributed each rank reads
``batch_size // world`` images of every global batch (``batch_size`` is the global batch);
the validation set is split without padding (each image counted once; ``evaluate`` sums over
the ranks).
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import DataLoader, DistributedSampler, Subset

from .loader import epoch_generator

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUT = "DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG (the same class folders in both)"


def imagenet_transforms(train: bool, image_size: int = 224, resize_size: int = 256):
    from torchvision import transforms as T

    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), *norm])
    return T.Compose([T.Resize(resize_size), T.CenterCrop(image_size), *norm])


def _per_class(targets: list[int], k: int | None) -> list[int] | None:
    """Indices of the first ``k`` images (ImageFolder's sorted order) of every class."""
    if k is None:
        return None
    seen: dict[int, int] = {}
    keep = []
    for i, t in enumerate(targets):
        if seen.get(t, 0) < k:
            seen[t] = seen.get(t, 0) + 1
            keep.append(i)
    return keep


def imagenet_folder(root: str | Path, split: str, transform=None, per_class: int | None = None):
    """The ImageFolder of ``root/split`` (optionally the first ``per_class`` images a class);
    ValueError naming the path and the expected layout when it is missing or empty."""
    from torchvision.datasets import ImageFolder

    path = Path(root) / split
    if not path.is_dir():
        raise ValueError(f"ImageNet folder {path} not found; expected {LAYOUT}")
    try:
        ds = ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise ValueError(f"{path} is not an ImageNet folder ({str(e).splitlines()[0]}); expected {LAYOUT}") from None
    keep = _per_class(ds.targets, per_class)
    return (Subset(ds, keep) if keep is not None else ds), ds.classes


class ImageNetLoader:
    """Batches (x, y) from an ImageFolder dataset through a DataLoader; the interface the
    trainer needs (``batch_size`` settable per stage, ``__len__``, ``set_epoch``,
    ``state_dict``/``load_state_dict``). ``rank``/``world``: this process's part."""

    def __init__(self, dataset, batch_size: int, *, train: bool, workers: int = 8, seed: int = 0,
                 rank: int = 0, world: int = 1, pin_memory: bool = False):
        self.dataset, self.train, self.workers, self.seed = dataset, train, int(workers), int(seed)
        self.rank, self.world, self.pin_memory = rank, world, pin_memory
        self.epoch = 0
        self.batch_size = batch_size
        if train:  # drop_last: every rank the same number of equal batches
            self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                              seed=self.seed, drop_last=True)
        else:
            self.sampler = list(range(rank, len(dataset), world))  # no padding: each image once

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, bs: int) -> None:
        if bs < 1 or (self.train and bs % self.world):
            raise ValueError(f"batch size {bs} does not split over {self.world} processes: "
                             "choose a global batch size divisible by the number of processes")
        self._batch_size = int(bs)

    @property
    def local_batch(self) -> int:
        return max(1, self._batch_size // self.world) if self.train else self._batch_size

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def __len__(self) -> int:
        n = len(self.sampler)
        if self.train:
            return max(1, n // self.local_batch)  # drop_last; a set smaller than a batch is one batch
        return -(-n // self.local_batch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.train:
            self.sampler.set_epoch(self.epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        if self.train:
            self.sampler.seed = self.seed
        self.set_epoch(state["epoch"])

    def __iter__(self):
        n_local = len(self.sampler)
        drop = self.train and n_local >= self.local_batch
        # worker seeds (the augmentation draws) from (seed, epoch, rank); with workers=0 the
        # transforms draw from the process's torch RNG, seeded by the trainer
        gen = epoch_generator(self.seed * 1000 + self.rank, self.epoch)
        loader = DataLoader(self.dataset, batch_size=self.local_batch, sampler=self.sampler,
                            num_workers=self.workers, drop_last=drop, generator=gen,
                            pin_memory=self.pin_memory, persistent_workers=False)
        yield from loader


def imagenet_loaders(root: str | Path, batch_size: int, test_batch_size: int = 250, *,
                     workers: int = 8, seed: int = 0, rank: int = 0, world: int = 1,
                     train_per_class: int | None = None, test_per_class: int | None = None,
                     image_size: int = 224, resize_size: int = 256, pin_memory: bool = False):
    """(train, val, num_classes): ``ImageNetLoader``s over ``root/train`` and ``root/val``."""
    train_ds, classes = imagenet_folder(root, "train", imagenet_transforms(True, image_size, resize_size),
                                        train_per_class)
    val_ds, val_classes = imagenet_folder(root, "val", imagenet_transforms(False, image_size, resize_size),
                                          test_per_class)
    if classes != val_classes:
        raise ValueError(f"{Path(root) / 'train'} and {Path(root) / 'val'} hold different class folders "
                         f"({len(classes)} vs {len(val_classes)}); expected {LAYOUT}")
    kw = dict(workers=workers, seed=seed, rank=rank, world=world, pin_memory=pin_memory)
    return (ImageNetLoader(train_ds, batch_size, train=True, **kw),
            ImageNetLoader(val_ds, test_batch_size, train=False, **kw), len(classes))
