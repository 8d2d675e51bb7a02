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
# # Fig. 3: gate values as the scale factor grows
#
# **What it reproduces.** Fig. 3 of the paper (Section VI, "Effect of the scale factor"): the
# distribution of the scaled sigmoid activations $\mathrm{sigmoid}(\delta s)$ of every channel
# during the architecture stage, as $\delta$ grows from 1 to $10^4$, for (a) VGG16 and (b)
# MobileNetV2 on CIFAR-10. At $\delta = 1$ and $s = 0$ every gate is 0.5; the paper sees the
# values pushed to 0 and 1, every channel binarised at $\delta = 10^4$.
#
# The histograms are the `gate_hist` field of the architecture-stage lines of each run's
# `metrics.jsonl` (10 bins over [0, 1], one line per epoch, after the epoch's last step).
#
# **Which results.** The page renders the largest-scale committed results (`profile="auto"`).
# At the `cpu` profile, panel (a) is the search of the Table I chapter (a quarter-width VGG16
# trained 15 epochs on the full CIFAR-10 split, searched for 3 epochs): Fig. 3 needs no run of
# its own. MobileNetV2 has no `cpu` profile yet (an epoch of it costs 4-7 times VGG16's on the
# CPU), so panel (b) stays at the `smoke` profile (100 images a class, 2 weight epochs, 4 search
# epochs: the shape of the histograms, not their counts), and says so in its title.

# %% tags=["parameters"]
profile = "auto"  # "auto" (largest-scale committed results), "smoke", "cpu" or "paper"
data_dir = ""  # CIFAR-10 folder (empty: $DNAL_DATA)
device = "auto"  # "cpu", "cuda" or "auto"
out_dir = ""  # results folder (empty: results/fig3_gate_histograms/<profile>)
fig_dir = ""  # figures folder (empty: figures/)
runs_dir = ""  # checkpointed run folders, not committed (empty: runs/<name>/<profile>)
train = False  # True: train even when results exist (else: only when missing)
threads = 1  # CPU threads; 1 avoids a 10x slowdown when other jobs share the 2 cores
lam = 1e-4  # lambda_a of the searches

# %% [markdown]
# ## Set-up

# %% tags=["hide-input"]
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import dnal_core as dn
from dnal_core import chapter, experiments, report
from dnal_core.recipes import get_recipe, override
from dnal_core.report_tables import Col, reader_table
from dnal_core.train import run_pipeline

NAME = "fig3_gate_histograms"
MODELS = {"vgg16-cifar": "(a) VGG16", "mobilenetv2-cifar": "(b) MobileNetV2"}
# Smoke: four search epochs, so that four values of delta (about 9, 92, 962, 1e4) are
# seen.
SMOKE = {"arch.epochs": 4}
profile, run, runs, data = chapter.place(
    NAME, profile, out_dir, fig_dir, runs_dir, data_dir, threads
)
# each network's profile: MobileNetV2 has no cpu recipe, its panel stays at smoke
PROFILE_OF = {
    m: "smoke" if profile == "cpu" and m != "vgg16-cifar" else profile for m in MODELS
}

# %% [markdown]
# The gated channels of each network at the profile's width (the `channels` of the histograms):

# %% tags=["nbval-check-output"]
for model in MODELS:
    width = get_recipe(model, PROFILE_OF[model]).width_mult
    net = dn.build(model, width_mult=width)
    print(
        f"{model} at width x{width}: {len(net.widths)} SS layers, {sum(net.widths)}"
        " gated channels"
    )

# %% [markdown]
# ## Run
#
# For each network: the weight stage, then the architecture stage at $\lambda_a$ (no
# finetuning: the figure is about the search). The architecture-stage lines of `metrics.jsonl`
# are copied to `results/fig3_gate_histograms/<profile>/<model>.jsonl`. At the `cpu` profile
# VGG16's lines are those of the Table I chapter's search at its chosen $\lambda_a$ nearest a
# 2.5x MACs reduction (run that chapter first).

# %%
def make(profile, out):
    """The searches of ``profile``, their architecture-stage lines copied to ``out``."""
    if profile == "cpu":  # VGG16: the Table I chapter's search
        table1 = report.results_dir("table1_vgg16_cifar10", "cpu")
        lam_1 = experiments.pick_lambda(table1)
        experiments.fig3_lines(table1, out / "vgg16-cifar.jsonl", "vgg16-cifar", lam_1)
        return out
    if not data:
        raise ValueError("set data_dir or DNAL_DATA to the CIFAR-10 folder")
    extra = SMOKE if profile == "smoke" else {}
    for model in MODELS:
        recipe = override(get_recipe(model, profile), {**extra, "lam": lam})
        folder = (Path(runs_dir) if runs_dir else runs.parent / profile) / model
        run_pipeline(recipe, data, folder, device=device, stages=["weights", "arch"],
                     resume=(folder / "config.json").is_file())
        prov = report.provenance(NAME, profile, threads, extra or None, device)
        report.copy_metrics(folder, out / f"{model}.jsonl", stages=["arch"],
                            model=model, lam=lam, **prov)
    return out


