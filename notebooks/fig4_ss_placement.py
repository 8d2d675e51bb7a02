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
# # Fig. 4: where the SS layer sits
#
# **What it reproduces.** Fig. 4 of the paper (Section V-D, "Effect of the order of SS layer"):
# test accuracy through the three stages for three placements of the SS layer,
# Conv-SS-BN-ReLU, Conv-BN-SS-ReLU (the default) and Conv-BN-ReLU-SS. The weight stage is the
# same network for all three (the SS layers are off), so one weight stage serves the three
# searches: the pipeline rebuilds the gated network in the other placement from the same
# weights file. The paper finds the two placements after BN close and Conv-SS-BN-ReLU much worse.
#
# With `profile="smoke"` (the default) this is VGG16 at quarter width, 100 images a class and
# two epochs a stage: it checks the machinery and shows the curves' form, not the paper's values.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (a minute on a CPU) or "paper" (Section V-B, a GPU)
data_dir = ""      # CIFAR-10 folder (empty: $DNAL_DATA)
device = "auto"    # "cpu", "cuda" or "auto"
out_dir = ""       # results folder (empty: results/fig4_ss_placement/<profile>)
fig_dir = ""       # figures folder (empty: figures/)
runs_dir = ""      # dnal run folders with checkpoints, not committed (empty: runs/fig4_ss_placement/<profile>)
train = False      # True: train even when results exist (otherwise only when they are missing)
threads = 1        # CPU threads; 1 avoids a 10x slowdown when other jobs share the 2 cores
lam = 1e-4         # lambda_a of the searches

# %% [markdown]
# ## Set-up

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import dnal_core as dn
from dnal_core import report
from dnal_core.models import PLACEMENTS
from dnal_core.recipes import get_recipe, override
from dnal_core.train import run_pipeline

NAME = "fig4_ss_placement"
MODELS = {"smoke": ["vgg16-cifar"], "paper": ["vgg16-cifar", "mobilenetv2-cifar"]}[profile]
STAGES = ["weights", "arch", "finetune"]
run = report.paths(NAME, profile, out_dir, fig_dir)
runs = Path(runs_dir) if runs_dir else report.repo_root() / "runs" / NAME / profile
data = data_dir or os.environ.get("DNAL_DATA", "")
torch.set_num_threads(threads)

# %% [markdown]
# Each placement orders the children of every gated unit differently (`ConvUnit`), on the same
# channels:

# %% tags=["nbval-check-output"]
for model in MODELS:
    for placement in PLACEMENTS:
        net = dn.build(model, placement=placement, width_mult=get_recipe(model, profile).width_mult)
        unit = next(m for m in net.modules() if hasattr(m, "ss"))
        print(f"{model} {placement}: unit {'-'.join(n for n, _ in unit.named_children())}, {sum(net.widths)} gated channels")

# %% [markdown]
# ## Run
#
# Per network: one weight stage, then for each placement the architecture and finetune stages
# from that weights file. Each run's per-epoch lines go to
# `results/fig4_ss_placement/<profile>/<model>_<placement>.jsonl` (the weight stage's lines once,
# as `<model>_weights.jsonl`).

# %%
have = run.out if out_dir else report.results_dir(NAME, profile)
if train or not report.has_results(have):
    if not data:
        raise ValueError("set data_dir or DNAL_DATA to the CIFAR-10 folder")
    for model in MODELS:
        recipe = override(get_recipe(model, profile), {"lam": lam})
        tag = dict(model=model, lam=lam, **report.provenance(NAME, profile, threads, device=device))
        weights = runs / model / "weights"
        if not (weights / "weights.pt").is_file():
            run_pipeline(recipe, data, weights, device=device, stages=["weights"])
        report.copy_metrics(weights, run.out / f"{model}_weights.jsonl", placement="shared", **tag)
        for placement in PLACEMENTS:
            folder = runs / model / placement
            run_pipeline(override(recipe, {"placement": placement}), data, folder, device=device,
                         stages=["arch", "finetune"], weights_from=weights / "weights.pt", resume=True)
            report.copy_metrics(folder, run.out / f"{model}_{placement}.jsonl", placement=placement, **tag)
    have = run.out
lines = report.read_folder(have)
print(f"{len(lines)} epochs from {have.name}/: {lines['date'].iloc[0]}, made by `{lines['command'].iloc[0]}`")

# %% [markdown]
# ## Results beside the paper
#
# Test top-1 against the epoch counted over the three stages (the paper's x axis); the weight
# stage is drawn once, since it is the same for every placement.

# %%
def curve(rows):
    rows = rows.assign(order=rows["stage"].map(STAGES.index)).sort_values(["order", "epoch"])
    return rows.reset_index(drop=True)


fig, axes = plt.subplots(1, len(MODELS), figsize=(6 * len(MODELS), 3.8), squeeze=False)
for ax, model in zip(axes[0], MODELS):
    shared = curve(lines[(lines["model"] == model) & (lines["placement"] == "shared")])
    ax.plot(range(1, len(shared) + 1), shared["test_top1"], "k.-", label="weights (shared)")
    for placement in PLACEMENTS:
        rows = curve(lines[(lines["model"] == model) & (lines["placement"] == placement)])
        x = range(len(shared), len(shared) + len(rows) + 1)
        ax.plot(x, [shared["test_top1"].iloc[-1]] + rows["test_top1"].tolist(), "o-", label=placement)
    ax.axvline(len(shared) + 0.5, color="0.7", lw=0.8)
    ax.set_xlabel("epoch (weights, then architecture, then finetune)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{model} ({profile}, $\\lambda_a$ = {report.lambda_label(lam)})")
    ax.legend(fontsize=8)
report.save_figure(fig, f"{NAME}_{profile}", run.fig)

# %%
# Per placement: the searched network (gates open after the search, MACs of the pruned network,
# top-1 at the end of the search) and the top-1 after finetuning it.
ends = lines[lines["stage"] != "weights"].groupby(["model", "placement", "stage"]).tail(1)
searched_end = ends[ends["stage"] == "arch"][["model", "placement", "open_gates", "gate_channels", "macs", "test_top1"]]
tuned_end = ends[ends["stage"] == "finetune"][["model", "placement", "test_top1"]]
searched_end.merge(tuned_end, on=["model", "placement"], suffixes=("_search", "_finetuned"))

# %% [markdown]
# ## Check
#
# Structural: every placement was searched from the one weight stage, on the same channels, and
# each search kept at most every channel.

# %%
searched = lines[lines["stage"] == "arch"]
for model in MODELS:
    rows = searched[searched["model"] == model]
    assert sorted(rows["placement"].unique()) == sorted(PLACEMENTS), rows["placement"].unique()
    assert rows["gate_channels"].nunique() == 1, "the three placements gate different channels"
    assert (rows["open_gates"] <= rows["gate_channels"]).all()
    print(f"{model}: {len(PLACEMENTS)} placements from one weight stage, {rows['gate_channels'].iloc[0]} gated channels each")

# %% [markdown]
# ## Notes
#
# - **No paper-profile run exists yet** unless `results/fig4_ss_placement/paper/` holds one; the
#   smoke curves are a few short epochs of a quarter-width VGG16 and do not show the paper's gaps
#   (in the smoke run the searched networks score 10%, chance, before finetuning).
# - Stage-2 BatchNorm normalises with batch statistics (the library's default; README, Training),
#   for every placement alike.
