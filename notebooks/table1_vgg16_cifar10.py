# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Table I: VGG16 on CIFAR-10
#
# **What it reproduces.** Table I of the paper (Section V-B): VGG16 on CIFAR-10, the dense
# baseline and DNAL at $\lambda_a$ from $10^{-5}$ to $5 \cdot 10^{-4}$: MACs (the paper's
# "FLOPs"), parameters and top-1 after finetuning. The paper prunes VGG16 from 313M to 61M MACs
# (5.1x) for a 1.4-point drop, and to 162M (1.9x) for none.
#
# **What this page adds: two controls.** A drop only means something against a dense network
# trained as long, so the baseline here is the dense network trained for as many epochs as
# the three stages together. And the question every reader asks — does *learning* per-layer
# widths beat shrinking every layer by one factor? — is answered by training, for each
# $\lambda_a$, the uniformly narrowed VGG16 with the same MACs (within 2%) from scratch, for
# the same epochs.
#
# **Which results.** The page renders the largest-scale results committed under
# `results/table1_vgg16_cifar10/`: `paper` (Section V-B on a GPU: none yet), then `cpu` (a
# quarter-width VGG16 on the full CIFAR-10 split, 15 + 3 + 12 epochs: real numbers from a
# 2-core CPU), then `smoke` (1,000 images, 2 epochs a stage: a machinery check whose
# accuracies sit near chance). The first lines below name the profile, device, date and command.

# %% tags=["parameters"]
profile = "auto"  # "auto" (largest-scale committed results), "smoke", "cpu" or "paper"
data_dir = ""  # CIFAR-10 folder (empty: $DNAL_DATA)
device = "auto"  # "cpu", "cuda" or "auto"
out_dir = ""  # results folder (empty: results/table1_vgg16_cifar10/<profile>)
fig_dir = ""  # figures folder (empty: figures/)
runs_dir = ""  # checkpointed run folders, not committed (empty: runs/<name>/<profile>)
train = False  # True: train even when results exist (else: only when missing)
threads = 1  # CPU threads; 1 avoids a 10x slowdown when other jobs share the 2 cores

# %% [markdown]
# ## Set-up

# %% tags=["hide-input"]
import dnal_core as dn
from dnal_core import experiments
from dnal_core.chapter_sweep import Sweep
from dnal_core.paper import paper_lambdas

chapter = Sweep("table1_vgg16_cifar10", table="I", model="vgg16-cifar",
                title="VGG16 on CIFAR-10", profile=profile, data_dir=data_dir,
                out_dir=out_dir, fig_dir=fig_dir, runs_dir=runs_dir, threads=threads,
                device=device)
# How each profile picks its lambdas: cpu sweeps eq. 4's lambda and keeps the four whose
# MACs reductions come closest to 1.5x, 2.5x, 5x and 10x (chosen on MACs, never on test
# accuracy); smoke does the same on a short grid; paper runs the paper's seven.
SWEEPS = {
    "cpu": dict(grid=experiments.SWEEP, max_extra=3, choose=True),
    "smoke": dict(grid=(1e-4, 1e-3, 3e-3), max_extra=0, max_refine=0),
    "paper": dict(grid=tuple(paper_lambdas(chapter.table)), max_extra=0, choose=False),
}

# %% [markdown]
# ## Run
#
# One weight stage; a sweep of the architecture stage over $\lambda_a$ from its weights (the
# weight stage does not depend on $\lambda_a$); the finetune stage of the chosen lambdas; the
# dense control; the uniform-width controls. Every piece is a `dnal run` folder under `runs/`
# with a checkpoint every epoch (not committed): an interrupted run resumes where it stopped.
# Each result is written to the results folder as soon as its run ends. On the 2-core CPU the
# `cpu` profile takes about four hours as two processes side by side (the same code from the
# shell: `python -m dnal_core.experiments table1 --part search|controls --data $DNAL_DATA`).

