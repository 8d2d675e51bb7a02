"""torch.distributed on the CPU (gloo, 2 processes via torch.multiprocessing).

Equivalence: two DDP ranks, each on its half of every global batch, reach the same weights,
gates and gate decisions as one process on the whole batch, through the weight stage, the
architecture stage (only s trains: DDP over frozen weights) and a finetune of a new module
(the hard-gated copy: wrapped anew). BatchNorm in train mode normalises over each rank's
local batch, which one process over the global batch cannot reproduce, and SyncBatchNorm runs
on GPUs only; so the equivalence model has no BatchNorm (a registered two-conv gated net).
The pipeline test runs ``run_pipeline`` on 2 ranks as torchrun would start it (env vars) and
checks that rank 0 alone writes a complete run folder.
"""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from dnal_core.data import TensorLoader
from dnal_core.gate import SSGate, open_counts
from dnal_core.models import list_models, register_model
from dnal_core.recipes import SearchConfig, StageConfig, get_recipe, override
from dnal_core.train import finetune, hard_gated, train_architecture, train_weights
from dnal_core.train import dist as ddist

TINY = "ddp-tiny-test"


class Tiny(nn.Module):
    """conv-SS-ReLU x2, global pool, Linear: gated, no batch statistics."""
    name = TINY
    input_size = (3, 8, 8)

    def __init__(self, widths=None, num_classes: int = 4):
        super().__init__()
        self.default_widths = [8, 8]
        self.widths = list(widths or self.default_widths)
        self.num_classes = num_classes
        w1, w2 = self.widths
        self.c1, self.g1 = nn.Conv2d(3, w1, 3, padding=1), SSGate(w1)
        self.c2, self.g2 = nn.Conv2d(w1, w2, 3, padding=1, stride=2), SSGate(w2)
        self.fc = nn.Linear(w2, num_classes)

    def forward(self, x):
        x = F.relu(self.g1(self.c1(x)))
        x = F.relu(self.g2(self.c2(x)))
        return self.fc(x.mean((2, 3)))

    def arch(self):
        return {"model": TINY, "widths": list(self.widths), "num_classes": self.num_classes}


if TINY not in list_models():
    register_model(TINY)(Tiny)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stages(rank: int, world: int) -> dict:
    """Weights 2 epochs, architecture 2 epochs, finetune of the hard-gated copy 1 epoch, on a
    global batch of 16 of 64 random 8x8 images (seeded: identical on every rank)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 4, (64,), generator=g)
    kw = dict(mean=(0.5,) * 3, std=(0.25,) * 3, seed=0, pad=1)
    train = TensorLoader(images, labels, 16, train=True, **kw)
    test = TensorLoader(images[:40], labels[:40], 12, train=False, **kw)
    if world > 1:
        train, test = ddist.RankSlice(train, rank, world), ddist.RankSlice(test, rank, world)
    model = Tiny()
    cfg = StageConfig(epochs=2, lr=0.1, batch_size=16)
    hist = train_weights(model, train, test, cfg)
    hist += train_architecture(model, train, test, cfg, lam=1e-3, search=SearchConfig(delta_end=30.0))
    net = hard_gated(model)
    hist += finetune(net, train, test, StageConfig(epochs=1, lr=0.05, batch_size=16))
    return {"model": {k: v.clone() for k, v in model.state_dict().items()},
            "net": {k: v.clone() for k, v in net.state_dict().items()},
            "open": open_counts(net), "hist": hist}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    ddist.init(torch.device("cpu"))
    try:
        res = _stages(rank, world)
        torch.save(res, f"{out}/rank{rank}.pt")
    finally:
        ddist.shutdown()


def test_two_ranks_equal_one_process(tmp_path):
    one = _stages(0, 1)  # one thread (conftest), as in the workers
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert 0 < sum(one["open"]) < 16  # the search closed some gates and kept some
    for two in ranks:
        assert two["open"] == one["open"]
        for part in ("model", "net"):
            for k, v in one[part].items():
                torch.testing.assert_close(two[part][k], v, rtol=1e-4, atol=1e-5, msg=f"{part}.{k}")
        for a, b in zip(one["hist"], two["hist"]):
            assert a["stage"] == b["stage"] and a["images"] == b["images"]  # images summed over ranks
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
            assert a["test_top1"] == b["test_top1"]  # evaluation summed over the ranks' halves


def _pipeline_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    from dnal_core.train import run_pipeline

    recipe = override(get_recipe("resnet56-cifar", "smoke"), {
        "lam": 1e-3, "width_mult": 0.125, "train_per_class": 8, "test_per_class": 4,
        "weights.epochs": 1, "arch.epochs": 1, "finetune.epochs": 1, "weights.batch_size": 16,
        "arch.batch_size": 16, "finetune.batch_size": 16, "test_batch_size": 20})
    final = run_pipeline(recipe, data, out, device="cpu")
    assert final["model"] == "resnet56-cifar"


def test_pipeline_two_ranks_rank0_writes(cifar_dir, tmp_path):
    out = tmp_path / "run"
    mp.spawn(_pipeline_worker, args=(2, _free_port(), str(cifar_dir), str(out)), nprocs=2, join=True)
    final = json.loads((out / "final.json").read_text())
    # final.json's counts are those of the network it saved, and of the dense one at this width
    from dnal_core import build, count
    from dnal_core.io import load_model

    size, base = count(load_model(out / "final.pt")[0]), count(build("resnet56-cifar", width_mult=0.125))
    assert (final["macs"], final["params"]) == (size["macs"], size["params"])
    assert (final["baseline_macs"], final["baseline_params"]) == (base["macs"], base["params"])
    assert final["macs_reduction"] == pytest.approx(base["macs"] / size["macs"])
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in recs] == ["weights", "arch", "finetune"]  # one line an epoch: rank 0 only
    assert all(r["images"] == 80 for r in recs)  # 80 images, global batch 16: every image, both ranks
    assert not (out / "ckpt" / "weights.pt").exists()
    assert not ddist.active()  # the parent never joined a group
