# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fig. 1: the scaled sigmoid, and the gradient the paper prints
#
# **What it reproduces.** Fig. 1 of the paper: the gate $p = \mathrm{sigmoid}(\delta s)$ of one
# channel as a function of its architecture parameter $s$, for growing scale factors
# $\delta_1 < \delta_2 < \delta_3$, and its limit (eq. 3)
#
# $$\lim_{\delta \to +\infty} \mathrm{sigmoid}(\delta s) = \mathrm{binary}(s) =
#   \begin{cases} 1 & s > 0 \\ 0 & \text{otherwise.} \end{cases}$$
#
# It also shows, with autograd, an erratum in eq. 6: the paper prints
# $\partial p / \partial s = \delta^2 s (1 - \delta s)$, but the derivative of the scaled
# sigmoid is $\delta\, p (1 - p)$.
#
# Everything below uses the library's own gate, `dnal_core.SSGate`: the curves are the
# values that the gate multiplies channels by, not a re-typed formula.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" or "paper": this chapter does the same work under both
data_dir = ""      # CIFAR-10 folder (empty: $DNAL_DATA); not read by this chapter
device = "cpu"     # autograd on a handful of numbers: the CPU is enough
out_dir = ""       # results folder (empty: results/fig1_scaled_sigmoid/<profile>)
fig_dir = ""       # figures folder (empty: figures/)

# %% [markdown]
# ## Set-up

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import dnal_core as dn
from dnal_core import report
from dnal_core.io import write_json
from dnal_core.report_tables import Col, reader_table

torch.manual_seed(0)
run = report.paths("fig1_scaled_sigmoid", profile, out_dir, fig_dir)

# One gate whose C "channels" are C sample points of s: gate.probs() is sigmoid(delta *
# s).
s_grid = torch.linspace(-4, 4, 801, dtype=torch.float64)
gate = dn.SSGate(len(s_grid)).double().to(device)
with torch.no_grad():
    gate.s.copy_(s_grid)


def gate_values(delta: float) -> np.ndarray:
    dn.set_delta(gate, delta)  # the same call the trainer makes every step
    return gate.probs().detach().cpu().numpy()


# %% [markdown]
# ## Run: the gate for growing $\delta$
#
# The architecture stage starts at $\delta = 1$ (the plain sigmoid) and grows $\delta$
# exponentially to $10^4$ (Section III-C). The right panel shows that growth as
# `dn.DeltaSchedule` computes it, per iteration (the smooth reading of the paper, our default)
# and per epoch (the authors' code), over the paper's 20 CIFAR-10 architecture epochs.

# %% tags=["hide-input"]
deltas = [1.0, 3.0, 10.0]  # delta_1 < delta_2 < delta_3, as in Fig. 1
fig, (ax, ax_sched) = plt.subplots(2, 1, figsize=(6.5, 7.2))
for delta, color in zip(deltas, ["tab:green", "tab:blue", "tab:red"]):
    ax.plot(s_grid, gate_values(delta), color=color, label=rf"$\delta = {delta:g}$")
ax.step(
    s_grid,
    (s_grid > 0).double(),
    where="post",
    color="k",
    ls="--",
    lw=1,
    label=r"binary$(s)$ = limit $\delta \to \infty$",
)
ax.set_xlabel("architecture parameter $s$")
ax.set_ylabel(r"$p = \mathrm{sigmoid}(\delta s)$")
ax.set_title("Fig. 1: the scaled sigmoid")
ax.legend(loc="upper left", fontsize=8)
ax.grid(alpha=0.3)

