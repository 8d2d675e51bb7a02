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
# # Fig. 2 and Alg. 1: the three stages
#
# **What it reproduces.** Fig. 2 of the paper draws a conv layer followed by batch
# normalisation, the SS (scaled sigmoid) layer and ReLU; Alg. 1 lists the three stages that
# train it. This chapter draws that unit in each stage, then walks through the stages on a
# tiny VGG16 with the library's gate functions (`set_mode`, `reset_gates`, `DeltaSchedule`,
# `open_counts`) and its sparsity loss (`sparsity_loss`, from `dnal_core/loss.py`), checking
# at each step what the paper says happens.
# The [quickstart](quickstart.ipynb) then trains a network through all three stages.
#
# | Alg. 1 | stage | SS layer | trains | loss |
# | --- | --- | --- | --- | --- |
# | lines 1-4 | weights | off (identity) | weights $W$ | $\mathcal{L}_0 + \lambda_w \lVert W \rVert_2$ |
# | lines 5-8 | architecture | $x \cdot \mathrm{sigmoid}(\delta s)$, $\delta: 1 \to 10^4$ | $s$ only | $\mathcal{L}_0 + \lambda_a \sum \mathrm{sigmoid}(\delta s)$ |
# | line 9 | prune | $\mathrm{sigmoid}(\delta s) > 0.5$ decides | - | - |
# | lines 10-11 | finetune | removed | the smaller network's $\hat W$ | $\mathcal{L}_0 + \lambda_w \lVert \hat W \rVert$ |

# %% tags=["parameters"]
profile = "smoke"  # "smoke" or "paper": this chapter does the same work under both
data_dir = ""  # CIFAR-10 folder (empty: $DNAL_DATA); not read by this chapter
device = "cpu"  # a tiny model and one batch: the CPU is enough
out_dir = ""  # results folder (empty: results/fig2_algorithm/<profile>)
fig_dir = ""  # figures folder (empty: figures/)
width_mult = 0.125  # VGG16 at 1/8 width: 13 gated layers, 528 gated channels
lam = 1e-4  # lambda_a of eq. 4 (Table I uses 1e-5 .. 5e-4)

# %% [markdown]
# ## Set-up

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.patches import FancyArrowPatch, Rectangle

import dnal_core as dn
from dnal_core import report
from dnal_core.io import write_json
from dnal_core.measure import gated_macs, hard_gated_arch
from dnal_core.report_tables import Col, reader_table

torch.manual_seed(0)
pd.set_option("display.max_colwidth", None)
run = report.paths("fig2_algorithm", profile, out_dir, fig_dir)

# %% [markdown]
# ## Fig. 2: the gated unit in each stage
#
# Each block is drawn as a stack of channels. In the architecture stage the SS layer scales
# channel $j$ by $\mathrm{sigmoid}(\delta s_j)$ (darker = closer to 1); the channels whose gate
# ends at 0 are then removed from the conv and BN layers, and the SS layer disappears.

# %% tags=["hide-input"]
GATES = [
    0.97,
    0.08,
    0.74,
    0.02,
    0.99,
    0.55,
]  # an illustrative mid-stage gate per channel
KEEP = [g > 0.5 for g in GATES]
STAGES = [
    (
        "1. Weights\nAlg. 1, lines 1-4",
        "off",
        "train W by SGD + weight decay\nSS off: output unchanged",
    ),
    (
        "2. Architecture\nlines 5-8",
        "soft",
        "W frozen; train s only\n"
        r"$\delta$: 1 $\to$ $10^4$; loss $\mathcal{L}_0 + \lambda_a \sum"
        r" \mathrm{sigmoid}(\delta s)$",
    ),
    (
        "3. Prune + finetune\nlines 9-11",
        "pruned",
        (
            "remove channels with sigmoid$(\\delta s) = 0$,\ndrop SS, finetune the"
            " smaller net"
        ),
    ),
]


def draw_block(ax, x, y, label, channels, colors=None, dashed=False):
    """`channels` stripes at (x, y); colors[i]: stripe i's grey level (1 = black)."""
    w, h = 1.0, 0.12
    for i in range(channels):
        face = "white" if colors is None else str(1 - 0.85 * colors[i])
        ax.add_patch(
            Rectangle(
                (x, y + i * h),
                w,
                h,
                facecolor=face,
                edgecolor="0.3",
                ls="--" if dashed else "-",
                lw=0.8,
            )
        )
    ax.text(
        x + w / 2, y + channels * h + 0.06, label, ha="center", va="bottom", fontsize=9
    )
    return x + w


