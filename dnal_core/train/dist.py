"""torch.distributed for the trainer: one process per device, started by ``torchrun``.

Under ``torchrun`` (the env vars ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` are set) ``init``
starts the process group (nccl on CUDA, gloo on the CPU) and picks ``cuda:LOCAL_RANK``;
without them every function here is a no-op and the trainer runs as one plain process.

Conventions (book/reference/multi_gpu.md):
  * ``batch_size`` in a recipe is the GLOBAL batch (the paper's numbers are); each rank takes
    ``batch_size // world`` images of it (``RankSlice``, the ImageNet loader's sampler).
  * every rank runs the same code on the same seed; only rank 0 writes files, the others wait
    at a ``barrier`` before they read what it wrote.
  * BatchNorm normalises over each rank's local batch (as torchvision's reference scripts and
    the authors' DataParallel code do); the gradients are averaged by DistributedDataParallel.
"""
from __future__ import annotations

import os
import zlib

import numpy as np
import torch
import torch.distributed as td
from torch import nn

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """True when the torchrun env vars say this process is one of several."""
    return all(k in os.environ for k in ENV) and int(os.environ["WORLD_SIZE"]) > 1


def active() -> bool:
    return td.is_available() and td.is_initialized() and td.get_world_size() > 1


def rank() -> int:
    return td.get_rank() if active() else 0


def world() -> int:
    return td.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init(device: torch.device) -> tuple[torch.device, bool]:
    """Start the process group from the torchrun env vars when launched (and not started yet);
    returns (this rank's device, whether this call started the group: then ``shutdown`` it)."""
    if not launched() or active():
        if active() and device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        return device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    td.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, True


def shutdown() -> None:
    if td.is_initialized():
        td.destroy_process_group()


def barrier() -> None:
    if active():
        td.barrier()


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over the ranks (in place, returned); ``t`` itself without torch.distributed."""
    if active():
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel when running distributed, else ``model`` itself.

    Call it after the stage has set requires_grad (DDP registers only the parameters that
    train: the frozen weights of the architecture stage are left alone) and anew for a new
    module (stage 3's pruned network); the wrapper is dropped at the end of the stage, the
    caller keeps using ``model``. Buffers (BN running statistics, the gates' delta) are
    broadcast from rank 0 at every forward, so they stay identical on every rank."""
    if not active():
        return model
    dev = next(model.parameters()).device
    ids = [dev.index] if dev.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


class RankSlice:
    """This rank's part of a loader whose every rank yields the same batches (the CIFAR
    ``TensorLoader``: one permutation per (seed, epoch)): rank r takes the r-th of ``world``
    equal slices of each GLOBAL batch, so the ranks' slices together are exactly the batch one
    process would see. ``batch_size`` (get/set) is the global batch; everything else
    (``__len__``, ``set_epoch``, ``state_dict``...) is the wrapped loader's. A test loader's
    last, shorter batch is split as evenly as it goes (``evaluate`` sums over the ranks)."""

    def __init__(self, loader, rank: int, world: int):
        self.loader, self.rank, self.world = loader, rank, world

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    @batch_size.setter
    def batch_size(self, bs: int) -> None:
        if getattr(self.loader, "train", True) and bs % self.world:
            raise ValueError(f"batch size {bs} does not split over {self.world} processes: "
                             "choose a global batch size divisible by the number of processes")
        self.loader.batch_size = bs

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield x.tensor_split(self.world)[self.rank], y.tensor_split(self.world)[self.rank]


def seed_epoch(seed: int, stage: str, epoch: int) -> None:
    """Under torch.distributed, reseed this process's torch RNG for (seed, stage, epoch, rank)
    at the start of every epoch: dropout masks and worker-less augmentation then differ between
    the ranks (one seed everywhere would draw the same masks on every rank), and a resumed run
    draws what an uninterrupted one drew (each epoch starts from a known seed). One process:
    nothing changes (its RNG state is saved in every checkpoint)."""
    if not active():
        return
    state = np.random.SeedSequence([int(seed), zlib.crc32(stage.encode()), int(epoch), rank()]).generate_state(2)
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))
