"""CIFAR-10 from any of three layouts, decoded once to uint8 (N, 32, 32, 3) and cached.

Accepted layouts of the folder ``root`` (checked in this order):
  1. packed JPEG: ``train.npz`` / ``test.npz`` with ``jpeg`` (uint8, every image's JPEG file
     concatenated), ``offsets`` (int64, n+1), ``labels`` (uint8, n), ``classes`` (str, 10);
  2. torchvision's ``cifar-10-batches-py`` (``root`` itself or a child of it);
  3. an ImageFolder tree: ``train/<class>/*`` and ``test/<class>/*`` (32x32 images).
With ``download=True`` and none of these present, torchvision downloads layout 2 into ``root``.

The decoded arrays are cached under ``$DNAL_CACHE`` (default ``~/.cache/dnal``), never beside
the data (the data folder may be read-only), keyed by the source files' size and mtime and by
the subset, and written atomically. A per-class subset decodes only the images it keeps.
"""
from __future__ import annotations

import hashlib
import io as _io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path
from .loader import TensorLoader

# Per-channel mean and std of the CIFAR-10 training images (RGB, pixel values in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
FORMATS = ("train.npz/test.npz (packed JPEG), cifar-10-batches-py/ (torchvision) "
           "or train/<class>/, test/<class>/ (ImageFolder)")
_TV_FILES = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
_IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageSet:
    """Decoded images: ``images`` uint8 (N, H, W, 3), ``labels`` int64 (N,), class names."""
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def cache_dir() -> Path:
    return Path(os.environ.get("DNAL_CACHE") or Path.home() / ".cache" / "dnal")


def find_format(root: str | Path) -> tuple[str, Path]:
    """(format, folder) of the CIFAR-10 copy at ``root``; ValueError naming the formats."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"no CIFAR-10 at {root}: not a readable folder; expected {FORMATS}")
    if (root / "train.npz").is_file() or (root / "test.npz").is_file():
        return "npz", root
    for d in (root, root / "cifar-10-batches-py"):
        if (d / "test_batch").is_file() or (d / "data_batch_1").is_file():
            return "torchvision", d
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "imagefolder", root
    raise ValueError(f"no CIFAR-10 at {root}: expected {FORMATS}")


def load_cifar10(root: str | Path, train: bool = True, per_class: int | None = None,
                 download: bool = False) -> ImageSet:
    """The training (or test) split at ``root``; ``per_class`` keeps the first n of each class."""
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    try:
        fmt, folder = find_format(root)
    except ValueError:
        if not download:
            raise
        _download(root)
        fmt, folder = find_format(root)
    sources = _sources(fmt, folder, train)
    key = hashlib.sha256(repr((fmt, train, per_class, [(str(p.resolve()), *_stamp(p))
                                                       for p in sources])).encode()).hexdigest()[:20]
    cached = cache_dir() / f"cifar10-{'train' if train else 'test'}-{key}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as z:
                return _to_set(z["images"], z["labels"], [str(c) for c in z["classes"]])
        except Exception:  # a damaged cache is rebuilt, never trusted
            pass
    reader = {"npz": _read_npz, "torchvision": _read_torchvision, "imagefolder": _read_folder}[fmt]
    images, labels, classes = reader(sources, per_class)
    if images.ndim != 4 or images.shape[3] != 3 or len(images) != len(labels) or not len(labels):
        raise ValueError(f"{folder}: decoded images have shape {images.shape}, expected (N, H, W, 3)")
    try:
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, images=images, labels=labels, classes=np.array(classes))
    except OSError:  # an unwritable cache only costs a second decode
        pass
    return _to_set(images, labels, classes)


def cifar10_loaders(root: str | Path, batch_size: int = 128, test_batch_size: int = 500, *,
                    device: str | torch.device = "cpu", seed: int = 0,
                    train_per_class: int | None = None, test_per_class: int | None = None,
                    download: bool = False) -> tuple[TensorLoader, TensorLoader]:
    """(train, test) loaders over the whole set held on ``device``; the training loader applies
    the paper's augmentation (4-pixel-padded random crop, horizontal flip) per batch."""
    tr = load_cifar10(root, True, train_per_class, download)
    te = load_cifar10(root, False, test_per_class, download)
    common = dict(mean=CIFAR10_MEAN, std=CIFAR10_STD, device=device, seed=seed)
    return (TensorLoader(tr.images, tr.labels, batch_size, train=True, **common),
            TensorLoader(te.images, te.labels, test_batch_size, train=False, **common))


