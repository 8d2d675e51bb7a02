"""CIFAR-10 readers (three layouts), the cache, the subset, and the device-resident loader."""
import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dnal_core.data import (CIFAR10_MEAN, CIFAR10_STD, TensorLoader, augment, cifar10_loaders,
                            find_format, load_cifar10, pack_jpeg_npz)
from dnal_core.data.cifar import cache_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DNAL_CACHE", str(tmp_path / "cache"))


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10


def _smooth_images(n, seed=0):
    """Images JPEG keeps (a colour, a gradient and a low-frequency wave per image; noise would
    lose 48 of 255 per pixel at quality 75), each far from the others: a decoded image can be
    matched to its source tightly, and to no other."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    out = []
    for _ in range(n):
        c0, (gy, gx) = rng.uniform(40, 215, 3), rng.uniform(-40, 40, (2, 3))
        f, ph, amp = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi), rng.uniform(0, 30, 3)
        img = c0 + gy * yy[..., None] + gx * xx[..., None] + amp * np.sin(2 * np.pi * f * (xx + yy)[..., None] + ph)
        out.append(np.clip(img, 0, 255).round().astype(np.uint8))
    return np.stack(out), np.arange(n) % 10


def _listing(d):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*"))


def test_three_layouts_decode_to_the_same_arrays(tmp_path):
    imgs, labels = _smooth_images(30)
    # torchvision's pickled batches (exact pixels)
    tv = tmp_path / "tv" / "cifar-10-batches-py"
    tv.mkdir(parents=True)
    chunks = np.array_split(np.arange(30), 5)
    for i, c in enumerate(chunks, 1):
        with open(tv / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": imgs[c].transpose(0, 3, 1, 2).reshape(len(c), -1),
                         "labels": labels[c].tolist()}, f)
    with open(tv / "test_batch", "wb") as f:
        pickle.dump({"data": imgs[:10].transpose(0, 3, 1, 2).reshape(10, -1), "labels": labels[:10].tolist()}, f)
    # ImageFolder with PNG files (exact pixels)
    folder = tmp_path / "folder"
    for split, idx in (("train", range(30)), ("test", range(10))):
        for i in idx:
            d = folder / split / f"c{labels[i]}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(imgs[i]).save(d / f"{i:05d}.png")
    # packed JPEG (lossy: compare with Pillow's decoding of the same bytes)
    packed = tmp_path / "npz"
    pack_jpeg_npz(packed / "train.npz", imgs, labels)
    pack_jpeg_npz(packed / "test.npz", imgs[:10], labels[:10])

    assert find_format(tmp_path / "tv")[0] == "torchvision"
    assert find_format(tv)[0] == "torchvision"
    assert find_format(folder)[0] == "imagefolder"
    assert find_format(packed)[0] == "npz"
    a = load_cifar10(tmp_path / "tv", train=True)
    assert torch.equal(a.images, torch.from_numpy(imgs)) and torch.equal(a.labels, torch.from_numpy(labels))
    b = load_cifar10(folder, train=True)  # ImageFolder order: by class, then file name
    order = np.lexsort((np.arange(30), labels))
    assert torch.equal(b.images, torch.from_numpy(imgs[order]))
    assert b.labels.tolist() == labels[order].tolist() and b.classes[0] == "c0"
    c = load_cifar10(packed, train=False)
    with np.load(packed / "test.npz") as z:
        o = z["offsets"]
        ref = np.stack([np.asarray(Image.open(io.BytesIO(z["jpeg"][o[i]:o[i + 1]].tobytes())).convert("RGB"))
                        for i in range(10)])
    assert torch.equal(c.images, torch.from_numpy(ref)) and c.classes[0] == "airplane"
    # each decoded image is its own source image, JPEG-compressed: mean error per image measured
    # 1.3-3.6 of 255 (chroma subsampling) against its source, >= 21.9 against any other of the
    # set and 17.1 against flat grey; a swapped or shifted image fails
    err = np.abs(c.images.numpy()[:, None].astype(int) - imgs[None, :10].astype(int)).mean(axis=(2, 3, 4))
    assert err.diagonal().max() < 5, err.diagonal()
    assert (err + np.eye(10) * 1e9).min() > 15, err
    assert (np.abs(c.images.numpy().astype(int) - 128).mean(axis=(1, 2, 3)) > 15).all()


def test_cache_lives_outside_the_data_and_follows_the_source(tmp_path):
    imgs, labels = _images(40)
    data = tmp_path / "data"
    pack_jpeg_npz(data / "train.npz", imgs, labels)
    before = _listing(data)
    a = load_cifar10(data, train=True, per_class=2)
    assert _listing(data) == before  # nothing written beside the data
    cached = list(cache_dir().glob("cifar10-train-*.npz"))
    assert len(cached) == 1 and not list(cache_dir().glob("*.tmp"))
    assert a.images.shape == (20, 32, 32, 3) and a.labels.tolist() == list(range(10)) * 2
    # a second load reads the cache: a damaged source is not even opened
    stamp, good = os.stat(data / "train.npz"), (data / "train.npz").read_bytes()
    (data / "train.npz").write_bytes(b"x" * len(good))  # same size, restored mtime
    os.utime(data / "train.npz", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert torch.equal(load_cifar10(data, train=True, per_class=2).images, a.images)
    # a changed source (new size/mtime) gets a new cache entry
    pack_jpeg_npz(data / "train.npz", imgs[::-1].copy(), labels[::-1].copy())
    b = load_cifar10(data, train=True, per_class=2)
    assert len(list(cache_dir().glob("cifar10-train-*.npz"))) == 2
    assert not torch.equal(a.images, b.images)


@pytest.mark.parametrize("content", [b"not a zip file", b"PK\x03\x04" + b"\0" * 50])
def test_corrupt_npz_names_the_file(tmp_path, content):
    (tmp_path / "train.npz").write_bytes(content)
    with pytest.raises(ValueError, match="cannot read .*train.npz"):
        load_cifar10(tmp_path, train=True)


def test_inconsistent_npz_and_missing_data(tmp_path):
    np.savez(tmp_path / "train.npz", jpeg=np.zeros(10, np.uint8), offsets=np.array([0, 5, 20]),
             labels=np.zeros(2, np.uint8), classes=np.array(["a"]))
    with pytest.raises(ValueError, match="inconsistent"):
        load_cifar10(tmp_path, train=True)
    with pytest.raises(ValueError, match="expected train.npz/test.npz .*ImageFolder"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no CIFAR-10 at .*empty"):
        load_cifar10(tmp_path / "empty")


def _augment_reference(x, dy, dx, flip, pad):
    """One image at a time, the torchvision way: pad, crop, flip."""
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    out = []
    for i in range(len(x)):
        crop = xp[i, :, dy[i]:dy[i] + x.shape[2], dx[i]:dx[i] + x.shape[3]]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def test_batched_augmentation_matches_per_image_crop_and_flip():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    dy, dx = torch.randint(0, 9, (16,), generator=g), torch.randint(0, 9, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    assert torch.equal(augment(x, dy, dx, flip, 4), _augment_reference(x, dy, dx, flip, 4))
    centre = augment(x, torch.full((16,), 4), torch.full((16,), 4), torch.zeros(16, dtype=torch.bool), 4)
    assert torch.equal(centre, x)  # offset (pad, pad) without flip is the identity


def test_loader_epochs_are_reproducible_and_normalised():
    imgs, labels = _images(50)
    mk = lambda: TensorLoader(torch.from_numpy(imgs), torch.from_numpy(labels), 16, train=True,
                              mean=CIFAR10_MEAN, std=CIFAR10_STD, seed=7)
    a, b = mk(), mk()
    assert len(a) == 3  # 50 // 16: the incomplete last batch is dropped
    a.set_epoch(2)
    first = [(x.clone(), y.clone()) for x, y in a]
    a.set_epoch(3)
    other = [x for x, _ in a]
    b.set_epoch(2)  # a fresh loader (a resumed run) draws the same epoch 2
    for (x, y), (x2, y2) in zip(first, b):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(first[0][0], other[0])
    assert first[0][0].dtype == torch.float32 and first[0][0].shape == (16, 3, 32, 32)
    test = TensorLoader(torch.from_numpy(imgs), torch.from_numpy(labels), 16, train=False,
                        mean=CIFAR10_MEAN, std=CIFAR10_STD)
    xs = torch.cat([x for x, _ in test])
    assert len(test) == 4 and xs.shape[0] == 50  # in order, every image, no augmentation
    # normalised with CIFAR's per-channel mean and std (RGB order): a loader that ignores them,
    # swaps the channels' constants or divides before subtracting fails here
    raw = torch.from_numpy(imgs).permute(0, 3, 1, 2).double() / 255
    m, sd = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (CIFAR10_MEAN, CIFAR10_STD))
    torch.testing.assert_close(xs.double(), (raw - m) / sd, rtol=0, atol=1e-5)
    # the training batches too: undoing the normalisation gives whole pixel values of the set
    px = (first[0][0].double() * sd + m) * 255
    assert (px - px.round()).abs().max() < 1e-3 and px.min() >= -1e-3 and px.max() <= 255 + 1e-3


def test_real_cifar_subset(cifar_dir):
    train, test = cifar10_loaders(cifar_dir, 8, 10, train_per_class=2, test_per_class=1)
    assert train.num_samples == 20 and test.num_samples == 10
    assert torch.bincount(train.labels).tolist() == [2] * 10
    x, y = next(iter(test))
    assert x.shape == (10, 3, 32, 32) and sorted(y.tolist()) == list(range(10))


def test_cifar_constants_normalise_the_real_data(cifar_dir):
    """CIFAR10_MEAN/STD are the real training set's: the first 1,000 training images of each
    class, normalised, have per-channel mean 0 and std 1 (measured on the packed JPEG copy:
    |mean| <= 0.0081, |std - 1| <= 0.0039; ImageNet's constants would give a mean of 0.117 and a
    std of 1.079 in the green channel)."""
    s = load_cifar10(cifar_dir, train=True, per_class=1000)
    x = s.images.permute(0, 3, 1, 2).double() / 255
    m, sd = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (CIFAR10_MEAN, CIFAR10_STD))
    z = (x - m) / sd
    mean, std = z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3))
    assert mean.abs().max() < 0.02 and (std - 1).abs().max() < 0.02, (mean, std)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_loader_draws_what_the_cpu_loader_draws():
    imgs, labels = _images(64)
    kw = dict(train=True, mean=CIFAR10_MEAN, std=CIFAR10_STD, seed=1)
    cpu = TensorLoader(torch.from_numpy(imgs), torch.from_numpy(labels), 32, device="cpu", **kw)
    gpu = TensorLoader(torch.from_numpy(imgs), torch.from_numpy(labels), 32, device="cuda", **kw)
    for (x, y), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and torch.equal(y, yg.cpu())
        torch.testing.assert_close(x, xg.cpu())
