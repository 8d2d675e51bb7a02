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
# # Prune your own network: DNAL on a torchvision ResNet18
#
# **What it reproduces.** Nothing of the paper: it shows the paper's method on a network `dnal_core` does not know: torchvision's
# ResNet18, adapted to CIFAR-10 the usual way (a 3x3 stem of stride 1, no max-pool).
# `dnal_core.attach_gates` traces it with Torch-Pruning's DependencyGraph and puts one SS gate
# on each group of coupled channels, after the BatchNorms of the group (a residual stream's
# channels across all the blocks that add into it share one gate); the stage functions of
# Alg. 1 then run unchanged (weights, architecture, derive, finetune), and the pruner removes
# the closed channels for real, checking that the pruned network computes what the hard-gated
# one computes. We report accuracy against MACs for a few $\lambda_a$, the width each group
# learned, and the latency of the dense and pruned networks.
#
# **Scale: a smoke-scale machinery check.** `profile="smoke"` (the only profile of this
# chapter) uses the network at a quarter of its width (16-32-64-128 channels), 100 training
# and 20 test images a class, and the book's smoke recipe (2 epochs a stage, batch 64): one
# weight stage and three searches took 82 s of CPU time on one thread (3.4 minutes of wall time
# on the shared 2-core machine). Its accuracies say that the pieces fit together, not what DNAL
# does to a trained ResNet18.

# %% tags=["parameters"]
profile = "smoke"  # smoke only: quarter width, a CIFAR-10 subset, 2 epochs a stage
data_dir = ""      # CIFAR-10 folder (empty: $DNAL_DATA)
device = "cpu"     # the smoke run is sized for one CPU thread
out_dir = ""       # results folder (empty: results/prune_your_own/<profile>)
fig_dir = ""       # figures folder (empty: figures/)
train = False      # True: train even when results exist (else: only when missing)
threads = 1        # CPU threads: 1 avoids a 10x slowdown on a shared 2-core machine
lams = [3e-4, 1e-3, 3e-3]  # lambda_a of the searches, all from one weight stage

# %% [markdown]
# ## Set-up
#
# The network is plain torchvision code; `cifar_resnet18` (`dnal_core/examples.py`, printed
# below) is "the user's constructor". Passing it to `attach_gates` (as a `functools.partial` with JSON-able keywords) lets a saved pruned
# network be rebuilt anywhere that can import it: the pruned `arch.json` holds the constructor's
# name and the kept channel indices of each gate group, `weights.pt` a weights-only state dict.

# %% tags=["nbval-check-output", "hide-input"]
import copy
import functools
import inspect
import json
import os

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Code, display

import dnal_core as dn
from dnal_core import report
from dnal_core import report_cpu
from dnal_core.attach import gate_groups, strip_gates
from dnal_core.examples import cifar_resnet18
from dnal_core.io import read_json, write_json
from dnal_core.measure import latency
from dnal_core.recipes import get_recipe
from dnal_core.report_tables import COLUMNS, Col, reader_table
from dnal_core.train import derive_network, finetune, train_architecture, train_weights

NAME = "prune_your_own"
if (
    profile != "smoke"
):  # "auto" or a larger profile of `make book`: this chapter has smoke only
    print(f"profile {profile!r}: this chapter has a smoke profile only; showing smoke")
    profile = "smoke"
run = report.paths(NAME, profile, out_dir, fig_dir)
data = data_dir or os.environ.get("DNAL_DATA", "")
torch.set_num_threads(threads)
WIDTH = 0.25  # smoke scale
# the book's smoke stages, subsets and search settings
recipe = get_recipe("resnet56-cifar", profile)


# the user's constructor (dnal_core/examples.py), shown as a user would have written it
display(Code(inspect.getsource(cifar_resnet18), language="python"))
make = functools.partial(cifar_resnet18, num_classes=10, width=WIDTH)
torch.manual_seed(recipe.seed)
model = dn.attach_gates(make(), torch.zeros(1, 3, 32, 32), constructor=make)
groups = gate_groups(model)
print(
    f"{len(groups)} gates over {sum(g.channels for g in groups)} channels; dense:"
    f" {dn.count(model)['macs'] / 1e6:.2f}M MACs,"
    f" {dn.count(model)['params'] / 1e6:.3f}M params"
)
reader_table(
    [{"gate": g.gate, "channels": g.channels, "bns": ", ".join(g.bns)} for g in groups],
    {
        "gate": "gate",
        "channels": Col("channels", "int"),
        "bns": "BatchNorms it follows",
    },
)