def arrow(ax, x0, x1, y):
    ax.add_patch(
        FancyArrowPatch(
            (x0 + 0.05, y),
            (x1 - 0.05, y),
            arrowstyle="-|>",
            mutation_scale=10,
            color="0.3",
        )
    )


fig, ax = plt.subplots(figsize=(8.5, 4.4))
for row, (title, ss_mode, note) in enumerate(STAGES):
    y = 1.65 * (2 - row) + 0.15
    ax.text(0.0, y + 0.35, title, fontsize=10, fontweight="bold", va="center")
    n = sum(KEEP) if ss_mode == "pruned" else len(GATES)
    mid = y + n * 0.06
    x = draw_block(ax, 2.2, y, "Conv", n)
    arrow(ax, x, x + 0.5, mid)
    x = draw_block(ax, x + 0.5, y, "BN", n)
    if ss_mode == "off":
        arrow(ax, x, x + 0.5, mid)
        x = draw_block(ax, x + 0.5, y, "SS (off)", n, dashed=True)
    elif ss_mode == "soft":
        arrow(ax, x, x + 0.5, mid)
        x = draw_block(
            ax, x + 0.5, y, r"SS: $\times\,$sigmoid$(\delta s)$", n, colors=GATES
        )
    arrow(ax, x, x + 0.5, mid)
    x = draw_block(ax, x + 0.5, y, "ReLU", n)
    ax.text(7.9, mid, note, fontsize=9, va="center")
ax.set_xlim(0, 12.2)
ax.set_ylim(0, 4.7)
ax.axis("off")
ax.set_title(
    "Fig. 2 / Alg. 1: conv -> BN -> SS -> ReLU through the three stages", fontsize=11
)
report.save_figure(fig, "fig2_algorithm", run.fig)

# %% [markdown]
# ## Run: the stages on a tiny VGG16
#
# `dn.build` puts an SS gate after every conv's BN (the paper's `conv-bn-ss-relu` placement).
# At 1/8 width the network has 13 gated layers.

# %% tags=["nbval-check-output"]
model = dn.build("vgg16-cifar", width_mult=width_mult).to(device)
# (B, 3, 32, 32): one batch is enough here
x = torch.randn(16, *model.input_size, device=device)
y = torch.randint(0, 10, (16,), device=device)
full = dn.count(model)
names = [n for n, _ in dn.gates(model)]
print(f"{len(names)} gates, {sum(model.widths)} gated channels; widths {model.widths}")
print(f"MACs {full['macs']:,}  params {full['params']:,}")

# %% [markdown]
# ### Stage 1, weights (lines 1-4)
#
# The SS layers are off: they return their input, whatever $s$ holds, so this stage trains an
# ordinary network. Its optimizer gets every parameter except the gates' $s$.

# %% tags=["nbval-check-output"]
dn.set_mode(model, "off")
model.eval()  # fixed BN statistics, so the two forward passes below are comparable
with torch.no_grad():
    before = model(x)
    for s in dn.arch_parameters(model):
        s.normal_()  # scramble every architecture parameter...
    after = model(x)
    dn.reset_gates(model)
arch_ids = {id(p) for p in dn.arch_parameters(model)}
weights = [p for p in model.parameters() if id(p) not in arch_ids]
print("SS off ignores s:", torch.equal(before, after))
print(
    f"stage 1 trains {sum(p.numel() for p in weights):,} weights; the"
    f" {sum(p.numel() for p in dn.arch_parameters(model))} architecture parameters wait"
)

# %% [markdown]
# ### Stage 2, architecture (lines 5-8)
#
# `reset_gates` sets $s = 0$, so every gate starts at $\mathrm{sigmoid}(0) = 0.5$ (line 5); the
# weights are frozen and only $s$ trains. The sparsity term of eq. 4 is then
# $\lambda_a \cdot 0.5 \cdot 528$, and its gradient on each $s_j$ is $\lambda_a \delta / 4$
# (the true derivative of the [previous chapter](fig1_scaled_sigmoid.ipynb), not eq. 6's).

# %% tags=["nbval-check-output"]
dn.reset_gates(model)
dn.set_mode(model, "soft")
for p in weights:
    p.requires_grad_(False)
