"""The whole of Alg. 1 as a run folder: each stage starts from the previous stage's file, writes a
checkpoint every epoch and can be resumed bit-identically (on the CPU).

Run folder (``out``):
  config.json     the resolved recipe, data path, git commit, torch version, device
  metrics.jsonl   one JSON line per epoch (``pandas.read_json(path, lines=True)``)
  weights.pt      model file after stage 1 (dense, SS off)
  search.pt       model file after stage 2: the gated network, s learned, delta at its end
                  value (the pruner reads this file)
  arch.json       the learned architecture: the pruned network's ``arch()`` (``dnal_core.prune``)
  final.pt        the finetuned model; final.json its MACs, params, accuracy, the baseline's,
                  seconds per stage, config, git, torch, device
  ckpt/<stage>.pt the last epoch of a stage in progress (model, optimizer, scheduler, delta,
                  RNG states, epoch); removed once the stage's file is written
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from .. import io
from ..data import cifar10_loaders, imagenet_loaders
from ..gate import gates
from ..measure import count
from ..models import build
from ..recipes import Recipe
from . import dist
from .bn import calibration_batches, recalibrate_bn
from .runfolder import _check_out, _metrics_keep, provenance, rng_state, seed_everything, set_rng_state
from .runfolder import git_commit, stored_recipe  # noqa: F401  (still importable from here)
from .stages import (derive_network, evaluate, finetune, train_architecture, train_joint,
                     train_weights)

OUTPUT = {"weights": "weights.pt", "arch": "search.pt", "joint": "search.pt", "finetune": "final.pt"}


def stage_order(recipe: Recipe) -> list[str]:
    return ["weights", "arch", "finetune"] if recipe.sequential else ["joint", "finetune"]


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if str(device).split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; valid: cpu, cuda")
    return torch.device(device)


def _weights_source(path: str | Path, recipe: Recipe, num_classes: int, test, device) -> tuple[dict, dict | None]:
    """(meta, None) when ``path`` is a dense model file of the recipe's network (any SS placement:
    with SS off every placement computes the same function and has the same state_dict keys);
    (its accuracy, the state dict) when it is a plain state dict (``torch.save(net.state_dict())``,
    read weights-only) that fits the network: the top-1/top-5 of the network as given (its own
    BatchNorm statistics) on the test split, final.json's baseline; ValueError otherwise."""
    from ..own import load_state

    blob, dense = io.load(path), dense_model(recipe, num_classes)
    if not (isinstance(blob, dict) and "arch" in blob and "state_dict" in blob):
        load_state(dense, blob, path)  # ValueError when it does not fit
        ev = evaluate(dense.to(device), test)
        return {"top1": ev["top1"], "top5": ev["top5"]}, blob
    model, meta = io.load_model(path)
    same = {"placement": None, "template": None}  # the template: a key of this process's copy
    want, got = dense.arch(), model.arch()
    if {**got, **same} != {**want, **same}:
        raise ValueError(f"--weights-from {path} is not a dense {want.get('constructor') or want['model']} at "
                         f"width_mult {want.get('width_mult')} (it holds {got.get('constructor') or got['model']}, "
                         f"width_mult {got.get('width_mult')})")
    return meta, None


def run_pipeline(recipe: Recipe, data: str | Path, out: str | Path, *, device: str | None = None,
                 resume: bool = False, quiet: bool = True, stages: list[str] | None = None,
                 weights_from: str | Path | None = None, download: bool = False, workers: int = 8) -> dict:
    """Run ``stages`` (default: every stage of the recipe) of Alg. 1 into ``out``; returns the
    content of final.json (or, when finetuning did not run, ``{"stages": [...]}``).

    Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK set) every process calls this: the process
    group is started here (and ended when this call started it), the model is trained under
    DistributedDataParallel, each rank reads its part of every global batch, and only rank 0
    writes files (``dnal_core.train.dist``). ``workers``: DataLoader processes (ImageNet)."""
    device, started = dist.init(resolve_device(device))
    # Denormal floats: the weights of a channel whose gate closed get only weight decay and shrink
    # into denormals (< 1.2e-38), and CPU kernels that read them take microcode assists: a step
    # 7x slower in benchmarks/cpu_denormal.py, a joint epoch of the cpu profile 1,100 s instead
    # of ~120 s. Flushing them to zero changes values below 1.2e-38 only. For this call, on the CPU.
    ftz = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        return _run_pipeline(recipe, data, out, device, resume, quiet, stages, weights_from, download, workers)
    finally:
        if ftz:
            torch.set_flush_denormal(False)
        if started:
            dist.shutdown()