# %% [markdown]
# The first gate belongs to the stem and to the whole `layer1` stream (the stem's BN and the
# second BN of both `layer1` blocks): closing one of its channels removes that channel from the
# stem and from every block adding into the stream. The first block of `layer2` to `layer4`
# opens a new stream, with its downsample BN in the group. The classifier `fc` is never gated.
#
# ## Run
#
# One weight stage, then for each $\lambda_a$ the architecture stage from those weights,
# `derive_network` (prune and check), and finetuning. A dense control gets the same finetuning.
# Latency: `dnal_core.measure.latency`, median of one forward pass on the CPU at batch 1 and
# 64, one thread. Per-epoch lines go to `results/prune_your_own/smoke/*.jsonl`, one summary per
# network to `*.json`, the pruned architectures (kept channels per group) to `arch/`.


# %%
def tag(lam):
    return "dense" if lam is None else f"lam{report.lambda_label(lam)}"


def write_run(name, records, summary, prov):
    with open(run.out / f"{name}.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps({"network": name, **prov, **r}) + "\n")
    write_json(run.out / f"{name}.json", {"network": name, **prov, **summary})


def timings(net):
    net = copy.deepcopy(net).cpu().eval()
    return {
        "latency_b1_ms": 1e3 * latency(net, 1, (3, 32, 32), warmup=5, iters=30),
        "latency_b64_ms": 1e3 * latency(net, 64, (3, 32, 32), warmup=2, iters=10),
    }


have = run.out if out_dir else report.results_dir(NAME, profile)
if train or not report.has_results(have):
    if not data:
        raise ValueError("set data_dir or DNAL_DATA to the CIFAR-10 folder")
    from dnal_core.data import cifar10_loaders

    prov = report.provenance(NAME, profile, threads, device=device)
    train_data, test_data = cifar10_loaders(
        data,
        recipe.weights.batch_size,
        recipe.test_batch_size,
        device=device,
        seed=recipe.seed,
        train_per_class=recipe.train_per_class,
        test_per_class=recipe.test_per_class,
    )
    torch.manual_seed(recipe.seed)
    weights = train_weights(model, train_data, test_data, recipe.weights)
    # the plain network the gates were put into
    dense = strip_gates(copy.deepcopy(model))
    dense_ft = finetune(dense, train_data, test_data, recipe.finetune)
    write_run(
        tag(None),
        weights + dense_ft,
        {
            "lam": None,
            **dn.count(dense),
            "top1": dense_ft[-1]["test_top1"],
            "weights_top1": weights[-1]["test_top1"],
            **timings(dense),
        },
        prov,
    )
    (run.out / "arch").mkdir(exist_ok=True)
    for lam in lams:
        net = copy.deepcopy(model)
        arch = train_architecture(
            net, train_data, test_data, recipe.arch, lam=lam, search=recipe.search
        )
        res = derive_network(net, recipe.search)
        # channels_last off for the pruned network: torch 2.14.1's CPU backward of a 1x1
        # stride-2 conv with 2-4 input and 1-2 output channels in channels_last corrupts
        # the heap (a downsample conv of a stream pruned to one channel); the layout
        # changes no result
        ft = finetune(
            res.model, train_data, test_data, recipe.finetune, channels_last=False
        )
        rep = res.report
        write_json(run.out / "arch" / f"{tag(lam)}.json", res.arch)
        write_run(
            tag(lam),
            arch + ft,
            {
                "lam": lam,
                **dn.count(res.model),
                "top1": ft[-1]["test_top1"],
                "hard_top1": arch[-1]["hard_top1"],
                "widths": rep["widths_after"],
                "full_widths": rep["widths_before"],
                "gates": [g.gate for g in groups],
                "check": rep["check"],
                "rel_logit_diff": rep["rel_logit_diff"],
                "min_channels_bound": len(rep["min_channels_bound"]),
                **timings(res.model),
            },
            prov,
        )
    have = run.out
results = report.read_folder(have)
lines, finals = (
    results[results["source"].str.endswith(".jsonl")],
    results[results["source"].str.endswith(".json")],
)
report.say(
    f"{len(lines)} epochs from {have.name}/: {finals['date'].iloc[0]} on"
    f" {finals['device'].iloc[0]}, made by `{finals['command'].iloc[0]}`"
)

# %% [markdown]
# ## Results
#
# Accuracy against MACs (left) and the width each gate group kept (right; grey: the dense
# width). The dense control is the weight stage followed by the same finetuning as the pruned
# networks.

# %% tags=["hide-input"]
finals = (
    finals.assign(lam=finals["lam"].astype(float))
    .sort_values("macs", ascending=False)
    .reset_index(drop=True)
)
dense_row = finals[finals["network"] == "dense"].iloc[0]
pruned = finals[finals["network"] != "dense"]
fig, (ax, axw) = plt.subplots(
    1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1, 2]}
)
ax.plot(dense_row["macs"] / 1e6, dense_row["top1"], "ks", label="dense, finetuned")
for r, color in zip(pruned.itertuples(), plt.cm.viridis([0.15, 0.5, 0.85])):
    ax.plot(
        r.macs / 1e6,
        r.top1,
        "o",
        color=color,
        label=f"DNAL, $\\lambda_a$ = {report.lambda_label(r.lam)}",
    )