probs = dn.gate_probs(model)
sparsity = dn.sparsity_loss(model, lam)
loss = F.cross_entropy(model(x), y) + sparsity
loss.backward()
grads_on_weights = [p.grad for p in weights if p.grad is not None]
print(f"gates at start: min {probs.min():.2f}, max {probs.max():.2f}")
print(f"sparsity term {sparsity.item():.6f} = lam * 0.5 * {probs.numel()}")
print("gradients reach the weights:", len(grads_on_weights) > 0)
print(
    "gradients reach every s:",
    all(s.grad is not None for s in dn.arch_parameters(model)),
)

# %% [markdown]
# $\delta$ grows exponentially over the stage. `DeltaSchedule` gives $\delta$ for each
# (epoch, step); here a toy stage of 4 epochs of 3 steps, per iteration (default) and per epoch
# (the authors' code).

# %% tags=["nbval-check-output"]
toy = {
    unit: dn.DeltaSchedule(epochs=4, steps_per_epoch=3, unit=unit)
    for unit in ("iteration", "epoch")
}
schedule = pd.DataFrame([
    {
        "epoch": e,
        "step": t,
        **{f"delta ({u})": round(sch(e, t), 3) for u, sch in toy.items()},
    }
    for e in range(4)
    for t in range(3)
])
reader_table(schedule, {
    "epoch": Col("epoch", "int"),
    "step": Col("step", "int"),
    "delta (iteration)": Col("delta (iteration)", "{:.3f}"),
    "delta (epoch)": Col("delta (epoch)", "{:.1f}"),
})

# %% [markdown]
# The gradient of the sparsity term alone, at $s = 0$, on each $s_j$: $\lambda_a \delta / 4$ for
# every channel and every $\delta$. Early in the stage the cross-entropy decides which gates
# move up; later the sharp sigmoid's gradient vanishes away from $s = 0$ and the gates settle.

# %% tags=["nbval-check-output"]
rows = []
for delta in (1.0, 10.0, 1e4):
    dn.set_delta(model, delta)
    for s in dn.arch_parameters(model):
        s.grad = None
    dn.sparsity_loss(model, lam).backward()
    g = torch.cat([s.grad for s in dn.arch_parameters(model)])
    rows.append({
        "delta": delta,
        "grad min": g.min().item(),
        "grad max": g.max().item(),
        "lam*delta/4": lam * delta / 4,
    })
sparsity_grads = pd.DataFrame(rows)
reader_table(sparsity_grads, {
    "delta": Col("delta", "{:g}"),
    "grad min": Col("grad min", "{:.6f}"),
    "grad max": Col("grad max", "{:.6f}"),
    "lam*delta/4": Col("lam*delta/4", "{:.6f}"),
})

# %% [markdown]
# ### Line 9: which channels survive
#
# Training $s$ is the quickstart's business; here we give the gates a made-up outcome (a random
# $s$ per channel) at the stage's last $\delta = 10^4$. Every gate is then binary, so the soft
# gate and the hard gate (`set_mode(model, "hard")`: $\mathrm{sigmoid}(\delta s) > 0.5$, eq. 2)
# give the same network output, and the open channels per layer (`open_counts`) are the
# architecture that DNAL found.

# %% tags=["nbval-check-output"]
gen = torch.Generator().manual_seed(0)
with torch.no_grad():
    for s in dn.arch_parameters(model):
        # a little more closed than open
        s.copy_(torch.randn(s.shape, generator=gen) - 0.3)
dn.set_delta(model, 1e4)
with torch.no_grad():
    soft_out = model(x)
    dn.set_mode(model, "hard")
    hard_out = model(x)
kept = dn.open_counts(model)
found = hard_gated_arch(model)
print("open channels per layer:", kept)
print(f"soft == hard output at delta = 1e4: {torch.allclose(soft_out, hard_out)}")
print(
    f"MACs {full['macs']:,} -> {gated_macs(model):,}"
    f" ({full['macs'] / gated_macs(model):.2f}x fewer)"
)

# %% [markdown]
# ### Stage 3, prune and finetune (lines 9-11)
#
# The pruner removes the closed channels for real: the finetuned network is built at the widths
# above (`dn.build_from_arch`), not a masked copy of the big one, and its SS layers are off
# (line 10), so it computes like a plain network. It starts from the weights of the kept
# channels and is trained like stage 1.

