"""``dnal run``: bad input gets one line and exit code 2 with nothing in --out overwritten; a run
killed with SIGKILL and resumed ends bit-identical to an uninterrupted one (CPU)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dnal_core.cli import main
from dnal_core.models import build
from dnal_core.data import pack_jpeg_npz

# a tiny test-only configuration: 1/8-width VGG16, 80 synthetic images, batch 16
TINY = ["--profile", "smoke", "--width-mult", "0.125", "--set", "train_per_class=null",
        "--set", "test_per_class=null", "--set", "test_batch_size=20", "--set", "weights.batch_size=16",
        "--set", "arch.batch_size=16", "--set", "finetune.batch_size=16", "--quiet"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    rng = np.random.default_rng(1)
    for split, n in (("train", 80), ("test", 20)):
        labels = np.arange(n) % 10
        imgs = rng.integers(0, 120, (n, 32, 32, 3)) + labels[:, None, None, None] * 12
        pack_jpeg_npz(data / f"{split}.npz", imgs.astype(np.uint8), labels)
    old = os.environ.get("DNAL_CACHE")
    os.environ["DNAL_CACHE"] = str(root / "cache")
    yield root, data
    if old is None:
        os.environ.pop("DNAL_CACHE", None)
    else:
        os.environ["DNAL_CACHE"] = old


@pytest.fixture(scope="module")
def existing_run(env):
    """A finished weight-stage-only run to refuse overwriting."""
    root, data = env
    out = root / "existing"
    assert main(["run", "vgg16-cifar", "--data", str(data), "--out", str(out), *TINY,
                 "--stages", "weights", "--epochs-weights", "1"]) == 0
    return out


def _listing(d):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")) if d.exists() else None


def _bad(capsys, argv, out, match):
    before = _listing(out)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dnal"), err
    assert match in err, err
    assert _listing(out) == before  # nothing created, nothing overwritten


def test_bad_data(env, capsys, tmp_path):
    root, data = env
    out = tmp_path / "out"
    base = ["run", "vgg16-cifar", "--lambda", "1e-3", "--out", str(out), *TINY]
    _bad(capsys, base + ["--data", str(tmp_path / "missing")], out, "missing: not a readable folder")
    (tmp_path / "nothing").mkdir()
    _bad(capsys, base + ["--data", str(tmp_path / "nothing")], out, "expected train.npz/test.npz")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "train.npz").write_bytes(b"\x00garbage")
    _bad(capsys, base + ["--data", str(tmp_path / "corrupt")], out, "cannot read")


def test_bad_options(env, capsys, tmp_path):
    root, data = env
    out = tmp_path / "out"
    base = ["run", "vgg16-cifar", "--data", str(data), "--out", str(out), *TINY]
    _bad(capsys, base + ["--lambda", "-0.001"], out, "lambda must be >= 0")
    _bad(capsys, base + ["--lambda=-1e-3"], out, "lambda must be >= 0")
    _bad(capsys, base + ["--lambda", "1e-3", "--profile", "fastest"], out, "valid: cpu, paper, smoke")
    _bad(capsys, base + ["--lambda", "1e-3", "--set", "arch.epoch=3"], out, "unknown config key 'arch.epoch'")
    _bad(capsys, base + ["--lambda", "1e-3", "--loss-form", "both"], out, "invalid choice")
    _bad(capsys, base, out, "needs a lambda")


def test_existing_run_is_never_overwritten(env, existing_run, capsys):
    root, data = env
    base = ["--data", str(data), "--out", str(existing_run), *TINY, "--lambda", "1e-3"]
    _bad(capsys, ["run", "vgg16-cifar", *base], existing_run, "already holds a run; pass --resume")
    _bad(capsys, ["run", "resnet56-cifar", *base, "--resume"], existing_run, "holds a run of 'vgg16-cifar'")
    _bad(capsys, ["run", "vgg16-cifar", *base, "--resume", "--seed", "5"], existing_run, "was run with seed=0")
    _bad(capsys, ["run", "vgg16-cifar", *base, "--stages", "finetune", "--resume"], existing_run,
         "needs search.pt")


def _cli(args, env_vars):
    return [sys.executable, "-m", "dnal_core.cli", "run", "vgg16-cifar", *args], dict(os.environ, **env_vars)


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(env):
    root, data = env
    args = ["--data", str(data), "--lambda", "2e-2", *TINY, "--epochs-weights", "2", "--epochs-arch", "4",
            "--epochs-finetune", "2"]
    threads = {"OMP_NUM_THREADS": "1"}  # the same thread count in every process: same float sums
    cmd, e = _cli(args + ["--out", str(root / "whole")], threads)
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r.stderr  # --quiet: silent

    out = root / "killed"
    cmd, e = _cli(args + ["--out", str(out)], threads)
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics, t0 = out / "metrics.jsonl", time.time()
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):  # 2 weight epochs + 1 arch
        assert p.poll() is None and time.time() - t0 < 240, "the run ended before it could be killed"
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL
    assert not (out / "final.json").exists() and (out / "weights.pt").is_file()
    cmd, e = _cli(args + ["--out", str(out), "--resume"], threads)
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr

    a, b = (json.loads((root / d / "final.json").read_text()) for d in ("whole", "killed"))
    assert a.pop("seconds") and b.pop("seconds")
    a.pop("git"), b.pop("git")  # a commit made while the test runs is not the run's business
    assert a == b
    # what final.json reports is the saved network's: its MACs, params and widths, against the
    # dense baseline of the same width counted anew
    from dnal_core.io import load_model
    from dnal_core.measure import count
    final, _ = load_model(root / "whole" / "final.pt")
    dense = count(build("vgg16-cifar", width_mult=0.125))
    assert (a["macs"], a["params"]) == tuple(count(final).values()) and a["widths"] == final.widths
    assert (a["baseline_macs"], a["baseline_params"]) == (dense["macs"], dense["params"]) and a["macs"] < dense["macs"]
    assert a["macs_reduction"] == dense["macs"] / a["macs"]
    for f in ("weights.pt", "search.pt", "final.pt"):
        sa, sb = (torch.load(root / d / f, weights_only=True)["state_dict"] for d in ("whole", "killed"))
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), f
    strip = lambda d: [{k: v for k, v in json.loads(ln).items() if "seconds" not in k}
                       for ln in (root / d / "metrics.jsonl").read_text().splitlines()]
    assert strip("whole") == strip("killed") and len(strip("whole")) == 8
