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
# # Quickstart: DNAL end to end on a CPU
#
# **What it reproduces.** Not a number of the paper, but its whole procedure (Alg. 1) in under a
# minute on a laptop CPU: a VGG16 at 1/8 width learns on scikit-learn's handwritten digits
# (shipped with the package, no download), then
#
# 1. its weights are trained with the SS gates off (`train_weights`, lines 1-4);
# 2. its gates are trained while $\delta$ grows from 1 to $10^4$, for a few values of
#    $\lambda_a$, and close (`train_architecture`, lines 5-8);
# 3. the closed channels are removed for real (`dnal_core.prune.prune`, line 9) and the smaller
#    network is finetuned (`finetune`, lines 10-11).
#
# The shape to expect is the paper's: a larger $\lambda_a$ gives fewer MACs, and after
# finetuning the smaller network is about as accurate as a dense one trained as long (Tables
# I-III). Every accuracy on this page is measured after re-estimating the network's BatchNorm
# statistics on the same 20 training batches (`evaluate(..., bn_batches=...)`, "precise BN"):
# without it a network whose statistics are stale (a gated or pruned network, a short run)
# scores far below what its weights can do, and the comparison would mean nothing.
# The digits are 8x8 grey images; they are upsampled to 32x32 and repeated to 3 channels so that
# the CIFAR VGG16 runs on them unchanged.

# %% tags=["parameters"]
profile = "smoke"  # "smoke": under a minute on 2 cores; "paper": longer, more lambdas
data_dir = ""  # not read: this chapter uses sklearn's digits
device = "cpu"  # "cuda" works too; the network is tiny
out_dir = ""  # results folder (empty: results/quickstart/<profile>)
fig_dir = ""  # figures folder (empty: figures/)
threads = 1  # CPU threads: one is fastest for a tiny network on a shared 2-core machine
seed = 0

# %% [markdown]
# ## Set-up
#
# The stage lengths of each profile. The recipes of the paper (Section V-B) are in
# `dnal_core.recipes`; these are the quickstart's own, for a dataset of 1,437 training images.

# %% tags=["hide-input"]
import json
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits

import dnal_core as dn
from dnal_core import report
from dnal_core.data import TensorLoader
from dnal_core.io import write_json
from dnal_core.prune import prune
from dnal_core.recipes import SearchConfig, StageConfig
from dnal_core.report_tables import Col, reader_table

# tqdm.auto without ipywidgets
warnings.filterwarnings("ignore", message="IProgress not found")
from dnal_core.train import evaluate, finetune  # noqa: E402
from dnal_core.train import train_architecture, train_weights  # noqa: E402

SETTINGS = {  # epochs per stage; lambdas of eq. 4; VGG16 width multiplier
    "smoke": dict(weights=4, arch=4, finetune=3, lams=[2e-4, 2e-3], width_mult=0.125),
    "paper": dict(
        weights=15,
        arch=8,
        finetune=10,
        lams=[1e-4, 5e-4, 2e-3, 5e-3, 1e-2],
        width_mult=0.25,
    ),
}[profile]
BATCH = 64
torch.manual_seed(seed)
if device == "cpu":
    torch.set_num_threads(threads)
pd.set_option("display.precision", 2)
run = report.paths("quickstart", profile, out_dir, fig_dir)
weights_cfg = StageConfig(epochs=SETTINGS["weights"], lr=0.05, batch_size=BATCH)
arch_cfg = StageConfig(epochs=SETTINGS["arch"], lr=0.1, batch_size=BATCH)
finetune_cfg = StageConfig(
    epochs=SETTINGS["finetune"],
    lr=0.05,
    milestones=(SETTINGS["finetune"] - 1,),
    batch_size=BATCH,
)
# The search as the paper does it (SearchConfig's defaults): BN frozen, normalising with
# batch statistics. Accuracies are measured with re-estimated statistics (the notes say
# why).
search = SearchConfig()

# %% [markdown]
# The data: 1,797 digits, 360 held out for testing. `TensorLoader` is the loader the CIFAR runs
# use (the whole set on the device as uint8, augmented per batch); the digits get a random crop
# of a 2-pixel padding and no flips (a flipped 2 is not a 2).

