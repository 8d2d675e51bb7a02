"""``dnal run MODEL --data DIR --lambda X --profile smoke|paper --out DIR``: Alg. 1 end to end.

Runs the weight, architecture and finetune stages (or ``--stages`` of them) into ``--out``:
config.json, metrics.jsonl, weights.pt, search.pt, arch.json, final.pt, final.json and ckpt/.
``--resume`` continues a killed run from its last epoch (its configuration is read from
config.json; options given again must agree with it, ``--data`` must name the same files; a
folder without a run is refused). A NaN or infinite loss stops the run with exit code 3, the
last good epoch's checkpoint kept. ``--weights-from RUN/weights.pt`` starts
from another run's weight stage, so one weight stage serves every lambda of a table.
``--target-macs X`` / ``--target-params X`` replace ``--lambda`` with a budget (a fraction of
the dense count or a count such as 25M): the architecture stage is then projected onto the
budget after every step (``dnal_core.budget``) and final.json's ``budget`` records the target,
the reached cost and the projection's path.
MODEL may also be any importable ``module:function`` returning an ``nn.Module`` (e.g.
``torchvision.models:resnet18``): it is called with ``num_classes`` from the data and the
keywords of ``--set model_args.KEY=VALUE``, gated by ``attach_gates`` and run with the recipe
of ``--profile`` (``dnal_core.own``); ``--weights-from`` then also takes a plain state dict.
Multi-GPU / multi-node: the same command under ``torchrun --nproc_per_node N`` (book/reference/multi_gpu.md).
"""
from __future__ import annotations

import json
import sys

from ..budget import parse_target
from ..gate import SCHEDULE_UNITS
from ..loss import LOSS_FORMS
from ..io import check_out_folder
from ..models import PLACEMENTS, list_models
from ..recipes import get_recipe, override, profiles, valid_keys
from ..train import run_pipeline, stored_recipe
from ..train.own import budget_changes
from ..train.fast import prefer_fast, set_cudnn

# option -> recipe key (``override`` syntax); flags set True
_VALUE_OPTS = {"lam": "lam", "seed": "seed", "threshold": "search.threshold",
               "loss_form": "search.loss_form", "delta_unit": "search.delta_unit",
               "placement": "placement", "width_mult": "width_mult",
               "per_class": "train_per_class", "test_per_class": "test_per_class",
               "epochs_weights": "weights.epochs", "epochs_arch": "arch.epochs",
               "epochs_finetune": "finetune.epochs", "epochs_joint": "joint.epochs", "precision": "precision"}
_FLAG_OPTS = {"train_linear": ("search.train_linear", True), "bn_train": ("search.bn_stats", "update"),
              "joint": ("sequential", False)}


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run DNAL (Alg. 1) on CIFAR-10: weights, architecture, finetune",
        description="Run the three stages of Alg. 1 into --out, with a checkpoint every epoch. "
                    f"Models: {', '.join(list_models())}. Profiles: {', '.join(profiles())}.")
    p.add_argument("model", help="a registered model name, or module:function returning an nn.Module "
                                 "(e.g. torchvision.models:resnet18; keywords: --set model_args.KEY=VALUE)")
    p.add_argument("--data", help="CIFAR-10 folder: train.npz/test.npz (packed JPEG), "
                                  "cifar-10-batches-py/ or train/<class>/ + test/<class>/; "
                                  "ImageNet (*-imagenet, proxyless-supernet): train/<wnid>/ + val/<wnid>/")
    p.add_argument("--out", required=True, help="run folder (created; must not hold a run unless --resume)")
    p.add_argument("--lambda", dest="lam", type=float, help="lambda_a of eq. 4 (sparsity weight)")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--target-macs", metavar="X",
                   help="a budget instead of --lambda: the pruned network's MACs, a fraction of the dense "
                        "network's (0.3) or a count (25M, 1.5e6, 800k); the search is projected onto it (book/reference/budget.md)")
    b.add_argument("--target-params", metavar="X", help="the same for the parameters")
    p.add_argument("--profile", help="recipe: paper (Section V-B, the default) or smoke")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--eager", action="store_true",
                   help="on CUDA, train eagerly in fp32 instead of the fast path (bf16, channels_last, "
                        "CUDA graphs; book/reference/speed.md)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="CPU training arithmetic: fp32 (default), bf16 (autocast of the forward pass), auto "
                        "(bf16 where the CPU has bf16 matrix instructions and a probe on this model finds it "
                        "faster); resolved once and kept on --resume (book/reference/training.md)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no per-epoch lines")
    p.add_argument("--stages", help="comma-separated subset: weights,arch,finetune (joint,finetune)")
    p.add_argument("--weights-from", metavar="FILE",
                   help="weights.pt of another run, or a plain torch.save(net.state_dict()) of the same "
                        "network (read weights-only): skip stage 1")
    p.add_argument("--workers", type=int, default=8,
                   help="DataLoader worker processes per process (ImageNet; default 8)")
    p.add_argument("--download", action="store_true",
                   help="download CIFAR-10 with torchvision into --data when it holds none")
    g = p.add_argument_group("the authors' code's choices (the paper's are the defaults)")
    g.add_argument("--threshold", type=float, help="keep sigmoid(delta s) > T (paper 0.5, code 0.9)")
    g.add_argument("--loss-form", choices=LOSS_FORMS,
                   help="sparsity term: paper (eq. 4), code (without delta), expected-macs/expected-params "
                        "(the pruned network's cost; the default with a budget)")
    g.add_argument("--delta-unit", choices=SCHEDULE_UNITS,
                   help="iteration: delta grows every step (default); epoch-paper: per epoch, 1 in the first "
                        "(Alg. 1); epoch-code (= epoch): per epoch, 10^(4(k+1)/E), the authors' code")
    g.add_argument("--train-linear", action="store_true", help="stage 2 also trains Linear/BN1d layers")
    g.add_argument("--bn-train", action="store_true",
                   help="stage 2 updates BN running statistics (= --set search.bn_stats=update)")
    e = p.add_argument_group("experiments")
    e.add_argument("--joint", action="store_true", help="joint strategy (Fig. 5) instead of Alg. 1")
    e.add_argument("--placement", help=f"SS placement (Fig. 4): {', '.join(PLACEMENTS)}")
    e.add_argument("--width-mult", type=float, help="scale every default width")
    e.add_argument("--per-class", type=int, help="training images per class (subset)")
    e.add_argument("--test-per-class", type=int, help="test images per class (subset)")
    for s in ("weights", "arch", "finetune", "joint"):
        e.add_argument(f"--epochs-{s}", type=int, metavar="N", help=f"epochs of the {s} stage")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any recipe field, e.g. finetune.lr=0.05 (valid keys listed on error)")
    p.set_defaults(func=run)


