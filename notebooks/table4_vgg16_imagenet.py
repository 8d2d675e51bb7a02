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
profile = "smoke"  # "smoke": the machinery on a generated ImageFolder; paper runs need ImageNet (commands below)
data_dir = ""      # ImageNet folder (train/<wnid>/, val/<wnid>/) for the printed commands (empty: $IMAGENET)
device = "auto"    # unused here: this page trains nothing
out_dir = ""       # results folder (empty: results/table4_vgg16_imagenet/paper)
fig_dir = ""       # figures folder (empty: figures/)
threads = 1        # CPU threads (counts and the smoke run)
runs_dir = ""      # smoke run folders and the generated ImageFolder, not committed (empty: runs/<name>/smoke)
train = False      # True: rerun the smoke run even when its result exists (otherwise only when missing)

# %% [markdown]
# ## Set-up

# %%
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import dnal_core as dn
from dnal_core import report
from dnal_core.io import read_json, write_json
from dnal_core.paper import paper_baseline, paper_table
from dnal_core.recipes import get_recipe, override
from dnal_core.train import run_pipeline

NAME, TABLE, MODEL = "table4_vgg16_imagenet", "IV", "vgg16-imagenet"
run = report.paths(NAME, "paper", out_dir, fig_dir)
paper = paper_table(TABLE)
LAMS = paper.loc[paper["method"] == "DNAL", "lambda"].tolist()  # the paper's lambda_a for this table
torch.set_num_threads(threads)
pd.set_option("display.float_format", lambda x: f"{x:.4g}")
paper[["method", "lambda", "macs_m", "params_m", "top1", "top5", "search_cost_epochs"]]

# %% [markdown]
# Our baseline network at 224x224, counted two ways: `macs` (conv and linear multiply-accumulates,
# every parameter) and `authors` (the convention of the authors' counter, which prints some of
# the paper's baseline digits; `dnal_core.measure.count`).

# %% tags=["nbval-check-output"]
model = dn.build(MODEL)
base = paper_baseline(TABLE)
counts = pd.DataFrame([{"count": conv, "macs_m": c["macs"] / 1e6, "params_m": c["params"] / 1e6}
                       for conv in ("macs", "authors") for c in [dn.count(model, convention=conv)]]
                      + [{"count": "paper", "macs_m": base["macs_m"], "params_m": base["params_m"]}])
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
runs = f"runs/{NAME}/paper"
launch = "torchrun --nproc_per_node 8 $(which dnal)"
commands = [f"{launch} run {MODEL} --data {data} --profile paper --stages weights --out {runs}/weights"]
commands += [f"{launch} run {MODEL} --data {data} --profile paper --lambda {lam} "
             f"--weights-from {runs}/weights/weights.pt --out {runs}/lam{lam}" for lam in LAMS]
commands += [f"cp {runs}/lam{lam}/final.json results/{NAME}/paper/lam{lam}.json" for lam in LAMS]
print("\n".join(commands))

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
    tiny, rng = sruns / "imagefolder", np.random.default_rng(0)
    from PIL import Image
    for split, n in (("train", 8), ("val", 4)):  # the smoke recipe reads 8 and 4 images a class
        for c in range(10):
            folder = tiny / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")
    out = sruns / f"lam{report.lambda_label(SMOKE_LAM)}"
    final = run_pipeline(override(get_recipe(MODEL, "smoke"), {"lam": SMOKE_LAM}), tiny, out, device=device,
                         workers=0, resume=(out / "config.json").is_file())
    write_json(smoke.out / f"lam{report.lambda_label(SMOKE_LAM)}.json",
               {**report.provenance(NAME, "smoke", threads, {"data": "generated 10-class ImageFolder"}, device), **final})
    write_json(smoke.out / "arch" / f"lam{report.lambda_label(SMOKE_LAM)}.json", read_json(out / "arch.json"))
    have_smoke = smoke.out
smoke_finals = report.read_folder(have_smoke)
print(f"smoke result: {smoke_finals['device'].iloc[0]}, torch {smoke_finals['torch'].iloc[0]}, "
      f"{smoke_finals['date'].iloc[0]}; made by `{smoke_finals['command'].iloc[0]}`")
report.ours_table(smoke_finals)[["lambda", "macs_m", "params_m", "top1", "top5"]]

# %% [markdown]
# ## Results beside the paper

# %%
folder = run.out if out_dir else report.results_dir(NAME, "paper")  # committed paper runs, if any
have = report.has_results(folder)
if have:
    finals = report.read_folder(folder)
    ours = report.ours_table(finals)
    table = report.paper_vs_ours(TABLE, ours).merge(ours[["lambda", "drop1", "drop5"]], on="lambda", how="left")
    print(f"paper-profile results from {folder}: {finals['device'].iloc[0]}, torch {finals['torch'].iloc[0]}")
else:
    ours, table = None, paper[paper["method"].isin(["Baseline", "DNAL"])][["lambda", "macs_m", "params_m", "top1", "top5"]]
    print(f"No full (paper-profile) run of Table {TABLE} exists yet: results/{NAME}/paper/ is empty. "
          "The table below is the paper's alone.")
table

# %%
report.save_figure(report.plot_acc_vs_macs(TABLE, None if ours is None else ours[ours["lambda"] != "-"],
                                           title=f"Table {TABLE}: VGG16 on ImageNet"), NAME, run.fig)

# %% [markdown]
# ## Check

# %%
c = dn.count(model)
# the paper prints ImageNet MACs in G with two decimals: within half of its last digit (5M)
print(report.check_close(c["macs"] / 1e6, base["macs_m"], 5.0, "baseline MACs (M)"))
print(report.check_close(c["params"] / 1e6, base["params_m"], 0.01, "baseline params (M)"))
assert len(model.widths) == len(dn.gates(model)) > 0, "one width per SS gate"
# the smoke run: its baseline is this network at the smoke width with 10 classes (counted, like
# every final.json, at the model's 224x224 input, whatever crop it trained on); pruning saved MACs
small = dn.count(dn.build(MODEL, width_mult=get_recipe(MODEL, "smoke").width_mult, num_classes=10))
row = smoke_finals.iloc[0]
assert (row["baseline_macs"], row["baseline_params"]) == (small["macs"], small["params"]), (row, small)
assert row["macs"] <= row["baseline_macs"] and row["params"] <= row["baseline_params"]
print(f"smoke: {row['baseline_macs'] / 1e6:.2f}M -> {row['macs'] / 1e6:.2f}M MACs at lambda {report.lambda_label(row['lambda'])}")
if have:  # the reproduction itself: top-1 within half a point of the paper's
    for _, row in table.dropna(subset=["paper_top1", "ours_top1"]).iterrows():
        print(report.check_close(row["ours_top1"], row["paper_top1"], 0.5, f"top-1 at lambda {row['lambda']}"))

# %% [markdown]
# ## Notes
#
# - **No full run exists yet** unless the page above shows one. The smoke run trains a 1/16-width
#   network on random images: it checks the machinery, and its accuracies are chance.
# - VGG16 here is laid out as torchvision's `vgg16_bn` (README, ImageNet models); its count
#   matches the paper's baseline row.