ax.set_xlabel("MACs (M)")
ax.set_ylabel("test top-1 (%)")
ax.set_title(f"CIFAR ResNet18 x{WIDTH} ({profile})")
ax.legend(fontsize=8)
first = pruned.iloc[0]
names = [g.removesuffix(".ss") for g in first["gates"]]
x = range(len(names))
axw.bar(x, first["full_widths"], color="0.85", label="dense")
for i, (r, color) in enumerate(
    zip(pruned.itertuples(), plt.cm.viridis([0.15, 0.5, 0.85]))
):
    axw.bar(
        [k + (i - 1) * 0.27 for k in x],
        r.widths,
        width=0.27,
        color=color,
        label=f"$\\lambda_a$ = {report.lambda_label(r.lam)}",
    )
axw.set_xticks(list(x), names, rotation=60, ha="right", fontsize=8)
axw.set_ylabel("channels kept")
axw.set_title("learned width per gate group (named by the BN that owns the gate)")
axw.legend(fontsize=8)
report.save_figure(fig, f"{NAME}_{profile}", run.fig)

# %%
table = finals.assign(**{
    "MACs (M)": finals["macs"] / 1e6,
    "params (M)": finals["params"] / 1e6,
    "MACs ratio": finals["macs"] / dense_row["macs"],
    "latency ratio b1": finals["latency_b1_ms"] / dense_row["latency_b1_ms"],
    "latency ratio b64": finals["latency_b64_ms"] / dense_row["latency_b64_ms"],
})
# latency in ms at batch 1 and 64; the ratios are this network's over the dense one's
# (below 1: cheaper or faster than dense)
reader_table(table, {
    "network": "network",
    "MACs (M)": COLUMNS["macs_m"],
    "params (M)": Col("params (M)", "{:.3f}"),
    "top1": COLUMNS["top1"],
    "hard_top1": Col("hard top-1 (%)", "top1"),
    "MACs ratio": Col("MACs / dense", "{:.3f}"),
    "latency_b1_ms": Col("ms, batch 1", "{:.2f}"),
    "latency_b64_ms": Col("ms, batch 64", "{:.2f}"),
    "latency ratio b1": Col("latency / dense, batch 1", "{:.3f}"),
    "latency ratio b64": Col("latency / dense, batch 64", "{:.3f}"),
})

# %% [markdown]
# ### At the cpu scale: DNAL's budget against Torch-Pruning and uniform width
#
# What a user would ask before pruning their own network with this library rather than the one
# they would pick instead. The same constructor at a quarter width (35.0M MACs, 0.70M
# parameters) on the full CIFAR-10 split, the `cpu` recipe (15 + 3 + 12 cosine epochs): one
# weight stage, then, at half and a quarter of the dense MACs, three networks of the same MACs,
# each compared with the others:
#
# - **DNAL with the MACs budget** (`--target-macs`): the architecture stage steered to the
#   target from the weight stage, then 12 epochs of finetuning;
# - **Torch-Pruning's own global L1 pruning** of the same trained weights, as its users write it
#   (`MetaPruner`, `MagnitudeImportance(p=1)`, `global_pruning=True`, the classifier ignored),
#   its ratio bisected to the DNAL network's MACs (within 2%), then the same 12 epochs;
# - **uniform width**: the constructor at the one width of those MACs (within 2%; whole
#   channels allow 5% at some sizes), trained from scratch for 30 epochs, as long as the three
#   stages, beside the dense network trained as long.
#
# Made from the shell (two processes, about two hours on the 2-core machine; `dnal_core/
# experiments/own.py`):
#
# ```
# python -m dnal_core.experiments own --part search --data $DNAL_DATA --precision bf16 &
# python -m dnal_core.experiments own --part controls --data $DNAL_DATA --precision bf16
# ```