# CIFAR-10 at batch 128; 20 architecture epochs (Section V)
steps_per_epoch, epochs = (391, 20)
for unit, style in [("iteration", "-"), ("epoch", "--")]:
    sched = dn.DeltaSchedule(epochs, steps_per_epoch, unit=unit)
    t = np.arange(epochs * steps_per_epoch)
    ax_sched.plot(
        t / steps_per_epoch,
        [sched(int(i) // steps_per_epoch, int(i) % steps_per_epoch) for i in t],
        style,
        label=f"unit={unit!r}",
    )
ax_sched.set_yscale("log")
ax_sched.set_xlabel("architecture epoch")
ax_sched.set_ylabel(r"$\delta$")
ax_sched.set_title(r"DeltaSchedule: $\delta$ from 1 to $10^4$")
ax_sched.legend(fontsize=8)
ax_sched.grid(alpha=0.3, which="both")
report.save_figure(fig, "fig1_scaled_sigmoid", run.fig)

# %% [markdown]
# ## Results beside the paper: eq. 6
#
# The gradient of the gate with respect to $s$, three ways, at a few points: autograd through
# `SSGate.probs()`, the true derivative $\delta\,p(1-p)$, and the expression printed in eq. 6,
# $\delta^2 s(1-\delta s)$.

# %% tags=["nbval-check-output"]
points = [(delta, s) for delta in (1.0, 10.0) for s in (-0.5, 0.0, 0.1, 0.5)]
rows = []
for delta, s in points:
    g = dn.SSGate(1).double()
    dn.set_delta(g, delta)
    with torch.no_grad():
        g.s.fill_(s)
    p = g.probs().sum()
    (grad,) = torch.autograd.grad(p, g.s)
    p = float(p.detach())
    rows.append(
        {
            "delta": delta,
            "s": s,
            "p": p,
            "autograd": float(grad),
            "delta p (1-p)": delta * p * (1 - p),
            "eq. 6 as printed": delta**2 * s * (1 - delta * s),
        }
    )
eq6 = pd.DataFrame(rows)
reader_table(eq6, {
    "delta": Col("delta", "{:g}"),
    "s": Col("s", "{:g}"),
    "p": Col("p", "{:.6f}"),
    "autograd": Col("autograd", "{:.6f}"),
    "delta p (1-p)": Col("delta p (1-p)", "{:.6f}"),
    "eq. 6 as printed": Col("eq. 6 as printed", "{:.2f}"),
})

# %% [markdown]
# The autograd column and $\delta\,p(1-p)$ agree; the printed expression does not. It is zero at
# $s = 0$, exactly where every gate starts (Alg. 1, line 5: $s = 0$) and where the true gradient
# is largest ($\delta/4$); it is negative for every $s < 0$ and every $s > 1/\delta$ (the table
# shows both, e.g. at $s = -0.5$), positive only on $(0, 1/\delta)$, while the true derivative is
# positive everywhere. A sparsity step $-\lambda_a \partial p/\partial s$ taken with it would
# move every closing gate ($s < 0$) and every clearly open one *up*, the wrong way.
# The library never uses eq. 6: it lets autograd differentiate the gate.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6, 3.6))
delta = 3.0
p = torch.tensor(gate_values(delta))
s_req = s_grid.clone().requires_grad_(True)
(grad,) = torch.autograd.grad(torch.sigmoid(delta * s_req).sum(), s_req)
ax.plot(s_grid, grad, color="tab:blue", lw=3, alpha=0.5, label="autograd")
ax.plot(s_grid, delta * p * (1 - p), "k--", lw=1, label=r"$\delta\,p(1-p)$")
ax.plot(
    s_grid,
    delta**2 * s_grid * (1 - delta * s_grid),
    color="tab:red",
    label=r"eq. 6: $\delta^2 s(1-\delta s)$",
)
ax.set_ylim(-2, 2)
ax.set_xlabel("$s$")
ax.set_ylabel(r"$\partial p / \partial s$")
ax.set_title(rf"Eq. 6 at $\delta = {delta:g}$")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
report.save_figure(fig, "fig1_eq6_gradient", run.fig)

# %% [markdown]
# ## Check

# %% tags=["nbval-check-output"]
# 1. Autograd through the library's gate is the true derivative delta * p * (1 - p).
assert np.allclose(eq6["autograd"], eq6["delta p (1-p)"], rtol=1e-12, atol=1e-15)
# 2. The printed eq. 6 disagrees: 0 at s = 0, where the truth is delta / 4.
at_zero = eq6[eq6["s"] == 0.0]
assert (at_zero["eq. 6 as printed"] == 0).all() and np.allclose(
    at_zero["autograd"], at_zero["delta"] / 4
)
# 3. Fig. 1's key property: the gate tends to binary(s) as delta grows (eq. 3),
#    away from the jump at s = 0 (|s| >= 0.01 here).
far = (s_grid.abs() >= 0.01).numpy()
binary = (s_grid > 0).double().numpy()
gaps = {
    d: float(np.abs(gate_values(d) - binary)[far].max())
    for d in (1.0, 10.0, 100.0, 1e4)
}
assert all(a > b for a, b in zip(list(gaps.values()), list(gaps.values())[1:])), gaps
assert gaps[1e4] < 1e-40
# 4. The schedule starts at 1 and ends at 1e4 (paper: delta_0 = 1, max(delta) = 1e4).
sched = dn.DeltaSchedule(epochs, steps_per_epoch)
assert sched(0, 0) == 1.0 and abs(sched(epochs - 1, steps_per_epoch - 1) - 1e4) < 1e-6
write_json(run.out / "eq6_gradients.json", {"rows": rows, "max_gap_to_binary": gaps})
report.say(
    "max |sigmoid(delta s) - binary(s)| over |s| >= 0.01:",
    ", ".join(f"delta={d:g}: {v:.1e}" for d, v in gaps.items()),
)

# %% [markdown]
# ## Notes
#
# - The paper does not give the three $\delta$ values of Fig. 1; 1, 3 and 10 show the same
#   sharpening. By $\delta = 10^4$ (the paper's final value) a gate is binary to machine
#   precision everywhere except within $4 \times 10^{-3}$ of $s = 0$.
# - A gate with $s$ exactly 0 stays at 0.5 for every $\delta$: the pruning rule
#   ($p > 0.5$, i.e. $s > 0$, eq. 2; the authors' code uses $p > 0.9$) then decides. See
#   `dn.set_threshold`.
# - The eq. 6 erratum does not change any result of the paper, whose code (like ours) uses
#   automatic differentiation.
#
# ## Exercises
#
# 1. For $\delta = 10^4$, how close to $s = 0$ must a gate be for $0.01 < p < 0.99$? Derive
#    it from $p = \mathrm{sigmoid}(\delta s)$, then check with `gate_values`.
# 2. The printed eq. 6 is zero at $s = 1/\delta$ too. What would a gradient step with it do to a
#    gate sitting there, and what does the true derivative do?
# 3. Plot $\delta\,p(1-p)$ against $s$ for $\delta = 10^4$: how wide is the zone where a
#    gate still learns (derivative above $10^{-6}$)?
