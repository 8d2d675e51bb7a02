import math

import pytest
import torch

from dnal_core import (DeltaSchedule, SSGate, build, gates, open_counts, reset_gates, set_delta,
                       set_mode, sparsity_loss)


def test_modes():
    g = SSGate(4)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        g.s.copy_(torch.tensor([-1.0, -1e-3, 1e-3, 3.0]))
    assert torch.equal(g(x), x)  # off: identity, whatever s
    g.mode = "soft"
    g.delta.fill_(10.0)
    expect = x * torch.sigmoid(10.0 * g.s).view(1, 4, 1, 1)
    torch.testing.assert_close(g(x), expect)
    g.mode = "hard"
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 4, 1, 1)
    torch.testing.assert_close(g(x), x * mask)
    g.threshold.fill_(0.9)  # the authors' code: sigmoid(delta*s) > 0.9
    g.delta.fill_(1e4)
    assert g.keep().tolist() == [False, False, True, True]
    g.delta.fill_(1.0)
    assert g.keep().tolist() == [False, False, False, True]


def test_gate_on_linear_features():
    g = SSGate(3)
    g.mode = "soft"
    x = torch.randn(5, 3)
    torch.testing.assert_close(g(x), x * 0.5)


def test_unknown_mode_rejected():
    m = build("vgg16-cifar", width_mult=0.125)
    with pytest.raises(ValueError, match="off, soft, hard"):
        set_mode(m, "sometimes")


@pytest.mark.parametrize("delta", [1.0, 7.5, 1e2, 1e4])
def test_gradient_of_scaled_sigmoid_and_eq6_erratum(delta):
    """d sigmoid(delta s)/ds = delta p (1 - p). The paper's eq. 6 prints delta^2 s (1 - delta s)."""
    s = torch.tensor([-3e-4, -0.2, 0.0, 1e-4, 0.3], dtype=torch.float64, requires_grad=True)
    p = torch.sigmoid(delta * s)
    (grad,) = torch.autograd.grad(p.sum(), s)
    p = p.detach()
    torch.testing.assert_close(grad, delta * p * (1 - p))
    printed = delta**2 * s.detach() * (1 - delta * s.detach())
    assert not torch.allclose(grad, printed)  # eq. 6 as printed is not the derivative
    assert printed[2] == 0 and grad[2] == delta / 4  # at s = 0 eq. 6 gives 0, the truth delta/4


def test_set_delta_in_place():
    m = build("resnet56-cifar", width_mult=0.25)
    ptrs = [g.delta.data_ptr() for _, g in gates(m)]
    set_delta(m, 123.0)
    assert all(float(g.delta) == 123.0 for _, g in gates(m))
    assert ptrs == [g.delta.data_ptr() for _, g in gates(m)]


def test_reset_and_open_counts():
    m = build("vgg16-cifar", width_mult=0.125)
    for _, g in gates(m):
        torch.nn.init.normal_(g.s)
    reset_gates(m)
    assert all(torch.all(g.s == 0) for _, g in gates(m))
    set_mode(m, "soft")
    assert all(torch.allclose(g.probs(), torch.full_like(g.s, 0.5)) for _, g in gates(m))
    assert open_counts(m) == [0] * 13  # 0.5 is not > 0.5: s = 0 is closed under binary(s)
    with torch.no_grad():
        gates(m)[0][1].s[:3] = 1.0
    assert open_counts(m)[0] == 3


@pytest.mark.parametrize("unit", ["iteration", "epoch", "epoch-code", "epoch-paper"])
def test_schedule_endpoints_monotone(unit):
    sch = DeltaSchedule(epochs=20, steps_per_epoch=7, unit=unit)
    values = [sch(e, s) for e in range(20) for s in range(7)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(1e4)
    if unit == "iteration":
        assert values[0] == pytest.approx(1.0)
        assert all(b > a for a, b in zip(values, values[1:]))
        # geometric: steps t and T-1-t multiply to start * end (a linear schedule: up to 2.5e7)
        assert [a * b for a, b in zip(values, values[::-1])] == pytest.approx([1e4] * 140)
    elif unit == "epoch-paper":  # Alg. 1: delta_1 = 1, 10^(4k/(E-1)), constant inside an epoch
        for k in range(20):
            assert sch(k, 0) == sch(k, 6) == pytest.approx(10 ** (4 * k / 19))
    else:  # the authors' code: 10^(4(k+1)/E), constant inside an epoch
        for k in range(20):
            assert sch(k, 0) == sch(k, 6) == pytest.approx(10 ** (4 * (k + 1) / 20))


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="iteration, epoch"):
        DeltaSchedule(2, 2, unit="batch")
    with pytest.raises(ValueError):
        DeltaSchedule(0, 2)


def test_sparsity_loss_values():
    m = build("vgg16-cifar", width_mult=0.125)
    n = sum(g.channels for _, g in gates(m))
    set_mode(m, "soft")
    assert sparsity_loss(m, 1e-3).item() == pytest.approx(1e-3 * n * 0.5)
    with torch.no_grad():
        for _, g in gates(m):
            g.s.fill_(0.01)
    set_delta(m, 100.0)
    paper = sparsity_loss(m, 2.0, "paper").item()
    code = sparsity_loss(m, 2.0, "code").item()
    assert paper == pytest.approx(2.0 * n / (1 + math.exp(-1.0)), rel=1e-6)
    assert code == pytest.approx(2.0 * n / (1 + math.exp(-0.01)), rel=1e-6)
    with pytest.raises(ValueError, match="paper, code"):
        sparsity_loss(m, 1.0, "other")
    with pytest.raises(ValueError, match="lambda"):
        sparsity_loss(m, -1.0)


def test_sparsity_loss_gradient_reaches_only_s():
    m = build("resnet56-cifar", width_mult=0.25)
    set_mode(m, "soft")
    sparsity_loss(m, 1.0).backward()
    for name, p in m.named_parameters():
        assert (p.grad is not None) == name.endswith(".s"), name
