"""Issue #15, items 2, 3 and the eager-resume row: a non-finite loss stops ``dnal run`` at once
(stage, epoch and step named, exit 3, the last good checkpoint kept, nothing non-finite in any
JSON file); ``--resume`` refuses a folder without a run and another ``--data`` (the same files by
another path are accepted); stale ``.tmp`` files are removed by the pipeline; an optimizer state
the fast path wrote, resumed on the eager path, trains exactly as a fresh eager optimizer."""
import copy
import io as _io
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

from dnal_core import build, set_mode
from dnal_core.cli import main
from dnal_core.data import TensorLoader, pack_jpeg_npz
from dnal_core.recipes import StageConfig, get_recipe, override
from dnal_core.train import run_pipeline, train_step, train_weights
from dnal_core.train import stages as stages_mod
from dnal_core.train.fast import NonFiniteLossError

# 1/8-width VGG16, 80 synthetic images in batches of 16: 5 steps an epoch
TINY = ["--profile", "smoke", "--width-mult", "0.125", "--set", "train_per_class=null",
        "--set", "test_per_class=null", "--set", "test_batch_size=20", "--set", "weights.batch_size=16",
        "--set", "arch.batch_size=16", "--set", "finetune.batch_size=16", "--set", "precise_bn=0", "--quiet"]


def _pack(folder, seed=1):
    rng = np.random.default_rng(seed)
    for split, n in (("train", 80), ("test", 20)):
        labels = np.arange(n) % 10
        imgs = rng.integers(0, 120, (n, 32, 32, 3)) + labels[:, None, None, None] * 12
        pack_jpeg_npz(folder / f"{split}.npz", imgs.astype(np.uint8), labels)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("nonfinite")
    _pack(root / "data")
    _pack(root / "other", seed=2)
    old = os.environ.get("DNAL_CACHE")
    os.environ["DNAL_CACHE"] = str(root / "cache")
    yield root
    if old is None:
        os.environ.pop("DNAL_CACHE", None)
    else:
        os.environ["DNAL_CACHE"] = old


@pytest.fixture(scope="module")
def weights_run(env):
    """A finished one-epoch weight-stage run to resume."""
    out = env / "run"
    assert main(["run", "vgg16-cifar", "--data", str(env / "data"), "--out", str(out), *TINY,
                 "--stages", "weights", "--epochs-weights", "1"]) == 0
    return out


def _listing(d):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")) if d.exists() else None


def _one_line(capsys, code, argv, match):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dnal: error: "), err
    assert match in err, err
    return err


# --- item 2: a non-finite loss ---------------------------------------------------------------------

def _poison_step(monkeypatch, at: int):
    """From the ``at``-th training step on (0-based, counted over the whole run), the batch holds
    NaN: the loss, the gradients and then the weights become NaN (a diverged run)."""
    seen = [0]

    def step(net, x, y, opt, *a, **k):
        if seen[0] >= at:
            x = x * float("nan")
        seen[0] += 1
        return train_step(net, x, y, opt, *a, **k)

    monkeypatch.setattr(stages_mod, "train_step", step)
    return seen


def test_nan_loss_stops_the_run_with_exit_3_and_keeps_the_last_good_checkpoint(env, capsys, monkeypatch):
    """The 8th step (epoch 2, step 3) goes NaN: exit 3 at once (no 4th step), one line naming the
    stage, epoch and step; epoch 1's checkpoint and metrics line stay, nothing of epoch 2 and
    no stage output are written, every JSON file parses with a strict parser."""
    out = env / "nan"
    seen = _poison_step(monkeypatch, at=7)
    err = _one_line(capsys, 3, ["run", "vgg16-cifar", "--data", str(env / "data"), "--out", str(out), *TINY,
                                "--stages", "weights", "--epochs-weights", "3"],
                    "non-finite training loss (nan) in the weights stage, epoch 2/3, step 3/5")
    assert seen[0] == 8  # stopped at the bad step, not at the epoch's end
    ck = torch.load(out / "ckpt" / "weights.pt", weights_only=True)
    assert ck["epoch"] == 0 and all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [0]
    assert not (out / "weights.pt").exists()
    for f in [out / "config.json", *[out / "metrics.jsonl"]]:
        for ln in ([f.read_text()] if f.suffix == ".json" else f.read_text().splitlines()):
            json.loads(ln, parse_constant=lambda c: pytest.fail(f"{f} holds {c}"))
    assert not list(out.rglob("*.tmp"))


def test_nan_loss_in_the_first_step_names_it(env, capsys, monkeypatch):
    out = env / "nan0"
    _poison_step(monkeypatch, at=0)
    _one_line(capsys, 3, ["run", "vgg16-cifar", "--data", str(env / "data"), "--out", str(out), *TINY,
                          "--stages", "weights", "--epochs-weights", "1"], "weights stage, epoch 1/1, step 1/5")
    assert not (out / "ckpt").exists() and not (out / "metrics.jsonl").exists()