def pack_jpeg_npz(path: str | Path, images: np.ndarray, labels, classes=CIFAR10_CLASSES,
                  quality: int = 75) -> None:
    """Write ``images`` (uint8 (N, H, W, 3)) in the packed-JPEG .npz layout (atomically): how a
    subset or a synthetic set for tests is made."""
    from PIL import Image

    blobs = []
    for im in np.asarray(images, np.uint8):
        buf = _io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, jpeg=np.concatenate(blobs), offsets=offsets,
                     labels=np.asarray(labels, np.uint8), classes=np.array(classes))


# --- readers: each returns (uint8 (N, H, W, 3), int64 (N,), class names) --------------------------

def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _sources(fmt: str, folder: Path, train: bool) -> list[Path]:
    split = "train" if train else "test"
    if fmt == "npz":
        files = [folder / f"{split}.npz"]
    elif fmt == "torchvision":
        files = [folder / n for n in _TV_FILES[train]]
    else:
        d = folder / split
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in _IMG_EXT) if d.is_dir() else []
        if not files:
            raise ValueError(f"no images under {d}: expected {FORMATS}")
    for p in files:
        if not os.access(p, os.R_OK):
            raise ValueError(f"cannot read {p}: missing or unreadable; expected {FORMATS}")
    return files


def _subset(labels: np.ndarray, per_class: int | None) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class, in file order."""
    if per_class is None:
        return np.arange(len(labels))
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class]
                                   for c in np.unique(labels)]))


def _decode(data: bytes, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(_io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:
        raise ValueError(f"cannot decode an image in {where}: {e}") from None


def _read_npz(sources, per_class):
    (path,) = sources
    try:
        with np.load(path, allow_pickle=False) as z:
            jpeg, offsets, labels = z["jpeg"], z["offsets"].astype(np.int64), z["labels"]
            classes = [str(c) for c in z["classes"]] if "classes" in z.files else list(CIFAR10_CLASSES)
    except Exception as e:
        raise ValueError(f"cannot read {path}: {type(e).__name__}: {e}; expected {FORMATS}") from None
    if (jpeg.dtype != np.uint8 or offsets.shape != (len(labels) + 1,) or offsets[0] != 0
            or offsets[-1] != len(jpeg) or np.any(np.diff(offsets) <= 0)):
        raise ValueError(f"{path}: inconsistent 'jpeg'/'offsets'/'labels' arrays (see the format in "
                         "dnal_core/data/cifar.py)")
    idx = _subset(labels, per_class)
    images = np.stack([_decode(jpeg[offsets[i]:offsets[i + 1]].tobytes(), str(path)) for i in idx])
    return images, labels[idx].astype(np.int64), classes


def _read_torchvision(sources, per_class):
    images, labels = [], []
    for path in sources:
        try:
            with open(path, "rb") as f:  # torchvision's own format is a pickle
                entry = pickle.load(f, encoding="latin1")
            data, lab = entry["data"], entry.get("labels", entry.get("fine_labels"))
            images.append(np.asarray(data, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(lab, np.int64))
        except Exception as e:
            raise ValueError(f"cannot read {path}: {type(e).__name__}: {e}; expected {FORMATS}") from None
    images, labels = np.concatenate(images), np.concatenate(labels)
    meta = sources[0].parent / "batches.meta"
    classes = list(CIFAR10_CLASSES)
    if meta.is_file():
        try:
            with open(meta, "rb") as f:
                classes = list(pickle.load(f, encoding="latin1")["label_names"])
        except Exception:
            pass
    idx = _subset(labels, per_class)
    return np.ascontiguousarray(images[idx]), labels[idx], classes


def _read_folder(sources, per_class):
    # class = first folder below the split folder; sources are sorted by path, so by class name
    # (ImageFolder's convention: sorted names, CIFAR-10's are already in alphabetical order)
    split_dir = next(p for p in sources[0].parents if p.name in ("train", "test"))
    class_of = [p.relative_to(split_dir).parts[0] for p in sources]
    classes = sorted(set(class_of))
    labels = np.array([classes.index(c) for c in class_of], np.int64)
    idx = _subset(labels, per_class)
    images = [_decode(sources[i].read_bytes(), str(sources[i])) for i in idx]
    if len({im.shape for im in images}) != 1:
        raise ValueError(f"{split_dir}: images differ in size; CIFAR-10 images are 32x32")
    return np.stack(images), labels[idx], classes


def _download(root) -> None:
    try:
        from torchvision.datasets import CIFAR10

        for train in (True, False):
            CIFAR10(str(root), train=train, download=True)
    except Exception as e:
        raise ValueError(f"no CIFAR-10 at {root} and the download failed ({type(e).__name__}: {e}); "
                         f"expected {FORMATS}") from None


def _to_set(images: np.ndarray, labels: np.ndarray, classes) -> ImageSet:
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)),
                    torch.from_numpy(np.asarray(labels, np.int64)), tuple(classes))
