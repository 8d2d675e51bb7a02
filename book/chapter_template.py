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
# # Table I: VGG16 on CIFAR-10
#
# <!-- TEMPLATE for a table chapter. Copy to notebooks/table<N>_<model>_<dataset>.py, replace
# the names below, keep the sections and their order (tests/test_book.py checks them), then
# `make notebooks`, and add `- file: chapters/<name>` to book/_toc.yml ("Reproducing the paper").
# Budget: the smoke profile runs in make book AND again under nbval in make test: keep it under
# about 30 s of compute on 2 CPU cores (the smoke recipe: width-scaled model, 100 images a class,
# 2 epochs a stage; two lambdas; one weight stage shared by every lambda). -->
#
# **What it reproduces.** Table I of the paper (Section V-B): VGG16 on CIFAR-10, the dense
# baseline and DNAL at $\lambda_a \in \{10^{-5}, \dots, 5 \cdot 10^{-4}\}$: MACs (the paper's
# "FLOPs"), parameters and top-1 after finetuning, beside the other methods the paper lists.
#
# With `profile="smoke"` (the default, what this page shows unless it says otherwise) the runs
# check the machinery on a quarter-width network and 1,000 images, and their accuracies mean
# nothing; with `profile="paper"` they follow Section V-B (GPU hours). Results of paper runs made
# elsewhere are committed in `results/table1_vgg16_cifar10/paper/` and shown when present.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (minutes on a CPU) or "paper" (Section V-B, a GPU)
data_dir = ""      # CIFAR-10 folder (empty: $DNAL_DATA)
device = "auto"    # "cpu", "cuda" or "auto"
out_dir = ""       # results folder (empty: results/table1_vgg16_cifar10/<profile>)
fig_dir = ""       # figures folder (empty: figures/)
runs_dir = ""      # dnal run folders with checkpoints, not committed (empty: runs/table1_vgg16_cifar10/<profile>)
train = True       # False: the results already in out_dir if any (e.g. paper runs made on a GPU)
threads = 1        # CPU threads; 1 avoids a 10x slowdown when other jobs share the 2 cores

# %% [markdown]
# ## Set-up

# %%
import os
from pathlib import Path

import pandas as pd
import torch

import dnal_core as dn
from dnal_core import experiments, report
from dnal_core.chapter import ensure
from dnal_core.paper import paper_baseline
from dnal_core.recipes import get_recipe

NAME, TABLE, MODEL = "table1_vgg16_cifar10", "I", "vgg16-cifar"
LAMS = {"smoke": [1e-4, 5e-4], "paper": [1e-5, 5e-5, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4]}[profile]  # Table I
run = report.paths(NAME, profile, out_dir, fig_dir)
runs = Path(runs_dir) if runs_dir else report.repo_root() / "runs" / NAME / profile
data = data_dir or os.environ.get("DNAL_DATA", "")
recipe = get_recipe(MODEL, profile)
torch.set_num_threads(threads)
pd.set_option("display.precision", 2)

# %% [markdown]
# The baseline network as the paper counts it (full width, whatever the profile): the MACs and
# parameters of Table I's first row.

# %% tags=["nbval-check-output"]
full = dn.count(dn.build(MODEL))
print(f"{MODEL}: {full['macs'] / 1e6:.2f}M MACs, {full['params'] / 1e6:.2f}M params")

# %% [markdown]
# ## Run
#
# One weight stage, then the architecture and finetune stages for each $\lambda_a$ from its
# weights (`--weights-from`: the weight stage does not depend on $\lambda_a$). Each run folder
# holds checkpoints; only its `final.json` (with the date and the call that made it) and its
# `arch.json` (the learned widths, into `arch/`) are copied into the results folder.

# %%
def make():  # what the results of this profile are made by, when none are committed
    if not data:
        raise ValueError("set data_dir or DNAL_DATA to the CIFAR-10 folder")
    prov = report.provenance(NAME, profile, threads, None, device)
    return experiments.run_lambdas(recipe, data, LAMS, runs, run.out, prov, device)


# the committed results (one line says where they came from), or made when none are or train
finals = ensure(NAME, profile, make, train)

# %% [markdown]
# ## Results beside the paper

# %%
ours, table = report.beside_paper(TABLE, finals)  # our baseline first, drop1/drop5 in points
table

# %%
fig = report.plot_tables(TABLE, ours, "Table I: VGG16 on CIFAR-10", profile)  # MACs, and MACs relative to the baseline
report.save_figure(fig, f"{NAME}_{profile}", run.fig)

# %% [markdown]
# ## Check

# %%
paper_base = paper_baseline(TABLE)
# The paper's digits exactly, in the authors' counting convention (dnal_core.measure.count).
authors = dn.count(dn.build(MODEL), convention="authors")
assert round(authors["macs"] / 1e6, 2) == paper_base["macs_m"], (authors, paper_base)
print(report.check_close(full["macs"] / 1e6, paper_base["macs_m"], 0.01, "baseline MACs (M)"))
print(report.check_close(full["params"] / 1e6, paper_base["params_m"], 0.01, "baseline params (M)"))
report.check_macs_order(ours)  # a larger lambda costs no more MACs, no pruned row more than the baseline
if profile == "paper":  # the reproduction itself: top-1 within half a point of the paper's
    print("\n".join(report.check_top1(table, 0.5)))

# %% [markdown]
# ## Notes
#
# - What differs from the paper and why (recipe choices, counting conventions, seeds, hardware).
