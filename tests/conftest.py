import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Small models on a 2-core machine: one torch thread is faster than two competing ones
    (seconds instead of 0.2 s a step under load), and every run sums floats the same way."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """The CIFAR-10 copy that DNAL_DATA names, in any layout dnal_core reads (CI sets it: the
    packed JPEG here, torchvision's download in the forge's workflow, .github/actions/setup)."""
    from dnal_core.data.cifar import find_format

    d = os.environ.get("DNAL_DATA")
    if not d:
        pytest.skip("DNAL_DATA is not set: it names the CIFAR-10 folder")
    try:
        find_format(d)
    except ValueError as e:
        pytest.skip(f"DNAL_DATA: {e}")
    return Path(d)


@pytest.fixture(scope="session")
def synthetic_cifar(tmp_path_factory) -> Path:
    """80 training and 20 test 32x32 images packed as CIFAR-10's train.npz/test.npz, each class
    shifted in colour (something to learn in one epoch)."""
    import numpy as np

    from dnal_core.data import pack_jpeg_npz

    d = tmp_path_factory.mktemp("synthetic_cifar")
    rng = np.random.default_rng(1)
    for split, n in (("train", 80), ("test", 20)):
        labels = np.arange(n) % 10
        imgs = rng.integers(0, 120, (n, 32, 32, 3)) + labels[:, None, None, None] * 12
        pack_jpeg_npz(d / f"{split}.npz", imgs.astype(np.uint8), labels)
    return d


def pytest_terminal_summary(terminalreporter):
    """Tests that choose how to compare (exact on one CPU kind, structural elsewhere: the
    committed smoke results) say which comparison they made, in the summary."""
    lines = [f"{r.nodeid}: {v}" for r in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
        "failed", []) for k, v in getattr(r, "user_properties", []) if k == "comparison"]
    if lines:
        terminalreporter.section("comparisons made")
        for line in lines:
            terminalreporter.write_line(line)
