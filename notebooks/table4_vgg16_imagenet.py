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
#
# VGG16 here is laid out as torchvision's `vgg16_bn` (reference: Models and counting), a gate
# after each of its 13 convolutions' BatchNorm; conv and linear MACs and every parameter match
# the paper's baseline row, so the checks below use our own count.

# %%
from dnal_core import gates
from dnal_core.chapter import ImageNet

chapter = ImageNet("table4_vgg16_imagenet", table="IV",
                   model="vgg16-imagenet", title="VGG16 on ImageNet",
                   out_dir=out_dir, fig_dir=fig_dir, threads=threads)

# %% [markdown]
# ## Run
#
# The paper's table, our baseline counted beside it, the commands of a paper run and the smoke
# run, each after a sentence that says what it is (`ImageNet.walk`, the steps the four ImageNet
# chapters share):

# %% tags=["nbval-check-output"]
model, smoke, ours, table = chapter.walk(data_dir, train, runs_dir, device)

# %% [markdown]
# ## Results
#
# Top-1 against MACs: the paper's methods on Table IV, and our pruned rows when a paper run is
# committed.

# %% tags=["hide-input"]
chapter.figure(ours)

# %% [markdown]
# ## Check

# %%
# the paper prints ImageNet MACs in G with two decimals: within half of a digit (5M)
print(chapter.check_counts(model, macs=("macs", 5.0), params=("macs", 0.01)))
assert len(model.widths) == len(gates(model)) > 0, "one width per SS gate"
# the smoke run's baseline and its pruning; a paper run's top-1 (within 0.5)
print(chapter.check(smoke, ours, table))

# %% [markdown]
# ## Notes
#
# - **No full run exists yet** unless the page above shows one. The smoke run trains a 1/16-width
#   network on random images: it checks the machinery, and its accuracies are chance.
#
# ## Exercises
#
# 1. From the counts above, how many MACs does one channel of VGG16's first conv cost at
#    224x224 compared with one of its last conv? What does that say about where eq. 4
#    (which prices every channel alike) will prune?
# 2. Print the commands for two GPUs instead of eight (`chapter.commands(gpus=2)`):
#    what changes in the global batch?
