"""Continual classification benchmarks as lists of :class:`Task`, read from the datasets' own files.

Nothing is downloaded: each loader reads the files a user put in ``data_dir`` and, when one is
missing, raises :class:`DatasetNotFoundError` naming the file, where it was looked for and the
dataset's home page. Splits, task orders, label maps and input normalizations follow the code the
paper's numbers come from (github.com/Yujun-Shi/BLIP ``ImageClassification/src/dataloaders``,
itself HAT's and UCB's loaders; mini-ImageNet from ACL, facebookresearch/Adversarial-Continual-
Learning). Their ``sklearn.utils.shuffle(x, random_state=s)`` is ``x[RandomState(s).permutation(n)]``,
so the same task orders, permutations and validation splits are reproduced here with numpy alone.

======================  =====  ===================================================================
benchmark               tasks  files under ``data_dir``
======================  =====  ===================================================================
``mnist5``              5      MNIST IDX: ``train-images-idx3-ubyte[.gz]`` ... (also ``mnist/``,
                               ``MNIST/raw/``)
``pmnist``              10     the same MNIST files
``cifar-alt``           10     ``cifar-10-batches-py/`` and ``cifar-100-python/`` (python pickles)
``mixture5``            5      CIFAR-10 as above, MNIST as above, ``fashion-mnist/`` (IDX),
                               ``svhn/train_32x32.mat`` + ``test_32x32.mat``, ``notmnist/`` (see
                               :func:`load_notmnist`)
``miniimagenet``        20     ``miniimagenet/`` (see :func:`load_miniimagenet`)
``digits5``, ``pdigits``  5    none: scikit-learn's bundled 8x8 digits
======================  =====  ===================================================================

Validation sets are carved from the training set with the authors' seeded split (the first
``int(valid_fraction * n)`` of ``RandomState(seed).permutation(n)``); ``valid_fraction=0`` uses the
training set itself for validation, as the authors' MNIST loaders do.

The pickle files (CIFAR, notMNIST, mini-ImageNet) are read with :mod:`pickle`, like torchvision
does: only open files you trust.
"""
from __future__ import annotations

from ..errors import UserError

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "Task",
    "DatasetNotFoundError",
    "BENCHMARKS",
    "load_benchmark",
    "read_idx",
    "mnist5",
    "pmnist",
    "cifar_alt",
    "mixture5",
    "miniimagenet",
    "digits5",
    "pdigits",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "load_cifar100",
    "load_svhn",
    "load_notmnist",
    "load_miniimagenet",
    "load_digits",
]

URLS = {
    "mnist": "http://yann.lecun.com/exdb/mnist/",
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist",
    "cifar": "https://www.cs.toronto.edu/~kriz/cifar.html",
    "svhn": "http://ufldl.stanford.edu/housenumbers/",
    "notmnist": "http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html",
    "miniimagenet": "https://github.com/facebookresearch/Adversarial-Continual-Learning (mini-ImageNet pickles)",
}

# Normalization constants of the authors' loaders (mean, std per channel, on pixels in [0, 1]).
MNIST_NORM = ((0.1307,), (0.3081,))
MNIST_PADDED_NORM = ((0.1,), (0.2752,))  # MNIST padded to 32x32 (mixture5)
FASHION_PADDED_NORM = ((0.2190,), (0.3318,))
NOTMNIST_NORM = ((0.4254,), (0.4501,))
CIFAR_NORM = ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255))
SVHN_NORM = ((0.4377, 0.4438, 0.4728), (0.198, 0.201, 0.197))
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class DatasetNotFoundError(FileNotFoundError, UserError):
    """A dataset file is missing. Also a ``ValueError``, so the CLI reports it as bad input."""


