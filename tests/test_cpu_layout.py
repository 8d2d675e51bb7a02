"""channels_last on the CPU (dnal_core/train/stages.py): on by default, off for the convolutions
that torch 2.14.1's CPU backward cannot run in that layout."""
import subprocess
import sys

import torch
from torch import nn

import dnal_core as dn
from dnal_core.train.stages import channels_last_safe


def test_channels_last_safe():
    assert channels_last_safe(dn.build("vgg16-cifar", width_mult=0.125))
    assert channels_last_safe(nn.Conv2d(3, 8, 1, stride=1)) and channels_last_safe(nn.Conv2d(3, 1, 3, stride=2))
    assert channels_last_safe(nn.Conv2d(8, 1, 1, stride=2))
    assert not channels_last_safe(nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 2, 1), nn.Conv2d(2, 4, 1, stride=2)))


def test_training_a_pruned_downsampling_conv_does_not_abort():
    """A network with Conv2d(3, 1, 1, stride=2) trains through ``train_weights`` on the CPU
    (in a subprocess: with channels_last this aborts the interpreter with a heap error)."""
    code = """
import torch
from torch import nn
from dnal_core.recipes import StageConfig
from dnal_core.train import train_weights
torch.set_num_threads(1)
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 1, 1, stride=2), nn.BatchNorm2d(1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
net.input_size = (3, 32, 32)  # what size_of counts MACs at
data = [(torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))) for _ in range(3)]
hist = train_weights(net, data, data[:1], StageConfig(epochs=1, lr=0.01), precise_bn=0)
print("layout", net[0].weight.is_contiguous(), "loss", round(hist[-1]["train_loss"], 3))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "layout True" in r.stdout  # trained in the default (NCHW) layout
