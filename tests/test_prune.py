import torch

import dnal_core as dn
from dnal_core.prune import prune


def test_vgg16_prune_matches_hard_gates():
    m = dn.build("vgg16-cifar", width_mult=0.125, placement="conv-ss-bn-relu")
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_()
            mod.bias.data.normal_()
    for _, g in dn.gates(m):
        g.s.data.normal_()
    res = prune(m)
    assert res.report["check"] == "passed" and res.report["rel_logit_diff"] < 1e-4
    assert res.report["macs_after"] < res.report["macs_before"]
    assert not dn.gates(res.model)
