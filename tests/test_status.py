"""dnal_core.status: the intro's status table is computed from the results folders, never typed:
each chapter's row names the largest-scale profile with results, its device and date, and a
verdict computed from the numbers."""
import json
import re
from pathlib import Path

from dnal_core.status import CLAIMS, status_markdown, status_rows

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _root(tmp_path: Path) -> Path:
    for name in ("table1_vgg16_cifar10", "fig5_joint_vs_sequential", "fig4_ss_placement", "budget_vgg16_cifar10"):
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        (tmp_path / "notebooks" / f"{name}.py").write_text("")
    return tmp_path


def test_rows_follow_the_results(tmp_path):
    root = _root(tmp_path)
    res = root / "results"
    tag = {"device": "cpu (1 thread)", "date": "2026-12-02"}
    # Table I at cpu: a 1.9x network 0.8 points under the dense control, 1 point over uniform width
    _write(res / "table1_vgg16_cifar10" / "cpu" / "lam1e-3.json",
           {**tag, "lambda": 1e-3, "macs": 10e6, "params": 1e5, "baseline_macs": 19e6, "top1": 82.5})
    _write(res / "table1_vgg16_cifar10" / "cpu" / "controls" / "dense.json", {"top1": 83.3, "macs": 19e6})
    _write(res / "table1_vgg16_cifar10" / "cpu" / "controls" / "uniform_lam1e-3.json",
           {"lambda": 1e-3, "top1": 81.5, "macs": 10.1e6})
    _write(res / "table1_vgg16_cifar10" / "smoke" / "lam1e-3.json", {**tag, "date": "2026-01-01"})
    # Fig. 5 at cpu: joint ahead
    for strategy, top1 in (("sequential", 80.0), ("joint", 81.0)):
        _write(res / "fig5_joint_vs_sequential" / "cpu" / f"vgg16-cifar_{strategy}.json",
               {**tag, "top1": top1, "macs": 5e6})
    # Fig. 4: only a running experiment's plan file at cpu, so smoke is shown
    _write(res / "fig4_ss_placement" / "cpu" / "sweep.json", {"rows": []})
    _write(res / "fig4_ss_placement" / "smoke" / "a.json", {**tag, "date": "2026-01-02"})
    rows = {r["chapter"]: r for r in status_rows(root)}
    assert set(rows) == {"table1_vgg16_cifar10", "fig5_joint_vs_sequential", "fig4_ss_placement", "budget_vgg16_cifar10"}
    t1 = rows["table1_vgg16_cifar10"]
    assert (t1["profile"], t1["device"], t1["date"]) == ("cpu", "cpu (1 thread)", "2026-12-02")
    assert t1["reproduced"].startswith("reproduced: a 0.8-point drop at 1.9x")
    assert "above uniform width at equal MACs at 1 of 1" in t1["reproduced"]
    assert rows["fig5_joint_vs_sequential"]["reproduced"] == (
        "not reproduced at cpu scale: at equal MACs (5.00M), sequential 80.0%, joint 81.0% after finetuning")
    f4 = rows["fig4_ss_placement"]
    assert (f4["profile"], f4["date"]) == ("smoke", "2026-01-02") and "machinery check" in f4["reproduced"]
    # Fig. 4 at cpu, two seeds: the post-BN placements 0.2 apart (seed spread 0.6), pre-BN worse
    for placement, tops in (("conv-bn-ss-relu", (80.5, 81.1)), ("conv-bn-relu-ss", (80.9, 81.1)),
                            ("conv-ss-bn-relu", (75.0, 75.2))):
        for seed, top1 in enumerate(tops):
            _write(res / "fig4_ss_placement" / "cpu" / f"vgg16-cifar_{placement}_seed{seed}.json",
                   {**tag, "placement": placement, "seed": seed, "top1": top1})
    f4 = {r["chapter"]: r for r in status_rows(root)}["fig4_ss_placement"]
    assert f4["profile"] == "cpu" and f4["reproduced"].startswith(
        "reproduced: after finetuning Conv-BN-SS-ReLU 80.8%, Conv-BN-ReLU-SS 81.0%, Conv-SS-BN-ReLU 75.1% (mean of 2 seeds; "
        "seed spread up to 0.6)"), f4
    _write(res / "fig4_ss_placement" / "cpu" / "vgg16-cifar_conv-ss-bn-relu_seed1.json",
           {**tag, "placement": "conv-ss-bn-relu", "seed": 1, "top1": 90.0})
    assert {r["chapter"]: r for r in status_rows(root)}["fig4_ss_placement"]["reproduced"].startswith(
        "not reproduced at cpu scale:")
    # the dense control gets worse: the verdict turns
    _write(res / "table1_vgg16_cifar10" / "cpu" / "controls" / "dense.json", {"top1": 86.0, "macs": 19e6})
    assert status_rows(root)[0]["reproduced"].startswith("not reproduced at cpu scale: a 3.5-point drop")


