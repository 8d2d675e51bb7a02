"""dnal_core.report: output folders, figures, results, the paper beside our numbers."""
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dnal_core import report  # noqa: E402
from dnal_core.paper import paper_table  # noqa: E402


@pytest.fixture
def out_root(tmp_path, monkeypatch):
    monkeypatch.setenv(report.OUT_ROOT_ENV, str(tmp_path))
    return tmp_path


def test_repo_root_holds_the_notebooks():
    root = report.repo_root()
    assert (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file()


def test_paths_default_layout_under_out_root(out_root):
    run = report.paths("table1_vgg16_cifar10", "smoke")
    assert run.out == out_root / "results" / "table1_vgg16_cifar10" / "smoke"
    assert run.fig == out_root / "figures"
    assert run.out.is_dir() and run.fig.is_dir()


def test_paths_relative_and_absolute_overrides(out_root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("abs")
    run = report.paths("x", "paper", out_dir="custom/out", fig_dir=str(elsewhere))
    assert run.out == out_root / "custom" / "out"
    assert run.fig == elsewhere


def test_paths_rejects_unknown_profile(out_root):
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        report.paths("x", "fast")


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4])
    return fig


def test_save_figure_writes_deterministic_png_and_returns_it(tmp_path):
    img = report.save_figure(_figure(), "curve", tmp_path)
    first = (tmp_path / "curve.png").read_bytes()
    assert first.startswith(b"\x89PNG") and img.data == first
    report.save_figure(_figure(), "curve", tmp_path)
    assert (tmp_path / "curve.png").read_bytes() == first  # re-running leaves git clean
    assert not plt.get_fignums()  # closed: the inline backend does not show it twice


def test_read_results_json_and_jsonl(tmp_path):
    folder = tmp_path / "exp" / "smoke"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"lambda": "1e-4", "top1": 91.5}))
    (folder / "epochs.jsonl").write_text('{"epoch": 0, "top1": 50}\n\n{"epoch": 1, "top1": 60}\n')
    df = report.read_results("exp", "smoke", root=tmp_path)
    assert len(df) == 3
    assert list(df[df["source"] == "epochs.jsonl"]["top1"]) == [50, 60]
    assert df[df["source"] == "summary.json"]["top1"].item() == 91.5


def test_read_results_prefers_out_root_then_repository(out_root):
    folder = out_root / "results" / "exp_only_here" / "smoke"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text('{"v": 1}')
    assert report.read_results("exp_only_here", "smoke")["v"].tolist() == [1]
    with pytest.raises(ValueError, match="run the experiment"):
        report.read_results("no_such_experiment", "smoke")


def test_paper_vs_ours_matches_on_lambda_and_orders_by_size():
    ours = [{"lambda": "-", "macs_m": 313.46, "params_m": 14.99, "top1": 93.0},
            {"lambda": "1e-4", "macs_m": 150.0, "params_m": 2.0, "top1": 92.5},
            {"lambda": "9e-4", "macs_m": 5.0, "params_m": 0.05, "top1": 80.0}]
    df = report.paper_vs_ours("I", ours)
    paper = paper_table("I")
    n_paper = int(paper["method"].isin(["DNAL", "Baseline"]).sum())
    assert len(df) == n_paper + 1  # our 9e-4 has no paper row
    row = df[df["lambda"] == "1e-4"].iloc[0]
    assert row["paper_macs_m"] == 161.97 and row["ours_macs_m"] == 150.0
    assert math.isclose(row["paper_macs_x"], 313.47 / 161.97)
    assert math.isclose(row["ours_macs_x"], 313.46 / 150.0)
    assert df.iloc[0]["lambda"] == "-" and df.iloc[-1]["lambda"] == "9e-4"
    assert math.isnan(df.iloc[-1]["paper_top1"])


@pytest.mark.parametrize("lam,label", [(1e-5, "1e-5"), (0.0001, "1e-4"), ("5e-05", "5e-5"), ("1e-4", "1e-4"),
                                       (1.5e-4, "1.5e-4"), (2e-3, "2e-3"), ("-", "-"), (None, "-"),
                                       (float("nan"), "-")])
def test_lambda_label_writes_lambda_as_the_paper(lam, label):
    assert report.lambda_label(lam) == label


def test_paper_vs_ours_matches_float_lambdas():
    df = report.paper_vs_ours("I", [{"lambda": 0.0001, "macs_m": 150.0, "params_m": 2.0, "top1": 92.5},
                                    {"lambda": 5e-05, "macs_m": 190.0, "params_m": 3.0, "top1": 93.0}])
    assert df[df["lambda"] == "1e-4"]["ours_macs_m"].item() == 150.0
    assert df[df["lambda"] == "5e-5"]["paper_macs_m"].item() == 195.14


