"""``dnal export DIR --onnx FILE``: write a pruned network (``dnal prune --out DIR``) as ONNX,
and check it with onnxruntime where installed (same logits within tolerance)."""
from __future__ import annotations

import json
import warnings

import torch

from ..io import atomic_path, check_out_file
from ..prune import load_pruned

ONNX_RTOL = 1e-4  # relative to the largest logit, as the pruner's own check
try:  # the newest opset this torch's TorchScript exporter writes (23 in torch 2.14)
    from torch.onnx._constants import ONNX_MAX_OPSET as MAX_OPSET
except ImportError:
    MAX_OPSET = 20
# below 10 the exporter cannot write the ResNets' strided-slice shortcut (opset 10 Slice)
MIN_OPSET = 10


def register(sub) -> None:
    p = sub.add_parser("export", help="export a pruned network to ONNX (checked with onnxruntime)",
                       description="Export the network saved by `dnal prune --out DIR` to ONNX "
                                   "with a dynamic batch dimension.")
    p.add_argument("dir", help="a directory written by `dnal prune --out`")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=18, help=f"ONNX opset version, {MIN_OPSET}..{MAX_OPSET}")
    p.add_argument("--batch-size", type=int, default=2, help="batch of the check")
    p.set_defaults(func=run)


def export_onnx(model: torch.nn.Module, path, opset: int = 18) -> None:
    """TorchScript-based ``torch.onnx.export`` (``dynamo=False``: no onnxscript needed, quiet,
    seconds), batch dimension dynamic; written atomically."""
    x = torch.randn((1,) + tuple(model.input_size))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notice of the TorchScript exporter
        torch.onnx.export(model.eval(), (x,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def check_onnx(model: torch.nn.Module, path, batch_size: int = 2, seed: int = 0) -> dict:
    """Logits of onnxruntime vs PyTorch on a seeded random batch; {} when onnxruntime is absent."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    x = torch.randn((batch_size,) + tuple(model.input_size), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model.eval()(x)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = torch.from_numpy(sess.run(None, {"input": x.numpy()})[0])
    diff = float((out - ref).abs().max())
    return {"max_abs_logit_diff": diff, "rel_logit_diff": diff / max(float(ref.abs().max()), 1e-12)}


def run(args) -> int:
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise ValueError(f"--opset {args.opset}: valid opsets are {MIN_OPSET}..{MAX_OPSET}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_out_file(args.onnx, "--onnx")  # a folder in its place, a missing or read-only folder
    model = load_pruned(args.dir)
    export_onnx(model, args.onnx, args.opset)
    check = check_onnx(model, args.onnx, args.batch_size)
    out = {"dir": str(args.dir), "onnx": str(args.onnx), "model": model.name, "opset": args.opset,
           "onnxruntime_checked": bool(check), **check}
    if check and check["rel_logit_diff"] > ONNX_RTOL:
        raise ValueError(f"onnxruntime logits differ from PyTorch's: {check['rel_logit_diff']:.3g} relative")
    print(json.dumps(out))
    return 0