# %% tags=["nbval-check-output"]
digits = load_digits()
images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # (N, 8, 8), 0..255
# (N, 32, 32), each pixel 4x4
images = np.kron(images, np.ones((1, 4, 4), dtype=np.uint8))
images = np.repeat(images[..., None], 3, axis=-1)  # (N, 32, 32, 3) as CIFAR
order = np.random.default_rng(seed).permutation(len(images))
test_idx, train_idx = order[:360], order[360:]
mean, std = [images[train_idx].mean() / 255] * 3, [images[train_idx].std() / 255] * 3
x, y = torch.from_numpy(images), torch.from_numpy(digits.target)
train = TensorLoader(
    x[train_idx],
    y[train_idx],
    BATCH,
    train=True,
    mean=mean,
    std=std,
    device=device,
    seed=seed,
    pad=2,
    flip=False,
)
test = TensorLoader(
    x[test_idx], y[test_idx], 500, train=False, mean=mean, std=std, device=device
)
# the fixed batches every evaluation re-estimates BN on
calib = train.calibration_batches(20)
print(
    f"train {train.num_samples} images ({len(train)} batches of {BATCH}), test"
    f" {test.num_samples}; image {tuple(x.shape[1:])}"
)

# %% [markdown]
# ## Run
#
# ### Stage 1: weights (lines 1-4)
#
# The weight stage does not depend on $\lambda_a$: one trained network serves every $\lambda_a$.

# %%
records = []  # every epoch of every stage, as the trainer reports it
model = dn.build("vgg16-cifar", width_mult=SETTINGS["width_mult"]).to(device)
dense = dn.count(model)
history = train_weights(model, train, test, weights_cfg)
records += [{"lam": None, **r} for r in history]
stage1 = evaluate(model, test, bn_batches=calib)
weights_state = {k: v.clone() for k, v in model.state_dict().items()}
report.say(
    f"dense VGG16 x{SETTINGS['width_mult']}: {dense['macs']:,} MACs,"
    f" {dense['params']:,} params, top-1 {stage1['top1']:.1f}% after"
    f" {weights_cfg.epochs} epochs ({evaluate(model, test)['top1']:.1f}% with its own"
    " running statistics)"
)

# %% [markdown]
# ### Stage 2 and 3: architecture, pruning, finetuning, for each $\lambda_a$
#
# For each $\lambda_a$: start from the stage-1 weights, train the gates (weights frozen), remove
# the closed channels, finetune. `prune` checks that the pruned network computes what the
# hard-gated one computes (logits within $10^{-4}$) before it returns.

# %%
rows = []
for lam in SETTINGS["lams"]:
    model.load_state_dict(weights_state)
    history = train_architecture(model, train, test, arch_cfg, lam=lam, search=search)
    records += [{"lam": lam, **r} for r in history]
    dn.set_mode(model, "hard")  # what line 9 reads: sigmoid(delta s) > 0.5
    gated = evaluate(model, test, bn_batches=calib)
    result = prune(model)  # channels removed for real, no SS layers
    small = result.model
    pruned = evaluate(small, test, bn_batches=calib)
    history = finetune(small, train, test, finetune_cfg)
    records += [{"lam": lam, **r} for r in history]
    tuned = evaluate(small, test, bn_batches=calib)
    size = dn.count(small)
    rows.append({
        "lambda": lam,
        "open channels": sum(dn.open_counts(model)),
        "macs": size["macs"],
        "params": size["params"],
        "gated top1": gated["top1"],
        "pruned top1": pruned["top1"],
        "finetuned top1": tuned["top1"],
        "widths": small.widths,
    })
    report.say(
        f"lambda {lam:g}: {rows[-1]['open channels']} channels open, {size['macs']:,}"
        f" MACs; top-1 gated {gated['top1']:.1f}%, pruned {pruned['top1']:.1f}%,"
        f" finetuned {tuned['top1']:.1f}%"
    )
summary = pd.DataFrame(rows)

# %% [markdown]
# ### The like-for-like baseline
#
# Each pruned network has been trained for the weight stage plus the finetuning, and searched in
# between. The fair dense baseline is the same network trained from scratch for as many epochs
# as the three stages together (the stage-1 network above is shorter-trained: beating it says
# nothing).

# %%
total = weights_cfg.epochs + arch_cfg.epochs + finetune_cfg.epochs
control_cfg = StageConfig(
    epochs=total, lr=0.05, milestones=(total - 1,), batch_size=BATCH
)
torch.manual_seed(seed)
control = dn.build("vgg16-cifar", width_mult=SETTINGS["width_mult"]).to(device)
train_weights(control, train, test, control_cfg)
baseline = evaluate(control, test, bn_batches=calib)
report.say(
    f"dense VGG16, {total} epochs: top-1 {baseline['top1']:.1f}% (stage 1 alone,"
    f" {weights_cfg.epochs} epochs: {stage1['top1']:.1f}%)"
)

