"""Issue #10: a budget instead of lambda. The cost polynomial (``dnal_core.prune.cost``) equals
``count`` of the really pruned network at 0/1 gates for every CIFAR model and placement, its
gradient is the finite differences', ``dnal run --target-macs/--target-params`` lands within
[0.90, 1.03] x target on each CIFAR model, and bad targets give one line and exit 2."""
import json
import os

import pytest
import torch

from dnal_core.budget import (ABOVE, BELOW, PATH_POINTS, BudgetController, _shifted, budget_shift, dense_cost,
                              expected_cost, hard_cost, min_cost, parse_target, resolve_target)
from dnal_core.cli import main
from dnal_core.gate import gates, set_delta, set_mode
from dnal_core.loss import sparsity_loss
from dnal_core.measure import count
from dnal_core.models import PLACEMENTS, build
from dnal_core.prune import prune
from dnal_core.prune.policy import keep_masks

CIFAR = ("vgg16-cifar", "resnet56-cifar", "mobilenetv2-cifar")


def _random_gates(model, p_open: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, g in gates(model):
            sign = torch.where(torch.rand(g.channels, generator=gen) < p_open, 1.0, -1.0)
            g.s.copy_(sign * (0.1 + torch.rand(g.channels, generator=gen)))
    set_mode(model, "hard")


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", CIFAR)
def test_cost_equals_count_of_the_pruned_network(name, placement):
    model = build(name, width_mult=0.25, placement=placement)
    dense = count(model)
    full = [torch.ones(g.channels, dtype=torch.float64) for _, g in gates(model)]
    assert {k: float(expected_cost(model, k, full)) for k in dense} == {k: float(v) for k, v in dense.items()}
    for seed, p_open in ((0, 0.6), (1, 0.3), (2, 0.08)):  # 0.08: whole layers close, residual branches go
        _random_gates(model, p_open, seed)
        pruned = count(prune(model).model)
        keep = [k.double() for k in keep_masks(model).keep]
        got = {k: float(expected_cost(model, k, keep)) for k in pruned}
        assert got == {k: float(v) for k, v in pruned.items()}, (seed, got, pruned)
        assert hard_cost(model, "macs") == pruned["macs"] and hard_cost(model, "params") == pruned["params"]
        assert pruned["macs"] < dense["macs"]


@pytest.mark.parametrize("name", CIFAR)
def test_min_cost_is_what_closing_every_gate_leaves(name):
    model = build(name, width_mult=0.25)
    with torch.no_grad():
        for _, g in gates(model):
            g.s.fill_(-1.0)
    set_mode(model, "hard")
    assert min_cost(model, "macs") == count(prune(model).model)["macs"] < dense_cost(model, "macs")


@pytest.mark.parametrize("kind", ["macs", "params"])
@pytest.mark.parametrize("name", CIFAR)
def test_gradient_matches_finite_differences(name, kind):
    model = build(name, width_mult=0.0625).double()
    gen = torch.Generator().manual_seed(3)
    s = [torch.randn(g.channels, generator=gen, dtype=torch.float64).requires_grad_(True) for _, g in gates(model)]

    dense = dense_cost(model, kind)

    def f(*ss):  # the cost at sigmoid(delta s), delta = 2 (gates between 0 and 1), as a fraction of dense
        return expected_cost(model, kind, [torch.sigmoid(2.0 * x) for x in ss]) / dense

    assert torch.autograd.gradcheck(f, tuple(s), eps=1e-6, atol=1e-8, rtol=1e-5)


def test_loss_forms_keep_eq4_and_add_the_cost_term():
    model = build("vgg16-cifar", width_mult=0.25)
    set_delta(model, 3.0)
    n = sum(g.channels for _, g in gates(model))
    assert sparsity_loss(model, 2.0, "paper").item() == pytest.approx(2.0 * 0.5 * n)  # s = 0: every gate 0.5
    macs = sparsity_loss(model, 2.0, "expected-macs")
    assert macs.detach().item() == pytest.approx(2.0 * float(expected_cost(model, "macs").detach()) / dense_cost(model, "macs"))
    macs.backward()
    first, last = gates(model)[1][1].s.grad, gates(model)[-1][1].s.grad
    assert (first > 0).all() and first.mean() > 4 * last.mean()  # a channel of a wide early layer costs more


@pytest.mark.parametrize("text, value", [("0.3", 0.3), ("25M", 25e6), ("1.5e6", 1.5e6), ("800k", 8e5),
                                         ("2G", 2e9), ("1000", 1000.0)])
def test_parse_target(text, value):
    assert parse_target(text) == value


@pytest.mark.parametrize("text", ["0", "-0.3", "1", "1.5", "999", "abc", "nan", "inf", "", "M"])
def test_parse_target_refuses(text):
    with pytest.raises(ValueError):
        parse_target(text)


def test_resolve_target_refuses_unreachable_and_too_large():
    model = build("vgg16-cifar", width_mult=0.25)
    dense = dense_cost(model, "macs")
    assert resolve_target(model, "macs", 0.5) == round(0.5 * dense)
    with pytest.raises(ValueError, match="exceeds the dense"):
        resolve_target(model, "macs", float(dense + 1))
    with pytest.raises(ValueError, match="unreachable: with min_channels=1"):
        resolve_target(model, "macs", 0.001)


@pytest.mark.parametrize("name", CIFAR)
def test_budget_shift_gives_the_largest_network_under_the_target(name):
    model = build(name, width_mult=0.25)
    _random_gates(model, 0.5, 3)
    set_delta(model, 10.0)
    s0 = [g.s.detach().clone() for _, g in gates(model)]
    dense = dense_cost(model, "macs")
    for frac in (0.7, 0.3, 0.1):
        b, cost = budget_shift(model, "macs", frac * dense)
        assert all(torch.equal(g.s, s) for (_, g), s in zip(gates(model), s0))  # s left as it was
        with _shifted(model, b):
            assert hard_cost(model, "macs") == cost <= frac * dense
        margins = torch.cat(s0)
        nearest = float(margins[margins <= b].max())  # the closed gate the next shift would open
        with _shifted(model, nearest - 1e-4):
            assert hard_cost(model, "macs") > frac * dense, (frac, b, nearest)


def test_controller_projects_after_every_step():
    model = build("vgg16-cifar", width_mult=0.25)
    _random_gates(model, 0.9, 4)
    target = round(0.4 * dense_cost(model, "macs"))
    ctl = BudgetController("macs", target, 1.0)
    assert ctl.update(model) == 1.0  # lambda stays
    step, b, before, after = ctl.path[-1]
    assert step == 0 and before > target >= after == hard_cost(model, "macs") and b > 0
    assert after > 0.9 * target  # one channel of a 1/4-width VGG16 is well under 10% of this budget


def test_path_is_subsampled():
    ctl = BudgetController("macs", 1000, 1.0)
    ctl.path = [(i, 0.0, 1000, 1000) for i in range(1234)]
    path = ctl.summary()
    assert len(path) == PATH_POINTS and path[0]["step"] == 0 and path[-1]["step"] == 1233


# --- the command line ----------------------------------------------------------------------------

# a tiny configuration: 1/8 width, 30 training images per class, 2 architecture epochs at batch 32
TINY = ["--profile", "smoke", "--width-mult", "0.125", "--per-class", "30", "--test-per-class", "5",
        "--set", "test_batch_size=50", "--set", "precise_bn=0", "--set", "arch.batch_size=32", "--quiet"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    old = os.environ.get("DNAL_CACHE")
    os.environ["DNAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("DNAL_CACHE", None)
    else:
        os.environ["DNAL_CACHE"] = old


@pytest.fixture(scope="module")
def weights(cifar_dir, cache, tmp_path_factory):
    """One 1-epoch weight stage per model, shared by its budgeted runs."""
    root = tmp_path_factory.mktemp("weights")
    out = {}
    for name in CIFAR:
        assert main(["run", name, "--data", str(cifar_dir), "--out", str(root / name), *TINY,
                     "--stages", "weights", "--epochs-weights", "1"]) == 0
        out[name] = root / name / "weights.pt"
    return out


@pytest.mark.parametrize("name, flag, value", [(n, "--target-macs", x) for n in CIFAR for x in ("0.3", "0.5")]
                         + [("vgg16-cifar", "--target-params", "0.4")])
def test_run_lands_within_the_budget(cifar_dir, weights, tmp_path, name, flag, value):
    out = tmp_path / "run"
    assert main(["run", name, "--data", str(cifar_dir), "--out", str(out), *TINY, "--weights-from",
                 str(weights[name]), flag, value, "--epochs-finetune", "0"]) == 0
    final = json.loads((out / "final.json").read_text())
    b, kind = final["budget"], flag.split("-")[-1]
    assert final["lambda"] is None and b["kind"] == kind and b["given"] == float(value)
    assert b["dense"] == final[f"baseline_{kind}"] and b["target"] == round(float(value) * b["dense"])
    assert b["reached"] == final[kind]  # the cost model's number is the saved network's count
    assert BELOW * b["target"] <= final[kind] <= ABOVE * b["target"], b
    assert b["loss_form"] == f"expected-{kind}" and 0 < len(b["path"]) <= PATH_POINTS
    # the projection lands alone (0.993-0.999 of the target on a 2-core Xeon, 2026-12-02): no repair
    assert b["lambda"] == 1.0 and b["repaired"] == 0 and b["path"][-1]["hard"] == b["reached"]
    steps = [p["step"] for p in b["path"]]
    assert steps == sorted(steps) and steps[-1] == len(steps) - 1  # every step (fewer than 100 here)
    # the projection holds the pruned cost at or under the target after every step
    assert all(p["hard"] <= b["target"] for p in b["path"]), b["path"]


def _listing(d):
    return sorted((str(p), p.stat().st_size) for p in d.rglob("*")) if d.exists() else None


@pytest.mark.parametrize("extra, match", [
    (["--target-macs", "0"], "must be a fraction in (0, 1) or a count >= 1000"),
    (["--target-macs", "-0.3"], "must be a fraction in (0, 1) or a count >= 1000"),
    (["--target-macs", "1"], "neither a fraction of the dense count (< 1) nor a plausible absolute count"),
    (["--target-params", "1.5"], "neither a fraction"),
    (["--target-macs", "abc"], "is not a number"),
    (["--target-macs", "nan"], "must be a fraction"),
    (["--target-macs", "0.3", "--target-params", "0.3"], "not allowed with argument --target-macs"),
    (["--target-macs", "0.3", "--lambda", "1e-3"], "--target-macs and --lambda exclude each other"),
    (["--target-macs", "1G"], "exceeds the dense vgg16-cifar's"),
    (["--target-params", "0.0001"], "unreachable: with min_channels=1"),
    (["--target-macs", "0.3", "--set", "search.budget_lambda0=-1"], "search.budget_lambda0 must be >= 0"),
])
def test_bad_targets(cifar_dir, cache, tmp_path, capsys, extra, match):
    out = tmp_path / "o"
    rc = main(["run", "vgg16-cifar", "--data", str(cifar_dir), "--out", str(out), *TINY, *extra])
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("dnal") and "Traceback" not in err, err
    assert match in err, err
    assert _listing(tmp_path) == [], _listing(tmp_path)  # nothing written