def _run_pipeline(recipe, data, out, device, resume, quiet, stages, weights_from, download, workers) -> dict:
    out = Path(out)
    order = stage_order(recipe)
    stages = list(order if stages is None else stages)
    bad = [s for s in stages if s not in order]
    if bad:
        raise ValueError(f"unknown stage {bad[0]!r} for this recipe; valid: {', '.join(order)}")
    if any(s in ("arch", "joint") for s in stages) and recipe.lam is None and recipe.search.target is None:
        raise ValueError("the architecture stage needs a lambda (--lambda) or a budget (--target-macs, "
                         "--target-params)")
    for s in ("arch", "joint"):  # with no step, s = 0 sits on the threshold 0.5 and every gate closes
        if s in stages and getattr(recipe, s).epochs < 1:
            raise ValueError(f"{s}.epochs (--epochs-{s}) is 0: the {s} stage learns the gates in at least one "
                             "epoch (with none, every s = 0 sits on the threshold and every channel would go)")
    if ":" in recipe.model:  # a module:function network: what it cannot do yet, and its import
        from ..own import check_recipe
        check_recipe(recipe)
    stored = _check_out(out, recipe, resume, data)
    if dist.is_main():  # the one writer: another rank's live write cannot be mistaken for a stale one
        io.remove_stale_tmp(out)  # left by a run killed mid-write (e.g. .weights.pt.<random>.tmp)
    if stored is not None:
        if weights_from is not None and stored.get("weights_from") not in (None, str(Path(weights_from).resolve())):
            raise ValueError(f"--resume: {out} used --weights-from {stored['weights_from']}")
        weights_from = weights_from or stored.get("weights_from")
    weights_from = str(Path(weights_from).resolve()) if weights_from else None
    if weights_from and not recipe.sequential:
        raise ValueError("--weights-from needs the sequential strategy (the joint one trains from scratch)")
    # every input a requested stage needs must exist (or be made by an earlier requested stage)
    have = {s for s in order if (out / OUTPUT[s]).is_file()} | ({"weights"} if weights_from else set())
    for s in order:
        if s in stages and s not in have:
            need = order[order.index(s) - 1] if order.index(s) else None
            if need and need not in have:
                src = "--weights-from or the weights stage" if need == "weights" else f"the {need} stage"
                raise ValueError(f"stage {s} needs {OUTPUT[need]} in {out}: run {src} first")
            have.add(s)
    if not dist.is_main():  # rank 0 first: it may download or write a data cache
        dist.barrier()
    train, test, num_classes = make_loaders(recipe, data, device, download, workers)
    if dist.is_main():
        dist.barrier()  # also: every rank has checked ``out`` before rank 0 writes into it
    wsrc = _weights_source(weights_from, recipe, num_classes, test, device) if weights_from else (None, None)
    if recipe.search.target is not None:  # an unreachable budget is refused before anything is written
        from ..budget import resolve_target
        resolve_target(dense_model(recipe, num_classes), recipe.search.target_kind, recipe.search.target)
    prov = {**provenance(device), "precision": _precision(recipe, stored, train, device, num_classes)}
    config = {"recipe": recipe.to_dict(), "data": str(Path(data).resolve()),
              "weights_from": weights_from, **prov}
    if dist.is_main() and (stored is None or stored.get("recipe", {}).get("lam") != recipe.lam):
        config["world_size"] = dist.world()
        io.write_json(out / "config.json", {**(stored or {}), **config})
    ctx = _Run(recipe, out, device, train, test, num_classes, prov, quiet, weights_from, wsrc)
    for s in order:
        if s in stages and not (out / OUTPUT[s]).is_file() and not (s == "weights" and weights_from):
            ctx.run_stage(s)
    if (out / "final.pt").is_file() and "finetune" in stages:
        return io.read_json(out / "final.json")
    return {"stages": [s for s in order if (out / OUTPUT[s]).is_file()]}