def test_diverged_weights_with_a_finite_training_loss_stop_at_the_evaluation(env, monkeypatch):
    """The last update of an epoch can make the weights non-finite while every training loss was
    finite: the evaluation's loss is checked as well (NonFiniteLossError, no record)."""
    monkeypatch.setattr(stages_mod, "evaluate", lambda *a, **k: {"top1": 10.0, "top5": 50.0, "loss": math.inf})
    logged = []
    with pytest.raises(NonFiniteLossError, match="non-finite test loss .inf. in the weights stage, epoch 1/2: stopped"):
        train_weights(build("vgg16-cifar", width_mult=0.125), *_loaders(), StageConfig(epochs=2, lr=0.05, batch_size=16),
                      log=logged.append, on_epoch=lambda *a: logged.append(a), precise_bn=0)
    assert logged == []


def test_metrics_lines_refuse_non_finite_values(env, monkeypatch):
    """metrics.jsonl is JSON lines: a NaN in a record (here a test top-1) raises ValueError naming
    the file and the key instead of writing ``NaN``; nothing is appended."""
    recipe = override(get_recipe("vgg16-cifar", "smoke"),
                      {"width_mult": 0.125, "train_per_class": None, "test_per_class": None, "test_batch_size": 20,
                       "weights.batch_size": 16, "weights.epochs": 1, "precise_bn": 0})
    monkeypatch.setattr(stages_mod, "evaluate", lambda *a, **k: {"top1": math.nan, "top5": 50.0, "loss": 2.3})
    out = env / "nanjson"
    with pytest.raises(ValueError, match=r"refusing to write .*metrics.jsonl: weights epoch 0: test_top1 is nan"):
        run_pipeline(recipe, env / "data", out, stages=["weights"])
    assert not (out / "metrics.jsonl").exists() or (out / "metrics.jsonl").read_text() == ""


# --- item 3: --resume ------------------------------------------------------------------------------

def test_resume_refuses_a_folder_without_a_run(env, capsys, tmp_path):
    for out in (tmp_path / "missing", tmp_path):
        before = _listing(out)
        _one_line(capsys, 2, ["run", "vgg16-cifar", "--data", str(env / "data"), "--out", str(out), *TINY,
                              "--lambda", "1e-3", "--resume"], "holds no dnal run")
        assert _listing(out) == before


def test_resume_refuses_other_data_but_accepts_the_same_files_elsewhere(env, weights_run, capsys, tmp_path):
    base = ["run", "vgg16-cifar", "--out", str(weights_run), *TINY, "--stages", "weights", "--resume"]
    before = _listing(weights_run)
    _one_line(capsys, 2, base + ["--data", str(env / "other")], f"was run on --data {env / 'data'}; ")
    assert _listing(weights_run) == before
    # another folder holding other content under the same names, sizes kept: still refused
    shutil.copytree(env / "data", tmp_path / "same-size")
    blob = bytearray((tmp_path / "same-size" / "test.npz").read_bytes())
    blob[-30] ^= 1
    (tmp_path / "same-size" / "test.npz").write_bytes(bytes(blob))
    _one_line(capsys, 2, base + ["--data", str(tmp_path / "same-size")], "holds other files")
    # the same files by another path: a link, a relative path, a copy (another mtime)
    (tmp_path / "link").symlink_to(env / "data")
    shutil.copytree(env / "data", tmp_path / "copy", copy_function=shutil.copyfile)
    for data in (tmp_path / "link", os.path.relpath(env / "data"), tmp_path / "copy"):
        assert main(base + ["--data", str(data)]) == 0, capsys.readouterr().err
    assert json.loads((weights_run / "config.json").read_text())["data"] == str(env / "data")


def test_stale_tmp_files_are_removed_by_the_pipeline(env, weights_run):
    """Only the pipeline removes them (rank 0, after --out is checked): a library caller resuming
    a run folder gets the same cleanup as ``dnal run --resume``."""
    stale = [weights_run / ".weights.pt.k3j_x9ab.tmp", weights_run / "ckpt" / ".weights.pt.0a1b2c3d.tmp"]
    keep = [weights_run / "notes.tmp", weights_run / ".hidden.tmp"]
    for p in stale + keep:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x" * 10)
    recipe = override(get_recipe("vgg16-cifar", "smoke"),
                      {"width_mult": 0.125, "train_per_class": None, "test_per_class": None, "test_batch_size": 20,
                       "weights.batch_size": 16, "arch.batch_size": 16, "finetune.batch_size": 16,
                       "weights.epochs": 1, "precise_bn": 0})
    assert run_pipeline(recipe, env / "data", weights_run, stages=["weights"], resume=True) == {"stages": ["weights"]}
    assert not any(p.exists() for p in stale) and all(p.is_file() for p in keep)
    for p in keep:
        p.unlink()
    (weights_run / "ckpt").rmdir()


# --- the eager resume of a checkpoint the fast path wrote -------------------------------------------

