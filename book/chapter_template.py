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
# 1 epoch for the search and the finetuning; three lambdas; one weight stage shared by every
# lambda). The plumbing lives in dnal_core.chapter (`Cifar` for a CIFAR-10 lambda sweep (`walk`),
# `ImageNet` for an ImageNet table, `ensure` for anything else): the chapter holds narrative,
# its parameters, one call per experiment, and the tables and figures the reader learns from. -->
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
import dnal_core as dn
from dnal_core.chapter import Cifar

chapter = Cifar("table1_vgg16_cifar10", table="I", model="vgg16-cifar",
                title="VGG16 on CIFAR-10", profile=profile, data_dir=data_dir,
                out_dir=out_dir, fig_dir=fig_dir, runs_dir=runs_dir, threads=threads,
                device=device)

# %% [markdown]
# ## Run
#
# What is particular to this table's network (where its gates sit, what pruning removes in
# it) and the range of the paper's rows; `walk` shows the steps every CIFAR-10 table shares,
# each after its sentence: our baseline counted as the paper counts it, the results (one
# weight stage, then each lambda's search and finetuning; one line says where they came
# from), our rows beside the paper's, its other methods.

# %% tags=["nbval-check-output"]
full, finals, ours, table = chapter.walk(train)  # made if none, or if train

# %% [markdown]
# ## Results

# %% tags=["hide-input"]
chapter.figure(ours)  # top-1 against MACs, and against MACs relative to each baseline

# %% [markdown]
# ## Check

# %%
# the paper's baseline digits in the authors' convention (dnal_core.measure.count)
print(chapter.check_counts(dn.build("vgg16-cifar"), macs=("authors", 0.005),
                           params=("authors", 0.005)))
assert len(chapter.lams) > 0, "a sweep needs lambdas"
print(chapter.check(ours, table))  # MACs order; at the paper profile, top-1 within 0.5

# %% [markdown]
# ## Notes
#
# - What differs from the paper and why (recipe choices, counting conventions, seeds, hardware).