# %% [markdown]
# ## Results beside the paper
#
# ### Gates deciding as $\delta$ grows
#
# Each architecture epoch ends with a histogram of the gate values (the trainer's `gate_hist`,
# 10 bins over [0, 1]): they start at 0.5 and, as $\delta$ reaches $10^4$, sit at 0 or 1,
# the binarisation of the paper's Fig. 3.
#
# The open-channel curve (left) *rises*, which surprises at first. In the first epoch
# $\delta$ is small and the sparsity term's gradient, $\lambda_a \delta\,
# \sigma'(\delta s)$, is the same for every gate at $s = 0$: it pushes all of them below 0.5
# together (at $\delta \approx 9$ most gates sit between 0.3 and 0.5, "closed" by the 0.5
# threshold but far from decided). As $\delta$ grows, $\sigma'(\delta s)$ vanishes for every
# gate whose $|\delta s|$ is no longer small, so the sparsity pressure fades gate by gate while
# the cross-entropy keeps pulling the channels the network needs back above 0.5. The curve is
# the count of channels that won that tug of war; it is flat once the gates are binary.

# %% tags=["hide-input"]
arch = pd.DataFrame([r for r in records if r["stage"] == "arch"])
fig, (ax_open, ax_hist) = plt.subplots(2, 1, figsize=(6.8, 7.4))
for lam, part in arch.groupby("lam"):
    ax_open.plot(
        part["delta"],
        100 * part["open_gates"] / part["gate_channels"],
        "o-",
        label=rf"$\lambda_a$ = {lam:g}",
    )
ax_open.set_xscale("log")
ax_open.set_xlabel(r"$\delta$ at the end of the architecture epoch")
ax_open.set_ylabel(r"channels open (%): sigmoid$(\delta s) > 0.5$")
ax_open.set_title("Open channels as $\\delta$ grows")
ax_open.grid(alpha=0.3)
ax_open.legend(fontsize=8)
last = arch[arch["lam"] == SETTINGS["lams"][-1]]
hist = np.array(last["gate_hist"].tolist(), dtype=float)
hist = 100 * hist / hist.sum(axis=1, keepdims=True)
centers = np.linspace(0.05, 0.95, 10)
for k, (delta, h) in enumerate(zip(last["delta"], hist)):
    ax_hist.bar(
        centers + (k - len(hist) / 2) * 0.018,
        h,
        width=0.018,
        label=rf"$\delta$ = {delta:.3g}",
    )
ax_hist.set_xlabel(r"gate value sigmoid$(\delta s)$")
ax_hist.set_ylabel("channels (%)")
ax_hist.set_title(
    rf"Gate values per epoch, $\lambda_a$ = {SETTINGS['lams'][-1]:g} (cf. Fig. 3)"
)
ax_hist.legend(fontsize=8)
report.save_figure(fig, f"quickstart_gates_{profile}", run.fig)

# %% [markdown]
# ### Accuracy against MACs
#
# The dense network trained as long as the three stages, the stage-1 network, and for each
# $\lambda_a$ the pruned network before and after finetuning. Pruning never changes the accuracy
# of the gated network (same function); finetuning recovers what closing the channels cost, as
# in the paper's tables.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(
    dense["macs"] / 1e6,
    baseline["top1"],
    "k*",
    ms=12,
    label=f"dense, {total} epochs (same as the stages)",
)
ax.plot(
    dense["macs"] / 1e6,
    stage1["top1"],
    "kx",
    ms=8,
    label=f"dense after stage 1 ({weights_cfg.epochs} epochs)",
)
ax.plot(
    summary["macs"] / 1e6,
    summary["pruned top1"],
    "s",
    color="tab:orange",
    label="pruned, before finetuning",
)
ax.plot(
    summary["macs"] / 1e6,
    summary["finetuned top1"],
    "o-",
    color="tab:blue",
    label="pruned + finetuned",
)
for _, r in summary.iterrows():
    ax.annotate(
        rf"$\lambda_a$={r['lambda']:g}",
        (r["macs"] / 1e6, r["finetuned top1"]),
        fontsize=8,
        xytext=(4, 4),
        textcoords="offset points",
    )
ax.set_xlabel("MACs (millions)")
ax.set_ylabel("test top-1 (%)")
ax.set_title("Digits, VGG16: accuracy against MACs")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="best")
report.save_figure(fig, f"quickstart_acc_vs_macs_{profile}", run.fig)

# %% [markdown]
# The table: per $\lambda_a$, the size of the pruned network and its top-1 as gated (hard gates
# in the big network), pruned (the smaller network, same function) and finetuned; the dense
# network first. The paper's Table I shows the same columns for VGG16 on CIFAR-10.