# committed results (made if none, or if train), and where they came from
lines = chapter.ensure(NAME, profile, lambda: make(profile, run.out), train,
                       out_dir=out_dir).assign(profile=profile)
if profile == "cpu":  # panel (b) from the smoke results
    smoke_out = report.paths(NAME, "smoke").out
    smoke = chapter.ensure(NAME, "smoke", lambda: make("smoke", smoke_out))
    smoke = smoke.query("model == 'mobilenetv2-cifar'").assign(profile="smoke")
    lines = pd.concat([lines, smoke], ignore_index=True)

# %% [markdown]
# ## Results beside the paper
#
# Each panel: the share of channels whose $\mathrm{sigmoid}(\delta s)$ falls in each tenth of
# [0, 1], one bar group per value of $\delta$ reached at the end of a search epoch.

# %% tags=["hide-input"]
fig, axes = plt.subplots(
    len(MODELS), 1, figsize=(6.8, 3.4 * len(MODELS)), squeeze=False
)
edges = np.linspace(0, 1, 11)
for ax, (model, title) in zip(axes[:, 0], MODELS.items()):
    rows = lines[lines["model"] == model].sort_values("epoch")
    lam_m = rows["lam"].iloc[0]
    width = 0.1 / (len(rows) + 1)
    for i, (_, r) in enumerate(rows.iterrows()):
        share = 100 * np.asarray(r["gate_hist"]) / sum(r["gate_hist"])
        ax.bar(
            edges[:-1] + (i + 0.5) * width,
            share,
            width=width,
            align="edge",
            label=f"$\\delta$ = {r['delta']:.0f}",
        )
    ax.set_xticks(edges)
    ax.set_xlabel("sigmoid($\\delta s$)")
    ax.set_ylabel("channels (%)")
    ax.set_title(
        f"{title} on CIFAR-10 ({rows['profile'].iloc[0]}, $\\lambda_a$ ="
        f" {report.lambda_label(lam_m)})"
    )
    ax.legend(fontsize=8)
fig.tight_layout()
report.save_figure(fig, f"{NAME}_{profile}", run.fig)

# %% tags=["nbval-check-output"]
summary = lines.assign(
    channels=lines["gate_hist"].map(sum),
    at_0=lines["gate_hist"].map(lambda h: h[0]),
    at_1=lines["gate_hist"].map(lambda h: h[-1]),
)
summary["between"] = summary["channels"] - summary["at_0"] - summary["at_1"]
# (the gated channels, 1,056 for VGG16, are at_0 + between + at_1)
reader_table(summary, {
    "model": "model",
    "epoch": Col("epoch", "int"),
    "delta": Col("delta", "{:,.1f}"),
    "at_0": Col("gates at 0", "int"),
    "between": Col("between", "int"),
    "at_1": Col("gates at 1", "int"),
    "open_gates": Col("open gates", "int"),
    "test_top1": Col("top-1 (%)", "top1"),
})

# %% [markdown]
# ## Check
#
# Structural, in every profile: delta grows each epoch and ends at $10^4$, every channel is in
# a bin, and at $\delta = 10^4$ the gates are binary (the paper: "all the channels are
# binarized"): no value strictly inside the two outer bins, and the top bin holds the open gates.

# %%
for model, rows in summary.groupby("model"):
    rows = rows.sort_values("epoch")
    assert (
        rows["delta"].is_monotonic_increasing
        and abs(rows["delta"].iloc[-1] - 1e4) < 1e-6 * 1e4
    ), rows["delta"]
    last = rows.iloc[-1]
    assert (rows["channels"] == last["channels"]).all()
    assert (
        last["between"] == 0
    ), f"{model}: {last['between']} gates not binarised at delta 1e4"
    assert last["at_1"] == last["open_gates"], (last["at_1"], last["open_gates"])
    print(
        f"{model}: {last['at_1']} of {last['channels']} channels open at delta 1e4,"
        " none in between"
    )

# %% [markdown]
# ## Notes
#
# - **No paper-profile run exists yet** unless `results/fig3_gate_histograms/paper/` holds one.
#   The per-epoch snapshots fall where $\delta$ is at the end of each search epoch ($\delta$
#   grows every step, exponentially over the stage): at the `cpu` profile's three epochs about
#   21, 464 and $10^4$; at the smoke profile's four about 9, 92, 962 and $10^4$. The paper plots
#   chosen values of $\delta$ over its 20-epoch search.
# - At the smoke profile the networks are barely trained (two weight epochs on 1,000 images):
#   that panel is about the form of the histograms, not about accuracy.
# - Stage-2 BatchNorm normalises with batch statistics (the library's default; reference: Training and resume).
#
# ## Exercises
#
# 1. At the cpu profile the search lasts three epochs. At which delta does the middle bar group
#    sit, and why is it not 100?
# 2. Count the gates in the outer bins at the last epoch and compare with `open_gates`: why
#    must they agree?