def _precision(recipe: Recipe, stored: dict | None, train, device, num_classes: int) -> dict:
    """The run's precision (``train.precision.resolve``): the one stored in config.json when
    resuming a run that asked for the same, else resolved now (the probe of ``auto`` uses one
    training batch; the loader's state is restored after it, so the run is the same)."""
    from .precision import resolve

    old = (stored or {}).get("precision")
    if isinstance(old, dict) and old.get("requested") == recipe.precision:
        return old
    batch = None
    if recipe.precision == "auto":
        state = train.state_dict() if hasattr(train, "state_dict") else None
        x, y = next(iter(train))
        batch = (x.to(device), y.to(device))
        if state is not None:
            train.load_state_dict(state)
    return resolve(recipe.precision, dense_model(recipe, num_classes).to(device), batch, device)


def dense_model(recipe: Recipe, num_classes: int):
    """The network the weight stage trains: the recipe's model at ``width_mult``, or with the
    recipe's ``widths`` (a given architecture) where it has them; a "module:function" network
    gated by ``attach_gates`` (``dnal_core.own``)."""
    if ":" in recipe.model:
        from ..own import build_own
        return build_own(recipe, num_classes)
    widths = {} if recipe.widths is None else {"widths": list(recipe.widths)}
    return build(recipe.model, placement=recipe.placement, width_mult=recipe.width_mult,
                 num_classes=num_classes, **widths)


def make_loaders(recipe: Recipe, data, device, download: bool = False, workers: int = 8):
    """(train, test, num_classes) for ``recipe.dataset`` (cifar10, imagenet). The training
    loader has ``batch_size`` (the global batch, set per stage), ``set_epoch`` and
    ``state_dict``/``load_state_dict`` (its generator state, saved in every checkpoint); under
    torch.distributed both loaders yield this rank's part only."""
    device = torch.device(device)
    if recipe.dataset == "cifar10":
        train, test = cifar10_loaders(data, recipe.weights.batch_size, recipe.test_batch_size,
                                      device=device, seed=recipe.seed, download=download,
                                      train_per_class=recipe.train_per_class,
                                      test_per_class=recipe.test_per_class)
        num_classes = int(train.labels.max().item()) + 1
        if dist.world() > 1:  # one global permutation on every rank, each takes its slice
            train, test = (dist.RankSlice(d, dist.rank(), dist.world()) for d in (train, test))
            train.batch_size = recipe.weights.batch_size
        return train, test, num_classes
    if recipe.dataset == "imagenet":
        if download:
            raise ValueError("--download is for CIFAR-10; ImageNet must be in place (train/ and val/)")
        if workers < 0:
            raise ValueError(f"--workers must be >= 0, got {workers}")
        return imagenet_loaders(data, recipe.weights.batch_size, recipe.test_batch_size, workers=workers,
                                seed=recipe.seed, rank=dist.rank(), world=dist.world(),
                                train_per_class=recipe.train_per_class, test_per_class=recipe.test_per_class,
                                image_size=recipe.image_size, resize_size=recipe.resize_size,
                                pin_memory=device.type == "cuda")
    raise ValueError(f"unknown dataset {recipe.dataset!r}; valid: cifar10, imagenet")


def _summary(rec: dict, epochs: int) -> str:
    """One human line per epoch on stderr (metrics.jsonl has everything)."""
    delta = f"  delta {rec['delta']:.3g}" if rec.get("delta") is not None else ""
    return (f"{rec['stage']:>8} {rec['epoch'] + 1}/{epochs}  lr {rec['lr']:.3g}{delta}  "
            f"loss {rec['train_loss']:.4f}  top1 {rec['test_top1']:.2f}  "
            f"gates {rec['open_gates']}/{rec['gate_channels']}  MACs {rec['macs'] / 1e6:.2f}M  "
            f"{rec['seconds']:.1f}s")