# %%
table = pd.concat(
    [
        pd.DataFrame([{
            "lambda": f"dense, {total} epochs",
            "open channels": sum(model.widths),
            "macs": dense["macs"],
            "params": dense["params"],
            "gated top1": np.nan,
            "pruned top1": np.nan,
            "finetuned top1": baseline["top1"],
            "widths": model.widths,
        }]),
        summary.assign(**{"lambda": summary["lambda"].map("{:g}".format)}),
    ],
    ignore_index=True,
)
table["MACs reduction"] = (dense["macs"] / table["macs"]).map("{:.2f}x".format)
reader_table(table, {
    "lambda": "lambda",
    "open channels": Col("open channels", "int"),
    "macs": Col("MACs", "int"),
    "params": Col("params", "int"),
    "gated top1": Col("gated top-1 (%)", "top1"),
    "pruned top1": Col("pruned top-1 (%)", "top1"),
    "finetuned top1": Col("finetuned top-1 (%)", "top1"),
    "MACs reduction": Col("MACs reduction", "{}"),
})

# %% [markdown]
# ## Check

# %%
pairs = list(zip(summary["lambda"], summary["macs"]))
assert stage1["top1"] > 70, f"stage 1 did not learn the digits: {stage1['top1']:.1f}%"
assert (
    baseline["top1"] >= stage1["top1"] - 2
), "the dense network trained longer is not worse"
assert (summary["macs"] < dense["macs"]).all(), "every lambda closed some channels"
assert all(
    a[1] >= b[1] for a, b in zip(pairs, pairs[1:])
), f"a larger lambda must not cost more MACs: {pairs}"
# Pruning removes channels without changing the function: at most one test image may
# flip (a tie in the logits, which agree to 1e-4).
assert (
    (summary["gated top1"] - summary["pruned top1"]).abs()
    <= 100 / test.num_samples + 1e-9
).all()
# The finetuned smaller network is as accurate as the dense one, within a few points.
assert (summary["finetuned top1"] >= summary["pruned top1"]).all()
assert (summary["finetuned top1"] >= baseline["top1"] - 5).all(), summary[
    ["lambda", "finetuned top1"]
]
# At the end of the architecture stage every gate is binary (all in the outer histogram
# bins).
ends = arch.groupby("lam").tail(1)
assert all(
    h[0] + h[-1] == sum(h) for h in ends["gate_hist"]
), "gates not binarised at delta = 1e4"
# vary from run to run: kept out of the committed file
TIMINGS = ("seconds", "eval_seconds")
with open(run.out / "metrics.jsonl", "w") as f:  # every epoch of every stage
    f.writelines(
        json.dumps({k: v for k, v in r.items() if k not in TIMINGS}) + "\n"
        for r in records
    )
write_json(
    run.out / "summary.json",
    {
        "profile": profile,
        "settings": SETTINGS,
        "dense": dense,
        "baseline": baseline,
        "stage1": stage1,
        "baseline_epochs": total,
        "rows": rows,
        "torch": torch.__version__,
        "device": device,
    },
)
print(
    "checks pass:", len(summary), "lambdas, MACs", [f"{m:,}" for m in summary["macs"]]
)

# %% [markdown]
# ## Notes
#
# - BatchNorm in the search. The paper freezes the conv and BN layers. The library's default
#   (`SearchConfig(bn_stats="batch")`, used here) changes nothing in BN (weights and running
#   statistics stay as stage 1 left them) but normalises with each batch's statistics.
#   Normalising with the running statistics instead (`bn_stats="running"`) fails: scaling
#   channels by $\mathrm{sigmoid}(\delta s) < 1$ moves every later BN's input away from the
#   statistics it normalises with, and the search follows a broken network. The default search
#   is healthy, but the running statistics it leaves are the dense network's: evaluated with them,
#   a gated or pruned network scores near chance. That is a measurement artefact, not the
#   network: re-estimating the statistics on 20 training batches, with no weight update (what
#   every evaluation on this page does; `dnal_core/train/bn.py`), gives its real accuracy.
#   The authors' code keeps BN updating during the search (`bn_stats="update"`) instead.
# - A layer whose gates all close keeps its largest-$s$ channel (`prune(min_channels=1)`), so
#   the network keeps a path from input to output.
# - The dense baseline is trained for as many epochs as weights + architecture + finetuning;
#   against the shorter-trained stage-1 network the pruned ones would look better than they are.
# - `dnal run` does the same on CIFAR-10 with the paper's recipes, writing a run folder with
#   checkpoints; the table chapters read those runs.
#
# ## Exercises
#
# 1. Run the chapter with `-p profile paper` (longer stages, five lambdas) and predict the
#    shape of the accuracy-against-MACs curve before looking.
# 2. Evaluate the pruned networks without re-estimating BN (`evaluate(small, test)`): how far
#    do they fall, and why does the dense network fall less?
# 3. Replace `SearchConfig()` by `SearchConfig(bn_stats="running")` and watch the gated
#    accuracy during the search: what goes wrong, and where?
