"""Issue #15: every bad input of the command line (options, ``--set`` overrides, arch files,
output paths) gives one line on stderr naming the input, exit code 2, no traceback, and
nothing written. Each test is one row of the issue's table; the data and the pruned network
given are valid, so an unchecked input would reach the training, the exporter or torch (a
traceback, exit 1, or files written) and fail the test."""
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from dnal_core.cli import main
from dnal_core.data import pack_jpeg_npz
from dnal_core.io import remove_stale_tmp, save_model, write_json
from dnal_core.models import build
from dnal_core.recipes import get_recipe


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A valid CIFAR-10-like folder: 20 training and 10 test images."""
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 10)):
        pack_jpeg_npz(d / f"{split}.npz", rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10)
    return d


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """A folder written by ``dnal prune`` (a tiny VGG16 with every gate open)."""
    root = tmp_path_factory.mktemp("pruned")
    save_model(build("vgg16-cifar", width_mult=0.125), root / "run" / "search.pt")
    assert main(["prune", str(root / "run"), "--out", str(root / "p")]) == 0
    return root / "p"


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write into (root ignores permission bits: /proc/1)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    if not os.access(d, os.W_OK):
        yield d
        d.chmod(0o755)
        return
    d.chmod(0o755)
    if Path("/proc/1").is_dir() and not os.access("/proc/1", os.W_OK):
        yield Path("/proc/1")
        return
    pytest.skip("no unwritable folder on this machine")


def _tree(root: Path):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def bad(capsys, argv, match, *watch: Path):
    """Assert: exit code 2, one stderr line starting with "dnal" that holds ``match``, nothing on
    stdout, and nothing created, changed or removed under the ``watch`` folders."""
    before = [_tree(w) for w in watch]
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("dnal") and "Traceback" not in err, err
    assert match in err, err
    assert out == ""
    assert [_tree(w) for w in watch] == before


def run_args(data, out):
    return ["run", "vgg16-cifar", "--data", data, "--out", out, "--profile", "smoke", "--quiet"]


# --- dnal run -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_run_lambda_not_finite(data, tmp_path, capsys, value):
    bad(capsys, run_args(data, tmp_path / "o") + ["--lambda", value], "lambda must be a finite number", tmp_path)


@pytest.mark.parametrize("value", ["-1e-3", "-0.001", "-1E-3", "-1"])
def test_run_lambda_negative_reads_as_a_number(data, tmp_path, capsys, value):
    bad(capsys, run_args(data, tmp_path / "o") + ["--lambda", value], "lambda must be >= 0", tmp_path)


@pytest.mark.parametrize("item, match", [
    ("weights.lr=abc", "weights.lr must be a finite number, got 'abc'"),
    ("weights.lr=NaN", "weights.lr must be a finite number, got nan"),
    ("weights.lr=Infinity", "weights.lr must be a finite number, got inf"),
    ("weights.lr=-0.1", "weights: lr must be > 0"),
    ("weights.lr=0", "weights: lr must be > 0"),
    ("weights.epochs=1.5", "weights.epochs must be an integer, got 1.5"),
    ("weights.batch_size=true", "weights.batch_size must be an integer, got True"),
    ("search.delta_end=Infinity", "search.delta_end must be a finite number"),
    ("width_mult=0", "width_mult must be > 0"),
    ("train_per_class=2.5", "train_per_class must be an integer or null"),
    ("model=resnet56-cifar", "model cannot be overridden"),
    ("profile=paper", "profile cannot be overridden"),
])
def test_run_set_checked(data, tmp_path, capsys, item, match):
    bad(capsys, run_args(data, tmp_path / "o") + ["--lambda", "1e-3", "--set", item], match, tmp_path)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_run_width_mult(data, tmp_path, capsys, value):
    bad(capsys, run_args(data, tmp_path / "o") + ["--lambda", "1e-3", "--width-mult", value], "width_mult must",
        tmp_path)


def test_run_out_under_a_file(data, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    bad(capsys, run_args(data, tmp_path / "afile" / "sub") + ["--lambda", "1e-3"],
        f"--out {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, not a folder", tmp_path)


def test_run_out_unwritable(data, tmp_path, capsys, unwritable):
    bad(capsys, run_args(data, unwritable / "o") + ["--lambda", "1e-3"], f"{unwritable} is not writable", tmp_path)
    assert not (unwritable / "o").exists()


def test_remove_stale_tmp_only_matches_atomic_names(tmp_path):
    names = [".final.json.abcdefgh.tmp", ".x.tmp", ".a.b.abcdefgh.tmpx", "a.b.abcdefgh.tmp", ".w.pt.ABCDEFGH.tmp"]
    for n in names:
        (tmp_path / n).write_text("x")
    assert [p.name for p in remove_stale_tmp(tmp_path)] == [".final.json.abcdefgh.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    assert remove_stale_tmp(tmp_path / "missing") == []


# --- dnal prune / export / count ----------------------------------------------------------------

def test_prune_out_is_a_file(pruned, tmp_path, capsys):
    run_dir = pruned.parent / "run"
    (tmp_path / "afile").write_text("x")
    bad(capsys, ["prune", run_dir, "--out", tmp_path / "afile"], "afile is a file, not a folder", tmp_path, run_dir)
    bad(capsys, ["prune", run_dir, "--out", tmp_path / "afile" / "sub"], "afile is a file, not a folder",
        tmp_path, run_dir)


def test_export_into_a_missing_folder(pruned, tmp_path, capsys):
    bad(capsys, ["export", pruned, "--onnx", tmp_path / "missing" / "m.onnx"],
        f"the folder {tmp_path / 'missing'} does not exist", tmp_path, pruned)


def test_export_onto_a_folder(pruned, tmp_path, capsys):
    (tmp_path / "d").mkdir()
    bad(capsys, ["export", pruned, "--onnx", tmp_path / "d"], f"--onnx {tmp_path / 'd'} is a folder", tmp_path, pruned)


def test_export_unwritable(pruned, tmp_path, capsys, unwritable):
    bad(capsys, ["export", pruned, "--onnx", unwritable / "m.onnx"], f"the folder {unwritable} is not writable",
        tmp_path, pruned)
    assert not (unwritable / "m.onnx").exists()


@pytest.mark.parametrize("opset", ["3", "9", "99", "-1"])
def test_export_opset(pruned, tmp_path, capsys, opset):
    bad(capsys, ["export", pruned, "--onnx", tmp_path / "m.onnx", "--opset", opset], "valid opsets are 10..",
        tmp_path, pruned)


@pytest.mark.parametrize("arch, match", [
    ({"model": "vgg16-cifar", "foo": 1}, "unknown architecture key 'foo'; valid: fc_width,"),
    ({"model": "vgg16-cifar", "num_classes": -5}, "num_classes must be an integer >= 1, got -5"),
    ({"model": "vgg16-cifar", "num_classes": 2.5}, "num_classes must be an integer >= 1, got 2.5"),
    ({"model": "vgg16-cifar", "width_mult": 0}, "width_mult must be a finite number > 0, got 0"),
])
def test_count_arch_file(tmp_path, capsys, arch, match):
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    bad(capsys, ["count", "vgg16-cifar", "--widths", tmp_path / "arch.json"], match, tmp_path)


@pytest.mark.parametrize("value", ["0", "-1", "inf"])
def test_count_width_mult(tmp_path, capsys, value):
    bad(capsys, ["count", "vgg16-cifar", "--width-mult", value], "width_mult must be a finite number > 0", tmp_path)


def test_count_valid_input_still_counts(capsys):
    """The checks refuse only bad input: a positive width_mult and a known key still count."""
    assert main(["count", "vgg16-cifar", "--width-mult", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] == 78_809_600


# --- JSON never holds NaN or infinity -----------------------------------------------------------

@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_write_json_refuses_non_finite(tmp_path, value):
    path = tmp_path / "final.json"
    with pytest.raises(ValueError, match=f"refusing to write {path}: rows\\[1\\].loss is {value}"):
        write_json(path, {"lambda": 1e-3, "rows": [{"loss": 1.0}, {"loss": value}]})
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_write_json_refuses_non_finite_over_an_old_file(tmp_path):
    path = tmp_path / "final.json"
    write_json(path, {"lambda": 1e-3})
    with pytest.raises(ValueError, match="lambda is inf"):
        write_json(path, {"lambda": math.inf})
    assert json.loads(path.read_text()) == {"lambda": 1e-3} and len(list(tmp_path.iterdir())) == 1
