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
# # Table VII: ProxylessNAS supernet on ImageNet
#
# **What it reproduces.** Table VII of the paper (Section V-C): ProxylessNAS supernet on ImageNet, the baseline and
# DNAL at the paper's $\lambda_a$ (MACs, the paper's "FLOPs"; parameters; top-1 and top-5 on the
# ImageNet-1K validation set), beside the other methods it lists.
#
# ImageNet is not on this machine and a paper run takes days of GPU time, so this page shows
# the paper's table, our count of the baseline network at 224x224 beside the paper's baseline
# row, and the commands that reproduce the table on a machine with ImageNet and GPUs. It renders
# the results of such a run from `results/table7_proxyless_imagenet/paper/` when they are committed there, and
# otherwise says so. The only training here is a smoke run of the whole pipeline on a generated
# ImageFolder of random images (seconds to a minute on a CPU; its accuracies mean nothing).

# %% tags=["parameters"]
profile = "smoke"  # "smoke": the machinery on a generated ImageFolder (paper: ImageNet)
data_dir = ""      # ImageNet, train/<wnid>/ and val/<wnid>/ (empty: $IMAGENET)
device = "auto"    # unused here: this page trains nothing
out_dir = ""       # results folder (empty: results/table7_proxyless_imagenet/paper)
fig_dir = ""       # figures folder (empty: figures/)
threads = 1        # CPU threads (counts and the smoke run)
runs_dir = ""      # smoke runs, the generated ImageFolder (empty: runs/<name>/smoke)
train = False      # True: rerun the smoke run even when its result exists

# %% [markdown]
# ## Set-up

# %%
import math

import dnal_core as dn
from dnal_core import report
from dnal_core.chapter import ImageNet

chapter = ImageNet("table7_proxyless_imagenet", table="VII",
                   model="proxyless-supernet",
                   title="ProxylessNAS supernet on ImageNet",
                   out_dir=out_dir, fig_dir=fig_dir, threads=threads)
chapter.paper_rows()  # the paper's table

# %% [markdown]
# Our baseline network at 224x224, counted two ways: `macs` (conv and linear multiply-accumulates,
# every parameter) and `authors` (the convention of the authors' counter, which prints some of
# the paper's baseline digits; `dnal_core.measure.count`).

# %% tags=["nbval-check-output"]
model = chapter.baseline()

# %% [markdown]
# ## Run
#
# The paper runs need ImageNet and GPUs. With ImageNet (`train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`) and GPUs,
# one weight stage, then the architecture and finetune stages for each $\lambda_a$ from those
# weights (the command is the same on one GPU without `torchrun`; `--resume` continues a killed
# run from its last epoch):

# %%
chapter.commands(data_dir)  # shell lines that fit the page

# %% [markdown]
# **Smoke run.** Here, without ImageNet: the smoke recipe (width 1/16, 64x64 crops, 8 training
# and 4 validation images a class, 1 epoch a stage) at the paper's first $\lambda_a$, on an
# ImageFolder of random JPEGs written for the purpose (10 classes, seeded). It checks that the
# three stages, the pruning and the counting run on this network; it says nothing about
# accuracy. Its `final.json` and `arch.json` are committed in `results/<name>/smoke/`.

# %%
smoke = chapter.smoke(train, runs_dir, device)  # committed; made if none, or if train
chapter.rows(smoke)

# %% [markdown]
# ## Results beside the paper

# %% tags=["nbval-check-output"]
ours, table = chapter.paper_run()  # committed paper runs, if any
chapter.beside(table)

# %% tags=["hide-input"]
# Table VII gives parameters and top-1, no MACs: parameters on the x axis
chapter.figure(ours, x="params_m")

# %% [markdown]
# ## Check

# %%
c, base = dn.count(model), chapter.baseline_row
print(
    report.check_close(c["params"] / 1e6, base["params_m"], 0.05, "supernet params (M)")
)
assert math.isnan(base["macs_m"]), "Table VII gives no MACs"
assert len(model.widths) == len(dn.gates(model)) > 0, "one width per SS gate"
# the smoke run's baseline and its pruning; a paper run's top-1 (within 0.5)
print(chapter.check(smoke, ours, table))

# %% [markdown]
# ## Notes
#
# - **No full run exists yet** unless the page above shows one. The smoke run trains a 1/16-width
#   network on random images: it checks the machinery, and its accuracies are chance.
# - Table VII gives parameters only (16.0M for the ProxylessNAS supernet of eq. 5, whose
#   candidate paths DNAL prunes); its MACs column is empty, so the plot has no points.
#
# ## Exercises
#
# 1. Count the candidates of one supernet layer and the gates each has. When does a whole
#    candidate disappear, and can a layer keep none?
# 2. Build the supernet with `eq5_relu=True` (the chapter *The method in detail*) and compare
#    its parameter count with the default: why is it the same?
