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

# %%
import dnal_core as dn
from dnal_core import report
from dnal_core.chapter import ImageNet

chapter = ImageNet("table4_vgg16_imagenet", table="IV",
                   model="vgg16-imagenet", title="VGG16 on ImageNet",
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
chapter.figure(ours)

# %% [markdown]
# ## Check

# %%
c, base = dn.count(model), chapter.baseline_row
# the paper prints ImageNet MACs in G with two decimals: within half of its last digit
# (5M)
print(report.check_close(c["macs"] / 1e6, base["macs_m"], 5.0, "baseline MACs (M)"))
print(
    report.check_close(c["params"] / 1e6, base["params_m"], 0.01, "baseline params (M)")
)
assert len(model.widths) == len(dn.gates(model)) > 0, "one width per SS gate"
# the smoke run's baseline and its pruning; a paper run's top-1 (within 0.5)
print(chapter.check(smoke, ours, table))

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
# 2. Print the commands for two GPUs instead of eight (`chapter.commands(gpus=2)`):
#    what changes in the global batch?
