"""``dnal prune``, ``dnal export``, ``dnal bench`` on a run directory made with io.save_model
(what ``dnal run`` writes as search.pt)."""
import json
import subprocess
import sys

import pytest
import torch

from dnal_core.cli import main
from dnal_core.io import save_model

from test_prune import gated


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory whose search.pt is a gated ResNet56 with SS before BN: removed blocks,
    stream biases and folded conv maps all appear in its pruned network."""
    d = tmp_path_factory.mktemp("run")
    save_model(gated("resnet56-cifar", "conv-ss-bn-relu", "closed"), d / "search.pt", {"stage": "arch"})
    return d


@pytest.fixture(scope="module")
def pruned_dir(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned")
    assert main(["prune", str(run_dir), "--out", str(out)]) == 0
    return out


def run_cli(args, capsys):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_prune_reports_the_check_and_reloads_in_a_fresh_process(run_dir, tmp_path, capsys):
    rc, out, _ = run_cli(["prune", run_dir, "--out", tmp_path / "p"], capsys)
    assert rc == 0
    rep = json.loads(out)
    assert rep["check"] == "passed" and rep["max_abs_logit_diff"] < 1e-4 * 100
    assert rep["rel_logit_diff"] <= 1e-4
    assert rep["macs_after"] < rep["macs_before"] and rep["params_after"] < rep["params_before"]
    assert rep["removed_branches"] and rep["min_channels_bound"] and rep["folded"]["stream_biases"]
    assert json.loads((tmp_path / "p" / "report.json").read_text())["macs_after"] == rep["macs_after"]
    code = "import sys, dnal_core as dn; print(dn.count_params(dn.load_pruned(sys.argv[1])))"
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p")], capture_output=True, text=True, check=True)
    assert int(res.stdout) == rep["params_after"]


def test_prune_min_channels_and_round_to(run_dir, tmp_path, capsys):
    rc, out, _ = run_cli(["prune", run_dir, "--out", tmp_path, "--min-channels", "2", "--round-to", "4"], capsys)
    rep = json.loads(out)
    assert rc == 0 and rep["check"] == "passed" and (rep["min_channels"], rep["round_to"]) == (2, 4)
    kept = [w for w in rep["widths_after"] if w]
    assert all(w >= 2 and w % 4 == 0 for w in kept)  # width 0.25: every layer has 4, 8 or 16
    assert rep["round_to_added"] and rep["round_to_macs_cost"] > 0


def test_prune_bad_input_is_one_line(run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "search.pt").write_bytes(b"not a checkpoint")
    cases = [(tmp_path / "missing", "not found"), (tmp_path / "empty", "no search.pt"),
             (tmp_path / "corrupt", "cannot load")]
    for d, msg in cases:
        rc, out, err = run_cli(["prune", d, "--out", tmp_path / "o"], capsys)
        assert rc == 2 and not out and len(err.strip().splitlines()) == 1 and msg in err
    rc, _, err = run_cli(["prune", run_dir, "--out", run_dir], capsys)
    assert rc == 2 and "run directory" in err
    rc, _, err = run_cli(["prune", run_dir, "--out", tmp_path / "o", "--round-to", "0"], capsys)
    assert rc == 2 and "round_to" in err
    assert not (tmp_path / "o").exists()  # nothing written on bad input


def test_export_onnx_matches_pytorch(pruned_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    rc, out, _ = run_cli(["export", pruned_dir, "--onnx", tmp_path / "m.onnx"], capsys)
    rep = json.loads(out)
    assert rc == 0 and rep["onnxruntime_checked"] and rep["rel_logit_diff"] <= 1e-4
    assert (tmp_path / "m.onnx").stat().st_size > 1000
    rc, _, err = run_cli(["export", tmp_path / "nope", "--onnx", tmp_path / "x.onnx"], capsys)
    assert rc == 2 and "not found" in err


def test_bench_prints_macs_and_latency_ratios(pruned_dir, capsys):
    rc, out, _ = run_cli(["bench", pruned_dir, "--batch-sizes", "1,8", "--devices", "cpu",
                          "--warmup", "1", "--iters", "2", "--rounds", "2"], capsys)
    rep = json.loads(out)
    report = json.loads((pruned_dir / "report.json").read_text())
    assert rc == 0 and rep["macs_pruned"] == report["macs_after"] and rep["macs_dense"] == report["macs_before"]
    assert [(r["device"], r["batch_size"]) for r in rep["rows"]] == [("cpu", 1), ("cpu", 8)]
    assert all(r["latency_ratio"] == pytest.approx(r["pruned_ms"] / r["dense_ms"]) and r["dense_ms"] > 0
               and r["pruned_ms"] > 0 and r["macs_ratio"] == rep["macs_ratio"] < 1 for r in rep["rows"])
    rc, _, err = run_cli(["bench", pruned_dir, "--batch-sizes", "0"], capsys)
    assert rc == 2 and "positive" in err