@dataclass
class Task:
    """One task of a benchmark: its three splits and its number of classes.

    :param name: short name, used in file names and TensorBoard keys (e.g. ``"mnist-0-1"``).
    :param x_train: float32 inputs, batch-first (e.g. ``(N, 1, 28, 28)``), normalized.
    :param y_train: int64 labels in ``0 .. n_classes - 1`` (relabelled within the task).
    :param n_classes: size of the task's output head.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    def __post_init__(self) -> None:
        for split in ("train", "valid", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.float32 or y.dtype != torch.int64:
                raise UserError(f"task {self.name}: {split} inputs must be float32 and labels int64, "
                                 f"got {x.dtype} and {y.dtype}")
            if len(x) != len(y) or len(x) == 0:
                raise UserError(f"task {self.name}: {split} split has {len(x)} inputs and {len(y)} labels")
            if int(y.min()) < 0 or int(y.max()) >= self.n_classes:
                raise UserError(f"task {self.name}: {split} labels must lie in 0..{self.n_classes - 1}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


# --------------------------------------------------------------------------------------------------
# File readers (real formats)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped if its name ends in ``.gz``.

    Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each
    dimension as a big-endian int32 (magic 2051 = 0x00000803 for image files, 2049 for labels).

    :raises ValueError: for a file that is not IDX or whose size disagrees with its header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - offset != count * dtype.itemsize:
        raise UserError(f"{path}: header says {dims} of {dtype} but the file holds "
                         f"{len(raw) - offset} bytes of data (truncated download?)")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def _find(dirs: Sequence[Path], name: str, *, what: str, url: str, gz: bool = False) -> Path:
    """The first of ``dir / name`` (or ``name.gz``) that exists, else a clear error."""
    names = [name, name + ".gz"] if gz else [name]
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    shown = f"{name}[.gz]" if gz else name
    where = dirs[0] if len(dirs) == 1 else f"{dirs[0]} (also searched: {', '.join(str(d) for d in dirs[1:])})"
    raise DatasetNotFoundError(f"{what}: file {shown} not found in {where}. Get it from {url} and put it there.")


def _require_dir(data_dir: str | Path | None, benchmark: str) -> Path:
    if data_dir is None:
        raise UserError(f"benchmark {benchmark!r} reads its dataset files from a folder: pass --data-dir DIR "
                         "(see blip_rl/classification/datasets.py for the expected layout)")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"data directory {path} does not exist (benchmark {benchmark!r})")
    return path


def _idx_pair(dirs: Sequence[Path], split: str, *, what: str, url: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_find(dirs, f"{prefix}-images-idx3-ubyte", what=what, url=url, gz=True))
    labels = read_idx(_find(dirs, f"{prefix}-labels-idx1-ubyte", what=what, url=url, gz=True))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{what} {split}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels.astype(np.int64)


def load_mnist(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST as uint8 ``(N, 28, 28)`` images and int64 labels: ``{"train": ..., "test": ...}``.

    Looks in ``data_dir``, ``data_dir/mnist`` and ``data_dir/MNIST/raw`` (torchvision's layout) for
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally gzipped.
    """
    d = Path(data_dir)
    dirs = [d, d / "mnist", d / "MNIST" / "raw"]
    return {s: _idx_pair(dirs, s, what="MNIST", url=URLS["mnist"]) for s in ("train", "test")}


def load_fashion_mnist(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST (same IDX file names as MNIST) from ``data_dir/fashion-mnist`` (or
    ``fashion_mnist``, ``FashionMNIST/raw``)."""
    d = Path(data_dir)
    dirs = [d / "fashion-mnist", d / "fashion_mnist", d / "FashionMNIST" / "raw"]
    return {s: _idx_pair(dirs, s, what="Fashion-MNIST", url=URLS["fashion-mnist"]) for s in ("train", "test")}


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if b"data" not in d or label_key not in d:
        raise UserError(f"{path} is not a CIFAR python batch (needs keys b'data' and {label_key!r})")
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return x, np.asarray(d[label_key], dtype=np.int64)


def load_cifar10(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``):
    uint8 ``(N, 3, 32, 32)`` and int64 labels."""
    d = Path(data_dir) / "cifar-10-batches-py"
    what, url = "CIFAR-10 (python version)", URLS["cifar"]
    parts = [_cifar_batch(_find([d], f"data_batch_{i}", what=what, url=url), b"labels") for i in range(1, 6)]
    test = _cifar_batch(_find([d], "test_batch", what=what, url=url), b"labels")
    return {"train": (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])), "test": test}


