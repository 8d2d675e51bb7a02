"""A loader for a dataset that fits in memory: the whole set lives on the device as uint8, and
the paper's CIFAR augmentation (random crop of a 4-pixel zero-padded image, horizontal flip)
runs per batch as batched tensor ops, the same code on the CPU and on a GPU (the airbench way:
no worker processes, no host-to-device copy of images).

Every random draw of an epoch (the permutation, the crop offsets, the flips) comes from a CPU
``torch.Generator`` seeded by (seed, epoch), so epoch k is the same whether the run was resumed
or not, and the same on every device.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for epoch ``epoch`` of a run seeded ``seed`` (well-mixed, no collisions
    between nearby (seed, epoch) pairs)."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def augment(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
            pad: int) -> torch.Tensor:
    """Crop each image of ``x`` (B, C, H, W), zero-padded by ``pad``, at offsets (dy, dx) in
    [0, 2*pad], flipping it horizontally where ``flip``: one gather for the whole batch."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))                                  # (B, C, H+2p, W+2p)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h                                            # (B, H)
    cols = dx[:, None] + torch.where(flip[:, None], ar_w.flip(0), ar_w)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]    # (B, C, H, W)


CALIBRATION_EPOCH = 2**31 - 1  # the (seed, epoch) key of the calibration batches: no training epoch


class TensorLoader:
    """Batches ``(x, y)`` of normalised float32 NCHW images and int64 labels on ``device``.

    ``images``: uint8 (N, H, W, C); ``labels``: (N,). A training loader (``train=True``)
    reshuffles and augments every epoch (call ``set_epoch`` first; the stage functions do) and
    drops the last incomplete batch (every batch has the same shape, which BatchNorm1d and a
    later CUDA-graph path want; the next epoch's permutation covers the dropped images). A test
    loader keeps the order and every image, without augmentation.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 train: bool, mean, std, device: str | torch.device = "cpu", seed: int = 0,
                 pad: int = 4, flip: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = images.permute(0, 3, 1, 2).contiguous().to(self.device)  # (N, C, H, W) uint8
        self.labels = labels.long().to(self.device)
        c = self.images.shape[1]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, c, 1, 1) * 255
        self.batch_size, self.train, self.seed, self.pad, self.flip = batch_size, train, seed, pad, flip
        self.epoch = 0
        self.generator = epoch_generator(seed, 0)

    def __len__(self) -> int:
        n = len(self.labels)
        if self.train:
            return max(1, n // self.batch_size)  # a set smaller than a batch is one batch
        return -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.generator = epoch_generator(self.seed, self.epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.set_epoch(state["epoch"])
        self.generator.set_state(state["generator"])

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std

    def __iter__(self):
        n, bs = len(self.labels), self.batch_size
        if not self.train:
            for i in range(0, n, bs):
                yield self._normalise(self.images[i:i + bs]), self.labels[i:i + bs]
            return
        yield from self._augmented(self.generator, len(self))

    def _augmented(self, g: torch.Generator, batches: int):
        """``batches`` augmented training batches, every draw from ``g``."""
        n, bs = len(self.labels), self.batch_size
        # every draw of the epoch up front, on the CPU, then one copy to the device
        perm = torch.randperm(n, generator=g)
        off = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)
        flips = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        perm, off, flips = (t.to(self.device) for t in (perm, off, flips))
        for k in range(batches):
            idx = perm[k * bs:(k + 1) * bs]
            x = augment(self.images[idx], off[idx, 0], off[idx, 1], flips[idx], self.pad)
            yield self._normalise(x), self.labels[idx]

    def calibration_batches(self, n: int) -> list:
        """``n`` (at most an epoch's worth) augmented training batches that are the same at
        every call, from a generator of their own: what precise BN (``train.bn``) averages
        over, without touching the epoch's generator (a resumed run stays bit-identical)."""
        g = epoch_generator(self.seed, CALIBRATION_EPOCH)
        return list(self._augmented(g, min(int(n), len(self))))