# %% tags=["nbval-check-output"]
small = dn.build_from_arch(found)
dn.set_mode(small, "off")
small_size = dn.count(small)
summary = pd.DataFrame([
    {"network": "gated (before line 9)", "widths": str(model.widths), **full},
    {"network": "pruned (lines 10-11)", "widths": str(small.widths), **small_size},
])
reader_table(summary, {
    "network": "network",
    "widths": "widths",
    "macs": Col("MACs", "int"),
    "params": Col("params", "int"),
})

# %% [markdown]
# ## Results beside the paper
#
# Alg. 1 line by line, beside what the walk-through above measured.

# %% tags=["nbval-check-output"]
sched = toy["iteration"]
algorithm = pd.DataFrame(
    [
        (
            "1",
            "disable the SS layers",
            f"SS off ignores s: {torch.equal(before, after)}",
        ),
        (
            "3",
            "optimize W by SGD, weight decay",
            f"{sum(p.numel() for p in weights):,} weights train, s does not",
        ),
        (
            "5",
            "enable SS, s = 0, freeze W",
            f"every gate {probs.min():.2f}; gradients on W: {len(grads_on_weights)}",
        ),
        (
            "7",
            "optimize s on L0 + lam * sum sigmoid(delta s)",
            (
                f"sparsity term {sparsity.item():.4f}; its gradient lam*delta/4 at"
                " delta = 1, 10, 1e4"
            ),
        ),
        (
            "6-8",
            "delta from 1 to 1e4 (Sec. III-C)",
            f"DeltaSchedule {sched(0, 0):g} -> {sched(3, 2):g}",
        ),
        (
            "9",
            "prune channels with sigmoid(delta s) = 0",
            (
                f"{sum(kept)} of {sum(model.widths)} channels kept; soft == hard:"
                f" {torch.allclose(soft_out, hard_out)}"
            ),
        ),
        (
            "10-11",
            "disable SS, finetune the smaller net",
            f"{small_size['macs']:,} MACs, {small_size['params']:,} params",
        ),
    ],
    columns=["Alg. 1 line", "the paper", "here"],
)
reader_table(algorithm, {c: c for c in algorithm.columns})

# %% [markdown]
# ## Check

# %% tags=["nbval-check-output"]
assert torch.equal(before, after), "stage 1: an SS layer that is off must ignore s"
assert (
    float(probs.min()) == float(probs.max()) == 0.5
), "line 5: every gate starts at 0.5"
assert abs(sparsity.item() - lam * 0.5 * sum(model.widths)) < 1e-9, "eq. 4 at s = 0"
assert not grads_on_weights, "stage 2: weights are frozen"
assert torch.allclose(
    torch.tensor(sparsity_grads["grad max"]),
    torch.tensor(sparsity_grads["lam*delta/4"]),
    rtol=1e-5,
)
assert (
    schedule["delta (iteration)"].iloc[0] == 1.0
    and schedule["delta (iteration)"].iloc[-1] == 1e4
)
assert torch.allclose(
    soft_out, hard_out
), "at delta = 1e4 the soft gate is the hard gate"
assert small.widths == [
    max(1, k) for k in kept
], "the pruned widths are the open counts"
assert small_size["macs"] == gated_macs(model) < full["macs"]
write_json(
    run.out / "walkthrough.json",
    {
        "widths": model.widths,
        "kept": kept,
        "macs_full": full["macs"],
        "macs_pruned": small_size["macs"],
        "params_pruned": small_size["params"],
    },
)
print("all stage checks pass")

# %% [markdown]
# ## Notes
#
# - Placement: Fig. 2 puts SS after BN and before ReLU. The other two placements of the
#   ablation (Fig. 4) are `dn.build(..., placement="conv-ss-bn-relu" | "conv-bn-relu-ss")`.
# - The authors' code departs from Alg. 1 in what stage 2 trains (their Linear layers keep
#   training), in its threshold ($p > 0.9$), its sparsity term (without $\delta$) and its
#   per-epoch $\delta$; each is an option of the library, the paper is the default.
# - A layer whose gates all close keeps one channel here (`hard_gated_arch(min_channels=1)`),
#   so the network never loses its path from input to output.
#
# ## Exercises
#
# 1. Change `lam` with papermill (`-p lam 1e-3`) and predict, before running, whether more or
#    fewer of the 528 channels stay open and how the pruned MACs move.
# 2. Set the threshold to the code's 0.9 (`dn.set_threshold(model, 0.9)`) before line 9. At
#    $\delta = 10^4$, which gates can that change, and why so few?
# 3. Alg. 1 freezes BN in stage 2. Re-run line 7 with BN in train mode and compare the gates.