def load_cifar100(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CIFAR-100 from ``data_dir/cifar-100-python/`` (``train``, ``test``), fine labels 0..99."""
    d = Path(data_dir) / "cifar-100-python"
    what, url = "CIFAR-100 (python version)", URLS["cifar"]
    return {s: _cifar_batch(_find([d], s, what=what, url=url), b"fine_labels") for s in ("train", "test")}


def load_svhn(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """SVHN (format 2, cropped digits) from ``train_32x32.mat`` / ``test_32x32.mat`` in
    ``data_dir/svhn`` or ``data_dir``: uint8 ``(N, 3, 32, 32)``; the label 10 of digit 0 becomes 0
    (as torchvision does)."""
    d = Path(data_dir)
    what, url = "SVHN (cropped digits, format 2)", URLS["svhn"]
    paths = {s: _find([d / "svhn", d], f"{s}_32x32.mat", what=what, url=url) for s in ("train", "test")}
    from ..errors import require

    loadmat = require("scipy.io", extra="classification", package="scipy", purpose="reading SVHN's .mat files").loadmat
    out = {}
    for s, path in paths.items():
        m = loadmat(str(path))
        x = np.ascontiguousarray(np.asarray(m["X"], dtype=np.uint8).transpose(3, 2, 0, 1))  # (H,W,C,N) -> NCHW
        y = np.asarray(m["y"], dtype=np.int64).reshape(-1) % 10
        out[s] = (x, y)
    return out


def _read_image_folders(root: Path, *, size: int | None, mode: str,
                        what: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images under ``root/<class>/*`` (sorted class names -> labels 0..), as uint8 arrays."""
    from ..errors import require

    Image = require("PIL.Image", extra=None, package="pillow",
                    purpose=f"reading {what} image folders (or the .npz arrays instead)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert(mode)
                    if size is not None and im.size != (size, size):
                        im = im.resize((size, size), Image.BILINEAR)
                    xs.append(np.asarray(im, dtype=np.uint8))
            except OSError:
                continue  # notMNIST ships a few unreadable files; skip them as everyone does
            ys.append(label)
    if not xs:
        raise DatasetNotFoundError(f"{what}: no images found under {root}/<class>/")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), classes


def _npz_splits(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path) as z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z]
        if missing:
            raise UserError(f"{path} lacks the arrays {missing} (expected x_train, y_train, x_test, y_test)")
        return {s: (np.asarray(z[f"x_{s}"]), np.asarray(z[f"y_{s}"], dtype=np.int64)) for s in ("train", "test")}