def _changes(args) -> dict:
    changes = {key: getattr(args, opt) for opt, key in _VALUE_OPTS.items() if getattr(args, opt) is not None}
    for kind in ("macs", "params"):
        raw = getattr(args, f"target_{kind}")
        if raw is None:
            continue
        if args.lam is not None:
            raise ValueError(f"--target-{kind} and --lambda exclude each other: with a budget, lambda is search.budget_lambda0")
        changes.update(budget_changes(kind, parse_target(raw), args.loss_form))
    changes.update({key: val for opt, (key, val) in _FLAG_OPTS.items() if getattr(args, opt)})
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}; valid keys: {', '.join(valid_keys())}")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        changes[key.strip()] = tuple(val) if isinstance(val, list) else val
    return changes


def run(args) -> int:
    check_out_folder(args.out)  # a file on the way or a read-only place: say so before the data loads
    stored = stored_recipe(args.out) if args.resume else None
    if args.resume and stored is None:
        raise ValueError(f"--resume: {args.out} holds no dnal run (no config.json); "
                         "leave out --resume to start one there")
    if stored is not None:
        if stored.model != args.model:
            raise ValueError(f"--resume: {args.out} holds a run of {stored.model!r}, not {args.model!r}")
        if args.profile is not None and args.profile != stored.profile:
            raise ValueError(f"--resume: {args.out} was run with profile {stored.profile!r}, not {args.profile!r}")
        base = stored
    else:
        base = get_recipe(args.model, args.profile or "paper")
    recipe = override(base, _changes(args))
    data = args.data
    if data is None:
        if stored is None:
            raise ValueError("--data is required: a CIFAR-10 folder")
        from ..io import read_json
        data = read_json(f"{args.out}/config.json")["data"]
    stages = [s.strip() for s in args.stages.split(",")] if args.stages else None
    # (stale .tmp files of a killed run are removed by the pipeline, on rank 0, once --out is checked)
    set_cudnn(args.device)  # the same cuDNN setting as benchmarks/epoch_time.py, on both paths
    with prefer_fast(not args.eager):  # a runtime choice, not part of the recipe
        result = run_pipeline(recipe, data, args.out, device=args.device, resume=args.resume,
                              quiet=args.quiet, stages=stages, weights_from=args.weights_from,
                              download=args.download, workers=args.workers)
    if not args.quiet:
        keys = ("model", "lambda", "macs", "params", "top1", "top5", "baseline_macs", "baseline_params",
                "baseline_top1", "macs_reduction", "stages")
        print(json.dumps({"out": str(args.out), **{k: result[k] for k in keys if k in result}}))
    sys.stdout.flush()
    return 0