# %% tags=["nbval-check-output"]
cpu_dir = report.results_dir(NAME, "cpu")
own = report_cpu.own_rows(cpu_dir) if cpu_dir else None
if own is None:
    report.say("Not run yet: the commands above make it; it shows here once committed.")
else:
    report.say(f"Made on {report.run_line(report.read_folder(cpu_dir))}.")
    display(reader_table(own, {
        "method": "network",
        "macs_m": COLUMNS["macs_m"],
        "macs_frac": Col("MACs / dense", "{:.3f}"),
        "params_m": COLUMNS["params_m"],
        "top1": COLUMNS["top1"],
        "vs_uniform": Col("vs uniform width (points)", "points", missing="-"),
        "vs_tp": Col("vs Torch-Pruning (points)", "points", missing="-"),
    }))
    title = "cifar_resnet18 x0.25 at the cpu profile"
    display(report.save_figure(report_cpu.plot_own(own, title), f"{NAME}_cpu", run.fig))

# %% [markdown]
# ## Check
#
# Structural, from the committed files: every search was pruned with the logit check passed
# (pruned logits equal the hard-gated ones within $10^{-4}$ relative), every pruned network is
# smaller than the dense one and no group grew, and the pruned architecture in `arch/` rebuilds
# (from the constructor it names, applied afresh) to exactly the MACs recorded.

# %%
for r in pruned.itertuples():
    assert r.check == "passed" and r.rel_logit_diff <= 1e-4, r
    assert r.macs < dense_row["macs"] and all(
        0 < w <= f for w, f in zip(r.widths, r.full_widths)
    ), r
    arch = read_json(have / "arch" / f"{r.network}.json")
    assert arch["constructor"] == "dnal_core.examples:cifar_resnet18"
    assert arch["kwargs"] == {"num_classes": 10, "width": WIDTH}
    rebuilt = dn.build_from_arch(arch)
    assert dn.count(rebuilt) == {"macs": r.macs, "params": r.params}, (
        dn.count(rebuilt),
        r.macs,
        r.params,
    )
    assert rebuilt.widths == r.widths
    report.say(
        f"{r.network}: {r.macs / 1e6:.2f}M MACs ({r.macs / dense_row['macs']:.1%} of"
        f" dense), check {r.check} ({r.rel_logit_diff:.1e}), rebuilt from"
        f" arch/{r.network}.json: same MACs and params"
    )

# %% [markdown]
# ## Notes
#
# - **Smoke scale.** Two epochs a stage on 1,000 training images: accuracies near 20-30% and
#   differences between the points are noise. The chapter checks that attach, search, prune,
#   finetune, save and rebuild work on a network the library was not written for.
# - **What was gated.** Every conv of ResNet18 is followed by a BatchNorm, so every group
#   except the classifier's outputs gets a gate: 12 gates, one per residual stream (stem +
#   `layer1`, and `layer2`-`layer4`) and one per block-internal conv. On other networks
#   `model.dnal_ungated` lists the groups left whole and why (squeeze-excitation convs on 1x1
#   maps, grouped convs).
# - **Precise BN.** The loaders of `dnal_core.data` offer fixed calibration batches, so every
#   accuracy above is measured after re-estimating BN statistics. A plain `DataLoader` has no
#   `calibration_batches`: the stages then evaluate on the running statistics, which are stale
#   after the architecture stage (`dnal_core.train.bn.recalibrate_bn` fixes a model by hand).
# - **Latency** is of this shared 2-core CPU under load: a ratio between runs of the same
#   session means more than the milliseconds. At quarter width the layers are small, and the
#   time falls by less than the MACs do.

# %% [markdown]
# ## Exercises
#
# 1. Gate `torchvision.models.mobilenet_v3_small(num_classes=10)` at 32x32 and print
#    `model.dnal_ungated`: which groups stay whole, and why is a squeeze-excitation conv
#    allowed to have no BatchNorm?
# 2. Pass `ignored_layers=[model.layer4[0].conv1]` (before attaching) and re-run one $\lambda_a$:
#    how many gates remain, and how much of the pruned MACs come from that group?
# 3. Derive with `derive_network(net, recipe.search, round_to=8)` and compare the latency
#    with the unrounded network on this CPU; the report's `round_to_macs_cost` says what the
#    rounding costs in MACs.