def test_budget_verdict_counts_the_budgets_met(tmp_path):
    root = _root(tmp_path)
    folder = root / "results" / "budget_vgg16_cifar10" / "cpu"
    for t, frac, top1 in ((0.5, 0.499, 82.0), (0.1, 0.0995, 75.5)):
        _write(folder / f"expected-macs_macs{t:g}.json",
               {"device": "cpu", "date": "2026-12-02", "target": t, "top1": top1,
                "budget": {"fraction": frac, "of_target": frac / t}})
    row = {r["chapter"]: r for r in status_rows(root)}["budget_vgg16_cifar10"]
    assert row["reproduced"] == ("reproduced: 2 of 2 budgets met, MACs fraction (top-1): 0.5 -> 0.499 (82.0%), "
                                 "0.1 -> 0.100 (75.5%)")
    _write(folder / "expected-macs_macs0.25.json", {"target": 0.25, "top1": 80.0,
                                                    "budget": {"fraction": 0.2, "of_target": 0.8}})
    assert {r["chapter"]: r for r in status_rows(root)}["budget_vgg16_cifar10"]["reproduced"].startswith(
        "not reproduced at cpu scale: 2 of 3 budgets met")


def test_table2_verdict_takes_the_network_nearest_its_claims_reduction(tmp_path):
    """Table II at cpu (ResNet20) is judged like Table I, at the paper's 3.4x instead of 1.9x."""
    root = _root(tmp_path)
    (root / "notebooks" / "table2_resnet56_cifar10.py").write_text("")
    folder = root / "results" / "table2_resnet56_cifar10" / "cpu"
    tag = {"device": "cpu (1 thread)", "date": "2026-12-07", "baseline_macs": 41e6, "params": 1e5}
    for lam, macs, top1 in ((1e-3, 27e6, 88.0), (3e-3, 16e6, 86.1), (5e-3, 10e6, 84.0)):
        _write(folder / f"lam{lam:.0e}.json".replace("e-0", "e-"), {**tag, "lambda": lam, "macs": macs, "top1": top1})
    _write(folder / "controls" / "dense.json", {"top1": 88.5, "macs": 41e6})
    _write(folder / "controls" / "uniform_lam3e-3.json", {"lambda": 3e-3, "top1": 86.6, "macs": 16.1e6})
    row = {r["chapter"]: r for r in status_rows(root)}["table2_resnet56_cifar10"]
    # 41/16 = 2.6x is nearest 3.4x (41/27 = 1.5x, 41/10 = 4.1x is 0.7 away, 2.6x 0.8: the 4.1x one)
    assert row["reproduced"] == ("not reproduced at cpu scale: a 4.5-point drop at 4.1x fewer MACs; above "
                                 "uniform width at equal MACs at 0 of 1 sizes")
    _write(folder / "lam5e-3.json", {**tag, "lambda": 5e-3, "macs": 12e6, "top1": 87.0})
    row = {r["chapter"]: r for r in status_rows(root)}["table2_resnet56_cifar10"]
    assert row["reproduced"].startswith("reproduced: a 1.5-point drop at 3.4x fewer MACs")