class _Run:
    """One run folder's stages: inputs, checkpoints, outputs."""

    def __init__(self, recipe, out, device, train, test, num_classes, prov, quiet, weights_from, wsrc):
        self.recipe, self.out, self.device = recipe, out, device
        self.train, self.test, self.num_classes, self.prov = train, test, num_classes, prov
        self.quiet, self.progress = quiet, not quiet and sys.stderr.isatty()
        self.weights_from, (self.wmeta, self.wstate) = weights_from, wsrc  # wstate: a plain state dict

    def dense(self):
        return dense_model(self.recipe, self.num_classes)

    def meta(self, **kw) -> dict:
        return {"config": self.recipe.to_dict(), **self.prov, **kw}

    def stage_input(self, stage: str):
        """The model a stage starts from, always rebuilt from a file (or from the seed), so that a
        resumed run and an uninterrupted one start every stage from the same bytes."""
        if stage in ("weights", "joint"):
            return self.dense()  # initialised from the seed (run_stage seeds every stage)
        if stage == "arch":
            if self.wstate is not None:  # the user's state dict (checked by _weights_source)
                from ..own import load_state
                model = self.dense()
                load_state(model, self.wstate, self.weights_from)
                return model
            src = self.weights_from or self.out / "weights.pt"
            model, _ = io.load_model(src)
            if model.arch()["placement"] != self.recipe.placement:  # Fig. 4: one weight stage, three placements
                state, model = model.state_dict(), self.dense()
                model.load_state_dict(state)
            return model
        searched, _ = io.load_model(self.out / "search.pt")
        # BN re-estimated on the batches the stage's hard_top1 used (at that stage's batch size,
        # also when resumed in a new process): the network it measured
        self.train.batch_size = (self.recipe.arch if self.recipe.sequential else self.recipe.joint).batch_size
        return derive_network(searched.to(self.device), self.recipe.search,
                              bn_batches=calibration_batches(self.train, self.recipe.precise_bn)).model

    def run_stage(self, stage: str) -> None:
        r, out = self.recipe, self.out
        cfg = getattr(r, stage)
        seed_everything(r.seed)  # a fresh stage starts from the seed; a resumed one from its RNG states
        model = self.stage_input(stage).to(self.device)
        self.train.batch_size = cfg.batch_size
        ckpt_path = out / "ckpt" / f"{stage}.pt"
        resume, prior = None, 0.0
        if ckpt_path.is_file():
            resume = io.load(ckpt_path)
            if resume.get("stage") != stage or resume.get("arch") != model.arch():
                raise ValueError(f"{ckpt_path} does not belong to this run's {stage} stage")
            model.load_state_dict(resume["model"])
            set_rng_state(resume["rng"], self.train)
            prior = float(resume["seconds"])
        start = int(resume["epoch"]) + 1 if resume else 0
        if dist.is_main():
            _metrics_keep(out / "metrics.jsonl", lambda rec: rec.get("stage") == stage and rec["epoch"] >= start)
        t0 = time.perf_counter()

        def log(rec):
            if not dist.is_main():
                return
            try:  # JSON has no NaN or infinity (_fit stops on a non-finite loss before this)
                line = json.dumps(rec, allow_nan=False)
            except ValueError:
                where, value = io._nonfinite(rec) or ("a value", "not JSON")
                raise ValueError(f"refusing to write {out / 'metrics.jsonl'}: {rec.get('stage')} epoch "
                                 f"{rec.get('epoch')}: {where} is {value} (JSON has no NaN or infinity)") from None
            with open(out / "metrics.jsonl", "a") as f:
                f.write(line + "\n")
            if not self.quiet:
                print(_summary(rec, cfg.epochs), file=sys.stderr, flush=True)

        def on_epoch(epoch, st):
            if not dist.is_main():
                return
            io.save({"stage": stage, "epoch": epoch, "model": model.state_dict(), "arch": model.arch(),
                     "optimizer": st["optimizer"], "scheduler": st["scheduler"],
                     "delta": float(gates(model)[0][1].delta) if gates(model) else None,
                     "rng": rng_state(self.train), "record": st["record"], "budget": st.get("budget"),
                     "seconds": prior + time.perf_counter() - t0, **self.meta()}, ckpt_path)

        kw = dict(log=log, on_epoch=on_epoch, resume=resume, progress=self.progress, precise_bn=r.precise_bn,
                  precision=self.prov["precision"]["used"])
        if stage == "weights":
            hist = train_weights(model, self.train, self.test, cfg, **kw)
        elif stage == "arch":
            hist = train_architecture(model, self.train, self.test, cfg, lam=r.lam, search=r.search, **kw)
        elif stage == "joint":
            hist = train_joint(model, self.train, self.test, cfg, lam=r.lam, search=r.search, **kw)
        else:
            hist = finetune(model, self.train, self.test, cfg, **kw)
        last = hist[-1] if hist else (resume or {}).get("record") or {}
        seconds = prior + time.perf_counter() - t0
        modes = {g.mode for _, g in gates(model)}
        info = {"stage": stage, "seconds": seconds, "top1": last.get("test_top1"),
                "top5": last.get("test_top5"), "epochs": cfg.epochs,
                # load_model rebuilds gates "off": set this mode again to compute what was trained
                "gate_mode": modes.pop() if len(modes) == 1 else None}
        if stage in ("arch", "joint"):
            # the pruned network before finetuning, from the hard-gated one with its BN statistics
            # re-estimated on the batches _fit's last hard_top1 used, and evaluated so
            calib = calibration_batches(self.train, r.precise_bn)
            derived = derive_network(model, r.search, bn_batches=calib)
            ev = evaluate(derived.model, self.test, bn_batches=calib)
            info.update(lam=r.lam, delta=float(gates(model)[0][1].delta), hard_top1=ev["top1"],
                        hard_top5=ev["top5"], prune=derived.report, budget=last.get("budget"))
            if last.get("budget") is not None and last["budget"]["reached"] != derived.report[
                    f"{last['budget']['kind']}_after"]:
                raise AssertionError(f"budget: the cost model says {last['budget']['reached']:,}, the pruned network "
                                     f"has {derived.report[last['budget']['kind'] + '_after']:,}")
            if dist.is_main():
                io.write_json(out / "arch.json", derived.arch)
        if stage == "finetune":  # the saved network carries the statistics its accuracy was measured with
            recalibrate_bn(model, calibration_batches(self.train, r.precise_bn) or [])
        if dist.is_main():
            io.save_model(model, out / OUTPUT[stage], self.meta(**info))
            if stage == "finetune":
                self.write_final(model, seconds, last)
            ckpt_path.unlink(missing_ok=True)
        dist.barrier()  # the next stage (on every rank) reads the file rank 0 wrote

    def write_final(self, model, seconds: float, last: dict) -> None:
        r, out = self.recipe, self.out
        base = count(self.dense())
        size = count(model)  # the pruned network: its real MACs and params
        _, smeta = io.load_model(out / "search.pt")
        wmeta = self.wmeta if self.weights_from else (
            io.load_model(out / "weights.pt")[1] if (out / "weights.pt").is_file() else {})
        final = {
            "model": r.model, "profile": r.profile, "lambda": r.lam,
            "macs": size["macs"], "params": size["params"],
            "top1": last.get("test_top1"), "top5": last.get("test_top5"),
            "baseline_macs": base["macs"], "baseline_params": base["params"],
            "macs_reduction": base["macs"] / size["macs"], "params_reduction": base["params"] / size["params"],
            "baseline_top1": wmeta.get("top1"), "baseline_top5": wmeta.get("top5"),
            "budget": smeta.get("budget"),  # target, reached cost, lambda path (None: a fixed lambda)
            "search_top1": smeta.get("top1"), "hard_top1": smeta.get("hard_top1"),
            "widths": model.widths,
            "seconds": {"weights": wmeta.get("seconds"), smeta["stage"]: smeta.get("seconds"),
                        "finetune": seconds},
            "weights_from": self.weights_from, **self.meta()}
        io.write_json(out / "final.json", final)