def _loaders():
    g = torch.Generator().manual_seed(1)
    imgs = torch.randint(0, 256, (48, 32, 32, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (48,), generator=g)
    kw = dict(mean=(0.5,) * 3, std=(0.25,) * 3)
    return (TensorLoader(imgs, labels, 16, train=True, seed=3, **kw),
            TensorLoader(imgs[:16], labels[:16], 16, train=False, **kw))


class _Stop(Exception):
    pass


def test_eager_resume_of_a_fast_checkpoint_trains_as_a_fresh_eager_optimizer():
    """Epoch 1 on the fast path (fused SGD, a tensor LR, channels_last momentum buffers), its
    checkpoint saved and loaded as ``dnal run`` does; epoch 2 resumed on the eager path in the
    NCHW layout (CUDA's eager layout) must give, bit for bit, what the eager resume gives from
    the checkpoint an eager optimizer holding the same numbers writes (float LR, fused and
    foreach as a fresh SGD has them, NCHW momentum buffers). Unnormalised, the CPU's fused SGD
    reads the channels_last buffers as NCHW: a wrong update without an error (issue 15: max
    error 0.45 in one step)."""
    train, test = _loaders()
    cfg = StageConfig(epochs=2, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=16)
    torch.manual_seed(0)
    model = build("vgg16-cifar", width_mult=0.125)
    saved = {}

    def on_epoch(epoch, st):
        buf = _io.BytesIO()
        torch.save({"model": model.state_dict(), **st}, buf)  # what io.save writes (strides kept)
        saved["ckpt"] = buf.getvalue()
        raise _Stop

    with pytest.raises(_Stop):
        train_weights(model, train, test, cfg, fast=True, on_epoch=on_epoch, precise_bn=0)
    fast_ck = torch.load(_io.BytesIO(saved["ckpt"]), weights_only=True)
    g = fast_ck["optimizer"]["param_groups"][0]
    assert g["fused"] and isinstance(g["lr"], torch.Tensor)  # what the fast path wrote
    assert any(v["momentum_buffer"].dim() == 4 and not v["momentum_buffer"].is_contiguous()
               for v in fast_ck["optimizer"]["state"].values())
    # the same numbers as a fresh eager SGD holds them
    eager_ck = copy.deepcopy(fast_ck)
    fresh = torch.optim.SGD([torch.zeros(1)], lr=1.0).defaults
    for g in eager_ck["optimizer"]["param_groups"]:
        g.update(lr=float(g["lr"]), fused=fresh["fused"], foreach=fresh["foreach"])
    for v in eager_ck["optimizer"]["state"].values():
        v["momentum_buffer"] = v["momentum_buffer"].contiguous()
    eager_ck["scheduler"]["_last_lr"] = [float(x) for x in eager_ck["scheduler"]["_last_lr"]]

    out = []
    for ck in (fast_ck, eager_ck):  # resumed as _Run.run_stage does
        resumed = build("vgg16-cifar", width_mult=0.125)
        resumed.load_state_dict(ck["model"])
        after = {}
        hist = train_weights(resumed, train, test, cfg, fast=False, channels_last=False, precise_bn=0,
                             resume={**ck, "epoch": 0}, on_epoch=lambda e, st: after.update(st))
        assert [h["epoch"] for h in hist] == [1]
        g = after["optimizer"]["param_groups"][0]
        assert type(g["lr"]) is float and g["fused"] is None and g["foreach"] is None
        weights = [p for n, p in resumed.named_parameters() if not n.endswith("ss.s")]
        assert all(after["optimizer"]["state"][i]["momentum_buffer"].stride() == p.stride()
                   for i, p in enumerate(weights))  # like a fresh optimizer's, made from the grads
        out.append((hist[0]["train_loss"], resumed.state_dict()))
    assert out[0][0] == out[1][0]
    for (k, a), b in zip(out[0][1].items(), out[1][1].values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("every, stops_after", [(1, 4), (2, 5), (1000, 6)])
def test_the_first_bad_step_is_named_whichever_check_finds_it(monkeypatch, every, stops_after):
    """Training step 4 of 9 (epoch 2, step 1 of 3 batches of 16) goes NaN. Checked every step,
    every 2nd (found one step later) or only at the epoch's end (as on CUDA, where the steps whose
    running loss is still finite are counted on the device): the same step is named, the run
    stops in the epoch of the bad step, and nothing of that epoch is logged or saved."""
    from dnal_core.train import fast as fast_mod
    monkeypatch.setattr(fast_mod, "FINITE_CHECK_EVERY", every)
    seen = _poison_step(monkeypatch, at=3)
    logged, saved = [], []
    with pytest.raises(NonFiniteLossError, match=r"training loss \(nan\) in the weights stage, epoch 2/3, step 1/3:") as e:
        train_weights(build("vgg16-cifar", width_mult=0.125), *_loaders(), StageConfig(epochs=3, lr=0.05, batch_size=16),
                      log=logged.append, on_epoch=lambda ep, st: saved.append(ep), precise_bn=0)
    assert (e.value.stage, e.value.epoch, e.value.step) == ("weights", 1, 0)
    assert [r["epoch"] for r in logged] == saved == [0]
    assert seen[0] == stops_after
