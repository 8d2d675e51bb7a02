"""A pruned ResNet's MACs counted two ways: ours, which keeps the residual stream whole (every
block adds into all of its channels), and the authors', in which the stream channels a closed
block-output gate masks are gone for every layer that reads them (Tables II and V).

  ``stream_gap``        one pruned (hard-gated) ResNet: (our MACs, the authors' count)
  ``stream_gap_pruned`` the same of a network already pruned (e.g. built from an arch.json)
  ``stream_gap_table``  the two counts at several widths under the same seeded random gates
"""
from __future__ import annotations


def stream_gap(model) -> tuple[int, int]:
    """MACs of the pruned ``model`` (its hard gates set): ours, and a count in which the
    channels a closed block-output gate masks are gone from the residual stream too, so
    every layer that reads block b's output (block b+1's first conv and projection
    shortcut, or the classifier after the last block) reads only that gate's open
    channels (``stream_gap_pruned`` of the network the pruner derives)."""
    from ..train import hard_gated
    from . import prune

    return stream_gap_pruned(prune(hard_gated(model)).model)


def stream_gap_pruned(pruned) -> tuple[int, int]:
    """``stream_gap`` of a ResNet already pruned (``prune``, or ``models.build_from_arch`` of a
    committed arch.json): each block's output conv writes the channels its gate kept into
    the full-width stream, and the authors' count has every reader of that output read only
    those."""
    import torch

    from ..measure import count

    pruned = pruned.eval()

    def open_channels(blk):  # the block-output unit's channels; 0 where the branch is removed
        unit = blk.conv3 if hasattr(blk, "conv3") else blk.conv2
        return 0 if unit is None else unit.conv.out_channels

    open_out = [open_channels(blk) for blk in pruned.blocks]
    readers = {pruned.fc: open_out[-1]}
    for b, blk in enumerate(pruned.blocks):
        for unit in (blk.conv1, getattr(blk, "downsample", None)):
            if b > 0 and unit is not None:
                readers[unit.conv] = open_out[b - 1]
    cut = []

    def hook(m, inp, out):  # MACs of the stream channels this reader would not read
        conv = isinstance(m, torch.nn.Conv2d)
        taps = m.kernel_size[0] * m.kernel_size[1] if conv else 1
        cut.append(out.numel() * taps * (inp[0].shape[1] - readers[m]))

    hooks = [m.register_forward_hook(hook) for m in readers]
    with torch.no_grad():
        pruned(torch.zeros((1,) + tuple(pruned.input_size)))
    for h in hooks:
        h.remove()
    ours = count(pruned)["macs"]
    return ours, ours - sum(cut)


def stream_gap_table(model: str, widths, seed: int = 0):
    """``stream_gap`` of ``model`` at each (width_mult, build keywords) of ``widths`` with the same
    seeded random hard gates (s ~ N(0, 1): about half of each gate closed), as a DataFrame:
    dense MACs, ours, the authors' count (masked stream channels gone), in millions, and the
    ratio ours / authors'."""
    import pandas as pd
    import torch

    from ..gate import gates, set_mode
    from ..measure import count
    from ..models import build

    rows = []
    for width, kw in widths:
        gated = build(model, width_mult=width, **kw)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, gate in gates(gated):
                gate.s.copy_(torch.randn(gate.channels, generator=g))
        set_mode(gated, "hard")
        ours, stream = stream_gap(gated)
        dense = count(build(model, width_mult=width, **kw))["macs"]
        rows.append({"width": width, "dense_macs_m": dense / 1e6, "ours_macs_m": ours / 1e6,
                     "authors_macs_m": stream / 1e6, "ratio": ours / stream})
    return pd.DataFrame(rows)