# %%
# the committed results (made when there are none, or if train), and where from
finals = chapter.run(train, SWEEPS[chapter.profile])
chapter.made(finals)

# %% [markdown]
# ## Results
#
# One row per $\lambda_a$: MACs and parameters of the pruned network, its MACs reduction
# (dense / pruned), top-1 after finetuning, the drop from the dense control (positive: DNAL
# is worse), and the uniform-width VGG16 of the same MACs trained as long ("not run" while
# that control has not run). "vs uniform width" (DNAL minus uniform, points) is the answer
# to "does learning the widths pay?" at that size.

# %% tags=["nbval-check-output"]
rows = chapter.rows()
chapter.ours(rows)

# %% [markdown]
# The dense control and the weight stage the searches started from. One weight stage serves
# every $\lambda_a$; when its run folder is lost (a new session on another machine keeps only
# `results/`), the next search re-trains it with the same recipe and seed, and the table says
# which finetuned rows come from which run of it.

# %% tags=["hide-input"]
chapter.stages(finals)

# %% [markdown]
# The paper's DNAL rows in the same terms (reduction against its baseline, drop in points):
# what can be compared across a full-width GPU run and a quarter-width CPU run.

# %% tags=["hide-input"]
chapter.paper()

# %% tags=["hide-input"]
chapter.figure(rows, finals)

# %% [markdown]
# **Where the widths go.** Bars: the channels each conv layer keeps after the search, as a share
# of the dense network's; line: the uniform network of the same MACs.

# %% tags=["hide-input"]
chapter.widths(rows)

# %% [markdown]
# **How $\lambda_a$ was chosen.** The MACs reduction after the architecture stage for every
# searched $\lambda_a$ (the sweep), the chosen ones ringed. The map from $\lambda_a$ to
# compression depends on the loss form, the number of gates (a quarter-width VGG16 has 1,056,
# the paper's 4,224), the length of the search and the data, so the paper's lambdas are not
# expected to give the paper's reductions here. Where `sweep_code.json` exists (`python -m
# dnal_core.experiments table1 --part calibration`), the authors' delta-free form is drawn
# beside eq. 4: the same search, the same weight stage (its re-run, for these rows), another
# map.

# %% tags=["hide-input"]
chapter.sweep()

# %% [markdown]
# ## Check

# %% tags=["nbval-check-output"]
# The paper's baseline digits exactly (within half of the last) in the authors' counting
# convention (one extra operation per output channel: dnal_core.measure.count); plain
# conv+linear MACs differ by under 0.01M.
exact, plain = ("authors", 0.005), ("macs", 0.01)
print(chapter.check_counts(dn.build(chapter.model), macs=[exact, plain], params=exact))

# %% tags=["hide-input"]
# Our rows: the baseline they name is this profile's network; a larger lambda never
# costs more MACs; every uniform control sits within 2% of its DNAL network's MACs.
print(chapter.check(rows, finals))
if chapter.profile == "cpu":  # issue 14's bar for results that mean something
    dense = chapter.dense()
    assert dense is None or dense["top1"] >= 83.0, dense
    span = rows["macs_x"].min() <= 2.0 and rows["macs_x"].max() >= 8.0
    assert not chapter.complete(rows) or span, rows

