"""ImageNet data and recipes on a tiny generated ImageFolder: every ImageNet builder and the
ProxylessNAS supernet through all three stages of Alg. 1 on the CPU (``dnal run`` machinery),
the loader's layout checks, per-class subset and per-epoch determinism."""
from __future__ import annotations

import json
import pytest
import torch

from dnal_core.data import imagenet_loaders
from dnal_core.recipes import RECIPES, get_recipe, override
from dnal_core.report import random_imagefolder
from dnal_core.train import run_pipeline

MODELS = ("vgg16-imagenet", "resnet50-imagenet", "mobilenetv2-imagenet", "proxyless-supernet")


def make_folder(root, classes=3, per_class=4, size=80, seed=0):
    """root/{train,val}/<wnid>/*.JPEG of seeded random RGB noise (the book's generator)."""
    return random_imagefolder(root, classes, (per_class, per_class), size, seed)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("imagenet"))


def test_paper_recipes_are_section_vc():
    r = get_recipe("resnet50-imagenet", "paper")
    assert (r.weights.epochs, r.arch.epochs, r.finetune.epochs) == (30, 10, 70)
    assert (r.weights.lr, r.arch.lr, r.finetune.milestones, r.weights.batch_size) == (0.1, 0.01, (10, 40), 256)
    assert r.dataset == "imagenet" and r.image_size == 224 and r.resize_size == 256
    m = get_recipe("mobilenetv2-imagenet", "paper")
    assert (m.weights.epochs, m.arch.epochs, m.finetune.epochs, m.weights.schedule) == (80, 10, 90, "cosine")
    assert m.weights.weight_decay == 4e-5 and m.finetune.lr_at(45) == pytest.approx(0.05)
    p = get_recipe("proxyless-supernet", "paper")
    assert (p.weights.epochs, p.arch.epochs, p.finetune.epochs) == (100, 10, 110)
    assert (p.weights.lr, p.finetune.batch_size) == (0.05, 96)
    assert all((m, "smoke") in RECIPES for m in MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_all_stages_on_imagefolder(folder, tmp_path, model):
    recipe = override(get_recipe(model, "smoke"), {"lam": 1e-3, "train_per_class": None})
    final = run_pipeline(recipe, folder, tmp_path / "run", device="cpu", workers=0)
    assert final["model"] == model
    # what final.json reports is the saved network's: its counts, its last finetune epoch's top-1,
    # and the dense network at the smoke width as the baseline
    from dnal_core import build, count
    from dnal_core.io import load_model

    net = load_model(tmp_path / "run" / "final.pt")[0]
    size = count(net)
    base = count(build(model, width_mult=recipe.width_mult, num_classes=net.num_classes))
    assert (final["macs"], final["params"]) == (size["macs"], size["params"])
    assert (final["baseline_macs"], final["baseline_params"]) == (base["macs"], base["params"])
    recs = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert final["top1"] == json.loads(recs[-1])["test_top1"]
    assert len(recs) == 3  # one epoch a stage
    assert '"images": 8' in recs[0]  # 12 training images, batch 8, last batch dropped


def test_loader_layout_errors(tmp_path, folder):
    with pytest.raises(ValueError, match=r"train/<wnid>/\*\.JPEG"):
        imagenet_loaders(tmp_path / "nothing", 4)
    (tmp_path / "bad" / "train").mkdir(parents=True)
    (tmp_path / "bad" / "val" / "n0").mkdir(parents=True)
    with pytest.raises(ValueError, match="bad/train"):
        imagenet_loaders(tmp_path / "bad", 4)
    with pytest.raises(ValueError, match="divisible"):
        imagenet_loaders(folder, 5, world=2, rank=0)


def test_loader_subset_determinism_and_shards(folder):
    kw = dict(workers=0, image_size=32, resize_size=40, seed=3)
    train, val, n = imagenet_loaders(folder, 4, 5, train_per_class=2, **kw)
    assert n == 3 and train.num_samples == 6 and val.num_samples == 12 and len(train) == 1

    def labels(loader, epoch):
        loader.set_epoch(epoch)
        return torch.cat([y for _, y in loader]).tolist()

    train, _, _ = imagenet_loaders(folder, 4, **kw)
    assert labels(train, 1) == labels(train, 1) and len(labels(train, 1)) == 12
    # two ranks: disjoint halves of the one-process epoch (same seed, same epoch)
    parts = [imagenet_loaders(folder, 4, rank=r, world=2, **kw)[0] for r in range(2)]
    a, b = labels(parts[0], 2), labels(parts[1], 2)
    assert len(a) == len(b) == 6 and sorted(a + b) == sorted(labels(train, 2))
    ia, ib = list(parts[0].sampler), list(parts[1].sampler)
    assert not set(ia) & set(ib) and len(set(ia) | set(ib)) == 12
    vals = [imagenet_loaders(folder, 4, 5, rank=r, world=2, **kw)[1] for r in range(2)]
    va, vb = list(vals[0].sampler), list(vals[1].sampler)
    assert not set(va) & set(vb) and sorted(va + vb) == list(range(12))  # no padding
    x, _ = next(iter(vals[0]))
    assert x.shape[1:] == (3, 32, 32)


def test_worker_augmentation_is_seeded_per_epoch(folder):
    train, _, _ = imagenet_loaders(folder, 12, workers=1, image_size=32, resize_size=40, seed=5)

    def batch(epoch):
        train.set_epoch(epoch)
        return next(iter(train))[0]

    a = batch(1)
    assert torch.equal(a, batch(1))  # same (seed, epoch): same crops and flips in the worker
    assert not torch.equal(a, batch(2))