def test_paper_vs_ours_rejects_missing_columns():
    with pytest.raises(ValueError, match="lack columns"):
        report.paper_vs_ours("I", pd.DataFrame([{"lambda": "1e-4", "top1": 90.0}]))


def test_plot_acc_vs_macs_draws_paper_and_ours():
    fig = report.plot_acc_vs_macs("I", [{"macs_m": 100.0, "top1": 92.0, "label": "1e-4"}])
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "DNAL (paper)" in labels and "ours" in labels
    ours = next(line for line in ax.get_lines() if line.get_label() == "ours")
    assert list(ours.get_xdata()) == [100.0]
    plt.close(fig)


def test_check_close():
    assert "within" in report.check_close(93.7, 93.77, 0.1, "top-1")
    with pytest.raises(AssertionError, match="top-1: ours 90"):
        report.check_close(90.0, 93.77, 0.5, "top-1")
    with pytest.raises(AssertionError):
        report.check_close(float("nan"), 93.77, 100.0, "top-1")


def _final(lam, macs, top1, top5=90.0):
    return {"lambda": lam, "macs": macs, "params": macs // 10, "top1": top1, "top5": top5,
            "baseline_macs": 1_000_000, "baseline_params": 100_000, "baseline_top1": 80.0, "baseline_top5": 95.0}


def test_ours_table_baseline_first_sorted_by_lambda_with_drops():
    ours = report.ours_table([_final(5e-4, 200_000, 70.0, 85.0), _final(1e-4, 500_000, 78.0)])
    assert ours["lambda"].tolist() == ["-", "1e-4", "5e-4"]
    assert ours["macs_m"].tolist() == [1.0, 0.5, 0.2]
    assert ours["drop1"].tolist() == [0.0, 2.0, 10.0]
    assert ours["drop5"].tolist() == [0.0, 5.0, 10.0]
    with pytest.raises(ValueError, match="lack"):
        report.ours_table([{"lambda": 1e-4, "macs": 1}])


def test_paper_vs_ours_carries_top5_when_given():
    ours = report.ours_table([_final(1e-4, 500_000, 78.0, 91.0)])
    merged = report.paper_vs_ours("I", ours)
    row = merged[merged["lambda"] == "1e-4"].iloc[0]
    assert row["ours_top5"] == 91.0 and row["paper_top5"] == 99.72


def test_results_dir_needs_a_result_file(out_root):
    folder = out_root / "results" / "exp" / "smoke"
    folder.mkdir(parents=True)
    assert not report.has_results(folder) and report.results_dir("exp", "smoke", out_root / "results") is None
    (folder / "a.json").write_text(json.dumps({"x": 1}))
    assert report.results_dir("exp", "smoke", out_root / "results") == folder
    assert report.read_folder(folder)["x"].tolist() == [1]


def test_copy_metrics_filters_stages_adds_fields_drops_times(tmp_path):
    lines = [{"stage": "weights", "epoch": 0, "seconds": 1.5}, {"stage": "arch", "epoch": 0, "seconds": 2.0,
                                                                 "eval_seconds": 0.1, "gate_hist": [1, 2]}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    n = report.copy_metrics(tmp_path, tmp_path / "out" / "m.jsonl", stages=["arch"], model="m")
    got = [json.loads(x) for x in (tmp_path / "out" / "m.jsonl").read_text().splitlines()]
    assert n == 1 and got == [{"model": "m", "stage": "arch", "epoch": 0, "gate_hist": [1, 2]}]


def test_provenance_names_date_command_device():
    p = report.provenance("table1_vgg16_cifar10", "smoke", 1, {"arch.epochs": 1}, device="cpu")
    assert p["device"] == "cpu" and "table1_vgg16_cifar10" in p["command"] and "arch.epochs" in p["command"]
    assert len(p["date"]) == 10


def test_plot_acc_vs_relative_macs_scales_each_side_by_its_baseline():
    ours = report.ours_table([_final(1e-4, 500_000, 78.0)])
    fig = report.plot_acc_vs_relative_macs("I", ours)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert list(lines["ours"].get_xdata()) == [50.0]
    paper_x = lines["DNAL (paper)"].get_xdata()
    assert max(paper_x) == pytest.approx(100 * 211.89 / 313.47)
    plt.close(fig)