# %% [markdown]
# ## Notes
#
# - **Why DNAL loses to uniform width here** is the question of the chapter
#   [What decides the result](criteria_vgg16_cifar10): the learned widths trained from scratch,
#   classic criteria, the width trend and seeds, all at equal MACs. Over three seeds, near 2.3x
#   and near 3.4x uniform width stays above eq. 4 on every seed; this table's seed is the worst
#   of the three at 3.49x (its 5.45-point gap against 1.26 and 2.24 on the other two). The same
#   experiment at 1/2 width puts eq. 4 level with uniform width (-0.46 points at 1.92x, -0.04 at
#   3.41x): the loss this table shows belongs to the quarter width.
# - **What departs from Section V-B at the `cpu` profile** (the recipe's comment in
#   `dnal_core/recipes.py` says why): a quarter-width VGG16 (20.0M MACs instead of 313M),
#   15 + 3 + 12 epochs with cosine learning rates instead of 100 + 20 + 130. The search itself
#   is the paper's: eq. 4, $\delta$ from 1 to $10^4$ grown every step, threshold 0.5.
# - **Accuracies** are on the JPEG copy of CIFAR-10 (about 3.5 points under the original
#   images for the same recipe, `../shared/data/cifar10-jpeg/README.md`), and every reported
#   top-1 is measured after re-estimating BatchNorm statistics on 20 fixed training batches
#   (`dnal_core/train/bn.py`).
# - **What the cpu results show** (read the table and the bar chart above): drops far larger
#   than the paper's at similar reductions, and learned widths that empty the late 128-channel
#   layers first. Eq. 4 prices every channel alike, whatever it costs in MACs, and the late
#   layers hold most channels but few MACs: parameters fall much faster than MACs (up to 100x
#   fewer parameters for 8.5x fewer MACs), and the narrowest late layers (2-6 channels) cap
#   what finetuning can recover. Where the uniform-width control has run, it answers the
#   chapter's question directly: `dnal_minus_uniform` below zero means shrinking every layer
#   alike beat the learned widths at that size, on this scale and schedule. Here the learned
#   widths win only at the smallest reduction (1.43x: 83.04% against 82.63%, one seed each, so
#   within run-to-run noise) and lose by 0.35 to 15.9 points from 2.36x on (seed 0; the
#   criteria chapter repeats 2.36x and 3.49x over three seeds). A sparsity term
#   that knows what a channel costs is the subject of the chapter "Beyond the paper: a budget
#   instead of lambda".
# - **How the lambdas were chosen, here**: the first sweep (3e-5 to 3e-3, extended to 9e-3)
#   jumped from 3.5x to 130x; `experiments.refine` bisected the gaps (5.2e-3, 3.9e-3, 1.7e-3,
#   2.3e-3) until every target had a lambda within 1.3x of it. Lambdas 1e-3 and 3e-3,
#   finetuned before the refinement, stay in the table though no longer chosen.
# - **The delta-free form's map** (`sweep_code.json`, the same weight stage, bisected where a
#   target fell in a jump): 3e-4 1.17x, 1e-3 1.78x, 1.8e-3 5.59x, 3.2e-3 5.45x, 5.7e-3 13.45x,
#   then 441x (every gate but one per layer closed) from 1e-2 on. Around 5x eq. 4 needs up to
#   twice the lambda (3.9e-3 for 4.90x); below 2x and above 10x the two maps are close, and
#   both are abrupt. At one seed the
#   map is not even monotone (1.8e-3 prunes more than 3.2e-3): near its jumps a lambda does not
#   name a size, which is why the book offers a budget instead.
# - **The controls** train from scratch for 30 epochs with one cosine schedule, which is at
#   least as kind to them as DNAL's 15 + 12 (restart) schedule.
# - **No paper-profile run exists yet**: `make book PROFILE=paper` on a GPU, or the commands in
#   the reference page Training and resume.
#
# ## Exercises
#
# 1. Re-run the sweep with the authors' loss form (`--set search.loss_form=code`, eq. 4
#    without $\delta$) and predict, before looking, whether the same $\lambda_a$ prunes more
#    or less. (Hint: compare the gradients of $\mathrm{sigmoid}(\delta s)$ and
#    $\mathrm{sigmoid}(s)$ at $s = 0$.)
# 2. Change the threshold from 0.5 to the code's 0.9 (`--set search.threshold=0.9`). At
#    $\delta = 10^4$, how many channels can that change?
# 3. With papermill, run this chapter at `profile="smoke"` into a scratch folder
#    (`-p out_dir /tmp/t1 -p train True`) and compare the chosen lambdas with the `cpu` ones.
