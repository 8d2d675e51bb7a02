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
# # Table IV: VGG16 on ImageNet
#
# **What it reproduces.** Table IV of the paper (Section V-C): VGG16 on ImageNet, the baseline and
# DNAL at the paper's $\lambda_a$ (MACs, the paper's "FLOPs"; parameters; top-1 and top-5 on the
# ImageNet-1K validation set), beside the other methods it lists.
#
# ImageNet is not on this machine and a paper run takes days of GPU time, so this page shows
# the paper's table, our count of the baseline network at 224x224 beside the paper's baseline
# row, and the commands that reproduce the table on a machine with ImageNet and GPUs. It renders
# the results of such a run from `results/table4_vgg16_imagenet/paper/` when they are committed there, and
# otherwise says so. The only training here is a smoke run of the whole pipeline on a generated
# ImageFolder of random images (seconds to a minute on a CPU; its accuracies mean nothing).

# %% tags=["parameters"]
profile = "smoke"  # "smoke": the machinery on a generated ImageFolder (paper: ImageNet)
data_dir = ""      # ImageNet, train/<wnid>/ and val/<wnid>/ (empty: $IMAGENET)
device = "auto"    # unused here: this page trains nothing
out_dir = ""       # results folder (empty: results/table4_vgg16_imagenet/paper)
fig_dir = ""       # figures folder (empty: figures/)
threads = 1        # CPU threads (counts and the smoke run)
runs_dir = ""      # smoke runs, the generated ImageFolder (empty: runs/<name>/smoke)
train = False      # True: rerun the smoke run even when its result exists

# %% [markdown]
# ## Set-up

# %% tags=["hide-input"]
import os
from pathlib import Path

import pandas as pd
import torch

import dnal_core as dn
from dnal_core import experiments, report
from dnal_core.paper import paper_baseline, paper_table
from dnal_core.recipes import get_recipe
from dnal_core.report_tables import COLUMNS, reader_table

NAME, TABLE, MODEL = "table4_vgg16_imagenet", "IV", "vgg16-imagenet"
run = report.paths(NAME, "paper", out_dir, fig_dir)
paper = paper_table(TABLE)
LAMS = paper.loc[
    paper["method"] == "DNAL", "lambda"
].tolist()  # the paper's lambda_a for this table
torch.set_num_threads(threads)
pd.set_option("display.float_format", lambda x: f"{x:.4g}")
reader_table(paper, [
    "method", "lambda", "macs_m", "params_m", "top1", "top5", "search_cost_epochs"
])

# %% [markdown]
# Our baseline network at 224x224, counted two ways: `macs` (conv and linear multiply-accumulates,
# every parameter) and `authors` (the convention of the authors' counter, which prints some of
# the paper's baseline digits; `dnal_core.measure.count`).

# %% tags=["nbval-check-output"]
model = dn.build(MODEL)
base = paper_baseline(TABLE)
counts = report.baseline_counts(model, TABLE)
print(f"{MODEL} at {tuple(model.input_size)}")
print(counts.to_string(index=False, float_format=lambda x: f"{x:.2f}"))

# %% [markdown]
# ## Run
#
# The paper runs need ImageNet and GPUs. With ImageNet (`train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`) and GPUs,
# one weight stage, then the architecture and finetune stages for each $\lambda_a$ from those
# weights (the command is the same on one GPU without `torchrun`; `--resume` continues a killed
# run from its last epoch):

# %%
data = data_dir or os.environ.get("IMAGENET", "$IMAGENET")
cmds = report.paper_commands(NAME, MODEL, LAMS, data)
print("\n\n".join(report.shell(c) for c in cmds))  # shell lines that fit the page

# %% [markdown]
# **Smoke run.** Here, without ImageNet: the smoke recipe (width 1/16, 64x64 crops, 8 training
# and 4 validation images a class, 1 epoch a stage) at the paper's first $\lambda_a$, on an
# ImageFolder of random JPEGs written for the purpose (10 classes, seeded). It checks that the
# three stages, the pruning and the counting run on this network; it says nothing about
# accuracy. Its `final.json` and `arch.json` are committed in `results/<name>/smoke/`.

# %%
smoke = report.paths(NAME, "smoke", "", fig_dir)
have_smoke = report.results_dir(NAME, "smoke")
SMOKE_LAM = float(LAMS[0])
if train or have_smoke is None:
    sruns = Path(runs_dir) if runs_dir else report.repo_root() / "runs" / NAME / "smoke"
    # what the smoke recipe reads
    tiny = report.random_imagefolder(
        sruns / "imagefolder", classes=10, per_class=(8, 4)
    )
    prov = report.provenance(
        NAME, "smoke", threads, {"data": "generated 10-class ImageFolder"}, device
    )
    have_smoke = experiments.run_lambdas(
        get_recipe(MODEL, "smoke"),
        tiny,
        [SMOKE_LAM],
        sruns,
        smoke.out,
        prov,
        device,
        shared_weights=False,
        workers=0,
    )
smoke_finals = report.read_folder(have_smoke)
report.say(f"smoke result: {report.run_line(smoke_finals)}")
reader_table(
    report.ours_table(smoke_finals), ["lambda", "macs_m", "params_m", "top1", "top5"]
)

# %% [markdown]
# ## Results beside the paper

# %% tags=["nbval-check-output"]
# committed paper runs, if any
folder = (run.out if out_dir else report.results_dir(NAME, "paper"))
ours, table, message = report.paper_run_table(NAME, TABLE, folder)
report.say(message)
reader_table(table, [c for c in table.columns if c in COLUMNS])

# %% tags=["hide-input"]
report.save_figure(
    report.plot_acc_vs_macs(
        TABLE,
        None if ours is None else ours[ours["lambda"] != "-"],
        title=f"Table {TABLE}: VGG16 on ImageNet",
    ),
    NAME,
    run.fig,
)

# %% [markdown]
# ## Check

# %%
c = dn.count(model)
# the paper prints ImageNet MACs in G with two decimals: within half of its last digit
# (5M)
print(report.check_close(c["macs"] / 1e6, base["macs_m"], 5.0, "baseline MACs (M)"))
print(
    report.check_close(c["params"] / 1e6, base["params_m"], 0.01, "baseline params (M)")
)
assert len(model.widths) == len(dn.gates(model)) > 0, "one width per SS gate"
# the smoke run: its baseline is this network at the smoke width with 10 classes
# (counted, like every final.json, at the model's 224x224 input, whatever crop it
# trained on); pruning saved MACs
print(report.check_smoke_baseline(MODEL, smoke_finals))
if (
    ours is not None
):  # the reproduction itself: top-1 within half a point of the paper's
    print("\n".join(report.check_top1(table, 0.5)))

# %% [markdown]
# ## Notes
#
# - **No full run exists yet** unless the page above shows one. The smoke run trains a 1/16-width
#   network on random images: it checks the machinery, and its accuracies are chance.
# - VGG16 here is laid out as torchvision's `vgg16_bn` (reference: Models and counting); its count
#   matches the paper's baseline row.
#
# ## Exercises
#
# 1. From the counts above, how many MACs does one channel of VGG16's first conv cost at
#    224x224 compared with one of its last conv? What does that say about where eq. 4
#    (which prices every channel alike) will prune?
# 2. Print the commands for two GPUs instead of eight (`report.paper_commands(..., gpus=2)`):
#    what changes in the global batch?