def test_the_repository_table_has_every_chapter_and_its_shown_profile():
    """The table the intro includes: one row per notebook, linked, showing the profile each
    chapter renders (the largest-scale committed results)."""
    from dnal_core.report import best_profile

    md = status_markdown(ROOT)
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.py"))
    assert sorted(CLAIMS) == notebooks, "every chapter needs a claim in dnal_core.status.CLAIMS"
    for name in notebooks:
        row = re.search(rf"^\| \[{name}\]\(chapters/{name}\) \| (\S+) \|", md, re.M)
        assert row, name
        assert row.group(1) in ("-", best_profile(name, ROOT / "results")), (name, row.group(1))


def test_fig5_and_fig4_verdicts_compare_at_equal_macs_or_say_they_cannot(tmp_path):
    """Fig. 5: sequential and joint at other MACs are compared through the Table I network of the
    joint one's MACs (within 2%), or not at all; Fig. 4: placements at other MACs say so."""
    root = _root(tmp_path)
    res = root / "results"
    tag = {"device": "cpu", "date": "2026-12-02"}
    _write(res / "fig5_joint_vs_sequential" / "cpu" / "vgg16-cifar_sequential.json", {**tag, "top1": 82.3, "macs": 11.8e6})
    _write(res / "fig5_joint_vs_sequential" / "cpu" / "vgg16-cifar_joint.json", {**tag, "top1": 79.3, "macs": 5.70e6})
    row = lambda: {r["chapter"]: r for r in status_rows(root)}["fig5_joint_vs_sequential"]["reproduced"]  # noqa: E731
    assert row().startswith("cannot compare at equal MACs: sequential 82.3% at 11.8M, joint 79.3% at 5.7M")
    _write(res / "table1_vgg16_cifar10" / "cpu" / "lam3e-3.json",
           {**tag, "lambda": 3e-3, "top1": 73.9, "macs": 5.72e6, "params": 1e5, "baseline_macs": 19e6})
    _write(res / "table1_vgg16_cifar10" / "cpu" / "controls" / "dense.json", {"top1": 83.3, "macs": 19e6})
    assert row() == "not reproduced at cpu scale: at equal MACs (5.70M), sequential 73.9%, joint 79.3% after finetuning"
    for p, macs in (("conv-bn-ss-relu", 8.4e6), ("conv-bn-relu-ss", 7.6e6), ("conv-ss-bn-relu", 4.9e6)):
        _write(res / "fig4_ss_placement" / "cpu" / f"vgg16-cifar_{p}_seed0.json",
               {**tag, "placement": p, "seed": 0, "top1": 80.0, "macs": macs})
    f4 = {r["chapter"]: r for r in status_rows(root)}["fig4_ss_placement"]["reproduced"]
    assert f4.startswith("cannot compare at equal MACs (one lambda: mean MACs 8.4M, 7.6M, 4.9M)")


def test_criteria_verdict_adds_the_seeds_where_two_exist(tmp_path):
    """The criteria chapter's row: the scratch sentence, then, at each size with two seeds or
    more, eq. 4 minus uniform width over the seeds with its verdict."""
    from dnal_core.criteria_view import dense_macs

    root = _root(tmp_path)
    (root / "notebooks" / "criteria_vgg16_cifar10.py").write_text("")
    d = dense_macs(0.25)
    rows = []
    for seed, src, eq4, uni in ((0, "table1", 80.0, 81.0), (1, "w0.25-seed1", 80.1, 81.2), (2, "w0.25-seed2", 79.9, 81.1)):
        rows += [{"method": "dnal-eq4", "source": f"{src}/lam1", "macs": d / 2.36, "top1": eq4, "width_mult": 0.25,
                  "seed": seed, "device": "cpu", "date": "2026-12-07"},
                 {"method": "uniform", "source": f"{src}/uniform_lam1", "macs": d / 2.36, "top1": uni,
                  "width_mult": 0.25, "seed": seed}]
    (root / "results" / "criteria_vgg16_cifar10" / "cpu").mkdir(parents=True)
    (root / "results" / "criteria_vgg16_cifar10" / "cpu" / "rows.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    row = next(r for r in status_rows(root) if r["chapter"] == "criteria_vgg16_cifar10")
    assert "near 2.36x over 3 seeds, eq. 4 minus uniform width -1.10 (sd 0.10): uniform width above" in row["reproduced"]
