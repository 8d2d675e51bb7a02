import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """The packed-JPEG CIFAR-10 copy, found through DNAL_DATA (CI sets it)."""
    d = os.environ.get("DNAL_DATA")
    if not d or not (Path(d) / "train.npz").is_file():
        pytest.skip("DNAL_DATA does not point at the cifar10-jpeg folder")
    return Path(d)
