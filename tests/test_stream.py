"""dnal_core.prune.stream: a pruned ResNet's MACs with the residual stream kept whole (ours) and
with the stream channels a closed block-output gate masks gone (the authors' count)."""
import pytest
import torch

from dnal_core import build, gates, set_mode
from dnal_core.measure import count
from dnal_core.models import build_from_arch
from dnal_core.prune import prune
from dnal_core.prune.stream import stream_gap, stream_gap_pruned, stream_gap_table
from dnal_core.train import hard_gated


@pytest.mark.parametrize("model,kw", [("resnet56-cifar", {"width_mult": 0.25}), ("resnet20-cifar", {})])
def test_the_count_from_an_arch_file_equals_the_gated_networks(model, kw):
    """stream_gap_pruned of the network rebuilt from its arch (as a committed arch.json holds
    it) gives what stream_gap gives on the gated network; the authors' count is below ours
    once block-output gates close, and both equal the dense count with every gate open."""
    torch.manual_seed(0)
    gated = build(model, **kw)
    with torch.no_grad():
        for _, g in gates(gated):
            g.s.copy_(torch.randn(g.channels))
    set_mode(gated, "hard")
    ours, authors = stream_gap(gated)
    arch = prune(hard_gated(gated)).arch
    assert stream_gap_pruned(build_from_arch(arch)) == (ours, authors)
    assert authors < ours < count(build(model, **kw))["macs"]
    dense = build(model, **kw)
    assert stream_gap_pruned(dense) == (count(dense)["macs"],) * 2


def test_the_table_keeps_its_seeded_example():
    """The seeded example Tables II and V show (about half of each gate closed): ours 1.43x the
    authors' count for ResNet56 at both widths (46.58M against 32.59M of 125.49M at full width)."""
    t = stream_gap_table("resnet56-cifar", [(0.25, {}), (1.0, {})]).round(2)
    assert t["ratio"].tolist() == [1.43, 1.43]
    assert t.loc[1, ["dense_macs_m", "ours_macs_m", "authors_macs_m"]].tolist() == [125.49, 46.58, 32.59]