def load_notmnist(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """notMNIST letters A-J as uint8 ``(N, H, W)`` (28 or 32 pixels) and labels 0..9.

    ``data_dir/notmnist/`` holds one of (first found wins):

    - ``notmnist_train.pkl`` and ``notmnist_test.pkl``: the authors' files (github.com/
      nkundiushuti/notmnist_convert), each a dict with ``features`` (N, 1, H, W) uint8 and ``labels``;
    - ``notmnist.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test``;
    - folders ``train/A .. train/J`` and ``test/A .. test/J`` of PNG images (needs Pillow).
    """
    d = Path(data_dir) / "notmnist"
    source = _notmnist_source(d)
    if source == "pkl":
        out = {}
        for s in ("train", "test"):
            path = _find([d], f"notmnist_{s}.pkl", what="notMNIST", url=URLS["notmnist"])
            with open(path, "rb") as f:
                obj = pickle.load(f, encoding="latin1")
            out[s] = (np.asarray(obj["features"], dtype=np.uint8), np.asarray(obj["labels"], dtype=np.int64))
    elif source == "npz":
        out = _npz_splits(d / "notmnist.npz")
    else:
        out = {}
        for s in ("train", "test"):
            x, y, classes = _read_image_folders(d / s, size=None, mode="L", what="notMNIST")
            if classes != list("ABCDEFGHIJ"):
                raise UserError(f"notMNIST: {d / s} must hold exactly the folders A..J, found {classes}")
            out[s] = (x, y)
    for s, (x, y) in out.items():
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[1] not in (28, 32):
            raise UserError(f"notMNIST {s}: expected (N, 28|32, 28|32) grey images, got {x.shape}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise UserError(f"notMNIST {s}: labels must be 0..9 (A..J)")
        out[s] = (x, y)
    return out


def _notmnist_source(d: Path) -> str:
    """Which of notMNIST's accepted layouts ``d`` holds: ``"pkl"``, ``"npz"`` or ``"folders"``."""
    if (d / "notmnist_train.pkl").is_file() or (d / "notmnist_test.pkl").is_file():
        return "pkl"
    if (d / "notmnist.npz").is_file():
        return "npz"
    if (d / "train").is_dir() and (d / "test").is_dir():
        return "folders"
    raise DatasetNotFoundError(
        f"notMNIST: none of {d / 'notmnist_train.pkl'} (+ notmnist_test.pkl), {d / 'notmnist.npz'}, "
        f"or the folders {d / 'train'}/A..J and {d / 'test'}/A..J exist. Get notMNIST from "
        f"{URLS['notmnist']} (the authors' pickles: github.com/nkundiushuti/notmnist_convert)."
    )


def load_miniimagenet(data_dir: str | Path, *, image_size: int = 84) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mini-ImageNet as uint8 ``(N, 3, H, W)`` and labels 0..C-1 (C = 100 for the real set).

    ``data_dir/miniimagenet/`` holds one of (first found wins):

    - ``train.pkl`` and ``test.pkl``: ACL's files, each a dict with ``images`` (N, H, W, 3) uint8
      and ``labels`` (class ids 0..99) — the split the paper uses;
    - ``miniimagenet.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (images NHWC or
      NCHW uint8);
    - folders ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (the same class folder names in
      both; resized to ``image_size``; needs Pillow).

    The full set is 60,000 images; as float32 at 84x84 that is ~5 GB of memory.
    """
    d = Path(data_dir) / "miniimagenet"
    if (d / "train.pkl").is_file() or (d / "test.pkl").is_file():
        out = {}
        for s in ("train", "test"):
            obj = _unpickle(_find([d], f"{s}.pkl", what="mini-ImageNet", url=URLS["miniimagenet"]))
            obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
            out[s] = (np.asarray(obj["images"], dtype=np.uint8), np.asarray(obj["labels"], dtype=np.int64))
    elif (d / "miniimagenet.npz").is_file():
        out = _npz_splits(d / "miniimagenet.npz")
    elif (d / "train").is_dir() and (d / "test").is_dir():
        out, names = {}, {}
        for s in ("train", "test"):
            x, y, names[s] = _read_image_folders(d / s, size=image_size, mode="RGB", what="mini-ImageNet")
            out[s] = (x, y)
        if names["train"] != names["test"]:
            raise UserError(f"mini-ImageNet: {d / 'train'} and {d / 'test'} must hold the same class folders")
    else:
        raise DatasetNotFoundError(
            f"mini-ImageNet: none of {d / 'train.pkl'} (+ test.pkl), {d / 'miniimagenet.npz'}, or the folders "
            f"{d / 'train'}/<class>/ and {d / 'test'}/<class>/ exist. Get it from {URLS['miniimagenet']}."
        )
    for s, (x, y) in out.items():
        if x.ndim != 4:
            raise UserError(f"mini-ImageNet {s}: expected 4-d images, got shape {x.shape}")
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW
        out[s] = (x, y)
    return out


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download): float ``(N, 8, 8)`` in 0..16."""
    from ..errors import require

    require("sklearn", extra="classification", package="scikit-learn",
            purpose="the digits benchmarks (scikit-learn's bundled digits)")
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Building tasks

def _normalize(x: np.ndarray, scale: float, norm: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
    """uint8-like ``(N, C, H, W)`` -> float32 ((x / scale) - mean) / std per channel."""
    t = torch.as_tensor(np.ascontiguousarray(x)).to(torch.float32).div_(scale)
    mean = torch.tensor(norm[0], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(norm[1], dtype=torch.float32).view(1, -1, 1, 1)
    return t.sub_(mean).div_(std)


def _pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad ``(N, H, W)`` images symmetrically to ``size`` pixels (torchvision's Pad(2) for 28->32)."""
    p = (size - x.shape[-1]) // 2
    if p < 0 or x.shape[-1] + 2 * p != size:
        raise UserError(f"cannot pad {x.shape[-1]}-pixel images to {size}")
    return np.pad(x, ((0, 0), (p, p), (p, p))) if p else x


def _split_valid(x: torch.Tensor, y: torch.Tensor, valid_fraction: float, seed: int):
    """The authors' split: first ``int(fraction * n)`` of ``RandomState(seed).permutation(n)`` validate."""
    if not 0 <= valid_fraction < 1:
        raise UserError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if valid_fraction == 0:
        return x, y, x, y  # the authors' MNIST loaders validate on the training set itself
    perm = torch.as_tensor(np.random.RandomState(seed).permutation(len(x)))
    n_valid = int(valid_fraction * len(x))
    if n_valid == 0 or n_valid == len(x):
        raise UserError(f"valid_fraction {valid_fraction} of {len(x)} training samples leaves an empty split")
    iv, it = perm[:n_valid], perm[n_valid:]
    return x[it].clone(), y[it].clone(), x[iv].clone(), y[iv].clone()


def _make_task(name: str, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
               n_classes: int, *, valid_fraction: float, seed: int) -> Task:
    xt, yt, xv, yv = _split_valid(train[0], train[1], valid_fraction, seed)
    return Task(name, xt, yt, xv, yv, test[0].contiguous(), test[1].contiguous(), n_classes)


def _subset(x: torch.Tensor, y: np.ndarray, classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of ``classes``, relabelled by their position in ``classes``."""
    y = np.asarray(y)
    mask = np.isin(y, classes)
    remap = np.full(max(int(y.max()), max(classes)) + 1, -1, dtype=np.int64)
    remap[list(classes)] = np.arange(len(classes))
    idx = torch.as_tensor(np.flatnonzero(mask))
    return x[idx], torch.as_tensor(remap[y[mask]])


def _split_by_classes(prefix: str, data: dict[str, tuple[torch.Tensor, np.ndarray]], groups: Sequence[Sequence[int]],
                      *, names: Sequence[str], valid_fraction: float, seed: int) -> list[Task]:
    tasks = []
    for name, classes in zip(names, groups):
        train = _subset(*data["train"], classes)
        test = _subset(*data["test"], classes)
        if len(train[0]) == 0 or len(test[0]) == 0:
            raise UserError(f"{prefix}: no samples of classes {list(classes)} in the files read")
        tasks.append(_make_task(name, train, test, len(classes), valid_fraction=valid_fraction, seed=seed))
    return tasks


def _permutations(num_tasks: int, n_pixels: int, seed: int, *, permute_first: bool) -> list[np.ndarray | None]:
    """Pixel permutations as in the authors' pmnist loader: task i shuffles the pixels with
    ``RandomState(r_i * 100 + i)`` where ``r = RandomState(seed).permutation(num_tasks)``.

    With ``permute_first=False`` (the paper's text: "the first task is the standard MNIST") task 0
    keeps the pixel order; the authors' code permutes all ten.
    """
    r = np.random.RandomState(seed).permutation(num_tasks)
    perms: list[np.ndarray | None] = [np.random.RandomState(int(ri) * 100 + i).permutation(n_pixels)
                                      for i, ri in enumerate(r)]
    if not permute_first:
        perms[0] = None
    return perms


def _permuted_tasks(prefix: str, train: tuple[torch.Tensor, np.ndarray], test: tuple[torch.Tensor, np.ndarray],
                    *, num_tasks: int, permute_first: bool, valid_fraction: float, seed: int) -> list[Task]:
    if num_tasks < 1:
        raise UserError(f"num_tasks must be >= 1, got {num_tasks}")
    shape = train[0].shape[1:]
    n_pixels = int(np.prod(shape))
    n_classes = int(max(train[1].max(), test[1].max())) + 1
    tasks = []
    for i, perm in enumerate(_permutations(num_tasks, n_pixels, seed, permute_first=permute_first)):
        def apply(x: torch.Tensor) -> torch.Tensor:
            if perm is None:
                return x.clone()
            return x.reshape(len(x), -1)[:, torch.as_tensor(perm)].reshape(len(x), *shape)
        tasks.append(_make_task(f"{prefix}-{i}", (apply(train[0]), torch.as_tensor(train[1])),
                                (apply(test[0]), torch.as_tensor(test[1])), n_classes,
                                valid_fraction=valid_fraction, seed=seed))
    return tasks


def _mnist_tensors(data_dir: Path) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    raw = load_mnist(data_dir)
    return {s: (_normalize(x[:, None], 255.0, MNIST_NORM), y) for s, (x, y) in raw.items()}


def mnist5(data_dir: str | Path | None, *, seed: int = 0, valid_fraction: float = 0.1) -> list[Task]:
    """MNIST-5: digits 0/1, 2/3, 4/5, 6/7, 8/9 as five 2-class tasks; inputs (1, 28, 28)."""
    data = _mnist_tensors(_require_dir(data_dir, "mnist5"))
    groups = [(2 * i, 2 * i + 1) for i in range(5)]
    return _split_by_classes("mnist5", data, groups, names=[f"mnist-{a}-{b}" for a, b in groups],
                             valid_fraction=valid_fraction, seed=seed)


def pmnist(data_dir: str | Path | None, *, seed: int = 0, valid_fraction: float = 0.1, num_tasks: int = 10,
           permute_first: bool = False) -> list[Task]:
    """Permuted MNIST: ``num_tasks`` 10-class tasks, each with its fixed seeded pixel permutation.

    :param permute_first: permute task 0 too (the authors' code) instead of keeping it plain MNIST
        (the paper's text).
    """
    data = _mnist_tensors(_require_dir(data_dir, "pmnist"))
    return _permuted_tasks("pmnist", data["train"], data["test"], num_tasks=num_tasks,
                           permute_first=permute_first, valid_fraction=valid_fraction, seed=seed)


def _task_order(n: int, order: str, seed: int) -> list[int]:
    if order == "shuffled":
        return [int(i) for i in np.random.RandomState(seed).permutation(n)]  # HAT's / the authors' order
    if order == "fixed":
        return list(range(n))
    if order == "alternating" and n == 10:
        return [i // 2 + (5 if i % 2 else 0) for i in range(n)]
    allowed = ["shuffled", "fixed"] + (["alternating"] if n == 10 else [])
    raise UserError(f"order must be one of {allowed} ('shuffled' is the authors' seeded order), got {order!r}")


def cifar_alt(data_dir: str | Path | None, *, seed: int = 0, valid_fraction: float = 0.1,
              order: str = "shuffled") -> list[Task]:
    """CIFAR-10/100: CIFAR-10 classes {2i, 2i+1} are 2-class tasks ``cifar10-i`` (i < 5),
    CIFAR-100 classes 20i..20i+19 are 20-class tasks ``cifar100-i``; inputs (3, 32, 32).

    :param order: ``"shuffled"`` (HAT's and the authors' code: the ten tasks in the order
        ``RandomState(seed).permutation(10)``), ``"fixed"`` (the five CIFAR-10 tasks, then the five
        CIFAR-100 ones) or ``"alternating"`` (cifar10-0, cifar100-0, cifar10-1, ...).
    """
    d = _require_dir(data_dir, "cifar-alt")
    c10, c100 = load_cifar10(d), load_cifar100(d)
    tasks: list[Task] = []
    for name, raw, per in (("cifar10", c10, 2), ("cifar100", c100, 20)):
        data = {s: (_normalize(x, 255.0, CIFAR_NORM), y) for s, (x, y) in raw.items()}
        groups = [tuple(range(per * i, per * (i + 1))) for i in range(5)]
        tasks += _split_by_classes(name, data, groups, names=[f"{name}-{i}" for i in range(5)],
                                   valid_fraction=valid_fraction, seed=seed)
    return [tasks[i] for i in _task_order(10, order, seed)]


MIXTURE_NAMES = ("cifar10", "notmnist", "mnist", "svhn", "fashion-mnist")


def mixture5(data_dir: str | Path | None, *, seed: int = 0, valid_fraction: float = 0.15,
             order: str = "shuffled") -> list[Task]:
    """The 5-task mixture: CIFAR-10, notMNIST, MNIST, SVHN, Fashion-MNIST, one 10-class task
    each, all as (3, 32, 32) (grey images zero-padded to 32 and repeated over 3 channels).

    :param order: ``"shuffled"`` (the authors' code: ``RandomState(seed).permutation(5)`` of the
        list above) or ``"fixed"`` (the list's order, as the paper names them).
    """
    d = _require_dir(data_dir, "mixture5")
    order_idx = _task_order(5, order, seed)

    def grey(raw, norm, pad: bool):
        out = {}
        for s, (x, y) in raw.items():
            x = _pad_to(x, 32) if pad else x
            out[s] = (_normalize(x[:, None], 255.0, norm).expand(-1, 3, -1, -1).contiguous(), y)
        return out

    def build(idx: int) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
        if idx == 0:
            return {s: (_normalize(x, 255.0, CIFAR_NORM), y) for s, (x, y) in load_cifar10(d).items()}
        if idx == 1:
            raw = load_notmnist(d)
            return grey(raw, NOTMNIST_NORM, pad=raw["train"][0].shape[-1] != 32)
        if idx == 2:
            return grey(load_mnist(d), MNIST_PADDED_NORM, pad=True)
        if idx == 3:
            return {s: (_normalize(x, 255.0, SVHN_NORM), y) for s, (x, y) in load_svhn(d).items()}
        return grey(load_fashion_mnist(d), FASHION_PADDED_NORM, pad=True)

    # Check every file first, so a missing one is reported before minutes of loading.
    _check_mixture_files(d)
    tasks = []
    for idx in order_idx:
        data = build(idx)
        tasks.append(_make_task(MIXTURE_NAMES[idx], (data["train"][0], torch.as_tensor(data["train"][1])),
                                (data["test"][0], torch.as_tensor(data["test"][1])), 10,
                                valid_fraction=valid_fraction, seed=seed))
    return tasks


def _check_mixture_files(d: Path) -> None:
    c10 = d / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _find([c10], name, what="CIFAR-10 (python version)", url=URLS["cifar"])
    for s in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            _find([d, d / "mnist", d / "MNIST" / "raw"], f"{s}-{kind}-ubyte", what="MNIST", url=URLS["mnist"], gz=True)
            _find([d / "fashion-mnist", d / "fashion_mnist", d / "FashionMNIST" / "raw"], f"{s}-{kind}-ubyte",
                  what="Fashion-MNIST", url=URLS["fashion-mnist"], gz=True)
    for s in ("train", "test"):
        _find([d / "svhn", d], f"{s}_32x32.mat", what="SVHN (cropped digits, format 2)", url=URLS["svhn"])
    _notmnist_source(d / "notmnist")


def miniimagenet(data_dir: str | Path | None, *, seed: int = 0, valid_fraction: float = 0.15, num_tasks: int = 20,
                 image_size: int = 84) -> list[Task]:
    """20-split mini-ImageNet as in ACL (the paper's split): ``RandomState(seed).permutation(C)``
    of the C = 100 classes cut into ``num_tasks`` groups of C / num_tasks classes, labelled by
    their position in the group; ImageNet mean/std normalization. See :func:`load_miniimagenet`."""
    raw = load_miniimagenet(_require_dir(data_dir, "miniimagenet"), image_size=image_size)
    n_classes = int(max(raw["train"][1].max(), raw["test"][1].max())) + 1
    if num_tasks < 1 or n_classes % num_tasks:
        raise UserError(f"mini-ImageNet: {n_classes} classes cannot be split into {num_tasks} equal tasks")
    groups = np.split(np.random.RandomState(seed).permutation(n_classes), num_tasks)
    tasks = []
    for t, classes in enumerate(groups):
        classes = [int(c) for c in classes]
        split = {}
        for s, (x, y) in raw.items():
            mask = np.isin(y, classes)
            xs = _normalize(x[mask], 255.0, IMAGENET_NORM)
            remap = {c: i for i, c in enumerate(classes)}
            split[s] = (xs, torch.as_tensor([remap[int(v)] for v in y[mask]], dtype=torch.int64))
        if len(split["train"][0]) == 0 or len(split["test"][0]) == 0:
            raise UserError(f"mini-ImageNet: task {t} (classes {classes}) has no samples")
        tasks.append(_make_task(f"miniimagenet-{t}", split["train"], split["test"], len(classes),
                                valid_fraction=valid_fraction, seed=seed))
    return tasks


def _digits_tensors(seed: int, test_fraction: float) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """Digits split into train/test by ``RandomState(seed)`` and standardized by the pixel mean/std."""
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = load_digits()
    x = x / 16.0
    x = (x - x.mean()) / x.std()
    perm = np.random.RandomState(seed).permutation(len(x))
    n_test = int(test_fraction * len(x))
    idx = {"test": perm[:n_test], "train": perm[n_test:]}
    return {s: (torch.as_tensor(x[i][:, None], dtype=torch.float32), y[i]) for s, i in idx.items()}


def digits5(data_dir: str | Path | None = None, *, seed: int = 0, valid_fraction: float = 0.15,
            test_fraction: float = 0.3) -> list[Task]:
    """MNIST-5 in miniature on scikit-learn's 8x8 digits: 0/1, 2/3, ..., 8/9; inputs (1, 8, 8).

    ``data_dir`` is ignored (the digits ship with scikit-learn). The test set is the first
    ``test_fraction`` of a ``RandomState(seed)`` permutation of the 1,797 images.
    """
    data = _digits_tensors(seed, test_fraction)
    groups = [(2 * i, 2 * i + 1) for i in range(5)]
    return _split_by_classes("digits5", data, groups, names=[f"digits-{a}-{b}" for a, b in groups],
                             valid_fraction=valid_fraction, seed=seed)


def pdigits(data_dir: str | Path | None = None, *, seed: int = 0, valid_fraction: float = 0.15,
            test_fraction: float = 0.3, num_tasks: int = 5, permute_first: bool = False) -> list[Task]:
    """Permuted digits: P-MNIST in miniature, ``num_tasks`` 10-class tasks with pixel
    permutations drawn as in :func:`pmnist`; ``data_dir`` is ignored."""
    data = _digits_tensors(seed, test_fraction)
    return _permuted_tasks("pdigits", data["train"], data["test"], num_tasks=num_tasks,
                           permute_first=permute_first, valid_fraction=valid_fraction, seed=seed)


BENCHMARKS: dict[str, Callable[..., list[Task]]] = {
    "mnist5": mnist5,
    "pmnist": pmnist,
    "cifar-alt": cifar_alt,
    "mixture5": mixture5,
    "miniimagenet": miniimagenet,
    "digits5": digits5,
    "pdigits": pdigits,
}


def load_benchmark(name: str, data_dir: str | Path | None = None, *, seed: int = 0, **options) -> list[Task]:
    """The tasks of benchmark ``name`` (see :data:`BENCHMARKS`), with its own ``options``.

    :param data_dir: folder holding the dataset files (not needed for ``digits5``/``pdigits``).
    :param seed: seeds the task order (where shuffled), permutations and validation split.
    :raises DatasetNotFoundError: when a file is missing (the message names it and its source).
    :raises ValueError: for an unknown benchmark or option.
    """
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    fn = BENCHMARKS[name]
    import inspect

    allowed = [p for p in inspect.signature(fn).parameters if p not in ("data_dir", "seed")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UserError(f"unknown option(s) {unknown} for benchmark {name!r}; it takes {allowed}")
    return fn(data_dir, seed=seed, **options)
